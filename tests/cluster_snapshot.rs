//! ClusterSnapshot end to end: the operator binary against a real kube-apiserver and
//! the AWS emulator, per engine.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::json;

fn source(engine: &str) -> serde_json::Value {
    match engine {
        "redshift" => json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "docdb" => json!({"docdb": {"clusterIdentifier": "orders"}}),
        "elasticache" => json!({"elasticache": {"replicationGroupId": "sessions"}}),
        "cache-cluster" => json!({"elasticache": {"cacheClusterId": "solo"}}),
        other => panic!("{other}"),
    }
}

/// Create → progress while creating → Ready with what AWS reports → delete.
async fn lifecycle(engine: &str) {
    let h = Harness::new(&format!("life-{engine}"), 6.0).await;
    seed_clusters(&h.aws).await;
    h.create(json!({
        "metadata": {"name": "nightly"},
        "spec": {"source": source(engine), "tags": {"team": "data"}}
    }))
    .await
    .expect("create");

    let mut percents = Vec::new();
    let mut phases = Vec::new();
    let mut ever_ready_false = false;
    let s = h
        .wait_for(
            "nightly",
            Duration::from_secs(60),
            |s| {
                if let Some(p) = s.progress.as_ref().and_then(|p| p.percent) {
                    percents.push(p);
                }
                if let Some(p) = s.phase {
                    phases.push(p);
                }
                if condition(s, "Ready").is_some_and(|c| c.status == "False") {
                    ever_ready_false = true;
                }
            },
            is_ready,
        )
        .await;
    assert!(ever_ready_false, "Ready=False was never written");
    assert!(
        phases.contains(&dbsnapshot_operator::api::Phase::Creating),
        "{phases:?}"
    );
    if engine == "redshift" || engine == "docdb" {
        assert!(
            percents.iter().any(|p| *p > 0 && *p < 100),
            "no progress observed between 0 and 100: {percents:?}"
        );
    }
    assert_eq!(s.phase, Some(dbsnapshot_operator::api::Phase::Available));
    assert_eq!(s.ready_to_use, Some(true));
    assert_eq!(s.observed_generation, Some(1));
    assert!(
        s.arn.as_deref().unwrap().starts_with("arn:aws:"),
        "{:?}",
        s.arn
    );
    assert!(s.creation_time.is_some());
    assert_eq!(s.aws_status.as_deref(), Some("available"));
    if engine == "redshift" {
        assert!(s.total_size_mb.unwrap() > 0.0);
        assert_eq!(s.retention_days, Some(-1));
    }
    // Ready only: Reconciling and Stalled are there only while True.
    assert_eq!(s.conditions.len(), 1, "{:?}", s.conditions);
    assert_eq!(condition(&s, "Ready").unwrap().observed_generation, Some(1));
    let id = s.snapshot_identifier.clone().unwrap();
    assert!(id.starts_with(&format!("{}-nightly-", h.ns)), "{id}");

    // The snapshot on AWS carries the ownership tags.
    let tags = aws_tags(&h, engine, &id, s.arn.as_deref().unwrap()).await;
    let uid = h
        .snapshots()
        .get("nightly")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert_eq!(tags.get("dbsnapshot.io/owner-uid"), Some(&uid));
    assert_eq!(
        tags.get("dbsnapshot.io/resource"),
        Some(&format!("{}/ClusterSnapshot/nightly", h.ns))
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("data"));

    h.snapshots()
        .delete("nightly", &Default::default())
        .await
        .unwrap();
    h.wait_gone("nightly").await;
    assert!(!aws_exists(&h, engine, &id).await, "{id} still on AWS");
}

async fn aws_tags(h: &Harness, engine: &str, id: &str, arn: &str) -> BTreeMap<String, String> {
    match engine {
        "redshift" => h
            .redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier(id)
            .send()
            .await
            .unwrap()
            .snapshots()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect(),
        "docdb" => h
            .docdb()
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .unwrap()
            .tag_list()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect(),
        _ => h
            .elasticache()
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .unwrap()
            .tag_list()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect(),
    }
}

async fn aws_exists(h: &Harness, engine: &str, id: &str) -> bool {
    match engine {
        "redshift" => h
            .redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier(id)
            .send()
            .await
            .is_ok(),
        "docdb" => h
            .docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .send()
            .await
            .is_ok(),
        _ => h
            .elasticache()
            .describe_snapshots()
            .snapshot_name(id)
            .send()
            .await
            .is_ok(),
    }
}

async fn redshift_shares(h: &Harness, id: &str) -> Vec<String> {
    let mut v: Vec<String> = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_identifier(id)
        .send()
        .await
        .unwrap()
        .snapshots()[0]
        .accounts_with_restore_access()
        .iter()
        .filter_map(|a| a.account_id().or(a.account_alias()).map(str::to_string))
        .collect();
    v.sort();
    v
}

async fn docdb_shares(h: &Harness, id: &str) -> Vec<String> {
    let out = h
        .docdb()
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier(id)
        .send()
        .await
        .unwrap();
    let mut v: Vec<String> = out
        .db_cluster_snapshot_attributes_result()
        .unwrap()
        .db_cluster_snapshot_attributes()[0]
        .attribute_values()
        .to_vec();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_lifecycle() {
    lifecycle("redshift").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_lifecycle() {
    lifecycle("docdb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticache_lifecycle() {
    lifecycle("elasticache").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticache_cache_cluster_lifecycle() {
    lifecycle("cache-cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_sharing_tags_and_retention_follow_the_spec() {
    let h = Harness::new("rs-sync", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({
        "metadata": {"name": "shared"},
        "spec": {
            "source": source("redshift"),
            "snapshotIdentifier": "analytics-shared",
            "retentionDays": 7,
            "tags": {"team": "data"},
            "sharedWith": ["111111111111", "amazon-redshift-support"]
        }
    }))
    .await
    .unwrap();
    let s = h.wait_ready("shared").await;
    assert_eq!(s.snapshot_identifier.as_deref(), Some("analytics-shared"));
    assert_eq!(s.retention_days, Some(7));
    assert_eq!(
        redshift_shares(&h, "analytics-shared").await,
        ["111111111111", "amazon-redshift-support"]
    );

    // Change everything mutable.
    h.patch_spec(
        "shared",
        json!({
            "retentionDays": 35,
            "tags": {"team": "analytics", "cost-centre": "42"},
            "sharedWith": ["222222222222"]
        }),
    )
    .await;
    let s = h
        .wait_for(
            "shared",
            Duration::from_secs(30),
            |_| {},
            |s| is_ready(s) && s.observed_generation == Some(2),
        )
        .await;
    assert_eq!(s.retention_days, Some(35));
    assert_eq!(s.shared_with, Some(vec!["222222222222".to_string()]));
    assert_eq!(
        redshift_shares(&h, "analytics-shared").await,
        ["222222222222"]
    );
    let d = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_identifier("analytics-shared")
        .send()
        .await
        .unwrap();
    let snap = &d.snapshots()[0];
    assert_eq!(snap.manual_snapshot_retention_period(), Some(35));
    let tags: BTreeMap<_, _> = snap
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("team"), Some(&"analytics"));
    assert_eq!(tags.get("cost-centre"), Some(&"42"));
    assert!(tags.contains_key("dbsnapshot.io/owner-uid"));

    // Drift: a share removed and a tag added out of band are repaired on resync.
    h.redshift()
        .revoke_snapshot_access()
        .snapshot_identifier("analytics-shared")
        .account_with_restore_access("222222222222")
        .send()
        .await
        .unwrap();
    h.redshift()
        .create_tags()
        .resource_name(snap.snapshot_arn().unwrap())
        .tags(
            aws_sdk_redshift::types::Tag::builder()
                .key("rogue")
                .value("x")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shares = redshift_shares(&h, "analytics-shared").await;
        let d = h
            .redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier("analytics-shared")
            .send()
            .await
            .unwrap();
        let rogue = d.snapshots()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("rogue"));
        if shares == ["222222222222"] && !rogue {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drift not repaired: {shares:?}, rogue tag {rogue}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Delete: shares are revoked first (the emulator refuses to delete a shared
    // snapshot), then the snapshot goes.
    h.snapshots()
        .delete("shared", &Default::default())
        .await
        .unwrap();
    h.wait_gone("shared").await;
    assert!(!aws_exists(&h, "redshift", "analytics-shared").await);
    let calls = h.calls();
    assert!(
        calls["calls"]["redshift"]["RevokeSnapshotAccess"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(calls["calls"]["redshift"]["DeleteClusterSnapshot"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_sharing_follows_the_spec_and_drift_is_repaired() {
    let h = Harness::new("docdb-share", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({
        "metadata": {"name": "orders"},
        "spec": {
            "source": source("docdb"),
            "snapshotIdentifier": "orders-shared",
            "sharedWith": ["111111111111", "222222222222"]
        }
    }))
    .await
    .unwrap();
    let s = h.wait_ready("orders").await;
    assert_eq!(
        s.shared_with,
        Some(vec!["111111111111".to_string(), "222222222222".to_string()])
    );
    assert_eq!(
        docdb_shares(&h, "orders-shared").await,
        ["111111111111", "222222222222"]
    );
    h.patch_spec(
        "orders",
        json!({"sharedWith": ["222222222222"], "tags": {"a": "b"}}),
    )
    .await;
    h.wait_for(
        "orders",
        Duration::from_secs(30),
        |_| {},
        |s| is_ready(s) && s.observed_generation == Some(2),
    )
    .await;
    assert_eq!(docdb_shares(&h, "orders-shared").await, ["222222222222"]);
    // Out of band: removed, and restored on resync.
    h.docdb()
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("orders-shared")
        .attribute_name("restore")
        .values_to_remove("222222222222")
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while docdb_shares(&h, "orders-shared").await != ["222222222222"] {
        assert!(std::time::Instant::now() < deadline, "share not restored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.snapshots()
        .delete("orders", &Default::default())
        .await
        .unwrap();
    h.wait_gone("orders").await;
    assert!(!aws_exists(&h, "docdb", "orders-shared").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_while_creating_and_retain() {
    let h = Harness::new("delete", 4.0).await;
    seed_clusters(&h.aws).await;
    h.create(json!({
        "metadata": {"name": "early"},
        "spec": {"source": source("redshift"), "snapshotIdentifier": "early-delete"}
    }))
    .await
    .unwrap();
    h.wait_for(
        "early",
        Duration::from_secs(20),
        |_| {},
        |s| s.phase == Some(dbsnapshot_operator::api::Phase::Creating) && s.arn.is_some(),
    )
    .await;
    h.snapshots()
        .delete("early", &Default::default())
        .await
        .unwrap();
    h.wait_gone("early").await;
    assert!(!aws_exists(&h, "redshift", "early-delete").await);

    h.create(json!({
        "metadata": {"name": "kept"},
        "spec": {
            "source": source("redshift"),
            "snapshotIdentifier": "kept-forever",
            "deletionPolicy": "Retain",
            "sharedWith": ["111111111111"]
        }
    }))
    .await
    .unwrap();
    h.wait_ready("kept").await;
    let deletes_before = h.calls()["calls"]["redshift"]["DeleteClusterSnapshot"].clone();
    h.snapshots()
        .delete("kept", &Default::default())
        .await
        .unwrap();
    h.wait_gone("kept").await;
    assert!(aws_exists(&h, "redshift", "kept-forever").await);
    assert_eq!(redshift_shares(&h, "kept-forever").await, ["111111111111"]);
    assert_eq!(
        h.calls()["calls"]["redshift"]["DeleteClusterSnapshot"],
        deletes_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_create_and_status_write_adopts_the_first_snapshot() {
    let mut h = Harness::new("crash", 1.0).await;
    seed_clusters(&h.aws).await;
    // AWS creates the snapshot but holds the answer; the operator dies waiting.
    h.set_faults(json!({"delayActions": ["CreateClusterSnapshot"], "delayResponseMs": 30000}));
    h.create(json!({
        "metadata": {"name": "crashy"},
        "spec": {"source": source("redshift"), "snapshotIdentifier": "crash-once"}
    }))
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.calls()["calls"]["redshift"]["CreateClusterSnapshot"].as_u64() != Some(1) {
        assert!(std::time::Instant::now() < deadline, "no create call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.operator.as_mut().unwrap().kill();
    let s = h.status("crashy").await;
    assert_eq!(s.snapshot_identifier.as_deref(), Some("crash-once"));
    assert!(s.arn.is_none(), "the status was written after all: {s:?}");
    h.set_faults(json!({"delayActions": []}));
    h.start_operator(&[]);
    let s = h.wait_ready("crashy").await;
    assert!(s.arn.is_some());
    assert_eq!(
        h.calls()["calls"]["redshift"]["CreateClusterSnapshot"],
        1,
        "a second snapshot was attempted"
    );
    let all = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert_eq!(all.snapshots().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespace_claiming_the_same_snapshot_is_not_owned() {
    let h = Harness::new("owner", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({
        "metadata": {"name": "original"},
        "spec": {"source": source("docdb"), "snapshotIdentifier": "contested"}
    }))
    .await
    .unwrap();
    h.wait_ready("original").await;

    // A second namespace and operator against the same AWS account.
    let mut other = Harness::with_aws("owner-b", &h.aws_url).await;
    other.start_operator(&[]);
    other
        .create(json!({
            "metadata": {"name": "claimer"},
            "spec": {"source": source("docdb"), "snapshotIdentifier": "contested", "sharedWith": ["111111111111"]}
        }))
        .await
        .unwrap();
    let s = other
        .wait_for(
            "claimer",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).is_some(),
        )
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("NotOwned"));
    assert!(
        condition(&s, "Ready")
            .unwrap()
            .message
            .contains("contested")
    );
    // It never shared or tagged the foreign snapshot.
    assert!(docdb_shares(&h, "contested").await.is_empty());
    other
        .snapshots()
        .delete("claimer", &Default::default())
        .await
        .unwrap();
    other.wait_gone("claimer").await;
    assert!(aws_exists(&h, "docdb", "contested").await);
    assert_eq!(
        h.calls()["calls"]["docdb"]["DeleteDBClusterSnapshot"],
        serde_json::Value::Null
    );
    h.wait_ready("original").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_rejected_without_aws_calls() {
    let h = Harness::new("invalid", 0.5).await;
    seed_clusters(&h.aws).await;
    let baseline = h.mutating_calls();
    let rs = json!({"redshift": {"clusterIdentifier": "analytics"}});
    let dd = json!({"docdb": {"clusterIdentifier": "orders"}});
    let ec = json!({"elasticache": {"replicationGroupId": "sessions"}});
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("no-source", json!({"source": {}}), "spec.source"),
        (
            "two-sources",
            json!({"source": {"redshift": {"clusterIdentifier": "analytics"}, "docdb": {"clusterIdentifier": "orders"}}}),
            "spec.source",
        ),
        (
            "bad-cluster",
            json!({"source": {"redshift": {"clusterIdentifier": "9lives"}}}),
            "clusterIdentifier",
        ),
        (
            "ec-both",
            json!({"source": {"elasticache": {"replicationGroupId": "sessions", "cacheClusterId": "solo"}}}),
            "spec.source.elasticache",
        ),
        (
            "ec-neither",
            json!({"source": {"elasticache": {}}}),
            "spec.source.elasticache",
        ),
        (
            "bad-id",
            json!({"source": rs, "snapshotIdentifier": "bad--id"}),
            "snapshotIdentifier",
        ),
        (
            "trailing-hyphen",
            json!({"source": rs, "snapshotIdentifier": "ends-"}),
            "snapshotIdentifier",
        ),
        (
            "docdb-id-64",
            json!({"source": dd, "snapshotIdentifier": "a".repeat(64)}),
            "snapshotIdentifier",
        ),
        (
            "retention-zero",
            json!({"source": rs, "retentionDays": 0}),
            "retentionDays",
        ),
        (
            "retention-big",
            json!({"source": rs, "retentionDays": 4000}),
            "retentionDays",
        ),
        (
            "retention-docdb",
            json!({"source": dd, "retentionDays": 7}),
            "retentionDays",
        ),
        (
            "kms-redshift",
            json!({"source": rs, "kmsKeyId": "alias/x"}),
            "kmsKeyId",
        ),
        (
            "share-elasticache",
            json!({"source": ec, "sharedWith": ["111111111111"]}),
            "sharedWith",
        ),
        (
            "share-bad-account",
            json!({"source": rs, "sharedWith": ["12345"]}),
            "sharedWith",
        ),
        (
            "share-docdb-support",
            json!({"source": dd, "sharedWith": ["amazon-redshift-support"]}),
            "sharedWith",
        ),
        (
            "share-21",
            json!({"source": rs, "sharedWith": (0..21).map(|i| format!("{:012}", i + 100)).collect::<Vec<_>>()}),
            "sharedWith",
        ),
        (
            "share-twice",
            json!({"source": rs, "sharedWith": ["111111111111", "111111111111"]}),
            "sharedWith",
        ),
        (
            "bad-region",
            json!({"source": rs, "region": "mars-1"}),
            "region",
        ),
        (
            "reserved-tag",
            json!({"source": rs, "tags": {"dbsnapshot.io/owner-uid": "x"}}),
            "tags",
        ),
        (
            "aws-tag",
            json!({"source": rs, "tags": {"aws:createdBy": "x"}}),
            "tags",
        ),
        (
            "long-tag-value",
            json!({"source": rs, "tags": {"k": "v".repeat(257)}}),
            "tags",
        ),
        (
            "long-unicode-tag-value",
            json!({"source": rs, "tags": {"k": "漢".repeat(257)}}),
            "tags",
        ),
        (
            "tags-50",
            json!({"source": rs, "tags": (0..50).map(|i| (format!("k{i}"), "v".to_string())).collect::<std::collections::BTreeMap<_, _>>()}),
            "tags",
        ),
        (
            "bad-policy",
            json!({"source": rs, "deletionPolicy": "Shred"}),
            "deletionPolicy",
        ),
        (
            "upper-case-id",
            json!({"source": dd, "snapshotIdentifier": "Orders-Weekly"}),
            "snapshotIdentifier",
        ),
        (
            "upper-case-cluster",
            json!({"source": {"redshift": {"clusterIdentifier": "Analytics"}}}),
            "clusterIdentifier",
        ),
        (
            "tag-value-angle",
            json!({"source": rs, "tags": {"k": "<b>"}}),
            "tags",
        ),
        (
            "tag-key-ampersand",
            json!({"source": rs, "tags": {"fish&chips": "x"}}),
            "tags",
        ),
        (
            "tag-emoji",
            json!({"source": rs, "tags": {"k": "🚀"}}),
            "tags",
        ),
    ];
    assert!(cases.len() >= 15);
    let mut by_server = 0;
    let mut by_operator = 0;
    for (name, spec, field) in &cases {
        match h
            .create_raw(
                "ClusterSnapshot",
                json!({"metadata": {"name": name}, "spec": spec}),
            )
            .await
        {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(e.message.contains(field), "{name}: {}", e.message);
                by_server += 1;
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(()) => {
                let s = h
                    .wait_for(
                        name,
                        Duration::from_secs(30),
                        |_| {},
                        |s| stalled_reason(s).is_some(),
                    )
                    .await;
                assert_eq!(stalled_reason(&s).as_deref(), Some("InvalidSpec"), "{name}");
                let msg = &condition(&s, "Stalled").unwrap().message;
                assert!(
                    msg.contains(field),
                    "{name}: message {msg:?} does not name {field}"
                );
                assert!(!is_ready(&s));
                by_operator += 1;
            }
        }
    }
    println!("{by_server} rejected by the API server's schema, {by_operator} by the operator");
    assert_eq!(h.mutating_calls(), baseline, "an invalid spec reached AWS");
}

/// With 30 % of calls throttled, every object still gets Ready and none is Stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_never_stalls_and_everything_gets_ready() {
    throttled_lifecycles("throttle", &[]).await;
}

/// The same with the SDK's adaptive retry on top of the budget. It spaces retries after
/// a throttle by the (low) rate it measured, about 20 s each here, so this takes about a
/// minute; the deadline is for liveness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_never_stalls_with_adaptive_retry_either() {
    throttled_lifecycles("throttle-adaptive", &["--aws-retry-mode", "adaptive"]).await;
}

async fn throttled_lifecycles(name: &str, extra: &[&str]) {
    let mut h = Harness::new(name, 1.0).await;
    h.operator = None;
    h.start_operator(extra);
    seed_clusters(&h.aws).await;
    h.set_faults(json!({"throttleFraction": 0.3}));
    let engines = ["redshift", "docdb", "elasticache", "cache-cluster"];
    for (i, e) in engines.iter().enumerate() {
        h.create(json!({
            "metadata": {"name": format!("t{i}")},
            "spec": {"source": source(e), "tags": {"i": i.to_string()},
                     "sharedWith": if *e == "redshift" || *e == "docdb" { json!(["111111111111"]) } else { json!([]) }}
        }))
        .await
        .unwrap();
    }
    let mut stalled = Vec::new();
    for i in 0..engines.len() {
        let name = format!("t{i}");
        h.wait_for(
            &name,
            Duration::from_secs(180),
            |s| {
                if is_stalled(s) {
                    stalled.push(format!("{name}: {:?}", condition(s, "Stalled")));
                }
            },
            is_ready,
        )
        .await;
    }
    assert!(stalled.is_empty(), "stalled under throttling: {stalled:?}");
    assert!(h.calls()["throttled"].as_u64().unwrap() > 0);
}

/// The object's snapshot is deleted outside Kubernetes and another made under its name
/// (tagged by someone else, or untagged) while the operator, just restarted, trusts
/// listings without tags: the object is Stalled NotOwned and keeps its record, and
/// deleting it leaves the other snapshot, its tags and its shares alone.
async fn a_replaced_snapshot_is_never_taken_for_ours(engine: &str) {
    let mut h = Harness::new(&format!("replaced-{engine}"), 0.5).await;
    seed_clusters(&h.aws).await;
    let id = format!("replaced-{engine}");
    let mut spec = json!({"source": source(engine), "snapshotIdentifier": id});
    if engine == "docdb" {
        spec["sharedWith"] = json!(["111111111111"]);
    }
    h.create(json!({"metadata": {"name": "mine"}, "spec": spec}))
        .await
        .unwrap();
    let ours = h.wait_ready("mine").await;
    assert!(ours.creation_time.is_some(), "{ours:?}");

    // A restart: the object counts as checked for six resyncs.
    h.operator.as_mut().unwrap().kill();
    h.start_operator(&[]);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Replaced outside Kubernetes.
    let theirs: BTreeMap<&str, &str> = [("team", "someone-else")].into();
    match engine {
        "docdb" => {
            let c = h.docdb();
            c.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier(&id)
                .attribute_name("restore")
                .values_to_remove("111111111111")
                .send()
                .await
                .unwrap();
            c.delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(&id)
                .send()
                .await
                .unwrap();
            while aws_exists(&h, engine, &id).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut create = c
                .create_db_cluster_snapshot()
                .db_cluster_identifier("orders")
                .db_cluster_snapshot_identifier(&id);
            for (k, v) in &theirs {
                create = create.tags(
                    aws_sdk_docdb::types::Tag::builder()
                        .key(*k)
                        .value(*v)
                        .build(),
                );
            }
            create.send().await.unwrap();
            while c
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(&id)
                .send()
                .await
                .unwrap()
                .db_cluster_snapshots()[0]
                .status()
                != Some("available")
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            c.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier(&id)
                .attribute_name("restore")
                .values_to_add("222222222222")
                .send()
                .await
                .unwrap();
        }
        _ => {
            let c = h.elasticache();
            c.delete_snapshot().snapshot_name(&id).send().await.unwrap();
            while aws_exists(&h, engine, &id).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            c.create_snapshot()
                .replication_group_id("sessions")
                .snapshot_name(&id)
                .send()
                .await
                .unwrap();
        }
    }
    let deletes = h.mutating_calls();

    let s = h
        .wait_for(
            "mine",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).is_some(),
        )
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("NotOwned"), "{s:?}");
    assert_eq!(s.arn, ours.arn);
    assert_eq!(
        s.creation_time, ours.creation_time,
        "the record was rewritten from a listing"
    );
    assert_eq!(s.aws_status, None, "{s:?}");
    assert_eq!(s.ready_to_use, Some(false));

    h.snapshots()
        .delete("mine", &Default::default())
        .await
        .unwrap();
    h.wait_gone("mine").await;
    assert!(
        aws_exists(&h, engine, &id).await,
        "their snapshot was deleted"
    );
    if engine == "docdb" {
        assert_eq!(docdb_shares(&h, &id).await, ["222222222222"]);
    }
    assert_eq!(
        h.mutating_calls(),
        deletes,
        "the operator acted on a snapshot that is not its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_docdb_snapshot_is_never_taken_for_ours() {
    a_replaced_snapshot_is_never_taken_for_ours("docdb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_elasticache_snapshot_is_never_taken_for_ours() {
    a_replaced_snapshot_is_never_taken_for_ours("elasticache").await;
}

/// A copy of a DocumentDB snapshot goes Stalled (a spec change it refuses) while AWS is
/// still copying: deleting the source waits for AWS to finish the copy, not for the
/// copy's object (which will not be reconciled again), then deletes the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_copy_holds_its_source_only_while_aws_copies() {
    let h = Harness::new("stalled-copy", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({"metadata": {"name": "nightly"}, "spec": {"source": source("docdb"), "snapshotIdentifier": "stalled-source"}}))
        .await
        .unwrap();
    h.wait_ready("nightly").await;
    h.set_snapshot_seconds(12.0);
    h.create_copy(json!({"metadata": {"name": "dr"}, "spec": {"source": {"clusterSnapshotRef": {"name": "nightly"}}, "targetSnapshotIdentifier": "stalled-copy"}}))
        .await
        .unwrap();
    h.wait_copy("dr", Duration::from_secs(30), |s| {
        s.aws_status.as_deref() == Some("copying")
    })
    .await;
    // retentionDays is Redshift's: the copy is Stalled InvalidSpec, and stays so.
    h.copies()
        .patch(
            "dr",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"retentionDays": 7}})),
        )
        .await
        .unwrap();
    h.wait_copy("dr", Duration::from_secs(30), |s| {
        stalled_reason(s).as_deref() == Some("InvalidSpec")
    })
    .await;
    let asked = std::time::Instant::now();
    h.snapshots()
        .delete("nightly", &Default::default())
        .await
        .unwrap();
    // While AWS copies, the source stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(aws_exists(&h, "docdb", "stalled-source").await);
    h.wait_gone("nightly").await;
    println!("source deleted {:?} after it was asked", asked.elapsed());
    assert!(!aws_exists(&h, "docdb", "stalled-source").await);
    let copy = h
        .docdb()
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("stalled-copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copy.db_cluster_snapshots()[0].status(),
        Some("available"),
        "the source went before AWS finished the copy"
    );
}

/// Another account shares a Redshift snapshot of the same name (of a cluster of the same
/// name) into this one: the object makes and keeps its own, never takes the shared one
/// for it, and deleting the object deletes only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_shared_in_from_another_account_never_shadows_ours() {
    let h = Harness::new("shared-in", 0.5).await;
    seed_clusters(&h.aws).await;
    let other = aws_sdk_redshift::Client::from_conf(
        aws_sdk_redshift::config::Builder::from(&h.aws)
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIATEST210987654321",
                SECRET,
                None,
                None,
                "other-account",
            ))
            .build(),
    );
    other
        .create_cluster()
        .cluster_identifier("analytics")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Passw0rd-long")
        .send()
        .await
        .unwrap();
    other
        .create_cluster_snapshot()
        .cluster_identifier("analytics")
        .snapshot_identifier("same-name")
        .tags(
            aws_sdk_redshift::types::Tag::builder()
                .key("dbsnapshot.io/owner-uid")
                .value("not-this-object")
                .build(),
        )
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    other
        .authorize_snapshot_access()
        .snapshot_identifier("same-name")
        .account_with_restore_access("123456789012")
        .send()
        .await
        .unwrap();
    let theirs = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_identifier("same-name")
        .send()
        .await
        .unwrap();
    assert_eq!(
        theirs.snapshots()[0].owner_account(),
        Some("210987654321"),
        "the other account's snapshot is visible here"
    );

    h.create(json!({"metadata": {"name": "mine"}, "spec": {"source": source("redshift"), "snapshotIdentifier": "same-name", "tags": {"team": "data"}}}))
        .await
        .unwrap();
    let s = h.wait_ready("mine").await;
    assert!(
        s.arn
            .as_deref()
            .is_some_and(|a| a.contains(":123456789012:")),
        "{s:?}"
    );
    // Resyncs (every 3 s here) keep it Ready and in sync.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let s = h.status("mine").await;
    assert!(is_ready(&s), "{s:?}");
    h.snapshots()
        .delete("mine", &Default::default())
        .await
        .unwrap();
    h.wait_gone("mine").await;
    let left = other
        .describe_cluster_snapshots()
        .snapshot_identifier("same-name")
        .send()
        .await
        .unwrap();
    assert_eq!(left.snapshots().len(), 1, "the other account's snapshot");
    assert_eq!(left.snapshots()[0].owner_account(), Some("210987654321"));
    let mine = h
        .redshift()
        .describe_cluster_snapshots()
        .owner_account("123456789012")
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert!(
        mine.snapshots()
            .iter()
            .all(|s| s.snapshot_identifier() != Some("same-name")),
        "ours was left behind"
    );
}

/// Conditions written by a version before 0.2 (Reconciling and Stalled kept as False,
/// under another field manager) do not outlive an upgrade: the operator's next status
/// write leaves Ready alone, with no False Reconciling or Stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_written_by_an_older_version_are_replaced() {
    let mut h = Harness::new("legacy-conditions", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({"metadata": {"name": "old"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    h.wait_ready("old").await;
    h.operator = None;
    let legacy = |t: &str, status: &str| {
        json!({"type": t, "status": status, "reason": "Available", "message": "available",
               "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
    };
    h.snapshots()
        .patch_status(
            "old",
            &kube::api::PatchParams {
                field_manager: Some("before-0.2".into()),
                ..Default::default()
            },
            &kube::api::Patch::Merge(json!({"status": {"phase": "Creating", "conditions": [
                legacy("Ready", "False"), legacy("Reconciling", "False"), legacy("Stalled", "False")]}})),
        )
        .await
        .unwrap();
    h.start_operator(&[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = h.status("old").await;
        let types: Vec<(String, String)> = s
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        if types == [("Ready".to_string(), "True".to_string())] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stale conditions stayed: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `--default-deletion-policy` and `--default-tags` fill what a spec leaves out, show in
/// status, and the recorded policy outlives a change of the operator's default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_defaults_fill_silent_specs_and_the_recorded_policy_stays() {
    use dbsnapshot_operator::api::DeletionPolicy::{Delete, Retain};
    let mut h = Harness::new("defaults", 0.5).await;
    seed_clusters(&h.aws).await;
    h.operator = None;
    h.start_operator(&[
        "--default-deletion-policy",
        "Retain",
        "--default-tags",
        "team=platform,cost-center=42,owner=ops",
    ]);
    let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let aws_tags_of = |h: &Harness, id: &str| {
        h.aws_snapshots().into_iter().find(|s| s.id == id).map(|s| {
            s.tags
                .into_iter()
                .filter(|(k, _)| !k.starts_with("dbsnapshot.io/"))
                .collect::<BTreeMap<_, _>>()
        })
    };
    for (name, extra) in [
        ("silent", json!({"tags": {"team": "data"}})),
        ("explicit", json!({"deletionPolicy": "Delete"})),
    ] {
        let mut spec =
            json!({"source": source("redshift"), "snapshotIdentifier": format!("{name}-snap")});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        h.create(json!({"metadata": {"name": name}, "spec": spec}))
            .await
            .unwrap();
    }
    // A DocumentDB object with as many tags as AWS leaves room for: with the defaults,
    // too many; refused for this object only, naming spec.tags and the defaults.
    let many: BTreeMap<String, String> = (0..47).map(|i| (format!("k{i}"), "v".into())).collect();
    h.create(
        json!({"metadata": {"name": "docdb"}, "spec": {"source": source("docdb"), "tags": many}}),
    )
    .await
    .unwrap();

    let s = h.wait_ready("silent").await;
    assert_eq!(s.deletion_policy, Some(Retain));
    let applied = tags(&[("team", "data"), ("cost-center", "42"), ("owner", "ops")]);
    assert_eq!(s.tags, applied);
    assert_eq!(aws_tags_of(&h, "silent-snap"), Some(applied));
    assert_eq!(h.wait_ready("explicit").await.deletion_policy, Some(Delete));
    let s = h
        .wait_for("docdb", Duration::from_secs(30), |_| {}, is_stalled)
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("InvalidSpec"));
    let message = condition(&s, "Stalled").unwrap().message.clone();
    assert!(
        message.contains("spec.tags")
            && message.contains(
                "47 tags and the operator's 3 default tags (cost-center, owner, team) make 50"
            ),
        "{message}"
    );
    assert!(!h.aws_snapshots().iter().any(|s| s.engine == "docdb"));

    // The operator's defaults change: the recorded policy stays, the tags follow.
    h.operator = None;
    h.start_operator(&["--default-tags", "cost-center=43"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let want = tags(&[("team", "data"), ("cost-center", "43")]);
    while aws_tags_of(&h, "silent-snap").as_ref() != Some(&want) {
        assert!(
            std::time::Instant::now() < deadline,
            "tags not retagged: {:?}",
            aws_tags_of(&h, "silent-snap")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = h
        .wait_for(
            "silent",
            Duration::from_secs(30),
            |_| {},
            |s| s.tags == want,
        )
        .await;
    assert_eq!(s.deletion_policy, Some(Retain));
    h.wait_ready("docdb").await;
    h.create(json!({"metadata": {"name": "fresh"}, "spec": {"source": source("redshift"), "snapshotIdentifier": "fresh-snap"}}))
        .await
        .unwrap();
    assert_eq!(h.wait_ready("fresh").await.deletion_policy, Some(Delete));

    // Deleting: the silent object keeps its recorded Retain, the new one its Delete.
    for name in ["silent", "fresh"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
        h.wait_gone(name).await;
    }
    assert!(aws_exists(&h, "redshift", "silent-snap").await);
    assert!(!aws_exists(&h, "redshift", "fresh-snap").await);
}
