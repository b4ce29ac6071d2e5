//! Every emulated ElastiCache action through the official Rust SDK, with each fault code.

mod common;

use aws_sdk_elasticache::types::Tag;
use common::*;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

async fn group(ec: &aws_sdk_elasticache::Client, id: &str) {
    ec.create_replication_group()
        .replication_group_id(id)
        .replication_group_description("sessions cache")
        .engine("valkey")
        .num_cache_clusters(2)
        .send()
        .await
        .expect("CreateReplicationGroup");
}

#[tokio::test]
async fn groups_clusters_and_snapshots() {
    let emu = emulator(1.0).await;
    let ec = emu.elasticache().await;
    group(&ec, "sessions").await;
    let dup = ec
        .create_replication_group()
        .replication_group_id("sessions")
        .replication_group_description("again")
        .send()
        .await;
    assert!(
        dup.unwrap_err()
            .into_service_error()
            .is_replication_group_already_exists_fault()
    );
    let cc = ec
        .create_cache_cluster()
        .cache_cluster_id("solo")
        .engine("redis")
        .num_cache_nodes(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cc.cache_cluster().unwrap().cache_cluster_status(),
        Some("available")
    );
    assert_eq!(
        code(
            ec.create_cache_cluster()
                .cache_cluster_id("solo")
                .send()
                .await
        ),
        "CacheClusterAlreadyExists"
    );
    assert_eq!(
        code(
            ec.create_cache_cluster()
                .cache_cluster_id("member")
                .replication_group_id("ghost")
                .send()
                .await
        ),
        "ReplicationGroupNotFoundFault"
    );
    ec.create_cache_cluster()
        .cache_cluster_id("memc")
        .engine("memcached")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            ec.create_snapshot()
                .cache_cluster_id("memc")
                .snapshot_name("m")
                .send()
                .await
        ),
        "SnapshotFeatureNotSupportedFault"
    );

    let s = ec
        .create_snapshot()
        .replication_group_id("sessions")
        .snapshot_name("sessions-manual")
        .kms_key_id("alias/cache")
        .tags(tag("team", "web"))
        .send()
        .await
        .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.snapshot_status(), Some("creating"));
    assert_eq!(snap.snapshot_source(), Some("manual"));
    assert_eq!(snap.replication_group_id(), Some("sessions"));
    assert_eq!(snap.engine(), Some("valkey"));
    assert_eq!(snap.kms_key_id(), Some("alias/cache"));
    assert_eq!(
        snap.arn(),
        Some("arn:aws:elasticache:us-east-1:123456789012:snapshot:sessions-manual")
    );
    ec.create_snapshot()
        .cache_cluster_id("solo")
        .snapshot_name("solo-manual")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            ec.create_snapshot()
                .replication_group_id("sessions")
                .cache_cluster_id("solo")
                .snapshot_name("both")
                .send()
                .await
        ),
        "InvalidParameterCombination"
    );
    assert_eq!(
        code(ec.create_snapshot().snapshot_name("neither").send().await),
        "InvalidParameterCombination"
    );
    assert_eq!(
        code(
            ec.create_snapshot()
                .replication_group_id("ghost")
                .snapshot_name("g")
                .send()
                .await
        ),
        "ReplicationGroupNotFoundFault"
    );
    assert_eq!(
        code(
            ec.create_snapshot()
                .cache_cluster_id("ghost")
                .snapshot_name("g")
                .send()
                .await
        ),
        "CacheClusterNotFound"
    );
    assert!(
        ec.create_snapshot()
            .replication_group_id("sessions")
            .snapshot_name("sessions-manual")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_snapshot_already_exists_fault()
    );
    assert_eq!(
        code(
            ec.create_snapshot()
                .replication_group_id("sessions")
                .snapshot_name("-bad")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            ec.delete_snapshot()
                .snapshot_name("sessions-manual")
                .send()
                .await
        ),
        "InvalidSnapshotState"
    );
    assert_eq!(
        code(
            ec.copy_snapshot()
                .source_snapshot_name("sessions-manual")
                .target_snapshot_name("c")
                .send()
                .await
        ),
        "InvalidSnapshotState"
    );
    sleep_secs(1.2).await;
    let d = ec
        .describe_snapshots()
        .snapshot_name("sessions-manual")
        .send()
        .await
        .unwrap();
    assert_eq!(d.snapshots()[0].snapshot_status(), Some("available"));
    assert_eq!(d.snapshots()[0].node_snapshots().len(), 1);
    let del = ec
        .delete_snapshot()
        .snapshot_name("solo-manual")
        .send()
        .await
        .unwrap();
    assert_eq!(del.snapshot().unwrap().snapshot_status(), Some("deleting"));
    assert!(
        ec.delete_snapshot()
            .snapshot_name("solo-manual")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_snapshot_not_found_fault()
    );
    assert_eq!(
        code(
            ec.describe_snapshots()
                .snapshot_name("solo-manual")
                .send()
                .await
        ),
        "SnapshotNotFoundFault"
    );
}

#[tokio::test]
async fn copies_and_exports_to_s3() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    group(&ec, "sessions").await;
    ec.create_snapshot()
        .replication_group_id("sessions")
        .snapshot_name("src")
        .send()
        .await
        .unwrap();
    let copy = ec
        .copy_snapshot()
        .source_snapshot_name("src")
        .target_snapshot_name("src-copy")
        .kms_key_id("alias/other")
        .tags(tag("copied", "true"))
        .send()
        .await
        .unwrap();
    let c = copy.snapshot().unwrap();
    assert_eq!(c.snapshot_name(), Some("src-copy"));
    assert_eq!(c.kms_key_id(), Some("alias/other"));
    assert_eq!(c.replication_group_id(), Some("sessions"));
    assert_eq!(
        code(
            ec.copy_snapshot()
                .source_snapshot_name("src")
                .target_snapshot_name("src-copy")
                .send()
                .await
        ),
        "SnapshotAlreadyExistsFault"
    );
    assert_eq!(
        code(
            ec.copy_snapshot()
                .source_snapshot_name("ghost")
                .target_snapshot_name("x")
                .send()
                .await
        ),
        "SnapshotNotFoundFault"
    );

    // Export to S3: recorded, the source shows "exporting" meanwhile.
    emu.set_snapshot_seconds(30.0).await;
    let exported = ec
        .copy_snapshot()
        .source_snapshot_name("src")
        .target_snapshot_name("src-export")
        .target_bucket("my-exports")
        .send()
        .await
        .unwrap();
    assert_eq!(
        exported.snapshot().unwrap().snapshot_status(),
        Some("exporting")
    );
    assert_eq!(
        code(ec.delete_snapshot().snapshot_name("src").send().await),
        "InvalidSnapshotState"
    );
    let exports = emu.admin_get("exports").await;
    assert_eq!(exports[0]["bucket"], "my-exports");
    assert_eq!(exports[0]["key"], "src-export-0001.rdb");
    assert_eq!(exports[0]["sourceSnapshot"], "src");
    assert_eq!(exports[0]["status"], "exporting");
    // No snapshot is made in ElastiCache by an export.
    assert_eq!(
        code(
            ec.describe_snapshots()
                .snapshot_name("src-export")
                .send()
                .await
        ),
        "SnapshotNotFoundFault"
    );
    assert_eq!(
        code(
            ec.copy_snapshot()
                .source_snapshot_name("src-copy")
                .target_snapshot_name("e")
                .target_bucket("Bad_Bucket")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let r = emu
        .admin_post(
            "faults",
            serde_json::json!({"deniedBuckets": ["locked-bucket"]}),
        )
        .await;
    assert!(r.status().is_success());
    let (c, msg) = error(
        ec.copy_snapshot()
            .source_snapshot_name("src-copy")
            .target_snapshot_name("e")
            .target_bucket("locked-bucket")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidParameterValue");
    assert!(msg.contains("has not been granted"), "{msg}");
}

#[tokio::test]
async fn describe_filters_and_pages() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    group(&ec, "g1").await;
    ec.create_cache_cluster()
        .cache_cluster_id("c1")
        .send()
        .await
        .unwrap();
    for i in 0..60 {
        let req = ec.create_snapshot().snapshot_name(format!("snap-{i:02}"));
        let req = if i % 2 == 0 {
            req.replication_group_id("g1")
        } else {
            req.cache_cluster_id("c1")
        };
        req.send().await.unwrap();
    }
    let first = ec
        .describe_snapshots()
        .max_records(50)
        .send()
        .await
        .unwrap();
    assert_eq!(first.snapshots().len(), 50);
    let second = ec
        .describe_snapshots()
        .max_records(50)
        .marker(first.marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.snapshots().len(), 10);
    assert!(second.marker().is_none());
    let all: Vec<_> = ec
        .describe_snapshots()
        .max_records(20)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 60);
    assert_eq!(
        code(ec.describe_snapshots().max_records(51).send().await),
        "InvalidParameterValue"
    );
    let by_group = ec
        .describe_snapshots()
        .replication_group_id("g1")
        .send()
        .await
        .unwrap();
    assert_eq!(by_group.snapshots().len(), 30);
    let by_cluster = ec
        .describe_snapshots()
        .cache_cluster_id("c1")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cluster.snapshots().len(), 30);
    assert_eq!(
        code(
            ec.describe_snapshots()
                .cache_cluster_id("ghost")
                .send()
                .await
        ),
        "CacheClusterNotFound"
    );
    let user = ec
        .describe_snapshots()
        .snapshot_source("user")
        .max_records(50)
        .send()
        .await
        .unwrap();
    assert_eq!(user.snapshots().len(), 50);
    let system = ec
        .describe_snapshots()
        .snapshot_source("system")
        .send()
        .await
        .unwrap();
    assert!(system.snapshots().is_empty());
    assert_eq!(
        code(
            ec.describe_snapshots()
                .snapshot_source("other")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
}

#[tokio::test]
async fn tags_on_snapshots_groups_and_clusters() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    group(&ec, "sessions").await;
    ec.create_snapshot()
        .replication_group_id("sessions")
        .snapshot_name("t")
        .tags(tag("a", "1"))
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:elasticache:us-east-1:123456789012:snapshot:t";
    let added = ec
        .add_tags_to_resource()
        .resource_name(arn)
        .tags(tag("b", "ünï 漢字 _.:/=+-@"))
        .send()
        .await
        .unwrap();
    assert_eq!(added.tag_list().len(), 2);
    let removed = ec
        .remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.tag_list().len(), 1);
    let listed = ec
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.tag_list()[0].value(), Some("ünï 漢字 _.:/=+-@"));
    assert_eq!(
        code(
            ec.remove_tags_from_resource()
                .resource_name(arn)
                .tag_keys("a")
                .send()
                .await
        ),
        "TagNotFound"
    );
    assert_eq!(
        code(
            ec.list_tags_for_resource()
                .resource_name("arn:aws:elasticache:us-east-1:123456789012:snapshot:ghost")
                .send()
                .await
        ),
        "SnapshotNotFoundFault"
    );
    assert_eq!(
        code(
            ec.list_tags_for_resource()
                .resource_name("nonsense")
                .send()
                .await
        ),
        "InvalidARN"
    );
    ec.add_tags_to_resource()
        .resource_name("arn:aws:elasticache:us-east-1:123456789012:replicationgroup:sessions")
        .tags(tag("g", "1"))
        .send()
        .await
        .unwrap();
    ec.add_tags_to_resource()
        .resource_name("arn:aws:elasticache:us-east-1:123456789012:cluster:sessions-001")
        .tags(tag("c", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            ec.add_tags_to_resource()
                .resource_name("arn:aws:elasticache:us-east-1:123456789012:replicationgroup:ghost")
                .tags(tag("g", "1"))
                .send()
                .await
        ),
        "ReplicationGroupNotFoundFault"
    );
    assert_eq!(
        code(
            ec.add_tags_to_resource()
                .resource_name("arn:aws:elasticache:us-east-1:123456789012:cluster:ghost")
                .tags(tag("g", "1"))
                .send()
                .await
        ),
        "CacheClusterNotFound"
    );
    let mut many = ec.add_tags_to_resource().resource_name(arn);
    for i in 0..50 {
        many = many.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(code(many.send().await), "TagQuotaPerResourceExceeded");
}

/// ElastiCache stores replication group ids, cache cluster ids and snapshot names as
/// lowercase strings ("This value is stored as a lowercase string"), looks groups and
/// clusters up without regard to case ("This parameter is not case sensitive"), and
/// answers with the stored form.
#[tokio::test]
async fn identifiers_are_stored_lowercased_and_found_in_any_case() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    let g = ec
        .create_replication_group()
        .replication_group_id("Sessions")
        .replication_group_description("d")
        .send()
        .await
        .unwrap();
    let g = g.replication_group().unwrap();
    assert_eq!(g.replication_group_id(), Some("sessions"));
    assert_eq!(g.member_clusters(), ["sessions-001"]);
    assert_eq!(
        code(
            ec.create_replication_group()
                .replication_group_id("SESSIONS")
                .replication_group_description("d")
                .send()
                .await
        ),
        "ReplicationGroupAlreadyExists"
    );
    let cc = ec
        .create_cache_cluster()
        .cache_cluster_id("Solo")
        .engine("redis")
        .send()
        .await
        .unwrap();
    assert_eq!(cc.cache_cluster().unwrap().cache_cluster_id(), Some("solo"));

    let s = ec
        .create_snapshot()
        .replication_group_id("SESSIONS")
        .snapshot_name("Nightly")
        .send()
        .await
        .unwrap();
    let s = s.snapshot().unwrap();
    assert_eq!(s.snapshot_name(), Some("nightly"));
    assert_eq!(s.replication_group_id(), Some("sessions"));
    assert_eq!(
        s.arn(),
        Some("arn:aws:elasticache:us-east-1:123456789012:snapshot:nightly")
    );
    let solo = ec
        .create_snapshot()
        .cache_cluster_id("SOLO")
        .snapshot_name("Solo-Snap")
        .send()
        .await
        .unwrap();
    assert_eq!(solo.snapshot().unwrap().cache_cluster_id(), Some("solo"));
    assert_eq!(
        code(
            ec.create_snapshot()
                .replication_group_id("sessions")
                .snapshot_name("NIGHTLY")
                .send()
                .await
        ),
        "SnapshotAlreadyExistsFault"
    );
    for out in [
        ec.describe_snapshots()
            .snapshot_name("NightLY")
            .send()
            .await,
        ec.describe_snapshots()
            .replication_group_id("Sessions")
            .send()
            .await,
    ] {
        let out = out.unwrap();
        assert_eq!(out.snapshots().len(), 1);
        assert_eq!(out.snapshots()[0].snapshot_name(), Some("nightly"));
    }
    let by_cluster = ec
        .describe_snapshots()
        .cache_cluster_id("Solo")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cluster.snapshots()[0].snapshot_name(), Some("solo-snap"));
    let copy = ec
        .copy_snapshot()
        .source_snapshot_name("NIGHTLY")
        .target_snapshot_name("Kept")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.snapshot().unwrap().snapshot_name(), Some("kept"));
    let tagged = ec
        .add_tags_to_resource()
        .resource_name("arn:aws:elasticache:us-east-1:123456789012:snapshot:Kept")
        .tags(tag("a", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.tag_list().len(), 1);
    let deleted = ec
        .delete_snapshot()
        .snapshot_name("KEPT")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.snapshot().unwrap().snapshot_name(), Some("kept"));
}

/// AWS's common tag set and the reserved `aws:` prefix; ElastiCache's model answers
/// an invalid tag with InvalidParameterValue on every action that takes tags, and
/// nothing is created or tagged.
#[tokio::test]
async fn tags_outside_the_common_character_set_are_refused() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    group(&ec, "sessions").await;
    ec.create_snapshot()
        .replication_group_id("sessions")
        .snapshot_name("s")
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:elasticache:us-east-1:123456789012:snapshot:s";
    for (k, v) in [
        ("k", "<x>"),
        ("k", "a&b"),
        ("k", "🙂"),
        ("k", "tab\t"),
        ("k", "50%"),
        ("aws:k", "v"),
        ("Aws:k", "v"),
    ] {
        assert_eq!(
            code(
                ec.add_tags_to_resource()
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
                ec.create_snapshot()
                    .replication_group_id("sessions")
                    .snapshot_name("t")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidParameterValue",
            "{k}={v}"
        );
        assert_eq!(
            code(
                ec.copy_snapshot()
                    .source_snapshot_name("s")
                    .target_snapshot_name("t")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidParameterValue",
            "{k}={v}"
        );
        assert_eq!(
            code(
                ec.create_replication_group()
                    .replication_group_id("other")
                    .replication_group_description("d")
                    .tags(tag(k, v))
                    .send()
                    .await
            ),
            "InvalidParameterValue",
            "{k}={v}"
        );
    }
    let listed = ec
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap();
    assert!(listed.tag_list().is_empty());
    assert_eq!(
        code(ec.describe_snapshots().snapshot_name("t").send().await),
        "SnapshotNotFoundFault"
    );
    // `@` and `:` are in the common set; a value may start with `aws:`.
    ec.add_tags_to_resource()
        .resource_name(arn)
        .tags(tag("owner@team:x", "aws:ok"))
        .send()
        .await
        .unwrap();
}

/// The `failExports` fault: CopySnapshot with TargetBucket is accepted and the source
/// is `exporting`; then it is `available` again and the export is recorded `failed`
/// with AWS's text for a bucket ElastiCache may not write to. Named by source
/// snapshot (any case) or by bucket; other exports complete.
#[tokio::test]
async fn exports_that_fail_after_they_were_accepted() {
    let emu = emulator(0.0).await;
    let ec = emu.elasticache().await;
    group(&ec, "sessions").await;
    for name in ["doomed", "fine"] {
        ec.create_snapshot()
            .replication_group_id("sessions")
            .snapshot_name(name)
            .send()
            .await
            .unwrap();
    }
    let r = emu
        .admin_post(
            "faults",
            serde_json::json!({"failExports": ["DOOMED", "shaky-bucket"]}),
        )
        .await;
    assert!(r.status().is_success());
    assert_eq!(
        emu.admin_get("faults").await["failExports"],
        serde_json::json!(["DOOMED", "shaky-bucket"])
    );
    emu.set_snapshot_seconds(1.0).await;
    let export = |source: &'static str, bucket: &'static str| {
        ec.copy_snapshot()
            .source_snapshot_name(source)
            .target_snapshot_name(format!("{source}-to-{bucket}"))
            .target_bucket(bucket)
            .send()
    };
    for (source, bucket) in [("doomed", "my-exports"), ("fine", "shaky-bucket")] {
        let out = export(source, bucket).await.unwrap();
        assert_eq!(out.snapshot().unwrap().snapshot_status(), Some("exporting"));
    }
    let exports = emu.admin_get("exports").await;
    assert_eq!(exports[0]["status"], "exporting");
    assert_eq!(exports[1]["status"], "exporting");
    assert!(exports[0].get("failureMessage").is_none());
    sleep_secs(1.2).await;
    for name in ["doomed", "fine"] {
        let d = ec
            .describe_snapshots()
            .snapshot_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(
            d.snapshots()[0].snapshot_status(),
            Some("available"),
            "{name}"
        );
    }
    let exports = emu.admin_get("exports").await;
    assert_eq!(exports[0]["status"], "failed");
    assert_eq!(exports[0]["sourceSnapshot"], "doomed");
    let msg = exports[0]["failureMessage"].as_str().unwrap();
    assert!(
        msg.contains("has not been granted WRITE permissions my-exports"),
        "{msg}"
    );
    assert_eq!(exports[1]["status"], "failed");
    assert_eq!(exports[1]["bucket"], "shaky-bucket");
    export("fine", "my-exports").await.unwrap();
    sleep_secs(1.2).await;
    let exports = emu.admin_get("exports").await;
    assert_eq!(exports[2]["status"], "completed");
    assert!(exports[2].get("failureMessage").is_none());
    // A failed export can be tried again once the fault is gone.
    emu.admin_post("faults", serde_json::json!({"failExports": []}))
        .await;
    ec.copy_snapshot()
        .source_snapshot_name("doomed")
        .target_snapshot_name("doomed-again")
        .target_bucket("my-exports")
        .send()
        .await
        .unwrap();
    sleep_secs(1.2).await;
    assert_eq!(emu.admin_get("exports").await[3]["status"], "completed");
}
