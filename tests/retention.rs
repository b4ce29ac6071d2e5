//! Redshift manual snapshot retention against an emulator whose days last a few
//! seconds: a snapshot whose retention period passes is deleted by AWS and the object
//! says it expired; shortening `retentionDays` below a snapshot's age is sent with
//! Force (the spec is the retention wanted), so AWS deletes the snapshot at once.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Seconds in one emulated (and, for the operator, one retention) day.
const DAY: f64 = 3.0;

/// A harness whose emulator and operator both count retention days of `DAY` seconds.
async fn harness(name: &str) -> Harness {
    let mut h = Harness::new(name, 0.5).await;
    h.emulator.as_ref().unwrap().lock().unwrap().seconds_per_day = DAY;
    // Restarted with the same day length (the first one is killed when replaced).
    h.operator = None;
    h.start_operator(&["--seconds-per-day", &format!("{}", DAY as u64)]);
    seed_clusters(&h.aws).await;
    h
}

fn stalled_message(s: &dbsnapshot_operator::api::SnapshotStatus) -> String {
    condition(s, "Stalled")
        .filter(|c| c.status == "True")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// `retentionDays` shortened below the snapshot's age: the operator sends
/// ModifyClusterSnapshot with Force (without it AWS answers
/// InvalidRetentionPeriodFault and the object is stuck on that error), AWS deletes the
/// snapshot at once, and the object reports it expired. A change the snapshot still
/// fits in keeps it Ready with the new retention.
#[tokio::test]
async fn shortening_retention_below_the_snapshots_age_is_forced() {
    let h = harness("retention-force").await;
    h.create(json!({
        "metadata": {"name": "nightly"},
        "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}
    }))
    .await
    .expect("create");
    let s = h.wait_ready("nightly").await;
    assert_eq!(s.retention_days, Some(-1));

    h.patch_spec("nightly", json!({"retentionDays": 30})).await;
    let s = h
        .wait_for(
            "nightly",
            Duration::from_secs(30),
            |_| {},
            |s| is_ready(s) && s.retention_days == Some(30),
        )
        .await;
    assert!(s.remaining_days.is_some_and(|d| d <= 30), "{s:?}");

    // Older than a day by now: a retention of 1 day is already in the past.
    let age = Duration::from_secs_f64(DAY * 1.5);
    tokio::time::sleep(age).await;
    h.patch_spec("nightly", json!({"retentionDays": 1})).await;
    let s = h
        .wait_for(
            "nightly",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).as_deref() == Some("NotFound"),
        )
        .await;
    let message = stalled_message(&s);
    assert!(
        message.contains("expired after 1 day (retention period)"),
        "{message}"
    );
    assert!(!message.contains("outside Kubernetes"), "{message}");
    assert_eq!(s.ready_to_use, Some(false));
    assert_eq!(h.aws_snapshots().len(), 0, "AWS deleted the snapshot");
    assert_eq!(
        h.count("redshift", "CreateClusterSnapshot"),
        1,
        "not recreated"
    );
}

/// A snapshot whose retention period passes is deleted by AWS: the object shows
/// NotFound saying it expired, not that someone deleted it outside Kubernetes.
#[tokio::test]
async fn an_expired_snapshot_is_reported_as_expired() {
    let h = harness("retention-expiry").await;
    h.create(json!({
        "metadata": {"name": "short"},
        "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}, "retentionDays": 2}
    }))
    .await
    .expect("create");
    let s = h.wait_ready("short").await;
    assert_eq!(s.retention_days, Some(2));
    let s = h
        .wait_for(
            "short",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).as_deref() == Some("NotFound"),
        )
        .await;
    let message = stalled_message(&s);
    assert!(
        message.contains("expired after 2 days (retention period)"),
        "{message}"
    );
    assert!(!message.contains("outside Kubernetes"), "{message}");
    assert_eq!(
        h.count("redshift", "CreateClusterSnapshot"),
        1,
        "not recreated"
    );
    assert_eq!(h.count("redshift", "DeleteClusterSnapshot"), 0);

    // Deleting the object needs nothing on AWS.
    h.snapshots()
        .delete("short", &Default::default())
        .await
        .expect("delete");
    h.wait_gone("short").await;
}
