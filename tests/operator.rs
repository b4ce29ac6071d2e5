//! The operator process itself: health, readiness and metrics endpoints, JSON logs,
//! clean exit on SIGTERM, Kubernetes Events, AWS failures and out-of-band deletion.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use serde_json::json;

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_json_logs_events_and_sigterm() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let url = format!("http://{addr}");
    let mut h = Harness::with_aws("endpoints", &url).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    h.start_operator(&[
        "--metrics-addr",
        &metrics,
        "--log-format",
        "json",
        "--concurrency",
        "2",
    ]);
    let base = format!("http://{metrics}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{base}/readyz")).await != (200, "ok".to_string()) {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(&format!("{base}/healthz")).await,
        (200, "ok".to_string())
    );

    h.create(json!({"metadata": {"name": "m"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    h.wait_ready("m").await;
    let (code, body) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"dbsnapshot_reconciles_total{kind="ClusterSnapshot",outcome="ok"}"#),
        "{body}"
    );
    assert!(body.contains("dbsnapshot_reconcile_duration_seconds_bucket"));
    assert!(
        body.contains(r#"dbsnapshot_aws_calls_total{service="redshift",operation="CreateClusterSnapshot",outcome="ok"} 1"#),
        "{body}"
    );
    // Objects by kind, engine and phase (refreshed every few seconds).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = get(&format!("{base}/metrics")).await;
        if body.contains(
            r#"dbsnapshot_objects{kind="ClusterSnapshot",engine="redshift",phase="Available"} 1"#,
        ) {
            break;
        }
        assert!(Instant::now() < deadline, "no object gauge:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Throttles are counted per attempt.
    h.set_faults(json!({"throttleFraction": 1.0}));
    h.create(json!({"metadata": {"name": "t"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = get(&format!("{base}/metrics")).await;
        if body.contains(r#"dbsnapshot_aws_throttles_total{service="redshift"}"#)
            && body.contains(r#"outcome="throttled""#)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no throttle counted:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.set_faults(json!({"throttleFraction": 0.0}));

    // Events on the object for each transition.
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let list = events.list(&Default::default()).await.unwrap();
    let reasons: Vec<String> = list
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("m"))
        .filter_map(|e| e.reason.clone())
        .collect();
    // The first Pending (the identifier recorded) has no Event; the create's own Event
    // (Created) says the snapshot is being made, and no Creating Event repeats it.
    for r in ["Created", "Available"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "no {r} event in {reasons:?}"
        );
    }
    for r in ["Pending", "Creating"] {
        assert!(
            !reasons.iter().any(|x| x == r),
            "a {r} event in {reasons:?}"
        );
    }

    // Every log line is JSON.
    let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }

    // SIGTERM: a clean, prompt exit.
    let op = h.operator.as_mut().unwrap();
    let pid = op.pid();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = op.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the operator did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_failed_snapshots_stall_with_awss_status() {
    let h = Harness::new("failed", 30.0).await;
    seed_clusters(&h.aws).await;
    h.create(json!({"metadata": {"name": "doomed"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "snapshotIdentifier": "doomed"}}))
        .await
        .unwrap();
    h.wait_for(
        "doomed",
        Duration::from_secs(30),
        |_| {},
        |s| s.arn.is_some(),
    )
    .await;
    {
        let state = h.emulator.as_ref().unwrap();
        let mut st = state.lock().unwrap();
        let snap = st
            .region("us-east-1")
            .docdb
            .snapshots
            .values_mut()
            .find(|s| s.id == "doomed")
            .unwrap();
        snap.failed = true;
    }
    let s = h
        .wait_for(
            "doomed",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).is_some(),
        )
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("Failed"));
    assert_eq!(s.phase, Some(dbsnapshot_operator::api::Phase::Failed));
    assert_eq!(s.aws_status.as_deref(), Some("failed"));
    assert!(condition(&s, "Ready").unwrap().message.contains("failed"));
    assert_eq!(condition(&s, "Ready").unwrap().status, "False");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_deleted_out_of_band_are_not_recreated() {
    let h = Harness::new("oob", 0.5).await;
    seed_clusters(&h.aws).await;
    h.create(json!({"metadata": {"name": "vanishing"}, "spec": {"source": {"elasticache": {"cacheClusterId": "solo"}}, "snapshotIdentifier": "vanishing"}}))
        .await
        .unwrap();
    h.wait_ready("vanishing").await;
    h.elasticache()
        .delete_snapshot()
        .snapshot_name("vanishing")
        .send()
        .await
        .unwrap();
    let s = h
        .wait_for(
            "vanishing",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).is_some(),
        )
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("NotFound"));
    assert!(!is_ready(&s));
    // Several resyncs later it still has not been recreated.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(h.calls()["calls"]["elasticache"]["CreateSnapshot"], 1);
    // Deleting the object is fine.
    h.snapshots()
        .delete("vanishing", &Default::default())
        .await
        .unwrap();
    h.wait_gone("vanishing").await;
}

/// An empty `--namespace` (or DBSNAPSHOT_NAMESPACE) is refused, naming the flag, instead
/// of widening the watch to every namespace.
#[test]
fn an_empty_namespace_list_is_refused_not_taken_for_all_namespaces() {
    for (args, env) in [
        (vec!["run", "--namespace", " , "], None),
        (vec!["run"], Some(" ")),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dbsnapshot-operator"));
        cmd.args(&args)
            .env_remove("DBSNAPSHOT_NAMESPACE")
            .env("KUBECONFIG", "/nonexistent");
        if let Some(v) = env {
            cmd.env("DBSNAPSHOT_NAMESPACE", v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("--namespace (DBSNAPSHOT_NAMESPACE) names no namespace"),
            "{args:?} {env:?}: {stderr}"
        );
    }
}

/// Bad operator-wide defaults stop the operator at start, naming the flag, the tag and
/// the rule, before it touches anything.
#[test]
fn bad_operator_defaults_are_refused_at_start() {
    for (args, want) in [
        (
            vec!["run", "--default-tags", "team=data,aws:owner=me"],
            "--default-tags (DBSNAPSHOT_DEFAULT_TAGS): default tag[aws:owner]: tag keys starting with aws: or dbsnapshot.io/ are reserved",
        ),
        (
            vec!["run", "--default-tags", "team=a;b"],
            "--default-tags (DBSNAPSHOT_DEFAULT_TAGS): default tag[team]: ';' is not allowed",
        ),
        (
            vec!["run", "--default-tags", "owner=ops@example"],
            "--default-tags (DBSNAPSHOT_DEFAULT_TAGS): default tag[owner]: '@' is not allowed in a DocumentDB tag",
        ),
        (
            vec!["run", "--default-tags", "team"],
            "--default-tags (DBSNAPSHOT_DEFAULT_TAGS): \"team\" is not key=value",
        ),
        (
            vec!["run", "--default-deletion-policy", "Keep"],
            "invalid value 'Keep' for '--default-deletion-policy",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbsnapshot-operator"))
            .args(&args)
            .env_remove("DBSNAPSHOT_DEFAULT_TAGS")
            .env_remove("DBSNAPSHOT_DEFAULT_DELETION_POLICY")
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
