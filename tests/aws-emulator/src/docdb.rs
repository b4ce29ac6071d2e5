//! Amazon DocumentDB (API 2014-10-31, signed as `rds`): clusters and cluster snapshots,
//! copies (also across regions, with a checked PreSignedUrl), restore sharing and tags,
//! with AWS's rules and fault codes. No IO.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::presign;
use crate::query::{
    ApiError, ApiResult, Params, Reply, TagRules, Xml, check_identifier, is_account_id, upsert_tag,
};
use crate::state::{Caller, Progress, State};

pub const XMLNS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
const MAX_SHARES: usize = 20;
const MAX_TAGS: usize = 50;
/// DocumentDB's Tag: keys of 1 to 128 and values of up to 256 Unicode characters that
/// "can't be prefixed with "aws:" or "rds:"" and contain "only the set of Unicode
/// letters, digits, white space, '_', '.', '/', '=', '+', '-' (Java regex:
/// "^([\p{L}\p{Z}\p{N}_.:/=+\-]*)$")" -- no `@`, unlike other services. The model
/// names no tag fault for the tagging actions, so an invalid tag gets the common
/// InvalidParameterValue.
const TAGS: TagRules = TagRules {
    code: "InvalidParameterValue",
    punctuation: "_.:/=+-",
    reserved: &["aws:", "rds:"],
    reserved_in_values: true,
};

/// DocumentDB stores cluster and cluster snapshot identifiers as lowercase strings
/// ("This parameter is stored as a lowercase string") and looks them up without regard
/// to case ("This parameter is not case sensitive").
fn ident(id: &str) -> String {
    id.to_ascii_lowercase()
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: String,
    pub account: String,
    pub engine: String,
    pub engine_version: String,
    pub master_username: String,
    pub port: i64,
    pub created: DateTime<Utc>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub account: String,
    pub cluster: Cluster,
    pub automated: bool,
    pub created: DateTime<Utc>,
    pub progress: Progress,
    /// A copy says `copying` until done, a new snapshot `creating`.
    pub copy_of: Option<String>,
    pub tags: Vec<(String, String)>,
    pub restore: Vec<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub failed: bool,
    /// A status set through the admin API (`/_emulator/snapshots/status`), shown
    /// instead of the one the snapshot would have: any the model documents, or one it
    /// does not.
    pub forced: Option<&'static str>,
    /// Deleted: `deleting` (its name still taken) until this is done, then gone.
    pub deleting: Option<Progress>,
}

impl Snapshot {
    pub fn status(&self, c: &Caller) -> &'static str {
        if self.deleting.is_some() {
            "deleting"
        } else if let Some(forced) = self.forced {
            forced
        } else if self.failed {
            "failed"
        } else if self.progress.done(c.instant) {
            "available"
        } else if self.copy_of.is_some() {
            "copying"
        } else {
            "creating"
        }
    }
    pub fn arn(&self, region: &str) -> String {
        format!(
            "arn:aws:rds:{region}:{}:cluster-snapshot:{}",
            self.account, self.id
        )
    }
    fn shared_with(&self, account: &str) -> bool {
        self.restore.iter().any(|a| a == account || a == "all")
    }
}

type Key = (String, String);

#[derive(Debug, Default)]
pub struct World {
    pub clusters: BTreeMap<Key, Cluster>,
    pub snapshots: BTreeMap<Key, Snapshot>,
}

fn key(account: &str, id: &str) -> Key {
    (account.to_string(), id.to_string())
}

fn snapshot_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "DBClusterSnapshotNotFoundFault",
        format!("DBClusterSnapshot {id} not found."),
    )
}

fn cluster_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "DBClusterNotFoundFault",
        format!("DBCluster {id} not found."),
    )
}

fn invalid_snapshot_state(message: String) -> ApiError {
    ApiError::bad("InvalidDBClusterSnapshotStateFault", message)
}

/// A parsed `arn:aws:rds:<region>:<account>:<kind>:<id>`.
struct Arn<'a> {
    region: &'a str,
    account: &'a str,
    kind: &'a str,
    id: &'a str,
}

fn parse_arn(arn: &str) -> Option<Arn<'_>> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    match parts[..] {
        ["arn", "aws", "rds", region, account, kind, id] => Some(Arn {
            region,
            account,
            kind,
            id,
        }),
        _ => None,
    }
}

/// Snapshots whose deletion has run its course are gone.
fn purge_deleted(state: &mut State, c: &Caller) {
    state
        .region(&c.region)
        .docdb
        .snapshots
        .retain(|_, s| !s.deleting.is_some_and(|d| d.done(c.instant)));
}

pub fn handle(state: &mut State, c: &Caller, action: &str, p: &Params) -> ApiResult<Reply> {
    purge_deleted(state, c);
    match action {
        "CreateDBCluster" => create_cluster(state, c, p),
        "DescribeDBClusters" => describe_clusters(state, c, p),
        "CreateDBClusterSnapshot" => create_snapshot(state, c, p),
        "DescribeDBClusterSnapshots" => describe_snapshots(state, c, p),
        "CopyDBClusterSnapshot" => copy_snapshot(state, c, p),
        "DeleteDBClusterSnapshot" => delete_snapshot(state, c, p),
        "ModifyDBClusterSnapshotAttribute" => modify_attribute(state, c, p),
        "DescribeDBClusterSnapshotAttributes" => describe_attributes(state, c, p),
        "AddTagsToResource" => tags(state, c, p, Some(true)),
        "RemoveTagsFromResource" => tags(state, c, p, Some(false)),
        "ListTagsForResource" => tags(state, c, p, None),
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

fn create_cluster(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("DBClusterIdentifier")?;
    check_identifier("DBClusterIdentifier", id, 63)?;
    let id = &ident(id);
    let engine = p.req("Engine")?;
    if engine != "docdb" {
        return Err(ApiError::invalid_value(format!(
            "Invalid DB engine: {engine}. Amazon DocumentDB supports the engine docdb."
        )));
    }
    let tags = p.tags("Tags", &TAGS)?;
    let progress = state.progress(c);
    let world = &mut state.region(&c.region).docdb;
    if world.clusters.contains_key(&key(&c.account, id)) {
        return Err(ApiError::bad(
            "DBClusterAlreadyExistsFault",
            format!("DB Cluster already exists: {id}"),
        ));
    }
    let cluster = Cluster {
        id: id.to_string(),
        account: c.account.clone(),
        engine: engine.to_string(),
        engine_version: p.get("EngineVersion").unwrap_or("5.0.0").to_string(),
        master_username: p.get("MasterUsername").unwrap_or("docdbadmin").to_string(),
        port: p.int("Port")?.unwrap_or(27017),
        created: c.now,
        encrypted: p.bool("StorageEncrypted")?.unwrap_or(false),
        kms_key_id: p.get("KmsKeyId").map(str::to_string),
        tags,
    };
    // Like AWS, a new cluster gets its first automated snapshot, rds:<cluster>-<time>.
    let auto = format!("rds:{id}-{}", c.now.format("%Y-%m-%d-%H-%M"));
    world.snapshots.insert(
        key(&c.account, &auto),
        Snapshot {
            id: auto.clone(),
            account: c.account.clone(),
            cluster: cluster.clone(),
            automated: true,
            created: c.now,
            progress,
            copy_of: None,
            tags: Vec::new(),
            restore: Vec::new(),
            encrypted: cluster.encrypted,
            kms_key_id: cluster.kms_key_id.clone(),
            failed: false,
            forced: None,
            deleting: None,
        },
    );
    let mut x = Xml::default();
    write_cluster(&mut x, &cluster, &c.region);
    world.clusters.insert(key(&c.account, id), cluster);
    Ok(Some(x))
}

fn describe_clusters(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let pager = state.pager("docdb:DescribeDBClusters", c, p, (20, 100, 100))?;
    let world = &state.region(&c.region).docdb;
    let id = p.get("DBClusterIdentifier");
    let wanted = id.map(ident);
    let items: Vec<&Cluster> = world
        .clusters
        .values()
        .filter(|cl| cl.account == c.account && wanted.as_ref().is_none_or(|id| cl.id == *id))
        .collect();
    if let Some(id) = id
        && items.is_empty()
    {
        return Err(cluster_not_found(id));
    }
    let (items, marker) = pager.page(items, |cl| cl.id.clone());
    let mut x = Xml::default();
    x.opt("Marker", marker);
    x.open("DBClusters");
    for cl in items {
        write_cluster(&mut x, cl, &c.region);
    }
    x.close("DBClusters");
    Ok(Some(x))
}

fn create_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("DBClusterSnapshotIdentifier")?;
    let cluster_id = p.req("DBClusterIdentifier")?;
    check_identifier("DBClusterSnapshotIdentifier", id, 63)?;
    let id = &ident(id);
    let tags = p.tags("Tags", &TAGS)?;
    if tags.len() > MAX_TAGS {
        return Err(tag_limit());
    }
    let progress = state.progress(c);
    let busy = state.cluster_busy("docdb", c, cluster_id);
    let world = &mut state.region(&c.region).docdb;
    let cluster = world
        .clusters
        .get(&key(&c.account, &ident(cluster_id)))
        .cloned()
        .ok_or_else(|| cluster_not_found(cluster_id))?;
    // CreateDBClusterSnapshot errors: InvalidDBClusterStateFault, "The cluster isn't in
    // a valid state" (a cluster being modified, upgraded, in maintenance).
    if let Some(status) = busy {
        return Err(ApiError::bad(
            "InvalidDBClusterStateFault",
            format!("DBCluster {cluster_id} is not in a valid state: it is {status}."),
        ));
    }
    if world.snapshots.contains_key(&key(&c.account, id)) {
        return Err(ApiError::bad(
            "DBClusterSnapshotAlreadyExistsFault",
            format!(
                "Cannot create the cluster snapshot because one with the identifier {id} already exists."
            ),
        ));
    }
    let snap = Snapshot {
        id: id.to_string(),
        account: c.account.clone(),
        encrypted: cluster.encrypted,
        kms_key_id: cluster.kms_key_id.clone(),
        cluster,
        automated: false,
        created: c.now,
        progress,
        copy_of: None,
        tags,
        restore: Vec::new(),
        failed: false,
        forced: None,
        deleting: None,
    };
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c);
    world.snapshots.insert(key(&c.account, id), snap);
    Ok(Some(x))
}

fn describe_snapshots(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let pager = state.pager("docdb:DescribeDBClusterSnapshots", c, p, (20, 100, 100))?;
    let include_shared = p.bool("IncludeShared")?.unwrap_or(false);
    let include_public = p.bool("IncludePublic")?.unwrap_or(false);
    // The parameters are case insensitive; filter values are case sensitive ("Filter
    // values are case sensitive").
    let mut cluster = p.get("DBClusterIdentifier").map(ident);
    let mut id = p.get("DBClusterSnapshotIdentifier").map(ident);
    let mut kind = p.get("SnapshotType").map(str::to_string);
    let mut engine = None;
    for f in p.members("Filters") {
        let name = f.req("Name")?;
        let value = f.strings("Values").into_iter().next();
        match name {
            "db-cluster-id" => cluster = value,
            "db-cluster-snapshot-id" => id = value,
            "snapshot-type" => kind = value,
            "engine" => engine = value,
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Unrecognized filter name: {other}"
                )));
            }
        }
    }
    if let Some(k) = &kind
        && !["automated", "manual", "shared", "public"].contains(&k.as_str())
    {
        return Err(ApiError::invalid_value(format!(
            "SnapshotType must be automated, manual, shared or public, got {k}"
        )));
    }
    // An ARN names a snapshot of another account (shared with the caller).
    let mut owner = c.account.clone();
    if let Some(arn) = id.as_deref().and_then(parse_arn) {
        if arn.region != c.region || arn.kind != "cluster-snapshot" {
            return Err(snapshot_not_found(id.as_deref().unwrap_or_default()));
        }
        owner = arn.account.to_string();
        id = Some(ident(arn.id));
    }
    let world = &state.region(&c.region).docdb;
    // Other accounts' snapshots: those shared with the caller for SnapshotType shared,
    // or with no SnapshotType and IncludeShared; public ones for SnapshotType public,
    // or with no SnapshotType and IncludePublic ("The IncludeShared and IncludePublic
    // parameters don't apply for SnapshotType values of manual or automated";
    // DescribeDBClusterSnapshotsMessage SnapshotType). An ARN naming another account's
    // snapshot finds it only so: IncludeShared "The default is false".
    // DescribeDBClusterSnapshotsMessage DBClusterSnapshotIdentifier: "If this
    // identifier is for an automated snapshot, the SnapshotType parameter must also be
    // specified" -- by identifier, an automated snapshot is found only with
    // SnapshotType automated (a listing without SnapshotType shows both kinds).
    let by_id = id.is_some();
    let items: Vec<&Snapshot> = world
        .snapshots
        .values()
        .filter(|s| {
            if s.account == c.account {
                return kind.as_deref() != Some("shared");
            }
            let shared = s.restore.contains(&c.account);
            let public = s.restore.iter().any(|a| a == "all");
            match kind.as_deref() {
                Some("shared") => shared,
                Some("public") => public,
                Some(_) => false,
                None => (shared && include_shared) || (public && include_public),
            }
        })
        .filter(|s| owner == c.account || s.account == owner)
        .filter(|s| id.as_deref().is_none_or(|id| s.id == id))
        .filter(|s| cluster.as_deref().is_none_or(|cl| s.cluster.id == cl))
        .filter(|s| engine.as_deref().is_none_or(|e| s.cluster.engine == e))
        .filter(|s| match kind.as_deref() {
            Some("automated") => s.automated,
            Some("manual") => !s.automated,
            Some("public") => s.restore.iter().any(|a| a == "all"),
            None => !(by_id && s.automated),
            _ => true,
        })
        .collect();
    if items.is_empty()
        && let Some(id) = p.get("DBClusterSnapshotIdentifier")
    {
        return Err(snapshot_not_found(id));
    }
    let (items, marker) = pager.page(items, |s| format!("{}/{}", s.id, s.account));
    let mut x = Xml::default();
    x.opt("Marker", marker);
    x.open("DBClusterSnapshots");
    for s in items {
        write_snapshot(&mut x, s, c);
    }
    x.close("DBClusterSnapshots");
    Ok(Some(x))
}

fn copy_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let source_ref = p.req("SourceDBClusterSnapshotIdentifier")?;
    let target_id = p.req("TargetDBClusterSnapshotIdentifier")?;
    check_identifier("TargetDBClusterSnapshotIdentifier", target_id, 63)?;
    let extra_tags = p.tags("Tags", &TAGS)?;
    let copy_tags = p.bool("CopyTags")?.unwrap_or(false);
    let kms_key_id = p.get("KmsKeyId").map(str::to_string);
    let (source_region, source_account, source_id) = match parse_arn(source_ref) {
        Some(arn) if arn.kind == "cluster-snapshot" => (
            arn.region.to_string(),
            arn.account.to_string(),
            arn.id.to_string(),
        ),
        Some(_) => {
            return Err(ApiError::invalid_value(format!(
                "SourceDBClusterSnapshotIdentifier {source_ref} is not a cluster snapshot ARN"
            )));
        }
        None if source_ref.starts_with("arn:") => {
            return Err(ApiError::invalid_value(format!(
                "SourceDBClusterSnapshotIdentifier {source_ref} is not a valid ARN"
            )));
        }
        None => (c.region.clone(), c.account.clone(), source_ref.to_string()),
    };
    let source_id = ident(&source_id);
    let stored_target = ident(target_id);
    let cross_region = source_region != c.region;
    // CopyDBClusterSnapshot: "You can only copy a shared DB cluster snapshot, whether
    // encrypted or not, in the same Amazon Web Services Region." The operation's errors
    // name no fault for it: the common InvalidParameterValue.
    if cross_region && source_account != c.account {
        return Err(ApiError::invalid_value(format!(
            "Snapshot {source_ref} is shared from account {source_account}: a shared cluster \
             snapshot can only be copied in its own region ({source_region})."
        )));
    }
    if cross_region {
        let url = p.get("PreSignedUrl").ok_or_else(|| {
            ApiError::invalid_value(
                "PreSignedUrl is required to copy a cluster snapshot from another region",
            )
        })?;
        // The URL's credentials must be good ones too (a temporary key with its own
        // session token, unexpired), as for a request.
        if let Some((key, token)) = presign::credentials_of(url) {
            state
                .authenticate(&key, token.as_deref(), c.now)
                .map_err(|e| {
                    ApiError::invalid_value(format!(
                        "PreSignedUrl is not valid: its credentials are refused ({}: {})",
                        e.code, e.message
                    ))
                })?;
        }
        presign::verify(
            url,
            &presign::Expect {
                source_region: &source_region,
                source_arn: source_ref,
                target_identifier: target_id,
                destination_region: &c.region,
            },
            &state.credentials,
            c.now,
        )?;
    }
    let progress = state.progress(c);
    let source = state
        .region(&source_region)
        .docdb
        .snapshots
        .get(&key(&source_account, &source_id))
        .filter(|s| s.account == c.account || s.shared_with(&c.account))
        .cloned()
        .ok_or_else(|| snapshot_not_found(source_ref))?;
    let source_caller = Caller {
        region: source_region.clone(),
        ..c.clone()
    };
    if source.status(&source_caller) != "available" {
        return Err(invalid_snapshot_state(format!(
            "Snapshot {source_ref} is not in the available state."
        )));
    }
    if cross_region && source.encrypted && kms_key_id.is_none() {
        return Err(ApiError::invalid_value(
            "KmsKeyId is required to copy an encrypted snapshot to another region",
        ));
    }
    // CopyDBClusterSnapshotMessage KmsKeyId: "If you copy an encrypted cluster snapshot
    // that is shared from another Amazon Web Services account, then you must specify a
    // value for KmsKeyId" (the owner's key is not the caller's): KMSKeyNotAccessibleFault,
    // one of the operation's errors, naming no key.
    if source.account != c.account && source.encrypted && kms_key_id.is_none() {
        return Err(ApiError::bad(
            "KMSKeyNotAccessibleFault",
            "Specified KMS key [None] does not exist, is not enabled or you do not have \
             permissions to access it. An encrypted snapshot shared from another account \
             needs KmsKeyId.",
        ));
    }
    // CopyDBClusterSnapshotMessage KmsKeyId: "If you copy an unencrypted cluster snapshot
    // and specify a value for the KmsKeyId parameter, an error is returned" -- a copy is
    // never quietly encrypted. No fault is named: the common InvalidParameterCombination.
    if !source.encrypted && kms_key_id.is_some() {
        return Err(ApiError::bad(
            "InvalidParameterCombination",
            format!(
                "Snapshot {source_ref} is not encrypted: KmsKeyId cannot be specified to copy an \
                 unencrypted cluster snapshot."
            ),
        ));
    }
    let world = &mut state.region(&c.region).docdb;
    if world
        .snapshots
        .contains_key(&key(&c.account, &stored_target))
    {
        return Err(ApiError::bad(
            "DBClusterSnapshotAlreadyExistsFault",
            format!(
                "Cannot copy the cluster snapshot because one with the identifier {target_id} already exists."
            ),
        ));
    }
    let mut tags = if copy_tags {
        source.tags.clone()
    } else {
        Vec::new()
    };
    for (k, v) in extra_tags {
        upsert_tag(&mut tags, k, v);
    }
    let snap = Snapshot {
        id: stored_target.clone(),
        account: c.account.clone(),
        automated: false,
        created: c.now,
        progress,
        copy_of: Some(source.arn(&source_region)),
        tags,
        restore: Vec::new(),
        encrypted: source.encrypted,
        kms_key_id: kms_key_id.or(source.kms_key_id.clone()),
        failed: false,
        forced: None,
        deleting: None,
        cluster: source.cluster,
    };
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c);
    world
        .snapshots
        .insert(key(&c.account, &stored_target), snap);
    Ok(Some(x))
}

fn own_snapshot<'w>(world: &'w mut World, c: &Caller, p: &Params) -> ApiResult<&'w mut Snapshot> {
    let id = p.req("DBClusterSnapshotIdentifier")?;
    world
        .snapshots
        .get_mut(&key(&c.account, &ident(id)))
        .ok_or_else(|| snapshot_not_found(id))
}

fn delete_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let world = &mut state.region(&c.region).docdb;
    let snap = own_snapshot(world, c, p)?;
    let id = snap.id.clone();
    if snap.automated {
        return Err(invalid_snapshot_state(format!(
            "Snapshot {id} is an automated snapshot and cannot be deleted."
        )));
    }
    // Deleting a snapshot that is still being copied cancels the copy.
    if snap.status(c) == "creating" {
        return Err(invalid_snapshot_state(format!(
            "Snapshot {id} is still being created and cannot be deleted."
        )));
    }
    if snap.deleting.is_some() {
        return Err(invalid_snapshot_state(format!(
            "Snapshot {id} is already being deleted."
        )));
    }
    // DeleteDBClusterSnapshot answers the snapshot `deleting`, as AWS's is for a while
    // (DBClusterSnapshot.Status: creating | available | copying | failed | deleting);
    // its identifier stays taken until it is gone (`deleteSeconds`).
    if state.delete_seconds > 0.0 {
        let deletion = state.deletion(c);
        let world = &mut state.region(&c.region).docdb;
        let snap = world
            .snapshots
            .get_mut(&key(&c.account, &id))
            .expect("found above");
        snap.deleting = Some(deletion);
        let shared = !snap.restore.is_empty();
        let mut x = Xml::default();
        write_snapshot(&mut x, snap, c);
        if shared {
            state.counters.shared_deletes += 1;
        }
        return Ok(Some(x));
    }
    let world = &mut state.region(&c.region).docdb;
    let snap = world
        .snapshots
        .remove(&key(&c.account, &id))
        .expect("found above");
    if !snap.restore.is_empty() {
        state.counters.shared_deletes += 1;
    }
    let mut x = Xml::default();
    write_snapshot_with_status(&mut x, &snap, c, "deleted");
    Ok(Some(x))
}

fn modify_attribute(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let name = p.req("AttributeName")?;
    if name != "restore" {
        return Err(ApiError::invalid_value(format!(
            "AttributeName must be restore, got {name}"
        )));
    }
    let add = p.strings("ValuesToAdd");
    let remove = p.strings("ValuesToRemove");
    for v in add.iter().chain(&remove) {
        if !is_account_id(v) && v != "all" {
            return Err(ApiError::invalid_value(format!(
                "{v} is not a valid AWS account id (12 digits) or all"
            )));
        }
    }
    let world = &mut state.region(&c.region).docdb;
    let snap = own_snapshot(world, c, p)?;
    if snap.automated {
        return Err(invalid_snapshot_state(format!(
            "Snapshot {} is an automated snapshot and cannot be shared; copy it first.",
            snap.id
        )));
    }
    if !add.is_empty() && snap.status(c) != "available" {
        return Err(invalid_snapshot_state(format!(
            "Snapshot {} is not in the available state.",
            snap.id
        )));
    }
    if snap.encrypted && add.iter().any(|a| a == "all") {
        return Err(ApiError::invalid_value(
            "Encrypted snapshots cannot be shared publicly",
        ));
    }
    let mut restore = snap.restore.clone();
    restore.retain(|a| !remove.contains(a));
    for a in add {
        if !restore.contains(&a) {
            restore.push(a);
        }
    }
    if restore.len() > MAX_SHARES {
        return Err(ApiError::bad(
            "SharedSnapshotQuotaExceeded",
            format!("A snapshot can be shared with at most {MAX_SHARES} accounts."),
        ));
    }
    snap.restore = restore;
    let mut x = Xml::default();
    write_attributes(&mut x, snap);
    Ok(Some(x))
}

fn describe_attributes(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let world = &mut state.region(&c.region).docdb;
    let snap = own_snapshot(world, c, p)?;
    let mut x = Xml::default();
    write_attributes(&mut x, snap);
    Ok(Some(x))
}

fn tag_limit() -> ApiError {
    ApiError::bad(
        "TagQuotaPerResourceExceeded",
        format!("A resource can have at most {MAX_TAGS} tags."),
    )
}

/// The tagging actions' not-found answer for a snapshot: AddTagsToResource,
/// RemoveTagsFromResource and ListTagsForResource list DBSnapshotNotFoundFault (code
/// `DBSnapshotNotFound`, HTTP 404), not DBClusterSnapshotNotFoundFault.
fn tag_snapshot_not_found(id: &str) -> ApiError {
    ApiError::not_found("DBSnapshotNotFound", format!("DBSnapshot {id} not found."))
}

/// AddTagsToResource (`Some(true)`), RemoveTagsFromResource (`Some(false)`) and
/// ListTagsForResource (`None`).
fn tags(state: &mut State, c: &Caller, p: &Params, add: Option<bool>) -> ApiResult<Reply> {
    let name = p.req("ResourceName")?;
    let arn = parse_arn(name).ok_or_else(|| {
        ApiError::invalid_value(format!("ResourceName {name} is not a valid DocumentDB ARN"))
    })?;
    let new_tags = if add == Some(true) {
        p.tags("Tags", &TAGS)?
    } else {
        Vec::new()
    };
    let keys = p.strings("TagKeys");
    let mine = arn.region == c.region && arn.account == c.account;
    let world = &mut state.region(&c.region).docdb;
    let tags = match arn.kind {
        "cluster-snapshot" => {
            &mut world
                .snapshots
                .get_mut(&key(&c.account, &ident(arn.id)))
                .filter(|_| mine)
                .ok_or_else(|| tag_snapshot_not_found(arn.id))?
                .tags
        }
        "cluster" => {
            &mut world
                .clusters
                .get_mut(&key(&c.account, &ident(arn.id)))
                .filter(|_| mine)
                .ok_or_else(|| cluster_not_found(arn.id))?
                .tags
        }
        _ => {
            return Err(ApiError::invalid_value(format!(
                "ResourceName {name} names no cluster or cluster snapshot"
            )));
        }
    };
    match add {
        Some(true) => {
            let mut merged = tags.clone();
            for (k, v) in new_tags {
                upsert_tag(&mut merged, k, v);
            }
            if merged.len() > MAX_TAGS {
                return Err(tag_limit());
            }
            *tags = merged;
            Ok(None)
        }
        Some(false) => {
            tags.retain(|(k, _)| !keys.contains(k));
            Ok(None)
        }
        None => {
            let mut x = Xml::default();
            x.tags("TagList", tags);
            Ok(Some(x))
        }
    }
}

fn write_cluster(x: &mut Xml, cl: &Cluster, region: &str) {
    x.open("DBCluster");
    x.strings(
        "AvailabilityZones",
        "AvailabilityZone",
        &[format!("{region}a"), format!("{region}b")],
    );
    x.leaf("BackupRetentionPeriod", 1);
    x.leaf("DBClusterIdentifier", &cl.id);
    x.leaf("Status", "available");
    x.leaf(
        "Endpoint",
        format!("{}.cluster-emulated.{region}.docdb.amazonaws.com", cl.id),
    );
    x.leaf("Engine", &cl.engine);
    x.leaf("EngineVersion", &cl.engine_version);
    x.leaf("Port", cl.port);
    x.leaf("MasterUsername", &cl.master_username);
    x.leaf("StorageEncrypted", cl.encrypted);
    x.opt("KmsKeyId", cl.kms_key_id.as_ref());
    x.leaf(
        "DBClusterArn",
        format!("arn:aws:rds:{region}:{}:cluster:{}", cl.account, cl.id),
    );
    x.time("ClusterCreateTime", cl.created);
    x.close("DBCluster");
}

fn write_snapshot(x: &mut Xml, s: &Snapshot, c: &Caller) {
    write_snapshot_with_status(x, s, c, s.status(c));
}

fn write_snapshot_with_status(x: &mut Xml, s: &Snapshot, c: &Caller, status: &str) {
    let percent = (s.progress.fraction(c.instant) * 100.0).floor() as i64;
    x.open("DBClusterSnapshot");
    x.strings(
        "AvailabilityZones",
        "AvailabilityZone",
        &[format!("{}a", c.region), format!("{}b", c.region)],
    );
    x.leaf("DBClusterSnapshotIdentifier", &s.id);
    x.leaf("DBClusterIdentifier", &s.cluster.id);
    x.time("SnapshotCreateTime", s.created);
    x.leaf("Engine", &s.cluster.engine);
    x.leaf("Status", status);
    x.leaf("Port", s.cluster.port);
    x.time("ClusterCreateTime", s.cluster.created);
    x.leaf("MasterUsername", &s.cluster.master_username);
    x.leaf("EngineVersion", &s.cluster.engine_version);
    x.leaf(
        "SnapshotType",
        if s.automated { "automated" } else { "manual" },
    );
    x.leaf("PercentProgress", percent);
    x.leaf("StorageEncrypted", s.encrypted);
    x.opt("KmsKeyId", s.kms_key_id.as_ref());
    x.leaf("DBClusterSnapshotArn", s.arn(&c.region));
    x.opt("SourceDBClusterSnapshotArn", s.copy_of.as_ref());
    x.close("DBClusterSnapshot");
}

fn write_attributes(x: &mut Xml, s: &Snapshot) {
    x.open("DBClusterSnapshotAttributesResult");
    x.leaf("DBClusterSnapshotIdentifier", &s.id);
    x.open("DBClusterSnapshotAttributes");
    x.open("DBClusterSnapshotAttribute");
    x.leaf("AttributeName", "restore");
    x.strings("AttributeValues", "AttributeValue", &s.restore);
    x.close("DBClusterSnapshotAttribute");
    x.close("DBClusterSnapshotAttributes");
    x.close("DBClusterSnapshotAttributesResult");
}
