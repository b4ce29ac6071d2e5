//! The SnapshotSchedule controller: makes a ClusterSnapshot per scheduled run, a
//! SnapshotCopy per copy template once a run is Ready, prunes runs by retention and
//! writes status. It owns Kubernetes objects only: the ClusterSnapshot and SnapshotCopy
//! controllers make every AWS call. What to do is decided by `crate::schedule` (pure);
//! this module reads the caches, acts, and requeues exactly at the next scheduled time.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::{Context, Error};
use crate::api::conditions::{self, Health, reasons};
use crate::api::snapshot_schedule::{ConcurrencyPolicy, CopyTemplate};
use crate::api::validation::{SpecError, validate_snapshot_schedule};
use crate::api::{
    ClusterSnapshot, Phase, SCHEDULE_LABEL, SCHEDULED_TIME_ANNOTATION, SnapshotCopy,
    SnapshotSchedule, SnapshotScheduleStatus, SnapshotStatus,
};
use crate::schedule::{self, Clock, Retention, Run, RunState};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "SnapshotSchedule";

/// Condition reason (Stalled) and Event reason: the newest finished run failed.
pub const RUN_FAILED: &str = "RunFailed";
/// Condition reason (Stalled): the run due could not be created (a quota, a webhook,
/// permissions: the message quotes the API server); tried again within 30 s.
pub const RUN_NOT_CREATED: &str = "RunNotCreated";

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
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a run's failure is still to be counted.
    fn is_new(&self, uid: &str) -> bool {
        !self.set().contains(uid)
    }

    /// The run's failure is counted.
    fn counted(&self, uid: &str) {
        self.set().insert(uid.to_string());
    }

    /// The run is gone.
    fn forget(&self, uid: &str) {
        self.set().remove(uid);
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
    /// Runs that failed (name, UID), or could not be made (no UID).
    failed: Vec<(String, String)>,
    pruned: Vec<(String, String)>,
    copies: Vec<String>,
}

pub async fn reconcile(obj: Arc<SnapshotSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_plain(obj, ctx, apply).await
}

async fn apply(
    api: &Api<SnapshotSchedule>,
    cached: &SnapshotSchedule,
    ctx: &Context,
) -> Result<Action, Error> {
    let clock = ctx.schedule_clock;
    // The caches of runs and copies, once they hold their first full list (right after
    // a start they may be empty: deciding on them would make a run Forbid skips, or
    // prune a snapshot a copy is reading).
    let (Some(snapshot_store), Some(copy_store)) = (&ctx.snapshots, &ctx.copies) else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    // A waiter can miss the wake-up of a store that becomes ready while it waits (see
    // `run`): wait briefly and look again soon, so that a start is not held up (a
    // schedule held past its starting deadline would count the run as missed).
    for ready in [
        Box::pin(snapshot_store.wait_until_ready())
            as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>,
        Box::pin(copy_store.wait_until_ready()),
    ] {
        if !tokio::time::timeout(Duration::from_millis(500), ready)
            .await
            .is_ok_and(|r| r.is_ok())
        {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
    }
    // The schedule as the API server has it now: its status records the runs made, and
    // the cache may not have the last write yet (a run's watch event can wake this
    // reconcile before the status write that recorded the run is back).
    let Some(obj) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if obj.uid() != cached.uid() || obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let obj = &obj;
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let generation = obj.meta().generation;
    let old = obj.status.clone().unwrap_or_default();
    let now = clock.now();

    let checked = check(obj).and_then(|c| Ok((c, retention(obj)?)));
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

    let all_snapshots = snapshot_store.state();
    let all_copies = copy_store.state();
    let mut runs = members(obj, &all_snapshots, &all_copies);
    let mut done = Outcomes::default();
    let snapshots: Api<ClusterSnapshot> = Api::namespaced(ctx.client.clone(), &namespace);
    let copies: Api<SnapshotCopy> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = old.clone();

    // Failed runs: counted (once each) and shown before retention may prune them.
    for m in runs.iter().filter(|m| m.run.state == RunState::Failed) {
        let uid = m.object.uid().unwrap_or_default();
        if failed_since_start(&m.object, ctx) && ctx.schedule_failures.is_new(&uid) {
            done.failed.push((m.run.name.clone(), uid));
        }
    }
    let newest_failed = runs
        .iter()
        .rev()
        .find(|m| m.run.state != RunState::Creating)
        .filter(|m| m.run.state == RunState::Failed)
        .map(|m| m.run.name.clone());

    // Retention first (a run it drops gets no copy, and a create refused by a quota
    // does not keep old runs from going): objects of this schedule only, their
    // finalizers decide what happens on AWS; the copies made by copyTemplates go with
    // their snapshot.
    let mut pruned = Vec::new();
    if let Some(retention) = &retention {
        let list: Vec<Run> = runs.iter().map(|m| m.run.clone()).collect();
        pruned = schedule::prune(&list, retention, &cron.zone, now);
        for m in runs.iter().filter(|m| pruned.contains(&m.run.name)) {
            let why = match m.run.state {
                RunState::Failed => {
                    format!("failedHistoryLimit {}", retention.failed_history_limit)
                }
                _ => "retention".to_string(),
            };
            delete_run(&snapshots, &copies, &all_copies, obj, &m.object).await?;
            ctx.schedule_failures
                .forget(&m.object.uid().unwrap_or_default());
            done.pruned.push((m.run.name.clone(), why));
        }
        runs.retain(|m| !pruned.contains(&m.run.name));
    }

    // Copies of the Ready runs kept, one per template.
    for m in runs.iter().filter(|m| m.run.state == RunState::Ready) {
        for template in &obj.spec.copy_templates {
            let copy_name = schedule::copy_name(&m.run.name, &template.name);
            let exists = all_copies.iter().any(|c| {
                c.namespace().as_deref() == Some(namespace.as_str()) && c.name_any() == copy_name
            });
            // In the run's account (the template's may have changed since the run).
            let account = m.object.spec.account.clone();
            if !exists
                && create_copy(
                    &copies,
                    obj,
                    &m.run.name,
                    &copy_name,
                    template,
                    account,
                    &ctx.shard_keys,
                )
                .await?
            {
                done.copies.push(copy_name);
            }
        }
    }

    // Runs: at most one now, named for its scheduled time. While suspended the
    // scheduled times pass unmade and uncounted (as they would without the schedule).
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
    let mut not_created = None;
    if suspended {
        if let Some(last) = due.last {
            status.last_schedule_time = Some(last);
        }
    } else {
        let mut record = true;
        if let Some(at) = due.run {
            let run_name = schedule::run_name(&name, at);
            let taken = all_snapshots.iter().find(|cs| {
                cs.namespace().as_deref() == Some(namespace.as_str()) && cs.name_any() == run_name
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
                    done.failed.push((run_name, String::new()));
                } else {
                    // Made already (by this process before a restart, or by another
                    // replica): never twice.
                    tracing::debug!(schedule = %name, run = %run_name, "the run exists already");
                }
            } else if forbid && creating {
                done.skipped = Some(run_name);
            } else {
                match create_run(&snapshots, obj, &run_name, at, &ctx.shard_keys).await {
                    Ok(true) => {
                        #[cfg(debug_assertions)]
                        if std::env::var_os(HOLD_AFTER_RUN_CREATE).is_some() {
                            // Tests only: the crash window between a run's create and
                            // the status write that records it.
                            tracing::warn!(run = %run_name, "{HOLD_AFTER_RUN_CREATE} is set: holding before the status write");
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        ctx.metrics.schedule_runs(&namespace, &name, "created", 1);
                        publish(
                            ctx,
                            obj,
                            EventType::Normal,
                            "RunCreated",
                            format!("created ClusterSnapshot {run_name} for the run at {at}"),
                        )
                        .await;
                        done.created = Some(run_name);
                    }
                    Ok(false) => {
                        tracing::debug!(schedule = %name, run = %run_name, "the run exists already");
                    }
                    Err(e) => {
                        // Not recorded: the run is tried again (within the deadline).
                        record = false;
                        not_created = Some(format!(
                            "could not create ClusterSnapshot {run_name} for the run at {at}: {e}"
                        ));
                    }
                }
            }
        }
        if record {
            done.missed = due.missed;
            if let Some(last) = due.last {
                status.last_schedule_time = Some(last);
            }
        }
    }
    status.next_schedule_time = if suspended { None } else { due.next };

    // Status: what is kept now.
    let ready: Vec<&Member> = runs
        .iter()
        .filter(|m| m.run.state == RunState::Ready)
        .collect();
    status.snapshots = ready.len() as i64;
    status.last_snapshot = ready.last().map(|m| m.run.name.clone());
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

    let health = if let Some(message) = &not_created {
        Health::stalled(RUN_NOT_CREATED, message.clone())
    } else if let Some(run) = &newest_failed {
        let pruned_note = if pruned.contains(run) {
            " (deleted since, by failedHistoryLimit)"
        } else {
            ""
        };
        Health::stalled(
            RUN_FAILED,
            format!(
                "the newest finished run, ClusterSnapshot {run}, failed{pruned_note}: see its conditions and events"
            ),
        )
    } else if suspended {
        Health::ready(format!("suspended; {} snapshots kept", ready.len()))
    } else {
        Health::ready(match status.next_schedule_time {
            Some(next) => format!("next run at {next}; {} snapshots kept", ready.len()),
            None => format!(
                "the schedule names no future time; {} snapshots kept",
                ready.len()
            ),
        })
    };
    let status = with_health(status, &health, generation);
    match write_status(api, ctx, obj, &old, &status).await {
        Ok(()) => {}
        // Another writer (a second replica, a reconcile on a newer view) got there
        // first: look again.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        Err(e) => return Err(e.into()),
    }
    report(ctx, obj, &done).await;

    // Wake at the next scheduled time (while suspended too: retention keeps working),
    // sooner after a create that failed.
    let next = due
        .next
        .map(|next| clock.until(now, next).max(Duration::from_millis(100)));
    Ok(match (not_created, next) {
        (Some(_), Some(next)) => Action::requeue(next.min(Duration::from_secs(30))),
        (Some(_), None) => Action::requeue(Duration::from_secs(30)),
        (None, Some(next)) => Action::requeue(next),
        (None, None) => Action::await_change(),
    })
}

/// The spec, checked: the schedule's clock, or the error naming the field.
fn check(obj: &SnapshotSchedule) -> Result<Clock, SpecError> {
    // The name is the value of each run's schedule label (at most 63 characters).
    if obj.name_any().len() > 63 {
        return Err(SpecError::new(
            "metadata.name",
            "is longer than 63 characters: it labels every run (dbsnapshot.io/schedule), and \
             label values are at most 63; use a shorter name",
        ));
    }
    validate_snapshot_schedule(&obj.spec)?;
    Clock::new(&obj.spec.schedule, obj.spec.time_zone.as_deref()).map_err(|e| {
        match e.split_once(": ") {
            Some((field, message)) => SpecError::new(field, message),
            None => SpecError::new("spec.schedule", e),
        }
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
    shard: &[String],
) -> Result<bool, Error> {
    let template = &schedule.spec.snapshot_template;
    let mut labels: BTreeMap<String, String> = template.metadata.labels.clone();
    crate::shard::follow_schedule(&mut labels, shard, schedule.labels());
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
    account: Option<String>,
    shard: &[String],
) -> Result<bool, Error> {
    let mut labels = BTreeMap::new();
    crate::shard::follow_schedule(&mut labels, shard, schedule.labels());
    labels.extend([
        (SCHEDULE_LABEL.to_string(), schedule.name_any()),
        (SCHEDULE_RUN_LABEL.to_string(), run.to_string()),
    ]);
    let copy = SnapshotCopy {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: crate::api::SnapshotCopySpec {
            account,
            ..schedule.copy_spec(template, run)
        },
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
async fn report(ctx: &Context, obj: &SnapshotSchedule, done: &Outcomes) {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let count = |outcome: &str, n: usize| {
        ctx.metrics
            .schedule_runs(&namespace, &name, outcome, n as u64)
    };
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
    for (run, uid) in &done.failed {
        count("failed", 1);
        if uid.is_empty() {
            continue; // said by its own event (RunNameTaken)
        }
        ctx.schedule_failures.counted(uid);
        publish(
            ctx,
            obj,
            EventType::Warning,
            RUN_FAILED,
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

/// A schedule Event's action: what the controller did (its reason says why or how).
fn schedule_action(reason: &str) -> &'static str {
    match reason {
        "RunCreated" | "RunNameTaken" => "CreateRun",
        "RunSkipped" => "SkipRun",
        "RunsMissed" => "CountMissedRuns",
        "CopyCreated" => "CreateCopy",
        "Pruned" => "PruneRun",
        RUN_FAILED => "CountFailedRun",
        // The schedule became Stalled: the run due was refused by the API server, or
        // the spec breaks a rule.
        RUN_NOT_CREATED => "CreateRun",
        reasons::INVALID_SPEC => "ValidateSpec",
        _ => "MarkStalled",
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
        action: schedule_action(reason).to_string(),
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
    super::turns::note_health(health);
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
    super::status::apply_status(api, obj, new).await?;
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

    #[test]
    fn schedule_events_are_named_after_what_was_done() {
        for (reason, action) in [
            ("RunCreated", "CreateRun"),
            ("RunNameTaken", "CreateRun"),
            ("RunSkipped", "SkipRun"),
            ("RunsMissed", "CountMissedRuns"),
            (RUN_FAILED, "CountFailedRun"),
            ("CopyCreated", "CreateCopy"),
            ("Pruned", "PruneRun"),
            (RUN_NOT_CREATED, "CreateRun"),
            ("InvalidSpec", "ValidateSpec"),
            ("Forbidden", "MarkStalled"),
        ] {
            assert_eq!(schedule_action(reason), action, "{reason}");
        }
    }
}
