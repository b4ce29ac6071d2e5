//! The status both kinds share: what AWS reports about the snapshot, mirrored, and
//! kstatus conditions. No IO.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The AWS service a snapshot belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Amazon Redshift.
    Redshift,
    /// Amazon DocumentDB.
    Docdb,
    /// Amazon ElastiCache (Valkey / Redis OSS).
    Elasticache,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Redshift => "redshift",
            Engine::Docdb => "docdb",
            Engine::Elasticache => "elasticache",
        }
    }
    /// The longest snapshot identifier the engine accepts.
    pub fn max_identifier_len(self) -> usize {
        match self {
            Engine::Docdb => 63,
            Engine::Redshift | Engine::Elasticache => 255,
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the object is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Not started: waiting for a valid spec, a source or the first reconcile.
    Pending,
    /// AWS is creating (or copying) the snapshot.
    Creating,
    /// The snapshot is available.
    Available,
    /// AWS reports the snapshot failed, or it cannot be managed (see conditions).
    Failed,
    /// The object is being deleted.
    Deleting,
}

/// Progress as the engine reports it; a field the engine does not report is absent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Percent done: DocumentDB's PercentProgress; Redshift's backup progress over its
    /// total size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// Redshift: megabytes backed up so far.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "backupProgressMB"
    )]
    pub backup_progress_mb: Option<f64>,
    /// Redshift: megabytes to back up in all.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "totalBackupSizeMB"
    )]
    pub total_backup_size_mb: Option<f64>,
    /// Redshift: current backup rate in megabytes per second.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "currentRateMBps"
    )]
    pub current_rate_mbps: Option<f64>,
    /// Redshift: AWS's estimate of the seconds left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds_to_completion: Option<i64>,
    /// Redshift: seconds since the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<i64>,
}

/// The intermediate copy of a copy across accounts and regions (see
/// `SnapshotStatus.intermediate`), as AWS last reported it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntermediateCopy {
    /// Its identifier: the copy's own, in the source's region.
    pub snapshot_identifier: String,
    /// The source's region, where it is made.
    pub region: String,
    /// Its ARN, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// When AWS created it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    /// The status string AWS reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_status: Option<String>,
    /// Creating, Available (copied across regions next) or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// True once it was deleted, after the copy was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// Observed state of a snapshot, mirrored from AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Creating, Available, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// True once the snapshot is available and can be restored or copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    /// redshift, docdb or elasticache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// What the snapshot is of: the cluster, replication group or cache cluster (for a
    /// copy, the source snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The AWS region of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AWSAccount (spec.account) the snapshot's account was reached through,
    /// recorded before anything is made there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The AWS account the snapshot is in when spec.account names one: that
    /// AWSAccount's accountId, recorded before anything is made there. The snapshot is
    /// never looked for under another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The snapshot's identifier on AWS, fixed before it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_identifier: Option<String>,
    /// The snapshot's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The status string AWS reports, as it reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_status: Option<String>,
    /// manual or automated, as AWS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_type: Option<String>,
    /// When AWS created the snapshot (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    /// Progress while the snapshot is being created or copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The snapshot's size in megabytes, where the engine reports one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "totalSizeMB"
    )]
    pub total_size_mb: Option<f64>,
    /// Whether the snapshot is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// The KMS key that encrypts the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The accounts the snapshot is shared with, as observed on AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<Vec<String>>,
    /// Redshift: the manual snapshot retention period in days (-1: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i64>,
    /// Redshift: days left before AWS deletes the snapshot (-1: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_days: Option<i64>,
    /// SnapshotCopy: the identifier of the snapshot copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot_identifier: Option<String>,
    /// SnapshotCopy: the ARN of the snapshot copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
    /// SnapshotCopy to S3: where the export was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_location: Option<String>,
    /// SnapshotCopy: whether the copy (or S3 export) call may have been sent. Written
    /// true before the call goes out, false while none has been sent or after AWS
    /// refused it. While true, a copy found under snapshotIdentifier without any tag is
    /// taken as this object's (Redshift tags a copy only after copying it), and an S3
    /// export is only watched, never requested again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_requested: Option<bool>,
    /// SnapshotCopy of a DocumentDB snapshot in another account and region: AWS copies
    /// a shared snapshot only within its region, so it is first copied into the
    /// destination account in the source's region (this intermediate copy), which is
    /// then copied across regions and deleted once the copy is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate: Option<IntermediateCopy>,
    /// The deletion policy in force: spec.deletionPolicy, or the operator's default
    /// recorded before the snapshot was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<super::DeletionPolicy>,
    /// The tags the operator keeps on the snapshot: spec.tags over the operator's
    /// default tags (`--default-tags`), without its two ownership tags.
    #[serde(default, skip_serializing_if = "super::Tags::is_empty")]
    pub tags: super::Tags,
    /// kstatus conditions: Ready always; Reconciling (work under way) or Stalled (waiting
    /// for a change from outside) only while True, never both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl SnapshotStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
