//! Batched polling and the request budget, end to end: many snapshots of one source
//! cost one listing per look; the budget keeps the operator under the account's rate;
//! `--polling per-object` describes every object on its own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn count(calls: &serde_json::Value, service: &str, action: &str) -> u64 {
    calls["calls"][service][action].as_u64().unwrap_or(0)
}

/// Creates `n` ClusterSnapshots of one source, named `{prefix}-{i}`; their names.
async fn create_many(
    h: &Harness,
    n: usize,
    source: serde_json::Value,
    prefix: &str,
) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        h.create(json!({"metadata": {"name": name}, "spec": {"source": source}}))
            .await
            .expect("create");
        names.push(name);
    }
    names
}

/// Deletes the objects and waits until each is gone.
async fn delete_all(h: &Harness, names: &[String]) {
    for name in names {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for name in names {
        h.wait_gone(name).await;
    }
}

/// Manual snapshots still on the emulator, in every region and engine.
fn manual_snapshots_left(h: &Harness) -> Vec<String> {
    h.aws_snapshots().into_iter().map(|s| s.id).collect()
}

async fn wait_all_ready(h: &Harness, names: &[String], limit: Duration) {
    let start = Instant::now();
    for name in names {
        let left = limit.saturating_sub(start.elapsed());
        h.wait_for(name, left, |_| {}, is_ready).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_one_source_share_one_listing() {
    let mut h = Harness::new("batch", 8.0).await;
    h.operator = None;
    // AWS would take the six ElastiCache snapshots one at a time (tests/source_states.rs
    // covers that queue); here the listings are measured, with all six under way.
    h.emulator
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .one_snapshot_at_a_time = false;
    seed_clusters(&h.aws).await;
    h.start_operator(&["--min-poll-seconds", "2", "--max-poll-seconds", "4"]);
    let mut names = create_many(
        &h,
        12,
        json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "rs",
    )
    .await;
    names.extend(
        create_many(
            &h,
            6,
            json!({"docdb": {"clusterIdentifier": "orders"}}),
            "dd",
        )
        .await,
    );
    names.extend(
        create_many(
            &h,
            6,
            json!({"elasticache": {"replicationGroupId": "sessions"}}),
            "ec",
        )
        .await,
    );
    wait_all_ready(&h, &names, Duration::from_secs(90)).await;
    let calls = h.calls();
    // Every snapshot was created once, without a describe before it.
    assert_eq!(count(&calls, "redshift", "CreateClusterSnapshot"), 12);
    assert_eq!(count(&calls, "docdb", "CreateDBClusterSnapshot"), 6);
    assert_eq!(count(&calls, "elasticache", "CreateSnapshot"), 6);
    // The snapshots take 8 s; looks at least 2 s apart, one listing per source each:
    // a handful of listings per source, not one describe per object per look.
    let rs = count(&calls, "redshift", "DescribeClusterSnapshots");
    let dd = count(&calls, "docdb", "DescribeDBClusterSnapshots");
    let ec = count(&calls, "elasticache", "DescribeSnapshots");
    assert!(rs <= 10, "Redshift listings: {rs} ({calls})");
    assert!(dd <= 10, "DocumentDB listings: {dd} ({calls})");
    assert!(ec <= 10, "ElastiCache listings: {ec} ({calls})");
    // Tags and shares are known from the creates: no per-snapshot detail calls.
    assert_eq!(
        count(&calls, "docdb", "ListTagsForResource")
            + count(&calls, "docdb", "DescribeDBClusterSnapshotAttributes")
            + count(&calls, "elasticache", "ListTagsForResource"),
        0,
        "{calls}"
    );
    // The status still shows progress from the shared listings.
    let s = h.status("rs-0").await;
    assert_eq!(s.progress.and_then(|p| p.percent), Some(100));

    // Copies of DocumentDB ClusterSnapshots share their source's listing, in their own
    // region (a copy keeps its source cluster's identifier).
    let copies = ["dd-0", "dd-1"];
    for (name, region) in copies.iter().zip(["us-east-1", "us-west-2"]) {
        h.create_copy(json!({
            "metadata": {"name": format!("{name}-copy")},
            "spec": {"source": {"clusterSnapshotRef": {"name": name}}, "region": region},
        }))
        .await
        .unwrap();
    }
    for name in copies {
        h.wait_copy(&format!("{name}-copy"), Duration::from_secs(60), is_ready)
            .await;
    }
    // Their source check read the source cluster's listing: the copies' reconciles
    // described no source.
    let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap_or_default();
    for name in copies {
        let source = h.status(name).await.snapshot_identifier.unwrap();
        let described: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains(&format!("object=\"{name}-copy\""))
                    && l.contains("describing one DocumentDB snapshot")
                    && l.contains(&source)
            })
            .collect();
        assert!(
            described.is_empty(),
            "{name}-copy described its source: {described:?}"
        );
    }
    // A restart with every object Ready costs listings only: the statuses hold what
    // the first look needs (ownership from the recorded ARN and creation time, the
    // shares last seen), so no describe of one snapshot, no tags, no attributes.
    h.operator.as_mut().unwrap().kill();
    let before = h.calls();
    h.start_operator(&[
        "--min-poll-seconds",
        "2",
        "--max-poll-seconds",
        "4",
        "--resync-seconds",
        "2",
    ]);
    let op = h.operator.as_ref().unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&op.log)
        .unwrap_or_default()
        .rsplit("dbsnapshot-operator started")
        .next()
        .is_some_and(|since| since.contains("caches synced; ready"))
    {
        assert!(start.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Resyncs every 2 s: each object is looked at a few times meanwhile.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = h.calls();
    let listings = count(&after, "redshift", "DescribeClusterSnapshots")
        + count(&after, "docdb", "DescribeDBClusterSnapshots")
        + count(&after, "elasticache", "DescribeSnapshots")
        - count(&before, "redshift", "DescribeClusterSnapshots")
        - count(&before, "docdb", "DescribeDBClusterSnapshots")
        - count(&before, "elasticache", "DescribeSnapshots");
    assert!(
        listings >= 3,
        "the restarted operator looked: {listings} listings"
    );
    // The copy in the other region is the only one there: its source's listing in that
    // region is made by its own reconcile (so the copies were looked at too).
    let since_restart = std::fs::read_to_string(&op.log).unwrap_or_default();
    let since_restart = since_restart
        .rsplit("dbsnapshot-operator started")
        .next()
        .unwrap_or_default();
    assert!(
        since_restart.lines().any(
            |l| l.contains("object=\"dd-1-copy\"") && l.contains("listed a source's snapshots")
        ),
        "the restarted operator did not look at the copies (log {:?})",
        op.log
    );
    let naming_one = |calls: &serde_json::Value| {
        calls["namingOneSnapshot"]
            .as_object()
            .cloned()
            .expect("the emulator counts the calls naming one snapshot")
    };
    assert!(
        !naming_one(&before).is_empty(),
        "the creates named their snapshots: {before}"
    );
    assert_eq!(
        naming_one(&after),
        naming_one(&before),
        "calls naming one snapshot after the restart"
    );

    // Deleting everything: one delete each, decided from a shared listing. The
    // sources go first: whether AWS still copies from them is read from their copies'
    // listing, so their cleanup describes no copy either.
    let logged = std::fs::read_to_string(&op.log).unwrap_or_default().len();
    let mut copy_ids = Vec::new();
    for name in copies {
        copy_ids.push(
            h.copy_status(&format!("{name}-copy"))
                .await
                .snapshot_identifier
                .unwrap(),
        );
    }
    delete_all(&h, &copies.map(String::from)).await;
    let log = std::fs::read_to_string(&op.log).unwrap_or_default();
    let described: Vec<&str> = log[logged..]
        .lines()
        .filter(|l| {
            l.contains("describing one DocumentDB snapshot")
                && copy_ids.iter().any(|id| l.contains(id.as_str()))
        })
        .collect();
    assert!(
        described.is_empty(),
        "the sources' cleanup described their finished copies: {described:?}"
    );
    for name in copies {
        let copy = format!("{name}-copy");
        h.copies().delete(&copy, &Default::default()).await.unwrap();
        h.wait_copy_gone(&copy).await;
    }
    let rest: Vec<String> = names
        .iter()
        .filter(|n| !copies.contains(&n.as_str()))
        .cloned()
        .collect();
    delete_all(&h, &rest).await;
    let after = h.calls();
    assert_eq!(count(&after, "redshift", "DeleteClusterSnapshot"), 12);
    assert_eq!(count(&after, "docdb", "DeleteDBClusterSnapshot"), 8);
    assert_eq!(count(&after, "elasticache", "DeleteSnapshot"), 6);
    let left = manual_snapshots_left(&h);
    assert!(left.is_empty(), "snapshots left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_keeps_the_operator_under_the_accounts_rate() {
    let mut h = Harness::new("budget", 2.0).await;
    h.operator = None;
    seed_clusters(&h.aws).await;
    // The account may make 4 requests a second; the operator allows itself 2 per
    // service, and only Redshift is busy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.set_faults(json!({"accountRps": 4.0}));
    h.start_operator(&[
        "--aws-rate",
        "2",
        "--aws-burst",
        "2",
        "--min-poll-seconds",
        "1",
    ]);
    let start = Instant::now();
    let names = create_many(
        &h,
        16,
        json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "rs",
    )
    .await;
    wait_all_ready(&h, &names, Duration::from_secs(90)).await;
    let calls = h.calls();
    assert_eq!(calls["overBudget"], 0, "{calls}");
    assert_eq!(count(&calls, "redshift", "CreateClusterSnapshot"), 16);
    // 16 creates at 2 a second (after a burst of 2) take at least 7 s.
    assert!(
        start.elapsed() >= Duration::from_secs(7),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_object_polling_describes_each_object_on_its_own() {
    let mut h = Harness::new("per-object", 1.0).await;
    h.operator = None;
    seed_clusters(&h.aws).await;
    h.start_operator(&["--polling", "per-object"]);
    let names = create_many(
        &h,
        3,
        json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "rs",
    )
    .await;
    wait_all_ready(&h, &names, Duration::from_secs(90)).await;
    let calls = h.calls();
    assert_eq!(count(&calls, "redshift", "CreateClusterSnapshot"), 3);
    // A describe before each create and at least one after it, per object.
    assert!(
        count(&calls, "redshift", "DescribeClusterSnapshots") >= 6,
        "{calls}"
    );
    delete_all(&h, &names).await;
    assert_eq!(count(&h.calls(), "redshift", "DeleteClusterSnapshot"), 3);
    assert!(manual_snapshots_left(&h).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_snapshot_deleted_right_after_ready_is_revoked_first() {
    // The source's listing predates the share; the delete must not be decided from it.
    let h = Harness::new("shared-delete", 1.0).await;
    seed_clusters(&h.aws).await;
    h.create(json!({"metadata": {"name": "s"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}, "sharedWith": ["111111111111"]}}))
        .await
        .unwrap();
    let s = h.wait_ready("s").await;
    assert_eq!(s.shared_with, Some(vec!["111111111111".to_string()]));
    h.snapshots()
        .delete("s", &Default::default())
        .await
        .unwrap();
    h.wait_gone("s").await;
    let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap();
    assert!(
        !log.contains("InvalidClusterSnapshotState"),
        "a delete was tried while the snapshot was shared:\n{log}"
    );
    let calls = h.calls();
    assert_eq!(
        count(&calls, "redshift", "RevokeSnapshotAccess"),
        1,
        "{calls}"
    );
    assert_eq!(
        count(&calls, "redshift", "DeleteClusterSnapshot"),
        1,
        "{calls}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_in_the_budget_does_not_cancel_the_call() {
    // One request every 10 s per service: the fourth create waits 30 s in the budget,
    // within the 45 s attempt timeout (which counts the wait) and longer than the SDK's
    // 20 s grace for a stalled upload (the request is held before its body is read).
    let mut h = Harness::new("budget-wait", 1.0).await;
    h.operator = None;
    seed_clusters(&h.aws).await;
    h.start_operator(&["--aws-rate", "0.1", "--aws-burst", "1"]);
    let names = create_many(
        &h,
        4,
        json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "rs",
    )
    .await;
    wait_all_ready(&h, &names, Duration::from_secs(180)).await;
    let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap();
    assert!(
        !log.contains("reconcile failed"),
        "a call waiting for the budget failed:\n{log}"
    );
    assert_eq!(count(&h.calls(), "redshift", "CreateClusterSnapshot"), 4);
}
