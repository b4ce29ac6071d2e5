//! Amazon Redshift (API 2012-12-01): clusters and their snapshots, sharing, retention
//! and tags, with AWS's rules and fault codes. No IO.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::query::{
    ApiError, ApiResult, Params, Reply, TagRules, Xml, check_identifier, is_account_id, upsert_tag,
};
use crate::state::{Caller, Progress, State};

pub const XMLNS: &str = "http://redshift.amazonaws.com/doc/2012-12-01/";
const MAX_SHARES: usize = 20;
const MAX_TAGS: usize = 50;
/// Redshift's model answers an invalid tag with InvalidTagFault ("The tag is invalid.")
/// on CreateTags, CreateCluster and CreateClusterSnapshot.
const TAGS: TagRules = TagRules::common("InvalidTagFault");
/// The account alias of AWS Support: "For Amazon Web Services Support, the identifier
/// is amazon-redshift-support" (AccountWithRestoreAccess.AccountAlias).
pub const SUPPORT_ALIAS: &str = "amazon-redshift-support";

#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: String,
    pub account: String,
    pub node_type: String,
    pub number_of_nodes: i64,
    pub master_username: String,
    pub db_name: String,
    pub created: DateTime<Utc>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub status: &'static str,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub account: String,
    pub cluster: Cluster,
    pub automated: bool,
    pub created: DateTime<Utc>,
    pub progress: Progress,
    pub total_mb: f64,
    pub retention: i64,
    pub tags: Vec<(String, String)>,
    pub shared: Vec<String>,
    pub failed: bool,
    /// A status set through the admin API (`/_emulator/snapshots/status`), shown
    /// instead of the one the snapshot would have: any the model documents, or one it
    /// does not.
    pub forced: Option<&'static str>,
}

impl Snapshot {
    pub fn status(&self, caller: &Caller) -> &'static str {
        if let Some(forced) = self.forced {
            forced
        } else if self.failed {
            "failed"
        } else if self.progress.done(caller.instant) {
            "available"
        } else {
            "creating"
        }
    }
    fn arn(&self, region: &str) -> String {
        format!(
            "arn:aws:redshift:{region}:{}:snapshot:{}/{}",
            self.account, self.cluster.id, self.id
        )
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

fn check_retention(p: &Params, name: &str) -> ApiResult<Option<i64>> {
    let r = p.int(name)?;
    if let Some(v) = r
        && v != -1
        && !(1..=3653).contains(&v)
    {
        return Err(ApiError::bad(
            "InvalidRetentionPeriodFault",
            format!(
                "{name} {v} is not valid: the retention period must be -1 (retain \
                 indefinitely) or between 1 and 3653 days"
            ),
        ));
    }
    Ok(r)
}

fn snapshot_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "ClusterSnapshotNotFound",
        format!("Snapshot {id} not found."),
    )
}

fn cluster_not_found(id: &str) -> ApiError {
    ApiError::not_found("ClusterNotFound", format!("Cluster {id} not found."))
}

/// A stable, cluster-dependent snapshot size, so tests see realistic figures.
fn size_of(cluster: &str) -> f64 {
    500.0 + (cluster.bytes().map(u64::from).sum::<u64>() % 4000) as f64
}

/// How many emulated days (of `Caller::seconds_per_day` real seconds) the snapshot has
/// existed.
fn age_days(s: &Snapshot, c: &Caller) -> f64 {
    (c.now - s.created).num_milliseconds() as f64 / 1000.0 / c.seconds_per_day
}

/// Whether a manual snapshot falls outside a retention period of `days` (-1: kept
/// indefinitely). Snapshot.ManualSnapshotRetentionPeriod: "The number of days that a
/// manual snapshot is retained. If the value is -1, the manual snapshot is retained
/// indefinitely."
fn outside_retention(s: &Snapshot, c: &Caller, days: i64) -> bool {
    !s.automated && days >= 0 && age_days(s, c) >= days as f64
}

/// Snapshot.ManualSnapshotRemainingDays: "The number of days until a manual snapshot
/// will pass its retention period" (-1 for one kept indefinitely).
fn remaining_days(s: &Snapshot, c: &Caller) -> i64 {
    if s.retention < 0 {
        -1
    } else {
        s.retention - age_days(s, c).floor() as i64
    }
}

/// AWS deletes a manual snapshot once its retention period has passed
/// (ManualSnapshotRetentionPeriod, ManualSnapshotRemainingDays): every Redshift call
/// first forgets the region's snapshots that are past theirs.
fn expire_snapshots(state: &mut State, c: &Caller) {
    state
        .region(&c.region)
        .redshift
        .snapshots
        .retain(|_, s| !outside_retention(s, c, s.retention));
}

pub fn handle(state: &mut State, c: &Caller, action: &str, p: &Params) -> ApiResult<Reply> {
    expire_snapshots(state, c);
    match action {
        "CreateCluster" => create_cluster(state, c, p),
        "DescribeClusters" => describe_clusters(state, c, p),
        "DeleteCluster" => delete_cluster(state, c, p),
        "CreateClusterSnapshot" => create_snapshot(state, c, p),
        "DescribeClusterSnapshots" => describe_snapshots(state, c, p),
        "CopyClusterSnapshot" => copy_snapshot(state, c, p),
        "DeleteClusterSnapshot" => delete_snapshot(state, c, p),
        "AuthorizeSnapshotAccess" => share(state, c, p, true),
        "RevokeSnapshotAccess" => share(state, c, p, false),
        "ModifyClusterSnapshot" => modify_snapshot(state, c, p),
        "CreateTags" => tags(state, c, p, true),
        "DeleteTags" => tags(state, c, p, false),
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

fn create_cluster(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("ClusterIdentifier")?;
    check_identifier("ClusterIdentifier", id, 63)?;
    // "Alphabetic characters must be lowercase": Redshift keeps the identifier
    // lowercased (a mixed-case one comes back lowercased); later look-ups by
    // ClusterIdentifier are case sensitive ("This parameter is case sensitive").
    let id = &id.to_ascii_lowercase();
    let node_type = p.req("NodeType")?.to_string();
    let master_username = p.req("MasterUsername")?.to_string();
    check_retention(p, "ManualSnapshotRetentionPeriod")?;
    let tags = p.tags("Tags", &TAGS)?;
    let progress = state.progress(c);
    let world = &mut state.region(&c.region).redshift;
    if world.clusters.contains_key(&key(&c.account, id)) {
        return Err(ApiError::bad(
            "ClusterAlreadyExists",
            format!("Cluster {id} already exists."),
        ));
    }
    let cluster = Cluster {
        id: id.to_string(),
        account: c.account.clone(),
        node_type,
        number_of_nodes: p.int("NumberOfNodes")?.unwrap_or(1),
        master_username,
        db_name: p.get("DBName").unwrap_or("dev").to_string(),
        created: c.now,
        encrypted: p.bool("Encrypted")?.unwrap_or(false),
        kms_key_id: p.get("KmsKeyId").map(str::to_string),
        tags,
        status: "available",
    };
    world.clusters.insert(key(&c.account, id), cluster.clone());
    // Redshift takes an automated snapshot of a new cluster.
    insert_automated(world, c, &cluster, progress, None);
    let mut x = Xml::default();
    write_cluster(&mut x, &cluster, &c.region);
    Ok(Some(x))
}

/// Takes an automated snapshot `rs:<cluster>-<yyyy-mm-dd-hh-mm>` (or `named`) and
/// returns its id.
pub fn insert_automated(
    world: &mut World,
    c: &Caller,
    cluster: &Cluster,
    progress: Progress,
    named: Option<&str>,
) -> String {
    let mut at = c.now;
    let id = loop {
        if let Some(n) = named {
            break n.to_string();
        }
        let id = format!("rs:{}-{}", cluster.id, at.format("%Y-%m-%d-%H-%M"));
        if !world.snapshots.contains_key(&key(&cluster.account, &id)) {
            break id;
        }
        at += chrono::Duration::minutes(1);
    };
    world.snapshots.insert(
        key(&cluster.account, &id),
        Snapshot {
            id: id.clone(),
            account: cluster.account.clone(),
            cluster: cluster.clone(),
            automated: true,
            created: c.now,
            progress,
            total_mb: size_of(&cluster.id),
            retention: -1,
            tags: Vec::new(),
            shared: Vec::new(),
            failed: false,
            forced: None,
        },
    );
    id
}

fn matches_tags(tags: &[(String, String)], keys: &[String], values: &[String]) -> bool {
    if keys.is_empty() && values.is_empty() {
        return true;
    }
    tags.iter().any(|(k, v)| {
        (keys.is_empty() || keys.contains(k)) && (values.is_empty() || values.contains(v))
    })
}

fn describe_clusters(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let pager = state.pager("redshift:DescribeClusters", c, p, (20, 100, 100))?;
    let world = &state.region(&c.region).redshift;
    let id = p.get("ClusterIdentifier");
    let (keys, values) = (p.strings("TagKeys"), p.strings("TagValues"));
    let items: Vec<&Cluster> = world
        .clusters
        .values()
        .filter(|cl| cl.account == c.account)
        .filter(|cl| id.is_none_or(|id| cl.id == id))
        .filter(|cl| matches_tags(&cl.tags, &keys, &values))
        .collect();
    if let Some(id) = id
        && items.is_empty()
    {
        return Err(cluster_not_found(id));
    }
    let (items, marker) = pager.page(items, |cl| cl.id.clone());
    let mut x = Xml::default();
    x.open("Clusters");
    for cl in items {
        write_cluster(&mut x, cl, &c.region);
    }
    x.close("Clusters");
    x.opt("Marker", marker);
    Ok(Some(x))
}

fn delete_cluster(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("ClusterIdentifier")?;
    let skip = p.bool("SkipFinalClusterSnapshot")?.unwrap_or(false);
    let final_id = p.get("FinalClusterSnapshotIdentifier");
    let retention = check_retention(p, "FinalClusterSnapshotRetentionPeriod")?;
    if !skip && final_id.is_none() {
        return Err(ApiError::combination(
            "FinalClusterSnapshotIdentifier is required unless SkipFinalClusterSnapshot is true.",
        ));
    }
    if skip && final_id.is_some() {
        return Err(ApiError::combination(
            "FinalClusterSnapshotIdentifier cannot be given with SkipFinalClusterSnapshot.",
        ));
    }
    let progress = state.progress(c);
    let world = &mut state.region(&c.region).redshift;
    let mut cluster = world
        .clusters
        .get(&key(&c.account, id))
        .cloned()
        .ok_or_else(|| cluster_not_found(id))?;
    if let Some(final_id) = final_id {
        check_identifier("FinalClusterSnapshotIdentifier", final_id, 255)?;
        if world.snapshots.contains_key(&key(&c.account, final_id)) {
            return Err(ApiError::bad(
                "ClusterSnapshotAlreadyExists",
                format!(
                    "Cannot create the snapshot because a snapshot with the identifier {final_id} already exists."
                ),
            ));
        }
        world.snapshots.insert(
            key(&c.account, final_id),
            Snapshot {
                id: final_id.to_string(),
                account: c.account.clone(),
                cluster: cluster.clone(),
                automated: false,
                created: c.now,
                progress,
                total_mb: size_of(id),
                retention: retention.unwrap_or(-1),
                tags: Vec::new(),
                shared: Vec::new(),
                failed: false,
                forced: None,
            },
        );
    }
    world.clusters.remove(&key(&c.account, id));
    // Automated snapshots go with their cluster; manual ones stay.
    world
        .snapshots
        .retain(|_, s| !(s.automated && s.account == c.account && s.cluster.id == id));
    cluster.status = "deleting";
    let mut x = Xml::default();
    write_cluster(&mut x, &cluster, &c.region);
    Ok(Some(x))
}

fn create_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("SnapshotIdentifier")?;
    let cluster_id = p.req("ClusterIdentifier")?;
    check_identifier("SnapshotIdentifier", id, 255)?;
    let retention = check_retention(p, "ManualSnapshotRetentionPeriod")?;
    let tags = p.tags("Tags", &TAGS)?;
    if tags.len() > MAX_TAGS {
        return Err(tag_limit());
    }
    let progress = state.progress(c);
    let busy = state.cluster_busy("redshift", c, cluster_id);
    let world = &mut state.region(&c.region).redshift;
    let cluster = world
        .clusters
        .get(&key(&c.account, cluster_id))
        .cloned()
        .ok_or_else(|| cluster_not_found(cluster_id))?;
    // CreateClusterSnapshot errors: InvalidClusterStateFault, "The specified cluster is
    // not in the available state" (modifying, resizing, rebooting, deleting...).
    let status = busy.as_deref().unwrap_or(cluster.status);
    if status != "available" {
        return Err(ApiError::bad(
            "InvalidClusterState",
            format!("Cluster {cluster_id} is not in the available state: it is {status}."),
        ));
    }
    if world.snapshots.contains_key(&key(&c.account, id)) {
        return Err(ApiError::bad(
            "ClusterSnapshotAlreadyExists",
            format!(
                "Cannot create the snapshot because a snapshot with the identifier {id} already exists."
            ),
        ));
    }
    let snap = Snapshot {
        id: id.to_string(),
        account: c.account.clone(),
        total_mb: size_of(cluster_id),
        cluster,
        automated: false,
        created: c.now,
        progress,
        retention: retention.unwrap_or(-1),
        tags,
        shared: Vec::new(),
        failed: false,
        forced: None,
    };
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c);
    world.snapshots.insert(key(&c.account, id), snap);
    Ok(Some(x))
}

fn describe_snapshots(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let pager = state.pager("redshift:DescribeClusterSnapshots", c, p, (20, 100, 100))?;
    let world = &state.region(&c.region).redshift;
    let id = p.get("SnapshotIdentifier");
    let arn = p.get("SnapshotArn");
    let cluster = p.get("ClusterIdentifier");
    let owner = p.get("OwnerAccount");
    let kind = p.get("SnapshotType");
    if let Some(k) = kind
        && k != "manual"
        && k != "automated"
    {
        return Err(ApiError::invalid_value(format!(
            "SnapshotType must be manual or automated, got {k}"
        )));
    }
    let (keys, values) = (p.strings("TagKeys"), p.strings("TagValues"));
    let items: Vec<&Snapshot> = world
        .snapshots
        .values()
        .filter(|s| s.account == c.account || s.shared.contains(&c.account))
        // "Only snapshots that you own are returned in the response; shared snapshots
        // are not returned with the tag key and tag value request parameters."
        .filter(|s| s.account == c.account || (keys.is_empty() && values.is_empty()))
        .filter(|s| id.is_none_or(|id| s.id == id))
        .filter(|s| arn.is_none_or(|a| s.arn(&c.region) == a))
        .filter(|s| cluster.is_none_or(|cl| s.cluster.id == cl))
        .filter(|s| owner.is_none_or(|o| s.account == o))
        .filter(|s| kind.is_none_or(|k| (k == "automated") == s.automated))
        .filter(|s| matches_tags(&s.tags, &keys, &values))
        .collect();
    if items.is_empty()
        && let Some(missing) = id.or(arn)
    {
        return Err(snapshot_not_found(missing));
    }
    let (items, marker) = pager.page(items, |s| format!("{}/{}", s.id, s.account));
    let mut x = Xml::default();
    x.open("Snapshots");
    for s in items {
        write_snapshot(&mut x, s, c);
    }
    x.close("Snapshots");
    x.opt("Marker", marker);
    Ok(Some(x))
}

fn copy_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let source_id = p.req("SourceSnapshotIdentifier")?;
    let target_id = p.req("TargetSnapshotIdentifier")?;
    let source_cluster = p.get("SourceSnapshotClusterIdentifier");
    check_identifier("TargetSnapshotIdentifier", target_id, 255)?;
    let retention = check_retention(p, "ManualSnapshotRetentionPeriod")?;
    let progress = state.progress(c);
    let world = &mut state.region(&c.region).redshift;
    let source = world
        .snapshots
        .get(&key(&c.account, source_id))
        .filter(|s| source_cluster.is_none_or(|cl| s.cluster.id == cl))
        .cloned()
        .ok_or_else(|| snapshot_not_found(source_id))?;
    if !source.automated {
        return Err(ApiError::bad(
            "InvalidClusterSnapshotState",
            format!(
                "Snapshot {source_id} is a manual snapshot: CopyClusterSnapshot copies only \
                 automated snapshots."
            ),
        ));
    }
    if source.status(c) != "available" {
        return Err(ApiError::bad(
            "InvalidClusterSnapshotState",
            format!("Snapshot {source_id} is not in the available state."),
        ));
    }
    if world.snapshots.contains_key(&key(&c.account, target_id)) {
        return Err(ApiError::bad(
            "ClusterSnapshotAlreadyExists",
            format!(
                "Cannot copy the snapshot because a snapshot with the identifier {target_id} already exists."
            ),
        ));
    }
    let snap = Snapshot {
        id: target_id.to_string(),
        automated: false,
        created: c.now,
        progress,
        retention: retention.unwrap_or(-1),
        tags: Vec::new(),
        shared: Vec::new(),
        failed: false,
        forced: None,
        ..source
    };
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c);
    world.snapshots.insert(key(&c.account, target_id), snap);
    Ok(Some(x))
}

/// Finds the caller's own snapshot named by SnapshotIdentifier (or SnapshotArn).
fn own_snapshot<'w>(
    world: &'w mut World,
    c: &Caller,
    p: &Params,
    cluster_param: Option<&str>,
) -> ApiResult<&'w mut Snapshot> {
    let (id, by_arn) = match (p.get("SnapshotIdentifier"), p.get("SnapshotArn")) {
        (Some(id), _) => (id.to_string(), None),
        (None, Some(arn)) => {
            let id = arn
                .rsplit_once('/')
                .map(|(_, id)| id.to_string())
                .unwrap_or_default();
            (id, Some(arn.to_string()))
        }
        (None, None) => return Err(ApiError::missing("SnapshotIdentifier")),
    };
    let cluster = cluster_param.and_then(|name| p.get(name));
    let region = c.region.clone();
    world
        .snapshots
        .get_mut(&key(&c.account, &id))
        .filter(|s| cluster.is_none_or(|cl| s.cluster.id == cl))
        .filter(|s| by_arn.as_ref().is_none_or(|a| s.arn(&region) == *a))
        .ok_or_else(|| snapshot_not_found(&id))
}

fn delete_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let world = &mut state.region(&c.region).redshift;
    let snap = own_snapshot(world, c, p, Some("SnapshotClusterIdentifier"))?;
    let id = snap.id.clone();
    if snap.automated {
        return Err(ApiError::bad(
            "InvalidClusterSnapshotState",
            format!("Snapshot {id} is an automated snapshot and cannot be deleted."),
        ));
    }
    if snap.status(c) == "creating" {
        return Err(ApiError::bad(
            "InvalidClusterSnapshotState",
            format!("Snapshot {id} is still being created and cannot be deleted."),
        ));
    }
    if !snap.shared.is_empty() {
        let accounts = snap.shared.join(", ");
        state.counters.shared_deletes += 1;
        return Err(ApiError::bad(
            "InvalidClusterSnapshotState",
            format!(
                "Snapshot {id} is shared with accounts {accounts}: revoke access before deleting it."
            ),
        ));
    }
    let mut snap = world
        .snapshots
        .remove(&key(&c.account, &id))
        .expect("found above");
    snap.failed = false;
    let mut x = Xml::default();
    write_snapshot_with_status(&mut x, &snap, c, "deleted");
    Ok(Some(x))
}

fn share(state: &mut State, c: &Caller, p: &Params, grant: bool) -> ApiResult<Reply> {
    let account = p.req("AccountWithRestoreAccess")?.to_string();
    if !is_account_id(&account) && account != SUPPORT_ALIAS {
        return Err(ApiError::invalid_value(format!(
            "AccountWithRestoreAccess {account} is not valid: use a 12-digit AWS account id \
             or amazon-redshift-support"
        )));
    }
    let world = &mut state.region(&c.region).redshift;
    let snap = own_snapshot(world, c, p, Some("SnapshotClusterIdentifier"))?;
    if grant {
        if snap.status(c) != "available" {
            return Err(ApiError::bad(
                "InvalidClusterSnapshotState",
                format!("Snapshot {} is not in the available state.", snap.id),
            ));
        }
        if snap.shared.contains(&account) {
            return Err(ApiError::bad(
                "AuthorizationAlreadyExists",
                format!(
                    "Account {account} is already authorized to restore snapshot {}.",
                    snap.id
                ),
            ));
        }
        if snap.shared.len() >= MAX_SHARES {
            return Err(ApiError::bad(
                "AuthorizationQuotaExceeded",
                format!(
                    "Snapshot {} is already shared with {MAX_SHARES} accounts, the most allowed.",
                    snap.id
                ),
            ));
        }
        snap.shared.push(account);
    } else {
        let before = snap.shared.len();
        snap.shared.retain(|a| *a != account);
        if snap.shared.len() == before {
            return Err(ApiError::not_found(
                "AuthorizationNotFound",
                format!(
                    "Account {account} is not authorized to restore snapshot {}.",
                    snap.id
                ),
            ));
        }
    }
    let mut x = Xml::default();
    write_snapshot(&mut x, snap, c);
    Ok(Some(x))
}

fn modify_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let retention = check_retention(p, "ManualSnapshotRetentionPeriod")?;
    let world = &mut state.region(&c.region).redshift;
    let snap = own_snapshot(world, c, p, None)?;
    if snap.automated {
        return Err(ApiError::bad(
            "InvalidClusterSnapshotState",
            format!(
                "Snapshot {} is an automated snapshot; only manual snapshots can be modified.",
                snap.id
            ),
        ));
    }
    if let Some(r) = retention
        && outside_retention(snap, c, r)
    {
        // ModifyClusterSnapshotMessage.ManualSnapshotRetentionPeriod: "If the manual
        // snapshot falls outside of the new retention period, you can specify the force
        // option to immediately delete the snapshot." Force: "A Boolean option to
        // override an exception if the retention period has already passed." The
        // exception is InvalidRetentionPeriodFault ("The retention period specified is
        // either in the past or is not a valid value.", HTTP 400).
        let id = snap.id.clone();
        if p.bool("Force")? != Some(true) {
            return Err(ApiError::bad(
                "InvalidRetentionPeriodFault",
                format!(
                    "Snapshot {id} falls outside the new retention period of {r} days \
                     (it is {} days old): specify Force to delete it now.",
                    age_days(snap, c).floor()
                ),
            ));
        }
        let mut gone = world
            .snapshots
            .remove(&key(&c.account, &id))
            .expect("found above");
        gone.retention = r;
        let mut x = Xml::default();
        write_snapshot_with_status(&mut x, &gone, c, "deleted");
        return Ok(Some(x));
    }
    if let Some(r) = retention {
        snap.retention = r;
    }
    let mut x = Xml::default();
    write_snapshot(&mut x, snap, c);
    Ok(Some(x))
}

fn tag_limit() -> ApiError {
    ApiError::bad(
        "TagLimitExceededFault",
        format!("A resource can have at most {MAX_TAGS} tags."),
    )
}

fn tags(state: &mut State, c: &Caller, p: &Params, add: bool) -> ApiResult<Reply> {
    let arn = p.req("ResourceName")?;
    let not_found = || {
        ApiError::not_found(
            "ResourceNotFoundFault",
            format!("The resource {arn} could not be found."),
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, service, region, account, resource] = parts[..] else {
        return Err(ApiError::invalid_value(format!(
            "ResourceName {arn} is not a valid ARN"
        )));
    };
    if service != "redshift" || region != c.region || account != c.account {
        return Err(not_found());
    }
    let new_tags = if add {
        p.tags("Tags", &TAGS)?
    } else {
        Vec::new()
    };
    let keys = p.strings("TagKeys");
    let world = &mut state.region(&c.region).redshift;
    let tags = match resource.split_once(':') {
        Some(("snapshot", rest)) => {
            let (cluster, id) = rest.split_once('/').ok_or_else(not_found)?;
            &mut world
                .snapshots
                .get_mut(&key(&c.account, id))
                .filter(|s| s.cluster.id == cluster)
                .ok_or_else(not_found)?
                .tags
        }
        Some(("cluster", id)) => {
            &mut world
                .clusters
                .get_mut(&key(&c.account, id))
                .ok_or_else(not_found)?
                .tags
        }
        _ => return Err(not_found()),
    };
    if add {
        let mut merged = tags.clone();
        for (k, v) in new_tags {
            upsert_tag(&mut merged, k, v);
        }
        if merged.len() > MAX_TAGS {
            return Err(tag_limit());
        }
        *tags = merged;
    } else {
        tags.retain(|(k, _)| !keys.contains(k));
    }
    Ok(None)
}

fn write_cluster(x: &mut Xml, cl: &Cluster, region: &str) {
    x.open("Cluster");
    x.leaf("ClusterIdentifier", &cl.id);
    x.leaf("NodeType", &cl.node_type);
    x.leaf("ClusterStatus", cl.status);
    x.leaf("ClusterAvailabilityStatus", "Available");
    x.leaf("MasterUsername", &cl.master_username);
    x.leaf("DBName", &cl.db_name);
    x.open("Endpoint");
    x.leaf(
        "Address",
        format!("{}.emulated.{region}.redshift.amazonaws.com", cl.id),
    );
    x.leaf("Port", 5439);
    x.close("Endpoint");
    x.time("ClusterCreateTime", cl.created);
    x.leaf("AutomatedSnapshotRetentionPeriod", 1);
    x.leaf("ManualSnapshotRetentionPeriod", -1);
    x.leaf("AvailabilityZone", format!("{region}a"));
    x.leaf("NumberOfNodes", cl.number_of_nodes);
    x.leaf("Encrypted", cl.encrypted);
    x.opt("KmsKeyId", cl.kms_key_id.as_ref());
    x.tags("Tags", &cl.tags);
    x.leaf(
        "ClusterNamespaceArn",
        format!(
            "arn:aws:redshift:{region}:{}:namespace:{}",
            cl.account, cl.id
        ),
    );
    x.close("Cluster");
}

fn write_snapshot(x: &mut Xml, s: &Snapshot, c: &Caller) {
    write_snapshot_with_status(x, s, c, s.status(c));
}

fn write_snapshot_with_status(x: &mut Xml, s: &Snapshot, c: &Caller, status: &str) {
    let now = c.instant;
    let frac = s.progress.fraction(now);
    let secs = s.progress.duration.as_secs_f64().max(1.0);
    x.open("Snapshot");
    x.leaf("SnapshotIdentifier", &s.id);
    x.leaf("ClusterIdentifier", &s.cluster.id);
    x.time("SnapshotCreateTime", s.created);
    x.leaf("Status", status);
    x.leaf("Port", 5439);
    x.leaf("AvailabilityZone", format!("{}a", c.region));
    x.time("ClusterCreateTime", s.cluster.created);
    x.leaf("MasterUsername", &s.cluster.master_username);
    x.leaf("ClusterVersion", "1.0");
    x.leaf(
        "SnapshotType",
        if s.automated { "automated" } else { "manual" },
    );
    x.leaf("NodeType", &s.cluster.node_type);
    x.leaf("NumberOfNodes", s.cluster.number_of_nodes);
    x.leaf("DBName", &s.cluster.db_name);
    x.leaf("Encrypted", s.cluster.encrypted);
    x.opt("KmsKeyId", s.cluster.kms_key_id.as_ref());
    x.leaf("EncryptedWithHSM", false);
    // "Returns null if no accounts are authorized. Visible only to the snapshot owner."
    // AWS Support is listed by its AccountAlias, every other account by its AccountId.
    if !s.shared.is_empty() && s.account == c.account {
        x.open("AccountsWithRestoreAccess");
        for a in &s.shared {
            x.open("AccountWithRestoreAccess");
            if a == SUPPORT_ALIAS {
                x.leaf("AccountAlias", a);
            } else {
                x.leaf("AccountId", a);
            }
            x.close("AccountWithRestoreAccess");
        }
        x.close("AccountsWithRestoreAccess");
    }
    x.leaf("OwnerAccount", &s.account);
    x.leaf("TotalBackupSizeInMegaBytes", s.total_mb);
    x.leaf("ActualIncrementalBackupSizeInMegaBytes", s.total_mb);
    x.leaf(
        "BackupProgressInMegaBytes",
        (s.total_mb * frac * 10.0).round() / 10.0,
    );
    x.leaf(
        "CurrentBackupRateInMegaBytesPerSecond",
        (s.total_mb / secs * 100.0).round() / 100.0,
    );
    x.leaf(
        "EstimatedSecondsToCompletion",
        s.progress.remaining_secs(now),
    );
    x.leaf("ElapsedTimeInSeconds", s.progress.elapsed_secs(now));
    x.tags("Tags", &s.tags);
    if !s.automated {
        x.leaf("ManualSnapshotRetentionPeriod", s.retention);
        x.leaf("ManualSnapshotRemainingDays", remaining_days(s, c));
        x.time("SnapshotRetentionStartTime", s.created);
    }
    x.leaf("SnapshotArn", s.arn(&c.region));
    x.close("Snapshot");
}
