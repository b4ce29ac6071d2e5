//! The `dbsnapshot.io/v1alpha1` API: the `ClusterSnapshot`, `SnapshotCopy`,
//! `SnapshotSchedule` and `AWSAccount` kinds, their status, condition reasons and spec validation. No IO.

pub mod aws_account;
pub mod cluster_snapshot;
pub mod conditions;
pub mod defaults;
pub mod reference;
pub mod snapshot_copy;
pub mod snapshot_schedule;
pub mod status;
pub mod validation;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use aws_account::{AWSAccount, AWSAccountSpec, AWSAccountStatus};
pub use cluster_snapshot::{ClusterSnapshot, ClusterSnapshotSpec, ClusterSource};
pub use defaults::Defaults;
pub use snapshot_copy::{CopySource, SnapshotCopy, SnapshotCopySpec};
pub use snapshot_schedule::{
    ConcurrencyPolicy, CopyTemplate, CopyTemplateSpec, Retention, SnapshotSchedule,
    SnapshotScheduleSpec, SnapshotScheduleStatus, SnapshotTemplate, SnapshotTemplateSpec,
    TemplateMetadata,
};
pub use status::{Engine, IntermediateCopy, Phase, Progress, SnapshotStatus};

pub const GROUP: &str = "dbsnapshot.io";
pub const FINALIZER: &str = "dbsnapshot.io/finalizer";
/// Field manager and event reporter.
pub const MANAGER: &str = "dbsnapshot-operator";
/// Tag on every snapshot the operator creates or copies: the owning object's uid.
pub const OWNER_UID_TAG: &str = "dbsnapshot.io/owner-uid";
/// Tag on every snapshot the operator creates or copies: `<namespace>/<kind>/<name>`.
pub const RESOURCE_TAG: &str = "dbsnapshot.io/resource";

/// Label on every ClusterSnapshot a SnapshotSchedule creates: the schedule's name.
/// Retention only ever deletes objects carrying it.
pub const SCHEDULE_LABEL: &str = "dbsnapshot.io/schedule";
/// Annotation on every ClusterSnapshot a SnapshotSchedule creates: the run's scheduled
/// time (RFC 3339, UTC).
pub const SCHEDULED_TIME_ANNOTATION: &str = "dbsnapshot.io/scheduled-time";

/// An AWS resource identifier: a lowercase letter first, then lowercase letters, digits
/// and single hyphens, not ending with a hyphen. AWS stores DocumentDB and ElastiCache
/// identifiers lowercased and looks Redshift's up regardless of case, so an upper-case
/// identifier would name a snapshot AWS reports under another spelling.
pub const IDENTIFIER_PATTERN: &str = "^[a-z]([a-z0-9]|-[a-z0-9])*$";
/// AWS's common tag character set: letters, digits, white space and `_ . : / = + - @`
/// (the Java regex `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$` of AWS's tagging APIs). Keys
/// starting with `aws:` are AWS's own. The schema holds it for tag values (every API
/// server enforces a pattern); a map's keys cannot have one, so the operator checks
/// their characters.
pub const TAG_PATTERN: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";
/// DocumentDB's own tag rule (its Tag reference): no `@`, and neither key nor value
/// starting with `aws:` or `rds:`; for a spec whose source is DocumentDB.
///
/// Tag keys are checked by prefix only here: a map's keys have no length bound the API
/// server's CEL cost estimate can use, so a scan of them (`contains`, `matches`) would
/// be priced as a scan of megabytes and the CRD refused; their characters are the
/// operator's to check. Values are bounded (at most 256 characters).
pub const DOCDB_TAGS_RULE: &str = "!has(self.tags) || !has(self.source.docdb) || self.tags.all(k, !k.startsWith('rds:') && !self.tags[k].contains('@') && !self.tags[k].startsWith('aws:') && !self.tags[k].startsWith('rds:'))";
/// The message of [`DOCDB_TAGS_RULE`].
pub const DOCDB_TAGS_MESSAGE: &str =
    "DocumentDB tags may not hold '@', nor start with aws: or rds: (key or value)";
/// An AWS region name such as `us-east-1`.
pub const REGION_PATTERN: &str = "^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// An AWSAccount's name, as spec.account names it: a Kubernetes object name (a DNS
/// subdomain: lowercase letters, digits, '-' and '.', a letter or digit at each end).
pub const ACCOUNT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A 12-digit AWS account id, or Redshift's support account.
pub const SHARE_PATTERN: &str = "^([0-9]{12}|amazon-redshift-support)$";

// What happens on AWS when the object is deleted. (Not a doc comment: the schema of each
// optional field would take it instead of the field's own description.)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Revoke every share, then delete the snapshot (the default).
    #[default]
    Delete,
    /// Leave the snapshot and its shares on AWS.
    Retain,
}

/// User tags, kept in sync on the snapshot.
pub type Tags = BTreeMap<String, String>;

/// The CustomResourceDefinitions as one multi-document YAML stream, as committed
/// under `crds/` and printed by `dbsnapshot-operator crd`.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [
        ClusterSnapshot::crd(),
        SnapshotCopy::crd(),
        SnapshotSchedule::crd(),
        AWSAccount::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD serialises to YAML"));
    }
    out
}
