//! Other AWS accounts at the engine level, against the emulator's STS: the operator's
//! own credentials assume a role in the account, every client of that account (any
//! service, any region) signs with one set of temporary credentials, renewed before
//! they expire, and what it creates belongs to that account.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_emulator::server::Options;
use common::*;
use dbsnapshot_operator::api::Engine;
use dbsnapshot_operator::engine::{AccountRole, CreateRequest, Engines};
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
    assert_eq!(assumed.caller_account().await.unwrap(), DR_ACCOUNT);
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
    let err = s.engines.assumed(&role).caller_account().await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("AccessDenied"), "{err}");
    let e = s.engines.get_in(Some(&role), Engine::Docdb, "us-east-1");
    let err = e.describe("anything", false).await.unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("could not assume"), "{text}");
    assert!(text.contains(DR_ROLE), "{text}");
    assert_eq!(calls(&s)["callsByAccount"].get(DR_ACCOUNT), None);
    // Fixed trust: the same client works, with no restart.
    trust(&s.state, &["123456789012"]);
    e.describe("anything", false).await.unwrap();
    assert_eq!(calls(&s)["callsByAccount"][DR_ACCOUNT], 1);
}

/// Sessions that last 20 s (the emulator cuts them short) are renewed before they
/// expire: calls over 24 s, one every half second, never meet an expired token.
#[tokio::test]
async fn credentials_are_renewed_before_they_expire() {
    let s = setup(&["123456789012"]).await;
    s.state.lock().unwrap().session_seconds = 20.0;
    let role = dr();
    let e = s.engines.get_in(Some(&role), Engine::Docdb, "us-east-1");
    let until = Instant::now() + Duration::from_secs(24);
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
    assert!((2..=6).contains(&assumed), "{assumed} AssumeRole calls");
    assert_eq!(c["refusedCredentials"], 0);
    assert_eq!(c["callsByAccount"][DR_ACCOUNT], n);
}
