//! The audit trail of changes on AWS. Every mutating call an engine makes is logged
//! right after AWS answers, one line at target [`TARGET`] (info when made, warn when
//! refused), with the AWS operation, the snapshot's identifier and ARN, the region and
//! AWS's request id; the object it was made for comes from the reconcile's tracing span.
//! The same record is kept for the reconcile that made the call ([`collect`]), which
//! turns each into an Event. No IO.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

use super::error::{ServiceCodes, classify};
use super::{EngineError, ErrorClass};

/// The log target of the audit lines (`RUST_LOG=dbsnapshot::audit=info` keeps them
/// alone).
pub const TARGET: &str = "dbsnapshot::audit";

/// What a mutating call does, whatever the service calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Create,
    Copy,
    /// ElastiCache: a copy to S3.
    Export,
    /// Grants restore access (DocumentDB: may revoke in the same call).
    Share,
    RevokeShare,
    Tag,
    Untag,
    SetRetention,
    Delete,
}

impl Change {
    pub const ALL: [Change; 9] = [
        Change::Create,
        Change::Copy,
        Change::Export,
        Change::Share,
        Change::RevokeShare,
        Change::Tag,
        Change::Untag,
        Change::SetRetention,
        Change::Delete,
    ];

    /// The Event's `action`: what was done.
    pub fn action(self) -> &'static str {
        match self {
            Change::Create => "CreateSnapshot",
            Change::Copy => "CopySnapshot",
            Change::Export => "ExportSnapshot",
            Change::Share => "ShareSnapshot",
            Change::RevokeShare => "RevokeShare",
            Change::Tag => "TagSnapshot",
            Change::Untag => "UntagSnapshot",
            Change::SetRetention => "SetRetention",
            Change::Delete => "DeleteSnapshot",
        }
    }

    /// The Event's `reason` when AWS made the change.
    pub fn done(self) -> &'static str {
        match self {
            Change::Create => "Created",
            Change::Copy => "Copied",
            Change::Export => "Exported",
            Change::Share => "Shared",
            Change::RevokeShare => "ShareRevoked",
            Change::Tag => "Tagged",
            Change::Untag => "Untagged",
            Change::SetRetention => "RetentionSet",
            Change::Delete => "Deleted",
        }
    }
}

/// How AWS answered a mutating call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Made.
    Done,
    /// Refused because it was made already (AlreadyExists) or what it acts on is gone
    /// (NotFound): nothing changed.
    AlreadyDone { code: String },
    /// Refused or unanswered.
    Failed {
        class: ErrorClass,
        code: Option<String>,
        message: String,
    },
}

/// One mutating AWS call and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub change: Change,
    pub service: &'static str,
    /// The AWS operation (CreateClusterSnapshot, AddTagsToResource, ...).
    pub operation: &'static str,
    pub region: String,
    pub identifier: String,
    pub arn: Option<String>,
    /// What else the call names (accounts, tag keys, days, the source, the bucket).
    pub detail: String,
    pub request_id: Option<String>,
    pub outcome: Outcome,
}

impl Record {
    /// The Event's `reason`.
    pub fn reason(&self) -> &'static str {
        match &self.outcome {
            Outcome::Done => self.change.done(),
            Outcome::AlreadyDone { .. } => "NothingToDo",
            Outcome::Failed {
                class: ErrorClass::Throttled,
                ..
            } => "Throttled",
            Outcome::Failed { .. } => "AWSError",
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }

    /// The Event's note: the call, the snapshot, the region and AWS's answer.
    pub fn note(&self) -> String {
        let mut note = format!(
            "{} {} in {}",
            self.operation,
            self.arn.as_deref().unwrap_or(&self.identifier),
            self.region
        );
        if !self.detail.is_empty() {
            note.push_str(&format!(" ({})", self.detail));
        }
        match &self.outcome {
            Outcome::Done => {}
            Outcome::AlreadyDone { code } => note.push_str(&format!(": nothing to do ({code})")),
            Outcome::Failed { code, message, .. } => note.push_str(&format!(
                " failed: {}{message}",
                code.as_deref()
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default()
            )),
        }
        if let Some(id) = &self.request_id {
            note.push_str(&format!("; request id {id}"));
        }
        note
    }

    /// The audit line.
    fn log(&self) {
        let arn = self.arn.as_deref();
        let request_id = self.request_id.as_deref();
        match &self.outcome {
            Outcome::Done => tracing::info!(
                target: TARGET,
                action = self.operation,
                change = self.change.action(),
                service = self.service,
                region = %self.region,
                snapshot = %self.identifier,
                arn,
                request_id,
                detail = %self.detail,
                outcome = "done",
                "AWS change made"
            ),
            Outcome::AlreadyDone { code } => tracing::info!(
                target: TARGET,
                action = self.operation,
                change = self.change.action(),
                service = self.service,
                region = %self.region,
                snapshot = %self.identifier,
                arn,
                request_id,
                detail = %self.detail,
                outcome = "already_done",
                error_code = %code,
                "AWS change not needed"
            ),
            Outcome::Failed {
                class,
                code,
                message,
            } => tracing::warn!(
                target: TARGET,
                action = self.operation,
                change = self.change.action(),
                service = self.service,
                region = %self.region,
                snapshot = %self.identifier,
                arn,
                request_id,
                detail = %self.detail,
                outcome = "failed",
                error_class = class.label(),
                error_code = code.as_deref(),
                error = %message,
                "AWS change failed"
            ),
        }
    }
}

tokio::task_local! {
    static JOURNAL: Arc<Mutex<Vec<Record>>>;
}

/// Runs `reconcile`, returning with its output the records of the AWS changes it made.
pub async fn collect<F: Future>(reconcile: F) -> (F::Output, Vec<Record>) {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let output = JOURNAL.scope(journal.clone(), reconcile).await;
    let records = std::mem::take(&mut *journal.lock().unwrap_or_else(|e| e.into_inner()));
    (output, records)
}

/// The changes AWS made (answered Done) so far in this reconcile; none outside one.
pub fn made_so_far() -> Vec<Change> {
    JOURNAL
        .try_with(|j| {
            j.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|r| r.outcome == Outcome::Done)
                .map(|r| r.change)
                .collect()
        })
        .unwrap_or_default()
}

/// Logs the record and keeps it for the reconcile (if any) that made the call.
pub fn keep(record: Record) {
    record.log();
    let _ = JOURNAL.try_with(|j| j.lock().unwrap_or_else(|e| e.into_inner()).push(record));
}

/// A mutating call about to be made; [`Call::answered`] logs and keeps its answer.
pub(crate) struct Call<'a> {
    pub change: Change,
    pub service: &'static str,
    pub operation: &'static str,
    pub region: &'a str,
    pub identifier: &'a str,
    pub arn: Option<&'a str>,
    pub detail: String,
    /// Error codes that mean the change is in place already, beyond what the change's
    /// kind implies (e.g. Redshift's AuthorizationAlreadyExists for a share).
    pub benign: &'static [&'static str],
}

impl Call<'_> {
    /// The same call, with `codes` taken as "in place already".
    pub fn benign(self, codes: &'static [&'static str]) -> Self {
        Self {
            benign: codes,
            ..self
        }
    }

    /// Whether an error answer means the change is in place already: made before (an
    /// AlreadyExists for what makes something), gone before (a NotFound for what
    /// removes something), or a code the call names. A NotFound for a copy, a share or
    /// a tag (its source or snapshot is missing) is a failure.
    fn in_place(&self, class: ErrorClass, code: Option<&str>) -> bool {
        match (class, self.change) {
            (
                ErrorClass::AlreadyExists,
                Change::Create | Change::Copy | Change::Export | Change::Share,
            ) => true,
            (ErrorClass::NotFound, Change::Delete | Change::RevokeShare | Change::Untag) => true,
            _ => code.is_some_and(|c| self.benign.contains(&c)),
        }
    }

    /// Records AWS's answer (the ARN of what it made from `arn` when the call named
    /// none) and classifies an error, as [`classify`] does.
    pub fn answered<O, E>(
        self,
        result: Result<O, SdkError<E, Response>>,
        codes: &ServiceCodes,
        arn: impl FnOnce(&O) -> Option<String>,
    ) -> Result<O, EngineError>
    where
        O: RequestId,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let request_id = match &result {
            Ok(out) => out.request_id(),
            Err(e) => e.request_id(),
        }
        .map(str::to_string);
        let (outcome, made_arn, result) = match result {
            Ok(out) => (Outcome::Done, arn(&out), Ok(out)),
            Err(e) => {
                let e = classify(self.service, self.operation, e, codes);
                let outcome = match &e.code {
                    Some(code) if self.in_place(e.class, Some(code)) => {
                        Outcome::AlreadyDone { code: code.clone() }
                    }
                    _ => Outcome::Failed {
                        class: e.class,
                        code: e.code.clone(),
                        message: e.message.clone(),
                    },
                };
                (outcome, None, Err(e))
            }
        };
        keep(Record {
            change: self.change,
            service: self.service,
            operation: self.operation,
            region: self.region.to_string(),
            identifier: self.identifier.to_string(),
            arn: self.arn.map(str::to_string).or(made_arn),
            detail: self.detail,
            request_id,
            outcome,
        });
        result
    }

    /// [`Call::answered`] for a call whose answer names nothing new.
    pub fn done<O, E>(
        self,
        result: Result<O, SdkError<E, Response>>,
        codes: &ServiceCodes,
    ) -> Result<O, EngineError>
    where
        O: RequestId,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        self.answered(result, codes, |_| None)
    }
}

/// Tag keys, for the detail (values may say more than a log should).
pub(crate) fn keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> String {
    keys.into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome) -> Record {
        Record {
            change: Change::Share,
            service: "redshift",
            operation: "AuthorizeSnapshotAccess",
            region: "us-east-1".into(),
            identifier: "snap".into(),
            arn: None,
            detail: "account 111111111111".into(),
            request_id: Some("rid-1".into()),
            outcome,
        }
    }

    #[test]
    fn an_error_is_in_place_only_for_the_change_it_fits() {
        let call = |change| Call {
            change,
            service: "redshift",
            operation: "Op",
            region: "us-east-1",
            identifier: "s",
            arn: None,
            detail: String::new(),
            benign: &[],
        };
        // Made before, gone before: nothing to do.
        assert!(call(Change::Create).in_place(ErrorClass::AlreadyExists, Some("X")));
        assert!(call(Change::Delete).in_place(ErrorClass::NotFound, Some("X")));
        assert!(call(Change::RevokeShare).in_place(ErrorClass::NotFound, Some("X")));
        // A copy, share, tag or retention whose snapshot is missing failed.
        for change in [
            Change::Copy,
            Change::Export,
            Change::Share,
            Change::Tag,
            Change::SetRetention,
        ] {
            assert!(
                !call(change).in_place(ErrorClass::NotFound, Some("X")),
                "{change:?}"
            );
        }
        assert!(!call(Change::Delete).in_place(ErrorClass::AlreadyExists, Some("X")));
        // Codes the call names.
        let share = call(Change::Share).benign(&["AuthorizationAlreadyExists"]);
        assert!(share.in_place(ErrorClass::Terminal, Some("AuthorizationAlreadyExists")));
        assert!(!share.in_place(ErrorClass::Terminal, Some("AccessDenied")));
    }

    #[test]
    fn events_say_what_was_done_and_why() {
        let done = record(Outcome::Done);
        assert_eq!(done.change.action(), "ShareSnapshot");
        assert_eq!(done.reason(), "Shared");
        assert!(!done.failed());
        assert_eq!(
            done.note(),
            "AuthorizeSnapshotAccess snap in us-east-1 (account 111111111111); request id rid-1"
        );
        let already = record(Outcome::AlreadyDone {
            code: "AuthorizationAlreadyExists".into(),
        });
        assert_eq!(already.reason(), "NothingToDo");
        assert!(
            already
                .note()
                .contains("nothing to do (AuthorizationAlreadyExists)")
        );
        let throttled = record(Outcome::Failed {
            class: ErrorClass::Throttled,
            code: Some("Throttling".into()),
            message: "Rate exceeded".into(),
        });
        assert_eq!(throttled.reason(), "Throttled");
        assert!(throttled.failed());
        assert!(
            throttled
                .note()
                .contains("failed: Throttling: Rate exceeded; request id rid-1")
        );
        let refused = record(Outcome::Failed {
            class: ErrorClass::Terminal,
            code: None,
            message: "timed out".into(),
        });
        assert_eq!(refused.reason(), "AWSError");
        // Every action is distinct.
        let actions: std::collections::HashSet<_> =
            Change::ALL.iter().map(|c| c.action()).collect();
        assert_eq!(actions.len(), Change::ALL.len());
    }

    #[tokio::test]
    async fn a_reconcile_collects_the_changes_it_made_and_no_others() {
        keep(record(Outcome::Done)); // outside any reconcile: logged only
        let ((), records) = collect(async {
            keep(record(Outcome::Done));
            tokio::task::yield_now().await;
            keep(Record {
                change: Change::Delete,
                ..record(Outcome::Done)
            });
        })
        .await;
        assert_eq!(
            records.iter().map(|r| r.change).collect::<Vec<_>>(),
            vec![Change::Share, Change::Delete]
        );
    }

    #[tokio::test]
    async fn made_so_far_is_what_aws_made_in_this_reconcile() {
        assert!(made_so_far().is_empty(), "outside a reconcile");
        let (made, _) = collect(async {
            assert!(made_so_far().is_empty());
            keep(Record {
                change: Change::Create,
                ..record(Outcome::Done)
            });
            keep(Record {
                change: Change::Delete,
                ..record(Outcome::AlreadyDone {
                    code: "NotFound".into(),
                })
            });
            keep(Record {
                change: Change::Tag,
                ..record(Outcome::Failed {
                    class: ErrorClass::Throttled,
                    code: None,
                    message: "slow down".into(),
                })
            });
            made_so_far()
        })
        .await;
        assert_eq!(made, vec![Change::Create]);
    }
}
