//! The HTTP side: AWS Query requests on `POST /` (routed by `Version`, region and
//! account from the SigV4 credential scope), and the admin API under `/_emulator/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::query::{ApiError, Params, response};
use crate::state::{Caller, Faults, State, user_arn};
use crate::{docdb, elasticache, redshift};

pub type Shared = Arc<Mutex<State>>;

/// How an emulator starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds a snapshot takes from creating (or copying) to available.
    pub snapshot_seconds: f64,
    pub faults: Faults,
    /// Access key id -> secret access key, used to verify presigned URLs.
    pub credentials: HashMap<String, String>,
    /// Seed of the fault-injection random numbers.
    pub seed: u64,
    /// IAM roles STS AssumeRole may hand out.
    pub roles: Vec<crate::sts::Role>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            snapshot_seconds: 5.0,
            faults: Faults::default(),
            credentials: default_credentials(),
            seed: 1,
            roles: Vec::new(),
        }
    }
}

/// The test bed's static credentials, for two accounts.
pub fn default_credentials() -> HashMap<String, String> {
    HashMap::from([
        (
            "AKIATEST123456789012".to_string(),
            "testbed-secret-key".to_string(),
        ),
        (
            "AKIATEST210987654321".to_string(),
            "testbed-secret-key".to_string(),
        ),
    ])
}

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", post(aws))
        .route("/_emulator/health", get(|| async { "ok" }))
        .route("/_emulator/calls", get(calls))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/faults", get(get_faults).post(set_faults))
        .route("/_emulator/settings", get(get_settings).post(set_settings))
        .route("/_emulator/exports", get(exports))
        .route(
            "/_emulator/redshift/automated-snapshot",
            post(automated_snapshot),
        )
        .route("/_emulator/snapshots/fail", post(fail_snapshot))
        .route("/_emulator/snapshots/status", post(snapshot_status))
        .route("/_emulator/clusters/status", post(cluster_status))
        .route("/_emulator/seed", post(seed))
        .route(
            "/_emulator/roles",
            get(list_roles).post(put_role).delete(delete_role),
        )
        .with_state(state)
}

/// Binds 127.0.0.1:`port` (0 picks a free one) and serves until the task is dropped.
pub async fn start(
    port: u16,
    options: Options,
) -> std::io::Result<(SocketAddr, Shared, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let mut state = State::new(
        options.faults,
        options.snapshot_seconds,
        options.credentials,
        options.seed,
    );
    for role in options.roles {
        state.roles.insert(role.role_arn.clone(), role);
    }
    let state = Arc::new(Mutex::new(state));
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, state, task))
}

/// Access key and region from `Authorization: AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request, ...`.
fn credential_scope(headers: &HeaderMap) -> (String, String) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scope = auth
        .split("Credential=")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .unwrap_or_default();
    let mut parts = scope.split('/');
    let access_key = parts.next().unwrap_or_default().to_string();
    let region = parts.nth(1).unwrap_or("us-east-1").to_string();
    (access_key, region)
}

fn request_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn xml(status: u16, rid: &str, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "text/xml".to_string()),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                rid.to_string(),
            ),
        ],
        body,
    )
        .into_response()
}

async fn aws(Extract(state): Extract<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let rid = request_id();
    let params = Params::from_form(&body);
    let action = params.get("Action").unwrap_or_default().to_string();
    let (service, xmlns): (&str, &str) = match params.get("Version") {
        Some("2012-12-01") => ("redshift", redshift::XMLNS),
        Some("2014-10-31") => ("docdb", docdb::XMLNS),
        Some("2015-02-02") => ("elasticache", elasticache::XMLNS),
        Some("2011-06-15") => ("sts", crate::sts::XMLNS),
        other => {
            let e = ApiError::bad(
                "NoSuchVersion",
                format!(
                    "API version {} is not served here",
                    other.unwrap_or("(none)")
                ),
            );
            return xml(e.status, &rid, e.to_xml("", &rid));
        }
    };
    let latency = lock(&state).faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (access_key, region) = credential_scope(&headers);
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    let now = Utc::now();
    let identity = {
        let mut st = lock(&state);
        let identity = st.authenticate(&access_key, token, now);
        if identity.is_err() {
            st.counters.refused_credentials += 1;
        }
        identity
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => return xml(e.status, &rid, e.to_xml(xmlns, &rid)),
    };
    let caller = Caller {
        account: identity.account,
        arn: identity.arn,
        user_id: identity.user_id,
        region,
        now,
        instant: Instant::now(),
        seconds_per_day: lock(&state).seconds_per_day,
    };
    let naming_one = crate::state::SNAPSHOT_PARAMETERS
        .iter()
        .any(|p| params.get(p).is_some());
    let (result, hold) = {
        let mut st = lock(&state);
        if naming_one {
            *st.counters
                .naming_one_snapshot
                .entry(format!("{service}:{action}"))
                .or_default() += 1;
        }
        let result = st
            .admit(service, &action, &caller)
            .and_then(|()| deny(&st.faults, service, &action, &caller))
            .and_then(|()| match service {
                "redshift" => redshift::handle(&mut st, &caller, &action, &params),
                "docdb" => docdb::handle(&mut st, &caller, &action, &params),
                "sts" => crate::sts::handle(&mut st, &caller, &action, &params),
                _ => elasticache::handle(&mut st, &caller, &action, &params),
            });
        let hold = st
            .faults
            .delay_actions
            .contains(&action)
            .then_some(st.faults.delay_response_ms);
        (result, hold)
    };
    if let Some(ms) = hold {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match result {
        Ok(reply) => xml(200, &rid, response(&action, xmlns, &rid, reply)),
        Err(e) => xml(e.status, &rid, e.to_xml(xmlns, &rid)),
    }
}

/// The `failActions` fault: AWS's answer to a call that IAM denies (code AccessDenied,
/// HTTP 403), before the action takes effect. Also the `dependentThrottleActions`
/// fault: Redshift's DependentServiceRequestThrottlingFault (HTTP 400, service-2.json
/// shape of that name), before the action takes effect.
fn deny(faults: &Faults, service: &str, action: &str, caller: &Caller) -> Result<(), ApiError> {
    if faults.dependent_throttles(service, action) {
        return Err(ApiError::bad(
            "DependentServiceRequestThrottlingFault",
            "The request cannot be completed because a dependent service is throttling \
             requests made by Amazon Redshift on your behalf. Wait and retry the request.",
        ));
    }
    if !faults.denies(service, action) {
        return Ok(());
    }
    // The IAM prefix of each service's actions (DocumentDB's are rds:).
    let prefix = match service {
        "docdb" => "rds",
        other => other,
    };
    Err(ApiError::new(
        403,
        "AccessDenied",
        format!(
            "User: arn:aws:iam::{}:user/caller is not authorized to perform: {prefix}:{action} \
             because no identity-based policy allows the {prefix}:{action} action",
            caller.account
        ),
    ))
}

async fn calls(Extract(state): Extract<Shared>) -> Json<Value> {
    Json(json!(lock(&state).counters))
}

async fn reset(Extract(state): Extract<Shared>) -> StatusCode {
    lock(&state).reset();
    StatusCode::NO_CONTENT
}

async fn get_faults(Extract(state): Extract<Shared>) -> Json<Faults> {
    Json(lock(&state).faults.clone())
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Merges the given fields into the current faults.
async fn set_faults(Extract(state): Extract<Shared>, Json(patch): Json<Value>) -> Response {
    let mut st = lock(&state);
    let mut current = serde_json::to_value(&st.faults).expect("faults serialise");
    let Value::Object(fields) = patch else {
        return bad_request("expected a JSON object".to_string());
    };
    for (k, v) in fields {
        if current.get(&k).is_none() {
            return bad_request(format!("unknown fault setting {k}"));
        }
        current[k] = v;
    }
    match serde_json::from_value::<Faults>(current) {
        Ok(f) => {
            st.faults = f.clone();
            Json(f).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn get_settings(Extract(state): Extract<Shared>) -> Json<Value> {
    let st = lock(&state);
    Json(json!({
        "snapshotSeconds": st.snapshot_seconds,
        "secondsPerDay": st.seconds_per_day,
        "pageSize": st.paging.page_size.unwrap_or(0),
        "deleteSeconds": st.delete_seconds,
        "oneSnapshotAtATime": st.one_snapshot_at_a_time,
        "sessionSeconds": st.session_seconds,
    }))
}

/// Each key is optional: only the keys given change.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    snapshot_seconds: Option<f64>,
    /// How many real seconds an emulated retention day lasts (default 86400): Redshift
    /// manual snapshots expire, and ManualSnapshotRemainingDays counts down, by it.
    seconds_per_day: Option<f64>,
    /// The most items a Describe response holds (0: no cap, as by default), whatever
    /// MaxRecords asks, clamped to each action's MaxRecords range (20..=100, ElastiCache
    /// DescribeSnapshots 20..=50); see `query::Paging`.
    page_size: Option<i64>,
    /// How long a deleted DocumentDB or ElastiCache snapshot stays `deleting`, its
    /// name taken, in seconds (default 0: gone at once).
    delete_seconds: Option<f64>,
    /// ElastiCache's one snapshot of a group at a time (default true, as AWS).
    one_snapshot_at_a_time: Option<bool>,
    /// The longest STS temporary credentials last from now on, in real seconds,
    /// whatever AssumeRole's DurationSeconds asks (0: as asked, the default), so that
    /// tests see credentials expire and get refreshed.
    session_seconds: Option<f64>,
}

async fn set_settings(
    Extract(state): Extract<Shared>,
    Json(settings): Json<Settings>,
) -> Json<Value> {
    {
        let mut st = lock(&state);
        if let Some(s) = settings.snapshot_seconds {
            st.snapshot_seconds = s.max(0.0);
        }
        if let Some(d) = settings.seconds_per_day {
            st.seconds_per_day = d.max(0.001);
        }
        if let Some(one) = settings.one_snapshot_at_a_time {
            st.one_snapshot_at_a_time = one;
        }
        if let Some(s) = settings.session_seconds {
            st.session_seconds = s.max(0.0);
        }
        if let Some(d) = settings.delete_seconds {
            st.delete_seconds = d.max(0.0);
        }
        if let Some(n) = settings.page_size {
            st.paging.page_size = (n > 0).then_some(n);
        }
    }
    get_settings(Extract(state)).await
}

/// Every export requested, each with its `status`: exporting, completed or failed.
async fn exports(Extract(state): Extract<Shared>) -> Json<Value> {
    let now = Instant::now();
    Json(Value::Array(
        lock(&state).exports.iter().map(|e| e.view(now)).collect(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AutomatedSnapshot {
    cluster_identifier: String,
    /// The identifier to use (default: `rs:<cluster>-<yyyy-mm-dd-hh-mm>` of now).
    #[serde(default)]
    snapshot_identifier: Option<String>,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default = "default_account")]
    account: String,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

fn default_account() -> String {
    crate::state::DEFAULT_ACCOUNT.to_string()
}

/// "Take an automated snapshot of cluster X now."
async fn automated_snapshot(
    Extract(state): Extract<Shared>,
    Json(req): Json<AutomatedSnapshot>,
) -> Response {
    let mut st = lock(&state);
    let caller = Caller {
        account: req.account.clone(),
        arn: user_arn(&req.account),
        user_id: format!("AIDA{}", req.account),
        region: req.region.clone(),
        now: Utc::now(),
        instant: Instant::now(),
        seconds_per_day: st.seconds_per_day,
    };
    let progress = st.progress(&caller);
    let world = &mut st.region(&req.region).redshift;
    let Some(cluster) = world
        .clusters
        .get(&(req.account.clone(), req.cluster_identifier.clone()))
        .cloned()
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("cluster {} not found in {} for account {}", req.cluster_identifier, req.region, req.account) })),
        )
            .into_response();
    };
    let id = redshift::insert_automated(
        world,
        &caller,
        &cluster,
        progress,
        req.snapshot_identifier.as_deref(),
    );
    Json(json!({ "snapshotIdentifier": id })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailSnapshot {
    service: String,
    identifier: String,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default = "default_account")]
    account: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotStatus {
    service: String,
    identifier: String,
    /// The status to show from now on; null or empty: the snapshot's own again.
    status: Option<String>,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default = "default_account")]
    account: String,
}

/// Shows a snapshot with the given status from now on: any status the service's model
/// documents (Redshift `cancelled`, `final snapshot`; ElastiCache `restoring`,
/// `copying`; ...) or one it does not.
async fn snapshot_status(
    Extract(state): Extract<Shared>,
    Json(req): Json<SnapshotStatus>,
) -> Response {
    let forced = req
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(crate::state::intern);
    mark_snapshot(
        &state,
        &req.service,
        &req.region,
        &req.account,
        &req.identifier,
        Mark::Status(forced),
    )
}

/// What the admin API does to one snapshot.
enum Mark {
    /// `failed`, as AWS marks a backup that failed.
    Failed,
    /// This status from now on (None: its own again).
    Status(Option<&'static str>),
}

fn mark_snapshot(
    state: &Shared,
    service: &str,
    region: &str,
    account: &str,
    identifier: &str,
    mark: Mark,
) -> Response {
    let mut st = lock(state);
    let r = st.region(region);
    let key = (account.to_string(), identifier.to_string());
    // DocumentDB and ElastiCache keep their identifiers lowercased.
    let lowered = (account.to_string(), identifier.to_ascii_lowercase());
    macro_rules! apply {
        ($snapshot:expr) => {
            $snapshot.map(|s| match mark {
                Mark::Failed => s.failed = true,
                Mark::Status(forced) => s.forced = forced,
            })
        };
    }
    let found = match service {
        "redshift" => apply!(r.redshift.snapshots.get_mut(&key)),
        "docdb" => apply!(r.docdb.snapshots.get_mut(&lowered)),
        "elasticache" => apply!(r.elasticache.snapshots.get_mut(&lowered)),
        other => return bad_request(format!("unknown service {other}")),
    };
    match found {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no {service} snapshot {identifier}") })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterStatus {
    service: String,
    /// The Redshift or DocumentDB cluster, ElastiCache replication group or cache
    /// cluster.
    identifier: String,
    /// What it is meanwhile (`modifying`, `resizing`, `maintenance`...).
    status: String,
    /// For how long; 0 makes it available again.
    seconds: f64,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default = "default_account")]
    account: String,
}

/// Makes a cluster unavailable for a while, as a modification, resize or maintenance
/// window does: CreateClusterSnapshot, CreateDBClusterSnapshot and CreateSnapshot are
/// refused with the service's fault meanwhile.
async fn cluster_status(
    Extract(state): Extract<Shared>,
    Json(req): Json<ClusterStatus>,
) -> Response {
    if !matches!(req.service.as_str(), "redshift" | "docdb" | "elasticache") {
        return bad_request(format!("unknown service {}", req.service));
    }
    let until =
        std::time::Instant::now() + std::time::Duration::from_secs_f64(req.seconds.max(0.0));
    lock(&state).cluster_states.insert(
        (
            req.service,
            req.region,
            req.account,
            req.identifier.to_ascii_lowercase(),
        ),
        (req.status, until),
    );
    StatusCode::NO_CONTENT.into_response()
}

/// Marks a snapshot `failed`, as AWS does when a backup fails.
async fn fail_snapshot(Extract(state): Extract<Shared>, Json(req): Json<FailSnapshot>) -> Response {
    mark_snapshot(
        &state,
        &req.service,
        &req.region,
        &req.account,
        &req.identifier,
        Mark::Failed,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seed {
    #[serde(default = "default_region")]
    region: String,
    #[serde(default = "default_account")]
    account: String,
    #[serde(default)]
    redshift: Vec<String>,
    #[serde(default)]
    docdb: Vec<String>,
    #[serde(default)]
    replication_groups: Vec<String>,
    #[serde(default)]
    cache_clusters: Vec<String>,
}

/// Creates clusters through the same code as the AWS actions (for demos and tests
/// without an SDK at hand). Clusters that exist already are left as they are.
async fn seed(Extract(state): Extract<Shared>, Json(req): Json<Seed>) -> Response {
    let mut st = lock(&state);
    let caller = Caller {
        account: req.account.clone(),
        arn: user_arn(&req.account),
        user_id: format!("AIDA{}", req.account),
        region: req.region.clone(),
        now: Utc::now(),
        instant: Instant::now(),
        seconds_per_day: st.seconds_per_day,
    };
    let mut created = Vec::new();
    /// (service, action, parameters)
    type Call<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let mut calls: Vec<Call> = Vec::new();
    for id in &req.redshift {
        calls.push((
            "redshift",
            "CreateCluster",
            vec![
                ("ClusterIdentifier", id),
                ("NodeType", "ra3.xlplus"),
                ("MasterUsername", "admin"),
            ],
        ));
    }
    for id in &req.docdb {
        calls.push((
            "docdb",
            "CreateDBCluster",
            vec![("DBClusterIdentifier", id), ("Engine", "docdb")],
        ));
    }
    for id in &req.replication_groups {
        calls.push((
            "elasticache",
            "CreateReplicationGroup",
            vec![
                ("ReplicationGroupId", id),
                ("ReplicationGroupDescription", "seeded"),
                ("Engine", "valkey"),
            ],
        ));
    }
    for id in &req.cache_clusters {
        calls.push((
            "elasticache",
            "CreateCacheCluster",
            vec![("CacheClusterId", id), ("Engine", "redis")],
        ));
    }
    for (service, action, params) in calls {
        let p = Params::from_pairs(params);
        let result = match service {
            "redshift" => redshift::handle(&mut st, &caller, action, &p),
            "docdb" => docdb::handle(&mut st, &caller, action, &p),
            _ => elasticache::handle(&mut st, &caller, action, &p),
        };
        match result {
            Ok(_) => created.push(format!("{service}:{action}")),
            Err(e) if e.code.contains("AlreadyExists") => {}
            Err(e) => return bad_request(format!("{service} {action}: {}: {}", e.code, e.message)),
        }
    }
    Json(json!({ "created": created })).into_response()
}

async fn list_roles(Extract(state): Extract<Shared>) -> Json<Value> {
    Json(json!(lock(&state).roles.values().collect::<Vec<_>>()))
}

/// Creates a role, or replaces its trust (what IAM's CreateRole and
/// UpdateAssumeRolePolicy do): `{"roleArn", "trustedAccounts", "externalId",
/// "maxSessionDuration"}`. Credentials handed out before stay valid until they expire,
/// as in AWS.
async fn put_role(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    let role: crate::sts::Role = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    if let Err(e) = role.check() {
        return bad_request(e);
    }
    lock(&state)
        .roles
        .insert(role.role_arn.clone(), role.clone());
    Json(role).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleRef {
    role_arn: String,
}

/// Deletes a role: AssumeRole of it is denied from now on.
async fn delete_role(Extract(state): Extract<Shared>, Json(r): Json<RoleRef>) -> Response {
    match lock(&state).roles.remove(&r.role_arn) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no role {}", r.role_arn) })),
        )
            .into_response(),
    }
}
