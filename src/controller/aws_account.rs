//! The AWSAccount controller: assumes the account's role with the operator's own
//! credentials (through the engines' per-account credentials, the ones every client of
//! the account then uses), checks with STS GetCallerIdentity that the identity belongs
//! to `accountId`, and writes Ready. Assumed afresh every resync while Ready (a trust
//! policy can be changed under it) and every `--max-poll-seconds` while not (so that a
//! fixed trust policy is seen soon).

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::{Context, Error};
use crate::api::aws_account::{AWSAccount, AWSAccountSpec, AWSAccountStatus};
use crate::api::conditions::{self, Health, reasons};
use crate::api::validation::validate_aws_account;
use crate::engine::{AccountRole, ErrorClass};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "AWSAccount";

/// The role the engines assume for an account's spec.
pub fn account_role(spec: &AWSAccountSpec) -> AccountRole {
    AccountRole {
        account_id: spec.account_id.clone(),
        role_arn: spec.role_arn.clone(),
        external_id: spec.external_id.clone(),
        session_seconds: spec
            .session_duration_seconds
            .and_then(|s| u32::try_from(s).ok()),
    }
}

pub async fn reconcile(obj: Arc<AWSAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<AWSAccount> = Api::all(ctx.client.clone());
    let result = super::turns::counted(&*obj, &ctx, apply(&api, &obj, &ctx)).await;
    match result {
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 403 => {
            tracing::error!(
                object = %obj.name_any(),
                kind = KIND,
                "the operator's service account is not allowed to do this: {} - grant it the \
                 permissions of the Helm chart's ClusterRole",
                e.message
            );
            Ok(Action::requeue(std::time::Duration::from_secs(60)))
        }
        other => other,
    }
}

async fn apply(api: &Api<AWSAccount>, obj: &AWSAccount, ctx: &Context) -> Result<Action, Error> {
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let old = obj.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let (health, requeue) = match validate_aws_account(&obj.spec) {
        Err(e) => (Health::stalled(reasons::INVALID_SPEC, e.to_string()), None),
        Ok(()) => {
            let role = account_role(&obj.spec);
            let assumed = ctx.engines.assumed(&role);
            match assumed.verify().await {
                Ok((account, arn)) if account == obj.spec.account_id => {
                    new.last_assumed_time = Some(Timestamp::now());
                    (
                        Health::ready(format!("assumed {} as {arn}", obj.spec.role_arn)),
                        Some(ctx.timing.resync),
                    )
                }
                Ok((account, _)) => (
                    Health::stalled(
                        reasons::INVALID_SPEC,
                        format!(
                            "spec.accountId: the credentials of {} belong to account {account}, \
                             not {}",
                            obj.spec.role_arn, obj.spec.account_id
                        ),
                    ),
                    Some(ctx.timing.max_poll),
                ),
                // Throttling, a network error: the controller's backoff, no status change.
                Err(e) if e.class == ErrorClass::Transient || e.class == ErrorClass::Throttled => {
                    return Err(Error::Engine(e));
                }
                Err(e) => (
                    Health::stalled(
                        reasons::AWS_ERROR,
                        format!(
                            "could not assume {}: {} (the role's trust policy must allow the \
                             operator's role; docs/iam.md)",
                            obj.spec.role_arn, e
                        ),
                    ),
                    Some(ctx.timing.max_poll),
                ),
            }
        }
    };
    super::turns::note_health(&health);
    new.observed_generation = obj.meta().generation;
    new.conditions = conditions::conditions(
        &old.conditions,
        &health,
        obj.meta().generation,
        Timestamp::now(),
    );
    // A check that only moved lastAssumedTime is written once a resync, not more.
    write_status(api, ctx, obj, &old, &new).await?;
    Ok(super::action(requeue))
}

async fn write_status(
    api: &Api<AWSAccount>,
    ctx: &Context,
    obj: &AWSAccount,
    old: &AWSAccountStatus,
    new: &AWSAccountStatus,
) -> Result<(), kube::Error> {
    if old == new {
        return Ok(());
    }
    super::status::apply_status(api, obj, new).await?;
    let ready = |s: &AWSAccountStatus| {
        s.condition(conditions::READY)
            .map(|c| (c.reason.clone(), c.status.clone(), c.message.clone()))
    };
    if ready(old) != ready(new)
        && let Some(c) = new.condition(conditions::READY)
    {
        let event = Event {
            type_: if c.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: c.reason.clone(),
            note: Some(c.message.chars().take(1000).collect()),
            action: if c.status == "True" {
                "AssumeRole".to_string()
            } else {
                "MarkNotReady".to_string()
            },
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }
    Ok(())
}
