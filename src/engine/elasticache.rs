//! Amazon ElastiCache snapshots of replication groups and cache clusters: create,
//! describe (tags by an extra call, on request), tag and delete. ElastiCache has no
//! snapshot sharing. Does IO.

use async_trait::async_trait;
use aws_sdk_elasticache::Client;
use aws_sdk_elasticache::types::Tag;

use super::audit::{Call, Change, keys};
use super::error::{ServiceCodes, classify};
use super::{
    CopyRequest, CreateRequest, EngineError, ErrorClass, Snapshot, SnapshotEngine, SourceRef,
    rfc3339,
};
use crate::api::{Engine, Progress, Tags};

const SERVICE: &str = "elasticache";
const CODES: ServiceCodes = ServiceCodes {
    not_found: &["SnapshotNotFoundFault"],
    already_exists: &["SnapshotAlreadyExistsFault"],
    invalid_state: &["InvalidSnapshotState"],
    // CreateSnapshot: "The requested replication group (cluster) is not in the
    // available state" (InvalidReplicationGroupStateFault, InvalidCacheClusterStateFault),
    // as while it takes another snapshot.
    source_unavailable: &["InvalidReplicationGroupState", "InvalidCacheClusterState"],
};

pub struct ElastiCache {
    client: Client,
    region: String,
}

impl ElastiCache {
    pub fn new(
        config: &aws_config::SdkConfig,
        metered: super::metered::Metered,
        retry: Option<super::RetryPartition>,
    ) -> Self {
        let mut conf = aws_sdk_elasticache::config::Builder::from(config).interceptor(metered);
        conf.set_retry_partition(retry);
        let conf = conf.build();
        Self {
            client: Client::from_conf(conf),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
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
}

/// Maps a described ElastiCache snapshot.
pub fn map_snapshot(s: &aws_sdk_elasticache::types::Snapshot) -> Snapshot {
    Snapshot {
        identifier: s.snapshot_name().unwrap_or_default().to_string(),
        arn: s.arn().map(str::to_string),
        aws_status: s.snapshot_status().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_source().map(str::to_string),
        source: s
            .replication_group_id()
            .or(s.cache_cluster_id())
            .map(str::to_string),
        created: s
            .node_snapshots()
            .iter()
            .filter_map(|n| n.snapshot_create_time())
            .min()
            .and_then(rfc3339),
        progress: Progress::default(),
        total_size_mb: None,
        encrypted: s.kms_key_id().map(|_| true),
        kms_key_id: s.kms_key_id().map(str::to_string),
        retention_days: None,
        remaining_days: None,
        source_arn: None,
        tags: None,
        shared_with: Some(Vec::new()),
    }
}

fn tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

#[async_trait]
impl SnapshotEngine for ElastiCache {
    fn engine(&self) -> Engine {
        Engine::Elasticache
    }

    async fn describe(
        &self,
        identifier: &str,
        detail: bool,
    ) -> Result<Option<Snapshot>, EngineError> {
        let out = match self
            .client
            .describe_snapshots()
            .snapshot_name(identifier)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = classify(SERVICE, "DescribeSnapshots", e, &CODES);
                return if e.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        let Some(mut snapshot) = out
            .snapshots()
            .iter()
            .find(|s| {
                s.snapshot_name()
                    .is_some_and(|i| i.eq_ignore_ascii_case(identifier))
            })
            .map(map_snapshot)
        else {
            return Ok(None);
        };
        if detail && let Some(arn) = &snapshot.arn {
            match self
                .client
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
            {
                Ok(out) => {
                    snapshot.tags = Some(
                        out.tag_list()
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
                Err(e) => {
                    let e = classify(SERVICE, "ListTagsForResource", e, &CODES);
                    return if e.class == ErrorClass::NotFound {
                        Ok(None)
                    } else {
                        Err(e)
                    };
                }
            }
        }
        Ok(Some(snapshot))
    }

    async fn list(&self, source: &SourceRef) -> Result<Vec<Snapshot>, EngineError> {
        let mut call = self
            .client
            .describe_snapshots()
            .snapshot_source("user")
            .max_records(50);
        call = if source.replication_group {
            call.replication_group_id(&source.id)
        } else {
            call.cache_cluster_id(&source.id)
        };
        let snapshots = call
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(SERVICE, "DescribeSnapshots", e, &CODES))?;
        Ok(snapshots.iter().map(map_snapshot).collect())
    }

    async fn create(&self, request: &CreateRequest) -> Result<Snapshot, EngineError> {
        let mut call = self
            .client
            .create_snapshot()
            .snapshot_name(&request.identifier)
            .set_kms_key_id(request.kms_key_id.clone())
            .set_tags(Some(tags(&request.tags)));
        call = if request.replication_group {
            call.replication_group_id(&request.source)
        } else {
            call.cache_cluster_id(&request.source)
        };
        let result = call.send().await;
        let out = self
            .call(
                Change::Create,
                "CreateSnapshot",
                &request.identifier,
                None,
                format!(
                    "of {} {}",
                    if request.replication_group {
                        "replication group"
                    } else {
                        "cache cluster"
                    },
                    request.source
                ),
            )
            .answered(result, &CODES, |o| {
                o.snapshot().and_then(|s| s.arn()).map(str::to_string)
            })?;
        let mut snapshot = out.snapshot().map(map_snapshot).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CreateSnapshot",
                "AWS returned no snapshot",
            )
        })?;
        snapshot.tags = Some(request.tags.clone());
        Ok(snapshot)
    }

    async fn share(
        &self,
        _snapshot: &Snapshot,
        add: &[String],
        remove: &[String],
    ) -> Result<(), EngineError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        Err(EngineError::new(
            ErrorClass::Terminal,
            SERVICE,
            "ShareSnapshot",
            "ElastiCache snapshots cannot be shared",
        ))
    }

    async fn tag(
        &self,
        snapshot: &Snapshot,
        set: &Tags,
        remove: &[String],
    ) -> Result<(), EngineError> {
        let arn = snapshot.arn.as_deref().ok_or_else(|| {
            EngineError::new(
                ErrorClass::Terminal,
                SERVICE,
                "AddTagsToResource",
                "the snapshot has no ARN",
            )
        })?;
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
            "ModifySnapshot",
            "ElastiCache snapshots have no retention period",
        ))
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<(), EngineError> {
        let r = self
            .client
            .delete_snapshot()
            .snapshot_name(&snapshot.identifier)
            .send()
            .await;
        let r = self
            .call(
                Change::Delete,
                "DeleteSnapshot",
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
        let call = self
            .client
            .copy_snapshot()
            .source_snapshot_name(&request.source)
            .target_snapshot_name(&request.target)
            .set_target_bucket(request.target_bucket.clone())
            .set_kms_key_id(request.kms_key_id.clone())
            .set_tags((request.target_bucket.is_none()).then(|| tags(&request.tags)));
        // An export is never retried by the SDK: an attempt AWS took whose answer was
        // lost would make the retry meet "the bucket already contains an object with
        // key", and the export would look refused. The lifecycle asks AWS instead and
        // requests it again only if it did not run.
        let result = if request.target_bucket.is_some() {
            call.customize()
                .config_override(
                    aws_sdk_elasticache::config::Builder::default()
                        .retry_config(aws_sdk_elasticache::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
        } else {
            call.send().await
        };
        // An export names the source snapshot (which AWS goes on to export) and where
        // the object goes; a copy names the new snapshot.
        let out = match &request.target_bucket {
            Some(bucket) => self.call(
                Change::Export,
                "CopySnapshot",
                &request.source,
                None,
                format!("to s3://{bucket}/{}", request.target),
            ),
            None => self.call(
                Change::Copy,
                "CopySnapshot",
                &request.target,
                None,
                format!("from {}", request.source),
            ),
        }
        .answered(result, &CODES, |o| {
            o.snapshot().and_then(|s| s.arn()).map(str::to_string)
        })?;
        let mut snapshot = out.snapshot().map(map_snapshot).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CopySnapshot",
                "AWS returned no snapshot",
            )
        })?;
        if request.target_bucket.is_none() {
            snapshot.tags = Some(request.tags.clone());
        }
        Ok(snapshot)
    }
}
