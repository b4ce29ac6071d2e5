//! Outages of what the operator depends on, during a lifecycle: AWS unreachable for
//! 30 s, then the kube-apiserver down for 30 s. The operator keeps running, reports
//! not ready on /readyz only while it cannot work, and converges afterwards. The
//! kube-apiserver here is one of the test's own (target/testbed-outage), so that
//! stopping it disturbs no other test.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dbsnapshot_operator::api::{ClusterSnapshot, SnapshotStatus};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

async fn readyz(base: &str) -> (u16, String) {
    match reqwest::get(format!("{base}/readyz")).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Polls /readyz until `want` holds; the answers seen on the way.
async fn wait_readyz(base: &str, limit: Duration, want: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (code, body) = readyz(base).await;
        if want(code, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {code} {body:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn status(api: &Api<ClusterSnapshot>, name: &str) -> Option<SnapshotStatus> {
    api.get(name).await.ok()?.status
}

async fn wait_ready(api: &Api<ClusterSnapshot>, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = status(api, name).await
            && is_ready(&s)
        {
            assert!(!is_stalled(&s), "{name}: {s:?}");
            return;
        }
        assert!(Instant::now() < deadline, "{name} not Ready in {limit:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_and_apiserver_outages_are_survived_and_shown_on_readyz() {
    let state = root().join("target/testbed-outage");
    let kubeconfig = testbed(&state);
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = std::process::Command::new("bash")
                .arg(root().join("tests/testbed/down.sh"))
                .env("TESTBED_STATE", &self.0)
                .output();
        }
    }
    let _down = Down(state.clone());
    let client = client_for(&kubeconfig).await;
    install_crds(&client).await;
    let ns = format!("outage-{}", std::process::id());
    create_namespace(&client, &ns).await;
    let (addr, emulator, _task) = aws_emulator::start(
        0,
        aws_emulator::Options {
            snapshot_seconds: 20.0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let aws = aws_config(
        &format!("http://{addr}"),
        aws_config::retry::RetryConfig::standard(),
    )
    .await;
    seed_clusters(&aws).await;
    let mut proxy = Proxy::start(addr).await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{metrics}");
    let mut operator = Operator::start_with_env(
        &ns,
        &proxy.url(),
        &["--metrics-addr", &metrics],
        &kubeconfig,
        &ns,
        &[],
    );
    wait_readyz(&base, Duration::from_secs(30), |c, _| c == 200).await;
    let api: Api<ClusterSnapshot> = Api::namespaced(client.clone(), &ns);
    let create = |name: &str, source: serde_json::Value| {
        let api = api.clone();
        let obj: ClusterSnapshot =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"source": source}}))
                .unwrap();
        async move { api.create(&PostParams::default(), &obj).await.unwrap() }
    };

    // AWS away for 30 s while a snapshot is being made.
    create("a", json!({"redshift": {"clusterIdentifier": "analytics"}})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&api, "a").await.and_then(|s| s.arn).is_none() {
        assert!(Instant::now() < deadline, "a was never created");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.cut();
    let cut_at = Instant::now();
    let why = wait_readyz(&base, Duration::from_secs(25), |c, _| c == 503).await;
    assert!(why.contains("AWS"), "{why}");
    while cut_at.elapsed() < Duration::from_secs(30) {
        assert!(operator.try_wait().is_none(), "the operator exited");
        let (code, body) = readyz(&base).await;
        assert_eq!(code, 503, "ready while AWS is away: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    proxy.restore().await;
    wait_readyz(&base, Duration::from_secs(60), |c, _| c == 200).await;
    wait_ready(&api, "a", Duration::from_secs(90)).await;

    // The kube-apiserver away for 30 s while another snapshot is being made.
    create("b", json!({"docdb": {"clusterIdentifier": "orders"}})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&api, "b").await.and_then(|s| s.arn).is_none() {
        assert!(Instant::now() < deadline, "b was never created");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restart = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(root().join("tests/testbed/restart-apiserver.sh"))
                .arg("30")
                .env("TESTBED_STATE", &state)
                .output()
                .expect("restart-apiserver.sh")
        })
    };
    let why = wait_readyz(&base, Duration::from_secs(25), |c, _| c == 503).await;
    assert!(why.contains("API server"), "{why}");
    let mut saw_down = 0;
    while !restart.is_finished() {
        assert!(operator.try_wait().is_none(), "the operator exited");
        if readyz(&base).await.0 == 503 {
            saw_down += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = restart.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(saw_down > 20, "not ready for only {saw_down} looks");
    wait_readyz(&base, Duration::from_secs(60), |c, _| c == 200).await;
    wait_ready(&api, "b", Duration::from_secs(90)).await;
    assert!(operator.try_wait().is_none(), "the operator exited");

    // Everything still deletes cleanly: nothing left on AWS.
    for name in ["a", "b"] {
        api.delete(name, &Default::default()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "objects not deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(aws_snapshots_of(&emulator).is_empty());
    operator.kill();
}
