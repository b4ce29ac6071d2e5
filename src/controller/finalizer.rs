//! The finalizer: added before anything is made on AWS, removed when the cleanup is
//! done.

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Context, Error, action, with_health, write_status};
use crate::api::conditions::Health;
use crate::api::{FINALIZER, SnapshotStatus};
use crate::engine::{EngineError, ErrorClass};

/// Adds the finalizer if missing. Returns false when the object is going away.
pub async fn ensure_finalizer<K>(api: &Api<K>, obj: &K) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(false);
    }
    if obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(true);
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let patch = json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}

/// Removes the finalizer (the object then goes away).
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let finalizers: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ends a cleanup pass: retryable errors go back to the error policy, refusals are
/// shown as Stalled, a finished cleanup releases the object.
pub async fn finish_cleanup<K>(
    api: &Api<K>,
    ctx: &Context,
    obj: &K,
    old: &SnapshotStatus,
    result: Result<(crate::lifecycle::Decision, crate::lifecycle::Observation), EngineError>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    use crate::api::Phase;
    use crate::api::conditions::reasons;
    let generation = obj.meta().generation;
    let (decision, observed) = match result {
        Ok(r) => r,
        Err(e) if e.class.is_retryable() || e.class == ErrorClass::NotFound => {
            return Err(e.into());
        }
        Err(e) => {
            let mut status = old.clone();
            status.phase = Some(Phase::Deleting);
            let status = with_health(
                status,
                &Health::stalled(reasons::AWS_ERROR, e.to_string()),
                generation,
            );
            write_status(api, ctx, obj, old, &status).await?;
            return Ok(Action::requeue(ctx.timing.resync));
        }
    };
    if decision.finished {
        remove_finalizer(api, obj).await?;
        return Ok(Action::await_change());
    }
    let mut status = old.clone();
    status.phase = Some(Phase::Deleting);
    if let crate::lifecycle::Observation::Found(s) = &observed {
        crate::lifecycle::mirror(&mut status, s);
    }
    let status = with_health(status, &decision.health, generation);
    write_status(api, ctx, obj, old, &status).await?;
    Ok(action(decision.requeue))
}
