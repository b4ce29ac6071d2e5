//! Leader election: two operator processes against the test bed; exactly one
//! reconciles; kill it and the other takes over within the lease duration.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap()
}

async fn ready(port: u16) -> bool {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .is_ok_and(|r| r.status() == 200)
}

fn log_has(op: &Operator, text: &str) -> bool {
    std::fs::read_to_string(&op.log)
        .unwrap_or_default()
        .contains(text)
}

async fn wait_log(op: &Operator, text: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    while !log_has(op, text) {
        assert!(
            start.elapsed() < timeout,
            "{:?} never logged {text:?}",
            op.log
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_reconciles_and_a_standby_takes_over() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let url = format!("http://{addr}");
    let mut h = Harness::with_aws("leader", &url).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    const LEASE: u64 = 4;
    let (pa, pb) = (free_port(), free_port());
    let lease_args = |port: u16| {
        vec![
            "--leader-election".to_string(),
            "--lease-duration-seconds".to_string(),
            LEASE.to_string(),
            "--metrics-addr".to_string(),
            format!("127.0.0.1:{port}"),
        ]
    };
    let args_a = lease_args(pa);
    let args_b = lease_args(pb);
    let a_args: Vec<&str> = args_a.iter().map(String::as_str).collect();
    let b_args: Vec<&str> = args_b.iter().map(String::as_str).collect();
    let mut a = Operator::start_logged(&h.ns, &url, &a_args, &kubeconfig(), &format!("{}-a", h.ns));
    wait_log(&a, "became the leader", Duration::from_secs(30)).await;
    let b = Operator::start_logged(&h.ns, &url, &b_args, &kubeconfig(), &format!("{}-b", h.ns));
    wait_log(&b, "standby", Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(ready(pa).await && ready(pb).await) {
        assert!(Instant::now() < deadline, "both replicas should be ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    h.create(json!({"metadata": {"name": "first"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    h.wait_ready("first").await;
    assert!(
        metrics(pa).await.contains("dbsnapshot_reconciles_total{"),
        "the leader did not reconcile"
    );
    assert!(
        !metrics(pb).await.contains("dbsnapshot_reconciles_total{"),
        "the standby reconciled"
    );
    assert!(!log_has(&b, "became the leader"));

    // The leader dies; the standby takes over within the lease duration.
    a.kill();
    let took = wait_log(&b, "became the leader", Duration::from_secs(LEASE * 3)).await;
    println!(
        "the standby took over {:.1}s after the leader was killed (lease {LEASE}s)",
        took.as_secs_f64()
    );
    assert!(
        took <= Duration::from_secs(LEASE + 2),
        "took over after {took:?}"
    );
    h.create(json!({"metadata": {"name": "second"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}))
        .await
        .unwrap();
    h.wait_ready("second").await;
    assert!(metrics(pb).await.contains("dbsnapshot_reconciles_total{"));
    drop(b);
}
