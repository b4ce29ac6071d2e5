//! The reconcile loop both kinds share: observe the snapshot, let the lifecycle core
//! decide, make at most one AWS mutation (the create or copy through a callback), and
//! build the status. Does IO (AWS, through an engine).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::Error;
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

/// How long ago AWS created the snapshot.
pub fn elapsed(s: &Snapshot) -> Option<Duration> {
    let created: Timestamp = s.created.as_deref()?.parse().ok()?;
    let secs = Timestamp::now().duration_since(created).as_secs_f64();
    Some(Duration::from_secs_f64(secs.max(0.0)))
}

fn since(observed: &Observation) -> Option<Duration> {
    match observed {
        Observation::Found(s) => elapsed(s),
        Observation::Missing => None,
    }
}

/// Looks the snapshot up. While it is still being created (and known to be ours) the
/// cheap look suffices; an available one is compared in full (tags, shares).
pub async fn observe(
    engine: &dyn SnapshotEngine,
    identifier: &str,
    current: &SnapshotStatus,
) -> Result<Observation, EngineError> {
    let known = current.arn.is_some();
    let detail = !(known && current.phase == Some(Phase::Creating));
    let mut found = engine.describe(identifier, detail).await?;
    if let Some(s) = &found
        && s.state() == SnapshotState::Available
        && (s.tags.is_none() || s.shared_with.is_none())
    {
        found = engine.describe(identifier, true).await?;
    }
    Ok(found.into())
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
    engine: &dyn SnapshotEngine,
    desired: &Desired,
    current: &SnapshotStatus,
    timing: &Timing,
    create: F,
) -> Result<(Decision, Observation), Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Creation, EngineError>>,
{
    let known = current.arn.is_some();
    let mut observed = observe(engine, &desired.identifier, current).await?;
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
        mutate(engine, &observed, &decision.step)
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

/// One pass towards deleting: observe (in full), decide, act.
pub async fn converge_cleanup(
    engine: &dyn SnapshotEngine,
    desired: &Desired,
    timing: &Timing,
) -> Result<(Decision, Observation), EngineError> {
    let observed: Observation = if desired.deletion_policy == crate::api::DeletionPolicy::Retain {
        Observation::Missing
    } else {
        engine.describe(&desired.identifier, true).await?.into()
    };
    let decision = lifecycle::cleanup(desired, &observed, since(&observed), timing);
    mutate(engine, &observed, &decision.step).await?;
    Ok((decision, observed))
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
    if decision.phase != Phase::Available && decision.phase != Phase::Creating {
        status.ready_to_use = Some(false);
    }
    status
}
