//! Leader election: two operator processes against the test bed; exactly one
//! reconciles and the other makes no AWS call at all; stopped (SIGTERM, as on a
//! rollout) the leader hands the Lease over at once; killed, the other takes over
//! within the lease duration. Two operators with disjoint label selectors, each with
//! its own Lease, share one namespace and never touch each other's objects.

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

fn helm_run(args: &[&str]) {
    let out = std::process::Command::new(testbed_tool("helm"))
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The operator's command line and environment as the Deployment's pod template
/// says (what the kubelet would run), with its metrics on a loopback port.
struct PodTemplate {
    args: Vec<String>,
    env: Vec<(String, String)>,
    hash: String,
}

async fn pod_template(h: &Harness, deployment: &str, port: u16) -> PodTemplate {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(h.client.clone(), &h.ns);
    let template = api.get(deployment).await.unwrap().spec.unwrap().template;
    let hash = serde_json::to_string(&template).unwrap();
    let container = template.spec.unwrap().containers.remove(0);
    let mut args = Vec::new();
    for arg in container.args.unwrap_or_default() {
        if arg == "run" {
            continue;
        }
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        // The harness names the namespace; metrics go to loopback.
        if flag == "--namespace" {
            continue;
        }
        let value = if flag == "--metrics-addr" {
            Some(format!("127.0.0.1:{port}"))
        } else {
            value
        };
        args.push(flag);
        args.extend(value);
    }
    let env = container
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let value = match e.value_from.and_then(|f| f.field_ref).map(|f| f.field_path) {
                Some(path) if path == "metadata.namespace" => h.ns.clone(),
                Some(path) if path == "metadata.name" => format!("pod-{port}"),
                Some(path) => panic!("a fieldRef the test does not know: {path}"),
                None => e.value.unwrap_or_default(),
            };
            (e.name, value)
        })
        .collect();
    PodTemplate { args, env, hash }
}

/// A `helm upgrade` that changes the pod template (an env var) while objects are
/// mid-create and mid-delete, rolled out as the chart's RollingUpdate strategy does it
/// (maxSurge 1, maxUnavailable 0): the new pod, running the new template, starts and
/// becomes ready as a standby; then the old pod is stopped (SIGTERM). The test bed has
/// no kubelet, so the test runs the two pod templates as processes in that order. No
/// snapshot is made twice, none is deleted twice, nothing is left behind, and the new
/// pod takes the Lease within the lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_upgrade_rollout_mid_create_and_mid_delete_runs_one_operator_at_a_time() {
    let (addr, state, _task) = aws_emulator::start(
        0,
        aws_emulator::server::Options {
            snapshot_seconds: 4.0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!("http://{addr}");
    let mut h = Harness::with_aws("rollout", &url).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    let chart = root().join("charts/dbsnapshot-operator");
    let chart = chart.to_str().unwrap();
    // Unique: the release makes cluster-scoped objects (the AWSAccounts ClusterRole).
    let release = &format!("roll{:x}", rand::random::<u16>());
    let deployment = format!("{release}-dbsnapshot-operator");
    let watch = format!("watchNamespaces[0]={}", h.ns);
    helm_run(&[
        "install",
        release,
        chart,
        "--namespace",
        &h.ns,
        "--server-side=false",
        // The harness installed the CRDs.
        "--set",
        "crds.enabled=false",
        "--set",
        &watch,
        "--set",
        "extraEnv[0].name=ROLLOUT",
        "--set",
        "extraEnv[0].value=one",
    ]);
    let lease: u64 = 15;
    let start = |t: &PodTemplate, name: &str| {
        let args: Vec<&str> = t.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = t
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Operator::start_with_env(
            &h.ns,
            &url,
            &args,
            &kubeconfig(),
            &format!("{}-{name}", h.ns),
            &env,
        )
    };
    let (pa, pb) = (free_port(), free_port());
    let old = pod_template(&h, &deployment, pa).await;
    assert!(
        old.args.iter().any(|a| a == "--leader-election")
            && old.args.iter().any(|a| a == "--lease-duration-seconds"),
        "the chart's pod does not elect a leader: {:?}",
        old.args
    );
    assert!(
        old.env
            .contains(&("ROLLOUT".to_string(), "one".to_string()))
    );
    let before = emulator_mutations(&h);
    let mut a = start(&old, "old");
    wait_log(&a, "became the leader", Duration::from_secs(30)).await;

    // Objects to delete during the rollout, made and Ready under the old pod.
    let sources = [
        json!({"redshift": {"clusterIdentifier": "analytics"}}),
        json!({"docdb": {"clusterIdentifier": "orders"}}),
        json!({"elasticache": {"replicationGroupId": "sessions"}}),
    ];
    for (i, source) in sources.iter().enumerate() {
        h.create(
            json!({"metadata": {"name": format!("gone-{i}")}, "spec": {"source": source,
            "sharedWith": if i < 2 { json!(["111111111111"]) } else { json!([]) }}}),
        )
        .await
        .unwrap();
    }
    for i in 0..3 {
        h.wait_ready(&format!("gone-{i}")).await;
    }
    // AWS answers slowly now, deletes slowest: the rollout finds calls in flight.
    h.set_faults(json!({"latencyMs": 150,
        "delayActions": ["DeleteClusterSnapshot", "DeleteDBClusterSnapshot", "DeleteSnapshot"],
        "delayResponseMs": 1500}));
    for i in 0..6 {
        h.create(
            json!({"metadata": {"name": format!("new-{i}")}, "spec": {"source": sources[i % 3]}}),
        )
        .await
        .unwrap();
    }
    for i in 0..3 {
        h.snapshots()
            .delete(&format!("gone-{i}"), &Default::default())
            .await
            .unwrap();
    }
    // Mid-create and mid-delete: the old pod has started on them.
    tokio::time::sleep(Duration::from_millis(800)).await;

    // helm upgrade changes the pod template.
    helm_run(&[
        "upgrade",
        release,
        chart,
        "--namespace",
        &h.ns,
        "--server-side=false",
        "--reuse-values",
        "--set",
        "extraEnv[0].name=ROLLOUT",
        "--set",
        "extraEnv[0].value=two",
    ]);
    let new = pod_template(&h, &deployment, pb).await;
    assert_ne!(
        new.hash, old.hash,
        "the upgrade did not change the pod template"
    );
    assert!(
        new.env
            .contains(&("ROLLOUT".to_string(), "two".to_string()))
    );
    // maxSurge 1: the new pod starts and is ready (a standby) before the old one stops.
    let b = start(&new, "new");
    wait_log(&b, "standby", Duration::from_secs(30)).await;
    wait_until("the new pod is ready", Duration::from_secs(30), || {
        ready(pb)
    })
    .await;
    let in_flight: Vec<String> = h
        .snapshots()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|o| {
            o.metadata.deletion_timestamp.is_some() || !o.status.as_ref().is_some_and(is_ready)
        })
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    println!("in flight when the old pod is stopped: {in_flight:?}");
    assert!(
        in_flight.iter().any(|n| n.starts_with("new-"))
            && in_flight.iter().any(|n| n.starts_with("gone-")),
        "the rollout did not find a create and a delete in flight: {in_flight:?}"
    );
    // maxUnavailable 0: only now is the old pod stopped.
    let stopped = Instant::now();
    sigterm(&a);
    let took = wait_log(&b, "became the leader", Duration::from_secs(lease * 2)).await;
    println!(
        "the new pod took the Lease {:.2}s after SIGTERM to the old one (lease {lease}s)",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(lease),
        "the new pod took the Lease {took:?} after the old one was stopped"
    );
    wait_until("the old pod exited", Duration::from_secs(30), || {
        let exited = a.try_wait();
        async move { exited.is_some_and(|s| s.success()) }
    })
    .await;
    println!(
        "the old pod exited {:.2}s after SIGTERM",
        stopped.elapsed().as_secs_f64()
    );

    for i in 0..6 {
        h.wait_ready(&format!("new-{i}")).await;
    }
    for i in 0..3 {
        h.wait_gone(&format!("gone-{i}")).await;
    }
    h.set_faults(json!({"latencyMs": 0, "delayActions": []}));

    // Exactly one snapshot made per object, exactly one delete per deleted one, and
    // the two pods together made exactly the calls AWS saw.
    let on_aws = minus(&emulator_mutations(&h), &before);
    println!("mutating AWS calls during the rollout: {on_aws:?}");
    let count = |action: &str| {
        on_aws
            .iter()
            .filter(|(op, _)| op.ends_with(&format!(":{action}")))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    // Creates: calls may be more than snapshots (ElastiCache refuses a second
    // snapshot of a replication group while one is being made, and the operator tries
    // again), so count what AWS holds: one snapshot per object, tagged with its uid.
    println!(
        "create calls: {}",
        count("CreateClusterSnapshot") + count("CreateDBClusterSnapshot") + count("CreateSnapshot")
    );
    let objects = h.snapshots().list(&Default::default()).await.unwrap().items;
    assert_eq!(objects.len(), 6);
    for o in &objects {
        let uid = o.metadata.uid.as_deref().unwrap();
        let held: Vec<_> = h
            .aws_snapshots()
            .into_iter()
            .filter(|s| s.owner() == Some(uid))
            .collect();
        assert_eq!(
            held.len(),
            1,
            "{:?}: not exactly one snapshot on AWS: {held:?}",
            o.metadata.name
        );
    }
    assert_eq!(
        count("DeleteClusterSnapshot") + count("DeleteDBClusterSnapshot") + count("DeleteSnapshot"),
        3,
        "a snapshot deleted twice (or not at all): {on_aws:?}"
    );
    let ours: Vec<_> = h
        .aws_snapshots()
        .into_iter()
        .filter(|s| s.owner().is_some())
        .collect();
    assert_eq!(ours.len(), 6, "{ours:?}");
    let by_b = mutating(&aws_calls(&metrics(pb).await));
    assert!(!by_b.is_empty(), "the new pod did nothing");
    drop(b);
    helm_run(&["uninstall", release, "--namespace", &h.ns]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_with_disjoint_selectors_never_touch_each_others_objects() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let url = format!("http://{addr}");
    let mut h = Harness::with_aws("shards", &url).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    let start = |shard: &str| {
        let args = [
            "--leader-election",
            "--lease-name",
            &format!("dbsnapshot-{shard}"),
            "--label-selector",
            &format!("shard={shard}"),
        ]
        .map(str::to_string);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Operator::start_logged(
            &h.ns,
            &url,
            &args,
            &kubeconfig(),
            &format!("{}-{shard}", h.ns),
        )
    };
    let (a, b) = (start("a"), start("b"));
    // Each leads its own Lease.
    wait_log(&a, "became the leader", Duration::from_secs(30)).await;
    wait_log(&b, "became the leader", Duration::from_secs(30)).await;

    let labelled = |name: &str, shard: Option<&str>| {
        let mut labels = serde_json::Map::new();
        if let Some(shard) = shard {
            labels.insert("shard".into(), json!(shard));
        }
        json!({"metadata": {"name": name, "labels": labels},
               "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}})
    };
    for (name, shard) in [
        ("snap-a", Some("a")),
        ("snap-b", Some("b")),
        ("snap-c", Some("c")),
        ("snap-none", None),
    ] {
        h.create(labelled(name, shard)).await.unwrap();
    }
    for (name, shard) in [("copy-a", "a"), ("copy-b", "b")] {
        h.create_copy(json!({
            "metadata": {"name": name, "labels": {"shard": shard}},
            "spec": {"source": {"clusterSnapshotRef": {"name": format!("snap-{shard}")}}},
        }))
        .await
        .unwrap();
    }
    h.wait_ready("snap-a").await;
    h.wait_ready("snap-b").await;
    for name in ["copy-a", "copy-b"] {
        h.wait_copy(name, Duration::from_secs(60), is_ready).await;
    }
    // Objects no operator selects are left alone: no finalizer, no status.
    for name in ["snap-c", "snap-none"] {
        let cs = h.snapshots().get(name).await.unwrap();
        assert!(cs.status.is_none(), "{name} has a status: {:?}", cs.status);
        assert!(
            cs.metadata.finalizers.is_none(),
            "{name}: {:?}",
            cs.metadata.finalizers
        );
    }
    // Each operator's reconciles name only its own objects (every reconcile logs in a
    // span naming its object).
    let log = |op: &Operator| std::fs::read_to_string(&op.log).unwrap();
    let (la, lb) = (log(&a), log(&b));
    for (own, other, text) in [("a", "b", &la), ("b", "a", &lb)] {
        assert!(
            text.contains(&format!("object=\"snap-{own}\"")),
            "operator {own} did not reconcile snap-{own}"
        );
        for name in [
            format!("snap-{other}"),
            format!("copy-{other}"),
            "snap-c".into(),
            "snap-none".into(),
        ] {
            for trace in [format!("object=\"{name}\""), format!("/{name}.{}", h.ns)] {
                assert!(
                    !text.contains(&trace),
                    "operator {own} touched {name}: {trace}"
                );
            }
        }
    }
    // Deleting: each cleans up its own.
    for name in ["snap-a", "snap-b"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for name in ["copy-a", "copy-b"] {
        h.copies().delete(name, &Default::default()).await.unwrap();
        h.wait_copy_gone(name).await;
    }
    h.wait_gone("snap-a").await;
    h.wait_gone("snap-b").await;
    for name in ["snap-c", "snap-none"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
        h.wait_gone(name).await;
    }
    drop((a, b));
}
