//! SnapshotCopy end to end: the operator binary against a real kube-apiserver and the
//! AWS emulator (and DocumentDB against moto).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_docdb::types::Tag as DocdbTag;
use common::*;
use dbsnapshot_operator::api::{DeletionPolicy, Phase};
use kube::ResourceExt;
use serde_json::json;

fn count(h: &Harness, service: &str, action: &str) -> u64 {
    h.calls()["calls"][service][action].as_u64().unwrap_or(0)
}

async fn docdb_snapshot(h: &Harness, region: &str, id: &str, tags: &[(&str, &str)]) -> String {
    let cfg = h
        .aws
        .to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build();
    let db = aws_sdk_docdb::Client::new(&cfg);
    if region != "us-east-1" {
        let _ = db
            .create_db_cluster()
            .db_cluster_identifier("orders")
            .engine("docdb")
            .master_username("u")
            .master_user_password("Secret123")
            .send()
            .await;
    }
    let mut req = db
        .create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier(id);
    for (k, v) in tags {
        req = req.tags(DocdbTag::builder().key(*k).value(*v).build());
    }
    let out = req.send().await.unwrap();
    out.db_cluster_snapshot()
        .unwrap()
        .db_cluster_snapshot_arn()
        .unwrap()
        .to_string()
}

fn docdb_in(h: &Harness, region: &str) -> aws_sdk_docdb::Client {
    aws_sdk_docdb::Client::new(
        &h.aws
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_copies_automated_snapshots_only() {
    let h = Harness::new("copy-rs", 0.5).await;
    seed_clusters(&h.aws).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let auto = redshift_automated(&h.aws).await;
    h.create_copy(json!({
        "metadata": {"name": "keep"},
        "spec": {"source": {"redshift": {"snapshotIdentifier": auto, "clusterIdentifier": "analytics"}},
                 "targetSnapshotIdentifier": "analytics-kept", "retentionDays": 7, "tags": {"team": "data"}}
    }))
    .await
    .unwrap();
    let s = h.wait_copy("keep", Duration::from_secs(30), is_ready).await;
    assert_eq!(s.phase, Some(Phase::Available));
    assert_eq!(s.retention_days, Some(7));
    assert_eq!(s.source_snapshot_identifier.as_deref(), Some(auto.as_str()));
    let d = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_identifier("analytics-kept")
        .send()
        .await
        .unwrap();
    let snap = &d.snapshots()[0];
    assert_eq!(snap.snapshot_type(), Some("manual"));
    assert_eq!(snap.manual_snapshot_retention_period(), Some(7));
    let tags: BTreeMap<_, _> = snap
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("team"), Some(&"data"));
    assert_eq!(
        tags.get("dbsnapshot.io/resource"),
        Some(&format!("{}/SnapshotCopy/keep", h.ns).as_str())
    );

    // A manual source: Stalled InvalidSource, and no copy call.
    h.redshift()
        .create_cluster_snapshot()
        .snapshot_identifier("manual-one")
        .cluster_identifier("analytics")
        .send()
        .await
        .unwrap();
    let copies_before = count(&h, "redshift", "CopyClusterSnapshot");
    h.create_copy(json!({"metadata": {"name": "wrong"}, "spec": {"source": {"redshift": {"snapshotIdentifier": "manual-one"}}}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("wrong", Duration::from_secs(30), |s| {
            stalled_reason(s).is_some()
        })
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("InvalidSource"));
    assert!(
        condition(&s, "Stalled")
            .unwrap()
            .message
            .contains("automated"),
        "{s:?}"
    );
    assert_eq!(count(&h, "redshift", "CopyClusterSnapshot"), copies_before);

    // Deleting the copy deletes it on AWS; the source stays.
    h.copies()
        .delete("keep", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("keep").await;
    assert!(
        h.redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier("analytics-kept")
            .send()
            .await
            .is_err()
    );
    assert!(
        h.redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier(&auto)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_same_region_copy_with_copy_tags_kms_and_sharing() {
    let h = Harness::new("copy-dd", 0.5).await;
    // An encrypted source: AWS refuses KmsKeyId for an unencrypted one
    // (CopyDBClusterSnapshotMessage KmsKeyId).
    h.docdb()
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("docdb")
        .master_username("u")
        .master_user_password("Secret123")
        .storage_encrypted(true)
        .kms_key_id("alias/orders")
        .send()
        .await
        .unwrap();
    docdb_snapshot(&h, "us-east-1", "orders-src", &[("from-source", "yes")]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.create_copy(json!({
        "metadata": {"name": "dr"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": "orders-src"}}, "targetSnapshotIdentifier": "orders-dr",
                 "copyTags": true, "kmsKeyId": "alias/backups", "tags": {"team": "orders"}, "sharedWith": ["111111111111"]}
    }))
    .await
    .unwrap();
    let s = h.wait_copy("dr", Duration::from_secs(30), is_ready).await;
    assert_eq!(s.kms_key_id.as_deref(), Some("alias/backups"));
    assert_eq!(s.encrypted, Some(true));
    assert!(
        s.source_arn
            .as_deref()
            .unwrap()
            .ends_with(":cluster-snapshot:orders-src"),
        "{s:?}"
    );
    assert_eq!(s.shared_with, Some(vec!["111111111111".to_string()]));
    let arn = s.arn.clone().unwrap();
    let tags: BTreeMap<String, String> = h
        .docdb()
        .list_tags_for_resource()
        .resource_name(&arn)
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
    assert_eq!(tags.get("team").map(String::as_str), Some("orders"));
    // Deleting: the share is revoked first, then the copy goes.
    h.copies().delete("dr", &Default::default()).await.unwrap();
    h.wait_copy_gone("dr").await;
    assert!(
        h.docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("orders-dr")
            .send()
            .await
            .is_err()
    );
    assert!(count(&h, "docdb", "ModifyDBClusterSnapshotAttribute") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_cross_region_copy_is_presigned_and_a_wrong_region_is_surfaced() {
    let h = Harness::new("copy-xr", 0.5).await;
    seed_clusters(&h.aws).await;
    let arn = docdb_snapshot(&h, "us-east-1", "orders-east", &[]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.create_copy(json!({
        "metadata": {"name": "to-eu"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": arn}}, "region": "eu-west-1",
                 "targetSnapshotIdentifier": "orders-eu"}
    }))
    .await
    .unwrap();
    let s = h
        .wait_copy("to-eu", Duration::from_secs(30), is_ready)
        .await;
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    assert!(
        s.arn
            .as_deref()
            .unwrap()
            .starts_with("arn:aws:rds:eu-west-1:"),
        "{s:?}"
    );
    let eu = docdb_in(&h, "eu-west-1");
    let copied = eu
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("orders-eu")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copied.db_cluster_snapshots()[0].source_db_cluster_snapshot_arn(),
        Some(arn.as_str())
    );
    // Not in the source region.
    assert!(
        h.docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("orders-eu")
            .send()
            .await
            .is_err()
    );

    // A source region that is not the ARN's: the URL is signed for the wrong region and
    // AWS (the emulator) refuses it; its message is shown as Stalled.
    h.create_copy(json!({
        "metadata": {"name": "mis-signed"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": arn}}, "region": "eu-west-1",
                 "sourceRegion": "us-west-2", "targetSnapshotIdentifier": "orders-eu-2"}
    }))
    .await
    .unwrap();
    let s = h
        .wait_copy("mis-signed", Duration::from_secs(30), |s| {
            stalled_reason(s).is_some()
        })
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("AWSError"));
    let msg = &condition(&s, "Stalled").unwrap().message;
    assert!(
        msg.contains("InvalidParameterValue") && msg.contains("region"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_docdb_copy_while_it_copies_cancels_it() {
    let h = Harness::new("copy-cancel", 0.5).await;
    seed_clusters(&h.aws).await;
    docdb_snapshot(&h, "us-east-1", "big", &[]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.set_snapshot_seconds(60.0);
    h.create_copy(json!({"metadata": {"name": "slow"}, "spec": {"source": {"docdb": {"snapshotIdentifier": "big"}}, "targetSnapshotIdentifier": "big-copy"}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("slow", Duration::from_secs(30), |s| {
            s.aws_status.as_deref() == Some("copying")
        })
        .await;
    assert_eq!(s.phase, Some(Phase::Creating));
    assert_eq!(condition(&s, "Ready").unwrap().reason, "Copying");
    h.copies()
        .delete("slow", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("slow").await;
    assert!(
        h.docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("big-copy")
            .send()
            .await
            .is_err()
    );
    assert_eq!(count(&h, "docdb", "DeleteDBClusterSnapshot"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticache_copy_and_export_to_s3() {
    let h = Harness::new("copy-ec", 0.5).await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.create_copy(json!({"metadata": {"name": "copy"}, "spec": {"source": {"elasticache": {"snapshotName": "sessions-src"}}, "targetSnapshotIdentifier": "sessions-copy", "kmsKeyId": "alias/cache"}}))
        .await
        .unwrap();
    let s = h.wait_copy("copy", Duration::from_secs(30), is_ready).await;
    assert_eq!(s.kms_key_id.as_deref(), Some("alias/cache"));
    assert!(
        h.elasticache()
            .describe_snapshots()
            .snapshot_name("sessions-copy")
            .send()
            .await
            .is_ok()
    );

    // An export with deletionPolicy Delete is refused (the schema's CEL rule; the
    // operator too): an export is always kept.
    h.create_copy(json!({"metadata": {"name": "export-delete"}, "spec": {"source": {"elasticache": {"snapshotName": "sessions-src"}}, "targetBucket": "my-exports", "deletionPolicy": "Delete"}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("export-delete", Duration::from_secs(30), |s| {
            stalled_reason(s).is_some()
        })
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("InvalidSpec"));
    assert!(
        condition(&s, "Stalled")
            .unwrap()
            .message
            .contains("spec.deletionPolicy")
    );
    assert_eq!(count(&h, "elasticache", "CopySnapshot"), 1);

    h.set_snapshot_seconds(2.0);
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": {"source": {"elasticache": {"snapshotName": "sessions-src"}}, "targetBucket": "my-exports", "targetSnapshotIdentifier": "sessions-2026"}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("export", Duration::from_secs(30), is_ready)
        .await;
    assert_eq!(
        s.export_location.as_deref(),
        Some("s3://my-exports/sessions-2026")
    );
    // No deletionPolicy given: an export is kept, and the status says so.
    assert_eq!(s.deletion_policy, Some(DeletionPolicy::Retain));
    let exports = h.emulator.as_ref().unwrap().lock().unwrap().exports.clone();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].bucket, "my-exports");
    assert_eq!(exports[0].source_snapshot, "sessions-src");

    // A bucket ElastiCache may not write to: Stalled with AWS's text and the fix.
    h.set_faults(json!({"deniedBuckets": ["locked"]}));
    h.create_copy(json!({"metadata": {"name": "export-denied"}, "spec": {"source": {"elasticache": {"snapshotName": "sessions-src"}}, "targetBucket": "locked", "deletionPolicy": "Retain"}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("export-denied", Duration::from_secs(30), |s| {
            stalled_reason(s).is_some()
        })
        .await;
    let msg = &condition(&s, "Stalled").unwrap().message;
    assert!(
        msg.contains("has not been granted") && msg.contains("policy"),
        "{msg}"
    );

    // Deleting the export object touches nothing on AWS.
    h.copies()
        .delete("export", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("export").await;
    h.copies()
        .delete("copy", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("copy").await;
    assert!(
        h.elasticache()
            .describe_snapshots()
            .snapshot_name("sessions-copy")
            .send()
            .await
            .is_err()
    );
    assert!(
        h.elasticache()
            .describe_snapshots()
            .snapshot_name("sessions-src")
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_cluster_snapshot_holds_its_source_until_done() {
    let h = Harness::new("chain", 1.0).await;
    seed_clusters(&h.aws).await;
    // The copy waits for its source.
    h.create_copy(json!({"metadata": {"name": "dr"}, "spec": {"source": {"clusterSnapshotRef": {"name": "nightly"}}, "targetSnapshotIdentifier": "nightly-dr", "sharedWith": ["111111111111"]}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("dr", Duration::from_secs(30), |s| {
            condition(s, "Ready").is_some_and(|c| c.reason == "SourceNotReady")
        })
        .await;
    assert!(condition(&s, "Ready").unwrap().message.contains("nightly"));
    h.create(json!({"metadata": {"name": "nightly"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "snapshotIdentifier": "nightly-src"}}))
        .await
        .unwrap();
    h.wait_ready("nightly").await;
    // Copies take long now: the source is deleted while the copy runs.
    h.set_snapshot_seconds(6.0);
    h.wait_copy("dr", Duration::from_secs(30), |s| {
        s.aws_status.as_deref() == Some("copying")
    })
    .await;
    h.snapshots()
        .delete("nightly", &Default::default())
        .await
        .unwrap();
    // While the copy runs the source stays on AWS (and the object waits).
    let mut held = 0;
    loop {
        // Once AWS has finished the copy (available, perhaps still being shared) the
        // source may go: AWS's word, not the copy object's status, which follows it.
        // The source is looked at first: if it is gone, AWS must have finished the
        // copy before.
        let source_there = h
            .docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("nightly-src")
            .send()
            .await
            .is_ok();
        let copy = h
            .docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("nightly-dr")
            .send()
            .await
            .unwrap();
        let copy = copy.db_cluster_snapshots()[0].status().map(str::to_string);
        assert!(
            source_there || copy.as_deref() == Some("available"),
            "the source was deleted while the copy ran: copy {copy:?}, calls {}",
            h.calls()
        );
        if copy.as_deref() == Some("available") {
            break;
        }
        if h.snapshots().get_opt("nightly").await.unwrap().is_some() {
            held += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(held > 0, "the ClusterSnapshot did not wait");
    let s = h.status("nightly").await;
    let _ = s;
    h.wait_gone("nightly").await;
    assert!(
        h.docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("nightly-src")
            .send()
            .await
            .is_err()
    );
    // The copy becomes (and stays) Ready with its source gone.
    let s = h.wait_copy("dr", Duration::from_secs(30), is_ready).await;
    assert!(is_ready(&s));
    assert_eq!(s.source_snapshot_identifier.as_deref(), Some("nightly-src"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_retain_refuse_foreign_targets_and_invalid_specs() {
    let h = Harness::new("copy-misc", 0.5).await;
    seed_clusters(&h.aws).await;
    docdb_snapshot(&h, "us-east-1", "src", &[]).await;
    docdb_snapshot(&h, "us-east-1", "someone-elses", &[]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Retain: the copy and its share stay on AWS.
    h.create_copy(json!({"metadata": {"name": "kept"}, "spec": {"source": {"docdb": {"snapshotIdentifier": "src"}}, "targetSnapshotIdentifier": "kept-copy", "deletionPolicy": "Retain", "sharedWith": ["111111111111"]}}))
        .await
        .unwrap();
    h.wait_copy("kept", Duration::from_secs(30), is_ready).await;
    h.copies()
        .delete("kept", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("kept").await;
    let attrs = h
        .docdb()
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier("kept-copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0]
            .attribute_values(),
        ["111111111111"]
    );

    // A target that exists and is not ours.
    h.create_copy(json!({"metadata": {"name": "clash"}, "spec": {"source": {"docdb": {"snapshotIdentifier": "src"}}, "targetSnapshotIdentifier": "someone-elses"}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("clash", Duration::from_secs(30), |s| {
            stalled_reason(s).is_some()
        })
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("NotOwned"));
    h.copies()
        .delete("clash", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("clash").await;
    assert!(
        h.docdb()
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("someone-elses")
            .send()
            .await
            .is_ok()
    );

    // Invalid specs: no AWS mutation.
    let baseline = h.mutating_calls();
    let cases = [
        (
            "two-sources",
            json!({"source": {"docdb": {"snapshotIdentifier": "src"}, "elasticache": {"snapshotName": "x"}}}),
            "spec.source",
        ),
        (
            "retention-docdb",
            json!({"source": {"docdb": {"snapshotIdentifier": "src"}}, "retentionDays": 5}),
            "retentionDays",
        ),
        (
            "kms-redshift",
            json!({"source": {"redshift": {"snapshotIdentifier": "rs:x"}}, "kmsKeyId": "k"}),
            "kmsKeyId",
        ),
        (
            "bucket-docdb",
            json!({"source": {"docdb": {"snapshotIdentifier": "src"}}, "targetBucket": "bkt", "deletionPolicy": "Retain"}),
            "targetBucket",
        ),
        (
            "share-elasticache",
            json!({"source": {"elasticache": {"snapshotName": "x"}}, "sharedWith": ["111111111111"]}),
            "sharedWith",
        ),
        (
            "copy-tags-redshift",
            json!({"source": {"redshift": {"snapshotIdentifier": "rs:x"}}, "copyTags": true}),
            "copyTags",
        ),
        (
            "bad-target",
            json!({"source": {"docdb": {"snapshotIdentifier": "src"}}, "targetSnapshotIdentifier": "x--y"}),
            "targetSnapshotIdentifier",
        ),
    ];
    for (name, spec, field) in &cases {
        match h
            .create_raw(
                "SnapshotCopy",
                json!({"metadata": {"name": name}, "spec": spec}),
            )
            .await
        {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}");
                assert!(e.message.contains(field), "{name}: {}", e.message);
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(()) => {
                let s = h
                    .wait_copy(name, Duration::from_secs(30), |s| {
                        stalled_reason(s).is_some()
                    })
                    .await;
                assert_eq!(stalled_reason(&s).as_deref(), Some("InvalidSpec"), "{name}");
                let msg = &condition(&s, "Stalled").unwrap().message;
                assert!(msg.contains(field), "{name}: {msg}");
            }
        }
    }
    assert_eq!(h.mutating_calls(), baseline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_copy_and_sharing_against_moto() {
    let moto = moto();
    let mut h = Harness::with_aws("copy-moto", &moto.url).await;
    aws_sdk_docdb::Client::new(&h.aws)
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("aurora-postgresql")
        .master_username("u")
        .master_user_password("Secret123")
        .send()
        .await
        .unwrap();
    aws_sdk_docdb::Client::new(&h.aws)
        .create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier("moto-src")
        .send()
        .await
        .unwrap();
    h.start_operator(&[]);
    h.create_copy(json!({"metadata": {"name": "c"}, "spec": {"source": {"docdb": {"snapshotIdentifier": "moto-src"}}, "targetSnapshotIdentifier": "moto-copy", "sharedWith": ["111111111111"], "tags": {"a": "b"}}}))
        .await
        .unwrap();
    let s = h.wait_copy("c", Duration::from_secs(60), is_ready).await;
    assert_eq!(s.shared_with, Some(vec!["111111111111".to_string()]));
    let attrs = aws_sdk_docdb::Client::new(&h.aws)
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier("moto-copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0]
            .attribute_values(),
        ["111111111111"]
    );
    h.copies().delete("c", &Default::default()).await.unwrap();
    h.wait_copy_gone("c").await;
    assert!(
        aws_sdk_docdb::Client::new(&h.aws)
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("moto-copy")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redshift_copy_whose_tagging_is_denied_is_retried_and_never_leaked() {
    let h = Harness::new("copy-rs-untagged", 0.5).await;
    seed_clusters(&h.aws).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let auto = redshift_automated(&h.aws).await;
    let before = h.aws_snapshots();
    // CopyClusterSnapshot takes no tags; the CreateTags that follows it is denied.
    h.set_faults(json!({"failActions": ["redshift:CreateTags"]}));
    for (name, target) in [
        ("tagged-later", "analytics-a"),
        ("deleted-untagged", "analytics-b"),
    ] {
        h.create_copy(json!({"metadata": {"name": name}, "spec": {
            "source": {"redshift": {"snapshotIdentifier": auto, "clusterIdentifier": "analytics"}},
            "targetSnapshotIdentifier": target, "tags": {"team": "data"}}}))
            .await
            .unwrap();
    }
    for name in ["tagged-later", "deleted-untagged"] {
        let s = h
            .wait_copy(name, Duration::from_secs(30), |s| {
                stalled_reason(s).as_deref() == Some("AWSError")
            })
            .await;
        let msg = &condition(&s, "Stalled").unwrap().message;
        assert!(
            msg.contains("CreateTags") && msg.contains("AccessDenied"),
            "{name}: {msg}"
        );
    }
    let on_aws = h.aws_snapshots();
    for target in ["analytics-a", "analytics-b"] {
        let copy = on_aws.iter().find(|a| a.id == target).expect("the copy");
        assert!(copy.tags.is_empty(), "{copy:?}");
    }
    // Tagging is retried (each resync), never the copy; and never NotOwned.
    let tag_calls = count(&h, "redshift", "CreateTags");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(count(&h, "redshift", "CreateTags") > tag_calls);
    assert_eq!(count(&h, "redshift", "CopyClusterSnapshot"), 2);
    for name in ["tagged-later", "deleted-untagged"] {
        let s = h.copy_status(name).await;
        assert_eq!(
            stalled_reason(&s).as_deref(),
            Some("AWSError"),
            "{name}: {s:?}"
        );
        let msg = &condition(&s, "Stalled").unwrap().message;
        assert!(msg.contains("not tagged yet"), "{name}: {msg}");
    }

    // Deleted while still untagged: the copy goes with the object.
    h.copies()
        .delete("deleted-untagged", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("deleted-untagged").await;
    assert!(!h.aws_snapshots().iter().any(|a| a.id == "analytics-b"));

    // The fault lifted: tagged as the object's, Ready, and deleted with it.
    h.set_faults(json!({"failActions": []}));
    let s = h
        .wait_copy("tagged-later", Duration::from_secs(30), is_ready)
        .await;
    assert_eq!(s.snapshot_identifier.as_deref(), Some("analytics-a"));
    let uid = h.copies().get("tagged-later").await.unwrap().uid().unwrap();
    let copy = h
        .aws_snapshots()
        .into_iter()
        .find(|a| a.id == "analytics-a")
        .expect("the copy");
    assert_eq!(copy.owner(), Some(uid.as_str()), "{copy:?}");
    assert_eq!(copy.tags.get("team").map(String::as_str), Some("data"));
    assert_eq!(count(&h, "redshift", "CopyClusterSnapshot"), 2);
    h.copies()
        .delete("tagged-later", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("tagged-later").await;
    assert_eq!(h.aws_snapshots(), before);
}

/// An emulator (snapshots take `snapshot_seconds`) reached by the test directly and by
/// the operator through a proxy that can be cut; no operator started yet.
async fn harness_behind_proxy(name: &str, snapshot_seconds: f64) -> (Harness, Proxy) {
    let (addr, state, _task) = aws_emulator::start(
        0,
        aws_emulator::server::Options {
            snapshot_seconds,
            ..Default::default()
        },
    )
    .await
    .expect("emulator");
    let proxy = Proxy::start(addr).await;
    let mut h = Harness::with_aws(name, &format!("http://{addr}")).await;
    h.emulator = Some(state);
    h.aws_url = proxy.url();
    (h, proxy)
}

/// The emulator's record of the export of `source`: its status (exporting, completed,
/// failed).
fn export_status(h: &Harness, source: &str) -> String {
    let st = h.emulator.as_ref().unwrap().lock().unwrap();
    st.exports
        .iter()
        .find(|e| e.source_snapshot == source)
        .map(|e| e.status(std::time::Instant::now()).to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_source_goes_before_it_is_seen_to_end_is_not_ready() {
    let (mut h, mut proxy) = harness_behind_proxy("export-gone", 0.5).await;
    seed_clusters(&h.aws).await;
    elasticache_source(&h.aws, "sessions-a").await;
    elasticache_source(&h.aws, "sessions-b").await;
    h.start_operator(&[]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.set_snapshot_seconds(3.0);
    // Both exports fail on AWS after they started (the snapshot shows `exporting`, then
    // `available` again; the API has no field for the result).
    h.set_faults(json!({"failExports": ["sessions-a", "sessions-b"]}));
    for (name, source) in [("gone", "sessions-a"), ("ended", "sessions-b")] {
        h.create_copy(json!({"metadata": {"name": name}, "spec": {"source": {"elasticache": {"snapshotName": source}}, "targetBucket": "my-exports", "deletionPolicy": "Retain"}}))
            .await
            .unwrap();
    }
    for name in ["gone", "ended"] {
        h.wait_copy(name, Duration::from_secs(30), |s| {
            s.export_location.is_some() && s.phase == Some(Phase::Creating)
        })
        .await;
    }
    // The operator loses AWS while the exports run; meanwhile they end and one source
    // is deleted out of band.
    proxy.cut();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while export_status(&h, "sessions-a") == "exporting"
        || export_status(&h, "sessions-b") == "exporting"
    {
        assert!(std::time::Instant::now() < deadline, "exports never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(export_status(&h, "sessions-a"), "failed");
    h.elasticache()
        .delete_snapshot()
        .snapshot_name("sessions-a")
        .send()
        .await
        .unwrap();
    proxy.restore().await;

    // Gone before the export was seen to end: never Ready.
    let s = h
        .wait_copy("gone", Duration::from_secs(60), |s| {
            is_ready(s) || stalled_reason(s).is_some()
        })
        .await;
    assert!(!is_ready(&s), "{s:?}");
    assert_eq!(s.ready_to_use, Some(false));
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(stalled_reason(&s).as_deref(), Some("NotFound"));
    let msg = &condition(&s, "Ready").unwrap().message;
    assert!(
        msg.contains("no longer exists") && msg.contains("check the bucket"),
        "{msg}"
    );

    // Seen accepted and the source available again: ended, as far as the API can tell,
    // and the Ready message says the result is not known.
    let s = h
        .wait_copy("ended", Duration::from_secs(60), is_ready)
        .await;
    let msg = &condition(&s, "Ready").unwrap().message;
    assert!(
        msg.contains("has ended") && msg.contains("does not report"),
        "{msg}"
    );
    assert_eq!(h.count("elasticache", "CopySnapshot"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_and_its_wait_for_the_source_are_polled_at_the_no_estimate_pace() {
    let mut h = Harness::new("export-pace", 0.5).await;
    seed_clusters(&h.aws).await;
    // Production-like pacing: min_poll 2 s, max_poll 60 s, no-estimate pace 12 s.
    h.operator.take();
    h.start_operator(&["--max-poll-seconds", "60", "--min-poll-seconds", "10"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.set_snapshot_seconds(10.0);
    elasticache_source(&h.aws, "sessions-src").await;
    let before = h.count("elasticache", "DescribeSnapshots");
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": {"source": {"elasticache": {"snapshotName": "sessions-src"}}, "targetBucket": "my-exports", "deletionPolicy": "Retain"}}))
        .await
        .unwrap();
    // 10 s of source creation, then 10 s of export.
    h.wait_copy("export", Duration::from_secs(90), is_ready)
        .await;
    let describes = h.count("elasticache", "DescribeSnapshots") - before;
    println!("DescribeSnapshots for one export: {describes}");
    // Every 12 s (not every 5 s, then every 2 s): about 3 looks, a few more for the
    // reconciles the object's own status writes cause.
    assert!(describes <= 6, "{describes} DescribeSnapshots");
    assert_eq!(h.count("elasticache", "CopySnapshot"), 1);
}
