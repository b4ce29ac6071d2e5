//! The reconcile loop both kinds share: observe the snapshot, let the lifecycle core
//! decide, make at most one AWS mutation (the create or copy through a callback), and
//! build the status. Does IO (AWS, through an engine).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::Error;
// Kept in the poller (the lower layer, which must not depend on this module).
pub use super::poller::elapsed;
use super::poller::{GroupKey, Listed, Pollers, Wake};
use crate::api::conditions::{Health, reasons};
use crate::api::{Phase, SnapshotStatus};
use crate::engine::{EngineError, ErrorClass, Snapshot, SnapshotEngine, SnapshotState};
use crate::lifecycle::{self, Decision, Desired, Observation, Step, Timing};

/// What a create (or copy) callback did.
pub enum Creation {
    /// AWS accepted it; this is the new snapshot.
    Created(Box<Snapshot>),
    /// Nothing was called: the object must wait or cannot proceed.
    Blocked {
        phase: Phase,
        health: Health,
        requeue: Option<Duration>,
    },
}

fn since(observed: &Observation) -> Option<Duration> {
    match observed {
        Observation::Found(s) => elapsed(s),
        Observation::Missing => None,
    }
}

/// Batched polling for one object: where its snapshot is listed, how to wake it, and
/// what this process already knows of the snapshot.
pub struct Batch {
    pub pollers: Arc<Pollers>,
    pub key: GroupKey,
    pub wake: Wake,
    /// The snapshot's tags and shares were compared in full at this generation recently
    /// (or set by this process's create), so a listing without them will do.
    pub detail_known: bool,
    /// A mutation was made since the last full look: look directly, not at a listing
    /// that may predate it.
    pub dirty: bool,
    /// The identifier was recorded by this very pass, so no create can have been
    /// attempted yet: create without looking first (an existing one answers
    /// AlreadyExists and is then looked at).
    pub first_pass: bool,
}

/// Looks the snapshot up. While it is still being created (and known to be ours) the
/// cheap look suffices; an available one is compared in full (tags, shares). Batched,
/// the look is the source's shared listing, and a snapshot never seen is not looked
/// for at all: the create call finds out (AlreadyExists) if it is there.
pub async fn observe(
    engine: &Arc<dyn SnapshotEngine>,
    identifier: &str,
    current: &SnapshotStatus,
    batch: Option<&Batch>,
) -> Result<Observation, EngineError> {
    match batch {
        Some(b) => observe_batched(engine, identifier, current, b, b.pollers.max_age(), true).await,
        None => observe_direct(&**engine, identifier, current).await,
    }
}

async fn observe_batched(
    engine: &Arc<dyn SnapshotEngine>,
    identifier: &str,
    current: &SnapshotStatus,
    b: &Batch,
    max_age: Duration,
    need_tags: bool,
) -> Result<Observation, EngineError> {
    if current.arn.is_none() {
        if b.first_pass {
            return Ok(Observation::Missing);
        }
        // A create may have been made before a restart: look for it.
        return look_directly(engine, identifier, b).await;
    }
    if b.dirty {
        return look_directly(engine, identifier, b).await;
    }
    let mut s = match b.pollers.view(&b.key, engine, identifier, max_age).await? {
        Listed::Present(s) => s,
        // Not listed: made after the listing, or gone; ask about it alone.
        Listed::Absent => return look_directly(engine, identifier, b).await,
    };
    // Not the snapshot recorded (made again under the name, say): only its tags tell.
    if lifecycle::needs_tags_to_prove(current, &s) {
        return look_directly(engine, identifier, b).await;
    }
    if s.state() != SnapshotState::Creating
        && ((need_tags && s.tags.is_none()) || s.shared_with.is_none())
    {
        if !b.detail_known {
            return look_directly(engine, identifier, b).await;
        }
        if s.shared_with.is_none() {
            s.shared_with = Some(current.shared_with.clone().unwrap_or_default());
        }
    }
    Ok(Observation::Found(s))
}

/// A full look at one snapshot, kept in its source's listing too, so that a listing
/// taken before it (and before the mutations it shows) is not read afterwards.
async fn look_directly(
    engine: &Arc<dyn SnapshotEngine>,
    identifier: &str,
    b: &Batch,
) -> Result<Observation, EngineError> {
    let found = engine.describe(identifier, true).await?;
    if let Some(s) = &found {
        b.pollers.record(&b.key, s);
    }
    Ok(found.into())
}

async fn observe_direct(
    engine: &dyn SnapshotEngine,
    identifier: &str,
    current: &SnapshotStatus,
) -> Result<Observation, EngineError> {
    let known = current.arn.is_some();
    let detail = !(known && current.phase == Some(Phase::Creating));
    let mut found = engine.describe(identifier, detail).await?;
    if let Some(s) = &found
        && ((s.state() == SnapshotState::Available
            && (s.tags.is_none() || s.shared_with.is_none()))
            || lifecycle::needs_tags_to_prove(current, s))
    {
        found = engine.describe(identifier, true).await?;
    }
    Ok(found.into())
}

/// A status none of the services documents is worth a line in the log: AWS may have
/// added one this operator should learn.
fn warn_if_unknown(observed: &Observation) {
    if let Observation::Found(s) = observed
        && s.state() == SnapshotState::Unknown
    {
        tracing::warn!(snapshot = %s.identifier, aws_status = %s.aws_status, "AWS reports a snapshot status this operator does not know");
    }
}

/// Makes a decided mutation other than create.
pub async fn mutate(
    engine: &dyn SnapshotEngine,
    observed: &Observation,
    step: &Step,
) -> Result<(), EngineError> {
    let Observation::Found(s) = observed else {
        return Ok(());
    };
    match step {
        Step::Share { add, remove } => engine.share(s, add, remove).await,
        Step::Tag { set, remove } => engine.tag(s, set, remove).await,
        Step::SetRetention(days) => engine.set_retention(s, *days).await,
        Step::Delete => engine.delete(s).await,
        Step::Nothing | Step::Create => Ok(()),
    }
}

/// A call AWS refused for good: Stalled with AWS's words, looked at again slowly.
pub fn terminal(mut decision: Decision, e: &EngineError, timing: &Timing) -> Decision {
    decision.health = Health::stalled(reasons::AWS_ERROR, e.to_string());
    decision.requeue = Some(timing.resync);
    decision.step = Step::Nothing;
    if decision.phase == Phase::Creating {
        decision.phase = Phase::Failed;
    }
    decision
}

/// One pass towards `desired`: observe, decide, act.
pub async fn converge<F, Fut>(
    engine: &Arc<dyn SnapshotEngine>,
    desired: &Desired,
    current: &SnapshotStatus,
    timing: &Timing,
    batch: Option<&Batch>,
    create: F,
) -> Result<(Decision, Observation), Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Creation, EngineError>>,
{
    let known = current.arn.is_some();
    let mut observed = observe(engine, &desired.identifier, current, batch).await?;
    warn_if_unknown(&observed);
    let mut decision = lifecycle::apply(desired, known, &observed, since(&observed), timing);
    let acted = if decision.step == Step::Create {
        match create().await {
            Ok(Creation::Created(s)) => Ok(Some(*s)),
            Ok(Creation::Blocked {
                phase,
                health,
                requeue,
            }) => {
                decision.phase = phase;
                decision.health = health;
                decision.requeue = requeue;
                decision.step = Step::Nothing;
                decision.owned = false;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    } else {
        mutate(&**engine, &observed, &decision.step)
            .await
            .map(|()| None)
    };
    match acted {
        Ok(Some(created)) => {
            observed = Observation::Found(Box::new(created));
            decision = lifecycle::apply(desired, false, &observed, Some(Duration::ZERO), timing);
            // Whatever else is needed (shares, tags) happens on the next pass.
            decision.step = Step::Nothing;
            if decision.requeue.is_none_or(|r| r > timing.min_poll) && decision.owned {
                decision.requeue = Some(timing.min_poll);
            }
        }
        Ok(None) => {}
        Err(e) if e.class == ErrorClass::AlreadyExists => {
            // Someone (perhaps this object, before a restart) made it already: adopt it
            // if it is ours.
            observed = engine.describe(&desired.identifier, true).await?.into();
            decision = lifecycle::apply(desired, false, &observed, None, timing);
            if decision.step != Step::Nothing {
                decision.requeue = Some(Duration::from_secs(1));
                decision.step = Step::Nothing;
            }
        }
        Err(e) if e.class.is_retryable() || e.class == ErrorClass::NotFound => {
            return Err(e.into());
        }
        Err(e) => decision = terminal(decision, &e, timing),
    }
    Ok((decision, observed))
}

/// One pass towards deleting: observe (in full), decide, act. Batched, the source's
/// listing (at most `CLEANUP_MAX_AGE` old) stands in for the look where it shows
/// enough: ownership from the tags or the status's record, shares from the listing or,
/// when this process compared them recently, from the status.
pub async fn converge_cleanup(
    engine: &Arc<dyn SnapshotEngine>,
    desired: &Desired,
    current: &SnapshotStatus,
    timing: &Timing,
    batch: Option<&Batch>,
) -> Result<(Decision, Observation), EngineError> {
    let observed: Observation = if desired.deletion_policy == crate::api::DeletionPolicy::Retain {
        Observation::Missing
    } else if let Some(b) = batch
        && current.arn.is_some()
    {
        // Ownership comes from the tags where listed, else from the status's record;
        // when neither shows it, look in full.
        match observe_batched(
            engine,
            &desired.identifier,
            current,
            b,
            CLEANUP_MAX_AGE,
            false,
        )
        .await?
        {
            Observation::Found(s) if s.tags.is_none() && !desired.recorded_matches(&s) => {
                look_directly(engine, &desired.identifier, b).await?
            }
            other => other,
        }
    } else {
        engine.describe(&desired.identifier, true).await?.into()
    };
    warn_if_unknown(&observed);
    let decision = lifecycle::cleanup(desired, &observed, since(&observed), timing);
    mutate(&**engine, &observed, &decision.step).await?;
    if decision.step == Step::Delete
        && let (Some(b), Observation::Found(s)) = (batch, &observed)
    {
        let mut deleting = (**s).clone();
        deleting.aws_status = "deleting".to_string();
        b.pollers.record(&b.key, &deleting);
    }
    Ok((decision, observed))
}

/// How old a listing may be to decide a delete from (ownership also rests on the tags
/// or the recorded ARN and creation time, which a replaced snapshot would not match).
pub const CLEANUP_MAX_AGE: Duration = Duration::from_secs(60);

/// Shows in `status` what the operator applies: the deletion policy in force and the
/// tags it keeps on the snapshot (the spec's over its defaults; the ownership tags are
/// left out).
pub fn record_applied(status: &mut SnapshotStatus, desired: &Desired) {
    status.deletion_policy = Some(desired.deletion_policy);
    status.tags = desired
        .tags
        .iter()
        .filter(|(k, _)| {
            k.as_str() != crate::api::OWNER_UID_TAG && k.as_str() != crate::api::RESOURCE_TAG
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
}

/// The status after a pass: `base` (identity fields set by the caller), the phase and
/// what AWS reports of an owned snapshot.
pub fn status_after(
    mut status: SnapshotStatus,
    decision: &Decision,
    observed: &Observation,
) -> SnapshotStatus {
    status.phase = Some(decision.phase);
    if decision.owned
        && let Observation::Found(s) = observed
    {
        lifecycle::mirror(&mut status, s);
    }
    if !decision.owned
        && matches!(
            decision.health.reason(),
            reasons::NOT_FOUND | reasons::NOT_OWNED
        )
    {
        // What AWS last said of a snapshot that is gone, or not this object's, no
        // longer describes anything (the record of ARN and creation time stays).
        lifecycle::forget_observed(&mut status);
    }
    if (decision.phase != Phase::Available && decision.phase != Phase::Creating) || !decision.owned
    {
        status.ready_to_use = Some(false);
    }
    status
}

/// After a batched pass: a snapshot still being created is watched by its source's
/// poller (which wakes the object; the requeue is only a safety net), and what this
/// pass learned of the snapshot is remembered.
pub fn after_batched(
    ctx: &super::Context,
    b: &Batch,
    engine: &Arc<dyn SnapshotEngine>,
    obj: &impl kube::Resource,
    identifier: &str,
    decision: &mut Decision,
    observed: &Observation,
) {
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    if b.follow(engine, identifier, observed, decision.owned) {
        decision.requeue = Some(safety_net(&ctx.timing));
    }
    let look = match (&decision.step, observed) {
        (Step::Tag { .. } | Step::Share { .. } | Step::SetRetention(_), _) => {
            Some(super::Look::Dirty)
        }
        // Tags and shares seen in full (or set by the create just made) and in order.
        (Step::Nothing, Observation::Found(s))
            if decision.owned && s.tags.is_some() && s.shared_with.is_some() =>
        {
            Some(super::Look::Checked {
                generation,
                at: std::time::Instant::now(),
            })
        }
        _ => return,
    };
    ctx.set_look(&uid, look);
}

/// After a batched cleanup pass: the same watching while AWS still creates; the memory
/// of a snapshot that is gone is dropped.
pub fn after_batched_cleanup(
    ctx: &super::Context,
    b: &Batch,
    engine: &Arc<dyn SnapshotEngine>,
    obj: &impl kube::Resource,
    identifier: &str,
    decision: &Decision,
    observed: &Observation,
) {
    let uid = obj.meta().uid.clone().unwrap_or_default();
    b.follow(engine, identifier, observed, !decision.finished);
    if decision.finished {
        ctx.set_look(&uid, None);
    } else if decision.step != Step::Nothing {
        ctx.set_look(&uid, Some(super::Look::Dirty));
    }
}

impl Batch {
    /// Has the source's poller watch the snapshot while AWS creates it (and `wanted`),
    /// or stop watching it; true while watched.
    fn follow(
        &self,
        engine: &Arc<dyn SnapshotEngine>,
        identifier: &str,
        observed: &Observation,
        wanted: bool,
    ) -> bool {
        match observed {
            Observation::Found(s) if wanted && s.state() == SnapshotState::Creating => {
                self.pollers.watch(&self.key, engine, s, self.wake.clone());
                true
            }
            _ => {
                self.pollers.unwatch(&self.key, identifier);
                false
            }
        }
    }
}

/// Batched: how long an object waits for its poller's wake-up before looking itself.
pub fn safety_net(timing: &Timing) -> Duration {
    timing.max_poll * 3
}
