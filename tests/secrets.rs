//! Credentials never leak: a lifecycle run with temporary credentials from STS
//! AssumeRole (a session token included, a presigned cross-region copy among the
//! calls, an AWSAccount whose role the operator assumes too, debug logging on) leaves
//! them in no log line (the audit lines included), Event, status or metric.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dbsnapshot_operator::api::AWSAccount;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_appear_in_no_log_event_status_or_metric() {
    let mut h = Harness::new("secrets", 0.5).await;
    h.operator = None;
    let creds = assumed_credentials(&h).await;
    seed_clusters(&h.aws).await;
    let metrics = format!("127.0.0.1:{}", free_port());
    h.operator = Some(Operator::start_with_env(
        &h.ns,
        &h.aws_url,
        &["--metrics-addr", &metrics],
        &kubeconfig(),
        &h.ns,
        &[
            ("AWS_ACCESS_KEY_ID", creds.key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", creds.secret.as_str()),
            ("AWS_SESSION_TOKEN", creds.token.as_str()),
            ("RUST_LOG", "debug"),
        ],
    ));
    let source_arn = docdb_source(&h.aws, "orders-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    for (name, source) in [
        (
            "rs",
            json!({"redshift": {"clusterIdentifier": "analytics"}}),
        ),
        (
            "ec",
            json!({"elasticache": {"replicationGroupId": "sessions"}}),
        ),
        // Refused by AWS: the error message lands in the status.
        (
            "missing",
            json!({"docdb": {"clusterIdentifier": "no-such-cluster"}}),
        ),
    ] {
        h.create(json!({"metadata": {"name": name}, "spec": {"source": source, "sharedWith": if name == "rs" { json!(["111111111111"]) } else { json!([]) }}}))
            .await
            .unwrap();
    }
    // A cross-region copy: the operator presigns a URL with these credentials.
    h.create_copy(json!({"metadata": {"name": "xr"}, "spec": {"source": {"docdb": {"snapshotIdentifier": source_arn}}, "region": "eu-west-1"}}))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for name in ["rs", "ec"] {
        statuses.push(serde_json::to_string(&h.wait_ready(name).await).unwrap());
    }
    statuses.push(
        serde_json::to_string(
            &h.wait_for(
                "missing",
                Duration::from_secs(30),
                |_| {},
                |s| stalled_reason(s).is_some(),
            )
            .await,
        )
        .unwrap(),
    );
    statuses.push(
        serde_json::to_string(&h.wait_copy("xr", Duration::from_secs(30), is_ready).await).unwrap(),
    );
    // An AWSAccount: the operator assumes its role (role chaining from its own assumed
    // role) and holds that account's temporary credentials too.
    let dr_role = "arn:aws:iam::210987654321:role/dbsnapshot-operator";
    h.emulator.as_ref().unwrap().lock().unwrap().roles.insert(
        dr_role.to_string(),
        aws_emulator::sts::Role::from_flag(&format!("{dr_role}=123456789012")).unwrap(),
    );
    let accounts: Api<AWSAccount> = Api::all(h.client.clone());
    let account = format!("{}-dr", h.ns);
    accounts
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"apiVersion": "dbsnapshot.io/v1alpha1",
                "kind": "AWSAccount", "metadata": {"name": account},
                "spec": {"accountId": "210987654321", "roleArn": dr_role, "namespaces": [h.ns]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let account_status = loop {
        let status = accounts
            .get(&account)
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        if status
            .condition("Ready")
            .is_some_and(|c| c.status == "True")
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{account} never Ready: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    statuses.push(serde_json::to_string(&account_status).unwrap());
    let copied = h.aws_snapshots();
    assert!(
        copied.iter().any(|s| s.region == "eu-west-1"),
        "the presigned copy did not happen: {copied:?}"
    );
    let metrics_body = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics_body.contains("dbsnapshot_aws_calls_total"));
    for name in ["rs", "ec", "missing"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    h.copies().delete("xr", &Default::default()).await.unwrap();
    for name in ["rs", "ec", "missing"] {
        h.wait_gone(name).await;
    }
    h.wait_copy_gone("xr").await;

    accounts
        .delete(&account, &Default::default())
        .await
        .unwrap();
    // The AWSAccount's Events go to the default namespace (it has none of its own);
    // the v1.20 test server refuses them there (its events.k8s.io/v1 validation allows
    // a cluster-scoped object's new-style Events in kube-system only; 1.22 and later
    // take them), so only the operator's warning about that is seen here.
    let mut events = String::new();
    for ns in [h.ns.as_str(), "default"] {
        let api: Api<Event> = Api::namespaced(h.client.clone(), ns);
        events +=
            &serde_json::to_string(&api.list(&Default::default()).await.unwrap().items).unwrap();
    }
    // Every temporary credential the emulator's STS handed out: the operator's own and
    // the AWSAccount's (at least one of each).
    let issued: Vec<(String, String, String)> = {
        let st = h.emulator.as_ref().unwrap().lock().unwrap();
        st.sessions
            .iter()
            .map(|(key, s)| (key.clone(), st.credentials[key].clone(), s.token.clone()))
            .collect()
    };
    assert!(issued.len() >= 2, "{} sessions", issued.len());
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap();
        if log.contains("DeleteDBClusterSnapshot") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The debug log saw the calls (so there was something to leak).
    assert!(log.contains("CopyDBClusterSnapshot"), "{log}");
    // So did the audit trail: the presigned copy and the share have their lines, with
    // the request id, and neither carries the presigned URL.
    for call in ["CopyDBClusterSnapshot", "AuthorizeSnapshotAccess"] {
        let line = log
            .lines()
            .find(|l| l.contains("dbsnapshot::audit") && l.contains(call))
            .unwrap_or_else(|| panic!("no audit line for {call}:\n{log}"));
        assert!(line.contains("request_id="), "{line}");
        assert!(!line.contains("X-Amz-"), "{line}");
    }
    for (what, text) in [
        ("the log", log.as_str()),
        ("an Event", events.as_str()),
        ("a status", statuses.join("\n").as_str()),
        ("a metric", metrics_body.as_str()),
    ] {
        for secret in [SECRET, &creds.secret, &creds.token] {
            assert!(!text.contains(secret), "{what} contains a credential");
        }
        // Not even the access key id (it is in every presigned URL).
        for key in [KEY, &creds.key] {
            assert!(!text.contains(key), "{what} contains the access key id");
        }
        for (key, secret, token) in &issued {
            for c in [key, secret, token] {
                assert!(
                    !text.contains(c.as_str()),
                    "{what} contains an STS credential"
                );
            }
        }
    }
}
