//! Crash windows: the operator is SIGKILLed after an AWS call took effect and before
//! it could record that (the emulator holds the call's answer back), then restarted.
//! Each window converges to the right end state: no second snapshot, none left behind,
//! none deleted while shared, no other object's snapshot touched. (The create window of
//! a ClusterSnapshot is `a_crash_between_create_and_status_write_adopts_the_first_snapshot`
//! in cluster_snapshot.rs.)

mod common;

use std::time::Duration;

use common::*;
use kube::ResourceExt;
use serde_json::json;

/// The emulator applies these actions and holds their answers for 30 s.
fn hold(h: &Harness, actions: &[&str]) {
    h.set_faults(json!({"delayActions": actions, "delayResponseMs": 30000}));
}

fn release(h: &Harness) {
    h.set_faults(json!({"delayActions": []}));
}

fn crash(h: &mut Harness) {
    h.operator.as_mut().expect("operator").kill();
}

fn source(engine: &str) -> serde_json::Value {
    match engine {
        "redshift" => json!({"redshift": {"clusterIdentifier": "analytics"}}),
        "docdb" => json!({"docdb": {"clusterIdentifier": "orders"}}),
        _ => json!({"elasticache": {"replicationGroupId": "sessions"}}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_copy_call_and_before_the_status_write() {
    let mut h = Harness::new("crash-copy", 0.5).await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-src").await;
    docdb_source(&h.aws, "orders-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let automated = redshift_automated(&h.aws).await;
    let before = h.aws_snapshots();

    // Default target identifiers; Redshift's copy call takes no tags (they follow it).
    let copies = [
        (
            "rs",
            "redshift",
            "CopyClusterSnapshot",
            json!({"redshift": {"snapshotIdentifier": automated, "clusterIdentifier": "analytics"}}),
        ),
        (
            "dd",
            "docdb",
            "CopyDBClusterSnapshot",
            json!({"docdb": {"snapshotIdentifier": "orders-src"}}),
        ),
        (
            "ec",
            "elasticache",
            "CopySnapshot",
            json!({"elasticache": {"snapshotName": "sessions-src"}}),
        ),
    ];
    hold(&h, &copies.each_ref().map(|c| c.2));
    for (name, _, _, source) in &copies {
        h.create_copy(json!({"metadata": {"name": name}, "spec": {"source": source, "tags": {"team": "data"}}}))
            .await
            .unwrap();
    }
    for (_, service, action, _) in &copies {
        h.wait_count(service, action, 1).await;
    }
    crash(&mut h);
    for (name, ..) in &copies {
        let s = h.copy_status(name).await;
        assert!(s.snapshot_identifier.is_some(), "{name}: {s:?}");
        assert!(
            s.arn.is_none(),
            "{name}: the status was written after all: {s:?}"
        );
    }
    let made = h.aws_snapshots().len() - before.len();
    assert_eq!(made, 3, "{:?}", h.aws_snapshots());

    release(&h);
    h.start_operator(&[]);
    for (name, service, action, _) in &copies {
        let s = h.wait_copy(name, Duration::from_secs(60), is_ready).await;
        let uid = h.copies().get(name).await.unwrap().uid().unwrap();
        let id = s.snapshot_identifier.unwrap();
        let on_aws: Vec<AwsSnapshot> = h
            .aws_snapshots()
            .into_iter()
            .filter(|a| a.id == id)
            .collect();
        assert_eq!(on_aws.len(), 1, "{name}: {on_aws:?}");
        assert_eq!(on_aws[0].owner(), Some(uid.as_str()), "{name}: {on_aws:?}");
        assert_eq!(on_aws[0].tags.get("team").map(String::as_str), Some("data"));
        assert_eq!(
            h.count(service, action),
            1,
            "{name}: a second copy was made"
        );
    }
    assert_eq!(h.aws_snapshots().len(), before.len() + 3);

    // Deleting the objects deletes exactly the copies.
    for (name, ..) in &copies {
        h.copies().delete(name, &Default::default()).await.unwrap();
    }
    for (name, ..) in &copies {
        h.wait_copy_gone(name).await;
    }
    assert_eq!(h.aws_snapshots(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_revoking_shares_and_deleting() {
    let mut h = Harness::new("crash-revoke", 0.5).await;
    seed_clusters(&h.aws).await;
    let engines = [
        ("redshift", "RevokeSnapshotAccess"),
        ("docdb", "ModifyDBClusterSnapshotAttribute"),
    ];
    for (engine, _) in engines {
        for name in [format!("{engine}-shared"), format!("{engine}-sibling")] {
            h.create(json!({"metadata": {"name": name}, "spec": {"source": source(engine), "sharedWith": ["111111111111"]}}))
                .await
                .unwrap();
        }
    }
    for (engine, _) in engines {
        h.wait_ready(&format!("{engine}-shared")).await;
        h.wait_ready(&format!("{engine}-sibling")).await;
    }
    let modifies_before = h.count("docdb", "ModifyDBClusterSnapshotAttribute");
    hold(&h, &engines.map(|e| e.1));
    for (engine, _) in engines {
        h.snapshots()
            .delete(&format!("{engine}-shared"), &Default::default())
            .await
            .unwrap();
    }
    h.wait_count("redshift", "RevokeSnapshotAccess", 1).await;
    h.wait_count(
        "docdb",
        "ModifyDBClusterSnapshotAttribute",
        modifies_before + 1,
    )
    .await;
    crash(&mut h);
    // Unshared on AWS, not deleted, and the objects wait on their finalizers.
    for (engine, _) in engines {
        let name = format!("{engine}-shared");
        let s = h.status(&name).await;
        let id = s.snapshot_identifier.unwrap();
        let on_aws = h.aws_snapshots().into_iter().find(|a| a.id == id);
        assert_eq!(on_aws.map(|a| a.shared), Some(vec![]), "{name}");
    }

    release(&h);
    h.start_operator(&[]);
    for (engine, _) in engines {
        h.wait_gone(&format!("{engine}-shared")).await;
    }
    assert_eq!(h.count("redshift", "DeleteClusterSnapshot"), 1);
    assert_eq!(h.count("docdb", "DeleteDBClusterSnapshot"), 1);
    assert_eq!(
        h.calls()["sharedDeletes"],
        0,
        "a snapshot was deleted while shared"
    );
    // Only the deleted objects' snapshots went; the siblings keep theirs, still shared.
    let left = h.aws_snapshots();
    assert_eq!(left.len(), 2, "{left:?}");
    for (engine, _) in engines {
        let s = h.wait_ready(&format!("{engine}-sibling")).await;
        let id = s.snapshot_identifier.unwrap();
        let on_aws = left.iter().find(|a| a.id == id).expect("sibling snapshot");
        assert_eq!(on_aws.shared, vec!["111111111111".to_string()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_aws_delete_and_before_the_finalizer_is_removed() {
    let mut h = Harness::new("crash-delete", 0.5).await;
    seed_clusters(&h.aws).await;
    let engines = [
        ("redshift", "redshift", "DeleteClusterSnapshot"),
        ("docdb", "docdb", "DeleteDBClusterSnapshot"),
        ("elasticache", "elasticache", "DeleteSnapshot"),
    ];
    for (engine, ..) in engines {
        for name in [format!("{engine}-gone"), format!("{engine}-sibling")] {
            h.create(json!({"metadata": {"name": name}, "spec": {"source": source(engine)}}))
                .await
                .unwrap();
        }
    }
    for (engine, ..) in engines {
        h.wait_ready(&format!("{engine}-gone")).await;
        h.wait_ready(&format!("{engine}-sibling")).await;
    }
    hold(&h, &engines.map(|e| e.2));
    for (engine, ..) in engines {
        h.snapshots()
            .delete(&format!("{engine}-gone"), &Default::default())
            .await
            .unwrap();
    }
    for (_, service, action) in engines {
        h.wait_count(service, action, 1).await;
    }
    crash(&mut h);
    // Gone from AWS; the objects are still there, held by their finalizers.
    assert_eq!(h.aws_snapshots().len(), 3, "{:?}", h.aws_snapshots());
    for (engine, ..) in engines {
        let name = format!("{engine}-gone");
        let obj = h.snapshots().get(&name).await.unwrap();
        assert!(obj.metadata.deletion_timestamp.is_some(), "{name}");
        assert!(!obj.finalizers().is_empty(), "{name}");
    }

    release(&h);
    h.start_operator(&[]);
    for (engine, ..) in engines {
        h.wait_gone(&format!("{engine}-gone")).await;
    }
    for (_, service, action) in engines {
        assert_eq!(h.count(service, action), 1, "{service}: deleted again");
    }
    // The siblings' snapshots are untouched.
    let left = h.aws_snapshots();
    for (engine, ..) in engines {
        let s = h.wait_ready(&format!("{engine}-sibling")).await;
        let id = s.snapshot_identifier.unwrap();
        assert!(left.iter().any(|a| a.id == id), "{engine}: {left:?}");
    }
    assert_eq!(left.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_costs_no_detail_calls_for_objects_in_sync() {
    let mut h = Harness::new("crash-restart", 0.5).await;
    seed_clusters(&h.aws).await;
    for i in 0..4 {
        h.create(json!({"metadata": {"name": format!("d{i}")}, "spec": {"source": source("docdb"), "sharedWith": ["111111111111"], "tags": {"i": i.to_string()}}}))
            .await
            .unwrap();
    }
    for i in 0..4 {
        h.wait_ready(&format!("d{i}")).await;
    }
    crash(&mut h);
    let detail = |h: &Harness| {
        h.count("docdb", "ListTagsForResource")
            + h.count("docdb", "DescribeDBClusterSnapshotAttributes")
    };
    let (detail_before, listings_before) =
        (detail(&h), h.count("docdb", "DescribeDBClusterSnapshots"));
    h.start_operator(&[]);
    // A few resyncs (3 s here): the objects are looked at through the source's listing.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(h.count("docdb", "DescribeDBClusterSnapshots") > listings_before);
    assert_eq!(
        detail(&h),
        detail_before,
        "the restart fetched tags and shares again"
    );
    for i in 0..4 {
        h.wait_ready(&format!("d{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redshift_copy_to_a_named_target_killed_before_its_tags_is_adopted() {
    let mut h = Harness::new("crash-copy-named", 0.5).await;
    seed_clusters(&h.aws).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let automated = redshift_automated(&h.aws).await;
    let before = h.aws_snapshots();

    // CopyClusterSnapshot takes no tags; the kill comes before the tags could follow.
    hold(&h, &["CopyClusterSnapshot"]);
    h.create_copy(json!({"metadata": {"name": "named"}, "spec": {
        "source": {"redshift": {"snapshotIdentifier": automated, "clusterIdentifier": "analytics"}},
        "targetSnapshotIdentifier": "analytics-dr", "tags": {"team": "data"}}}))
        .await
        .unwrap();
    h.wait_count("redshift", "CopyClusterSnapshot", 1).await;
    crash(&mut h);
    let on_aws = h.aws_snapshots();
    let copy = on_aws
        .iter()
        .find(|a| a.id == "analytics-dr")
        .expect("the copy");
    assert!(copy.tags.is_empty(), "{copy:?}");
    assert!(h.copy_status("named").await.arn.is_none());

    release(&h);
    h.start_operator(&[]);
    let s = h
        .wait_copy("named", Duration::from_secs(60), is_ready)
        .await;
    assert_eq!(s.snapshot_identifier.as_deref(), Some("analytics-dr"));
    let uid = h.copies().get("named").await.unwrap().uid().unwrap();
    let copies: Vec<AwsSnapshot> = h
        .aws_snapshots()
        .into_iter()
        .filter(|a| a.id == "analytics-dr")
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].owner(), Some(uid.as_str()), "{copies:?}");
    assert_eq!(copies[0].tags.get("team").map(String::as_str), Some("data"));
    assert_eq!(h.count("redshift", "CopyClusterSnapshot"), 1);
    assert_eq!(h.aws_snapshots().len(), before.len() + 1);

    // Deleting the object deletes the copy: nothing is left behind.
    h.copies()
        .delete("named", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("named").await;
    assert_eq!(h.aws_snapshots(), before);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_killed_before_its_status_write_is_not_made_twice() {
    let mut h = Harness::new("crash-export", 0.5).await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    hold(&h, &["CopySnapshot"]);
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": {
        "source": {"elasticache": {"snapshotName": "sessions-src"}},
        "targetBucket": "my-exports", "targetSnapshotIdentifier": "sessions-dr",
        "deletionPolicy": "Retain"}}))
        .await
        .unwrap();
    h.wait_count("elasticache", "CopySnapshot", 1).await;
    crash(&mut h);
    assert_eq!(exports(&h).await.len(), 1);
    assert!(h.copy_status("export").await.export_location.is_none());

    release(&h);
    h.start_operator(&[]);
    let s = h
        .wait_copy("export", Duration::from_secs(60), is_ready)
        .await;
    assert_eq!(
        s.export_location.as_deref(),
        Some("s3://my-exports/sessions-dr")
    );
    // Looked at for a few resyncs more: still the one export.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let made = exports(&h).await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["bucket"], "my-exports");
    // A restart that comes after the export finished (the source is `available`
    // again, as it is before an export) cannot tell from the source that it was made:
    // it asks again, AWS refuses the taken key, and the operator knows its own export
    // by it. One call more at most, and never a second export (above). On a machine
    // under load the restart is slow enough for that.
    let calls = h.count("elasticache", "CopySnapshot");
    assert!((1..=2).contains(&calls), "{calls} CopySnapshot calls");
    assert!(is_ready(&h.copy_status("export").await));

    h.copies()
        .delete("export", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("export").await;
    assert_eq!(exports(&h).await.len(), 1);
}
