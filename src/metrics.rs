//! Prometheus metrics and the operator's HTTP endpoints: `/metrics`, `/healthz` and
//! `/readyz`. Does IO (serves HTTP).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCall {
    service: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub kind: String,
    pub engine: String,
    pub phase: String,
}

/// One Stalled object: its series exists while it is Stalled, so an alert `for` a
/// while follows that object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StalledLabels {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// The Stalled condition's reason (AWSError, InvalidSpec, NotFound...).
    pub reason: String,
}

/// The snapshots of one source (a cluster, replication group or cache cluster; for a
/// SnapshotCopy, the snapshot it copies) in one namespace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub namespace: String,
    pub kind: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    class: String,
}

/// One kind of write to the API server: the verb and the resource written (with its
/// subresource: `clustersnapshots/status`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeWrite {
    pub verb: String,
    pub resource: String,
}

/// The write a request to the API server makes, if it writes: its verb (create,
/// update, patch, delete) and resource (`clustersnapshots`, `clustersnapshots/status`,
/// `events`, `leases`), from its method and path.
pub fn kube_write(method: &str, path: &str) -> Option<KubeWrite> {
    let verb = match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => return None,
    };
    let path = path.split('?').next().unwrap_or_default();
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    // /api/v1/... or /apis/<group>/<version>/...
    match segments.next()? {
        "api" => {
            segments.next()?;
        }
        "apis" => {
            segments.next()?;
            segments.next()?;
        }
        _ => return None,
    }
    let mut rest: Vec<&str> = segments.collect();
    if rest.len() >= 3 && rest[0] == "namespaces" {
        rest.drain(..2);
    }
    let resource = match rest.as_slice() {
        [] => return None,
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    };
    Some(KubeWrite {
        verb: verb.to_string(),
        resource,
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceRegion {
    service: String,
    region: String,
}

/// A SnapshotSchedule's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub namespace: String,
    pub schedule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleOutcome {
    namespace: String,
    schedule: String,
    outcome: String,
}

/// What a schedule's status says now, for its gauges.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleState {
    /// `status.lastSuccessfulTime` as Unix seconds (no series until a run succeeded).
    pub last_success: Option<f64>,
    /// `status.snapshots`.
    pub snapshots: i64,
}

pub struct Metrics {
    registry: Registry,
    schedule_runs: Family<ScheduleOutcome, Counter>,
    schedule_last_success: Family<ScheduleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    schedule_snapshots: Family<ScheduleLabels, Gauge>,
    reconciles: Family<Outcome, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<Kind, Histogram>,
    aws_calls: Family<AwsCall, Counter>,
    aws_throttles: Family<ServiceLabel, Counter>,
    objects: Family<ObjectLabels, Gauge>,
    stalled: Family<StalledLabels, Gauge>,
    last_ready: Family<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    ready: Gauge,
    aws_rate: Family<ServiceRegion, Gauge<f64, std::sync::atomic::AtomicU64>>,
    polls: Family<ServiceRegion, Counter>,
    kube_writes: Family<KubeWrite, Counter>,
    /// Whether the API server and AWS answer, from the operator's own calls.
    pub reach: Reach,
}

/// How long a call to AWS that got no answer keeps the operator not ready when nothing
/// has been answered since (objects back off; with none in flight no call says AWS is
/// back).
pub const AWS_UNREACHED_FOR: Duration = Duration::from_secs(90);

/// What the operator's own calls say about reaching the API server (its watches) and
/// AWS (every SDK attempt), for `/readyz`.
#[derive(Debug, Default)]
pub struct Reach {
    state: Mutex<ReachState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ReachState {
    kube_down: bool,
    aws_unreached: Option<Instant>,
    aws_reached: Option<Instant>,
}

impl Reach {
    /// A watch of the API server got an answer (or failed).
    pub fn kube(&self, reached: bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.kube_down == reached {
            if reached {
                tracing::info!("the API server answers again");
            } else {
                tracing::warn!("the API server cannot be reached; not ready until it can");
            }
        }
        st.kube_down = !reached;
    }

    /// An AWS call attempt got an answer (any answer, errors included) or none.
    pub fn aws(&self, reached: bool) {
        self.aws_at(reached, Instant::now());
    }

    fn aws_at(&self, reached: bool, now: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let was_down = st.aws_down(now);
        if reached {
            st.aws_reached = Some(now);
        } else {
            st.aws_unreached = Some(now);
        }
        match (was_down, st.aws_down(now)) {
            (false, true) => {
                tracing::warn!("AWS does not answer; not ready until it does");
            }
            (true, false) => tracing::info!("AWS answers again"),
            _ => {}
        }
    }

    /// Why the operator cannot work now, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        self.problem_at(Instant::now())
    }

    fn problem_at(&self, now: Instant) -> Option<&'static str> {
        let st = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.kube_down {
            Some("the API server cannot be reached")
        } else if st.aws_down(now) {
            Some("AWS does not answer")
        } else {
            None
        }
    }
}

impl ReachState {
    fn aws_down(&self, now: Instant) -> bool {
        self.aws_unreached.is_some_and(|u| {
            self.aws_reached.is_none_or(|r| r < u) && now.duration_since(u) < AWS_UNREACHED_FOR
        })
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dbsnapshot");
        let reconciles = Family::<Outcome, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<Kind, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and error class",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        let aws_calls = Family::<AwsCall, Counter>::default();
        let aws_throttles = Family::<ServiceLabel, Counter>::default();
        let objects = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "aws_calls",
            "AWS call attempts by service, operation and outcome",
            aws_calls.clone(),
        );
        registry.register(
            "aws_throttles",
            "AWS call attempts answered with throttling, by service",
            aws_throttles.clone(),
        );
        registry.register(
            "objects",
            "Objects by kind, engine and phase",
            objects.clone(),
        );
        let stalled = Family::<StalledLabels, Gauge>::default();
        registry.register(
            "object_stalled",
            "1 for each object (ClusterSnapshot, SnapshotCopy, SnapshotSchedule) whose \
             Stalled condition is True: it waits for a change from outside; the reason \
             label is the condition's",
            stalled.clone(),
        );
        let last_ready =
            Family::<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "snapshot_last_ready_timestamp_seconds",
            "When the newest Ready snapshot of a source was taken (Unix seconds; AWS's \
             creation time, else when it became Ready), by namespace, kind and source \
             (ClusterSnapshot: the cluster, replication group or cache cluster; \
             SnapshotCopy: the snapshot copied)",
            last_ready.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while the operator is ready (caches synced, the API server and AWS \
             answer; what /readyz says), 0 otherwise",
            ready.clone(),
        );
        let aws_rate = Family::<ServiceRegion, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let polls = Family::<ServiceRegion, Counter>::default();
        registry.register(
            "aws_rate_limit",
            "Requests per second the client-side budget allows now, by service and region \
             (lowered for a while after AWS throttles)",
            aws_rate.clone(),
        );
        registry.register(
            "batch_polls",
            "Batched describes of a source cluster's snapshots, by service and region",
            polls.clone(),
        );
        let kube_writes = Family::<KubeWrite, Counter>::default();
        registry.register(
            "kube_writes",
            "Requests that write to the API server (status and metadata patches, \
             finalizer updates, Events, Leases, deletes) by verb and resource, counted as \
             they are sent",
            kube_writes.clone(),
        );
        let schedule_runs = Family::<ScheduleOutcome, Counter>::default();
        let schedule_last_success =
            Family::<ScheduleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let schedule_snapshots = Family::<ScheduleLabels, Gauge>::default();
        registry.register(
            "schedule_runs",
            "SnapshotSchedule runs by outcome: created, skipped (concurrencyPolicy Forbid), \
             missed (past startingDeadlineSeconds, or not made after downtime), failed (the \
             run's ClusterSnapshot failed, or could not be created)",
            schedule_runs.clone(),
        );
        registry.register(
            "schedule_last_success_timestamp_seconds",
            "When the newest run of a SnapshotSchedule became Ready (Unix seconds)",
            schedule_last_success.clone(),
        );
        registry.register(
            "schedule_snapshots",
            "Ready snapshots a SnapshotSchedule keeps now",
            schedule_snapshots.clone(),
        );
        Self {
            registry,
            schedule_runs,
            schedule_last_success,
            schedule_snapshots,
            aws_rate,
            polls,
            kube_writes,
            reach: Reach::default(),
            reconciles,
            errors,
            duration,
            aws_calls,
            aws_throttles,
            objects,
            stalled,
            last_ready,
            ready,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Counts one reconcile: `ok` is false for a retried error and for a terminal one
    /// (the object written Stalled).
    pub fn reconciled(&self, kind: &str, took: Duration, ok: bool) {
        self.reconciles
            .get_or_create(&Outcome {
                kind: kind.to_string(),
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_error(&self, kind: &str, class: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                class: class.to_string(),
            })
            .inc();
    }

    pub fn aws_call(&self, service: &str, operation: &str, outcome: &str) {
        self.aws_calls
            .get_or_create(&AwsCall {
                service: service.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        if outcome == "throttled" {
            self.aws_throttles
                .get_or_create(&ServiceLabel {
                    service: service.to_string(),
                })
                .inc();
        }
    }

    pub fn set_aws_rate(&self, service: &str, region: &str, rate: f64) {
        self.aws_rate
            .get_or_create(&ServiceRegion {
                service: service.to_string(),
                region: region.to_string(),
            })
            .set(rate);
    }

    pub fn batch_poll(&self, service: &str, region: &str) {
        self.polls
            .get_or_create(&ServiceRegion {
                service: service.to_string(),
                region: region.to_string(),
            })
            .inc();
    }

    /// Counts a request to the API server if it writes.
    pub fn kube_request(&self, method: &str, path: &str) {
        if let Some(write) = kube_write(method, path) {
            self.kube_writes.get_or_create(&write).inc();
        }
    }

    /// A layer for the Kubernetes client that counts its writes
    /// ([`Metrics::kube_request`]).
    pub fn kube_write_layer(
        self: &Arc<Self>,
    ) -> tower::util::MapRequestLayer<
        impl Fn(http::Request<kube::client::Body>) -> http::Request<kube::client::Body> + Clone + use<>,
    > {
        let metrics = self.clone();
        tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            metrics.kube_request(req.method().as_str(), req.uri().path());
            req
        })
    }

    /// Replaces the object counts.
    pub fn set_objects(&self, counts: &std::collections::HashMap<ObjectLabels, i64>) {
        self.objects.clear();
        for (labels, n) in counts {
            self.objects.get_or_create(labels).set(*n);
        }
    }

    /// Replaces the Stalled objects' series.
    pub fn set_stalled(&self, stalled: &std::collections::HashSet<StalledLabels>) {
        self.stalled.clear();
        for labels in stalled {
            self.stalled.get_or_create(labels).set(1);
        }
    }

    /// Replaces the newest Ready snapshot times (Unix seconds) per source; a source
    /// whose snapshots are all gone loses its series.
    pub fn set_last_ready(&self, times: &std::collections::HashMap<SourceLabels, f64>) {
        self.last_ready.clear();
        for (labels, t) in times {
            self.last_ready.get_or_create(labels).set(*t);
        }
    }

    /// Counts `n` runs of a schedule with this outcome.
    pub fn schedule_runs(&self, namespace: &str, schedule: &str, outcome: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.schedule_runs
            .get_or_create(&ScheduleOutcome {
                namespace: namespace.to_string(),
                schedule: schedule.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    /// Sets the schedules' gauges from their statuses; schedules that are gone lose their
    /// series (an alert on an old last success must not fire for a deleted schedule).
    pub fn set_schedules(&self, states: &std::collections::HashMap<ScheduleLabels, ScheduleState>) {
        self.schedule_last_success.clear();
        self.schedule_snapshots.clear();
        for (labels, state) in states {
            if let Some(t) = state.last_success {
                self.schedule_last_success.get_or_create(labels).set(t);
            }
            self.schedule_snapshots
                .get_or_create(labels)
                .set(state.snapshots);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("metrics encode");
        out
    }
}

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl Endpoints {
    /// Why the operator is not ready, if it is not: what `/readyz` and the `ready` gauge
    /// say.
    fn not_ready(&self) -> Option<&'static str> {
        if !self.ready.load(Ordering::Relaxed) {
            Some("waiting for the CRDs and caches")
        } else {
            self.metrics.reach.problem()
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` (200 once `ready` is set) on `addr`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(e): State<Endpoints>| async move {
                match e.not_ready() {
                    Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
                    None => (StatusCode::OK, "ok".to_string()),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(e): State<Endpoints>| async move {
                e.metrics.ready.set(i64::from(e.not_ready().is_none()));
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    e.metrics.render(),
                )
                    .into_response()
            }),
        )
        .with_state(Endpoints { metrics, ready });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_to_the_api_server_are_told_by_verb_and_resource() {
        let w = |m: &str, p: &str| kube_write(m, p).map(|w| format!("{} {}", w.verb, w.resource));
        let ns = "/apis/dbsnapshot.io/v1alpha1/namespaces/data";
        for (method, path, want) in [
            (
                "PATCH",
                format!("{ns}/clustersnapshots/a/status?fieldManager=x&force=true"),
                Some("patch clustersnapshots/status"),
            ),
            (
                "PATCH",
                format!("{ns}/clustersnapshots/a"),
                Some("patch clustersnapshots"),
            ),
            (
                "PUT",
                format!("{ns}/snapshotcopies/a"),
                Some("update snapshotcopies"),
            ),
            (
                "POST",
                format!("{ns}/clustersnapshots"),
                Some("create clustersnapshots"),
            ),
            (
                "DELETE",
                format!("{ns}/clustersnapshots/a"),
                Some("delete clustersnapshots"),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/data/events".into(),
                Some("create events"),
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/op".into(),
                Some("update leases"),
            ),
            (
                "POST",
                "/api/v1/namespaces".into(),
                Some("create namespaces"),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/data".into(),
                Some("patch namespaces"),
            ),
            ("GET", format!("{ns}/clustersnapshots?watch=true"), None),
            ("GET", format!("{ns}/clustersnapshots/a"), None),
            ("POST", "/version".into(), None),
            ("POST", "/apis".into(), None),
        ] {
            assert_eq!(w(method, &path).as_deref(), want, "{method} {path}");
        }
    }

    #[test]
    fn writes_are_counted_and_reads_are_not() {
        let m = Metrics::default();
        m.kube_request(
            "PATCH",
            "/apis/dbsnapshot.io/v1alpha1/namespaces/d/clustersnapshots/a/status",
        );
        m.kube_request(
            "PATCH",
            "/apis/dbsnapshot.io/v1alpha1/namespaces/d/clustersnapshots/b/status",
        );
        m.kube_request(
            "GET",
            "/apis/dbsnapshot.io/v1alpha1/namespaces/d/clustersnapshots/a",
        );
        let text = m.render();
        assert!(
            text.contains(
                "dbsnapshot_kube_writes_total{verb=\"patch\",resource=\"clustersnapshots/status\"} 2"
            ),
            "{text}"
        );
        assert!(!text.contains("verb=\"get\""), "{text}");
    }

    #[test]
    fn schedule_series_follow_the_schedules_that_exist() {
        let m = Metrics::default();
        m.schedule_runs("data", "nightly", "created", 2);
        m.schedule_runs("data", "nightly", "missed", 0);
        let labels = ScheduleLabels {
            namespace: "data".to_string(),
            schedule: "nightly".to_string(),
        };
        let state = ScheduleState {
            last_success: Some(1_700_000_000.0),
            snapshots: 3,
        };
        m.set_schedules(&[(labels, state)].into_iter().collect());
        let out = m.render();
        assert!(out.contains(
            "dbsnapshot_schedule_runs_total{namespace=\"data\",schedule=\"nightly\",outcome=\"created\"} 2"
        ), "{out}");
        assert!(!out.contains("outcome=\"missed\""), "{out}");
        assert!(out.contains(
            "dbsnapshot_schedule_last_success_timestamp_seconds{namespace=\"data\",schedule=\"nightly\"} 1700000000"
        ), "{out}");
        assert!(
            out.contains(
                "dbsnapshot_schedule_snapshots{namespace=\"data\",schedule=\"nightly\"} 3"
            ),
            "{out}"
        );
        // The schedule is deleted: its gauges go.
        m.set_schedules(&Default::default());
        let out = m.render();
        assert!(!out.contains("dbsnapshot_schedule_snapshots{"), "{out}");
        assert!(
            !out.contains("dbsnapshot_schedule_last_success_timestamp_seconds{"),
            "{out}"
        );
    }

    #[test]
    fn readiness_follows_what_the_calls_reach() {
        let r = Reach::default();
        let t0 = Instant::now();
        assert_eq!(r.problem_at(t0), None);
        // The API server: down from a failed watch until one succeeds.
        r.kube(false);
        assert_eq!(r.problem_at(t0), Some("the API server cannot be reached"));
        r.kube(true);
        assert_eq!(r.problem_at(t0), None);
        // AWS: down from an unanswered attempt until one is answered...
        r.aws_at(false, t0);
        assert_eq!(r.problem_at(t0), Some("AWS does not answer"));
        let s = Duration::from_secs;
        r.aws_at(true, t0 + s(5));
        assert_eq!(r.problem_at(t0 + s(5)), None);
        // ...or until nothing has said so for a while (no calls in flight).
        r.aws_at(false, t0 + s(10));
        assert_eq!(r.problem_at(t0 + s(11)), Some("AWS does not answer"));
        assert_eq!(r.problem_at(t0 + s(10) + AWS_UNREACHED_FOR), None);
        // Both: the API server is named first.
        r.kube(false);
        assert_eq!(
            r.problem_at(t0 + s(11)),
            Some("the API server cannot be reached")
        );
    }
}
