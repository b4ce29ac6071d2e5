//! The controllers' errors and retry policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use rand::Rng;

use super::Context;
use crate::engine::{EngineError, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub(super) fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

impl Error {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Engine(e) => e.class.label(),
        }
    }
}

/// Exponential backoff with jitter for the `attempt`-th failure in a row; throttling
/// backs off from a longer base.
pub fn backoff(attempt: u32, throttled: bool, jitter: f64) -> Duration {
    let base = if throttled { 2.0 } else { 1.0 };
    let secs = (base * 2f64.powi(attempt.saturating_sub(1).min(8) as i32)).min(300.0);
    Duration::from_secs_f64(secs * jitter.clamp(0.5, 1.5))
}

/// Retryable failures only reach here (terminal ones are written to status inside
/// reconcile): requeue with backoff and jitter.
pub fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = ObjectRef::from_obj(&*obj).to_string();
    let throttled = matches!(err, Error::Engine(e) if e.class == ErrorClass::Throttled);
    // A busy source cluster frees up when AWS is done with it (another snapshot, a
    // modification): looked at no less often than a snapshot being made.
    let source_busy = matches!(err, Error::Engine(e) if e.class == ErrorClass::SourceUnavailable);
    let jitter = rand::rng().random_range(0.5..1.5);
    let (attempt, wait) = ctx.failures.failed(&key, Instant::now(), |n| {
        let wait = backoff(n, throttled, jitter);
        if source_busy {
            wait.min(ctx.timing.max_poll)
        } else {
            wait
        }
    });
    ctx.metrics
        .reconcile_error(K::kind(&()).as_ref(), err.label());
    tracing::warn!(object = %key, attempt, error = %err, retry_in = ?wait, "reconcile failed; retrying");
    Action::requeue(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff(1, false, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, false, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(3, true, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(40, false, 1.0), Duration::from_secs(256));
        assert_eq!(backoff(40, true, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(2, false, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, false, 9.0), Duration::from_secs(3));
    }
}
