//! The AWS side: one trait for what the controllers need of a snapshot service, one
//! module per service behind it, all returning the same domain types. Does IO.

pub mod accounts;
pub mod audit;
pub mod budget;
pub mod docdb;
pub mod elasticache;
pub mod error;
pub mod metered;
pub mod presign;
pub mod redshift;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_redshift::config::retry::{ClientRateLimiter, RetryPartition};

pub use accounts::{AccountRole, AssumedRole};
pub use error::{EngineError, ErrorClass};

use crate::api::{Engine, Progress, Tags};

/// Where AWS says a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotState {
    /// Being created or copied.
    Creating,
    Available,
    Failed,
    /// Being deleted (or deleted).
    Deleting,
    /// A status none of the three services documents: shown as it is and waited on,
    /// never taken for any of the above.
    Unknown,
}

/// A snapshot as AWS describes it, in the same shape for every engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub identifier: String,
    pub arn: Option<String>,
    /// The status string exactly as AWS reported it.
    pub aws_status: String,
    pub snapshot_type: Option<String>,
    /// The cluster (or replication group, or cache cluster) it is of.
    pub source: Option<String>,
    /// RFC 3339.
    pub created: Option<String>,
    pub progress: Progress,
    pub total_size_mb: Option<f64>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub retention_days: Option<i64>,
    pub remaining_days: Option<i64>,
    pub source_arn: Option<String>,
    /// All tags on the snapshot; `None` when not fetched (some engines need an extra
    /// call, made only when asked for detail).
    pub tags: Option<Tags>,
    /// Accounts with restore access; `None` when not fetched.
    pub shared_with: Option<Vec<String>>,
}

impl Snapshot {
    /// Where the snapshot is, from every status the three services' models document
    /// (the `Status` of Redshift's `Snapshot`, DocumentDB's `DBClusterSnapshot` and
    /// ElastiCache's `Snapshot.SnapshotStatus` shapes):
    /// Redshift `creating | available | final snapshot | failed | cancelled | deleted`;
    /// DocumentDB `creating | available | copying | failed | deleting`;
    /// ElastiCache `creating | available | restoring | copying | deleting`, and
    /// `exporting` while it is written to S3. A snapshot a cluster is being restored
    /// from, or that is being exported, is itself available; a `cancelled` one (AWS
    /// stopped making it) will never be. Anything else is [`SnapshotState::Unknown`].
    pub fn state(&self) -> SnapshotState {
        state_of(&self.aws_status)
    }
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.as_ref()?.get(key).map(String::as_str)
    }
}

/// See [`Snapshot::state`].
pub fn state_of(aws_status: &str) -> SnapshotState {
    match aws_status.to_ascii_lowercase().as_str() {
        "creating" | "copying" => SnapshotState::Creating,
        "available" | "final snapshot" | "restoring" | "exporting" => SnapshotState::Available,
        "failed" | "cancelled" | "incompatible-restore" => SnapshotState::Failed,
        "deleting" | "deleted" => SnapshotState::Deleting,
        _ => SnapshotState::Unknown,
    }
}

/// What a batched describe lists: the manual snapshots of one cluster (or ElastiCache
/// replication group or cache cluster).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub id: String,
    /// ElastiCache: whether `id` is a replication group (else a cache cluster).
    pub replication_group: bool,
}

/// What to snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    pub identifier: String,
    /// The Redshift or DocumentDB cluster, or the ElastiCache replication group or
    /// cache cluster.
    pub source: String,
    /// ElastiCache: whether `source` is a replication group (else a cache cluster).
    pub replication_group: bool,
    /// Every tag, the ownership tags included.
    pub tags: Tags,
    /// Redshift: the manual snapshot retention period.
    pub retention_days: Option<i32>,
    /// ElastiCache: the KMS key.
    pub kms_key_id: Option<String>,
}

/// What to copy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyRequest {
    /// The source snapshot's identifier, or its ARN (DocumentDB shared or cross-region
    /// sources).
    pub source: String,
    /// Redshift: the cluster the source snapshot is of.
    pub source_cluster: Option<String>,
    /// The copy's identifier (for an ElastiCache export: the S3 object name prefix).
    pub target: String,
    /// Every tag, the ownership tags included.
    pub tags: Tags,
    /// Redshift: the copy's retention period.
    pub retention_days: Option<i32>,
    /// DocumentDB and ElastiCache: the KMS key for the copy.
    pub kms_key_id: Option<String>,
    /// DocumentDB: copy the source's tags.
    pub copy_tags: bool,
    /// ElastiCache: export to this S3 bucket instead of copying.
    pub target_bucket: Option<String>,
    /// DocumentDB: the source's region when it differs from the copy's (the request
    /// then carries a presigned URL).
    pub source_region: Option<String>,
}

/// What the controllers need of a snapshot service.
#[async_trait]
pub trait SnapshotEngine: Send + Sync {
    fn engine(&self) -> Engine;

    /// Looks a snapshot up; `None` when AWS says it does not exist. With `detail`, the
    /// tags and restore access are fetched too where that costs extra calls.
    async fn describe(
        &self,
        identifier: &str,
        detail: bool,
    ) -> Result<Option<Snapshot>, EngineError>;

    /// Every manual snapshot of `source`, through as many pages as it takes (one call a
    /// page). Tags and restore access come with it only where the service includes them
    /// (see [`SnapshotEngine::list_has_detail`]).
    async fn list(&self, source: &SourceRef) -> Result<Vec<Snapshot>, EngineError>;

    /// Whether [`SnapshotEngine::list`] reports tags and restore access (Redshift does).
    fn list_has_detail(&self) -> bool {
        false
    }

    /// Starts a manual snapshot.
    async fn create(&self, request: &CreateRequest) -> Result<Snapshot, EngineError>;

    /// Grants and revokes restore access.
    async fn share(
        &self,
        snapshot: &Snapshot,
        add: &[String],
        remove: &[String],
    ) -> Result<(), EngineError>;

    /// Sets tags (adding or overwriting) and removes tags by key.
    async fn tag(
        &self,
        snapshot: &Snapshot,
        set: &Tags,
        remove: &[String],
    ) -> Result<(), EngineError>;

    /// Redshift: sets the manual snapshot retention period.
    async fn set_retention(&self, snapshot: &Snapshot, days: i32) -> Result<(), EngineError>;

    /// Deletes the snapshot; one that is already gone counts as deleted.
    async fn delete(&self, snapshot: &Snapshot) -> Result<(), EngineError>;

    /// Copies a snapshot (ElastiCache with a target bucket: exports it to S3 and returns
    /// the source snapshot, now exporting).
    async fn copy(&self, request: &CopyRequest) -> Result<Snapshot, EngineError>;
}

/// The AWS account the operator's credentials belong to, asked of STS once
/// (GetCallerIdentity, which needs no permission) the first time it matters: Redshift
/// lists snapshots shared into the account beside the account's own, and only the
/// account's own may be matched, adopted or deleted.
pub struct CallerAccount {
    client: aws_sdk_sts::Client,
    account: tokio::sync::OnceCell<String>,
}

impl CallerAccount {
    pub fn new(config: &SdkConfig) -> Self {
        let mut conf = aws_sdk_sts::config::Builder::from(config);
        if config.region().is_none() {
            conf.set_region(Some(aws_config::Region::new("us-east-1")));
        }
        if config.behavior_version().is_none() {
            conf.set_behavior_version(Some(aws_config::BehaviorVersion::latest()));
        }
        Self {
            client: aws_sdk_sts::Client::from_conf(conf.build()),
            account: tokio::sync::OnceCell::new(),
        }
    }

    /// An account already known (tests, or a configuration that names it).
    pub fn known(config: &SdkConfig, account: &str) -> Self {
        let me = Self::new(config);
        let _ = me.account.set(account.to_string());
        me
    }

    pub async fn get(&self) -> Result<&str, EngineError> {
        self.account
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| {
                        error::classify("sts", "GetCallerIdentity", e, &error::ServiceCodes::NONE)
                    })?;
                out.account()
                    .map(str::to_string)
                    .ok_or_else(|| EngineError {
                        class: ErrorClass::Transient,
                        service: "sts",
                        action: "GetCallerIdentity",
                        code: None,
                        message: "STS named no account".to_string(),
                        source: None,
                    })
            })
            .await
            .map(String::as_str)
    }
}

/// Engine clients per (account, engine, region), made on first use from one AWS
/// configuration: the operator's own credentials, or for another account the
/// temporary credentials of the role it assumes there ([`accounts`]). With a rate, each
/// has its own request budget (a budget per account, region and service, as AWS
/// throttles) and a retry partition of its own (the SDK's default partition is per
/// service, so a throttled region or account would slow the others). The budget paces every attempt. With `adaptive`, the
/// SDK's adaptive retry runs on top: its limiter wakes after AWS throttles and then
/// delays attempts outside the attempt timeout (the operation timeout bounds it); at
/// low call rates it allows about one retry per 20 s, which is why it is not the
/// default.
pub struct Engines {
    base: SdkConfig,
    caller: Arc<CallerAccount>,
    metrics: Arc<crate::metrics::Metrics>,
    rate: Option<budget::Rate>,
    adaptive: bool,
    /// Clients by account (`None`: the operator's own), engine and region.
    cache: Mutex<HashMap<ClientKey, Arc<dyn SnapshotEngine>>>,
    /// Each account's credentials (by account id), shared by its clients.
    roles: Mutex<HashMap<String, Arc<AssumedRole>>>,
}

impl Engines {
    pub fn new(
        base: SdkConfig,
        metrics: Arc<crate::metrics::Metrics>,
        rate: Option<budget::Rate>,
        adaptive: bool,
    ) -> Self {
        Self {
            caller: Arc::new(CallerAccount::new(&base)),
            base,
            metrics,
            rate,
            adaptive,
            cache: Mutex::new(HashMap::new()),
            roles: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials of an account, made on first use: one holder per account. A
    /// changed role (an AWSAccount's spec edited) replaces the holder and the
    /// account's clients, which are made again with the new one.
    pub fn assumed(&self, role: &AccountRole) -> Arc<AssumedRole> {
        let mut roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = roles.get(&role.account_id)
            && held.role() == role
        {
            return held.clone();
        }
        let fresh = Arc::new(AssumedRole::new(&self.base, role.clone()));
        if roles
            .insert(role.account_id.clone(), fresh.clone())
            .is_some()
        {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(account, _, _), _| account.as_deref() != Some(&role.account_id));
        }
        fresh
    }

    /// The operator's own account id (STS GetCallerIdentity, asked once).
    pub async fn own_account(&self) -> Result<String, EngineError> {
        self.caller.get().await.map(str::to_string)
    }

    /// The region the operator runs in (the AWS config chain's, or `--region`).
    pub fn default_region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// The operator's own account's client of `engine` in `region`.
    pub fn get(&self, engine: Engine, region: &str) -> Arc<dyn SnapshotEngine> {
        self.get_in(None, engine, region)
    }

    /// The client of `engine` in `region` of an account (`None`: the operator's own),
    /// made on first use: with the account's assumed credentials, and a request budget
    /// and retry partition of its own, since AWS throttles per account, region and
    /// service.
    pub fn get_in(
        &self,
        account: Option<&AccountRole>,
        engine: Engine,
        region: &str,
    ) -> Arc<dyn SnapshotEngine> {
        let assumed = account.map(|role| self.assumed(role));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry((
                account.map(|a| a.account_id.clone()),
                engine,
                region.to_string(),
            ))
            .or_insert_with(|| {
                let ClientParts {
                    config,
                    metered,
                    retry,
                } = self.client_parts(assumed.as_ref(), engine, region);
                let caller = match &assumed {
                    Some(a) => Arc::new(CallerAccount::known(&config, &a.role().account_id)),
                    None => self.caller.clone(),
                };
                match engine {
                    Engine::Redshift => Arc::new(redshift::Redshift::new(
                        &config,
                        metered,
                        retry,
                        caller.clone(),
                    )),
                    Engine::Docdb => Arc::new(docdb::Docdb::new(
                        &config,
                        region,
                        metered,
                        retry,
                        caller.clone(),
                    )),
                    Engine::Elasticache => {
                        Arc::new(elasticache::ElastiCache::new(&config, metered, retry))
                    }
                }
            })
            .clone()
    }

    /// What one service's client in one region is made of: with a rate, a budgeted HTTP
    /// client and a (service, region) retry partition, adaptive if asked.
    fn client_parts(
        &self,
        account: Option<&Arc<AssumedRole>>,
        engine: Engine,
        region: &str,
    ) -> ClientParts {
        let service = match engine {
            Engine::Redshift => "redshift",
            Engine::Docdb => "docdb",
            Engine::Elasticache => "elasticache",
        };
        let base = match account {
            Some(role) => accounts::config_for(&self.base, role),
            None => self.base.clone(),
        };
        let mut config = base
            .to_builder()
            .region(aws_config::Region::new(region.to_string()));
        let budget = self.rate.map(|rate| {
            let metrics = self.metrics.clone();
            let r = region.to_string();
            let budget = Arc::new(budget::Budget::new(rate, move |now| {
                metrics.set_aws_rate(service, &r, now)
            }));
            config.set_http_client(Some(budget::budgeted_client(budget.clone())));
            // The request waits for the budget inside the HTTP client, before its body
            // is read: the SDK's upload stall protection would take a wait of more than
            // its 20 s grace for a stalled upload (of a few hundred bytes) and cancel the
            // attempt. Downloads stay protected.
            config.set_stalled_stream_protection(Some(
                aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig::enabled()
                    .upload_enabled(false)
                    .build(),
            ));
            if self.adaptive {
                config.set_retry_config(Some(
                    aws_config::retry::RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS),
                ));
            }
            budget
        });
        ClientParts {
            config: config.build(),
            retry: budget.is_some().then(|| {
                adaptive_partition(
                    service,
                    region,
                    account.map(|a| a.role().account_id.as_str()),
                )
            }),
            metered: metered::Metered {
                service,
                metrics: self.metrics.clone(),
                budget,
            },
        }
    }
}

struct ClientParts {
    config: SdkConfig,
    metered: metered::Metered,
    retry: Option<RetryPartition>,
}

/// An engine client's account id (`None`: the operator's own), engine and region.
type ClientKey = (Option<String>, Engine, String);

/// Attempts per AWS call (the first and two retries), as the SDK's standard retry.
pub const MAX_ATTEMPTS: u32 = 3;

/// The retry partition (retry quota and adaptive rate limiter) of one service in one
/// region of one account (`None`: the operator's own).
fn adaptive_partition(service: &str, region: &str, account: Option<&str>) -> RetryPartition {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let name = match account {
        Some(account) => format!("dbsnapshot-{service}-{region}-{account}"),
        None => format!("dbsnapshot-{service}-{region}"),
    };
    RetryPartition::custom(name)
        .client_rate_limiter(ClientRateLimiter::new(now))
        .build()
}

/// `aws_smithy_types::DateTime` as RFC 3339.
pub(crate) fn rfc3339(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()
}

/// Keys to remove and tags to set so that `observed` becomes `desired`. Tags whose keys
/// start with `aws:` belong to AWS and are left alone.
pub fn tag_diff(desired: &Tags, observed: &Tags) -> (Tags, Vec<String>) {
    let set: Tags = desired
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = observed
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    (set, remove)
}

/// Accounts to grant and to revoke so that `observed` becomes `desired`.
pub fn share_diff(desired: &[String], observed: &[String]) -> (Vec<String>, Vec<String>) {
    let add = desired
        .iter()
        .filter(|a| !observed.contains(a))
        .cloned()
        .collect();
    let remove = observed
        .iter()
        .filter(|a| !desired.contains(a))
        .cloned()
        .collect();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_aws_status_has_its_state() {
        use SnapshotState::*;
        for (status, state) in [
            ("creating", Creating),
            ("copying", Creating),
            ("available", Available),
            ("final snapshot", Available),
            ("restoring", Available),
            ("exporting", Available),
            ("failed", Failed),
            ("incompatible-restore", Failed),
            ("cancelled", Failed),
            ("deleting", Deleting),
            ("deleted", Deleting),
            ("Available", Available),
            ("something-new", Unknown),
            ("", Unknown),
        ] {
            let s = Snapshot {
                aws_status: status.to_string(),
                ..Snapshot::default()
            };
            assert_eq!(s.state(), state, "{status}");
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn budgeted_clients_retry_in_a_partition_per_service_and_region() {
        use aws_config::retry::RetryMode;
        let base = SdkConfig::builder()
            .retry_config(aws_config::retry::RetryConfig::standard())
            .build();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let rate = budget::Rate {
            per_second: 3.0,
            burst: 3.0,
        };
        let budgeted = Engines::new(base.clone(), metrics.clone(), Some(rate), true);
        let parts = |e: &Engines, engine, region| {
            let p = e.client_parts(None, engine, region);
            let mode = p.config.retry_config().map(|r| r.mode());
            let attempts = p.config.retry_config().map(|r| r.max_attempts());
            (mode, attempts, p.retry.map(|r| r.to_string()))
        };
        assert_eq!(
            parts(&budgeted, Engine::Redshift, "us-east-1"),
            (
                Some(RetryMode::Adaptive),
                Some(MAX_ATTEMPTS),
                Some("dbsnapshot-redshift-us-east-1".to_string())
            )
        );
        assert_eq!(
            parts(&budgeted, Engine::Redshift, "eu-west-1").2.as_deref(),
            Some("dbsnapshot-redshift-eu-west-1")
        );
        assert_eq!(
            parts(&budgeted, Engine::Elasticache, "us-east-1")
                .2
                .as_deref(),
            Some("dbsnapshot-elasticache-us-east-1")
        );
        // Per-object polling (the baseline) keeps the base configuration: no budget, no
        // adaptive limiter.
        // Standard retry (the default) keeps the base's mode, in its own partition.
        let standard = Engines::new(base.clone(), metrics.clone(), Some(rate), false);
        assert_eq!(
            parts(&standard, Engine::Docdb, "us-east-1"),
            (
                Some(RetryMode::Standard),
                Some(3),
                Some("dbsnapshot-docdb-us-east-1".to_string())
            )
        );
        // Another account's clients retry in partitions of their own.
        let dr = budgeted.assumed(&AccountRole {
            account_id: "210987654321".to_string(),
            role_arn: "arn:aws:iam::210987654321:role/dr".to_string(),
            external_id: None,
            session_seconds: None,
        });
        assert_eq!(
            budgeted
                .client_parts(Some(&dr), Engine::Docdb, "us-east-1")
                .retry
                .map(|r| r.to_string())
                .as_deref(),
            Some("dbsnapshot-docdb-us-east-1-210987654321")
        );
        assert!(Arc::ptr_eq(&dr, &budgeted.assumed(dr.role())));
        // A changed role replaces the account's holder.
        let other_role = AccountRole {
            role_arn: "arn:aws:iam::210987654321:role/dr-2".to_string(),
            ..dr.role().clone()
        };
        let dr2 = budgeted.assumed(&other_role);
        assert!(!Arc::ptr_eq(&dr, &dr2));
        assert_eq!(dr2.role(), &other_role);
        let baseline = Engines::new(base, metrics, None, false);
        assert_eq!(
            parts(&baseline, Engine::Docdb, "us-east-1"),
            (Some(RetryMode::Standard), Some(3), None)
        );
    }

    #[test]
    fn tag_diff_sets_changed_and_removes_extra_but_not_aws_tags() {
        let desired = tags(&[("a", "1"), ("b", "2")]);
        let observed = tags(&[("a", "1"), ("b", "old"), ("c", "3"), ("aws:x", "y")]);
        let (set, remove) = tag_diff(&desired, &observed);
        assert_eq!(set, tags(&[("b", "2")]));
        assert_eq!(remove, vec!["c"]);
        assert_eq!(tag_diff(&desired, &desired), (Tags::new(), vec![]));
    }

    #[test]
    fn share_diff_adds_and_removes() {
        let d = vec!["1".to_string(), "2".to_string()];
        let o = vec!["2".to_string(), "3".to_string()];
        assert_eq!(
            share_diff(&d, &o),
            (vec!["1".to_string()], vec!["3".to_string()])
        );
        assert_eq!(share_diff(&d, &d), (vec![], vec![]));
    }
}
