//! The decision core: given what the object wants and what AWS says now, the one next
//! step, the status to show and when to look again. Pure; no IO.

use std::time::Duration;

use crate::api::conditions::{Health, reasons};
use crate::api::{DeletionPolicy, OWNER_UID_TAG, Phase, SnapshotStatus, Tags};
use crate::engine::{Snapshot, SnapshotState, share_diff, tag_diff};

/// What the object wants on AWS.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub identifier: String,
    /// The spec's tags plus the ownership tags.
    pub tags: Tags,
    /// Whether tags that are not in `tags` are removed (not for copies that copied
    /// their source's tags).
    pub prune_tags: bool,
    pub shared_with: Vec<String>,
    /// Redshift: the retention period to keep (-1 when the spec says nothing).
    pub retention_days: Option<i32>,
    pub owner_uid: String,
    pub deletion_policy: DeletionPolicy,
    /// Copies whose copy is still running are cancelled by deleting the target
    /// (DocumentDB); other snapshots are waited for.
    pub cancel_while_creating: bool,
    /// The snapshot the object's status records as its own (only the operator writes
    /// that): when AWS reports the same ARN and creation time, it is this object's even
    /// where the look did not fetch tags.
    pub recorded: Option<Recorded>,
    /// A snapshot with no tags at all is this object's: a Redshift copy whose copy call
    /// the status records (see [`Desired::untagged_copy_is_ours`]). CopyClusterSnapshot
    /// takes no tags, so a failed tagging, or a restart between the copy and its
    /// tagging, leaves it untagged.
    pub adopt_untagged: bool,
}

impl Desired {
    /// Whether `s` is this object's by its tags; None when the look did not fetch them.
    /// An untagged snapshot is adopted (where the object may adopt one at all) only
    /// while no snapshot is recorded yet, or it is the one recorded: one made again
    /// under the name later, untagged as console snapshots are, is someone else's.
    pub fn owns(&self, s: &Snapshot) -> Option<bool> {
        let tags = s.tags.as_ref()?;
        Some(
            s.tag(OWNER_UID_TAG) == Some(self.owner_uid.as_str())
                || (self.adopt_untagged
                    && tags.is_empty()
                    && (self.recorded.is_none() || self.recorded_matches(s))),
        )
    }

    /// Whether a snapshot without any tag under the status's identifier is the object's
    /// own copy: only where the status records that the copy call was sent
    /// (`copyRequested`, written before the call). A status from before that record
    /// existed (no `copyRequested` at all) was written by an older version, which may
    /// have sent the call: there the identifier decides, and only the object's
    /// uid-derived default counts (nobody else names a snapshot after the object's
    /// uid); a name from the spec proves nothing.
    pub fn untagged_copy_is_ours(status: &SnapshotStatus, default_identifier: &str) -> bool {
        match (status.copy_requested, status.snapshot_identifier.as_deref()) {
            (_, None) => false,
            (Some(sent), Some(_)) => sent,
            (None, Some(id)) => id == default_identifier,
        }
    }

    /// Whether `s` is the snapshot the status recorded (same ARN and creation time).
    pub fn recorded_matches(&self, s: &Snapshot) -> bool {
        self.recorded.as_ref().is_some_and(|r| {
            s.arn.as_ref() == Some(&r.arn) && s.created.as_ref() == Some(&r.created)
        })
    }
}

/// Whether a look without tags (a listing, or a describe without detail) cannot stand
/// for the snapshot the status recorded: its ARN or creation time differs from the
/// record. Someone may have deleted the snapshot and made another under the same name
/// (which has the same ARN but not the same creation time), so only its tags can tell
/// whose it is. Nothing recorded yet: nothing to compare.
pub fn needs_tags_to_prove(status: &SnapshotStatus, s: &Snapshot) -> bool {
    let Some(arn) = &status.arn else {
        return false;
    };
    s.tags.is_none() && (s.arn.as_ref() != Some(arn) || s.created != status.creation_time)
}

/// A snapshot as the object's status recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub arn: String,
    pub created: String,
}

impl Recorded {
    /// From a status that mirrored an owned snapshot.
    pub fn from_status(status: &SnapshotStatus) -> Option<Self> {
        Some(Self {
            arn: status.arn.clone()?,
            created: status.creation_time.clone()?,
        })
    }
}

/// What AWS says about the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Missing,
    Found(Box<Snapshot>),
}

impl From<Option<Snapshot>> for Observation {
    fn from(found: Option<Snapshot>) -> Self {
        found.map_or(Observation::Missing, |s| Observation::Found(Box::new(s)))
    }
}

/// The one AWS mutation to make now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Nothing,
    Create,
    Share {
        add: Vec<String>,
        remove: Vec<String>,
    },
    Tag {
        set: Tags,
        remove: Vec<String>,
    },
    SetRetention(i32),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub step: Step,
    pub phase: Phase,
    pub health: Health,
    /// When to look again; `None`: only when the object changes.
    pub requeue: Option<Duration>,
    /// Cleanup only: once `step` is done the finalizer may be removed.
    pub finished: bool,
    /// Whether the observed snapshot is this object's (so its state may be mirrored).
    pub owned: bool,
}

/// How often to look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Between looks at an available snapshot (drift repair).
    pub resync: Duration,
    /// Shortest wait while AWS works.
    pub min_poll: Duration,
    /// Longest wait while AWS works.
    pub max_poll: Duration,
    /// Batched polling: the shortest wait between two looks at one source's snapshots.
    pub batch_floor: Duration,
    /// Batched polling: the wait when AWS gives no estimate for any snapshot of the
    /// source (ElastiCache reports no progress).
    pub no_estimate_poll: Duration,
    /// The length of a retention day (a real day; shorter only in tests against an
    /// emulator whose days are).
    pub day: Duration,
    /// The shortest wait between two status writes of one object that change only its
    /// progress (never below `batch_floor`, the --min-poll-seconds).
    pub progress_write: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            min_poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(60),
            batch_floor: Duration::from_secs(11),
            no_estimate_poll: Duration::from_millis(13_200),
            day: Duration::from_secs(86_400),
            progress_write: Duration::from_secs(60),
        }
    }
}

/// The time left that AWS's own figures imply: Redshift's estimated seconds to
/// completion, or DocumentDB's percent progress over the time elapsed. `None` when AWS
/// gives neither (ElastiCache, or nothing done yet).
pub fn aws_estimate(s: &Snapshot, elapsed: Option<Duration>) -> Option<Duration> {
    match (
        s.progress.estimated_seconds_to_completion,
        s.progress.percent,
        elapsed,
    ) {
        (Some(secs), _, _) if secs > 0 => Some(Duration::from_secs(secs as u64)),
        (_, Some(p), Some(e)) if (1..100).contains(&p) => {
            Some(e.mul_f64((100 - p) as f64 / p as f64))
        }
        _ => None,
    }
}

/// One snapshot of a batch that AWS is still creating, as of the last look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// What AWS's figures imply is left ([`aws_estimate`]).
    pub estimate: Option<Duration>,
    /// Since AWS started it.
    pub elapsed: Option<Duration>,
}

/// When to list a source's snapshots again, from the members still being created.
/// Snapshots of one source hold the same data and take about as long, so a member
/// without an estimate of its own (just started, or an engine without progress) is
/// expected to take as long as the quickest sibling that has one; with no estimate at
/// all, `no_estimate_poll`. The soonest is taken, bounded by `batch_floor` and
/// `max_poll`.
pub fn batch_next_poll(members: &[Member], timing: &Timing) -> Duration {
    let expected_total = members
        .iter()
        .filter_map(|m| Some(m.estimate? + m.elapsed?))
        .min();
    members
        .iter()
        .map(|m| {
            m.estimate
                .or_else(|| Some(expected_total?.saturating_sub(m.elapsed?)))
                .unwrap_or(timing.no_estimate_poll)
        })
        .min()
        .unwrap_or(timing.max_poll)
        .clamp(timing.batch_floor, timing.max_poll.max(timing.batch_floor))
}

/// After a mutation: look again soon to mirror its effect.
const AFTER_MUTATION: Duration = Duration::from_secs(1);

/// When to look at a snapshot that AWS is still working on, from what AWS reports:
/// Redshift's estimated seconds to completion, or the time DocumentDB's percent
/// progress implies; bounded by `timing`.
pub fn next_poll(s: &Snapshot, elapsed: Option<Duration>, timing: &Timing) -> Duration {
    aws_estimate(s, elapsed)
        .or_else(|| elapsed.map(|e| e / 4))
        .unwrap_or(Duration::from_secs(10))
        .clamp(timing.min_poll, timing.max_poll)
}

/// A one-line account of the snapshot's progress, for the Ready condition's message.
pub fn progress_message(s: &Snapshot) -> String {
    let p = &s.progress;
    let verb = if s.aws_status == "copying" {
        "copy"
    } else {
        "backup"
    };
    match (p.percent, p.backup_progress_mb, p.total_backup_size_mb) {
        (Some(pct), Some(done), Some(total)) => {
            let left = p
                .estimated_seconds_to_completion
                .map(|s| format!(", ~{s}s left"))
                .unwrap_or_default();
            format!("{verb} {pct}% ({done:.0}/{total:.0} MB){left}")
        }
        (Some(pct), _, _) => format!("{verb} {pct}%"),
        _ => format!("AWS status: {}", s.aws_status),
    }
}

fn not_owned(d: &Desired, s: &Snapshot) -> Decision {
    let owner = s
        .tag(OWNER_UID_TAG)
        .map(|o| format!("owner-uid tag {o}"))
        .unwrap_or_else(|| "no owner-uid tag".to_string());
    Decision {
        step: Step::Nothing,
        phase: Phase::Failed,
        health: Health::stalled(
            reasons::NOT_OWNED,
            format!(
                "snapshot {} already exists on AWS and does not belong to this object ({owner}); \
                 it will not be modified or deleted: choose another snapshotIdentifier",
                d.identifier
            ),
        ),
        requeue: None,
        finished: false,
        owned: false,
    }
}

/// Whether a manual snapshot created at `created` (RFC 3339) has outlived a retention
/// period of `days` days of length `day` at `now`: AWS deletes a Redshift manual
/// snapshot once its retention period has passed (ManualSnapshotRetentionPeriod; -1
/// keeps it forever), and at once where a shortened period has (ModifyClusterSnapshot
/// with Force).
pub fn retention_passed(
    created: &str,
    days: i32,
    day: Duration,
    now: std::time::SystemTime,
) -> bool {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;
    let Ok(created) = DateTime::from_str(created, Format::DateTime) else {
        return false;
    };
    let Ok(created) = std::time::SystemTime::try_from(created) else {
        return false;
    };
    days > 0
        && now
            .duration_since(created)
            .is_ok_and(|age| age >= day.saturating_mul(days as u32))
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use crate::api::Phase;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_retention_period_passes_days_after_creation() {
        // 2026-11-20T00:00:00Z
        let created = "2026-11-20T00:00:00Z";
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(1_795_132_800 + secs);
        assert!(!retention_passed(created, 3, DAY, at(3 * 86_400 - 1)));
        assert!(retention_passed(created, 3, DAY, at(3 * 86_400)));
        assert!(!retention_passed(created, -1, DAY, at(3650 * 86_400)));
        assert!(!retention_passed("not a time", 1, DAY, at(10 * 86_400)));
        // Shorter days (an emulator's) count the same way.
        assert!(retention_passed(created, 3, Duration::from_secs(2), at(6)));
    }

    #[test]
    fn a_vanished_snapshot_is_expired_only_past_its_retention() {
        let d = |days: i32, created: &str| Desired {
            identifier: "snap".into(),
            tags: Tags::new(),
            prune_tags: true,
            shared_with: vec![],
            retention_days: Some(days),
            owner_uid: "uid".into(),
            deletion_policy: DeletionPolicy::Delete,
            cancel_while_creating: false,
            recorded: Some(Recorded {
                arn: "arn:snap".into(),
                created: created.into(),
            }),
            adopt_untagged: false,
        };
        let t = Timing::default();
        let old = "2020-01-01T00:00:00Z";
        let expired = apply(&d(7, old), true, &Observation::Missing, None, &t);
        assert_eq!(expired.phase, Phase::Failed);
        let Health::Stalled { reason, message } = &expired.health else {
            panic!("{:?}", expired.health);
        };
        assert_eq!(reason, reasons::NOT_FOUND);
        assert!(
            message.contains("expired after 7 days (retention period)"),
            "{message}"
        );
        let now = aws_smithy_types::DateTime::from(SystemTime::now())
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap();
        for (days, created) in [(-1, old), (7, now.as_str())] {
            let gone = apply(&d(days, created), true, &Observation::Missing, None, &t);
            let Health::Stalled { reason, message } = &gone.health else {
                panic!("{:?}", gone.health);
            };
            assert_eq!(reason, reasons::NOT_FOUND);
            assert!(message.contains("deleted outside Kubernetes"), "{message}");
        }
    }
}

/// The next step towards what the object wants. `known`: the object has seen its
/// snapshot on AWS before (so a missing one was deleted out of band, or expired: the
/// one place that reads the clock).
pub fn apply(
    d: &Desired,
    known: bool,
    observed: &Observation,
    elapsed: Option<Duration>,
    timing: &Timing,
) -> Decision {
    let s = match observed {
        Observation::Missing if known => {
            let expired = d.retention_days.filter(|days| {
                d.recorded.as_ref().is_some_and(|r| {
                    retention_passed(&r.created, *days, timing.day, std::time::SystemTime::now())
                })
            });
            let why = match expired {
                Some(days) => format!(
                    "expired after {days} day{} (retention period) and AWS deleted it",
                    if days == 1 { "" } else { "s" }
                ),
                None => "no longer exists on AWS (deleted outside Kubernetes)".to_string(),
            };
            return Decision {
                step: Step::Nothing,
                phase: Phase::Failed,
                health: Health::stalled(
                    reasons::NOT_FOUND,
                    format!(
                        "snapshot {} {why}; it is not recreated: delete this object, or \
                         recreate it to take a new snapshot",
                        d.identifier
                    ),
                ),
                requeue: Some(timing.resync),
                finished: false,
                owned: false,
            };
        }
        Observation::Missing => {
            return Decision {
                step: Step::Create,
                phase: Phase::Creating,
                health: Health::progressing(
                    reasons::CREATING,
                    format!("creating snapshot {}", d.identifier),
                ),
                requeue: Some(timing.min_poll),
                finished: false,
                owned: true,
            };
        }
        Observation::Found(s) => s,
    };
    // AWS keeps a deleted snapshot `deleting` for a while, its name still taken (the
    // snapshot of an object deleted just before this one, say). Not this object's:
    // wait for it to go, then create.
    if s.state() == SnapshotState::Deleting && d.owns(s) != Some(true) && !known {
        return Decision {
            step: Step::Nothing,
            phase: Phase::Pending,
            health: Health::progressing(
                reasons::PENDING,
                format!(
                    "a snapshot named {} that is not this object's is being deleted on AWS \
                     (status {}); this one is created once it is gone",
                    d.identifier, s.aws_status
                ),
            ),
            requeue: Some(timing.max_poll),
            finished: false,
            owned: false,
        };
    }
    if d.owns(s) == Some(false) {
        return not_owned(d, s);
    }
    if s.tags.is_none() && d.recorded.is_some() && !d.recorded_matches(s) {
        // Not the snapshot recorded, and no tags to say whose it is: nothing is decided
        // (or mirrored) until a full look.
        return Decision {
            step: Step::Nothing,
            phase: Phase::Creating,
            health: Health::progressing(
                reasons::CREATING,
                format!(
                    "snapshot {} is not the one recorded (ARN or creation time differs); \
                     checking its owner",
                    d.identifier
                ),
            ),
            requeue: Some(AFTER_MUTATION),
            finished: false,
            owned: false,
        };
    }
    let progressing = |phase: Phase, reason: &str, message: String, requeue: Duration| Decision {
        step: Step::Nothing,
        phase,
        health: Health::progressing(reason, message),
        requeue: Some(requeue),
        finished: false,
        owned: true,
    };
    match s.state() {
        SnapshotState::Failed => Decision {
            step: Step::Nothing,
            phase: Phase::Failed,
            health: Health::stalled(
                reasons::FAILED,
                format!(
                    "AWS reports snapshot {} as {}: create a new object to try again",
                    d.identifier, s.aws_status
                ),
            ),
            requeue: Some(timing.resync),
            finished: false,
            owned: true,
        },
        SnapshotState::Deleting => Decision {
            step: Step::Nothing,
            phase: Phase::Failed,
            health: Health::stalled(
                reasons::NOT_FOUND,
                format!(
                    "snapshot {} is being deleted outside Kubernetes (AWS status {}); it is not \
                     recreated",
                    d.identifier, s.aws_status
                ),
            ),
            requeue: Some(timing.resync),
            finished: false,
            owned: true,
        },
        // Never taken for creating (or anything else): shown as AWS says it, looked at
        // again at the slowest poll.
        SnapshotState::Unknown => Decision {
            step: Step::Nothing,
            phase: Phase::Creating,
            health: Health::progressing(
                reasons::UNKNOWN_STATUS,
                format!(
                    "AWS reports snapshot {} with status {:?}, which this operator does not \
                     know; waiting for a status it knows",
                    d.identifier, s.aws_status
                ),
            ),
            requeue: Some(timing.max_poll),
            finished: false,
            owned: true,
        },
        SnapshotState::Creating => {
            let reason = if s.aws_status == "copying" {
                reasons::COPYING
            } else {
                reasons::CREATING
            };
            progressing(
                Phase::Creating,
                reason,
                progress_message(s),
                next_poll(s, elapsed, timing),
            )
        }
        SnapshotState::Available => {
            let mut step = Step::Nothing;
            if let Some(days) = d.retention_days
                && s.retention_days.is_some_and(|r| r != i64::from(days))
            {
                step = Step::SetRetention(days);
            }
            if step == Step::Nothing
                && let Some(observed) = &s.tags
            {
                let (set, mut remove) = tag_diff(&d.tags, observed);
                if !d.prune_tags {
                    remove.clear();
                }
                if !set.is_empty() || !remove.is_empty() {
                    step = Step::Tag { set, remove };
                }
            }
            if step == Step::Nothing
                && let Some(observed) = &s.shared_with
            {
                let (add, remove) = share_diff(&d.shared_with, observed);
                if !add.is_empty() || !remove.is_empty() {
                    step = Step::Share { add, remove };
                }
            }
            if step == Step::Nothing {
                Decision {
                    step,
                    phase: Phase::Available,
                    health: Health::ready(format!("snapshot {} is available", d.identifier)),
                    requeue: Some(timing.resync),
                    finished: false,
                    owned: true,
                }
            } else {
                let what = match &step {
                    Step::SetRetention(days) => format!("setting retention to {days} days"),
                    Step::Tag { .. } => "updating tags".to_string(),
                    Step::Share { add, remove } => {
                        format!("sharing with {add:?}, revoking {remove:?}")
                    }
                    _ => String::new(),
                };
                Decision {
                    step,
                    phase: Phase::Available,
                    health: Health::progressing(
                        reasons::SYNCING,
                        format!("snapshot {} is available; {what}", d.identifier),
                    ),
                    requeue: Some(AFTER_MUTATION),
                    finished: false,
                    owned: true,
                }
            }
        }
    }
}

/// The next step towards deleting the object: revoke every share, then delete; wait
/// while AWS is still creating; a missing or foreign snapshot, or Retain, needs nothing.
pub fn cleanup(
    d: &Desired,
    observed: &Observation,
    elapsed: Option<Duration>,
    timing: &Timing,
) -> Decision {
    let done = |message: String| Decision {
        step: Step::Nothing,
        phase: Phase::Deleting,
        health: Health::progressing(reasons::DELETING, message),
        requeue: None,
        finished: true,
        owned: false,
    };
    if d.deletion_policy == DeletionPolicy::Retain {
        return done(format!(
            "deletionPolicy Retain: snapshot {} is kept on AWS",
            d.identifier
        ));
    }
    let s = match observed {
        Observation::Missing => {
            return done(format!("snapshot {} is gone from AWS", d.identifier));
        }
        Observation::Found(s) => s,
    };
    let owned = d.owns(s).unwrap_or_else(|| d.recorded_matches(s));
    if !owned {
        return done(format!(
            "snapshot {} does not belong to this object; it is left alone",
            d.identifier
        ));
    }
    let step_towards_delete = |step: Step, finished: bool, message: String| Decision {
        step,
        phase: Phase::Deleting,
        health: Health::progressing(reasons::DELETING, message),
        requeue: Some(AFTER_MUTATION),
        finished,
        owned: true,
    };
    match s.state() {
        SnapshotState::Deleting => done(format!("AWS is deleting snapshot {}", d.identifier)),
        SnapshotState::Creating if d.cancel_while_creating => step_towards_delete(
            Step::Delete,
            true,
            format!("cancelling the copy {} by deleting it", d.identifier),
        ),
        SnapshotState::Creating => Decision {
            step: Step::Nothing,
            phase: Phase::Deleting,
            health: Health::progressing(
                reasons::DELETING,
                format!(
                    "waiting for snapshot {} to finish ({}) before deleting it",
                    d.identifier,
                    progress_message(s)
                ),
            ),
            requeue: Some(next_poll(s, elapsed, timing)),
            finished: false,
            owned: true,
        },
        // Failed (also Redshift's `cancelled`), or a status nobody documents: nothing
        // will change by waiting, so the delete is asked for (AWS refusing it is
        // retried).
        SnapshotState::Available | SnapshotState::Failed | SnapshotState::Unknown => {
            match &s.shared_with {
                Some(shared) if !shared.is_empty() => step_towards_delete(
                    Step::Share {
                        add: Vec::new(),
                        remove: shared.clone(),
                    },
                    false,
                    format!(
                        "revoking access of {shared:?} before deleting snapshot {}",
                        d.identifier
                    ),
                ),
                _ => step_towards_delete(
                    Step::Delete,
                    true,
                    format!("deleting snapshot {}", d.identifier),
                ),
            }
        }
    }
}

/// Copies what AWS reports about an owned snapshot into the status. The recorded ARN
/// and creation time (what later proves ownership without tags) are set once, and
/// rewritten only from a look whose tags proved the snapshot this object's.
pub fn mirror(status: &mut SnapshotStatus, s: &Snapshot) {
    let proven = s.tags.is_some();
    if proven || status.arn.is_none() {
        status.arn = s.arn.clone().or(status.arn.take());
    }
    if proven || status.creation_time.is_none() {
        status.creation_time = s.created.clone().or(status.creation_time.take());
    }
    status.aws_status = Some(s.aws_status.clone());
    status.snapshot_type = s.snapshot_type.clone();
    let p = &s.progress;
    let any_progress = p.percent.is_some()
        || p.backup_progress_mb.is_some()
        || p.estimated_seconds_to_completion.is_some();
    status.progress = any_progress.then(|| p.clone());
    status.total_size_mb = s.total_size_mb;
    status.encrypted = s.encrypted;
    status.kms_key_id = s.kms_key_id.clone();
    if let Some(shared) = &s.shared_with {
        status.shared_with = Some(shared.clone());
    }
    status.retention_days = s.retention_days;
    status.remaining_days = s.remaining_days;
    if s.source_arn.is_some() {
        status.source_arn = s.source_arn.clone();
    }
    status.ready_to_use = Some(s.state() == SnapshotState::Available);
}

/// Clears what AWS last reported of the snapshot (state, progress, sizes, shares), for
/// an object whose snapshot is gone or turned out not to be its own.
pub fn forget_observed(status: &mut SnapshotStatus) {
    status.aws_status = None;
    status.progress = None;
    status.total_size_mb = None;
    status.remaining_days = None;
    status.shared_with = None;
    status.ready_to_use = Some(false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Progress;

    const UID: &str = "uid-1";

    fn desired() -> Desired {
        Desired {
            identifier: "snap".into(),
            tags: [
                (OWNER_UID_TAG.to_string(), UID.to_string()),
                ("team".to_string(), "data".to_string()),
            ]
            .into(),
            prune_tags: true,
            shared_with: vec!["111111111111".into()],
            retention_days: Some(7),
            owner_uid: UID.into(),
            deletion_policy: DeletionPolicy::Delete,
            cancel_while_creating: false,
            recorded: None,
            adopt_untagged: false,
        }
    }

    fn snap(status: &str) -> Snapshot {
        let d = desired();
        Snapshot {
            identifier: "snap".into(),
            arn: Some("arn:snap".into()),
            aws_status: status.into(),
            retention_days: Some(7),
            tags: Some(d.tags.clone()),
            shared_with: Some(d.shared_with.clone()),
            ..Snapshot::default()
        }
    }

    fn timing() -> Timing {
        Timing::default()
    }

    #[test]
    fn apply_table() {
        let t = timing();
        let d = desired();
        let mut foreign = snap("available");
        foreign.tags = Some([(OWNER_UID_TAG.to_string(), "someone-else".to_string())].into());
        let mut untagged = snap("available");
        untagged.tags = Some(Tags::new());
        let mut retention = snap("available");
        retention.retention_days = Some(-1);
        let mut tag_drift = snap("available");
        tag_drift
            .tags
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        let mut share_drift = snap("available");
        share_drift.shared_with = Some(vec!["222222222222".into()]);
        let mut no_detail = snap("available");
        no_detail.tags = None;
        no_detail.shared_with = None;

        use Observation::*;
        let cases: Vec<(&str, bool, Observation, Step, Phase, &str)> = vec![
            (
                "new",
                false,
                Missing,
                Step::Create,
                Phase::Creating,
                reasons::CREATING,
            ),
            (
                "gone",
                true,
                Missing,
                Step::Nothing,
                Phase::Failed,
                reasons::NOT_FOUND,
            ),
            (
                "foreign",
                false,
                Found(Box::new(foreign)),
                Step::Nothing,
                Phase::Failed,
                reasons::NOT_OWNED,
            ),
            (
                "untagged",
                true,
                Found(Box::new(untagged)),
                Step::Nothing,
                Phase::Failed,
                reasons::NOT_OWNED,
            ),
            (
                "creating",
                true,
                Found(Box::new(snap("creating"))),
                Step::Nothing,
                Phase::Creating,
                reasons::CREATING,
            ),
            (
                "a status nobody documents",
                true,
                Found(Box::new(snap("paused-for-maintenance"))),
                Step::Nothing,
                Phase::Creating,
                reasons::UNKNOWN_STATUS,
            ),
            (
                "Redshift cancelled",
                true,
                Found(Box::new(snap("cancelled"))),
                Step::Nothing,
                Phase::Failed,
                reasons::FAILED,
            ),
            (
                "Redshift final snapshot",
                true,
                Found(Box::new(snap("final snapshot"))),
                Step::Nothing,
                Phase::Available,
                reasons::AVAILABLE,
            ),
            (
                "copying",
                true,
                Found(Box::new(snap("copying"))),
                Step::Nothing,
                Phase::Creating,
                reasons::COPYING,
            ),
            (
                "failed",
                true,
                Found(Box::new(snap("failed"))),
                Step::Nothing,
                Phase::Failed,
                reasons::FAILED,
            ),
            (
                "deleting",
                true,
                Found(Box::new(snap("deleting"))),
                Step::Nothing,
                Phase::Failed,
                reasons::NOT_FOUND,
            ),
            (
                "in sync",
                true,
                Found(Box::new(snap("available"))),
                Step::Nothing,
                Phase::Available,
                reasons::AVAILABLE,
            ),
            (
                // ElastiCache: a cluster is being restored from the snapshot.
                "restoring",
                true,
                Found(Box::new(snap("restoring"))),
                Step::Nothing,
                Phase::Available,
                reasons::AVAILABLE,
            ),
            (
                "exporting",
                true,
                Found(Box::new(snap("exporting"))),
                Step::Nothing,
                Phase::Available,
                reasons::AVAILABLE,
            ),
            (
                "retention",
                true,
                Found(Box::new(retention)),
                Step::SetRetention(7),
                Phase::Available,
                reasons::SYNCING,
            ),
            (
                "tags",
                true,
                Found(Box::new(tag_drift)),
                Step::Tag {
                    set: Tags::new(),
                    remove: vec!["extra".into()],
                },
                Phase::Available,
                reasons::SYNCING,
            ),
            (
                "shares",
                true,
                Found(Box::new(share_drift)),
                Step::Share {
                    add: vec!["111111111111".into()],
                    remove: vec!["222222222222".into()],
                },
                Phase::Available,
                reasons::SYNCING,
            ),
            (
                "no detail",
                true,
                Found(Box::new(no_detail)),
                Step::Nothing,
                Phase::Available,
                reasons::AVAILABLE,
            ),
        ];
        for (name, known, obs, step, phase, reason) in cases {
            let got = apply(&d, known, &obs, None, &t);
            assert_eq!(got.step, step, "{name}");
            assert_eq!(got.phase, phase, "{name}");
            assert_eq!(got.health.reason(), reason, "{name}: {:?}", got.health);
            assert!(!got.finished, "{name}");
        }
    }

    #[test]
    fn apply_ready_resyncs_and_not_owned_waits_for_a_change() {
        let t = timing();
        let d = desired();
        let ready = apply(
            &d,
            true,
            &Observation::Found(Box::new(snap("available"))),
            None,
            &t,
        );
        assert_eq!(ready.health, Health::ready("snapshot snap is available"));
        assert_eq!(ready.requeue, Some(t.resync));
        let mut foreign = snap("available");
        foreign.tags = Some(Tags::new());
        let n = apply(&d, false, &Observation::Found(Box::new(foreign)), None, &t);
        assert_eq!(n.requeue, None);
        assert!(!n.owned);
        assert!(
            n.health
                .message()
                .contains("choose another snapshotIdentifier")
        );
        let syncing = apply(
            &d,
            true,
            &Observation::Found(Box::new({
                let mut s = snap("available");
                s.retention_days = Some(1);
                s
            })),
            None,
            &t,
        );
        assert_eq!(syncing.requeue, Some(AFTER_MUTATION));
    }

    #[test]
    fn copied_tags_are_kept_when_not_pruning() {
        let mut d = desired();
        d.prune_tags = false;
        let mut s = snap("available");
        s.tags
            .as_mut()
            .unwrap()
            .insert("from-source".into(), "x".into());
        let got = apply(
            &d,
            true,
            &Observation::Found(Box::new(s.clone())),
            None,
            &timing(),
        );
        assert_eq!(got.step, Step::Nothing);
        s.tags
            .as_mut()
            .unwrap()
            .insert("team".into(), "changed".into());
        let got = apply(&d, true, &Observation::Found(Box::new(s)), None, &timing());
        assert_eq!(
            got.step,
            Step::Tag {
                set: [("team".to_string(), "data".to_string())].into(),
                remove: vec![]
            }
        );
    }

    #[test]
    fn retention_is_left_alone_for_engines_without_it() {
        let mut d = desired();
        d.retention_days = None;
        let mut s = snap("available");
        s.retention_days = None;
        let got = apply(&d, true, &Observation::Found(Box::new(s)), None, &timing());
        assert_eq!(got.step, Step::Nothing);
    }

    fn unshared_as(status: &str) -> Snapshot {
        let mut s = snap(status);
        s.shared_with = Some(vec![]);
        s
    }

    #[test]
    fn a_foreign_snapshot_being_deleted_is_waited_for_then_created() {
        let t = timing();
        let d = desired();
        let mut old = snap("deleting");
        old.tags = Some([(OWNER_UID_TAG.to_string(), "the-old-object".to_string())].into());
        let got = apply(
            &d,
            false,
            &Observation::Found(Box::new(old.clone())),
            None,
            &t,
        );
        assert_eq!(got.step, Step::Nothing);
        assert_eq!(got.phase, Phase::Pending);
        assert_eq!(got.health.reason(), reasons::PENDING);
        assert!(!got.owned);
        assert_eq!(got.requeue, Some(t.max_poll));
        // Untagged (ElastiCache lists without tags) counts the same.
        old.tags = None;
        let got = apply(
            &d,
            false,
            &Observation::Found(Box::new(old.clone())),
            None,
            &t,
        );
        assert_eq!(got.phase, Phase::Pending);
        // Once it is gone: created.
        let got = apply(&d, false, &Observation::Missing, None, &t);
        assert_eq!(got.step, Step::Create);
        // A foreign snapshot that is not being deleted is still NotOwned.
        let mut foreign = snap("available");
        foreign.tags = Some([(OWNER_UID_TAG.to_string(), "the-old-object".to_string())].into());
        let got = apply(&d, false, &Observation::Found(Box::new(foreign)), None, &t);
        assert_eq!(got.health.reason(), reasons::NOT_OWNED);
        // This object's own snapshot being deleted out of band is NotFound, as before.
        let got = apply(
            &d,
            true,
            &Observation::Found(Box::new(snap("deleting"))),
            None,
            &t,
        );
        assert_eq!(got.health.reason(), reasons::NOT_FOUND);
    }

    #[test]
    fn cleanup_table() {
        let t = timing();
        let d = desired();
        let mut retain = desired();
        retain.deletion_policy = DeletionPolicy::Retain;
        let mut cancel = desired();
        cancel.cancel_while_creating = true;
        let mut foreign = snap("available");
        foreign.tags = Some(Tags::new());
        let mut unshared = snap("available");
        unshared.shared_with = Some(vec![]);
        let mut failed = snap("failed");
        failed.shared_with = Some(vec![]);
        use Observation::*;
        let cases: Vec<(&str, &Desired, Observation, Step, bool)> = vec![
            (
                "retain",
                &retain,
                Found(Box::new(snap("available"))),
                Step::Nothing,
                true,
            ),
            ("missing", &d, Missing, Step::Nothing, true),
            ("foreign", &d, Found(Box::new(foreign)), Step::Nothing, true),
            (
                "creating",
                &d,
                Found(Box::new(snap("creating"))),
                Step::Nothing,
                false,
            ),
            (
                "copying, cancel",
                &cancel,
                Found(Box::new(snap("copying"))),
                Step::Delete,
                true,
            ),
            (
                "deleting",
                &d,
                Found(Box::new(snap("deleting"))),
                Step::Nothing,
                true,
            ),
            (
                "shared",
                &d,
                Found(Box::new(snap("available"))),
                Step::Share {
                    add: vec![],
                    remove: vec!["111111111111".into()],
                },
                false,
            ),
            (
                "unshared",
                &d,
                Found(Box::new(unshared)),
                Step::Delete,
                true,
            ),
            ("failed", &d, Found(Box::new(failed)), Step::Delete, true),
            // Statuses that never end by waiting: the cleanup goes on to the delete.
            (
                "Redshift cancelled",
                &d,
                Found(Box::new(snap("cancelled"))),
                Step::Share {
                    add: vec![],
                    remove: vec!["111111111111".into()],
                },
                false,
            ),
            (
                "Redshift cancelled, unshared",
                &d,
                Found(Box::new(unshared_as("cancelled"))),
                Step::Delete,
                true,
            ),
            (
                "Redshift final snapshot, unshared",
                &d,
                Found(Box::new(unshared_as("final snapshot"))),
                Step::Delete,
                true,
            ),
            (
                "unknown status, unshared",
                &d,
                Found(Box::new(unshared_as("paused"))),
                Step::Delete,
                true,
            ),
        ];
        for (name, d, obs, step, finished) in cases {
            let got = cleanup(d, &obs, None, &t);
            assert_eq!(got.step, step, "{name}");
            assert_eq!(got.finished, finished, "{name}");
            assert_eq!(got.phase, Phase::Deleting, "{name}");
        }
    }

    #[test]
    fn cleanup_trusts_the_recorded_snapshot_only_when_arn_and_creation_time_match() {
        let t = timing();
        let mut listed = snap("available");
        listed.tags = None;
        listed.shared_with = Some(vec![]);
        listed.created = Some("2026-11-22T03:00:00Z".into());
        let mut d = desired();
        // Tags unknown and nothing recorded: not known to be ours, left alone.
        let got = cleanup(&d, &Observation::Found(Box::new(listed.clone())), None, &t);
        assert_eq!((got.step, got.finished), (Step::Nothing, true));
        d.recorded = Some(Recorded {
            arn: "arn:snap".into(),
            created: "2026-11-22T03:00:00Z".into(),
        });
        let got = cleanup(&d, &Observation::Found(Box::new(listed.clone())), None, &t);
        assert_eq!(got.step, Step::Delete);
        // Same name, but a different snapshot (made again at another time): left alone.
        let mut again = listed.clone();
        again.created = Some("2026-11-22T04:00:00Z".into());
        let got = cleanup(&d, &Observation::Found(Box::new(again)), None, &t);
        assert_eq!(got.step, Step::Nothing);
        // Tags, when known, decide: a foreign owner tag beats the record.
        let mut foreign = listed;
        foreign.tags = Some([(OWNER_UID_TAG.to_string(), "other".to_string())].into());
        let got = cleanup(&d, &Observation::Found(Box::new(foreign)), None, &t);
        assert_eq!(got.step, Step::Nothing);
        let status = SnapshotStatus {
            arn: Some("arn:snap".into()),
            creation_time: Some("2026-11-22T03:00:00Z".into()),
            ..SnapshotStatus::default()
        };
        assert_eq!(Recorded::from_status(&status), d.recorded);
        assert_eq!(Recorded::from_status(&SnapshotStatus::default()), None);
    }

    #[test]
    fn untagged_snapshots_are_adopted_only_where_the_object_may_adopt_them() {
        let t = timing();
        let mut untagged = snap("available");
        untagged.tags = Some(Tags::new());
        untagged.shared_with = Some(vec![]);
        let found = |s: &Snapshot| Observation::Found(Box::new(s.clone()));
        let mut d = desired();
        // By default an untagged snapshot is somebody else's: Stalled, never deleted.
        let got = apply(&d, false, &found(&untagged), None, &t);
        assert_eq!(got.health.reason(), reasons::NOT_OWNED);
        assert!(matches!(got.health, Health::Stalled { .. }));
        assert!(!got.owned);
        let got = cleanup(&d, &found(&untagged), None, &t);
        assert_eq!((got.step, got.finished), (Step::Nothing, true));
        // A Redshift copy whose copy call the status records: tagged, then deletable.
        d.adopt_untagged = true;
        let got = apply(&d, false, &found(&untagged), None, &t);
        assert!(got.owned);
        assert!(
            matches!(&got.step, Step::Tag { set, .. } if set.get(OWNER_UID_TAG).map(String::as_str) == Some(UID)),
            "{:?}",
            got.step
        );
        let got = cleanup(&d, &found(&untagged), None, &t);
        assert_eq!(got.step, Step::Delete);
        // Any tag at all (someone else's snapshot under that name) and it is not adopted.
        let mut tagged = untagged.clone();
        tagged.tags = Some([("team".to_string(), "data".to_string())].into());
        let got = apply(&d, false, &found(&tagged), None, &t);
        assert_eq!(got.health.reason(), reasons::NOT_OWNED);
        let got = cleanup(&d, &found(&tagged), None, &t);
        assert_eq!(got.step, Step::Nothing);
    }

    #[test]
    fn an_untagged_copy_is_adopted_only_where_the_status_records_its_copy_call() {
        let t = timing();
        let mut untagged = snap("available");
        untagged.tags = Some(Tags::new());
        untagged.shared_with = Some(vec![]);
        let found = Observation::Found(Box::new(untagged.clone()));
        let default = "data-dr-0a1b2c3d";
        let status = |id: &str, requested: Option<bool>| SnapshotStatus {
            snapshot_identifier: Some(id.into()),
            copy_requested: requested,
            ..SnapshotStatus::default()
        };
        let cases = [
            ("named, call sent", status("dr", Some(true)), true),
            ("named, no call sent", status("dr", Some(false)), false),
            ("default, no call sent", status(default, Some(false)), false),
            ("default, call sent", status(default, Some(true)), true),
            // Written by an older version, which recorded no call.
            ("older status, default name", status(default, None), true),
            ("older status, named", status("dr", None), false),
            ("nothing recorded", SnapshotStatus::default(), false),
        ];
        for (name, st, adopted) in cases {
            let mut d = desired();
            d.adopt_untagged = Desired::untagged_copy_is_ours(&st, default);
            let got = apply(&d, false, &found, None, &t);
            assert_eq!(got.owned, adopted, "{name}");
            let cleaned = cleanup(&d, &found, None, &t);
            if adopted {
                assert!(
                    matches!(got.step, Step::Tag { .. }),
                    "{name}: {:?}",
                    got.step
                );
                assert_eq!(cleaned.step, Step::Delete, "{name}");
            } else {
                assert_eq!(got.health.reason(), reasons::NOT_OWNED, "{name}");
                assert_eq!(
                    (cleaned.step, cleaned.finished),
                    (Step::Nothing, true),
                    "{name}"
                );
            }
            // Any tag that is not ours, or another owner's: never adopted.
            for tags in [
                [("team".to_string(), "data".to_string())].into(),
                [(OWNER_UID_TAG.to_string(), "other".to_string())].into(),
            ] {
                let mut tagged = untagged.clone();
                tagged.tags = Some(tags);
                let tagged = Observation::Found(Box::new(tagged));
                assert_eq!(
                    apply(&d, false, &tagged, None, &t).health.reason(),
                    reasons::NOT_OWNED,
                    "{name}"
                );
                assert_eq!(cleanup(&d, &tagged, None, &t).step, Step::Nothing, "{name}");
            }
        }
    }

    #[test]
    fn batch_polls_follow_the_soonest_estimate_and_siblings() {
        let t = timing();
        let s = Duration::from_secs;
        let m = |estimate: Option<u64>, elapsed: Option<u64>| Member {
            estimate: estimate.map(s),
            elapsed: elapsed.map(s),
        };
        let cases: Vec<(&str, Vec<Member>, Duration)> = vec![
            ("nothing watched", vec![], t.max_poll),
            ("far off", vec![m(Some(250), Some(50))], t.max_poll),
            ("soon", vec![m(Some(30), Some(270))], s(30)),
            ("overdue", vec![m(Some(1), Some(299))], t.batch_floor),
            (
                "soonest wins",
                vec![m(Some(50), Some(250)), m(Some(20), Some(280))],
                s(20),
            ),
            (
                "a new sibling is expected to take as long as the others",
                vec![m(Some(40), Some(260)), m(None, Some(0))],
                s(40),
            ),
            (
                "a sibling started long ago without estimate is due by the others' total",
                vec![m(Some(200), Some(100)), m(None, Some(255))],
                s(45),
            ),
            (
                "no estimates at all",
                vec![m(None, Some(100)), m(None, None)],
                t.no_estimate_poll,
            ),
        ];
        for (name, members, want) in cases {
            assert_eq!(batch_next_poll(&members, &t), want, "{name}");
        }
    }

    #[test]
    fn aws_estimates() {
        let mut s = snap("creating");
        assert_eq!(aws_estimate(&s, Some(Duration::from_secs(10))), None);
        s.progress.percent = Some(0);
        assert_eq!(aws_estimate(&s, Some(Duration::from_secs(10))), None);
        s.progress.percent = Some(20);
        assert_eq!(
            aws_estimate(&s, Some(Duration::from_secs(10))),
            Some(Duration::from_secs(40))
        );
        assert_eq!(aws_estimate(&s, None), None);
        s.progress.estimated_seconds_to_completion = Some(7);
        assert_eq!(aws_estimate(&s, None), Some(Duration::from_secs(7)));
    }

    #[test]
    fn polls_follow_aws_estimates_within_bounds() {
        let t = timing();
        let mut s = snap("creating");
        s.progress = Progress {
            estimated_seconds_to_completion: Some(25),
            ..Progress::default()
        };
        assert_eq!(next_poll(&s, None, &t), Duration::from_secs(25));
        s.progress.estimated_seconds_to_completion = Some(3600);
        assert_eq!(next_poll(&s, None, &t), t.max_poll);
        s.progress.estimated_seconds_to_completion = Some(0);
        s.progress.percent = Some(25);
        assert_eq!(
            next_poll(&s, Some(Duration::from_secs(10)), &t),
            Duration::from_secs(30)
        );
        s.progress.percent = None;
        assert_eq!(
            next_poll(&s, Some(Duration::from_secs(40)), &t),
            Duration::from_secs(10)
        );
        assert_eq!(next_poll(&s, Some(Duration::ZERO), &t), t.min_poll);
        assert_eq!(next_poll(&s, None, &t), Duration::from_secs(10));
    }

    #[test]
    fn progress_messages() {
        let mut s = snap("creating");
        s.progress = Progress {
            percent: Some(42),
            backup_progress_mb: Some(1024.0),
            total_backup_size_mb: Some(2400.0),
            estimated_seconds_to_completion: Some(25),
            ..Progress::default()
        };
        assert_eq!(progress_message(&s), "backup 42% (1024/2400 MB), ~25s left");
        s.progress = Progress {
            percent: Some(7),
            ..Progress::default()
        };
        s.aws_status = "copying".into();
        assert_eq!(progress_message(&s), "copy 7%");
        s.progress = Progress::default();
        assert_eq!(progress_message(&s), "AWS status: copying");
    }

    #[test]
    fn an_untagged_snapshot_made_again_under_the_name_is_never_adopted() {
        let t = timing();
        let mut d = desired();
        d.adopt_untagged = true;
        d.recorded = Some(Recorded {
            arn: "arn:snap".into(),
            created: "2026-11-22T03:00:00.000Z".into(),
        });
        let mut untagged = snap("available");
        untagged.tags = Some(Tags::new());
        untagged.shared_with = Some(vec![]);
        untagged.created = Some("2026-11-22T03:00:00.000Z".into());
        // The copy recorded, untagged still (its tagging failed): adopted.
        let got = apply(
            &d,
            true,
            &Observation::Found(Box::new(untagged.clone())),
            None,
            &t,
        );
        assert!(got.owned);
        // Deleted and made again under the name, untagged: someone else's.
        let mut again = untagged;
        again.created = Some("2026-11-23T03:00:00.000Z".into());
        let got = apply(
            &d,
            true,
            &Observation::Found(Box::new(again.clone())),
            None,
            &t,
        );
        assert_eq!(got.health.reason(), reasons::NOT_OWNED);
        assert!(!got.owned);
        let got = cleanup(&d, &Observation::Found(Box::new(again)), None, &t);
        assert_eq!((got.step, got.finished), (Step::Nothing, true));
    }

    #[test]
    fn a_look_without_tags_stands_for_the_recorded_snapshot_only_when_it_matches() {
        let status = SnapshotStatus {
            arn: Some("arn:snap".into()),
            creation_time: Some("2026-11-22T03:00:00.000Z".into()),
            ..SnapshotStatus::default()
        };
        let mut listed = snap("available");
        listed.tags = None;
        listed.created = status.creation_time.clone();
        assert!(!needs_tags_to_prove(&status, &listed));
        // Made again under the same name: same ARN, another creation time.
        let mut again = listed.clone();
        again.created = Some("2026-11-22T04:00:00.000Z".into());
        assert!(needs_tags_to_prove(&status, &again));
        let mut other_arn = listed.clone();
        other_arn.arn = Some("arn:other".into());
        assert!(needs_tags_to_prove(&status, &other_arn));
        // The record has no creation time (ElastiCache while creating): one appears.
        let no_time = SnapshotStatus {
            creation_time: None,
            ..status.clone()
        };
        assert!(needs_tags_to_prove(&no_time, &listed));
        // Tags in the look decide by themselves; nothing recorded, nothing to compare.
        let mut tagged = again.clone();
        tagged.tags = Some(Tags::new());
        assert!(!needs_tags_to_prove(&status, &tagged));
        assert!(!needs_tags_to_prove(&SnapshotStatus::default(), &again));

        // The core decides nothing about an unproven snapshot and mirrors nothing.
        let mut d = desired();
        d.recorded = Recorded::from_status(&status);
        let t = timing();
        let got = apply(&d, true, &Observation::Found(Box::new(again)), None, &t);
        assert_eq!(got.step, Step::Nothing);
        assert!(!got.owned);
        assert_eq!(got.requeue, Some(AFTER_MUTATION));
        let got = apply(&d, true, &Observation::Found(Box::new(listed)), None, &t);
        assert!(got.owned);
        assert_eq!(got.phase, Phase::Available);
    }

    #[test]
    fn mirror_keeps_the_record_unless_tags_prove_ownership() {
        let mut st = SnapshotStatus {
            arn: Some("arn:snap".into()),
            creation_time: Some("2026-11-22T03:00:00.000Z".into()),
            ..SnapshotStatus::default()
        };
        let mut s = snap("available");
        s.tags = None;
        s.arn = Some("arn:other".into());
        s.created = Some("2026-11-22T04:00:00.000Z".into());
        mirror(&mut st, &s);
        assert_eq!(st.arn.as_deref(), Some("arn:snap"));
        assert_eq!(
            st.creation_time.as_deref(),
            Some("2026-11-22T03:00:00.000Z")
        );
        // Nothing recorded yet: the first look records.
        let mut fresh = SnapshotStatus::default();
        mirror(&mut fresh, &s);
        assert_eq!(fresh.arn.as_deref(), Some("arn:other"));
        // Tags proved it ours: the record follows AWS.
        s.tags = Some(desired().tags);
        mirror(&mut st, &s);
        assert_eq!(st.arn.as_deref(), Some("arn:other"));
        assert_eq!(
            st.creation_time.as_deref(),
            Some("2026-11-22T04:00:00.000Z")
        );
    }

    #[test]
    fn mirror_copies_what_aws_reports() {
        let mut st = SnapshotStatus::default();
        let mut s = snap("available");
        s.created = Some("2026-11-22T03:00:00Z".into());
        s.total_size_mb = Some(10.0);
        s.remaining_days = Some(6);
        mirror(&mut st, &s);
        assert_eq!(st.arn.as_deref(), Some("arn:snap"));
        assert_eq!(st.aws_status.as_deref(), Some("available"));
        assert_eq!(st.ready_to_use, Some(true));
        assert_eq!(st.shared_with, Some(vec!["111111111111".to_string()]));
        assert_eq!(st.remaining_days, Some(6));
        assert_eq!(st.progress, None);
        // Detail not fetched: the last observed shares stay.
        s.shared_with = None;
        mirror(&mut st, &s);
        assert_eq!(st.shared_with, Some(vec!["111111111111".to_string()]));
    }
}

/// When to look again at a snapshot AWS is still working on, for an object that waits
/// on it alone (a copy's source still being created, an S3 export running): AWS's own
/// estimate where it gives one, else `no_estimate_poll` (ElastiCache reports no
/// progress), bounded by `min_poll` and `max_poll`.
pub fn watch_poll(s: &Snapshot, elapsed: Option<Duration>, timing: &Timing) -> Duration {
    aws_estimate(s, elapsed)
        .unwrap_or(timing.no_estimate_poll)
        .clamp(timing.min_poll, timing.max_poll.max(timing.min_poll))
}

/// What an S3 export's status records, once its CopySnapshot call may have been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportRecord {
    /// AWS is known to have taken the export: its answer to the call was seen, or the
    /// source snapshot was seen `exporting` since (`exportLocation` is set then).
    pub accepted: bool,
    /// The export was already reported ended (phase Available): the source is no
    /// longer looked at (the S3 object does not depend on it).
    pub finished: bool,
}

impl ExportRecord {
    pub fn from_status(status: &SnapshotStatus) -> Self {
        let accepted = status.export_location.is_some();
        Self {
            accepted,
            finished: accepted && status.phase == Some(Phase::Available),
        }
    }
}

/// What to report of an S3 export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportDecision {
    pub phase: Phase,
    pub health: Health,
    pub requeue: Option<Duration>,
    /// Whether AWS is now known to have taken the export (to record).
    pub accepted: bool,
    /// Whether to send the export call again: it was requested but its answer was not
    /// seen and the source shows no export. Safe, as ElastiCache refuses a second
    /// export to a key already in the bucket ([`export_key_taken`]).
    pub request_again: bool,
}

/// An ElastiCache export to S3 after its CopySnapshot call may have been sent, from the
/// record in status and what AWS says now of the source snapshot (`None`: it does not
/// exist). ElastiCache shows a running export only as the source's status `exporting`
/// and has no field for its result (a failed export is an ElastiCache event, and the
/// snapshot is `available` again), so the most the operator can report is that an
/// export it saw accepted has ended; it never reports Ready for an export it did not
/// see accepted, nor for one whose source went away before it was seen to end. Pure.
pub fn export(
    record: ExportRecord,
    source: Option<&Snapshot>,
    elapsed: Option<Duration>,
    location: &str,
    timing: &Timing,
) -> ExportDecision {
    let decide = |phase, health, requeue, accepted| ExportDecision {
        phase,
        health,
        requeue,
        accepted,
        request_again: false,
    };
    let unknown = "ElastiCache's API does not report an export's result (a failure shows \
                   only as an ElastiCache event): check the bucket";
    let ended = |location: &str| {
        format!(
            "the export to {location} has ended: ElastiCache accepted it and the source \
             snapshot was available again. {unknown} for the object"
        )
    };
    if record.finished {
        return decide(Phase::Available, Health::ready(ended(location)), None, true);
    }
    let Some(s) = source else {
        return decide(
            Phase::Failed,
            Health::stalled(
                reasons::NOT_FOUND,
                format!(
                    "the source snapshot no longer exists on AWS, and the export to {location} \
                     was not seen to end ({}); whether the object was written is not known: \
                     check the bucket, and recreate this object to export again",
                    if record.accepted {
                        "ElastiCache had accepted it"
                    } else {
                        "nor to start"
                    }
                ),
            ),
            Some(timing.resync),
            record.accepted,
        );
    };
    let running = || {
        decide(
            Phase::Creating,
            Health::progressing(reasons::COPYING, format!("exporting to {location}")),
            Some(watch_poll(s, elapsed, timing)),
            true,
        )
    };
    let waiting = || {
        decide(
            Phase::Creating,
            Health::progressing(
                reasons::COPYING,
                format!(
                    "export to {location} requested; the source snapshot is {}, waiting for \
                     ElastiCache to show the export",
                    s.aws_status
                ),
            ),
            Some(watch_poll(s, elapsed, timing)),
            record.accepted,
        )
    };
    match s.aws_status.to_ascii_lowercase().as_str() {
        "exporting" => running(),
        "available" | "restoring" if record.accepted => {
            decide(Phase::Available, Health::ready(ended(location)), None, true)
        }
        // Whether ElastiCache ran it is not known: it is asked again. ElastiCache refuses
        // an export to a key already in the bucket, so a second request cannot write a
        // second object: it is either the one export (the first never ran, or failed
        // and wrote nothing) or refused because this object's export wrote the key.
        "available" | "restoring" => ExportDecision {
            request_again: true,
            ..decide(
                Phase::Creating,
                Health::progressing(
                    reasons::COPYING,
                    format!(
                        "the export to {location} was requested, but ElastiCache's answer was \
                         not seen (a restart came between) and the source snapshot has not \
                         been seen exporting: requesting it again (ElastiCache refuses a \
                         second object at the same key)"
                    ),
                ),
                Some(timing.min_poll),
                false,
            )
        },
        "failed" => decide(
            Phase::Failed,
            Health::stalled(
                reasons::FAILED,
                format!(
                    "AWS reports the source snapshot as {}: the export to {location} did not \
                     complete",
                    s.aws_status
                ),
            ),
            Some(timing.resync),
            record.accepted,
        ),
        "deleting" | "deleted" => decide(
            Phase::Failed,
            Health::stalled(
                reasons::NOT_FOUND,
                format!(
                    "the source snapshot is being deleted, and the export to {location} was \
                     not seen to end; whether the object was written is not known: check the \
                     bucket, and recreate this object to export again"
                ),
            ),
            Some(timing.resync),
            record.accepted,
        ),
        // "creating", "copying" (another operation on the snapshot) and anything not
        // documented: not decided yet.
        _ => waiting(),
    }
}

/// Whether AWS refused an export (ElastiCache CopySnapshot with TargetBucket) because
/// the bucket already holds an object at the export's key: CopySnapshot's documented
/// "The S3 bucket %s already contains an object with key %s" (code
/// InvalidParameterValue), for `bucket` and a key made from the export's name
/// `identifier` (ElastiCache names the objects after TargetSnapshotName). Pure.
pub fn export_key_taken(code: Option<&str>, message: &str, bucket: &str, identifier: &str) -> bool {
    const TAKEN: &str = "already contains an object with key ";
    let Some((head, key)) = message.split_once(TAKEN) else {
        return false;
    };
    code == Some("InvalidParameterValue")
        && head.contains(&format!("bucket {bucket} "))
        && key
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .starts_with(&identifier.to_ascii_lowercase())
}

/// An export whose call was sent again after a lost answer ([`ExportDecision::
/// request_again`]) and refused because the key is taken. With the default target name
/// (unique to this object: it carries part of its uid) only this object's first request
/// can have written the object, so its export has ended; with a name the spec chose,
/// an earlier export (an object deleted and made again under that name) may have
/// written it, and it is not taken for this one's. Pure.
pub fn export_found_written(
    location: &str,
    name_is_ours_alone: bool,
    timing: &Timing,
) -> ExportDecision {
    if !name_is_ours_alone {
        return ExportDecision {
            phase: Phase::Failed,
            health: Health::stalled(
                reasons::FAILED,
                format!(
                    "whether the export to {location} ran is not known: its answer was not \
                     seen (a restart came between), and ElastiCache, asked again, reports the \
                     bucket already holds an object at that key. It is this export's if the \
                     first request ran, or an earlier export's under the same \
                     spec.targetSnapshotIdentifier: compare the object's time with \
                     status.conditions, or recreate this object with a new \
                     spec.targetSnapshotIdentifier"
                ),
            ),
            requeue: Some(timing.resync),
            accepted: false,
            request_again: false,
        };
    }
    ExportDecision {
        phase: Phase::Available,
        health: Health::ready(format!(
            "the export to {location} has ended: its answer was not seen (a restart came \
             between), and ElastiCache, asked again, reports the bucket already holds the \
             object this export wrote. ElastiCache's API does not report an export's result \
             (a failure shows only as an ElastiCache event): check the bucket for the object"
        )),
        requeue: None,
        accepted: true,
        request_again: false,
    }
}

/// A first export refused because the bucket already holds an object at its key (not
/// one this object wrote): the fix is another name or bucket. Pure.
pub fn export_key_in_use(location: &str, error: &str, timing: &Timing) -> ExportDecision {
    ExportDecision {
        phase: Phase::Failed,
        health: Health::stalled(
            reasons::AWS_ERROR,
            format!(
                "{error}. The bucket already holds an object at the key of the export to \
                 {location}, and ElastiCache does not overwrite it: set \
                 spec.targetSnapshotIdentifier to a new name, or spec.targetBucket to another \
                 bucket"
            ),
        ),
        requeue: Some(timing.resync),
        accepted: false,
        request_again: false,
    }
}

/// A copy made with `copyTags`: the source's tags (never its `dbsnapshot.io/` ones, nor
/// keys the object sets itself) that the copy does not carry yet. AWS may apply the
/// source's tags only when the copy request carries none, or merge both; the result is
/// the same either way once these are set. Pure.
pub fn missing_source_tags(source: &Tags, target: &Tags, desired: &Tags) -> Tags {
    source
        .iter()
        .filter(|(k, v)| {
            !k.starts_with("dbsnapshot.io/")
                && !desired.contains_key(*k)
                && target.get(*k) != Some(*v)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod export_tests {
    use super::*;

    fn timing() -> Timing {
        Timing::default()
    }

    fn source(status: &str) -> Snapshot {
        Snapshot {
            identifier: "sessions-src".into(),
            aws_status: status.into(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn exports_map_every_aws_state() {
        let t = timing();
        let loc = "s3://b/x";
        let accepted = ExportRecord {
            accepted: true,
            finished: false,
        };
        let unconfirmed = ExportRecord {
            accepted: false,
            finished: false,
        };
        let finished = ExportRecord {
            accepted: true,
            finished: true,
        };
        let poll = Some(t.no_estimate_poll);
        let (resync, gone) = (Some(t.resync), None);
        // (name, record, the source's AWS status (None: missing); expected phase, Ready,
        // reason, requeue, accepted)
        type Case<'a> = (
            &'a str,
            ExportRecord,
            Option<&'a str>,
            Phase,
            bool,
            &'a str,
            Option<Duration>,
            bool,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("accepted, running", accepted, Some("exporting"),
             Phase::Creating, false, reasons::COPYING, poll, true),
            ("seen exporting after a lost answer", unconfirmed, Some("exporting"),
             Phase::Creating, false, reasons::COPYING, poll, true),
            ("accepted, available again: ended", accepted, Some("available"),
             Phase::Available, true, reasons::AVAILABLE, None, true),
            ("accepted, a restore running from it: ended", accepted, Some("restoring"),
             Phase::Available, true, reasons::AVAILABLE, None, true),
            ("never seen accepted nor exporting: asked again", unconfirmed, Some("available"),
             Phase::Creating, false, reasons::COPYING, Some(t.min_poll), false),
            ("never seen accepted, a restore running: asked again", unconfirmed,
             Some("restoring"), Phase::Creating, false, reasons::COPYING, Some(t.min_poll),
             false),
            ("accepted, source gone", accepted, gone,
             Phase::Failed, false, reasons::NOT_FOUND, resync, true),
            ("unconfirmed, source gone", unconfirmed, gone,
             Phase::Failed, false, reasons::NOT_FOUND, resync, false),
            ("accepted, source being deleted", accepted, Some("deleting"),
             Phase::Failed, false, reasons::NOT_FOUND, resync, true),
            ("accepted, source failed", accepted, Some("failed"),
             Phase::Failed, false, reasons::FAILED, resync, true),
            ("unconfirmed, source failed", unconfirmed, Some("failed"),
             Phase::Failed, false, reasons::FAILED, resync, false),
            ("accepted, another copy of the source running", accepted, Some("copying"),
             Phase::Creating, false, reasons::COPYING, poll, true),
            ("unconfirmed, source creating", unconfirmed, Some("creating"),
             Phase::Creating, false, reasons::COPYING, poll, false),
            ("undocumented status: waited on", accepted, Some("modifying"),
             Phase::Creating, false, reasons::COPYING, poll, true),
            ("ended before: not looked at", finished, gone,
             Phase::Available, true, reasons::AVAILABLE, None, true),
        ];
        for (name, record, status, phase, ready, reason, requeue, now_accepted) in cases {
            let s = status.map(source);
            let d = export(record, s.as_ref(), None, loc, &t);
            assert_eq!(d.phase, phase, "{name}");
            assert_eq!(matches!(d.health, Health::Ready { .. }), ready, "{name}");
            assert_eq!(d.health.reason(), reason, "{name}");
            assert_eq!(d.requeue, requeue, "{name}");
            assert_eq!(d.accepted, now_accepted, "{name}");
            assert_eq!(d.request_again, name.ends_with("asked again"), "{name}");
            assert!(d.health.message().contains(loc), "{name}");
        }
        // The Ready message says what is and is not known.
        let d = export(accepted, Some(&source("available")), None, loc, &t);
        assert!(d.health.message().contains("does not report"), "{d:?}");
    }

    #[test]
    fn an_export_key_taken_is_recognised_from_aws_answer() {
        let msg =
            "The S3 bucket my-exports already contains an object with key sessions-dr-0001.rdb.";
        let code = Some("InvalidParameterValue");
        assert!(export_key_taken(code, msg, "my-exports", "sessions-dr"));
        assert!(export_key_taken(code, msg, "my-exports", "Sessions-DR"));
        assert!(!export_key_taken(code, msg, "other-bucket", "sessions-dr"));
        assert!(!export_key_taken(code, msg, "my-exports", "nightly"));
        assert!(!export_key_taken(
            Some("AccessDenied"),
            msg,
            "my-exports",
            "sessions-dr"
        ));
        assert!(!export_key_taken(
            code,
            "The S3 bucket my-exports does not exist.",
            "my-exports",
            "sessions-dr"
        ));
        let t = timing();
        let d = export_found_written("s3://b/x", true, &t);
        assert_eq!((d.phase, d.accepted), (Phase::Available, true));
        assert!(matches!(d.health, Health::Ready { .. }));
        // A name the spec chose may have been written by an earlier export.
        let d = export_found_written("s3://b/x", false, &t);
        assert_eq!((d.phase, d.accepted), (Phase::Failed, false));
        assert!(d.health.message().contains("spec.targetSnapshotIdentifier"));
        let d = export_key_in_use("s3://b/x", "CopySnapshot failed", &t);
        assert_eq!(d.phase, Phase::Failed);
        assert!(d.health.message().contains("spec.targetSnapshotIdentifier"));
    }

    #[test]
    fn export_records_come_from_status() {
        let mut st = SnapshotStatus {
            copy_requested: Some(true),
            ..SnapshotStatus::default()
        };
        assert_eq!(
            ExportRecord::from_status(&st),
            ExportRecord {
                accepted: false,
                finished: false
            }
        );
        st.export_location = Some("s3://b/x".into());
        st.phase = Some(Phase::Creating);
        assert!(!ExportRecord::from_status(&st).finished);
        st.phase = Some(Phase::Available);
        assert!(ExportRecord::from_status(&st).finished);
    }

    #[test]
    fn watched_snapshots_poll_on_aws_estimates_or_the_no_estimate_pace() {
        let t = timing();
        let s = |secs: Option<i64>, pct: Option<i64>| Snapshot {
            aws_status: "creating".into(),
            progress: crate::api::Progress {
                estimated_seconds_to_completion: secs,
                percent: pct,
                ..Default::default()
            },
            ..Snapshot::default()
        };
        let e = Some(Duration::from_secs(30));
        // ElastiCache: no figures at all.
        assert_eq!(watch_poll(&s(None, None), e, &t), t.no_estimate_poll);
        assert_eq!(watch_poll(&s(None, None), None, &t), t.no_estimate_poll);
        // Redshift's estimate, bounded.
        assert_eq!(
            watch_poll(&s(Some(25), None), e, &t),
            Duration::from_secs(25)
        );
        assert_eq!(watch_poll(&s(Some(1), None), e, &t), t.min_poll);
        assert_eq!(watch_poll(&s(Some(900), None), e, &t), t.max_poll);
        // DocumentDB: 50% in 30 s leaves 30 s.
        assert_eq!(
            watch_poll(&s(None, Some(50)), e, &t),
            Duration::from_secs(30)
        );
        // The no-estimate pace is bounded too.
        let slow = Timing {
            no_estimate_poll: Duration::from_secs(500),
            ..t
        };
        assert_eq!(watch_poll(&s(None, None), e, &slow), slow.max_poll);
    }

    #[test]
    fn copied_tags_never_include_the_operators_or_the_objects_own() {
        let tags = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let source = tags(&[
            ("team", "orders"),
            ("cost", "1"),
            ("env", "prod"),
            ("dbsnapshot.io/owner-uid", "other"),
            ("dbsnapshot.io/resource", "x/ClusterSnapshot/y"),
        ]);
        let desired = tags(&[("env", "dr"), ("dbsnapshot.io/owner-uid", "me")]);
        // A copy that got only the request's tags (source tags dropped).
        let target = tags(&[("env", "dr"), ("dbsnapshot.io/owner-uid", "me")]);
        assert_eq!(
            missing_source_tags(&source, &target, &desired),
            tags(&[("team", "orders"), ("cost", "1")])
        );
        // A copy that got both (merged): nothing to add.
        let merged = tags(&[
            ("team", "orders"),
            ("cost", "1"),
            ("env", "dr"),
            ("dbsnapshot.io/owner-uid", "me"),
        ]);
        assert!(missing_source_tags(&source, &merged, &desired).is_empty());
        // A source tag with another value on the copy is set to the source's.
        let changed = tags(&[("team", "x"), ("cost", "1")]);
        assert_eq!(
            missing_source_tags(&source, &changed, &desired),
            tags(&[("team", "orders")])
        );
    }
}
