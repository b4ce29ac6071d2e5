//! Other AWS accounts, against the emulator's STS. At the engine level: the operator's
//! own credentials assume a role in the account, every client of that account (any
//! service, any region) signs with one set of temporary credentials, renewed before
//! they expire, and what it creates belongs to that account. Through the API server:
//! the AWSAccount kind's Ready.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_emulator::server::Options;
use common::*;
use dbsnapshot_operator::api::{AWSAccount, AWSAccountStatus, Engine};
use dbsnapshot_operator::engine::{AccountRole, CreateRequest, Engines, ErrorClass};
use dbsnapshot_operator::metrics::Metrics;

const DR_ACCOUNT: &str = "210987654321";
const DR_ROLE: &str = "arn:aws:iam::210987654321:role/dbsnapshot-operator";

struct Setup {
    state: aws_emulator::server::Shared,
    engines: Engines,
    _task: tokio::task::JoinHandle<()>,
}

async fn setup(trusted: &[&str]) -> Setup {
    let (addr, state, task) = aws_emulator::start(
        0,
        Options {
            snapshot_seconds: 0.0,
            ..Options::default()
        },
    )
    .await
    .expect("emulator");
    let url = format!("http://{addr}");
    trust(&state, trusted);
    let engines = Engines::new(
        aws_config(&url, RetryConfig::disabled()).await,
        Arc::new(Metrics::default()),
        None,
        false,
    );
    // Clusters in the DR account to take snapshots of.
    let seed = serde_json::json!({"docdb": ["orders"], "redshift": ["analytics"],
        "replicationGroups": ["sessions"], "account": DR_ACCOUNT});
    for region in ["us-east-1", "eu-west-1"] {
        let mut body = seed.clone();
        body["region"] = region.into();
        let r = reqwest::Client::new()
            .post(format!("{url}/_emulator/seed"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    Setup {
        state,
        engines,
        _task: task,
    }
}

fn trust(state: &aws_emulator::server::Shared, accounts: &[&str]) {
    let role =
        aws_emulator::sts::Role::from_flag(&format!("{DR_ROLE}={}", accounts.join(","))).unwrap();
    state
        .lock()
        .unwrap()
        .roles
        .insert(DR_ROLE.to_string(), role);
}

fn dr() -> AccountRole {
    AccountRole {
        account_id: DR_ACCOUNT.to_string(),
        role_arn: DR_ROLE.to_string(),
        external_id: None,
        session_seconds: None,
    }
}

fn calls(s: &Setup) -> serde_json::Value {
    serde_json::to_value(&s.state.lock().unwrap().counters).unwrap()
}

fn request(id: &str, source: &str, replication_group: bool) -> CreateRequest {
    CreateRequest {
        identifier: id.to_string(),
        source: source.to_string(),
        replication_group,
        tags: Default::default(),
        retention_days: None,
        kms_key_id: None,
    }
}

#[tokio::test]
async fn an_accounts_clients_share_one_assumed_session_and_create_in_that_account() {
    let s = setup(&["123456789012"]).await;
    let role = dr();
    let assumed = s.engines.assumed(&role);
    let (account, arn) = assumed.verify().await.unwrap();
    assert_eq!(account, DR_ACCOUNT);
    assert_eq!(
        arn,
        "arn:aws:sts::210987654321:assumed-role/dbsnapshot-operator/dbsnapshot-operator"
    );
    for (engine, region, source, group) in [
        (Engine::Docdb, "us-east-1", "orders", false),
        (Engine::Redshift, "us-east-1", "analytics", false),
        (Engine::Elasticache, "eu-west-1", "sessions", true),
        (Engine::Docdb, "eu-west-1", "orders", false),
    ] {
        let e = s.engines.get_in(Some(&role), engine, region);
        e.create(&request("dr-nightly", source, group))
            .await
            .unwrap_or_else(|err| panic!("{engine:?} {region}: {err}"));
    }
    let c = calls(&s);
    // One AssumeRole for the account, whatever the service or region.
    assert_eq!(c["calls"]["sts"]["AssumeRole"], 1);
    // GetCallerIdentity once (above), and the four creates: all in the DR account.
    assert_eq!(c["callsByAccount"][DR_ACCOUNT], 5);
    let docdb: Vec<(String, String)> = s
        .state
        .lock()
        .unwrap()
        .regions
        .iter()
        .flat_map(|(region, r)| {
            r.docdb
                .snapshots
                .values()
                .filter(|s| !s.automated)
                .map(|s| (region.clone(), s.account.clone()))
        })
        .collect();
    assert_eq!(docdb.len(), 2, "{docdb:?}");
    assert!(docdb.iter().all(|(_, a)| a == DR_ACCOUNT), "{docdb:?}");
    // The operator's own clients stay its own.
    let own = s.engines.get(Engine::Docdb, "us-east-1");
    assert!(own.describe("dr-nightly", false).await.unwrap().is_none());
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_fails_each_call_until_trust_is_fixed() {
    let s = setup(&["111122223333"]).await;
    let role = dr();
    let err = s.engines.assumed(&role).verify().await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("AccessDenied"), "{err}");
    assert_eq!(err.class, ErrorClass::Terminal, "{err}");
    // A client of the account: the call fails with STS's answer, terminal (the object
    // would be Stalled, not retried as if AWS could not be reached).
    let e = s.engines.get_in(Some(&role), Engine::Docdb, "us-east-1");
    let err = e.describe("anything", false).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Terminal, "{err}");
    assert_eq!(err.code.as_deref(), Some("AccessDenied"), "{err}");
    let text = format!("{err}");
    assert!(text.contains("could not assume"), "{text}");
    assert!(text.contains(DR_ROLE), "{text}");
    assert_eq!(calls(&s)["callsByAccount"].get(DR_ACCOUNT), None);
    // Fixed trust: the same client works, with no restart, once the failure is no
    // longer held (a few seconds: a denied role is not asked for on every request).
    trust(&s.state, &["123456789012"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(err) = e.describe("anything", false).await {
        assert!(Instant::now() < deadline, "still failing: {err}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let c = calls(&s);
    assert_eq!(c["callsByAccount"][DR_ACCOUNT], 1);
    // One AssumeRole refused for verify(), one for the first describe, at most one more
    // per 5 s while it was refused, one that succeeded.
    let assumed = c["calls"]["sts"]["AssumeRole"].as_u64().unwrap();
    assert!((3..=6).contains(&assumed), "{assumed} AssumeRole calls");
}

/// Sessions that last 40 s (the emulator cuts them short) are renewed before they
/// expire: the operator stops signing with them 20 s before (at most half a session
/// that short), so calls over 45 s, one every half second, never meet an expired token.
#[tokio::test]
async fn credentials_are_renewed_before_they_expire() {
    let s = setup(&["123456789012"]).await;
    s.state.lock().unwrap().session_seconds = 40.0;
    let role = dr();
    let e = s.engines.get_in(Some(&role), Engine::Docdb, "us-east-1");
    let until = Instant::now() + Duration::from_secs(45);
    let mut n = 0;
    while Instant::now() < until {
        e.describe("nightly", false)
            .await
            .unwrap_or_else(|err| panic!("call {n}: {err}"));
        n += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let c = calls(&s);
    let assumed = c["calls"]["sts"]["AssumeRole"].as_u64().unwrap();
    // Renewed every 10 to 20 s: between 10 s before the SDK's expiry (20 s before
    // STS's) and that expiry.
    assert!((3..=6).contains(&assumed), "{assumed} AssumeRole calls");
    assert_eq!(c["refusedCredentials"], 0);
    assert_eq!(c["callsByAccount"][DR_ACCOUNT], n);
}

async fn wait_account(
    api: &kube::Api<AWSAccount>,
    name: &str,
    what: &str,
    done: impl Fn(&AWSAccountStatus) -> bool,
) -> AWSAccountStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.get(name).await.unwrap().status.unwrap_or_default();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: never {what}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready(s: &AWSAccountStatus) -> Option<(String, String, String)> {
    s.condition("Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// AWSAccounts through the real API server and the operator: Ready once the role is
/// assumed and the identity is the account's; a role that cannot be assumed is Stalled
/// `AWSError` (what STS said) until its trust is fixed; a bad spec is Stalled
/// `InvalidSpec` naming the field, with no STS call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_accounts_are_ready_once_their_role_is_assumed() {
    let h = Harness::new("accounts", 0.5).await;
    let emulator = h.emulator.clone().unwrap();
    trust(&emulator, &["123456789012"]);
    let api: kube::Api<AWSAccount> = kube::Api::all(h.client.clone());
    let account = |name: &str, role: &str, account: &str| -> AWSAccount {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "AWSAccount",
            "metadata": {"name": name},
            "spec": {"accountId": account, "roleArn": role, "namespaces": [h.ns]}}))
        .unwrap()
    };
    let (dr, locked, bad) = (
        format!("{}-dr", h.ns),
        format!("{}-locked", h.ns),
        format!("{}-bad", h.ns),
    );
    let locked_role = "arn:aws:iam::210987654321:role/locked";
    // A bad spec first, alone (the v1.20 test server drops the CEL rule that refuses
    // it): Stalled naming the field, and no STS call made.
    api.create(
        &Default::default(),
        &account(&bad, "arn:aws:iam::444455556666:role/x", DR_ACCOUNT),
    )
    .await
    .unwrap();
    let status = wait_account(&api, &bad, "Stalled", |s| {
        s.condition("Stalled").is_some_and(|c| c.status == "True")
    })
    .await;
    let (_, reason, message) = ready(&status).unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(message.starts_with("spec.roleArn:"), "{message}");
    assert_eq!(h.calls()["calls"].get("sts"), None, "{}", h.calls());

    for a in [
        account(&dr, DR_ROLE, DR_ACCOUNT),
        account(&locked, locked_role, DR_ACCOUNT),
    ] {
        api.create(&Default::default(), &a).await.unwrap();
    }

    let status = wait_account(&api, &dr, "Ready", |s| {
        ready(s).is_some_and(|r| r.0 == "True")
    })
    .await;
    let (_, reason, message) = ready(&status).unwrap();
    assert_eq!(reason, "Available");
    assert!(
        message.ends_with(
            "as arn:aws:sts::210987654321:assumed-role/dbsnapshot-operator/dbsnapshot-operator"
        ),
        "{message}"
    );
    assert!(status.last_assumed_time.is_some());

    let status = wait_account(&api, &locked, "Stalled", |s| {
        s.condition("Stalled").is_some_and(|c| c.status == "True")
    })
    .await;
    let (ok, reason, message) = ready(&status).unwrap();
    assert_eq!((ok.as_str(), reason.as_str()), ("False", "AWSError"));
    assert!(
        message.contains(locked_role) && message.contains("AccessDenied"),
        "{message}"
    );
    assert!(status.last_assumed_time.is_none());

    // Trust fixed: the locked account becomes Ready with no change to it.
    let role = aws_emulator::sts::Role::from_flag(&format!("{locked_role}=123456789012")).unwrap();
    emulator
        .lock()
        .unwrap()
        .roles
        .insert(locked_role.to_string(), role);
    wait_account(&api, &locked, "Ready after the trust fix", |s| {
        ready(s).is_some_and(|r| r.0 == "True")
    })
    .await;
    for name in [&dr, &locked, &bad] {
        api.delete(name, &Default::default()).await.unwrap();
    }
}
