//! Shared pollers: one per (region, engine, source cluster). A single paginated describe
//! of the source's manual snapshots refreshes every snapshot of it that objects are
//! waiting on; reconcilers read from the result; describes wanted at the same time are
//! made once; the next look is scheduled from what AWS reports (see
//! [`crate::lifecycle::batch_next_poll`]), and the objects whose snapshot changed are
//! woken. Does IO (AWS, through an engine).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::Engine;
use crate::engine::{EngineError, Snapshot, SnapshotEngine, SnapshotState, SourceRef};
use crate::lifecycle::{self, Member, Timing};
use crate::metrics::Metrics;

/// Which snapshots one poller lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// The account and the role assumed there (`None`: the operator's own account): a
    /// changed role makes another group, with the new role's client.
    pub account: Option<crate::engine::AccountRole>,
    pub engine: Engine,
    pub region: String,
    pub source: SourceRef,
}

/// Wakes the object waiting on a snapshot (queues a reconcile).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// What the last listing says of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed {
    Present(Box<Snapshot>),
    /// Not in a complete listing (perhaps created after it: confirm before believing).
    Absent,
}

pub struct Pollers {
    timing: Timing,
    metrics: Arc<Metrics>,
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
}

struct Group {
    key: GroupKey,
    engine: Arc<dyn SnapshotEngine>,
    state: Mutex<GroupState>,
    /// Held while listing, so that concurrent wishes to list make one call.
    listing: tokio::sync::Mutex<()>,
    notify: Notify,
}

#[derive(Default)]
struct GroupState {
    /// Snapshots by identifier, with when they were seen.
    snapshots: HashMap<String, (Snapshot, Instant)>,
    /// When the last complete listing was taken (began).
    listed_at: Option<Instant>,
    /// When the last listing finished.
    finished_at: Option<Instant>,
    /// Objects waiting for their snapshot to leave the creating state, with the progress
    /// they were last woken for.
    watchers: HashMap<String, (Wake, Option<i64>)>,
    /// When the watchers' snapshots are due a look.
    next_poll: Option<Instant>,
    task_running: bool,
}

/// Where a snapshot is kept in a group: AWS compares identifiers regardless of case
/// (and stores DocumentDB's and ElastiCache's lowercased), so the group does too.
fn key_of(identifier: &str) -> String {
    identifier.to_ascii_lowercase()
}

/// How long ago AWS created the snapshot.
pub fn elapsed(s: &Snapshot) -> Option<Duration> {
    let created: Timestamp = s.created.as_deref()?.parse().ok()?;
    let secs = Timestamp::now().duration_since(created).as_secs_f64();
    Some(Duration::from_secs_f64(secs.max(0.0)))
}

impl GroupState {
    fn fresh(&self, max_age: Duration) -> bool {
        self.listed_at.is_some_and(|t| t.elapsed() <= max_age)
    }

    fn lookup(&self, identifier: &str) -> Listed {
        match self.snapshots.get(&key_of(identifier)) {
            Some((s, _)) => Listed::Present(Box::new(s.clone())),
            None => Listed::Absent,
        }
    }

    /// When the watched snapshots are next due a look, from the last listing (or the
    /// create call's answer for snapshots not listed yet).
    fn schedule(&self, timing: &Timing) -> Option<Instant> {
        if self.watchers.is_empty() {
            return None;
        }
        let now = Instant::now();
        let members: Vec<Member> = self
            .watchers
            .keys()
            .filter_map(|id| self.snapshots.get(id))
            .map(|(s, seen)| {
                let age = now.saturating_duration_since(*seen);
                let elapsed = elapsed(s);
                Member {
                    estimate: lifecycle::aws_estimate(s, elapsed.map(|e| e.saturating_sub(age)))
                        .map(|e| e.saturating_sub(age)),
                    elapsed,
                }
            })
            .collect();
        let wait = lifecycle::batch_next_poll(&members, timing);
        let earliest = self.listed_at.map_or(now, |t| t + timing.batch_floor);
        Some((now + wait).max(earliest))
    }
}

impl Pollers {
    pub fn new(timing: Timing, metrics: Arc<Metrics>) -> Self {
        Self {
            timing,
            metrics,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// How old a listing may be for a reconcile to read from it: the poll loop keeps
    /// listings of watched snapshots younger (one per `max_poll` at least), so a
    /// reconcile on its own (a safety-net requeue, a resync) rarely lists again.
    pub fn max_age(&self) -> Duration {
        self.timing.max_poll.max(self.timing.batch_floor) * 2
    }

    fn group(&self, key: &GroupKey, engine: &Arc<dyn SnapshotEngine>) -> Arc<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Group {
                    key: key.clone(),
                    engine: engine.clone(),
                    state: Mutex::new(GroupState::default()),
                    listing: tokio::sync::Mutex::new(()),
                    notify: Notify::new(),
                })
            })
            .clone()
    }

    /// What a listing no older than `max_age` says of `identifier`; lists (once, for
    /// every caller waiting at the same time) when the last is older.
    pub async fn view(
        &self,
        key: &GroupKey,
        engine: &Arc<dyn SnapshotEngine>,
        identifier: &str,
        max_age: Duration,
    ) -> Result<Listed, EngineError> {
        let group = self.group(key, engine);
        {
            let state = group.state();
            if state.fresh(max_age) {
                return Ok(state.lookup(identifier));
            }
        }
        group.refresh(&self.metrics, max_age).await?;
        Ok(group.state().lookup(identifier))
    }

    /// Wakes the object through `wake` once its snapshot is no longer being created.
    /// `seen`: the snapshot as the caller last saw it (the create call's answer, say),
    /// used until a listing includes it.
    pub fn watch(
        self: &Arc<Self>,
        key: &GroupKey,
        engine: &Arc<dyn SnapshotEngine>,
        seen: &Snapshot,
        wake: Wake,
    ) {
        let group = self.group(key, engine);
        let start = {
            let mut state = group.state();
            state
                .snapshots
                .entry(key_of(&seen.identifier))
                .or_insert_with(|| (seen.clone(), Instant::now()));
            state
                .watchers
                .insert(key_of(&seen.identifier), (wake, seen.progress.percent));
            let due = state.schedule(&self.timing);
            if let (Some(due), Some(current)) = (due, state.next_poll)
                && due < current
            {
                state.next_poll = Some(due);
                group.notify.notify_one();
            }
            !std::mem::replace(&mut state.task_running, true)
        };
        if start {
            let pollers = self.clone();
            tokio::spawn(async move { pollers.run(group).await });
        }
    }

    /// The group (of `engine`, in `region` and the account of `account`) whose listings
    /// hold `identifier`, if any: a copy being deleted after its source ClusterSnapshot
    /// went finds its source cluster's listing so.
    pub fn group_holding(
        &self,
        account: Option<&crate::engine::AccountRole>,
        engine: crate::api::Engine,
        region: &str,
        identifier: &str,
    ) -> Option<GroupKey> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let id = key_of(identifier);
        groups
            .values()
            .find(|g| {
                g.key.account.as_ref() == account
                    && g.key.engine == engine
                    && g.key.region == region
                    && g.state().snapshots.contains_key(&id)
            })
            .map(|g| g.key.clone())
    }

    /// Stops waking the object for this snapshot.
    /// Stops waking anyone for `identifier` in every group (its object cannot use its
    /// account now).
    pub fn forget(&self, identifier: &str) {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        for group in groups.values() {
            group.state().watchers.remove(&key_of(identifier));
        }
    }

    pub fn unwatch(&self, key: &GroupKey, identifier: &str) {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.get(key) {
            group.state().watchers.remove(&key_of(identifier));
        }
    }

    /// Records what a mutation did (the snapshot is being deleted, say), so that later
    /// views do not show the state before it.
    pub fn record(&self, key: &GroupKey, snapshot: &Snapshot) {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.get(key) {
            group.state().snapshots.insert(
                key_of(&snapshot.identifier),
                (snapshot.clone(), Instant::now()),
            );
        }
    }

    /// The poll loop of one group: sleeps until the watched snapshots are due, lists,
    /// wakes the objects whose snapshot is done; ends when nobody watches.
    async fn run(self: Arc<Self>, group: Arc<Group>) {
        tracing::debug!(source = %group.key.source.id, engine = %group.key.engine, region = %group.key.region, "poller started");
        loop {
            let due = {
                let mut state = group.state();
                let due = state.schedule(&self.timing);
                state.next_poll = due;
                if due.is_none() {
                    state.task_running = false;
                    break;
                }
                due
            };
            if let Some(due) = due {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = group.notify.notified() => continue,
                }
            }
            // Due now: a listing at most a floor old will do.
            if let Err(e) = group.refresh(&self.metrics, Duration::ZERO).await {
                tracing::warn!(source = %group.key.source.id, engine = %group.key.engine, error = %e, "listing snapshots failed; trying again later");
                tokio::time::sleep(self.timing.batch_floor).await;
                continue;
            }
            // Wake the objects whose snapshot is done (they stop being watched) or moved
            // on (so that their status shows the progress).
            let wakes: Vec<Wake> = {
                let mut guard = group.state();
                let state = &mut *guard;
                let mut wakes = Vec::new();
                state
                    .watchers
                    .retain(|id, (wake, percent)| match state.snapshots.get(id) {
                        Some((s, _)) if s.state() == SnapshotState::Creating => {
                            if s.progress.percent != *percent {
                                *percent = s.progress.percent;
                                wakes.push(wake.clone());
                            }
                            true
                        }
                        _ => {
                            wakes.push(wake.clone());
                            false
                        }
                    });
                wakes
            };
            for wake in wakes {
                wake();
            }
        }
        tracing::debug!(source = %group.key.source.id, engine = %group.key.engine, "poller idle");
    }
}

impl Group {
    fn state(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lists the source's snapshots, unless a listing finished while this caller waited
    /// for its turn (callers at the same time share one) or one is at most `max_age` old.
    async fn refresh(&self, metrics: &Metrics, max_age: Duration) -> Result<(), EngineError> {
        let asked = Instant::now();
        let _turn = self.listing.lock().await;
        {
            let state = self.state();
            if state.finished_at.is_some_and(|t| t >= asked) || state.fresh(max_age) {
                return Ok(());
            }
        }
        let started = Instant::now();
        let listed = self.engine.list(&self.key.source).await?;
        metrics.batch_poll(self.key.engine.as_str(), &self.key.region);
        tracing::debug!(source = %self.key.source.id, engine = %self.key.engine, snapshots = listed.len(), max_age = ?max_age, "listed a source's snapshots");
        let mut state = self.state();
        let mut snapshots: HashMap<String, (Snapshot, Instant)> = listed
            .into_iter()
            .map(|s| (key_of(&s.identifier), (s, started)))
            .collect();
        // What was seen after the listing began (a create's answer, a full look after a
        // mutation) is newer than the listing: it stays.
        for (id, (s, seen)) in state.snapshots.drain() {
            if seen > started {
                snapshots.insert(id, (s, seen));
            }
        }
        state.snapshots = snapshots;
        state.listed_at = Some(started);
        state.finished_at = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::engine::{CopyRequest, CreateRequest, ErrorClass};

    /// A source whose listing takes a while and is counted.
    #[derive(Default)]
    struct Source {
        lists: AtomicUsize,
        snapshots: Mutex<Vec<Snapshot>>,
    }

    fn unused<T>() -> Result<T, EngineError> {
        Err(EngineError::new(
            ErrorClass::Terminal,
            "test",
            "unused",
            "not used",
        ))
    }

    #[async_trait]
    impl SnapshotEngine for Source {
        fn engine(&self) -> Engine {
            Engine::Elasticache
        }
        async fn describe(&self, _: &str, _: bool) -> Result<Option<Snapshot>, EngineError> {
            unused()
        }
        async fn list(&self, _: &SourceRef) -> Result<Vec<Snapshot>, EngineError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(self.snapshots.lock().unwrap().clone())
        }
        async fn create(&self, _: &CreateRequest) -> Result<Snapshot, EngineError> {
            unused()
        }
        async fn share(&self, _: &Snapshot, _: &[String], _: &[String]) -> Result<(), EngineError> {
            unused()
        }
        async fn tag(
            &self,
            _: &Snapshot,
            _: &crate::api::Tags,
            _: &[String],
        ) -> Result<(), EngineError> {
            unused()
        }
        async fn set_retention(&self, _: &Snapshot, _: i32) -> Result<(), EngineError> {
            unused()
        }
        async fn delete(&self, _: &Snapshot) -> Result<(), EngineError> {
            unused()
        }
        async fn copy(&self, _: &CopyRequest) -> Result<Snapshot, EngineError> {
            unused()
        }
    }

    fn snapshot(id: &str, status: &str) -> Snapshot {
        Snapshot {
            identifier: id.into(),
            aws_status: status.into(),
            ..Snapshot::default()
        }
    }

    fn key() -> GroupKey {
        GroupKey {
            account: None,
            engine: Engine::Elasticache,
            region: "us-east-1".into(),
            source: SourceRef {
                id: "sessions".into(),
                replication_group: true,
            },
        }
    }

    fn timing() -> Timing {
        Timing {
            batch_floor: Duration::from_secs(1),
            no_estimate_poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(5),
            ..Timing::default()
        }
    }

    #[tokio::test]
    async fn views_wanted_together_make_one_listing() {
        let source = Arc::new(Source::default());
        *source.snapshots.lock().unwrap() = (0..20)
            .map(|i| snapshot(&format!("s{i}"), "available"))
            .collect();
        let engine: Arc<dyn SnapshotEngine> = source.clone();
        let pollers = Arc::new(Pollers::new(timing(), Arc::new(Metrics::default())));
        let views: Vec<_> = (0..20)
            .map(|i| {
                let (pollers, engine) = (pollers.clone(), engine.clone());
                tokio::spawn(async move {
                    pollers
                        .view(&key(), &engine, &format!("s{i}"), Duration::ZERO)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for (i, view) in views.into_iter().enumerate() {
            let Listed::Present(s) = view.await.unwrap() else {
                panic!("s{i} not listed");
            };
            assert_eq!(s.identifier, format!("s{i}"));
        }
        let lists = source.lists.load(Ordering::SeqCst);
        assert_eq!(lists, 1, "{lists} listings for 20 views at once");
        // A recent listing serves later views; one not listed is Absent.
        let before = source.lists.load(Ordering::SeqCst);
        let v = pollers
            .view(&key(), &engine, "unknown", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(v, Listed::Absent);
        assert_eq!(source.lists.load(Ordering::SeqCst), before);
    }

    #[tokio::test]
    async fn watchers_are_woken_on_progress_and_when_done_then_the_poller_idles() {
        let source = Arc::new(Source::default());
        *source.snapshots.lock().unwrap() =
            vec![snapshot("a", "creating"), snapshot("b", "creating")];
        let engine: Arc<dyn SnapshotEngine> = source.clone();
        let pollers = Arc::new(Pollers::new(timing(), Arc::new(Metrics::default())));
        let woken: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        for id in ["a", "b"] {
            let woken = woken.clone();
            pollers.watch(
                &key(),
                &engine,
                &snapshot(id, "creating"),
                Arc::new(move || woken.lock().unwrap().push(id)),
            );
        }
        // No progress and not done: nobody is woken, the poller keeps looking.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(woken.lock().unwrap().is_empty());
        assert!(source.lists.load(Ordering::SeqCst) >= 1);
        // "a" moves on, "b" finishes.
        {
            let mut s = source.snapshots.lock().unwrap();
            s[0].progress.percent = Some(40);
            s[1].aws_status = "available".into();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut got = woken.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec!["a", "b"]);
        // "a" finishes too; then nobody watches and the poller stops listing.
        source.snapshots.lock().unwrap()[0].aws_status = "available".into();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(woken.lock().unwrap().len(), 3);
        let lists = source.lists.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            source.lists.load(Ordering::SeqCst),
            lists,
            "an idle poller lists nothing"
        );
        let group = pollers.group(&key(), &engine);
        assert!(!group.state().task_running);
    }
}
