//! SnapshotSchedule against the real API server and the emulator: runs appear with the
//! right names and labels, retention prunes (and AWS follows each run's
//! deletionPolicy), copyTemplates copy every run, suspend and concurrencyPolicy hold
//! runs back, downtime makes one run and counts the rest as missed, deleting the
//! schedule leaves its snapshots, and neither a crash in the create window nor a
//! second replica makes a run twice.
//!
//! The operator runs its schedules on a fast clock (the hidden flags
//! `--schedule-clock-speed` and `--schedule-clock-origin`): at speed 12 a per-minute
//! cron makes a run every 5 s. A restarted operator gets the same origin, so its clock
//! goes on where the last one's was.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use dbsnapshot_operator::api::{SnapshotSchedule, SnapshotScheduleStatus};
use jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

/// A per-minute cron runs every 60 / SPEED seconds.
const SPEED: &str = "12";
/// For the tests that time a crash or a downtime within one period: a run every 15 s.
const SLOW: &str = "4";
const LABEL: &str = "dbsnapshot.io/schedule";
const AT: &str = "dbsnapshot.io/scheduled-time";

/// A harness whose operator runs schedules on the fast clock from now.
async fn harness(name: &str, snapshot_seconds: f64) -> (Harness, String) {
    harness_at(name, snapshot_seconds, SPEED).await
}

/// As `harness`, with the clock `speed` times faster than the real one.
async fn harness_at(name: &str, snapshot_seconds: f64, speed: &str) -> (Harness, String) {
    let mut h = Harness::new(name, snapshot_seconds).await;
    seed_clusters(&h.aws).await;
    let origin = Timestamp::now().to_string();
    restart_at(&mut h, &origin, speed, &[]);
    (h, origin)
}

/// (Re)starts the operator on the fast clock from `origin`.
fn restart(h: &mut Harness, origin: &str, extra: &[&str]) {
    restart_at(h, origin, SPEED, extra);
}

fn restart_at(h: &mut Harness, origin: &str, speed: &str, extra: &[&str]) {
    h.operator = None;
    let mut args = vec![
        "--schedule-clock-speed",
        speed,
        "--schedule-clock-origin",
        origin,
    ];
    args.extend(extra);
    h.start_operator(&args);
}

/// The schedule clock's time now, for an operator started with `origin` and `speed`.
fn schedule_now(origin: &str, speed: &str) -> Timestamp {
    let origin: Timestamp = origin.parse().unwrap();
    let speed: f64 = speed.parse().unwrap();
    let real = Timestamp::now().duration_since(origin).as_secs_f64();
    origin + jiff::SignedDuration::from_secs_f64(real * speed)
}

fn schedules(h: &Harness) -> Api<SnapshotSchedule> {
    Api::namespaced(h.client.clone(), &h.ns)
}

async fn create_schedule(h: &Harness, name: &str, spec: serde_json::Value) {
    let obj: SnapshotSchedule = serde_json::from_value(json!({
        "apiVersion": "dbsnapshot.io/v1alpha1",
        "kind": "SnapshotSchedule",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a SnapshotSchedule");
    schedules(h)
        .create(&PostParams::default(), &obj)
        .await
        .expect("create schedule");
}

async fn schedule_status(h: &Harness, name: &str) -> SnapshotScheduleStatus {
    schedules(h)
        .get(name)
        .await
        .expect("get schedule")
        .status
        .unwrap_or_default()
}

/// The ClusterSnapshots labelled for the schedule, by name.
async fn runs(h: &Harness, name: &str) -> Vec<dbsnapshot_operator::api::ClusterSnapshot> {
    let mut list = h
        .snapshots()
        .list(&ListParams::default().labels(&format!("{LABEL}={name}")))
        .await
        .expect("list runs")
        .items;
    list.sort_by_key(|c| c.name_any());
    list
}

fn ready_runs(list: &[dbsnapshot_operator::api::ClusterSnapshot]) -> usize {
    list.iter()
        .filter(|c| {
            c.meta().deletion_timestamp.is_none()
                && c.status
                    .as_ref()
                    .is_some_and(|s| s.ready_to_use == Some(true))
        })
        .count()
}

/// Polls `check` until it returns `Some`, panicking with `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The schedule's Events' reasons, one per occurrence (the recorder folds repeats of a
/// reason into one Event with a series count).
async fn event_reasons(h: &Harness, name: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), &h.ns);
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .flat_map(|e| {
            let n = e.series.as_ref().map_or(1, |s| s.count.max(1)) as usize;
            std::iter::repeat_n(e.reason.unwrap_or_default(), n)
        })
        .collect()
}

/// The scheduled time in a run's name: `<schedule>-<yyyymmddhhmm>`.
fn name_time(run: &str) -> &str {
    &run[run.len() - 12..]
}

fn is_schedule_ready(s: &SnapshotScheduleStatus) -> bool {
    s.conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_appear_with_their_names_labels_and_status() {
    let (h, _origin) = harness("sched-runs", 0.5).await;
    create_schedule(
        &h,
        "nightly",
        json!({
            "schedule": "*/1 * * * *",
            "snapshotTemplate": {
                "metadata": {"labels": {"team": "data"}, "annotations": {"owner": "dba"}},
                "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}},
                         "tags": {"env": "test"}}
            }
        }),
    )
    .await;
    let list = eventually("two Ready runs", Duration::from_secs(60), || async {
        let list = runs(&h, "nightly").await;
        (ready_runs(&list) >= 2).then_some(list)
    })
    .await;
    for run in &list {
        let name = run.name_any();
        let at: Timestamp = run.annotations()[AT].parse().expect("an RFC 3339 time");
        // The name is the schedule's and the scheduled minute in UTC.
        assert_eq!(
            name,
            format!("nightly-{}", at.strftime("%Y%m%d%H%M")),
            "{name} vs {at}"
        );
        assert_eq!(
            at.as_second() % 60,
            0,
            "a per-minute cron runs on the minute"
        );
        assert_eq!(run.labels()["team"], "data");
        assert_eq!(run.labels()[LABEL], "nightly");
        assert_eq!(run.annotations()["owner"], "dba");
        assert_eq!(run.spec.tags["env"], "test");
        assert!(run.spec.snapshot_identifier.is_none());
        // No owner reference: deleting the schedule must not collect its backups.
        assert!(run.owner_references().is_empty());
    }
    // Consecutive minutes: no run skipped, none twice.
    let times: Vec<Timestamp> = list
        .iter()
        .map(|r| r.annotations()[AT].parse().unwrap())
        .collect();
    for w in times.windows(2) {
        assert_eq!(w[1].as_second() - w[0].as_second(), 60, "{times:?}");
    }
    let status = eventually(
        "the status to catch up",
        Duration::from_secs(30),
        || async {
            let s = schedule_status(&h, "nightly").await;
            (s.snapshots >= 2 && is_schedule_ready(&s)).then_some(s)
        },
    )
    .await;
    assert!(status.last_schedule_time.is_some());
    assert!(status.next_schedule_time > status.last_schedule_time);
    assert!(status.last_successful_time.is_some());
    assert!(status.last_snapshot.is_some());
    assert_eq!(status.missed_runs, 0, "{status:?}");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("next run at"), "{}", ready.message);
    // An Event per run.
    let reasons = event_reasons(&h, "nightly").await;
    assert!(
        reasons.iter().filter(|r| *r == "RunCreated").count() >= 2,
        "{reasons:?}"
    );
    // Each run's snapshot is on AWS, owned by its object.
    let aws = h.aws_snapshots();
    for run in &list {
        let uid = run.uid().unwrap();
        assert!(
            aws.iter().any(|s| s.owner() == Some(uid.as_str())),
            "no snapshot on AWS for {}",
            run.name_any()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_last_prunes_and_aws_follows_each_deletion_policy() {
    let (h, _origin) = harness("sched-prune", 0.3).await;
    // A ClusterSnapshot whose name looks like a run but that lacks the label: never
    // pruned.
    h.create(json!({
        "metadata": {"name": "keep-202001010000"},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}
    }))
    .await
    .unwrap();
    // ...nor one labelled for another schedule.
    h.create(json!({
        "metadata": {"name": "other-202001010000", "labels": {LABEL: "other"}},
        "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}
    }))
    .await
    .unwrap();
    for (name, policy) in [("keep", "Delete"), ("retain", "Retain")] {
        create_schedule(
            &h,
            name,
            json!({
                "schedule": "*/1 * * * *",
                "concurrencyPolicy": "Allow",
                "snapshotTemplate": {"spec": {
                    "source": {"docdb": {"clusterIdentifier": "orders"}},
                    "deletionPolicy": policy
                }},
                "retention": {"keepLast": 2}
            }),
        )
        .await;
    }
    // Wait until each has pruned at least two runs.
    for name in ["keep", "retain"] {
        eventually(
            &format!("{name} to prune two runs"),
            Duration::from_secs(90),
            || async {
                let pruned = event_reasons(&h, name)
                    .await
                    .iter()
                    .filter(|r| *r == "Pruned")
                    .count();
                (pruned >= 2).then_some(())
            },
        )
        .await;
    }
    // keepLast Ready runs are kept (a third exists only between its Ready and the
    // prune that follows).
    for name in ["keep", "retain"] {
        let s = schedule_status(&h, name).await;
        assert_eq!(s.snapshots, 2, "{name}: {s:?}");
        eventually(
            &format!("{name} to hold 2 Ready runs"),
            Duration::from_secs(30),
            || async { (ready_runs(&runs(&h, name).await) == 2).then_some(()) },
        )
        .await;
    }
    // Objects not labelled for the schedule are untouched.
    assert!(
        h.snapshots()
            .get_opt("keep-202001010000")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        h.snapshots()
            .get_opt("other-202001010000")
            .await
            .unwrap()
            .is_some()
    );
    // AWS: a pruned Delete run's snapshot goes; a pruned Retain run's stays.
    let resource = |name: &str| format!("{}/ClusterSnapshot/{name}", h.ns);
    // The snapshots on AWS of runs whose objects are gone (pruned).
    let orphans = |schedule: &'static str| {
        let h = &h;
        async move {
            // Every object's, the look-alikes' included.
            let live: BTreeSet<String> = h
                .snapshots()
                .list(&ListParams::default())
                .await
                .unwrap()
                .iter()
                .filter_map(|r| r.uid())
                .collect();
            h.aws_snapshots()
                .into_iter()
                .filter(|s| {
                    s.tags
                        .get("dbsnapshot.io/resource")
                        .is_some_and(|r| r.starts_with(&resource(&format!("{schedule}-"))))
                        && s.owner().is_some_and(|o| !live.contains(o))
                })
                .count()
        }
    };
    eventually(
        "the pruned Delete runs to leave AWS",
        Duration::from_secs(30),
        || async { (orphans("keep").await == 0).then_some(()) },
    )
    .await;
    let kept = orphans("retain").await;
    assert!(
        kept >= 2,
        "Retain: {kept} pruned runs' snapshots left on AWS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_templates_copy_each_docdb_run_to_another_region() {
    let (h, _origin) = harness("sched-copy", 0.3).await;
    create_schedule(
        &h,
        "orders",
        json!({
            "schedule": "*/1 * * * *",
            "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}},
            "copyTemplates": [{"name": "dr", "spec": {"region": "eu-west-1", "copyTags": true}}]
        }),
    )
    .await;
    let copies = eventually("two Ready copies", Duration::from_secs(90), || async {
        let list = h
            .copies()
            .list(&ListParams::default().labels(&format!("{LABEL}=orders")))
            .await
            .unwrap()
            .items;
        let ready: Vec<_> = list
            .into_iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| s.ready_to_use == Some(true))
            })
            .collect();
        (ready.len() >= 2).then_some(ready)
    })
    .await;
    for copy in &copies {
        let run = copy.labels()["dbsnapshot.io/schedule-run"].clone();
        assert_eq!(copy.name_any(), format!("{run}-dr"));
        assert_eq!(
            copy.spec
                .source
                .cluster_snapshot_ref
                .as_ref()
                .map(|r| r.name.as_str()),
            Some(run.as_str())
        );
        let s = copy.status.clone().unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    }
    // One copy per run, in eu-west-1 on AWS.
    let names: BTreeSet<String> = copies.iter().map(|c| c.name_any()).collect();
    assert_eq!(names.len(), copies.len());
    let in_eu = h
        .aws_snapshots()
        .into_iter()
        .filter(|s| s.engine == "docdb" && s.region == "eu-west-1")
        .count();
    assert!(in_eu >= 2, "{in_eu} DocumentDB snapshots in eu-west-1");
    assert!(
        event_reasons(&h, "orders")
            .await
            .iter()
            .any(|r| r == "CopyCreated")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_runs_and_forbid_skips_while_a_run_is_creating() {
    let (mut h, origin) = harness("sched-hold", 0.3).await;
    create_schedule(
        &h,
        "paused",
        json!({
            "schedule": "*/1 * * * *",
            "suspend": true,
            "snapshotTemplate": {"spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}
        }),
    )
    .await;
    eventually(
        "the suspended schedule's status",
        Duration::from_secs(30),
        || async {
            let s = schedule_status(&h, "paused").await;
            is_schedule_ready(&s).then_some(())
        },
    )
    .await;
    // Three scheduled times pass: nothing is made.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert!(runs(&h, "paused").await.is_empty());
    let s = schedule_status(&h, "paused").await;
    assert!(s.next_schedule_time.is_none(), "{s:?}");
    // Resumed: runs come.
    schedules(&h)
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    eventually("a run after resuming", Duration::from_secs(30), || async {
        (!runs(&h, "paused").await.is_empty()).then_some(())
    })
    .await;
    // The times that passed while suspended are neither made nor counted missed.
    assert_eq!(schedule_status(&h, "paused").await.missed_runs, 0);
    assert!(
        !event_reasons(&h, "paused")
            .await
            .iter()
            .any(|r| r == "RunsMissed")
    );

    // Forbid (the default): while a run is still creating (snapshots now take 12 s,
    // runs come every 5 s), the next runs are skipped and counted.
    h.set_snapshot_seconds(12.0);
    create_schedule(
        &h,
        "slow",
        json!({
            "schedule": "*/1 * * * *",
            "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}
        }),
    )
    .await;
    let s = eventually("a skipped run", Duration::from_secs(60), || async {
        let s = schedule_status(&h, "slow").await;
        (s.missed_runs >= 1).then_some(s)
    })
    .await;
    assert_eq!(s.active.len(), 1, "{s:?}");
    let list = runs(&h, "slow").await;
    let creating = list.len() - ready_runs(&list);
    assert!(creating <= 1, "Forbid let {creating} runs create at once");
    // A restarted operator (its caches empty at first) does not make a run while one
    // is creating either.
    restart(&mut h, &origin, &[]);
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let list = runs(&h, "slow").await;
        let creating = list.len() - ready_runs(&list);
        assert!(
            creating <= 1,
            "after a restart, {creating} runs create at once"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        event_reasons(&h, "slow")
            .await
            .iter()
            .any(|r| r == "RunSkipped")
    );
    // Allow: runs overlap.
    create_schedule(
        &h,
        "overlap",
        json!({
            "schedule": "*/1 * * * *",
            "concurrencyPolicy": "Allow",
            "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}
        }),
    )
    .await;
    eventually(
        "two runs creating at once",
        Duration::from_secs(60),
        || async {
            let s = schedule_status(&h, "overlap").await;
            (s.active.len() >= 2).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_across_two_runs_makes_one_and_counts_the_other_missed() {
    // A run every 15 s, so that the restart can be placed within one period.
    let (mut h, origin) = harness_at("sched-down", 0.3, SLOW).await;
    for (name, deadline) in [("late", 3600), ("strict", 10)] {
        create_schedule(
            &h,
            name,
            json!({
                "schedule": "*/1 * * * *",
                "startingDeadlineSeconds": deadline,
                "concurrencyPolicy": "Allow",
                "snapshotTemplate": {"spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}
            }),
        )
        .await;
    }
    eventually("a first run of each", Duration::from_secs(60), || async {
        let late = schedule_status(&h, "late").await;
        let strict = schedule_status(&h, "strict").await;
        (late.last_schedule_time.is_some() && strict.last_schedule_time.is_some()).then_some(())
    })
    .await;
    // Down across two scheduled times; back 20 s (schedule time) after the second, so
    // that it is missed by more than `strict`'s 10 s deadline and by less than
    // `late`'s, and the next is 40 s (10 s real) away. The statuses are read once the
    // operator is gone, so that a run it made while stopping counts as before.
    h.operator = None;
    let before = [
        ("late", schedule_status(&h, "late").await),
        ("strict", schedule_status(&h, "strict").await),
    ];
    let now = schedule_now(&origin, SLOW);
    let back = (now.as_second() / 60 + 2) * 60 + 20;
    let wait = (back - now.as_second()) as f64 / 4.0;
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    restart_at(&mut h, &origin, SLOW, &[]);
    // Both statuses read together, as soon as both show the downtime: read one after
    // the other, the second could already show the next, ordinary run.
    let after = eventually(
        "both schedules to look at the downtime",
        Duration::from_secs(30),
        || async {
            let late = schedule_status(&h, "late").await;
            let strict = schedule_status(&h, "strict").await;
            (late.missed_runs > before[0].1.missed_runs
                && strict.missed_runs > before[1].1.missed_runs)
                .then_some([late, strict])
        },
    )
    .await;
    for ((name, old), after) in before.iter().zip(after) {
        let name = *name;
        let last_before = old.last_schedule_time.unwrap();
        let last_after = after.last_schedule_time.unwrap();
        let passed = (last_after.as_second() - last_before.as_second()) / 60;
        assert!(passed >= 2, "{name}: only {passed} scheduled times passed");
        // The runs made for the times in (last_before, last_after].
        let made: Vec<Timestamp> = runs(&h, name)
            .await
            .iter()
            .map(|r| r.annotations()[AT].parse().unwrap())
            .filter(|t: &Timestamp| *t > last_before && *t <= last_after)
            .collect();
        let missed = after.missed_runs - old.missed_runs;
        if name == "late" {
            // Within the deadline: the newest is made, the others are counted missed.
            assert_eq!(made, vec![last_after], "{name}");
            assert_eq!(missed, passed - 1, "{name}: {after:?}");
        } else {
            // Past the deadline: none is made, all are counted missed.
            assert!(made.is_empty(), "{name}: {made:?}");
            assert_eq!(missed, passed, "{name}: {after:?}");
        }
    }
    assert!(
        event_reasons(&h, "late")
            .await
            .iter()
            .any(|r| r == "RunsMissed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_schedule_leaves_its_snapshots() {
    let (h, _origin) = harness("sched-delete", 0.3).await;
    create_schedule(
        &h,
        "gone",
        json!({
            "schedule": "*/1 * * * *",
            "snapshotTemplate": {"spec": {"source": {"elasticache": {"replicationGroupId": "sessions"}}}},
            "retention": {"keepLast": 5}
        }),
    )
    .await;
    let before = eventually("two Ready runs", Duration::from_secs(60), || async {
        let list = runs(&h, "gone").await;
        (ready_runs(&list) >= 2).then_some(list)
    })
    .await;
    schedules(&h)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the schedule to go", Duration::from_secs(30), || async {
        schedules(&h)
            .get_opt("gone")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // Two more scheduled times: nothing new, nothing deleted.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let after = runs(&h, "gone").await;
    let names = |l: &[dbsnapshot_operator::api::ClusterSnapshot]| {
        l.iter().map(|c| c.name_any()).collect::<BTreeSet<_>>()
    };
    assert!(
        names(&before).is_subset(&names(&after)),
        "runs were deleted"
    );
    assert!(
        after.len() <= before.len() + 1,
        "runs were made after the schedule went"
    );
    for run in &after {
        assert!(run.meta().deletion_timestamp.is_none());
    }
    let aws = h.aws_snapshots();
    for run in &before {
        let uid = run.uid().unwrap();
        assert!(aws.iter().any(|s| s.owner() == Some(uid.as_str())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_creating_a_run_or_a_second_replica_makes_no_run_twice() {
    // A run every 15 s: the restart comes within the first run's period, so the
    // restarted operator finds that run due again.
    let (mut h, origin) = harness_at("sched-crash", 0.3, SLOW).await;
    // The operator holds right after creating the first run's object, before the
    // status write that records it; it is SIGKILLed there.
    h.operator = None;
    let mut args = vec![
        "--schedule-clock-speed",
        SLOW,
        "--schedule-clock-origin",
        origin.as_str(),
    ];
    let held = Operator::start_with_env(
        &h.ns,
        &h.aws_url,
        &args,
        &kubeconfig(),
        &format!("{}-held", h.ns),
        &[("DBSNAPSHOT_TEST_HOLD_AFTER_RUN_CREATE", "1")],
    );
    create_schedule(
        &h,
        "crash",
        json!({
            "schedule": "*/1 * * * *",
            "concurrencyPolicy": "Allow",
            "snapshotTemplate": {"spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}
        }),
    )
    .await;
    let first = eventually(
        "the first run's object",
        Duration::from_secs(30),
        || async { runs(&h, "crash").await.into_iter().next() },
    )
    .await;
    // The window: the object exists, the schedule's status does not know it yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        schedule_status(&h, "crash")
            .await
            .last_schedule_time
            .is_none()
    );
    drop(held); // SIGKILL
    // Two replicas at once, without leader election, from now on.
    restart_at(&mut h, &origin, SLOW, &[]);
    // The restarted operator found the first run due and made already.
    let log = h.operator.as_ref().unwrap().log.clone();
    let first_name = first.name_any();
    eventually(
        "the restarted operator to find the first run made",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .any(|l| l.contains("the run exists already") && l.contains(&first_name))
                .then_some(())
        },
    )
    .await;
    let s = eventually(
        "the first run recorded",
        Duration::from_secs(30),
        || async {
            let s = schedule_status(&h, "crash").await;
            s.last_schedule_time.is_some().then_some(s)
        },
    )
    .await;
    assert_eq!(s.missed_runs, 0, "the first run was counted missed: {s:?}");
    args.push("--metrics-addr");
    let port = free_port().to_string();
    let metrics_addr = format!("127.0.0.1:{port}");
    args.push(&metrics_addr);
    let _second = Operator::start_logged(
        &h.ns,
        &h.aws_url,
        &args,
        &kubeconfig(),
        &format!("{}-second", h.ns),
    );
    let list = eventually("three runs", Duration::from_secs(60), || async {
        let list = runs(&h, "crash").await;
        (list.len() >= 3).then_some(list)
    })
    .await;
    // The first run is the object made before the crash (same UID), and every
    // scheduled time has exactly one run.
    assert!(list.iter().any(|r| r.uid() == first.uid()));
    let times: Vec<String> = list.iter().map(|r| r.annotations()[AT].clone()).collect();
    let distinct: BTreeSet<&String> = times.iter().collect();
    assert_eq!(distinct.len(), times.len(), "{times:?}");
    for run in &list {
        let at: Timestamp = run.annotations()[AT].parse().unwrap();
        assert_eq!(
            name_time(&run.name_any()),
            at.strftime("%Y%m%d%H%M").to_string()
        );
    }
    // Consecutive scheduled minutes from the first: no gap, no repeat.
    let mut seconds: Vec<i64> = list
        .iter()
        .map(|r| {
            r.annotations()[AT]
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        })
        .collect();
    seconds.sort();
    for w in seconds.windows(2) {
        assert_eq!(w[1] - w[0], 60, "{times:?}");
    }
    // On AWS: one snapshot per run.
    let aws = h.aws_snapshots();
    for run in &list {
        let uid = run.uid().unwrap();
        let n = aws
            .iter()
            .filter(|s| s.owner() == Some(uid.as_str()))
            .count();
        assert!(n <= 1, "{} has {n} snapshots", run.name_any());
    }
}

async fn metrics(port: &str) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap()
}

/// The value of the first series of `name` with these labels in a Prometheus text page.
fn series(page: &str, name: &str, labels: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_shown_counted_and_kept_to_their_limit() {
    let (mut h, origin) = harness("sched-fail", 0.3).await;
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    restart(&mut h, &origin, &["--metrics-addr", &addr]);
    create_schedule(
        &h,
        "flaky",
        json!({
            "schedule": "*/1 * * * *",
            "concurrencyPolicy": "Allow",
            "snapshotTemplate": {"spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}},
            "retention": {"keepLast": 1, "failedHistoryLimit": 1}
        }),
    )
    .await;
    let first = eventually("a Ready run", Duration::from_secs(60), || async {
        runs(&h, "flaky").await.into_iter().find(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.ready_to_use == Some(true))
        })
    })
    .await;
    // From now on AWS fails every snapshot (each is failed as soon as it is recorded).
    h.set_snapshot_seconds(60.0);
    let http = reqwest::Client::new();
    let mut failed = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for run in runs(&h, "flaky").await {
            let Some(id) = run
                .status
                .as_ref()
                .and_then(|s| s.snapshot_identifier.clone())
            else {
                continue;
            };
            if run.uid() == first.uid() || failed.contains(&id) {
                continue;
            }
            http.post(format!("{}/_emulator/snapshots/fail", h.aws_url))
                .json(&json!({"service": "docdb", "identifier": id}))
                .send()
                .await
                .unwrap();
            failed.insert(id);
        }
        let pruned = event_reasons(&h, "flaky")
            .await
            .iter()
            .filter(|r| *r == "Pruned")
            .count();
        if failed.len() >= 3 && pruned >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "failed {} runs, {pruned} pruned",
            failed.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The schedule says its newest finished run failed.
    let s = eventually("Stalled RunFailed", Duration::from_secs(30), || async {
        let s = schedule_status(&h, "flaky").await;
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "RunFailed")
            .then_some(s)
    })
    .await;
    // The only Ready run stays (keepLast 1 counts Ready runs only; failed runs never
    // push it out), and failed runs are kept to failedHistoryLimit.
    assert_eq!(s.snapshots, 1, "{s:?}");
    let list = runs(&h, "flaky").await;
    assert!(list.iter().any(|r| r.uid() == first.uid()));
    let failed_now = list
        .iter()
        .filter(|r| {
            r.meta().deletion_timestamp.is_none()
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(dbsnapshot_operator::api::Phase::Failed))
        })
        .count();
    assert!(failed_now <= 1 + 1, "{failed_now} failed runs kept");
    let reasons = event_reasons(&h, "flaky").await;
    assert!(reasons.iter().any(|r| r == "RunFailed"), "{reasons:?}");
    // Metrics: created and failed runs, the Ready count and the last success.
    let labels = format!("namespace=\"{}\",schedule=\"flaky\"", h.ns);
    let page = metrics(&port).await;
    let failed_total = series(
        &page,
        "dbsnapshot_schedule_runs_total",
        &format!("{labels},outcome=\"failed\""),
    );
    assert!(failed_total.unwrap_or(0.0) >= 2.0, "{page}");
    assert!(
        series(
            &page,
            "dbsnapshot_schedule_runs_total",
            &format!("{labels},outcome=\"created\"")
        )
        .unwrap_or(0.0)
            >= 4.0,
        "{page}"
    );
    assert_eq!(
        series(&page, "dbsnapshot_schedule_snapshots", &labels),
        Some(1.0),
        "{page}"
    );
    assert!(
        series(
            &page,
            "dbsnapshot_schedule_last_success_timestamp_seconds",
            &labels
        )
        .is_some(),
        "{page}"
    );
    // AWS recovers: the next Ready run makes the schedule Ready again, and keepLast 1
    // then prunes the old Ready run.
    h.set_snapshot_seconds(0.3);
    let stop_failing = failed.len();
    eventually("Ready again", Duration::from_secs(60), || async {
        let s = schedule_status(&h, "flaky").await;
        is_schedule_ready(&s).then_some(())
    })
    .await;
    assert_eq!(stop_failing, failed.len());
    eventually("the first run pruned", Duration::from_secs(30), || async {
        let list = runs(&h, "flaky").await;
        (!list
            .iter()
            .any(|r| r.uid() == first.uid() && r.meta().deletion_timestamp.is_none()))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_operators_schedule_makes_runs_in_its_shard() {
    let mut h = Harness::new("sched-shard", 0.5).await;
    seed_clusters(&h.aws).await;
    let origin = Timestamp::now().to_string();
    // A selector with no value to copy from itself: the runs take the schedule's.
    restart(
        &mut h,
        &origin,
        &["--label-selector", "shard in (a,b),!legacy"],
    );
    let obj: SnapshotSchedule = serde_json::from_value(json!({
        "apiVersion": "dbsnapshot.io/v1alpha1",
        "kind": "SnapshotSchedule",
        "metadata": {"name": "sharded", "labels": {"shard": "a", "app": "orders"}},
        "spec": {
            "schedule": "*/1 * * * *",
            "snapshotTemplate": {
                "metadata": {"labels": {"shard": "z", "legacy": "yes", "team": "data"}},
                "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}
            }
        },
    }))
    .unwrap();
    schedules(&h)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    // Runs in the shard: the sharded operator sees them and takes them to Ready.
    let list = eventually("a Ready run", Duration::from_secs(60), || async {
        let list = runs(&h, "sharded").await;
        (ready_runs(&list) >= 1).then_some(list)
    })
    .await;
    for run in &list {
        let labels = run.labels();
        assert_eq!(
            labels.get("shard").map(String::as_str),
            Some("a"),
            "{labels:?}"
        );
        assert!(!labels.contains_key("legacy"), "{labels:?}");
        assert_eq!(labels["team"], "data");
        // Only the selector's keys travel from the schedule.
        assert!(!labels.contains_key("app"), "{labels:?}");
    }
    // A schedule outside the shard is never run.
    let mut other = obj.clone();
    other.metadata.name = Some("elsewhere".into());
    other.metadata.labels = Some([("shard".to_string(), "c".to_string())].into());
    schedules(&h)
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(runs(&h, "elsewhere").await.is_empty());
    assert!(
        schedules(&h)
            .get("elsewhere")
            .await
            .unwrap()
            .status
            .is_none()
    );
}
