//! The `ClusterSnapshot` kind: a manual snapshot of one AWS cluster. No IO.

// The derive takes one printcolumn(...) per column; clippy reads the repeated
// `type_ = "string"` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::status::{Engine, SnapshotStatus};
use super::{DeletionPolicy, Tags};

/// A manual snapshot of one Amazon Redshift cluster, Amazon DocumentDB cluster, or
/// Amazon ElastiCache replication group or cache cluster. Deleting the object revokes
/// the snapshot's sharing and deletes it, unless deletionPolicy is Retain.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbsnapshot.io",
    version = "v1alpha1",
    kind = "ClusterSnapshot",
    plural = "clustersnapshots",
    shortname = "csnap",
    category = "dbsnapshots",
    namespaced,
    status = "SnapshotStatus",
    derive = "PartialEq",
    doc = "A manual snapshot of an Amazon Redshift cluster, Amazon DocumentDB cluster or Amazon ElastiCache replication group or cache cluster.",
    printcolumn(name = "Engine", type_ = "string", json_path = ".status.engine"),
    printcolumn(name = "Source", type_ = "string", json_path = ".status.source"),
    printcolumn(
        name = "Snapshot",
        type_ = "string",
        json_path = ".status.snapshotIdentifier"
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
    validation = Rule::new("!has(self.snapshotIdentifier) || !has(self.source.docdb) || size(self.snapshotIdentifier) <= 63")
        .message("DocumentDB snapshot identifiers are at most 63 characters")
        .field_path(".snapshotIdentifier"),
    validation = Rule::new("has(self.snapshotIdentifier) == has(oldSelf.snapshotIdentifier)")
        .message("snapshotIdentifier is immutable")
        .field_path(".snapshotIdentifier"),
    validation = Rule::new("has(self.account) == has(oldSelf.account)")
        .message("account is immutable")
        .field_path(".account"),
    validation = Rule::new("has(self.adopt) == has(oldSelf.adopt)")
        .message("adopt is immutable")
        .field_path(".adopt"),
    validation = Rule::new("!has(self.adopt) || !self.adopt || has(self.snapshotIdentifier)")
        .message("adopt needs snapshotIdentifier: the existing snapshot to adopt")
        .field_path(".snapshotIdentifier"),
    validation = Rule::new("has(self.region) == has(oldSelf.region)")
        .message("region is immutable")
        .field_path(".region"),
    validation = Rule::new("has(self.kmsKeyId) == has(oldSelf.kmsKeyId)")
        .message("kmsKeyId is immutable")
        .field_path(".kmsKeyId"),
)]
pub struct ClusterSnapshotSpec {
    /// The cluster to snapshot: exactly one of redshift, docdb or elasticache.
    /// Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("source is immutable"))]
    pub source: ClusterSource,

    /// The snapshot's identifier on AWS. Default: derived from the namespace, name and
    /// uid (`<namespace>-<name>-<uid prefix>`). A letter first, then letters, digits and
    /// single hyphens; at most 255 characters (63 for DocumentDB). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = super::IDENTIFIER_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("snapshotIdentifier is immutable"))]
    pub snapshot_identifier: Option<String>,

    /// Adopt the existing manual snapshot snapshotIdentifier instead of taking one:
    /// nothing is ever created. A manual, available snapshot of the account with no
    /// dbsnapshot.io/ tag is claimed with the ownership tags, and from then on its tags,
    /// sharing and (Redshift) retention follow this spec like any other (list the
    /// accounts it is shared with and the tags to keep, or they are removed); one tagged
    /// for another object is NotOwned; a missing one is NotFound. deletionPolicy
    /// defaults to Retain. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("adopt is immutable"))]
    pub adopt: Option<bool>,

    /// The AWS region of the cluster. Default: the operator's region. Immutable.
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

    /// Redshift only: days AWS keeps the manual snapshot, -1 (forever, the default) or
    /// 1 to 3653, counted from its creation. Mutable; shortened below the snapshot's
    /// age, AWS deletes the snapshot at once (sent with Force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 3653))]
    #[x_kube(validation = Rule::new("self != 0").message("retentionDays must be -1 or 1 to 3653"))]
    pub retention_days: Option<i32>,

    /// ElastiCache only: the KMS key that encrypts the snapshot. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("kmsKeyId is immutable"))]
    pub kms_key_id: Option<String>,

    /// Tags kept in sync on the snapshot. Keys (1 to 128 characters) and values (at
    /// most 256) hold letters, digits, white space and `_ . : / = + - @` only, as AWS
    /// requires. Keys starting with `aws:` or `dbsnapshot.io/` are reserved. At most 48
    /// (AWS allows 50; the operator adds two ownership tags). Mutable.
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

    /// AWS accounts the snapshot is shared with (restore access). Redshift: 12-digit
    /// account ids or amazon-redshift-support; DocumentDB: 12-digit account ids;
    /// ElastiCache: not supported. At most 20. Mutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(regex(pattern = super::SHARE_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub shared_with: Vec<String>,

    /// Delete: deleting the object revokes every share and deletes the snapshot.
    /// Retain: the snapshot and its shares stay on AWS. Omitted: the operator's default
    /// (`--default-deletion-policy`, Delete unless set), recorded in
    /// status.deletionPolicy before the snapshot is made and kept from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// The cluster to snapshot: exactly one member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.redshift) ? 1 : 0) + (has(self.docdb) ? 1 : 0) + (has(self.elasticache) ? 1 : 0) == 1"
).message("source must name exactly one of redshift, docdb or elasticache"))]
pub struct ClusterSource {
    /// An Amazon Redshift cluster (CreateClusterSnapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redshift: Option<ClusterRef>,
    /// An Amazon DocumentDB cluster (CreateDBClusterSnapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docdb: Option<ClusterRef>,
    /// An Amazon ElastiCache replication group or cache cluster (CreateSnapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticache: Option<ElastiCacheRef>,
}

/// A Redshift or DocumentDB cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// The cluster identifier.
    #[schemars(length(min = 1, max = 63), regex(pattern = super::IDENTIFIER_PATTERN))]
    pub cluster_identifier: String,
}

/// An ElastiCache replication group or cache cluster: exactly one member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.replicationGroupId) != has(self.cacheClusterId)")
    .message("elasticache must name exactly one of replicationGroupId or cacheClusterId"))]
pub struct ElastiCacheRef {
    /// A replication group (Valkey or Redis OSS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40), regex(pattern = super::IDENTIFIER_PATTERN))]
    pub replication_group_id: Option<String>,
    /// A single-node cache cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50), regex(pattern = super::IDENTIFIER_PATTERN))]
    pub cache_cluster_id: Option<String>,
}

/// The one source a (valid) spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCluster<'a> {
    Redshift(&'a str),
    Docdb(&'a str),
    ReplicationGroup(&'a str),
    CacheCluster(&'a str),
}

impl SourceCluster<'_> {
    pub fn engine(&self) -> Engine {
        match self {
            SourceCluster::Redshift(_) => Engine::Redshift,
            SourceCluster::Docdb(_) => Engine::Docdb,
            SourceCluster::ReplicationGroup(_) | SourceCluster::CacheCluster(_) => {
                Engine::Elasticache
            }
        }
    }
    pub fn id(&self) -> &str {
        match self {
            SourceCluster::Redshift(id)
            | SourceCluster::Docdb(id)
            | SourceCluster::ReplicationGroup(id)
            | SourceCluster::CacheCluster(id) => id,
        }
    }
}

impl ClusterSource {
    /// Every member that is set, in a fixed order (a valid spec has exactly one).
    pub fn members(&self) -> Vec<SourceCluster<'_>> {
        let mut out = Vec::new();
        if let Some(r) = &self.redshift {
            out.push(SourceCluster::Redshift(&r.cluster_identifier));
        }
        if let Some(d) = &self.docdb {
            out.push(SourceCluster::Docdb(&d.cluster_identifier));
        }
        if let Some(e) = &self.elasticache {
            if let Some(g) = &e.replication_group_id {
                out.push(SourceCluster::ReplicationGroup(g));
            }
            if let Some(c) = &e.cache_cluster_id {
                out.push(SourceCluster::CacheCluster(c));
            }
        }
        out
    }
}
