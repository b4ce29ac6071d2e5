//! The chaos run: 200 objects (ClusterSnapshots and SnapshotCopies, all three engines,
//! Delete and Retain, some shared) against a kube-apiserver of its own and the AWS
//! emulator with faults on (20 % Throttling, 2 % HTTP 500, added latency), while the
//! operator is SIGKILLed and restarted at random moments and the kube-apiserver is
//! restarted once. Then it checks the invariants:
//!
//! - every object reaches Ready;
//! - every snapshot carrying an owner tag belongs to exactly one live object, and every
//!   object has exactly one (no duplicates, no orphans, no untagged leftovers);
//! - after deleting every object: no snapshot left for `Delete`, every one still there
//!   with its shares for `Retain`; no snapshot was ever deleted while shared;
//! - no object was ever Stalled (every fault here is transient).
//!
//! `cargo bench --bench chaos -- [--objects 200] [--kills 10] [--seed N]
//! [--snapshot-seconds 10] [--out DIR]`; `scripts/chaos.sh` runs it. Prints the figures,
//! appends them to `target/chaos/results.json` and exits non-zero if an invariant broke.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_emulator::server::Options;
use aws_emulator::state::Faults;
use common::{Operator, aws_config, create_namespace, install_crds, root, seed_clusters};
use dbsnapshot_operator::api::{ClusterSnapshot, SnapshotCopy, SnapshotStatus};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde_json::{Value, json};

struct Args {
    objects: usize,
    kills: u64,
    seed: u64,
    snapshot_seconds: f64,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        objects: 200,
        kills: 10,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
        snapshot_seconds: 10.0,
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--objects" => a.objects = value().parse().expect("--objects: a number"),
            "--kills" => a.kills = value().parse().expect("--kills: a number"),
            "--seed" => a.seed = value().parse().expect("--seed: a number"),
            "--snapshot-seconds" => {
                a.snapshot_seconds = value().parse().expect("--snapshot-seconds: a number")
            }
            "--out" => a.out = Some(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One object of the run, as created.
#[derive(Debug, Clone)]
struct Planned {
    copy: bool,
    name: String,
    retain: bool,
    shared: Vec<String>,
    body: Value,
}

/// The objects: three in four are ClusterSnapshots (four sources, three engines), the
/// rest SnapshotCopies (Redshift automated → manual, DocumentDB in the region and across
/// regions, ElastiCache); one in five is Retain; Redshift and DocumentDB ones are shared
/// one time in three.
fn plan(n: usize, redshift_automated: &str, docdb_source_arn: &str) -> Vec<Planned> {
    (0..n)
        .map(|i| {
            let copy = i % 4 == 3;
            let retain = i % 5 == 0;
            let k = i / 4;
            let (source, shareable) = if copy {
                match k % 4 {
                    0 => (
                        json!({"redshift": {"snapshotIdentifier": redshift_automated, "clusterIdentifier": "analytics"}}),
                        false,
                    ),
                    1 => (json!({"docdb": {"snapshotIdentifier": "orders-src"}}), true),
                    2 => (
                        json!({"docdb": {"snapshotIdentifier": docdb_source_arn}}),
                        true,
                    ),
                    _ => (
                        json!({"elasticache": {"snapshotName": "sessions-src"}}),
                        false,
                    ),
                }
            } else {
                match i % 4 {
                    0 => (json!({"redshift": {"clusterIdentifier": "analytics"}}), true),
                    1 => (json!({"docdb": {"clusterIdentifier": "orders"}}), true),
                    2 => (
                        json!({"elasticache": {"replicationGroupId": "sessions"}}),
                        false,
                    ),
                    _ => (json!({"elasticache": {"cacheClusterId": "solo"}}), false),
                }
            };
            let shared: Vec<String> = if shareable && i % 3 == 0 {
                vec!["111111111111".into()]
            } else {
                vec![]
            };
            let name = format!("{}-{i:03}", if copy { "copy" } else { "snap" });
            let mut spec = json!({
                "source": source,
                "deletionPolicy": if retain { "Retain" } else { "Delete" },
                "sharedWith": shared,
                "tags": {"chaos": i.to_string()},
            });
            if copy && k % 4 == 2 {
                spec["region"] = json!("eu-west-1");
            }
            Planned {
                copy,
                name: name.clone(),
                retain,
                shared,
                body: json!({"metadata": {"name": name}, "spec": spec}),
            }
        })
        .collect()
}

fn status_of(o: &Value) -> SnapshotStatus {
    serde_json::from_value(o["status"].clone()).unwrap_or_default()
}

/// Every object of both kinds, as JSON, or None while the API server is away.
async fn list_all(client: &Client, ns: &str) -> Option<Vec<(String, Value)>> {
    let snaps: Api<ClusterSnapshot> = Api::namespaced(client.clone(), ns);
    let copies: Api<SnapshotCopy> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default();
    let a = snaps.list(&lp).await.ok()?;
    let b = copies.list(&lp).await.ok()?;
    let mut out = Vec::new();
    for o in a.items {
        out.push((o.name_any(), serde_json::to_value(&o).unwrap()));
    }
    for o in b.items {
        out.push((o.name_any(), serde_json::to_value(&o).unwrap()));
    }
    Some(out)
}

fn is_ready(o: &Value) -> bool {
    common::is_ready(&status_of(o))
}

/// The operator, killed and restarted by the chaos task.
struct Target {
    operator: Mutex<Option<Operator>>,
    ns: String,
    url: String,
    kubeconfig: std::path::PathBuf,
}

impl Target {
    fn start(&self) {
        let op = Operator::start_with_env(
            &self.ns,
            &self.url,
            &[
                "--resync-seconds",
                "20",
                "--max-poll-seconds",
                "5",
                "--min-poll-seconds",
                "1",
            ],
            &self.kubeconfig,
            &self.ns,
            &[],
        );
        *self.operator.lock().unwrap() = Some(op);
    }
    fn kill(&self) {
        if let Some(mut op) = self.operator.lock().unwrap().take() {
            op.kill();
        }
    }
}

fn restart_apiserver(state: &std::path::Path, down_seconds: u64) {
    let out = std::process::Command::new("bash")
        .arg(root().join("tests/testbed/restart-apiserver.sh"))
        .arg(down_seconds.to_string())
        .env("TESTBED_STATE", state)
        .output()
        .expect("restart-apiserver.sh");
    assert!(
        out.status.success(),
        "kube-apiserver restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_until<F>(what: &str, limit: Duration, mut done: F)
where
    F: AsyncFnMut() -> bool,
{
    let start = Instant::now();
    loop {
        if done().await {
            return;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[allow(clippy::too_many_lines)]
async fn run(a: &Args) -> (Value, Vec<String>) {
    let state_dir = root().join("target/testbed-chaos");
    let kubeconfig = common::testbed(&state_dir);
    let client = common::client_for(&kubeconfig).await;
    install_crds(&client).await;
    let ns = format!("chaos-{}", a.seed % 1_000_000);
    create_namespace(&client, &ns).await;
    let (addr, emulator, _task) = aws_emulator::start(
        0,
        Options {
            snapshot_seconds: a.snapshot_seconds,
            seed: a.seed,
            ..Options::default()
        },
    )
    .await
    .expect("emulator");
    let url = format!("http://{addr}");
    let aws = aws_config(&url, RetryConfig::standard().with_max_attempts(10)).await;

    // Sources: clusters, a DocumentDB and an ElastiCache snapshot to copy, and the
    // automated Redshift snapshot the emulator makes for a new cluster.
    seed_clusters(&aws).await;
    let docdb_arn = common::docdb_source(&aws, "orders-src").await;
    common::elasticache_source(&aws, "sessions-src").await;
    let automated = common::redshift_automated(&aws).await;
    tokio::time::sleep(Duration::from_secs_f64(a.snapshot_seconds + 1.0)).await;
    let sources: BTreeSet<String> = common::aws_snapshots_of(&emulator)
        .into_iter()
        .map(|s| s.id)
        .collect();

    emulator.lock().unwrap().faults = Faults {
        throttle_fraction: 0.2,
        error_fraction: 0.02,
        latency_ms: 25,
        ..Faults::default()
    };
    let target = Arc::new(Target {
        operator: Mutex::new(None),
        ns: ns.clone(),
        url: url.clone(),
        kubeconfig: kubeconfig.clone(),
    });
    target.start();

    // Chaos: kill the operator at random moments (4 to 15 s apart) until it has been
    // killed `--kills` times, starting it again 0 to 1.5 s later each time; restart the
    // kube-apiserver once, after the third kill.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let apiserver_restarts = Arc::new(AtomicU64::new(0));
    let deleting = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (target, stop, kills, restarts, deleting) = (
            target.clone(),
            stop.clone(),
            kills.clone(),
            apiserver_restarts.clone(),
            deleting.clone(),
        );
        let state_dir = state_dir.clone();
        let (seed, target_kills) = (a.seed, a.kills);
        tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            // Far enough apart that a restarted operator gets work done between kills
            // (each restart looks at every object again).
            let in_creates = target_kills.div_ceil(2) + 1;
            while !stop.load(Ordering::SeqCst) && kills.load(Ordering::SeqCst) < target_kills {
                // The first kills go to the creates, the rest wait for the deletes.
                while kills.load(Ordering::SeqCst) >= in_creates
                    && !deleting.load(Ordering::SeqCst)
                    && !stop.load(Ordering::SeqCst)
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(4000..15000))).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                target.kill();
                let n = kills.fetch_add(1, Ordering::SeqCst) + 1;
                println!("  kill {n}");
                if n == 3 {
                    let d = state_dir.clone();
                    tokio::task::spawn_blocking(move || restart_apiserver(&d, 5))
                        .await
                        .unwrap();
                    restarts.fetch_add(1, Ordering::SeqCst);
                    println!("  kube-apiserver restarted (down 5 s)");
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
                target.start();
            }
        })
    };

    // Watch for Stalled conditions the whole time.
    let stalled: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let observer = {
        let (client, ns, stop, stalled) =
            (client.clone(), ns.clone(), stop.clone(), stalled.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(all) = list_all(&client, &ns).await {
                    for (name, o) in all {
                        let s = status_of(&o);
                        if let Some(c) =
                            common::condition(&s, "Stalled").filter(|c| c.status == "True")
                        {
                            stalled
                                .lock()
                                .unwrap()
                                .entry(name)
                                .or_insert(format!("{}: {}", c.reason, c.message));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };

    let planned = plan(a.objects, &automated, &docdb_arn);
    let started = Instant::now();
    for p in &planned {
        let kind = if p.copy {
            "SnapshotCopy"
        } else {
            "ClusterSnapshot"
        };
        loop {
            let result = if p.copy {
                let api: Api<SnapshotCopy> = Api::namespaced(client.clone(), &ns);
                api.create(
                    &PostParams::default(),
                    &serde_json::from_value(p.body.clone()).unwrap(),
                )
                .await
                .map(|_| ())
            } else {
                let api: Api<ClusterSnapshot> = Api::namespaced(client.clone(), &ns);
                api.create(
                    &PostParams::default(),
                    &serde_json::from_value(p.body.clone()).unwrap(),
                )
                .await
                .map(|_| ())
            };
            match result {
                Ok(()) => break,
                Err(kube::Error::Api(e)) if e.code == 409 => break,
                Err(e) => {
                    println!("  create {kind} {}: {e}; retrying", p.name);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    println!("created {} objects", planned.len());

    let mut violations = Vec::new();
    // When half and nine in ten of the objects were Ready, to tell a long tail
    // from a slow run.
    let (mut half_ready_s, mut most_ready_s) = (None, None);
    let mut next_report = 60;
    wait_until("all Ready", Duration::from_secs(1200), async || {
        let Some(all) = list_all(&client, &ns).await else {
            return false;
        };
        let ready = all.iter().filter(|(_, o)| is_ready(o)).count();
        let now = started.elapsed().as_secs_f64();
        if half_ready_s.is_none() && ready * 2 >= planned.len() {
            half_ready_s = Some(now);
        }
        if most_ready_s.is_none() && ready * 10 >= planned.len() * 9 {
            most_ready_s = Some(now);
        }
        if now >= f64::from(next_report) && ready < planned.len() {
            println!("  {ready} of {} Ready after {now:.0} s", planned.len());
            next_report += 60;
        }
        ready == planned.len()
    })
    .await;
    let all_ready_s = started.elapsed().as_secs_f64();
    let half_ready_s = half_ready_s.unwrap_or(all_ready_s);
    let most_ready_s = most_ready_s.unwrap_or(all_ready_s);
    println!(
        "all {} Ready after {all_ready_s:.0} s (half after {half_ready_s:.0} s, 90 % after {most_ready_s:.0} s)",
        planned.len()
    );

    // Ownership: one snapshot per object, each owned snapshot by a live object.
    let all = list_all(&client, &ns).await.expect("list");
    let uid_of: BTreeMap<String, String> = all
        .iter()
        .map(|(name, o)| {
            (
                o["metadata"]["uid"].as_str().unwrap().to_string(),
                name.clone(),
            )
        })
        .collect();
    let id_of: BTreeMap<String, String> = all
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                status_of(o).snapshot_identifier.unwrap_or_default(),
            )
        })
        .collect();
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    let on_aws = common::aws_snapshots_of(&emulator);
    for s in on_aws.iter().filter(|s| !sources.contains(&s.id)) {
        match s.tags.get("dbsnapshot.io/owner-uid") {
            Some(uid) => match uid_of.get(uid) {
                Some(name) => {
                    *owned.entry(name.clone()).or_default() += 1;
                    if id_of.get(name) != Some(&s.id) {
                        violations.push(format!(
                            "{name} owns {} but records {:?}",
                            s.id,
                            id_of.get(name)
                        ));
                    }
                }
                None => violations.push(format!(
                    "orphan: {} {} (owner {uid} is gone)",
                    s.engine, s.id
                )),
            },
            None => violations.push(format!("untagged leftover: {} {}", s.engine, s.id)),
        }
    }
    for p in &planned {
        match owned.get(&p.name) {
            Some(1) => {}
            n => violations.push(format!("{} owns {n:?} snapshots", p.name)),
        }
    }

    // Delete everything (the chaos goes on).
    deleting.store(true, Ordering::SeqCst);
    let delete_started = Instant::now();
    for p in &planned {
        loop {
            let result = if p.copy {
                Api::<SnapshotCopy>::namespaced(client.clone(), &ns)
                    .delete(&p.name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            } else {
                Api::<ClusterSnapshot>::namespaced(client.clone(), &ns)
                    .delete(&p.name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            };
            match result {
                Ok(()) => break,
                Err(kube::Error::Api(e)) if e.code == 404 => break,
                Err(e) => {
                    println!("  delete {}: {e}; retrying", p.name);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    wait_until("all deleted", Duration::from_secs(1200), async || {
        list_all(&client, &ns)
            .await
            .is_some_and(|all| all.is_empty())
    })
    .await;
    let all_deleted_s = delete_started.elapsed().as_secs_f64();
    // Enough kills: go on killing (objects are gone; the operator must stay quiet).
    while kills.load(Ordering::SeqCst) < a.kills {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("all deleted after {all_deleted_s:.0} s");
    stop.store(true, Ordering::SeqCst);
    chaos.await.unwrap();
    observer.await.unwrap();
    target.kill();

    let left = common::aws_snapshots_of(&emulator);
    for p in &planned {
        let id = &id_of[&p.name];
        let there = left.iter().find(|s| &s.id == id);
        match (p.retain, there) {
            (false, Some(_)) => violations.push(format!("{} (Delete) left {id} behind", p.name)),
            (true, None) => violations.push(format!("{} (Retain) lost {id}", p.name)),
            (true, Some(s)) if s.shared != p.shared => violations.push(format!(
                "{} (Retain): shared with {:?}, wanted {:?}",
                p.name, s.shared, p.shared
            )),
            _ => {}
        }
    }
    let counters = emulator.lock().unwrap().counters.clone();
    if counters.shared_deletes > 0 {
        violations.push(format!(
            "{} deletes of a snapshot still shared",
            counters.shared_deletes
        ));
    }
    for (name, why) in stalled.lock().unwrap().iter() {
        violations.push(format!("{name} was Stalled: {why}"));
    }
    if kills.load(Ordering::SeqCst) < a.kills {
        violations.push("too few kills".into());
    }
    let calls: u64 = counters.calls.values().flat_map(|m| m.values()).sum();
    let faults = counters.throttled + counters.internal_errors;
    let figures = json!({
        "date": common::now_utc(),
        "seed": a.seed,
        "objects": planned.len(),
        "cluster_snapshots": planned.iter().filter(|p| !p.copy).count(),
        "snapshot_copies": planned.iter().filter(|p| p.copy).count(),
        "retain": planned.iter().filter(|p| p.retain).count(),
        "shared": planned.iter().filter(|p| !p.shared.is_empty()).count(),
        "operator_kills": kills.load(Ordering::SeqCst),
        "apiserver_restarts": apiserver_restarts.load(Ordering::SeqCst),
        "aws_calls": calls,
        "throttled_injected": counters.throttled,
        "http_500_injected": counters.internal_errors,
        "faulted_calls_retried": faults,
        "half_ready_s": (half_ready_s * 10.0).round() / 10.0,
        "ninety_percent_ready_s": (most_ready_s * 10.0).round() / 10.0,
        "all_ready_s": (all_ready_s * 10.0).round() / 10.0,
        "all_deleted_s": (all_deleted_s * 10.0).round() / 10.0,
        "violations": violations.len(),
    });
    let _ = std::process::Command::new("bash")
        .arg(root().join("tests/testbed/down.sh"))
        .env("TESTBED_STATE", &state_dir)
        .output();
    (figures, violations)
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "== chaos: {} objects, at least {} kills, seed {} ==",
        a.objects, a.kills, a.seed
    );
    let (figures, violations) = rt.block_on(run(&a));
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
    let dir = a
        .out
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target/chaos"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("results.json");
    let mut runs: Vec<Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    runs.push(figures);
    std::fs::write(&path, serde_json::to_string_pretty(&runs).unwrap()).unwrap();
    if violations.is_empty() {
        println!("invariants hold");
    } else {
        for v in &violations {
            println!("VIOLATION: {v}");
        }
        std::process::exit(1);
    }
}
