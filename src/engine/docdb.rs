//! Amazon DocumentDB cluster snapshots: create, describe (restore access and tags by
//! extra calls, on request), share through the `restore` attribute, tag and delete.
//! Does IO.

use async_trait::async_trait;
use aws_sdk_docdb::Client;
use aws_sdk_docdb::types::Tag;

use super::audit::{Call, Change, keys};
use super::error::{ServiceCodes, classify};
use super::{
    CopyRequest, CreateRequest, EngineError, ErrorClass, Snapshot, SnapshotEngine, SourceRef,
    presign, rfc3339,
};
use crate::api::{Engine, Progress, Tags};

const SERVICE: &str = "docdb";
const CODES: ServiceCodes = ServiceCodes {
    // The tagging actions answer DBSnapshotNotFoundFault (code DBSnapshotNotFound) for a
    // missing snapshot; the others DBClusterSnapshotNotFoundFault.
    not_found: &["DBClusterSnapshotNotFoundFault", "DBSnapshotNotFound"],
    already_exists: &["DBClusterSnapshotAlreadyExistsFault"],
    invalid_state: &["InvalidDBClusterSnapshotStateFault"],
    // CreateDBClusterSnapshot, CopyDBClusterSnapshot: "The cluster isn't in a valid
    // state" (InvalidDBClusterStateFault).
    source_unavailable: &["InvalidDBClusterStateFault"],
};

pub struct Docdb {
    client: Client,
    region: String,
    /// What DocumentDB's endpoint in another region (the presigned source request's)
    /// depends on: the configured endpoint URL, FIPS, dual stack.
    endpoints: presign::EndpointSettings,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    /// This account, asked of STS (once) only to tell a snapshot shared into it by ARN.
    /// The account, asked of STS once per process (shared with every engine).
    caller: std::sync::Arc<super::CallerAccount>,
}

impl Docdb {
    pub fn new(
        config: &aws_config::SdkConfig,
        region: &str,
        metered: super::metered::Metered,
        retry: Option<super::RetryPartition>,
        caller: std::sync::Arc<super::CallerAccount>,
    ) -> Self {
        let mut conf = aws_sdk_docdb::config::Builder::from(config).interceptor(metered);
        conf.set_retry_partition(retry);
        let conf = conf.build();
        Self {
            client: Client::from_conf(conf),
            region: region.to_string(),
            endpoints: presign::EndpointSettings::from_sdk_config(config),
            credentials: config.credentials_provider(),
            caller,
        }
    }

    /// A mutating call on a snapshot (its identifier, and its ARN when known).
    fn call<'a>(
        &'a self,
        change: Change,
        operation: &'static str,
        identifier: &'a str,
        arn: Option<&'a str>,
        detail: String,
    ) -> Call<'a> {
        Call {
            change,
            service: SERVICE,
            operation,
            region: &self.region,
            identifier,
            arn,
            detail,
            benign: &[],
        }
    }

    /// The presigned source-region request a cross-region copy carries.
    async fn presigned_url(
        &self,
        request: &CopyRequest,
        source_region: &str,
    ) -> Result<String, EngineError> {
        use aws_credential_types::provider::ProvideCredentials;
        let fail =
            |m: String| EngineError::new(ErrorClass::Terminal, SERVICE, "CopyDBClusterSnapshot", m);
        let provider = self.credentials.as_ref().ok_or_else(|| {
            fail("no AWS credentials to presign the cross-region copy with".into())
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CopyDBClusterSnapshot",
                format!("credentials: {e}"),
            )
        })?;
        let endpoint = presign::endpoint(&self.endpoints, source_region)
            .await
            .map_err(&fail)?;
        presign::presign_copy(
            &presign::CopyPresign {
                endpoint: &endpoint,
                source_arn: &request.source,
                target_identifier: &request.target,
                kms_key_id: request.kms_key_id.as_deref(),
                source_region,
                destination_region: &self.region,
            },
            &credentials,
            std::time::SystemTime::now(),
        )
        .map_err(|e| fail(format!("presigning the cross-region copy: {e}")))
    }

    async fn detail(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        let attrs = self
            .client
            .describe_db_cluster_snapshot_attributes()
            .db_cluster_snapshot_identifier(&snapshot.identifier)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "DescribeDBClusterSnapshotAttributes", e, &CODES))?;
        snapshot.shared_with = Some(
            attrs
                .db_cluster_snapshot_attributes_result()
                .map(|r| r.db_cluster_snapshot_attributes())
                .unwrap_or_default()
                .iter()
                .filter(|a| a.attribute_name() == Some("restore"))
                .flat_map(|a| a.attribute_values().iter().cloned())
                .collect(),
        );
        if let Some(arn) = &snapshot.arn {
            let tags = self
                .client
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .map_err(|e| classify(SERVICE, "ListTagsForResource", e, &CODES))?;
            snapshot.tags = Some(
                tags.tag_list()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_string(),
                            t.value().unwrap_or_default().to_string(),
                        ))
                    })
                    .collect(),
            );
        }
        Ok(())
    }
}

/// Maps a described DocumentDB cluster snapshot.
pub fn map_snapshot(s: &aws_sdk_docdb::types::DbClusterSnapshot) -> Snapshot {
    Snapshot {
        identifier: s
            .db_cluster_snapshot_identifier()
            .unwrap_or_default()
            .to_string(),
        arn: s.db_cluster_snapshot_arn().map(str::to_string),
        aws_status: s.status().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_type().map(str::to_string),
        source: s.db_cluster_identifier().map(str::to_string),
        created: s.snapshot_create_time().and_then(rfc3339),
        progress: Progress {
            percent: s.percent_progress().map(i64::from),
            ..Progress::default()
        },
        total_size_mb: None,
        encrypted: s.storage_encrypted(),
        kms_key_id: s.kms_key_id().map(str::to_string),
        retention_days: None,
        remaining_days: None,
        source_arn: s.source_db_cluster_snapshot_arn().map(str::to_string),
        tags: None,
        shared_with: None,
    }
}

/// The `snapshot_type` of a snapshot another account shared with this one.
pub const SHARED: &str = "shared";

/// How DescribeDBClusterSnapshots must be asked for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lookup<'a> {
    snapshot_type: Option<&'static str>,
    include_shared: bool,
    /// The account an ARN names.
    arn_account: Option<&'a str>,
}

/// DescribeDBClusterSnapshotsMessage: "If this identifier is for an automated snapshot,
/// the SnapshotType parameter must also be specified" (DocumentDB's automated snapshots
/// are `rds:<cluster>-<time>`), and another account's snapshot shared with this one is
/// returned only with `IncludeShared` ("The default is false") -- which also returns the
/// account's own manual snapshots, so one call serves any ARN. Pure.
fn lookup(identifier: &str) -> Lookup<'_> {
    let arn: Option<Vec<&str>> = identifier
        .starts_with("arn:")
        .then(|| identifier.splitn(7, ':').collect());
    let (id, account) = match arn.as_deref() {
        Some([_, _, _, _, account, _, id]) => (*id, Some(*account)),
        _ => (identifier, None),
    };
    let automated = id.to_ascii_lowercase().starts_with("rds:");
    Lookup {
        snapshot_type: automated.then_some("automated"),
        include_shared: account.is_some() && !automated,
        arn_account: account,
    }
}

fn tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn no_arn(action: &'static str) -> EngineError {
    EngineError::new(
        ErrorClass::Terminal,
        SERVICE,
        action,
        "the snapshot has no ARN",
    )
}

#[async_trait]
impl SnapshotEngine for Docdb {
    fn engine(&self) -> Engine {
        Engine::Docdb
    }

    async fn describe(
        &self,
        identifier: &str,
        detail: bool,
    ) -> Result<Option<Snapshot>, EngineError> {
        let lookup = lookup(identifier);
        tracing::debug!(
            snapshot = identifier,
            detail,
            "describing one DocumentDB snapshot"
        );
        let out = match self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(identifier)
            .set_snapshot_type(lookup.snapshot_type.map(str::to_string))
            .set_include_shared(lookup.include_shared.then_some(true))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = classify(SERVICE, "DescribeDBClusterSnapshots", e, &CODES);
                return if e.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        let Some(mut snapshot) = out
            .db_cluster_snapshots()
            .iter()
            .find(|s| {
                s.db_cluster_snapshot_identifier()
                    .is_some_and(|i| i.eq_ignore_ascii_case(identifier))
                    || s.db_cluster_snapshot_arn() == Some(identifier)
            })
            .map(map_snapshot)
        else {
            return Ok(None);
        };
        // Another account's snapshot (shared with this one) is told apart by its ARN's
        // account; STS is asked once, and only for sources named by ARN.
        if let Some(owner) = lookup.arn_account
            && owner != self.caller.get().await?
        {
            snapshot.snapshot_type = Some(SHARED.to_string());
        }
        if detail {
            match self.detail(&mut snapshot).await {
                Ok(()) => {}
                // Gone between the describe and the tag or attribute call, or just made
                // and not visible to those calls yet: gone only if a describe agrees
                // (a snapshot taken for gone would have its finalizer released).
                Err(e) if e.class == ErrorClass::NotFound => {
                    return match self.describe(identifier, false).await? {
                        None => Ok(None),
                        Some(_) => Err(EngineError {
                            class: ErrorClass::Transient,
                            message: format!(
                                "snapshot {identifier} is listed, but {} does not find it yet",
                                e.action
                            ),
                            ..e
                        }),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(snapshot))
    }

    async fn list(&self, source: &SourceRef) -> Result<Vec<Snapshot>, EngineError> {
        let snapshots = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(&source.id)
            .snapshot_type("manual")
            .max_records(100)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(SERVICE, "DescribeDBClusterSnapshots", e, &CODES))?;
        Ok(snapshots.iter().map(map_snapshot).collect())
    }

    async fn create(&self, request: &CreateRequest) -> Result<Snapshot, EngineError> {
        let result = self
            .client
            .create_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(&request.identifier)
            .db_cluster_identifier(&request.source)
            .set_tags(Some(tags(&request.tags)))
            .send()
            .await;
        let out = self
            .call(
                Change::Create,
                "CreateDBClusterSnapshot",
                &request.identifier,
                None,
                format!("of cluster {}", request.source),
            )
            .answered(result, &CODES, |o| {
                o.db_cluster_snapshot()
                    .and_then(|s| s.db_cluster_snapshot_arn())
                    .map(str::to_string)
            })?;
        let mut snapshot = out.db_cluster_snapshot().map(map_snapshot).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CreateDBClusterSnapshot",
                "AWS returned no snapshot",
            )
        })?;
        snapshot.tags = Some(request.tags.clone());
        snapshot.shared_with = Some(Vec::new());
        Ok(snapshot)
    }

    async fn share(
        &self,
        snapshot: &Snapshot,
        add: &[String],
        remove: &[String],
    ) -> Result<(), EngineError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let r = self
            .client
            .modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(&snapshot.identifier)
            .attribute_name("restore")
            .set_values_to_add((!add.is_empty()).then(|| add.to_vec()))
            .set_values_to_remove((!remove.is_empty()).then(|| remove.to_vec()))
            .send()
            .await;
        // One call grants and revokes: a share when it grants anything.
        let mut detail = Vec::new();
        if !add.is_empty() {
            detail.push(format!("restore granted to {}", add.join(",")));
        }
        if !remove.is_empty() {
            detail.push(format!("restore revoked from {}", remove.join(",")));
        }
        self.call(
            if add.is_empty() {
                Change::RevokeShare
            } else {
                Change::Share
            },
            "ModifyDBClusterSnapshotAttribute",
            &snapshot.identifier,
            snapshot.arn.as_deref(),
            detail.join("; "),
        )
        .done(r, &CODES)?;
        Ok(())
    }

    async fn tag(
        &self,
        snapshot: &Snapshot,
        set: &Tags,
        remove: &[String],
    ) -> Result<(), EngineError> {
        let arn = snapshot
            .arn
            .as_deref()
            .ok_or_else(|| no_arn("AddTagsToResource"))?;
        if !set.is_empty() {
            let r = self
                .client
                .add_tags_to_resource()
                .resource_name(arn)
                .set_tags(Some(tags(set)))
                .send()
                .await;
            self.call(
                Change::Tag,
                "AddTagsToResource",
                &snapshot.identifier,
                Some(arn),
                format!("keys {}", keys(set.keys())),
            )
            .done(r, &CODES)?;
        }
        if !remove.is_empty() {
            let r = self
                .client
                .remove_tags_from_resource()
                .resource_name(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await;
            self.call(
                Change::Untag,
                "RemoveTagsFromResource",
                &snapshot.identifier,
                Some(arn),
                format!("keys {}", keys(remove)),
            )
            .done(r, &CODES)?;
        }
        Ok(())
    }

    async fn set_retention(&self, _snapshot: &Snapshot, _days: i32) -> Result<(), EngineError> {
        Err(EngineError::new(
            ErrorClass::Terminal,
            SERVICE,
            "ModifyDBClusterSnapshot",
            "DocumentDB snapshots have no retention period",
        ))
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<(), EngineError> {
        let r = self
            .client
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(&snapshot.identifier)
            .send()
            .await;
        let r = self
            .call(
                Change::Delete,
                "DeleteDBClusterSnapshot",
                &snapshot.identifier,
                snapshot.arn.as_deref(),
                String::new(),
            )
            .done(r, &CODES);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.class == ErrorClass::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn copy(&self, request: &CopyRequest) -> Result<Snapshot, EngineError> {
        let presigned = match &request.source_region {
            Some(r) if *r != self.region => Some(self.presigned_url(request, r).await?),
            _ => None,
        };
        let out = self
            .client
            .copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(&request.source)
            .target_db_cluster_snapshot_identifier(&request.target)
            .set_kms_key_id(request.kms_key_id.clone())
            .set_copy_tags(request.copy_tags.then_some(true))
            .set_tags(Some(tags(&request.tags)))
            .set_pre_signed_url(presigned)
            .send()
            .await;
        let out = self
            .call(
                Change::Copy,
                "CopyDBClusterSnapshot",
                &request.target,
                None,
                match &request.source_region {
                    Some(r) if *r != self.region => format!("from {} in {r}", request.source),
                    _ => format!("from {}", request.source),
                },
            )
            .answered(out, &CODES, |o| {
                o.db_cluster_snapshot()
                    .and_then(|s| s.db_cluster_snapshot_arn())
                    .map(str::to_string)
            })?;
        let mut snapshot = out.db_cluster_snapshot().map(map_snapshot).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CopyDBClusterSnapshot",
                "AWS returned no snapshot",
            )
        })?;
        snapshot.tags = Some(request.tags.clone());
        snapshot.shared_with = Some(Vec::new());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automated_and_shared_sources_are_asked_for_as_aws_requires() {
        let plain = lookup("nightly");
        assert_eq!(plain.snapshot_type, None);
        assert!(!plain.include_shared);
        assert_eq!(plain.arn_account, None);
        // rds:<cluster>-<time> is automated: SnapshotType automated, by id or by ARN.
        for id in [
            "rds:orders-2026-11-30-00-00",
            "RDS:orders-2026-11-30-00-00",
            "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:rds:orders-2026-11-30-00-00",
        ] {
            let l = lookup(id);
            assert_eq!(l.snapshot_type, Some("automated"), "{id}");
            assert!(!l.include_shared, "{id}");
        }
        // Any other ARN may be another account's: IncludeShared, which also finds the
        // account's own manual snapshots.
        let shared = lookup("arn:aws:rds:us-east-1:210987654321:cluster-snapshot:theirs");
        assert_eq!(shared.snapshot_type, None);
        assert!(shared.include_shared);
        assert_eq!(shared.arn_account, Some("210987654321"));
    }

    #[test]
    fn both_not_found_codes_mean_not_found() {
        // DescribeDBClusterSnapshots & co.: DBClusterSnapshotNotFoundFault; the tagging
        // actions: DBSnapshotNotFoundFault, whose code is DBSnapshotNotFound.
        for code in ["DBClusterSnapshotNotFoundFault", "DBSnapshotNotFound"] {
            assert!(CODES.not_found.contains(&code), "{code}");
        }
    }
}
