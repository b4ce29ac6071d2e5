//! The ClusterSnapshot controller: observe the snapshot on AWS, let the lifecycle core
//! decide, make at most one mutation, write status. Does IO.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::{
    Context, Error, action, ensure_finalizer, remove_finalizer, with_health, write_status,
};
use crate::api::cluster_snapshot::SourceCluster;
use crate::api::conditions::{Health, reasons};
use crate::api::validation::{SpecError, validate_cluster_snapshot};
use crate::api::{
    ClusterSnapshot, DeletionPolicy, Engine, OWNER_UID_TAG, Phase, RESOURCE_TAG, SnapshotStatus,
};
use crate::engine::{
    CreateRequest, EngineError, ErrorClass, Snapshot, SnapshotEngine, SnapshotState,
};
use crate::lifecycle::{self, Decision, Desired, Observation, Step};
use crate::naming::default_identifier;

/// What the object resolves to: where its snapshot lives and what it should look like.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub engine: Engine,
    pub region: String,
    pub source: String,
    pub replication_group: bool,
    pub kms_key_id: Option<String>,
    pub desired: Desired,
}

fn spec_error(field: &str, message: String) -> SpecError {
    SpecError {
        field: field.to_string(),
        message,
    }
}

/// Resolves the spec against the status (identifiers, region and source are fixed once
/// recorded) and the operator's region. Pure.
pub fn plan(obj: &ClusterSnapshot, default_region: Option<&str>) -> Result<Plan, SpecError> {
    let spec = &obj.spec;
    let source = validate_cluster_snapshot(spec)?;
    let engine = source.engine();
    let status = obj.status.clone().unwrap_or_default();
    if let Some(recorded) = status.engine
        && recorded != engine
    {
        return Err(spec_error(
            "spec.source",
            format!("is immutable: this object snapshots a {recorded} cluster"),
        ));
    }
    if let Some(recorded) = &status.source
        && recorded != source.id()
    {
        return Err(spec_error(
            "spec.source",
            format!("is immutable: this object snapshots {recorded}"),
        ));
    }
    if let (Some(recorded), Some(wanted)) = (&status.snapshot_identifier, &spec.snapshot_identifier)
        && recorded != wanted
    {
        return Err(spec_error(
            "spec.snapshotIdentifier",
            format!("is immutable: it was {recorded}"),
        ));
    }
    if let (Some(recorded), Some(wanted)) = (&status.region, &spec.region)
        && recorded != wanted
    {
        return Err(spec_error(
            "spec.region",
            format!("is immutable: it was {recorded}"),
        ));
    }
    let region = status
        .region
        .clone()
        .or_else(|| spec.region.clone())
        .or_else(|| default_region.map(str::to_string))
        .ok_or_else(|| {
            spec_error(
                "spec.region",
                "is not set and the operator has no default region: set spec.region, or run the \
                 operator with --region or AWS_REGION"
                    .to_string(),
            )
        })?;
    let namespace = obj.namespace().unwrap_or_default();
    let uid = obj.uid().unwrap_or_default();
    let identifier = status
        .snapshot_identifier
        .clone()
        .or_else(|| spec.snapshot_identifier.clone())
        .unwrap_or_else(|| default_identifier(&namespace, &obj.name_any(), &uid, engine));
    let mut tags = spec.tags.clone();
    tags.insert(OWNER_UID_TAG.to_string(), uid.clone());
    tags.insert(
        RESOURCE_TAG.to_string(),
        format!("{namespace}/ClusterSnapshot/{}", obj.name_any()),
    );
    Ok(Plan {
        engine,
        region,
        source: source.id().to_string(),
        replication_group: matches!(source, SourceCluster::ReplicationGroup(_)),
        kms_key_id: spec.kms_key_id.clone(),
        desired: Desired {
            identifier,
            tags,
            shared_with: spec.shared_with.clone(),
            retention_days: (engine == Engine::Redshift).then(|| spec.retention_days.unwrap_or(-1)),
            owner_uid: uid,
            deletion_policy: spec.deletion_policy,
            cancel_while_creating: false,
        },
    })
}

fn elapsed(s: &Snapshot) -> Option<Duration> {
    let created: Timestamp = s.created.as_deref()?.parse().ok()?;
    let secs = Timestamp::now().duration_since(created).as_secs_f64();
    Some(Duration::from_secs_f64(secs.max(0.0)))
}

fn observation(found: Option<Snapshot>) -> Observation {
    found.into()
}

pub async fn reconcile(obj: Arc<ClusterSnapshot>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<ClusterSnapshot> = Api::namespaced(ctx.client.clone(), &namespace);
    let started = std::time::Instant::now();
    let result = if obj.meta().deletion_timestamp.is_some() {
        cleanup(&api, &obj, &ctx).await
    } else if ensure_finalizer(&api, &*obj).await? {
        apply(&api, &obj, &ctx).await
    } else {
        Ok(Action::await_change())
    };
    ctx.metrics
        .reconciled("ClusterSnapshot", started.elapsed(), result.is_ok());
    if result.is_ok() {
        ctx.succeeded(&kube::runtime::reflector::ObjectRef::from_obj(&*obj).to_string());
    }
    result
}

fn base_status(obj: &ClusterSnapshot, plan: &Plan) -> SnapshotStatus {
    let mut status = obj.status.clone().unwrap_or_default();
    status.engine = Some(plan.engine);
    status.region = Some(plan.region.clone());
    status.source = Some(plan.source.clone());
    status.snapshot_identifier = Some(plan.desired.identifier.clone());
    status
}

async fn apply(
    api: &Api<ClusterSnapshot>,
    obj: &ClusterSnapshot,
    ctx: &Context,
) -> Result<Action, Error> {
    let old = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let default_region = ctx.engines.default_region();
    let plan = match plan(obj, default_region.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            let mut status = old.clone();
            status.phase = Some(
                status
                    .phase
                    .filter(|p| *p != Phase::Creating)
                    .unwrap_or(Phase::Pending),
            );
            let status = with_health(
                status,
                &Health::stalled(reasons::INVALID_SPEC, e.to_string()),
                generation,
            );
            write_status(api, ctx, obj, &old, &status).await?;
            return Ok(Action::await_change());
        }
    };

    // The identifier is recorded before anything is created, so a restart never makes
    // a second snapshot.
    let mut current = old.clone();
    if old.snapshot_identifier.is_none() {
        let mut status = base_status(obj, &plan);
        status.phase = Some(Phase::Pending);
        let status = with_health(
            status,
            &Health::progressing(
                reasons::PENDING,
                format!("snapshot identifier {} recorded", plan.desired.identifier),
            ),
            generation,
        );
        write_status(api, ctx, obj, &old, &status).await?;
        current = status;
    }

    let engine = ctx.engines.get(plan.engine, &plan.region);
    let known = current.arn.is_some();
    let detail = !(known && current.phase == Some(Phase::Creating));
    let mut found = engine.describe(&plan.desired.identifier, detail).await?;
    // An available snapshot is compared in full (tags, shares) before it is called Ready.
    if let Some(s) = &found
        && s.state() == SnapshotState::Available
        && (s.tags.is_none() || s.shared_with.is_none())
    {
        found = engine.describe(&plan.desired.identifier, true).await?;
    }
    let mut observed = observation(found);
    let since = match &observed {
        Observation::Found(s) => elapsed(s),
        Observation::Missing => None,
    };
    let mut decision = lifecycle::apply(&plan.desired, known, &observed, since, &ctx.timing);

    let acted = act(&*engine, &plan, &observed, &decision.step).await;
    match acted {
        Ok(Some(created)) => {
            observed = Observation::Found(Box::new(created));
            decision = lifecycle::apply(
                &plan.desired,
                false,
                &observed,
                Some(Duration::ZERO),
                &ctx.timing,
            );
            decision.step = Step::Nothing;
        }
        Ok(None) => {}
        Err(e) if e.class == ErrorClass::AlreadyExists => {
            // Someone (perhaps this object, before a restart) made it already: adopt
            // it if it is ours.
            observed = observation(engine.describe(&plan.desired.identifier, true).await?);
            decision = lifecycle::apply(&plan.desired, false, &observed, None, &ctx.timing);
            if decision.step != Step::Nothing {
                decision.requeue = Some(Duration::from_secs(1));
                decision.step = Step::Nothing;
            }
        }
        Err(e) if e.class.is_retryable() || e.class == ErrorClass::NotFound => return Err(e.into()),
        Err(e) => {
            decision = terminal(decision, &e, &ctx.timing);
        }
    }

    let mut status = base_status(obj, &plan);
    status.phase = Some(decision.phase);
    if decision.owned
        && let Observation::Found(s) = &observed
    {
        lifecycle::mirror(&mut status, s);
    }
    if decision.phase != Phase::Available && decision.phase != Phase::Creating {
        status.ready_to_use = Some(false);
    }
    let status = with_health(status, &decision.health, generation);
    write_status(api, ctx, obj, &current, &status).await?;
    Ok(action(decision.requeue))
}

/// A call AWS refused for good: Stalled with AWS's words, looked at again slowly.
fn terminal(mut decision: Decision, e: &EngineError, timing: &lifecycle::Timing) -> Decision {
    decision.health = Health::stalled(reasons::AWS_ERROR, e.to_string());
    decision.requeue = Some(timing.resync);
    decision.step = Step::Nothing;
    if decision.phase == Phase::Creating {
        decision.phase = Phase::Failed;
    }
    decision
}

/// Makes the decided AWS call. Returns the snapshot when one was created.
async fn act(
    engine: &dyn SnapshotEngine,
    plan: &Plan,
    observed: &Observation,
    step: &Step,
) -> Result<Option<Snapshot>, EngineError> {
    let snapshot = match observed {
        Observation::Found(s) => Some(s),
        Observation::Missing => None,
    };
    match (step, snapshot) {
        (Step::Nothing, _) => Ok(None),
        (Step::Create, _) => engine
            .create(&CreateRequest {
                identifier: plan.desired.identifier.clone(),
                source: plan.source.clone(),
                replication_group: plan.replication_group,
                tags: plan.desired.tags.clone(),
                retention_days: plan.desired.retention_days,
                kms_key_id: plan.kms_key_id.clone(),
            })
            .await
            .map(Some),
        (Step::Share { add, remove }, Some(s)) => engine.share(s, add, remove).await.map(|_| None),
        (Step::Tag { set, remove }, Some(s)) => engine.tag(s, set, remove).await.map(|_| None),
        (Step::SetRetention(days), Some(s)) => engine.set_retention(s, *days).await.map(|_| None),
        (Step::Delete, Some(s)) => engine.delete(s).await.map(|_| None),
        (_, None) => Ok(None),
    }
}

async fn cleanup(
    api: &Api<ClusterSnapshot>,
    obj: &ClusterSnapshot,
    ctx: &Context,
) -> Result<Action, Error> {
    let old = obj.status.clone().unwrap_or_default();
    // Only what was recorded counts: no identifier recorded means nothing was created.
    let (Some(identifier), Some(engine), Some(region)) = (
        old.snapshot_identifier.clone(),
        old.engine,
        old.region.clone(),
    ) else {
        remove_finalizer(api, obj).await?;
        return Ok(Action::await_change());
    };
    let desired = Desired {
        identifier,
        tags: Default::default(),
        shared_with: Vec::new(),
        retention_days: None,
        owner_uid: obj.uid().unwrap_or_default(),
        deletion_policy: obj.spec.deletion_policy,
        cancel_while_creating: false,
    };
    let client = ctx.engines.get(engine, &region);
    let observed = if desired.deletion_policy == DeletionPolicy::Retain {
        Observation::Missing
    } else {
        observation(client.describe(&desired.identifier, true).await?)
    };
    let since = match &observed {
        Observation::Found(s) => elapsed(s),
        Observation::Missing => None,
    };
    let decision = lifecycle::cleanup(&desired, &observed, since, &ctx.timing);
    let plan = Plan {
        engine,
        region,
        source: old.source.clone().unwrap_or_default(),
        replication_group: false,
        kms_key_id: None,
        desired,
    };
    if let Err(e) = act(&*client, &plan, &observed, &decision.step).await {
        if e.class.is_retryable() || e.class == ErrorClass::NotFound {
            return Err(e.into());
        }
        let mut status = old.clone();
        status.phase = Some(Phase::Deleting);
        let status = with_health(
            status,
            &Health::stalled(reasons::AWS_ERROR, e.to_string()),
            obj.metadata.generation,
        );
        write_status(api, ctx, obj, &old, &status).await?;
        return Ok(Action::requeue(ctx.timing.resync));
    }
    if decision.finished {
        remove_finalizer(api, obj).await?;
        return Ok(Action::await_change());
    }
    let mut status = old.clone();
    status.phase = Some(Phase::Deleting);
    if let Observation::Found(s) = &observed {
        lifecycle::mirror(&mut status, s);
    }
    let status = with_health(status, &decision.health, obj.metadata.generation);
    write_status(api, ctx, obj, &old, &status).await?;
    Ok(action(decision.requeue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterSnapshotSpec;

    fn object(spec: serde_json::Value, status: Option<serde_json::Value>) -> ClusterSnapshot {
        let mut obj: ClusterSnapshot = serde_json::from_value(serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1",
            "kind": "ClusterSnapshot",
            "metadata": {"name": "nightly", "namespace": "data", "uid": "3f2a9c1e-7b44"},
            "spec": spec,
        }))
        .unwrap();
        obj.status = status.map(|s| serde_json::from_value(s).unwrap());
        obj
    }

    #[test]
    fn plans_default_identifier_tags_and_retention() {
        let obj = object(
            serde_json::json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}, "tags": {"team": "data"}}),
            None,
        );
        let p = plan(&obj, Some("us-east-1")).unwrap();
        assert_eq!(p.engine, Engine::Redshift);
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.desired.identifier, "data-nightly-3f2a9c1e");
        assert_eq!(p.desired.retention_days, Some(-1));
        assert_eq!(p.desired.tags.get(OWNER_UID_TAG).unwrap(), "3f2a9c1e-7b44");
        assert_eq!(
            p.desired.tags.get(RESOURCE_TAG).unwrap(),
            "data/ClusterSnapshot/nightly"
        );
        assert_eq!(p.desired.tags.get("team").unwrap(), "data");
        let ec = object(
            serde_json::json!({"source": {"elasticache": {"replicationGroupId": "g"}}, "kmsKeyId": "k"}),
            None,
        );
        let p = plan(&ec, Some("eu-west-1")).unwrap();
        assert!(p.replication_group);
        assert_eq!(p.desired.retention_days, None);
        assert_eq!(p.kms_key_id.as_deref(), Some("k"));
    }

    #[test]
    fn recorded_status_wins_and_changes_to_immutable_fields_are_refused() {
        let status = serde_json::json!({"snapshotIdentifier": "recorded", "region": "eu-west-1", "engine": "redshift", "source": "analytics"});
        let base = serde_json::json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}});
        let p = plan(
            &object(base.clone(), Some(status.clone())),
            Some("us-east-1"),
        )
        .unwrap();
        assert_eq!(p.desired.identifier, "recorded");
        assert_eq!(p.region, "eu-west-1");
        for (spec, field) in [
            (
                serde_json::json!({"source": {"docdb": {"clusterIdentifier": "analytics"}}}),
                "spec.source",
            ),
            (
                serde_json::json!({"source": {"redshift": {"clusterIdentifier": "other"}}}),
                "spec.source",
            ),
            (
                serde_json::json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}, "snapshotIdentifier": "new"}),
                "spec.snapshotIdentifier",
            ),
            (
                serde_json::json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}, "region": "us-west-2"}),
                "spec.region",
            ),
        ] {
            let e = plan(&object(spec, Some(status.clone())), Some("us-east-1")).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.message.contains("immutable"), "{e}");
        }
    }

    #[test]
    fn no_region_anywhere_is_an_invalid_spec() {
        let obj = object(
            serde_json::json!({"source": {"docdb": {"clusterIdentifier": "o"}}}),
            None,
        );
        let e = plan(&obj, None).unwrap_err();
        assert_eq!(e.field, "spec.region");
        let _ = ClusterSnapshotSpec::clone(&obj.spec);
    }
}
