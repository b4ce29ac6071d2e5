//! Amazon Redshift cluster snapshots: create, describe (tags and restore access come
//! with it), share, tag, retention and delete. Does IO.

use async_trait::async_trait;
use aws_sdk_redshift::Client;
use aws_sdk_redshift::types::Tag;

use super::audit::{Call, Change, keys};
use super::error::{ServiceCodes, classify};
use super::{
    CopyRequest, CreateRequest, EngineError, ErrorClass, Snapshot, SnapshotEngine, SourceRef,
    rfc3339,
};
use crate::api::{Engine, Progress, Tags};

const SERVICE: &str = "redshift";
const CODES: ServiceCodes = ServiceCodes {
    not_found: &["ClusterSnapshotNotFound"],
    already_exists: &["ClusterSnapshotAlreadyExists"],
    invalid_state: &["InvalidClusterSnapshotState"],
    // CreateClusterSnapshot: "The specified cluster is not in the available state"
    // (InvalidClusterStateFault).
    source_unavailable: &["InvalidClusterState"],
};

pub struct Redshift {
    client: Client,
    region: String,
    caller: std::sync::Arc<super::CallerAccount>,
}

/// Whether a listed snapshot is the account's own: Redshift lists snapshots shared into
/// the account too (with the owner's `OwnerAccount`), which are never this operator's.
fn own(s: &aws_sdk_redshift::types::Snapshot, account: Option<&str>) -> bool {
    match (s.owner_account(), account) {
        (Some(owner), Some(me)) => owner == me,
        _ => true,
    }
}

impl Redshift {
    pub fn new(
        config: &aws_config::SdkConfig,
        metered: super::metered::Metered,
        retry: Option<super::RetryPartition>,
        caller: std::sync::Arc<super::CallerAccount>,
    ) -> Self {
        let mut conf = aws_sdk_redshift::config::Builder::from(config).interceptor(metered);
        conf.set_retry_partition(retry);
        let conf = conf.build();
        Self {
            client: Client::from_conf(conf),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            caller,
        }
    }

    /// A mutating call on `snapshot` (its identifier, and its ARN when known).
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

    /// The caller's account when `snapshots` name owners (so shared-in ones can be told
    /// apart); asked of STS once.
    async fn account_for(
        &self,
        snapshots: &[aws_sdk_redshift::types::Snapshot],
    ) -> Result<Option<&str>, EngineError> {
        if snapshots.iter().any(|s| s.owner_account().is_some()) {
            self.caller.get().await.map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Maps a described Redshift snapshot.
pub fn map_snapshot(s: &aws_sdk_redshift::types::Snapshot) -> Snapshot {
    let total = s.total_backup_size_in_mega_bytes();
    let done = s.backup_progress_in_mega_bytes();
    let percent = match (done, total) {
        (Some(d), Some(t)) if t > 0.0 => Some(((d / t) * 100.0).floor().clamp(0.0, 100.0) as i64),
        _ => None,
    };
    let manual = s.snapshot_type() == Some("manual");
    Snapshot {
        identifier: s.snapshot_identifier().unwrap_or_default().to_string(),
        arn: s.snapshot_arn().map(str::to_string),
        aws_status: s.status().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_type().map(str::to_string),
        source: s.cluster_identifier().map(str::to_string),
        created: s.snapshot_create_time().and_then(rfc3339),
        progress: Progress {
            percent,
            backup_progress_mb: done,
            total_backup_size_mb: total,
            current_rate_mbps: s.current_backup_rate_in_mega_bytes_per_second(),
            estimated_seconds_to_completion: s.estimated_seconds_to_completion(),
            elapsed_seconds: s.elapsed_time_in_seconds(),
        },
        total_size_mb: total,
        encrypted: s.encrypted(),
        kms_key_id: s.kms_key_id().map(str::to_string),
        retention_days: if manual {
            s.manual_snapshot_retention_period().map(i64::from)
        } else {
            None
        },
        remaining_days: if manual {
            s.manual_snapshot_remaining_days().map(i64::from)
        } else {
            None
        },
        source_arn: None,
        tags: Some(
            s.tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
        ),
        shared_with: Some(
            s.accounts_with_restore_access()
                .iter()
                // Redshift's support account is listed by its alias, not an id.
                .filter_map(|a| a.account_id().or(a.account_alias()).map(str::to_string))
                .collect(),
        ),
    }
}

fn tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

#[async_trait]
impl SnapshotEngine for Redshift {
    fn engine(&self) -> Engine {
        Engine::Redshift
    }

    async fn describe(
        &self,
        identifier: &str,
        _detail: bool,
    ) -> Result<Option<Snapshot>, EngineError> {
        match self
            .client
            .describe_cluster_snapshots()
            .snapshot_identifier(identifier)
            .send()
            .await
        {
            Ok(out) => {
                let account = self.account_for(out.snapshots()).await?;
                Ok(out
                    .snapshots()
                    .iter()
                    .filter(|s| own(s, account))
                    .find(|s| {
                        s.snapshot_identifier()
                            .is_some_and(|i| i.eq_ignore_ascii_case(identifier))
                    })
                    .map(map_snapshot))
            }
            Err(e) => {
                let e = classify(SERVICE, "DescribeClusterSnapshots", e, &CODES);
                if e.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn list(&self, source: &SourceRef) -> Result<Vec<Snapshot>, EngineError> {
        let snapshots = self
            .client
            .describe_cluster_snapshots()
            .cluster_identifier(&source.id)
            .snapshot_type("manual")
            .max_records(100)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(SERVICE, "DescribeClusterSnapshots", e, &CODES))?;
        let account = self.account_for(&snapshots).await?;
        Ok(snapshots
            .iter()
            .filter(|s| own(s, account))
            .map(map_snapshot)
            .collect())
    }

    fn list_has_detail(&self) -> bool {
        true
    }

    async fn create(&self, request: &CreateRequest) -> Result<Snapshot, EngineError> {
        let result = self
            .client
            .create_cluster_snapshot()
            .snapshot_identifier(&request.identifier)
            .cluster_identifier(&request.source)
            .set_manual_snapshot_retention_period(request.retention_days)
            .set_tags(Some(tags(&request.tags)))
            .send()
            .await;
        let out = self
            .call(
                Change::Create,
                "CreateClusterSnapshot",
                &request.identifier,
                None,
                format!("of cluster {}", request.source),
            )
            .answered(result, &CODES, |o| {
                o.snapshot()
                    .and_then(|s| s.snapshot_arn())
                    .map(str::to_string)
            })?;
        out.snapshot().map(map_snapshot).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CreateClusterSnapshot",
                "AWS returned no snapshot",
            )
        })
    }

    async fn share(
        &self,
        snapshot: &Snapshot,
        add: &[String],
        remove: &[String],
    ) -> Result<(), EngineError> {
        for account in add {
            let r = self
                .client
                .authorize_snapshot_access()
                .snapshot_identifier(&snapshot.identifier)
                .set_snapshot_cluster_identifier(snapshot.source.clone())
                .account_with_restore_access(account)
                .send()
                .await;
            let r = self
                .call(
                    Change::Share,
                    "AuthorizeSnapshotAccess",
                    &snapshot.identifier,
                    snapshot.arn.as_deref(),
                    format!("account {account}"),
                )
                .benign(&["AuthorizationAlreadyExists"])
                .done(r, &CODES);
            if let Err(e) = r
                && e.code.as_deref() != Some("AuthorizationAlreadyExists")
            {
                return Err(e);
            }
        }
        for account in remove {
            let r = self
                .client
                .revoke_snapshot_access()
                .snapshot_identifier(&snapshot.identifier)
                .set_snapshot_cluster_identifier(snapshot.source.clone())
                .account_with_restore_access(account)
                .send()
                .await;
            let r = self
                .call(
                    Change::RevokeShare,
                    "RevokeSnapshotAccess",
                    &snapshot.identifier,
                    snapshot.arn.as_deref(),
                    format!("account {account}"),
                )
                .benign(&["AuthorizationNotFound"])
                .done(r, &CODES);
            if let Err(e) = r
                && e.code.as_deref() != Some("AuthorizationNotFound")
            {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn tag(
        &self,
        snapshot: &Snapshot,
        set: &Tags,
        remove: &[String],
    ) -> Result<(), EngineError> {
        let arn = snapshot.arn.clone().ok_or_else(|| {
            EngineError::new(
                ErrorClass::Terminal,
                SERVICE,
                "CreateTags",
                "the snapshot has no ARN to tag",
            )
        })?;
        if !set.is_empty() {
            let r = self
                .client
                .create_tags()
                .resource_name(&arn)
                .set_tags(Some(tags(set)))
                .send()
                .await;
            self.call(
                Change::Tag,
                "CreateTags",
                &snapshot.identifier,
                Some(&arn),
                format!("keys {}", keys(set.keys())),
            )
            .done(r, &CODES)?;
        }
        if !remove.is_empty() {
            let r = self
                .client
                .delete_tags()
                .resource_name(&arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await;
            self.call(
                Change::Untag,
                "DeleteTags",
                &snapshot.identifier,
                Some(&arn),
                format!("keys {}", keys(remove)),
            )
            .done(r, &CODES)?;
        }
        Ok(())
    }

    /// The spec's retention is the one wanted: where the snapshot already falls outside
    /// it, AWS refuses the change (InvalidRetentionPeriodFault) unless Force is given,
    /// and with Force deletes the snapshot at once, as it would have when the period
    /// ended (ModifyClusterSnapshotMessage.ManualSnapshotRetentionPeriod, Force).
    async fn set_retention(&self, snapshot: &Snapshot, days: i32) -> Result<(), EngineError> {
        let r = self
            .client
            .modify_cluster_snapshot()
            .snapshot_identifier(&snapshot.identifier)
            .manual_snapshot_retention_period(days)
            .force(true)
            .send()
            .await;
        self.call(
            Change::SetRetention,
            "ModifyClusterSnapshot",
            &snapshot.identifier,
            snapshot.arn.as_deref(),
            format!("retention {days} days"),
        )
        .done(r, &CODES)?;
        Ok(())
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<(), EngineError> {
        let r = self
            .client
            .delete_cluster_snapshot()
            .snapshot_identifier(&snapshot.identifier)
            .set_snapshot_cluster_identifier(snapshot.source.clone())
            .send()
            .await;
        let r = self
            .call(
                Change::Delete,
                "DeleteClusterSnapshot",
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
        let result = self
            .client
            .copy_cluster_snapshot()
            .source_snapshot_identifier(&request.source)
            .set_source_snapshot_cluster_identifier(request.source_cluster.clone())
            .target_snapshot_identifier(&request.target)
            .set_manual_snapshot_retention_period(request.retention_days)
            .send()
            .await;
        let out = self
            .call(
                Change::Copy,
                "CopyClusterSnapshot",
                &request.target,
                None,
                format!("from {}", request.source),
            )
            .answered(result, &CODES, |o| {
                o.snapshot()
                    .and_then(|s| s.snapshot_arn())
                    .map(str::to_string)
            })?;
        let mut snapshot = out.snapshot().map(map_snapshot).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Transient,
                SERVICE,
                "CopyClusterSnapshot",
                "AWS returned no snapshot",
            )
        })?;
        // CopyClusterSnapshot takes no tags: tag the copy (ownership first) at once.
        self.tag(&snapshot, &request.tags, &[]).await?;
        snapshot.tags = Some(request.tags.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_redshift::types::{AccountWithRestoreAccess, Snapshot as Rs};

    #[test]
    fn shares_are_read_by_account_id_and_by_alias() {
        let s = Rs::builder()
            .snapshot_identifier("s")
            .accounts_with_restore_access(
                AccountWithRestoreAccess::builder()
                    .account_id("111111111111")
                    .build(),
            )
            .accounts_with_restore_access(
                AccountWithRestoreAccess::builder()
                    .account_alias("amazon-redshift-support")
                    .build(),
            )
            .build();
        assert_eq!(
            map_snapshot(&s).shared_with,
            Some(vec![
                "111111111111".to_string(),
                "amazon-redshift-support".to_string()
            ])
        );
    }

    #[test]
    fn only_the_accounts_own_snapshots_count() {
        let mine = Rs::builder().owner_account("123456789012").build();
        let shared_in = Rs::builder().owner_account("210987654321").build();
        assert!(own(&mine, Some("123456789012")));
        assert!(!own(&shared_in, Some("123456789012")));
        // No owner named (or no account to compare with): nothing to tell apart.
        assert!(own(&Rs::builder().build(), Some("123456789012")));
        assert!(own(&shared_in, None));
    }
}
