//! The SnapshotCopy controller: resolve the source (a ClusterSnapshot, or a snapshot on
//! AWS), copy it (ElastiCache: or export it to S3), then keep the copy in line with the
//! spec exactly as ClusterSnapshot does. Does IO.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::drive::{self, Creation};
use super::{
    Context, Error, account_problem, action, aws_account, finish_cleanup, invalid_spec,
    reconcile_object, record, recorded, remove_finalizer, with_health, write_status,
};
use crate::api::conditions::{Health, reasons};
use crate::api::validation::{
    DocdbCopySource, SpecError, check_docdb_copy_source, copy_engine, validate_snapshot_copy,
};
use crate::api::{
    ClusterSnapshot, Defaults, DeletionPolicy, Engine, IntermediateCopy, OWNER_UID_TAG, Phase,
    RESOURCE_TAG, SnapshotCopy, SnapshotStatus,
};
use crate::engine::{AccountRole, CopyRequest, EngineError, ErrorClass, SnapshotState};
use crate::lifecycle::{self, Desired, Observation, Recorded};
use crate::naming::default_identifier;

/// The snapshot to copy, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub engine: Engine,
    /// Where the source snapshot lives.
    pub region: String,
    /// Its identifier or ARN, as the copy call takes it.
    pub identifier: String,
    /// Redshift: the cluster it is of.
    pub cluster: Option<String>,
}

/// A source that cannot be copied yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NotReady(pub String);

/// The region inside a DocumentDB ARN (`arn:aws:rds:<region>:...`).
fn arn_region(s: &str) -> Option<&str> {
    let mut parts = s.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

/// Resolves the spec's source. A ClusterSnapshot must exist, be Ready and not be going
/// away. Pure but for reading that ClusterSnapshot, passed in.
pub fn resolve(
    obj: &SnapshotCopy,
    target_region: &str,
    reference: Option<&ClusterSnapshot>,
) -> Result<Source, NotReady> {
    let spec = &obj.spec;
    let s = &spec.source;
    if let Some(r) = &s.cluster_snapshot_ref {
        let Some(cs) = reference else {
            return Err(NotReady(format!(
                "spec.source.clusterSnapshotRef.name: ClusterSnapshot {} does not exist in this \
                 namespace; waiting for it (create it, or fix the name)",
                r.name
            )));
        };
        if cs.meta().deletion_timestamp.is_some() {
            return Err(NotReady(format!(
                "ClusterSnapshot {} is being deleted",
                r.name
            )));
        }
        let st = cs.status.clone().unwrap_or_default();
        let ready = st
            .condition(crate::api::conditions::READY)
            .is_some_and(|c| c.status == "True");
        match (ready, st.engine, st.region, st.snapshot_identifier) {
            (true, Some(engine), Some(region), Some(id)) => {
                // A DocumentDB source in another region or account is named by ARN.
                let cross = engine == Engine::Docdb
                    && (region != target_region || cs.spec.account != spec.account);
                Ok(Source {
                    engine,
                    // A cross-region DocumentDB copy names its source by ARN.
                    identifier: if cross {
                        st.arn.clone().unwrap_or(id)
                    } else {
                        id
                    },
                    region,
                    cluster: st.source.filter(|_| engine == Engine::Redshift),
                })
            }
            // Pending and Creating read alike, so that the source's next phase does
            // not rewrite this object's status.
            _ if st.phase == Some(crate::api::Phase::Failed) => Err(NotReady(format!(
                "ClusterSnapshot {} failed (see its Ready condition); this copy waits until it \
                 is Ready",
                r.name
            ))),
            _ => Err(NotReady(format!(
                "ClusterSnapshot {} is not Ready yet",
                r.name
            ))),
        }
    } else if let Some(r) = &s.redshift {
        Ok(Source {
            engine: Engine::Redshift,
            region: target_region.to_string(),
            identifier: r.snapshot_identifier.clone(),
            cluster: r.cluster_identifier.clone(),
        })
    } else if let Some(d) = &s.docdb {
        let region = spec
            .source_region
            .clone()
            .or_else(|| arn_region(&d.snapshot_identifier).map(str::to_string))
            .unwrap_or_else(|| target_region.to_string());
        Ok(Source {
            engine: Engine::Docdb,
            region,
            identifier: d.snapshot_identifier.clone(),
            cluster: None,
        })
    } else if let Some(e) = &s.elasticache {
        Ok(Source {
            engine: Engine::Elasticache,
            region: target_region.to_string(),
            identifier: e.snapshot_name.clone(),
            cluster: None,
        })
    } else {
        Err(NotReady("the spec names no source".into()))
    }
}

/// What the copies of a ClusterSnapshot read of it ([`resolve`], [`source_account`],
/// [`share_missing`]), as a hash: its copies are woken when this changes (its Ready
/// condition, identifier, ARN, region, account, shares, spec or deletion), not by its
/// progress writes. Pure.
pub fn what_copies_read(cs: &ClusterSnapshot) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    let meta = cs.meta();
    meta.generation.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    meta.finalizers.hash(&mut h);
    let status = cs.status.as_ref();
    status
        .and_then(|s| s.condition(crate::api::conditions::READY))
        .map(|c| c.status.as_str())
        .hash(&mut h);
    if let Some(s) = status {
        (
            s.engine.map(|e| e.as_str()),
            &s.region,
            &s.account_id,
            &s.source,
            &s.snapshot_identifier,
            &s.arn,
            &s.shared_with,
        )
            .hash(&mut h);
    }
    Some(h.finish())
}

/// Whether a clusterSnapshotRef source is in another account than the copy (its
/// spec.account names another AWSAccount, or none), and the rule AWS sets for that:
/// only DocumentDB copies across accounts. (AWS copies a shared snapshot only within
/// its region; a copy into another region goes through an intermediate copy, see
/// [`two_hops`].) With the same AWSAccount, it must have named the same accountId when
/// the source was made. `engine` is the source's, once its status says. Pure.
pub fn source_account(
    obj: &SnapshotCopy,
    reference: Option<&ClusterSnapshot>,
    role: Option<&AccountRole>,
) -> Result<bool, SpecError> {
    let Some(cs) = reference else {
        return Ok(false);
    };
    let mine = obj.spec.account.as_deref();
    let theirs = cs.spec.account.as_deref();
    let status = cs.status.clone().unwrap_or_default();
    // Two AWSAccounts naming one account id (or one naming the source's): the same.
    let same_id = matches!(
        (status.account_id.as_deref(), role),
        (Some(theirs), Some(role)) if theirs == role.account_id
    );
    if theirs == mine || same_id {
        // The same AWSAccount, but it named another accountId when the source was made.
        if let (Some(recorded), Some(role)) = (status.account_id.as_deref(), role)
            && recorded != role.account_id
        {
            return Err(SpecError::new(
                "spec.account",
                format!(
                    "ClusterSnapshot {} is in account {recorded}, and AWSAccount {} now names \
                     account {}: the copy would be made in another account than its source \
                     and its source's AWSAccount says; fix the AWSAccount's accountId",
                    cs.name_any(),
                    mine.unwrap_or_default(),
                    role.account_id
                ),
            ));
        }
        return Ok(false);
    }
    let describe = |a: Option<&str>| {
        a.map_or("the operator's own account".to_string(), |a| {
            format!("the account of AWSAccount {a}")
        })
    };
    if let Some(engine) = status.engine
        && engine != Engine::Docdb
    {
        let instead = match engine {
            Engine::Redshift => {
                "share the ClusterSnapshot with the other account (spec.sharedWith) and restore \
                 or copy it there"
            }
            _ => "export it to S3 (spec.targetBucket) and read it from the other account",
        };
        return Err(SpecError::new(
            "spec.account",
            format!(
                "ClusterSnapshot {} is a {engine} snapshot in {}, and this copy would be in {}: \
                 AWS copies {engine} snapshots only within their account; {instead}",
                cs.name_any(),
                describe(theirs),
                describe(mine)
            ),
        ));
    }
    Ok(true)
}

/// For a copy across accounts, why the copy call cannot be sent yet: the source is not
/// shared with the destination account (`destination`; `None`: not known, nothing to
/// check). AWS shows a snapshot to another account only once it is shared. Pure.
pub fn share_missing(
    obj: &SnapshotCopy,
    cs: &ClusterSnapshot,
    destination: Option<&str>,
) -> Option<Health> {
    let destination = destination?;
    let status = cs.status.clone().unwrap_or_default();
    let shared = status
        .shared_with
        .as_ref()
        .is_some_and(|s| s.iter().any(|a| a == destination));
    if shared {
        return None;
    }
    let id = status.snapshot_identifier.unwrap_or_default();
    Some(if obj.spec.share_source_while_copying == Some(true) {
        Health::progressing(
            reasons::SOURCE_NOT_READY,
            format!(
                "waiting for ClusterSnapshot {} to share snapshot {id} with account \
                 {destination} while this object copies it (shareSourceWhileCopying)",
                cs.name_any()
            ),
        )
    } else {
        Health::stalled(
            reasons::SOURCE_NOT_READY,
            format!(
                "ClusterSnapshot {} does not share snapshot {id} with account {destination}, \
                 and AWS copies it into that account only once it does: add {destination} to \
                 its spec.sharedWith, or set spec.shareSourceWhileCopying",
                cs.name_any()
            ),
        )
    })
}

/// What the copy resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyPlan {
    /// The AWSAccount spec.account names (`None`: the operator's own account): the
    /// source is read and the copy made there.
    pub account: Option<String>,
    /// The role to work with there, once resolved (see [`aws_account::resolve`]).
    pub role: Option<AccountRole>,
    /// A source in another account not shared with this one yet: what to say while the
    /// copy call waits (see [`share_missing`]).
    pub share_wait: Option<Health>,
    /// The source is in another account (see [`source_account`]).
    pub across_accounts: bool,
    /// In another account and region: the intermediate copy made first, in the source's
    /// region (see [`two_hops`]; its identifier and region only).
    pub intermediate: Option<IntermediateCopy>,
    /// The first hop of such a copy: the KMS key the second hop will carry (see
    /// [`first_hop_plan`]).
    pub next_kms_key_id: Option<String>,
    /// The spec field of the KMS key the copy call carries, for messages.
    pub kms_field: &'static str,
    /// Batched polling, a DocumentDB ClusterSnapshot of the copy's own account as the
    /// source: the group whose listings show it, and its identifier there. The copy
    /// call's source check reads that listing (a shared one, made for the source and its
    /// siblings anyway) instead of describing the source.
    pub source_listing: Option<(super::poller::GroupKey, String)>,
    pub region: String,
    pub source: Source,
    pub desired: Desired,
    pub request: CopyRequest,
}

/// Redshift copies are tagged after CopyClusterSnapshot (it takes no tags): an untagged
/// target is the copy a failed tagging or a restart left behind, and the object's, only
/// where its status records that the copy call was sent (see
/// [`Desired::untagged_copy_is_ours`]).
fn adopts_untagged(obj: &SnapshotCopy, engine: Engine, status: &SnapshotStatus) -> bool {
    engine == Engine::Redshift
        && Desired::untagged_copy_is_ours(
            status,
            &default_identifier(
                &obj.namespace().unwrap_or_default(),
                &obj.name_any(),
                &obj.uid().unwrap_or_default(),
                engine,
            ),
        )
}

/// The deletion policy in force (see [`Defaults::deletion_policy`]); an S3 export is
/// always kept.
fn deletion_policy(
    obj: &SnapshotCopy,
    status: &SnapshotStatus,
    defaults: &Defaults,
) -> DeletionPolicy {
    if obj.spec.target_bucket.is_some() {
        return DeletionPolicy::Retain;
    }
    defaults.deletion_policy(obj.spec.deletion_policy, status.deletion_policy)
}

/// Resolves the spec against its source, the status (identity fields are fixed once
/// recorded) and the operator's region and defaults. Pure.
pub fn plan(
    obj: &SnapshotCopy,
    source: Source,
    region: String,
    defaults: &Defaults,
) -> Result<CopyPlan, SpecError> {
    let spec = &obj.spec;
    let engine = source.engine;
    validate_snapshot_copy(spec, Some(engine))?;
    let status = obj.status.clone().unwrap_or_default();
    if status.engine.is_some_and(|e| e != engine) {
        return Err(SpecError::new(
            "spec.source",
            format!(
                "is immutable: this object copies a {} snapshot",
                status.engine.unwrap()
            ),
        ));
    }
    if let (Some(recorded), Some(wanted)) = (
        &status.snapshot_identifier,
        &spec.target_snapshot_identifier,
    ) && recorded != wanted
    {
        return Err(SpecError::new(
            "spec.targetSnapshotIdentifier",
            format!("is immutable: it was {recorded}"),
        ));
    }
    if status.snapshot_identifier.is_some() && status.account != spec.account {
        return Err(SpecError::new(
            "spec.account",
            match &status.account {
                Some(a) => format!("is immutable: it was {a}"),
                None => "is immutable: the copy is in the operator's own account".to_string(),
            },
        ));
    }
    if engine != Engine::Docdb && source.region != region {
        return Err(SpecError::new(
            "spec.region",
            format!(
                "{engine} copies stay in the source's region ({}); only DocumentDB copies across regions",
                source.region
            ),
        ));
    }
    let namespace = obj.namespace().unwrap_or_default();
    let uid = obj.uid().unwrap_or_default();
    let identifier = status
        .snapshot_identifier
        .clone()
        .or_else(|| spec.target_snapshot_identifier.clone())
        .unwrap_or_else(|| default_identifier(&namespace, &obj.name_any(), &uid, engine));
    let copy_tags = spec.copy_tags.unwrap_or(false);
    // A copy that copies its source's tags takes none of the operator's defaults: the
    // source's own tags come before them (a source made by the operator carries the
    // defaults already), and such a copy never prunes tags, so a default dropped later
    // would stay on it.
    let mut tags = if copy_tags {
        spec.tags.clone()
    } else {
        defaults.tags(&spec.tags, Some(engine))?
    };
    tags.insert(OWNER_UID_TAG.to_string(), uid.clone());
    tags.insert(
        RESOURCE_TAG.to_string(),
        format!("{namespace}/SnapshotCopy/{}", obj.name_any()),
    );
    let retention = (engine == Engine::Redshift).then(|| spec.retention_days.unwrap_or(-1));
    let adopt_untagged = adopts_untagged(obj, engine, &status);
    Ok(CopyPlan {
        account: spec.account.clone(),
        role: None,
        share_wait: None,
        across_accounts: false,
        intermediate: None,
        next_kms_key_id: None,
        kms_field: "spec.kmsKeyId",
        source_listing: None,
        request: CopyRequest {
            source: source.identifier.clone(),
            source_cluster: source.cluster.clone(),
            target: identifier.clone(),
            tags: tags.clone(),
            retention_days: retention,
            kms_key_id: spec.kms_key_id.clone(),
            copy_tags,
            target_bucket: spec.target_bucket.clone(),
            source_region: (source.region != region).then(|| source.region.clone()),
        },
        desired: Desired {
            identifier,
            tags,
            prune_tags: !copy_tags,
            shared_with: spec.shared_with.clone(),
            retention_days: retention,
            owner_uid: uid,
            deletion_policy: deletion_policy(obj, &status, defaults),
            cancel_while_creating: engine == Engine::Docdb,
            recorded: Recorded::from_status(&status),
            adopt_untagged,
        },
        region,
        source,
    })
}

pub async fn reconcile(obj: Arc<SnapshotCopy>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::status::audited(obj, ctx, |obj, ctx| {
        reconcile_object(obj, ctx, apply, cleanup)
    })
    .await
}

/// `current` with the identity fields the plan fixes. The first time (no identifier
/// recorded yet) it also records that no copy call has been sent.
fn base_status(current: &SnapshotStatus, plan: &CopyPlan) -> SnapshotStatus {
    let mut status = current.clone();
    if status.snapshot_identifier.is_none() {
        status.copy_requested = Some(false);
    }
    status.engine = Some(plan.source.engine);
    status.region = Some(plan.region.clone());
    status.account = plan.account.clone();
    status.account_id = plan.role.as_ref().map(|r| r.account_id.clone());
    // An ARN source shows as its identifier, with the ARN beside it.
    let id = &plan.source.identifier;
    let short = if id.starts_with("arn:") {
        id.rsplit(':').next().unwrap_or(id)
    } else {
        id
    };
    status.source = Some(short.to_string());
    status.source_snapshot_identifier = Some(short.to_string());
    if id.starts_with("arn:") {
        status.source_arn = Some(id.clone());
    }
    status.snapshot_identifier = Some(plan.desired.identifier.clone());
    // The intermediate copy's name and place, recorded before it is made (so that a
    // deletion finds it whatever happens after its copy call).
    if status.intermediate.is_none() {
        status.intermediate = plan.intermediate.clone();
    }
    drive::record_applied(&mut status, &plan.desired);
    status
}

async fn apply(
    api: &Api<SnapshotCopy>,
    obj: &SnapshotCopy,
    ctx: &Context,
) -> Result<Action, Error> {
    let old = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    if let Err(e) = validate_snapshot_copy(&obj.spec, copy_engine(&obj.spec)) {
        return invalid_spec(api, ctx, obj, &old, &e).await;
    }
    let Some(region) = old
        .region
        .clone()
        .or_else(|| obj.spec.region.clone())
        .or_else(|| ctx.engines.default_region())
    else {
        let e = SpecError::new(
            "spec.region",
            "is not set and the operator has no default region: set spec.region, or run the \
             operator with --region or AWS_REGION"
                .to_string(),
        );
        return invalid_spec(api, ctx, obj, &old, &e).await;
    };
    if let (Some(recorded), Some(wanted)) = (&old.region, &obj.spec.region)
        && recorded != wanted
    {
        let e = SpecError::new("spec.region", format!("is immutable: it was {recorded}"));
        return invalid_spec(api, ctx, obj, &old, &e).await;
    }
    if let (Some(recorded), wanted) = (&old.snapshot_identifier, &obj.spec.account)
        && old.account != *wanted
    {
        let e = SpecError::new(
            "spec.account",
            format!(
                "is immutable: the copy {recorded} is in {}",
                old.account
                    .as_deref()
                    .map_or("the operator's own account".to_string(), |a| format!(
                        "the account of AWSAccount {a}"
                    ))
            ),
        );
        return invalid_spec(api, ctx, obj, &old, &e).await;
    }
    // The account is resolved before anything is read or called there.
    let role = match aws_account::resolve(
        ctx,
        &obj.namespace().unwrap_or_default(),
        obj.spec.account.as_deref(),
        old.account_id.as_deref(),
    )
    .await
    {
        Ok(role) => role,
        Err(problem) => return account_problem(api, ctx, obj, &old, problem).await,
    };
    // From the cache (its changes that matter here wake this object: run.rs), else read.
    let reference = match &obj.spec.source.cluster_snapshot_ref {
        Some(r) => {
            let namespace = obj.namespace().unwrap_or_default();
            match &ctx.snapshots {
                // (Once it holds its first full list: else one not listed yet would
                // read as missing.)
                Some(store)
                    if tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        store.wait_until_ready(),
                    )
                    .await
                    .is_ok_and(|r| r.is_ok()) =>
                {
                    store
                        .get(&ObjectRef::new(&r.name).within(&namespace))
                        .map(|cs| (*cs).clone())
                }
                _ => {
                    let snapshots: Api<ClusterSnapshot> =
                        Api::namespaced(ctx.client.clone(), &namespace);
                    snapshots.get_opt(&r.name).await?
                }
            }
        }
        None => None,
    };
    // A source in another account: AWS's rules first, then whether it is shared yet.
    let mut share_wait = None;
    let across = source_account(obj, reference.as_ref(), role.as_ref());
    let across_accounts = match &across {
        Ok(a) => *a,
        Err(_) => reference
            .as_ref()
            .is_some_and(|cs| cs.spec.account != obj.spec.account),
    };
    if old.copy_requested != Some(true) {
        match across {
            Err(e) if old.snapshot_identifier.is_none() => {
                return invalid_spec(api, ctx, obj, &old, &e).await;
            }
            // (Recorded before the spec changed: the share is still checked.)
            Ok(true) | Err(_) if across_accounts => {
                let destination = match &role {
                    Some(r) => r.account_id.clone(),
                    None => ctx.engines.own_account().await?,
                };
                share_wait = reference
                    .as_ref()
                    .and_then(|cs| share_missing(obj, cs, Some(&destination)));
            }
            _ => {}
        }
    }
    let source = match resolve(obj, &region, reference.as_ref()) {
        Ok(s) => s,
        Err(NotReady(why)) => {
            // Once the copy was recorded the source no longer matters (it may go).
            if old.snapshot_identifier.is_none() {
                let mut status = old.clone();
                status.phase = Some(Phase::Pending);
                status.ready_to_use = Some(false);
                let status = with_health(
                    status,
                    &Health::progressing(reasons::SOURCE_NOT_READY, why),
                    generation,
                );
                write_status(api, ctx, obj, &old, &status).await?;
                // Nothing on AWS is looked at: the ClusterSnapshot's changes wake this
                // object (the controller watches them); the requeue is a safety net.
                return Ok(Action::requeue(drive::safety_net(&ctx.timing)));
            }
            recorded_source(&old).ok_or_else(|| {
                Error::Kube(kube::Error::Service(
                    format!("SnapshotCopy {} lost its recorded source", obj.name_any()).into(),
                ))
            })?
        }
    };
    let plan = match plan(obj, source, region, &ctx.defaults) {
        Ok(p) => CopyPlan {
            role,
            share_wait,
            across_accounts,
            ..p
        },
        Err(e) => return invalid_spec(api, ctx, obj, &old, &e).await,
    };
    // A source named by ARN, shared from another account and in another region.
    let shared_arn = match arn_parts(&plan.source.identifier) {
        Some((account, region)) if region != plan.region && obj.spec.source.docdb.is_some() => {
            let destination = match &plan.role {
                Some(r) => r.account_id.clone(),
                None => ctx.engines.own_account().await?,
            };
            account != destination
        }
        _ => false,
    };
    let plan = CopyPlan {
        across_accounts: plan.across_accounts || shared_arn,
        // Once recorded, the intermediate copy stays part of the copy (its source may
        // since be gone).
        intermediate: old.intermediate.clone().or_else(|| {
            two_hops(
                plan.across_accounts || shared_arn,
                &plan.source,
                &plan.region,
            )
            .map(|region| IntermediateCopy {
                snapshot_identifier: intermediate_identifier(obj),
                region,
                ..Default::default()
            })
        }),
        ..plan
    };
    if plan.intermediate.is_none() && obj.spec.intermediate_kms_key_id.is_some() {
        let e = SpecError::new(
            "spec.intermediateKmsKeyId",
            format!(
                "this copy needs no intermediate copy (only a DocumentDB source in another \
                 account and another region than the copy's, {}, is copied through one); \
                 create the SnapshotCopy again without it",
                plan.region
            ),
        );
        return invalid_spec(api, ctx, obj, &old, &e).await;
    }
    let mut current = old.clone();
    if old.snapshot_identifier.is_none() {
        let base = base_status(&old, &plan);
        current = if plan.intermediate.is_none() && plan.request.target_bucket.is_none() {
            // Written with the copy call's own record, just before the call (one write
            // instead of two); a pass that makes no call writes it with its status.
            recorded(obj, base, &plan.desired.identifier)
        } else {
            record(api, ctx, obj, &old, base, &plan.desired.identifier).await?
        };
    }
    if plan.request.target_bucket.is_some() {
        return export(api, ctx, obj, &current, &plan).await;
    }
    // Across accounts and regions: the intermediate copy first, then the copy is made
    // of it.
    let copied = match &plan.intermediate {
        Some(_) if current.copy_requested == Some(true) => {
            let arn = current.intermediate.as_ref().and_then(|i| i.arn.clone());
            second_hop(&plan, arn.unwrap_or_default())
        }
        Some(_) => match first_hop(api, ctx, obj, &current, &plan).await? {
            // (first_hop records the intermediate copy's name before its copy call.)
            Hop::Made(status) => {
                current = *status;
                let arn = current.intermediate.as_ref().and_then(|i| i.arn.clone());
                second_hop(&plan, arn.unwrap_or_default())
            }
            Hop::Wait(action) => return Ok(action),
        },
        None => CopyPlan {
            source_listing: source_listing(ctx, obj, &plan, reference.as_ref()),
            ..plan.clone()
        },
    };
    let target = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.source.engine, &plan.region);
    let mut batch = batch(ctx, obj, &plan, reference.as_ref());
    if let Some(b) = &mut batch {
        // Recorded by this very pass: no copy can have been asked for yet.
        b.first_pass = old.snapshot_identifier.is_none();
    }
    let mut call = CallRecord::new(api, ctx, obj, &current);
    let converged = drive::converge(
        &target,
        &plan.desired,
        &current,
        &ctx.timing,
        batch.as_ref(),
        || request_copy(ctx, &copied, &mut call),
    )
    .await;
    let current = call.finish()?;
    let (mut decision, observed) = match converged {
        Ok(c) => c,
        // The copy call refused for now (DocumentDB's source cluster busy, or AWS
        // throttling it): said on the object, retried with the error policy's backoff.
        Err(Error::Engine(e))
            if matches!(
                e.class,
                ErrorClass::SourceUnavailable | ErrorClass::Throttled
            ) && e.action.starts_with("Copy")
                && current
                    .condition(crate::api::conditions::READY)
                    .is_none_or(|c| c.status != "True") =>
        {
            let reason = if e.class == ErrorClass::SourceUnavailable {
                reasons::SOURCE_NOT_READY.to_string()
            } else {
                current
                    .condition(crate::api::conditions::READY)
                    .map(|c| c.reason.clone())
                    .unwrap_or_else(|| reasons::PENDING.to_string())
            };
            let what = e
                .code
                .as_deref()
                .map(|c| format!("{c}: {}", e.message))
                .unwrap_or_else(|| e.message.clone());
            let message = if e.class == ErrorClass::SourceUnavailable {
                format!(
                    "AWS cannot copy {} now ({what}); trying again with backoff",
                    plan.request.source
                )
            } else {
                format!(
                    "waiting: AWS is throttling {} {} ({what}); retrying with backoff",
                    e.service, e.action
                )
            };
            let status = with_health(
                base_status(&current, &plan),
                &Health::progressing(&reason, message),
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
            &target,
            obj,
            &plan.desired.identifier,
            &mut decision,
            &observed,
        );
    }
    // (A source in another account: AWS's CopyTags copies them; its tags cannot be read
    // from this account.)
    if plan.request.copy_tags
        && plan.source.engine == Engine::Docdb
        && !plan.across_accounts
        && plan.intermediate.is_none()
        && !source_in_another_account(ctx, &plan).await?
        && decision.owned
        && decision.phase == Phase::Available
        && current.phase != Some(Phase::Available)
    {
        copy_source_tags(ctx, &plan, &target).await?;
    }
    if let (Health::Stalled { message, .. }, Observation::Found(s)) =
        (&mut decision.health, &observed)
        && decision.owned
        && s.tags.as_ref().is_some_and(|t| t.is_empty())
    {
        message.push_str(&format!(
            " (the copy {} is not tagged yet; tagging it is retried)",
            plan.desired.identifier
        ));
    }
    let base = base_status(&current, &plan);
    let source_arn = base.source_arn.clone();
    let mut status = drive::status_after(base, &decision, &observed);
    if plan.intermediate.is_some() {
        // AWS names the intermediate copy as the copy's source; the source is the one
        // the spec names.
        status.source_arn = source_arn;
    }
    // The copy made, or failed on AWS (a failed snapshot is never made good): the
    // intermediate copy goes. (A copy call refused is tried again, from it.)
    let failed_on_aws =
        matches!(&observed, Observation::Found(s) if s.state() == SnapshotState::Failed);
    if decision.owned
        && (decision.phase == Phase::Available || failed_on_aws)
        && let Some(i) = current
            .intermediate
            .as_ref()
            .filter(|i| i.deleted != Some(true))
    {
        let requeue = match drop_intermediate(ctx, obj, &plan, i).await {
            Ok((gone, requeue)) => {
                status.intermediate = Some(gone);
                requeue
            }
            // Said on the object (the copy itself is made), and tried again.
            Err(e) => {
                if let Health::Ready { message } = &mut decision.health {
                    message.push_str(&format!(
                        " (deleting the intermediate copy {} in {} failed: {e}; retrying)",
                        i.snapshot_identifier, i.region
                    ));
                }
                Some(if e.class.is_retryable() {
                    ctx.timing.max_poll
                } else {
                    ctx.timing.resync
                })
            }
        };
        decision.requeue = match (requeue, decision.requeue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let status = with_health(status, &decision.health, generation);
    write_status(api, ctx, obj, &current, &status).await?;
    Ok(action(decision.requeue))
}

/// Batched polling for a copy, when the operator polls that way and one listing shows
/// the copy: a DocumentDB copy of a ClusterSnapshot (`clusterSnapshotRef`, in the same
/// account), made in one hop, not exported. `DescribeDBClusterSnapshots` by
/// `DBClusterIdentifier` lists it in its own region with the source's other snapshots,
/// as a copy keeps its source cluster's identifier; so it shares the source's poller
/// there. Other copies (ElastiCache's, whose listings by replication group or cache
/// cluster AWS does not document to include copies; Redshift's, of automated snapshots;
/// copies across accounts, whose listing is another account's) describe their own. Once
/// the ClusterSnapshot is gone, the listing that shows the copy still serves.
fn batch(
    ctx: &Context,
    obj: &SnapshotCopy,
    plan: &CopyPlan,
    reference: Option<&ClusterSnapshot>,
) -> Option<drive::Batch> {
    let pollers = ctx.pollers.clone()?;
    if plan.across_accounts || plan.intermediate.is_some() || plan.request.target_bucket.is_some() {
        return None;
    }
    let key = match batch_source(obj, reference, plan.source.engine) {
        Some(cluster) => copy_group(plan.role.clone(), &plan.region, cluster),
        // Its ClusterSnapshot gone (a copy outlives its source): the listing that shows
        // the copy already, if this process has one (as for a cleanup).
        None if reference.is_none()
            && plan.source.engine == Engine::Docdb
            && obj.spec.source.cluster_snapshot_ref.is_some()
            && obj
                .status
                .as_ref()
                .is_some_and(|s| s.snapshot_identifier.is_some()) =>
        {
            pollers.group_holding(
                plan.role.as_ref(),
                Engine::Docdb,
                &plan.region,
                &plan.desired.identifier,
            )?
        }
        None => return None,
    };
    let in_sync = obj.status.as_ref().is_some_and(|s| {
        s.condition(crate::api::conditions::READY)
            .is_some_and(|c| c.status == "True" && c.observed_generation == obj.metadata.generation)
    });
    let (detail_known, dirty) = ctx.look(
        &obj.uid().unwrap_or_default(),
        obj.metadata.generation,
        in_sync,
    );
    Some(drive::Batch {
        pollers,
        key,
        wake: copy_wake(ctx, obj)?,
        detail_known,
        dirty,
        first_pass: false,
    })
}

/// The source cluster whose listing shows the copy, if one does: a DocumentDB copy of a
/// ClusterSnapshot in the copy's own account (the same AWSAccount, or none), from the
/// source's status. Pure.
pub fn batch_source(
    obj: &SnapshotCopy,
    reference: Option<&ClusterSnapshot>,
    engine: Engine,
) -> Option<String> {
    let cs = reference?;
    obj.spec.source.cluster_snapshot_ref.as_ref()?;
    let status = cs.status.as_ref()?;
    (engine == Engine::Docdb
        && status.engine == Some(Engine::Docdb)
        && cs.spec.account == obj.spec.account
        && obj.spec.target_bucket.is_none())
    .then(|| status.source.clone())
    .flatten()
}

/// The listing that shows the copy's source, where batched polling lists it (see
/// [`CopyPlan::source_listing`]): a DocumentDB ClusterSnapshot of the copy's own
/// account, copied in one hop.
fn source_listing(
    ctx: &Context,
    obj: &SnapshotCopy,
    plan: &CopyPlan,
    reference: Option<&ClusterSnapshot>,
) -> Option<(super::poller::GroupKey, String)> {
    ctx.pollers.as_ref()?;
    if plan.across_accounts || plan.intermediate.is_some() {
        return None;
    }
    let cluster = batch_source(obj, reference, plan.source.engine)?;
    let status = reference?.status.as_ref()?;
    let identifier = status.snapshot_identifier.clone()?;
    // Only for the very snapshot the copy call names (a source recorded before the
    // ClusterSnapshot changed, say recreated, is described).
    let named = &plan.source.identifier;
    if !named.eq_ignore_ascii_case(&identifier) && status.arn.as_deref() != Some(named.as_str()) {
        return None;
    }
    Some((
        copy_group(plan.role.clone(), &plan.source.region, cluster),
        identifier,
    ))
}

pub(super) fn copy_group(
    account: Option<AccountRole>,
    region: &str,
    cluster: String,
) -> super::poller::GroupKey {
    super::poller::GroupKey {
        account,
        engine: Engine::Docdb,
        region: region.to_string(),
        source: crate::engine::SourceRef {
            id: cluster,
            replication_group: false,
        },
    }
}

fn copy_wake(ctx: &Context, obj: &SnapshotCopy) -> Option<super::poller::Wake> {
    let tx = ctx.wake_copy.clone()?;
    let target = ObjectRef::from_obj(obj);
    Some(Arc::new(move || {
        let _ = tx.unbounded_send(target.clone());
    }))
}

/// Whether a copy goes through an intermediate copy, and where that is made: a
/// DocumentDB source in another account (`across_accounts`) and another region than
/// the copy's. AWS copies a snapshot shared from another account "only ... in the same
/// Amazon Web Services Region", so it is first copied into the destination account in
/// the source's region, and that copy (the destination account's own) is copied across
/// regions. Pure.
pub fn two_hops(across_accounts: bool, source: &Source, region: &str) -> Option<String> {
    (across_accounts && source.engine == Engine::Docdb && source.region != region)
        .then(|| source.region.clone())
}

/// The intermediate copy's identifier: the object's own (`<namespace>-<name>-hop-<uid>`,
/// the namespace and name shortened first), never a copy's default, so that it
/// collides with no other copy or snapshot in the source's region.
pub fn intermediate_identifier(obj: &SnapshotCopy) -> String {
    let uid: String = obj
        .uid()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let uid = if uid.is_empty() { "0".to_string() } else { uid };
    let marker = format!("-hop-{uid}");
    let head = crate::naming::sanitize(
        &format!("{}-{}", obj.namespace().unwrap_or_default(), obj.name_any()),
        Engine::Docdb.max_identifier_len() - marker.len(),
    );
    format!("{head}{marker}")
}

/// Whether a source named by ARN is in another account than the copy: its tags cannot
/// be read from there (AWS's CopyTags copies them).
async fn source_in_another_account(ctx: &Context, plan: &CopyPlan) -> Result<bool, EngineError> {
    let Some((account, _)) = arn_parts(&plan.source.identifier) else {
        return Ok(false);
    };
    let here = match &plan.role {
        Some(r) => r.account_id.clone(),
        None => ctx.engines.own_account().await?,
    };
    Ok(account != here)
}

/// The account and region of an ARN (`arn:aws:rds:<region>:<account>:...`).
fn arn_parts(s: &str) -> Option<(&str, &str)> {
    let mut parts = s.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    let region = parts.nth(2).filter(|r| !r.is_empty())?;
    let account = parts.next().filter(|a| !a.is_empty())?;
    Some((account, region))
}

/// The first hop of a copy across accounts and regions: the source copied into the
/// destination account in its own region, under the copy's identifier, with the copy's
/// tags (so it is the object's by its owner tag), kept until the copy is made. Never
/// shared, and always deleted (whatever the deletion policy). Pure.
pub fn first_hop_plan(
    plan: &CopyPlan,
    spec_kms: Option<&str>,
    status: &SnapshotStatus,
) -> CopyPlan {
    let place = status
        .intermediate
        .clone()
        .or_else(|| plan.intermediate.clone())
        .unwrap_or_default();
    let recorded = status.intermediate.as_ref().map(intermediate_status);
    let mut hop = plan.clone();
    hop.request.target = place.snapshot_identifier.clone();
    hop.request.source_region = None;
    hop.request.kms_key_id = spec_kms.map(str::to_string);
    hop.request.retention_days = None;
    hop.kms_field = "spec.intermediateKmsKeyId";
    hop.source_listing = None;
    hop.next_kms_key_id = plan.request.kms_key_id.clone();
    hop.desired = Desired {
        identifier: place.snapshot_identifier,
        shared_with: Vec::new(),
        prune_tags: false,
        retention_days: None,
        deletion_policy: DeletionPolicy::Delete,
        cancel_while_creating: true,
        adopt_untagged: false,
        recorded: recorded.as_ref().and_then(Recorded::from_status),
        ..plan.desired.clone()
    };
    hop.intermediate = None;
    hop.region = place.region;
    hop
}

/// The second hop: the intermediate copy (`arn`, the destination account's own, in the
/// source's region) copied across regions; nothing to share any more. Pure.
pub fn second_hop(plan: &CopyPlan, arn: String) -> CopyPlan {
    let region = plan
        .intermediate
        .as_ref()
        .map_or_else(|| plan.source.region.clone(), |i| i.region.clone());
    let mut hop = plan.clone();
    hop.share_wait = None;
    hop.across_accounts = false;
    hop.source_listing = None;
    hop.request.source = arn.clone();
    hop.request.source_region = Some(region.clone());
    hop.source = Source {
        engine: plan.source.engine,
        region,
        identifier: arn,
        cluster: None,
    };
    hop
}

/// The intermediate copy's record as a status, for the reconcile loop to look at it
/// with.
fn intermediate_status(i: &IntermediateCopy) -> SnapshotStatus {
    SnapshotStatus {
        arn: i.arn.clone(),
        creation_time: i.creation_time.clone(),
        phase: i.phase,
        shared_with: Some(Vec::new()),
        ..Default::default()
    }
}

/// Where the first hop stands.
enum Hop {
    /// The intermediate copy is available; the status (written) records it.
    Made(Box<SnapshotStatus>),
    /// Not yet: the status says why, and when to look again.
    Wait(Action),
}

/// One pass of the first hop: look at the intermediate copy, make it if missing (the
/// source checked and, for a ClusterSnapshot in another account, shared first), and
/// record it in status.
async fn first_hop(
    api: &Api<SnapshotCopy>,
    ctx: &Context,
    obj: &SnapshotCopy,
    current: &SnapshotStatus,
    plan: &CopyPlan,
) -> Result<Hop, Error> {
    // Its name and place recorded before anything is called (a status recorded before
    // two hops were needed, by an older version, lacks them).
    let recorded;
    let current = if current.intermediate.is_none() {
        recorded = base_status(current, plan);
        write_status(api, ctx, obj, current, &recorded).await?;
        &recorded
    } else {
        current
    };
    let hop = first_hop_plan(plan, obj.spec.intermediate_kms_key_id.as_deref(), current);
    let mut record = IntermediateCopy {
        snapshot_identifier: hop.desired.identifier.clone(),
        region: hop.region.clone(),
        ..current.intermediate.clone().unwrap_or_default()
    };
    let engine = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.source.engine, &hop.region);
    let (decision, observed) = drive::converge(
        &engine,
        &hop.desired,
        &intermediate_status(&record),
        &ctx.timing,
        None,
        || async {
            match check_source(ctx, &hop).await? {
                Ok(request) => engine
                    .copy(&request)
                    .await
                    .map(|s| Creation::Created(Box::new(s))),
                Err(blocked) => Ok(blocked),
            }
        },
    )
    .await?;
    if decision.owned
        && let Observation::Found(s) = &observed
    {
        record.arn = s.arn.clone();
        record.creation_time = s.created.clone();
        record.aws_status = Some(s.aws_status.clone());
    }
    record.phase = Some(decision.phase);
    let mut status = base_status(current, plan);
    status.intermediate = Some(record.clone());
    if decision.owned && decision.phase == Phase::Available && record.arn.is_some() {
        write_status(api, ctx, obj, current, &status).await?;
        return Ok(Hop::Made(Box::new(status)));
    }
    let place = format!(
        "the intermediate copy {} in {} (AWS copies a snapshot shared from another account \
         only within its region; it is copied to {} next)",
        record.snapshot_identifier, record.region, plan.region
    );
    let health = match &decision.health {
        // (A refusal keeps the field it names first.)
        Health::Stalled { reason, message } => {
            Health::stalled(reason, format!("{message} (making {place})"))
        }
        other => Health::progressing(
            match other {
                Health::Progressing { reason, .. } => reason,
                _ => reasons::COPYING,
            },
            format!("{place}: {}", other.message()),
        ),
    };
    status.phase = Some(match decision.phase {
        Phase::Available => Phase::Creating,
        p => p,
    });
    status.ready_to_use = Some(false);
    let status = with_health(status, &health, obj.metadata.generation);
    write_status(api, ctx, obj, current, &status).await?;
    Ok(Hop::Wait(action(decision.requeue)))
}

/// Deletes the intermediate copy `i` (only where it is the object's): its record, and
/// when to look again while AWS deletes it.
async fn drop_intermediate(
    ctx: &Context,
    obj: &SnapshotCopy,
    plan: &CopyPlan,
    i: &IntermediateCopy,
) -> Result<(IntermediateCopy, Option<std::time::Duration>), EngineError> {
    let desired = intermediate_desired(obj, i);
    let engine = ctx
        .engines
        .get_in(plan.role.as_ref(), Engine::Docdb, &i.region);
    let (decision, _) = drive::converge_cleanup(
        &engine,
        &desired,
        &intermediate_status(i),
        &ctx.timing,
        None,
    )
    .await?;
    let mut record = i.clone();
    if decision.finished {
        record.deleted = Some(true);
        record.phase = None;
        record.aws_status = None;
        Ok((record, None))
    } else {
        record.phase = Some(Phase::Deleting);
        Ok((record, decision.requeue))
    }
}

/// What deleting the intermediate copy `i` aims at: the object's (owner tag, or the
/// recorded ARN and creation time), cancelled while AWS still copies it.
fn intermediate_desired(obj: &SnapshotCopy, i: &IntermediateCopy) -> Desired {
    Desired {
        identifier: i.snapshot_identifier.clone(),
        tags: Default::default(),
        prune_tags: false,
        shared_with: Vec::new(),
        retention_days: None,
        owner_uid: obj.uid().unwrap_or_default(),
        deletion_policy: DeletionPolicy::Delete,
        cancel_while_creating: true,
        recorded: Recorded::from_status(&intermediate_status(i)),
        adopt_untagged: false,
    }
}

/// DocumentDB `copyTags`: once the copy is available, the source's tags it lacks (never
/// the source's `dbsnapshot.io/` ones) are set on it, with one AddTagsToResource and only
/// when some are missing. AWS may copy the source's tags only when the copy request
/// carries no tags of its own (the request always carries the ownership tags), or merge
/// both; either way the copy ends up with them. A source that is gone by then has no
/// tags to read, and nothing is added.
async fn copy_source_tags(
    ctx: &Context,
    plan: &CopyPlan,
    target: &Arc<dyn crate::engine::SnapshotEngine>,
) -> Result<(), EngineError> {
    let lookup_region = arn_region(&plan.source.identifier).unwrap_or(&plan.source.region);
    let source = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.source.engine, lookup_region)
        .describe(&plan.source.identifier, true)
        .await?;
    let Some(source_tags) = source.and_then(|s| s.tags) else {
        return Ok(());
    };
    let Some(copy) = target.describe(&plan.desired.identifier, true).await? else {
        return Ok(());
    };
    let missing = lifecycle::missing_source_tags(
        &source_tags,
        copy.tags.as_ref().unwrap_or(&Default::default()),
        &plan.desired.tags,
    );
    if missing.is_empty() {
        return Ok(());
    }
    target.tag(&copy, &missing, &[]).await
}

/// The source as recorded in status, for copies whose ClusterSnapshot went away after
/// the copy started.
fn recorded_source(status: &SnapshotStatus) -> Option<Source> {
    let identifier = status
        .source_arn
        .clone()
        .filter(|a| a.starts_with("arn:"))
        .or(status.source_snapshot_identifier.clone())?;
    Some(Source {
        engine: status.engine?,
        // A source in another region is named by its ARN.
        region: arn_region(&identifier)
            .map(str::to_string)
            .or(status.region.clone())?,
        identifier,
        cluster: None,
    })
}

/// The record in status of the copy call (`copyRequested`), written by server-side
/// apply around the call, and the status as last written.
struct CallRecord<'a> {
    api: &'a Api<SnapshotCopy>,
    ctx: &'a Context,
    obj: &'a SnapshotCopy,
    status: SnapshotStatus,
    /// A write that failed.
    error: Option<kube::Error>,
}

impl<'a> CallRecord<'a> {
    fn new(
        api: &'a Api<SnapshotCopy>,
        ctx: &'a Context,
        obj: &'a SnapshotCopy,
        current: &SnapshotStatus,
    ) -> Self {
        Self {
            api,
            ctx,
            obj,
            status: current.clone(),
            error: None,
        }
    }

    fn sent(&self) -> bool {
        self.status.copy_requested == Some(true)
    }

    /// Records whether the call may have been sent; false when the write failed.
    async fn write(&mut self, requested: bool) -> bool {
        let mut status = self.status.clone();
        status.copy_requested = Some(requested);
        match super::write_status_announcing(
            self.api,
            self.ctx,
            self.obj,
            &self.status,
            &status,
            false,
        )
        .await
        {
            Ok(()) => {
                self.status = status;
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// The status as last written, or the write that failed.
    fn finish(self) -> Result<SnapshotStatus, Error> {
        match self.error {
            Some(e) => Err(e.into()),
            None => Ok(self.status),
        }
    }
}

/// Whether AWS answered the copy call itself with a refusal, so that it made nothing: a
/// code, not a 5xx or a lost answer, and not the tagging that follows a Redshift copy.
/// AlreadyExists counts only for a call recorded in this very pass (`fresh`): the
/// snapshot was there before it; otherwise an earlier call may have made it.
fn refused(e: &EngineError, fresh: bool) -> bool {
    e.action.starts_with("Copy")
        && e.code.is_some()
        && e.class != ErrorClass::Transient
        && (e.class != ErrorClass::AlreadyExists || fresh)
}

/// Checks the source, records in status that the copy call is being sent, then sends
/// it. A call AWS refused is recorded as not sent; a Redshift copy whose tagging failed
/// says so (it is tagged on a later pass, as the object's own).
async fn request_copy(
    ctx: &Context,
    plan: &CopyPlan,
    call: &mut CallRecord<'_>,
) -> Result<Creation, EngineError> {
    let request = match check_source(ctx, plan).await? {
        Ok(request) => request,
        Err(blocked) => return Ok(blocked),
    };
    let fresh = !call.sent();
    if fresh && !call.write(true).await {
        return Ok(Creation::Blocked {
            phase: Phase::Pending,
            health: Health::progressing(
                reasons::PENDING,
                "recording the copy call in status failed; retrying".to_string(),
            ),
            requeue: Some(ctx.timing.min_poll),
        });
    }
    let target = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.source.engine, &plan.region);
    match target.copy(&request).await {
        Ok(s) => Ok(Creation::Created(Box::new(s))),
        // An export asked again, refused because its key is taken: the first call wrote
        // it, so the record of the call stands.
        Err(e)
            if !fresh
                && plan.request.target_bucket.as_deref().is_some_and(|b| {
                    lifecycle::export_key_taken(
                        e.code.as_deref(),
                        &e.message,
                        b,
                        &plan.desired.identifier,
                    )
                }) =>
        {
            Err(e)
        }
        Err(e) if refused(&e, fresh) => {
            call.write(false).await;
            Err(e)
        }
        Err(mut e) if !e.action.starts_with("Copy") => {
            e.message = format!(
                "{} (the copy {} was made but is not tagged yet; tagging it is retried)",
                e.message, plan.desired.identifier
            );
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Checks the source on AWS: the request to send, or why the copy must wait or cannot
/// be made.
async fn check_source(
    ctx: &Context,
    plan: &CopyPlan,
) -> Result<Result<CopyRequest, Creation>, EngineError> {
    if let Some(health) = &plan.share_wait {
        return Ok(Err(Creation::Blocked {
            phase: Phase::Pending,
            health: health.clone(),
            requeue: Some(drive::safety_net(&ctx.timing)),
        }));
    }
    // A source named by ARN is looked up in the ARN's region; AWS judges whether the
    // presigned request (signed for the source region) matches it.
    let lookup_region = arn_region(&plan.source.identifier).unwrap_or(&plan.source.region);
    let source_engine = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.source.engine, lookup_region);
    let listed = match (&plan.source_listing, &ctx.pollers) {
        (Some((key, identifier)), Some(pollers)) => {
            match pollers
                .view(key, &source_engine, identifier, pollers.max_age())
                .await
            {
                // Available there: the check needs no other look. Anything else (not
                // listed yet, a listing older than the source's Ready, or a listing AWS
                // refused) is described, as without batched polling; throttled or
                // unreachable, the pass is retried instead.
                Ok(super::poller::Listed::Present(s)) if s.state() == SnapshotState::Available => {
                    Some(*s)
                }
                Ok(_) => None,
                Err(e) if e.class.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::debug!(source = %identifier, error = %e, "no listing of the source; describing it");
                    None
                }
            }
        }
        _ => None,
    };
    let described = match listed {
        Some(s) => Some(s),
        None => {
            source_engine
                .describe(&plan.source.identifier, false)
                .await?
        }
    };
    let Some(source) = described else {
        return Ok(Err(Creation::Blocked {
            phase: Phase::Failed,
            health: Health::stalled(
                reasons::INVALID_SOURCE,
                format!(
                    "the source snapshot {} does not exist in {}",
                    plan.source.identifier, plan.source.region
                ),
            ),
            requeue: Some(ctx.timing.resync),
        }));
    };
    if plan.source.engine == Engine::Redshift
        && source.snapshot_type.as_deref() != Some("automated")
    {
        return Ok(Err(Creation::Blocked {
            phase: Phase::Failed,
            health: Health::stalled(
                reasons::INVALID_SOURCE,
                format!(
                    "{} is a {} snapshot: Redshift copies only automated snapshots (CopyClusterSnapshot); \
                     a manual snapshot is already kept until its retention ends, so name an automated \
                     snapshot (rs:...) as the source",
                    plan.source.identifier,
                    source.snapshot_type.as_deref().unwrap_or("manual")
                ),
            ),
            requeue: None,
        }));
    }
    if plan.source.engine == Engine::Docdb
        && let Err(e) = docdb_source_rules(plan, &source)
    {
        return Ok(Err(Creation::Blocked {
            phase: Phase::Failed,
            health: Health::stalled(reasons::INVALID_SPEC, e.to_string()),
            requeue: None,
        }));
    }
    if matches!(
        source.state(),
        SnapshotState::Failed | SnapshotState::Deleting
    ) {
        return Ok(Err(Creation::Blocked {
            phase: Phase::Failed,
            health: Health::stalled(
                reasons::INVALID_SOURCE,
                format!(
                    "the source snapshot {} is {}: it cannot be copied",
                    plan.source.identifier, source.aws_status
                ),
            ),
            requeue: Some(ctx.timing.resync),
        }));
    }
    if source.state() != SnapshotState::Available {
        return Ok(Err(Creation::Blocked {
            phase: Phase::Pending,
            health: Health::progressing(
                reasons::SOURCE_NOT_READY,
                format!(
                    "the source snapshot {} is {}; copying once it is available",
                    plan.source.identifier, source.aws_status
                ),
            ),
            // Watched at the pace AWS's figures suggest (ElastiCache gives none).
            requeue: Some(lifecycle::watch_poll(
                &source,
                drive::elapsed(&source),
                &ctx.timing,
            )),
        }));
    }
    let mut request = plan.request.clone();
    if request.source_region.is_some()
        && let Some(arn) = &source.arn
    {
        request.source = arn.clone();
    }
    Ok(Ok(request))
}

/// CopyDBClusterSnapshot's rules on the described DocumentDB source (see
/// [`check_docdb_copy_source`]); a source another account shared is named by its ARN.
fn docdb_source_rules(plan: &CopyPlan, source: &crate::engine::Snapshot) -> Result<(), SpecError> {
    let id = &plan.source.identifier;
    let shared_by = (source.snapshot_type.as_deref() == Some(crate::engine::docdb::SHARED))
        .then(|| id.split(':').nth(4))
        .flatten();
    check_docdb_copy_source(
        &DocdbCopySource {
            identifier: id,
            shared_by,
            encrypted: source.encrypted,
            region: &plan.source.region,
        },
        plan.request.kms_key_id.as_deref(),
        plan.kms_field,
        &plan.region,
    )?;
    // The first hop of a copy across regions: the second needs a key of its region
    // for an encrypted source, and refuses one for an unencrypted source; both refused
    // before anything is copied.
    if plan.kms_field == "spec.intermediateKmsKeyId"
        && source.encrypted == Some(false)
        && let Some(key) = &plan.next_kms_key_id
    {
        return Err(SpecError::new(
            "spec.kmsKeyId",
            format!(
                "{id} is not encrypted, and AWS refuses a KMS key ({key}) for a copy of an \
                 unencrypted DocumentDB snapshot (it never encrypts one). Create the \
                 SnapshotCopy again without spec.kmsKeyId"
            ),
        ));
    }
    if plan.kms_field == "spec.intermediateKmsKeyId"
        && source.encrypted == Some(true)
        && plan.next_kms_key_id.is_none()
    {
        return Err(SpecError::new(
            "spec.kmsKeyId",
            format!(
                "{id} is encrypted: AWS copies an encrypted snapshot into another region only \
                 with a KMS key of that region to encrypt the copy with. Create the \
                 SnapshotCopy again with spec.kmsKeyId set (a key of the destination account \
                 in the copy's region) and spec.intermediateKmsKeyId (one in {})",
                plan.region
            ),
        ));
    }
    Ok(())
}

/// The status last written, the status to write, and the phase, health and requeue to
/// report.
type ExportOutcome = (
    SnapshotStatus,
    SnapshotStatus,
    (Phase, Health, Option<std::time::Duration>),
);

/// Sends the export call (recording first that it is being sent), the first time or
/// again after a lost answer ([`lifecycle::ExportDecision::request_again`]): the status
/// last written, the status to write and what to report. Asked again, a refusal because
/// the bucket already holds the export's key means the first request wrote it: the
/// export is this object's and has ended (ElastiCache never writes a second object at
/// one key). The first time, the key is someone else's object.
async fn request_export(
    api: &Api<SnapshotCopy>,
    ctx: &Context,
    obj: &SnapshotCopy,
    current: &SnapshotStatus,
    plan: &CopyPlan,
    location: &str,
) -> Result<ExportOutcome, Error> {
    let bucket = plan.request.target_bucket.clone().unwrap_or_default();
    let again = current.copy_requested == Some(true);
    let mut call = CallRecord::new(api, ctx, obj, current);
    let result = request_copy(ctx, plan, &mut call).await;
    let written = call.finish()?;
    let mut status = base_status(&written, plan);
    let key_taken = |e: &EngineError| {
        lifecycle::export_key_taken(
            e.code.as_deref(),
            &e.message,
            &bucket,
            &plan.desired.identifier,
        )
    };
    let outcome = match result {
        Ok(Creation::Created(s)) => {
            status.export_location = Some(location.to_string());
            status.aws_status = Some(s.aws_status.clone());
            status.arn = s.arn.clone();
            (
                Phase::Creating,
                Health::progressing(reasons::COPYING, format!("exporting to {location}")),
                Some(lifecycle::watch_poll(&s, None, &ctx.timing)),
            )
        }
        Ok(Creation::Blocked {
            phase,
            health,
            requeue,
        }) => (phase, health, requeue),
        Err(e) if again && key_taken(&e) => {
            let d = lifecycle::export_found_written(
                location,
                obj.spec.target_snapshot_identifier.is_none(),
                &ctx.timing,
            );
            status.export_location = Some(location.to_string());
            status.copy_requested = Some(true);
            (d.phase, d.health, d.requeue)
        }
        Err(e) if e.class.is_retryable() || e.class == ErrorClass::NotFound => {
            return Err(e.into());
        }
        Err(e) if key_taken(&e) => {
            let d = lifecycle::export_key_in_use(location, &e.to_string(), &ctx.timing);
            (d.phase, d.health, d.requeue)
        }
        Err(e) => (
            Phase::Failed,
            Health::stalled(
                reasons::AWS_ERROR,
                format!(
                    "{e}. ElastiCache writes the export with its own service principal: the \
                     bucket {bucket} must be in the same region and its policy must allow \
                     ElastiCache to write to it"
                ),
            ),
            Some(ctx.timing.resync),
        ),
    };
    Ok((written, status, outcome))
}

/// ElastiCache export to S3: one CopySnapshot with TargetBucket, then the source
/// snapshot's status says when it is done. Nothing is kept in ElastiCache. A call
/// recorded as sent whose answer was lost is sent again only when the source is not
/// exporting; ElastiCache never writes a second object at the same key, so a refusal
/// for the key then means the first request ran (see `lifecycle::export_found_written`).
async fn export(
    api: &Api<SnapshotCopy>,
    ctx: &Context,
    obj: &SnapshotCopy,
    current: &SnapshotStatus,
    plan: &CopyPlan,
) -> Result<Action, Error> {
    let generation = obj.metadata.generation;
    let bucket = plan.request.target_bucket.clone().unwrap_or_default();
    let location = format!("s3://{bucket}/{}", plan.desired.identifier);
    let engine = ctx
        .engines
        .get_in(plan.role.as_ref(), plan.source.engine, &plan.region);
    let sent = current.copy_requested == Some(true) || current.export_location.is_some();
    let (written, mut status, (phase, health, requeue)) = if !sent {
        request_export(api, ctx, obj, current, plan, &location).await?
    } else {
        let mut status = base_status(current, plan);
        let record = lifecycle::ExportRecord::from_status(current);
        // An export reported ended is not looked at again: the S3 object does not
        // depend on the source snapshot.
        let source = if record.finished {
            None
        } else {
            engine.describe(&plan.source.identifier, false).await?
        };
        let d = lifecycle::export(record, source.as_ref(), None, &location, &ctx.timing);
        if d.request_again {
            request_export(api, ctx, obj, current, plan, &location).await?
        } else {
            if d.accepted {
                status.export_location = Some(location.clone());
            }
            if let Some(s) = &source {
                status.aws_status = Some(s.aws_status.clone());
            }
            let outcome = (d.phase, d.health, d.requeue);
            (current.clone(), status, outcome)
        }
    };
    status.phase = Some(phase);
    status.ready_to_use = Some(phase == Phase::Available);
    let status = with_health(status, &health, generation);
    write_status(api, ctx, obj, &written, &status).await?;
    Ok(action(requeue))
}

async fn cleanup(
    api: &Api<SnapshotCopy>,
    obj: &SnapshotCopy,
    ctx: &Context,
) -> Result<Action, Error> {
    let old = obj.status.clone().unwrap_or_default();
    let (Some(identifier), Some(engine), Some(region)) = (
        old.snapshot_identifier.clone(),
        old.engine,
        old.region.clone(),
    ) else {
        remove_finalizer(api, obj).await?;
        return Ok(Action::await_change());
    };
    let deletion_policy = deletion_policy(obj, &old, &ctx.defaults);
    // An intermediate copy (across accounts and regions) is deleted whatever the policy.
    let intermediate = old.intermediate.clone().filter(|i| i.deleted != Some(true));
    let role = match aws_account::resolve_for_cleanup(
        ctx,
        &obj.namespace().unwrap_or_default(),
        &old,
        deletion_policy == DeletionPolicy::Retain && intermediate.is_none(),
        "copy",
        &identifier,
    )
    .await
    {
        Ok(role) => role,
        Err(problem) => return account_problem(api, ctx, obj, &old, problem).await,
    };
    let desired = Desired {
        adopt_untagged: adopts_untagged(obj, engine, &old),
        identifier,
        tags: Default::default(),
        prune_tags: false,
        shared_with: Vec::new(),
        retention_days: None,
        owner_uid: obj.uid().unwrap_or_default(),
        deletion_policy,
        cancel_while_creating: engine == Engine::Docdb,
        recorded: Recorded::from_status(&old),
    };
    let client = ctx.engines.get_in(role.as_ref(), engine, &region);
    // Batched as while it was made: its source cluster from the source ClusterSnapshot
    // while that is in the cache, else from the listing that last held the copy (the
    // source may be deleted first).
    let cleanup_batch = match (&ctx.pollers, &obj.spec.source.cluster_snapshot_ref) {
        (Some(pollers), Some(r)) if intermediate.is_none() => {
            let reference = ctx.snapshots.as_ref().and_then(|store| {
                store.get(&ObjectRef::new(&r.name).within(&obj.namespace().unwrap_or_default()))
            });
            let key = match reference {
                Some(cs) => batch_source(obj, Some(&cs), engine)
                    .map(|cluster| copy_group(role.clone(), &region, cluster)),
                None if engine == Engine::Docdb && obj.spec.target_bucket.is_none() => {
                    pollers.group_holding(role.as_ref(), engine, &region, &desired.identifier)
                }
                None => None,
            };
            key.and_then(|key| {
                let (detail_known, dirty) = ctx.look_for_cleanup(&obj.uid().unwrap_or_default());
                Some(drive::Batch {
                    pollers: pollers.clone(),
                    key,
                    wake: copy_wake(ctx, obj)?,
                    detail_known,
                    dirty,
                    first_pass: false,
                })
            })
        }
        _ => None,
    };
    let result =
        drive::converge_cleanup(&client, &desired, &old, &ctx.timing, cleanup_batch.as_ref()).await;
    // AWS refused a step the listing suggested: look in full next time.
    if let Err(e) = &result
        && e.class == ErrorClass::InvalidState
    {
        ctx.set_look(&obj.uid().unwrap_or_default(), Some(super::Look::Dirty));
    }
    if let (Some(b), Ok((decision, observed))) = (&cleanup_batch, &result) {
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
    // The copy first (cancelled while it still copies the intermediate copy; kept
    // with Retain, once AWS has finished it), then the intermediate copy.
    if let (Some(i), Ok((d, _))) = (&intermediate, &result)
        && d.finished
    {
        let old = &old;
        let wait = |message: String, requeue| async move {
            let mut status = old.clone();
            status.phase = Some(Phase::Deleting);
            let health = Health::progressing(reasons::DELETING, message);
            let status = with_health(status, &health, obj.metadata.generation);
            write_status(api, ctx, obj, old, &status).await?;
            Ok::<_, Error>(action(requeue))
        };
        if deletion_policy == DeletionPolicy::Retain
            && old.copy_requested == Some(true)
            && let Some(copy) = client.describe(&desired.identifier, false).await?
            && copy.state() == SnapshotState::Creating
        {
            return wait(
                format!(
                    "deletionPolicy Retain: waiting for AWS to finish the copy {} ({}) before \
                     deleting the intermediate copy {} in {} it is made from",
                    desired.identifier,
                    lifecycle::progress_message(&copy),
                    i.snapshot_identifier,
                    i.region
                ),
                Some(lifecycle::watch_poll(
                    &copy,
                    drive::elapsed(&copy),
                    &ctx.timing,
                )),
            )
            .await;
        }
        let engine = ctx.engines.get_in(role.as_ref(), Engine::Docdb, &i.region);
        let dropped = drive::converge_cleanup(
            &engine,
            &intermediate_desired(obj, i),
            &intermediate_status(i),
            &ctx.timing,
            None,
        )
        .await;
        match dropped {
            Ok((decision, _)) if decision.finished => {}
            Ok((decision, _)) => {
                return wait(
                    format!(
                        "deleting the intermediate copy {} in {}: {}",
                        i.snapshot_identifier,
                        i.region,
                        decision.health.message()
                    ),
                    decision.requeue,
                )
                .await;
            }
            // (AWS's refusal said as finish_cleanup says the copy's.)
            Err(e) => return finish_cleanup(api, ctx, obj, old, Err(e)).await,
        }
    }
    finish_cleanup(api, ctx, obj, &old, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(spec: serde_json::Value) -> SnapshotCopy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1",
            "kind": "SnapshotCopy",
            "metadata": {"name": "dr", "namespace": "data", "uid": "0a1b2c3d-eeee"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn copies_across_accounts_follow_awss_rules_and_wait_for_the_share() {
        let role = AccountRole {
            account_id: "111122223333".into(),
            role_arn: "arn:aws:iam::111122223333:role/r".into(),
            external_id: None,
            session_seconds: None,
        };
        let cs = |engine: &str, account: Option<&str>| {
            let mut c = ready_cluster_snapshot(engine, "us-east-1");
            c.spec.account = account.map(str::to_string);
            c
        };
        let by_ref = |account: Option<&str>| {
            let mut c =
                copy(serde_json::json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}}));
            c.spec.account = account.map(str::to_string);
            c
        };
        let r = Some(&role);
        // The same account: not across.
        assert_eq!(
            source_account(&by_ref(None), Some(&cs("docdb", None)), None),
            Ok(false)
        );
        assert_eq!(
            source_account(&by_ref(Some("prod")), Some(&cs("docdb", Some("prod"))), r),
            Ok(false)
        );
        assert_eq!(source_account(&by_ref(None), None, None), Ok(false));
        // Two AWSAccounts for one account id: the same account.
        let mut b_source = cs("docdb", Some("prod-b"));
        b_source.status.as_mut().unwrap().account_id = Some("111122223333".into());
        assert_eq!(
            source_account(&by_ref(Some("prod")), Some(&b_source), r),
            Ok(false)
        );
        // Same name, but the source was made when it named another account.
        let mut moved = cs("docdb", Some("prod"));
        moved.status.as_mut().unwrap().account_id = Some("444455556666".into());
        let e = source_account(&by_ref(Some("prod")), Some(&moved), r).unwrap_err();
        assert_eq!(e.field, "spec.account");
        assert!(e.message.contains("account 444455556666"), "{e}");
        // DocumentDB across accounts: yes (into another region through an intermediate
        // copy, see two_hops).
        for (copy_account, source_account_name) in [
            (Some("dr"), None),
            (None, Some("prod")),
            (Some("dr"), Some("prod")),
        ] {
            assert_eq!(
                source_account(
                    &by_ref(copy_account),
                    Some(&cs("docdb", source_account_name)),
                    r
                ),
                Ok(true)
            );
        }
        for (engine, instead) in [("redshift", "sharedWith"), ("elasticache", "targetBucket")] {
            let e = source_account(&by_ref(Some("dr")), Some(&cs(engine, None)), r).unwrap_err();
            assert_eq!(e.field, "spec.account");
            assert!(
                e.message.contains("only within their account") && e.message.contains(instead),
                "{e}"
            );
        }

        // The share: waited for while the source's ClusterSnapshot makes it, said
        // Stalled when nobody will, and nothing to wait for once AWS shows it.
        let mut asking = by_ref(Some("dr"));
        asking.spec.share_source_while_copying = Some(true);
        let source = cs("docdb", None);
        let wait = share_missing(&asking, &source, Some("111122223333")).unwrap();
        assert!(matches!(wait, Health::Progressing { .. }), "{wait:?}");
        let stuck = share_missing(&by_ref(Some("dr")), &source, Some("111122223333")).unwrap();
        assert!(matches!(stuck, Health::Stalled { .. }), "{stuck:?}");
        let mut shared = source.clone();
        shared.status.as_mut().unwrap().shared_with = Some(vec!["111122223333".into()]);
        assert_eq!(share_missing(&asking, &shared, Some("111122223333")), None);
        assert_eq!(share_missing(&by_ref(None), &source, None), None);
    }

    /// A copy across accounts and regions goes in two hops: the shared source copied
    /// into the destination account in its own region (the intermediate copy: never
    /// shared, always deleted, encrypted with intermediateKmsKeyId), then that copy
    /// copied across regions with nothing left to share.
    #[test]
    fn copies_across_accounts_and_regions_go_through_an_intermediate_copy() {
        let docdb = |region: &str| Source {
            engine: Engine::Docdb,
            region: region.into(),
            identifier: "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:prod".into(),
            cluster: None,
        };
        assert_eq!(
            two_hops(true, &docdb("us-east-1"), "eu-west-1").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(two_hops(true, &docdb("us-east-1"), "us-east-1"), None);
        assert_eq!(two_hops(false, &docdb("us-east-1"), "eu-west-1"), None);
        let redshift = Source {
            engine: Engine::Redshift,
            ..docdb("us-east-1")
        };
        assert_eq!(two_hops(true, &redshift, "eu-west-1"), None);
        assert_eq!(
            arn_parts("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:prod"),
            Some(("123456789012", "us-east-1"))
        );
        assert_eq!(arn_parts("prod"), None);

        let mut obj = copy(serde_json::json!({
            "source": {"clusterSnapshotRef": {"name": "nightly"}}, "account": "dr",
            "region": "eu-west-1", "kmsKeyId": "alias/eu", "intermediateKmsKeyId": "alias/us",
            "sharedWith": ["444455556666"], "deletionPolicy": "Retain"}));
        obj.metadata.uid = Some("0f0e0d0c-aaaa".into());
        let mut p = plan(
            &obj,
            docdb("us-east-1"),
            "eu-west-1".into(),
            &Defaults::default(),
        )
        .unwrap();
        p.across_accounts = true;
        p.intermediate = two_hops(true, &p.source, &p.region).map(|region| IntermediateCopy {
            snapshot_identifier: intermediate_identifier(&obj),
            region,
            ..Default::default()
        });
        // Named after the object, not the copy: it collides with no other copy there.
        let hop_id = intermediate_identifier(&obj);
        assert_eq!(hop_id, "data-dr-hop-0f0e0d0c");
        assert_ne!(hop_id, p.desired.identifier);
        // Long names give way; the marker and the uid stay.
        let mut long = obj.clone();
        long.metadata.name = Some("a".repeat(80));
        let long_id = intermediate_identifier(&long);
        assert!(
            long_id.ends_with("-hop-0f0e0d0c") && long_id.len() == 63,
            "{long_id}"
        );
        assert!(
            crate::naming::is_valid_identifier(&long_id, 63),
            "{long_id}"
        );
        assert_ne!(
            long_id,
            default_identifier("data", &"a".repeat(80), "0f0e0d0c-aaaa", Engine::Docdb)
        );
        // Recorded with the identity fields, before anything is made.
        let recorded_first = base_status(&SnapshotStatus::default(), &p);
        assert_eq!(recorded_first.intermediate, p.intermediate);
        let status = SnapshotStatus::default();
        let first = first_hop_plan(&p, obj.spec.intermediate_kms_key_id.as_deref(), &status);
        assert_eq!(first.region, "us-east-1");
        assert_eq!(first.request.source, p.source.identifier);
        assert_eq!(first.request.target, hop_id);
        assert_eq!(first.request.source_region, None);
        assert_eq!(first.request.kms_key_id.as_deref(), Some("alias/us"));
        assert_eq!(first.next_kms_key_id.as_deref(), Some("alias/eu"));
        assert_eq!(first.kms_field, "spec.intermediateKmsKeyId");
        assert_eq!(first.desired.identifier, hop_id);
        assert_eq!(
            first.desired.tags.get(OWNER_UID_TAG),
            Some(&"0f0e0d0c-aaaa".to_string())
        );
        assert!(first.desired.shared_with.is_empty());
        assert_eq!(first.desired.deletion_policy, DeletionPolicy::Delete);
        assert!(first.desired.cancel_while_creating && !first.desired.adopt_untagged);
        assert_eq!(first.desired.recorded, None);
        // Once recorded, the intermediate copy is known by its ARN and creation time.
        let recorded = SnapshotStatus {
            intermediate: Some(IntermediateCopy {
                snapshot_identifier: hop_id.clone(),
                region: "us-east-1".into(),
                arn: Some("arn:aws:rds:us-east-1:111122223333:cluster-snapshot:x".into()),
                creation_time: Some("2026-12-02T10:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let first = first_hop_plan(&p, None, &recorded);
        assert_eq!(
            first.desired.recorded.map(|r| r.arn).as_deref(),
            Some("arn:aws:rds:us-east-1:111122223333:cluster-snapshot:x")
        );
        assert_eq!(first.request.kms_key_id, None);
        // The second hop copies the intermediate copy, in the destination account.
        let arn = "arn:aws:rds:us-east-1:111122223333:cluster-snapshot:x".to_string();
        let second = second_hop(&p, arn.clone());
        assert_eq!(second.request.source, arn);
        assert_eq!(second.request.source_region.as_deref(), Some("us-east-1"));
        assert_eq!(second.request.kms_key_id.as_deref(), Some("alias/eu"));
        assert_eq!(second.region, "eu-west-1");
        assert_eq!(second.share_wait, None);
        assert!(!second.across_accounts);
        assert_eq!(second.desired, p.desired);
        assert_eq!(second.desired.shared_with, vec!["444455556666".to_string()]);
        assert_eq!(second.desired.deletion_policy, DeletionPolicy::Retain);

        // The first hop checks both keys against the source before anything is copied.
        let described = |encrypted: bool| crate::engine::Snapshot {
            identifier: "prod".into(),
            snapshot_type: Some(crate::engine::docdb::SHARED.into()),
            encrypted: Some(encrypted),
            ..Default::default()
        };
        let hop = |intermediate: Option<&str>, last: Option<&str>| {
            let mut q = p.clone();
            q.request.kms_key_id = last.map(str::to_string);
            first_hop_plan(&q, intermediate, &status)
        };
        let field = |r: Result<(), SpecError>| r.map_err(|e| e.field);
        assert_eq!(
            field(docdb_source_rules(
                &hop(Some("alias/us"), Some("alias/eu")),
                &described(true)
            )),
            Ok(())
        );
        assert_eq!(
            field(docdb_source_rules(
                &hop(None, Some("alias/eu")),
                &described(true)
            )),
            Err("spec.intermediateKmsKeyId".to_string())
        );
        assert_eq!(
            field(docdb_source_rules(
                &hop(Some("alias/us"), None),
                &described(true)
            )),
            Err("spec.kmsKeyId".to_string())
        );
        assert_eq!(
            field(docdb_source_rules(
                &hop(None, Some("alias/eu")),
                &described(false)
            )),
            Err("spec.kmsKeyId".to_string())
        );
        assert_eq!(
            field(docdb_source_rules(
                &hop(Some("alias/us"), None),
                &described(false)
            )),
            Err("spec.intermediateKmsKeyId".to_string())
        );
        assert_eq!(
            field(docdb_source_rules(&hop(None, None), &described(false))),
            Ok(())
        );
    }

    /// The intermediate copy is deleted only where it is the object's: by its owner tag,
    /// or the recorded ARN and creation time. One made again under its name outside
    /// Kubernetes, another object's, or untagged is left alone.
    #[test]
    fn only_the_objects_own_intermediate_copy_is_deleted() {
        let obj = copy(serde_json::json!({"source": {"clusterSnapshotRef": {"name": "n"}}}));
        let i = IntermediateCopy {
            snapshot_identifier: intermediate_identifier(&obj),
            region: "us-east-1".into(),
            arn: Some("arn:aws:rds:us-east-1:111122223333:cluster-snapshot:x".into()),
            creation_time: Some("2026-12-02T10:00:00Z".into()),
            ..Default::default()
        };
        let desired = intermediate_desired(&obj, &i);
        assert_eq!(desired.deletion_policy, DeletionPolicy::Delete);
        assert!(!desired.adopt_untagged);
        let found = |owner: Option<&str>, created: &str| {
            let mut tags = crate::api::Tags::new();
            if let Some(o) = owner {
                tags.insert(OWNER_UID_TAG.to_string(), o.to_string());
            }
            crate::engine::Snapshot {
                identifier: i.snapshot_identifier.clone(),
                arn: i.arn.clone(),
                aws_status: "available".into(),
                created: Some(created.into()),
                tags: Some(tags),
                shared_with: Some(Vec::new()),
                ..Default::default()
            }
        };
        let step = |s: crate::engine::Snapshot| {
            let observed = Observation::Found(Box::new(s));
            lifecycle::cleanup(&desired, &observed, None, &lifecycle::Timing::default()).step
        };
        assert_eq!(
            step(found(Some("0a1b2c3d-eeee"), "2026-12-02T10:00:00Z")),
            lifecycle::Step::Delete
        );
        for foreign in [
            found(Some("someone-else"), "2026-12-02T10:00:00Z"),
            found(None, "2026-12-02T11:00:00Z"),
            found(Some("someone-else"), "2026-12-02T11:00:00Z"),
        ] {
            assert_eq!(step(foreign), lifecycle::Step::Nothing);
        }
    }

    /// A copy whose ClusterSnapshot is not Ready (or gone) goes on with the source its
    /// status records: an ARN names the source's region, which an intermediate copy
    /// needs.
    #[test]
    fn a_recorded_source_keeps_its_region() {
        let status = SnapshotStatus {
            engine: Some(Engine::Docdb),
            region: Some("eu-west-1".into()),
            source_snapshot_identifier: Some("prod".into()),
            source_arn: Some("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:prod".into()),
            ..Default::default()
        };
        let s = recorded_source(&status).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(
            s.identifier,
            "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:prod"
        );
        assert_eq!(
            two_hops(true, &s, "eu-west-1").as_deref(),
            Some("us-east-1")
        );
        let plain = SnapshotStatus {
            source_arn: None,
            ..status
        };
        let s = recorded_source(&plain).unwrap();
        assert_eq!(
            (s.region.as_str(), s.identifier.as_str()),
            ("eu-west-1", "prod")
        );
    }

    fn ready_cluster_snapshot(engine: &str, region: &str) -> ClusterSnapshot {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dbsnapshot.io/v1alpha1",
            "kind": "ClusterSnapshot",
            "metadata": {"name": "nightly", "namespace": "data"},
            "spec": {"source": {"docdb": {"clusterIdentifier": "orders"}}},
            "status": {
                "engine": engine, "region": region, "snapshotIdentifier": "nightly-snap",
                "source": "orders", "arn": "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:nightly-snap",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "m",
                                "lastTransitionTime": "2026-11-22T00:00:00Z"}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn references_wait_until_the_cluster_snapshot_is_ready() {
        let c = copy(serde_json::json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}}));
        assert!(
            resolve(&c, "us-east-1", None)
                .unwrap_err()
                .0
                .contains("does not exist")
        );
        let mut cs = ready_cluster_snapshot("docdb", "us-east-1");
        cs.status.as_mut().unwrap().conditions[0].status = "False".into();
        assert!(
            resolve(&c, "us-east-1", Some(&cs))
                .unwrap_err()
                .0
                .contains("not Ready")
        );
        let cs = ready_cluster_snapshot("docdb", "us-east-1");
        let s = resolve(&c, "us-east-1", Some(&cs)).unwrap();
        assert_eq!(s.identifier, "nightly-snap");
        assert_eq!(s.engine, Engine::Docdb);
        // Across regions the ARN names the source.
        let s = resolve(&c, "eu-west-1", Some(&cs)).unwrap();
        assert!(s.identifier.starts_with("arn:aws:rds:us-east-1:"));
        assert_eq!(s.region, "us-east-1");
    }

    #[test]
    fn docdb_sources_take_their_region_from_the_spec_or_the_arn() {
        let by_arn = copy(
            serde_json::json!({"source": {"docdb": {"snapshotIdentifier": "arn:aws:rds:us-west-2:1:cluster-snapshot:x"}}}),
        );
        assert_eq!(
            resolve(&by_arn, "us-east-1", None).unwrap().region,
            "us-west-2"
        );
        let by_spec = copy(
            serde_json::json!({"source": {"docdb": {"snapshotIdentifier": "x"}}, "sourceRegion": "ap-south-1"}),
        );
        assert_eq!(
            resolve(&by_spec, "us-east-1", None).unwrap().region,
            "ap-south-1"
        );
        let local = copy(serde_json::json!({"source": {"docdb": {"snapshotIdentifier": "x"}}}));
        assert_eq!(
            resolve(&local, "us-east-1", None).unwrap().region,
            "us-east-1"
        );
    }

    #[test]
    fn plans_copies() {
        let c = copy(
            serde_json::json!({"source": {"docdb": {"snapshotIdentifier": "arn:aws:rds:us-west-2:1:cluster-snapshot:x"}}, "copyTags": true, "kmsKeyId": "k"}),
        );
        let s = resolve(&c, "us-east-1", None).unwrap();
        let p = plan(&c, s, "us-east-1".into(), &Defaults::default()).unwrap();
        assert_eq!(p.desired.identifier, "data-dr-0a1b2c3d");
        assert_eq!(p.request.source_region.as_deref(), Some("us-west-2"));
        assert!(p.request.copy_tags);
        assert!(!p.desired.prune_tags);
        assert!(p.desired.cancel_while_creating);
        assert_eq!(
            p.desired.tags.get(RESOURCE_TAG).unwrap(),
            "data/SnapshotCopy/dr"
        );
        let r = copy(
            serde_json::json!({"source": {"redshift": {"snapshotIdentifier": "rs:a-1"}}, "retentionDays": 7}),
        );
        let s = resolve(&r, "us-east-1", None).unwrap();
        let p = plan(&r, s, "us-east-1".into(), &Defaults::default()).unwrap();
        assert_eq!(p.request.retention_days, Some(7));
        assert!(!p.desired.cancel_while_creating);
        // Redshift copies stay in the source region.
        let mut moved = s_redshift();
        moved.region = "eu-west-1".into();
        assert_eq!(
            plan(&r, moved, "us-east-1".into(), &Defaults::default())
                .unwrap_err()
                .field,
            "spec.region"
        );
    }

    #[test]
    fn only_a_copy_call_aws_refused_is_recorded_as_not_sent() {
        let e = |class, action, code: Option<&str>| EngineError {
            class,
            service: "redshift",
            action,
            code: code.map(str::to_string),
            message: "m".into(),
            source: None,
        };
        let copy = "CopyClusterSnapshot";
        let cases = [
            (
                "throttled",
                e(ErrorClass::Throttled, copy, Some("Throttling")),
                true,
                true,
            ),
            (
                "denied",
                e(ErrorClass::Terminal, copy, Some("AccessDenied")),
                true,
                true,
            ),
            (
                "a 5xx may have copied",
                e(ErrorClass::Transient, copy, Some("InternalFailure")),
                true,
                false,
            ),
            (
                "no answer",
                e(ErrorClass::Transient, copy, None),
                true,
                false,
            ),
            (
                "the tagging after the copy",
                e(ErrorClass::Terminal, "CreateTags", Some("AccessDenied")),
                true,
                false,
            ),
            (
                "there before this call",
                e(
                    ErrorClass::AlreadyExists,
                    copy,
                    Some("ClusterSnapshotAlreadyExists"),
                ),
                true,
                true,
            ),
            (
                "perhaps made by an earlier call",
                e(
                    ErrorClass::AlreadyExists,
                    copy,
                    Some("ClusterSnapshotAlreadyExists"),
                ),
                false,
                false,
            ),
        ];
        for (name, err, fresh, want) in cases {
            assert_eq!(refused(&err, fresh), want, "{name}");
        }
    }

    fn s_redshift() -> Source {
        Source {
            engine: Engine::Redshift,
            region: "us-east-1".into(),
            identifier: "rs:a-1".into(),
            cluster: None,
        }
    }

    #[test]
    fn copies_are_woken_by_what_they_read_of_their_source_not_by_its_progress() {
        let ready = ready_cluster_snapshot("docdb", "us-east-1");
        let before = what_copies_read(&ready);
        // Progress, a condition's message, a resync stamp: the copies read none of it.
        let mut progress = ready.clone();
        let s = progress.status.as_mut().unwrap();
        s.progress = Some(crate::api::status::Progress {
            percent: Some(42),
            ..Default::default()
        });
        s.conditions[0].message = "42% done".into();
        progress.metadata.resource_version = Some("99".into());
        assert_eq!(what_copies_read(&progress), before);
        // Each thing they read wakes them.
        let changed: Vec<(&str, ClusterSnapshot)> = vec![
            ("not ready", {
                let mut c = ready.clone();
                c.status.as_mut().unwrap().conditions[0].status = "False".into();
                c
            }),
            ("identifier", {
                let mut c = ready.clone();
                c.status.as_mut().unwrap().snapshot_identifier = Some("other".into());
                c
            }),
            ("arn", {
                let mut c = ready.clone();
                c.status.as_mut().unwrap().arn = Some("arn:aws:rds:x".into());
                c
            }),
            ("shared", {
                let mut c = ready.clone();
                c.status.as_mut().unwrap().shared_with = Some(vec!["555555555555".into()]);
                c
            }),
            ("deleting", {
                let mut c = ready.clone();
                c.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    ));
                c
            }),
            ("finalizers", {
                let mut c = ready.clone();
                c.metadata.finalizers = Some(vec!["dbsnapshot.io/cleanup".into()]);
                c
            }),
            ("spec", {
                let mut c = ready.clone();
                c.metadata.generation = Some(2);
                c
            }),
            ("no status", {
                let mut c = ready.clone();
                c.status = None;
                c
            }),
        ];
        for (what, c) in changed {
            assert_ne!(what_copies_read(&c), before, "{what}");
        }
    }

    #[test]
    fn only_docdb_copies_of_a_cluster_snapshot_in_its_account_share_its_listing() {
        let by_ref =
            copy(serde_json::json!({"source": {"clusterSnapshotRef": {"name": "nightly"}}}));
        let docdb = ready_cluster_snapshot("docdb", "us-east-1");
        // The source cluster's listing, in the copy's region (the same or another).
        assert_eq!(
            batch_source(&by_ref, Some(&docdb), Engine::Docdb),
            Some("orders".to_string())
        );
        let mut in_account = by_ref.clone();
        in_account.spec.account = Some("dr".into());
        let mut cs_in_account = docdb.clone();
        cs_in_account.spec.account = Some("dr".into());
        assert_eq!(
            batch_source(&in_account, Some(&cs_in_account), Engine::Docdb),
            Some("orders".to_string())
        );
        // Each of these describes its own copy.
        let mut no_status = docdb.clone();
        no_status.status = None;
        let mut no_source = docdb.clone();
        no_source.status.as_mut().unwrap().source = None;
        let mut exported = by_ref.clone();
        exported.spec.target_bucket = Some("b".into());
        let by_identifier =
            copy(serde_json::json!({"source": {"docdb": {"snapshotIdentifier": "x"}}}));
        for (what, c, cs, engine) in [
            ("no reference", &by_ref, None, Engine::Docdb),
            ("another account", &in_account, Some(&docdb), Engine::Docdb),
            (
                "the source's account",
                &by_ref,
                Some(&cs_in_account),
                Engine::Docdb,
            ),
            (
                "elasticache",
                &by_ref,
                Some(&ready_cluster_snapshot("elasticache", "us-east-1")),
                Engine::Elasticache,
            ),
            ("no status yet", &by_ref, Some(&no_status), Engine::Docdb),
            (
                "no source recorded",
                &by_ref,
                Some(&no_source),
                Engine::Docdb,
            ),
            ("an export", &exported, Some(&docdb), Engine::Docdb),
            (
                "not by reference",
                &by_identifier,
                Some(&docdb),
                Engine::Docdb,
            ),
        ] {
            assert_eq!(batch_source(c, cs, engine), None, "{what}");
        }
    }
}
