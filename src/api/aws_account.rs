//! The `AWSAccount` kind: another AWS account the operator works in, through a role
//! it assumes there with STS, and the namespaces whose objects may use it. Cluster
//! scoped: only cluster administrators create them. No IO.

// The derive takes one printcolumn(...) per column; clippy reads the repeated
// `type_ = "string"` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.accountId`: twelve digits.
pub const ACCOUNT_ID_PATTERN: &str = "^[0-9]{12}$";
/// `spec.roleArn`: an IAM role's ARN in any partition (`arn:aws:`, `arn:aws-cn:`,
/// `arn:aws-us-gov:`), path allowed; IAM's role name characters.
pub const ROLE_ARN_PATTERN: &str =
    r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$";
/// `spec.externalId`: STS's AssumeRole ExternalId characters.
pub const EXTERNAL_ID_PATTERN: &str = r"^[\w+=,.@:/-]*$";

/// An AWS account that ClusterSnapshots, SnapshotCopies and SnapshotSchedules name in
/// spec.account: the operator assumes roleArn there with STS AssumeRole, using its own
/// credentials, and only objects in the namespaces listed or selected may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbsnapshot.io",
    version = "v1alpha1",
    kind = "AWSAccount",
    plural = "awsaccounts",
    shortname = "awsacct",
    category = "dbsnapshots",
    status = "AWSAccountStatus",
    derive = "PartialEq",
    doc = "An AWS account the operator works in through a role it assumes there (STS AssumeRole with its own credentials), and the namespaces whose ClusterSnapshots, SnapshotCopies and SnapshotSchedules may name it in spec.account. Cluster-scoped.",
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.accountId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why the account is (not) Ready: the Ready condition's reason",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Last Assumed",
        type_ = "date",
        json_path = ".status.lastAssumedTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        priority = 1,
        json_path = ".spec.roleArn"
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
    validation = Rule::new("self.roleArn.contains(':iam::' + self.accountId + ':role/')")
        .message("roleArn: the role must be in accountId's account (arn:aws:iam::<accountId>:role/...)")
        .field_path(".roleArn"),
)]
pub struct AWSAccountSpec {
    /// The 12-digit AWS account id. The assumed identity must belong to it (STS
    /// GetCallerIdentity) before the account is Ready.
    #[schemars(length(min = 12, max = 12), regex(pattern = ACCOUNT_ID_PATTERN))]
    pub account_id: String,

    /// The IAM role the operator assumes in the account, such as
    /// arn:aws:iam::111122223333:role/dbsnapshot-operator. Its trust policy must let
    /// the operator's own role assume it (docs/iam.md).
    #[schemars(length(min = 20, max = 2048), regex(pattern = ROLE_ARN_PATTERN))]
    pub role_arn: String,

    /// The external id the role's trust policy requires (condition sts:ExternalId),
    /// if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), regex(pattern = EXTERNAL_ID_PATTERN))]
    pub external_id: Option<String>,

    /// How long each assumed session lasts, in seconds (900..43200; at most the role's
    /// MaxSessionDuration, and at most 3600 when the operator's own credentials are a
    /// role's session, as with IRSA or EKS Pod Identity: AWS caps role chaining at one
    /// hour). Default: 3600. Credentials are renewed before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 900, max = 43200))]
    pub session_duration_seconds: Option<i32>,

    /// Namespaces whose objects may use this account, by name. With
    /// namespaceSelector, a namespace that either admits may use it; with neither,
    /// none may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub namespaces: Vec<String>,

    /// Namespaces whose objects may use this account, by their labels. An empty
    /// selector ({}) admits every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

impl AWSAccountSpec {
    /// Whether objects in the namespace `name`, labelled `labels`, may use the
    /// account: it is listed, or the selector matches (an empty selector matches every
    /// namespace; one the operator cannot read matches none).
    pub fn admits(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        use kube::core::{Selector, SelectorExt};
        self.namespaces.iter().any(|n| n == name)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                Selector::try_from(s.clone()).is_ok_and(|selector| selector.matches(labels))
            })
    }
}

/// What the operator found when it last assumed the account's role.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AWSAccountStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the role was last assumed and the identity checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub last_assumed_time: Option<Timestamp>,
    /// kstatus conditions: Ready always; Reconciling (work under way) or Stalled
    /// (waiting for a change from outside) only while True, never both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl AWSAccountStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(patch: serde_json::Value) -> AWSAccountSpec {
        let mut v = json!({"accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/dbsnapshot-operator"});
        v.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn namespaces_are_admitted_by_name_or_selector_and_by_nothing_else() {
        let none = spec(json!({}));
        assert!(!none.admits("data", &labels(&[])));
        let listed = spec(json!({"namespaces": ["data", "analytics"]}));
        assert!(listed.admits("data", &labels(&[])));
        assert!(!listed.admits("web", &labels(&[("team", "data")])));
        let selected = spec(json!({"namespaceSelector": {"matchLabels": {"team": "data"}}}));
        assert!(selected.admits("web", &labels(&[("team", "data")])));
        assert!(!selected.admits("web", &labels(&[("team", "web")])));
        assert!(!selected.admits("web", &labels(&[])));
        let both = spec(json!({"namespaces": ["ops"],
            "namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}]}}));
        assert!(both.admits("ops", &labels(&[])));
        assert!(both.admits("x", &labels(&[("tier", "prod")])));
        assert!(!both.admits("x", &labels(&[("tier", "dev")])));
        let all = spec(json!({"namespaceSelector": {}}));
        assert!(all.admits("anything", &labels(&[])));
        let unreadable = spec(
            json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Near"}]}}),
        );
        assert!(!unreadable.admits("x", &labels(&[("tier", "prod")])));
    }
}
