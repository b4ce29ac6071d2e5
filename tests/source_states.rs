//! What AWS says that the first wave never met: a source cluster that refuses a
//! snapshot for a while (maintenance, a resize, ElastiCache's one snapshot at a time),
//! snapshot statuses beyond creating and available, and deletes that take time.

mod common;

use std::time::Duration;

use common::*;
use dbsnapshot_operator::api::Phase;
use serde_json::json;

fn source(engine: &str) -> serde_json::Value {
    match engine {
        "redshift" => json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "docdb" => json!({"docdb": {"clusterIdentifier": "orders"}}),
        "elasticache" => json!({"elasticache": {"replicationGroupId": "sessions"}}),
        other => panic!("{other}"),
    }
}

/// The emulator's service name, the cluster `source` names and its create action.
fn cluster_of(engine: &str) -> (&'static str, &'static str, &'static str) {
    match engine {
        "redshift" => ("redshift", "analytics", "CreateClusterSnapshot"),
        "docdb" => ("docdb", "orders", "CreateDBClusterSnapshot"),
        "elasticache" => ("elasticache", "sessions", "CreateSnapshot"),
        other => panic!("{other}"),
    }
}

async fn admin(h: &Harness, path: &str, body: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/{path}", h.aws_url))
        .json(&body)
        .send()
        .await
        .expect("emulator admin call");
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

fn reason(s: &dbsnapshot_operator::api::SnapshotStatus) -> String {
    condition(s, "Ready")
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

/// A cluster being modified refuses snapshots (InvalidClusterState and its kin): the
/// object says so with AWS's words, tries again with backoff, never goes Failed, and is
/// Ready once the cluster is available again.
async fn a_busy_cluster_is_waited_for(engine: &str) {
    let h = Harness::new(&format!("busy-{engine}"), 0.5).await;
    seed_clusters(&h.aws).await;
    let (service, cluster, create) = cluster_of(engine);
    admin(
        &h,
        "clusters/status",
        json!({"service": service, "identifier": cluster, "status": "modifying", "seconds": 8}),
    )
    .await;
    h.create(json!({"metadata": {"name": "nightly"}, "spec": {"source": source(engine)}}))
        .await
        .unwrap();
    let mut waiting_message = None;
    let mut phases = Vec::new();
    h.wait_for(
        "nightly",
        Duration::from_secs(90),
        |s| {
            phases.push(s.phase);
            if let Some(c) = condition(s, "Reconciling")
                && c.status == "True"
                && c.reason == "SourceNotReady"
            {
                waiting_message = Some(c.message.clone());
            }
        },
        is_ready,
    )
    .await;
    let message = waiting_message.expect("the object never said the cluster was busy");
    assert!(
        message.contains("modifying") && message.contains(cluster),
        "{message}"
    );
    assert!(!phases.contains(&Some(Phase::Failed)), "{phases:?}");
    let attempts = h.count(service, create);
    assert!(attempts >= 2, "{attempts} creates");
    // Backoff, not a busy loop: 8 s of refusals take a handful of attempts.
    assert!(attempts <= 8, "{attempts} creates in about 8 s");
    println!("{engine}: Ready after {attempts} create calls; said: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redshift_cluster_being_modified_is_waited_for() {
    a_busy_cluster_is_waited_for("redshift").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docdb_cluster_being_modified_is_waited_for() {
    a_busy_cluster_is_waited_for("docdb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elasticache_group_being_modified_is_waited_for() {
    a_busy_cluster_is_waited_for("elasticache").await;
}

/// ElastiCache takes one snapshot of a replication group at a time: three objects of
/// the same group all end Ready, one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticache_snapshots_of_one_group_are_taken_one_at_a_time() {
    let h = Harness::new("one-at-a-time", 3.0).await;
    seed_clusters(&h.aws).await;
    for name in ["a", "b", "c"] {
        h.create(json!({"metadata": {"name": name}, "spec": {"source": source("elasticache")}}))
            .await
            .unwrap();
    }
    let mut ever_failed = false;
    for name in ["a", "b", "c"] {
        h.wait_for(
            name,
            Duration::from_secs(90),
            |s| ever_failed |= s.phase == Some(Phase::Failed),
            is_ready,
        )
        .await;
    }
    assert!(
        !ever_failed,
        "an object went Failed while the group was busy"
    );
    assert_eq!(h.aws_snapshots().len(), 3);
}

/// A status no service documents is shown as it is (UnknownStatus, the raw status in
/// the message), never taken for creating; the object is Ready again once AWS says
/// `available`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_is_shown_not_taken_for_creating() {
    let h = Harness::new("unknown-status", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({"metadata": {"name": "nightly"}, "spec": {"source": source("docdb"), "snapshotIdentifier": "odd-status"}}))
        .await
        .unwrap();
    h.wait_ready("nightly").await;
    admin(
        &h,
        "snapshots/status",
        json!({"service": "docdb", "identifier": "odd-status", "status": "storage-optimization"}),
    )
    .await;
    let s = h
        .wait_for(
            "nightly",
            Duration::from_secs(60),
            |_| {},
            |s| reason(s) != "Available",
        )
        .await;
    let ready = condition(&s, "Ready").unwrap();
    assert_eq!(ready.reason, "UnknownStatus", "{ready:?}");
    assert!(ready.message.contains("storage-optimization"), "{ready:?}");
    assert_eq!(s.aws_status.as_deref(), Some("storage-optimization"));
    assert_eq!(s.ready_to_use, Some(false));
    admin(
        &h,
        "snapshots/status",
        json!({"service": "docdb", "identifier": "odd-status", "status": null}),
    )
    .await;
    h.wait_ready("nightly").await;
}

/// Redshift's `cancelled` is a failure, and `final snapshot` is available; deleting
/// either object finishes (nothing waits on a status that never ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_final_redshift_snapshots_are_cleaned_up() {
    let h = Harness::new("cancelled", 0.5).await;
    seed_clusters(&h.aws).await;
    for (name, id) in [("cancelled", "rs-cancelled"), ("final", "rs-final")] {
        h.create(json!({"metadata": {"name": name}, "spec": {"source": source("redshift"), "snapshotIdentifier": id}}))
            .await
            .unwrap();
        h.wait_ready(name).await;
    }
    admin(
        &h,
        "snapshots/status",
        json!({"service": "redshift", "identifier": "rs-cancelled", "status": "cancelled"}),
    )
    .await;
    admin(
        &h,
        "snapshots/status",
        json!({"service": "redshift", "identifier": "rs-final", "status": "final snapshot"}),
    )
    .await;
    let s = h
        .wait_for(
            "cancelled",
            Duration::from_secs(60),
            |_| {},
            |s| s.phase == Some(Phase::Failed),
        )
        .await;
    assert_eq!(reason(&s), "Failed");
    assert!(
        condition(&s, "Ready")
            .unwrap()
            .message
            .contains("cancelled"),
        "{s:?}"
    );
    // A `final snapshot` is available: the object stays Ready.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = h.status("final").await;
    assert!(is_ready(&s), "{s:?}");
    assert_eq!(s.aws_status.as_deref(), Some("final snapshot"));
    for name in ["cancelled", "final"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for name in ["cancelled", "final"] {
        h.wait_gone(name).await;
    }
    assert!(h.aws_snapshots().is_empty(), "{:?}", h.aws_snapshots());
}

/// Deleting an object and re-creating one with the same explicit identifier right
/// away: AWS still holds the old snapshot (`deleting`, its name taken). The new object
/// waits for it to go, then creates its own, never NotOwned.
async fn a_name_being_deleted_is_waited_for(engine: &str) {
    let h = Harness::new(&format!("redo-{engine}"), 0.5).await;
    seed_clusters(&h.aws).await;
    admin(&h, "settings", json!({"deleteSeconds": 6})).await;
    let spec = json!({"source": source(engine), "snapshotIdentifier": "weekly-redo"});
    h.create(json!({"metadata": {"name": "old"}, "spec": spec}))
        .await
        .unwrap();
    h.wait_ready("old").await;
    h.snapshots()
        .delete("old", &Default::default())
        .await
        .unwrap();
    h.wait_gone("old").await;
    h.create(json!({"metadata": {"name": "new"}, "spec": spec}))
        .await
        .unwrap();
    let mut reasons = Vec::new();
    let s = h
        .wait_for(
            "new",
            Duration::from_secs(90),
            |s| reasons.push(reason(s)),
            is_ready,
        )
        .await;
    assert!(!reasons.iter().any(|r| r == "NotOwned"), "{reasons:?}");
    let new_uid = h
        .snapshots()
        .get("new")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let aws = h.aws_snapshots();
    assert_eq!(aws.len(), 1, "{aws:?}");
    assert_eq!(aws[0].owner(), Some(new_uid.as_str()), "{aws:?}");
    println!("{engine}: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docdb_name_being_deleted_is_waited_for() {
    a_name_being_deleted_is_waited_for("docdb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elasticache_name_being_deleted_is_waited_for() {
    a_name_being_deleted_is_waited_for("elasticache").await;
}
