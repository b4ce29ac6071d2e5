//! Amazon ElastiCache (API 2015-02-02): replication groups, cache clusters and their
//! snapshots, copies, exports to S3 and tags, with AWS's rules and fault codes. No IO.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::query::{
    ApiError, ApiResult, Params, Reply, TagRules, Xml, check_identifier, upsert_tag,
};
use crate::state::{Caller, Export, Progress, State};

pub const XMLNS: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";
const MAX_TAGS: usize = 50;
/// ElastiCache's model names no tag fault: the actions that take Tags list
/// InvalidParameterValue ("The value for a parameter is invalid.").
const TAGS: TagRules = TagRules::common("InvalidParameterValue");

/// ElastiCache stores replication group ids, cache cluster ids and snapshot names as
/// lowercase strings ("This value is stored as a lowercase string"; "This parameter is
/// not case sensitive" where they are looked up), so every reference is lowercased.
fn ident(id: &str) -> String {
    id.to_ascii_lowercase()
}

#[derive(Debug, Clone)]
pub struct ReplicationGroup {
    pub id: String,
    pub account: String,
    pub description: String,
    pub engine: String,
    pub engine_version: String,
    pub node_type: String,
    pub members: Vec<String>,
    pub created: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct CacheCluster {
    pub id: String,
    pub account: String,
    pub engine: String,
    pub engine_version: String,
    pub node_type: String,
    pub num_nodes: i64,
    pub replication_group: Option<String>,
    pub created: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub account: String,
    pub replication_group: Option<(String, String)>,
    pub cache_cluster: Option<String>,
    pub automated: bool,
    pub engine: String,
    pub engine_version: String,
    pub node_type: String,
    pub cluster_created: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub progress: Progress,
    pub export: Option<Progress>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
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
        } else if !self.progress.done(c.instant) {
            "creating"
        } else if self.export.is_some_and(|e| !e.done(c.instant)) {
            "exporting"
        } else {
            "available"
        }
    }
    fn arn(&self, region: &str) -> String {
        format!(
            "arn:aws:elasticache:{region}:{}:snapshot:{}",
            self.account, self.name
        )
    }
}

type Key = (String, String);

#[derive(Debug, Default)]
pub struct World {
    pub replication_groups: BTreeMap<Key, ReplicationGroup>,
    pub cache_clusters: BTreeMap<Key, CacheCluster>,
    pub snapshots: BTreeMap<Key, Snapshot>,
}

fn key(account: &str, id: &str) -> Key {
    (account.to_string(), id.to_string())
}

fn snapshot_not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "SnapshotNotFoundFault",
        format!("Snapshot {name} not found."),
    )
}

fn group_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "ReplicationGroupNotFoundFault",
        format!("ReplicationGroup {id} not found."),
    )
}

fn cluster_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "CacheClusterNotFound",
        format!("CacheCluster {id} not found."),
    )
}

fn check_engine(engine: &str) -> ApiResult<()> {
    if ["redis", "valkey", "memcached"].contains(&engine) {
        Ok(())
    } else {
        Err(ApiError::invalid_value(format!(
            "Invalid engine {engine}: use redis, valkey or memcached"
        )))
    }
}

/// Snapshots whose deletion has run its course are gone.
fn purge_deleted(state: &mut State, c: &Caller) {
    state
        .region(&c.region)
        .elasticache
        .snapshots
        .retain(|_, s| !s.deleting.is_some_and(|d| d.done(c.instant)));
}

pub fn handle(state: &mut State, c: &Caller, action: &str, p: &Params) -> ApiResult<Reply> {
    purge_deleted(state, c);
    match action {
        "CreateReplicationGroup" => create_group(state, c, p),
        "CreateCacheCluster" => create_cluster(state, c, p),
        "CreateSnapshot" => create_snapshot(state, c, p),
        "DescribeSnapshots" => describe_snapshots(state, c, p),
        "CopySnapshot" => copy_snapshot(state, c, p),
        "DeleteSnapshot" => delete_snapshot(state, c, p),
        "AddTagsToResource" => tags(state, c, p, Some(true)),
        "RemoveTagsFromResource" => tags(state, c, p, Some(false)),
        "ListTagsForResource" => tags(state, c, p, None),
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

fn create_group(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("ReplicationGroupId")?;
    check_identifier("ReplicationGroupId", id, 40)?;
    let id = &ident(id);
    let description = p.req("ReplicationGroupDescription")?.to_string();
    let engine = p.get("Engine").unwrap_or("redis").to_string();
    check_engine(&engine)?;
    if engine == "memcached" {
        return Err(ApiError::invalid_value(
            "Replication groups support the redis and valkey engines only",
        ));
    }
    let tags = p.tags("Tags", &TAGS)?;
    let count = p.int("NumCacheClusters")?.unwrap_or(1).clamp(1, 6);
    let world = &mut state.region(&c.region).elasticache;
    if world.replication_groups.contains_key(&key(&c.account, id)) {
        return Err(ApiError::bad(
            "ReplicationGroupAlreadyExists",
            format!("Replication group {id} already exists."),
        ));
    }
    let group = ReplicationGroup {
        id: id.to_string(),
        account: c.account.clone(),
        description,
        engine_version: p.get("EngineVersion").unwrap_or("7.2").to_string(),
        engine,
        node_type: p
            .get("CacheNodeType")
            .unwrap_or("cache.t4g.micro")
            .to_string(),
        members: (1..=count).map(|i| format!("{id}-{i:03}")).collect(),
        created: c.now,
        tags,
    };
    for m in &group.members {
        world.cache_clusters.insert(
            key(&c.account, m),
            CacheCluster {
                id: m.clone(),
                account: c.account.clone(),
                engine: group.engine.clone(),
                engine_version: group.engine_version.clone(),
                node_type: group.node_type.clone(),
                num_nodes: 1,
                replication_group: Some(id.to_string()),
                created: c.now,
                tags: Vec::new(),
            },
        );
    }
    let mut x = Xml::default();
    write_group(&mut x, &group, &c.region);
    world.replication_groups.insert(key(&c.account, id), group);
    Ok(Some(x))
}

fn create_cluster(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let id = p.req("CacheClusterId")?;
    check_identifier("CacheClusterId", id, 50)?;
    let id = &ident(id);
    let world = &mut state.region(&c.region).elasticache;
    if world.cache_clusters.contains_key(&key(&c.account, id)) {
        return Err(ApiError::bad(
            "CacheClusterAlreadyExists",
            format!("Cache cluster {id} already exists."),
        ));
    }
    let group = match p.get("ReplicationGroupId") {
        Some(g) => Some(
            world
                .replication_groups
                .get(&key(&c.account, &ident(g)))
                .cloned()
                .ok_or_else(|| group_not_found(g))?,
        ),
        None => None,
    };
    let engine = p
        .get("Engine")
        .map(str::to_string)
        .or_else(|| group.as_ref().map(|g| g.engine.clone()))
        .unwrap_or_else(|| "redis".to_string());
    check_engine(&engine)?;
    let cluster = CacheCluster {
        id: id.to_string(),
        account: c.account.clone(),
        engine_version: p.get("EngineVersion").unwrap_or("7.2").to_string(),
        engine,
        node_type: p
            .get("CacheNodeType")
            .unwrap_or("cache.t4g.micro")
            .to_string(),
        num_nodes: p.int("NumCacheNodes")?.unwrap_or(1),
        replication_group: group.as_ref().map(|g| g.id.clone()),
        created: c.now,
        tags: p.tags("Tags", &TAGS)?,
    };
    if let Some(g) = &group
        && let Some(g) = world.replication_groups.get_mut(&key(&c.account, &g.id))
    {
        g.members.push(id.to_string());
    }
    let mut x = Xml::default();
    write_cluster(&mut x, &cluster, &c.region);
    world.cache_clusters.insert(key(&c.account, id), cluster);
    Ok(Some(x))
}

fn tag_limit() -> ApiError {
    ApiError::bad(
        "TagQuotaPerResourceExceeded",
        format!("A resource can have at most {MAX_TAGS} tags."),
    )
}

fn create_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let name = p.req("SnapshotName")?;
    check_identifier("SnapshotName", name, 255)?;
    let name = &ident(name);
    let tags = p.tags("Tags", &TAGS)?;
    if tags.len() > MAX_TAGS {
        return Err(tag_limit());
    }
    let progress = state.progress(c);
    // CreateSnapshot errors: InvalidReplicationGroupStateFault ("The requested
    // replication group is not in the available state") and
    // InvalidCacheClusterStateFault ("The requested cluster is not in the available
    // state"). A cluster taking a snapshot is `snapshotting`, not available: one
    // snapshot at a time.
    let source_id = p
        .get("ReplicationGroupId")
        .or(p.get("CacheClusterId"))
        .unwrap_or_default()
        .to_string();
    let busy = state.cluster_busy("elasticache", c, &source_id).map(|status| {
        if p.get("ReplicationGroupId").is_some() {
            ApiError::bad(
                "InvalidReplicationGroupState",
                format!(
                    "Replication group {source_id} is not in the available state: it is {status}."
                ),
            )
        } else {
            ApiError::bad(
                "InvalidCacheClusterState",
                format!("Cache cluster {source_id} is not in the available state: it is {status}."),
            )
        }
    });
    let world = &mut state.region(&c.region).elasticache;
    let (group, cluster) = match (p.get("ReplicationGroupId"), p.get("CacheClusterId")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::combination(
                "Only one of ReplicationGroupId or CacheClusterId may be specified.",
            ));
        }
        (None, None) => {
            return Err(ApiError::combination(
                "One of ReplicationGroupId or CacheClusterId must be specified.",
            ));
        }
        (Some(g), None) => {
            let g = world
                .replication_groups
                .get(&key(&c.account, &ident(g)))
                .ok_or_else(|| group_not_found(g))?;
            (
                Some((g.id.clone(), g.description.clone())),
                (
                    g.engine.clone(),
                    g.engine_version.clone(),
                    g.node_type.clone(),
                    g.created,
                ),
            )
        }
        (None, Some(cc)) => {
            let cl = world
                .cache_clusters
                .get(&key(&c.account, &ident(cc)))
                .ok_or_else(|| cluster_not_found(cc))?;
            if cl.engine == "memcached" {
                return Err(ApiError::bad(
                    "SnapshotFeatureNotSupportedFault",
                    format!("Cache cluster {cc} runs memcached, which does not support snapshots."),
                ));
            }
            (
                None,
                (
                    cl.engine.clone(),
                    cl.engine_version.clone(),
                    cl.node_type.clone(),
                    cl.created,
                ),
            )
        }
    };
    if world.snapshots.contains_key(&key(&c.account, name)) {
        return Err(ApiError::bad(
            "SnapshotAlreadyExistsFault",
            format!("Snapshot {name} already exists."),
        ));
    }
    if let Some(refused) = busy {
        return Err(refused);
    }
    let (engine, engine_version, node_type, cluster_created) = cluster;
    let snap = Snapshot {
        name: name.to_string(),
        account: c.account.clone(),
        replication_group: group,
        cache_cluster: p.get("CacheClusterId").map(ident),
        automated: false,
        engine,
        engine_version,
        node_type,
        cluster_created,
        created: c.now,
        progress,
        export: None,
        kms_key_id: p.get("KmsKeyId").map(str::to_string),
        tags,
        failed: false,
        forced: None,
        deleting: None,
    };
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c, None);
    world.snapshots.insert(key(&c.account, name), snap);
    if !state.one_snapshot_at_a_time {
        return Ok(Some(x));
    }
    state.cluster_states.insert(
        (
            "elasticache".to_string(),
            c.region.clone(),
            c.account.clone(),
            source_id.to_ascii_lowercase(),
        ),
        (
            "snapshotting".to_string(),
            progress.start + progress.duration,
        ),
    );
    Ok(Some(x))
}

fn describe_snapshots(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let pager = state.pager("elasticache:DescribeSnapshots", c, p, (20, 50, 50))?;
    let world = &state.region(&c.region).elasticache;
    let name = p.get("SnapshotName").map(ident);
    let group = p.get("ReplicationGroupId").map(ident);
    let cluster = p.get("CacheClusterId").map(ident);
    let source = match p.get("SnapshotSource") {
        None => None,
        Some("system") => Some(true),
        Some("user") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid_value(format!(
                "SnapshotSource must be system or user, got {other}"
            )));
        }
    };
    if let Some(cc) = cluster.as_deref()
        && !world.cache_clusters.contains_key(&key(&c.account, cc))
        && !world
            .snapshots
            .values()
            .any(|s| s.account == c.account && s.cache_cluster.as_deref() == Some(cc))
    {
        return Err(cluster_not_found(p.get("CacheClusterId").unwrap_or(cc)));
    }
    let items: Vec<&Snapshot> = world
        .snapshots
        .values()
        .filter(|s| s.account == c.account)
        .filter(|s| name.as_ref().is_none_or(|n| s.name == *n))
        .filter(|s| {
            group
                .as_ref()
                .is_none_or(|g| s.replication_group.as_ref().is_some_and(|r| r.0 == *g))
        })
        .filter(|s| {
            cluster
                .as_deref()
                .is_none_or(|cc| s.cache_cluster.as_deref() == Some(cc))
        })
        .filter(|s| source.is_none_or(|auto| s.automated == auto))
        .collect();
    if let Some(n) = p.get("SnapshotName")
        && items.is_empty()
    {
        return Err(snapshot_not_found(n));
    }
    let (items, marker) = pager.page(items, |s| s.name.clone());
    let mut x = Xml::default();
    x.opt("Marker", marker);
    x.open("Snapshots");
    for s in items {
        write_snapshot(&mut x, s, c, None);
    }
    x.close("Snapshots");
    Ok(Some(x))
}

fn check_bucket(bucket: &str) -> ApiResult<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '.')
        && bucket.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && bucket.ends_with(|ch: char| ch.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_value(format!(
            "The S3 bucket name {bucket} is not valid."
        )))
    }
}

fn copy_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let given_source = p.req("SourceSnapshotName")?;
    let source_name = &ident(given_source);
    let given_target = p.req("TargetSnapshotName")?;
    let target = &ident(given_target);
    let bucket = p.get("TargetBucket");
    let tags = p.tags("Tags", &TAGS)?;
    let progress = state.progress(c);
    let denied = bucket.is_some_and(|b| state.faults.denied_buckets.iter().any(|d| d == b));
    let export_fails = bucket.is_some_and(|b| {
        state
            .faults
            .fail_exports
            .iter()
            .any(|f| f == b || ident(f) == *source_name)
    });
    let world = &mut state.region(&c.region).elasticache;
    let source = world
        .snapshots
        .get(&key(&c.account, source_name))
        .cloned()
        .ok_or_else(|| snapshot_not_found(given_source))?;
    if source.status(c) != "available" {
        return Err(ApiError::bad(
            "InvalidSnapshotState",
            format!("Snapshot {given_source} is not in the available state."),
        ));
    }
    if let Some(bucket) = bucket {
        check_bucket(bucket)?;
        if denied {
            return Err(ApiError::invalid_value(format!(
                "ElastiCache has not been granted READ, WRITE and READ_ACP permissions on the \
                 S3 bucket {bucket}. Grant them to the ElastiCache service in the bucket's policy."
            )));
        }
        // CopySnapshot's documentation, "Error Message: The S3 bucket %s already contains
        // an object with key %s. Solution: Give the TargetSnapshotName a new and unique
        // value": an export to a key an earlier export wrote (or is writing) is refused
        // (InvalidParameterValueException, one of CopySnapshot's listed errors). A failed
        // export wrote nothing.
        let object = format!("{target}-0001.rdb");
        if state
            .exports
            .iter()
            .any(|e| e.bucket == bucket && e.key == object && e.status(c.instant) != "failed")
        {
            return Err(ApiError::invalid_value(format!(
                "The S3 bucket {bucket} already contains an object with key {object}."
            )));
        }
        let world = &mut state.region(&c.region).elasticache;
        let snap = world
            .snapshots
            .get_mut(&key(&c.account, source_name))
            .expect("found above");
        snap.export = Some(progress);
        let mut x = Xml::default();
        write_snapshot(&mut x, snap, c, None);
        // An export that fails after it was accepted: the snapshot is `exporting` for
        // the usual time and then `available` again, and no object is written. The API
        // has no field for an export's outcome (AWS reports it only as an event).
        let failure = export_fails.then(|| {
            format!("ElastiCache has not been granted WRITE permissions {bucket} on the S3 Bucket.")
        });
        state.exports.push(Export {
            region: c.region.clone(),
            account: c.account.clone(),
            source_snapshot: source_name.to_string(),
            bucket: bucket.to_string(),
            key: object,
            requested_at: c.now,
            progress,
            failure,
        });
        return Ok(Some(x));
    }
    check_identifier("TargetSnapshotName", given_target, 255)?;
    if world.snapshots.contains_key(&key(&c.account, target)) {
        return Err(ApiError::bad(
            "SnapshotAlreadyExistsFault",
            format!("Snapshot {given_target} already exists."),
        ));
    }
    let snap = Snapshot {
        name: target.to_string(),
        account: c.account.clone(),
        automated: false,
        created: c.now,
        progress,
        export: None,
        kms_key_id: p
            .get("KmsKeyId")
            .map(str::to_string)
            .or(source.kms_key_id.clone()),
        tags,
        failed: false,
        forced: None,
        deleting: None,
        ..source
    };
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c, None);
    world.snapshots.insert(key(&c.account, target), snap);
    Ok(Some(x))
}

fn delete_snapshot(state: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let given = p.req("SnapshotName")?;
    let name = &ident(given);
    let delete_seconds = state.delete_seconds;
    let deletion = state.deletion(c);
    let world = &mut state.region(&c.region).elasticache;
    let snap = world
        .snapshots
        .get(&key(&c.account, name))
        .ok_or_else(|| snapshot_not_found(given))?;
    let status = snap.status(c);
    if status == "creating" || status == "exporting" || status == "deleting" {
        return Err(ApiError::bad(
            "InvalidSnapshotState",
            format!("Snapshot {name} is {status} and cannot be deleted now."),
        ));
    }
    // DeleteSnapshot answers the snapshot `deleting` (Snapshot.SnapshotStatus:
    // creating | available | restoring | copying | deleting), and it stays so, its
    // name taken, until it is gone (`deleteSeconds`).
    if delete_seconds > 0.0 {
        let snap = world
            .snapshots
            .get_mut(&key(&c.account, name))
            .expect("found above");
        snap.deleting = Some(deletion);
        let mut x = Xml::default();
        write_snapshot(&mut x, snap, c, None);
        return Ok(Some(x));
    }
    let snap = world
        .snapshots
        .remove(&key(&c.account, name))
        .expect("found above");
    let mut x = Xml::default();
    write_snapshot(&mut x, &snap, c, Some("deleting"));
    Ok(Some(x))
}

fn tags(state: &mut State, c: &Caller, p: &Params, add: Option<bool>) -> ApiResult<Reply> {
    let name = p.req("ResourceName")?;
    let invalid_arn = || ApiError::bad("InvalidARN", format!("{name} is not a valid ARN."));
    let parts: Vec<&str> = name.splitn(7, ':').collect();
    let ["arn", "aws", "elasticache", region, account, kind, id] = parts[..] else {
        return Err(invalid_arn());
    };
    let mine = region == c.region && account == c.account;
    let new_tags = if add == Some(true) {
        p.tags("Tags", &TAGS)?
    } else {
        Vec::new()
    };
    let keys = p.strings("TagKeys");
    let world = &mut state.region(&c.region).elasticache;
    let k = key(&c.account, &ident(id));
    let tags = match kind {
        "snapshot" => {
            &mut world
                .snapshots
                .get_mut(&k)
                .filter(|_| mine)
                .ok_or_else(|| snapshot_not_found(id))?
                .tags
        }
        "replicationgroup" => {
            &mut world
                .replication_groups
                .get_mut(&k)
                .filter(|_| mine)
                .ok_or_else(|| group_not_found(id))?
                .tags
        }
        "cluster" => {
            &mut world
                .cache_clusters
                .get_mut(&k)
                .filter(|_| mine)
                .ok_or_else(|| cluster_not_found(id))?
                .tags
        }
        _ => return Err(invalid_arn()),
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
        }
        Some(false) => {
            if let Some(missing) = keys.iter().find(|k| !tags.iter().any(|(t, _)| t == *k)) {
                return Err(ApiError::not_found(
                    "TagNotFound",
                    format!("The tag {missing} is not on {name}."),
                ));
            }
            tags.retain(|(k, _)| !keys.contains(k));
        }
        None => {}
    }
    let mut x = Xml::default();
    x.tags("TagList", tags);
    Ok(Some(x))
}

fn write_group(x: &mut Xml, g: &ReplicationGroup, region: &str) {
    x.open("ReplicationGroup");
    x.leaf("ReplicationGroupId", &g.id);
    x.leaf("Description", &g.description);
    x.leaf("Status", "available");
    x.strings("MemberClusters", "ClusterId", &g.members);
    x.leaf("AutomaticFailover", "disabled");
    x.leaf("MultiAZ", "disabled");
    x.leaf("SnapshotRetentionLimit", 0);
    x.leaf("ClusterEnabled", false);
    x.leaf("CacheNodeType", &g.node_type);
    x.leaf(
        "ARN",
        format!(
            "arn:aws:elasticache:{region}:{}:replicationgroup:{}",
            g.account, g.id
        ),
    );
    x.time("ReplicationGroupCreateTime", g.created);
    x.leaf("Engine", &g.engine);
    x.close("ReplicationGroup");
}

fn write_cluster(x: &mut Xml, cl: &CacheCluster, region: &str) {
    x.open("CacheCluster");
    x.leaf("CacheClusterId", &cl.id);
    x.leaf("CacheNodeType", &cl.node_type);
    x.leaf("Engine", &cl.engine);
    x.leaf("EngineVersion", &cl.engine_version);
    x.leaf("CacheClusterStatus", "available");
    x.leaf("NumCacheNodes", cl.num_nodes);
    x.leaf("PreferredAvailabilityZone", format!("{region}a"));
    x.time("CacheClusterCreateTime", cl.created);
    x.opt("ReplicationGroupId", cl.replication_group.as_ref());
    x.leaf(
        "ARN",
        format!(
            "arn:aws:elasticache:{region}:{}:cluster:{}",
            cl.account, cl.id
        ),
    );
    x.close("CacheCluster");
}

fn write_snapshot(x: &mut Xml, s: &Snapshot, c: &Caller, status: Option<&str>) {
    x.open("Snapshot");
    x.leaf("SnapshotName", &s.name);
    if let Some((id, description)) = &s.replication_group {
        x.leaf("ReplicationGroupId", id);
        x.leaf("ReplicationGroupDescription", description);
    }
    x.opt("CacheClusterId", s.cache_cluster.as_ref());
    x.leaf("SnapshotStatus", status.unwrap_or(s.status(c)));
    x.leaf(
        "SnapshotSource",
        if s.automated { "automated" } else { "manual" },
    );
    x.leaf("CacheNodeType", &s.node_type);
    x.leaf("Engine", &s.engine);
    x.leaf("EngineVersion", &s.engine_version);
    x.leaf("NumCacheNodes", 1);
    x.leaf("PreferredAvailabilityZone", format!("{}a", c.region));
    x.time("CacheClusterCreateTime", s.cluster_created);
    x.leaf("Port", 6379);
    x.leaf("SnapshotRetentionLimit", 0);
    x.leaf("NumNodeGroups", 1);
    x.leaf("AutomaticFailover", "disabled");
    x.open("NodeSnapshots");
    x.open("NodeSnapshot");
    x.opt(
        "CacheClusterId",
        s.cache_cluster
            .clone()
            .or(s.replication_group.as_ref().map(|g| format!("{}-001", g.0))),
    );
    x.leaf("NodeGroupId", "0001");
    x.leaf("CacheNodeId", "0001");
    x.leaf("CacheSize", "5 MB");
    x.time("CacheNodeCreateTime", s.cluster_created);
    x.time("SnapshotCreateTime", s.created);
    x.close("NodeSnapshot");
    x.close("NodeSnapshots");
    x.opt("KmsKeyId", s.kms_key_id.as_ref());
    x.leaf("ARN", s.arn(&c.region));
    x.close("Snapshot");
}
