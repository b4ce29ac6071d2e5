//! The operator's startup: the endpoints, leader election, the watches and the
//! controllers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::turns::in_turn;
use super::{
    Context, Turns, aws_account, cluster_snapshot, controller_config, error_policy, poller,
    snapshot_copy, snapshot_schedule,
};
use crate::engine::Engines;
use crate::lifecycle::Timing;
use crate::metrics::Metrics;

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `Some`: only the replica holding the lease reconciles.
    pub leader_election: Option<crate::leader::LeaderElection>,
    /// Watch only these namespaces (all when empty): one watch per namespace.
    pub namespaces: Vec<String>,
    /// Reconcile only the objects (ClusterSnapshots, SnapshotCopies, SnapshotSchedules)
    /// this label selector selects.
    pub label_selector: Option<String>,
    /// Objects reconciled at once.
    pub concurrency: u16,
    pub metrics_addr: std::net::SocketAddr,
    pub timing: Timing,
    pub polling: Polling,
    /// The SDK's adaptive retry on top of the request budget (batched polling).
    pub adaptive_retry: bool,
    /// The clock SnapshotSchedules run on: the real one but in tests.
    pub schedule_clock: super::snapshot_schedule::ScheduleClock,
    /// What applies where a spec says nothing: --default-deletion-policy, --default-tags.
    pub defaults: crate::api::Defaults,
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

/// The `Api`s of the watched namespaces: one per namespace, or one for all when none is
/// named.
fn scoped<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        return vec![Api::all(client.clone())];
    }
    namespaces
        .iter()
        .map(|ns| Api::namespaced(client.clone(), ns))
        .collect()
}

type Events<K> = futures::stream::BoxStream<
    'static,
    Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
>;

/// One watch per `Api` (namespace), as one stream of watcher events that a single
/// reflector store can take. A store swaps in a whole listing at `InitDone`, so the
/// listings of several watches cannot reach it as they are (one namespace's re-list
/// would drop the others' objects): the first listings of all namespaces make the
/// store's one listing (events of a namespace done early are held until all are), and
/// later re-lists become `Apply`s plus a `Delete` for each object gone.
fn watch_each<K>(apis: Vec<Api<K>>, config: kube::runtime::watcher::Config) -> Events<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    if apis.len() == 1 {
        let api = apis.into_iter().next().expect("one Api");
        return watcher(api, config).default_backoff().boxed();
    }
    let mut merged = Merged::new(apis.len());
    let watches = apis.into_iter().enumerate().map(|(i, api)| {
        watcher(api, config.clone())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    futures::stream::select_all(watches)
        .flat_map(move |(i, event)| futures::stream::iter(merged.next(i, event)))
        .boxed()
}

/// The objects watched by several `watch_each` watches (see there).
struct Merged<K: Resource<DynamicType = ()>> {
    /// Per watch: the objects the store holds from it.
    known: Vec<HashMap<ObjectRef<K>, K>>,
    /// Per watch: the objects of its listing in progress.
    listing: Vec<Option<std::collections::HashSet<ObjectRef<K>>>>,
    /// Per watch: its first listing is complete.
    listed: Vec<bool>,
    /// The store's listing has begun (its `Init` went out).
    init_sent: bool,
    /// Events of watches done with their first listing, held until all are.
    held: Vec<(usize, kube::runtime::watcher::Event<K>)>,
    /// Objects a restarted first listing no longer had: deleted once the store's
    /// listing is in.
    gone: Vec<K>,
}

impl<K: Resource<DynamicType = ()> + Clone> Merged<K> {
    fn new(watches: usize) -> Self {
        Self {
            known: (0..watches).map(|_| HashMap::new()).collect(),
            listing: (0..watches).map(|_| None).collect(),
            listed: vec![false; watches],
            init_sent: false,
            held: Vec::new(),
            gone: Vec::new(),
        }
    }

    fn next(
        &mut self,
        i: usize,
        event: Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
    ) -> Vec<Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>> {
        use kube::runtime::watcher::Event;
        let event = match event {
            Ok(event) => event,
            Err(e) => return vec![Err(e)],
        };
        let all_listed = self.listed.iter().all(|l| *l);
        if all_listed {
            return self.live(i, event);
        }
        if self.listed[i] {
            self.held.push((i, event));
            return Vec::new();
        }
        // The first listing of watch `i`: part of the store's one listing.
        match event {
            Event::Init => {
                self.listing[i] = Some(Default::default());
                if std::mem::replace(&mut self.init_sent, true) {
                    Vec::new()
                } else {
                    vec![Ok(Event::Init)]
                }
            }
            Event::InitApply(obj) => {
                let key = ObjectRef::from_obj(&obj);
                self.listing[i].get_or_insert_default().insert(key.clone());
                self.known[i].insert(key, obj.clone());
                vec![Ok(Event::InitApply(obj))]
            }
            Event::InitDone => {
                let seen = self.listing[i].take().unwrap_or_default();
                let gone = self.forget_all_but(i, &seen);
                self.gone.extend(gone);
                self.listed[i] = true;
                if !self.listed.iter().all(|l| *l) {
                    return Vec::new();
                }
                let mut out = vec![Ok(Event::InitDone)];
                out.extend(
                    std::mem::take(&mut self.gone)
                        .into_iter()
                        .map(|o| Ok(Event::Delete(o))),
                );
                for (j, event) in std::mem::take(&mut self.held) {
                    out.extend(self.live(j, event));
                }
                out
            }
            // Not before a listing is done; taken as they come.
            event @ (Event::Apply(_) | Event::Delete(_)) => self.live(i, event),
        }
    }

    /// Drops from watch `i`'s objects those not in `seen`, returning them.
    fn forget_all_but(
        &mut self,
        i: usize,
        seen: &std::collections::HashSet<ObjectRef<K>>,
    ) -> Vec<K> {
        let gone: Vec<ObjectRef<K>> = self.known[i]
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        gone.iter()
            .filter_map(|k| self.known[i].remove(k))
            .collect()
    }

    /// An event once the store has every watch's listing: a re-list is applied object
    /// by object, and what it no longer has is deleted.
    fn live(
        &mut self,
        i: usize,
        event: kube::runtime::watcher::Event<K>,
    ) -> Vec<Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>> {
        use kube::runtime::watcher::Event;
        match event {
            Event::Init => {
                self.listing[i] = Some(Default::default());
                Vec::new()
            }
            Event::InitApply(obj) | Event::Apply(obj) => {
                let key = ObjectRef::from_obj(&obj);
                if let Some(listing) = &mut self.listing[i] {
                    listing.insert(key.clone());
                }
                self.known[i].insert(key, obj.clone());
                vec![Ok(Event::Apply(obj))]
            }
            Event::InitDone => {
                let seen = self.listing[i].take().unwrap_or_default();
                self.forget_all_but(i, &seen)
                    .into_iter()
                    .map(|o| Ok(Event::Delete(o)))
                    .collect()
            }
            Event::Delete(obj) => {
                self.known[i].remove(&ObjectRef::from_obj(&obj));
                vec![Ok(Event::Delete(obj))]
            }
        }
    }
}

/// The objects each of `apis` touches, as one stream (for `Controller::watches_stream`).
fn touched_in_each<K>(
    apis: Vec<Api<K>>,
    config: kube::runtime::watcher::Config,
) -> futures::stream::BoxStream<'static, Result<K, kube::runtime::watcher::Error>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    futures::stream::select_all(
        apis.into_iter()
            .map(|api| watcher(api, config.clone()).touched_objects().boxed()),
    )
    .boxed()
}

/// For a reflected watch: sends the objects whose `read` hash (what another kind's
/// reconcile reads of them) changed, or that were deleted, once the cache holds the
/// change. Keeps one hash per object. A re-list (the watch restarted) swaps the cache
/// only at its end, so what it changed is sent then. (An object deleted while the
/// watch was down is only forgotten: sending it would mean keeping a copy of every
/// object; the reconcilers' safety-net requeues look again.)
fn changed_for_others<K>(
    read: fn(&K) -> Option<u64>,
    to: futures::channel::mpsc::UnboundedSender<K>,
) -> impl FnMut(&Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>)
where
    K: Resource<DynamicType = ()> + Clone,
{
    use kube::runtime::watcher::Event;
    let mut seen: HashMap<ObjectRef<K>, Option<u64>> = HashMap::new();
    // During a re-list: the changed objects to send at its end, and every key it held.
    let mut relist: Option<(Vec<K>, std::collections::HashSet<ObjectRef<K>>)> = None;
    move |event| match event {
        Ok(Event::Init) => relist = Some(Default::default()),
        Ok(Event::InitApply(o)) if relist.is_some() => {
            let key = ObjectRef::from_obj(o);
            let hash = read(o);
            let (pending, keys) = relist.as_mut().expect("a re-list");
            keys.insert(key.clone());
            if seen.insert(key, hash) != Some(hash) {
                pending.push(o.clone());
            }
        }
        Ok(Event::InitDone) => {
            let Some((pending, keys)) = relist.take() else {
                return;
            };
            seen.retain(|k, _| keys.contains(k));
            for o in pending {
                let _ = to.unbounded_send(o);
            }
        }
        Ok(Event::Apply(o) | Event::InitApply(o)) => {
            let hash = read(o);
            if seen.insert(ObjectRef::from_obj(o), hash) != Some(hash) {
                let _ = to.unbounded_send(o.clone());
            }
        }
        Ok(Event::Delete(o)) => {
            seen.remove(&ObjectRef::from_obj(o));
            let _ = to.unbounded_send(o.clone());
        }
        Err(_) => {}
    }
}

/// What the caches keep of an object: not its managed fields, nor the copy of the
/// last `kubectl apply` (together often larger than the object; nothing here reads
/// them, and no write sends the cached object back).
fn trim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
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
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
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

/// Whether an object names the AWSAccount `name` (in spec.account, or as recorded).
fn names_account(
    account: &Option<String>,
    status: &Option<crate::api::SnapshotStatus>,
    name: &str,
) -> bool {
    account.as_deref() == Some(name)
        || status
            .as_ref()
            .is_some_and(|s| s.account.as_deref() == Some(name))
}

/// What the objects naming an AWSAccount depend on: whether it is Ready for its
/// current spec, and why not.
fn account_readiness(a: &crate::api::AWSAccount) -> (bool, Option<String>) {
    let status = a.status.clone().unwrap_or_default();
    let ready = status
        .condition(crate::api::conditions::READY)
        .is_some_and(|c| c.status == "True")
        && status.observed_generation == a.metadata.generation
        && a.metadata.deletion_timestamp.is_none();
    let reason = status
        .condition(crate::api::conditions::READY)
        .map(|c| c.reason.clone());
    (ready, reason)
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

    use crate::api::{AWSAccount, ClusterSnapshot, SCHEDULE_LABEL, SnapshotCopy, SnapshotSchedule};

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
    let (wake_copy, copy_poller_wakes) = futures::channel::mpsc::unbounded();
    if rate.is_some() {
        ctx.pollers = Some(Arc::new(poller::Pollers::new(timing, metrics.clone())));
        ctx.wake_snapshot = Some(wake_snapshot);
        ctx.wake_copy = Some(wake_copy);
    }
    let (copy_store, copy_writer) = reflector::store();
    ctx.copies = Some(copy_store.clone());
    let (snapshot_store, writer) = reflector::store();
    ctx.snapshots = Some(snapshot_store.clone());
    let (account_store, account_writer) = reflector::store();
    ctx.accounts = Some(account_store.clone());
    ctx.schedule_clock = settings.schedule_clock;
    ctx.defaults = settings.defaults.clone();
    ctx.shard_keys = settings
        .label_selector
        .as_deref()
        .map(crate::shard::selector_keys)
        .unwrap_or_default();
    let ctx = Arc::new(ctx);
    // An AWSAccount whose readiness changes wakes the ClusterSnapshots and
    // SnapshotCopies that name it (spec.account, or the account recorded in status).
    let (account_changed, account_changes) = futures::channel::mpsc::unbounded::<String>();
    let (snapshot_account_wakes, copy_account_wakes) = {
        let (to_snapshots, snapshots_rx) = futures::channel::mpsc::unbounded::<String>();
        let (to_copies, copies_rx) = futures::channel::mpsc::unbounded::<String>();
        tokio::spawn(account_changes.for_each(move |name: String| {
            let _ = to_snapshots.unbounded_send(name.clone());
            let _ = to_copies.unbounded_send(name);
            async {}
        }));
        let (snapshots_of, copies_of) = (snapshot_store.clone(), copy_store.clone());
        (
            snapshots_rx.flat_map(move |name| {
                futures::stream::iter(
                    snapshots_of
                        .state()
                        .into_iter()
                        .filter(|o| names_account(&o.spec.account, &o.status, &name))
                        .map(|o| ObjectRef::from_obj(&*o))
                        .collect::<Vec<_>>(),
                )
            }),
            copies_rx.flat_map(move |name| {
                futures::stream::iter(
                    copies_of
                        .state()
                        .into_iter()
                        .filter(|o| names_account(&o.spec.account, &o.status, &name))
                        .map(|o| ObjectRef::from_obj(&*o))
                        .collect::<Vec<_>>(),
                )
            }),
        )
    };
    let snapshots: Vec<Api<ClusterSnapshot>> = scoped(&client, &settings.namespaces);
    let copies: Vec<Api<SnapshotCopy>> = scoped(&client, &settings.namespaces);
    let schedules: Vec<Api<SnapshotSchedule>> = scoped(&client, &settings.namespaces);
    wait_for_crd(&snapshots[0]).await;
    wait_for_crd(&copies[0]).await;
    // The runs and copies of schedules: their changes (a run becoming Ready, a copy
    // finishing) wake the schedule named by their label.
    let selector = settings.label_selector.clone();
    let selected = move |config: watcher::Config| match &selector {
        Some(s) => config.labels(s),
        None => config,
    };
    let labelled = watcher::Config::default()
        .labels(&match &settings.label_selector {
            Some(s) => format!("{SCHEDULE_LABEL},{s}"),
            None => SCHEDULE_LABEL.to_string(),
        })
        .any_semantic();
    let (labelled_snapshots, labelled_copies) = (snapshots.clone(), copies.clone());
    // Each kind is watched once: the events that change what the other kind reads of
    // an object wake the objects of the other kind that read it, once the cache holds
    // the change (so that their reconcile reads it).
    let (copies_to_wake, wake_copies_of) = futures::channel::mpsc::unbounded();
    let (snapshots_to_wake, wake_snapshots_of) = futures::channel::mpsc::unbounded();
    // Only spec changes (and deletion, which bumps the generation) trigger a reconcile:
    // the controller's own status writes do not, so progress updates cannot spin it.
    let reach = ctx.metrics.clone();
    let trigger = watch_each(
        snapshots.clone(),
        selected(watcher::Config::default().any_semantic()),
    )
    .inspect(move |r| reach.reach.kube(r.is_ok()))
    .modify(trim)
    .reflect(writer)
    .inspect(changed_for_others(
        snapshot_copy::what_copies_read,
        copies_to_wake,
    ))
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    // A ClusterSnapshot that changes what its copies read of it (becomes Ready, shares,
    // goes away: snapshot_copy::what_copies_read) wakes the copies naming it; its
    // progress writes do not.
    let copies_of = copy_store.clone();
    let copy_wakes = wake_copies_of.flat_map(move |cs: ClusterSnapshot| {
        let (namespace, name) = (cs.namespace(), cs.name_any());
        futures::stream::iter(
            copies_of
                .state()
                .into_iter()
                .filter(|c| {
                    c.namespace() == namespace
                        && c.spec
                            .source
                            .cluster_snapshot_ref
                            .as_ref()
                            .is_some_and(|r| r.name == name)
                })
                .map(|c| ObjectRef::from_obj(&*c))
                .collect::<Vec<_>>(),
        )
    });
    // A copy that asks its source to be shared while it copies (created, done, failed,
    // deleted) wakes that source, which shares or revokes; so does a copy of a source
    // being deleted (which waits for the copies AWS is making of it).
    let sources = snapshot_store.clone();
    let snapshot_wakes_by_copies = wake_snapshots_of.filter_map(move |c: SnapshotCopy| {
        let source = c.spec.source.cluster_snapshot_ref.as_ref().map(|r| {
            ObjectRef::<ClusterSnapshot>::new(&r.name)
                .within(c.namespace().as_deref().unwrap_or(""))
        });
        let wake = source.filter(|source| {
            c.spec.share_source_while_copying == Some(true)
                || sources
                    .get(source)
                    .is_some_and(|cs| cs.metadata.deletion_timestamp.is_some())
        });
        async move { wake }
    });
    let snapshot_controller = Controller::for_stream(trigger, snapshot_store.clone())
        .with_config(controller_config())
        .reconcile_on(snapshot_wakes)
        .reconcile_on(snapshot_account_wakes)
        .reconcile_on(snapshot_wakes_by_copies)
        .shutdown_on_signal();

    let reach = ctx.metrics.clone();
    let trigger = watch_each(copies, selected(watcher::Config::default().any_semantic()))
        .inspect(move |r| reach.reach.kube(r.is_ok()))
        .modify(trim)
        .reflect(copy_writer)
        .inspect(changed_for_others(
            super::cluster_snapshot::what_sources_read,
            snapshots_to_wake,
        ))
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let copy_controller = Controller::for_stream(trigger, copy_store.clone())
        .with_config(controller_config())
        .reconcile_on(copy_account_wakes)
        .reconcile_on(copy_wakes)
        .reconcile_on(copy_poller_wakes)
        .shutdown_on_signal();

    // SnapshotSchedules: their own controller, started once their CRD is installed (an
    // upgrade that has not applied the new CRD yet keeps the other kinds working).
    let (schedule_store, schedule_writer) = reflector::store();
    let schedule_controller = {
        let store = schedule_store.clone();
        let ctx = ctx.clone();
        let concurrency = settings.concurrency;
        async move {
            wait_for_crd(&schedules[0]).await;
            // Not a reachability signal for /readyz: a watch of a kind with no objects
            // yields nothing once it is back, so an error it reported while the API
            // server restarted would be the last word and keep the operator not ready.
            // The ClusterSnapshot and SnapshotCopy watches tell.
            let trigger = watch_each(
                schedules,
                selected(watcher::Config::default().any_semantic()),
            )
            .modify(trim)
            .reflect(schedule_writer)
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
            // The schedule a run or copy is labelled for, if it exists (a label naming
            // no schedule wakes nothing).
            let known = store.clone();
            let owner = move |meta: &kube::api::ObjectMeta| {
                let name = meta.labels.as_ref()?.get(SCHEDULE_LABEL)?;
                let key = ObjectRef::new(name).within(meta.namespace.as_deref()?);
                known.get(&key).is_some().then_some(key)
            };
            let owner_of_copy = owner.clone();
            let run = in_turn(
                Turns::new(concurrency),
                store.clone(),
                |_: &SnapshotSchedule| false,
                snapshot_schedule::reconcile,
            );
            Controller::for_stream(trigger, store)
                .with_config(controller_config())
                .watches_stream(
                    touched_in_each(labelled_snapshots, labelled.clone()),
                    move |cs: ClusterSnapshot| owner(&cs.metadata),
                )
                .watches_stream(
                    touched_in_each(labelled_copies, labelled),
                    move |c: SnapshotCopy| owner_of_copy(&c.metadata),
                )
                .shutdown_on_signal()
                .run(run, error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "reconcile ended with an error");
                    }
                })
                .await;
        }
    };

    // AWSAccounts (cluster-scoped, whatever namespaces are watched): their own
    // controller, started once their CRD is installed. Only spec changes trigger a
    // reconcile; each one asks for the next check (a resync while Ready, sooner while
    // not).
    let account_controller = {
        let ctx = ctx.clone();
        let accounts: Api<AWSAccount> = Api::all(client.clone());
        async move {
            wait_for_crd(&accounts).await;
            let store = account_store;
            let mut readiness = std::collections::HashMap::new();
            let trigger = watch_each(vec![accounts], watcher::Config::default().any_semantic())
                .modify(trim)
                .reflect(account_writer)
                .applied_objects()
                .map(move |r| {
                    let Ok(a) = &r else { return r };
                    let now = account_readiness(a);
                    if readiness.insert(a.name_any(), now.clone()) != Some(now) {
                        let _ = account_changed.unbounded_send(a.name_any());
                    }
                    r
                })
                .predicate_filter(predicates::generation, Default::default());
            Controller::for_stream(trigger, store)
                .with_config(controller_config())
                .shutdown_on_signal()
                .run(aws_account::reconcile, error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "reconcile ended with an error");
                    }
                })
                .await;
        }
    };

    // Objects by kind, engine and phase, the Stalled ones, the newest Ready snapshot of
    // each source and the schedules' gauges, from the caches every few seconds.
    super::gauges::spawn(
        snapshot_store.clone(),
        copy_store.clone(),
        schedule_store.clone(),
        ctx.metrics.clone(),
    );
    // Objects whose snapshot is made take turns apart from the creates and deletes.
    let run_snapshots = in_turn(
        Turns::new(settings.concurrency),
        snapshot_store.clone(),
        |cs: &ClusterSnapshot| {
            cs.metadata.deletion_timestamp.is_none()
                && cs.status.as_ref().is_some_and(|s| s.arn.is_some())
        },
        cluster_snapshot::reconcile,
    );
    let run_copies = in_turn(
        Turns::new(settings.concurrency),
        copy_store.clone(),
        |c: &SnapshotCopy| {
            c.metadata.deletion_timestamp.is_none()
                && c.status.as_ref().is_some_and(|s| s.arn.is_some())
        },
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
    tracing::info!(namespaces = ?settings.namespaces, region = ?ctx.engines.default_region(), default_deletion_policy = ?settings.defaults.deletion_policy, default_tags = ?settings.defaults.tags, "dbsnapshot-operator started");
    let log = |result: Result<_, _>| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "reconcile ended with an error");
        }
    };
    // The schedule controller waits for its CRD on its own; it has a few seconds to
    // finish once the other two stopped.
    let schedules = tokio::spawn(schedule_controller);
    let accounts = tokio::spawn(account_controller);
    futures::join!(
        snapshot_controller
            .run(run_snapshots, error_policy, ctx.clone())
            .for_each(|r| log(r.map(|_| ()).map_err(|e| e.to_string()))),
        copy_controller
            .run(run_copies, error_policy, ctx)
            .for_each(|r| log(r.map(|_| ()).map_err(|e| e.to_string()))),
    );
    for task in [schedules, accounts] {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm
    }

    fn names(store: &reflector::Store<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any()))
            .collect();
        names.sort();
        names
    }

    /// Two namespaces' watches feed one store: it is ready once both are listed, holds
    /// both, and one namespace's re-list drops only what that namespace lost.
    #[test]
    fn watches_of_several_namespaces_share_one_store() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let mut merged = Merged::new(2);
        let mut feed = |i: usize, event: Event<ConfigMap>| {
            for e in merged.next(i, Ok(event)) {
                writer.apply_watcher_event(&e.unwrap());
            }
        };
        feed(0, Event::Init);
        feed(0, Event::InitApply(cm("a", "1")));
        feed(0, Event::InitApply(cm("a", "2")));
        feed(0, Event::InitDone);
        // a is listed, b not: a's changes wait for b's listing.
        feed(0, Event::Apply(cm("a", "3")));
        feed(0, Event::Delete(cm("a", "1")));
        feed(1, Event::Init);
        feed(1, Event::InitApply(cm("b", "x")));
        // b's listing restarts: what it no longer has goes.
        feed(1, Event::Init);
        feed(1, Event::InitApply(cm("b", "y")));
        assert!(store.state().is_empty(), "{:?}", names(&store));
        feed(1, Event::InitDone);
        assert_eq!(names(&store), ["a/2", "a/3", "b/y"]);
        // a re-lists: b's objects stay, a's missing ones go.
        feed(0, Event::Init);
        feed(0, Event::InitApply(cm("a", "3")));
        feed(0, Event::InitApply(cm("a", "4")));
        feed(0, Event::InitDone);
        assert_eq!(names(&store), ["a/3", "a/4", "b/y"]);
        feed(1, Event::Apply(cm("b", "z")));
        feed(1, Event::Delete(cm("b", "y")));
        assert_eq!(names(&store), ["a/3", "a/4", "b/z"]);
    }
}
