//! The CRDs: the committed copies match the Rust types, the CEL rules are in the
//! schema, and (evaluated here with a CEL engine, since the v1.20 test server drops
//! CEL) they accept valid specs and reject what the operator rejects.

mod common;

use dbsnapshot_operator::api::validation::{
    validate_aws_account, validate_cluster_snapshot, validate_snapshot_copy,
    validate_snapshot_schedule,
};
use dbsnapshot_operator::api::{
    AWSAccount, AWSAccountSpec, ClusterSnapshot, ClusterSnapshotSpec, SnapshotCopy,
    SnapshotCopySpec, SnapshotSchedule, SnapshotScheduleSpec, crds_yaml,
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
        "!has(self.targetBucket) || !has(self.deletionPolicy) || self.deletionPolicy == 'Retain'",
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

fn crd_of(
    kind: &str,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    match kind {
        "ClusterSnapshot" => ClusterSnapshot::crd(),
        "SnapshotCopy" => SnapshotCopy::crd(),
        "SnapshotSchedule" => SnapshotSchedule::crd(),
        "AWSAccount" => AWSAccount::crd(),
        _ => panic!("unknown kind {kind}"),
    }
}

fn cel(kind: &str, spec: &Value, old: Option<&Value>) -> Result<(), String> {
    let crd = crd_of(kind);
    let old = old.map(|o| object(kind, o.clone()));
    Validator::new()
        .validate(&schema(&crd), &object(kind, spec.clone()), old.as_ref())
        .map_err(|e| e.to_string())
}

/// Checks every string in `spec` against the `pattern` its schema gives it (a map's
/// values against `additionalProperties`), as the API server does; the error names the
/// first field that does not match.
fn patterns(kind: &str, spec: &Value) -> Result<(), String> {
    let crd = crd_of(kind);
    fn walk(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
        match v {
            Value::String(s) => {
                if let Some(e) = schema["enum"].as_array()
                    && !e.iter().any(|x| x == s)
                {
                    return Err(format!("{path}: {s:?} is not one of {e:?}"));
                }
                if let Some(min) = schema["minLength"].as_u64()
                    && (s.chars().count() as u64) < min
                {
                    return Err(format!("{path}: shorter than {min}"));
                }
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
            Value::Array(a) => {
                if let Some(max) = schema["maxItems"].as_u64()
                    && a.len() as u64 > max
                {
                    return Err(format!("{path}: more than {max} items"));
                }
                a.iter()
                    .enumerate()
                    .try_for_each(|(i, x)| walk(&schema["items"], x, &format!("{path}[{i}]")))
            }
            Value::Number(n) => {
                let n = n.as_f64().unwrap();
                if let Some(min) = schema["minimum"].as_f64()
                    && n < min
                {
                    return Err(format!("{path}: less than {min}"));
                }
                if let Some(max) = schema["maximum"].as_f64()
                    && n > max
                {
                    return Err(format!("{path}: more than {max}"));
                }
                Ok(())
            }
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
        json!({"source": rs, "adopt": true, "snapshotIdentifier": "legacy"}),
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
        (json!({"source": rs, "adopt": true}), "snapshotIdentifier"),
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
            json!({"source": rs, "account": "Prod_Account"}),
            "spec.account",
        ),
        (json!({"source": rs, "account": "-prod"}), "spec.account"),
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
        (
            json!({"source": rs, "snapshotIdentifier": "one", "region": "us-east-1", "account": "prod"}),
            "account is immutable",
        ),
        (
            json!({"source": rs, "snapshotIdentifier": "one", "region": "us-east-1", "adopt": true}),
            "adopt is immutable",
        ),
    ] {
        let err =
            cel("ClusterSnapshot", &new, Some(&old)).expect_err(&format!("CEL allowed {new}"));
        assert!(err.contains(text), "{new}: {err}");
    }
    // Mutable fields may change.
    let changed = json!({"source": rs, "snapshotIdentifier": "one", "region": "us-east-1", "retentionDays": 9, "sharedWith": ["111111111111"], "tags": {"a": "b"}});
    cel("ClusterSnapshot", &changed, Some(&old)).unwrap();
    // The account may not change once set, nor be removed.
    let with_account = json!({"source": rs, "account": "prod"});
    for (new, text) in [
        (
            json!({"source": rs, "account": "dr"}),
            "account is immutable",
        ),
        (json!({"source": rs}), "account is immutable"),
    ] {
        let err = cel("ClusterSnapshot", &new, Some(&with_account))
            .expect_err(&format!("CEL allowed {new}"));
        assert!(err.contains(text), "{new}: {err}");
    }
    cel("ClusterSnapshot", &with_account, Some(&with_account)).unwrap();
}

#[test]
fn cel_and_the_operator_agree_on_snapshot_copies() {
    let valid = [
        json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}}),
        json!({"source": {"redshift": {"snapshotIdentifier": "rs:analytics-2026-11-22-03-00"}}, "retentionDays": 7}),
        json!({"source": {"docdb": {"snapshotIdentifier": "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:x"}}, "sourceRegion": "us-west-2", "kmsKeyId": "k", "copyTags": true}),
        json!({"source": {"elasticache": {"snapshotName": "s"}}, "targetBucket": "my-exports", "deletionPolicy": "Retain"}),
        // An export is always kept: it may leave deletionPolicy out.
        json!({"source": {"elasticache": {"snapshotName": "s"}}, "targetBucket": "my-exports"}),
        json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}, "account": "dr", "shareSourceWhileCopying": true}),
        json!({"source": {"docdb": {"snapshotIdentifier": "x"}}, "shareSourceWhileCopying": false}),
        json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}, "account": "dr", "region": "eu-west-1", "kmsKeyId": "k", "intermediateKmsKeyId": "k2"}),
        json!({"source": {"docdb": {"snapshotIdentifier": "arn:aws:rds:us-east-1:210987654321:cluster-snapshot:x"}}, "intermediateKmsKeyId": "k2"}),
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
            json!({"source": {"elasticache": {"snapshotName": "s"}}, "targetBucket": "b-b", "deletionPolicy": "Delete"}),
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
            json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}, "shareSourceWhileCopying": true}),
            "another account",
        ),
        (
            json!({"source": {"docdb": {"snapshotIdentifier": "x"}}, "account": "dr", "shareSourceWhileCopying": true}),
            "another account",
        ),
        (
            json!({"source": {"redshift": {"snapshotIdentifier": "x"}}, "account": "dr", "intermediateKmsKeyId": "k"}),
            "DocumentDB",
        ),
        (
            json!({"source": {"elasticache": {"snapshotName": "s"}}, "intermediateKmsKeyId": "k"}),
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

/// The schedule's CRD: no immutability rule anywhere (templates may be edited), every
/// list a rule iterates is bounded (the API server refuses a CRD whose rules it prices
/// past its cost budget), and no rule scans a map key.
#[test]
fn snapshot_schedule_rules_are_bounded_and_templates_stay_mutable() {
    let s = schema(&SnapshotSchedule::crd());
    let mut rs = Vec::new();
    rules(&s, &mut rs);
    assert!(rs.len() >= 15, "{rs:?}");
    for r in &rs {
        assert!(
            !r.contains("oldSelf"),
            "a template rule is a transition rule: {r}"
        );
        assert!(
            !r.contains("k.matches(") && !r.contains("k.contains("),
            "a rule scans map keys: {r}"
        );
    }
    let spec = &s["properties"]["spec"];
    let copies = &spec["properties"]["copyTemplates"];
    assert_eq!(copies["maxItems"], 10);
    assert_eq!(copies["x-kubernetes-list-type"], "map");
    assert_eq!(copies["x-kubernetes-list-map-keys"], json!(["name"]));
    let template = &spec["properties"]["snapshotTemplate"]["properties"]["spec"];
    let copy = &copies["items"]["properties"]["spec"];
    for t in [template, copy] {
        assert_eq!(t["properties"]["sharedWith"]["maxItems"], 20);
        assert_eq!(t["properties"]["sharedWith"]["items"]["maxLength"], 23);
        assert_eq!(t["properties"]["tags"]["maxProperties"], 48);
        assert_eq!(
            t["properties"]["tags"]["additionalProperties"]["maxLength"],
            256
        );
    }
    // Excluded from the templates: derived per run.
    assert!(template["properties"].get("snapshotIdentifier").is_none());
    assert!(copy["properties"].get("source").is_none());
    assert!(copy["properties"].get("targetSnapshotIdentifier").is_none());
    assert_eq!(spec["required"], json!(["schedule", "snapshotTemplate"]));
    // Editing a template (source included) is allowed.
    let old = json!({"schedule": "0 3 * * *", "snapshotTemplate": {"spec": {"source": {"redshift": {"clusterIdentifier": "a"}}, "region": "us-east-1"}}});
    let new = json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "b"}}, "region": "eu-west-1"}}});
    cel("SnapshotSchedule", &new, Some(&old)).unwrap();
}

/// How the API server refuses a bad SnapshotSchedule.
#[derive(Debug)]
enum Refused {
    /// A CEL rule, whose message holds this text.
    Cel(&'static str),
    /// The structural schema (pattern, length, range, enum, item count), which every
    /// API server enforces.
    Schema,
    /// Nothing the schema can say (a time zone's existence, a cron field's range, a
    /// map key's characters): the operator alone refuses it.
    OperatorOnly,
}

/// `spec.copyTemplates[0].spec.tags[a<b]` as the schema walk names it
/// (`spec.copyTemplates[0].spec.tags.a<b`).
fn schema_path(field: &str) -> String {
    regex::Regex::new(r"\[([^\]0-9][^\]]*)\]")
        .unwrap()
        .replace_all(field, ".$1")
        .into_owned()
}

/// Bad SnapshotSchedules: each is refused by the schema (CEL or structural) where the
/// schema can say it, and always by the operator, whose error names the field.
#[test]
fn cel_and_the_operator_agree_on_snapshot_schedules() {
    let rs = json!({"redshift": {"clusterIdentifier": "analytics"}});
    let dd = json!({"docdb": {"clusterIdentifier": "orders"}});
    let ec = json!({"elasticache": {"replicationGroupId": "sessions"}});
    let with = |source: &Value, patch: Value| -> Value {
        let mut v =
            json!({"schedule": "0 3 * * *", "snapshotTemplate": {"spec": {"source": source}}});
        merge(&mut v, patch);
        v
    };
    let valid = [
        with(&rs, json!({})),
        with(
            &rs,
            json!({"schedule": "@daily", "timeZone": "Europe/Berlin", "suspend": true,
                "startingDeadlineSeconds": 0, "concurrencyPolicy": "Allow",
                "snapshotTemplate": {"metadata": {"labels": {"team": "data", "example.com/tier": ""}, "annotations": {"note": "any text at all"}},
                    "spec": {"retentionDays": 35, "sharedWith": ["111111111111", "amazon-redshift-support"], "tags": {"team": "data"}, "deletionPolicy": "Retain"}},
                "copyTemplates": [{"name": "keep", "spec": {"retentionDays": 7}}],
                "retention": {"keepLast": 7, "maxAge": "720h", "keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12, "failedHistoryLimit": 0}}),
        ),
        with(
            &dd,
            json!({"schedule": "0 */6 * * *", "timeZone": "America/New_York",
                "copyTemplates": [{"name": "dr", "spec": {"region": "eu-west-1", "sourceRegion": "us-east-1", "kmsKeyId": "alias/dr", "copyTags": true, "sharedWith": ["111111111111"]}},
                    {"name": "dr-2", "spec": {}}],
                "retention": {"maxAge": "1h30m"}}),
        ),
        with(
            &ec,
            json!({"schedule": "*/1 * * * *", "snapshotTemplate": {"spec": {"kmsKeyId": "alias/x"}},
                "copyTemplates": [{"name": "s3", "spec": {"targetBucket": "my-exports", "deletionPolicy": "Retain", "kmsKeyId": "k"}}],
                "retention": {"keepLast": 24, "maxAge": "1.5h"}}),
        ),
        with(
            &rs,
            json!({"schedule": "@yearly", "retention": {"maxAge": "45s"}}),
        ),
        with(
            &rs,
            json!({"schedule": "0 3 * * MON-FRI", "timeZone": "UTC"}),
        ),
    ];
    for v in &valid {
        cel("SnapshotSchedule", v, None).unwrap_or_else(|e| panic!("{v}: {e}"));
        patterns("SnapshotSchedule", v).unwrap_or_else(|e| panic!("{v}: {e}"));
        let spec: SnapshotScheduleSpec = serde_json::from_value(v.clone()).unwrap();
        validate_snapshot_schedule(&spec).unwrap_or_else(|e| panic!("{v}: {e}"));
    }

    use Refused::*;
    let copy = |spec: Value| json!({"copyTemplates": [{"name": "dr", "spec": spec}]});
    let tmpl = |spec: Value| json!({"snapshotTemplate": {"spec": spec}});
    let invalid: Vec<(Value, &str, Refused)> = vec![
        // Cron.
        (
            with(&rs, json!({"schedule": "0 3 * *"})),
            "spec.schedule",
            Schema,
        ),
        (
            with(&rs, json!({"schedule": "0 0 3 * * *"})),
            "spec.schedule",
            Schema,
        ),
        (with(&rs, json!({"schedule": ""})), "spec.schedule", Schema),
        (
            with(&rs, json!({"schedule": "@fortnightly"})),
            "spec.schedule",
            Schema,
        ),
        (
            with(&rs, json!({"schedule": "@every 5m"})),
            "spec.schedule",
            Schema,
        ),
        (
            with(&rs, json!({"schedule": "61 3 * * *"})),
            "spec.schedule",
            OperatorOnly,
        ),
        (
            with(&rs, json!({"schedule": "0 3 * * funday"})),
            "spec.schedule",
            OperatorOnly,
        ),
        // Time zone.
        (
            with(&rs, json!({"timeZone": "Mars/Olympus_Mons"})),
            "spec.timeZone",
            OperatorOnly,
        ),
        (
            with(&rs, json!({"timeZone": "Europe Berlin"})),
            "spec.timeZone",
            Schema,
        ),
        // Numbers.
        (
            with(&rs, json!({"startingDeadlineSeconds": -1})),
            "spec.startingDeadlineSeconds",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"keepLast": 0}})),
            "spec.retention.keepLast",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"keepDaily": -1}})),
            "spec.retention.keepDaily",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"keepWeekly": 0}})),
            "spec.retention.keepWeekly",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"keepMonthly": -3}})),
            "spec.retention.keepMonthly",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"failedHistoryLimit": -1}})),
            "spec.retention.failedHistoryLimit",
            Schema,
        ),
        // Durations.
        (
            with(&rs, json!({"retention": {"maxAge": "30d"}})),
            "spec.retention.maxAge",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"maxAge": "1h30"}})),
            "spec.retention.maxAge",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"maxAge": "PT1H"}})),
            "spec.retention.maxAge",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"maxAge": "-1h"}})),
            "spec.retention.maxAge",
            Schema,
        ),
        (
            with(&rs, json!({"retention": {"maxAge": "0h0m"}})),
            "spec.retention.maxAge",
            Cel("longer than zero"),
        ),
        // Copy names.
        (
            with(
                &dd,
                json!({"copyTemplates": [{"name": "dr", "spec": {}}, {"name": "dr", "spec": {"region": "eu-west-1"}}]}),
            ),
            "spec.copyTemplates[1].name",
            Cel("unique"),
        ),
        (
            with(&dd, json!({"copyTemplates": [{"name": "DR"}]})),
            "spec.copyTemplates[0].name",
            Schema,
        ),
        (
            with(&dd, json!({"copyTemplates": [{"name": "dr_1"}]})),
            "spec.copyTemplates[0].name",
            Schema,
        ),
        (
            with(
                &dd,
                json!({"copyTemplates": (0..11).map(|i| json!({"name": format!("c{i}")})).collect::<Vec<_>>()}),
            ),
            "spec.copyTemplates",
            Schema,
        ),
        // The snapshot template, as a ClusterSnapshot spec.
        (
            with(&json!({}), json!({})),
            "spec.snapshotTemplate.spec.source",
            Cel("exactly one"),
        ),
        (
            with(
                &json!({"redshift": {"clusterIdentifier": "a"}, "docdb": {"clusterIdentifier": "b"}}),
                json!({}),
            ),
            "spec.snapshotTemplate.spec.source",
            Cel("exactly one"),
        ),
        (
            with(
                &json!({"redshift": {"clusterIdentifier": "Analytics"}}),
                json!({}),
            ),
            "spec.snapshotTemplate.spec.source.redshift.clusterIdentifier",
            Schema,
        ),
        (
            with(&dd, tmpl(json!({"retentionDays": 7}))),
            "spec.snapshotTemplate.spec.retentionDays",
            Cel("Redshift"),
        ),
        (
            with(&rs, tmpl(json!({"retentionDays": 0}))),
            "spec.snapshotTemplate.spec.retentionDays",
            Cel("retentionDays"),
        ),
        (
            with(&rs, tmpl(json!({"kmsKeyId": "alias/x"}))),
            "spec.snapshotTemplate.spec.kmsKeyId",
            Cel("ElastiCache"),
        ),
        (
            with(&ec, tmpl(json!({"sharedWith": ["111111111111"]}))),
            "spec.snapshotTemplate.spec.sharedWith",
            Cel("ElastiCache"),
        ),
        (
            with(
                &dd,
                tmpl(json!({"sharedWith": ["amazon-redshift-support"]})),
            ),
            "spec.snapshotTemplate.spec.sharedWith[0]",
            Cel("12-digit"),
        ),
        (
            with(&rs, tmpl(json!({"sharedWith": ["12345"]}))),
            "spec.snapshotTemplate.spec.sharedWith[0]",
            Schema,
        ),
        (
            with(&rs, tmpl(json!({"region": "US-EAST-1"}))),
            "spec.snapshotTemplate.spec.region",
            Schema,
        ),
        (
            with(&rs, tmpl(json!({"tags": {"aws:x": "y"}}))),
            "spec.snapshotTemplate.spec.tags[aws:x]",
            Cel("reserved"),
        ),
        (
            with(&dd, tmpl(json!({"tags": {"k": "ops@example"}}))),
            "spec.snapshotTemplate.spec.tags[k]",
            Cel("DocumentDB"),
        ),
        (
            with(&rs, tmpl(json!({"tags": {"k": "<b>"}}))),
            "spec.snapshotTemplate.spec.tags[k]",
            Schema,
        ),
        (
            with(&rs, tmpl(json!({"tags": {"a<b": "x"}}))),
            "spec.snapshotTemplate.spec.tags[a<b]",
            OperatorOnly,
        ),
        // The snapshot template's metadata.
        (
            with(
                &rs,
                json!({"snapshotTemplate": {"metadata": {"labels": {"dbsnapshot.io/schedule": "other"}}}}),
            ),
            "spec.snapshotTemplate.metadata.labels[dbsnapshot.io/schedule]",
            Cel("set by the operator"),
        ),
        (
            with(
                &rs,
                json!({"snapshotTemplate": {"metadata": {"annotations": {"dbsnapshot.io/scheduled-time": "x"}}}}),
            ),
            "spec.snapshotTemplate.metadata.annotations[dbsnapshot.io/scheduled-time]",
            Cel("set by the operator"),
        ),
        (
            with(
                &rs,
                json!({"snapshotTemplate": {"metadata": {"labels": {"team": "data team"}}}}),
            ),
            "spec.snapshotTemplate.metadata.labels[team]",
            Schema,
        ),
        (
            with(
                &rs,
                json!({"snapshotTemplate": {"metadata": {"labels": {"my team": "data"}}}}),
            ),
            "spec.snapshotTemplate.metadata.labels[my team]",
            OperatorOnly,
        ),
        // Copy templates, as SnapshotCopy specs of the template's engine.
        (
            with(&dd, copy(json!({"retentionDays": 7}))),
            "spec.copyTemplates[0].spec.retentionDays",
            Cel("Redshift"),
        ),
        (
            with(&rs, copy(json!({"retentionDays": 0}))),
            "spec.copyTemplates[0].spec.retentionDays",
            Cel("retentionDays"),
        ),
        (
            with(&rs, copy(json!({"kmsKeyId": "k"}))),
            "spec.copyTemplates[0].spec.kmsKeyId",
            Cel("kmsKeyId"),
        ),
        (
            with(&rs, copy(json!({"sourceRegion": "us-west-2"}))),
            "spec.copyTemplates[0].spec.sourceRegion",
            Cel("DocumentDB"),
        ),
        (
            with(&ec, copy(json!({"copyTags": true}))),
            "spec.copyTemplates[0].spec.copyTags",
            Cel("DocumentDB"),
        ),
        (
            with(
                &dd,
                copy(json!({"targetBucket": "bkt", "deletionPolicy": "Retain"})),
            ),
            "spec.copyTemplates[0].spec.targetBucket",
            Cel("ElastiCache"),
        ),
        (
            with(
                &ec,
                copy(json!({"targetBucket": "bkt", "deletionPolicy": "Delete"})),
            ),
            "spec.copyTemplates[0].spec.deletionPolicy",
            Cel("Retain"),
        ),
        (
            with(&ec, copy(json!({"sharedWith": ["111111111111"]}))),
            "spec.copyTemplates[0].spec.sharedWith",
            Cel("ElastiCache"),
        ),
        (
            with(
                &dd,
                copy(json!({"sharedWith": ["amazon-redshift-support"]})),
            ),
            "spec.copyTemplates[0].spec.sharedWith[0]",
            Cel("12-digit"),
        ),
        (
            with(&dd, copy(json!({"tags": {"rds:k": "v"}}))),
            "spec.copyTemplates[0].spec.tags[rds:k]",
            Cel("DocumentDB"),
        ),
        (
            with(&dd, copy(json!({"tags": {"dbsnapshot.io/x": "v"}}))),
            "spec.copyTemplates[0].spec.tags[dbsnapshot.io/x]",
            Cel("reserved"),
        ),
        (
            with(&dd, copy(json!({"region": "EU"}))),
            "spec.copyTemplates[0].spec.region",
            Schema,
        ),
        (
            with(
                &ec,
                copy(json!({"targetBucket": "My_Bucket", "deletionPolicy": "Retain"})),
            ),
            "spec.copyTemplates[0].spec.targetBucket",
            Schema,
        ),
        (
            with(&dd, copy(json!({"tags": {"fish&chips": "x"}}))),
            "spec.copyTemplates[0].spec.tags[fish&chips]",
            OperatorOnly,
        ),
    ];
    for (spec, field, how) in &invalid {
        let parsed: SnapshotScheduleSpec =
            serde_json::from_value(spec.clone()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let e = validate_snapshot_schedule(&parsed)
            .expect_err(&format!("the operator accepted {spec}"));
        assert_eq!(e.field, *field, "{spec}: {e}");
        assert!(!e.message.is_empty());
        assert_refused("SnapshotSchedule", spec, field, how);
    }
}

/// Bad AWSAccounts: each refused by the schema (CEL or structural) and by the
/// operator, whose error names the field.
#[test]
fn cel_and_the_operator_agree_on_aws_accounts() {
    let with = |patch: Value| -> Value {
        let mut v = json!({"accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/dbsnapshot-operator"});
        merge(&mut v, patch);
        v
    };
    let valid = [
        with(json!({})),
        with(
            json!({"roleArn": "arn:aws:iam::111122223333:role/ops/dr/dbsnapshot-operator",
            "externalId": "team-a:7f3/x", "sessionDurationSeconds": 900,
            "namespaces": ["data", "analytics-2"],
            "namespaceSelector": {"matchLabels": {"example.com/team": "data"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]},
                    {"key": "frozen", "operator": "DoesNotExist"}]}}),
        ),
        with(
            json!({"roleArn": "arn:aws-cn:iam::111122223333:role/x", "sessionDurationSeconds": 43200,
            "namespaceSelector": {}}),
        ),
    ];
    for v in &valid {
        cel("AWSAccount", v, None).unwrap_or_else(|e| panic!("{v}: {e}"));
        patterns("AWSAccount", v).unwrap_or_else(|e| panic!("{v}: {e}"));
        let spec: AWSAccountSpec = serde_json::from_value(v.clone()).unwrap();
        validate_aws_account(&spec).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    use Refused::*;
    let invalid: Vec<(Value, &str, Refused)> = vec![
        (
            with(json!({"accountId": "11112222333"})),
            "spec.accountId",
            Schema,
        ),
        (
            with(json!({"accountId": "11112222333a"})),
            "spec.accountId",
            Schema,
        ),
        (
            with(json!({"roleArn": "arn:aws:iam::111122223333:user/dbsnapshot-operator"})),
            "spec.roleArn",
            Schema,
        ),
        (
            with(json!({"roleArn": "arn:aws:iam::111122223333:role/has space"})),
            "spec.roleArn",
            Schema,
        ),
        (
            with(json!({"roleArn": "arn:aws:iam::444455556666:role/dbsnapshot-operator"})),
            "spec.roleArn",
            Cel("the role must be in accountId's account"),
        ),
        (with(json!({"externalId": "x"})), "spec.externalId", Schema),
        (
            with(json!({"externalId": "has space"})),
            "spec.externalId",
            Schema,
        ),
        (
            with(json!({"sessionDurationSeconds": 899})),
            "spec.sessionDurationSeconds",
            Schema,
        ),
        (
            with(json!({"sessionDurationSeconds": 43201})),
            "spec.sessionDurationSeconds",
            Schema,
        ),
        (
            with(json!({"namespaces": ["Data"]})),
            "spec.namespaces[0]",
            Schema,
        ),
        (
            with(
                json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Near", "values": ["x"]}]}}),
            ),
            "spec.namespaceSelector.matchExpressions[0].operator",
            OperatorOnly,
        ),
        (
            with(
                json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}),
            ),
            "spec.namespaceSelector.matchExpressions[0].values",
            OperatorOnly,
        ),
        (
            with(json!({"namespaceSelector": {"matchLabels": {"bad key!": "x"}}})),
            "spec.namespaceSelector.matchLabels[bad key!]",
            OperatorOnly,
        ),
    ];
    for (spec, field, how) in &invalid {
        let parsed: AWSAccountSpec =
            serde_json::from_value(spec.clone()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let e = validate_aws_account(&parsed).expect_err(&format!("the operator accepted {spec}"));
        assert_eq!(e.field, *field, "{spec}: {e}");
        assert_refused("AWSAccount", spec, field, how);
    }
}

/// `spec` of `kind` is refused as `how` says: by a CEL rule whose message holds the
/// text, by the structural schema at `field`, or by neither (the operator alone).
fn assert_refused(kind: &str, spec: &Value, field: &str, how: &Refused) {
    let by_cel = cel(kind, spec, None);
    let by_schema = patterns(kind, spec);
    match how {
        Refused::Cel(text) => {
            let err = by_cel.expect_err(&format!("CEL accepted {spec}"));
            assert!(err.contains(text), "{spec}: {err}");
        }
        Refused::Schema => {
            let err = by_schema.expect_err(&format!("the schema accepted {spec}"));
            assert!(
                err.contains(&schema_path(field)),
                "{spec}: {err} (want {field})"
            );
        }
        Refused::OperatorOnly => {
            by_cel.unwrap_or_else(|err| panic!("{spec}: CEL refused it after all: {err}"));
            by_schema
                .unwrap_or_else(|err| panic!("{spec}: the schema refused it after all: {err}"));
        }
    }
}

/// Merges `patch` into `v`, objects key by key (as a JSON merge patch without deletes).
fn merge(v: &mut Value, patch: Value) {
    match (v, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, x) in b {
                merge(a.entry(k).or_insert(Value::Null), x);
            }
        }
        (slot, x) => *slot = x,
    }
}

/// The real API server takes the CRD, applies its defaults, serves the status
/// subresource and the printer columns, and refuses what the structural schema refuses
/// (the v1.20 test server drops CEL; the table above covers CEL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_serves_snapshot_schedules() {
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = format!("it-ssched-{:06x}", rand::random::<u32>() & 0xff_ffff);
    common::create_namespace(&client, &ns).await;
    let ar = ApiResource::erase::<SnapshotSchedule>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let typed: Api<SnapshotSchedule> = Api::namespaced(client.clone(), &ns);
    let object = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotSchedule",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap()
    };
    let rs = json!({"redshift": {"clusterIdentifier": "analytics"}});

    // Defaults come from the schema.
    let made = raw
        .create(
            &PostParams::default(),
            &object(
                "orders-nightly",
                json!({"schedule": "0 3 * * *", "snapshotTemplate": {"spec": {"source": rs}},
                    "copyTemplates": [{"name": "dr"}], "retention": {"keepLast": 7}}),
            ),
        )
        .await
        .unwrap();
    let spec = &made.data["spec"];
    assert_eq!(spec["suspend"], false, "{spec}");
    assert_eq!(spec["concurrencyPolicy"], "Forbid", "{spec}");
    assert_eq!(spec["retention"]["failedHistoryLimit"], 3, "{spec}");
    // No deletionPolicy default: a run without one gets the operator's default.
    assert!(
        spec["snapshotTemplate"]["spec"]
            .get("deletionPolicy")
            .is_none(),
        "{spec}"
    );
    assert!(
        spec["copyTemplates"][0]["spec"]
            .get("deletionPolicy")
            .is_none(),
        "{spec}"
    );
    let got = typed.get("orders-nightly").await.unwrap();
    validate_snapshot_schedule(&got.spec).unwrap();

    // The status subresource takes what the controller will write.
    typed
        .patch_status(
            "orders-nightly",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": 1, "lastScheduleTime": "2026-11-22T02:00:00Z",
                "nextScheduleTime": "2026-11-23T02:00:00Z", "lastSuccessfulTime": "2026-11-22T02:04:10Z",
                "lastSnapshot": "orders-nightly-202611220200", "active": ["orders-nightly-202611230200"],
                "snapshots": 7, "missedRuns": 1,
            }})),
        )
        .await
        .unwrap();
    let st = typed
        .get_status("orders-nightly")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.snapshots, 7);
    assert_eq!(
        st.last_successful_time.unwrap().to_string(),
        "2026-11-22T02:04:10Z"
    );
    assert_eq!(st.active, ["orders-nightly-202611230200"]);

    // The printer columns, as kubectl gets them.
    let req = http::Request::get(format!(
        "/apis/dbsnapshot.io/v1alpha1/namespaces/{ns}/snapshotschedules"
    ))
    .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Schedule",
            "Suspend",
            "Last Success",
            "Next",
            "Snapshots",
            "Ready",
            "Reason",
            "Age",
            "Message"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[1], "0 3 * * *", "{cells}");
    assert_eq!(cells[5], 7, "{cells}");

    // The structural schema refuses, naming the field.
    for (spec, field) in [
        (
            json!({"schedule": "0 3 * *", "snapshotTemplate": {"spec": {"source": rs}}}),
            "spec.schedule",
        ),
        (
            json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": rs}}, "retention": {"keepLast": 0}}),
            "spec.retention.keepLast",
        ),
        (
            json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": rs}}, "retention": {"maxAge": "30d"}}),
            "spec.retention.maxAge",
        ),
        (
            json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": rs}}, "copyTemplates": [{"name": "DR"}]}),
            // v1.20 names list items without their index.
            "spec.copyTemplates.name",
        ),
        (
            json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": rs}}, "copyTemplates": [{"name": "dr"}, {"name": "dr"}]}),
            "spec.copyTemplates[1]",
        ),
        (
            json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": rs}}, "startingDeadlineSeconds": -5}),
            "spec.startingDeadlineSeconds",
        ),
        (
            json!({"schedule": "@daily", "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "Orders"}}}}}),
            "spec.snapshotTemplate.spec.source.docdb.clusterIdentifier",
        ),
    ] {
        let err = raw
            .create(&PostParams::default(), &object("bad", spec.clone()))
            .await
            .expect_err(&format!("the API server took {spec}"));
        let msg = err.to_string();
        assert!(msg.contains(field), "{spec}: {msg}");
    }
}
