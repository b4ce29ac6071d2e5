//! The ClusterSnapshot lifecycle (create → Ready → delete) for all three engines
//! against moto, an AWS implementation nobody here wrote.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// One operator at a time: each reconciles every AWSAccount (they are cluster-scoped),
/// so another test's operator would check this file's account against its own AWS.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_against_moto() {
    let _turn = TURN.lock().await;
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
    let _turn = TURN.lock().await;
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

/// AWSAccounts against moto's STS: the operator assumes a role of another account with
/// its own credentials (moto puts what the assumed credentials make in the role's
/// account), the AWSAccount is Ready with the account GetCallerIdentity names, and a
/// ClusterSnapshot with spec.account is made, seen and deleted in that account: visible
/// with that account's credentials, never with the operator's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_accounts_against_motos_sts() {
    let _turn = TURN.lock().await;
    const ACCOUNT: &str = "111122223333";
    const ROLE: &str = "arn:aws:iam::111122223333:role/dbsnapshot-operator";
    let moto = moto();
    let mut h = Harness::with_aws("moto-sts", &moto.url).await;
    let assumed = aws_sdk_sts::Client::new(&h.aws)
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("seed")
        .send()
        .await
        .expect("AssumeRole")
        .credentials
        .expect("credentials");
    let theirs = h
        .aws
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    assumed.access_key_id,
                    assumed.secret_access_key,
                    Some(assumed.session_token),
                    None,
                    "moto",
                ),
            ),
        )
        .build();
    let in_their_account = aws_sdk_redshift::Client::new(&theirs);
    in_their_account
        .create_cluster()
        .cluster_identifier("analytics")
        .node_type("dc2.large")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await
        .expect("a cluster in the other account");
    h.start_operator(&[]);
    let accounts: kube::Api<dbsnapshot_operator::api::AWSAccount> =
        kube::Api::all(h.client.clone());
    let name = format!("{}-b", h.ns);
    accounts
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "AWSAccount",
                "metadata": {"name": name},
                "spec": {"accountId": ACCOUNT, "roleArn": ROLE, "namespaces": [h.ns]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = accounts.get(&name).await.unwrap();
        let ready = a.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status == "True")
        });
        if ready == Some(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "AWSAccount not Ready: {:?}",
            a.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.create(json!({
        "metadata": {"name": "theirs"},
        "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}},
                 "snapshotIdentifier": "moto-theirs", "account": name}
    }))
    .await
    .unwrap();
    let s = h
        .wait_for("theirs", Duration::from_secs(60), |_| {}, is_ready)
        .await;
    assert_eq!(s.account_id.as_deref(), Some(ACCOUNT));
    assert!(
        s.arn.as_deref().is_some_and(|a| a.contains(ACCOUNT)),
        "{:?}",
        s.arn
    );
    let found = |client: aws_sdk_redshift::Client| async move {
        client
            .describe_cluster_snapshots()
            .snapshot_identifier("moto-theirs")
            .send()
            .await
            .map(|r| !r.snapshots().is_empty())
            .unwrap_or(false)
    };
    assert!(
        found(in_their_account.clone()).await,
        "not in the other account"
    );
    assert!(
        !found(aws_sdk_redshift::Client::new(&h.aws)).await,
        "made in the operator's own account"
    );
    h.snapshots()
        .delete("theirs", &Default::default())
        .await
        .unwrap();
    h.wait_gone("theirs").await;
    assert!(
        !found(in_their_account).await,
        "not deleted in the other account"
    );
    accounts.delete(&name, &Default::default()).await.unwrap();
}
