//! The CRDs: the committed copies match the Rust types, the CEL rules are in the
//! schema, and (evaluated here with a CEL engine, since the v1.20 test server drops
//! CEL) they accept valid specs and reject what the operator rejects.

use dbsnapshot_operator::api::validation::{validate_cluster_snapshot, validate_snapshot_copy};
use dbsnapshot_operator::api::{
    ClusterSnapshot, ClusterSnapshotSpec, SnapshotCopy, SnapshotCopySpec, crds_yaml,
};
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};

#[test]
fn committed_crds_match_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/dbsnapshot.io.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/dbsnapshot.io.yaml");
    assert!(
        committed == crds_yaml(),
        "crds/dbsnapshot.io.yaml is out of date: run `cargo run -- crd > crds/dbsnapshot.io.yaml`"
    );
}

fn schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn rules(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rs)) = m.get("x-kubernetes-validations") {
                out.extend(
                    rs.iter()
                        .filter_map(|r| r["rule"].as_str().map(str::to_string)),
                );
            }
            m.values().for_each(|x| rules(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| rules(x, out)),
        _ => {}
    }
}

#[test]
fn cel_rules_are_in_the_generated_schema() {
    let mut cs = Vec::new();
    rules(&schema(&ClusterSnapshot::crd()), &mut cs);
    for expected in [
        "(has(self.redshift) ? 1 : 0) + (has(self.docdb) ? 1 : 0) + (has(self.elasticache) ? 1 : 0) == 1",
        "has(self.replicationGroupId) != has(self.cacheClusterId)",
        "!has(self.retentionDays) || has(self.source.redshift)",
        "!has(self.kmsKeyId) || has(self.source.elasticache)",
        "!has(self.sharedWith) || size(self.sharedWith) == 0 || !has(self.source.elasticache)",
        "self == oldSelf",
        "has(self.snapshotIdentifier) == has(oldSelf.snapshotIdentifier)",
        "has(self.region) == has(oldSelf.region)",
    ] {
        assert!(cs.iter().any(|r| r == expected), "missing rule {expected}");
    }
    // The API server prices a rule by the largest input the schema allows: a map key
    // has no length bound, so no rule scans one (`contains`, `matches`); tag values are
    // at most 256 characters.
    for r in &cs {
        assert!(
            !r.contains("k.matches(") && !r.contains("k.contains("),
            "a rule scans map keys: {r}"
        );
    }
    let spec = &schema(&ClusterSnapshot::crd())["properties"]["spec"];
    assert_eq!(
        spec["properties"]["tags"]["additionalProperties"]["maxLength"],
        256
    );
    // self == oldSelf on source, snapshotIdentifier, region and kmsKeyId.
    assert!(cs.iter().filter(|r| *r == "self == oldSelf").count() >= 4);

    let mut sc = Vec::new();
    rules(&schema(&SnapshotCopy::crd()), &mut sc);
    for expected in [
        "!has(self.targetBucket) || self.deletionPolicy == 'Retain'",
        "!has(self.retentionDays) || has(self.source.redshift) || has(self.source.clusterSnapshotRef)",
        "!has(self.kmsKeyId) || !has(self.source.redshift)",
        "!has(self.copyTags) || has(self.source.docdb) || has(self.source.clusterSnapshotRef)",
        "has(self.targetSnapshotIdentifier) == has(oldSelf.targetSnapshotIdentifier)",
    ] {
        assert!(sc.iter().any(|r| r == expected), "missing rule {expected}");
    }
}

fn object(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "dbsnapshot.io/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": "n"}, "spec": spec})
}

fn cel(kind: &str, spec: &Value, old: Option<&Value>) -> Result<(), String> {
    let crd = if kind == "ClusterSnapshot" {
        ClusterSnapshot::crd()
    } else {
        SnapshotCopy::crd()
    };
    let old = old.map(|o| object(kind, o.clone()));
    Validator::new()
        .validate(&schema(&crd), &object(kind, spec.clone()), old.as_ref())
        .map_err(|e| e.to_string())
}

/// Checks every string in `spec` against the `pattern` its schema gives it (a map's
/// values against `additionalProperties`), as the API server does; the error names the
/// first field that does not match.
fn patterns(kind: &str, spec: &Value) -> Result<(), String> {
    let crd = if kind == "ClusterSnapshot" {
        ClusterSnapshot::crd()
    } else {
        SnapshotCopy::crd()
    };
    fn walk(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
        match v {
            Value::String(s) => {
                if let Some(max) = schema["maxLength"].as_u64()
                    && s.chars().count() as u64 > max
                {
                    return Err(format!("{path}: longer than {max}"));
                }
                if let Some(p) = schema["pattern"].as_str()
                    && !regex::Regex::new(p).unwrap().is_match(s)
                {
                    return Err(format!("{path}: {s:?} does not match {p}"));
                }
                Ok(())
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let sub = schema["properties"]
                        .get(k)
                        .unwrap_or(&schema["additionalProperties"]);
                    walk(sub, x, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            Value::Array(a) => a.iter().try_for_each(|x| walk(&schema["items"], x, path)),
            _ => Ok(()),
        }
    }
    walk(&schema(&crd)["properties"]["spec"], spec, "spec")
}

/// Specs the CEL rules must reject, with the text the rule's message carries; each is
/// rejected by the operator's own validation too.
#[test]
fn cel_and_the_operator_agree_on_cluster_snapshots() {
    let rs = json!({"redshift": {"clusterIdentifier": "analytics"}});
    let dd = json!({"docdb": {"clusterIdentifier": "orders"}});
    let ec = json!({"elasticache": {"replicationGroupId": "sessions"}});
    for valid in [
        json!({"source": rs, "retentionDays": 7, "sharedWith": ["111111111111", "amazon-redshift-support"]}),
        json!({"source": dd, "sharedWith": ["111111111111"], "snapshotIdentifier": "a".repeat(63)}),
        json!({"source": ec, "kmsKeyId": "alias/x", "tags": {"team": "data"}}),
        json!({"source": {"elasticache": {"cacheClusterId": "solo"}}}),
        json!({"source": rs, "tags": {"Zürich Ωμέγα 東京": "a_b.c:d/e=f+g-h@i ٣", "empty": ""}}),
    ] {
        cel("ClusterSnapshot", &valid, None).unwrap_or_else(|e| panic!("{valid}: {e}"));
        patterns("ClusterSnapshot", &valid).unwrap_or_else(|e| panic!("{valid}: {e}"));
        let spec: ClusterSnapshotSpec = serde_json::from_value(valid.clone()).unwrap();
        validate_cluster_snapshot(&spec).unwrap_or_else(|e| panic!("{valid}: {e}"));
    }
    let invalid = [
        (json!({"source": {}}), "exactly one"),
        (
            json!({"source": {"redshift": {"clusterIdentifier": "a"}, "docdb": {"clusterIdentifier": "b"}}}),
            "exactly one",
        ),
        (
            json!({"source": {"elasticache": {"replicationGroupId": "a", "cacheClusterId": "b"}}}),
            "exactly one",
        ),
        (json!({"source": dd, "retentionDays": 7}), "Redshift"),
        (json!({"source": rs, "kmsKeyId": "alias/x"}), "ElastiCache"),
        (
            json!({"source": ec, "sharedWith": ["111111111111"]}),
            "ElastiCache",
        ),
        (
            json!({"source": dd, "sharedWith": ["amazon-redshift-support"]}),
            "12-digit",
        ),
        (
            json!({"source": dd, "snapshotIdentifier": "a".repeat(64)}),
            "63",
        ),
        (json!({"source": rs, "retentionDays": 0}), "retentionDays"),
        (json!({"source": rs, "tags": {"aws:x": "y"}}), "reserved"),
        (
            json!({"source": rs, "tags": {"dbsnapshot.io/owner-uid": "y"}}),
            "reserved",
        ),
        (json!({"source": rs, "tags": {"k": "v".repeat(257)}}), "256"),
        (
            json!({"source": dd, "tags": {"k": "ops@example"}}),
            "DocumentDB",
        ),
        (json!({"source": dd, "tags": {"rds:k": "v"}}), "DocumentDB"),
        (json!({"source": dd, "tags": {"k": "aws:v"}}), "DocumentDB"),
    ];
    for (spec, text) in &invalid {
        let err = cel("ClusterSnapshot", spec, None).expect_err(&format!("CEL accepted {spec}"));
        assert!(err.contains(text), "{spec}: {err}");
        let parsed: ClusterSnapshotSpec = serde_json::from_value(spec.clone()).unwrap();
        assert!(
            validate_cluster_snapshot(&parsed).is_err(),
            "the operator accepted {spec}"
        );
    }
    // Rules the schema holds as patterns (which every API server enforces).
    let by_pattern = [
        (
            json!({"source": dd, "snapshotIdentifier": "Orders-Weekly"}),
            "spec.snapshotIdentifier",
        ),
        (
            json!({"source": {"redshift": {"clusterIdentifier": "Analytics"}}}),
            "spec.source.redshift.clusterIdentifier",
        ),
        (
            json!({"source": {"docdb": {"clusterIdentifier": "Orders"}}}),
            "spec.source.docdb.clusterIdentifier",
        ),
        (
            json!({"source": {"elasticache": {"replicationGroupId": "Sessions"}}}),
            "spec.source.elasticache.replicationGroupId",
        ),
        (
            json!({"source": {"elasticache": {"cacheClusterId": "Solo"}}}),
            "spec.source.elasticache.cacheClusterId",
        ),
        (json!({"source": rs, "tags": {"k": "<b>"}}), "spec.tags.k"),
        (
            json!({"source": rs, "tags": {"k": "tab\there"}}),
            "spec.tags.k",
        ),
        (
            json!({"source": rs, "tags": {"k": "fish & chips"}}),
            "spec.tags.k",
        ),
        (json!({"source": rs, "tags": {"k": "🚀"}}), "spec.tags.k"),
        (
            json!({"source": rs, "tags": {"k": "v".repeat(257)}}),
            "spec.tags.k",
        ),
    ];
    for (spec, field) in &by_pattern {
        let err = patterns("ClusterSnapshot", spec).expect_err(&format!("schema accepted {spec}"));
        assert!(err.contains(field), "{spec}: {err}");
        let parsed: ClusterSnapshotSpec = serde_json::from_value(spec.clone()).unwrap();
        let e =
            validate_cluster_snapshot(&parsed).expect_err(&format!("the operator accepted {spec}"));
        let named = if field.starts_with("spec.tags") {
            "spec.tags"
        } else {
            field
        };
        assert!(e.field.starts_with(named), "{spec}: {e}");
    }
    // Immutability (transition rules).
    let old = json!({"source": rs, "snapshotIdentifier": "one", "region": "us-east-1"});
    for (new, text) in [
        (
            json!({"source": dd, "snapshotIdentifier": "one", "region": "us-east-1"}),
            "source is immutable",
        ),
        (
            json!({"source": rs, "snapshotIdentifier": "two", "region": "us-east-1"}),
            "snapshotIdentifier is immutable",
        ),
        (
            json!({"source": rs, "region": "us-east-1"}),
            "snapshotIdentifier is immutable",
        ),
        (
            json!({"source": rs, "snapshotIdentifier": "one", "region": "eu-west-1"}),
            "region is immutable",
        ),
    ] {
        let err =
            cel("ClusterSnapshot", &new, Some(&old)).expect_err(&format!("CEL allowed {new}"));
        assert!(err.contains(text), "{new}: {err}");
    }
    // Mutable fields may change.
    let changed = json!({"source": rs, "snapshotIdentifier": "one", "region": "us-east-1", "retentionDays": 9, "sharedWith": ["111111111111"], "tags": {"a": "b"}});
    cel("ClusterSnapshot", &changed, Some(&old)).unwrap();
}

#[test]
fn cel_and_the_operator_agree_on_snapshot_copies() {
    let valid = [
        json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}}),
        json!({"source": {"redshift": {"snapshotIdentifier": "rs:analytics-2026-11-22-03-00"}}, "retentionDays": 7}),
        json!({"source": {"docdb": {"snapshotIdentifier": "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:x"}}, "sourceRegion": "us-west-2", "kmsKeyId": "k", "copyTags": true}),
        json!({"source": {"elasticache": {"snapshotName": "s"}}, "targetBucket": "my-exports", "deletionPolicy": "Retain"}),
    ];
    for v in &valid {
        cel("SnapshotCopy", v, None).unwrap_or_else(|e| panic!("{v}: {e}"));
        patterns("SnapshotCopy", v).unwrap_or_else(|e| panic!("{v}: {e}"));
        let spec: SnapshotCopySpec = serde_json::from_value(v.clone()).unwrap();
        validate_snapshot_copy(&spec, None).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    let invalid = [
        (json!({"source": {}}), "exactly one"),
        (
            json!({"source": {"elasticache": {"snapshotName": "s"}}, "targetBucket": "b-b"}),
            "Retain",
        ),
        (
            json!({"source": {"redshift": {"snapshotIdentifier": "x"}}, "kmsKeyId": "k"}),
            "kmsKeyId",
        ),
        (
            json!({"source": {"docdb": {"snapshotIdentifier": "x"}}, "retentionDays": 3}),
            "Redshift",
        ),
        (
            json!({"source": {"redshift": {"snapshotIdentifier": "x"}}, "sourceRegion": "us-west-2"}),
            "DocumentDB",
        ),
        (
            json!({"source": {"redshift": {"snapshotIdentifier": "x"}}, "copyTags": true}),
            "DocumentDB",
        ),
        (
            json!({"source": {"docdb": {"snapshotIdentifier": "x"}}, "targetBucket": "bkt", "deletionPolicy": "Retain"}),
            "ElastiCache",
        ),
        (
            json!({"source": {"elasticache": {"snapshotName": "s"}}, "sharedWith": ["111111111111"]}),
            "ElastiCache",
        ),
    ];
    let copy = json!({"clusterSnapshotRef": {"name": "nightly"}});
    for (spec, field) in [
        (
            json!({"source": copy, "targetSnapshotIdentifier": "Nightly-Copy"}),
            "spec.targetSnapshotIdentifier",
        ),
        (
            json!({"source": {"redshift": {"snapshotIdentifier": "x", "clusterIdentifier": "Analytics"}}}),
            "spec.source.redshift.clusterIdentifier",
        ),
        (json!({"source": copy, "tags": {"k": "a&b"}}), "spec.tags.k"),
    ] {
        let err = patterns("SnapshotCopy", &spec).expect_err(&format!("schema accepted {spec}"));
        assert!(err.contains(field), "{spec}: {err}");
        let parsed: SnapshotCopySpec = serde_json::from_value(spec.clone()).unwrap();
        assert!(
            validate_snapshot_copy(&parsed, None).is_err(),
            "the operator accepted {spec}"
        );
    }
    // Tag keys' characters: a map's keys can hold no pattern, and a CEL scan of them
    // would be priced past the API server's cost budget; the operator refuses them.
    for key in ["a<b", "fish&chips", "🚀"] {
        let spec = json!({"source": copy, "tags": {key: "x"}});
        cel("SnapshotCopy", &spec, None).unwrap();
        patterns("SnapshotCopy", &spec).unwrap();
        let parsed: SnapshotCopySpec = serde_json::from_value(spec.clone()).unwrap();
        let e = validate_snapshot_copy(&parsed, None).unwrap_err();
        assert_eq!(e.field, format!("spec.tags[{key}]"));
    }
    for (spec, text) in &invalid {
        let err = cel("SnapshotCopy", spec, None).expect_err(&format!("CEL accepted {spec}"));
        assert!(err.contains(text), "{spec}: {err}");
        let parsed: SnapshotCopySpec = serde_json::from_value(spec.clone()).unwrap();
        assert!(
            validate_snapshot_copy(&parsed, None).is_err(),
            "the operator accepted {spec}"
        );
    }
}
