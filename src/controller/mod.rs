//! The controllers' shared context, errors, retry policy, finalizer and status writing.
//! Does IO (Kubernetes and, through the engines, AWS).

pub mod cluster_snapshot;
pub mod drive;
pub mod poller;
pub mod snapshot_copy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::conditions::{self, Health};
use crate::api::{FINALIZER, MANAGER, SnapshotStatus};
use crate::engine::{EngineError, Engines, ErrorClass};
use crate::lifecycle::Timing;
use crate::metrics::Metrics;

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub engines: Engines,
    pub recorder: Recorder,
    pub timing: Timing,
    pub metrics: Arc<Metrics>,
    failures: Backoffs,
    /// Set once the CRDs are found and the caches are synced.
    pub ready: Arc<AtomicBool>,
    /// Batched polling (`None`: each object describes its own snapshot).
    pub pollers: Option<Arc<poller::Pollers>>,
    /// Queues a ClusterSnapshot's reconcile (the pollers wake objects through it).
    pub wake_snapshot:
        Option<futures::channel::mpsc::UnboundedSender<ObjectRef<crate::api::ClusterSnapshot>>>,
    /// What this process knows of each object's snapshot, by object UID.
    looks: Mutex<HashMap<String, Look>>,
    /// The SnapshotCopy cache (a ClusterSnapshot being deleted waits for the copies of
    /// it in flight); `None`: they are listed.
    pub copies: Option<kube::runtime::reflector::Store<crate::api::SnapshotCopy>>,
}

/// Failed attempts in a row per object, and when each object's backoff runs out.
#[derive(Default)]
struct Backoffs(Mutex<HashMap<String, Failures>>);

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
    fn failed(
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
            looks: Mutex::new(HashMap::new()),
            copies: None,
        }
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

impl Error {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Engine(e) => e.class.label(),
        }
    }
}

/// Exponential backoff with jitter for the `attempt`-th failure in a row; throttling
/// backs off from a longer base.
pub fn backoff(attempt: u32, throttled: bool, jitter: f64) -> Duration {
    let base = if throttled { 2.0 } else { 1.0 };
    let secs = (base * 2f64.powi(attempt.saturating_sub(1).min(8) as i32)).min(300.0);
    Duration::from_secs_f64(secs * jitter.clamp(0.5, 1.5))
}

/// Retryable failures only reach here (terminal ones are written to status inside
/// reconcile): requeue with backoff and jitter.
pub fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = ObjectRef::from_obj(&*obj).to_string();
    let throttled = matches!(err, Error::Engine(e) if e.class == ErrorClass::Throttled);
    // A busy source cluster frees up when AWS is done with it (another snapshot, a
    // modification): looked at no less often than a snapshot being made.
    let source_busy = matches!(err, Error::Engine(e) if e.class == ErrorClass::SourceUnavailable);
    let jitter = rand::rng().random_range(0.5..1.5);
    let (attempt, wait) = ctx.failures.failed(&key, Instant::now(), |n| {
        let wait = backoff(n, throttled, jitter);
        if source_busy {
            wait.min(ctx.timing.max_poll)
        } else {
            wait
        }
    });
    ctx.metrics
        .reconcile_error(K::kind(&()).as_ref(), err.label());
    tracing::warn!(object = %key, attempt, error = %err, retry_in = ?wait, "reconcile failed; retrying");
    Action::requeue(wait)
}

/// Adds the finalizer if missing. Returns false when the object is going away.
pub async fn ensure_finalizer<K>(api: &Api<K>, obj: &K) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(false);
    }
    if obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(true);
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let patch = json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}

/// Removes the finalizer (the object then goes away).
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let finalizers: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The new status with conditions for `health`, keeping transition times.
pub fn with_health(
    mut status: SnapshotStatus,
    health: &Health,
    generation: Option<i64>,
) -> SnapshotStatus {
    status.observed_generation = generation;
    status.conditions =
        conditions::conditions(&status.conditions, health, generation, Timestamp::now());
    status
}

/// Writes the status by server-side apply when it changed, and records an Event when
/// the reason changed.
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
    if old == new {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    let reason = |s: &SnapshotStatus| {
        s.condition(conditions::READY)
            .map(|c| (c.reason.clone(), c.status.clone()))
    };
    if reason(old) != reason(new)
        && let Some(ready) = new.condition(conditions::READY)
    {
        let stalled = new
            .condition(conditions::STALLED)
            .is_some_and(|c| c.status == "True");
        let event = Event {
            type_: if stalled {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ready.reason.clone(),
            note: Some(ready.message.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }
    Ok(())
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
    use crate::api::Phase;
    let mut status = old.clone();
    status.phase = Some(
        status
            .phase
            .filter(|p| *p != Phase::Creating)
            .unwrap_or(Phase::Pending),
    );
    let status = with_health(
        status,
        &Health::stalled(crate::api::conditions::reasons::INVALID_SPEC, e.to_string()),
        obj.meta().generation,
    );
    write_status(api, ctx, obj, old, &status).await?;
    Ok(Action::await_change())
}

/// Writes the identity fields (the snapshot identifier above all) before anything is
/// created on AWS, so a restart never makes a second snapshot.
pub async fn record<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    mut base: SnapshotStatus,
    identifier: &str,
) -> Result<SnapshotStatus, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    base.phase = Some(crate::api::Phase::Pending);
    let status = with_health(
        base,
        &Health::progressing(
            crate::api::conditions::reasons::PENDING,
            format!("snapshot identifier {identifier} recorded"),
        ),
        obj.meta().generation,
    );
    write_status(api, ctx, obj, old, &status).await?;
    Ok(status)
}

/// Ends a cleanup pass: retryable errors go back to the error policy, refusals are
/// shown as Stalled, a finished cleanup releases the object.
pub async fn finish_cleanup<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    result: Result<(crate::lifecycle::Decision, crate::lifecycle::Observation), EngineError>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    use crate::api::Phase;
    use crate::api::conditions::reasons;
    let generation = obj.meta().generation;
    let (decision, observed) = match result {
        Ok(r) => r,
        Err(e) if e.class.is_retryable() || e.class == ErrorClass::NotFound => {
            return Err(e.into());
        }
        Err(e) => {
            let mut status = old.clone();
            status.phase = Some(Phase::Deleting);
            let status = with_health(
                status,
                &Health::stalled(reasons::AWS_ERROR, e.to_string()),
                generation,
            );
            write_status(api, ctx, obj, old, &status).await?;
            return Ok(Action::requeue(ctx.timing.resync));
        }
    };
    if decision.finished {
        remove_finalizer(api, obj).await?;
        return Ok(Action::await_change());
    }
    let mut status = old.clone();
    status.phase = Some(Phase::Deleting);
    if let crate::lifecycle::Observation::Found(s) = &observed {
        crate::lifecycle::mirror(&mut status, s);
    }
    let status = with_health(status, &decision.health, generation);
    write_status(api, ctx, obj, old, &status).await?;
    Ok(action(decision.requeue))
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

/// One reconcile of either kind: cleanup when the object is going away, otherwise
/// make sure the finalizer is on and apply; a forbidden Kubernetes call is reported,
/// and the outcome is counted.
pub async fn reconcile_object<K, A, C>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + WithStatus,
    A: AsyncFnOnce(&Api<K>, &K, &Context) -> Result<Action, Error>,
    C: AsyncFnOnce(&Api<K>, &K, &Context) -> Result<Action, Error>,
{
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let started = std::time::Instant::now();
    let result = async {
        if obj.meta().deletion_timestamp.is_some() {
            cleanup(&api, &obj, &ctx).await
        } else if ensure_finalizer(&api, &*obj).await? {
            apply(&api, &obj, &ctx).await
        } else {
            Ok(Action::await_change())
        }
    }
    .await;
    let result = match result {
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 403 => {
            Ok(report_forbidden(&api, &ctx, &*obj, &e).await)
        }
        other => other,
    };
    ctx.metrics
        .reconciled(&K::kind(&()), started.elapsed(), result.is_ok());
    if result.is_ok() {
        ctx.succeeded(&ObjectRef::from_obj(&*obj).to_string());
    }
    result
}

/// How to wait after a decision.
pub fn action(requeue: Option<Duration>) -> Action {
    match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    }
}

/// The controllers' runtime settings: kube-runtime's own concurrency limit is off, and
/// [`Turns`] limits how many objects are reconciled at once instead.
pub fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
}

/// How many objects of one kind are reconciled at once, handed out first come, first
/// served. kube-runtime's own limit is not fair: an object woken again while it runs
/// goes ahead of everything queued, and requests already due are handed out last in,
/// first out. With every slot busy (reconciles waiting on the AWS request budget) and
/// pollers waking objects all the time, a few objects kept the slots and others queued
/// at start-up were not reconciled for minutes. Here every reconcile starts at once and
/// waits its turn on a FIFO semaphore, then works on the object as it is in the cache by
/// then, not as it was when it was queued.
#[derive(Debug, Clone)]
pub struct Turns(Arc<tokio::sync::Semaphore>);

impl Turns {
    pub fn new(concurrency: u16) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(
            usize::from(concurrency).max(1),
        )))
    }

    /// Waits for a turn; then the object as the cache has it now, or `None` if it is
    /// gone (deleted meanwhile: nothing left to do).
    pub async fn take<K>(
        &self,
        store: &kube::runtime::reflector::Store<K>,
        obj: &K,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, Arc<K>)>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let permit = self.0.clone().acquire_owned().await.ok()?;
        let fresh = store.get(&ObjectRef::from_obj(obj))?;
        Some((permit, fresh))
    }
}

/// `reconcile`, run in turn (see [`Turns`]).
fn in_turn<K, F, Fut>(
    turns: Turns,
    store: kube::runtime::reflector::Store<K>,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action, Error>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |obj, ctx| {
        let (turns, store, reconcile) = (turns.clone(), store.clone(), reconcile.clone());
        Box::pin(async move {
            let Some((_turn, obj)) = turns.take(&store, &obj).await else {
                return Ok(Action::await_change());
            };
            // Boxed so that the many reconciles waiting for a turn hold a small future,
            // not the whole reconcile's state.
            Box::pin(reconcile(obj, ctx)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the one turn busy and one object woken again and again, another object
    /// queued once is still reconciled (with kube-runtime's own limit of one, it waited
    /// behind the wake-ups for as long as they came).
    #[tokio::test]
    async fn a_storm_of_wake_ups_does_not_starve_an_object() {
        use futures::StreamExt;
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::{Controller, controller::Action, reflector, watcher};
        use std::sync::Mutex;

        let (store, mut writer) = reflector::store::<ConfigMap>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for name in ["busy", "quiet"] {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.to_string());
            cm.metadata.namespace = Some("ns".to_string());
            writer.apply_watcher_event(&watcher::Event::InitApply(cm));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let busy = ObjectRef::<ConfigMap>::new("busy").within("ns");
        let quiet = ObjectRef::<ConfigMap>::new("quiet").within("ns");
        // The object stream names `busy` at once and `quiet` 100 ms later, while the
        // wake-ups name `busy` every millisecond.
        let cm = |r: &ObjectRef<ConfigMap>| (*store.get(r).unwrap()).clone();
        let objects = futures::stream::iter([Ok::<_, watcher::Error>(cm(&busy))])
            .chain(futures::stream::once({
                let quiet = cm(&quiet);
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(quiet)
                }
            }))
            .chain(futures::stream::pending());
        let wakes = futures::stream::unfold(busy, |b| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((b.clone(), b))
        });
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let reconcile = |o: Arc<ConfigMap>, seen: Arc<Mutex<Vec<String>>>| async move {
            seen.lock().unwrap().push(o.name_any());
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, kube::Error>(Action::await_change())
        };
        let turns = Turns::new(1);
        let cache = store.clone();
        let run = Controller::for_stream(objects, store)
            .with_config(controller_config())
            .reconcile_on(wakes)
            .run(
                move |o: Arc<ConfigMap>, seen| {
                    let (turns, cache) = (turns.clone(), cache.clone());
                    async move {
                        let Some((_turn, o)) = turns.take(&cache, &o).await else {
                            return Ok(Action::await_change());
                        };
                        reconcile(o, seen).await
                    }
                },
                |_, _, _| Action::await_change(),
                seen.clone(),
            )
            .for_each(|_| async {});
        let _ = tokio::time::timeout(Duration::from_secs(3), run).await;
        let seen = seen.lock().unwrap();
        let busy_runs = seen.iter().filter(|n| *n == "busy").count();
        assert!(
            busy_runs > 20,
            "the storm ran: {busy_runs} reconciles of busy"
        );
        assert!(
            seen.contains(&quiet.name),
            "quiet never reconciled in 3 s, busy {busy_runs} times"
        );
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

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff(1, false, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, false, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(3, true, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(40, false, 1.0), Duration::from_secs(256));
        assert_eq!(backoff(40, true, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(2, false, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, false, 9.0), Duration::from_secs(3));
    }
}

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `Some`: only the replica holding the lease reconciles.
    pub leader_election: Option<crate::leader::LeaderElection>,
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Objects reconciled at once.
    pub concurrency: u16,
    pub metrics_addr: std::net::SocketAddr,
    pub timing: Timing,
    pub polling: Polling,
    /// The SDK's adaptive retry on top of the request budget (batched polling).
    pub adaptive_retry: bool,
}

/// How snapshots are watched on AWS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Polling {
    /// Shared pollers per source cluster and a request budget per region and service
    /// (with the SDK's standard or adaptive retry on top).
    Batched(crate::engine::budget::Rate),
    /// Every object describes its own snapshot every 30 s while AWS works, with no
    /// client-side budget: how other controllers behave; kept as the benchmark's
    /// baseline.
    PerObject,
}

/// Waits until the API server serves `K` (its CRD is installed), logging while not.
async fn wait_for_crd<K>(api: &Api<K>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let mut logged = false;
    loop {
        match api.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(e) => {
                if !logged {
                    tracing::warn!(kind = %K::kind(&Default::default()), error = %e, "waiting for the CRD to be installed");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Waits until a store has its first full list, polling (see `run`).
async fn wait_ready<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => continue,
        }
    }
}

/// Serves the endpoints, then runs the controllers until SIGTERM or Ctrl-C; with leader
/// election only while this replica holds the lease (one that loses it exits, to be
/// restarted as a standby).
pub async fn run(
    client: Client,
    aws: aws_config::SdkConfig,
    settings: Settings,
) -> std::io::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (addr, _server) =
        crate::metrics::serve(settings.metrics_addr, metrics.clone(), ready.clone()).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let Some(le) = settings.leader_election.clone() else {
        return run_controllers(client, aws, settings, metrics, ready).await;
    };
    // A standby is healthy and ready (so that rollouts proceed) while it waits.
    ready.store(true, Ordering::Relaxed);
    let Some(mut leadership) = le.acquire(&client).await? else {
        return Ok(());
    };
    ready.store(false, Ordering::Relaxed);
    let result = tokio::select! {
        result = run_controllers(client, aws, settings, metrics, ready) => result,
        () = leadership.lost() => {
            tracing::error!(identity = %le.identity, "lost the lease; exiting so that another replica leads");
            std::process::exit(1);
        }
    };
    // Stopped by a signal, with the controllers finished: hand the lease over at once.
    leadership.release().await;
    result
}

/// `--polling per-object`: one describe per object this often while AWS works.
pub const PER_OBJECT_POLL: Duration = Duration::from_secs(30);

/// Runs the controllers until SIGTERM or Ctrl-C.
async fn run_controllers(
    client: Client,
    aws: aws_config::SdkConfig,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    use futures::StreamExt;
    use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};

    use crate::api::{ClusterSnapshot, SnapshotCopy};

    let rate = match settings.polling {
        Polling::Batched(rate) => Some(rate),
        Polling::PerObject => None,
    };
    let mut timing = settings.timing;
    if settings.polling == Polling::PerObject {
        timing.min_poll = PER_OBJECT_POLL;
        timing.max_poll = PER_OBJECT_POLL;
    }
    let mut ctx = Context::new(
        client.clone(),
        Engines::new(aws, metrics.clone(), rate, settings.adaptive_retry),
        timing,
        metrics.clone(),
    );
    ctx.ready = ready;
    let (wake_snapshot, snapshot_wakes) = futures::channel::mpsc::unbounded();
    if rate.is_some() {
        ctx.pollers = Some(Arc::new(poller::Pollers::new(timing, metrics.clone())));
        ctx.wake_snapshot = Some(wake_snapshot);
    }
    let (copy_store, copy_writer) = reflector::store();
    ctx.copies = Some(copy_store.clone());
    let ctx = Arc::new(ctx);
    let snapshots: Api<ClusterSnapshot> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let copies: Api<SnapshotCopy> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    wait_for_crd(&snapshots).await;
    wait_for_crd(&copies).await;
    // Only spec changes (and deletion, which bumps the generation) trigger a reconcile:
    // the controller's own status writes do not, so progress updates cannot spin it.
    let (snapshot_store, writer) = reflector::store();
    let reach = ctx.metrics.clone();
    let trigger = watcher(snapshots.clone(), watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect(move |r| reach.reach.kube(r.is_ok()))
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let snapshot_controller = Controller::for_stream(trigger, snapshot_store.clone())
        .with_config(controller_config())
        .reconcile_on(snapshot_wakes)
        .shutdown_on_signal();

    let reach = ctx.metrics.clone();
    let trigger = watcher(copies, watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect(move |r| reach.reach.kube(r.is_ok()))
        .reflect(copy_writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    // A ClusterSnapshot that changes (becomes Ready, say) wakes the copies naming it.
    let copies_of = copy_store.clone();
    let copy_controller = Controller::for_stream(trigger, copy_store.clone())
        .with_config(controller_config())
        .watches(
            snapshots,
            watcher::Config::default().any_semantic(),
            move |cs: ClusterSnapshot| {
                let namespace = cs.namespace();
                let name = cs.name_any();
                copies_of
                    .state()
                    .into_iter()
                    .filter(|c| {
                        c.namespace() == namespace
                            && c.spec
                                .source
                                .cluster_snapshot_ref
                                .as_ref()
                                .map(|r| r.name.as_str())
                                == Some(name.as_str())
                    })
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal();

    // Objects by kind, engine and phase, counted from the caches every few seconds.
    {
        let (snapshots, copies, metrics) = (
            snapshot_store.clone(),
            copy_store.clone(),
            ctx.metrics.clone(),
        );
        tokio::spawn(async move {
            loop {
                let mut counts = HashMap::new();
                let statuses = snapshots
                    .state()
                    .iter()
                    .map(|o| ("ClusterSnapshot", o.snapshot_status()))
                    .chain(
                        copies
                            .state()
                            .iter()
                            .map(|o| ("SnapshotCopy", o.snapshot_status())),
                    )
                    .collect::<Vec<_>>();
                for (kind, status) in statuses {
                    let labels = crate::metrics::ObjectLabels {
                        kind: kind.to_string(),
                        engine: status
                            .engine
                            .map_or("unknown".to_string(), |e| e.to_string()),
                        phase: status
                            .phase
                            .map_or("Pending".to_string(), |p| format!("{p:?}")),
                    };
                    *counts.entry(labels).or_insert(0) += 1;
                }
                metrics.set_objects(&counts);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
    let run_snapshots = in_turn(
        Turns::new(settings.concurrency),
        snapshot_store.clone(),
        cluster_snapshot::reconcile,
    );
    let run_copies = in_turn(
        Turns::new(settings.concurrency),
        copy_store.clone(),
        snapshot_copy::reconcile,
    );
    let ready = ctx.ready.clone();
    tokio::spawn(async move {
        // The controllers wait on the same stores; a waiter can miss the wake-up, so
        // look again every second rather than waiting once.
        for store_ready in [
            Box::pin(async { wait_ready(&snapshot_store).await })
                as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>,
            Box::pin(async { wait_ready(&copy_store).await }),
        ] {
            if !store_ready.await {
                return;
            }
        }
        ready.store(true, Ordering::Relaxed);
        tracing::info!("caches synced; ready");
    });
    tracing::info!(namespace = ?settings.namespace, region = ?ctx.engines.default_region(), "dbsnapshot-operator started");
    let log = |result: Result<_, _>| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "reconcile ended with an error");
        }
    };
    futures::join!(
        snapshot_controller
            .run(run_snapshots, error_policy, ctx.clone())
            .for_each(|r| log(r.map(|_| ()).map_err(|e| e.to_string()))),
        copy_controller
            .run(run_copies, error_policy, ctx)
            .for_each(|r| log(r.map(|_| ()).map_err(|e| e.to_string()))),
    );
    tracing::info!("stopped");
    Ok(())
}
