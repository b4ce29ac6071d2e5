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
        assert!(std::time::Instant::now() < deadline, "the share was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = h.status("shared").await;
    assert!(!bad(&s), "{}", serde_json::to_string_pretty(&s).unwrap());
    assert!(!is_ready(&s), "not Ready while the share is throttled: {s:?}");

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
