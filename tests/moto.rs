//! The ClusterSnapshot lifecycle (create → Ready → delete) for all three engines
//! against moto, an AWS implementation nobody here wrote.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_against_moto() {
    let moto = moto();
    let mut h = Harness::with_aws("moto", &moto.url).await;
    aws_sdk_redshift::Client::new(&h.aws)
        .create_cluster()
        .cluster_identifier("analytics")
        .node_type("dc2.large")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .expect("redshift cluster");
    // moto's DocumentDB API (its RDS backend) refuses engine docdb.
    aws_sdk_docdb::Client::new(&h.aws)
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("aurora-postgresql")
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .send()
        .await
        .expect("docdb cluster");
    aws_sdk_elasticache::Client::new(&h.aws)
        .create_replication_group()
        .replication_group_id("sessions")
        .replication_group_description("sessions")
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_cache_clusters(1)
        .send()
        .await
        .expect("replication group");
    h.start_operator(&[]);
    let objects = [
        (
            "rs",
            json!({"redshift": {"clusterIdentifier": "analytics"}}),
            json!(["111111111111"]),
        ),
        (
            "dd",
            json!({"docdb": {"clusterIdentifier": "orders"}}),
            json!(["111111111111"]),
        ),
        (
            "ec",
            json!({"elasticache": {"replicationGroupId": "sessions"}}),
            json!([]),
        ),
    ];
    for (name, source, shares) in &objects {
        // Redshift sharing is not implemented by moto; share only where moto can.
        let shares = if *name == "rs" {
            json!([])
        } else {
            shares.clone()
        };
        h.create(json!({
            "metadata": {"name": name},
            "spec": {"source": source, "snapshotIdentifier": format!("moto-{name}"), "tags": {"team": "x"}, "sharedWith": shares}
        }))
        .await
        .unwrap();
    }
    for (name, _, _) in &objects {
        let s = h
            .wait_for(name, Duration::from_secs(60), |_| {}, is_ready)
            .await;
        assert!(s.arn.is_some(), "{name}: {s:?}");
        assert_eq!(s.phase, Some(dbsnapshot_operator::api::Phase::Available));
    }
    let dd = h.status("dd").await;
    assert_eq!(dd.shared_with, Some(vec!["111111111111".to_string()]));
    for (name, _, _) in &objects {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for (name, _, _) in &objects {
        h.wait_gone(name).await;
    }
    assert!(
        aws_sdk_redshift::Client::new(&h.aws)
            .describe_cluster_snapshots()
            .snapshot_identifier("moto-rs")
            .send()
            .await
            .is_err()
    );
    assert!(
        aws_sdk_docdb::Client::new(&h.aws)
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("moto-dd")
            .send()
            .await
            .is_err()
    );
    assert!(
        aws_sdk_elasticache::Client::new(&h.aws)
            .describe_snapshots()
            .snapshot_name("moto-ec")
            .send()
            .await
            .is_err()
    );
}
