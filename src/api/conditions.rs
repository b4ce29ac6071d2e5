//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) and their reasons. No IO.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Condition reasons. They are part of the API: users and tools match on them.
pub mod reasons {
    /// First reconcile, nothing done yet.
    pub const PENDING: &str = "Pending";
    /// AWS is creating the snapshot.
    pub const CREATING: &str = "Creating";
    /// AWS is copying the snapshot.
    pub const COPYING: &str = "Copying";
    /// Sharing, tags or retention are being brought in line with the spec.
    pub const SYNCING: &str = "Syncing";
    /// The snapshot is available and matches the spec.
    pub const AVAILABLE: &str = "Available";
    /// The object is being deleted.
    pub const DELETING: &str = "Deleting";
    /// The snapshot exists on AWS but belongs to something else.
    pub const NOT_OWNED: &str = "NotOwned";
    /// The snapshot disappeared from AWS (deleted out of band); it is not recreated.
    pub const NOT_FOUND: &str = "NotFound";
    /// AWS reports the snapshot with a status the operator does not know (the message
    /// quotes it); it is looked at again until the status is one it knows.
    pub const UNKNOWN_STATUS: &str = "UnknownStatus";
    /// AWS reports the snapshot failed.
    pub const FAILED: &str = "Failed";
    /// The spec is invalid; the message names the field.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// AWS refused a call for a reason retrying will not fix (permissions, limits,
    /// a missing cluster).
    pub const AWS_ERROR: &str = "AWSError";
    /// The operator's Kubernetes permissions do not allow a call it needs; the message
    /// names it.
    pub const FORBIDDEN: &str = "Forbidden";
    /// SnapshotCopy: the source ClusterSnapshot is not Ready yet. ClusterSnapshot: the
    /// cluster to snapshot is not available now (AWS's words in the message); tried
    /// again with backoff.
    pub const SOURCE_NOT_READY: &str = "SourceNotReady";
    /// SnapshotCopy: the source cannot be copied.
    pub const INVALID_SOURCE: &str = "InvalidSource";
    /// spec.account names an AWSAccount that does not admit the object's namespace:
    /// nothing is called until it does.
    pub const ACCOUNT_NOT_ALLOWED: &str = "AccountNotAllowed";
    /// spec.account names an AWSAccount that does not exist, is not Ready, or now
    /// names another account than the one the snapshot is in: nothing is called until
    /// it is Ready again.
    pub const ACCOUNT_NOT_READY: &str = "AccountNotReady";
}

/// What the object's conditions should say, in kstatus terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Work is under way: Ready=False, Reconciling=True.
    Progressing { reason: String, message: String },
    /// Done and in sync: Ready=True.
    Ready { message: String },
    /// Cannot make progress without a change from outside: Ready=False, Stalled=True.
    Stalled { reason: String, message: String },
}

impl Health {
    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Health::Progressing {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Health::Stalled {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn ready(message: impl Into<String>) -> Self {
        Health::Ready {
            message: message.into(),
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Health::Progressing { reason, .. } | Health::Stalled { reason, .. } => reason,
            Health::Ready { .. } => reasons::AVAILABLE,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Health::Progressing { message, .. }
            | Health::Stalled { message, .. }
            | Health::Ready { message } => message,
        }
    }
}

fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    // The transition time moves only when the status does.
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The kstatus conditions for `health`, keeping transition times of conditions whose
/// status did not change: `Ready`, and `Reconciling` or `Stalled` only while it is
/// True. Both are abnormal-true (negative polarity) conditions: kstatus and Flux read
/// their absence as False, and never both True.
pub fn conditions(
    previous: &[Condition],
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let (reason, message) = (health.reason(), health.message());
    // Every condition carries a non-empty message: some API servers (Kubernetes before
    // 1.21) turn an empty string into null under server-side apply and then reject it.
    let message = if message.is_empty() { reason } else { message };
    let ready = condition(
        previous,
        READY,
        matches!(health, Health::Ready { .. }),
        reason,
        message,
        generation,
        now,
    );
    let abnormal = match health {
        Health::Progressing { .. } => Some(RECONCILING),
        Health::Stalled { .. } => Some(STALLED),
        Health::Ready { .. } => None,
    };
    std::iter::once(ready)
        .chain(abnormal.map(|t| condition(previous, t, true, reason, message, generation, now)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    fn types(c: &[Condition]) -> Vec<(&str, &str)> {
        c.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect()
    }

    #[test]
    fn each_health_maps_to_kstatus_conditions() {
        let now = Timestamp::from_second(1_000).unwrap();
        let p = conditions(
            &[],
            &Health::progressing(reasons::CREATING, "42%"),
            Some(3),
            now,
        );
        assert_eq!(types(&p), [(READY, "False"), (RECONCILING, "True")]);
        assert_eq!(find(&p, READY).reason, "Creating");
        assert_eq!(find(&p, RECONCILING).message, "42%");
        assert!(p.iter().all(|c| c.observed_generation == Some(3)));

        let r = conditions(&p, &Health::ready("available"), Some(3), now);
        assert_eq!(types(&r), [(READY, "True")]);
        assert_eq!(find(&r, READY).reason, "Available");

        let s = conditions(
            &r,
            &Health::stalled(reasons::NOT_FOUND, "gone"),
            Some(4),
            now,
        );
        assert_eq!(types(&s), [(READY, "False"), (STALLED, "True")]);
        assert_eq!(find(&s, STALLED).message, "gone");
        assert_eq!(find(&s, STALLED).reason, "NotFound");
        assert_eq!(find(&s, READY).reason, "NotFound");
    }

    /// Flux's rule (fluxcd/pkg runtime/conditions) and kstatus: Reconciling and Stalled
    /// are present only when True, never both; Ready is always there, False while
    /// Stalled; no message is empty.
    #[test]
    fn conditions_follow_the_flux_and_kstatus_rules() {
        let now = Timestamp::from_second(1_000).unwrap();
        let healths = [
            Health::progressing(reasons::PENDING, ""),
            Health::progressing(reasons::SYNCING, "tags"),
            Health::ready(""),
            Health::stalled(reasons::AWS_ERROR, "AccessDenied"),
            Health::stalled(reasons::INVALID_SPEC, ""),
        ];
        let mut previous = Vec::new();
        for a in &healths {
            for b in &healths {
                for h in [a, b] {
                    let c = conditions(&previous, h, Some(1), now);
                    assert_eq!(find(&c, READY).status == "True", *h == Health::ready(""));
                    let abnormal: Vec<_> = c
                        .iter()
                        .filter(|c| c.type_ == RECONCILING || c.type_ == STALLED)
                        .collect();
                    assert!(abnormal.len() <= 1, "{c:?}");
                    assert!(abnormal.iter().all(|c| c.status == "True"), "{c:?}");
                    if matches!(h, Health::Stalled { .. }) {
                        assert_eq!(find(&c, STALLED).status, "True");
                        assert_eq!(find(&c, READY).status, "False");
                    }
                    assert!(c.iter().all(|c| !c.message.is_empty()), "{c:?}");
                    previous = c;
                }
            }
        }
    }

    #[test]
    fn transition_times_move_only_with_status() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let t2 = Timestamp::from_second(3_000).unwrap();
        let a = conditions(
            &[],
            &Health::progressing(reasons::CREATING, "1%"),
            Some(1),
            t0,
        );
        let b = conditions(
            &a,
            &Health::progressing(reasons::CREATING, "50%"),
            Some(1),
            t1,
        );
        assert_eq!(find(&b, READY).last_transition_time, Time(t0));
        assert_eq!(find(&b, RECONCILING).last_transition_time, Time(t0));
        let c = conditions(&b, &Health::ready("ok"), Some(1), t1);
        assert_eq!(find(&c, READY).last_transition_time, Time(t1));
        // A condition that comes back is new: it was False (absent) meanwhile.
        let d = conditions(&c, &Health::stalled(reasons::AWS_ERROR, "x"), Some(1), t2);
        assert_eq!(find(&d, STALLED).last_transition_time, Time(t2));
        assert_eq!(find(&d, READY).last_transition_time, Time(t2));
    }
}
