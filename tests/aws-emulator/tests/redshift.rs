//! Every emulated Redshift action through the official Rust SDK, with each fault code.

mod common;

use aws_sdk_redshift::types::{SnapshotSortingEntity, Tag};
use common::*;

async fn cluster(rs: &aws_sdk_redshift::Client, id: &str) {
    rs.create_cluster()
        .cluster_identifier(id)
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .expect("CreateCluster");
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

#[tokio::test]
async fn clusters_are_created_described_and_deleted() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;
    let dup = rs
        .create_cluster()
        .cluster_identifier("analytics")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await;
    assert!(
        dup.as_ref()
            .unwrap_err()
            .as_service_error()
            .unwrap()
            .is_cluster_already_exists_fault()
    );
    let bad = rs
        .create_cluster()
        .cluster_identifier("9lives")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await;
    assert_eq!(code(bad), "InvalidParameterValue");

    let d = rs
        .describe_clusters()
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    let c = &d.clusters()[0];
    assert_eq!(c.cluster_identifier(), Some("analytics"));
    assert_eq!(c.cluster_status(), Some("available"));
    assert_eq!(c.endpoint().unwrap().port(), Some(5439));
    assert_eq!(
        code(
            rs.describe_clusters()
                .cluster_identifier("nope")
                .send()
                .await
        ),
        "ClusterNotFound"
    );

    // A new cluster comes with an automated snapshot named rs:<cluster>-<time>.
    let auto = rs
        .describe_cluster_snapshots()
        .cluster_identifier("analytics")
        .snapshot_type("automated")
        .send()
        .await
        .unwrap();
    let id = auto.snapshots()[0].snapshot_identifier().unwrap();
    assert!(id.starts_with("rs:analytics-"), "{id}");

    assert_eq!(
        code(
            rs.delete_cluster()
                .cluster_identifier("analytics")
                .send()
                .await
        ),
        "InvalidParameterCombination"
    );
    let gone = rs
        .delete_cluster()
        .cluster_identifier("analytics")
        .final_cluster_snapshot_identifier("analytics-final")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.cluster().unwrap().cluster_status(), Some("deleting"));
    assert_eq!(
        code(
            rs.delete_cluster()
                .cluster_identifier("analytics")
                .skip_final_cluster_snapshot(true)
                .send()
                .await
        ),
        "ClusterNotFound"
    );
    // The automated snapshot went with the cluster; the final manual one stayed.
    let left = rs.describe_cluster_snapshots().send().await.unwrap();
    let ids: Vec<_> = left
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_identifier())
        .collect();
    assert_eq!(ids, vec!["analytics-final"]);
}

#[tokio::test]
async fn snapshot_lifecycle_with_progress_sharing_and_retention() {
    let emu = emulator(1.5).await;
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;

    let created = rs
        .create_cluster_snapshot()
        .snapshot_identifier("nightly")
        .cluster_identifier("analytics")
        .manual_snapshot_retention_period(7)
        .tags(tag("team", "data"))
        .send()
        .await
        .unwrap();
    let s = created.snapshot().unwrap();
    assert_eq!(s.status(), Some("creating"));
    assert_eq!(s.snapshot_type(), Some("manual"));
    assert_eq!(s.owner_account(), Some("123456789012"));
    assert!(s.total_backup_size_in_mega_bytes().unwrap() > 0.0);
    assert!(
        s.backup_progress_in_mega_bytes().unwrap() < s.total_backup_size_in_mega_bytes().unwrap()
    );
    assert!(s.estimated_seconds_to_completion().unwrap() >= 1);
    assert!(s.current_backup_rate_in_mega_bytes_per_second().unwrap() > 0.0);
    assert_eq!(s.manual_snapshot_retention_period(), Some(7));
    assert_eq!(s.manual_snapshot_remaining_days(), Some(7));
    assert_eq!(
        s.snapshot_arn(),
        Some("arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/nightly")
    );

    // Rules checked while creating.
    let dup = rs
        .create_cluster_snapshot()
        .snapshot_identifier("nightly")
        .cluster_identifier("analytics")
        .send()
        .await;
    assert!(
        dup.unwrap_err()
            .into_service_error()
            .is_cluster_snapshot_already_exists_fault()
    );
    assert_eq!(
        code(
            rs.delete_cluster_snapshot()
                .snapshot_identifier("nightly")
                .send()
                .await
        ),
        "InvalidClusterSnapshotState"
    );
    assert_eq!(
        code(
            rs.authorize_snapshot_access()
                .snapshot_identifier("nightly")
                .account_with_restore_access("210987654321")
                .send()
                .await
        ),
        "InvalidClusterSnapshotState"
    );
    for bad_id in ["1st", "a--b", "trailing-", "under_score"] {
        let r = rs
            .create_cluster_snapshot()
            .snapshot_identifier(bad_id)
            .cluster_identifier("analytics")
            .send()
            .await;
        assert_eq!(code(r), "InvalidParameterValue", "{bad_id}");
    }
    let too_long = "a".repeat(256);
    assert_eq!(
        code(
            rs.create_cluster_snapshot()
                .snapshot_identifier(&too_long)
                .cluster_identifier("analytics")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let ok_255 = "a".repeat(255);
    rs.create_cluster_snapshot()
        .snapshot_identifier(&ok_255)
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    for bad in [0i32, -2, 3654] {
        let r = rs
            .create_cluster_snapshot()
            .snapshot_identifier(format!("r{}", bad.abs()))
            .cluster_identifier("analytics")
            .manual_snapshot_retention_period(bad)
            .send()
            .await;
        assert_eq!(code(r), "InvalidRetentionPeriodFault", "{bad}");
    }
    assert_eq!(
        code(
            rs.create_cluster_snapshot()
                .snapshot_identifier("x")
                .cluster_identifier("missing")
                .send()
                .await
        ),
        "ClusterNotFound"
    );

    // Progress moves, then the snapshot is available.
    sleep_secs(0.8).await;
    let mid = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("nightly")
        .send()
        .await
        .unwrap();
    let m = &mid.snapshots()[0];
    assert!(m.elapsed_time_in_seconds().unwrap() >= 0);
    assert!(
        m.backup_progress_in_mega_bytes().unwrap() > s.backup_progress_in_mega_bytes().unwrap()
    );
    sleep_secs(1.0).await;
    let done = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("nightly")
        .send()
        .await
        .unwrap();
    let d = &done.snapshots()[0];
    assert_eq!(d.status(), Some("available"));
    assert_eq!(
        d.backup_progress_in_mega_bytes(),
        d.total_backup_size_in_mega_bytes()
    );
    assert_eq!(d.estimated_seconds_to_completion(), Some(0));
    assert_eq!(d.tags()[0].key(), Some("team"));

    // Retention is mutable.
    let m = rs
        .modify_cluster_snapshot()
        .snapshot_identifier("nightly")
        .manual_snapshot_retention_period(35)
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.snapshot().unwrap().manual_snapshot_retention_period(),
        Some(35)
    );
    assert_eq!(
        m.snapshot().unwrap().manual_snapshot_remaining_days(),
        Some(35)
    );
    assert_eq!(
        code(
            rs.modify_cluster_snapshot()
                .snapshot_identifier("nightly")
                .manual_snapshot_retention_period(4000)
                .send()
                .await
        ),
        "InvalidRetentionPeriodFault"
    );
    assert_eq!(
        code(
            rs.modify_cluster_snapshot()
                .snapshot_identifier("ghost")
                .manual_snapshot_retention_period(1)
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );

    // Sharing: authorize, duplicates, bad ids, the quota of 20, and the other side's view.
    let shared = rs
        .authorize_snapshot_access()
        .snapshot_identifier("nightly")
        .account_with_restore_access(OTHER_ACCOUNT)
        .send()
        .await
        .unwrap();
    let accounts = shared.snapshot().unwrap().accounts_with_restore_access();
    assert_eq!(accounts[0].account_id(), Some(OTHER_ACCOUNT));
    assert_eq!(
        code(
            rs.authorize_snapshot_access()
                .snapshot_identifier("nightly")
                .account_with_restore_access(OTHER_ACCOUNT)
                .send()
                .await
        ),
        "AuthorizationAlreadyExists"
    );
    assert_eq!(
        code(
            rs.authorize_snapshot_access()
                .snapshot_identifier("nightly")
                .account_with_restore_access("12345")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    rs.authorize_snapshot_access()
        .snapshot_arn("arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/nightly")
        .account_with_restore_access("amazon-redshift-support")
        .send()
        .await
        .unwrap();
    for i in 0..18 {
        rs.authorize_snapshot_access()
            .snapshot_identifier("nightly")
            .account_with_restore_access(format!("{:012}", 100 + i))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        code(
            rs.authorize_snapshot_access()
                .snapshot_identifier("nightly")
                .account_with_restore_access("999999999999")
                .send()
                .await
        ),
        "AuthorizationQuotaExceeded"
    );
    let other = aws_sdk_redshift::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    let seen = other
        .describe_cluster_snapshots()
        .owner_account("123456789012")
        .send()
        .await
        .unwrap();
    assert_eq!(seen.snapshots().len(), 1);
    assert_eq!(seen.snapshots()[0].snapshot_identifier(), Some("nightly"));
    // The other account cannot delete what it was only given access to.
    assert_eq!(
        code(
            other
                .delete_cluster_snapshot()
                .snapshot_identifier("nightly")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );

    // A shared snapshot cannot be deleted; revoke first.
    let (c, msg) = error(
        rs.delete_cluster_snapshot()
            .snapshot_identifier("nightly")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidClusterSnapshotState");
    assert!(msg.contains("shared"), "{msg}");
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("nightly")
        .send()
        .await
        .unwrap();
    // AWS Support's share is listed by its alias, the others by account id.
    let all: Vec<String> = d.snapshots()[0]
        .accounts_with_restore_access()
        .iter()
        .filter_map(|a| a.account_id().or(a.account_alias()).map(str::to_string))
        .collect();
    assert_eq!(all.len(), 20);
    assert!(all.iter().any(|a| a == "amazon-redshift-support"));
    for a in &all {
        rs.revoke_snapshot_access()
            .snapshot_identifier("nightly")
            .account_with_restore_access(a)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        code(
            rs.revoke_snapshot_access()
                .snapshot_identifier("nightly")
                .account_with_restore_access(OTHER_ACCOUNT)
                .send()
                .await
        ),
        "AuthorizationNotFound"
    );
    let deleted = rs
        .delete_cluster_snapshot()
        .snapshot_identifier("nightly")
        .snapshot_cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.snapshot().unwrap().status(), Some("deleted"));
    assert_eq!(
        code(
            rs.delete_cluster_snapshot()
                .snapshot_identifier("nightly")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            rs.describe_cluster_snapshots()
                .snapshot_identifier("nightly")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
}

#[tokio::test]
async fn only_available_automated_snapshots_are_copied() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;
    rs.create_cluster_snapshot()
        .snapshot_identifier("manual-one")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    let (c, msg) = error(
        rs.copy_cluster_snapshot()
            .source_snapshot_identifier("manual-one")
            .target_snapshot_identifier("copy")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidClusterSnapshotState");
    assert!(msg.contains("automated"), "{msg}");

    // An automated snapshot taken on demand through the admin API, still creating.
    emu.set_snapshot_seconds(30.0).await;
    let r = emu
        .admin_post(
            "redshift/automated-snapshot",
            serde_json::json!({"clusterIdentifier": "analytics", "region": "us-east-1"}),
        )
        .await;
    assert!(r.status().is_success());
    let creating: serde_json::Value = r.json().await.unwrap();
    let creating = creating["snapshotIdentifier"].as_str().unwrap().to_string();
    assert_ne!(creating, "");
    assert_eq!(
        code(
            rs.copy_cluster_snapshot()
                .source_snapshot_identifier(&creating)
                .target_snapshot_identifier("copy")
                .send()
                .await
        ),
        "InvalidClusterSnapshotState"
    );
    let named = emu
        .admin_post(
            "redshift/automated-snapshot",
            serde_json::json!({"clusterIdentifier": "analytics", "snapshotIdentifier": "rs:analytics-2026-11-22-03-00"}),
        )
        .await;
    let named: serde_json::Value = named.json().await.unwrap();
    assert_eq!(named["snapshotIdentifier"], "rs:analytics-2026-11-22-03-00");
    let missing = emu
        .admin_post(
            "redshift/automated-snapshot",
            serde_json::json!({"clusterIdentifier": "ghost"}),
        )
        .await;
    assert_eq!(missing.status(), 404);

    let auto = rs
        .describe_cluster_snapshots()
        .cluster_identifier("analytics")
        .snapshot_type("automated")
        .sorting_entities(
            SnapshotSortingEntity::builder()
                .attribute(aws_sdk_redshift::types::SnapshotAttributeToSortBy::CreateTime)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let available: Vec<_> = auto
        .snapshots()
        .iter()
        .filter(|s| s.status() == Some("available"))
        .collect();
    assert_eq!(available.len(), 1, "{:?}", auto.snapshots());
    let source = available[0].snapshot_identifier().unwrap();
    emu.set_snapshot_seconds(0.0).await;
    let copy = rs
        .copy_cluster_snapshot()
        .source_snapshot_identifier(source)
        .source_snapshot_cluster_identifier("analytics")
        .target_snapshot_identifier("kept")
        .manual_snapshot_retention_period(14)
        .send()
        .await
        .unwrap();
    let s = copy.snapshot().unwrap();
    assert_eq!(s.snapshot_type(), Some("manual"));
    assert_eq!(s.manual_snapshot_retention_period(), Some(14));
    assert_eq!(
        code(
            rs.copy_cluster_snapshot()
                .source_snapshot_identifier(source)
                .target_snapshot_identifier("kept")
                .send()
                .await
        ),
        "ClusterSnapshotAlreadyExists"
    );
    assert_eq!(
        code(
            rs.copy_cluster_snapshot()
                .source_snapshot_identifier("rs:none")
                .target_snapshot_identifier("k2")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            rs.copy_cluster_snapshot()
                .source_snapshot_identifier(source)
                .target_snapshot_identifier("k3")
                .manual_snapshot_retention_period(0)
                .send()
                .await
        ),
        "InvalidRetentionPeriodFault"
    );
    // Automated snapshots cannot be deleted or modified by hand.
    assert_eq!(
        code(
            rs.delete_cluster_snapshot()
                .snapshot_identifier(source)
                .send()
                .await
        ),
        "InvalidClusterSnapshotState"
    );
    assert_eq!(
        code(
            rs.modify_cluster_snapshot()
                .snapshot_identifier(source)
                .manual_snapshot_retention_period(3)
                .send()
                .await
        ),
        "InvalidClusterSnapshotState"
    );
}

#[tokio::test]
async fn describe_filters_and_pages() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    cluster(&rs, "alpha").await;
    cluster(&rs, "beta").await;
    for i in 0..45 {
        let (cl, team) = if i % 3 == 0 {
            ("beta", "ops")
        } else {
            ("alpha", "data")
        };
        rs.create_cluster_snapshot()
            .snapshot_identifier(format!("snap-{i:02}"))
            .cluster_identifier(cl)
            .tags(tag("team", team))
            .tags(tag("index", &i.to_string()))
            .send()
            .await
            .unwrap();
    }
    // Paging by hand: 20 + 20 + 7 (45 manual + 2 automated), each once.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = rs
            .describe_cluster_snapshots()
            .max_records(20)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            out.snapshots()
                .iter()
                .map(|s| s.snapshot_identifier().unwrap().to_string()),
        );
        match out.marker() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 47);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 47);
    // The SDK's paginator agrees.
    let all: Vec<_> = rs
        .describe_cluster_snapshots()
        .max_records(20)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 47);

    let by_cluster = rs
        .describe_cluster_snapshots()
        .cluster_identifier("beta")
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cluster.snapshots().len(), 15);
    let by_tag = rs
        .describe_cluster_snapshots()
        .tag_keys("team")
        .tag_values("ops")
        .send()
        .await
        .unwrap();
    assert_eq!(by_tag.snapshots().len(), 15);
    let by_key = rs
        .describe_cluster_snapshots()
        .tag_keys("index")
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.snapshots().len(), 45);
    let by_owner = rs
        .describe_cluster_snapshots()
        .owner_account("999999999999")
        .send()
        .await
        .unwrap();
    assert!(by_owner.snapshots().is_empty());
    let by_arn = rs
        .describe_cluster_snapshots()
        .snapshot_arn("arn:aws:redshift:us-east-1:123456789012:snapshot:alpha/snap-01")
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.snapshots().len(), 1);
    assert_eq!(
        code(rs.describe_cluster_snapshots().max_records(5).send().await),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            rs.describe_cluster_snapshots()
                .snapshot_type("weird")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );

    // Clusters page the same way.
    for i in 0..25 {
        cluster(&rs, &format!("c{i:02}")).await;
    }
    let first = rs.describe_clusters().max_records(20).send().await.unwrap();
    assert_eq!(first.clusters().len(), 20);
    let second = rs
        .describe_clusters()
        .max_records(20)
        .marker(first.marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.clusters().len(), 7);
    assert!(second.marker().is_none());
}

#[tokio::test]
async fn tags_round_trip_and_regions_are_separate() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;
    rs.create_cluster_snapshot()
        .snapshot_identifier("tagged")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/tagged";
    // Every kind of character AWS's tag set allows: letters of any script, digits,
    // white space and _ . : / = + - @.
    let odd = "ünïcødé 漢字 ٣ _.:/=+-@";
    rs.create_tags()
        .resource_name(arn)
        .tags(tag("odd", odd))
        .tags(tag("long", &"v".repeat(256)))
        .tags(tag("dbsnapshot.io/owner-uid", "1234"))
        .send()
        .await
        .unwrap();
    rs.create_tags()
        .resource_name(arn)
        .tags(tag("odd", odd))
        .send()
        .await
        .unwrap();
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("tagged")
        .send()
        .await
        .unwrap();
    let tags = d.snapshots()[0].tags();
    assert_eq!(tags.len(), 3);
    assert_eq!(tags[0].value(), Some(odd));
    assert_eq!(tags[1].value().unwrap().len(), 256);
    assert_eq!(
        code(
            rs.create_tags()
                .resource_name(arn)
                .tags(tag("too-long", &"v".repeat(257)))
                .send()
                .await
        ),
        "InvalidTagFault"
    );
    let mut many = rs.create_tags().resource_name(arn);
    for i in 0..48 {
        many = many.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(code(many.send().await), "TagLimitExceededFault");
    rs.delete_tags()
        .resource_name(arn)
        .tag_keys("odd")
        .tag_keys("long")
        .send()
        .await
        .unwrap();
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("tagged")
        .send()
        .await
        .unwrap();
    assert_eq!(d.snapshots()[0].tags().len(), 1);
    assert_eq!(
        code(
            rs.create_tags()
                .resource_name("arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/ghost")
                .tags(tag("a", "b"))
                .send()
                .await
        ),
        "ResourceNotFoundFault"
    );
    assert_eq!(
        code(
            rs.delete_tags()
                .resource_name("arn:aws:redshift:us-east-1:123456789012:cluster:ghost")
                .tag_keys("a")
                .send()
                .await
        ),
        "ResourceNotFoundFault"
    );
    rs.create_tags()
        .resource_name("arn:aws:redshift:us-east-1:123456789012:cluster:analytics")
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    let by_tag = rs.describe_clusters().tag_keys("env").send().await.unwrap();
    assert_eq!(by_tag.clusters().len(), 1);

    // Another region is another world.
    let eu = aws_sdk_redshift::Client::new(&emu.config("eu-west-1", KEY).await);
    assert_eq!(
        code(
            eu.describe_cluster_snapshots()
                .snapshot_identifier("tagged")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            eu.create_cluster_snapshot()
                .snapshot_identifier("x")
                .cluster_identifier("analytics")
                .send()
                .await
        ),
        "ClusterNotFound"
    );
}

/// Redshift keeps cluster identifiers lowercased ("Alphabetic characters must be
/// lowercase"; a mixed-case one comes back lowercased) and looks them up as given
/// ("This parameter is case sensitive"). The model says nothing of case for snapshot
/// identifiers, so they are kept and looked up exactly.
#[tokio::test]
async fn cluster_identifiers_are_lowercased_and_snapshot_identifiers_kept() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    let created = rs
        .create_cluster()
        .cluster_identifier("Analytics")
        .node_type("ra3.xlplus")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.cluster().unwrap().cluster_identifier(),
        Some("analytics")
    );
    let found = rs
        .describe_clusters()
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    assert_eq!(found.clusters().len(), 1);
    assert_eq!(
        code(
            rs.describe_clusters()
                .cluster_identifier("Analytics")
                .send()
                .await
        ),
        "ClusterNotFound"
    );
    let s = rs
        .create_cluster_snapshot()
        .snapshot_identifier("Nightly")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    assert_eq!(s.snapshot().unwrap().snapshot_identifier(), Some("Nightly"));
    assert_eq!(
        code(
            rs.describe_cluster_snapshots()
                .snapshot_identifier("nightly")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
}

/// AWS's common tag set (letters, digits, white space and `_ . : / = + - @`) and the
/// reserved `aws:` prefix, on every action that takes tags: InvalidTagFault, and
/// nothing is created or tagged.
#[tokio::test]
async fn tags_outside_the_common_character_set_are_refused() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;
    rs.create_cluster_snapshot()
        .snapshot_identifier("tagged")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/tagged";
    let bad = [
        ("k", "a<b"),
        ("k", "&"),
        ("k", "smile 🙂"),
        ("k", "tab\there"),
        ("k", "quote\"d"),
        ("a<", "v"),
        ("aws:owner", "v"),
        ("AWS:owner", "v"),
    ];
    for (k, v) in bad {
        let (c, message) = error(
            rs.create_tags()
                .resource_name(arn)
                .tags(tag(k, v))
                .send()
                .await,
        );
        assert_eq!(c, "InvalidTagFault", "{k}={v}: {message}");
        assert_eq!(
            code(
                rs.create_cluster_snapshot()
                    .snapshot_identifier("other")
                    .cluster_identifier("analytics")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidTagFault",
            "{k}={v}"
        );
        assert_eq!(
            code(
                rs.create_cluster()
                    .cluster_identifier("second")
                    .node_type("ra3.xlplus")
                    .master_username("admin")
                    .master_user_password("Secret123")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidTagFault",
            "{k}={v}"
        );
    }
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("tagged")
        .send()
        .await
        .unwrap();
    assert!(d.snapshots()[0].tags().is_empty());
    assert_eq!(
        code(
            rs.describe_cluster_snapshots()
                .snapshot_identifier("other")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    // A key may hold `aws:` later on, and values may start with it.
    rs.create_tags()
        .resource_name(arn)
        .tags(tag("team:aws:x", "aws:y"))
        .send()
        .await
        .unwrap();
}

/// AWS Support's share is listed under AccountAlias, other accounts under AccountId;
/// it is granted and revoked by the alias as any account is.
#[tokio::test]
async fn the_support_share_is_listed_as_an_account_alias() {
    let emu = emulator(0.0).await;
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;
    rs.create_cluster_snapshot()
        .snapshot_identifier("s")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    for account in ["amazon-redshift-support", OTHER_ACCOUNT] {
        rs.authorize_snapshot_access()
            .snapshot_identifier("s")
            .account_with_restore_access(account)
            .send()
            .await
            .unwrap();
    }
    let d = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("s")
        .send()
        .await
        .unwrap();
    let shares = d.snapshots()[0].accounts_with_restore_access();
    assert_eq!(shares.len(), 2);
    assert_eq!(shares[0].account_alias(), Some("amazon-redshift-support"));
    assert_eq!(shares[0].account_id(), None);
    assert_eq!(shares[1].account_id(), Some(OTHER_ACCOUNT));
    assert_eq!(shares[1].account_alias(), None);
    let revoked = rs
        .revoke_snapshot_access()
        .snapshot_identifier("s")
        .account_with_restore_access("amazon-redshift-support")
        .send()
        .await
        .unwrap();
    let left = revoked.snapshot().unwrap().accounts_with_restore_access();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].account_id(), Some(OTHER_ACCOUNT));
}

/// Account B shares its snapshot with account A: A sees it with OwnerAccount B and
/// without B's list of accounts ("Visible only to the snapshot owner"), not through
/// tag filters ("shared snapshots are not returned with the tag key and tag value
/// request parameters"), and cannot delete, modify, share or tag it.
#[tokio::test]
async fn snapshots_shared_from_another_account() {
    let emu = emulator(0.0).await;
    let a = emu.redshift().await;
    let b = aws_sdk_redshift::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    cluster(&b, "warehouse").await;
    b.create_cluster_snapshot()
        .snapshot_identifier("b-snap")
        .cluster_identifier("warehouse")
        .tags(tag("team", "b"))
        .send()
        .await
        .unwrap();
    b.authorize_snapshot_access()
        .snapshot_identifier("b-snap")
        .account_with_restore_access("123456789012")
        .send()
        .await
        .unwrap();

    for seen in [
        a.describe_cluster_snapshots().send().await.unwrap(),
        a.describe_cluster_snapshots()
            .owner_account(OTHER_ACCOUNT)
            .send()
            .await
            .unwrap(),
        a.describe_cluster_snapshots()
            .snapshot_arn("arn:aws:redshift:us-east-1:210987654321:snapshot:warehouse/b-snap")
            .send()
            .await
            .unwrap(),
    ] {
        let s: Vec<_> = seen
            .snapshots()
            .iter()
            .filter(|s| s.snapshot_type() == Some("manual"))
            .collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].snapshot_identifier(), Some("b-snap"));
        assert_eq!(s[0].owner_account(), Some(OTHER_ACCOUNT));
        assert!(s[0].accounts_with_restore_access().is_empty());
        assert_eq!(
            s[0].snapshot_arn(),
            Some("arn:aws:redshift:us-east-1:210987654321:snapshot:warehouse/b-snap")
        );
    }
    assert!(
        a.describe_cluster_snapshots()
            .tag_keys("team")
            .send()
            .await
            .unwrap()
            .snapshots()
            .is_empty()
    );
    // Every snapshot carries its owner, A's own too.
    cluster(&a, "analytics").await;
    let own = a
        .describe_cluster_snapshots()
        .owner_account("123456789012")
        .send()
        .await
        .unwrap();
    assert!(!own.snapshots().is_empty());
    assert!(
        own.snapshots()
            .iter()
            .all(|s| s.owner_account() == Some("123456789012"))
    );

    assert_eq!(
        code(
            a.delete_cluster_snapshot()
                .snapshot_identifier("b-snap")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            a.delete_cluster_snapshot()
                .snapshot_identifier("b-snap")
                .snapshot_cluster_identifier("warehouse")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            a.modify_cluster_snapshot()
                .snapshot_identifier("b-snap")
                .manual_snapshot_retention_period(1)
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            a.authorize_snapshot_access()
                .snapshot_arn("arn:aws:redshift:us-east-1:210987654321:snapshot:warehouse/b-snap")
                .account_with_restore_access("111111111111")
                .send()
                .await
        ),
        "ClusterSnapshotNotFound"
    );
    assert_eq!(
        code(
            a.create_tags()
                .resource_name("arn:aws:redshift:us-east-1:210987654321:snapshot:warehouse/b-snap")
                .tags(tag("mine", "yes"))
                .send()
                .await
        ),
        "ResourceNotFoundFault"
    );
    // B's snapshot is as it was, with its share listed to B.
    let theirs = b
        .describe_cluster_snapshots()
        .snapshot_identifier("b-snap")
        .send()
        .await
        .unwrap();
    let s = &theirs.snapshots()[0];
    assert_eq!(s.manual_snapshot_retention_period(), Some(-1));
    assert_eq!(s.tags().len(), 1);
    assert_eq!(
        s.accounts_with_restore_access()[0].account_id(),
        Some("123456789012")
    );
}

/// Manual snapshots expire when their retention period has passed (in days of the
/// `secondsPerDay` setting), the remaining days count down by it, and shortening the
/// period below a snapshot's age needs Force, which deletes the snapshot at once.
#[tokio::test]
async fn retention_expires_snapshots_and_shortening_past_it_needs_force() {
    let emu = emulator(0.0).await;
    let settings = emu
        .admin_post("settings", serde_json::json!({"secondsPerDay": 1.0}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(settings["secondsPerDay"], 1.0);
    let rs = emu.redshift().await;
    cluster(&rs, "analytics").await;
    for (id, days) in [("short", 2), ("old", -1), ("kept", -1)] {
        rs.create_cluster_snapshot()
            .cluster_identifier("analytics")
            .snapshot_identifier(id)
            .manual_snapshot_retention_period(days)
            .send()
            .await
            .expect("CreateClusterSnapshot");
    }
    let described = |id: &'static str| {
        let rs = rs.clone();
        async move {
            rs.describe_cluster_snapshots()
                .snapshot_identifier(id)
                .send()
                .await
        }
    };
    let short = described("short").await.unwrap();
    assert_eq!(
        short.snapshots()[0].manual_snapshot_remaining_days(),
        Some(2)
    );
    sleep_secs(1.2).await;
    let short = described("short").await.unwrap();
    assert_eq!(
        short.snapshots()[0].manual_snapshot_remaining_days(),
        Some(1)
    );
    // "old" is a day old now: a retention of 1 day is already in the past.
    let refused = rs
        .modify_cluster_snapshot()
        .snapshot_identifier("old")
        .manual_snapshot_retention_period(1)
        .send()
        .await;
    assert_eq!(code(refused), "InvalidRetentionPeriodFault");
    assert!(
        described("old").await.is_ok(),
        "a refused call changes nothing"
    );
    // A longer period needs no Force.
    let kept = rs
        .modify_cluster_snapshot()
        .snapshot_identifier("kept")
        .manual_snapshot_retention_period(30)
        .send()
        .await
        .expect("ModifyClusterSnapshot");
    assert_eq!(
        kept.snapshot().unwrap().manual_snapshot_retention_period(),
        Some(30)
    );
    assert_eq!(
        kept.snapshot().unwrap().manual_snapshot_remaining_days(),
        Some(29)
    );
    // Force deletes the snapshot that falls outside the new period.
    let forced = rs
        .modify_cluster_snapshot()
        .snapshot_identifier("old")
        .manual_snapshot_retention_period(1)
        .force(true)
        .send()
        .await
        .expect("ModifyClusterSnapshot with Force");
    assert_eq!(forced.snapshot().unwrap().status(), Some("deleted"));
    assert_eq!(code(described("old").await), "ClusterSnapshotNotFound");
    // "short" (2 days) expires on its own.
    sleep_secs(1.0).await;
    assert_eq!(code(described("short").await), "ClusterSnapshotNotFound");
    assert!(described("kept").await.is_ok());
}
