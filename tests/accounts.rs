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
use dbsnapshot_operator::api::{AWSAccount, AWSAccountStatus, Engine, Phase};
use dbsnapshot_operator::engine::{AccountRole, CreateRequest, Engines, ErrorClass};
use dbsnapshot_operator::metrics::Metrics;

/// The tests that run an operator take turns: every operator reconciles every
/// AWSAccount (they are cluster-scoped, on the one test API server), so two at once
/// would check each other's accounts against their own emulators.
static OPERATOR_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes this test's turn, and deletes the AWSAccounts earlier tests left behind (one
/// that failed does not clean up), which this test's operator would reconcile too.
async fn operator_turn() -> tokio::sync::MutexGuard<'static, ()> {
    let turn = OPERATOR_TESTS.lock().await;
    let api: kube::Api<AWSAccount> = kube::Api::all(client().await);
    install_crds(&client().await).await;
    for a in api.list(&Default::default()).await.unwrap() {
        let name = a.metadata.name.unwrap_or_default();
        if name.starts_with("it-") {
            let _ = api.delete(&name, &Default::default()).await;
        }
    }
    turn
}

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
    let _turn = operator_turn().await;
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

/// The DocumentDB cluster `orders` in the DR account, in us-east-1.
async fn seed_dr_orders(h: &Harness) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/seed", h.aws_url))
        .json(
            &serde_json::json!({"docdb": ["orders"], "region": "us-east-1", "account": DR_ACCOUNT}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// The AWSAccount `<namespace>-dr` for the DR account's role, admitting the test's
/// namespace: the API and its name.
async fn create_dr_account(h: &Harness) -> (kube::Api<AWSAccount>, String) {
    let accounts: kube::Api<AWSAccount> = kube::Api::all(h.client.clone());
    let name = format!("{}-dr", h.ns);
    accounts
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "AWSAccount",
                "metadata": {"name": name},
                "spec": {"accountId": DR_ACCOUNT, "roleArn": DR_ROLE, "namespaces": [h.ns]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    (accounts, name)
}

/// The DocumentDB snapshots in one account, by id, with their owner tag.
fn docdb_snapshots_in(
    emulator: &aws_emulator::server::Shared,
    account: &str,
) -> Vec<(String, Option<String>)> {
    let st = emulator.lock().unwrap();
    let mut out: Vec<_> = st
        .regions
        .values()
        .flat_map(|r| r.docdb.snapshots.values())
        .filter(|s| !s.automated && s.account == account)
        .map(|s| {
            let owner = s
                .tags
                .iter()
                .find(|(k, _)| k == "dbsnapshot.io/owner-uid")
                .map(|(_, v)| v.clone());
            (s.id.clone(), owner)
        })
        .collect();
    out.sort();
    out
}

/// ClusterSnapshots and SnapshotCopies in another account, through the API server:
/// two namespaces, one admitted by the AWSAccount. The other namespace's object is
/// Stalled `AccountNotAllowed` and nothing is called; while the role cannot be assumed
/// the admitted namespace's object is Stalled `AccountNotReady`; once trust is fixed
/// it is made with the account's credentials (the emulator puts it in that account),
/// a copy of it is made there too, a copy into the operator's own account of it waits
/// for a share, a
/// snapshot the operator's own account shares with it is copied into it, the second
/// namespace is admitted by a label, a deletion waits while the account is unusable,
/// and deleting deletes in the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_work_in_the_account_their_namespace_is_admitted_to() {
    let _turn = operator_turn().await;
    let mut h = Harness::new("acct-objects", 0.5).await;
    let emulator = h.emulator.clone().unwrap();
    trust(&emulator, &["123456789012"]);
    let other = format!("{}-b", h.ns);
    create_namespace(&h.client, &other).await;
    h.operator = None;
    h.operator = Some(Operator::start(
        &format!("{},{}", h.ns, other),
        &h.aws_url,
        &[],
    ));
    // The cluster exists in both accounts: a call made in the wrong one would succeed.
    seed_clusters(&h.aws).await;
    seed_dr_orders(&h).await;
    // The seeding's own calls.
    let docdb_calls = |h: &Harness| h.calls()["calls"]["docdb"].clone();
    let seeded = docdb_calls(&h);
    assert_eq!(seeded, serde_json::json!({"CreateDBCluster": 1}));

    let (accounts, name) = create_dr_account(&h).await;
    wait_account(&accounts, &name, "Ready", |s| {
        ready(s).is_some_and(|r| r.0 == "True")
    })
    .await;
    let snapshot = |n: &str| {
        serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "ClusterSnapshot",
            "metadata": {"name": n},
            "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "account": name,
                "tags": {"team": "dr"}}})
    };
    let stalled = |reason: &'static str| {
        move |s: &dbsnapshot_operator::api::SnapshotStatus| {
            stalled_reason(s).as_deref() == Some(reason)
        }
    };
    // A Ready account that does not admit the namespace: Stalled, and no call is made
    // (with credentials that work, any call would reach the emulator).
    let theirs: kube::Api<dbsnapshot_operator::api::ClusterSnapshot> =
        kube::Api::namespaced(h.client.clone(), &other);
    theirs
        .create(
            &Default::default(),
            &serde_json::from_value(snapshot("outsider")).unwrap(),
        )
        .await
        .unwrap();
    let outsider = wait_status(&theirs, "outsider", stalled("AccountNotAllowed")).await;
    let message = &condition(&outsider, "Ready").unwrap().message;
    assert!(
        message.contains(&format!("does not admit namespace {other}")),
        "{message}"
    );
    assert_eq!(outsider.snapshot_identifier, None, "nothing recorded");
    // Looked at again every --max-poll-seconds (2 s here): still nothing called.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(docdb_calls(&h), seeded, "{}", h.calls());

    // The role no longer trusts the operator: the account is not Ready, an object in
    // the admitted namespace is Stalled AccountNotReady, and recovers once trust is
    // fixed.
    trust(&emulator, &["111111111111"]);
    wait_account(&accounts, &name, "not Ready", |s| {
        ready(s).is_some_and(|r| r.0 == "False")
    })
    .await;
    h.create(snapshot("in-dr")).await.unwrap();
    let status = h
        .wait_for(
            "in-dr",
            Duration::from_secs(60),
            |_| {},
            stalled("AccountNotReady"),
        )
        .await;
    let message = &condition(&status, "Ready").unwrap().message;
    assert!(
        message.starts_with(&format!("spec.account: AWSAccount {name} is not Ready: ")),
        "{message}"
    );
    assert_eq!(status.snapshot_identifier, None, "nothing recorded");
    assert_eq!(docdb_calls(&h), seeded, "{}", h.calls());

    // Trust fixed: the AWSAccount is Ready, and the object is made in its account.
    trust(&emulator, &["123456789012"]);
    let status = h.wait_ready("in-dr").await;
    assert_eq!(status.account.as_deref(), Some(name.as_str()));
    assert_eq!(status.account_id.as_deref(), Some(DR_ACCOUNT));
    let uid = h.snapshots().get("in-dr").await.unwrap().metadata.uid;
    let id = status.snapshot_identifier.clone().unwrap();
    assert_eq!(
        docdb_snapshots_in(&emulator, DR_ACCOUNT),
        vec![(id.clone(), uid.clone())]
    );
    assert_eq!(docdb_snapshots_in(&emulator, "123456789012"), vec![]);
    // The outsider is still refused.
    let outsider = wait_status(&theirs, "outsider", stalled("AccountNotAllowed")).await;
    assert_eq!(outsider.snapshot_identifier, None);

    // A copy in the same account is made there; one naming no account is refused.
    h.create_copy(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
        "metadata": {"name": "dr-copy"},
        "spec": {"source": {"clusterSnapshotRef": {"name": "in-dr"}}, "account": name,
            "copyTags": true}}))
        .await
        .unwrap();
    h.create_copy(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
        "metadata": {"name": "home-copy"},
        "spec": {"source": {"clusterSnapshotRef": {"name": "in-dr"}}}}))
        .await
        .unwrap();
    let copy = h
        .wait_copy("dr-copy", Duration::from_secs(60), is_ready)
        .await;
    assert_eq!(copy.account_id.as_deref(), Some(DR_ACCOUNT));
    // Its source's tags, read in the account, are on it.
    let copy_id = copy.snapshot_identifier.clone().unwrap();
    let copied_tags: Vec<(String, String)> = {
        let st = emulator.lock().unwrap();
        st.regions["us-east-1"]
            .docdb
            .snapshots
            .values()
            .find(|s| s.account == DR_ACCOUNT && s.id == copy_id)
            .map(|s| s.tags.clone())
            .unwrap_or_default()
    };
    assert!(
        copied_tags.iter().any(|(k, v)| k == "team" && v == "dr"),
        "{copied_tags:?}"
    );
    // A copy into the operator's own account of a source the account does not share
    // with it: it waits, saying what to share, and makes no copy call.
    let home = h
        .wait_copy(
            "home-copy",
            Duration::from_secs(60),
            stalled("SourceNotReady"),
        )
        .await;
    let message = &condition(&home, "Ready").unwrap().message;
    assert!(
        message.contains("add 123456789012 to its spec.sharedWith"),
        "{message}"
    );
    assert_eq!(
        h.count("docdb", "CopyDBClusterSnapshot"),
        1,
        "{}",
        h.calls()
    );
    let in_dr: Vec<String> = docdb_snapshots_in(&emulator, DR_ACCOUNT)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(in_dr, {
        let mut v = vec![id.clone(), copy_id.clone()];
        v.sort();
        v
    });

    // A DocumentDB snapshot of the operator's own account, shared with the account, is
    // copied into it (named by ARN, looked up as AWS requires).
    let arn = docdb_source(&h.aws, "home-orders").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shared = h
            .docdb()
            .modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier("home-orders")
            .attribute_name("restore")
            .values_to_add(DR_ACCOUNT)
            .send()
            .await;
        if shared.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "cannot share: {shared:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    h.create_copy(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
        "metadata": {"name": "shared-in"},
        "spec": {"source": {"docdb": {"snapshotIdentifier": arn}}, "account": name}}))
        .await
        .unwrap();
    let shared_in = h
        .wait_copy("shared-in", Duration::from_secs(60), is_ready)
        .await;
    assert_eq!(shared_in.account_id.as_deref(), Some(DR_ACCOUNT));
    let shared_in_id = shared_in.snapshot_identifier.clone().unwrap();
    assert!(
        docdb_snapshots_in(&emulator, DR_ACCOUNT)
            .iter()
            .any(|(s, _)| *s == shared_in_id)
    );
    h.copies()
        .delete("shared-in", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("shared-in").await;
    assert_eq!(
        docdb_snapshots_in(&emulator, "123456789012"),
        vec![("home-orders".to_string(), None)],
        "the shared source is left alone"
    );

    // The other namespace admitted by a label: its object is made in the account too.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(h.client.clone());
    namespaces
        .patch(
            &other,
            &Default::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {"dr": "yes"}}})),
        )
        .await
        .unwrap();
    accounts
        .patch(
            &name,
            &Default::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"spec": {"namespaceSelector": {"matchLabels": {"dr": "yes"}}}}),
            ),
        )
        .await
        .unwrap();
    let outsider = wait_status(&theirs, "outsider", is_ready).await;
    assert_eq!(outsider.account_id.as_deref(), Some(DR_ACCOUNT));
    assert_eq!(docdb_snapshots_in(&emulator, DR_ACCOUNT).len(), 3);

    // Deleting deletes in the account.
    h.copies()
        .delete("dr-copy", &Default::default())
        .await
        .unwrap();
    h.copies()
        .delete("home-copy", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("dr-copy").await;
    // The account unusable (its role no longer trusts the operator): a deletion waits,
    // keeping the finalizer and the snapshot, and goes on once it is Ready again.
    trust(&emulator, &["111111111111"]);
    wait_account(&accounts, &name, "not Ready", |s| {
        ready(s).is_some_and(|r| r.0 == "False")
    })
    .await;
    h.snapshots()
        .delete("in-dr", &Default::default())
        .await
        .unwrap();
    let waiting = h
        .wait_for(
            "in-dr",
            Duration::from_secs(60),
            |_| {},
            |s| {
                stalled("AccountNotReady")(s)
                    && s.phase == Some(dbsnapshot_operator::api::Phase::Deleting)
            },
        )
        .await;
    let message = &condition(&waiting, "Ready").unwrap().message;
    assert!(message.contains("remove its finalizer"), "{message}");
    assert!(
        docdb_snapshots_in(&emulator, DR_ACCOUNT)
            .iter()
            .any(|(s, _)| *s == id),
        "the snapshot stays while its account cannot be used"
    );
    trust(&emulator, &["123456789012"]);
    h.wait_gone("in-dr").await;
    theirs
        .delete("outsider", &Default::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while theirs.get_opt("outsider").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "outsider never went");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(docdb_snapshots_in(&emulator, DR_ACCOUNT), vec![]);
    assert_eq!(h.calls()["refusedCredentials"], 0);
    accounts.delete(&name, &Default::default()).await.unwrap();
}

async fn wait_status(
    api: &kube::Api<dbsnapshot_operator::api::ClusterSnapshot>,
    name: &str,
    done: impl Fn(&dbsnapshot_operator::api::SnapshotStatus) -> bool,
) -> dbsnapshot_operator::api::SnapshotStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = api.get(name).await.unwrap().status.unwrap_or_default();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{name}: never there: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sessions of 20 s in the emulator: over a minute the operator keeps working in the
/// account (a tag change every 10 s, each made there) on renewed credentials, with no
/// call refused for expired credentials and no reconcile failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_expiring_mid_run_are_renewed_with_no_failed_reconcile() {
    let _turn = operator_turn().await;
    let (addr, state, _task) = aws_emulator::start(
        0,
        Options {
            snapshot_seconds: 0.5,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let mut h = Harness::with_aws("acct-expiry", &format!("http://{addr}")).await;
    h.emulator = Some(state.clone());
    state.lock().unwrap().session_seconds = 20.0;
    trust(&state, &["123456789012"]);
    let metrics = format!("127.0.0.1:{}", free_port());
    h.start_operator(&["--metrics-addr", &metrics]);
    seed_dr_orders(&h).await;
    let (accounts, name) = create_dr_account(&h).await;
    h.create(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "ClusterSnapshot",
        "metadata": {"name": "nightly"},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "account": name}}))
        .await
        .unwrap();
    h.wait_ready("nightly").await;
    // Failures counted before (the object may have waited, Stalled AccountNotReady, for
    // the AWSAccount's first check) do not count.
    let failures = || async {
        let body = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines()
            .filter(|l| {
                l.starts_with("dbsnapshot_reconcile_errors_total")
                    || (l.starts_with("dbsnapshot_reconciles_total")
                        && l.contains("outcome=\"error\""))
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = failures().await;
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(60) {
        round += 1;
        h.patch_spec(
            "nightly",
            serde_json::json!({"tags": {"round": round.to_string()}}),
        )
        .await;
        let obj = h.snapshots().get("nightly").await.unwrap();
        let generation = obj.metadata.generation;
        let status = h
            .wait_for(
                "nightly",
                Duration::from_secs(30),
                |_| {},
                |s| is_ready(s) && s.observed_generation == generation,
            )
            .await;
        assert_eq!(status.tags.get("round"), Some(&round.to_string()));
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let c = h.calls();
    assert_eq!(c["refusedCredentials"], 0, "{c}");
    let assumed = c["calls"]["sts"]["AssumeRole"].as_u64().unwrap();
    assert!(
        assumed >= 4,
        "sessions of 20 s over a minute: {assumed} AssumeRole calls"
    );
    let tagged = c["calls"]["docdb"]["AddTagsToResource"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        tagged >= round,
        "{tagged} tag calls for {round} rounds: {c}"
    );
    assert_eq!(failures().await, before, "reconciles failed meanwhile");
    h.snapshots()
        .delete("nightly", &Default::default())
        .await
        .unwrap();
    h.wait_gone("nightly").await;
    assert_eq!(docdb_snapshots_in(&state, DR_ACCOUNT), vec![]);
    accounts.delete(&name, &Default::default()).await.unwrap();
}

/// Accounts a DocumentDB snapshot of one account is shared with (its `restore`); the
/// snapshot must exist.
fn docdb_restore(emulator: &aws_emulator::server::Shared, account: &str, id: &str) -> Vec<String> {
    let st = emulator.lock().unwrap();
    st.regions
        .values()
        .flat_map(|r| r.docdb.snapshots.values())
        .find(|s| s.account == account && s.id == id)
        .map(|s| s.restore.clone())
        .unwrap_or_else(|| panic!("no DocumentDB snapshot {id} in account {account}"))
}

/// A DocumentDB ClusterSnapshot of the operator's own account copied into another
/// account by a SnapshotCopy with spec.account and shareSourceWhileCopying: the source
/// is shared with the destination only while the copy runs (revoked once it is made,
/// and when a copy is deleted mid-way, which cancels it); a copy that does not ask for
/// the share, of a source not shared, waits saying how to fix it. A copy AWS fails
/// gives the share up too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_into_another_account_shares_its_source_only_while_copying() {
    let _turn = operator_turn().await;
    let h = Harness::new("acct-xcopy", 0.5).await;
    let emulator = h.emulator.clone().unwrap();
    trust(&emulator, &["123456789012"]);
    seed_clusters(&h.aws).await;
    let (accounts, name) = create_dr_account(&h).await;
    h.create(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "ClusterSnapshot",
        "metadata": {"name": "prod"},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}))
        .await
        .unwrap();
    let source = h.wait_ready("prod").await.snapshot_identifier.unwrap();
    assert_eq!(
        docdb_restore(&emulator, "123456789012", &source),
        Vec::<String>::new()
    );

    // Copies take 4 s: the share is there while the copy runs, and gone after.
    h.set_snapshot_seconds(4.0);
    let copy = |n: &str, asks: bool| {
        serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
            "metadata": {"name": n},
            "spec": {"source": {"clusterSnapshotRef": {"name": "prod"}}, "account": name,
                     "shareSourceWhileCopying": asks}})
    };
    h.create_copy(copy("to-dr", true)).await.unwrap();
    let shared_while_copying = std::cell::Cell::new(false);
    let status = h
        .wait_copy("to-dr", Duration::from_secs(60), |s| {
            if s.phase == Some(dbsnapshot_operator::api::Phase::Creating)
                && docdb_restore(&emulator, "123456789012", &source) == [DR_ACCOUNT]
            {
                shared_while_copying.set(true);
            }
            is_ready(s)
        })
        .await;
    assert!(
        shared_while_copying.get(),
        "the source was never seen shared while copying"
    );
    assert_eq!(status.account_id.as_deref(), Some(DR_ACCOUNT));
    let target = status.snapshot_identifier.clone().unwrap();
    assert!(
        docdb_snapshots_in(&emulator, DR_ACCOUNT)
            .iter()
            .any(|(id, _)| *id == target)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docdb_restore(&emulator, "123456789012", &source).is_empty() {
        assert!(Instant::now() < deadline, "the share was never revoked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleted mid-way: the copy is cancelled and the share revoked.
    h.set_snapshot_seconds(60.0);
    h.create_copy(copy("cancelled", true)).await.unwrap();
    let status = h
        .wait_copy("cancelled", Duration::from_secs(60), |s| {
            s.phase == Some(dbsnapshot_operator::api::Phase::Creating)
        })
        .await;
    let cancelled = status.snapshot_identifier.clone().unwrap();
    assert_eq!(
        docdb_restore(&emulator, "123456789012", &source),
        [DR_ACCOUNT]
    );
    h.copies()
        .delete("cancelled", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("cancelled").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docdb_restore(&emulator, "123456789012", &source).is_empty() {
        assert!(Instant::now() < deadline, "the share was never revoked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !docdb_snapshots_in(&emulator, DR_ACCOUNT)
            .iter()
            .any(|(id, _)| *id == cancelled),
        "the cancelled copy is gone"
    );

    // A copy AWS fails: the share is revoked, the copy says Failed.
    h.create_copy(copy("failing", true)).await.unwrap();
    let status = h
        .wait_copy("failing", Duration::from_secs(60), |s| {
            s.phase == Some(dbsnapshot_operator::api::Phase::Creating) && s.arn.is_some()
        })
        .await;
    assert_eq!(
        docdb_restore(&emulator, "123456789012", &source),
        [DR_ACCOUNT]
    );
    let failing = status.snapshot_identifier.clone().unwrap();
    fail_dr_snapshot(&h, &failing, "us-east-1").await;
    h.wait_copy("failing", Duration::from_secs(60), |s| {
        s.phase == Some(dbsnapshot_operator::api::Phase::Failed)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docdb_restore(&emulator, "123456789012", &source).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the share was never revoked after the copy failed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.copies()
        .delete("failing", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("failing").await;

    // Not asking, and not shared: it waits, saying how to fix it, and calls no copy.
    h.set_snapshot_seconds(0.5);
    h.create_copy(copy("unshared", false)).await.unwrap();
    let status = h
        .wait_copy("unshared", Duration::from_secs(60), |s| {
            stalled_reason(s).as_deref() == Some("SourceNotReady")
        })
        .await;
    let message = &condition(&status, "Ready").unwrap().message;
    assert!(
        message.contains(&format!("add {DR_ACCOUNT} to its spec.sharedWith")),
        "{message}"
    );
    assert_eq!(h.count("docdb", "CopyDBClusterSnapshot"), 3);
    for c in ["to-dr", "unshared"] {
        h.copies().delete(c, &Default::default()).await.unwrap();
        h.wait_copy_gone(c).await;
    }
    h.snapshots()
        .delete("prod", &Default::default())
        .await
        .unwrap();
    h.wait_gone("prod").await;
    assert_eq!(docdb_snapshots_in(&emulator, DR_ACCOUNT), vec![]);
    accounts.delete(&name, &Default::default()).await.unwrap();
}

/// A two-hop copy (`body`) made with a 3 s first hop, then its second hop under way
/// (copies taking `second_seconds`): its status, the copy's identifier and the
/// intermediate copy's.
async fn in_second_hop(
    h: &Harness,
    body: serde_json::Value,
    second_seconds: f64,
) -> (dbsnapshot_operator::api::SnapshotStatus, String, String) {
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    h.set_snapshot_seconds(3.0);
    h.create_copy(body).await.unwrap();
    h.wait_copy(&name, Duration::from_secs(60), |s| {
        s.intermediate.as_ref().and_then(|i| i.phase) == Some(Phase::Creating)
    })
    .await;
    h.set_snapshot_seconds(second_seconds);
    let status = h
        .wait_copy(&name, Duration::from_secs(60), |s| {
            s.copy_requested == Some(true) && s.arn.is_some()
        })
        .await;
    let id = status.snapshot_identifier.clone().unwrap();
    let hop = status.intermediate.clone().unwrap().snapshot_identifier;
    (status, id, hop)
}

/// Has the emulator fail the DR account's DocumentDB snapshot `id` in `region`, as AWS
/// marks a copy that failed.
async fn fail_dr_snapshot(h: &Harness, id: &str, region: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/snapshots/fail", h.aws_url))
        .json(&serde_json::json!({"service": "docdb", "identifier": id,
                                  "region": region, "account": DR_ACCOUNT}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");
}

/// A DocumentDB ClusterSnapshot in us-east-1 copied into another account in eu-west-1
/// by one SnapshotCopy with shareSourceWhileCopying. AWS copies a shared snapshot only
/// within its region, so the operator copies it into the destination account in
/// us-east-1 first (the intermediate copy), copies that to eu-west-1 and deletes it.
/// The source is shared only while the intermediate copy is made; deleting the object
/// mid-way cancels the intermediate copy and revokes the share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_into_another_account_and_region_goes_through_an_intermediate_copy() {
    let _turn = operator_turn().await;
    let h = Harness::new("acct-xregion", 0.5).await;
    let emulator = h.emulator.clone().unwrap();
    trust(&emulator, &["123456789012"]);
    seed_clusters(&h.aws).await;
    let (accounts, name) = create_dr_account(&h).await;
    h.create(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "ClusterSnapshot",
        "metadata": {"name": "prod"},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "region": "us-east-1"}}))
        .await
        .unwrap();
    let source = h.wait_ready("prod").await.snapshot_identifier.unwrap();
    let copy = |n: &str| {
        serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
            "metadata": {"name": n},
            "spec": {"source": {"clusterSnapshotRef": {"name": "prod"}}, "account": name,
                     "region": "eu-west-1", "shareSourceWhileCopying": true,
                     "deletionPolicy": "Delete"}})
    };

    // Copies take 4 s: shared while the intermediate copy is made, not after.
    h.set_snapshot_seconds(4.0);
    h.create_copy(copy("to-dr-west")).await.unwrap();
    let shared_while_copying = std::cell::Cell::new(false);
    let wrong_source = std::cell::RefCell::new(None);
    let status = h
        .wait_copy("to-dr-west", Duration::from_secs(90), |s| {
            let shared = docdb_restore(&emulator, "123456789012", &source) == [DR_ACCOUNT];
            if shared && s.intermediate.as_ref().and_then(|i| i.phase) == Some(Phase::Creating) {
                shared_while_copying.set(true);
            }
            // The source shown is the one the spec names, never the intermediate copy.
            if let Some(shown) = &s.source_snapshot_identifier
                && *shown != source
            {
                wrong_source.replace(Some(shown.clone()));
            }
            is_ready(s) && s.intermediate.as_ref().and_then(|i| i.deleted) == Some(true)
        })
        .await;
    assert!(
        shared_while_copying.get(),
        "the source was never seen shared while the intermediate copy was made"
    );
    assert_eq!(wrong_source.take(), None, "status showed another source");
    assert!(
        status
            .source_arn
            .as_deref()
            .is_some_and(|a| a.ends_with(&format!(":{source}"))),
        "{:?}",
        status.source_arn
    );
    assert_eq!(status.account_id.as_deref(), Some(DR_ACCOUNT));
    assert_eq!(status.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        status.source_snapshot_identifier.as_deref(),
        Some(source.as_str())
    );
    let target = status.snapshot_identifier.clone().unwrap();
    let intermediate = status.intermediate.clone().unwrap();
    assert_eq!(intermediate.region, "us-east-1");
    assert!(
        intermediate
            .snapshot_identifier
            .contains("-to-dr-west-hop-"),
        "{intermediate:?}"
    );
    // The copy is in the DR account in eu-west-1; the intermediate copy is gone.
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &target),
        ["eu-west-1"]
    );
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &intermediate.snapshot_identifier),
        Vec::<String>::new()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docdb_restore(&emulator, "123456789012", &source).is_empty() {
        assert!(Instant::now() < deadline, "the share was never revoked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Two copy calls by the DR account (one per hop), none by the source's.
    assert_eq!(h.count("docdb", "CopyDBClusterSnapshot"), 2);

    // Deleted mid-way (the intermediate copy still being made): it is cancelled, and the
    // share revoked.
    h.set_snapshot_seconds(60.0);
    h.create_copy(copy("cancelled-west")).await.unwrap();
    let status = h
        .wait_copy("cancelled-west", Duration::from_secs(60), |s| {
            s.intermediate
                .as_ref()
                .is_some_and(|i| i.arn.is_some() && i.phase == Some(Phase::Creating))
        })
        .await;
    let cancelled = status.snapshot_identifier.clone().unwrap();
    let cancelled_hop = status.intermediate.clone().unwrap().snapshot_identifier;
    assert_eq!(status.phase, Some(Phase::Creating));
    let message = &condition(&status, "Ready").unwrap().message;
    assert!(message.contains("intermediate copy"), "{message}");
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &cancelled_hop),
        ["us-east-1"]
    );
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &cancelled),
        Vec::<String>::new()
    );
    assert_eq!(
        docdb_restore(&emulator, "123456789012", &source),
        [DR_ACCOUNT]
    );
    h.copies()
        .delete("cancelled-west", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("cancelled-west").await;
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &cancelled_hop),
        Vec::<String>::new(),
        "the intermediate copy is cancelled"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docdb_restore(&emulator, "123456789012", &source).is_empty() {
        assert!(Instant::now() < deadline, "the share was never revoked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleted while the intermediate copy is copied across regions: the copy is
    // cancelled, then the intermediate copy deleted.
    let (status, late, late_hop) = in_second_hop(&h, copy("late-west"), 60.0).await;
    assert_eq!(status.phase, Some(Phase::Creating));
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &late),
        ["eu-west-1"]
    );
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &late_hop),
        ["us-east-1"]
    );
    h.copies()
        .delete("late-west", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("late-west").await;
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &late),
        Vec::<String>::new(),
        "the copy is cancelled"
    );
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &late_hop),
        Vec::<String>::new(),
        "the intermediate copy is deleted"
    );

    // The copy failed on AWS: it is Failed, and its intermediate copy goes at once.
    let (_, broken, broken_hop) = in_second_hop(&h, copy("broken-west"), 60.0).await;
    fail_dr_snapshot(&h, &broken, "eu-west-1").await;
    let status = h
        .wait_copy("broken-west", Duration::from_secs(60), |s| {
            s.phase == Some(Phase::Failed)
                && s.intermediate.as_ref().and_then(|i| i.deleted) == Some(true)
        })
        .await;
    assert_eq!(stalled_reason(&status).as_deref(), Some("Failed"));
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &broken_hop),
        Vec::<String>::new()
    );
    h.copies()
        .delete("broken-west", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("broken-west").await;
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &broken),
        Vec::<String>::new()
    );

    // With Retain, deleted while the intermediate copy is copied across regions: the
    // copy is kept, so the intermediate copy is deleted only once AWS has made it.
    let mut keep = copy("kept-west");
    keep["spec"]["deletionPolicy"] = serde_json::json!("Retain");
    let (_, kept, kept_hop) = in_second_hop(&h, keep, 8.0).await;
    h.copies()
        .delete("kept-west", &Default::default())
        .await
        .unwrap();
    let waiting = h
        .wait_copy("kept-west", Duration::from_secs(30), |s| {
            s.phase == Some(Phase::Deleting)
        })
        .await;
    let message = &condition(&waiting, "Ready").unwrap().message;
    assert!(
        message.contains("waiting for AWS to finish the copy"),
        "{message}"
    );
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &kept_hop),
        ["us-east-1"],
        "the intermediate copy stays while the kept copy is made of it"
    );
    h.wait_copy_gone("kept-west").await;
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &kept),
        ["eu-west-1"]
    );
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &kept_hop),
        Vec::<String>::new()
    );
    {
        let state = emulator.lock().unwrap();
        let made = state.regions["eu-west-1"]
            .docdb
            .snapshots
            .values()
            .find(|s| s.id == kept && s.account == DR_ACCOUNT)
            .map(|s| {
                !s.failed && s.deleting.is_none() && s.progress.done(std::time::Instant::now())
            });
        assert_eq!(made, Some(true), "the kept copy was made, not failed");
    }
    emulator
        .lock()
        .unwrap()
        .regions
        .get_mut("eu-west-1")
        .unwrap()
        .docdb
        .snapshots
        .retain(|_, s| s.id != kept);

    h.copies()
        .delete("to-dr-west", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("to-dr-west").await;

    // The ClusterSnapshot deleted while the intermediate copy is made of it: it waits
    // for that copy (not for the rest, which is copied from the intermediate copy).
    h.set_snapshot_seconds(6.0);
    h.create_copy(copy("last-west")).await.unwrap();
    h.wait_copy("last-west", Duration::from_secs(60), |s| {
        s.intermediate.as_ref().and_then(|i| i.phase) == Some(Phase::Creating)
    })
    .await;
    h.snapshots()
        .delete("prod", &Default::default())
        .await
        .unwrap();
    let deleting = h
        .wait_for(
            "prod",
            Duration::from_secs(30),
            |_| {},
            |s| condition(s, "Ready").is_some_and(|c| c.message.contains("last-west")),
        )
        .await;
    assert_eq!(deleting.phase, Some(Phase::Deleting));
    h.set_snapshot_seconds(0.5);
    h.wait_gone("prod").await;
    let status = h
        .wait_copy("last-west", Duration::from_secs(60), |s| {
            is_ready(s) && s.intermediate.as_ref().and_then(|i| i.deleted) == Some(true)
        })
        .await;
    assert_eq!(
        docdb_regions_of(&emulator, DR_ACCOUNT, &status.snapshot_identifier.unwrap()),
        ["eu-west-1"]
    );
    h.copies()
        .delete("last-west", &Default::default())
        .await
        .unwrap();
    h.wait_copy_gone("last-west").await;
    assert_eq!(docdb_snapshots_in(&emulator, DR_ACCOUNT), vec![]);
    accounts.delete(&name, &Default::default()).await.unwrap();
}

/// With --max-poll-seconds and --resync-seconds at 600, an object waiting for an
/// AWSAccount that does not exist yet is looked at again only because the account's
/// readiness wakes it: created and Ready, the account's objects go on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_waiting_for_an_account_are_woken_when_it_becomes_ready() {
    let _turn = operator_turn().await;
    let mut h = Harness::new("acct-wake", 0.5).await;
    let emulator = h.emulator.clone().unwrap();
    trust(&emulator, &["123456789012"]);
    h.operator = None;
    h.start_operator(&["--max-poll-seconds", "600", "--resync-seconds", "600"]);
    seed_dr_orders(&h).await;
    let name = format!("{}-dr", h.ns);
    h.create(serde_json::json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "ClusterSnapshot",
        "metadata": {"name": "waits"},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "account": name}}))
        .await
        .unwrap();
    let s = h
        .wait_for(
            "waits",
            Duration::from_secs(60),
            |_| {},
            |s| stalled_reason(s).as_deref() == Some("AccountNotReady"),
        )
        .await;
    let message = &condition(&s, "Ready").unwrap().message;
    assert!(message.starts_with("spec.account:"), "{message}");
    // Past the first look's backoff, so that only the wake-up can bring it back soon.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (accounts, created) = create_dr_account(&h).await;
    assert_eq!(created, name);
    // (Looked at again by itself only after 600 s.)
    let s = h
        .wait_for("waits", Duration::from_secs(60), |_| {}, is_ready)
        .await;
    assert_eq!(s.account_id.as_deref(), Some(DR_ACCOUNT));
    h.snapshots()
        .delete("waits", &Default::default())
        .await
        .unwrap();
    h.wait_gone("waits").await;
    assert_eq!(docdb_snapshots_in(&emulator, DR_ACCOUNT), vec![]);
    accounts.delete(&name, &Default::default()).await.unwrap();
}
