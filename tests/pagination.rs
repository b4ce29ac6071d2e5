//! The pollers' listings follow AWS's markers end to end: with the emulator's page size
//! at 20 (AWS may return fewer records than MaxRecords, with a marker), a source with
//! more than 20 manual snapshots is listed over several pages, every object reaches
//! Ready, and the operator only ever passes back markers the emulator issued (the
//! emulator's markers are opaque and sealed, like AWS's).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Manual snapshots of each source made outside the operator (other tools, people).
const FOREIGN: usize = 24;
/// Objects per engine.
const OBJECTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pollers_follow_markers_through_every_page() {
    let h = Harness::new("paging", 2.0).await;
    seed_clusters(&h.aws).await;
    // Made at once (a replication group takes one snapshot at a time).
    h.set_snapshot_seconds(0.0);
    h.emulator
        .as_ref()
        .expect("an emulator")
        .lock()
        .unwrap()
        .paging
        .page_size = Some(20);

    // Foreign snapshots of the same sources: each source's listing then holds
    // FOREIGN + OBJECTS > 20 manual snapshots, two pages.
    for i in 0..FOREIGN {
        h.redshift()
            .create_cluster_snapshot()
            .cluster_identifier("analytics")
            .snapshot_identifier(format!("foreign-{i:02}"))
            .send()
            .await
            .expect("redshift snapshot");
        h.docdb()
            .create_db_cluster_snapshot()
            .db_cluster_identifier("orders")
            .db_cluster_snapshot_identifier(format!("foreign-{i:02}"))
            .send()
            .await
            .expect("docdb snapshot");
        elasticache_source(&h.aws, &format!("foreign-{i:02}")).await;
    }

    h.set_snapshot_seconds(2.0);

    let sources = [
        (
            "rs",
            json!({"redshift": {"clusterIdentifier": "analytics"}}),
        ),
        ("db", json!({"docdb": {"clusterIdentifier": "orders"}})),
        (
            "ec",
            json!({"elasticache": {"replicationGroupId": "sessions"}}),
        ),
    ];
    let mut names = Vec::new();
    for (engine, source) in &sources {
        for i in 0..OBJECTS {
            let name = format!("{engine}-{i}");
            h.create(json!({
                "metadata": {"name": name},
                "spec": {"source": source}
            }))
            .await
            .expect("create");
            names.push(name);
        }
    }
    for name in &names {
        h.wait_for(name, Duration::from_secs(120), |_| {}, is_ready)
            .await;
    }

    let calls = h.calls();
    for action in [
        "redshift:DescribeClusterSnapshots",
        "docdb:DescribeDBClusterSnapshots",
        "elasticache:DescribeSnapshots",
    ] {
        let followed = calls["markersFollowed"][action].as_u64().unwrap_or(0);
        assert!(
            followed >= 1,
            "the operator's listing never followed a {action} marker: {calls:#}"
        );
    }
    assert_eq!(
        calls["foreignMarkers"], 0,
        "the operator passed a marker the emulator did not issue: {calls:#}"
    );

    // The operator's listings ran to the last page: a listing that followed a marker
    // saw every snapshot of the source, including those past the first page.
    for (engine, _) in &sources {
        for i in 0..OBJECTS {
            let s = h.status(&format!("{engine}-{i}")).await;
            assert!(s.snapshot_identifier.is_some(), "{s:?}");
        }
    }
    // Nothing but the objects' own snapshots was created or touched.
    let mutations = h.mutating_calls();
    assert!(
        mutations
            .iter()
            .all(|m| !m.contains("Delete") && !m.contains("Copy")),
        "{mutations:?}"
    );
}
