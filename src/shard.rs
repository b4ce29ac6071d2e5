//! Sharding by label: an operator started with `--label-selector` reconciles only the
//! ClusterSnapshots, SnapshotCopies and SnapshotSchedules it selects, so that several
//! deployments (each with its own Lease) can share one cluster. The objects a
//! SnapshotSchedule makes take the schedule's own labels for every key the selector
//! names (and lose those the schedule lacks), so the selector judges them as it judged
//! the schedule: they stay in its shard.

use std::collections::BTreeMap;

/// The label keys a Kubernetes label selector string names, in order, once each:
/// `k=v`, `k==v`, `k!=v`, `k in (..)`, `k notin (..)`, `k`, `!k`. Pure.
pub fn selector_keys(selector: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for term in terms(selector) {
        let term = term.trim().trim_start_matches('!').trim_start();
        let end = term
            .find(|c: char| c == '=' || c == '!' || c.is_whitespace())
            .unwrap_or(term.len());
        let key = term[..end].trim();
        if !key.is_empty() && !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
    }
    keys
}

/// Gives `labels` (an object a schedule makes) the schedule's value of each of `keys`,
/// and removes those of `keys` the schedule has not. Pure.
pub fn follow_schedule(
    labels: &mut BTreeMap<String, String>,
    keys: &[String],
    schedule: &BTreeMap<String, String>,
) {
    for key in keys {
        match schedule.get(key) {
            Some(value) => labels.insert(key.clone(), value.clone()),
            None => labels.remove(key),
        };
    }
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
    fn every_key_a_selector_names_is_found_once() {
        for (selector, want) in [
            ("", vec![]),
            ("shard=a", vec!["shard"]),
            ("shard==a", vec!["shard"]),
            (" shard = a ", vec!["shard"]),
            ("shard!=a", vec!["shard"]),
            ("shard", vec!["shard"]),
            ("!shard", vec!["shard"]),
            ("! shard", vec!["shard"]),
            ("shard in (a)", vec!["shard"]),
            ("shard in (a, b)", vec!["shard"]),
            ("shard notin (a,b)", vec!["shard"]),
            (
                "team=data,shard in (b,c),tier!=gold,example.com/zone==eu,!legacy,shard",
                vec!["team", "shard", "tier", "example.com/zone", "legacy"],
            ),
        ] {
            assert_eq!(selector_keys(selector), want, "{selector:?}");
        }
    }

    #[test]
    fn objects_a_schedule_makes_carry_its_values_for_the_selectors_keys() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let keys = selector_keys("shard in (a,b),!legacy,tier!=gold");
        let schedule = map(&[("shard", "b"), ("tier", "silver"), ("app", "orders")]);
        // The template's own labels stay, but for the selector's keys, which follow the
        // schedule: set where it has them, removed where it has not.
        let mut labels = map(&[("shard", "z"), ("legacy", "yes"), ("owner", "team-a")]);
        follow_schedule(&mut labels, &keys, &schedule);
        assert_eq!(
            labels,
            map(&[("shard", "b"), ("tier", "silver"), ("owner", "team-a")])
        );
        // No selector: nothing changes (and the schedule's other labels never travel).
        let mut labels = map(&[("owner", "team-a")]);
        follow_schedule(&mut labels, &[], &schedule);
        assert_eq!(labels, map(&[("owner", "team-a")]));
    }
}
