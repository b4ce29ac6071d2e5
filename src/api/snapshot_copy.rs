//! The `SnapshotCopy` kind: a copy of an existing snapshot. No IO.

// The derive takes one printcolumn(...) per column; clippy reads the repeated
// `type_ = "string"` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::status::SnapshotStatus;
use super::{DeletionPolicy, Tags};

/// A copy of an existing snapshot: Redshift automated to manual, DocumentDB (also
/// across regions), ElastiCache (also exported to S3).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbsnapshot.io",
    version = "v1alpha1",
    kind = "SnapshotCopy",
    plural = "snapshotcopies",
    shortname = "scopy",
    category = "dbsnapshots",
    namespaced,
    status = "SnapshotStatus",
    derive = "PartialEq",
    doc = "A copy of an existing snapshot: Redshift automated to manual, DocumentDB (also across regions), ElastiCache (also exported to S3).",
    printcolumn(name = "Engine", type_ = "string", json_path = ".status.engine"),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".status.sourceSnapshotIdentifier"
    ),
    printcolumn(
        name = "Snapshot",
        type_ = "string",
        json_path = ".status.snapshotIdentifier"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        description = "The AWS region of the copy",
        json_path = ".status.region"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Progress",
        type_ = "integer",
        json_path = ".status.progress.percent"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why the object is (not) Ready: the Ready condition's reason",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Account",
        type_ = "string",
        priority = 1,
        description = "The AWSAccount the snapshot is in (spec.account; none: the operator's own)",
        json_path = ".spec.account"
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
    validation = Rule::new("!has(self.sourceRegion) || has(self.source.docdb) || has(self.source.clusterSnapshotRef)")
        .message("sourceRegion applies to DocumentDB copies only")
        .field_path(".sourceRegion"),
    validation = Rule::new("!has(self.copyTags) || has(self.source.docdb) || has(self.source.clusterSnapshotRef)")
        .message("copyTags applies to DocumentDB copies only")
        .field_path(".copyTags"),
    validation = Rule::new("!has(self.shareSourceWhileCopying) || !self.shareSourceWhileCopying || (has(self.source.clusterSnapshotRef) && has(self.account))")
        .message("shareSourceWhileCopying applies to a clusterSnapshotRef source copied into another account (spec.account)")
        .field_path(".shareSourceWhileCopying"),
    validation = Rule::new("!has(self.kmsKeyId) || !has(self.source.redshift)")
        .message("kmsKeyId applies to DocumentDB and ElastiCache copies only")
        .field_path(".kmsKeyId"),
    validation = Rule::new("!has(self.retentionDays) || has(self.source.redshift) || has(self.source.clusterSnapshotRef)")
        .message("retentionDays applies to Redshift copies only")
        .field_path(".retentionDays"),
    validation = Rule::new("!has(self.targetBucket) || has(self.source.elasticache) || has(self.source.clusterSnapshotRef)")
        .message("targetBucket applies to ElastiCache copies only")
        .field_path(".targetBucket"),
    validation = Rule::new("!has(self.targetBucket) || !has(self.deletionPolicy) || self.deletionPolicy == 'Retain'")
        .message("targetBucket (an export to S3) is always kept, as the S3 object outlives the object: set deletionPolicy Retain or leave it out")
        .field_path(".deletionPolicy"),
    validation = Rule::new("!has(self.sharedWith) || size(self.sharedWith) == 0 || !has(self.source.elasticache)")
        .message("sharedWith is not supported for ElastiCache snapshots")
        .field_path(".sharedWith"),
    validation = Rule::new("!has(self.sharedWith) || !has(self.source.docdb) || self.sharedWith.all(a, a.matches('^[0-9]{12}$'))")
        .message("DocumentDB snapshots are shared with 12-digit account ids only")
        .field_path(".sharedWith"),
    validation = Rule::new(super::DOCDB_TAGS_RULE)
        .message(super::DOCDB_TAGS_MESSAGE)
        .field_path(".tags"),
    validation = Rule::new("has(self.targetSnapshotIdentifier) == has(oldSelf.targetSnapshotIdentifier)")
        .message("targetSnapshotIdentifier is immutable")
        .field_path(".targetSnapshotIdentifier"),
    validation = Rule::new("has(self.account) == has(oldSelf.account)")
        .message("account is immutable")
        .field_path(".account"),
    validation = Rule::new("has(self.region) == has(oldSelf.region)")
        .message("region is immutable")
        .field_path(".region"),
    validation = Rule::new("has(self.sourceRegion) == has(oldSelf.sourceRegion)")
        .message("sourceRegion is immutable")
        .field_path(".sourceRegion"),
    validation = Rule::new("has(self.kmsKeyId) == has(oldSelf.kmsKeyId)")
        .message("kmsKeyId is immutable")
        .field_path(".kmsKeyId"),
    validation = Rule::new("has(self.intermediateKmsKeyId) == has(oldSelf.intermediateKmsKeyId)")
        .message("intermediateKmsKeyId is immutable")
        .field_path(".intermediateKmsKeyId"),
    validation = Rule::new("!has(self.intermediateKmsKeyId) || has(self.source.docdb) || has(self.source.clusterSnapshotRef)")
        .message("intermediateKmsKeyId applies to DocumentDB copies only")
        .field_path(".intermediateKmsKeyId"),
    validation = Rule::new("has(self.targetBucket) == has(oldSelf.targetBucket)")
        .message("targetBucket is immutable")
        .field_path(".targetBucket"),
)]
pub struct SnapshotCopySpec {
    /// The snapshot to copy: exactly one of clusterSnapshotRef, redshift, docdb or
    /// elasticache. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("source is immutable"))]
    pub source: CopySource,

    /// The copy's identifier on AWS (for an S3 export: the object name prefix).
    /// Default: derived from the namespace, name and uid. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = super::IDENTIFIER_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("targetSnapshotIdentifier is immutable"))]
    pub target_snapshot_identifier: Option<String>,

    /// The destination region. Default: the operator's region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::REGION_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    pub region: Option<String>,

    /// The AWSAccount (cluster-scoped) of the account the snapshot is in: the operator
    /// works there with the role that AWSAccount assumes, if the AWSAccount admits this
    /// namespace. Default: the operator's own account and credentials. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::ACCOUNT_NAME_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("account is immutable"))]
    pub account: Option<String>,

    /// DocumentDB only: the region of the source snapshot, for a cross-region copy (the
    /// operator signs the PreSignedUrl itself). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::REGION_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("sourceRegion is immutable"))]
    pub source_region: Option<String>,

    /// DocumentDB and ElastiCache: the KMS key that encrypts the copy. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("kmsKeyId is immutable"))]
    pub kms_key_id: Option<String>,

    /// DocumentDB, a source in another account and region (see status.intermediate):
    /// the KMS key of the destination account, in the source's region, that encrypts
    /// the intermediate copy of an encrypted source (kmsKeyId encrypts the copy in
    /// spec.region). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("intermediateKmsKeyId is immutable"))]
    pub intermediate_kms_key_id: Option<String>,

    /// DocumentDB only: copy the source snapshot's tags to the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_tags: Option<bool>,

    /// DocumentDB, a clusterSnapshotRef source in another account than spec.account:
    /// the source's ClusterSnapshot shares it with spec.account's account (its
    /// `restore` attribute) while this object copies it, and revokes that share once the
    /// copy is made, has failed or this object is deleted. Without it, the
    /// ClusterSnapshot's sharedWith must list that account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_source_while_copying: Option<bool>,

    /// Redshift only: days AWS keeps the copy, -1 (forever, the default) or 1 to 3653,
    /// counted from its creation. Mutable; shortened below the copy's age, AWS deletes
    /// the copy at once (sent with Force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 3653))]
    #[x_kube(validation = Rule::new("self != 0").message("retentionDays must be -1 or 1 to 3653"))]
    pub retention_days: Option<i32>,

    /// ElastiCache only: export the snapshot to this S3 bucket instead of copying it
    /// within ElastiCache. Always kept: deletionPolicy Retain or left out. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("targetBucket is immutable"))]
    pub target_bucket: Option<String>,

    /// Tags kept in sync on the copy (see ClusterSnapshot for the characters AWS
    /// allows). Mutable.
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

    /// AWS accounts the copy is shared with (see ClusterSnapshot). Mutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(regex(pattern = super::SHARE_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub shared_with: Vec<String>,

    /// Delete or Retain, as for ClusterSnapshot (omitted: the operator's default). An
    /// export to S3 (targetBucket) is always Retain: omit it or say Retain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// The snapshot to copy: exactly one member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.clusterSnapshotRef) ? 1 : 0) + (has(self.redshift) ? 1 : 0) + (has(self.docdb) ? 1 : 0) + (has(self.elasticache) ? 1 : 0) == 1"
).message("source must name exactly one of clusterSnapshotRef, redshift, docdb or elasticache"))]
pub struct CopySource {
    /// A ClusterSnapshot in this namespace; the copy waits until it is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_snapshot_ref: Option<LocalRef>,
    /// A Redshift automated snapshot (CopyClusterSnapshot copies only those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redshift: Option<RedshiftSnapshotRef>,
    /// A DocumentDB cluster snapshot: an identifier, or an ARN for shared or
    /// cross-region sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docdb: Option<DocdbSnapshotRef>,
    /// An ElastiCache snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticache: Option<ElastiCacheSnapshotRef>,
}

/// An object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// The object's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Redshift automated snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedshiftSnapshotRef {
    /// The automated snapshot's identifier, such as `rs:analytics-2026-11-22-03-00`.
    #[schemars(length(min = 1, max = 255))]
    pub snapshot_identifier: String,
    /// The cluster the snapshot was taken of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = super::IDENTIFIER_PATTERN))]
    pub cluster_identifier: Option<String>,
}

/// A DocumentDB cluster snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocdbSnapshotRef {
    /// The snapshot's identifier, or its ARN for shared or cross-region sources.
    #[schemars(length(min = 1, max = 1011))]
    pub snapshot_identifier: String,
}

/// An ElastiCache snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElastiCacheSnapshotRef {
    /// The snapshot's name.
    #[schemars(length(min = 1, max = 255))]
    pub snapshot_name: String,
}
