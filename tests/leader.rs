//! Leader election: two operator processes against the test bed; exactly one
//! reconciles and the other makes no AWS call at all; stopped (SIGTERM, as on a
//! rollout) the leader hands the Lease over at once; killed, the other takes over
//! within the lease duration.

mod common;

use std::collections::BTreeMap;
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

/// AWS call attempts per `service:operation`, from a process's /metrics.
fn aws_calls(metrics: &str) -> BTreeMap<String, u64> {
    let label = |labels: &str, name: &str| {
        let start = labels.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        labels[start..].split('"').next().unwrap().to_string()
    };
    let mut calls = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("dbsnapshot_aws_calls_total{"))
    {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let n = value.parse::<f64>().unwrap() as u64;
        *calls
            .entry(format!(
                "{}:{}",
                label(labels, "service"),
                label(labels, "operation")
            ))
            .or_default() += n;
    }
    calls
}

/// Everything but describes and listings: Create*, Copy*, Delete*, Authorize*,
/// Revoke*, Modify*, the tag calls.
fn mutating(calls: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    calls
        .iter()
        .filter(|(op, n)| {
            let action = op.split_once(':').unwrap().1;
            **n > 0
                && !["Describe", "List", "Get"]
                    .iter()
                    .any(|read| action.starts_with(read))
        })
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

/// Mutating calls the emulator received, per `service:action`.
fn emulator_mutations(h: &Harness) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (service, actions) in h.calls()["calls"].as_object().cloned().unwrap_or_default() {
        for (action, n) in actions.as_object().cloned().unwrap_or_default() {
            out.insert(format!("{service}:{action}"), n.as_u64().unwrap());
        }
    }
    mutating(&out)
}

fn minus(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    a.iter()
        .map(|(k, n)| (k.clone(), n - b.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(op: &Operator) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &op.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", op.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_makes_no_aws_call_and_takes_over_at_once_on_sigterm() {
    let (addr, state, _task) = aws_emulator::start(
        0,
        aws_emulator::server::Options {
            snapshot_seconds: 1.0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!("http://{addr}");
    let mut h = Harness::with_aws("standby", &url).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    // The chart's lease duration: a stopped leader must not make the others wait it.
    const LEASE: u64 = 15;
    let start = |name: &str| {
        let port = free_port();
        let args = [
            "--leader-election".to_string(),
            format!("--lease-duration-seconds={LEASE}"),
            "--metrics-addr".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let op = Operator::start_logged(
            &h.ns,
            &url,
            &args,
            &kubeconfig(),
            &format!("{}-{name}", h.ns),
        );
        (op, port)
    };
    let before = emulator_mutations(&h);
    let (mut a, pa) = start("a");
    wait_log(&a, "became the leader", Duration::from_secs(30)).await;
    let (mut b, pb) = start("b");
    wait_log(&b, "standby", Duration::from_secs(30)).await;

    // Every kind of mutation, while both run: creates and copies, shares, tags,
    // retention, changes to them, deletes.
    let shared = |id: &str| vec![id.to_string()];
    h.create(json!({"metadata": {"name": "rs"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}},
        "tags": {"team": "a"}, "sharedWith": shared("111111111111"), "retentionDays": 7}}))
        .await
        .unwrap();
    h.create(json!({"metadata": {"name": "dd"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}},
        "tags": {"team": "a"}, "sharedWith": shared("111111111111")}}))
        .await
        .unwrap();
    h.create(json!({"metadata": {"name": "ec"}, "spec": {"source": {"elasticache": {"replicationGroupId": "sessions"}},
        "tags": {"team": "a"}}}))
        .await
        .unwrap();
    let auto = redshift_automated(&h.aws).await;
    h.create_copy(json!({"metadata": {"name": "rs-copy"}, "spec": {
        "source": {"redshift": {"snapshotIdentifier": auto, "clusterIdentifier": "analytics"}}, "tags": {"team": "a"}}}))
        .await
        .unwrap();
    h.create_copy(json!({"metadata": {"name": "dd-copy"}, "spec": {
        "source": {"clusterSnapshotRef": {"name": "dd"}}, "sharedWith": shared("111111111111")}}))
        .await
        .unwrap();
    for name in ["rs", "dd", "ec"] {
        h.wait_ready(name).await;
    }
    for name in ["rs-copy", "dd-copy"] {
        h.wait_copy(name, Duration::from_secs(60), is_ready).await;
    }
    for name in ["rs", "dd", "ec"] {
        let spec = if name == "ec" {
            json!({"tags": {"team": "b"}})
        } else {
            json!({"tags": {"team": "b"}, "sharedWith": shared("222222222222")})
        };
        h.patch_spec(name, spec).await;
    }
    wait_until(
        "tags and shares changed on AWS",
        Duration::from_secs(60),
        || {
            let snaps = h.aws_snapshots();
            async move {
                let ours: Vec<_> = snaps.iter().filter(|s| s.owner().is_some()).collect();
                ours.iter()
                    .filter(|s| s.tags.get("team").is_some_and(|t| t == "b"))
                    .count()
                    == 3
                    && ours
                        .iter()
                        .filter(|s| s.shared == ["222222222222".to_string()])
                        .count()
                        == 2
            }
        },
    )
    .await;
    for name in ["rs-copy", "dd-copy"] {
        h.copies().delete(name, &Default::default()).await.unwrap();
        h.wait_copy_gone(name).await;
    }
    for name in ["rs", "dd", "ec"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
        h.wait_gone(name).await;
    }
    assert!(
        h.aws_snapshots().iter().all(|s| s.owner().is_none()),
        "{:?}",
        h.aws_snapshots()
    );

    let leader_calls = aws_calls(&metrics(pa).await);
    let standby_calls = aws_calls(&metrics(pb).await);
    let by_leader = mutating(&leader_calls);
    let on_aws = minus(&emulator_mutations(&h), &before);
    println!("mutating AWS calls, leader: {by_leader:?}");
    println!(
        "mutating AWS calls, standby: {:?} (AWS calls of any kind: {})",
        mutating(&standby_calls),
        standby_calls.values().sum::<u64>()
    );
    for action in [
        "CreateClusterSnapshot",
        "CopyClusterSnapshot",
        "AuthorizeSnapshotAccess",
        "RevokeSnapshotAccess",
        "DeleteClusterSnapshot",
        "CreateDBClusterSnapshot",
        "CopyDBClusterSnapshot",
        "ModifyDBClusterSnapshotAttribute",
        "CreateSnapshot",
        "DeleteSnapshot",
    ] {
        assert!(
            by_leader
                .keys()
                .any(|op| op.ends_with(&format!(":{action}"))),
            "the workload made no {action}: {by_leader:?}"
        );
    }
    assert!(
        by_leader.keys().any(|op| op.contains("Tags")),
        "no tag call: {by_leader:?}"
    );
    assert!(
        standby_calls.is_empty(),
        "the standby called AWS: {standby_calls:?}"
    );
    // AWS saw the leader's mutations and nobody else's.
    assert_eq!(on_aws, by_leader);
    assert!(!log_has(&b, "became the leader"));

    // Stopped as on a rollout, the leader hands the Lease over: the standby takes it
    // at once, not a lease duration later.
    let stopped = Instant::now();
    sigterm(&a);
    let took = wait_log(&b, "became the leader", Duration::from_secs(LEASE * 2)).await;
    println!(
        "the standby took over {:.2}s after SIGTERM to the leader (lease {LEASE}s)",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(LEASE / 3),
        "took over {took:?} after SIGTERM (lease {LEASE}s): the Lease was not handed over"
    );
    wait_until("the old leader exited", Duration::from_secs(30), || {
        let exited = a.try_wait();
        async move { exited.is_some_and(|s| s.success()) }
    })
    .await;
    println!(
        "the old leader exited {:.2}s after SIGTERM",
        stopped.elapsed().as_secs_f64()
    );
    h.create(json!({"metadata": {"name": "after"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    h.wait_ready("after").await;
    assert!(
        mutating(&aws_calls(&metrics(pb).await)).contains_key("redshift:CreateClusterSnapshot")
    );

    // For comparison: a leader that is killed cannot hand over; a standby waits until
    // the Lease expires.
    let (c, _) = start("c");
    wait_log(&c, "standby", Duration::from_secs(30)).await;
    b.kill();
    let took = wait_log(&c, "became the leader", Duration::from_secs(LEASE * 2)).await;
    println!(
        "the standby took over {:.2}s after the leader was killed (lease {LEASE}s)",
        took.as_secs_f64()
    );
    assert!(
        took <= Duration::from_secs(LEASE + 3),
        "took over {took:?} after a kill"
    );
    drop(c);
}
