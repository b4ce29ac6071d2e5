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

/// Why an object cannot work in the account its spec.account names, as its Ready
/// condition says it: Stalled, or (`waiting`) Reconciling while the operator itself is
/// still checking the account (it has not assumed the role yet, or is doing so again),
/// which needs nobody to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProblem {
    pub reason: &'static str,
    pub message: String,
    pub waiting: bool,
}

impl AccountProblem {
    fn not_ready(message: String) -> Self {
        Self {
            reason: reasons::ACCOUNT_NOT_READY,
            message,
            waiting: false,
        }
    }

    fn checking(message: String) -> Self {
        Self {
            waiting: true,
            ..Self::not_ready(message)
        }
    }
}

/// Whether an object in `namespace` naming the AWSAccount `name` (found as `account`,
/// if it exists) may work in its account now, and with which role. `labels` are the
/// namespace's (`Err`: they could not be read; asked only when a selector must
/// decide); `recorded` is the account id the object's status recorded, if any: its
/// snapshot is there, and never looked for in another. Pure.
pub fn admit(
    name: &str,
    account: Option<&AWSAccount>,
    namespace: &str,
    labels: Result<&std::collections::BTreeMap<String, String>, &str>,
    recorded: Option<&str>,
) -> Result<AccountRole, AccountProblem> {
    let Some(account) = account else {
        return Err(AccountProblem::not_ready(format!(
            "spec.account: AWSAccount {name} does not exist; a cluster administrator creates              it (kubectl get awsaccounts lists them), or fix the name"
        )));
    };
    let spec = &account.spec;
    let listed = spec.namespaces.iter().any(|n| n == namespace);
    if !listed {
        let admitted = match (&spec.namespace_selector, labels) {
            (None, _) => false,
            (Some(_), Ok(labels)) => spec.admits(namespace, labels),
            (Some(_), Err(why)) => {
                return Err(AccountProblem {
                    waiting: false,
                    reason: reasons::ACCOUNT_NOT_ALLOWED,
                    message: format!(
                        "spec.account: AWSAccount {name} admits namespaces by label, and the                          labels of namespace {namespace} could not be read ({why}); the                          operator needs get on namespaces (the Helm chart grants it)"
                    ),
                });
            }
        };
        if !admitted {
            return Err(AccountProblem {
                waiting: false,
                reason: reasons::ACCOUNT_NOT_ALLOWED,
                message: format!(
                    "spec.account: AWSAccount {name} does not admit namespace {namespace};                      a cluster administrator adds it to the AWSAccount's spec.namespaces, or                      labels it to match spec.namespaceSelector"
                ),
            });
        }
    }
    if let Some(recorded) = recorded
        && recorded != spec.account_id
    {
        return Err(AccountProblem::not_ready(format!(
            "spec.account: the snapshot is in account {recorded}, but AWSAccount {name} now              names account {}; nothing is done until it names {recorded} again",
            spec.account_id
        )));
    }
    if account.meta().deletion_timestamp.is_some() {
        return Err(AccountProblem::not_ready(format!(
            "spec.account: AWSAccount {name} is being deleted"
        )));
    }
    let status = account.status.clone().unwrap_or_default();
    let ready = status.condition(conditions::READY);
    match ready {
        Some(c)
            if c.status == "True" && status.observed_generation == account.meta().generation =>
        {
            Ok(account_role(spec))
        }
        // Stalled with it; waiting with it while the operator checks it.
        Some(c) if c.status != "True" => {
            let message = format!(
                "spec.account: AWSAccount {name} is not Ready: {}",
                c.message
            );
            let stalled = status
                .condition(conditions::STALLED)
                .is_some_and(|s| s.status == "True");
            Err(if stalled {
                AccountProblem::not_ready(message)
            } else {
                AccountProblem::checking(message)
            })
        }
        _ => Err(AccountProblem::checking(format!(
            "spec.account: AWSAccount {name} has not been checked yet; waiting for the \
             operator to assume its role"
        ))),
    }
}

/// The role to work with for an object in `namespace` whose spec.account (or, once
/// recorded, status.account) is `name`, with `recorded` its recorded account id
/// (`Ok(None)`: no account named, the operator's own). Reads the AWSAccount from the
/// cache, and the namespace's labels only when a selector must decide.
pub async fn resolve(
    ctx: &Context,
    namespace: &str,
    name: Option<&str>,
    recorded: Option<&str>,
) -> Result<Option<AccountRole>, AccountProblem> {
    let Some(name) = name else {
        return Ok(None);
    };
    let account = ctx.aws_account(name).await;
    let labels = match &account {
        Some(a)
            if a.spec.namespace_selector.is_some()
                && !a.spec.namespaces.iter().any(|n| n == namespace) =>
        {
            ctx.namespace_labels(namespace).await
        }
        _ => Ok(Default::default()),
    };
    admit(
        name,
        account.as_deref(),
        namespace,
        labels.as_ref().map_err(String::as_str),
        recorded,
    )
    .map(Some)
}

/// For a cleanup: the role of the account the object's snapshot (`what`, named
/// `identifier`) was recorded in, through the AWSAccount recorded in `status`
/// (`Ok(None)`: the operator's own account, or `retain`, which touches nothing on AWS
/// and needs no account). A problem also says that the snapshot is left alone and how
/// to let the object go.
pub async fn resolve_for_cleanup(
    ctx: &Context,
    namespace: &str,
    status: &crate::api::SnapshotStatus,
    retain: bool,
    what: &str,
    identifier: &str,
) -> Result<Option<AccountRole>, AccountProblem> {
    if retain {
        return Ok(None);
    }
    resolve(
        ctx,
        namespace,
        status.account.as_deref(),
        status.account_id.as_deref(),
    )
    .await
    .map_err(|mut problem| {
        problem.message.push_str(&format!(
            "; the {what} {identifier} is left alone until then (to let the object go and \
             leave the {what} on AWS, remove its finalizer {})",
            crate::api::FINALIZER
        ));
        problem
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn account(spec: serde_json::Value, status: Option<serde_json::Value>) -> AWSAccount {
        let mut base = json!({"accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/dbsnapshot-operator"});
        base.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "AWSAccount",
            "metadata": {"name": "prod", "generation": 2},
            "spec": base,
            "status": status,
        }))
        .unwrap()
    }

    fn ready(generation: i64) -> serde_json::Value {
        json!({"observedGeneration": generation, "conditions": [{"type": "Ready", "status": "True",
            "reason": "Available", "message": "assumed", "lastTransitionTime": "2026-12-01T00:00:00Z"}]})
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_admitted_namespace_gets_the_role_of_a_ready_account() {
        let a = account(json!({"namespaces": ["data"]}), Some(ready(2)));
        let role = admit("prod", Some(&a), "data", Ok(&labels(&[])), None).unwrap();
        assert_eq!(role, account_role(&a.spec));
        // The recorded account is the account's: still fine.
        assert!(
            admit(
                "prod",
                Some(&a),
                "data",
                Ok(&labels(&[])),
                Some("111122223333")
            )
            .is_ok()
        );
        // By selector.
        let a = account(
            json!({"namespaceSelector": {"matchLabels": {"team": "data"}}}),
            Some(ready(2)),
        );
        assert!(
            admit(
                "prod",
                Some(&a),
                "web",
                Ok(&labels(&[("team", "data")])),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn every_reason_an_object_cannot_use_its_account() {
        let listed = json!({"namespaces": ["data"]});
        let no = labels(&[]);
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            Option<AWSAccount>,
            &str,
            Result<&BTreeMap<_, _>, &str>,
            Option<&str>,
            &str,
            &str,
        )> = vec![
            (
                None,
                "data",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_READY,
                "does not exist",
            ),
            (
                Some(account(json!({}), Some(ready(2)))),
                "data",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_ALLOWED,
                "does not admit namespace data",
            ),
            (
                Some(account(listed.clone(), Some(ready(2)))),
                "web",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_ALLOWED,
                "does not admit namespace web",
            ),
            (
                Some(account(
                    json!({"namespaceSelector": {"matchLabels": {"team": "data"}}}),
                    Some(ready(2)),
                )),
                "web",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_ALLOWED,
                "does not admit namespace web",
            ),
            (
                Some(account(
                    json!({"namespaceSelector": {"matchLabels": {"team": "data"}}}),
                    Some(ready(2)),
                )),
                "web",
                Err("forbidden"),
                None,
                reasons::ACCOUNT_NOT_ALLOWED,
                "could not be read (forbidden)",
            ),
            (
                Some(account(listed.clone(), None)),
                "data",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_READY,
                "has not been checked yet",
            ),
            (
                // Ready for an older spec: not yet for this one.
                Some(account(listed.clone(), Some(ready(1)))),
                "data",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_READY,
                "has not been checked yet",
            ),
            (
                Some(account(
                    listed.clone(),
                    Some(
                        json!({"observedGeneration": 2, "conditions": [{"type": "Ready",
                    "status": "False", "reason": "AWSError", "message": "AccessDenied: not trusted",
                    "lastTransitionTime": "2026-12-01T00:00:00Z"}, {"type": "Stalled",
                    "status": "True", "reason": "AWSError", "message": "AccessDenied: not trusted",
                    "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
                    ),
                )),
                "data",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_READY,
                "is not Ready: AccessDenied: not trusted",
            ),
            (
                // Not Ready while the operator checks it (Reconciling, not Stalled).
                Some(account(
                    listed.clone(),
                    Some(
                        json!({"observedGeneration": 2, "conditions": [{"type": "Ready",
                    "status": "False", "reason": "Progressing", "message": "assuming the role",
                    "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
                    ),
                )),
                "data",
                Ok(&no),
                None,
                reasons::ACCOUNT_NOT_READY,
                "is not Ready: assuming the role",
            ),
            (
                // The snapshot is in another account than the AWSAccount names now.
                Some(account(listed.clone(), Some(ready(2)))),
                "data",
                Ok(&no),
                Some("444455556666"),
                reasons::ACCOUNT_NOT_READY,
                "the snapshot is in account 444455556666",
            ),
        ];
        for (a, ns, labels, recorded, reason, words) in cases {
            let e = admit("prod", a.as_ref(), ns, labels, recorded).unwrap_err();
            assert_eq!(e.reason, reason, "{e:?}");
            // Only the operator's own check under way is waited for without Stalled.
            assert_eq!(
                e.waiting,
                words == "has not been checked yet" || words.ends_with("assuming the role"),
                "{e:?}"
            );
            assert!(e.message.contains(words), "{e:?} should say {words}");
            assert!(e.message.starts_with("spec.account: "), "{e:?}");
        }
        // Being deleted: not Ready.
        let mut going = account(listed, Some(ready(2)));
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        let e = admit("prod", Some(&going), "data", Ok(&no), None).unwrap_err();
        assert_eq!(e.reason, reasons::ACCOUNT_NOT_READY);
        assert!(e.message.contains("being deleted"));
    }
}
