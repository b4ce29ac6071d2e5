//! Fault injection (Throttling, HTTP 500, latency, a per-account request budget) and the
//! admin API, seen through the official Rust SDK.

mod common;

use std::time::Instant;

use aws_config::retry::RetryConfig;
use aws_sdk_redshift::error::SdkError;
use common::*;
use serde_json::json;

#[tokio::test]
async fn throttling_and_internal_errors_have_aws_codes_on_every_service() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    let db = emu.docdb("us-east-1").await;
    let ec = emu.elasticache().await;

    let r = emu
        .admin_post("faults", json!({"throttleFraction": 1.0}))
        .await;
    assert!(r.status().is_success());
    assert_eq!(
        code(rs.describe_cluster_snapshots().send().await),
        "Throttling"
    );
    assert_eq!(
        code(db.describe_db_cluster_snapshots().send().await),
        "Throttling"
    );
    assert_eq!(code(ec.describe_snapshots().send().await), "Throttling");

    emu.admin_post(
        "faults",
        json!({"throttleFraction": 0.0, "errorFraction": 1.0}),
    )
    .await;
    let err = rs.describe_cluster_snapshots().send().await.unwrap_err();
    match &err {
        SdkError::ServiceError(e) => assert_eq!(e.raw().status().as_u16(), 500),
        other => panic!("expected a service error, got {other:?}"),
    }
    assert_eq!(code::<(), _>(Err(err)), "InternalFailure");
    assert_eq!(
        code(db.describe_db_cluster_snapshots().send().await),
        "InternalFailure"
    );
    assert_eq!(
        code(ec.describe_snapshots().send().await),
        "InternalFailure"
    );

    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["throttled"], 3);
    assert_eq!(calls["internalErrors"], 3);
    assert_eq!(calls["calls"]["redshift"]["DescribeClusterSnapshots"], 2);
    assert_eq!(calls["calls"]["docdb"]["DescribeDBClusterSnapshots"], 2);
    assert_eq!(calls["calls"]["elasticache"]["DescribeSnapshots"], 2);
}

#[tokio::test]
async fn the_sdk_retries_through_injected_faults() {
    let emu = emulator(0.0).await;
    emu.admin_post(
        "faults",
        json!({"throttleFraction": 0.3, "errorFraction": 0.1}),
    )
    .await;
    let cfg = config_for(
        &emu.url,
        "us-east-1",
        KEY,
        RetryConfig::standard()
            .with_max_attempts(12)
            .with_initial_backoff(std::time::Duration::from_millis(1))
            .with_max_backoff(std::time::Duration::from_millis(5)),
    )
    .await;
    let rs = aws_sdk_redshift::Client::new(&cfg);
    for _ in 0..20 {
        rs.describe_cluster_snapshots()
            .send()
            .await
            .expect("retried to success");
    }
    let calls = emu.admin_get("calls").await;
    let made = calls["calls"]["redshift"]["DescribeClusterSnapshots"]
        .as_u64()
        .unwrap();
    let faulted = calls["throttled"].as_u64().unwrap() + calls["internalErrors"].as_u64().unwrap();
    assert!(faulted > 0, "{calls}");
    assert_eq!(made, 20 + faulted, "{calls}");
}

#[tokio::test]
async fn latency_is_added_to_calls() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    emu.admin_post("faults", json!({"latencyMs": 300})).await;
    let t = Instant::now();
    rs.describe_clusters().send().await.unwrap();
    assert!(t.elapsed().as_millis() >= 300, "{:?}", t.elapsed());
    // Admin calls are not delayed and read back what was set.
    let faults = emu.admin_get("faults").await;
    assert_eq!(faults["latencyMs"], 300);
}

#[tokio::test]
async fn each_account_has_its_own_request_budget() {
    let emu = emulator(0.0).await;
    emu.admin_post("faults", json!({"accountRps": 3})).await;
    let rs = emu.redshift().await;
    let other = aws_sdk_redshift::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    let mut throttled = 0;
    for _ in 0..6 {
        if let Err(e) = rs.describe_clusters().send().await {
            assert_eq!(code::<(), _>(Err(e)), "Throttling");
            throttled += 1;
        }
    }
    // At most 3 tokens plus what refilled during the burst.
    assert!(throttled >= 2, "throttled {throttled} of 6");
    // The other account's budget is untouched, and regions share an account's budget.
    other
        .describe_clusters()
        .send()
        .await
        .expect("other account has budget");
    let eu = aws_sdk_redshift::Client::new(&emu.config("eu-west-1", KEY).await);
    sleep_secs(1.1).await;
    eu.describe_clusters()
        .send()
        .await
        .expect("budget refilled");
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["overBudget"], throttled);
}

#[tokio::test]
async fn admin_api_counts_resets_and_validates() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    rs.describe_clusters().send().await.unwrap();
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["calls"]["redshift"]["DescribeClusters"], 1);

    let bad = emu.admin_post("faults", json!({"nonsense": 1})).await;
    assert_eq!(bad.status(), 400);
    let bad = emu
        .admin_post("faults", json!({"throttleFraction": "lots"}))
        .await;
    assert_eq!(bad.status(), 400);
    let settings = emu.admin_get("settings").await;
    assert_eq!(settings["snapshotSeconds"], 0.0);

    rs.create_cluster()
        .cluster_identifier("c")
        .node_type("dc2.large")
        .master_username("u")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    rs.create_cluster_snapshot()
        .snapshot_identifier("will-fail")
        .cluster_identifier("c")
        .send()
        .await
        .unwrap();
    let r = emu
        .admin_post(
            "snapshots/fail",
            json!({"service": "redshift", "identifier": "will-fail"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("will-fail")
        .send()
        .await
        .unwrap();
    assert_eq!(d.snapshots()[0].status(), Some("failed"));

    let r = emu.admin_post("reset", json!({})).await;
    assert_eq!(r.status(), 204);
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["calls"], json!({}));
    assert_eq!(
        code(rs.describe_clusters().cluster_identifier("c").send().await),
        "ClusterNotFound"
    );
}

#[tokio::test]
async fn unknown_actions_and_versions_are_refused() {
    let emu = emulator(0.0).await;
    let client = reqwest::Client::new();
    let r = client
        .post(&emu.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=DescribeEverything&Version=2012-12-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>InvalidAction</Code>")
    );
    let r = client
        .post(&emu.url)
        .body("Action=DescribeClusters&Version=1999-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("NoSuchVersion"));
}

#[tokio::test]
async fn held_responses_arrive_after_the_action_took_effect() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    rs.create_cluster()
        .cluster_identifier("c")
        .node_type("dc2.large")
        .master_username("u")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    emu.admin_post(
        "faults",
        json!({"delayActions": ["CreateClusterSnapshot"], "delayResponseMs": 2000}),
    )
    .await;
    let pending = tokio::spawn({
        let rs = rs.clone();
        async move {
            rs.create_cluster_snapshot()
                .snapshot_identifier("held")
                .cluster_identifier("c")
                .send()
                .await
        }
    });
    sleep_secs(0.5).await;
    // The snapshot exists while the caller still waits for its answer.
    let seen = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("held")
        .send()
        .await
        .unwrap();
    assert_eq!(seen.snapshots().len(), 1);
    assert!(!pending.is_finished());
    pending.await.unwrap().unwrap();
}

#[tokio::test]
async fn seeding_creates_clusters_once() {
    let emu = emulator(0.0).await;
    let body = json!({"redshift": ["analytics"], "docdb": ["orders"], "replicationGroups": ["sessions"], "cacheClusters": ["solo"]});
    let r = emu.admin_post("seed", body.clone()).await;
    assert_eq!(r.status(), 200);
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(created["created"].as_array().unwrap().len(), 4);
    let again: serde_json::Value = emu.admin_post("seed", body).await.json().await.unwrap();
    assert!(again["created"].as_array().unwrap().is_empty());
    let rs = emu.redshift().await;
    assert_eq!(
        rs.describe_clusters()
            .send()
            .await
            .unwrap()
            .clusters()
            .len(),
        1
    );
    let ec = emu.elasticache().await;
    ec.create_snapshot()
        .cache_cluster_id("solo")
        .snapshot_name("s")
        .send()
        .await
        .unwrap();
    ec.create_snapshot()
        .replication_group_id("sessions")
        .snapshot_name("t")
        .send()
        .await
        .unwrap();
    let bad = emu.admin_post("seed", json!({"redshift": ["9bad"]})).await;
    assert_eq!(bad.status(), 400);
}

/// The `failActions` fault: the named actions are answered AccessDenied (HTTP 403, as
/// AWS answers a call that IAM denies) and take no effect; a bare action name applies
/// to every service, `service:Action` to one. Other actions go through.
#[tokio::test]
async fn fail_actions_are_denied_without_effect() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    let db = emu.docdb("us-east-1").await;
    let ec = emu.elasticache().await;
    rs.create_cluster()
        .cluster_identifier("analytics")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    rs.create_cluster_snapshot()
        .snapshot_identifier("s")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    db.create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("docdb")
        .send()
        .await
        .unwrap();
    ec.create_replication_group()
        .replication_group_id("sessions")
        .replication_group_description("d")
        .send()
        .await
        .unwrap();
    ec.create_snapshot()
        .replication_group_id("sessions")
        .snapshot_name("e")
        .send()
        .await
        .unwrap();

    let r = emu
        .admin_post(
            "faults",
            json!({"failActions": ["CreateTags", "AddTagsToResource", "docdb:CreateDBClusterSnapshot"]}),
        )
        .await;
    assert!(r.status().is_success());
    let rs_tag = aws_sdk_redshift::types::Tag::builder()
        .key("k")
        .value("v")
        .build();
    let err = rs
        .create_tags()
        .resource_name("arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/s")
        .tags(rs_tag)
        .send()
        .await
        .unwrap_err();
    match &err {
        SdkError::ServiceError(e) => assert_eq!(e.raw().status().as_u16(), 403),
        other => panic!("expected a service error, got {other:?}"),
    }
    let (c, msg) = error::<(), _>(Err(err));
    assert_eq!(c, "AccessDenied");
    assert!(
        msg.contains("is not authorized to perform: redshift:CreateTags"),
        "{msg}"
    );
    let (c, msg) = error(
        ec.add_tags_to_resource()
            .resource_name("arn:aws:elasticache:us-east-1:123456789012:snapshot:e")
            .tags(
                aws_sdk_elasticache::types::Tag::builder()
                    .key("k")
                    .value("v")
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(c, "AccessDenied");
    assert!(msg.contains("elasticache:AddTagsToResource"), "{msg}");
    let (c, msg) = error(
        db.add_tags_to_resource()
            .resource_name("arn:aws:rds:us-east-1:123456789012:cluster:orders")
            .tags(
                aws_sdk_docdb::types::Tag::builder()
                    .key("k")
                    .value("v")
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(c, "AccessDenied");
    assert!(msg.contains("rds:AddTagsToResource"), "{msg}");
    assert_eq!(
        code(
            db.create_db_cluster_snapshot()
                .db_cluster_identifier("orders")
                .db_cluster_snapshot_identifier("d")
                .send()
                .await
        ),
        "AccessDenied"
    );
    // Only DocumentDB's CreateDBClusterSnapshot was named; Redshift's own create works.
    rs.create_cluster_snapshot()
        .snapshot_identifier("t")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();

    // None of the denied calls took effect.
    emu.admin_post("faults", json!({"failActions": []})).await;
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("s")
        .send()
        .await
        .unwrap();
    assert!(d.snapshots()[0].tags().is_empty());
    let listed = ec
        .list_tags_for_resource()
        .resource_name("arn:aws:elasticache:us-east-1:123456789012:snapshot:e")
        .send()
        .await
        .unwrap();
    assert!(listed.tag_list().is_empty());
    let listed = db
        .list_tags_for_resource()
        .resource_name("arn:aws:rds:us-east-1:123456789012:cluster:orders")
        .send()
        .await
        .unwrap();
    assert!(listed.tag_list().is_empty());
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("d")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["calls"]["redshift"]["CreateTags"], 1);
}

/// The `dependentThrottleActions` fault: the named Redshift actions are answered
/// DependentServiceRequestThrottlingFault (HTTP 400, Redshift's "Wait and retry the
/// request") and take no effect; other services are unaffected.
#[tokio::test]
async fn dependent_throttle_actions_answer_redshifts_fault_without_effect() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    rs.create_cluster()
        .cluster_identifier("analytics")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    rs.create_cluster_snapshot()
        .snapshot_identifier("s")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    let r = emu
        .admin_post(
            "faults",
            json!({"dependentThrottleActions": ["AuthorizeSnapshotAccess"]}),
        )
        .await;
    assert!(r.status().is_success());
    let err = rs
        .authorize_snapshot_access()
        .snapshot_identifier("s")
        .account_with_restore_access("111111111111")
        .send()
        .await
        .unwrap_err();
    match &err {
        SdkError::ServiceError(e) => assert_eq!(e.raw().status().as_u16(), 400),
        other => panic!("expected a service error, got {other:?}"),
    }
    assert_eq!(
        code::<(), _>(Err(err)),
        "DependentServiceRequestThrottlingFault"
    );
    let shared = |out: aws_sdk_redshift::operation::describe_cluster_snapshots::DescribeClusterSnapshotsOutput| {
        out.snapshots()[0].accounts_with_restore_access().len()
    };
    let out = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("s")
        .send()
        .await
        .unwrap();
    assert_eq!(shared(out), 0, "the faulted call took no effect");
    emu.admin_post("faults", json!({"dependentThrottleActions": []}))
        .await;
    rs.authorize_snapshot_access()
        .snapshot_identifier("s")
        .account_with_restore_access("111111111111")
        .send()
        .await
        .unwrap();
    let out = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("s")
        .send()
        .await
        .unwrap();
    assert_eq!(shared(out), 1);
}

/// Paging: the `pageSize` setting caps every Describe page (within the action's
/// MaxRecords range), the SDK's paginators follow the emulator's opaque markers, and a
/// marker the emulator did not issue (made up, tampered with, or another action's) is
/// refused with InvalidParameterValue and counted.
#[tokio::test]
async fn page_size_setting_and_opaque_markers() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    let ec = emu.elasticache().await;
    rs.create_cluster()
        .cluster_identifier("analytics")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    for i in 0..44 {
        rs.create_cluster_snapshot()
            .snapshot_identifier(format!("s-{i:02}"))
            .cluster_identifier("analytics")
            .send()
            .await
            .unwrap();
    }
    ec.create_replication_group()
        .replication_group_id("g")
        .replication_group_description("d")
        .send()
        .await
        .unwrap();
    for i in 0..25 {
        ec.create_snapshot()
            .replication_group_id("g")
            .snapshot_name(format!("e-{i:02}"))
            .send()
            .await
            .unwrap();
    }
    // By default MaxRecords (or the model's default, 100) decides.
    let all = rs.describe_cluster_snapshots().send().await.unwrap();
    assert_eq!(all.snapshots().len(), 45);
    assert!(all.marker().is_none());

    let r = emu.admin_post("settings", json!({"pageSize": 20})).await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["pageSize"], 20);
    let first = rs
        .describe_cluster_snapshots()
        .max_records(100)
        .send()
        .await
        .unwrap();
    assert_eq!(first.snapshots().len(), 20, "pageSize caps MaxRecords");
    let marker = first.marker().unwrap().to_string();
    assert!(!marker.contains("s-"), "markers are opaque: {marker}");
    let sizes: Vec<usize> = rs
        .describe_cluster_snapshots()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .iter()
        .map(|p| p.snapshots().len())
        .collect();
    assert_eq!(sizes, [20, 20, 5]);
    let sizes: Vec<usize> = ec
        .describe_snapshots()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .iter()
        .map(|p| p.snapshots().len())
        .collect();
    assert_eq!(sizes, [20, 5]);

    // Markers the emulator did not issue.
    let mut tampered = marker.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    for bad in ["s-20/123456789012", tampered.as_str()] {
        assert_eq!(
            code(rs.describe_cluster_snapshots().marker(bad).send().await),
            "InvalidParameterValue",
            "{bad}"
        );
    }
    assert_eq!(
        code(ec.describe_snapshots().marker(&marker).send().await),
        "InvalidParameterValue",
        "another action's marker"
    );
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["foreignMarkers"], 3);
    assert_eq!(
        calls["markersFollowed"]["redshift:DescribeClusterSnapshots"],
        2
    );
    assert_eq!(calls["markersFollowed"]["elasticache:DescribeSnapshots"], 1);

    let r = emu.admin_post("settings", json!({"pageSize": 0})).await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["pageSize"], 0);
    let all = rs.describe_cluster_snapshots().send().await.unwrap();
    assert_eq!(all.snapshots().len(), 45);
}

/// ElastiCache refuses an export to a key the bucket already holds (CopySnapshot's
/// documented "The S3 bucket %s already contains an object with key %s",
/// InvalidParameterValue); a failed export wrote nothing and leaves the key free.
#[tokio::test]
async fn a_second_export_to_the_same_key_is_refused() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    ec.create_replication_group()
        .replication_group_id("g")
        .replication_group_description("d")
        .send()
        .await
        .unwrap();
    for name in ["a", "b"] {
        ec.create_snapshot()
            .replication_group_id("g")
            .snapshot_name(name)
            .send()
            .await
            .unwrap();
    }
    let export = |source: &'static str, target: &'static str| {
        ec.copy_snapshot()
            .source_snapshot_name(source)
            .target_snapshot_name(target)
            .target_bucket("my-exports")
            .send()
    };
    export("a", "out").await.unwrap();
    let (code, message) = error(export("b", "out").await);
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(
        message,
        "The S3 bucket my-exports already contains an object with key out-0001.rdb."
    );
    export("b", "other").await.unwrap();
    // A failed export leaves the key free.
    emu.admin_post("faults", json!({"failExports": ["my-exports"]}))
        .await;
    export("a", "doomed").await.unwrap();
    emu.admin_post("faults", json!({"failExports": []})).await;
    export("b", "doomed").await.unwrap();
    let exports = emu.admin_get("exports").await;
    assert_eq!(exports.as_array().unwrap().len(), 4, "{exports}");
}
