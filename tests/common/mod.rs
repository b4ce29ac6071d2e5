//! The operator's integration test harness: a real kube-apiserver (the test bed, started
//! once and shared), one namespace, one AWS emulator and one operator process per test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_emulator::children::Child;
use aws_emulator::server::{Options, Shared};
use dbsnapshot_operator::api::{
    AWSAccount, ClusterSnapshot, SnapshotCopy, SnapshotSchedule, SnapshotStatus,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use serde_json::json;

pub const KEY: &str = "AKIATEST123456789012";
pub const SECRET: &str = "testbed-secret-key";
pub const ACCOUNT: &str = "123456789012";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();

/// The shared kube-apiserver of the test bed (`up.sh --kube-only`, state in
/// `target/testbed-it`), started on first use and reused by every test and test
/// binary; `tests/run-all.sh` stops it at the end.
pub fn kubeconfig() -> PathBuf {
    KUBECONFIG
        .get_or_init(|| testbed(&root().join("target/testbed-it")))
        .clone()
}

/// Brings up (or reuses) a kube-apiserver and etcd whose state lives in `state`; its
/// kubeconfig.
pub fn testbed(state: &std::path::Path) -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("tests/testbed/up.sh"))
        .arg("--kube-only")
        .env("TESTBED_STATE", state)
        .output()
        .expect("run tests/testbed/up.sh");
    assert!(
        out.status.success(),
        "the test bed did not come up:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    state.join("kubeconfig")
}

pub async fn client() -> Client {
    client_for(&kubeconfig()).await
}

pub async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// Installs (server-side applies) both CRDs and waits until they are served.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Create or replace rather than server-side apply: the v1.20 server rejects
    // x-kubernetes-validations under apply but silently drops it on create/update.
    for crd in [
        ClusterSnapshot::crd(),
        SnapshotCopy::crd(),
        SnapshotSchedule::crd(),
        AWSAccount::crd(),
    ] {
        for attempt in 0.. {
            let result = match crds.get_opt(&crd.name_any()).await.expect("get CRD") {
                None => crds.create(&PostParams::default(), &crd).await.map(|_| ()),
                Some(existing) => {
                    let mut new = crd.clone();
                    new.metadata.resource_version = existing.metadata.resource_version;
                    crds.replace(&crd.name_any(), &PostParams::default(), &new)
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => break,
                Err(kube::Error::Api(e)) if e.code == 409 && attempt < 20 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("install CRD: {e}"),
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a: Api<ClusterSnapshot> = Api::all(client.clone());
        let b: Api<SnapshotCopy> = Api::all(client.clone());
        let c: Api<SnapshotSchedule> = Api::all(client.clone());
        let d: Api<AWSAccount> = Api::all(client.clone());
        let lp = kube::api::ListParams::default().limit(1);
        if a.list(&lp).await.is_ok()
            && b.list(&lp).await.is_ok()
            && c.list(&lp).await.is_ok()
            && d.list(&lp).await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "CRDs not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn aws_config(url: &str, retry: RetryConfig) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // The emulator speaks plain HTTP on loopback.
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(KEY, SECRET, None, None, "test"))
        .retry_config(retry)
        .load()
        .await
}

/// Temporary credentials, as an operator on EKS holds them (IRSA, Pod Identity): the
/// emulator's STS is given the role `arn:aws:iam::123456789012:role/operator`, trusting
/// its own account, and AssumeRole hands them out. The emulator refuses a session
/// token it did not issue, so these are the only ones an operator can run with.
pub struct Temporary {
    pub key: String,
    pub secret: String,
    pub token: String,
}

pub async fn assumed_credentials(h: &Harness) -> Temporary {
    const ROLE: &str = "arn:aws:iam::123456789012:role/operator";
    let state = h.emulator.as_ref().expect("an in-process emulator");
    let role = aws_emulator::sts::Role::from_flag(&format!("{ROLE}=123456789012")).unwrap();
    state.lock().unwrap().roles.insert(ROLE.to_string(), role);
    let out = aws_sdk_sts::Client::new(&h.aws)
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("dbsnapshot-operator")
        .send()
        .await
        .expect("AssumeRole");
    let c = out.credentials().expect("credentials");
    Temporary {
        key: c.access_key_id().to_string(),
        secret: c.secret_access_key().to_string(),
        token: c.session_token().to_string(),
    }
}

/// The operator binary, watching one namespace; killed (by PID) when dropped.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(namespace: &str, aws_url: &str, extra: &[&str]) -> Self {
        Self::start_with_kubeconfig(namespace, aws_url, extra, &kubeconfig())
    }

    /// The operator with another identity (a ServiceAccount token's kubeconfig).
    pub fn start_with_kubeconfig(
        namespace: &str,
        aws_url: &str,
        extra: &[&str],
        kubeconfig: &std::path::Path,
    ) -> Self {
        Self::start_logged(namespace, aws_url, extra, kubeconfig, namespace)
    }

    /// As `start_with_kubeconfig`, logging to `target/it-logs/<label>.log`.
    pub fn start_logged(
        namespace: &str,
        aws_url: &str,
        extra: &[&str],
        kubeconfig: &std::path::Path,
        label: &str,
    ) -> Self {
        Self::start_with_env(namespace, aws_url, extra, kubeconfig, label, &[])
    }

    /// As `start_logged`, with more (or other) environment variables.
    pub fn start_with_env(
        namespace: &str,
        aws_url: &str,
        extra: &[&str],
        kubeconfig: &std::path::Path,
        label: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let logs = root().join("target/it-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = logs.join(format!("{label}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut args: Vec<&str> = vec!["run", "--namespace", namespace];
        for (flag, value) in [
            ("--metrics-addr", "127.0.0.1:0"),
            ("--resync-seconds", "3"),
            ("--max-poll-seconds", "2"),
            ("--min-poll-seconds", "1"),
            ("--progress-write-seconds", "1"),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_dbsnapshot-operator"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ENDPOINT_URL", aws_url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info,dbsnapshot_operator=debug".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start the operator");
        Operator {
            child: Child::new(child),
            log,
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait()
    }
}

/// One test's world.
pub struct Harness {
    pub client: Client,
    pub ns: String,
    pub aws_url: String,
    pub emulator: Option<Shared>,
    emulator_task: Option<tokio::task::JoinHandle<()>>,
    pub operator: Option<Operator>,
    pub aws: SdkConfig,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(t) = &self.emulator_task {
            t.abort();
        }
    }
}

fn unique(name: &str) -> String {
    let n: u32 = rand::random();
    format!("it-{name}-{:06x}", n & 0xff_ffff)
}

pub async fn create_namespace(client: &Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .expect("create namespace");
}

impl Harness {
    /// A namespace, an emulator whose snapshots take `snapshot_seconds`, and the operator.
    pub async fn new(name: &str, snapshot_seconds: f64) -> Self {
        let (addr, state, task) = aws_emulator::start(
            0,
            Options {
                snapshot_seconds,
                ..Options::default()
            },
        )
        .await
        .expect("emulator");
        let url = format!("http://{addr}");
        let mut h = Self::with_aws(name, &url).await;
        h.emulator = Some(state);
        h.emulator_task = Some(task);
        h.start_operator(&[]);
        h
    }

    /// A namespace and an AWS endpoint at `url` (the operator is started separately).
    pub async fn with_aws(name: &str, url: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = unique(name);
        create_namespace(&client, &ns).await;
        Harness {
            client,
            ns,
            aws_url: url.to_string(),
            emulator: None,
            emulator_task: None,
            operator: None,
            aws: aws_config(url, RetryConfig::standard().with_max_attempts(10)).await,
        }
    }

    pub fn start_operator(&mut self, extra: &[&str]) {
        self.operator = Some(Operator::start(&self.ns, &self.aws_url, extra));
    }

    pub fn snapshots(&self) -> Api<ClusterSnapshot> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn copies(&self) -> Api<SnapshotCopy> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn redshift(&self) -> aws_sdk_redshift::Client {
        aws_sdk_redshift::Client::new(&self.aws)
    }
    pub fn docdb(&self) -> aws_sdk_docdb::Client {
        aws_sdk_docdb::Client::new(&self.aws)
    }
    pub fn elasticache(&self) -> aws_sdk_elasticache::Client {
        aws_sdk_elasticache::Client::new(&self.aws)
    }

    /// Creates a ClusterSnapshot from JSON (`metadata.name` and `spec`).
    pub async fn create(&self, obj: serde_json::Value) -> Result<ClusterSnapshot, kube::Error> {
        let mut obj = obj;
        obj["apiVersion"] = json!("dbsnapshot.io/v1alpha1");
        obj["kind"] = json!("ClusterSnapshot");
        let cs: ClusterSnapshot = serde_json::from_value(obj).expect("a ClusterSnapshot");
        self.snapshots().create(&PostParams::default(), &cs).await
    }

    /// Creates the object from raw JSON, bypassing the Rust types (for invalid specs).
    pub async fn create_raw(&self, kind: &str, obj: serde_json::Value) -> Result<(), kube::Error> {
        let mut obj = obj;
        obj["apiVersion"] = json!("dbsnapshot.io/v1alpha1");
        obj["kind"] = json!(kind);
        let plural = if kind == "ClusterSnapshot" {
            "clustersnapshots"
        } else {
            "snapshotcopies"
        };
        let req = http::Request::post(format!(
            "/apis/dbsnapshot.io/v1alpha1/namespaces/{}/{plural}",
            self.ns
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&obj).unwrap())
        .unwrap();
        self.client
            .request::<serde_json::Value>(req)
            .await
            .map(|_| ())
    }

    /// Creates a SnapshotCopy from JSON (`metadata.name` and `spec`).
    pub async fn create_copy(&self, obj: serde_json::Value) -> Result<SnapshotCopy, kube::Error> {
        let mut obj = obj;
        obj["apiVersion"] = json!("dbsnapshot.io/v1alpha1");
        obj["kind"] = json!("SnapshotCopy");
        let c: SnapshotCopy = serde_json::from_value(obj).expect("a SnapshotCopy");
        self.copies().create(&PostParams::default(), &c).await
    }

    pub async fn copy_status(&self, name: &str) -> SnapshotStatus {
        self.copies()
            .get(name)
            .await
            .expect("get")
            .status
            .unwrap_or_default()
    }

    /// `wait_for` for a SnapshotCopy.
    pub async fn wait_copy(
        &self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&SnapshotStatus) -> bool,
    ) -> SnapshotStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.copy_status(name).await;
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "SnapshotCopy {name} did not reach the expected state in {timeout:?}; last status:\n{}\n(operator log: {:?})",
                    serde_json::to_string_pretty(&s).unwrap(),
                    self.operator.as_ref().map(|o| o.log.clone())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_copy_gone(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.copies().get_opt(name).await.expect("get").is_some() {
            assert!(
                Instant::now() < deadline,
                "SnapshotCopy {name} was not deleted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn set_snapshot_seconds(&self, seconds: f64) {
        self.emulator
            .as_ref()
            .expect("an emulator")
            .lock()
            .unwrap()
            .snapshot_seconds = seconds;
    }

    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.snapshots()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .expect("patch spec");
    }

    pub async fn status(&self, name: &str) -> SnapshotStatus {
        self.snapshots()
            .get(name)
            .await
            .expect("get")
            .status
            .unwrap_or_default()
    }

    /// Polls the object until `done` holds for its status, calling `each` on every
    /// status seen; panics with the last status after `timeout`.
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        mut each: impl FnMut(&SnapshotStatus),
        done: impl Fn(&SnapshotStatus) -> bool,
    ) -> SnapshotStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(name).await;
            each(&s);
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} did not reach the expected state in {timeout:?}; last status:\n{}\n(operator log: {:?})",
                    serde_json::to_string_pretty(&s).unwrap(),
                    self.operator.as_ref().map(|o| o.log.clone())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_ready(&self, name: &str) -> SnapshotStatus {
        self.wait_for(name, Duration::from_secs(60), |_| {}, is_ready)
            .await
    }

    pub async fn wait_gone(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.snapshots().get_opt(name).await.expect("get").is_some() {
            assert!(Instant::now() < deadline, "{name} was not deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Calls the emulator received, per service and action.
    pub fn calls(&self) -> serde_json::Value {
        let state = self.emulator.as_ref().expect("an emulator");
        let st = state.lock().unwrap();
        serde_json::to_value(&st.counters).unwrap()
    }

    /// Every call that is not a Describe, List or Get (a mutation).
    pub fn mutating_calls(&self) -> Vec<String> {
        let calls = self.calls();
        let mut out = Vec::new();
        for (service, actions) in calls["calls"].as_object().cloned().unwrap_or_default() {
            for (action, n) in actions.as_object().cloned().unwrap_or_default() {
                if !["Describe", "List", "Get"]
                    .iter()
                    .any(|read| action.starts_with(read))
                {
                    out.push(format!("{service}:{action}={n}"));
                }
            }
        }
        out
    }

    pub fn set_faults(&self, faults: serde_json::Value) {
        let state = self.emulator.as_ref().expect("an emulator");
        let mut st = state.lock().unwrap();
        let mut current = serde_json::to_value(&st.faults).unwrap();
        for (k, v) in faults.as_object().unwrap() {
            current[k] = v.clone();
        }
        st.faults = serde_json::from_value(current).unwrap();
    }
}

/// A manual snapshot as the emulator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSnapshot {
    pub engine: &'static str,
    pub region: String,
    /// The account it is in.
    pub account: String,
    pub id: String,
    pub tags: std::collections::BTreeMap<String, String>,
    /// Accounts it is shared with (Redshift and DocumentDB).
    pub shared: Vec<String>,
}

/// Every manual snapshot on an in-process emulator, in every region and engine.
pub fn aws_snapshots_of(emulator: &Shared) -> Vec<AwsSnapshot> {
    let st = emulator.lock().unwrap();
    let mut out = Vec::new();
    for (region, r) in &st.regions {
        let snap =
            |engine, account: &str, id: &str, tags: &[(String, String)], shared: &[String]| {
                AwsSnapshot {
                    engine,
                    region: region.clone(),
                    account: account.to_string(),
                    id: id.to_string(),
                    tags: tags.iter().cloned().collect(),
                    shared: shared.to_vec(),
                }
            };
        for s in r.redshift.snapshots.values().filter(|s| !s.automated) {
            out.push(snap("redshift", &s.account, &s.id, &s.tags, &s.shared));
        }
        for s in r.docdb.snapshots.values().filter(|s| !s.automated) {
            out.push(snap("docdb", &s.account, &s.id, &s.tags, &s.restore));
        }
        for s in r.elasticache.snapshots.values().filter(|s| !s.automated) {
            out.push(snap("elasticache", &s.account, &s.name, &s.tags, &[]));
        }
    }
    out.sort_by(|a, b| (a.engine, &a.id).cmp(&(b.engine, &b.id)));
    out
}

/// The DocumentDB snapshots of one account named `id`, by region.
pub fn docdb_regions_of(emulator: &Shared, account: &str, id: &str) -> Vec<String> {
    let st = emulator.lock().unwrap();
    let mut out: Vec<String> = st
        .regions
        .iter()
        .filter(|(_, r)| {
            r.docdb
                .snapshots
                .values()
                .any(|s| s.account == account && s.id == id)
        })
        .map(|(name, _)| name.clone())
        .collect();
    out.sort();
    out
}

impl AwsSnapshot {
    pub fn owner(&self) -> Option<&str> {
        self.tags.get("dbsnapshot.io/owner-uid").map(String::as_str)
    }
}

impl Harness {
    /// Every manual snapshot on the in-process emulator, in every region and engine.
    pub fn aws_snapshots(&self) -> Vec<AwsSnapshot> {
        aws_snapshots_of(self.emulator.as_ref().expect("in-process emulator"))
    }

    /// Calls the emulator received for one action.
    pub fn count(&self, service: &str, action: &str) -> u64 {
        self.calls()["calls"][service][action].as_u64().unwrap_or(0)
    }

    /// Waits until the emulator has received `n` calls of an action.
    pub async fn wait_count(&self, service: &str, action: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count(service, action) < n {
            assert!(
                Instant::now() < deadline,
                "{service} {action}: {} calls, waited for {n}",
                self.count(service, action)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn condition<'a>(
    s: &'a SnapshotStatus,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    s.condition(t)
}

pub fn is_ready(s: &SnapshotStatus) -> bool {
    condition(s, "Ready").is_some_and(|c| c.status == "True")
}

pub fn is_stalled(s: &SnapshotStatus) -> bool {
    condition(s, "Stalled").is_some_and(|c| c.status == "True")
}

pub fn stalled_reason(s: &SnapshotStatus) -> Option<String> {
    condition(s, "Stalled")
        .filter(|c| c.status == "True")
        .map(|c| c.reason.clone())
}

/// Seeds AWS with one cluster per engine: Redshift `analytics`, DocumentDB `orders`,
/// ElastiCache replication group `sessions` and cache cluster `solo`.
pub async fn seed_clusters(aws: &SdkConfig) {
    for source in [
        json!({"redshift": {"clusterIdentifier": "analytics"}}),
        json!({"docdb": {"clusterIdentifier": "orders"}}),
        json!({"elasticache": {"replicationGroupId": "sessions"}}),
        json!({"elasticache": {"cacheClusterId": "solo"}}),
    ] {
        create_source(aws, &source).await;
    }
}

/// Creates the cluster a ClusterSnapshot's `spec.source` names.
pub async fn create_source(aws: &SdkConfig, source: &serde_json::Value) {
    let id = |engine: &str, field: &str| source[engine][field].as_str().map(str::to_string);
    if let Some(id) = id("redshift", "clusterIdentifier") {
        aws_sdk_redshift::Client::new(aws)
            .create_cluster()
            .cluster_identifier(id)
            .node_type("ra3.xlplus")
            .master_username("admin")
            .master_user_password("Secret123")
            .send()
            .await
            .expect("redshift cluster");
    } else if let Some(id) = id("docdb", "clusterIdentifier") {
        aws_sdk_docdb::Client::new(aws)
            .create_db_cluster()
            .db_cluster_identifier(id)
            .engine("docdb")
            .master_username("docdbadmin")
            .master_user_password("Secret123")
            .send()
            .await
            .expect("docdb cluster");
    } else if let Some(id) = id("elasticache", "replicationGroupId") {
        aws_sdk_elasticache::Client::new(aws)
            .create_replication_group()
            .replication_group_id(&id)
            .replication_group_description(id)
            .engine("valkey")
            .send()
            .await
            .expect("replication group");
    } else if let Some(id) = id("elasticache", "cacheClusterId") {
        aws_sdk_elasticache::Client::new(aws)
            .create_cache_cluster()
            .cache_cluster_id(id)
            .engine("redis")
            .send()
            .await
            .expect("cache cluster");
    } else {
        panic!("not a source: {source}");
    }
}

/// The automated snapshot the emulator made for the Redshift cluster `analytics`.
pub async fn redshift_automated(aws: &SdkConfig) -> String {
    aws_sdk_redshift::Client::new(aws)
        .describe_cluster_snapshots()
        .cluster_identifier("analytics")
        .snapshot_type("automated")
        .send()
        .await
        .expect("automated snapshot")
        .snapshots()[0]
        .snapshot_identifier()
        .unwrap()
        .to_string()
}

/// A manual snapshot `id` of the DocumentDB cluster `orders`, to copy; its ARN.
pub async fn docdb_source(aws: &SdkConfig, id: &str) -> String {
    aws_sdk_docdb::Client::new(aws)
        .create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier(id)
        .send()
        .await
        .expect("docdb source snapshot")
        .db_cluster_snapshot()
        .and_then(|s| s.db_cluster_snapshot_arn())
        .unwrap()
        .to_string()
}

/// A snapshot `name` of the ElastiCache replication group `sessions`, to copy.
/// ElastiCache takes one snapshot of a group at a time (the group is `snapshotting`
/// meanwhile): a refusal for that is waited out.
pub async fn elasticache_source(aws: &SdkConfig, name: &str) {
    use aws_sdk_elasticache::error::ProvideErrorMetadata;
    let client = aws_sdk_elasticache::Client::new(aws);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client
            .create_snapshot()
            .replication_group_id("sessions")
            .snapshot_name(name)
            .send()
            .await
        {
            Ok(_) => return,
            Err(e)
                if e.code() == Some("InvalidReplicationGroupState")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("elasticache source snapshot {name}: {e:?}"),
        }
    }
}

/// Now, as `2026-11-22 08:14 UTC`.
pub fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The venv with boto3 and moto (tests/testbed/python-venv.sh makes it).
pub fn venv() -> PathBuf {
    let cache = std::env::var_os("DBSNAPSHOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/dbsnapshot-operator")
        });
    let venv = cache.join("venv");
    assert!(
        venv.join("bin/moto_server").exists(),
        "no moto at {}: run tests/testbed/python-venv.sh (the test command does)",
        venv.display()
    );
    venv
}

/// moto's server on a free loopback port; killed (by PID) when dropped.
pub struct Moto {
    _child: Child,
    pub url: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

pub fn moto() -> Moto {
    let port = free_port();
    let child = Command::new(venv().join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let m = Moto {
        _child: Child::new(child),
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    m
}

/// A TCP forwarder from a loopback port to `target` that can be cut (its listener
/// closed and every connection through it dropped, so callers see refused and reset
/// connections, as in a network outage) and restored on the same port.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let mut p = Proxy {
            addr: "127.0.0.1:0".parse().unwrap(),
            target,
            task: None,
        };
        p.listen().await;
        p
    }

    async fn listen(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).expect("bind the proxy");
        let listener = socket.listen(64).unwrap();
        self.addr = listener.local_addr().unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        }));
    }

    pub fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn restore(&mut self) {
        self.listen().await;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// helm or kubectl from the test bed (tests/testbed/install-helm-kubectl.sh), installed
/// into target/testbed/bin on first use.
pub fn testbed_tool(name: &str) -> PathBuf {
    let bin = root().join("target/testbed/bin");
    if !bin.join(name).exists() {
        let ok = Command::new("bash")
            .arg(root().join("tests/testbed/install-helm-kubectl.sh"))
            .arg(&bin)
            .status()
            .expect("install helm and kubectl")
            .success();
        assert!(ok, "could not install helm and kubectl");
    }
    bin.join(name)
}
