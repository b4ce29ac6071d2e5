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
//! Five SnapshotSchedules (`--schedules 5`; a per-minute cron on the operator's fast
//! schedule clock, `--schedule-speed 6`: a run every 10 s; keepLast 3) run on the same
//! clusters from the start through the kills and the kube-apiserver restart. A watch
//! and a poll record every run; then, for the schedules:
//!
//! - no duplicate run: never two runs of a schedule for one scheduled time;
//! - at rest (calm: 30 s after the last kill, over bound for more than 15 s), and
//!   after suspending them once the chaos is over: never more than keepLast + in-flight
//!   (neither Ready nor Failed) + failedHistoryLimit runs per schedule, not counting
//!   runs already being deleted;
//! - at rest, every run has exactly one snapshot and every run's snapshot a live run;
//! - after deleting the schedules and then their runs by label: no snapshot left on
//!   AWS but the sources and the `Retain` objects'.
//!
//! `cargo bench --bench chaos -- [--objects 200] [--kills 10] [--seed N]
//! [--snapshot-seconds 10] [--schedules 5] [--schedule-speed 6] [--out DIR]`;
//! `scripts/chaos.sh` runs it. Prints the figures,
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
use dbsnapshot_operator::api::{
    AWSAccount, ClusterSnapshot, Phase, RESOURCE_TAG, SnapshotCopy, SnapshotSchedule,
    SnapshotStatus,
};
use futures::StreamExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde_json::{Value, json};

/// The second account and the role the operator assumes there.
const DR_ACCOUNT: &str = "210987654321";
const DR_ROLE: &str = "arn:aws:iam::210987654321:role/dbsnapshot-operator";

struct Args {
    objects: usize,
    kills: u64,
    seed: u64,
    snapshot_seconds: f64,
    schedules: usize,
    schedule_speed: u32,
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
        schedules: 5,
        schedule_speed: 6,
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
            "--schedules" => a.schedules = value().parse().expect("--schedules: a number"),
            "--schedule-speed" => {
                a.schedule_speed = value().parse().expect("--schedule-speed: a number")
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
/// one time in three. One DocumentDB ClusterSnapshot in two is in the second account
/// (the AWSAccount `dr`), and one DocumentDB copy in four is made there (half of them
/// also into eu-west-1).
fn plan(n: usize, redshift_automated: &str, docdb_source_arn: &str, dr: &str) -> Vec<Planned> {
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
            // The second account: DocumentDB snapshots made there, and copies of the
            // operator's own account's snapshot into it, in its region and (through an
            // intermediate copy) into eu-west-1.
            let in_dr = if copy {
                k % 8 == 5 || k % 8 == 6
            } else {
                i % 8 == 5
            };
            if in_dr {
                spec["account"] = json!(dr);
                if copy {
                    spec["source"] = json!({"docdb": {"snapshotIdentifier": docdb_source_arn}});
                }
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

/// Ready, and a copy made through an intermediate copy has deleted it.
fn is_done(o: &Value) -> bool {
    is_ready(o)
        && status_of(o)
            .intermediate
            .is_none_or(|i| i.deleted == Some(true))
}

fn is_ready(o: &Value) -> bool {
    common::is_ready(&status_of(o))
}

const SCHEDULE_LABEL: &str = "dbsnapshot.io/schedule";
const SCHEDULED_TIME: &str = "dbsnapshot.io/scheduled-time";
const KEEP_LAST: usize = 3;
const FAILED_HISTORY_LIMIT: usize = 3;
/// Schedules are named `sched-…`, so their runs (`sched-…-<yyyymmddhhmm>`) never share
/// a name with the planned objects (`snap-…`, `copy-…`).
const SCHEDULE_PREFIX: &str = "sched-";

/// The schedules: a per-minute cron on each engine's cluster, keepLast 3, Delete. The
/// ElastiCache ones are Forbid (ElastiCache takes one snapshot of a group at a time, and
/// the planned objects take theirs from the same clusters, so skips are expected); one
/// Redshift and one DocumentDB schedule let runs overlap.
fn schedule_plan(n: usize) -> Vec<(String, Value)> {
    let all = [
        (
            "sched-redshift",
            json!({"redshift": {"clusterIdentifier": "analytics"}}),
            "Allow",
        ),
        (
            "sched-docdb",
            json!({"docdb": {"clusterIdentifier": "orders"}}),
            "Forbid",
        ),
        (
            "sched-sessions",
            json!({"elasticache": {"replicationGroupId": "sessions"}}),
            "Forbid",
        ),
        (
            "sched-solo",
            json!({"elasticache": {"cacheClusterId": "solo"}}),
            "Forbid",
        ),
        (
            "sched-docdb-allow",
            json!({"docdb": {"clusterIdentifier": "orders"}}),
            "Allow",
        ),
    ];
    all.into_iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, (name, source, policy))| {
            let name = if i < 5 {
                name.to_string()
            } else {
                format!("{name}-{i}")
            };
            let spec = json!({
                "schedule": "*/1 * * * *",
                "concurrencyPolicy": policy,
                "snapshotTemplate": {"spec": {
                    "source": source,
                    "deletionPolicy": "Delete",
                    "tags": {"chaos": name},
                }},
                "retention": {"keepLast": KEEP_LAST, "failedHistoryLimit": FAILED_HISTORY_LIMIT},
            });
            (name, spec)
        })
        .collect()
}

/// The schedule a ClusterSnapshot is a run of, by its label.
fn schedule_of(o: &Value) -> Option<&str> {
    o["metadata"]["labels"][SCHEDULE_LABEL].as_str()
}

/// A run neither Ready nor Failed (Stalled counts as Failed).
fn in_flight(o: &Value) -> bool {
    let s = status_of(o);
    !common::is_ready(&s) && !is_failed(&s)
}

fn is_failed(s: &SnapshotStatus) -> bool {
    s.phase == Some(Phase::Failed) || common::is_stalled(s)
}

fn is_deleting(o: &Value) -> bool {
    !o["metadata"]["deletionTimestamp"].is_null()
}

/// What the watch and the polls saw of the schedules' runs.
#[derive(Default)]
struct RunBook {
    /// Every run ever seen: uid → (schedule, name, scheduled time).
    seen: BTreeMap<String, (String, String, String)>,
    /// Runs by (schedule, scheduled time): more than one uid is a duplicate run.
    by_time: BTreeMap<(String, String), BTreeSet<String>>,
    /// Per schedule: the most runs seen at once, not counting those being deleted.
    max_objects: BTreeMap<String, usize>,
    /// Per schedule: the most runs seen at once, those being deleted included.
    max_with_deleting: BTreeMap<String, usize>,
    /// Per schedule: the most runs in flight at once.
    max_in_flight: BTreeMap<String, usize>,
    /// Per schedule: polls that found more runs than the bound, at any time / when calm.
    over_bound: BTreeMap<String, u64>,
    over_bound_calm: BTreeMap<String, u64>,
    /// Per schedule: since when it has been over the bound while calm.
    over_since: BTreeMap<String, Instant>,
    /// Per schedule: the longest it stayed over the bound while calm (s).
    longest_over_s: BTreeMap<String, f64>,
    violations: Vec<String>,
    polls: u64,
    calm_polls: u64,
}

impl RunBook {
    fn note(&mut self, o: &Value) {
        let Some(schedule) = schedule_of(o) else {
            return;
        };
        let uid = o["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let at = o["metadata"]["annotations"][SCHEDULED_TIME]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.seen.contains_key(&uid) {
            return;
        }
        self.seen.insert(
            uid.clone(),
            (schedule.to_string(), name.clone(), at.clone()),
        );
        let uids = self
            .by_time
            .entry((schedule.to_string(), at.clone()))
            .or_default();
        uids.insert(uid);
        if uids.len() == 2 {
            self.violations.push(format!(
                "duplicate run: {schedule} has {} runs for {at} (latest {name})",
                uids.len()
            ));
        }
    }

    /// One poll of every run: counts per schedule against keepLast + in-flight +
    /// failedHistoryLimit. Over the bound for more than 15 s while calm is a violation
    /// (retention prunes on the reconcile after a run gets Ready, so a poll may fall
    /// between the two).
    fn poll(&mut self, runs: &[&Value], schedules: &[String], calm: bool) {
        self.polls += 1;
        if calm {
            self.calm_polls += 1;
        }
        for schedule in schedules {
            let mine: Vec<&&Value> = runs
                .iter()
                .filter(|o| schedule_of(o) == Some(schedule.as_str()))
                .collect();
            let live: Vec<&&Value> = mine.iter().copied().filter(|o| !is_deleting(o)).collect();
            let flying = live.iter().filter(|o| in_flight(o)).count();
            let max = |m: &mut BTreeMap<String, usize>, n: usize| {
                let e = m.entry(schedule.clone()).or_default();
                *e = (*e).max(n);
            };
            max(&mut self.max_objects, live.len());
            max(&mut self.max_with_deleting, mine.len());
            max(&mut self.max_in_flight, flying);
            let bound = KEEP_LAST + flying + FAILED_HISTORY_LIMIT;
            if live.len() <= bound {
                self.over_since.remove(schedule);
                continue;
            }
            *self.over_bound.entry(schedule.clone()).or_default() += 1;
            if !calm {
                self.over_since.remove(schedule);
                continue;
            }
            *self.over_bound_calm.entry(schedule.clone()).or_default() += 1;
            let since = *self
                .over_since
                .entry(schedule.clone())
                .or_insert_with(Instant::now);
            let over = since.elapsed().as_secs_f64();
            let longest = self.longest_over_s.entry(schedule.clone()).or_default();
            if over > 15.0 && *longest <= 15.0 {
                self.violations.push(format!(
                    "{schedule}: {} runs for more than 15 s at rest, bound {bound} ({flying} in flight)",
                    live.len()
                ));
            }
            *longest = longest.max(over);
        }
    }

    fn created(&self, schedule: &str) -> usize {
        self.seen.values().filter(|(s, _, _)| s == schedule).count()
    }
}

/// The operator, killed and restarted by the chaos task.
struct Target {
    operator: Mutex<Option<Operator>>,
    ns: String,
    url: String,
    kubeconfig: std::path::PathBuf,
    /// The schedule clock's flags, the same for every start so that a restarted
    /// operator's clock goes on where the last one's was.
    clock: Vec<String>,
}

impl Target {
    fn start(&self) {
        let mut args = vec![
            "--resync-seconds",
            "20",
            "--max-poll-seconds",
            "5",
            "--min-poll-seconds",
            "1",
        ];
        args.extend(self.clock.iter().map(String::as_str));
        let op =
            Operator::start_with_env(&self.ns, &self.url, &args, &self.kubeconfig, &self.ns, &[]);
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
    // The second account: its role trusts the operator's account, it has a DocumentDB
    // cluster of its own, and the operator's orders-src is shared with it.
    {
        let mut st = emulator.lock().unwrap();
        let role =
            aws_emulator::sts::Role::from_flag(&format!("{DR_ROLE}=123456789012")).expect("a role");
        st.roles.insert(DR_ROLE.to_string(), role);
    }
    let seeded = reqwest::Client::new()
        .post(format!("{url}/_emulator/seed"))
        .json(&json!({"docdb": ["orders"], "region": "us-east-1", "account": DR_ACCOUNT}))
        .send()
        .await
        .expect("seed the second account");
    assert!(seeded.status().is_success());
    let dr = format!("{ns}-dr");
    let accounts: Api<AWSAccount> = Api::all(client.clone());
    let account: AWSAccount = serde_json::from_value(json!({
        "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "AWSAccount",
        "metadata": {"name": dr},
        "spec": {"accountId": DR_ACCOUNT, "roleArn": DR_ROLE, "namespaces": [ns]}}))
    .expect("an AWSAccount");
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create AWSAccount {dr}: {e}"),
    }
    tokio::time::sleep(Duration::from_secs_f64(a.snapshot_seconds + 1.0)).await;
    // (Once available: AWS shares only an available snapshot.)
    aws_sdk_docdb::Client::new(&aws)
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("orders-src")
        .attribute_name("restore")
        .values_to_add(DR_ACCOUNT)
        .send()
        .await
        .expect("share orders-src");
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
        clock: vec![
            "--schedule-clock-speed".into(),
            a.schedule_speed.to_string(),
            "--schedule-clock-origin".into(),
            jiff::Timestamp::now().to_string(),
        ],
    });
    target.start();

    // The schedules, first: their runs go through every kill and the restart.
    let schedule_api: Api<SnapshotSchedule> = Api::namespaced(client.clone(), &ns);
    let schedule_plan = schedule_plan(a.schedules);
    let schedule_names: Vec<String> = schedule_plan.iter().map(|(n, _)| n.clone()).collect();
    for (name, spec) in &schedule_plan {
        let obj: SnapshotSchedule = serde_json::from_value(json!({
            "apiVersion": "dbsnapshot.io/v1alpha1",
            "kind": "SnapshotSchedule",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("a SnapshotSchedule");
        loop {
            match schedule_api.create(&PostParams::default(), &obj).await {
                Ok(_) => break,
                Err(kube::Error::Api(e)) if e.code == 409 => break,
                Err(e) => {
                    println!("  create SnapshotSchedule {name}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    if !schedule_names.is_empty() {
        println!(
            "created {} schedules (a run every {:.0} s)",
            schedule_names.len(),
            60.0 / f64::from(a.schedule_speed)
        );
    }
    let book: Arc<Mutex<RunBook>> = Arc::default();
    // Every run as the API server tells it, so that no run goes unseen between polls.
    let run_watch = {
        let (book, api) = (
            book.clone(),
            Api::<ClusterSnapshot>::namespaced(client.clone(), &ns),
        );
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default().labels(SCHEDULE_LABEL))
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                if let Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::InitApply(o)
                    | watcher::Event::Delete(o),
                ) = event
                {
                    book.lock()
                        .unwrap()
                        .note(&serde_json::to_value(&o).unwrap());
                }
            }
        })
    };

    // Chaos: kill the operator at random moments (4 to 15 s apart) until it has been
    // killed `--kills` times, starting it again 0 to 1.5 s later each time; restart the
    // kube-apiserver once, after the third kill.
    let stop = Arc::new(AtomicBool::new(false));
    // When the operator or the kube-apiserver was last disrupted (ms from `t0`): the
    // schedules' bound is checked only 30 s after that.
    let t0 = Instant::now();
    let last_disruption = Arc::new(AtomicU64::new(0));
    let kills = Arc::new(AtomicU64::new(0));
    let apiserver_restarts = Arc::new(AtomicU64::new(0));
    let deleting = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (target, stop, kills, restarts, deleting, last_disruption) = (
            target.clone(),
            stop.clone(),
            kills.clone(),
            apiserver_restarts.clone(),
            deleting.clone(),
            last_disruption.clone(),
        );
        let disrupted = move || {
            last_disruption.store(
                u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                Ordering::SeqCst,
            );
        };
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
                disrupted();
                let n = kills.fetch_add(1, Ordering::SeqCst) + 1;
                println!("  kill {n}");
                if n == 3 {
                    let d = state_dir.clone();
                    tokio::task::spawn_blocking(move || restart_apiserver(&d, 5))
                        .await
                        .unwrap();
                    restarts.fetch_add(1, Ordering::SeqCst);
                    disrupted();
                    println!("  kube-apiserver restarted (down 5 s)");
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
                target.start();
                disrupted();
            }
        })
    };

    // Watch for Stalled conditions the whole time.
    // And poll the schedules' runs: duplicates, and the bound while the schedules
    // live.
    let stalled: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop_observer = Arc::new(AtomicBool::new(false));
    let schedules_live = Arc::new(AtomicBool::new(true));
    let observer = {
        let (client, ns, stop, stalled) = (
            client.clone(),
            ns.clone(),
            stop_observer.clone(),
            stalled.clone(),
        );
        let (book, schedules_live, last_disruption, names) = (
            book.clone(),
            schedules_live.clone(),
            last_disruption.clone(),
            schedule_names.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(all) = list_all(&client, &ns).await {
                    let runs: Vec<&Value> = all
                        .iter()
                        .map(|(_, o)| o)
                        .filter(|o| schedule_of(o).is_some())
                        .collect();
                    let mut book = book.lock().unwrap();
                    for o in &runs {
                        book.note(o);
                    }
                    if schedules_live.load(Ordering::SeqCst) {
                        let since = t0.elapsed().as_millis()
                            - u128::from(last_disruption.load(Ordering::SeqCst));
                        book.poll(&runs, &names, since >= 30_000);
                    }
                    drop(book);
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

    let planned = plan(a.objects, &automated, &docdb_arn, &dr);
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
        let ready = all
            .iter()
            .filter(|(_, o)| schedule_of(o).is_none() && is_done(o))
            .count();
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
    // Where each object's snapshot is: identifier, region and account (an intermediate
    // copy has the copy's identifier in another region).
    let id_of: BTreeMap<String, String> = all
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                status_of(o).snapshot_identifier.unwrap_or_default(),
            )
        })
        .collect();
    let place_of: BTreeMap<String, (String, String, String)> = all
        .iter()
        .map(|(name, o)| {
            let s = status_of(o);
            (
                name.clone(),
                (
                    s.snapshot_identifier.unwrap_or_default(),
                    s.region.unwrap_or_default(),
                    s.account_id.unwrap_or_else(|| "123456789012".to_string()),
                ),
            )
        })
        .collect();
    let place = |s: &common::AwsSnapshot| (s.id.clone(), s.region.clone(), s.account.clone());
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    // The schedules' runs come and go meanwhile: theirs are checked at rest, below.
    let run_tag = format!("{ns}/ClusterSnapshot/{SCHEDULE_PREFIX}");
    let is_runs = |s: &common::AwsSnapshot| {
        s.tags
            .get(RESOURCE_TAG)
            .is_some_and(|r| r.starts_with(&run_tag))
    };
    let on_aws = common::aws_snapshots_of(&emulator);
    for s in on_aws
        .iter()
        .filter(|s| !sources.contains(&s.id) && !is_runs(s))
    {
        match s.tags.get("dbsnapshot.io/owner-uid") {
            Some(uid) => match uid_of.get(uid) {
                Some(name) => {
                    *owned.entry(name.clone()).or_default() += 1;
                    if place_of.get(name) != Some(&place(s)) {
                        violations.push(format!(
                            "{name} owns {:?} but records {:?}",
                            place(s),
                            place_of.get(name)
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
            .is_some_and(|all| all.iter().all(|(_, o)| schedule_of(o).is_some()))
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

    // The schedules at rest: a minute of calm, then suspended until no run is in
    // flight or being deleted. Retention goes on while suspended.
    let mut schedule_figures = serde_json::Map::new();
    let mut schedules_deleted_s = 0.0;
    if !schedule_names.is_empty() {
        println!("schedules: a minute at rest, then suspended");
        tokio::time::sleep(Duration::from_secs(60)).await;
        for name in &schedule_names {
            loop {
                match schedule_api
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"suspend": true}})),
                    )
                    .await
                {
                    Ok(_) => break,
                    Err(e) => {
                        println!("  suspend {name}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        let settle = Instant::now();
        wait_until(
            "the schedules' runs settled",
            Duration::from_secs(600),
            async || {
                let Some(all) = list_all(&client, &ns).await else {
                    return false;
                };
                let runs: Vec<&Value> = all
                    .iter()
                    .map(|(_, o)| o)
                    .filter(|o| schedule_of(o).is_some())
                    .collect();
                runs.iter().all(|o| !is_deleting(o) && !in_flight(o))
                    && schedule_names.iter().all(|n| {
                        runs.iter()
                            .filter(|o| schedule_of(o) == Some(n) && is_ready(o))
                            .count()
                            <= KEEP_LAST
                    })
            },
        )
        .await;
        println!(
            "schedules settled {:.0} s after suspending",
            settle.elapsed().as_secs_f64()
        );
        // Pollers may still be between a look and a note: give the watch a moment.
        tokio::time::sleep(Duration::from_secs(2)).await;
        schedules_live.store(false, Ordering::SeqCst);
        let all = list_all(&client, &ns).await.expect("list");
        let runs: Vec<&Value> = all
            .iter()
            .map(|(_, o)| o)
            .filter(|o| schedule_of(o).is_some())
            .collect();
        let on_aws = common::aws_snapshots_of(&emulator);
        let run_uids: BTreeMap<&str, &Value> = runs
            .iter()
            .map(|o| (o["metadata"]["uid"].as_str().unwrap(), *o))
            .collect();
        // Every run has exactly one snapshot; every run's snapshot belongs to a live run.
        let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
        for s in on_aws.iter().filter(|s| is_runs(s)) {
            match s.owner().and_then(|uid| run_uids.get_key_value(uid)) {
                Some((uid, o)) => {
                    *owned.entry(uid).or_default() += 1;
                    let recorded = status_of(o).snapshot_identifier.unwrap_or_default();
                    if recorded != s.id {
                        violations.push(format!(
                            "run {} owns {} but records {recorded:?}",
                            o["metadata"]["name"], s.id
                        ));
                    }
                }
                None => violations.push(format!(
                    "a pruned run left {} {} behind (owner {:?})",
                    s.engine,
                    s.id,
                    s.owner()
                )),
            }
        }
        for (uid, o) in &run_uids {
            let n = owned.get(uid).copied().unwrap_or(0);
            if n != 1 && !is_failed(&status_of(o)) {
                violations.push(format!("run {} owns {n} snapshots", o["metadata"]["name"]));
            }
        }
        // What each schedule says it missed (skipped by Forbid, or late).
        let mut missed: BTreeMap<&String, i64> = BTreeMap::new();
        for name in &schedule_names {
            let status = loop {
                match schedule_api.get(name).await {
                    Ok(s) => break s.status.unwrap_or_default(),
                    Err(e) => {
                        println!("  get {name}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
            missed.insert(name, status.missed_runs);
        }
        {
            let mut book = book.lock().unwrap();
            for name in &schedule_names {
                let mine: Vec<&&Value> = runs
                    .iter()
                    .filter(|o| schedule_of(o) == Some(name.as_str()))
                    .collect();
                let ready = mine.iter().filter(|o| is_ready(o)).count();
                let failed = mine.iter().filter(|o| is_failed(&status_of(o))).count();
                if mine.len() > KEEP_LAST + FAILED_HISTORY_LIMIT || ready > KEEP_LAST {
                    violations.push(format!(
                    "{name} at rest: {} runs ({ready} Ready, {failed} failed), keepLast {KEEP_LAST}",
                    mine.len()
                ));
                }
                schedule_figures.insert(
                name.clone(),
                json!({"runs_at_rest": mine.len(), "ready_at_rest": ready, "failed_at_rest": failed}),
            );
            }
            for name in &schedule_names {
                let created = book.created(name);
                let f = schedule_figures[name].as_object_mut().unwrap();
                let at_rest = f["runs_at_rest"].as_u64().unwrap_or(0) as usize;
                f.insert("runs_created".into(), json!(created));
                f.insert("missed_or_skipped".into(), json!(missed[name]));
                f.insert("pruned".into(), json!(created.saturating_sub(at_rest)));
                f.insert("max_runs".into(), json!(book.max_objects.get(name)));
                f.insert(
                    "max_runs_with_deleting".into(),
                    json!(book.max_with_deleting.get(name)),
                );
                f.insert("max_in_flight".into(), json!(book.max_in_flight.get(name)));
                f.insert(
                    "polls_over_bound".into(),
                    json!(book.over_bound.get(name).copied().unwrap_or(0)),
                );
                f.insert(
                    "calm_polls_over_bound".into(),
                    json!(book.over_bound_calm.get(name).copied().unwrap_or(0)),
                );
                f.insert(
                    "longest_over_bound_calm_s".into(),
                    json!(
                        (book.longest_over_s.get(name).copied().unwrap_or(0.0) * 10.0).round()
                            / 10.0
                    ),
                );
            }
            schedule_figures.insert(
                "polls".into(),
                json!({"all": book.polls, "calm": book.calm_polls}),
            );
            violations.append(&mut book.violations);
        }

        // Delete the schedules, then their runs by label.
        let delete_started = Instant::now();
        for name in &schedule_names {
            loop {
                match schedule_api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(e)) if e.code == 404 => break,
                    Err(e) => {
                        println!("  delete {name}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        wait_until("the schedules gone", Duration::from_secs(120), async || {
            schedule_api
                .list(&ListParams::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
        })
        .await;
        let snaps: Api<ClusterSnapshot> = Api::namespaced(client.clone(), &ns);
        for name in &schedule_names {
            let lp = ListParams::default().labels(&format!("{SCHEDULE_LABEL}={name}"));
            loop {
                match snaps.delete_collection(&DeleteParams::default(), &lp).await {
                    Ok(_) => break,
                    Err(e) => {
                        println!("  delete the runs of {name}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        wait_until("the runs gone", Duration::from_secs(600), async || {
            list_all(&client, &ns)
                .await
                .is_some_and(|all| all.is_empty())
        })
        .await;
        schedules_deleted_s = delete_started.elapsed().as_secs_f64();
        println!("schedules and their runs deleted after {schedules_deleted_s:.0} s");
    }
    stop_observer.store(true, Ordering::SeqCst);
    observer.await.unwrap();
    run_watch.abort();
    // Violations the watch found after the rest check (a duplicate made late).
    violations.append(&mut book.lock().unwrap().violations);
    target.kill();

    let left = common::aws_snapshots_of(&emulator);
    // Nothing left but the sources and what Retain objects keep.
    let retained: BTreeSet<&(String, String, String)> = planned
        .iter()
        .filter(|p| p.retain)
        .map(|p| &place_of[&p.name])
        .collect();
    for s in &left {
        if !sources.contains(&s.id) && !retained.contains(&place(s)) {
            violations.push(format!(
                "leaked: {} {} ({:?})",
                s.engine,
                s.id,
                s.tags.get(RESOURCE_TAG)
            ));
        }
    }
    for p in &planned {
        let id = &id_of[&p.name];
        let there = left.iter().find(|s| place(s) == place_of[&p.name]);
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
        "in_second_account": planned.iter().filter(|p| p.body["spec"]["account"].is_string()).count(),
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
        "schedules": schedule_names.len(),
        "schedule_speed": a.schedule_speed,
        "schedules_and_runs_deleted_s": (schedules_deleted_s * 10.0).round() / 10.0,
        "schedule_figures": schedule_figures,
        "violations": violations.len(),
    });
    let _ = accounts.delete(&dr, &DeleteParams::default()).await;
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
        "== chaos: {} objects, {} schedules at clock speed {}, at least {} kills, seed {} ==",
        a.objects, a.schedules, a.schedule_speed, a.kills, a.seed
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
