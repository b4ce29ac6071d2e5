//! Sharding by label: an operator started with `--label-selector` reconciles only the
//! ClusterSnapshots, SnapshotCopies and SnapshotSchedules it selects, so that several
//! deployments (each with its own Lease) can share one cluster. The objects a
//! SnapshotSchedule makes carry the labels the selector requires, so that they stay in
//! the schedule's shard.

use std::collections::BTreeMap;

/// The labels an object must carry for `selector` (a Kubernetes label selector string)
/// to select it: its `key=value`, `key==value` and one-value `key in (value)` terms. The
/// other terms (`!=`, `notin`, `key`, `!key`) name no value to set. Pure.
pub fn required_labels(selector: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for term in terms(selector) {
        let term = term.trim();
        if term.contains("!=") {
            continue;
        }
        if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.insert(key.trim().to_string(), value.trim().to_string());
            continue;
        }
        let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
        if let [key, rest] = words[..]
            && let Some(values) = rest
                .trim()
                .strip_prefix("in")
                .map(str::trim)
                .and_then(|v| v.strip_prefix('('))
                .and_then(|v| v.strip_suffix(')'))
            && !values.contains(',')
            && !values.trim().is_empty()
        {
            labels.insert(key.to_string(), values.trim().to_string());
        }
    }
    labels
}

/// The selector's terms: split at the commas outside parentheses.
fn terms(selector: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_a_selector_requires_are_its_terms_that_name_one_value() {
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        for (selector, want) in [
            ("", l(&[])),
            ("shard=a", l(&[("shard", "a")])),
            ("shard==a", l(&[("shard", "a")])),
            (" shard = a ", l(&[("shard", "a")])),
            ("shard!=a", l(&[])),
            ("shard", l(&[])),
            ("!shard", l(&[])),
            ("shard in (a)", l(&[("shard", "a")])),
            ("shard in (a, b)", l(&[])),
            ("shard notin (a)", l(&[])),
            ("shard in ()", l(&[])),
            (
                "team=data,shard in (b),tier!=gold,example.com/zone==eu",
                l(&[("team", "data"), ("shard", "b"), ("example.com/zone", "eu")]),
            ),
            ("x in (a,b),y=c", l(&[("y", "c")])),
        ] {
            assert_eq!(required_labels(selector), want, "{selector:?}");
        }
    }
}
