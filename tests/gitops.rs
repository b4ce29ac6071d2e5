//! GitOps health: the conditions and observedGeneration the operator writes read as
//! kstatus defines them (InProgress / Current / Failed / Terminating), and the Argo CD
//! health check (deploy/argocd/health.lua) run by a Lua 5.1 interpreter on status objects
//! the operator really produced in the test bed says Progressing / Healthy / Degraded,
//! for ClusterSnapshots and for SnapshotSchedules. The same objects follow Flux's rules
//! for conditions. The Argo CD configuration snippets in docs/gitops.md register the
//! check for every kind.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use dbsnapshot_operator::api::SnapshotSchedule;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio::time::Instant;

/// kstatus's rules for a custom resource (sigs.k8s.io/cli-utils/pkg/kstatus/status):
/// deletion -> Terminating; an unobserved generation -> InProgress; Reconciling=True ->
/// InProgress; Stalled=True -> Failed; otherwise Current.
fn kstatus(obj: &Value) -> &'static str {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating";
    }
    let generation = obj["metadata"]["generation"].as_i64();
    let observed = obj["status"]["observedGeneration"].as_i64();
    if generation.is_some() && observed.is_none_or(|o| o < generation.unwrap()) {
        return "InProgress";
    }
    let cond = |t: &str| {
        obj["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .map(|c| c["status"] == "True")
            .unwrap_or(false)
    };
    if cond("Reconciling") {
        "InProgress"
    } else if cond("Stalled") {
        "Failed"
    } else {
        "Current"
    }
}

/// Flux's rules for the conditions of a kstatus-compatible object (fluxcd/pkg
/// runtime/conditions/check): once there is a status, Ready is there; Reconciling and
/// Stalled (negative polarity) are present only while True, never both; Ready is not
/// True while either is; every type appears once (the list is a map keyed by type);
/// no message is empty.
fn check_flux_rules(stage: &str, obj: &Value) {
    let Some(cs) = obj["status"]["conditions"].as_array() else {
        return;
    };
    let find = |t: &str| cs.iter().find(|c| c["type"] == t);
    let ready = find("Ready").unwrap_or_else(|| panic!("{stage}: no Ready condition: {obj:#}"));
    for t in ["Reconciling", "Stalled"] {
        if let Some(c) = find(t) {
            assert_eq!(
                c["status"], "True",
                "{stage}: {t} present but not True: {obj:#}"
            );
            assert_ne!(
                ready["status"], "True",
                "{stage}: Ready and {t} both True: {obj:#}"
            );
        }
    }
    assert!(
        find("Reconciling").is_none() || find("Stalled").is_none(),
        "{stage}: Reconciling and Stalled both present: {obj:#}"
    );
    let mut types: Vec<&str> = cs.iter().filter_map(|c| c["type"].as_str()).collect();
    types.sort_unstable();
    let n = types.len();
    types.dedup();
    assert_eq!(types.len(), n, "{stage}: a condition type twice: {obj:#}");
    assert!(
        cs.iter()
            .all(|c| c["message"].as_str().is_some_and(|m| !m.is_empty())),
        "{stage}: an empty message: {obj:#}"
    );
}

/// A JSON value as a Lua table constructor.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{k:?}] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn argo_health(obj: &Value) -> (String, String) {
    let script = std::fs::read_to_string(root().join("deploy/argocd/health.lua")).unwrap();
    let program = format!(
        "obj = {}\nlocal function check()\n{script}\nend\nlocal hs = check()\nprint(hs.status)\nprint(hs.message)\n",
        lua(obj)
    );
    let out = Command::new("lua5.1")
        .arg("-e")
        .arg(&program)
        .output()
        .expect("lua5.1 (Debian package lua5.1; tests/run-all.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    (
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    )
}

async fn raw(h: &Harness, name: &str) -> Value {
    serde_json::to_value(h.snapshots().get(name).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_read_as_kstatus_and_argo_cd_health() {
    let h = Harness::new("gitops", 4.0).await;
    seed_clusters(&h.aws).await;
    let mut seen: Vec<(&str, Value)> = Vec::new();

    h.create(json!({"metadata": {"name": "g"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    seen.push(("created", raw(&h, "g").await));
    h.wait_for(
        "g",
        Duration::from_secs(30),
        |_| {},
        |s| s.phase == Some(dbsnapshot_operator::api::Phase::Creating),
    )
    .await;
    seen.push(("creating", raw(&h, "g").await));
    h.wait_ready("g").await;
    seen.push(("ready", raw(&h, "g").await));
    h.patch_spec("g", json!({"tags": {"changed": "yes"}})).await;
    seen.push(("spec changed", raw(&h, "g").await));
    h.wait_for(
        "g",
        Duration::from_secs(30),
        |_| {},
        |s| is_ready(s) && s.observed_generation == Some(2),
    )
    .await;
    seen.push(("ready again", raw(&h, "g").await));

    // Valid for the v1.20 server's schema (it drops the CEL rule), refused by the operator.
    h.create(json!({"metadata": {"name": "bad"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}, "retentionDays": 9}}))
        .await
        .unwrap();
    h.wait_for(
        "bad",
        Duration::from_secs(30),
        |_| {},
        |s| stalled_reason(s).is_some(),
    )
    .await;
    seen.push(("failed", raw(&h, "bad").await));

    // Deleting, held by the finalizer while AWS is still creating.
    h.set_snapshot_seconds(30.0);
    h.create(json!({"metadata": {"name": "slow"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}))
        .await
        .unwrap();
    h.wait_for("slow", Duration::from_secs(30), |_| {}, |s| s.arn.is_some())
        .await;
    h.snapshots()
        .delete("slow", &Default::default())
        .await
        .unwrap();
    seen.push(("deleting", raw(&h, "slow").await));

    let expected = [
        ("created", "InProgress", "Progressing"),
        ("creating", "InProgress", "Progressing"),
        ("ready", "Current", "Healthy"),
        ("spec changed", "InProgress", "Progressing"),
        ("ready again", "Current", "Healthy"),
        ("failed", "Failed", "Degraded"),
        ("deleting", "Terminating", "Progressing"),
    ];
    for ((stage, obj), (want_stage, want_kstatus, want_argo)) in seen.iter().zip(expected) {
        assert_eq!(*stage, want_stage);
        assert_eq!(kstatus(obj), want_kstatus, "{stage}: {obj:#}");
        check_flux_rules(stage, obj);
        let (argo, message) = argo_health(obj);
        assert_eq!(argo, want_argo, "{stage}: {message}");
    }
    // A terminal error: Ready False and Stalled True, nothing else.
    let failed = seen[5].1["status"]["conditions"].as_array().unwrap();
    let mut shown: Vec<(&str, &str)> = failed
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, [("Ready", "False"), ("Stalled", "True")]);
    let (_, failed_message) = argo_health(&seen[5].1);
    assert!(
        failed_message.contains("InvalidSpec") && failed_message.contains("retentionDays"),
        "{failed_message}"
    );
}

/// Waits until the schedule's status satisfies `done` (on its raw JSON), and returns it.
async fn wait_schedule(
    api: &Api<SnapshotSchedule>,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let obj = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
        if done(&obj) {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "SnapshotSchedule {name} did not reach the expected state: {obj:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_schedules_read_as_kstatus_and_argo_cd_health() {
    let h = Harness::new("gitops-sched", 4.0).await;
    seed_clusters(&h.aws).await;
    let api: Api<SnapshotSchedule> = Api::namespaced(h.client.clone(), &h.ns);
    let schedule = |name: &str, time_zone: &str| -> SnapshotSchedule {
        serde_json::from_value(json!({
            "apiVersion": "dbsnapshot.io/v1alpha1",
            "kind": "SnapshotSchedule",
            "metadata": {"name": name},
            "spec": {
                "schedule": "0 3 * * *",
                "timeZone": time_zone,
                "snapshotTemplate": {"spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}},
                "retention": {"keepLast": 7},
            },
        }))
        .unwrap()
    };
    let mut seen: Vec<(&str, Value)> = Vec::new();

    let created = api
        .create(
            &PostParams::default(),
            &schedule("nightly", "Europe/Berlin"),
        )
        .await
        .unwrap();
    seen.push(("created", serde_json::to_value(created).unwrap()));
    let ready = wait_schedule(&api, "nightly", |o| {
        o["status"]["observedGeneration"] == 1
            && condition(o, "Ready").is_some_and(|c| c["status"] == "True")
    })
    .await;
    seen.push(("ready", ready));

    // "Mars/Olympus" has the shape the schema's pattern asks for; the operator finds no
    // such zone in the time zone database.
    api.create(
        &PostParams::default(),
        &schedule("bad-zone", "Mars/Olympus"),
    )
    .await
    .unwrap();
    let failed = wait_schedule(&api, "bad-zone", |o| {
        condition(o, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await;
    seen.push(("failed", failed));

    let expected = [
        ("created", "InProgress", "Progressing"),
        ("ready", "Current", "Healthy"),
        ("failed", "Failed", "Degraded"),
    ];
    for ((stage, obj), (want_stage, want_kstatus, want_argo)) in seen.iter().zip(expected) {
        assert_eq!(*stage, want_stage);
        assert_eq!(kstatus(obj), want_kstatus, "{stage}: {obj:#}");
        check_flux_rules(stage, obj);
        let (argo, message) = argo_health(obj);
        assert_eq!(argo, want_argo, "{stage}: {message}");
    }
    let (_, ready_message) = argo_health(&seen[1].1);
    assert!(ready_message.starts_with("next run at "), "{ready_message}");
    let (_, failed_message) = argo_health(&seen[2].1);
    assert!(
        failed_message.contains("InvalidSpec") && failed_message.contains("timeZone"),
        "{failed_message}"
    );

    // Every kind the operator serves is registered with the check in the Argo CD
    // configuration the docs give.
    let gitops = std::fs::read_to_string(root().join("docs/gitops.md")).unwrap();
    for kind in ["ClusterSnapshot", "SnapshotCopy", "SnapshotSchedule"] {
        assert!(
            gitops.contains(&format!(
                "resource.customizations.health.dbsnapshot.io_{kind}"
            )),
            "docs/gitops.md does not register the health check for {kind}"
        );
    }
}
