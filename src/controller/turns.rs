//! One reconcile of either kind ([`reconcile_object`]), and the turns that limit how
//! many run at once ([`Turns`]).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error, WithStatus, ensure_finalizer, report_forbidden};

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
    let result = counted(&*obj, &ctx, async {
        if obj.meta().deletion_timestamp.is_some() {
            cleanup(&api, &obj, &ctx).await
        } else if ensure_finalizer(&api, &*obj).await? {
            apply(&api, &obj, &ctx).await
        } else {
            Ok(Action::await_change())
        }
    })
    .await;
    match result {
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 403 => {
            Ok(report_forbidden(&api, &ctx, &*obj, &e).await)
        }
        other => other,
    }
}

/// One reconcile of a kind that holds nothing on AWS (a SnapshotSchedule): no
/// finalizer, nothing to clean up when it goes; a forbidden Kubernetes call is logged
/// (the status may not be writable either) and looked at again every minute, and the
/// outcome is counted as for the other kinds.
pub async fn reconcile_plain<K, A>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: A,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    A: AsyncFnOnce(&Api<K>, &K, &Context) -> Result<Action, Error>,
{
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let result = counted(&*obj, &ctx, apply(&api, &obj, &ctx)).await;
    match result {
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 403 => {
            tracing::error!(
                object = %obj.name_any(),
                kind = %K::kind(&()),
                "the operator's service account is not allowed to do this: {} - grant it the \
                 permissions of the Helm chart's Role/ClusterRole",
                e.message
            );
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        other => other,
    }
}

tokio::task_local! {
    /// Whether the reconcile running in this task computed a Stalled status.
    static STALLED: std::cell::Cell<bool>;
}

/// Notes, for the reconcile running in this task, the health its status says: a
/// reconcile that ends with the object Stalled (a terminal error, written to status
/// rather than returned) is counted as an error. Outside a counted reconcile it does
/// nothing.
pub fn note_health(health: &crate::api::conditions::Health) {
    let stalled = matches!(health, crate::api::conditions::Health::Stalled { .. });
    let _ = STALLED.try_with(|s| s.set(stalled));
}

/// Runs one reconcile, counting its outcome and time and forgetting the object's
/// failures when it succeeds. A reconcile is counted `ok` only if it returned no error
/// and did not leave the object Stalled; a terminal error (Stalled, or a Kubernetes
/// call the operator's RBAC forbids) is also counted in `reconcile_errors` with class
/// `terminal` (retried errors are counted there by the error policy).
pub(super) async fn counted<K>(
    obj: &K,
    ctx: &Context,
    reconcile: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
{
    let started = std::time::Instant::now();
    let (result, stalled) = STALLED
        .scope(std::cell::Cell::new(false), async {
            let result = reconcile.await;
            (result, STALLED.with(std::cell::Cell::get))
        })
        .await;
    let forbidden = matches!(&result, Err(Error::Kube(kube::Error::Api(e))) if e.code == 403);
    let terminal = forbidden || (result.is_ok() && stalled);
    let kind = K::kind(&());
    ctx.metrics
        .reconciled(&kind, started.elapsed(), result.is_ok() && !terminal);
    if terminal {
        ctx.metrics.reconcile_error(&kind, "terminal");
    }
    if result.is_ok() || forbidden {
        ctx.succeeded(&ObjectRef::from_obj(obj).to_string());
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
pub struct Turns {
    others: Arc<tokio::sync::Semaphore>,
    made: Arc<tokio::sync::Semaphore>,
}

impl Turns {
    /// Two queues of `concurrency` turns each: objects whose snapshot is made (watched
    /// until Ready, resynced) and the others (creates, deletes, invalid specs). A
    /// backlog of creates waiting for the request budget (thousands of objects applied
    /// at once) so never holds back the Ready of the snapshots already made.
    pub fn new(concurrency: u16) -> Self {
        let n = usize::from(concurrency).max(1);
        Self {
            others: Arc::new(tokio::sync::Semaphore::new(n)),
            made: Arc::new(tokio::sync::Semaphore::new(n)),
        }
    }

    /// Waits for a turn in the queue of made snapshots (`made`) or of the others; then
    /// the object as the cache has it now, or `None` if it is gone (deleted meanwhile:
    /// nothing left to do).
    pub async fn take<K>(
        &self,
        store: &kube::runtime::reflector::Store<K>,
        obj: &K,
        made: bool,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, Arc<K>)>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let queue = if made { &self.made } else { &self.others };
        let permit = queue.clone().acquire_owned().await.ok()?;
        let fresh = store.get(&ObjectRef::from_obj(obj))?;
        Some((permit, fresh))
    }
}

/// `reconcile`, run in turn (see [`Turns`]).
pub(super) fn in_turn<K, F, Fut>(
    turns: Turns,
    store: kube::runtime::reflector::Store<K>,
    made: fn(&K) -> bool,
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
            let Some((_turn, obj)) = turns.take(&store, &obj, made(&obj)).await else {
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

    /// With every turn of the others' queue held (creates waiting on the budget), an
    /// object whose snapshot is made still gets its turn at once; another create waits.
    #[tokio::test]
    async fn made_snapshots_do_not_wait_behind_creates() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::{reflector, watcher};
        let (store, mut writer) = reflector::store::<ConfigMap>();
        writer.apply_watcher_event(&watcher::Event::Init);
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("one".to_string());
        cm.metadata.namespace = Some("ns".to_string());
        writer.apply_watcher_event(&watcher::Event::InitApply(cm.clone()));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let turns = Turns::new(1);
        let _create = turns.take(&store, &cm, false).await.expect("a turn");
        let soon = Duration::from_millis(200);
        let made = tokio::time::timeout(soon, turns.take(&store, &cm, true)).await;
        assert!(made.is_ok_and(|t| t.is_some()), "a made snapshot waited");
        let other = tokio::time::timeout(soon, turns.take(&store, &cm, false)).await;
        assert!(other.is_err(), "a second create got the one turn");
    }

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
                        let Some((_turn, o)) = turns.take(&cache, &o, false).await else {
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
}
