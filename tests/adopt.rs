//! Adopting existing snapshots (`spec.adopt`) through the API server and the emulator:
//! an untagged snapshot of the account is tagged as the object's and managed from then
//! on, never created; one tagged for another object is NotOwned; a missing one is
//! NotFound; an adopted snapshot is kept when the object goes, unless it says Delete.

mod common;

use std::time::Duration;

use common::*;
use dbsnapshot_operator::api::{DeletionPolicy, SnapshotStatus};

fn stalled(reason: &'static str) -> impl Fn(&SnapshotStatus) -> bool {
    move |s| stalled_reason(s).as_deref() == Some(reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_snapshots_are_adopted_not_created_and_kept() {
    let h = Harness::new("adopt", 0.5).await;
    seed_clusters(&h.aws).await;
    // Snapshots someone made by hand: one with a tag and a share of its own.
    for id in ["legacy", "legacy-2"] {
        docdb_source(&h.aws, id).await;
    }
    let docdb = h.docdb();
    let arn = |id: &str| format!("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:{id}");
    docdb
        .add_tags_to_resource()
        .resource_name(arn("legacy"))
        .tags(
            aws_sdk_docdb::types::Tag::builder()
                .key("team")
                .value("data")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while docdb
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("legacy")
        .attribute_name("restore")
        .values_to_add("111111111111")
        .send()
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "cannot share legacy");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let creates = h.count("docdb", "CreateDBClusterSnapshot");
    assert_eq!(creates, 2);

    let adopt = |name: &str, id: &str, extra: serde_json::Value| {
        let mut spec = serde_json::json!({"source": {"docdb": {"clusterIdentifier": "orders"}},
            "snapshotIdentifier": id, "adopt": true});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::json!({"apiVersion": "dbsnapshot.io/v1alpha1", "kind": "ClusterSnapshot",
            "metadata": {"name": name}, "spec": spec})
    };
    h.create(adopt(
        "adopted",
        "legacy",
        serde_json::json!({"tags": {"team": "data", "tier": "gold"}, "sharedWith": ["111111111111"]}),
    ))
    .await
    .unwrap();
    let status = h.wait_ready("adopted").await;
    assert_eq!(status.deletion_policy, Some(DeletionPolicy::Retain));
    let uid = h
        .snapshots()
        .get("adopted")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let legacy = h
        .aws_snapshots()
        .into_iter()
        .find(|s| s.id == "legacy")
        .unwrap();
    assert_eq!(legacy.owner(), Some(uid.as_str()), "tagged as the object's");
    assert_eq!(legacy.tags.get("team").map(String::as_str), Some("data"));
    assert_eq!(legacy.tags.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(legacy.shared, ["111111111111"]);

    // Another object adopting it (and asking to delete it): NotOwned, and the snapshot
    // untouched, also when the thief goes.
    h.create(adopt(
        "thief",
        "legacy",
        serde_json::json!({"deletionPolicy": "Delete", "tags": {"team": "thief"}}),
    ))
    .await
    .unwrap();
    let status = h
        .wait_for(
            "thief",
            Duration::from_secs(30),
            |_| {},
            stalled("NotOwned"),
        )
        .await;
    assert_eq!(status.ready_to_use, Some(false));
    assert_eq!(status.arn, None, "nothing of the snapshot recorded");
    // A snapshot that does not exist: NotFound, nothing created.
    h.create(adopt("ghost", "no-such-snapshot", serde_json::json!({})))
        .await
        .unwrap();
    let status = h
        .wait_for(
            "ghost",
            Duration::from_secs(30),
            |_| {},
            stalled("NotFound"),
        )
        .await;
    let message = &condition(&status, "Ready").unwrap().message;
    assert!(message.contains("adopting never creates"), "{message}");
    // An adopted snapshot deleted with the object when the spec says Delete.
    h.create(adopt(
        "adopted-2",
        "legacy-2",
        serde_json::json!({"deletionPolicy": "Delete"}),
    ))
    .await
    .unwrap();
    h.wait_ready("adopted-2").await;
    assert_eq!(
        h.count("docdb", "CreateDBClusterSnapshot"),
        creates,
        "nothing created"
    );

    for name in ["adopted", "thief", "ghost", "adopted-2"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
        h.wait_gone(name).await;
    }
    let left: Vec<String> = h.aws_snapshots().into_iter().map(|s| s.id).collect();
    assert_eq!(
        left,
        ["legacy"],
        "Retain keeps the adopted snapshot; Delete deletes"
    );
    let legacy = h
        .aws_snapshots()
        .into_iter()
        .find(|s| s.id == "legacy")
        .unwrap();
    assert_eq!(legacy.tags.get("team").map(String::as_str), Some("data"));
    assert_eq!(
        legacy.owner(),
        Some(uid.as_str()),
        "still the first adopter's"
    );
    assert_eq!(legacy.shared, ["111111111111"], "the thief changed nothing");
}
