//! The controllers' shared context: what a reconcile needs, each object's backoff and
//! what this process knows of each object's snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use super::poller;
use crate::api::MANAGER;
use crate::engine::Engines;
use crate::lifecycle::Timing;
use crate::metrics::Metrics;

/// A namespace's labels.
type Labels = std::collections::BTreeMap<String, String>;

/// How long a namespace's labels, once read, decide AWSAccount selectors.
pub const NAMESPACE_LABELS_TTL: Duration = Duration::from_secs(30);

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub engines: Engines,
    pub recorder: Recorder,
    pub timing: Timing,
    pub metrics: Arc<Metrics>,
    pub(super) failures: Backoffs,
    /// Set once the CRDs are found and the caches are synced.
    pub ready: Arc<AtomicBool>,
    /// Batched polling (`None`: each object describes its own snapshot).
    pub pollers: Option<Arc<poller::Pollers>>,
    /// Queues a ClusterSnapshot's reconcile (the pollers wake objects through it).
    pub wake_snapshot:
        Option<futures::channel::mpsc::UnboundedSender<ObjectRef<crate::api::ClusterSnapshot>>>,
    /// Queues a SnapshotCopy's reconcile (the pollers wake batched copies through it).
    pub wake_copy:
        Option<futures::channel::mpsc::UnboundedSender<ObjectRef<crate::api::SnapshotCopy>>>,
    /// What this process knows of each object's snapshot, by object UID.
    looks: Mutex<HashMap<String, Look>>,
    /// The SnapshotCopy cache (a ClusterSnapshot being deleted waits for the copies of
    /// it in flight); `None`: they are listed.
    pub copies: Option<kube::runtime::reflector::Store<crate::api::SnapshotCopy>>,
    /// The ClusterSnapshot cache (a schedule reads its runs from it); `None` before the
    /// controllers start.
    pub snapshots: Option<kube::runtime::reflector::Store<crate::api::ClusterSnapshot>>,
    /// The AWSAccount cache (objects naming one in spec.account read it); `None`: they
    /// are read from the API server.
    pub accounts: Option<kube::runtime::reflector::Store<crate::api::AWSAccount>>,
    /// Namespaces' labels, read when an AWSAccount's selector must decide, kept
    /// [`NAMESPACE_LABELS_TTL`].
    namespace_labels: Mutex<HashMap<String, (Instant, Labels)>>,
    /// The clock SnapshotSchedules run on (the real one but in tests).
    pub schedule_clock: super::snapshot_schedule::ScheduleClock,
    /// What applies where a spec says nothing (deletion policy, tags).
    pub defaults: crate::api::Defaults,
    /// Failed schedule runs this process has counted.
    pub schedule_failures: super::snapshot_schedule::SeenFailures,
    /// When this process started (failures from before it were counted by another).
    pub started: jiff::Timestamp,
    /// When this process last wrote each object's status, by UID (progress-only
    /// changes wait [`Timing::batch_floor`] after it).
    status_writes: Mutex<StatusWrites>,
    /// The label keys `--label-selector` names: the objects a SnapshotSchedule makes
    /// take the schedule's values for them (so that they stay in its shard).
    pub shard_keys: Vec<String>,
}

/// The last status write per object UID, pruned of the entries too old to hold back a
/// write whenever the map has doubled since the last pruning.
#[derive(Default)]
struct StatusWrites {
    last: HashMap<String, Instant>,
    prune_at: usize,
}

impl StatusWrites {
    fn last(&self, uid: &str, now: Instant, within: Duration) -> Option<Instant> {
        self.last
            .get(uid)
            .copied()
            .filter(|t| now.saturating_duration_since(*t) < within)
    }

    fn wrote(&mut self, uid: &str, now: Instant, keep: Duration) {
        self.last.insert(uid.to_string(), now);
        if self.last.len() >= self.prune_at {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < keep);
            self.prune_at = (self.last.len() * 2).max(1024);
        }
    }
}

/// Failed attempts in a row per object, and when each object's backoff runs out.
#[derive(Default)]
pub(super) struct Backoffs(Mutex<HashMap<String, Failures>>);

struct Failures {
    count: u32,
    until: Instant,
}

impl Backoffs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn succeeded(&self, key: &str) {
        self.map().remove(key);
    }

    /// Counts a failed attempt and returns how many there were in a row and how long to
    /// back off. An attempt made before the last backoff ran out (a wake-up from a
    /// poller, a watch event) does not count again, so the backoff grows with the time
    /// the failure lasts, not with how often something woke the object meanwhile.
    pub(super) fn failed(
        &self,
        key: &str,
        now: Instant,
        wait_for: impl Fn(u32) -> Duration,
    ) -> (u32, Duration) {
        let mut f = self.map();
        let e = f.entry(key.to_string()).or_insert(Failures {
            count: 0,
            until: now,
        });
        if e.count == 0 || now >= e.until {
            e.count = e.count.saturating_add(1);
        }
        let wait = wait_for(e.count);
        e.until = now + wait;
        (e.count, wait)
    }
}

/// What this process last knew of an object's snapshot in full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Look {
    /// Tags and shares matched the spec of this generation at this time.
    Checked {
        generation: Option<i64>,
        at: std::time::Instant,
    },
    /// A mutation was made since.
    Dirty,
}

impl Context {
    pub fn new(client: Client, engines: Engines, timing: Timing, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            engines,
            timing,
            metrics,
            failures: Backoffs::default(),
            ready: Arc::new(AtomicBool::new(false)),
            pollers: None,
            wake_snapshot: None,
            wake_copy: None,
            looks: Mutex::new(HashMap::new()),
            copies: None,
            snapshots: None,
            accounts: None,
            namespace_labels: Mutex::new(HashMap::new()),
            schedule_clock: Default::default(),
            defaults: Default::default(),
            schedule_failures: Default::default(),
            started: jiff::Timestamp::now(),
            status_writes: Mutex::default(),
            shard_keys: Vec::new(),
        }
    }

    /// When this process last wrote the status of the object with this UID, if within
    /// `within`.
    pub fn last_status_write(&self, uid: &str, now: Instant, within: Duration) -> Option<Instant> {
        let writes = self.status_writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.last(uid, now, within)
    }

    /// Notes a status write of the object with this UID; entries older than `keep` go
    /// whenever the map has doubled.
    pub fn wrote_status(&self, uid: &str, now: Instant, keep: Duration) {
        let mut writes = self.status_writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.wrote(uid, now, keep);
    }

    /// The AWSAccount `name`, from the cache once it holds its first full list (else
    /// from the API server); `None` if it does not exist or cannot be read.
    pub async fn aws_account(&self, name: &str) -> Option<Arc<crate::api::AWSAccount>> {
        if let Some(store) = &self.accounts
            && tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready())
                .await
                .is_ok_and(|r| r.is_ok())
        {
            return store.get(&ObjectRef::new(name));
        }
        let api: kube::Api<crate::api::AWSAccount> = kube::Api::all(self.client.clone());
        match api.get_opt(name).await {
            Ok(found) => found.map(Arc::new),
            Err(e) => {
                tracing::warn!(account = name, error = %e, "cannot read the AWSAccount");
                None
            }
        }
    }

    /// A namespace's labels, read at most every [`NAMESPACE_LABELS_TTL`].
    pub async fn namespace_labels(
        &self,
        namespace: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let cached = self
            .namespace_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
            .filter(|(at, _)| at.elapsed() < NAMESPACE_LABELS_TTL)
            .map(|(_, labels)| labels.clone());
        if let Some(labels) = cached {
            return Ok(labels);
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.client.clone());
        let labels = api
            .get_metadata(namespace)
            .await
            .map_err(|e| e.to_string())?
            .metadata
            .labels
            .unwrap_or_default();
        self.namespace_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(namespace.to_string(), (Instant::now(), labels.clone()));
        Ok(labels)
    }

    fn looks(&self) -> std::sync::MutexGuard<'_, HashMap<String, Look>> {
        self.looks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of the object's snapshot: (tags and shares known for this
    /// generation, a mutation made since the last full look). A check older than six
    /// resyncs no longer counts, so drift is looked for at least that often.
    ///
    /// A process that has not looked yet (after a restart) takes `in_sync` (the status
    /// shows the object Ready at this generation, as the last process left it) as a
    /// check made now: a restart then costs no detail calls for objects that were in
    /// sync, and drift is still looked for within six resyncs.
    pub fn look(&self, uid: &str, generation: Option<i64>, in_sync: bool) -> (bool, bool) {
        let mut looks = self.looks();
        if in_sync && !looks.contains_key(uid) {
            looks.insert(
                uid.to_string(),
                Look::Checked {
                    generation,
                    at: std::time::Instant::now(),
                },
            );
        }
        match looks.get(uid) {
            Some(Look::Dirty) => (false, true),
            Some(Look::Checked { generation: g, at }) => (
                *g == generation && at.elapsed() < self.timing.resync * 6,
                false,
            ),
            None => (false, false),
        }
    }

    /// For a cleanup: whether tags and shares were known recently, at any generation
    /// (deleting bumps it, and shares changed since show as a mutation).
    pub fn look_for_cleanup(&self, uid: &str) -> (bool, bool) {
        match self.looks().get(uid) {
            Some(Look::Dirty) => (false, true),
            Some(Look::Checked { at, .. }) => (at.elapsed() < self.timing.resync * 6, false),
            None => (false, false),
        }
    }

    pub fn set_look(&self, uid: &str, look: Option<Look>) {
        let mut looks = self.looks();
        match look {
            Some(l) => looks.insert(uid.to_string(), l),
            None => looks.remove(uid),
        };
    }

    /// Forgets an object's failed attempts after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures.succeeded(key);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::backoff;

    #[test]
    fn status_writes_are_remembered_for_their_interval_across_pruning() {
        let mut w = StatusWrites::default();
        let t0 = Instant::now();
        let keep = Duration::from_secs(60);
        let uid = |i: usize| format!("uid-{i}");
        for i in 0..3000 {
            w.wrote(&uid(i), t0 + Duration::from_millis(i as u64 * 10), keep);
        }
        let now = t0 + Duration::from_secs(40);
        for i in 0..3000 {
            let at = t0 + Duration::from_millis(i as u64 * 10);
            assert_eq!(w.last(&uid(i), now, keep), Some(at), "{i}");
        }
        // Written again later: the newest write counts; older ones expire.
        w.wrote(&uid(7), now, keep);
        let later = now + Duration::from_secs(30);
        assert_eq!(w.last(&uid(7), later, keep), Some(now));
        assert_eq!(w.last(&uid(8), later, keep), None);
    }

    #[test]
    fn backoff_grows_with_time_failing_not_with_wake_ups() {
        let b = Backoffs::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let wait = |n| backoff(n, false, 1.0);
        assert_eq!(b.failed("a", t0, wait), (1, s(1)));
        // Woken (and failing) ten times within that second: still the first failure.
        for i in 0..10 {
            assert_eq!(b.failed("a", t0 + Duration::from_millis(90 * i), wait).0, 1);
        }
        // Failing after each backoff ran out: it grows.
        let t1 = t0 + s(2);
        assert_eq!(b.failed("a", t1, wait), (2, s(2)));
        assert_eq!(b.failed("a", t1 + s(2), wait), (3, s(4)));
        // Other objects keep their own count; success forgets it.
        assert_eq!(b.failed("b", t1, wait).0, 1);
        b.succeeded("a");
        assert_eq!(b.failed("a", t1 + s(3), wait).0, 1);
    }
}
