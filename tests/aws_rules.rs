//! AWS's rules as the service models state them, held against the operator end to end:
//! Redshift's "wait and retry" throttling fault from a dependent service, and
//! ElastiCache's refusal of a second export to the same bucket key.

mod common;

use std::time::Duration;

use common::*;
use dbsnapshot_operator::api::Phase;
use serde_json::json;

/// AuthorizeSnapshotAccess answers DependentServiceRequestThrottlingFault ("Wait and
/// retry the request", Redshift's service model) for a while: the object waits, never
/// Failed or Stalled, and is shared once the fault is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_throttled_by_a_dependent_service_waits_and_finishes() {
    let h = Harness::new("dep-throttle", 0.5).await;
    seed_clusters(&h.aws).await;
    h.set_faults(json!({"dependentThrottleActions": ["AuthorizeSnapshotAccess"]}));
    h.create(json!({
        "metadata": {"name": "shared"},
        "spec": {
            "source": {"redshift": {"clusterIdentifier": "analytics"}},
            "snapshotIdentifier": "analytics-throttled",
            "sharedWith": ["111111111111"]
        }
    }))
    .await
    .expect("create");

    let bad = |s: &dbsnapshot_operator::api::SnapshotStatus| {
        is_stalled(s) || s.phase == Some(Phase::Failed)
    };
    // AWS keeps throttling: the operator retries (a second attempt proves it did not
    // give up) and the object never turns Failed or Stalled.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while h.count("redshift", "AuthorizeSnapshotAccess") < 3 {
        let s = h.status("shared").await;
        assert!(
            !bad(&s),
            "a throttled share must not fail the object:\n{}",
            serde_json::to_string_pretty(&s).unwrap()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the share was not retried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = h.status("shared").await;
    assert!(!bad(&s), "{}", serde_json::to_string_pretty(&s).unwrap());
    let ready = condition(&s, "Ready").expect("a Ready condition");
    assert!(
        ready.message.contains("waiting")
            && ready
                .message
                .contains("DependentServiceRequestThrottlingFault"),
        "the object says it is waiting for the throttled share: {ready:?}"
    );
    assert!(
        !is_ready(&s),
        "not Ready while the share is throttled: {s:?}"
    );

    h.set_faults(json!({"dependentThrottleActions": []}));
    let s = h
        .wait_for(
            "shared",
            Duration::from_secs(90),
            |s| assert!(!bad(s), "{}", serde_json::to_string_pretty(s).unwrap()),
            is_ready,
        )
        .await;
    assert_eq!(s.shared_with, Some(vec!["111111111111".to_string()]));
    let shares: Vec<String> = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_identifier("analytics-throttled")
        .send()
        .await
        .unwrap()
        .snapshots()[0]
        .accounts_with_restore_access()
        .iter()
        .filter_map(|a| a.account_id().map(str::to_string))
        .collect();
    assert_eq!(shares, ["111111111111"]);
}

/// The exports the emulator recorded (its `/_emulator/exports` endpoint).
async fn exports(h: &Harness) -> Vec<serde_json::Value> {
    reqwest::get(format!("{}/_emulator/exports", h.aws_url))
        .await
        .expect("exports")
        .json()
        .await
        .expect("exports as JSON")
}

/// ElastiCache refuses a second export to a key already in the bucket ("The S3 bucket
/// %s already contains an object with key %s", CopySnapshot's documentation). The
/// operator killed after its export call took effect and before it recorded the answer
/// (its intent, `copyRequested`, was recorded first) finds the export already ended
/// when it restarts, asks again and is refused for the key. With the default target
/// name (unique to the object) the export is its own: Ready, not Failed, no second
/// object. With a name the spec chose, an earlier export may have written that key: the
/// object says it cannot tell, and is not Ready.
async fn an_export_whose_answer_was_lost(explicit_name: bool) {
    let mut h = Harness::new(
        if explicit_name {
            "export-key-named"
        } else {
            "export-key"
        },
        0.5,
    )
    .await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    h.set_faults(json!({"delayActions": ["CopySnapshot"], "delayResponseMs": 30000}));
    let mut spec = json!({
        "source": {"elasticache": {"snapshotName": "sessions-src"}},
        "targetBucket": "my-exports", "deletionPolicy": "Retain"});
    if explicit_name {
        spec["targetSnapshotIdentifier"] = json!("sessions-dr");
    }
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": spec}))
        .await
        .unwrap();
    h.wait_count("elasticache", "CopySnapshot", 1).await;
    h.operator.as_mut().expect("operator").kill();
    let s = h.copy_status("export").await;
    assert_eq!(
        s.copy_requested,
        Some(true),
        "the intent was recorded: {s:?}"
    );
    assert!(
        s.export_location.is_none(),
        "the answer was not recorded: {s:?}"
    );
    let target = s.snapshot_identifier.clone().expect("identifier recorded");
    // The export ends (the object is written) while the operator is down.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while exports(&h).await[0]["status"] != "completed" {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            exports(&h).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    h.set_faults(json!({"delayActions": []}));
    h.start_operator(&[]);
    let s = h
        .wait_copy("export", Duration::from_secs(60), |s| {
            is_ready(s) || is_stalled(s) || s.phase == Some(Phase::Failed)
        })
        .await;
    if explicit_name {
        assert_eq!(s.phase, Some(Phase::Failed), "{s:?}");
        let message = condition(&s, "Stalled").unwrap().message.clone();
        assert!(message.contains("not known"), "{message}");
        assert!(
            message.contains("spec.targetSnapshotIdentifier"),
            "{message}"
        );
    } else {
        assert!(
            is_ready(&s),
            "an export the operator requested, and which AWS ran, is not a failure:\n{}",
            serde_json::to_string_pretty(&s).unwrap()
        );
        assert_eq!(
            s.export_location.as_deref(),
            Some(format!("s3://my-exports/{target}").as_str())
        );
        // Looked at for a few resyncs more: still Ready.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(is_ready(&h.copy_status("export").await));
    }
    // Either way, still the one object.
    let made = exports(&h).await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_answer_was_lost_and_which_has_ended_is_ready() {
    an_export_whose_answer_was_lost(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_under_a_chosen_name_whose_answer_was_lost_is_not_taken_for_ours() {
    an_export_whose_answer_was_lost(true).await;
}

/// A first export to a key the bucket already holds (another object's export wrote it)
/// is refused by ElastiCache, and the object says which field to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_a_key_the_bucket_holds_fails_naming_the_fix() {
    let h = Harness::new("export-taken", 0.5).await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Someone else's export already wrote sessions-dr-0001.rdb.
    h.elasticache()
        .copy_snapshot()
        .source_snapshot_name("sessions-src")
        .target_snapshot_name("sessions-dr")
        .target_bucket("my-exports")
        .send()
        .await
        .expect("export");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while exports(&h).await[0]["status"] != "completed" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": {
        "source": {"elasticache": {"snapshotName": "sessions-src"}},
        "targetBucket": "my-exports", "targetSnapshotIdentifier": "sessions-dr",
        "deletionPolicy": "Retain"}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("export", Duration::from_secs(60), is_stalled)
        .await;
    assert_eq!(s.phase, Some(Phase::Failed));
    let message = condition(&s, "Stalled").unwrap().message.clone();
    assert!(
        message.contains("already contains an object with key")
            && message.contains("spec.targetSnapshotIdentifier"),
        "{message}"
    );
    assert_eq!(exports(&h).await.len(), 1);
}

/// The export killed before its answer was recorded failed on AWS meanwhile (it wrote
/// nothing): asked again after the restart, ElastiCache takes it, and the one object is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_answer_was_lost_and_which_failed_is_requested_again() {
    let mut h = Harness::new("export-again", 0.5).await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    h.set_faults(json!({
        "delayActions": ["CopySnapshot"], "delayResponseMs": 30000,
        "failExports": ["my-exports"]
    }));
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": {
        "source": {"elasticache": {"snapshotName": "sessions-src"}},
        "targetBucket": "my-exports", "targetSnapshotIdentifier": "sessions-dr",
        "deletionPolicy": "Retain"}}))
        .await
        .unwrap();
    h.wait_count("elasticache", "CopySnapshot", 1).await;
    h.operator.as_mut().expect("operator").kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while exports(&h).await[0]["status"] != "failed" {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            exports(&h).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    h.set_faults(json!({"delayActions": [], "failExports": []}));
    h.start_operator(&[]);
    let s = h
        .wait_copy("export", Duration::from_secs(60), |s| {
            is_ready(s) || is_stalled(s) || s.phase == Some(Phase::Failed)
        })
        .await;
    assert!(
        is_ready(&s),
        "{}",
        serde_json::to_string_pretty(&s).unwrap()
    );
    let made = exports(&h).await;
    let statuses: Vec<&str> = made.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "completed"], "{made:?}");
    assert_eq!(h.count("elasticache", "CopySnapshot"), 2);
}

/// A copy call AWS throttles (here Redshift's DependentServiceRequestThrottlingFault on
/// CopyClusterSnapshot) is shown on the SnapshotCopy as a wait, retried, and the copy
/// ends Ready once AWS lets it through; never Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_copy_says_it_waits_and_finishes() {
    let h = Harness::new("copy-throttle", 0.5).await;
    seed_clusters(&h.aws).await;
    let auto = redshift_automated(&h.aws).await;
    h.set_faults(json!({"dependentThrottleActions": ["CopyClusterSnapshot"]}));
    h.create_copy(json!({
        "metadata": {"name": "keep"},
        "spec": {"source": {"redshift": {"snapshotIdentifier": auto, "clusterIdentifier": "analytics"}},
                 "targetSnapshotIdentifier": "analytics-kept"}
    }))
    .await
    .unwrap();
    let s = h
        .wait_copy("keep", Duration::from_secs(60), |s| {
            condition(s, "Ready").is_some_and(|c| c.message.contains("waiting")) || is_stalled(s)
        })
        .await;
    let ready = condition(&s, "Ready").unwrap();
    assert!(
        ready
            .message
            .contains("DependentServiceRequestThrottlingFault")
            && ready.message.contains("CopyClusterSnapshot"),
        "{ready:?}"
    );
    assert!(!is_stalled(&s), "{s:?}");
    h.set_faults(json!({"dependentThrottleActions": []}));
    let s = h
        .wait_copy("keep", Duration::from_secs(90), |s| {
            is_ready(s) || is_stalled(s)
        })
        .await;
    assert!(is_ready(&s), "{s:?}");
}
