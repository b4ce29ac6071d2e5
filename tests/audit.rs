//! The audit trail: a lifecycle on every engine (creates, shares and revokes, tags and
//! untags, a retention change, copies, a cross-region copy, an export, a refused create,
//! deletes) with `--log-format json` leaves one `dbsnapshot::audit` line per call AWS
//! received, each naming the object (kind, namespace, name, uid), the snapshot, the
//! region and AWS's request id, and no credential; and an Event per change whose action
//! says what was done.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::events::v1::Event;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// Mutating calls the emulator received, by `service:Action`.
fn mutations(h: &Harness) -> BTreeMap<String, u64> {
    let calls = h.calls();
    let mut out = BTreeMap::new();
    for (service, actions) in calls["calls"].as_object().cloned().unwrap_or_default() {
        for (action, n) in actions.as_object().cloned().unwrap_or_default() {
            if !["Describe", "List", "Get"]
                .iter()
                .any(|read| action.starts_with(read))
            {
                out.insert(format!("{service}:{action}"), n.as_u64().unwrap_or(0));
            }
        }
    }
    out
}

fn audit_lines(h: &Harness) -> Vec<Value> {
    let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap();
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["target"] == "dbsnapshot::audit")
        .collect()
}

/// Events on the namespace's objects counted by (object, action), a series counting
/// each of its occurrences.
async fn events_by_action(h: &Harness) -> (BTreeMap<(String, String), u64>, Vec<Event>) {
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let list = events.list(&Default::default()).await.unwrap().items;
    let mut counts = BTreeMap::new();
    for e in &list {
        let name = e
            .regarding
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        let n = e.series.as_ref().map(|s| s.count as u64).unwrap_or(1);
        *counts
            .entry((name, e.action.clone().unwrap_or_default()))
            .or_insert(0) += n;
    }
    (counts, list)
}

const CHANGE_ACTIONS: [&str; 9] = [
    "CreateSnapshot",
    "CopySnapshot",
    "ExportSnapshot",
    "ShareSnapshot",
    "RevokeShare",
    "TagSnapshot",
    "UntagSnapshot",
    "SetRetention",
    "DeleteSnapshot",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aws_change_is_one_audit_line_and_one_event_naming_it() {
    let mut h = Harness::new("audit", 0.5).await;
    h.operator = None;
    let creds = assumed_credentials(&h).await;
    seed_clusters(&h.aws).await;
    let source_arn = docdb_source(&h.aws, "orders-src").await;
    elasticache_source(&h.aws, "sessions-src").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // What the test itself made is not the operator's.
    let before = mutations(&h);
    h.operator = Some(Operator::start_with_env(
        &h.ns,
        &h.aws_url,
        &["--log-format", "json"],
        &kubeconfig(),
        &format!("{}-json", h.ns),
        // As in production: info, the audit lines included.
        &[
            ("AWS_ACCESS_KEY_ID", creds.key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", creds.secret.as_str()),
            ("AWS_SESSION_TOKEN", creds.token.as_str()),
            ("RUST_LOG", "info"),
        ],
    ));

    // Redshift: create (tagged, shared, kept 7 days), then change all three.
    h.create(json!({"metadata": {"name": "rs"}, "spec": {
        "source": {"redshift": {"clusterIdentifier": "analytics"}},
        "tags": {"team": "a", "tier": "gold"}, "sharedWith": ["111111111111"], "retentionDays": 7}}))
        .await
        .unwrap();
    // DocumentDB: create and share; ElastiCache: create.
    h.create(json!({"metadata": {"name": "dd"}, "spec": {
        "source": {"docdb": {"clusterIdentifier": "orders"}}, "sharedWith": ["111111111111"]}}))
        .await
        .unwrap();
    h.create(json!({"metadata": {"name": "ec"}, "spec": {
        "source": {"elasticache": {"cacheClusterId": "solo"}}}}))
        .await
        .unwrap();
    // Refused by AWS.
    h.create(json!({"metadata": {"name": "missing"}, "spec": {
        "source": {"docdb": {"clusterIdentifier": "no-such-cluster"}}}}))
        .await
        .unwrap();
    // A cross-region DocumentDB copy and an ElastiCache export.
    h.create_copy(json!({"metadata": {"name": "xr"}, "spec": {
        "source": {"docdb": {"snapshotIdentifier": source_arn}}, "region": "eu-west-1"}}))
        .await
        .unwrap();
    h.create_copy(json!({"metadata": {"name": "export"}, "spec": {
        "source": {"elasticache": {"snapshotName": "sessions-src"}},
        "targetBucket": "my-exports", "targetSnapshotIdentifier": "sessions-dr",
        "deletionPolicy": "Retain"}}))
        .await
        .unwrap();

    h.wait_ready("rs").await;
    h.patch_spec(
        "rs",
        json!({"tags": {"team": "b", "tier": null}, "sharedWith": ["222222222222"], "retentionDays": 14}),
    )
    .await;
    let generation = h.snapshots().get("rs").await.unwrap().metadata.generation;
    h.wait_for(
        "rs",
        Duration::from_secs(60),
        |_| {},
        |s| {
            is_ready(s)
                && s.observed_generation == generation
                && s.shared_with.as_deref() == Some(&["222222222222".to_string()][..])
                && s.retention_days == Some(14)
        },
    )
    .await;
    // A Redshift copy of the automated snapshot (CopyClusterSnapshot takes no tags:
    // tagged right after).
    let auto = redshift_automated(&h.aws).await;
    h.create_copy(json!({"metadata": {"name": "rscopy"}, "spec": {
        "source": {"redshift": {"snapshotIdentifier": auto, "clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    for name in ["dd", "ec"] {
        h.wait_ready(name).await;
    }
    h.wait_for(
        "missing",
        Duration::from_secs(30),
        |_| {},
        |s| stalled_reason(s).is_some(),
    )
    .await;
    for name in ["xr", "export", "rscopy"] {
        h.wait_copy(name, Duration::from_secs(60), is_ready).await;
    }

    // The objects, by name, with their kind and uid.
    let mut objects: HashMap<String, (String, String)> = HashMap::new();
    for o in h.snapshots().list(&Default::default()).await.unwrap() {
        objects.insert(o.name_any(), ("ClusterSnapshot".into(), o.uid().unwrap()));
    }
    for o in h.copies().list(&Default::default()).await.unwrap() {
        objects.insert(o.name_any(), ("SnapshotCopy".into(), o.uid().unwrap()));
    }

    for name in ["xr", "export", "rscopy"] {
        h.copies().delete(name, &Default::default()).await.unwrap();
    }
    for name in ["xr", "export", "rscopy"] {
        h.wait_copy_gone(name).await;
    }
    for name in ["rs", "dd", "ec", "missing"] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for name in ["rs", "dd", "ec", "missing"] {
        h.wait_gone(name).await;
    }

    // One line per mutating call AWS received (the emulator counts every request; no
    // faults here, so no SDK retries), the refused create's included.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (lines, made) = loop {
        let mut made = mutations(&h);
        for (k, n) in &before {
            *made.get_mut(k).unwrap() -= n;
        }
        made.retain(|_, n| *n > 0);
        let lines = audit_lines(&h);
        let mut logged = BTreeMap::new();
        for l in &lines {
            *logged
                .entry(format!(
                    "{}:{}",
                    l["service"].as_str().unwrap(),
                    l["action"].as_str().unwrap()
                ))
                .or_insert(0u64) += 1;
        }
        if logged == made {
            break (lines, made);
        }
        assert!(
            Instant::now() < deadline,
            "audit lines by call {logged:#?}\n!= calls AWS received {made:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for call in [
        "redshift:CreateClusterSnapshot",
        "redshift:AuthorizeSnapshotAccess",
        "redshift:RevokeSnapshotAccess",
        "redshift:CreateTags",
        "redshift:DeleteTags",
        "redshift:ModifyClusterSnapshot",
        "redshift:CopyClusterSnapshot",
        "redshift:DeleteClusterSnapshot",
        "docdb:CreateDBClusterSnapshot",
        "docdb:ModifyDBClusterSnapshotAttribute",
        "docdb:CopyDBClusterSnapshot",
        "docdb:DeleteDBClusterSnapshot",
        "elasticache:CreateSnapshot",
        "elasticache:CopySnapshot",
        "elasticache:DeleteSnapshot",
    ] {
        assert!(made.contains_key(call), "no {call} in {made:#?}");
    }

    // Every line names the object, the snapshot, the region and the request id.
    let mut request_ids = std::collections::HashSet::new();
    for l in &lines {
        let span = &l["span"];
        let name = span["object"]
            .as_str()
            .unwrap_or_else(|| panic!("no object: {l}"));
        let (kind, uid) = objects
            .get(name)
            .unwrap_or_else(|| panic!("not an object of the test: {l}"));
        assert_eq!(span["kind"], kind.as_str(), "{l}");
        assert_eq!(span["uid"], uid.as_str(), "{l}");
        assert_eq!(span["namespace"], h.ns.as_str(), "{l}");
        assert!(!l["snapshot"].as_str().unwrap().is_empty(), "{l}");
        let region = if name == "xr" {
            "eu-west-1"
        } else {
            "us-east-1"
        };
        assert_eq!(l["region"], region, "{l}");
        let request_id = l["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id: {l}"));
        assert!(
            request_ids.insert(request_id.to_string()),
            "request id twice: {l}"
        );
        assert!(
            CHANGE_ACTIONS.contains(&l["change"].as_str().unwrap()),
            "{l}"
        );
        match l["outcome"].as_str().unwrap() {
            "done" => {
                assert_eq!(l["level"], "INFO", "{l}");
                assert!(l["arn"].as_str().unwrap().starts_with("arn:aws:"), "{l}");
            }
            "failed" => {
                assert_eq!(l["level"], "WARN", "{l}");
                assert_eq!(name, "missing", "{l}");
                assert_eq!(l["error_code"], "DBClusterNotFoundFault", "{l}");
            }
            other => panic!("outcome {other}: {l}"),
        }
    }
    let actions_of = |name: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["span"]["object"] == name)
            .map(|l| l["change"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(actions_of("export"), ["ExportSnapshot"]);
    assert_eq!(
        actions_of("rscopy").first().map(String::as_str),
        Some("CopySnapshot")
    );
    for a in [
        "SetRetention",
        "ShareSnapshot",
        "RevokeShare",
        "TagSnapshot",
        "UntagSnapshot",
        "DeleteSnapshot",
    ] {
        assert!(
            actions_of("rs").iter().any(|x| x == a),
            "rs: no {a} in {:?}",
            actions_of("rs")
        );
    }

    // An Event per AWS change, its action what was done; none says only "Reconcile".
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut by_line: BTreeMap<(String, String), u64> = BTreeMap::new();
    for l in &lines {
        *by_line
            .entry((
                l["span"]["object"].as_str().unwrap().to_string(),
                l["change"].as_str().unwrap().to_string(),
            ))
            .or_insert(0) += 1;
    }
    let events = loop {
        let (counts, events) = events_by_action(&h).await;
        let changes: BTreeMap<_, _> = counts
            .into_iter()
            .filter(|((_, action), _)| CHANGE_ACTIONS.contains(&action.as_str()))
            .collect();
        if changes == by_line {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "events by object and action {changes:#?}\n!= audit lines {by_line:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for e in &events {
        let action = e.action.as_deref().unwrap_or_default();
        assert!(
            CHANGE_ACTIONS.contains(&action) || action.starts_with("Mark"),
            "event action {action}: {e:?}"
        );
        if CHANGE_ACTIONS.contains(&action) {
            let note = e.note.as_deref().unwrap_or_default();
            assert!(
                note.contains(" in us-east-1") || note.contains(" in eu-west-1"),
                "{note}"
            );
            assert!(note.contains("request id "), "{note}");
        }
    }
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("missing"))
        .filter(|e| e.action.as_deref() == Some("CreateSnapshot"))
        .collect();
    assert!(
        refused
            .iter()
            .all(|e| e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("AWSError")),
        "{refused:?}"
    );
    let created = events
        .iter()
        .find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("rs")
                && e.action.as_deref() == Some("CreateSnapshot")
        })
        .expect("rs: a CreateSnapshot event");
    assert_eq!(created.type_.as_deref(), Some("Normal"));
    assert_eq!(created.reason.as_deref(), Some("Created"));

    // No credential in the log or the events.
    let log = std::fs::read_to_string(&h.operator.as_ref().unwrap().log).unwrap();
    let events = serde_json::to_string(&events).unwrap();
    for text in [&log, &events] {
        for secret in [SECRET, KEY, &creds.secret, &creds.token, &creds.key] {
            assert!(!text.contains(secret), "a credential was written");
        }
    }
}
