//! docs/iam-policy.json allows exactly the AWS actions the engine layer calls, and
//! destructive ones only on snapshots carrying the owner tag.

use std::collections::BTreeSet;

use serde_json::Value;

fn called_actions() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (file, prefix) in [
        ("redshift.rs", "redshift"),
        ("docdb.rs", "rds"),
        ("elasticache.rs", "elasticache"),
    ] {
        let src =
            std::fs::read_to_string(format!("{}/src/engine/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        // Reads: `classify(SERVICE, "Action", ..)`. Changes go through the audit trail:
        // `self.call(Change::.., "Action", ..)`, the first string after `.call(`.
        for part in src.split("classify(SERVICE, \"").skip(1) {
            let action = part.split('"').next().unwrap();
            out.insert(format!("{prefix}:{action}"));
        }
        for part in src.split(".call(").skip(1) {
            let action = part.split('"').nth(1).unwrap();
            out.insert(format!("{prefix}:{action}"));
        }
    }
    out
}

#[test]
fn the_policy_allows_exactly_what_the_engines_call() {
    let called = called_actions();
    assert!(called.len() >= 20, "{called:?}");
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/iam-policy.json"))
            .unwrap(),
    )
    .unwrap();
    let mut allowed = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        for a in st["Action"].as_array().unwrap() {
            assert!(
                allowed.insert(a.as_str().unwrap().to_string()),
                "{a} listed twice"
            );
        }
    }
    let missing: Vec<_> = called.difference(&allowed).collect();
    let extra: Vec<_> = allowed.difference(&called).collect();
    assert!(missing.is_empty(), "the policy lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "the policy allows what the operator never calls: {extra:?}"
    );
}

#[test]
fn destructive_actions_need_the_owner_tag() {
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/iam-policy.json"))
            .unwrap(),
    )
    .unwrap();
    for st in policy["Statement"].as_array().unwrap() {
        let conditioned =
            st["Condition"]["Null"]["aws:ResourceTag/dbsnapshot.io/owner-uid"] == "false";
        for a in st["Action"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            let destructive = ["Delete", "Revoke", "Authorize", "Modify", "Remove"]
                .iter()
                .any(|d| a.split(':').nth(1).unwrap().starts_with(d));
            assert_eq!(
                destructive, conditioned,
                "{a}: destructive {destructive}, conditioned {conditioned}"
            );
        }
    }
}

/// The STS actions behind AWSAccounts (src/engine/accounts.rs): AssumeRole, which
/// docs/iam-assume-role-policy.json allows on named roles only (never `*`), and
/// GetCallerIdentity, which needs no permission. The trust policy example lets a role
/// (not a whole account) assume the target role.
#[test]
fn other_accounts_need_sts_assume_role_on_named_roles_only() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/engine/accounts.rs"
    ))
    .unwrap();
    let called: BTreeSet<&str> = src
        .split("classify(\"sts\", \"")
        .skip(1)
        .map(|p| p.split('"').next().unwrap())
        .collect();
    assert_eq!(
        called,
        BTreeSet::from(["AssumeRole", "GetCallerIdentity"]),
        "src/engine/accounts.rs calls other STS actions: update docs/iam.md"
    );
    let read = |f: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(format!("{}/docs/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        )
        .unwrap()
    };
    let policy = read("iam-assume-role-policy.json");
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
    for r in statements[0]["Resource"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r.starts_with("arn:aws:iam::") && r.contains(":role/") && !r.contains('*'),
            "{r}"
        );
    }
    let trust = read("iam-trust-policy.json");
    let st = &trust["Statement"][0];
    assert_eq!(st["Action"], "sts:AssumeRole");
    assert!(
        st["Principal"]["AWS"].as_str().unwrap().contains(":role/"),
        "{st}"
    );
}
