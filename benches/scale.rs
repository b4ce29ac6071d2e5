//! The scale benchmark: N ClusterSnapshots across 20 source clusters and all three
//! engines, taken through create → Ready → delete against the test bed (a real
//! kube-apiserver) and the AWS emulator (snapshots take 300 s; the account may make 12
//! requests per second), once with batched polling and once per object. Figures come
//! from the emulator's counters, the objects' conditions and the operator's /proc.
//!
//! `cargo bench --bench scale -- [--snapshots 100,1000] [--copies M]
//! [--modes batched,per-object] [--snapshot-seconds 300] [--account-rps 12] [--no-restart]
//! [--cap-seconds S] [--merge] [--out DIR]`; `scripts/bench.sh` prepares the test bed
//! first. `--copies M` adds M SnapshotCopies by clusterSnapshotRef of the DocumentDB
//! ClusterSnapshots (every other one into another region). Unless `--no-restart`, the
//! operator is killed (SIGKILL) once all are Ready and started again, and its restart is
//! measured. `--cap-seconds S` stops waiting for all Ready after S seconds (the run says
//! how far it got). Writes `target/bench/results.json` (with `--merge`, runs already
//! there stay unless this one redoes their mode, N and M) and `target/bench/results.md`.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_emulator::server::Options;
use aws_emulator::state::{Counters, Faults};
use common::{Harness, Operator, create_source};
use dbsnapshot_operator::api::{ClusterSnapshot, SnapshotCopy, SnapshotStatus};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const CLUSTERS: usize = 20;

struct Args {
    /// Keep the runs already in results.json, replacing those of the same mode and N.
    merge: bool,
    /// Where results go (default target/bench).
    out: Option<String>,
    snapshots: Vec<usize>,
    modes: Vec<String>,
    snapshot_seconds: f64,
    account_rps: f64,
    /// SnapshotCopies of the DocumentDB ClusterSnapshots by clusterSnapshotRef, half in
    /// the source's region, half in another.
    copies: usize,
    /// SIGKILL the operator once everything is Ready, start it again and measure.
    restart: bool,
    /// Stop waiting for all Ready after this long, and report what was reached.
    cap: Option<Duration>,
}

fn args() -> Args {
    let mut a = Args {
        merge: false,
        out: None,
        snapshots: vec![100, 1000],
        modes: vec!["batched".into(), "per-object".into()],
        snapshot_seconds: 300.0,
        account_rps: 12.0,
        copies: 0,
        restart: true,
        cap: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--snapshots" => {
                a.snapshots = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--snapshots: numbers"))
                    .collect()
            }
            "--modes" => a.modes = value().split(',').map(str::to_string).collect(),
            "--snapshot-seconds" => a.snapshot_seconds = value().parse().expect("seconds"),
            "--account-rps" => a.account_rps = value().parse().expect("requests/s"),
            "--copies" => a.copies = value().parse().expect("--copies: a number"),
            "--no-restart" => a.restart = false,
            "--cap-seconds" => {
                a.cap = Some(Duration::from_secs(
                    value().parse().expect("--cap-seconds: a number"),
                ))
            }
            "--merge" => a.merge = true,
            "--out" => a.out = Some(value()),
            // cargo bench passes --bench; anything else is a mistake worth saying.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The sources: 7 Redshift clusters, 7 DocumentDB clusters, 3 ElastiCache replication
/// groups and 3 cache clusters.
fn source(i: usize) -> Value {
    let c = i % CLUSTERS;
    match c {
        0..=6 => json!({"redshift": {"clusterIdentifier": format!("rs-{c:02}")}}),
        7..=13 => json!({"docdb": {"clusterIdentifier": format!("docdb-{c:02}")}}),
        14..=16 => json!({"elasticache": {"replicationGroupId": format!("rg-{c:02}")}}),
        _ => json!({"elasticache": {"cacheClusterId": format!("cc-{c:02}")}}),
    }
}

async fn seed(aws: &aws_config::SdkConfig) {
    for c in 0..CLUSTERS {
        create_source(aws, &source(c)).await;
    }
}

/// What the bench sees of each object.
#[derive(Default)]
struct Seen {
    identifier: Option<String>,
    ready_at: Option<Instant>,
    stalled: Option<String>,
}

fn condition_true<'a>(s: &'a SnapshotStatus, kind: &str) -> Option<&'a str> {
    s.conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| c.reason.as_str())
}

/// The two kinds the bench follows.
trait HasStatus {
    fn snapshot_status(&self) -> Option<&SnapshotStatus>;
}

impl HasStatus for ClusterSnapshot {
    fn snapshot_status(&self) -> Option<&SnapshotStatus> {
        self.status.as_ref()
    }
}

impl HasStatus for SnapshotCopy {
    fn snapshot_status(&self) -> Option<&SnapshotStatus> {
        self.status.as_ref()
    }
}

/// When the emulator reports each snapshot available (its start plus the snapshot time).
fn available_at(state: &aws_emulator::server::Shared) -> HashMap<String, Instant> {
    let st = state.lock().unwrap();
    let mut out = HashMap::new();
    for region in st.regions.values() {
        for ((_, id), s) in &region.redshift.snapshots {
            out.insert(id.clone(), s.progress.start + s.progress.duration);
        }
        for ((_, id), s) in &region.docdb.snapshots {
            out.insert(id.clone(), s.progress.start + s.progress.duration);
        }
        for ((_, id), s) in &region.elasticache.snapshots {
            out.insert(id.clone(), s.progress.start + s.progress.duration);
        }
    }
    out
}

fn proc_figures(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    (hwm_kb / 1024.0, ticks / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The `i`th copy: of the DocumentDB ClusterSnapshots in turn, every other one in
/// another region than its source.
fn copy_of(i: usize, n: usize) -> Value {
    let docdb: Vec<usize> = (0..n)
        .filter(|j| (7..=13).contains(&(j % CLUSTERS)))
        .collect();
    let source = docdb[(i / 2) % docdb.len()];
    let mut spec = json!({"source": {"clusterSnapshotRef": {"name": format!("snap-{source:05}")}}});
    if i % 2 == 1 {
        spec["region"] = json!("us-west-2");
    }
    spec
}

/// What an operator's /metrics says: the sum of each metric's series, and the API
/// server writes by verb and resource.
#[derive(Default, Debug)]
struct Scrape {
    ready: bool,
    reconciles: f64,
    kube_writes: f64,
    kube_writes_by: BTreeMap<String, f64>,
}

async fn scrape(port: u16) -> Option<Scrape> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut s = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        match name {
            "dbsnapshot_ready" => s.ready = value == 1.0,
            "dbsnapshot_reconciles_total"
                if labels.contains("kind=\"ClusterSnapshot\"")
                    || labels.contains("kind=\"SnapshotCopy\"") =>
            {
                s.reconciles += value
            }
            "dbsnapshot_kube_writes_total" => {
                s.kube_writes += value;
                let label = |key: &str| {
                    labels
                        .split(&format!("{key}=\""))
                        .nth(1)
                        .and_then(|v| v.split('"').next())
                        .unwrap_or_default()
                        .to_string()
                };
                *s.kube_writes_by
                    .entry(format!("{} {}", label("verb"), label("resource")))
                    .or_default() += value;
            }
            _ => {}
        }
    }
    Some(s)
}

fn total_calls(c: &Counters) -> u64 {
    c.calls.values().flat_map(|m| m.values()).sum()
}

fn by_action(c: &Counters) -> BTreeMap<String, u64> {
    c.calls
        .iter()
        .flat_map(|(svc, m)| m.iter().map(move |(a, n)| (format!("{svc}:{a}"), *n)))
        .collect()
}

fn start_operator(h: &Harness, url: &str, mode: &str, port: u16, label: &str) -> Operator {
    let metrics = format!("127.0.0.1:{port}");
    Operator::start_logged(
        &h.ns,
        url,
        &[
            "--polling",
            mode,
            "--resync-seconds",
            "600",
            "--max-poll-seconds",
            "60",
            "--min-poll-seconds",
            "11",
            // The operator's default, written out: the test harness writes progress
            // every second unless told.
            "--progress-write-seconds",
            "60",
            "--metrics-addr",
            &metrics,
        ],
        &common::kubeconfig(),
        label,
    )
}

/// Follows a kind's objects: when each became Ready, its identifier, Stalled.
fn follow<K>(
    api: Api<K>,
    kind: &'static str,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
        + HasStatus,
{
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Ok(Some(event)) = events.try_next().await {
            let objs = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => vec![o],
                _ => continue,
            };
            let now = Instant::now();
            let mut seen = seen.lock().unwrap();
            for o in objs {
                let e = seen.entry(format!("{kind}/{}", o.name_any())).or_default();
                let Some(status) = o.snapshot_status() else {
                    continue;
                };
                if let Some(id) = status.snapshot_identifier.clone() {
                    e.identifier = Some(id);
                }
                if e.ready_at.is_none() && condition_true(status, "Ready").is_some() {
                    e.ready_at = Some(now);
                }
                if let Some(reason) = condition_true(status, "Stalled") {
                    e.stalled.get_or_insert_with(|| reason.to_string());
                }
            }
        }
    })
}

fn ready_count(seen: &Mutex<HashMap<String, Seen>>) -> usize {
    seen.lock()
        .unwrap()
        .values()
        .filter(|s| s.ready_at.is_some())
        .count()
}

async fn run(mode: &str, n: usize, a: &Args) -> Value {
    let m = a.copies;
    println!("== {mode}, {n} snapshots, {m} copies ==");
    let (addr, state, task) = aws_emulator::start(
        0,
        Options {
            snapshot_seconds: a.snapshot_seconds,
            faults: Faults {
                account_rps: a.account_rps,
                ..Faults::default()
            },
            ..Options::default()
        },
    )
    .await
    .expect("emulator");
    // AWS takes one ElastiCache snapshot of a group at a time; 50 objects per group all
    // at once would measure AWS's queue (hours at 300 s a snapshot), not the operator.
    state.lock().unwrap().one_snapshot_at_a_time = false;
    let url = format!("http://{addr}");
    let h = Harness::with_aws(&format!("bench-{n}"), &url).await;
    seed(&h.aws).await;
    // Let the account's budget refill after seeding, then count from zero.
    tokio::time::sleep(Duration::from_secs(2)).await;
    state.lock().unwrap().counters = Counters::default();

    let api: Api<ClusterSnapshot> = h.snapshots();
    let copies: Api<SnapshotCopy> = h.copies();
    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    let watches = [
        follow(api.clone(), "ClusterSnapshot", seen.clone()),
        follow(copies.clone(), "SnapshotCopy", seen.clone()),
    ];

    let port = common::free_port();
    let mut operator = start_operator(&h, &url, mode, port, &format!("{}-bench", h.ns));
    let pid = operator.pid();

    let t0 = Instant::now();
    let objects: Vec<(bool, usize)> = (0..n)
        .map(|i| (false, i))
        .chain((0..m).map(|i| (true, i)))
        .collect();
    futures::stream::iter(objects)
        .map(|(copy, i)| {
            let (api, copies) = (api.clone(), copies.clone());
            async move {
                if copy {
                    let obj: SnapshotCopy = serde_json::from_value(json!({
                        "apiVersion": "dbsnapshot.io/v1alpha1",
                        "kind": "SnapshotCopy",
                        "metadata": {"name": format!("copy-{i:05}")},
                        "spec": copy_of(i, n),
                    }))
                    .unwrap();
                    copies
                        .create(&PostParams::default(), &obj)
                        .await
                        .expect("create copy");
                } else {
                    let obj: ClusterSnapshot = serde_json::from_value(json!({
                        "apiVersion": "dbsnapshot.io/v1alpha1",
                        "kind": "ClusterSnapshot",
                        "metadata": {"name": format!("snap-{i:05}")},
                        "spec": {"source": source(i), "tags": {"bench": "scale"}},
                    }))
                    .unwrap();
                    api.create(&PostParams::default(), &obj)
                        .await
                        .expect("create object");
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let total = n + m;
    println!(
        "created {total} objects in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let limit = a.cap.unwrap_or(Duration::from_secs(4 * 3600));
    let mut last_report = Instant::now();
    let mut capped = false;
    loop {
        let ready = ready_count(&seen);
        if ready >= total {
            break;
        }
        if t0.elapsed() > limit {
            if a.cap.is_some() {
                println!("time cap: {ready} of {total} Ready after {limit:?}");
                capped = true;
                break;
            }
            panic!("only {ready} of {total} Ready after {limit:?}");
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            let c = state.lock().unwrap().counters.clone();
            println!(
                "  {:>5.0}s: {ready}/{total} Ready, {} AWS calls, {} throttled",
                t0.elapsed().as_secs_f64(),
                total_calls(&c),
                c.throttled + c.over_budget
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_reached = ready_count(&seen);
    let last_ready = seen
        .lock()
        .unwrap()
        .values()
        .filter_map(|s| s.ready_at)
        .max()
        .unwrap_or(t0);
    let all_ready_s = last_ready.duration_since(t0).as_secs_f64();
    if !capped {
        println!("all Ready after {all_ready_s:.1}s");
    }
    let available = available_at(&state);
    let mut lags: Vec<f64> = seen
        .lock()
        .unwrap()
        .values()
        .filter_map(|s| {
            let at = available.get(s.identifier.as_ref()?)?;
            Some(s.ready_at?.saturating_duration_since(*at).as_secs_f64())
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    if !capped {
        assert_eq!(
            lags.len(),
            total,
            "every object's snapshot is on the emulator"
        );
    }
    let lifecycle_calls = total_calls(&state.lock().unwrap().counters);

    // The restart: SIGKILL with everything Ready, start again, and measure until it is
    // ready and has reconciled every object once (then a few seconds more).
    let first = scrape(port).await.unwrap_or_default();
    let (first_rss, first_cpu) = proc_figures(pid);
    let mut restart = json!({});
    let restarted = a.restart && !capped;
    let mut current_port = port;
    if restarted {
        operator.kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = state.lock().unwrap().counters.clone();
        let port2 = common::free_port();
        current_port = port2;
        let t1 = Instant::now();
        operator = start_operator(&h, &url, mode, port2, &format!("{}-bench-restart", h.ns));
        let pid2 = operator.pid();
        let ready_s = loop {
            if let Some(s) = scrape(port2).await
                && s.ready
                && s.reconciles >= total as f64
            {
                break t1.elapsed().as_secs_f64();
            }
            if t1.elapsed() > Duration::from_secs(600) {
                panic!("the restarted operator was not ready within 600 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = state.lock().unwrap().counters.clone();
        let calls: BTreeMap<String, u64> = by_action(&after)
            .into_iter()
            .map(|(k, v)| {
                let was = by_action(&before).get(&k).copied().unwrap_or(0);
                (k, v - was)
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        let naming_one: BTreeMap<String, u64> = after
            .naming_one_snapshot
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v - before.naming_one_snapshot.get(k).copied().unwrap_or(0),
                )
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        let writes = scrape(port2).await.unwrap_or_default();
        let restart_figures = proc_figures(pid2);
        println!(
            "restart: ready after {ready_s:.1}s, {} AWS calls ({} naming one snapshot), {} API server writes, peak RSS {:.1} MiB",
            calls.values().sum::<u64>(),
            naming_one.values().sum::<u64>(),
            writes.kube_writes,
            restart_figures.0
        );
        restart = json!({
            "restart_ready_s": round(ready_s, 1),
            "restart_aws_calls": calls.values().sum::<u64>(),
            "restart_calls_naming_one_snapshot": naming_one.values().sum::<u64>(),
            "restart_calls_by_action": calls,
            "restart_kube_writes": writes.kube_writes,
            "restart_peak_rss_mib": round(restart_figures.0, 1),
        });
    }

    delete_every(&api, "ClusterSnapshots").await;
    delete_every(&copies, "SnapshotCopies").await;
    let deadline = Instant::now() + Duration::from_secs(4 * 3600);
    loop {
        let left = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len());
        let left_copies = copies
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len());
        if left.as_ref().is_ok_and(|n| *n == 0) && left_copies.as_ref().is_ok_and(|n| *n == 0) {
            break;
        }
        if Instant::now() > deadline {
            panic!("objects left: {left:?} ClusterSnapshots, {left_copies:?} copies");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let done_s = t0.elapsed().as_secs_f64();
    println!("all deleted after {done_s:.1}s");
    // Writes and figures of the process running now, and of the one killed before.
    let now = scrape(current_port).await.unwrap_or_default();
    let (rss, cpu) = proc_figures(operator.pid());
    let (kube_writes, writes_by, peak_rss_mib, cpu_s) = if restarted {
        let mut by = first.kube_writes_by.clone();
        for (k, v) in &now.kube_writes_by {
            *by.entry(k.clone()).or_default() += v;
        }
        (
            first.kube_writes + now.kube_writes,
            by,
            first_rss.max(rss),
            first_cpu + cpu,
        )
    } else {
        (now.kube_writes, now.kube_writes_by.clone(), rss, cpu)
    };
    drop(operator);
    for w in watches {
        w.abort();
    }
    let counters = state.lock().unwrap().counters.clone();
    let ours: std::collections::HashSet<String> = seen
        .lock()
        .unwrap()
        .values()
        .filter_map(|s| s.identifier.clone())
        .collect();
    let left_on_aws = available_at(&state)
        .keys()
        .filter(|id| ours.contains(*id))
        .count();
    task.abort();

    let by_action = by_action(&counters);
    let calls: u64 = by_action.values().sum();
    let stalled: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(name, s)| Some(format!("{name}: {}", s.stalled.as_ref()?)))
        .collect();
    let mut out = json!({
        "mode": mode,
        "snapshots": n,
        "copies": m,
        "aws_calls_total": calls,
        "aws_calls_per_snapshot": round(calls as f64 / total as f64, 2),
        "aws_calls_to_all_ready": lifecycle_calls,
        "throttled": counters.throttled + counters.over_budget,
        "ready_lag_p50_s": round(percentile(&lags, 50.0), 2),
        "ready_lag_p99_s": round(percentile(&lags, 99.0), 2),
        "all_ready_s": round(all_ready_s, 1),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "cpu_s": round(cpu_s, 1),
        "all_deleted_s": round(done_s, 1),
        "kube_writes_total": kube_writes,
        "kube_writes_per_lifecycle": round(kube_writes / total as f64, 2),
        "kube_writes_by": writes_by,
        "stalled": stalled.len(),
        "stalled_examples": stalled.into_iter().take(5).collect::<Vec<_>>(),
        "snapshots_left_on_aws": left_on_aws,
        "calls_by_action": by_action,
        // Of those, the calls that named one snapshot (a describe of it alone, its tags,
        // its attributes, and the mutations, which always do).
        "calls_naming_one_snapshot_by_action": counters.naming_one_snapshot,
        "date": common::now_utc(),
    });
    if capped {
        out["capped_after_s"] = json!(limit.as_secs());
        out["ready_reached"] = json!(ready_reached);
    }
    if let (Some(out), Some(restart)) = (out.as_object_mut(), restart.as_object()) {
        out.extend(restart.clone());
    }
    out
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{model}, {cpus} CPUs, {mem_gib:.0} GiB RAM")
}

fn table(runs: &mut [Value], a: &Args) -> String {
    runs.sort_by_key(|r| {
        (
            r["snapshots"].as_u64().unwrap_or(0),
            r["copies"].as_u64().unwrap_or(0),
            r["mode"].as_str().unwrap_or_default().to_string(),
        )
    });
    let date = common::now_utc();
    let mut md = format!(
        "Machine: {}. Date: {date}. Snapshot time {}s, account budget {} requests/s.\n\n\
         | mode | snapshots | copies | AWS calls | calls/lifecycle | throttled | Ready lag p50 (s) | Ready lag p99 (s) | all Ready (s) | peak RSS (MiB) | CPU (s) | Stalled | kube writes/lifecycle | restart: AWS calls (naming one snapshot) | restart ready (s) | restart peak RSS (MiB) | run |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n",
        machine(),
        a.snapshot_seconds,
        a.account_rps
    );
    for r in runs {
        let dash = |v: &Value| {
            if v.is_null() {
                "–".to_string()
            } else {
                v.to_string()
            }
        };
        let all_ready = match r["capped_after_s"].as_f64() {
            Some(cap) => format!(
                "capped at {cap}: {} Ready",
                r["ready_reached"].as_u64().unwrap_or(0)
            ),
            None => r["all_ready_s"].to_string(),
        };
        let restart = if r["restart_aws_calls"].is_null() {
            "–".to_string()
        } else {
            format!(
                "{} ({})",
                r["restart_aws_calls"], r["restart_calls_naming_one_snapshot"]
            )
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["mode"].as_str().unwrap_or_default(),
            r["snapshots"],
            dash(&r["copies"]),
            r["aws_calls_total"],
            r["aws_calls_per_snapshot"],
            r["throttled"],
            r["ready_lag_p50_s"],
            r["ready_lag_p99_s"],
            all_ready,
            r["peak_rss_mib"],
            r["cpu_s"],
            r["stalled"],
            dash(&r["kube_writes_per_lifecycle"]),
            restart,
            dash(&r["restart_ready_s"]),
            dash(&r["restart_peak_rss_mib"]),
            r["date"].as_str().unwrap_or_default(),
        ));
    }
    md
}

fn main() {
    // The operator logs at info (debug lines for 1000 objects would be measured too).
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: set before any thread is started.
        unsafe { std::env::set_var("RUST_LOG", "info") };
    }
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let out = a
            .out
            .as_ref()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| common::root().join("target/bench"));
        std::fs::create_dir_all(&out).unwrap();
        let mut runs: Vec<Value> = if a.merge {
            std::fs::read_to_string(out.join("results.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        for &n in &a.snapshots {
            for mode in &a.modes {
                let r = run(mode, n, &a).await;
                let copies = |v: &Value| v["copies"].as_u64().unwrap_or(0);
                runs.retain(|old| {
                    old["mode"] != r["mode"]
                        || old["snapshots"] != r["snapshots"]
                        || copies(old) != copies(&r)
                });
                println!("{}", serde_json::to_string_pretty(&r).unwrap());
                runs.push(r);
                std::fs::write(
                    out.join("results.json"),
                    serde_json::to_string_pretty(&runs).unwrap(),
                )
                .unwrap();
            }
        }
        let md = table(&mut runs, &a);
        std::fs::write(out.join("results.md"), &md).unwrap();
        println!("\n{md}");
    });
}

/// Deletes every object of a kind in the namespace. A deletecollection of 10,000 objects
/// can outlast the API server's deadline for one request (it goes on deleting); it is
/// sent again, up to ten times, until one returns.
async fn delete_every<K>(api: &Api<K>, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for attempt in 1..=10 {
        match api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            Ok(_) => return,
            Err(e) if attempt < 10 => {
                println!("deleting every {what}: {e}; again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => panic!("deleting every {what}: {e}"),
        }
    }
}
