//! The export benchmark: 20 ElastiCache exports to S3 (SnapshotCopy with targetBucket)
//! at once, against the test bed (a real kube-apiserver) and the AWS emulator. Each
//! export's source snapshot is started at the same moment as its SnapshotCopy, so every
//! copy first waits for a source that is still creating and then for its export; both
//! take `--snapshot-seconds` (default 60). The operator runs with its production
//! polling defaults. Prints the operator's AWS calls (in all, per export and by
//! action; the bench's own calls that start the sources are not counted), the wall time
//! from the first copy created until every copy is Ready, and any copy that was Stalled.
//!
//! `cargo bench --bench exports -- [--exports 20] [--snapshot-seconds 60]
//! [--account-rps 12]`; `scripts/bench.sh --exports` prepares the test bed first.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_emulator::server::Options;
use aws_emulator::state::{Counters, Faults};
use common::{Harness, Operator, create_source};
use dbsnapshot_operator::api::SnapshotCopy;
use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

struct Args {
    exports: usize,
    snapshot_seconds: f64,
    account_rps: f64,
}

fn args() -> Args {
    let mut a = Args {
        exports: 20,
        snapshot_seconds: 60.0,
        account_rps: 12.0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--exports" => a.exports = value().parse().expect("--exports: a number"),
            "--snapshot-seconds" => a.snapshot_seconds = value().parse().expect("seconds"),
            "--account-rps" => a.account_rps = value().parse().expect("requests/s"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn condition_true<'a>(o: &'a SnapshotCopy, kind: &str) -> Option<&'a str> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| c.reason.as_str())
}

async fn run(a: &Args) {
    let n = a.exports;
    println!(
        "== {n} ElastiCache exports, snapshots and exports of {} s ==",
        a.snapshot_seconds
    );
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
    let url = format!("http://{addr}");
    let h = Harness::with_aws("bench-exports", &url).await;
    create_source(
        &h.aws,
        &json!({"elasticache": {"replicationGroupId": "sessions"}}),
    )
    .await;
    let operator = Operator::start(
        &h.ns,
        &url,
        &[
            "--resync-seconds",
            "600",
            "--max-poll-seconds",
            "60",
            "--min-poll-seconds",
            "11",
        ],
    );
    // Let the operator start and the account's budget refill.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let ec = h.elasticache();
    let sources: Vec<String> = (0..n).map(|i| format!("sessions-{i:02}")).collect();
    // ElastiCache takes one snapshot of a group at a time: the sources (set-up, not
    // measured) are made instantly.
    let seconds = std::mem::replace(&mut state.lock().unwrap().snapshot_seconds, 0.0);
    futures::stream::iter(sources.clone())
        .map(|source| {
            let ec = ec.clone();
            async move {
                ec.create_snapshot()
                    .replication_group_id("sessions")
                    .snapshot_name(source)
                    .send()
                    .await
                    .expect("source snapshot");
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    state.lock().unwrap().snapshot_seconds = seconds;
    // Only the operator's calls count from here.
    state.lock().unwrap().counters = Counters::default();

    let t0 = Instant::now();
    let copies: Api<SnapshotCopy> = h.copies();
    futures::stream::iter(sources.into_iter().enumerate())
        .map(|(i, source)| {
            let copies = copies.clone();
            async move {
                let obj: SnapshotCopy = serde_json::from_value(json!({
                    "apiVersion": "dbsnapshot.io/v1alpha1",
                    "kind": "SnapshotCopy",
                    "metadata": {"name": format!("export-{i:02}")},
                    "spec": {"source": {"elasticache": {"snapshotName": source}},
                             "targetBucket": "bench-exports", "deletionPolicy": "Retain"},
                }))
                .unwrap();
                copies
                    .create(&PostParams::default(), &obj)
                    .await
                    .expect("create object");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;

    let mut stalled: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Duration::from_secs_f64(a.snapshot_seconds * 2.0 + 120.0);
    let all_ready = loop {
        let list = copies.list(&ListParams::default()).await.expect("list");
        for o in &list.items {
            if let Some(reason) = condition_true(o, "Stalled") {
                stalled
                    .entry(o.name_any())
                    .or_insert_with(|| reason.to_string());
            }
        }
        let ready = list
            .items
            .iter()
            .filter(|o| condition_true(o, "Ready").is_some())
            .count();
        if ready == n {
            break t0.elapsed();
        }
        if t0.elapsed() > deadline {
            println!(
                "only {ready}/{n} Ready after {:.0}s (operator log: {})",
                t0.elapsed().as_secs_f64(),
                operator.log.display()
            );
            break t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let counters = state.lock().unwrap().counters.clone();
    let mut by_action: BTreeMap<String, u64> = BTreeMap::new();
    for (service, actions) in &counters.calls {
        for (action, count) in actions {
            by_action.insert(format!("{service}:{action}"), *count);
        }
    }
    let total: u64 = by_action.values().sum();
    let exported = state
        .lock()
        .unwrap()
        .exports
        .iter()
        .filter(|e| e.bucket == "bench-exports")
        .count();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "exports": n,
            "snapshot_seconds": a.snapshot_seconds,
            "exports_requested_on_aws": exported,
            "aws_calls_total": total,
            "aws_calls_per_export": (total as f64 / n as f64 * 100.0).round() / 100.0,
            "throttled": counters.throttled + counters.over_budget,
            "wall_time_to_all_ready_s": (all_ready.as_secs_f64() * 10.0).round() / 10.0,
            "stalled": stalled,
            "calls_by_action": by_action,
        }))
        .unwrap()
    );
    drop(operator);
    task.abort();
}

fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: set before any thread is started.
        unsafe { std::env::set_var("RUST_LOG", "info") };
    }
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&a));
}
