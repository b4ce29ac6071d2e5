//! The scale benchmark: N ClusterSnapshots across 20 source clusters and all three
//! engines, taken through create → Ready → delete against the test bed (a real
//! kube-apiserver) and the AWS emulator (snapshots take 300 s; the account may make 12
//! requests per second), once with batched polling and once per object. Figures come
//! from the emulator's counters, the objects' conditions and the operator's /proc.
//!
//! `cargo bench --bench scale -- [--snapshots 100,1000] [--modes batched,per-object]
//! [--snapshot-seconds 300] [--account-rps 12] [--merge] [--out DIR]`; `scripts/bench.sh` prepares
//! the test bed first. Writes `target/bench/results.json` (with `--merge`, runs already
//! there stay unless this one redoes their mode and N) and `target/bench/results.md`.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_emulator::server::Options;
use aws_emulator::state::{Counters, Faults};
use common::{Harness, Operator, create_source};
use dbsnapshot_operator::api::ClusterSnapshot;
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
}

fn args() -> Args {
    let mut a = Args {
        merge: false,
        out: None,
        snapshots: vec![100, 1000],
        modes: vec!["batched".into(), "per-object".into()],
        snapshot_seconds: 300.0,
        account_rps: 12.0,
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

fn condition_true<'a>(o: &'a ClusterSnapshot, kind: &str) -> Option<&'a str> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| c.reason.as_str())
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

async fn run(mode: &str, n: usize, a: &Args) -> Value {
    println!("== {mode}, {n} snapshots ==");
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
    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    let watch = {
        let (api, seen) = (api.clone(), seen.clone());
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
                    let e = seen.entry(o.name_any()).or_default();
                    if let Some(id) = o
                        .status
                        .as_ref()
                        .and_then(|s| s.snapshot_identifier.clone())
                    {
                        e.identifier = Some(id);
                    }
                    if e.ready_at.is_none() && condition_true(&o, "Ready").is_some() {
                        e.ready_at = Some(now);
                    }
                    if let Some(reason) = condition_true(&o, "Stalled") {
                        e.stalled.get_or_insert_with(|| reason.to_string());
                    }
                }
            }
        })
    };

    let operator = Operator::start(
        &h.ns,
        &url,
        &[
            "--polling",
            mode,
            "--resync-seconds",
            "600",
            "--max-poll-seconds",
            "60",
            "--min-poll-seconds",
            "11",
        ],
    );
    let pid = operator.pid();

    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let obj: ClusterSnapshot = serde_json::from_value(json!({
                    "apiVersion": "dbsnapshot.io/v1alpha1",
                    "kind": "ClusterSnapshot",
                    "metadata": {"name": format!("snap-{i:04}")},
                    "spec": {"source": source(i), "tags": {"bench": "scale"}},
                }))
                .unwrap();
                api.create(&PostParams::default(), &obj)
                    .await
                    .expect("create object");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!("created {n} objects in {:.1}s", t0.elapsed().as_secs_f64());

    let limit = Duration::from_secs(4 * 3600);
    let mut last_report = Instant::now();
    loop {
        let ready = seen
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.ready_at.is_some())
            .count();
        if ready >= n {
            break;
        }
        if t0.elapsed() > limit {
            panic!("only {ready} of {n} Ready after {limit:?}");
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            let c = state.lock().unwrap().counters.clone();
            let calls: u64 = c.calls.values().flat_map(|m| m.values()).sum();
            println!(
                "  {:>5.0}s: {ready}/{n} Ready, {calls} AWS calls, {} throttled",
                t0.elapsed().as_secs_f64(),
                c.throttled + c.over_budget
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last_ready = seen
        .lock()
        .unwrap()
        .values()
        .filter_map(|s| s.ready_at)
        .max()
        .unwrap();
    let all_ready_s = last_ready.duration_since(t0).as_secs_f64();
    println!("all Ready after {all_ready_s:.1}s");
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
    assert_eq!(lags.len(), n, "every object's snapshot is on the emulator");

    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete every object");
    loop {
        let left = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len());
        if left.as_ref().is_ok_and(|n| *n == 0) {
            break;
        }
        if t0.elapsed() > limit {
            panic!("objects left after {limit:?}: {left:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let done_s = t0.elapsed().as_secs_f64();
    println!("all deleted after {done_s:.1}s");
    let (peak_rss_mib, cpu_s) = proc_figures(pid);
    drop(operator);
    watch.abort();
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

    let by_action: BTreeMap<String, u64> = counters
        .calls
        .iter()
        .flat_map(|(svc, m)| m.iter().map(move |(a, c)| (format!("{svc}:{a}"), *c)))
        .collect();
    let total: u64 = by_action.values().sum();
    let stalled: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(name, s)| Some(format!("{name}: {}", s.stalled.as_ref()?)))
        .collect();
    json!({
        "mode": mode,
        "snapshots": n,
        "aws_calls_total": total,
        "aws_calls_per_snapshot": round(total as f64 / n as f64, 2),
        "throttled": counters.throttled + counters.over_budget,
        "ready_lag_p50_s": round(percentile(&lags, 50.0), 2),
        "ready_lag_p99_s": round(percentile(&lags, 99.0), 2),
        "all_ready_s": round(all_ready_s, 1),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "cpu_s": round(cpu_s, 1),
        "all_deleted_s": round(done_s, 1),
        "stalled": stalled.len(),
        "stalled_examples": stalled.into_iter().take(5).collect::<Vec<_>>(),
        "snapshots_left_on_aws": left_on_aws,
        "calls_by_action": by_action,
        "date": common::now_utc(),
    })
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
            r["mode"].as_str().unwrap_or_default().to_string(),
        )
    });
    let date = common::now_utc();
    let mut md = format!(
        "Machine: {}. Date: {date}. Snapshot time {}s, account budget {} requests/s.\n\n\
         | mode | snapshots | AWS calls | calls/snapshot | throttled | Ready lag p50 (s) | Ready lag p99 (s) | all Ready (s) | peak RSS (MiB) | CPU (s) | Stalled | run |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        machine(),
        a.snapshot_seconds,
        a.account_rps
    );
    for r in runs {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["mode"].as_str().unwrap_or_default(),
            r["snapshots"],
            r["aws_calls_total"],
            r["aws_calls_per_snapshot"],
            r["throttled"],
            r["ready_lag_p50_s"],
            r["ready_lag_p99_s"],
            r["all_ready_s"],
            r["peak_rss_mib"],
            r["cpu_s"],
            r["stalled"],
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
                runs.retain(|old| old["mode"] != r["mode"] || old["snapshots"] != r["snapshots"]);
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
