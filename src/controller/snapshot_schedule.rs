//! The SnapshotSchedule controller: makes a ClusterSnapshot per scheduled run, a
//! SnapshotCopy per copy template once a run is Ready, prunes runs by retention and
//! writes status. It owns Kubernetes objects only: the ClusterSnapshot and SnapshotCopy
//! controllers make every AWS call. What to do is decided by `crate::schedule` (pure);
//! this module reads the caches, acts, and requeues exactly at the next scheduled time.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{Context, Error};
use crate::api::conditions::{self, Health, reasons};
use crate::api::snapshot_schedule::{ConcurrencyPolicy, CopyTemplate};
use crate::api::validation::{SpecError, validate_snapshot_schedule};
use crate::api::{
    ClusterSnapshot, MANAGER, Phase, SCHEDULE_LABEL, SCHEDULED_TIME_ANNOTATION, SnapshotCopy,
    SnapshotSchedule, SnapshotScheduleStatus, SnapshotStatus,
};
use crate::schedule::{self, Clock, Retention, Run, RunState};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "SnapshotSchedule";

/// Tests only: when set, the operator stops (holds forever) right after creating a
/// run's ClusterSnapshot, before the status write that records it, so that a test can
/// SIGKILL it in that window.
pub const HOLD_AFTER_RUN_CREATE: &str = "DBSNAPSHOT_TEST_HOLD_AFTER_RUN_CREATE";

/// On each SnapshotCopy a schedule makes: the run (ClusterSnapshot) it copies.
pub const SCHEDULE_RUN_LABEL: &str = "dbsnapshot.io/schedule-run";

/// The clock schedules run on: the real one, or (tests only) one that runs `speed`
/// times faster from `origin`, so that a per-minute cron makes a run every few seconds.
/// Scheduled times, run names and retention ages are read on this clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleClock {
    pub origin: Timestamp,
    pub speed: f64,
}

impl Default for ScheduleClock {
    fn default() -> Self {
        Self {
            origin: Timestamp::UNIX_EPOCH,
            speed: 1.0,
        }
    }
}

impl ScheduleClock {
    /// The schedules' time now.
    pub fn now(&self) -> Timestamp {
        self.at(Timestamp::now())
    }

    /// The schedules' time at the real instant `real`.
    pub fn at(&self, real: Timestamp) -> Timestamp {
        if self.speed == 1.0 {
            return real;
        }
        let elapsed = real.duration_since(self.origin).as_secs_f64() * self.speed;
        let shifted = jiff::SignedDuration::try_from_secs_f64(elapsed).unwrap_or_default();
        self.origin.saturating_add(shifted).unwrap_or(real)
    }

    /// How long to wait in real time until the schedules' time `at`.
    pub fn until(&self, now: Timestamp, at: Timestamp) -> Duration {
        let ahead = at.duration_since(now).as_secs_f64().max(0.0) / self.speed;
        Duration::from_secs_f64(ahead)
    }
}

/// Runs already counted as failed by this process (by UID), so each counts once.
#[derive(Debug, Default)]
pub struct SeenFailures(Mutex<HashSet<String>>);

impl SeenFailures {
    /// True the first time a run's UID is given.
    fn first(&self, uid: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string())
    }
}

/// A run's state, read off its ClusterSnapshot: Ready once Available, Failed once
/// Failed or Stalled (not owned, invalid, refused by AWS), Creating otherwise.
pub fn run_state(status: &SnapshotStatus) -> RunState {
    let stalled = status
        .condition(conditions::STALLED)
        .is_some_and(|c| c.status == "True");
    match status.phase {
        Some(Phase::Failed) => RunState::Failed,
        _ if stalled => RunState::Failed,
        Some(Phase::Available) if status.ready_to_use == Some(true) => RunState::Ready,
        _ => RunState::Creating,
    }
}

/// Whether a copy is still reading its source: neither done nor given up.
fn copy_in_flight(copy: &SnapshotCopy) -> bool {
    let status = copy.status.clone().unwrap_or_default();
    let stalled = status
        .condition(conditions::STALLED)
        .is_some_and(|c| c.status == "True");
    !stalled && !matches!(status.phase, Some(Phase::Available) | Some(Phase::Failed))
}

/// When a run was scheduled: its annotation, else (edited away) its creation time.
fn scheduled_time(cs: &ClusterSnapshot) -> Timestamp {
    cs.annotations()
        .get(SCHEDULED_TIME_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| cs.meta().creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// One run of this schedule as the caches have it.
struct Member {
    object: Arc<ClusterSnapshot>,
    run: Run,
}

/// The ClusterSnapshots of this schedule (by label; objects being deleted are gone
/// already as far as the schedule is concerned), oldest first.
fn members(
    schedule: &SnapshotSchedule,
    snapshots: &[Arc<ClusterSnapshot>],
    copies: &[Arc<SnapshotCopy>],
) -> Vec<Member> {
    let namespace = schedule.namespace();
    let name = schedule.name_any();
    let mut out: Vec<Member> = snapshots
        .iter()
        .filter(|cs| {
            cs.namespace() == namespace
                && cs.meta().deletion_timestamp.is_none()
                && cs.labels().get(SCHEDULE_LABEL) == Some(&name)
        })
        .map(|cs| {
            let run_name = cs.name_any();
            let in_use = copies.iter().any(|c| {
                c.namespace() == namespace
                    && c.spec.source.cluster_snapshot_ref.as_ref().map(|r| &r.name)
                        == Some(&run_name)
                    && copy_in_flight(c)
            });
            Member {
                run: Run {
                    name: run_name,
                    scheduled: scheduled_time(cs),
                    state: run_state(&cs.status.clone().unwrap_or_default()),
                    in_use,
                },
                object: cs.clone(),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.run.scheduled, &a.run.name).cmp(&(b.run.scheduled, &b.run.name)));
    out
}

/// When a Ready run became Ready (its Ready condition's transition).
fn ready_since(cs: &ClusterSnapshot) -> Option<Timestamp> {
    cs.status
        .as_ref()?
        .condition(conditions::READY)
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.0)
}

/// The retention rules of the spec (`None`: nothing is pruned).
fn retention(schedule: &SnapshotSchedule) -> Result<Option<Retention>, SpecError> {
    let Some(r) = &schedule.spec.retention else {
        return Ok(None);
    };
    let max_age = match &r.max_age {
        Some(text) => Some(
            schedule::parse_duration(text)
                .map_err(|e| SpecError::new("spec.retention.maxAge", e))?,
        ),
        None => None,
    };
    let count = |n: Option<i32>| n.map(|n| u32::try_from(n).unwrap_or(0));
    Ok(Some(Retention {
        keep_last: count(r.keep_last),
        max_age,
        keep_daily: count(r.keep_daily),
        keep_weekly: count(r.keep_weekly),
        keep_monthly: count(r.keep_monthly),
        failed_history_limit: u32::try_from(r.failed_history_limit).unwrap_or(0),
    }))
}

/// What one reconcile did, for events and metrics.
#[derive(Debug, Default)]
struct Outcomes {
    created: Option<String>,
    skipped: Option<String>,
    missed: u32,
    failed: Vec<String>,
    pruned: Vec<(String, String)>,
    copies: Vec<String>,
}

pub async fn reconcile(obj: Arc<SnapshotSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_plain(obj, ctx, apply).await
}

async fn apply(
    api: &Api<SnapshotSchedule>,
    obj: &SnapshotSchedule,
    ctx: &Context,
) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let generation = obj.meta().generation;
    let old = obj.status.clone().unwrap_or_default();
    let clock = ctx.schedule_clock;
    let now = clock.now();

    let checked = validate_snapshot_schedule(&obj.spec)
        .and_then(|()| {
            Clock::new(&obj.spec.schedule, obj.spec.time_zone.as_deref()).map_err(|e| {
                match e.split_once(": ") {
                    Some((field, message)) => SpecError::new(field, message),
                    None => SpecError::new("spec.schedule", e),
                }
            })
        })
        .and_then(|c| Ok((c, retention(obj)?)));
    let (cron, retention) = match checked {
        Ok(v) => v,
        Err(e) => {
            let status = with_health(
                old.clone(),
                &Health::stalled(reasons::INVALID_SPEC, e.to_string()),
                generation,
            );
            write_status(api, ctx, obj, &old, &status).await?;
            return Ok(Action::await_change());
        }
    };

    let all_snapshots = ctx
        .snapshots
        .as_ref()
        .map(|s| s.state())
        .unwrap_or_default();
    let all_copies = ctx.copies.as_ref().map(|s| s.state()).unwrap_or_default();
    let mut runs = members(obj, &all_snapshots, &all_copies);
    let mut done = Outcomes::default();
    let snapshots: Api<ClusterSnapshot> = Api::namespaced(ctx.client.clone(), &namespace);
    let copies: Api<SnapshotCopy> = Api::namespaced(ctx.client.clone(), &namespace);

    // Runs: at most one now, named for its scheduled time.
    let since = old
        .last_schedule_time
        .or_else(|| {
            // A new schedule counts from its creation, read on the schedule clock.
            let created = obj.meta().creation_timestamp.as_ref()?.0;
            Some(clock.at(created))
        })
        .unwrap_or(now);
    let deadline = obj
        .spec
        .starting_deadline_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64));
    let suspended = obj.spec.suspend;
    let due = schedule::due(&cron, since, now, deadline);
    let mut status = old.clone();
    if !suspended {
        done.missed = due.missed;
        if let Some(at) = due.run {
            let run_name = schedule::run_name(&name, at);
            let taken = all_snapshots.iter().find(|cs| {
                cs.namespace().as_deref() == Some(&namespace) && cs.name_any() == run_name
            });
            let creating = runs.iter().any(|m| m.run.state == RunState::Creating);
            let forbid = obj.spec.concurrency_policy == ConcurrencyPolicy::Forbid;
            if let Some(cs) = taken {
                if cs.labels().get(SCHEDULE_LABEL) != Some(&name) {
                    // Someone else's object has the run's name: never touched.
                    publish(
                        ctx,
                        obj,
                        EventType::Warning,
                        "RunNameTaken",
                        format!(
                            "the run at {at} is not made: ClusterSnapshot {run_name} exists and is not labelled {SCHEDULE_LABEL}={name}"
                        ),
                    )
                    .await;
                    done.failed.push(run_name);
                }
                // Else made already (by this process before a restart, or another replica).
            } else if forbid && creating {
                done.skipped = Some(run_name);
            } else {
                let made = create_run(&snapshots, obj, &run_name, at).await?;
                if made && std::env::var_os(HOLD_AFTER_RUN_CREATE).is_some() {
                    // Tests only: the crash window between a run's create and the
                    // status write that records it.
                    tracing::warn!(run = %run_name, "{HOLD_AFTER_RUN_CREATE} is set: holding before the status write");
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if made {
                    done.created = Some(run_name.clone());
                }
            }
        }
        if let Some(last) = due.last {
            status.last_schedule_time = Some(last);
        }
    }
    status.next_schedule_time = if suspended { None } else { due.next };

    // Copies of Ready runs, one per template.
    for m in runs.iter().filter(|m| m.run.state == RunState::Ready) {
        for template in &obj.spec.copy_templates {
            let copy_name = schedule::copy_name(&m.run.name, &template.name);
            let exists = all_copies
                .iter()
                .any(|c| c.namespace().as_deref() == Some(&namespace) && c.name_any() == copy_name);
            if exists {
                continue;
            }
            if create_copy(&copies, obj, &m.run.name, &copy_name, template).await? {
                done.copies.push(copy_name);
            }
        }
    }
    // A copy just created reads its snapshot from now on.
    for m in &mut runs {
        if done.copies.iter().any(|c| {
            obj.spec
                .copy_templates
                .iter()
                .any(|t| schedule::copy_name(&m.run.name, &t.name) == *c)
        }) {
            m.run.in_use = true;
        }
    }

    // Retention: objects of this schedule only (their finalizers decide what happens on
    // AWS); the copies made by copyTemplates go with their snapshot.
    if let Some(retention) = &retention {
        let list: Vec<Run> = runs.iter().map(|m| m.run.clone()).collect();
        let prune = schedule::prune(&list, retention, &cron.zone, now);
        for m in runs.iter().filter(|m| prune.contains(&m.run.name)) {
            let why = match m.run.state {
                RunState::Failed => "failedHistoryLimit".to_string(),
                _ => "retention".to_string(),
            };
            delete_run(&snapshots, &copies, &all_copies, obj, &m.object).await?;
            done.pruned.push((m.run.name.clone(), why));
        }
        runs.retain(|m| !prune.contains(&m.run.name));
    }

    // Failed runs, each counted once.
    for m in runs.iter().filter(|m| m.run.state == RunState::Failed) {
        let uid = m.object.uid().unwrap_or_default();
        if ctx.schedule_failures.first(&uid) && failed_since_start(&m.object, ctx) {
            done.failed.push(m.run.name.clone());
        }
    }

    let ready: Vec<&Member> = runs
        .iter()
        .filter(|m| m.run.state == RunState::Ready)
        .collect();
    status.snapshots = ready.len() as i64;
    if let Some(newest) = ready.last() {
        status.last_snapshot = Some(newest.run.name.clone());
    }
    let newest_success = ready.iter().filter_map(|m| ready_since(&m.object)).max();
    status.last_successful_time = match (status.last_successful_time, newest_success) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut active: Vec<String> = runs
        .iter()
        .filter(|m| m.run.state == RunState::Creating)
        .map(|m| m.run.name.clone())
        .collect();
    if let Some(created) = &done.created {
        active.push(created.clone());
    }
    status.active = active;
    let missed_now = done.missed + u32::from(done.skipped.is_some());
    status.missed_runs += i64::from(missed_now);

    let newest_finished = runs
        .iter()
        .rev()
        .find(|m| m.run.state != RunState::Creating);
    let health = match newest_finished {
        Some(m) if m.run.state == RunState::Failed => Health::stalled(
            "RunFailed",
            format!(
                "the newest finished run, ClusterSnapshot {}, failed: see its conditions",
                m.run.name
            ),
        ),
        _ if suspended => Health::ready(format!("suspended; {} snapshots kept", ready.len())),
        _ => Health::ready(match status.next_schedule_time {
            Some(next) => format!("next run at {next}; {} snapshots kept", ready.len()),
            None => format!(
                "the schedule names no future time; {} snapshots kept",
                ready.len()
            ),
        }),
    };
    let status = with_health(status, &health, generation);
    write_status(api, ctx, obj, &old, &status).await?;
    report(ctx, obj, &done, due.run).await;

    Ok(match status.next_schedule_time {
        Some(next) => Action::requeue(clock.until(now, next).max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

/// Whether a failed run failed while this process ran (so a restart does not count
/// the failures the last process counted).
fn failed_since_start(cs: &ClusterSnapshot, ctx: &Context) -> bool {
    let status = cs.status.clone().unwrap_or_default();
    let when = status
        .condition(conditions::STALLED)
        .filter(|c| c.status == "True")
        .or_else(|| status.condition(conditions::READY))
        .map(|c| c.last_transition_time.0);
    when.is_none_or(|t| t >= ctx.started)
}

/// Creates a run's ClusterSnapshot; false if it exists already (AlreadyExists: made by
/// an earlier attempt, so never twice).
async fn create_run(
    api: &Api<ClusterSnapshot>,
    schedule: &SnapshotSchedule,
    name: &str,
    at: Timestamp,
) -> Result<bool, Error> {
    let template = &schedule.spec.snapshot_template;
    let mut labels: BTreeMap<String, String> = template.metadata.labels.clone();
    labels.insert(SCHEDULE_LABEL.to_string(), schedule.name_any());
    let mut annotations: BTreeMap<String, String> = template.metadata.annotations.clone();
    annotations.insert(SCHEDULED_TIME_ANNOTATION.to_string(), at.to_string());
    let cs = ClusterSnapshot {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: schedule.snapshot_spec(),
        status: None,
    };
    match api.create(&PostParams::default(), &cs).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates the copy of a Ready run for one template; false if it exists already.
async fn create_copy(
    api: &Api<SnapshotCopy>,
    schedule: &SnapshotSchedule,
    run: &str,
    name: &str,
    template: &CopyTemplate,
) -> Result<bool, Error> {
    let labels = BTreeMap::from([
        (SCHEDULE_LABEL.to_string(), schedule.name_any()),
        (SCHEDULE_RUN_LABEL.to_string(), run.to_string()),
    ]);
    let copy = SnapshotCopy {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: schedule.copy_spec(template, run),
        status: None,
    };
    match api.create(&PostParams::default(), &copy).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a pruned run: first the copies made for it (labelled for this schedule and
/// run), then its ClusterSnapshot, each only if it is still the object that was judged
/// (UID precondition).
async fn delete_run(
    snapshots: &Api<ClusterSnapshot>,
    copies: &Api<SnapshotCopy>,
    all_copies: &[Arc<SnapshotCopy>],
    schedule: &SnapshotSchedule,
    run: &ClusterSnapshot,
) -> Result<(), Error> {
    let name = schedule.name_any();
    let run_name = run.name_any();
    for c in all_copies.iter().filter(|c| {
        c.namespace() == run.namespace()
            && c.labels().get(SCHEDULE_LABEL) == Some(&name)
            && c.labels().get(SCHEDULE_RUN_LABEL) == Some(&run_name)
            && c.meta().deletion_timestamp.is_none()
    }) {
        delete_exactly(copies, c.as_ref()).await?;
    }
    delete_exactly(snapshots, run).await
}

async fn delete_exactly<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.meta().uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&obj.name_any(), &params).await {
        Ok(_) => Ok(()),
        // Gone already, or replaced by another object of that name (not ours to delete).
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Events and run counters for what one reconcile did.
async fn report(ctx: &Context, obj: &SnapshotSchedule, done: &Outcomes, at: Option<Timestamp>) {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let count = |outcome: &str, n: usize| {
        ctx.metrics
            .schedule_runs(&namespace, &name, outcome, n as u64)
    };
    if let Some(run) = &done.created {
        count("created", 1);
        let at = at.map(|t| t.to_string()).unwrap_or_default();
        publish(
            ctx,
            obj,
            EventType::Normal,
            "RunCreated",
            format!("created ClusterSnapshot {run} for the run at {at}"),
        )
        .await;
    }
    if let Some(run) = &done.skipped {
        count("skipped", 1);
        publish(
            ctx,
            obj,
            EventType::Normal,
            "RunSkipped",
            format!(
                "skipped run {run}: the previous run is still creating (concurrencyPolicy Forbid)"
            ),
        )
        .await;
    }
    if done.missed > 0 {
        count("missed", done.missed as usize);
        publish(
            ctx,
            obj,
            EventType::Warning,
            "RunsMissed",
            format!(
                "{} scheduled run(s) were not made (the operator was not running, or past startingDeadlineSeconds)",
                done.missed
            ),
        )
        .await;
    }
    for run in &done.failed {
        count("failed", 1);
        publish(
            ctx,
            obj,
            EventType::Warning,
            "RunFailed",
            format!("run {run} failed: see the ClusterSnapshot's conditions"),
        )
        .await;
    }
    for copy in &done.copies {
        publish(
            ctx,
            obj,
            EventType::Normal,
            "CopyCreated",
            format!("created SnapshotCopy {copy}"),
        )
        .await;
    }
    for (run, why) in &done.pruned {
        publish(
            ctx,
            obj,
            EventType::Normal,
            "Pruned",
            format!("deleted ClusterSnapshot {run} and its copies ({why})"),
        )
        .await;
    }
}

async fn publish(
    ctx: &Context,
    obj: &SnapshotSchedule,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Schedule".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "could not record an event");
    }
}

/// The new status with conditions for `health`, keeping transition times.
fn with_health(
    mut status: SnapshotScheduleStatus,
    health: &Health,
    generation: Option<i64>,
) -> SnapshotScheduleStatus {
    status.observed_generation = generation;
    status.conditions =
        conditions::conditions(&status.conditions, health, generation, Timestamp::now());
    status
}

/// Writes the status by server-side apply when it changed, with an Event when the
/// Ready reason changed.
async fn write_status(
    api: &Api<SnapshotSchedule>,
    ctx: &Context,
    obj: &SnapshotSchedule,
    old: &SnapshotScheduleStatus,
    new: &SnapshotScheduleStatus,
) -> Result<(), kube::Error> {
    if old == new {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "dbsnapshot.io/v1alpha1",
        "kind": KIND,
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    let reason = |s: &SnapshotScheduleStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == conditions::READY)
            .map(|c| (c.reason.clone(), c.status.clone()))
    };
    if reason(old) != reason(new)
        && let Some(stalled) = new
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::STALLED && c.status == "True")
    {
        publish(
            ctx,
            obj,
            EventType::Warning,
            &stalled.reason,
            stalled.message.clone(),
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_runs_faster_from_its_origin() {
        let origin: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = ScheduleClock {
            origin,
            speed: 60.0,
        };
        let real: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(clock.at(real), "2026-01-01T00:10:00Z".parse().unwrap());
        let now = clock.at(real);
        let next: Timestamp = "2026-01-01T00:11:00Z".parse().unwrap();
        assert_eq!(clock.until(now, next), Duration::from_secs(1));
        let real_clock = ScheduleClock::default();
        assert_eq!(real_clock.at(real), real);
        assert_eq!(real_clock.until(now, next), Duration::from_secs(60));
    }

    #[test]
    fn run_states_follow_the_snapshot() {
        let mut s = SnapshotStatus::default();
        assert_eq!(run_state(&s), RunState::Creating);
        s.phase = Some(Phase::Creating);
        assert_eq!(run_state(&s), RunState::Creating);
        s.phase = Some(Phase::Available);
        s.ready_to_use = Some(true);
        assert_eq!(run_state(&s), RunState::Ready);
        s.phase = Some(Phase::Failed);
        assert_eq!(run_state(&s), RunState::Failed);
        let mut stalled = SnapshotStatus::default();
        stalled.phase = Some(Phase::Pending);
        stalled.conditions = conditions::conditions(
            &[],
            &Health::stalled(reasons::NOT_OWNED, "x"),
            Some(1),
            Timestamp::now(),
        );
        assert_eq!(run_state(&stalled), RunState::Failed);
    }
}
