//! What a platform team watches: `kubectl get` says why an object is not Ready (the
//! Reason and, with `-o wide`, Message printer columns; Region for copies), the metrics
//! that alert, the alert rules of deploy/prometheus/rules.yaml (checked and unit-tested
//! by promtool), and the Grafana dashboard of deploy/grafana/dashboard.json, whose
//! queries, like the rules', only read metrics a running operator serves.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use dbsnapshot_operator::api::SnapshotSchedule;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// deploy/prometheus/rules.yaml, as JSON.
fn rules() -> Value {
    serde_saphyr::from_str(&read("deploy/prometheus/rules.yaml"))
        .expect("deploy/prometheus/rules.yaml is YAML")
}

/// Every PromQL expression of the rules and of the dashboard, named by where it is.
fn queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in rules()["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            out.push((
                format!("rules.yaml {}", rule["alert"]),
                rule["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json"))
        .expect("deploy/grafana/dashboard.json is JSON");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("dashboard.json {}", panel["title"]),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The `dbsnapshot_*` metric names a PromQL expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("dbsnapshot_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// promtool, installed by tests/testbed/install-promtool.sh if it is missing. Without
/// it the test is skipped, except in CI (`CI` set), where it fails.
fn promtool() -> Option<PathBuf> {
    let works = || {
        Command::new("promtool")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works() {
        let _ = Command::new("bash")
            .arg(root().join("tests/testbed/install-promtool.sh"))
            .status();
    }
    if works() {
        return Some(PathBuf::from("promtool"));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing and tests/testbed/install-promtool.sh could not install it \
         (Debian package prometheus)"
    );
    eprintln!("skipped: promtool is missing (tests/testbed/install-promtool.sh installs it)");
    None
}

/// The alerts a platform team needs, checked by `promtool check rules` and shown to
/// fire (and not too early) by `promtool test rules` on made-up series.
#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let rules = rules();
    assert_eq!(rules["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rules["kind"], "PrometheusRule");
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = root().join(format!("target/it-logs/promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // promtool reads a plain rule file: the PrometheusRule's spec.
    std::fs::write(
        dir.join("rules.yaml"),
        serde_saphyr::to_string(&rules["spec"]).unwrap(),
    )
    .unwrap();
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(dir.join("rules.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let absent = json!({
        "summary": "No ready dbsnapshot-operator",
        "description": "No dbsnapshot-operator replica has reported ready for 10 minutes: none \
            runs, none is ready, or Prometheus does not scrape it. Snapshots are neither taken \
            nor deleted meanwhile.",
    });
    let stalled = r#"dbsnapshot_object_stalled{namespace="data",kind="ClusterSnapshot",name="nightly",reason="AWSError"}"#;
    let tests = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                // Stalled for 10 minutes: not yet; for 20: the alert names the object.
                "interval": "1m",
                "input_series": [{"series": stalled, "values": "1x30"}],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "DBSnapshotObjectStalled", "exp_alerts": []},
                    {"eval_time": "20m", "alertname": "DBSnapshotObjectStalled", "exp_alerts": [{
                        "exp_labels": {"severity": "warning", "namespace": "data",
                                       "kind": "ClusterSnapshot", "name": "nightly", "reason": "AWSError"},
                        "exp_annotations": {
                            "summary": "ClusterSnapshot data/nightly is Stalled (AWSError)",
                            "description": "ClusterSnapshot data/nightly has been Stalled with reason AWSError \
                                for 15 minutes: it waits for a change from outside (the spec, permissions, \
                                AWS). `kubectl get ClusterSnapshot -n data nightly -o wide` shows the message.",
                        },
                    }]},
                ],
            },
            {
                // The newest Ready snapshot of analytics was taken at time 0; of orders,
                // an hour later than that each hour: only analytics is overdue at 27h.
                "interval": "1m",
                "input_series": [
                    {"series": r#"dbsnapshot_snapshot_last_ready_timestamp_seconds{namespace="data",kind="ClusterSnapshot",source="analytics"}"#,
                     "values": "0x1700"},
                    {"series": r#"dbsnapshot_snapshot_last_ready_timestamp_seconds{namespace="data",kind="ClusterSnapshot",source="orders"}"#,
                     "values": "0+60x1700"},
                    {"series": r#"dbsnapshot_snapshot_last_ready_timestamp_seconds{namespace="data",kind="SnapshotCopy",source="old-copy-source"}"#,
                     "values": "0x1700"},
                ],
                "alert_rule_test": [
                    {"eval_time": "25h", "alertname": "DBSnapshotNoRecentSnapshot", "exp_alerts": []},
                    {"eval_time": "27h", "alertname": "DBSnapshotNoRecentSnapshot", "exp_alerts": [{
                        "exp_labels": {"severity": "warning", "namespace": "data", "source": "analytics"},
                        "exp_annotations": {
                            "summary": "No Ready snapshot of analytics in data for 26 hours",
                            "description": "The newest Ready ClusterSnapshot of analytics in namespace data \
                                was taken 1d 3h 0m 0s ago. Look at the SnapshotSchedules there (`kubectl get \
                                snapshotschedules -n data -o wide`) and at Stalled ClusterSnapshots.",
                        },
                    }]},
                ],
            },
            {
                // Half of Redshift's attempts throttled for an hour; DocumentDB's never.
                "interval": "1m",
                "input_series": [
                    {"series": r#"dbsnapshot_aws_calls_total{service="redshift",operation="DescribeClusterSnapshots",outcome="throttled"}"#,
                     "values": "0+10x60"},
                    {"series": r#"dbsnapshot_aws_calls_total{service="redshift",operation="DescribeClusterSnapshots",outcome="ok"}"#,
                     "values": "0+10x60"},
                    {"series": r#"dbsnapshot_aws_calls_total{service="docdb",operation="DescribeDBClusterSnapshots",outcome="ok"}"#,
                     "values": "0+10x60"},
                ],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "DBSnapshotAWSThrottled", "exp_alerts": []},
                    {"eval_time": "50m", "alertname": "DBSnapshotAWSThrottled", "exp_alerts": [{
                        "exp_labels": {"severity": "warning", "service": "redshift"},
                        "exp_annotations": {
                            "summary": "AWS throttles 50% of the operator's redshift calls",
                            "description": "AWS has answered 50% of dbsnapshot-operator's redshift call \
                                attempts with throttling for 30 minutes. Snapshots are delayed. \
                                dbsnapshot_aws_rate_limit shows the rate the operator allows itself now.",
                        },
                    }]},
                ],
            },
            {
                // One replica not ready for 20 minutes, then none scraped at all.
                "interval": "1m",
                "input_series": [
                    {"series": r#"dbsnapshot_ready{namespace="ops",pod="dbsnapshot-operator-0"}"#,
                     "values": "1x5 0x20 _x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "DBSnapshotOperatorNotReady", "exp_alerts": []},
                    {"eval_time": "20m", "alertname": "DBSnapshotOperatorNotReady", "exp_alerts": [{
                        "exp_labels": {"severity": "critical", "namespace": "ops", "pod": "dbsnapshot-operator-0"},
                        "exp_annotations": {
                            "summary": "dbsnapshot-operator dbsnapshot-operator-0 is not ready",
                            "description": "dbsnapshot-operator ops/dbsnapshot-operator-0 has not been ready \
                                for 10 minutes: its caches are not synced, or it cannot reach the Kubernetes \
                                API server or AWS (its /readyz and log say which).",
                        },
                    }]},
                    {"eval_time": "5m", "alertname": "DBSnapshotOperatorAbsent", "exp_alerts": []},
                    {"eval_time": "20m", "alertname": "DBSnapshotOperatorAbsent", "exp_alerts": [{
                        "exp_labels": {"severity": "critical"},
                        "exp_annotations": absent,
                    }]},
                    {"eval_time": "50m", "alertname": "DBSnapshotOperatorAbsent", "exp_alerts": [{
                        "exp_labels": {"severity": "critical"},
                        "exp_annotations": absent,
                    }]},
                ],
            },
        ],
    });
    std::fs::write(
        dir.join("rules_test.yaml"),
        serde_saphyr::to_string(&tests).unwrap(),
    )
    .unwrap();
    let test = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(dir.join("rules_test.yaml"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    // Every alert is tested above.
    for group in rules["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            assert!(
                tests.to_string().contains(&format!("\"{alert}\"")),
                "no promtool test for {alert}"
            );
        }
    }
}

/// kubectl from the test bed (tests/testbed/install-helm-kubectl.sh).
fn kubectl() -> PathBuf {
    testbed_tool("kubectl")
}

/// `kubectl get <resource> -n <ns> [args]` as rows of named cells (split at the
/// header's column starts, so a message with spaces stays one cell).
fn kubectl_get(ns: &str, resource: &str, args: &[&str]) -> Vec<Vec<(String, String)>> {
    let out = Command::new(kubectl())
        .args(["get", resource, "-n", ns])
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl get {resource}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut starts = Vec::new();
    let mut prev = ' ';
    for (i, c) in header.char_indices() {
        if c != ' ' && prev == ' ' {
            starts.push(i);
        }
        prev = c;
    }
    let cell = |line: &str, k: usize| {
        let from = starts[k].min(line.len());
        let to = starts.get(k + 1).map_or(line.len(), |&e| e.min(line.len()));
        line[from..to].trim().to_string()
    };
    lines
        .map(|line| {
            (0..starts.len())
                .map(|k| (cell(header, k), cell(line, k)))
                .collect()
        })
        .collect()
}

fn column<'a>(row: &'a [(String, String)], name: &str) -> Option<&'a str> {
    row.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn row<'a>(rows: &'a [Vec<(String, String)>], name: &str) -> &'a [(String, String)] {
    rows.iter()
        .find(|r| column(r, "NAME") == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
}

async fn scrape(base: &str) -> String {
    match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the metrics have every line in `want` (a prefix up to the value).
async fn wait_metrics(base: &str, want: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = scrape(base).await;
        let missing: Vec<&String> = want
            .iter()
            .filter(|w| !body.lines().any(|l| l.starts_with(w.as_str())))
            .collect();
        if missing.is_empty() {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "missing from /metrics: {missing:?}\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// An object refused by AWS for good (AccessDenied) is Stalled `AWSError`: `kubectl
/// get` shows the reason (and with `-o wide` AWS's words), and so do the metrics,
/// which also count the terminal error as an error and tell when the newest Ready
/// snapshot of a source was taken. Every metric the alert rules and the dashboard read
/// is one a running operator serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_object_shows_in_kubectl_and_in_the_metrics_the_alerts_read() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let mut h = Harness::with_aws("observe", &format!("http://{addr}")).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    let metrics = format!("127.0.0.1:{}", free_port());
    h.start_operator(&["--metrics-addr", &metrics, "--schedule-clock-speed", "12"]);
    let base = format!("http://{metrics}");
    let ns = h.ns.clone();

    h.create(json!({"metadata": {"name": "fine"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    h.wait_ready("fine").await;
    // A schedule that made a Ready run (a per-minute cron runs every 5 s at clock speed
    // 12), then suspended: its series stay.
    let schedules: kube::Api<SnapshotSchedule> = kube::Api::namespaced(h.client.clone(), &ns);
    let schedule: SnapshotSchedule = serde_json::from_value(json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "* * * * *", "retention": {"keepLast": 1},
                 "snapshotTemplate": {"spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}},
    }))
    .unwrap();
    schedules
        .create(&PostParams::default(), &schedule)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while schedules
        .get("nightly")
        .await
        .unwrap()
        .status
        .and_then(|s| s.last_successful_time)
        .is_none()
    {
        assert!(Instant::now() < deadline, "the schedule made no Ready run");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    schedules
        .patch(
            "nightly",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    // Throttling, counted.
    h.set_faults(json!({"throttleFraction": 1.0}));
    h.create(json!({"metadata": {"name": "throttled"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}))
        .await
        .unwrap();
    wait_metrics(
        &base,
        &[r#"dbsnapshot_aws_throttles_total{service="docdb"}"#.to_string()],
    )
    .await;
    h.set_faults(json!({"throttleFraction": 0.0}));
    h.wait_ready("throttled").await;
    docdb_source(&h.aws, "orders-src").await;
    h.set_faults(
        json!({"failActions": ["redshift:CreateClusterSnapshot", "docdb:CopyDBClusterSnapshot"]}),
    );
    h.create(json!({"metadata": {"name": "denied"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    h.create_copy(json!({"metadata": {"name": "denied-copy"}, "spec": {
        "source": {"docdb": {"snapshotIdentifier": "orders-src"}},
        "targetSnapshotIdentifier": "orders-copy"}}))
        .await
        .unwrap();
    let aws_error = |s: &dbsnapshot_operator::api::SnapshotStatus| {
        stalled_reason(s).as_deref() == Some("AWSError")
    };
    h.wait_for("denied", Duration::from_secs(30), |_| {}, aws_error)
        .await;
    let copy = h
        .wait_copy("denied-copy", Duration::from_secs(30), aws_error)
        .await;

    // kubectl get: the reason, not just "False".
    let rows = kubectl_get(&ns, "clustersnapshots", &[]);
    let denied = row(&rows, "denied");
    assert_eq!(column(denied, "READY"), Some("False"), "{denied:?}");
    assert_eq!(column(denied, "REASON"), Some("AWSError"), "{denied:?}");
    assert_eq!(column(denied, "MESSAGE"), None, "Message is for -o wide");
    assert_eq!(column(row(&rows, "fine"), "REASON"), Some("Available"));
    let wide = kubectl_get(&ns, "clustersnapshots", &["-o", "wide"]);
    let message = column(row(&wide, "denied"), "MESSAGE").unwrap();
    assert!(message.contains("AccessDenied"), "{message}");
    let copies = kubectl_get(&ns, "snapshotcopies", &["-o", "wide"]);
    let c = row(&copies, "denied-copy");
    assert_eq!(column(c, "REASON"), Some("AWSError"), "{c:?}");
    assert_eq!(column(c, "REGION"), copy.region.as_deref(), "{c:?}");
    assert!(copy.region.is_some(), "{copy:?}");
    assert!(
        column(c, "MESSAGE").is_some_and(|m| m.contains("AccessDenied")),
        "{c:?}"
    );

    // The metrics: each Stalled object, the terminal errors, the newest Ready snapshot
    // of the source, readiness.
    let stalled = |kind: &str, name: &str| {
        format!(
            r#"dbsnapshot_object_stalled{{namespace="{ns}",kind="{kind}",name="{name}",reason="AWSError"}} 1"#
        )
    };
    let body = wait_metrics(
        &base,
        &[
            stalled("ClusterSnapshot", "denied"),
            stalled("SnapshotCopy", "denied-copy"),
            format!(
                r#"dbsnapshot_snapshot_last_ready_timestamp_seconds{{namespace="{ns}",kind="ClusterSnapshot",source="analytics"}} "#
            ),
            r#"dbsnapshot_reconciles_total{kind="ClusterSnapshot",outcome="error"}"#.to_string(),
            r#"dbsnapshot_reconciles_total{kind="SnapshotCopy",outcome="error"}"#.to_string(),
            r#"dbsnapshot_reconcile_errors_total{kind="ClusterSnapshot",class="terminal"}"#
                .to_string(),
            "dbsnapshot_ready 1".to_string(),
        ],
    )
    .await;
    assert!(
        !body.contains(r#"name="fine""#),
        "a Ready object is not Stalled:\n{body}"
    );
    let last_ready: f64 = body
        .lines()
        .find(|l| {
            l.starts_with("dbsnapshot_snapshot_last_ready_timestamp_seconds{") && l.contains(&ns)
        })
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 600.0..=now + 5.0).contains(&last_ready),
        "the newest Ready snapshot was taken just now, not at {last_ready} (now {now})"
    );

    // Every metric the alert rules and the dashboard read is served (a family with no
    // series yet, such as the schedules', still has its TYPE line).
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let served = |name: &str| {
        families.iter().any(|f| {
            name == *f
                || ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(f))
        })
    };
    let queries = queries();
    assert!(queries.len() > 10, "{queries:?}");
    for (place, expr) in &queries {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{place}: reads no dbsnapshot metric: {expr}"
        );
        for name in names {
            assert!(
                served(&name),
                "{place}: {name} is not in /metrics ({expr})\n{body}"
            );
        }
    }
    // The metrics the alerts read have series here.
    for name in [
        "dbsnapshot_object_stalled{",
        "dbsnapshot_snapshot_last_ready_timestamp_seconds{",
        "dbsnapshot_aws_calls_total{",
        "dbsnapshot_ready ",
    ] {
        assert!(body.lines().any(|l| l.starts_with(name)), "{name}\n{body}");
    }

    // Fixed: the Stalled series goes.
    h.set_faults(json!({"failActions": []}));
    h.snapshots()
        .delete("denied", &Default::default())
        .await
        .unwrap();
    h.wait_gone("denied").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(&base).await.contains(r#"name="denied""#) {
        assert!(Instant::now() < deadline, "the Stalled series stayed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
