//! Status writing: conditions, the server-side apply of the status, the Event when the
//! reason changes, the Events of the AWS changes a reconcile made, and the statuses
//! several paths share (invalid spec, recorded identity, forbidden).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;

use super::error::kube_message;
use super::{Context, Error};
use crate::api::conditions::{self, Health};
use crate::api::{MANAGER, SnapshotStatus};

/// The new status with conditions for `health`, keeping transition times.
pub fn with_health(
    mut status: SnapshotStatus,
    health: &Health,
    generation: Option<i64>,
) -> SnapshotStatus {
    super::turns::note_health(health);
    status.observed_generation = generation;
    status.conditions =
        conditions::conditions(&status.conditions, health, generation, Timestamp::now());
    status
}

/// What a status change is, for deciding whether to write it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    None,
    /// Only the clocks of the progress moved (Redshift's elapsed seconds, estimate to
    /// completion and current rate): not worth a write.
    Clocks,
    /// The progress changed, or the conditions' messages while there is progress (they
    /// tell it), nothing else: written at most once per interval.
    Progress,
    /// Anything else (phase, reasons, identity, shares, sizes): written at once.
    Other,
}

/// What changed from `old` to `new`. Pure.
pub fn change(old: &SnapshotStatus, new: &SnapshotStatus) -> Change {
    if old == new {
        return Change::None;
    }
    let mut rest = new.clone();
    if let (Some(p), Some(before)) = (&mut rest.progress, &old.progress) {
        p.elapsed_seconds = before.elapsed_seconds;
        p.estimated_seconds_to_completion = before.estimated_seconds_to_completion;
        p.current_rate_mbps = before.current_rate_mbps;
    }
    if rest == *old {
        return Change::Clocks;
    }
    rest.progress = old.progress.clone();
    // While Stalled, a message is what the user must act on: never held back.
    let stalled = |s: &SnapshotStatus| {
        s.condition(conditions::STALLED)
            .is_some_and(|c| c.status == "True")
    };
    if !stalled(old) && !stalled(new) {
        for c in &mut rest.conditions {
            if let Some(before) = old.condition(&c.type_) {
                c.message = before.message.clone();
            }
        }
    }
    if rest != *old {
        return Change::Other;
    }
    let figures = |s: &SnapshotStatus| {
        s.progress.as_ref().map(|p| {
            (
                p.percent,
                p.backup_progress_mb.map(f64::to_bits),
                p.total_backup_size_mb.map(f64::to_bits),
            )
        })
    };
    // A message that moves with the progress (its percent, AWS's estimate) waits with
    // it; any other new message (a wait, a refusal) is written at once.
    if figures(old) != figures(new) || (old.progress.is_some() && new.progress.is_some()) {
        Change::Progress
    } else {
        Change::Other
    }
}

/// Whether a status change is worth an Event: the Ready condition's reason or status
/// changed, but not into `Pending` from no condition at all (the first status of an
/// object just seen, or its identifier recorded: what follows says more). Pure.
pub fn announces(old: &SnapshotStatus, new: &SnapshotStatus) -> bool {
    let reason = |s: &SnapshotStatus| {
        s.condition(conditions::READY)
            .map(|c| (c.reason.clone(), c.status.clone()))
    };
    let (before, after) = (reason(old), reason(new));
    before != after
        && !(before.is_none()
            && after
                .as_ref()
                .is_some_and(|(r, _)| r == conditions::reasons::PENDING))
}

/// Whether the phase an object was just marked with only repeats what an AWS change of
/// the same reconcile announced already (its Event names the call, the snapshot and the
/// request id): `Creating` after a create, copy or export AWS made, `Deleting` after a
/// delete. Such a phase change gets no `Mark<Phase>` Event of its own. Pure.
pub fn told_by_change(
    phase: Option<crate::api::Phase>,
    made: &[crate::engine::audit::Change],
) -> bool {
    use crate::api::Phase;
    use crate::engine::audit::Change as Aws;
    match phase {
        Some(Phase::Creating) => made
            .iter()
            .any(|c| matches!(c, Aws::Create | Aws::Copy | Aws::Export)),
        Some(Phase::Deleting) => made.contains(&Aws::Delete),
        _ => false,
    }
}

/// Whether to write a change now, when this process last wrote the object's status
/// `since` ago (`None`: not within `interval`). Pure.
pub fn write_now(change: Change, since: Option<Duration>, interval: Duration) -> bool {
    match change {
        Change::None | Change::Clocks => false,
        Change::Progress => since.is_none_or(|s| s >= interval),
        Change::Other => true,
    }
}

/// Writes the status by server-side apply when it changed, and records an Event when
/// the reason changed. Progress alone is written at most once per
/// `--progress-write-seconds` (at least `--min-poll-seconds`) per object, and only when
/// a figure moved or a message changed ([`change`], [`write_now`]).
pub async fn write_status<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    new: &SnapshotStatus,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    write_status_announcing(api, ctx, obj, old, new, true).await
}

/// [`write_status`], with its Event only when `announce`: without for the record of an
/// AWS call about to be made, whose outcome is announced next (the call's own Event, or
/// the status written after a refusal).
pub(crate) async fn write_status_announcing<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    new: &SnapshotStatus,
    announce: bool,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let now = std::time::Instant::now();
    let interval = ctx.timing.progress_write.max(ctx.timing.batch_floor);
    let since = ctx
        .last_status_write(&uid, now, interval)
        .map(|t| now.saturating_duration_since(t));
    let what = change(old, new);
    if !write_now(what, since, interval) {
        return Ok(());
    }
    if has_legacy_conditions(&old.conditions) {
        // Written by a version that kept Reconciling and Stalled as False and the list
        // atomic: replace the list once, so that no stale False entry outlives the
        // change to a list keyed by type.
        api.patch_status(
            &obj.name_any(),
            &PatchParams {
                field_manager: Some(MANAGER.to_string()),
                ..Default::default()
            },
            &Patch::Merge(&json!({"status": {"conditions": new.conditions}})),
        )
        .await?;
    }
    apply_status(api, obj, new).await?;
    ctx.wrote_status(&uid, now, interval);
    tracing::debug!(
        kind = %K::kind(&()),
        name = %obj.name_any(),
        phase = ?new.phase,
        reason = new.condition(conditions::READY).map(|c| c.reason.as_str()).unwrap_or_default(),
        change = ?what,
        since = ?since,
        "wrote status"
    );
    let stalled = new
        .condition(conditions::STALLED)
        .is_some_and(|c| c.status == "True");
    if announce
        && announces(old, new)
        && (stalled || !told_by_change(new.phase, &crate::engine::audit::made_so_far()))
        && let Some(ready) = new.condition(conditions::READY)
    {
        let event = Event {
            type_: if stalled {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ready.reason.clone(),
            note: Some(ready.message.chars().take(1000).collect()),
            action: phase_action(new.phase),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }
    Ok(())
}

/// Writes an object's whole status by server-side apply, as the operator's field
/// manager (forced: the status is the operator's alone).
pub async fn apply_status<K>(
    api: &Api<K>,
    obj: &K,
    status: &impl Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The action of the Event that says the Ready reason changed: the status was marked
/// with the phase (`MarkCreating`, `MarkAvailable`, ...).
pub fn phase_action(phase: Option<crate::api::Phase>) -> String {
    format!("Mark{:?}", phase.unwrap_or(crate::api::Phase::Pending))
}

/// One reconcile of an object that may change things on AWS: in a span naming the
/// object (`kind`, `namespace`, `object`, `uid`), which every log line of it carries
/// (the AWS audit lines above all), and with an Event per AWS change it made.
pub async fn audited<K, F, Fut>(obj: Arc<K>, ctx: Arc<Context>, reconcile: F) -> Fut::Output
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future,
{
    // At the audit lines' target and at warn, so that the refused changes' warn lines
    // carry the object under `RUST_LOG=warn` too.
    let span = tracing::span!(
        target: crate::engine::audit::TARGET,
        tracing::Level::WARN,
        "reconcile",
        kind = %K::kind(&()),
        namespace = obj.meta().namespace.as_deref().unwrap_or_default(),
        object = obj.meta().name.as_deref().unwrap_or_default(),
        uid = obj.meta().uid.as_deref().unwrap_or_default(),
    );
    let (output, changes) = crate::engine::audit::collect(reconcile(obj.clone(), ctx.clone()))
        .instrument(span.clone())
        .await;
    publish_changes(&ctx, &*obj, &changes)
        .instrument(span)
        .await;
    output
}

/// An Event per AWS change: `action` what was done (`CreateSnapshot`, `ShareSnapshot`,
/// ...), `reason` how it went (`Created`, `Shared`, ..., `NothingToDo`, and for a
/// Warning `Throttled` or `AWSError`), the note naming the AWS operation, the snapshot,
/// the region and AWS's request id.
pub async fn publish_changes<K>(ctx: &Context, obj: &K, changes: &[crate::engine::audit::Record])
where
    K: Resource<DynamicType = ()>,
{
    for change in changes {
        let event = Event {
            type_: if change.failed() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: change.reason().to_string(),
            note: Some(change.note().chars().take(1000).collect()),
            action: change.change.action().to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }
}

/// Conditions as versions before 0.2 wrote them: Reconciling or Stalled present with
/// status False (now they are present only while True).
pub fn has_legacy_conditions(
    list: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> bool {
    list.iter().any(|c| {
        (c.type_ == conditions::RECONCILING || c.type_ == conditions::STALLED)
            && c.status == "False"
    })
}

/// Both kinds carry the same status.
pub trait WithStatus {
    fn snapshot_status(&self) -> SnapshotStatus;
}

impl WithStatus for crate::api::ClusterSnapshot {
    fn snapshot_status(&self) -> SnapshotStatus {
        self.status.clone().unwrap_or_default()
    }
}

impl WithStatus for crate::api::SnapshotCopy {
    fn snapshot_status(&self) -> SnapshotStatus {
        self.status.clone().unwrap_or_default()
    }
}

/// An invalid spec: Stalled `InvalidSpec` naming the field; no AWS call; wait for a
/// change of the object.
pub async fn invalid_spec<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    e: &crate::api::validation::SpecError,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    stalled(
        api,
        ctx,
        obj,
        old,
        &Health::stalled(crate::api::conditions::reasons::INVALID_SPEC, e.to_string()),
    )
    .await?;
    Ok(Action::await_change())
}

/// Says that the object cannot use the account its spec.account names (see
/// [`super::aws_account::admit`]); nothing was called. Looked at again when the
/// AWSAccount's readiness changes (the controller watches them), and every
/// `--max-poll-seconds` (a namespace's labels are not watched).
pub async fn account_problem<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    problem: super::aws_account::AccountProblem,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let waiting = problem.waiting;
    let health = if waiting {
        Health::progressing(problem.reason, problem.message)
    } else {
        Health::stalled(problem.reason, problem.message)
    };
    if obj.meta().deletion_timestamp.is_some() || waiting {
        let mut status = old.clone();
        status.phase = Some(if obj.meta().deletion_timestamp.is_some() {
            crate::api::Phase::Deleting
        } else {
            old.phase.unwrap_or(crate::api::Phase::Pending)
        });
        let status = with_health(status, &health, obj.meta().generation);
        write_status(api, ctx, obj, old, &status).await?;
    } else {
        stalled(api, ctx, obj, old, &health).await?;
    }
    Ok(Action::requeue(ctx.timing.max_poll))
}

/// Writes a Stalled status (the phase stays, but Creating becomes Pending: nothing is
/// being made while stalled).
async fn stalled<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    health: &Health,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    use crate::api::Phase;
    let mut status = old.clone();
    status.phase = Some(
        status
            .phase
            .filter(|p| *p != Phase::Creating)
            .unwrap_or(Phase::Pending),
    );
    let status = with_health(status, health, obj.meta().generation);
    write_status(api, ctx, obj, old, &status).await?;
    Ok(())
}

/// Writes the identity fields (the snapshot identifier above all) before anything is
/// created on AWS, so a restart never makes a second snapshot. No Event: the create's
/// own Event (or the refusal's status) follows.
pub async fn record<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    base: SnapshotStatus,
    identifier: &str,
) -> Result<SnapshotStatus, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let status = recorded(obj, base, identifier);
    write_status_announcing(api, ctx, obj, old, &status, false).await?;
    Ok(status)
}

/// The status [`record`] writes: `base` Pending, its identifier recorded. Pure.
pub fn recorded<K: Resource>(
    obj: &K,
    mut base: SnapshotStatus,
    identifier: &str,
) -> SnapshotStatus {
    base.phase = Some(crate::api::Phase::Pending);
    with_health(
        base,
        &Health::progressing(
            crate::api::conditions::reasons::PENDING,
            format!("snapshot identifier {identifier} recorded"),
        ),
        obj.meta().generation,
    )
}

/// A Kubernetes call the operator's RBAC forbids: said in the log and, where the status
/// may still be written, as Stalled `Forbidden`; looked at again every minute.
pub async fn report_forbidden<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    err: &kube::core::Status,
) -> Action
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + WithStatus,
{
    let message = format!(
        "the operator's service account is not allowed to do this: {} - grant it the \
         permissions of the Helm chart's {} (see charts/dbsnapshot-operator/templates/_helpers.tpl)",
        err.message, "Role/ClusterRole"
    );
    tracing::error!(object = %obj.name_any(), kind = %K::kind(&()), "{message}");
    let old = obj.snapshot_status();
    let status = with_health(
        old.clone(),
        &Health::stalled(crate::api::conditions::reasons::FORBIDDEN, message),
        obj.meta().generation,
    );
    if let Err(e) = write_status(api, ctx, obj, &old, &status).await {
        tracing::error!(object = %obj.name_any(), error = %kube_message(&e), "could not write the Forbidden condition either");
    }
    Action::requeue(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Progress;

    fn creating(percent: i64, elapsed: i64, message: &str) -> SnapshotStatus {
        serde_json::from_value(json!({
            "phase": "Creating", "snapshotIdentifier": "nightly", "awsStatus": "creating",
            "progress": {"percent": percent, "elapsedSeconds": elapsed,
                         "estimatedSecondsToCompletion": 300 - elapsed},
            "conditions": [{"type": "Ready", "status": "False", "reason": "Creating",
                            "message": message, "lastTransitionTime": "2026-11-22T00:00:00Z"}],
        }))
        .unwrap()
    }

    #[test]
    fn changes_are_told_apart_by_what_moved() {
        let old = creating(10, 30, "10%");
        assert_eq!(change(&old, &old.clone()), Change::None);
        // Only the clocks: elapsed, estimate, rate.
        let mut clocks = creating(10, 60, "10%");
        clocks.progress.as_mut().unwrap().current_rate_mbps = Some(4.5);
        assert_eq!(change(&old, &clocks), Change::Clocks);
        // A figure moved, the message with it, or the message alone.
        assert_eq!(change(&old, &creating(20, 60, "20%")), Change::Progress);
        assert_eq!(
            change(&old, &creating(10, 30, "10%, slow")),
            Change::Progress
        );
        let mut mb = old.clone();
        mb.progress.as_mut().unwrap().backup_progress_mb = Some(12.0);
        assert_eq!(change(&old, &mb), Change::Progress);
        let mut total = old.clone();
        total.progress.as_mut().unwrap().total_backup_size_mb = Some(99.0);
        assert_eq!(change(&old, &total), Change::Progress);
        // A new message without progress (a wait, a refusal): at once.
        let mut waiting = old.clone();
        waiting.progress = None;
        let mut throttled = waiting.clone();
        throttled.conditions[0].message = "waiting: AWS is throttling".into();
        assert_eq!(change(&waiting, &throttled), Change::Other);
        // Progress appearing or going is progress.
        let mut none = old.clone();
        none.progress = None;
        assert_eq!(change(&none, &old), Change::Progress);
        assert_eq!(change(&old, &none), Change::Progress);
        let mut first = old.clone();
        first.progress = Some(Progress::default());
        assert_eq!(change(&first, &old), Change::Progress);
        // While Stalled, a new message is written at once (it says what to fix).
        let mut stalled = old.clone();
        let mut c = stalled.conditions[0].clone();
        c.type_ = "Stalled".into();
        c.status = "True".into();
        c.message = "AccessDenied: not allowed".into();
        stalled.conditions.push(c);
        let mut reworded = stalled.clone();
        reworded.conditions[1].message = "AccessDenied: another reason".into();
        assert_eq!(change(&stalled, &reworded), Change::Other);
        let mut not_stalled = stalled.clone();
        not_stalled.conditions[1].status = "False".into();
        let mut reworded = not_stalled.clone();
        reworded.conditions[1].message = "m".into();
        assert_eq!(change(&not_stalled, &reworded), Change::Progress);
        // Anything else is written at once, with progress or without.
        type Edit = Box<dyn Fn(&mut SnapshotStatus)>;
        let others: Vec<(&str, Edit)> = vec![
            (
                "phase",
                Box::new(|s| s.phase = Some(crate::api::Phase::Available)),
            ),
            (
                "reason",
                Box::new(|s| s.conditions[0].reason = "Available".into()),
            ),
            (
                "ready",
                Box::new(|s| s.conditions[0].status = "True".into()),
            ),
            (
                "aws status",
                Box::new(|s| s.aws_status = Some("available".into())),
            ),
            ("arn", Box::new(|s| s.arn = Some("arn:aws:rds:x".into()))),
            (
                "shares",
                Box::new(|s| s.shared_with = Some(vec!["1".into()])),
            ),
            ("size", Box::new(|s| s.total_size_mb = Some(1.0))),
            ("generation", Box::new(|s| s.observed_generation = Some(3))),
            (
                "a new condition",
                Box::new(|s| {
                    let mut c = s.conditions[0].clone();
                    c.type_ = "Stalled".into();
                    s.conditions.push(c)
                }),
            ),
        ];
        for (what, edit) in others {
            let mut new = old.clone();
            edit(&mut new);
            assert_eq!(change(&old, &new), Change::Other, "{what}");
            let mut with_progress = creating(50, 90, "50%");
            edit(&mut with_progress);
            assert_eq!(change(&old, &with_progress), Change::Other, "{what}");
        }
    }

    #[test]
    fn only_creating_after_a_create_and_deleting_after_a_delete_repeat_a_change() {
        use crate::api::Phase;
        use crate::engine::audit::Change as Aws;
        let phases = [
            None,
            Some(Phase::Pending),
            Some(Phase::Creating),
            Some(Phase::Available),
            Some(Phase::Failed),
            Some(Phase::Deleting),
        ];
        for phase in phases {
            assert!(!told_by_change(phase, &[]), "{phase:?} with no change");
            for aws in Aws::ALL {
                let expected = match phase {
                    Some(Phase::Creating) => matches!(aws, Aws::Create | Aws::Copy | Aws::Export),
                    Some(Phase::Deleting) => aws == Aws::Delete,
                    _ => false,
                };
                assert_eq!(told_by_change(phase, &[aws]), expected, "{phase:?} {aws:?}");
                // Other changes of the same reconcile neither add nor take away.
                assert_eq!(
                    told_by_change(phase, &[Aws::Tag, aws, Aws::Share]),
                    expected,
                    "{phase:?} {aws:?} among others"
                );
            }
        }
    }

    #[test]
    fn a_new_ready_reason_is_announced_but_the_first_pending() {
        let none = SnapshotStatus::default();
        let with = |reason: &str, status: &str| {
            let mut s = creating(0, 0, "m");
            s.conditions[0].reason = reason.into();
            s.conditions[0].status = status.into();
            s
        };
        let pending = with("Pending", "False");
        assert!(!announces(&none, &pending));
        assert!(announces(&none, &with("Creating", "False")));
        assert!(announces(&none, &with("SourceNotReady", "False")));
        assert!(announces(&pending, &with("Creating", "False")));
        assert!(announces(
            &with("Creating", "False"),
            &with("Available", "True")
        ));
        assert!(announces(
            &with("Available", "True"),
            &with("Pending", "False")
        ));
        // The same reason with another message: no Event.
        let mut reworded = creating(10, 20, "other message");
        reworded.conditions[0].reason = "Pending".into();
        assert!(!announces(&pending, &reworded));
    }

    #[test]
    fn progress_is_written_at_most_once_per_interval_and_the_rest_at_once() {
        let i = Duration::from_secs(11);
        let s = Duration::from_secs;
        for (change, since, now) in [
            (Change::None, None, false),
            (Change::None, Some(s(60)), false),
            (Change::Clocks, None, false),
            (Change::Clocks, Some(s(60)), false),
            (Change::Progress, None, true),
            (Change::Progress, Some(s(0)), false),
            (Change::Progress, Some(s(10)), false),
            (Change::Progress, Some(s(11)), true),
            (Change::Progress, Some(s(60)), true),
            (Change::Other, None, true),
            (Change::Other, Some(s(0)), true),
        ] {
            assert_eq!(write_now(change, since, i), now, "{change:?} {since:?}");
        }
    }
}
