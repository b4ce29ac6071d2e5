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

/// A DocumentDB copy with `copyTags` of a source tagged `from-source`, `team` (which the
/// copy sets itself) and another object's owner tag: the copy ends with the source's
/// tags, its own value of `team` and its own ownership, whichever rule the service
/// applies to a copy request that carries tags.
async fn docdb_copy_tags_end_on_the_copy(h: &Harness) {
    let uid_of = |c: &dbsnapshot_operator::api::SnapshotCopy| c.metadata.uid.clone().unwrap();
    let tag = |k: &str, v: &str| aws_sdk_docdb::types::Tag::builder().key(k).value(v).build();
    aws_sdk_docdb::Client::new(&h.aws)
        .create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier("tagged-src")
        .tags(tag("from-source", "yes"))
        .tags(tag("team", "source-team"))
        .tags(tag("dbsnapshot.io/owner-uid", "someone-else"))
        .send()
        .await
        .expect("source snapshot");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = h
        .create_copy(json!({"metadata": {"name": "tagged"}, "spec": {"source": {"docdb": {"snapshotIdentifier": "tagged-src"}}, "targetSnapshotIdentifier": "tagged-copy", "copyTags": true, "tags": {"team": "dr"}}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("tagged", Duration::from_secs(60), is_ready)
        .await;
    let tags: std::collections::BTreeMap<String, String> = aws_sdk_docdb::Client::new(&h.aws)
        .list_tags_for_resource()
        .resource_name(s.arn.clone().unwrap())
        .send()
        .await
        .unwrap()
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(
        tags.get("from-source").map(String::as_str),
        Some("yes"),
        "{tags:?}"
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("dr"), "{tags:?}");
    assert_eq!(
        tags.get("dbsnapshot.io/owner-uid"),
        Some(&uid_of(&c)),
        "{tags:?}"
    );
    h.copies()
        .delete("tagged", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("tagged").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_copy_tags_against_moto_and_the_emulator() {
    // moto applies the source's tags only to a copy request without tags of its own.
    let moto = moto();
    let mut m = Harness::with_aws("moto-copytags", &moto.url).await;
    aws_sdk_docdb::Client::new(&m.aws)
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("aurora-postgresql")
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .send()
        .await
        .expect("docdb cluster");
    m.start_operator(&[]);
    docdb_copy_tags_end_on_the_copy(&m).await;

    // The emulator merges the source's tags with the request's: nothing is missing,
    // and no tagging call is made.
    let e = Harness::new("emulator-copytags", 0.5).await;
    seed_clusters(&e.aws).await;
    docdb_copy_tags_end_on_the_copy(&e).await;
    assert_eq!(e.count("docdb", "AddTagsToResource"), 0);
}
