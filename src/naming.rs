//! Snapshot identifiers: the deterministic default for an object, and AWS's identifier
//! rule. No IO.

use crate::api::Engine;

/// Whether `id` follows AWS's identifier rule, lowercased: 1..=max characters,
/// lowercase ASCII letters, digits and hyphens, a letter first, no trailing hyphen and
/// no two hyphens in a row. (AWS takes upper case too, but stores DocumentDB and
/// ElastiCache identifiers lowercased and looks Redshift's up regardless of case.)
pub fn is_valid_identifier(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--")
}

/// Turns any text into a valid identifier of at most `max` characters: letters are
/// lowercased, other characters become hyphens, runs of hyphens collapse, a non-letter start gets an `s`
/// in front, and trailing hyphens go.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 1);
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 's');
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "s".to_string() } else { out }
}

/// The default snapshot identifier of an object: `<namespace>-<name>-<first 8 of uid>`,
/// sanitised for the engine. When it must be shortened, the namespace and name give
/// way and the uid part stays, so two objects never share a default.
pub fn default_identifier(namespace: &str, name: &str, uid: &str, engine: Engine) -> String {
    let max = engine.max_identifier_len();
    let suffix: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let suffix = if suffix.is_empty() { "0" } else { &suffix };
    let head = sanitize(&format!("{namespace}-{name}"), max - suffix.len() - 1);
    format!("{head}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// AWS's identifier rule as the CRD schema states it.
    fn aws_rule(id: &str, max: usize) -> bool {
        regex::Regex::new(crate::api::IDENTIFIER_PATTERN)
            .unwrap()
            .is_match(id)
            && id.len() <= max
    }

    fn engine() -> impl Strategy<Value = Engine> {
        prop_oneof![
            Just(Engine::Redshift),
            Just(Engine::Docdb),
            Just(Engine::Elasticache)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn the_check_is_aws_rule(
            id in prop_oneof!["[A-Za-z0-9-]{0,70}", "[a-z](-?[a-z0-9]){0,70}-?", "\\PC{0,12}"],
            max in 1usize..80,
        ) {
            prop_assert_eq!(is_valid_identifier(&id, max), aws_rule(&id, max), "{:?}", id);
        }

        #[test]
        fn anything_sanitises_to_a_valid_identifier(text in any::<String>(), max in 1usize..300) {
            let id = sanitize(&text, max);
            prop_assert!(aws_rule(&id, max), "{:?} -> {:?}", text, id);
        }

        /// Kubernetes names and namespaces of any allowed length give valid defaults,
        /// the same every time, and objects whose uids differ get different ones.
        #[test]
        fn defaults_are_valid_stable_and_differ_by_uid(
            ns in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
            name in "[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?",
            uid_a in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            uid_b in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            engine in engine(),
        ) {
            let a = default_identifier(&ns, &name, &uid_a, engine);
            prop_assert!(aws_rule(&a, engine.max_identifier_len()), "{:?}", a);
            prop_assert_eq!(&a, &default_identifier(&ns, &name, &uid_a, engine));
            prop_assert!(a.ends_with(&uid_a[..8]));
            if uid_a[..8] != uid_b[..8] {
                prop_assert_ne!(a, default_identifier(&ns, &name, &uid_b, engine));
            }
        }
    }

    #[test]
    fn defaults_are_deterministic_valid_and_keep_the_uid() {
        let uid = "3f2a9c1e-7b44-4d2a-9a51-0c7e5d8b9f10";
        let id = default_identifier("data", "analytics-nightly", uid, Engine::Redshift);
        assert_eq!(id, "data-analytics-nightly-3f2a9c1e");
        assert_eq!(
            id,
            default_identifier("data", "analytics-nightly", uid, Engine::Redshift)
        );
        // Names with dots, a digit first, and a DocDB length limit.
        let long = "a".repeat(250);
        for engine in [Engine::Redshift, Engine::Docdb, Engine::Elasticache] {
            for (ns, name) in [("9lives", "x.y.z"), ("team", long.as_str()), ("a", "b--c-")] {
                let id = default_identifier(ns, name, uid, engine);
                assert!(
                    is_valid_identifier(&id, engine.max_identifier_len()),
                    "{id} ({engine})"
                );
                assert!(id.ends_with("-3f2a9c1e"), "{id}");
            }
        }
        assert_eq!(
            default_identifier("9lives", "x.y.z", uid, Engine::Docdb),
            "s9lives-x-y-z-3f2a9c1e"
        );
        assert_eq!(
            default_identifier("team", &long, uid, Engine::Docdb).len(),
            63
        );
    }

    #[test]
    fn uids_with_odd_text_still_give_valid_ids() {
        for uid in ["", "-", "00000000", "ab"] {
            let id = default_identifier("ns", "n", uid, Engine::Redshift);
            assert!(is_valid_identifier(&id, 255), "{uid:?} -> {id}");
        }
    }

    #[test]
    fn sanitize_follows_the_rule() {
        assert_eq!(sanitize("Hello World!", 255), "hello-world");
        assert_eq!(sanitize("--a--b--", 255), "a-b");
        assert_eq!(sanitize("1-a", 255), "s1-a");
        assert_eq!(sanitize("", 10), "s");
        assert_eq!(sanitize("abc-def", 4), "abc");
        assert_eq!(sanitize("ümlaut", 255), "mlaut");
    }

    #[test]
    fn identifier_rule() {
        assert!(is_valid_identifier("a", 1));
        assert!(is_valid_identifier("a-1-b", 255));
        for bad in [
            "",
            "1a",
            "a-",
            "a--b",
            "a_b",
            "a.b",
            "é",
            "A",
            "orders-Weekly",
        ] {
            assert!(!is_valid_identifier(bad, 255), "{bad}");
        }
        assert!(!is_valid_identifier("ab", 1));
    }
}
