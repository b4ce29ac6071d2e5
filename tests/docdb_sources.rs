//! DocumentDB sources and tags as strict as AWS's API: copies of automated (`rds:`)
//! snapshots and of snapshots shared from another account, the KMS and region rules
//! of CopyDBClusterSnapshot, and a snapshot deleted outside Kubernetes between the
//! operator's describe and its tag calls (which answer DBSnapshotNotFound).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// The automated snapshot the emulator made for the DocumentDB cluster `orders`.
async fn docdb_automated(h: &Harness) -> String {
    h.docdb()
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("orders")
        .snapshot_type("automated")
        .send()
        .await
        .expect("automated snapshot")
        .db_cluster_snapshots()[0]
        .db_cluster_snapshot_identifier()
        .unwrap()
        .to_string()
}

/// Account 210987654321 makes a snapshot `id` (of an encrypted cluster if asked) in
/// `region` and shares it with the operator's account; its ARN.
async fn shared_in(h: &Harness, region: &str, id: &str, encrypted: bool) -> String {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(&h.aws_url)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIATEST210987654321",
            "testbed-secret-key",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let owner = aws_sdk_docdb::Client::new(&cfg);
    let cluster = format!("{id}-cluster");
    owner
        .create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("docdb")
        .master_username("u")
        .master_user_password("Secret123")
        .storage_encrypted(encrypted)
        .set_kms_key_id(encrypted.then(|| "alias/theirs".to_string()))
        .send()
        .await
        .unwrap();
    let arn = owner
        .create_db_cluster_snapshot()
        .db_cluster_identifier(&cluster)
        .db_cluster_snapshot_identifier(id)
        .send()
        .await
        .unwrap()
        .db_cluster_snapshot()
        .and_then(|s| s.db_cluster_snapshot_arn())
        .unwrap()
        .to_string();
    owner
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier(id)
        .attribute_name("restore")
        .values_to_add("123456789012")
        .send()
        .await
        .unwrap();
    arn
}

fn stalled_message(s: &dbsnapshot_operator::api::SnapshotStatus) -> String {
    condition(s, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// DescribeDBClusterSnapshots finds an automated snapshot by identifier only with
/// SnapshotType automated: the operator asks so, and copies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_an_automated_docdb_snapshot() {
    let h = Harness::new("dd-auto", 0.0).await;
    seed_clusters(&h.aws).await;
    let auto = docdb_automated(&h).await;
    assert!(auto.starts_with("rds:orders-"), "{auto}");
    h.create_copy(json!({
        "metadata": {"name": "kept"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": auto}}, "targetSnapshotIdentifier": "orders-kept"}
    }))
    .await
    .unwrap();
    let s = h.wait_copy("kept", Duration::from_secs(30), is_ready).await;
    assert_eq!(s.source_snapshot_identifier.as_deref(), Some(auto.as_str()));
    assert_eq!(h.count("docdb", "CopyDBClusterSnapshot"), 1);
}

/// A snapshot shared from another account is found only with IncludeShared: the
/// operator asks so for an ARN, and copies it into its own account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_a_snapshot_shared_from_another_account() {
    let h = Harness::new("dd-shared", 0.0).await;
    let arn = shared_in(&h, "us-east-1", "their-plain", false).await;
    h.create_copy(json!({
        "metadata": {"name": "mine"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": arn}}, "targetSnapshotIdentifier": "my-copy"}
    }))
    .await
    .unwrap();
    let s = h.wait_copy("mine", Duration::from_secs(30), is_ready).await;
    assert_eq!(s.source_arn.as_deref(), Some(arn.as_str()));
    assert_eq!(
        s.arn.as_deref(),
        Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:my-copy")
    );
}

/// CopyDBClusterSnapshot's rules the operator can tell from the source: a KMS key for
/// an unencrypted source, an encrypted shared source without one (also for the
/// intermediate copy of a shared source in another region), and an intermediate key
/// for a copy that needs none are refused up front (InvalidSpec naming the field, no
/// copy call). A shared source in another region goes through an intermediate copy.
/// A refusal only AWS makes is shown with AWS's words (AWSError).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_copy_kms_and_shared_rules() {
    let h = Harness::new("dd-kms", 0.0).await;
    seed_clusters(&h.aws).await;
    docdb_source(&h.aws, "plain").await;
    let sealed = shared_in(&h, "us-east-1", "sealed", true).await;
    let far = shared_in(&h, "us-west-2", "far", false).await;
    let far_sealed = shared_in(&h, "us-west-2", "far-sealed", true).await;
    for (name, spec, field) in [
        (
            "kms-on-plain",
            json!({"source": {"docdb": {"snapshotIdentifier": "plain"}}, "kmsKeyId": "alias/mine"}),
            "spec.kmsKeyId",
        ),
        (
            "sealed-no-kms",
            json!({"source": {"docdb": {"snapshotIdentifier": sealed}}}),
            "spec.kmsKeyId",
        ),
        (
            "far-sealed-no-kms",
            json!({"source": {"docdb": {"snapshotIdentifier": far_sealed}}, "kmsKeyId": "alias/mine"}),
            "spec.intermediateKmsKeyId",
        ),
        (
            "far-sealed-one-key",
            json!({"source": {"docdb": {"snapshotIdentifier": far_sealed}},
                   "intermediateKmsKeyId": "alias/west"}),
            "spec.kmsKeyId",
        ),
        (
            "no-hop-needed",
            json!({"source": {"docdb": {"snapshotIdentifier": sealed}}, "kmsKeyId": "alias/mine",
                   "intermediateKmsKeyId": "alias/west"}),
            "spec.intermediateKmsKeyId",
        ),
    ] {
        h.create_copy(json!({"metadata": {"name": name}, "spec": spec}))
            .await
            .unwrap();
        let s = h.wait_copy(name, Duration::from_secs(30), is_stalled).await;
        assert_eq!(
            stalled_reason(&s).as_deref(),
            Some("InvalidSpec"),
            "{name}: {s:?}"
        );
        let msg = stalled_message(&s);
        assert!(msg.starts_with(field), "{name}: {msg}");
    }
    assert_eq!(h.count("docdb", "CopyDBClusterSnapshot"), 0);

    // With a key, the encrypted shared snapshot is copied, encrypted with it.
    h.create_copy(json!({
        "metadata": {"name": "sealed-kms"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": sealed}}, "kmsKeyId": "alias/mine"}
    }))
    .await
    .unwrap();
    let s = h
        .wait_copy("sealed-kms", Duration::from_secs(30), is_ready)
        .await;
    assert_eq!(s.encrypted, Some(true));
    assert_eq!(s.kms_key_id.as_deref(), Some("alias/mine"));

    // Shared from another region: AWS copies a shared snapshot only within its region,
    // so it is copied into this account in us-west-2 first (the intermediate copy), then
    // to us-east-1, and the intermediate copy deleted. Encrypted, with a key of each
    // region.
    let emulator = h.emulator.clone().unwrap();
    let in_regions = |id: &str| common::docdb_regions_of(&emulator, "123456789012", id);
    let calls = h.count("docdb", "CopyDBClusterSnapshot");
    for (name, spec) in [
        (
            "far",
            json!({"source": {"docdb": {"snapshotIdentifier": far}}, "targetSnapshotIdentifier": "far-copy"}),
        ),
        (
            "far-sealed",
            json!({"source": {"docdb": {"snapshotIdentifier": far_sealed}}, "targetSnapshotIdentifier": "far-sealed-copy",
                   "kmsKeyId": "alias/east", "intermediateKmsKeyId": "alias/west"}),
        ),
    ] {
        h.create_copy(json!({"metadata": {"name": name}, "spec": spec}))
            .await
            .unwrap();
        let s = h
            .wait_copy(name, Duration::from_secs(30), |s| {
                is_ready(s) && s.intermediate.as_ref().and_then(|i| i.deleted) == Some(true)
            })
            .await;
        let id = s.snapshot_identifier.clone().unwrap();
        let hop = s.intermediate.clone().unwrap();
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(hop.region, "us-west-2");
        assert_eq!(in_regions(&id), ["us-east-1"], "{name}");
        assert_eq!(
            in_regions(&hop.snapshot_identifier),
            Vec::<String>::new(),
            "{name}: the intermediate copy is gone"
        );
        if name == "far-sealed" {
            assert_eq!(s.encrypted, Some(true));
            assert_eq!(s.kms_key_id.as_deref(), Some("alias/east"));
        }
    }
    assert_eq!(h.count("docdb", "CopyDBClusterSnapshot"), calls + 4);

    // AWS's own refusal (an encrypted snapshot copied across regions without a key of
    // the destination region) is reported as AWSError with AWS's message.
    let west = aws_sdk_docdb::Client::new(
        &h.aws
            .to_builder()
            .region(aws_config::Region::new("us-west-2"))
            .build(),
    );
    west.create_db_cluster()
        .db_cluster_identifier("vault")
        .engine("docdb")
        .master_username("u")
        .master_user_password("Secret123")
        .storage_encrypted(true)
        .kms_key_id("alias/west")
        .send()
        .await
        .unwrap();
    let west_arn = west
        .create_db_cluster_snapshot()
        .db_cluster_identifier("vault")
        .db_cluster_snapshot_identifier("west-sealed")
        .send()
        .await
        .unwrap()
        .db_cluster_snapshot()
        .and_then(|s| s.db_cluster_snapshot_arn())
        .unwrap()
        .to_string();
    h.create_copy(json!({
        "metadata": {"name": "west-no-kms"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": west_arn}}}
    }))
    .await
    .unwrap();
    let s = h
        .wait_copy("west-no-kms", Duration::from_secs(30), is_stalled)
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("AWSError"), "{s:?}");
    assert!(
        stalled_message(&s).contains("KmsKeyId is required"),
        "{}",
        stalled_message(&s)
    );
}

/// A Ready DocumentDB ClusterSnapshot whose tags change; the snapshot is deleted on
/// AWS while the operator's call `held` is held back, i.e. after the operator saw it
/// and before its next call. Returns every Stalled reason seen until NotFound.
async fn deleted_while_held(h: &Harness, held: &str) -> Vec<String> {
    seed_clusters(&h.aws).await;
    h.create(json!({
        "metadata": {"name": "gone"},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "snapshotIdentifier": "orders-gone",
                 "tags": {"team": "a"}}
    }))
    .await
    .unwrap();
    h.wait_ready("gone").await;
    let before = h.count("docdb", held);
    h.set_faults(json!({"delayActions": [held], "delayResponseMs": 2500}));
    h.patch_spec("gone", json!({"tags": {"team": "b"}})).await;
    h.wait_count("docdb", held, before + 1).await;
    h.docdb()
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier("orders-gone")
        .send()
        .await
        .unwrap();
    h.set_faults(json!({"delayActions": []}));
    let mut seen = Vec::new();
    h.wait_for(
        "gone",
        Duration::from_secs(60),
        |s| {
            if let Some(r) = stalled_reason(s)
                && seen.last() != Some(&r)
            {
                seen.push(r);
            }
        },
        |s| stalled_reason(s).as_deref() == Some("NotFound"),
    )
    .await;
    seen
}

fn log_mentions(h: &Harness, what: &str) -> bool {
    let log = &h.operator.as_ref().unwrap().log;
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
}

/// Deleted between the operator's describe and its ListTagsForResource (which answers
/// DBSnapshotNotFound): the snapshot is simply not found, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_snapshot_deleted_before_the_tag_read_is_not_found() {
    let h = Harness::new("dd-tagread", 0.0).await;
    let seen = deleted_while_held(&h, "DescribeDBClusterSnapshotAttributes").await;
    assert_eq!(seen, ["NotFound"]);
    assert!(
        !log_mentions(&h, "DBSnapshotNotFound"),
        "the tag read's not-found answer was taken for an error (log {:?})",
        h.operator.as_ref().unwrap().log
    );
}

/// Deleted between the operator's describe and its AddTagsToResource (which answers
/// DBSnapshotNotFound): NotFound, never a terminal AWSError.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docdb_snapshot_deleted_before_the_tag_write_is_not_found() {
    let h = Harness::new("dd-tagwrite", 0.0).await;
    let seen = deleted_while_held(&h, "ListTagsForResource").await;
    assert_eq!(seen, ["NotFound"]);
    assert!(h.count("docdb", "AddTagsToResource") >= 1);
}
