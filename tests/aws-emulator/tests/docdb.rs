//! Every emulated DocumentDB action through the official Rust SDK, with each fault
//! code, including cross-region copies with a SigV4 presigned URL.

mod common;

use std::time::SystemTime;

use aws_emulator::presign::{CopyRequest, presign_copy};
use aws_sdk_docdb::types::{Filter, Tag};
use common::*;

async fn cluster(db: &aws_sdk_docdb::Client, id: &str) {
    db.create_db_cluster()
        .db_cluster_identifier(id)
        .engine("docdb")
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .send()
        .await
        .expect("CreateDBCluster");
}

async fn snapshot(db: &aws_sdk_docdb::Client, cluster: &str, id: &str) {
    db.create_db_cluster_snapshot()
        .db_cluster_identifier(cluster)
        .db_cluster_snapshot_identifier(id)
        .send()
        .await
        .expect("CreateDBClusterSnapshot");
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

#[tokio::test]
async fn clusters_and_snapshots_with_progress() {
    let emu = emulator(1.5).await;
    let db = emu.docdb("us-east-1").await;
    cluster(&db, "orders").await;
    let dup = db
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("docdb")
        .send()
        .await;
    assert!(
        dup.unwrap_err()
            .into_service_error()
            .is_db_cluster_already_exists_fault()
    );
    assert_eq!(
        code(
            db.create_db_cluster()
                .db_cluster_identifier("pg")
                .engine("aurora-postgresql")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let d = db
        .describe_db_clusters()
        .db_cluster_identifier("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(d.db_clusters()[0].engine(), Some("docdb"));
    assert_eq!(
        d.db_clusters()[0].db_cluster_arn(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster:orders")
    );
    assert_eq!(
        code(
            db.describe_db_clusters()
                .db_cluster_identifier("ghost")
                .send()
                .await
        ),
        "DBClusterNotFoundFault"
    );

    let c = db
        .create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier("orders-nightly")
        .tags(tag("team", "orders"))
        .send()
        .await
        .unwrap();
    let s = c.db_cluster_snapshot().unwrap();
    assert_eq!(s.status(), Some("creating"));
    assert_eq!(s.snapshot_type(), Some("manual"));
    assert!(s.percent_progress().unwrap() < 100);
    assert_eq!(
        s.db_cluster_snapshot_arn(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:orders-nightly")
    );
    assert!(
        db.create_db_cluster_snapshot()
            .db_cluster_identifier("orders")
            .db_cluster_snapshot_identifier("orders-nightly")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_db_cluster_snapshot_already_exists_fault()
    );
    assert_eq!(
        code(
            db.create_db_cluster_snapshot()
                .db_cluster_identifier("ghost")
                .db_cluster_snapshot_identifier("x")
                .send()
                .await
        ),
        "DBClusterNotFoundFault"
    );
    assert_eq!(
        code(
            db.create_db_cluster_snapshot()
                .db_cluster_identifier("orders")
                .db_cluster_snapshot_identifier("a".repeat(64))
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    snapshot(&db, "orders", &"a".repeat(63)).await;
    assert_eq!(
        code(
            db.delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier("orders-nightly")
                .send()
                .await
        ),
        "InvalidDBClusterSnapshotStateFault"
    );
    assert_eq!(
        code(
            db.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier("orders-nightly")
                .attribute_name("restore")
                .values_to_add(OTHER_ACCOUNT)
                .send()
                .await
        ),
        "InvalidDBClusterSnapshotStateFault"
    );
    sleep_secs(0.8).await;
    let mid = db
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("orders-nightly")
        .send()
        .await
        .unwrap();
    let p = mid.db_cluster_snapshots()[0].percent_progress().unwrap();
    assert!(p > s.percent_progress().unwrap() && p < 100, "{p}");
    sleep_secs(1.0).await;
    let done = db
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("orders-nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(done.db_cluster_snapshots()[0].status(), Some("available"));
    assert_eq!(done.db_cluster_snapshots()[0].percent_progress(), Some(100));

    let deleted = db
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier("orders-nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted
            .db_cluster_snapshot()
            .unwrap()
            .db_cluster_snapshot_identifier(),
        Some("orders-nightly")
    );
    assert!(
        db.delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier("orders-nightly")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_db_cluster_snapshot_not_found_fault()
    );
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("orders-nightly")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
}

#[tokio::test]
async fn sharing_through_the_restore_attribute() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    cluster(&db, "orders").await;
    snapshot(&db, "orders", "shared-one").await;
    let out = db
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("shared-one")
        .attribute_name("restore")
        .values_to_add(OTHER_ACCOUNT)
        .values_to_add("111111111111")
        .send()
        .await
        .unwrap();
    let attrs = out.db_cluster_snapshot_attributes_result().unwrap();
    assert_eq!(attrs.db_cluster_snapshot_identifier(), Some("shared-one"));
    let a = &attrs.db_cluster_snapshot_attributes()[0];
    assert_eq!(a.attribute_name(), Some("restore"));
    assert_eq!(a.attribute_values(), [OTHER_ACCOUNT, "111111111111"]);

    // The other account sees it as shared, by ARN with IncludeShared.
    let other = aws_sdk_docdb::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    let arn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:shared-one";
    let seen = other
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(arn)
        .include_shared(true)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.db_cluster_snapshots().len(), 1);
    let listed = other
        .describe_db_cluster_snapshots()
        .snapshot_type("shared")
        .include_shared(true)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.db_cluster_snapshots().len(), 1);
    assert!(
        other
            .describe_db_cluster_snapshots()
            .send()
            .await
            .unwrap()
            .db_cluster_snapshots()
            .is_empty()
    );

    let r = db
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("shared-one")
        .attribute_name("restore")
        .values_to_remove("111111111111")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0]
            .attribute_values(),
        [OTHER_ACCOUNT]
    );
    let described = db
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier("shared-one")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0]
            .attribute_values(),
        [OTHER_ACCOUNT]
    );

    assert_eq!(
        code(
            db.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier("shared-one")
                .attribute_name("copy")
                .values_to_add(OTHER_ACCOUNT)
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            db.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier("shared-one")
                .attribute_name("restore")
                .values_to_add("12")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let mut many = db
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("shared-one")
        .attribute_name("restore");
    for i in 0..20 {
        many = many.values_to_add(format!("{:012}", 500 + i));
    }
    assert_eq!(code(many.send().await), "SharedSnapshotQuotaExceeded");
    assert_eq!(
        code(
            db.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier("ghost")
                .attribute_name("restore")
                .values_to_add(OTHER_ACCOUNT)
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    assert_eq!(
        code(
            db.describe_db_cluster_snapshot_attributes()
                .db_cluster_snapshot_identifier("ghost")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
}

#[tokio::test]
async fn same_region_copies_progress_and_cancel() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    cluster(&db, "orders").await;
    db.create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier("src")
        .tags(tag("team", "orders"))
        .send()
        .await
        .unwrap();
    emu.set_snapshot_seconds(30.0).await;
    let copy = db
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier("src")
        .target_db_cluster_snapshot_identifier("dst")
        .copy_tags(true)
        .tags(tag("copy", "yes"))
        .send()
        .await
        .unwrap();
    let s = copy.db_cluster_snapshot().unwrap();
    assert_eq!(s.status(), Some("copying"));
    assert_eq!(s.percent_progress(), Some(0));
    assert_eq!(s.storage_encrypted(), Some(false));
    assert_eq!(s.kms_key_id(), None);
    assert_eq!(
        s.source_db_cluster_snapshot_arn(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:src")
    );
    let tags = db
        .list_tags_for_resource()
        .resource_name(s.db_cluster_snapshot_arn().unwrap())
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = tags.tag_list().iter().filter_map(|t| t.key()).collect();
    assert_eq!(keys, ["team", "copy"]);
    // Copying from a snapshot that is still copying is refused.
    assert_eq!(
        code(
            db.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier("dst")
                .target_db_cluster_snapshot_identifier("dst2")
                .send()
                .await
        ),
        "InvalidDBClusterSnapshotStateFault"
    );
    // Deleting the target while it copies cancels the copy.
    db.delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier("dst")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("dst")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    emu.set_snapshot_seconds(0.0).await;
    db.copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier("src")
        .target_db_cluster_snapshot_identifier("dst")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            db.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier("src")
                .target_db_cluster_snapshot_identifier("dst")
                .send()
                .await
        ),
        "DBClusterSnapshotAlreadyExistsFault"
    );
    assert_eq!(
        code(
            db.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier("ghost")
                .target_db_cluster_snapshot_identifier("d3")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    assert_eq!(
        code(
            db.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier("src")
                .target_db_cluster_snapshot_identifier("bad--id")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
}

#[tokio::test]
async fn cross_region_copies_need_a_valid_presigned_url() {
    let emu = emulator(0.0).await;
    let west = emu.docdb("us-west-2").await;
    let east = emu.docdb("us-east-1").await;
    cluster(&west, "orders").await;
    snapshot(&west, "orders", "west-snap").await;
    let arn = "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:west-snap";
    let url = |source_region: &str, secret: &str, target: &str| {
        presign_copy(
            &CopyRequest {
                endpoint: &emu.url,
                source_arn: arn,
                target_identifier: target,
                source_region,
                destination_region: "us-east-1",
            },
            KEY,
            secret,
            SystemTime::now(),
        )
        .unwrap()
    };

    let (c, msg) = error(
        east.copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(arn)
            .target_db_cluster_snapshot_identifier("east-copy")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidParameterValue");
    assert!(msg.contains("PreSignedUrl"), "{msg}");
    for (bad, why) in [
        (url("eu-west-1", SECRET, "east-copy"), "region"),
        (url("us-west-2", "wrong-secret", "east-copy"), "signature"),
        (url("us-west-2", SECRET, "other-target"), "Target"),
    ] {
        let (c, msg) = error(
            east.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier(arn)
                .target_db_cluster_snapshot_identifier("east-copy")
                .pre_signed_url(bad)
                .send()
                .await,
        );
        assert_eq!(c, "InvalidParameterValue");
        assert!(msg.contains(why), "{why}: {msg}");
    }
    let out = east
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier(arn)
        .target_db_cluster_snapshot_identifier("east-copy")
        .pre_signed_url(url("us-west-2", SECRET, "east-copy"))
        .send()
        .await
        .unwrap();
    let s = out.db_cluster_snapshot().unwrap();
    assert_eq!(s.source_db_cluster_snapshot_arn(), Some(arn));
    assert_eq!(
        s.db_cluster_snapshot_arn(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:east-copy")
    );
    // The copy lives in the destination region only.
    assert_eq!(
        code(
            west.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("east-copy")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    // A source that does not exist in the source region.
    let ghost = "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:ghost";
    let ghost_url = presign_copy(
        &CopyRequest {
            endpoint: &emu.url,
            source_arn: ghost,
            target_identifier: "g",
            source_region: "us-west-2",
            destination_region: "us-east-1",
        },
        KEY,
        SECRET,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        code(
            east.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier(ghost)
                .target_db_cluster_snapshot_identifier("g")
                .pre_signed_url(ghost_url)
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
}

#[tokio::test]
async fn filters_paging_and_tags() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    cluster(&db, "a").await;
    cluster(&db, "b").await;
    for i in 0..30 {
        snapshot(&db, if i < 10 { "a" } else { "b" }, &format!("s-{i:02}")).await;
    }
    let page1 = db
        .describe_db_cluster_snapshots()
        .max_records(20)
        .send()
        .await
        .unwrap();
    assert_eq!(page1.db_cluster_snapshots().len(), 20);
    let page2 = db
        .describe_db_cluster_snapshots()
        .max_records(20)
        .marker(page1.marker().unwrap())
        .send()
        .await
        .unwrap();
    // 30 manual snapshots and each cluster's first automated one.
    assert_eq!(page2.db_cluster_snapshots().len(), 12);
    assert!(page2.marker().is_none());
    let all: Vec<_> = db
        .describe_db_cluster_snapshots()
        .max_records(20)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 32);
    let filtered = db
        .describe_db_cluster_snapshots()
        .filters(Filter::builder().name("db-cluster-id").values("a").build())
        .filters(
            Filter::builder()
                .name("snapshot-type")
                .values("manual")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.db_cluster_snapshots().len(), 10);
    let by_param = db
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("b")
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert_eq!(by_param.db_cluster_snapshots().len(), 20);
    let automated = db
        .describe_db_cluster_snapshots()
        .snapshot_type("automated")
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = automated
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| s.db_cluster_snapshot_identifier())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| id.starts_with("rds:")), "{ids:?}");
    // Automated snapshots cannot be deleted or shared.
    assert_eq!(
        code(
            db.delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(ids[0])
                .send()
                .await
        ),
        "InvalidDBClusterSnapshotStateFault"
    );
    assert_eq!(
        code(
            db.modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier(ids[0])
                .attribute_name("restore")
                .values_to_add(OTHER_ACCOUNT)
                .send()
                .await
        ),
        "InvalidDBClusterSnapshotStateFault"
    );
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .filters(Filter::builder().name("colour").values("x").build())
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .max_records(101)
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let clusters = db.describe_db_clusters().send().await.unwrap();
    assert_eq!(clusters.db_clusters().len(), 2);

    let arn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:s-01";
    db.add_tags_to_resource()
        .resource_name(arn)
        .tags(tag("a", "1"))
        .tags(tag("xml", "ünï 漢字 _.:/=+-"))
        .send()
        .await
        .unwrap();
    db.remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    let listed = db
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.tag_list().len(), 1);
    assert_eq!(listed.tag_list()[0].value(), Some("ünï 漢字 _.:/=+-"));
    db.add_tags_to_resource()
        .resource_name("arn:aws:rds:us-east-1:123456789012:cluster:a")
        .tags(tag("c", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            db.list_tags_for_resource()
                .resource_name("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:ghost")
                .send()
                .await
        ),
        "DBSnapshotNotFound"
    );
    assert_eq!(
        code(
            db.add_tags_to_resource()
                .resource_name("arn:aws:rds:us-east-1:123456789012:cluster:ghost")
                .tags(tag("a", "b"))
                .send()
                .await
        ),
        "DBClusterNotFoundFault"
    );
    assert_eq!(
        code(
            db.list_tags_for_resource()
                .resource_name("not-an-arn")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let mut many = db.add_tags_to_resource().resource_name(arn);
    for i in 0..50 {
        many = many.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(code(many.send().await), "TagQuotaPerResourceExceeded");
}

/// DocumentDB stores cluster and snapshot identifiers as lowercase strings ("This
/// parameter is stored as a lowercase string") and finds them in any case ("This
/// parameter is not case sensitive"); responses carry the stored form.
#[tokio::test]
async fn identifiers_are_stored_lowercased_and_found_in_any_case() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    let c = db
        .create_db_cluster()
        .db_cluster_identifier("Orders")
        .engine("docdb")
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.db_cluster().unwrap().db_cluster_identifier(),
        Some("orders")
    );
    assert_eq!(
        code(
            db.create_db_cluster()
                .db_cluster_identifier("ORDERS")
                .engine("docdb")
                .send()
                .await
        ),
        "DBClusterAlreadyExistsFault"
    );
    let found = db
        .describe_db_clusters()
        .db_cluster_identifier("oRdErS")
        .send()
        .await
        .unwrap();
    assert_eq!(
        found.db_clusters()[0].db_cluster_identifier(),
        Some("orders")
    );

    let s = db
        .create_db_cluster_snapshot()
        .db_cluster_identifier("ORDERS")
        .db_cluster_snapshot_identifier("Nightly-Snap")
        .send()
        .await
        .unwrap();
    let s = s.db_cluster_snapshot().unwrap();
    assert_eq!(s.db_cluster_snapshot_identifier(), Some("nightly-snap"));
    assert_eq!(s.db_cluster_identifier(), Some("orders"));
    assert_eq!(
        s.db_cluster_snapshot_arn(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:nightly-snap")
    );
    assert_eq!(
        code(
            db.create_db_cluster_snapshot()
                .db_cluster_identifier("orders")
                .db_cluster_snapshot_identifier("NIGHTLY-SNAP")
                .send()
                .await
        ),
        "DBClusterSnapshotAlreadyExistsFault"
    );
    let d = db
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("NIGHTLY-snap")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.db_cluster_snapshots()[0].db_cluster_snapshot_identifier(),
        Some("nightly-snap")
    );
    let by_cluster = db
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("Orders")
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cluster.db_cluster_snapshots().len(), 1);
    // Filter values are case sensitive: the stored form matches, another does not.
    let filtered = |v: &str| {
        db.describe_db_cluster_snapshots()
            .filters(Filter::builder().name("db-cluster-id").values(v).build())
            .snapshot_type("manual")
            .send()
    };
    assert_eq!(
        filtered("orders")
            .await
            .unwrap()
            .db_cluster_snapshots()
            .len(),
        1
    );
    assert!(
        filtered("Orders")
            .await
            .unwrap()
            .db_cluster_snapshots()
            .is_empty()
    );

    let copy = db
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier("Nightly-SNAP")
        .target_db_cluster_snapshot_identifier("Kept-Copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copy.db_cluster_snapshot()
            .unwrap()
            .db_cluster_snapshot_identifier(),
        Some("kept-copy")
    );
    db.modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("KEPT-COPY")
        .attribute_name("restore")
        .values_to_add(OTHER_ACCOUNT)
        .send()
        .await
        .unwrap();
    let attrs = db
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier("Kept-Copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_identifier(),
        Some("kept-copy")
    );
    db.add_tags_to_resource()
        .resource_name("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:Kept-Copy")
        .tags(tag("a", "1"))
        .send()
        .await
        .unwrap();
    let deleted = db
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier("Kept-Copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted
            .db_cluster_snapshot()
            .unwrap()
            .db_cluster_snapshot_identifier(),
        Some("kept-copy")
    );
}

/// DocumentDB's Tag: Unicode letters, digits, white space and `_ . : / = + -` (no
/// `@`), neither key nor value starting with `aws:` or `rds:`; refused with
/// InvalidParameterValue on every action that takes tags, without effect.
#[tokio::test]
async fn tags_outside_documentdbs_character_set_are_refused() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    cluster(&db, "orders").await;
    snapshot(&db, "orders", "s").await;
    let arn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:s";
    for (k, v) in [
        ("k", "<x>"),
        ("k", "a&b"),
        ("k", "🙂"),
        ("k", "user@example"),
        ("k", "line\nbreak"),
        ("aws:k", "v"),
        ("rds:k", "v"),
        ("RDS:k", "v"),
        ("k", "rds:v"),
        ("k", "aws:v"),
    ] {
        assert_eq!(
            code(
                db.add_tags_to_resource()
                    .resource_name(arn)
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidParameterValue",
            "{k}={v}"
        );
        assert_eq!(
            code(
                db.create_db_cluster_snapshot()
                    .db_cluster_identifier("orders")
                    .db_cluster_snapshot_identifier("t")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidParameterValue",
            "{k}={v}"
        );
        assert_eq!(
            code(
                db.copy_db_cluster_snapshot()
                    .source_db_cluster_snapshot_identifier("s")
                    .target_db_cluster_snapshot_identifier("t")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidParameterValue",
            "{k}={v}"
        );
    }
    let listed = db
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap();
    assert!(listed.tag_list().is_empty());
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("t")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    assert_eq!(
        code(
            db.add_tags_to_resource()
                .resource_name(arn)
                .tags(tag("long", &"v".repeat(257)))
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
}

/// A snapshot shared from another account: listed with SnapshotType shared, or with
/// no SnapshotType and IncludeShared ("The IncludeShared and IncludePublic parameters
/// don't apply for SnapshotType values of manual or automated"), with its owner's
/// ARN; the account it is shared with cannot delete, share or tag it.
#[tokio::test]
async fn snapshots_shared_from_another_account() {
    let emu = emulator(0.0).await;
    let owner = aws_sdk_docdb::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    let me = emu.docdb("us-east-1").await;
    cluster(&owner, "theirs").await;
    snapshot(&owner, "theirs", "their-snap").await;
    owner
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("their-snap")
        .attribute_name("restore")
        .values_to_add("123456789012")
        .send()
        .await
        .unwrap();
    cluster(&me, "mine").await;
    snapshot(&me, "mine", "my-snap").await;
    let arn = "arn:aws:rds:us-east-1:210987654321:cluster-snapshot:their-snap";

    let ids = |out: aws_sdk_docdb::operation::describe_db_cluster_snapshots::DescribeDbClusterSnapshotsOutput| {
        let mut v: Vec<(String, String)> = out
            .db_cluster_snapshots()
            .iter()
            .map(|s| {
                (
                    s.db_cluster_snapshot_identifier().unwrap().to_string(),
                    s.db_cluster_snapshot_arn().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let shared = ids(me
        .describe_db_cluster_snapshots()
        .snapshot_type("shared")
        .send()
        .await
        .unwrap());
    assert_eq!(shared, [("their-snap".to_string(), arn.to_string())]);
    let with_shared = ids(me
        .describe_db_cluster_snapshots()
        .include_shared(true)
        .send()
        .await
        .unwrap());
    assert_eq!(with_shared.len(), 3, "{with_shared:?}");
    assert!(with_shared.iter().any(|(_, a)| a == arn));
    for out in [
        me.describe_db_cluster_snapshots().send().await.unwrap(),
        me.describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .include_shared(true)
            .send()
            .await
            .unwrap(),
    ] {
        assert!(ids(out).iter().all(|(_, a)| a != arn));
    }
    // Named by its ARN, it is found with IncludeShared (or SnapshotType shared), not
    // without; by its bare identifier, it is not the caller's.
    assert_eq!(
        ids(me
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(arn)
            .include_shared(true)
            .send()
            .await
            .unwrap())
        .len(),
        1
    );
    assert_eq!(
        ids(me
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(arn)
            .snapshot_type("shared")
            .send()
            .await
            .unwrap())
        .len(),
        1
    );
    assert_eq!(
        code(
            me.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(arn)
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    assert_eq!(
        code(
            me.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("their-snap")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );

    for id in ["their-snap", arn] {
        assert_eq!(
            code(
                me.delete_db_cluster_snapshot()
                    .db_cluster_snapshot_identifier(id)
                    .send()
                    .await
            ),
            "DBClusterSnapshotNotFoundFault"
        );
        assert_eq!(
            code(
                me.modify_db_cluster_snapshot_attribute()
                    .db_cluster_snapshot_identifier(id)
                    .attribute_name("restore")
                    .values_to_add("111111111111")
                    .send()
                    .await
            ),
            "DBClusterSnapshotNotFoundFault"
        );
    }
    assert_eq!(
        code(
            me.add_tags_to_resource()
                .resource_name(arn)
                .tags(tag("mine", "yes"))
                .send()
                .await
        ),
        "DBSnapshotNotFound"
    );
    // It can be copied into the caller's account.
    let copy = me
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier(arn)
        .target_db_cluster_snapshot_identifier("my-copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copy.db_cluster_snapshot()
            .unwrap()
            .db_cluster_snapshot_arn(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:my-copy")
    );
    let theirs = owner
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier("their-snap")
        .send()
        .await
        .unwrap();
    assert_eq!(
        theirs
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0]
            .attribute_values(),
        ["123456789012"]
    );
}

/// DescribeDBClusterSnapshotsMessage DBClusterSnapshotIdentifier: "If this identifier
/// is for an automated snapshot, the SnapshotType parameter must also be specified";
/// a listing without SnapshotType shows automated and manual snapshots alike.
#[tokio::test]
async fn automated_snapshots_are_found_by_identifier_only_with_their_type() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    cluster(&db, "orders").await;
    snapshot(&db, "orders", "manual-one").await;
    let listed = db.describe_db_cluster_snapshots().send().await.unwrap();
    let auto = listed
        .db_cluster_snapshots()
        .iter()
        .find(|s| s.snapshot_type() == Some("automated"))
        .and_then(|s| s.db_cluster_snapshot_identifier())
        .expect("the cluster's automated snapshot is listed")
        .to_string();
    assert!(auto.starts_with("rds:orders-"), "{auto}");
    let arn = format!("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:{auto}");
    for id in [auto.as_str(), arn.as_str()] {
        for kind in [None, Some("manual"), Some("shared")] {
            assert_eq!(
                code(
                    db.describe_db_cluster_snapshots()
                        .db_cluster_snapshot_identifier(id)
                        .set_snapshot_type(kind.map(str::to_string))
                        .send()
                        .await
                ),
                "DBClusterSnapshotNotFoundFault",
                "{id} {kind:?}"
            );
        }
        let found = db
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .snapshot_type("automated")
            .send()
            .await
            .unwrap();
        assert_eq!(found.db_cluster_snapshots().len(), 1, "{id}");
    }
    // A manual snapshot is found without SnapshotType, and not as automated.
    db.describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("manual-one")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            db.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier("manual-one")
                .snapshot_type("automated")
                .send()
                .await
        ),
        "DBClusterSnapshotNotFoundFault"
    );
    // CopyDBClusterSnapshot takes the automated snapshot by identifier.
    let copy = db
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier(&auto)
        .target_db_cluster_snapshot_identifier("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copy.db_cluster_snapshot().unwrap().snapshot_type(),
        Some("manual")
    );
}

/// CopyDBClusterSnapshot: a shared snapshot is copied only in its own region; an
/// encrypted one shared from another account needs KmsKeyId (KMSKeyNotAccessibleFault);
/// KmsKeyId on an unencrypted source is an error, never a quiet encryption.
#[tokio::test]
async fn copy_rules_for_shared_and_encrypted_sources() {
    let emu = emulator(0.0).await;
    let owner = aws_sdk_docdb::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    let owner_west = aws_sdk_docdb::Client::new(&emu.config("us-west-2", OTHER_KEY).await);
    let me = emu.docdb("us-east-1").await;
    owner
        .create_db_cluster()
        .db_cluster_identifier("vault")
        .engine("docdb")
        .storage_encrypted(true)
        .kms_key_id("alias/theirs")
        .send()
        .await
        .unwrap();
    cluster(&owner, "plain").await;
    cluster(&owner_west, "west").await;
    cluster(&me, "mine").await;
    for (db, c, s) in [
        (&owner, "vault", "sealed"),
        (&owner, "plain", "open"),
        (&owner_west, "west", "far"),
    ] {
        snapshot(db, c, s).await;
        db.modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(s)
            .attribute_name("restore")
            .values_to_add("123456789012")
            .send()
            .await
            .unwrap();
    }
    snapshot(&me, "mine", "my-plain").await;
    let theirs = |region: &str, id: &str| {
        format!("arn:aws:rds:{region}:{OTHER_ACCOUNT}:cluster-snapshot:{id}")
    };
    let copy = |source: String, target: &str, kms: Option<&str>| {
        me.copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(source)
            .target_db_cluster_snapshot_identifier(target)
            .set_kms_key_id(kms.map(str::to_string))
            .send()
    };

    let (c, msg) = error(copy(theirs("us-east-1", "sealed"), "c1", None).await);
    assert_eq!(c, "KMSKeyNotAccessibleFault", "{msg}");
    let sealed = copy(theirs("us-east-1", "sealed"), "c1", Some("alias/mine"))
        .await
        .unwrap();
    let s = sealed.db_cluster_snapshot().unwrap();
    assert_eq!(s.storage_encrypted(), Some(true));
    assert_eq!(s.kms_key_id(), Some("alias/mine"));

    for source in [theirs("us-east-1", "open"), "my-plain".to_string()] {
        let (c, msg) = error(copy(source.clone(), "c2", Some("alias/mine")).await);
        assert_eq!(c, "InvalidParameterCombination", "{source}: {msg}");
        assert!(msg.contains("KmsKeyId"), "{msg}");
    }
    let plain = copy(theirs("us-east-1", "open"), "c2", None).await.unwrap();
    assert_eq!(
        plain.db_cluster_snapshot().unwrap().storage_encrypted(),
        Some(false)
    );

    // A shared snapshot in another region: refused even with a good PreSignedUrl.
    let far = theirs("us-west-2", "far");
    let url = presign_copy(
        &CopyRequest {
            endpoint: &emu.url,
            source_arn: &far,
            target_identifier: "c3",
            source_region: "us-west-2",
            destination_region: "us-east-1",
        },
        KEY,
        SECRET,
        SystemTime::now(),
    )
    .unwrap();
    let (c, msg) = error(
        me.copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(&far)
            .target_db_cluster_snapshot_identifier("c3")
            .pre_signed_url(url)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidParameterValue");
    assert!(msg.contains("own region"), "{msg}");
}

fn status<E>(
    e: &aws_sdk_docdb::error::SdkError<E, aws_sdk_docdb::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// AddTagsToResource, RemoveTagsFromResource and ListTagsForResource list
/// DBSnapshotNotFoundFault (code DBSnapshotNotFound, HTTP 404) for a missing snapshot.
#[tokio::test]
async fn tag_calls_on_a_missing_snapshot_answer_db_snapshot_not_found() {
    let emu = emulator(0.0).await;
    let db = emu.docdb("us-east-1").await;
    let ghost = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:ghost";
    let add = db
        .add_tags_to_resource()
        .resource_name(ghost)
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        add.as_service_error().and_then(|e| e.meta().code()),
        Some("DBSnapshotNotFound")
    );
    assert_eq!(status(&add), Some(404));
    let remove = db
        .remove_tags_from_resource()
        .resource_name(ghost)
        .tag_keys("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        remove.as_service_error().and_then(|e| e.meta().code()),
        Some("DBSnapshotNotFound")
    );
    assert_eq!(status(&remove), Some(404));
    let list = db
        .list_tags_for_resource()
        .resource_name(ghost)
        .send()
        .await
        .unwrap_err();
    assert!(
        list.as_service_error()
            .unwrap()
            .is_db_snapshot_not_found_fault()
    );
    assert_eq!(status(&list), Some(404));
}
