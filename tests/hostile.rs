//! Hostile but valid input goes through unchanged; input that cannot work (tag
//! characters AWS refuses among it) ends in a condition naming the field, with no AWS
//! mutation. (Invalid specs, 21 Redshift shares
//! and 50 tags among them, are in cluster_snapshot.rs's
//! `invalid_specs_are_rejected_without_aws_calls`; a namespace claiming another's
//! snapshot in `another_namespace_claiming_the_same_snapshot_is_not_owned`.)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kube::ResourceExt;
use serde_json::json;

/// `n` characters of everything AWS allows in a tag: letters of many scripts (some
/// multi-byte, some combining into one glyph with no mark of their own), digits of
/// several, unicode spaces and every allowed symbol; different for each `seed`.
fn allowed(seed: usize, n: usize) -> String {
    let pieces = [
        "Zürich",
        " ",
        "漢字",
        "_",
        "Ωμέγα",
        ".",
        "٣٤",
        ":",
        "ﬁ",
        "/",
        "Ⅻ",
        "=",
        "\u{3000}",
        "+",
        "Ǆ",
        "-",
        "𝔸",
        "@",
        "\u{a0}",
        "日本",
    ];
    let mut s = format!("{seed}");
    let mut i = seed;
    while s.chars().count() < n {
        s.push_str(pieces[i % pieces.len()]);
        i += 1;
    }
    s.chars().take(n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_at_every_limit_with_every_allowed_character_round_trip_unchanged() {
    let h = Harness::new("hostile-tags", 0.5).await;
    seed_clusters(&h.aws).await;
    // 48 tags (AWS allows 50; the operator adds two), values of 256 characters, keys of
    // 128, full of multi-byte letters, unicode spaces and every symbol AWS allows.
    let tags: BTreeMap<String, String> = (0..48)
        .map(|i| {
            (
                allowed(i + 1000, if i == 0 { 128 } else { 20 }),
                allowed(i, 256),
            )
        })
        .collect();
    assert_eq!(tags.len(), 48);
    let engines = [
        (
            "rs",
            json!({"redshift": {"clusterIdentifier": "analytics"}}),
        ),
        ("dd", json!({"docdb": {"clusterIdentifier": "orders"}})),
        (
            "ec",
            json!({"elasticache": {"replicationGroupId": "sessions"}}),
        ),
    ];
    // DocumentDB's own tag rule leaves out '@'.
    let tags_of = |name: &str| -> BTreeMap<String, String> {
        if *name == *"dd" {
            tags.iter()
                .map(|(k, v)| (k.replace('@', "-"), v.replace('@', "-")))
                .collect()
        } else {
            tags.clone()
        }
    };
    for (name, source) in &engines {
        h.create(
            json!({"metadata": {"name": name}, "spec": {"source": source, "tags": tags_of(name)}}),
        )
        .await
        .unwrap();
    }
    for (name, _) in &engines {
        let s = h.wait_ready(name).await;
        let uid = h.snapshots().get(name).await.unwrap().uid().unwrap();
        let id = s.snapshot_identifier.unwrap();
        let on_aws = h
            .aws_snapshots()
            .into_iter()
            .find(|a| a.id == id)
            .expect("snapshot on AWS");
        let mut expected = tags_of(name);
        expected.insert("dbsnapshot.io/owner-uid".into(), uid);
        expected.insert(
            "dbsnapshot.io/resource".into(),
            format!("{}/ClusterSnapshot/{name}", h.ns),
        );
        assert_eq!(on_aws.tags, expected, "{name}: tags changed on the way");
    }
    // Read back through the SDK too: the same.
    let rs = h.status("rs").await.snapshot_identifier.unwrap();
    let described = h
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_identifier(&rs)
        .send()
        .await
        .unwrap();
    let read: BTreeMap<String, String> = described.snapshots()[0]
        .tags()
        .iter()
        .filter(|t| !t.key().unwrap().starts_with("dbsnapshot.io/"))
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(read, tags);
    // Seen as in sync: resyncs (every 3 s here) make no tag calls.
    let tagging = |h: &Harness| {
        h.count("redshift", "CreateTags")
            + h.count("redshift", "DeleteTags")
            + h.count("docdb", "AddTagsToResource")
            + h.count("docdb", "RemoveTagsFromResource")
            + h.count("elasticache", "AddTagsToResource")
            + h.count("elasticache", "RemoveTagsFromResource")
    };
    let before = tagging(&h);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(tagging(&h), before, "resyncs keep rewriting the tags");
}

/// Characters AWS refuses in tags (XML's special ones, emoji, control characters,
/// punctuation outside the allowed set) end in InvalidSpec naming spec.tags, with no
/// AWS call; a server that drops CEL still has the schema's value pattern, so values
/// are refused at the door and keys by the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_aws_refuses_are_refused_naming_the_field() {
    let h = Harness::new("hostile-refused", 0.5).await;
    seed_clusters(&h.aws).await;
    let baseline = h.mutating_calls();
    let source = json!({"redshift": {"clusterIdentifier": "analytics"}});
    let mut by_server = 0;
    let mut by_operator = 0;
    for (i, (k, v)) in [
        ("k", "<tag a=\"1\">"),
        ("k", "fish &amp; chips"),
        ("k", "🙂"),
        ("k", "tab\there"),
        ("k", "]]>"),
        ("k", "50%"),
        ("k", "'q'"),
        ("k", "back\\slash"),
        ("<key>", "v"),
        ("key&", "v"),
        ("🙂", "v"),
        ("semi;colon", "v"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("refused-{i}");
        let tags: BTreeMap<&str, &str> = [(k, v)].into();
        match h
            .create_raw(
                "ClusterSnapshot",
                json!({"metadata": {"name": name}, "spec": {"source": source, "tags": tags}}),
            )
            .await
        {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{k:?}={v:?}: {e:?}");
                assert!(e.message.contains("spec.tags"), "{}", e.message);
                by_server += 1;
            }
            Err(e) => panic!("{k:?}={v:?}: {e}"),
            Ok(()) => {
                let s = h
                    .wait_for(
                        &name,
                        Duration::from_secs(30),
                        |_| {},
                        |s| stalled_reason(s).is_some(),
                    )
                    .await;
                assert_eq!(stalled_reason(&s).as_deref(), Some("InvalidSpec"));
                let msg = &condition(&s, "Stalled").unwrap().message;
                assert!(msg.contains("spec.tags"), "{k:?}={v:?}: {msg}");
                assert!(msg.contains("_ . : / = + - @"), "{msg}");
                by_operator += 1;
            }
        }
    }
    println!("{by_server} refused by the API server's schema, {by_operator} by the operator");
    assert!(by_operator >= 4, "keys are the operator's to refuse");
    assert_eq!(h.mutating_calls(), baseline, "a refused tag reached AWS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_missing_cluster_snapshot_waits_naming_the_field() {
    let h = Harness::new("hostile-ref", 0.5).await;
    seed_clusters(&h.aws).await;
    let baseline = h.mutating_calls();
    h.create_copy(json!({"metadata": {"name": "dr"}, "spec": {"source": {"clusterSnapshotRef": {"name": "not-yet"}}}}))
        .await
        .unwrap();
    let s = h
        .wait_copy("dr", Duration::from_secs(30), |s| {
            condition(s, "Ready").is_some_and(|c| c.reason == "SourceNotReady")
        })
        .await;
    let ready = condition(&s, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready
            .message
            .contains("spec.source.clusterSnapshotRef.name")
            && ready.message.contains("not-yet"),
        "{}",
        ready.message
    );
    assert!(
        stalled_reason(&s).is_none(),
        "waiting is not stalled: {s:?}"
    );
    assert_eq!(
        h.mutating_calls(),
        baseline,
        "AWS was called without a source"
    );
    // Once it exists (GitOps may apply them in any order), the copy goes ahead.
    h.create(json!({"metadata": {"name": "not-yet"}, "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}}}))
        .await
        .unwrap();
    h.wait_copy("dr", Duration::from_secs(60), is_ready).await;
}
