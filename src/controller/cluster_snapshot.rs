//! The ClusterSnapshot controller: observe the snapshot on AWS, let the lifecycle core
//! decide, make at most one mutation, write status. Does IO.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::drive::{self, Creation};
use super::poller::{GroupKey, Wake};
use super::{
    Context, Error, account_problem, action, aws_account, finish_cleanup, invalid_spec,
    reconcile_object, record, remove_finalizer, with_health, write_status,
};
use crate::api::cluster_snapshot::SourceCluster;
use crate::api::conditions::{Health, reasons};
use crate::api::validation::{SpecError, validate_cluster_snapshot};
use crate::api::{
    ClusterSnapshot, Defaults, DeletionPolicy, Engine, OWNER_UID_TAG, Phase, RESOURCE_TAG,
    SnapshotCopy, SnapshotStatus,
};
use crate::engine::{AccountRole, CreateRequest, SourceRef};
use crate::lifecycle::{Desired, Recorded};
use crate::naming::default_identifier;

/// What the object resolves to: where its snapshot lives and what it should look like.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The AWSAccount spec.account names (`None`: the operator's own account).
    pub account: Option<String>,
    /// The role to work with there, once resolved (see [`aws_account::resolve`]).
    pub role: Option<AccountRole>,
    pub engine: Engine,
    pub region: String,
    pub source: String,
    pub replication_group: bool,
    pub kms_key_id: Option<String>,
    pub desired: Desired,
}

/// Resolves the spec against the status (identifiers, region and source are fixed once
/// recorded) and the operator's region and defaults. Pure.
pub fn plan(
    obj: &ClusterSnapshot,
    default_region: Option<&str>,
    defaults: &Defaults,
) -> Result<Plan, SpecError> {
    let spec = &obj.spec;
    let source = validate_cluster_snapshot(spec)?;
    let engine = source.engine();
    let status = obj.status.clone().unwrap_or_default();
    if let Some(recorded) = status.engine
        && recorded != engine
    {
        return Err(SpecError::new(
            "spec.source",
            format!("is immutable: this object snapshots a {recorded} cluster"),
        ));
    }
    if let Some(recorded) = &status.source
        && recorded != source.id()
    {
        return Err(SpecError::new(
            "spec.source",
            format!("is immutable: this object snapshots {recorded}"),
        ));
    }
    if let (Some(recorded), Some(wanted)) = (&status.snapshot_identifier, &spec.snapshot_identifier)
        && recorded != wanted
    {
        return Err(SpecError::new(
            "spec.snapshotIdentifier",
            format!("is immutable: it was {recorded}"),
        ));
    }
    if let (Some(recorded), Some(wanted)) = (&status.region, &spec.region)
        && recorded != wanted
    {
        return Err(SpecError::new(
            "spec.region",
            format!("is immutable: it was {recorded}"),
        ));
    }
    if status.snapshot_identifier.is_some() && status.account != spec.account {
        return Err(SpecError::new(
            "spec.account",
            match &status.account {
                Some(a) => format!("is immutable: it was {a}"),
                None => "is immutable: the snapshot is in the operator's own account".to_string(),
            },
        ));
    }
    let region = status
        .region
        .clone()
        .or_else(|| spec.region.clone())
        .or_else(|| default_region.map(str::to_string))
        .ok_or_else(|| {
            SpecError::new(
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
    let adopt = spec.adopt == Some(true);
    let mut tags = defaults.tags(&spec.tags, Some(engine))?;
    tags.insert(OWNER_UID_TAG.to_string(), uid.clone());
    tags.insert(
        RESOURCE_TAG.to_string(),
        format!("{namespace}/ClusterSnapshot/{}", obj.name_any()),
    );
    Ok(Plan {
        account: spec.account.clone(),
        role: None,
        engine,
        region,
        source: source.id().to_string(),
        replication_group: matches!(source, SourceCluster::ReplicationGroup(_)),
        kms_key_id: spec.kms_key_id.clone(),
        desired: Desired {
            identifier,
            tags,
            prune_tags: true,
            shared_with: spec.shared_with.clone(),
            // An adopted snapshot keeps its retention unless the spec sets one.
            retention_days: (engine == Engine::Redshift)
                .then(|| spec.retention_days.or((!adopt).then_some(-1)))
                .flatten(),
            owner_uid: uid,
            // An adopted snapshot is kept unless the spec says Delete.
            deletion_policy: if adopt {
                spec.deletion_policy
                    .or(status.deletion_policy)
                    .unwrap_or(DeletionPolicy::Retain)
            } else {
                defaults.deletion_policy(spec.deletion_policy, status.deletion_policy)
            },
            cancel_while_creating: false,
            recorded: Recorded::from_status(&status),
            adopt_untagged: false,
        },
    })
}

pub async fn reconcile(obj: Arc<ClusterSnapshot>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::status::audited(obj, ctx, |obj, ctx| {
        reconcile_object(obj, ctx, apply, cleanup)
    })
    .await
}

/// Adopting (`spec.adopt`), before the snapshot is known as the object's: looks at it
/// with its tags; if it carries this object's ownership tag, goes on (`None`).
/// Otherwise it is claimed only if it is a manual, available snapshot of the account
/// with no `dbsnapshot.io/` tag at all, by setting the ownership tags and nothing else,
/// and checked again on the next pass (another object adopting it at the same time
/// wins if its tag lands last; this one then finds it NotOwned, having recorded
/// nothing). A Redshift retention shorter than the snapshot's age is refused: AWS
/// would delete it at once.
async fn claim(
    api: &Api<ClusterSnapshot>,
    ctx: &Context,
    obj: &ClusterSnapshot,
    current: &SnapshotStatus,
    plan: &Plan,
    engine: &std::sync::Arc<dyn crate::engine::SnapshotEngine>,
) -> Result<Option<Action>, Error> {
    let id = &plan.desired.identifier;
    let uid = obj.uid().unwrap_or_default();
    let say = |phase: Phase, health: Health, requeue: std::time::Duration| async move {
        let mut status = base_status(obj, plan);
        status.phase = Some(phase);
        status.ready_to_use = Some(false);
        let status = with_health(status, &health, obj.metadata.generation);
        write_status(api, ctx, obj, current, &status).await?;
        Ok::<_, Error>(Some(Action::requeue(requeue)))
    };
    let Some(s) = engine.describe(id, true).await? else {
        return say(
            Phase::Pending,
            Health::stalled(
                reasons::NOT_FOUND,
                format!(
                    "spec.adopt: snapshot {id} does not exist in {}{}; adopting never creates \
                     one: fix spec.snapshotIdentifier (or spec.region), or create the object \
                     again without adopt",
                    plan.region,
                    plan.role
                        .as_ref()
                        .map(|r| format!(" of account {}", r.account_id))
                        .unwrap_or_default()
                ),
            ),
            ctx.timing.resync,
        )
        .await;
    };
    if s.tag(OWNER_UID_TAG) == Some(uid.as_str()) {
        return Ok(None);
    }
    let Some(tags) = &s.tags else {
        return Err(Error::Engine(crate::engine::EngineError {
            class: crate::engine::ErrorClass::Transient,
            service: plan.engine.as_str(),
            action: "Describe",
            code: None,
            message: format!("AWS did not return the tags of {id}; looking again"),
            source: None,
        }));
    };
    if let Some((k, v)) = tags.iter().find(|(k, _)| k.starts_with("dbsnapshot.io/")) {
        return say(
            Phase::Failed,
            Health::stalled(
                reasons::NOT_OWNED,
                format!(
                    "spec.adopt: snapshot {id} is managed by another object ({k}: {v}); it is \
                     never taken over"
                ),
            ),
            ctx.timing.resync,
        )
        .await;
    }
    if !s
        .snapshot_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("manual"))
    {
        return say(
            Phase::Failed,
            Health::stalled(
                reasons::INVALID_SPEC,
                format!(
                    "spec.snapshotIdentifier: {id} is a {} snapshot; only manual snapshots of \
                     the account are adopted (AWS manages automated ones; copy one with a \
                     SnapshotCopy to keep it)",
                    s.snapshot_type.as_deref().unwrap_or("non-manual")
                ),
            ),
            ctx.timing.resync,
        )
        .await;
    }
    if s.state() != crate::engine::SnapshotState::Available {
        return say(
            Phase::Pending,
            Health::progressing(
                reasons::PENDING,
                format!(
                    "spec.adopt: waiting for snapshot {id} to be available ({}) before adopting it",
                    s.aws_status
                ),
            ),
            ctx.timing.min_poll,
        )
        .await;
    }
    if let (Some(days), Some(created)) = (
        plan.desired.retention_days.filter(|d| *d > 0),
        s.created
            .as_deref()
            .and_then(|c| c.parse::<jiff::Timestamp>().ok()),
    ) {
        let age_days = (jiff::Timestamp::now().as_second() - created.as_second()) / 86_400;
        if age_days >= i64::from(days) {
            return say(
                Phase::Failed,
                Health::stalled(
                    reasons::INVALID_SPEC,
                    format!(
                        "spec.retentionDays: {days} days is not longer than the age of snapshot \
                         {id} ({age_days} days): AWS would delete it at once. Raise it, or leave \
                         it out to keep the snapshot's own retention"
                    ),
                ),
                ctx.timing.resync,
            )
            .await;
        }
    }
    let ownership: crate::api::Tags = plan
        .desired
        .tags
        .iter()
        .filter(|(k, _)| k.as_str() == OWNER_UID_TAG || k.as_str() == RESOURCE_TAG)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    engine.tag(&s, &ownership, &[]).await?;
    say(
        Phase::Pending,
        Health::progressing(
            reasons::SYNCING,
            format!(
                "spec.adopt: tagged snapshot {id} as this object's; checking that no other \
                 object claimed it meanwhile"
            ),
        ),
        ctx.timing.min_poll,
    )
    .await
}

/// Stops the batched pollers looking at the snapshot for the object (its account is not
/// usable now; looking would be a call in it).
fn forget_watch(ctx: &Context, identifier: &str) {
    if let Some(pollers) = &ctx.pollers {
        pollers.forget(identifier);
    }
}

/// Batched polling for the object, when the operator polls that way.
fn batch(ctx: &Context, obj: &ClusterSnapshot, plan: &Plan) -> Option<drive::Batch> {
    let pollers = ctx.pollers.clone()?;
    let in_sync = obj.status.as_ref().is_some_and(|s| {
        s.condition(crate::api::conditions::READY)
            .is_some_and(|c| c.status == "True" && c.observed_generation == obj.metadata.generation)
    });
    let (detail_known, dirty) = ctx.look(
        &obj.uid().unwrap_or_default(),
        obj.metadata.generation,
        in_sync,
    );
    let wake = ctx.wake_snapshot.clone().map(|tx| {
        let target = ObjectRef::from_obj(obj);
        Arc::new(move || {
            let _ = tx.unbounded_send(target.clone());
        }) as Wake
    })?;
    Some(drive::Batch {
        pollers,
        key: GroupKey {
            account: plan.role.clone(),
            engine: plan.engine,
            region: plan.region.clone(),
            source: SourceRef {
                id: plan.source.clone(),
                replication_group: plan.replication_group,
            },
        },
        wake,
        detail_known,
        dirty,
        first_pass: false,
    })
}

fn base_status(obj: &ClusterSnapshot, plan: &Plan) -> SnapshotStatus {
    let mut status = obj.status.clone().unwrap_or_default();
    status.engine = Some(plan.engine);
    status.region = Some(plan.region.clone());
    status.account = plan.account.clone();
    status.account_id = plan.role.as_ref().map(|r| r.account_id.clone());
    status.source = Some(plan.source.clone());
    status.snapshot_identifier = Some(plan.desired.identifier.clone());
    drive::record_applied(&mut status, &plan.desired);
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
    let mut plan = match plan(obj, default_region.as_deref(), &ctx.defaults) {
        Ok(p) => p,
        Err(e) => return invalid_spec(api, ctx, obj, &old, &e).await,
    };
    // The account is resolved before anything is recorded or called.
    plan.role = match aws_account::resolve(
        ctx,
        &obj.namespace().unwrap_or_default(),
        plan.account.as_deref(),
        old.account_id.as_deref(),
    )
    .await
    {
        Ok(role) => role,
        Err(problem) => {
            if let Some(id) = &old.snapshot_identifier {
                forget_watch(ctx, id);
            }
            return account_problem(api, ctx, obj, &old, problem).await;
        }
    };

    // DocumentDB: shared, too, with the accounts copies across accounts are copying it
    // into (shareSourceWhileCopying), for as long as they copy.
    let mut sharing_for_copies = false;
    if plan.engine == Engine::Docdb {
        let copies = copy_candidates(ctx, obj).await?;
        let accounts = shares_while_copying(obj, &copies);
        sharing_for_copies = !accounts.is_empty();
        for account in accounts {
            if !plan.desired.shared_with.contains(&account) {
                plan.desired.shared_with.push(account);
            }
        }
    }
    // Shares AWS did not show last time: looked at in full (they change without the
    // object's generation changing).
    if let Some(observed) = &old.shared_with {
        let mut seen = observed.clone();
        let mut wanted = plan.desired.shared_with.clone();
        seen.sort();
        wanted.sort();
        if seen != wanted {
            ctx.set_look(&obj.uid().unwrap_or_default(), Some(super::Look::Dirty));
        }
    }

    // The identifier is recorded before anything is created, so a restart never makes
    // a second snapshot.
    let mut current = old.clone();
    if old.snapshot_identifier.is_none() {
        current = record(
            api,
            ctx,
            obj,
            &old,
            base_status(obj, &plan),
            &plan.desired.identifier,
        )
        .await?;
    }

    let engine = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.engine, &plan.region);
    // Adopting: the snapshot is claimed (its ownership tags, nothing else) and the
    // claim checked on a later pass before anything else is done or recorded.
    let adopt = obj.spec.adopt == Some(true);
    if adopt
        && current.arn.is_none()
        && let Some(action) = claim(api, ctx, obj, &current, &plan, &engine).await?
    {
        return Ok(action);
    }
    let request = CreateRequest {
        identifier: plan.desired.identifier.clone(),
        source: plan.source.clone(),
        replication_group: plan.replication_group,
        tags: plan.desired.tags.clone(),
        retention_days: plan.desired.retention_days,
        kms_key_id: plan.kms_key_id.clone(),
    };
    // An adopted snapshot is always looked at with its tags (a listing without them
    // could not tell another adopter's claim from this object's).
    let mut batch = if adopt { None } else { batch(ctx, obj, &plan) };
    if let Some(b) = &mut batch {
        b.first_pass = old.snapshot_identifier.is_none();
    }
    let converged = drive::converge(
        &engine,
        &plan.desired,
        &current,
        &ctx.timing,
        batch.as_ref(),
        || async {
            // Adopting never creates: the snapshot named must exist.
            if obj.spec.adopt == Some(true) {
                return Ok(Creation::Blocked {
                    phase: Phase::Pending,
                    health: Health::stalled(
                        reasons::NOT_FOUND,
                        format!(
                            "spec.adopt: snapshot {} does not exist in {}{}; adopting never \
                             creates one: fix spec.snapshotIdentifier (or spec.region), or \
                             create the object again without adopt",
                            request.identifier,
                            plan.region,
                            plan.role
                                .as_ref()
                                .map(|r| format!(" of account {}", r.account_id))
                                .unwrap_or_default()
                        ),
                    ),
                    requeue: Some(ctx.timing.resync),
                });
            }
            engine
                .create(&request)
                .await
                .map(|s| Creation::Created(Box::new(s)))
        },
    )
    .await;
    let (mut decision, observed) = match converged {
        Ok(c) => c,
        // The cluster is busy (maintenance, a resize, another snapshot): said on the
        // object, and tried again with the error policy's backoff.
        // (Only the create: a tag call may answer the same code for a Ready snapshot.)
        Err(Error::Engine(e))
            if e.class == crate::engine::ErrorClass::SourceUnavailable
                && [
                    "CreateClusterSnapshot",
                    "CreateDBClusterSnapshot",
                    "CreateSnapshot",
                ]
                .contains(&e.action) =>
        {
            let mut status = base_status(obj, &plan);
            status.phase = Some(Phase::Pending);
            let status = with_health(
                status,
                &Health::progressing(
                    reasons::SOURCE_NOT_READY,
                    format!(
                        "AWS cannot snapshot {} now ({}); trying again with backoff",
                        plan.source,
                        e.code
                            .as_deref()
                            .map(|c| format!("{c}: {}", e.message))
                            .unwrap_or_else(|| e.message.clone())
                    ),
                ),
                generation,
            );
            write_status(api, ctx, obj, &current, &status).await?;
            return Err(e.into());
        }
        // AWS (or, Redshift's DependentServiceRequestThrottlingFault, a service it calls
        // for us) throttles a change not made yet: the object says it is waiting, and
        // the call is retried with the error policy's backoff. A throttled look, or one
        // at an object already Ready, changes nothing on it.
        Err(Error::Engine(e))
            if e.class == crate::engine::ErrorClass::Throttled
                && !["Describe", "List"].iter().any(|r| e.action.starts_with(r))
                && current
                    .condition("Ready")
                    .is_none_or(|c| c.status != "True") =>
        {
            let reason = current
                .condition("Ready")
                .map(|c| c.reason.clone())
                .unwrap_or_else(|| reasons::PENDING.to_string());
            let status = with_health(
                base_status(obj, &plan),
                &Health::progressing(
                    &reason,
                    format!(
                        "waiting: AWS is throttling {} {} ({}); retrying with backoff",
                        e.service,
                        e.action,
                        e.code
                            .as_deref()
                            .map(|c| format!("{c}: {}", e.message))
                            .unwrap_or_else(|| e.message.clone())
                    ),
                ),
                generation,
            );
            write_status(api, ctx, obj, &current, &status).await?;
            return Err(e.into());
        }
        Err(e) => return Err(e),
    };
    if let Some(b) = &batch {
        drive::after_batched(
            ctx,
            b,
            &engine,
            obj,
            &plan.desired.identifier,
            &mut decision,
            &observed,
        );
    }
    let status = drive::status_after(base_status(obj, &plan), &decision, &observed);
    let status = with_health(status, &decision.health, generation);
    write_status(api, ctx, obj, &current, &status).await?;
    // While shared for copies, looked at again at least every --max-poll-seconds: the
    // copies' changes wake it (once the copy cache holds them); this is a safety net
    // for a wake-up lost to a restart of the watch.
    let requeue = if sharing_for_copies {
        Some(
            decision
                .requeue
                .map_or(ctx.timing.max_poll, |r| r.min(ctx.timing.max_poll)),
        )
    } else {
        decision.requeue
    };
    Ok(action(requeue))
}

/// The accounts SnapshotCopies of this ClusterSnapshot copy it into while they ask for
/// it to be shared meanwhile (shareSourceWhileCopying): those naming it, not being
/// deleted, with a destination account recorded and not yet Available or Failed. Pure.
pub fn shares_while_copying(obj: &ClusterSnapshot, copies: &[SnapshotCopy]) -> Vec<String> {
    let namespace = obj.namespace();
    let name = obj.name_any();
    let mut accounts: Vec<String> = copies
        .iter()
        .filter(|c| {
            c.namespace() == namespace
                && c.spec.share_source_while_copying == Some(true)
                && c.metadata.deletion_timestamp.is_none()
                && c.spec
                    .source
                    .cluster_snapshot_ref
                    .as_ref()
                    .map(|r| r.name.as_str())
                    == Some(name.as_str())
        })
        .filter_map(|c| {
            let s = c.status.as_ref()?;
            // A copy made, failed, or Stalled (waiting for a change from outside: an
            // invalid edit, an account it may not use) does not hold the share.
            let stalled = s
                .condition(crate::api::conditions::STALLED)
                .is_some_and(|c| c.status == "True");
            // Across regions too: once the intermediate copy in the source's region is
            // made, the rest copies that copy.
            let hopped = s
                .intermediate
                .as_ref()
                .is_some_and(|i| i.phase == Some(Phase::Available) || i.deleted == Some(true))
                || (s.intermediate.is_some() && s.copy_requested == Some(true));
            let copying = !stalled
                && !hopped
                && !matches!(s.phase, Some(Phase::Available) | Some(Phase::Failed));
            let account = s.account_id.clone()?;
            // Never with the snapshot's own account.
            let own = obj.status.as_ref().and_then(|o| o.account_id.as_deref());
            (copying && Some(account.as_str()) != own).then_some(account)
        })
        .collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

/// What a ClusterSnapshot reads of a SnapshotCopy of it ([`shares_while_copying`],
/// [`copies_in_flight`]), as a hash: the source is woken when this changes (its phase,
/// Stalled, the intermediate copy's progress through its phases, its recorded target,
/// spec or deletion), not by its progress writes. Pure.
pub fn what_sources_read(c: &SnapshotCopy) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    let meta = &c.metadata;
    meta.generation.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    meta.finalizers.hash(&mut h);
    if let Some(s) = &c.status {
        s.condition(crate::api::conditions::STALLED)
            .map(|c| c.status.as_str())
            .hash(&mut h);
        (
            s.phase.map(|p| format!("{p:?}")),
            s.engine.map(|e| e.as_str()),
            &s.region,
            &s.account_id,
            &s.snapshot_identifier,
            s.copy_requested,
        )
            .hash(&mut h);
        if let Some(i) = &s.intermediate {
            (
                &i.snapshot_identifier,
                &i.region,
                i.phase.map(|p| format!("{p:?}")),
                i.deleted,
            )
                .hash(&mut h);
        }
    }
    Some(h.finish())
}

/// The SnapshotCopies that may name this ClusterSnapshot: from the cache once it holds
/// its first full list, else listed.
async fn copy_candidates(ctx: &Context, obj: &ClusterSnapshot) -> Result<Vec<SnapshotCopy>, Error> {
    let cached = match &ctx.copies {
        Some(store)
            if tokio::time::timeout(
                std::time::Duration::from_secs(1),
                store.wait_until_ready(),
            )
            .await
            .is_ok_and(|r| r.is_ok()) =>
        {
            Some(store.state())
        }
        _ => None,
    };
    Ok(match cached {
        Some(copies) => copies.iter().map(|c| (**c).clone()).collect(),
        None => {
            let api: Api<SnapshotCopy> =
                Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
            api.list(&Default::default()).await?.items
        }
    })
}

/// Copies of this snapshot (SnapshotCopy objects naming it) that AWS is still copying
/// from it, and when to look again: a copy counts while AWS says its target is being
/// copied, whatever its object's phase (a copy Stalled by a spec change is still read
/// by AWS; one whose object will never be reconciled again must not hold the source
/// forever). Copies are read from the cache; AWS is asked about each one that recorded
/// a target.
async fn copies_in_flight(
    ctx: &Context,
    obj: &ClusterSnapshot,
    role: Option<&AccountRole>,
) -> Result<(Vec<String>, Option<std::time::Duration>), Error> {
    let namespace = obj.namespace();
    let name = obj.name_any();
    // The cache, once it holds its first full list (right after a start it may not;
    // and a waiter can miss the wake-up, see `run`: a short wait, then a listing).
    let candidates = copy_candidates(ctx, obj).await?;
    let mut waiting = Vec::new();
    let mut next: Option<std::time::Duration> = None;
    for c in candidates.iter().filter(|c| {
        c.namespace() == namespace
            && c.spec
                .source
                .cluster_snapshot_ref
                .as_ref()
                .map(|r| r.name.as_str())
                == Some(name.as_str())
    }) {
        let s = c.status.clone().unwrap_or_default();
        let (Some(id), Some(engine), Some(region)) =
            (s.snapshot_identifier.clone(), s.engine, s.region.clone())
        else {
            continue;
        };
        // A copy across accounts and regions reads this snapshot only while it makes
        // its intermediate copy (which the rest is copied from).
        let (id, region) = match &s.intermediate {
            Some(i)
                if i.phase == Some(Phase::Available)
                    || i.deleted == Some(true)
                    || s.copy_requested == Some(true) =>
            {
                continue;
            }
            Some(i) => (i.snapshot_identifier.clone(), i.region.clone()),
            None => (id, region),
        };
        // The copy's account: this snapshot's, or (recorded) its own AWSAccount's.
        let copy_role = if s.account_id.as_deref() == role.map(|r| r.account_id.as_str()) {
            role.cloned()
        } else {
            match aws_account::resolve(
                ctx,
                &c.namespace().unwrap_or_default(),
                s.account.as_deref(),
                s.account_id.as_deref(),
            )
            .await
            {
                Ok(r) => r,
                Err(problem) => {
                    tracing::warn!(copy = %c.name_any(), problem = %problem.message, "cannot tell whether AWS is still copying; not waiting for it");
                    continue;
                }
            }
        };
        let client = ctx.engines.get_in(copy_role.as_ref(), engine, &region);
        if c.spec.target_bucket.is_some() {
            // An export to S3: AWS shows it on the source itself (`exporting`).
            let own = obj
                .status
                .as_ref()
                .and_then(|s| s.snapshot_identifier.clone());
            if let Some(own) = own
                && let Some(source) = client.describe(&own, false).await?
                && source.aws_status.eq_ignore_ascii_case("exporting")
            {
                let wait = ctx.timing.no_estimate_poll;
                next = Some(next.map_or(wait, |n| n.min(wait)));
                waiting.push(c.name_any());
            }
            continue;
        }
        // Batched, a copy made in one hop shows in its own listing (this snapshot's
        // cluster, in the copy's region): a copy that listing shows finished needs no
        // describe, where the entry is the very snapshot the copy's status recorded (an
        // older snapshot of the same name, deleted or replaced since, may still be
        // listed while a new copy under that name is being made). Anything else (still
        // copying, not listed, another snapshot, no listing to be had) is described.
        let listed = match (&ctx.pollers, &s.intermediate) {
            (Some(pollers), None) => match super::snapshot_copy::batch_source(c, Some(obj), engine)
            {
                Some(cluster) => {
                    let key = super::snapshot_copy::copy_group(copy_role.clone(), &region, cluster);
                    match pollers.view(&key, &client, &id, pollers.max_age()).await {
                        Ok(super::poller::Listed::Present(t)) if listed_finished(&s, &t) => {
                            Some(*t)
                        }
                        Ok(_) => None,
                        // Throttled or unreachable: a describe would fare no better.
                        Err(e) if e.class.is_retryable() => return Err(e.into()),
                        Err(e) => {
                            tracing::debug!(copy = %c.name_any(), error = %e, "no listing of the copy; describing it");
                            None
                        }
                    }
                }
                None => None,
            },
            _ => None,
        };
        // A copy AWS has finished (or never made) reads nothing. A look AWS refuses for
        // good (permissions, a region turned off) cannot tell, and must not hold the
        // source forever: it is logged and the copy is not waited for.
        let described = match listed {
            Some(t) => Ok(Some(t)),
            None => client.describe(&id, false).await,
        };
        let target = match described {
            Ok(Some(target)) => target,
            Ok(None) => continue,
            Err(e) if e.class.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(copy = %c.name_any(), error = %e, "cannot tell whether AWS is still copying; not waiting for it");
                continue;
            }
        };
        // A status nobody documents may be AWS still copying: held, like creating.
        if matches!(
            target.state(),
            crate::engine::SnapshotState::Creating | crate::engine::SnapshotState::Unknown
        ) {
            let wait = crate::lifecycle::next_poll(&target, drive::elapsed(&target), &ctx.timing);
            next = Some(next.map_or(wait, |n| n.min(wait)));
            waiting.push(c.name_any());
        }
    }
    Ok((waiting, next))
}

/// Whether a listing's entry shows the copy its status recorded (same ARN and creation
/// time) as no longer being copied: AWS reads its source no more. Pure.
fn listed_finished(copy: &crate::api::SnapshotStatus, listed: &crate::engine::Snapshot) -> bool {
    Recorded::from_status(copy).is_some_and(|r| {
        listed.arn.as_ref() == Some(&r.arn) && listed.created.as_ref() == Some(&r.created)
    }) && !matches!(
        listed.state(),
        crate::engine::SnapshotState::Creating | crate::engine::SnapshotState::Unknown
    )
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
    let deletion_policy = ctx
        .defaults
        .deletion_policy(obj.spec.deletion_policy, old.deletion_policy);
    let retain = deletion_policy == DeletionPolicy::Retain;
    let namespace = obj.namespace().unwrap_or_default();
    let role = match aws_account::resolve_for_cleanup(
        ctx,
        &namespace,
        &old,
        retain,
        "snapshot",
        &identifier,
    )
    .await
    {
        Ok(role) => role,
        Err(problem) => {
            forget_watch(ctx, &identifier);
            return account_problem(api, ctx, obj, &old, problem).await;
        }
    };
    if deletion_policy == DeletionPolicy::Delete {
        let (waiting, next) = copies_in_flight(ctx, obj, role.as_ref()).await?;
        if !waiting.is_empty() {
            let mut status = old.clone();
            status.phase = Some(Phase::Deleting);
            let status = with_health(
                status,
                &Health::progressing(
                    reasons::DELETING,
                    format!(
                        "waiting for SnapshotCopy {} to finish copying snapshot {identifier} before deleting it",
                        waiting.join(", ")
                    ),
                ),
                obj.metadata.generation,
            );
            write_status(api, ctx, obj, &old, &status).await?;
            return Ok(Action::requeue(next.unwrap_or(ctx.timing.max_poll)));
        }
    }
    let desired = Desired {
        identifier,
        tags: Default::default(),
        prune_tags: false,
        shared_with: Vec::new(),
        retention_days: None,
        owner_uid: obj.uid().unwrap_or_default(),
        deletion_policy,
        cancel_while_creating: false,
        recorded: Recorded::from_status(&old),
        adopt_untagged: false,
    };
    let client = ctx.engines.get_in(role.as_ref(), engine, &region);
    // The plan as recorded (a spec that no longer validates still gets cleaned up).
    let adopted = obj.spec.adopt == Some(true);
    let batch = old
        .source
        .clone()
        .filter(|_| !retain && !adopted)
        .and_then(|source| {
            let plan = Plan {
                account: old.account.clone(),
                role: role.clone(),
                engine,
                region: region.clone(),
                replication_group: matches!(
                    obj.spec.source.elasticache.as_ref(),
                    Some(e) if e.replication_group_id.is_some()
                ),
                source,
                kms_key_id: None,
                desired: desired.clone(),
            };
            batch(ctx, obj, &plan).map(|mut b| {
                (b.detail_known, b.dirty) = ctx.look_for_cleanup(&obj.uid().unwrap_or_default());
                b
            })
        });
    let result =
        drive::converge_cleanup(&client, &desired, &old, &ctx.timing, batch.as_ref()).await;
    // AWS refused a step the listing suggested (shared or busy after all): look in
    // full next time.
    if let Err(e) = &result
        && e.class == crate::engine::ErrorClass::InvalidState
    {
        ctx.set_look(&obj.uid().unwrap_or_default(), Some(super::Look::Dirty));
    }
    if let (Some(b), Ok((decision, observed))) = (&batch, &result) {
        drive::after_batched_cleanup(
            ctx,
            b,
            &client,
            obj,
            &desired.identifier,
            decision,
            observed,
        );
    }
    finish_cleanup(api, ctx, obj, &old, result).await
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

    /// A deleted source must not be taken for free while AWS copies from it: a listing
    /// entry counts as the copy finished only for the very snapshot the copy recorded.
    #[test]
    fn a_listed_copy_counts_as_finished_only_when_it_is_the_recorded_one() {
        use crate::engine::Snapshot;
        let arn = "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:nightly-dr";
        let copy = crate::api::SnapshotStatus {
            arn: Some(arn.into()),
            creation_time: Some("2026-12-03T10:00:00Z".into()),
            ..Default::default()
        };
        let listed = |status: &str, created: &str| Snapshot {
            identifier: "nightly-dr".into(),
            arn: Some(arn.into()),
            aws_status: status.into(),
            created: Some(created.into()),
            ..Snapshot::default()
        };
        let today = "2026-12-03T10:00:00Z";
        let yesterday = "2026-12-02T10:00:00Z";
        assert!(listed_finished(&copy, &listed("available", today)));
        assert!(listed_finished(&copy, &listed("deleting", today)));
        assert!(listed_finished(&copy, &listed("failed", today)));
        // Still copying, or a status nobody documents: not finished.
        assert!(!listed_finished(&copy, &listed("copying", today)));
        assert!(!listed_finished(&copy, &listed("creating", today)));
        assert!(!listed_finished(&copy, &listed("something-new", today)));
        // An older snapshot of the same name (deleted, or deleting, since), while a new
        // copy is made under it: described, whatever the entry says.
        assert!(!listed_finished(&copy, &listed("deleting", yesterday)));
        assert!(!listed_finished(&copy, &listed("available", yesterday)));
        // Nothing recorded yet (the copy call just made): described.
        let unrecorded = crate::api::SnapshotStatus::default();
        assert!(!listed_finished(&unrecorded, &listed("available", today)));
        // The entry without a creation time or ARN cannot be matched.
        let mut bare = listed("available", today);
        bare.created = None;
        assert!(!listed_finished(&copy, &bare));
        bare = listed("available", today);
        bare.arn = None;
        assert!(!listed_finished(&copy, &bare));
    }

    #[test]
    fn the_operator_defaults_fill_what_the_spec_leaves_out_and_show_in_status() {
        let defaults = Defaults {
            deletion_policy: DeletionPolicy::Retain,
            tags: [("team", "platform"), ("cost-center", "42")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let spec = serde_json::json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}, "tags": {"team": "data"}});
        let p = plan(&object(spec.clone(), None), Some("us-east-1"), &defaults).unwrap();
        assert_eq!(p.desired.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(p.desired.tags["team"], "data");
        assert_eq!(p.desired.tags["cost-center"], "42");
        let status = base_status(&object(spec.clone(), None), &p);
        assert_eq!(status.deletion_policy, Some(DeletionPolicy::Retain));
        assert_eq!(
            status.tags.keys().collect::<Vec<_>>(),
            ["cost-center", "team"],
            "the ownership tags are not shown"
        );
        // Recorded once, the policy stays when the operator's default changes.
        let recorded = serde_json::json!({"deletionPolicy": "Retain"});
        let p = plan(
            &object(spec.clone(), Some(recorded)),
            Some("us-east-1"),
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(p.desired.deletion_policy, DeletionPolicy::Retain);
        // The spec's own policy wins over both.
        let mut explicit = spec.clone();
        explicit["deletionPolicy"] = "Delete".into();
        let p = plan(
            &object(
                explicit,
                Some(serde_json::json!({"deletionPolicy": "Retain"})),
            ),
            Some("us-east-1"),
            &defaults,
        )
        .unwrap();
        assert_eq!(p.desired.deletion_policy, DeletionPolicy::Delete);
    }

    #[test]
    fn plans_default_identifier_tags_and_retention() {
        let obj = object(
            serde_json::json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}, "tags": {"team": "data"}}),
            None,
        );
        let p = plan(&obj, Some("us-east-1"), &Defaults::default()).unwrap();
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
        let p = plan(&ec, Some("eu-west-1"), &Defaults::default()).unwrap();
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
            &Defaults::default(),
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
            let e = plan(
                &object(spec, Some(status.clone())),
                Some("us-east-1"),
                &Defaults::default(),
            )
            .unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.message.contains("immutable"), "{e}");
        }
    }

    #[test]
    fn an_adopted_snapshot_is_kept_and_keeps_its_retention_unless_the_spec_says() {
        let adopt = serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}},
            "snapshotIdentifier": "legacy", "adopt": true});
        let delete_by_default = Defaults {
            deletion_policy: DeletionPolicy::Delete,
            ..Defaults::default()
        };
        let p = plan(
            &object(adopt.clone(), None),
            Some("us-east-1"),
            &delete_by_default,
        )
        .unwrap();
        assert_eq!(p.desired.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(p.desired.retention_days, None);
        let mut explicit = adopt.clone();
        explicit["deletionPolicy"] = "Delete".into();
        explicit["retentionDays"] = 7.into();
        let p = plan(
            &object(explicit, None),
            Some("us-east-1"),
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(p.desired.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(p.desired.retention_days, Some(7));
        // Not adopting: the operator's default and forever.
        let plain = serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}}});
        let p = plan(&object(plain, None), Some("us-east-1"), &delete_by_default).unwrap();
        assert_eq!(p.desired.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(p.desired.retention_days, Some(-1));
        // Adopting needs the snapshot's name.
        let e = plan(
            &object(serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}}, "adopt": true}), None),
            Some("us-east-1"),
            &Defaults::default(),
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.snapshotIdentifier");
    }

    #[test]
    fn the_account_is_fixed_once_recorded() {
        let recorded = serde_json::json!({"snapshotIdentifier": "recorded", "account": "prod", "accountId": "111122223333"});
        let with = serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}}, "account": "prod"});
        let p = plan(
            &object(with.clone(), Some(recorded.clone())),
            Some("us-east-1"),
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(p.account.as_deref(), Some("prod"));
        for (spec, status, words) in [
            (
                serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}}}),
                recorded.clone(),
                "it was prod",
            ),
            (
                serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}}, "account": "dr"}),
                recorded.clone(),
                "it was prod",
            ),
            (
                with.clone(),
                serde_json::json!({"snapshotIdentifier": "recorded"}),
                "the operator's own account",
            ),
        ] {
            let e = plan(
                &object(spec, Some(status)),
                Some("us-east-1"),
                &Defaults::default(),
            )
            .unwrap_err();
            assert_eq!(e.field, "spec.account");
            assert!(e.message.contains(words), "{e}");
        }
        // Nothing recorded yet: any account may be named.
        assert!(plan(&object(with, None), Some("us-east-1"), &Defaults::default()).is_ok());
        // base_status records the account and the resolved role's account id.
        let mut p = p;
        p.role = Some(AccountRole {
            account_id: "111122223333".into(),
            role_arn: "arn:aws:iam::111122223333:role/r".into(),
            external_id: None,
            session_seconds: None,
        });
        let st = base_status(
            &object(
                serde_json::json!({"source": {"redshift": {"clusterIdentifier": "a"}}, "account": "prod"}),
                None,
            ),
            &p,
        );
        assert_eq!(st.account.as_deref(), Some("prod"));
        assert_eq!(st.account_id.as_deref(), Some("111122223333"));
    }

    #[test]
    fn shared_while_copying_with_the_accounts_of_copies_still_copying() {
        let cs = object(
            serde_json::json!({"source": {"docdb": {"clusterIdentifier": "orders"}}}),
            None,
        );
        let copy =
            |name: &str, phase: Option<&str>, account: Option<&str>, asks: bool, source: &str| {
                let mut c: SnapshotCopy = serde_json::from_value(serde_json::json!({
                    "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
                    "metadata": {"name": name, "namespace": "data"},
                    "spec": {"source": {"clusterSnapshotRef": {"name": source}}, "account": "dr",
                             "shareSourceWhileCopying": asks},
                    "status": {"phase": phase, "accountId": account},
                }))
                .unwrap();
                if phase.is_none() {
                    c.status.as_mut().unwrap().phase = None;
                }
                c
            };
        let mut deleting = copy(
            "gone",
            Some("Creating"),
            Some("555555555555"),
            true,
            "nightly",
        );
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let mut stalled = copy(
            "stalled",
            Some("Pending"),
            Some("999999999999"),
            true,
            "nightly",
        );
        stalled.status.as_mut().unwrap().conditions =
            vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "Stalled".into(),
                status: "True".into(),
                reason: "InvalidSpec".into(),
                message: "spec.region: is immutable".into(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
                observed_generation: None,
            }];
        let mut elsewhere = copy(
            "other-ns",
            Some("Creating"),
            Some("666666666666"),
            true,
            "nightly",
        );
        elsewhere.metadata.namespace = Some("web".into());
        // Across regions: shared while the intermediate copy in the source's region is
        // made, not once it is (the rest copies that copy).
        let hop = |name: &str, account: &str, phase: Option<Phase>, deleted, requested| {
            let mut c = copy(name, Some("Creating"), Some(account), true, "nightly");
            let s = c.status.as_mut().unwrap();
            s.copy_requested = Some(requested);
            s.intermediate = Some(crate::api::IntermediateCopy {
                snapshot_identifier: "x".into(),
                region: "us-east-1".into(),
                phase,
                deleted,
                ..Default::default()
            });
            c
        };
        let copies = vec![
            hop("hop-1", "121212121212", Some(Phase::Creating), None, false),
            hop(
                "hop-1-made",
                "131313131313",
                Some(Phase::Available),
                None,
                false,
            ),
            hop("hop-2", "141414141414", Some(Phase::Available), None, true),
            hop("hop-2-lost", "151515151515", None, None, true),
            hop("hop-done", "161616161616", None, Some(true), false),
            copy("a", Some("Creating"), Some("111111111111"), true, "nightly"),
            copy("b", Some("Pending"), Some("222222222222"), true, "nightly"),
            copy("b2", Some("Pending"), Some("222222222222"), true, "nightly"),
            copy(
                "done",
                Some("Available"),
                Some("333333333333"),
                true,
                "nightly",
            ),
            copy(
                "failed",
                Some("Failed"),
                Some("444444444444"),
                true,
                "nightly",
            ),
            copy(
                "not-asking",
                Some("Creating"),
                Some("777777777777"),
                false,
                "nightly",
            ),
            copy(
                "other-source",
                Some("Creating"),
                Some("888888888888"),
                true,
                "weekly",
            ),
            copy("unrecorded", None, None, true, "nightly"),
            deleting,
            elsewhere,
            stalled,
        ];
        assert_eq!(
            shares_while_copying(&cs, &copies),
            vec![
                "111111111111".to_string(),
                "121212121212".to_string(),
                "222222222222".to_string()
            ]
        );
        // Never with the snapshot's own account.
        let mut in_b = cs.clone();
        in_b.status = Some(SnapshotStatus {
            account_id: Some("111111111111".into()),
            ..Default::default()
        });
        assert_eq!(
            shares_while_copying(&in_b, &copies),
            vec!["121212121212".to_string(), "222222222222".to_string()]
        );
    }

    #[test]
    fn no_region_anywhere_is_an_invalid_spec() {
        let obj = object(
            serde_json::json!({"source": {"docdb": {"clusterIdentifier": "o"}}}),
            None,
        );
        let e = plan(&obj, None, &Defaults::default()).unwrap_err();
        assert_eq!(e.field, "spec.region");
        let _ = ClusterSnapshotSpec::clone(&obj.spec);
    }

    #[test]
    fn sources_are_woken_by_what_they_read_of_their_copies_not_by_progress() {
        let copy: SnapshotCopy = serde_json::from_value(serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1", "kind": "SnapshotCopy",
            "metadata": {"name": "dr", "namespace": "data", "generation": 1},
            "spec": {"source": {"clusterSnapshotRef": {"name": "nightly"}},
                     "shareSourceWhileCopying": true},
            "status": {"phase": "Creating", "accountId": "555555555555", "engine": "docdb",
                       "region": "us-west-2", "snapshotIdentifier": "dr-1",
                       "conditions": [{"type": "Ready", "status": "False", "reason": "Creating",
                                       "message": "1%", "lastTransitionTime": "2026-11-22T00:00:00Z"}]},
        }))
        .unwrap();
        let before = what_sources_read(&copy);
        let mut progress = copy.clone();
        let s = progress.status.as_mut().unwrap();
        s.progress = Some(crate::api::status::Progress {
            percent: Some(60),
            ..Default::default()
        });
        s.conditions[0].message = "60%".into();
        assert_eq!(what_sources_read(&progress), before);
        let edit = |f: &dyn Fn(&mut SnapshotCopy)| {
            let mut c = copy.clone();
            f(&mut c);
            what_sources_read(&c)
        };
        use crate::api::status::Phase;
        for (what, hash) in [
            (
                "done",
                edit(&|c| c.status.as_mut().unwrap().phase = Some(Phase::Available)),
            ),
            (
                "stalled",
                edit(&|c| {
                    c.status.as_mut().unwrap().conditions.push(
                        serde_json::from_value(serde_json::json!({
                            "type": "Stalled", "status": "True", "reason": "AccessDenied",
                            "message": "m", "lastTransitionTime": "2026-11-22T00:00:00Z"}))
                        .unwrap(),
                    )
                }),
            ),
            (
                "account",
                edit(&|c| c.status.as_mut().unwrap().account_id = Some("1".into())),
            ),
            (
                "copy requested",
                edit(&|c| c.status.as_mut().unwrap().copy_requested = Some(true)),
            ),
            (
                "deleting",
                edit(&|c| {
                    c.metadata.deletion_timestamp =
                        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            k8s_openapi::jiff::Timestamp::now(),
                        ))
                }),
            ),
            ("spec", edit(&|c| c.metadata.generation = Some(2))),
        ] {
            assert_ne!(hash, before, "{what}");
        }
    }
}
