//! Spec validation done by the operator itself, mirroring the CRD schema and its CEL
//! rules (some API servers drop CEL): every error names the field and the fix. No IO.

use std::fmt;

use super::aws_account::AWSAccountSpec;
use super::cluster_snapshot::{ClusterSnapshotSpec, SourceCluster};
use super::snapshot_copy::SnapshotCopySpec;
use super::snapshot_schedule::SnapshotScheduleSpec;
use super::status::Engine;
use super::{DeletionPolicy, Tags};
use crate::naming::is_valid_identifier;

/// An invalid spec: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The field's path under `spec`, such as `spec.sharedWith[2]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::new(field, message)
}

pub(crate) const MAX_TAGS: usize = 48;
const MAX_SHARES: usize = 20;

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn check_identifier(field: &str, id: &str, max: usize, what: &str) -> Result<(), SpecError> {
    if is_valid_identifier(id, max) {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{id:?} is not a valid {what}: use 1 to {max} lowercase ASCII letters, digits \
                 and single hyphens, starting with a letter and not ending with a hyphen (AWS \
                 stores identifiers lowercased; write {:?})",
                id.to_ascii_lowercase()
            ),
        ))
    }
}

fn check_region(field: &str, region: &Option<String>) -> Result<(), SpecError> {
    match region {
        Some(r) if !is_region(r) => Err(err(
            field,
            format!("{r:?} is not an AWS region name such as us-east-1"),
        )),
        _ => Ok(()),
    }
}

fn check_retention(field: &str, days: Option<i32>) -> Result<(), SpecError> {
    match days {
        Some(d) if d != -1 && !(1..=3653).contains(&d) => Err(err(
            field,
            format!("{d} is not allowed: use -1 (keep forever) or 1 to 3653 days"),
        )),
        _ => Ok(()),
    }
}

fn check_account(field: &str, account: &Option<String>) -> Result<(), SpecError> {
    match account {
        Some(a) if a.is_empty() || a.len() > 253 || !matches(super::ACCOUNT_NAME_PATTERN, a) => {
            Err(err(
                field,
                format!(
                    "{a:?} is not an AWSAccount name: lowercase letters, digits, '-' and '.', a letter or digit at each end (kubectl get awsaccounts lists them)"
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn check_kms(field: &str, key: &Option<String>) -> Result<(), SpecError> {
    match key {
        Some(k) if k.is_empty() || k.len() > 2048 => Err(err(
            field,
            "must be a KMS key id, alias or ARN of 1 to 2048 characters",
        )),
        _ => Ok(()),
    }
}

/// Whether `c` is in AWS's common tag character set ([`super::TAG_PATTERN`], the very
/// pattern the CRD schema holds).
pub fn is_tag_char(c: char) -> bool {
    static ONE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(super::TAG_PATTERN).expect("the tag pattern compiles")
    });
    ONE.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Tag rules, with DocumentDB's stricter ones when the engine is known to be DocumentDB:
/// no `@`, and neither key nor value starting with `aws:` or `rds:` (its Tag reference).
pub(crate) fn check_tags(tags: &Tags, engine: Option<Engine>) -> Result<(), SpecError> {
    if tags.len() > MAX_TAGS {
        return Err(err(
            "spec.tags",
            format!(
                "{} tags given; at most {MAX_TAGS} are allowed (AWS allows 50 and the operator adds two)",
                tags.len()
            ),
        ));
    }
    for (k, v) in tags {
        let field = format!("spec.tags[{k}]");
        if k.is_empty() || k.chars().count() > 128 {
            return Err(err(field, "tag keys must be 1 to 128 characters"));
        }
        if k.starts_with("aws:") || k.starts_with("dbsnapshot.io/") {
            return Err(err(
                field,
                "tag keys starting with aws: or dbsnapshot.io/ are reserved; choose another key",
            ));
        }
        if v.chars().count() > 256 {
            return Err(err(field, "tag values must be at most 256 characters"));
        }
        for text in [k, v] {
            if let Some(c) = text.chars().find(|c| !is_tag_char(*c)) {
                return Err(err(
                    field,
                    format!(
                        "{c:?} is not allowed in a tag: AWS takes letters, digits, white space \
                         and _ . : / = + - @ only"
                    ),
                ));
            }
            if engine == Some(Engine::Docdb) {
                if text.contains('@') {
                    return Err(err(
                        field,
                        "'@' is not allowed in a DocumentDB tag: DocumentDB takes letters, \
                         digits, white space and _ . : / = + - only",
                    ));
                }
                if text.starts_with("aws:") || text.starts_with("rds:") {
                    return Err(err(
                        field,
                        "DocumentDB tag keys and values may not start with aws: or rds:",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Sharing rules for the engine (`None` when the engine is not known yet, as for a copy
/// of a ClusterSnapshot: then only what holds for every engine is checked).
fn check_shares(shares: &[String], engine: Option<Engine>) -> Result<(), SpecError> {
    if shares.is_empty() {
        return Ok(());
    }
    if engine == Some(Engine::Elasticache) {
        return Err(err(
            "spec.sharedWith",
            "ElastiCache snapshots cannot be shared; remove sharedWith",
        ));
    }
    if shares.len() > MAX_SHARES {
        return Err(err(
            "spec.sharedWith",
            format!(
                "{} accounts given; a snapshot can be shared with at most {MAX_SHARES}",
                shares.len()
            ),
        ));
    }
    for (i, a) in shares.iter().enumerate() {
        let field = format!("spec.sharedWith[{i}]");
        let redshift_support = a == "amazon-redshift-support";
        if !is_account_id(a) && !redshift_support {
            return Err(err(
                field,
                format!("{a:?} is not a 12-digit AWS account id"),
            ));
        }
        if redshift_support && engine == Some(Engine::Docdb) {
            return Err(err(
                field,
                "amazon-redshift-support applies to Redshift only; DocumentDB takes 12-digit account ids",
            ));
        }
        if shares[..i].contains(a) {
            return Err(err(field, format!("{a} is listed twice")));
        }
    }
    Ok(())
}

/// Checks a ClusterSnapshot spec; on success returns the one source it names.
pub fn validate_cluster_snapshot(
    spec: &ClusterSnapshotSpec,
) -> Result<SourceCluster<'_>, SpecError> {
    let members = spec.source.members();
    if let Some(e) = &spec.source.elasticache
        && e.replication_group_id.is_some() == e.cache_cluster_id.is_some()
    {
        return Err(err(
            "spec.source.elasticache",
            "name exactly one of replicationGroupId or cacheClusterId",
        ));
    }
    let source = match members.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(err(
                "spec.source",
                "name exactly one of redshift, docdb or elasticache",
            ));
        }
        _ => {
            return Err(err(
                "spec.source",
                "names more than one cluster; name exactly one of redshift, docdb or elasticache",
            ));
        }
    };
    let engine = source.engine();
    match &source {
        SourceCluster::Redshift(id) => check_identifier(
            "spec.source.redshift.clusterIdentifier",
            id,
            63,
            "cluster identifier",
        )?,
        SourceCluster::Docdb(id) => check_identifier(
            "spec.source.docdb.clusterIdentifier",
            id,
            63,
            "cluster identifier",
        )?,
        SourceCluster::ReplicationGroup(id) => check_identifier(
            "spec.source.elasticache.replicationGroupId",
            id,
            40,
            "replication group id",
        )?,
        SourceCluster::CacheCluster(id) => check_identifier(
            "spec.source.elasticache.cacheClusterId",
            id,
            50,
            "cache cluster id",
        )?,
    }
    if let Some(id) = &spec.snapshot_identifier {
        check_identifier(
            "spec.snapshotIdentifier",
            id,
            engine.max_identifier_len(),
            &format!("{engine} snapshot identifier"),
        )?;
    }
    check_region("spec.region", &spec.region)?;
    check_account("spec.account", &spec.account)?;
    if spec.adopt == Some(true) && spec.snapshot_identifier.is_none() {
        return Err(err(
            "spec.snapshotIdentifier",
            "adopt needs snapshotIdentifier: name the existing snapshot to adopt",
        ));
    }
    check_retention("spec.retentionDays", spec.retention_days)?;
    if spec.retention_days.is_some() && engine != Engine::Redshift {
        return Err(err(
            "spec.retentionDays",
            format!("applies to Redshift snapshots only; remove it for {engine}"),
        ));
    }
    check_kms("spec.kmsKeyId", &spec.kms_key_id)?;
    if spec.kms_key_id.is_some() && engine != Engine::Elasticache {
        return Err(err(
            "spec.kmsKeyId",
            format!(
                "applies to ElastiCache snapshots only; {engine} snapshots use the cluster's key"
            ),
        ));
    }
    check_tags(&spec.tags, Some(engine))?;
    check_shares(&spec.shared_with, Some(engine))?;
    Ok(source)
}

/// The engine a SnapshotCopy's direct source names (`None` for clusterSnapshotRef).
pub fn copy_engine(spec: &SnapshotCopySpec) -> Option<Engine> {
    let s = &spec.source;
    if s.redshift.is_some() {
        Some(Engine::Redshift)
    } else if s.docdb.is_some() {
        Some(Engine::Docdb)
    } else if s.elasticache.is_some() {
        Some(Engine::Elasticache)
    } else {
        None
    }
}

/// Checks a SnapshotCopy spec. `engine` is the engine of the source when known (a
/// direct source, or a Ready clusterSnapshotRef); engine-specific rules are checked
/// only then.
pub fn validate_snapshot_copy(
    spec: &SnapshotCopySpec,
    engine: Option<Engine>,
) -> Result<(), SpecError> {
    let s = &spec.source;
    let count = [
        s.cluster_snapshot_ref.is_some(),
        s.redshift.is_some(),
        s.docdb.is_some(),
        s.elasticache.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if count != 1 {
        return Err(err(
            "spec.source",
            "name exactly one of clusterSnapshotRef, redshift, docdb or elasticache",
        ));
    }
    if let Some(r) = &s.cluster_snapshot_ref
        && r.name.is_empty()
    {
        return Err(err(
            "spec.source.clusterSnapshotRef.name",
            "name the ClusterSnapshot to copy",
        ));
    }
    if let Some(r) = &s.redshift {
        if r.snapshot_identifier.is_empty() {
            return Err(err(
                "spec.source.redshift.snapshotIdentifier",
                "name the automated snapshot to copy",
            ));
        }
        if let Some(c) = &r.cluster_identifier {
            check_identifier(
                "spec.source.redshift.clusterIdentifier",
                c,
                63,
                "cluster identifier",
            )?;
        }
    }
    if let Some(d) = &s.docdb
        && d.snapshot_identifier.is_empty()
    {
        return Err(err(
            "spec.source.docdb.snapshotIdentifier",
            "name the snapshot (or its ARN) to copy",
        ));
    }
    if let Some(e) = &s.elasticache
        && e.snapshot_name.is_empty()
    {
        return Err(err(
            "spec.source.elasticache.snapshotName",
            "name the snapshot to copy",
        ));
    }
    let engine = engine.or(copy_engine(spec));
    if let Some(id) = &spec.target_snapshot_identifier {
        let max = engine.map_or(255, Engine::max_identifier_len);
        check_identifier(
            "spec.targetSnapshotIdentifier",
            id,
            max,
            "snapshot identifier",
        )?;
    }
    check_region("spec.region", &spec.region)?;
    check_region("spec.sourceRegion", &spec.source_region)?;
    check_account("spec.account", &spec.account)?;
    check_retention("spec.retentionDays", spec.retention_days)?;
    check_kms("spec.kmsKeyId", &spec.kms_key_id)?;
    check_tags(&spec.tags, engine)?;
    check_shares(&spec.shared_with, engine)?;
    if let Some(b) = &spec.target_bucket {
        let ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
            && b.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(err(
                "spec.targetBucket",
                format!("{b:?} is not a valid S3 bucket name"),
            ));
        }
        if spec.deletion_policy == Some(DeletionPolicy::Delete) {
            return Err(err(
                "spec.deletionPolicy",
                "an export to S3 (targetBucket) is always kept (the S3 object outlives the object): set deletionPolicy Retain or leave it out",
            ));
        }
    }
    let only = |field: &str, set: bool, allowed: &[Engine], what: &str| match engine {
        Some(e) if set && !allowed.contains(&e) => Err(err(
            field,
            format!("applies to {what} copies only; remove it for a {e} copy"),
        )),
        _ => Ok(()),
    };
    only(
        "spec.sourceRegion",
        spec.source_region.is_some(),
        &[Engine::Docdb],
        "DocumentDB",
    )?;
    if spec.share_source_while_copying == Some(true)
        && (s.cluster_snapshot_ref.is_none() || spec.account.is_none())
    {
        return Err(err(
            "spec.shareSourceWhileCopying",
            "applies to a clusterSnapshotRef source copied into another account: set \
             spec.account (the destination) and name the source by clusterSnapshotRef, or \
             remove it",
        ));
    }
    only(
        "spec.intermediateKmsKeyId",
        spec.intermediate_kms_key_id.is_some(),
        &[Engine::Docdb],
        "DocumentDB",
    )?;
    only(
        "spec.shareSourceWhileCopying",
        spec.share_source_while_copying == Some(true),
        &[Engine::Docdb],
        "DocumentDB",
    )?;
    only(
        "spec.copyTags",
        spec.copy_tags.is_some(),
        &[Engine::Docdb],
        "DocumentDB",
    )?;
    only(
        "spec.kmsKeyId",
        spec.kms_key_id.is_some(),
        &[Engine::Docdb, Engine::Elasticache],
        "DocumentDB and ElastiCache",
    )?;
    only(
        "spec.retentionDays",
        spec.retention_days.is_some(),
        &[Engine::Redshift],
        "Redshift",
    )?;
    only(
        "spec.targetBucket",
        spec.target_bucket.is_some(),
        &[Engine::Elasticache],
        "ElastiCache",
    )?;
    Ok(())
}

/// Checks an AWSAccount spec as its schema and CEL rule do: the account id, the role's
/// ARN (in that account), the external id and session length within STS's limits, the
/// namespaces' names and the selector's keys and operators.
pub fn validate_aws_account(spec: &AWSAccountSpec) -> Result<(), SpecError> {
    use super::aws_account::{EXTERNAL_ID_PATTERN, ROLE_ARN_PATTERN};
    if !is_account_id(&spec.account_id) {
        return Err(err(
            "spec.accountId",
            format!("{:?} is not a 12-digit AWS account id", spec.account_id),
        ));
    }
    if !(20..=2048).contains(&spec.role_arn.len()) || !matches(ROLE_ARN_PATTERN, &spec.role_arn) {
        return Err(err(
            "spec.roleArn",
            format!(
                "{:?} is not an IAM role ARN (arn:aws:iam::{}:role/NAME)",
                spec.role_arn, spec.account_id
            ),
        ));
    }
    if !spec
        .role_arn
        .contains(&format!(":iam::{}:role/", spec.account_id))
    {
        return Err(err(
            "spec.roleArn",
            format!(
                "the role must be in accountId's account (arn:aws:iam::{}:role/...), not {}",
                spec.account_id, spec.role_arn
            ),
        ));
    }
    if let Some(id) = &spec.external_id
        && (!(2..=1224).contains(&id.chars().count()) || !matches(EXTERNAL_ID_PATTERN, id))
    {
        return Err(err(
            "spec.externalId",
            "2 to 1224 letters, digits and + = , . @ : / _ - (STS's ExternalId)",
        ));
    }
    if let Some(d) = spec.session_duration_seconds
        && !(900..=43200).contains(&d)
    {
        return Err(err(
            "spec.sessionDurationSeconds",
            format!("{d} is not within 900..43200 (STS's DurationSeconds)"),
        ));
    }
    for (i, ns) in spec.namespaces.iter().enumerate() {
        if ns.len() > 63 || !matches(super::snapshot_schedule::DNS_LABEL_PATTERN, ns) {
            return Err(err(
                format!("spec.namespaces[{i}]"),
                format!("{ns:?} is not a namespace name (a DNS label)"),
            ));
        }
    }
    if let Some(selector) = &spec.namespace_selector {
        for key in selector.match_labels.iter().flatten().map(|(k, _)| k) {
            if !is_label_key(key) {
                return Err(err(
                    format!("spec.namespaceSelector.matchLabels[{key}]"),
                    "not a label key",
                ));
            }
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            let field = format!("spec.namespaceSelector.matchExpressions[{i}]");
            if !is_label_key(&e.key) {
                return Err(err(
                    format!("{field}.key"),
                    format!("{:?} is not a label key", e.key),
                ));
            }
            let values = e.values.as_ref().map_or(0, Vec::len);
            match e.operator.as_str() {
                "In" | "NotIn" if values == 0 => {
                    return Err(err(
                        format!("{field}.values"),
                        format!("{} needs at least one value", e.operator),
                    ));
                }
                "Exists" | "DoesNotExist" if values > 0 => {
                    return Err(err(
                        format!("{field}.values"),
                        format!("{} takes no values", e.operator),
                    ));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(err(
                        format!("{field}.operator"),
                        format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Moves an error found in a template's spec under the template's path:
/// `spec.tags[k]` becomes `<prefix>.tags[k]`.
fn reroot(e: SpecError, prefix: &str) -> SpecError {
    let rest = e.field.strip_prefix("spec").unwrap_or(&e.field);
    SpecError {
        field: format!("{prefix}{rest}"),
        message: e.message,
    }
}

fn matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern)
        .expect("the API patterns compile")
        .is_match(text)
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of 1 to 63
/// alphanumerics, `-`, `_` and `.` starting and ending with an alphanumeric.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && matches(super::snapshot_schedule::DNS_LABEL_PATTERN, l)
            })
    });
    prefix_ok
        && !name.is_empty()
        && name.len() <= 63
        && matches(super::snapshot_schedule::LABEL_VALUE_PATTERN, name)
}

/// Checks a SnapshotSchedule spec: the cron expression, time zone and durations are
/// parsed as the controller will parse them, the snapshot template must make a valid
/// ClusterSnapshot spec and every copy template a valid SnapshotCopy spec (errors
/// name the template's field, such as `spec.copyTemplates[0].spec.kmsKeyId`), and copy
/// names are unique DNS labels.
pub fn validate_snapshot_schedule(spec: &SnapshotScheduleSpec) -> Result<(), SpecError> {
    use super::snapshot_schedule::{DNS_LABEL_PATTERN, DURATION_PATTERN, LABEL_VALUE_PATTERN};
    use crate::schedule::{parse_duration, parse_schedule, parse_time_zone};

    parse_schedule(&spec.schedule).map_err(|e| err("spec.schedule", e))?;
    parse_time_zone(spec.time_zone.as_deref()).map_err(|e| err("spec.timeZone", e))?;
    if let Some(d) = spec.starting_deadline_seconds
        && d < 0
    {
        return Err(err(
            "spec.startingDeadlineSeconds",
            format!(
                "{d} is negative; use 0 or more seconds, or omit it to make a missed run however late"
            ),
        ));
    }

    let meta = &spec.snapshot_template.metadata;
    for (k, v) in &meta.labels {
        let field = format!("spec.snapshotTemplate.metadata.labels[{k}]");
        if k == super::SCHEDULE_LABEL {
            return Err(err(
                field,
                "the label dbsnapshot.io/schedule is set by the operator; remove it",
            ));
        }
        if !is_label_key(k) {
            return Err(err(
                field,
                format!(
                    "{k:?} is not a valid label key: an optional DNS subdomain and '/', then 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                ),
            ));
        }
        if v.len() > 63 || !matches(LABEL_VALUE_PATTERN, v) {
            return Err(err(
                field,
                format!(
                    "{v:?} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                ),
            ));
        }
    }
    if meta
        .annotations
        .contains_key(super::SCHEDULED_TIME_ANNOTATION)
    {
        return Err(err(
            format!(
                "spec.snapshotTemplate.metadata.annotations[{}]",
                super::SCHEDULED_TIME_ANNOTATION
            ),
            "the annotation dbsnapshot.io/scheduled-time is set by the operator; remove it",
        ));
    }

    let snapshot = spec.snapshot_spec();
    let engine = validate_cluster_snapshot(&snapshot)
        .map_err(|e| reroot(e, "spec.snapshotTemplate.spec"))?
        .engine();

    const MAX_COPIES: usize = 10;
    if spec.copy_templates.len() > MAX_COPIES {
        return Err(err(
            "spec.copyTemplates",
            format!(
                "{} copy templates given; at most {MAX_COPIES} are allowed",
                spec.copy_templates.len()
            ),
        ));
    }
    for (i, copy) in spec.copy_templates.iter().enumerate() {
        let name = &copy.name;
        if name.is_empty() || name.len() > 63 || !matches(DNS_LABEL_PATTERN, name) {
            return Err(err(
                format!("spec.copyTemplates[{i}].name"),
                format!(
                    "{name:?} is not a DNS label: use 1 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"
                ),
            ));
        }
        if spec.copy_templates[..i].iter().any(|c| &c.name == name) {
            return Err(err(
                format!("spec.copyTemplates[{i}].name"),
                format!("{name:?} is used by another copy template; copy names must be unique"),
            ));
        }
        validate_snapshot_copy(&spec.copy_spec(copy, "run"), Some(engine))
            .map_err(|e| reroot(e, &format!("spec.copyTemplates[{i}].spec")))?;
    }

    if let Some(r) = &spec.retention {
        for (field, n) in [
            ("keepLast", r.keep_last),
            ("keepDaily", r.keep_daily),
            ("keepWeekly", r.keep_weekly),
            ("keepMonthly", r.keep_monthly),
        ] {
            if let Some(n) = n
                && n < 1
            {
                return Err(err(
                    format!("spec.retention.{field}"),
                    format!(
                        "{n} is not allowed: keep at least 1, or omit {field} to turn the rule off"
                    ),
                ));
            }
        }
        if r.failed_history_limit < 0 {
            return Err(err(
                "spec.retention.failedHistoryLimit",
                format!("{} is negative; use 0 or more", r.failed_history_limit),
            ));
        }
        if let Some(age) = &r.max_age {
            if !matches(DURATION_PATTERN, age) {
                return Err(err(
                    "spec.retention.maxAge",
                    format!(
                        "{age:?} is not a Go-style duration; write hours, minutes and seconds, e.g. \"720h\" or \"1h30m\""
                    ),
                ));
            }
            parse_duration(age).map_err(|e| err("spec.retention.maxAge", e))?;
        }
    }
    Ok(())
}

/// A DocumentDB copy's source as AWS described it, for [`check_docdb_copy_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocdbCopySource<'a> {
    /// The identifier or ARN the spec names.
    pub identifier: &'a str,
    /// The account that shared it with this one; `None` for the account's own.
    pub shared_by: Option<&'a str>,
    pub encrypted: Option<bool>,
    pub region: &'a str,
}

/// The rules of CopyDBClusterSnapshot that the source decides (its operation and
/// `CopyDBClusterSnapshotMessage.KmsKeyId` documentation): "You can only copy a shared
/// DB cluster snapshot, whether encrypted or not, in the same Amazon Web Services
/// Region"; "If you copy an encrypted cluster snapshot that is shared from another
/// Amazon Web Services account, then you must specify a value for KmsKeyId"; "If you
/// copy an unencrypted cluster snapshot and specify a value for the KmsKeyId
/// parameter, an error is returned". The fields are immutable, so the message says to
/// create the object again. Pure.
pub fn check_docdb_copy_source(
    source: &DocdbCopySource<'_>,
    kms_key_id: Option<&str>,
    kms_field: &str,
    target_region: &str,
) -> Result<(), SpecError> {
    let id = source.identifier;
    if let Some(owner) = source.shared_by
        && source.region != target_region
    {
        return Err(err(
            "spec.source.docdb.snapshotIdentifier",
            format!(
                "{id} is shared from account {owner} and lives in {}: AWS copies a shared \
                 snapshot only within its own region, not into {target_region}. Create the \
                 SnapshotCopy again with spec.region {} (and copy that copy across regions if \
                 needed)",
                source.region, source.region
            ),
        ));
    }
    if let Some(owner) = source.shared_by
        && source.encrypted == Some(true)
        && kms_key_id.is_none()
    {
        return Err(err(
            kms_field,
            format!(
                "{id} is encrypted and shared from account {owner}: AWS copies it only with a \
                 KMS key of this account (in {target_region}) to encrypt the copy with. Create \
                 the SnapshotCopy again with {kms_field} set"
            ),
        ));
    }
    if source.encrypted == Some(false)
        && let Some(key) = kms_key_id
    {
        return Err(err(
            kms_field,
            format!(
                "{id} is not encrypted, and AWS refuses a KMS key ({key}) for a copy of an \
                 unencrypted DocumentDB snapshot (it never encrypts one). Create the \
                 SnapshotCopy again without {kms_field}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IDENTIFIER_PATTERN;

    #[test]
    fn docdb_copy_sources_follow_copy_db_cluster_snapshots_rules() {
        let own = DocdbCopySource {
            identifier: "plain",
            shared_by: None,
            encrypted: Some(false),
            region: "us-east-1",
        };
        assert_eq!(
            check_docdb_copy_source(&own, None, "spec.kmsKeyId", "us-east-1"),
            Ok(())
        );
        assert_eq!(
            check_docdb_copy_source(&own, None, "spec.kmsKeyId", "eu-west-1"),
            Ok(())
        );
        let e = check_docdb_copy_source(&own, Some("alias/k"), "spec.kmsKeyId", "us-east-1")
            .unwrap_err();
        assert_eq!(e.field, "spec.kmsKeyId");
        assert!(e.message.contains("not encrypted"), "{e}");
        // Encrypted and shared: a key is required, and enough.
        let sealed = DocdbCopySource {
            identifier: "arn:aws:rds:us-east-1:210987654321:cluster-snapshot:s",
            shared_by: Some("210987654321"),
            encrypted: Some(true),
            region: "us-east-1",
        };
        let e = check_docdb_copy_source(&sealed, None, "spec.kmsKeyId", "us-east-1").unwrap_err();
        assert_eq!(e.field, "spec.kmsKeyId");
        assert_eq!(
            check_docdb_copy_source(&sealed, Some("alias/k"), "spec.kmsKeyId", "us-east-1"),
            Ok(())
        );
        // The first hop of a copy across accounts and regions names its own key field.
        let e = check_docdb_copy_source(&sealed, None, "spec.intermediateKmsKeyId", "us-east-1")
            .unwrap_err();
        assert_eq!(e.field, "spec.intermediateKmsKeyId");
        assert!(
            e.message
                .contains("again with spec.intermediateKmsKeyId set"),
            "{e}"
        );
        // The account's own encrypted snapshot keeps its key without one.
        let mine = DocdbCopySource {
            shared_by: None,
            ..sealed
        };
        assert_eq!(
            check_docdb_copy_source(&mine, None, "spec.kmsKeyId", "us-east-1"),
            Ok(())
        );
        // Shared: only in its own region, key or not.
        let e = check_docdb_copy_source(&sealed, Some("alias/k"), "spec.kmsKeyId", "eu-west-1")
            .unwrap_err();
        assert_eq!(e.field, "spec.source.docdb.snapshotIdentifier");
        assert!(e.message.contains("own region"), "{e}");
        // Unknown encryption: left to AWS.
        let unknown = DocdbCopySource {
            encrypted: None,
            ..own
        };
        assert_eq!(
            check_docdb_copy_source(&unknown, Some("alias/k"), "spec.kmsKeyId", "us-east-1"),
            Ok(())
        );
    }
    use proptest::prelude::*;

    fn spec(v: serde_json::Value) -> ClusterSnapshotSpec {
        serde_json::from_value(v).expect("spec")
    }

    /// Strings AWS and users might send: mostly plausible, some anything at all.
    fn text(max: usize) -> BoxedStrategy<String> {
        let re = |p: String| proptest::string::string_regex(&p).unwrap().boxed();
        prop_oneof![
            re(format!("[a-zA-Z0-9-]{{0,{max}}}")),
            re(format!("[a-z][a-z0-9]{{0,{max}}}")),
            re(format!("[\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+@-]{{0,{max}}}")),
            re(format!("\\PC{{0,{max}}}")),
            any::<String>().boxed(),
        ]
        .boxed()
    }

    fn share() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{12}",
            Just("amazon-redshift-support".to_string()),
            "[0-9]{1,14}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Never a panic; an error always names a field under spec and says something.
        #[test]
        fn any_cluster_snapshot_spec_is_judged_without_panic(
            engine in 0..4usize,
            cluster in text(70),
            snapshot_id in proptest::option::of(text(300)),
            region in proptest::option::of(text(20)),
            retention in proptest::option::of(any::<i32>()),
            kms in proptest::option::of(text(30)),
            tags in proptest::collection::btree_map(text(140), text(300), 0..60),
            shares in proptest::collection::vec(share(), 0..25),
        ) {
            let source = match engine {
                0 => serde_json::json!({"redshift": {"clusterIdentifier": cluster}}),
                1 => serde_json::json!({"docdb": {"clusterIdentifier": cluster}}),
                2 => serde_json::json!({"elasticache": {"replicationGroupId": cluster}}),
                _ => serde_json::json!({"elasticache": {"cacheClusterId": cluster}}),
            };
            let s = spec(serde_json::json!({
                "source": source, "snapshotIdentifier": snapshot_id, "region": region,
                "retentionDays": retention, "kmsKeyId": kms, "tags": tags, "sharedWith": shares,
            }));
            match validate_cluster_snapshot(&s) {
                Ok(_) => {
                    // What passes is what AWS takes.
                    let re = regex::Regex::new(IDENTIFIER_PATTERN).unwrap();
                    prop_assert!(re.is_match(&cluster));
                    if let Some(id) = &snapshot_id {
                        prop_assert!(re.is_match(id) && id.len() <= 255);
                    }
                    prop_assert!(tags.len() <= 48);
                    let chars = regex::Regex::new(crate::api::TAG_PATTERN).unwrap();
                    for (k, v) in &tags {
                        prop_assert!((1..=128).contains(&k.chars().count()));
                        prop_assert!(v.chars().count() <= 256);
                        prop_assert!(chars.is_match(k) && chars.is_match(v));
                    }
                    prop_assert!(shares.len() <= 20);
                }
                Err(e) => {
                    prop_assert!(e.field.starts_with("spec."), "{e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }

        /// Tags: accepted exactly when AWS's limits (with room for the operator's two)
        /// and its character set allow them; a refusal names spec.tags.
        #[test]
        fn tags_are_accepted_exactly_within_aws_limits(
            tags in proptest::collection::btree_map(text(140), text(300), 0..60),
        ) {
            let s = spec(serde_json::json!({
                "source": {"redshift": {"clusterIdentifier": "analytics"}}, "tags": tags,
            }));
            let chars = regex::Regex::new(crate::api::TAG_PATTERN).unwrap();
            let allowed = tags.len() <= 48
                && tags.iter().all(|(k, v)| {
                    (1..=128).contains(&k.chars().count())
                        && v.chars().count() <= 256
                        && !k.starts_with("aws:")
                        && !k.starts_with("dbsnapshot.io/")
                        && chars.is_match(k)
                        && chars.is_match(v)
                });
            match validate_cluster_snapshot(&s) {
                Ok(_) => prop_assert!(allowed),
                Err(e) => {
                    prop_assert!(!allowed, "refused: {e}");
                    prop_assert!(e.field.starts_with("spec.tags"), "{e}");
                }
            }
        }

        /// Shares: at most 20 distinct 12-digit accounts (or Redshift's support
        /// account); a refusal names spec.sharedWith.
        #[test]
        fn shares_are_accepted_exactly_within_aws_limits(
            shares in proptest::collection::vec(share(), 0..25),
        ) {
            let s = spec(serde_json::json!({
                "source": {"redshift": {"clusterIdentifier": "analytics"}}, "sharedWith": shares,
            }));
            let distinct: std::collections::BTreeSet<_> = shares.iter().collect();
            let allowed = shares.len() <= 20
                && distinct.len() == shares.len()
                && shares.iter().all(|a| {
                    (a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
                        || a == "amazon-redshift-support"
                });
            match validate_cluster_snapshot(&s) {
                Ok(_) => prop_assert!(allowed),
                Err(e) => {
                    prop_assert!(!allowed, "refused: {e}");
                    prop_assert!(e.field.starts_with("spec.sharedWith"), "{e}");
                }
            }
        }
    }

    #[test]
    fn tag_characters_follow_aws() {
        let with = |k: &str, v: &str| {
            validate_cluster_snapshot(&spec(serde_json::json!({
                "source": {"redshift": {"clusterIdentifier": "analytics"}}, "tags": {k: v},
            })))
            .map(|_| ())
        };
        for (k, v) in [
            ("team", "data"),
            ("Zürich Ωμέγα 東京", "1 2\u{3000}3 ٣"),
            ("a_b.c:d/e=f+g-h@i", "_.:/=+-@"),
            ("empty-value", ""),
        ] {
            assert!(with(k, v).is_ok(), "{k:?}={v:?}: {:?}", with(k, v));
        }
        for (k, v) in [
            ("a<b", "x"),
            ("k", "fish & chips"),
            ("k", "🚀"),
            ("k", "tab\there"),
            ("quote\"", "x"),
            ("k", "50%"),
        ] {
            let e = with(k, v).unwrap_err();
            assert_eq!(e.field, format!("spec.tags[{k}]"));
            assert!(e.message.contains("_ . : / = + - @"), "{e}");
        }
    }

    #[test]
    fn documentdb_tags_follow_documentdb() {
        let with = |source: serde_json::Value, k: &str, v: &str| {
            validate_cluster_snapshot(&spec(serde_json::json!({"source": source, "tags": {k: v}})))
                .map(|_| ())
        };
        let dd = serde_json::json!({"docdb": {"clusterIdentifier": "orders"}});
        let rs = serde_json::json!({"redshift": {"clusterIdentifier": "analytics"}});
        for (k, v) in [
            ("owner", "ops@example"),
            ("rds:x", "y"),
            ("k", "rds:y"),
            ("k", "aws:y"),
        ] {
            let e = with(dd.clone(), k, v).unwrap_err();
            assert_eq!(e.field, format!("spec.tags[{k}]"), "{k}={v}");
            assert!(
                with(rs.clone(), k, v).is_ok() || k.starts_with("aws:"),
                "{k}={v}"
            );
        }
        assert!(with(dd, "a_b.c:d/e=f+g-h", "Zürich 東京").is_ok());
    }

    #[test]
    fn upper_case_identifiers_are_refused_naming_the_field_and_the_fix() {
        let e = validate_cluster_snapshot(&spec(serde_json::json!({
            "source": {"docdb": {"clusterIdentifier": "orders"}},
            "snapshotIdentifier": "Orders-Weekly",
        })))
        .unwrap_err();
        assert_eq!(e.field, "spec.snapshotIdentifier");
        assert!(e.message.contains("\"orders-weekly\""), "{e}");
        let e = validate_cluster_snapshot(&spec(serde_json::json!({
            "source": {"redshift": {"clusterIdentifier": "Analytics"}},
        })))
        .unwrap_err();
        assert_eq!(e.field, "spec.source.redshift.clusterIdentifier");
    }

    #[test]
    fn twenty_one_redshift_shares_are_refused_naming_the_field() {
        let shares: Vec<String> = (0..21).map(|i| format!("{:012}", 100 + i)).collect();
        let s = spec(serde_json::json!({
            "source": {"redshift": {"clusterIdentifier": "analytics"}}, "sharedWith": shares,
        }));
        let e = validate_cluster_snapshot(&s).unwrap_err();
        assert_eq!(e.field, "spec.sharedWith");
        assert!(e.message.contains("at most 20"), "{e}");
        let s = spec(serde_json::json!({
            "source": {"redshift": {"clusterIdentifier": "analytics"}}, "sharedWith": shares[..20],
        }));
        assert!(validate_cluster_snapshot(&s).is_ok());
    }
}
