//! The `SnapshotSchedule` kind: ClusterSnapshots taken on a cron schedule, copied by
//! SnapshotCopies made from templates, and pruned by retention rules. No IO.
//!
//! The templates hold the fields of a ClusterSnapshot spec (without
//! snapshotIdentifier) and of a SnapshotCopy spec (without source and
//! targetSnapshotIdentifier), with the same schema constraints and cross-field rules
//! but none of the immutability rules: a schedule's templates may be edited, and each
//! run's objects take the template as it is when they are created.

// The derive takes one printcolumn(...) per column; clippy reads the repeated
// `type_ = "string"` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cluster_snapshot::{ClusterSnapshotSpec, ClusterSource};
use super::snapshot_copy::{CopySource, LocalRef, SnapshotCopySpec};
use super::{DeletionPolicy, Tags};

/// `spec.schedule`: five whitespace-separated fields, or one of the `@` macros. The
/// operator parses it fully (`crate::schedule::parse_schedule`).
pub const SCHEDULE_PATTERN: &str =
    r"^\s*(@(hourly|daily|weekly|monthly|yearly)|[^@\s]\S*(\s+\S+){4})\s*$";
/// `spec.timeZone`: the shape of an IANA zone name; the operator looks it up in the
/// time zone database.
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$";
/// `spec.retention.maxAge`: a Go-style duration of hours, minutes and seconds, such as
/// `720h`, `1h30m` or `1.5h`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s))+$";
/// A DNS label (RFC 1123): the name of a copy template.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A label value: empty, or up to 63 alphanumerics, `-`, `_` and `.`, starting and
/// ending with an alphanumeric.
pub const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// A rule on the whole spec: every copy template's field that only some engines take
/// is refused unless the snapshot template's source is one of those engines.
macro_rules! copy_rule {
    ($cond:literal) => {
        concat!(
            "!has(self.copyTemplates) || self.copyTemplates.all(c, ",
            $cond,
            ")"
        )
    };
}

/// ClusterSnapshots taken on a schedule (cron in a time zone), each copied by the
/// copy templates once Ready, and pruned by count, age or grandfather-father-son
/// retention. Deleting the schedule leaves the snapshots it made.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbsnapshot.io",
    version = "v1alpha1",
    kind = "SnapshotSchedule",
    plural = "snapshotschedules",
    shortname = "ssched",
    category = "dbsnapshots",
    namespaced,
    status = "SnapshotScheduleStatus",
    derive = "PartialEq",
    validation = Rule::new("size(self.metadata.name) <= 63")
        .message("metadata.name: at most 63 characters (it labels every run: dbsnapshot.io/schedule)"),
    doc = "ClusterSnapshots taken on a cron schedule in a time zone, copied by SnapshotCopies made from templates, and pruned by count, age or grandfather-father-son retention. Deleting the schedule leaves its snapshots.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessfulTime"
    ),
    // A string, not a date: kubectl prints a date in the future as <invalid>.
    printcolumn(name = "Next", type_ = "string", json_path = ".status.nextScheduleTime"),
    printcolumn(name = "Snapshots", type_ = "integer", json_path = ".status.snapshots"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why the schedule is (not) Ready: the Ready condition's reason",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = 1,
        description = "The Ready condition's message",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(copy_rule!("!has(c.spec.sourceRegion) || has(self.snapshotTemplate.spec.source.docdb)"))
        .message("copyTemplates: sourceRegion applies to DocumentDB copies only")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.copyTags) || has(self.snapshotTemplate.spec.source.docdb)"))
        .message("copyTemplates: copyTags applies to DocumentDB copies only")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.kmsKeyId) || !has(self.snapshotTemplate.spec.source.redshift)"))
        .message("copyTemplates: kmsKeyId applies to DocumentDB and ElastiCache copies only")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.retentionDays) || has(self.snapshotTemplate.spec.source.redshift)"))
        .message("copyTemplates: retentionDays applies to Redshift copies only")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.targetBucket) || has(self.snapshotTemplate.spec.source.elasticache)"))
        .message("copyTemplates: targetBucket applies to ElastiCache copies only")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.sharedWith) || size(c.spec.sharedWith) == 0 || !has(self.snapshotTemplate.spec.source.elasticache)"))
        .message("copyTemplates: sharedWith is not supported for ElastiCache snapshots")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.sharedWith) || !has(self.snapshotTemplate.spec.source.docdb) || c.spec.sharedWith.all(a, a.matches('^[0-9]{12}$'))"))
        .message("copyTemplates: DocumentDB snapshots are shared with 12-digit account ids only")
        .field_path(".copyTemplates"),
    validation = Rule::new(copy_rule!("!has(c.spec.tags) || !has(self.snapshotTemplate.spec.source.docdb) || c.spec.tags.all(k, !k.startsWith('rds:') && !c.spec.tags[k].contains('@') && !c.spec.tags[k].startsWith('aws:') && !c.spec.tags[k].startsWith('rds:'))"))
        .message("copyTemplates: DocumentDB tags may not hold '@', nor start with aws: or rds: (key or value)")
        .field_path(".copyTemplates"),
)]
pub struct SnapshotScheduleSpec {
    /// When to take a snapshot: five cron fields (minute hour day-of-month month
    /// day-of-week), such as "0 3 * * *", or one of @hourly, @daily, @weekly, @monthly,
    /// @yearly. Evaluated in timeZone.
    #[schemars(length(min = 1, max = 128), regex(pattern = SCHEDULE_PATTERN))]
    pub schedule: String,

    /// The IANA time zone the schedule is read in, such as Europe/Berlin. Default: UTC.
    /// Across daylight saving changes a skipped local time runs once, right after the
    /// gap, and a repeated one runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = TIME_ZONE_PATTERN))]
    pub time_zone: Option<String>,

    /// True stops new runs; retention keeps working. Default: false.
    #[serde(default)]
    pub suspend: bool,

    /// A run missed by more than this many seconds (the operator was down) is skipped and
    /// counted in status.missedRuns. Default: a missed run is made however late (at
    /// most one after downtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,

    /// Forbid (the default): skip a run while the previous one is still creating. Allow:
    /// runs may overlap.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// What each run creates: a ClusterSnapshot named `<schedule name>-<scheduled time
    /// as yyyymmddhhmm in UTC>`, with this metadata and spec.
    pub snapshot_template: SnapshotTemplate,

    /// For every snapshot taken, one SnapshotCopy per entry once the snapshot is Ready,
    /// named `<snapshot name>-<copy name>`. At most 10, with unique names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new("self.all(c, self.exists_one(d, d.name == c.name))")
        .message("copyTemplates names must be unique"))]
    pub copy_templates: Vec<CopyTemplate>,

    /// Which of this schedule's snapshots to keep. Without it nothing is pruned. Only
    /// Ready snapshots count toward the rules; a snapshot kept by any rule stays; the
    /// newest Ready snapshot and any snapshot a copy is still reading are never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// Forbid or Allow overlapping runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip a run (and count it as missed) while the previous one is still creating.
    #[default]
    Forbid,
    /// Start each run on time, even while the previous one is still creating.
    Allow,
}

/// The ClusterSnapshot each run creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotTemplate {
    /// Labels and annotations copied onto each ClusterSnapshot (besides the operator's
    /// own dbsnapshot.io/schedule label and dbsnapshot.io/scheduled-time annotation).
    #[serde(default, skip_serializing_if = "TemplateMetadata::is_empty")]
    pub metadata: TemplateMetadata,
    /// A ClusterSnapshot spec without snapshotIdentifier (each run's identifier is
    /// derived from its object).
    pub spec: SnapshotTemplateSpec,
}

/// Labels and annotations for the objects a schedule creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels copied onto each ClusterSnapshot. dbsnapshot.io/schedule is the
    /// operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN}))]
    #[x_kube(validation = Rule::new("!('dbsnapshot.io/schedule' in self)")
        .message("the label dbsnapshot.io/schedule is set by the operator; remove it"))]
    pub labels: BTreeMap<String, String>,
    /// Annotations copied onto each ClusterSnapshot. dbsnapshot.io/scheduled-time is
    /// the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("!('dbsnapshot.io/scheduled-time' in self)")
        .message("the annotation dbsnapshot.io/scheduled-time is set by the operator; remove it"))]
    pub annotations: BTreeMap<String, String>,
}

impl TemplateMetadata {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// A ClusterSnapshot spec without snapshotIdentifier; every field may be edited (runs
/// already made keep what they were made with, except what a ClusterSnapshot lets
/// change).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.retentionDays) || has(self.source.redshift)")
        .message("retentionDays applies to Redshift snapshots only")
        .field_path(".retentionDays"),
    validation = Rule::new("!has(self.kmsKeyId) || has(self.source.elasticache)")
        .message("kmsKeyId applies to ElastiCache snapshots only")
        .field_path(".kmsKeyId"),
    validation = Rule::new("!has(self.sharedWith) || size(self.sharedWith) == 0 || !has(self.source.elasticache)")
        .message("sharedWith is not supported for ElastiCache snapshots")
        .field_path(".sharedWith"),
    validation = Rule::new("!has(self.sharedWith) || !has(self.source.docdb) || self.sharedWith.all(a, a.matches('^[0-9]{12}$'))")
        .message("DocumentDB snapshots are shared with 12-digit account ids only")
        .field_path(".sharedWith"),
    validation = Rule::new(super::DOCDB_TAGS_RULE)
        .message(super::DOCDB_TAGS_MESSAGE)
        .field_path(".tags"),
)]
pub struct SnapshotTemplateSpec {
    /// The cluster to snapshot: exactly one of redshift, docdb or elasticache.
    pub source: ClusterSource,

    /// The AWS region of the cluster. Default: the operator's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::REGION_PATTERN))]
    pub region: Option<String>,

    /// The AWSAccount (cluster-scoped) of the account the cluster is in: each run's
    /// ClusterSnapshot, and the SnapshotCopies of copyTemplates, name it in their
    /// spec.account (see ClusterSnapshot). Default: the operator's own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::ACCOUNT_NAME_PATTERN))]
    pub account: Option<String>,

    /// Redshift only: days AWS keeps each manual snapshot, -1 (forever, the default) or
    /// 1 to 3653, counted from its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 3653))]
    #[x_kube(validation = Rule::new("self != 0").message("retentionDays must be -1 or 1 to 3653"))]
    pub retention_days: Option<i32>,

    /// ElastiCache only: the KMS key that encrypts each snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,

    /// Tags on each snapshot (see ClusterSnapshot for the characters AWS allows). At
    /// most 48.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(extend("maxProperties" = 48))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 256, "pattern": super::TAG_PATTERN}))]
    #[x_kube(
        validation = Rule::new("self.all(k, !k.startsWith('aws:') && !k.startsWith('dbsnapshot.io/'))")
            .message("tag keys starting with aws: or dbsnapshot.io/ are reserved"),
        validation = Rule::new("self.all(k, size(k) >= 1 && size(k) <= 128 && size(self[k]) <= 256)")
            .message("tag keys are 1 to 128 characters and values at most 256"),
    )]
    pub tags: Tags,

    /// AWS accounts each snapshot is shared with (see ClusterSnapshot). At most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(length(max = 23), regex(pattern = super::SHARE_PATTERN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub shared_with: Vec<String>,

    /// Delete: pruning or deleting a run's ClusterSnapshot deletes the snapshot on AWS.
    /// Retain: the snapshot stays on AWS. Omitted: the operator's default
    /// (`--default-deletion-policy`, Delete unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// One SnapshotCopy made of every snapshot the schedule takes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyTemplate {
    /// The copy's name within the schedule, a DNS label: each copy object is named
    /// `<snapshot name>-<name>`. Unique.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// A SnapshotCopy spec without source (the run's snapshot) and
    /// targetSnapshotIdentifier (derived from the copy object).
    #[serde(default)]
    pub spec: CopyTemplateSpec,
}

/// A SnapshotCopy spec without source and targetSnapshotIdentifier; every field may be
/// edited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.targetBucket) || !has(self.deletionPolicy) || self.deletionPolicy == 'Retain'")
        .message("targetBucket (an export to S3) is always kept, as the S3 object outlives the object: set deletionPolicy Retain or leave it out")
        .field_path(".deletionPolicy"),
)]
pub struct CopyTemplateSpec {
    /// The destination region. Default: the operator's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::REGION_PATTERN))]
    pub region: Option<String>,

    /// DocumentDB only: the region of the source snapshot, for a cross-region copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::REGION_PATTERN))]
    pub source_region: Option<String>,

    /// DocumentDB and ElastiCache: the KMS key that encrypts each copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,

    /// DocumentDB only: copy the source snapshot's tags to the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_tags: Option<bool>,

    /// Redshift only: days AWS keeps each copy, -1 (forever, the default) or 1 to 3653.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 3653))]
    #[x_kube(validation = Rule::new("self != 0").message("retentionDays must be -1 or 1 to 3653"))]
    pub retention_days: Option<i32>,

    /// ElastiCache only: export each snapshot to this S3 bucket. Always kept:
    /// deletionPolicy Retain or left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub target_bucket: Option<String>,

    /// Tags on each copy (see ClusterSnapshot for the characters AWS allows).
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(extend("maxProperties" = 48))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 256, "pattern": super::TAG_PATTERN}))]
    #[x_kube(
        validation = Rule::new("self.all(k, !k.startsWith('aws:') && !k.startsWith('dbsnapshot.io/'))")
            .message("tag keys starting with aws: or dbsnapshot.io/ are reserved"),
        validation = Rule::new("self.all(k, size(k) >= 1 && size(k) <= 128 && size(self[k]) <= 256)")
            .message("tag keys are 1 to 128 characters and values at most 256"),
    )]
    pub tags: Tags,

    /// AWS accounts each copy is shared with (see ClusterSnapshot). At most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(length(max = 23), regex(pattern = super::SHARE_PATTERN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub shared_with: Vec<String>,

    /// Delete or Retain, as for SnapshotCopy (omitted: the operator's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Which snapshots of the schedule to keep. Each rule is off when absent; a snapshot
/// kept by any rule stays.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the newest N Ready snapshots (N at least 1; omit the rule to turn it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<i32>,
    /// Delete Ready snapshots older than this Go-style duration of hours, minutes and
    /// seconds, such as 720h or 1h30m (longer than zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("!self.matches('^([0.]+(h|m|s))+$')")
        .message("maxAge must be longer than zero"))]
    pub max_age: Option<String>,
    /// Keep the newest Ready snapshot of each of the last N days (in timeZone; N at
    /// least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_daily: Option<i32>,
    /// Keep the newest Ready snapshot of each of the last N ISO weeks (in timeZone; N at
    /// least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_weekly: Option<i32>,
    /// Keep the newest Ready snapshot of each of the last N months (in timeZone; N at
    /// least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_monthly: Option<i32>,
    /// Failed or Stalled runs kept for inspection (0 or more; default 3); older ones
    /// are deleted.
    #[serde(default = "default_failed_history_limit")]
    #[schemars(range(min = 0))]
    pub failed_history_limit: i32,
}

/// The default of `retention.failedHistoryLimit`. Without `retention` nothing is pruned,
/// failed runs included.
pub const DEFAULT_FAILED_HISTORY_LIMIT: i32 = 3;

fn default_failed_history_limit() -> i32 {
    DEFAULT_FAILED_HISTORY_LIMIT
}

/// What the schedule has done, and what it will do next.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotScheduleStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The scheduled time of the newest run made (or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub last_schedule_time: Option<Timestamp>,
    /// The scheduled time of the next run (absent while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub next_schedule_time: Option<Timestamp>,
    /// When the newest run that reached Ready became Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub last_successful_time: Option<Timestamp>,
    /// The name of the newest ClusterSnapshot that reached Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<String>,
    /// The ClusterSnapshots of this schedule still creating.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// How many Ready snapshots of this schedule there are now.
    #[serde(default)]
    pub snapshots: i64,
    /// Runs skipped by startingDeadlineSeconds or concurrencyPolicy, in all.
    #[serde(default)]
    pub missed_runs: i64,
    /// kstatus conditions: Ready always; Reconciling (work under way) or Stalled (waiting
    /// for a change from outside) only while True, never both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl SnapshotScheduleStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl SnapshotTemplateSpec {
    /// The ClusterSnapshot spec of a run (snapshotIdentifier left to be derived).
    pub fn to_cluster_snapshot_spec(&self) -> ClusterSnapshotSpec {
        ClusterSnapshotSpec {
            source: self.source.clone(),
            snapshot_identifier: None,
            region: self.region.clone(),
            account: self.account.clone(),
            adopt: None,
            retention_days: self.retention_days,
            kms_key_id: self.kms_key_id.clone(),
            tags: self.tags.clone(),
            shared_with: self.shared_with.clone(),
            deletion_policy: self.deletion_policy,
        }
    }
}

impl CopyTemplateSpec {
    /// The SnapshotCopy spec copying the ClusterSnapshot `snapshot_name`
    /// (targetSnapshotIdentifier left to be derived).
    pub fn to_snapshot_copy_spec(&self, snapshot_name: &str) -> SnapshotCopySpec {
        SnapshotCopySpec {
            source: CopySource {
                cluster_snapshot_ref: Some(LocalRef {
                    name: snapshot_name.to_string(),
                }),
                redshift: None,
                docdb: None,
                elasticache: None,
            },
            target_snapshot_identifier: None,
            region: self.region.clone(),
            account: None,
            share_source_while_copying: None,
            source_region: self.source_region.clone(),
            kms_key_id: self.kms_key_id.clone(),
            intermediate_kms_key_id: None,
            copy_tags: self.copy_tags,
            retention_days: self.retention_days,
            target_bucket: self.target_bucket.clone(),
            tags: self.tags.clone(),
            shared_with: self.shared_with.clone(),
            deletion_policy: self.deletion_policy,
        }
    }
}

impl SnapshotScheduleSpec {
    /// The ClusterSnapshot spec each run creates.
    pub fn snapshot_spec(&self) -> ClusterSnapshotSpec {
        self.snapshot_template.spec.to_cluster_snapshot_spec()
    }

    /// The SnapshotCopy spec `copy` makes of the run's ClusterSnapshot `snapshot_name`.
    /// The copy is made in the run's account.
    pub fn copy_spec(&self, copy: &CopyTemplate, snapshot_name: &str) -> SnapshotCopySpec {
        SnapshotCopySpec {
            account: self.snapshot_template.spec.account.clone(),
            ..copy.spec.to_snapshot_copy_spec(snapshot_name)
        }
    }

    /// `retention.failedHistoryLimit`, or its default without a retention (which prunes
    /// nothing: the figure is only what an at-rest bound would assume).
    pub fn failed_history_limit(&self) -> i32 {
        self.retention
            .as_ref()
            .map_or(DEFAULT_FAILED_HISTORY_LIMIT, |r| r.failed_history_limit)
    }
}

impl SnapshotSchedule {
    /// The ClusterSnapshot spec each run creates (snapshotIdentifier `None`).
    pub fn snapshot_spec(&self) -> ClusterSnapshotSpec {
        self.spec.snapshot_spec()
    }

    /// The SnapshotCopy spec `copy` makes of the run's ClusterSnapshot `snapshot_name`:
    /// source `clusterSnapshotRef: {name: snapshot_name}`, targetSnapshotIdentifier
    /// `None`.
    pub fn copy_spec(&self, copy: &CopyTemplate, snapshot_name: &str) -> SnapshotCopySpec {
        self.spec.copy_spec(copy, snapshot_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(spec: serde_json::Value) -> SnapshotSchedule {
        SnapshotSchedule::new("orders-nightly", serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn runs_and_their_copies_are_made_in_the_templates_account() {
        let s = schedule(serde_json::json!({
            "schedule": "0 3 * * *",
            "snapshotTemplate": {"spec": {
                "source": {"docdb": {"clusterIdentifier": "orders"}}, "account": "prod"}},
            "copyTemplates": [{"name": "west", "spec": {"region": "us-west-2"}}],
        }));
        assert_eq!(s.snapshot_spec().account.as_deref(), Some("prod"));
        let copy = s.copy_spec(&s.spec.copy_templates[0], "orders-nightly-1");
        assert_eq!(copy.account.as_deref(), Some("prod"));
        let none = schedule(serde_json::json!({
            "schedule": "0 3 * * *",
            "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}},
            "copyTemplates": [{"name": "west", "spec": {"region": "us-west-2"}}],
        }));
        assert_eq!(none.snapshot_spec().account, None);
        assert_eq!(
            none.copy_spec(&none.spec.copy_templates[0], "r").account,
            None
        );
    }

    #[test]
    fn templates_become_the_specs_of_each_run() {
        let s = schedule(serde_json::json!({
            "schedule": "0 3 * * *",
            "snapshotTemplate": {"spec": {
                "source": {"docdb": {"clusterIdentifier": "orders"}},
                "tags": {"team": "data"}, "sharedWith": ["111111111111"],
                "deletionPolicy": "Retain",
            }},
            "copyTemplates": [{"name": "dr", "spec": {"region": "eu-west-1", "sourceRegion": "us-east-1", "copyTags": true}}],
        }));
        assert!(!s.spec.suspend);
        assert_eq!(s.spec.concurrency_policy, ConcurrencyPolicy::Forbid);
        assert_eq!(s.spec.failed_history_limit(), 3);
        let snap = s.snapshot_spec();
        assert_eq!(snap.snapshot_identifier, None);
        assert_eq!(
            snap.source.docdb.as_ref().unwrap().cluster_identifier,
            "orders"
        );
        assert_eq!(snap.deletion_policy, Some(DeletionPolicy::Retain));
        assert_eq!(snap.tags["team"], "data");
        let copy = s.copy_spec(&s.spec.copy_templates[0], "orders-nightly-202611220200");
        assert_eq!(
            copy.source.cluster_snapshot_ref.as_ref().unwrap().name,
            "orders-nightly-202611220200"
        );
        assert_eq!(copy.target_snapshot_identifier, None);
        assert_eq!(copy.region.as_deref(), Some("eu-west-1"));
        assert_eq!(copy.copy_tags, Some(true));
        assert_eq!(copy.deletion_policy, None);
    }

    #[test]
    fn status_times_are_rfc3339() {
        let st: SnapshotScheduleStatus = serde_json::from_value(serde_json::json!({
            "lastScheduleTime": "2026-11-22T02:00:00Z", "snapshots": 7,
        }))
        .unwrap();
        assert_eq!(
            st.last_schedule_time.unwrap().to_string(),
            "2026-11-22T02:00:00Z"
        );
        let back = serde_json::to_value(&st).unwrap();
        assert_eq!(back["lastScheduleTime"], "2026-11-22T02:00:00Z");
        assert_eq!(back["missedRuns"], 0);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Never a panic on any cron, zone, duration or copy name; an error names a field
        /// under spec, and what passes matches the schema's patterns.
        #[test]
        fn any_schedule_is_judged_without_panic(
            cron in prop_oneof![
                "[0-9*/,-]{1,4}( [0-9*/,A-Za-z-]{1,4}){4}",
                "@[a-z]{0,10}",
                any::<String>(),
            ],
            zone in proptest::option::of(prop_oneof!["[A-Z][a-z]{2,8}/[A-Z][a-z_]{2,10}", any::<String>()]),
            age in proptest::option::of(prop_oneof!["[0-9.]{1,4}[hmsd]{1,2}", any::<String>()]),
            names in proptest::collection::vec("[a-z0-9_A-Z-]{0,8}", 0..4),
            keep in proptest::option::of(-2..3i32),
        ) {
            let spec: SnapshotScheduleSpec = serde_json::from_value(serde_json::json!({
                "schedule": cron, "timeZone": zone,
                "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}},
                "copyTemplates": names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>(),
                "retention": {"maxAge": age, "keepLast": keep},
            }))
            .unwrap();
            match crate::api::validation::validate_snapshot_schedule(&spec) {
                Ok(()) => {
                    let m = |p: &str, t: &str| regex::Regex::new(p).unwrap().is_match(t);
                    prop_assert!(m(SCHEDULE_PATTERN, &spec.schedule), "{}", spec.schedule);
                    if let Some(z) = &spec.time_zone {
                        prop_assert!(m(TIME_ZONE_PATTERN, z), "{z}");
                    }
                    if let Some(a) = spec.retention.as_ref().and_then(|r| r.max_age.as_ref()) {
                        prop_assert!(m(DURATION_PATTERN, a), "{a}");
                    }
                    for c in &spec.copy_templates {
                        prop_assert!(m(DNS_LABEL_PATTERN, &c.name), "{}", c.name);
                    }
                }
                Err(e) => {
                    prop_assert!(e.field.starts_with("spec."), "{e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
