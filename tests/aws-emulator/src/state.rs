//! The emulator's whole world: regions (each with its own Redshift, DocumentDB and
//! ElastiCache resources), call counters, recorded S3 exports and the fault settings.
//! No IO; time comes in as arguments.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{docdb, elasticache, redshift};

/// The account of callers whose access key does not end in 12 digits.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The account an access key belongs to: its last 12 characters when they are digits
/// (so `AKIATEST210987654321` is account 210987654321), else [`DEFAULT_ACCOUNT`].
pub fn account_of(access_key: &str) -> String {
    let tail = access_key
        .len()
        .checked_sub(12)
        .and_then(|i| access_key.get(i..));
    match tail {
        Some(t) if crate::query::is_account_id(t) => t.to_string(),
        _ => DEFAULT_ACCOUNT.to_string(),
    }
}

/// The IAM user that a long-term access key of `account` stands for.
pub fn user_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:user/caller")
}

/// Who a request's credentials say is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// Who calls, where, and when.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: String,
    /// The caller's ARN: an IAM user's, or an STS assumed role's.
    pub arn: String,
    /// GetCallerIdentity's UserId: `AIDA...` for a user, `AROA...:SESSION` for a role.
    pub user_id: String,
    pub region: String,
    pub now: DateTime<Utc>,
    pub instant: Instant,
    /// How many real seconds one emulated day lasts ([`State::seconds_per_day`]).
    pub seconds_per_day: f64,
}

/// A job that goes from started to done over a fixed duration (a snapshot being
/// created, copied or exported).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub start: Instant,
    pub duration: Duration,
}

impl Progress {
    pub fn new(start: Instant, seconds: f64) -> Self {
        Self {
            start,
            duration: Duration::from_secs_f64(seconds.max(0.0)),
        }
    }
    pub fn fraction(&self, now: Instant) -> f64 {
        if self.duration.is_zero() {
            return 1.0;
        }
        (now.saturating_duration_since(self.start).as_secs_f64() / self.duration.as_secs_f64())
            .min(1.0)
    }
    pub fn done(&self, now: Instant) -> bool {
        self.fraction(now) >= 1.0
    }
    pub fn elapsed_secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start)
            .min(self.duration)
            .as_secs()
    }
    pub fn remaining_secs(&self, now: Instant) -> u64 {
        (self.start + self.duration)
            .saturating_duration_since(now)
            .as_secs_f64()
            .ceil() as u64
    }
}

/// Fault injection, settable by flag and at run time (`/_emulator/faults`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Fraction (0..=1) of calls answered `Throttling`.
    pub throttle_fraction: f64,
    /// Fraction (0..=1) of calls answered HTTP 500 `InternalFailure`.
    pub error_fraction: f64,
    /// Latency added to every AWS call, in milliseconds.
    pub latency_ms: u64,
    /// Requests per second each account may make (all services and regions together);
    /// past it calls are throttled. 0 means unlimited.
    pub account_rps: f64,
    /// S3 buckets ElastiCache may not write to (export fails as AWS reports missing
    /// bucket permissions).
    pub denied_buckets: Vec<String>,
    /// Actions whose response is held back `delayResponseMs` after the action took
    /// effect (to kill a client between the call and its reply).
    pub delay_actions: Vec<String>,
    /// How long those responses are held back, in milliseconds.
    pub delay_response_ms: u64,
    /// ElastiCache exports (CopySnapshot with TargetBucket) that fail after the call
    /// was accepted, named by source snapshot (any case) or bucket: the snapshot is
    /// `exporting`, then `available` again, and the export is recorded as failed.
    pub fail_exports: Vec<String>,
    /// Actions answered `AccessDenied` (HTTP 403, as AWS answers a call that IAM
    /// denies) without taking effect: `Action` for every service or `service:Action`
    /// (service `redshift`, `docdb` or `elasticache`) for one.
    pub fail_actions: Vec<String>,
    /// Redshift actions answered `DependentServiceRequestThrottlingFault` (HTTP 400)
    /// without taking effect, as AWS does when a service Redshift calls on the
    /// caller's behalf throttles it (service-2.json shape
    /// DependentServiceRequestThrottlingFault: "Wait and retry the request"; listed by
    /// AuthorizeSnapshotAccess, CreateCluster and others). `Action` or
    /// `redshift:Action`.
    pub dependent_throttle_actions: Vec<String>,
}

impl Faults {
    /// Whether `dependentThrottleActions` names this call (Redshift only).
    pub fn dependent_throttles(&self, service: &str, action: &str) -> bool {
        service == "redshift"
            && self
                .dependent_throttle_actions
                .iter()
                .any(|a| a == action || a.strip_prefix("redshift:") == Some(action))
    }

    /// Whether `failActions` names this call.
    pub fn denies(&self, service: &str, action: &str) -> bool {
        self.fail_actions.iter().any(|a| match a.split_once(':') {
            Some((s, act)) => s == service && act == action,
            None => a == action,
        })
    }
}

/// A status string set through the admin API, kept for the life of the process (the
/// services' snapshot statuses are `&'static str`).
pub fn intern(status: &str) -> &'static str {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(status) {
        return s;
    }
    let leaked: &'static str = Box::leak(status.to_string().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// A token bucket refilled at `rate` per second, holding at most one second's worth.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, now: Instant) -> Self {
        Self {
            tokens: rate.max(1.0),
            last: now,
        }
    }
    pub fn take(&mut self, rate: f64, now: Instant) -> bool {
        let capacity = rate.max(1.0);
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An ElastiCache export of a snapshot to S3 (CopySnapshot with TargetBucket).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub region: String,
    pub account: String,
    pub source_snapshot: String,
    pub bucket: String,
    pub key: String,
    pub requested_at: DateTime<Utc>,
    /// The export runs while its snapshot is `exporting`.
    #[serde(skip)]
    pub progress: Progress,
    /// Why it fails when it ends (the `failExports` fault), or None if it succeeds.
    #[serde(skip)]
    pub failure: Option<String>,
}

impl Export {
    /// `exporting` while running, then `completed` (the object is in the bucket) or
    /// `failed` (no object written).
    pub fn status(&self, now: Instant) -> &'static str {
        if !self.progress.done(now) {
            "exporting"
        } else if self.failure.is_some() {
            "failed"
        } else {
            "completed"
        }
    }

    /// The admin API's view: the fields, the status and, once failed, the reason.
    pub fn view(&self, now: Instant) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("exports serialise");
        v["status"] = self.status(now).into();
        if self.status(now) == "failed" {
            v["failureMessage"] = self.failure.clone().into();
        }
        v
    }
}

#[derive(Debug, Default)]
pub struct Region {
    pub redshift: redshift::World,
    pub docdb: docdb::World,
    pub elasticache: elasticache::World,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Calls received, per service and action (faulted calls included).
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// Calls answered Throttling by `throttleFraction`.
    pub throttled: u64,
    /// Calls answered Throttling because the account's budget was spent.
    pub over_budget: u64,
    /// Calls answered HTTP 500 by `errorFraction`.
    pub internal_errors: u64,
    /// Deletes of a snapshot still shared with other accounts: refused (Redshift) or
    /// done (DocumentDB, as AWS allows). A careful client makes none.
    pub shared_deletes: u64,
    /// Describe calls that passed a marker the emulator issued, per `service:Action`
    /// (the caller followed a page).
    pub markers_followed: BTreeMap<String, u64>,
    /// Describe calls refused for a marker the emulator did not issue.
    pub foreign_markers: u64,
    /// Calls received per account (the caller's, from its access key), faulted calls
    /// included; calls refused for their credentials count for none.
    pub calls_by_account: BTreeMap<String, u64>,
    /// Calls refused for their credentials: an unknown temporary access key, a session
    /// token that does not match, or one that has expired.
    pub refused_credentials: u64,
    /// Calls about one snapshot (they name it: a describe of it alone, its tags, its
    /// attributes, a create, copy, share or delete), per `service:Action`; the rest are
    /// listings (of a source's snapshots, of clusters) and STS.
    pub naming_one_snapshot: BTreeMap<String, u64>,
}

/// The parameters that name one snapshot in the three services' models.
pub const SNAPSHOT_PARAMETERS: &[&str] = &[
    "SnapshotIdentifier",
    "SnapshotArn",
    "DBClusterSnapshotIdentifier",
    "SourceDBClusterSnapshotIdentifier",
    "TargetDBClusterSnapshotIdentifier",
    "SourceSnapshotIdentifier",
    "TargetSnapshotIdentifier",
    "SnapshotName",
    "SourceSnapshotName",
    "TargetSnapshotName",
    "ResourceName",
];

pub struct State {
    pub regions: HashMap<String, Region>,
    pub counters: Counters,
    pub exports: Vec<Export>,
    pub faults: Faults,
    pub snapshot_seconds: f64,
    /// How many real seconds one emulated day lasts (Redshift manual snapshot
    /// retention); 86400 unless a test speeds the clock up.
    pub seconds_per_day: f64,
    /// How long a deleted DocumentDB or ElastiCache snapshot stays `deleting` (its name
    /// still taken) before it is gone, in seconds.
    pub delete_seconds: f64,
    /// ElastiCache takes one snapshot of a replication group or cache cluster at a time,
    /// as AWS does. Off only for benches that start hundreds of snapshots of one group
    /// at once to measure the operator's calls, not AWS's queue.
    pub one_snapshot_at_a_time: bool,
    /// Clusters (replication groups, cache clusters) made unavailable for a while by
    /// the admin API: (service, region, account, lowercased id) -> (status, until).
    pub cluster_states: HashMap<(String, String, String, String), (String, Instant)>,
    /// Access key id -> secret, for checking presigned URLs.
    pub credentials: HashMap<String, String>,
    /// Marker paging: the emulator's page size and the key its markers are sealed with.
    pub paging: crate::query::Paging,
    /// IAM roles STS AssumeRole may hand out, by ARN (kept by a reset, like settings).
    pub roles: BTreeMap<String, crate::sts::Role>,
    /// Temporary credentials AssumeRole handed out, by access key id (kept by a reset:
    /// clients hold them).
    pub sessions: HashMap<String, crate::sts::Session>,
    /// The longest temporary credentials last, in real seconds, whatever
    /// DurationSeconds asks (0: as asked), so that tests see them expire.
    pub session_seconds: f64,
    buckets: HashMap<String, TokenBucket>,
    seed: u64,
    pub(crate) rng: SmallRng,
}

impl State {
    pub fn new(
        faults: Faults,
        snapshot_seconds: f64,
        credentials: HashMap<String, String>,
        seed: u64,
    ) -> Self {
        Self {
            regions: HashMap::new(),
            counters: Counters::default(),
            exports: Vec::new(),
            faults,
            snapshot_seconds,
            seconds_per_day: 86_400.0,
            delete_seconds: 0.0,
            one_snapshot_at_a_time: true,
            cluster_states: HashMap::new(),
            credentials,
            paging: crate::query::Paging::default(),
            roles: BTreeMap::new(),
            sessions: HashMap::new(),
            session_seconds: 0.0,
            buckets: HashMap::new(),
            seed,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn region(&mut self, name: &str) -> &mut Region {
        self.regions.entry(name.to_string()).or_default()
    }

    /// Forgets every resource, counter and export and restarts the fault random
    /// numbers from the seed; keeps faults and settings.
    pub fn reset(&mut self) {
        self.rng = SmallRng::seed_from_u64(self.seed);
        self.regions.clear();
        self.counters = Counters::default();
        self.exports.clear();
        self.buckets.clear();
        self.cluster_states.clear();
    }

    /// Counts the call and decides whether a fault answers it instead.
    pub fn admit(
        &mut self,
        service: &str,
        action: &str,
        caller: &Caller,
    ) -> Result<(), crate::query::ApiError> {
        *self
            .counters
            .calls
            .entry(service.to_string())
            .or_default()
            .entry(action.to_string())
            .or_default() += 1;
        *self
            .counters
            .calls_by_account
            .entry(caller.account.clone())
            .or_default() += 1;
        let rate = self.faults.account_rps;
        if rate > 0.0 {
            let bucket = self
                .buckets
                .entry(caller.account.clone())
                .or_insert_with(|| TokenBucket::new(rate, caller.instant));
            if !bucket.take(rate, caller.instant) {
                self.counters.over_budget += 1;
                return Err(crate::query::ApiError::throttling());
            }
        }
        if self.faults.throttle_fraction > 0.0
            && self.rng.random::<f64>() < self.faults.throttle_fraction
        {
            self.counters.throttled += 1;
            return Err(crate::query::ApiError::throttling());
        }
        if self.faults.error_fraction > 0.0 && self.rng.random::<f64>() < self.faults.error_fraction
        {
            self.counters.internal_errors += 1;
            return Err(crate::query::ApiError::internal());
        }
        Ok(())
    }

    /// Who the credentials of a request say is calling. A long-term key (`AKIA...`)
    /// comes with no session token and stands for its account's user (see
    /// [`account_of`]); a temporary one must be one AssumeRole handed out, with its own
    /// session token, before it expires. Refused as AWS refuses them, for any service:
    /// `InvalidClientTokenId` (HTTP 403, "The security token included in the request is
    /// invalid") or `ExpiredToken` (HTTP 403).
    pub fn authenticate(
        &self,
        access_key: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Identity, crate::query::ApiError> {
        let invalid = || {
            crate::query::ApiError::new(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        };
        match self.sessions.get(access_key) {
            Some(s) => {
                if token != Some(s.token.as_str()) {
                    return Err(invalid());
                }
                if now >= s.expires {
                    return Err(crate::query::ApiError::new(
                        403,
                        "ExpiredToken",
                        "The security token included in the request is expired",
                    ));
                }
                Ok(Identity {
                    account: s.account.clone(),
                    arn: s.arn.clone(),
                    user_id: s.user_id.clone(),
                })
            }
            None if access_key.starts_with("ASIA") || token.is_some() => Err(invalid()),
            None => {
                let account = account_of(access_key);
                Ok(Identity {
                    arn: user_arn(&account),
                    user_id: format!("AIDA{account}"),
                    account,
                })
            }
        }
    }

    /// The paging of one Describe call of `service:Action` (see
    /// [`crate::query::Paging`]); `range` is the action's MaxRecords minimum, maximum
    /// and default. Counts followed and refused markers.
    pub fn pager(
        &mut self,
        action: &str,
        caller: &Caller,
        params: &crate::query::Params,
        range: (i64, i64, i64),
    ) -> crate::query::ApiResult<crate::query::Pager> {
        let scope = format!("{action}/{}/{}", caller.account, caller.region);
        match self.paging.begin(&scope, params, range) {
            Ok((pager, followed)) => {
                if followed {
                    *self
                        .counters
                        .markers_followed
                        .entry(action.to_string())
                        .or_default() += 1;
                }
                Ok(pager)
            }
            Err(e) => {
                if params.get("Marker").is_some() && e.message.contains("Marker") {
                    self.counters.foreign_markers += 1;
                }
                Err(e)
            }
        }
    }

    /// The status of a cluster the admin API made unavailable, while it lasts.
    pub fn cluster_busy(&self, service: &str, c: &Caller, id: &str) -> Option<String> {
        let key = (
            service.to_string(),
            c.region.clone(),
            c.account.clone(),
            id.to_ascii_lowercase(),
        );
        match self.cluster_states.get(&key) {
            Some((status, until)) if c.instant < *until => Some(status.clone()),
            _ => None,
        }
    }

    /// How long a snapshot deleted now stays `deleting`.
    pub fn deletion(&self, caller: &Caller) -> Progress {
        Progress::new(caller.instant, self.delete_seconds)
    }

    pub fn progress(&self, caller: &Caller) -> Progress {
        Progress::new(caller.instant, self.snapshot_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_come_from_the_access_key() {
        assert_eq!(account_of("AKIATEST210987654321"), "210987654321");
        assert_eq!(account_of("AKIAIOSFODNN7EXAMPLE"), DEFAULT_ACCOUNT);
        assert_eq!(account_of("x"), DEFAULT_ACCOUNT);
    }

    #[test]
    fn progress_moves_from_zero_to_done() {
        let t0 = Instant::now();
        let p = Progress::new(t0, 10.0);
        assert_eq!(p.fraction(t0), 0.0);
        assert_eq!(p.remaining_secs(t0), 10);
        let mid = t0 + Duration::from_secs(4);
        assert!((p.fraction(mid) - 0.4).abs() < 1e-9);
        assert_eq!(p.elapsed_secs(mid), 4);
        assert_eq!(p.remaining_secs(mid), 6);
        assert!(p.done(t0 + Duration::from_secs(10)));
        assert!(Progress::new(t0, 0.0).done(t0));
    }

    #[test]
    fn token_bucket_allows_rate_per_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, t0);
        let granted = (0..10).filter(|_| b.take(5.0, t0)).count();
        assert_eq!(granted, 5);
        assert!(b.take(5.0, t0 + Duration::from_millis(200)));
        assert!(!b.take(5.0, t0 + Duration::from_millis(200)));
    }
}
