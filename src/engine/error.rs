//! Errors from AWS, classified from the SDK's error metadata: throttled, transient,
//! not found, already exists, wrong state, or terminal. No IO.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a failed AWS call means for the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// AWS is rate limiting: back off and retry; never Stalled.
    Throttled,
    /// A network error, timeout or 5xx: retry with backoff; never Stalled.
    Transient,
    /// The resource does not exist.
    NotFound,
    /// The resource already exists.
    AlreadyExists,
    /// The resource is in a state that does not allow the call now (still creating,
    /// still shared): try again later.
    InvalidState,
    /// The cluster (or replication group, or cache cluster) to snapshot is not
    /// available now (maintenance, a resize, ElastiCache's snapshot in progress): try
    /// again with backoff, and say so on the object.
    SourceUnavailable,
    /// AWS refused the call for a reason retrying will not fix (permissions, bad
    /// parameters, a missing cluster, a quota).
    Terminal,
}

impl ErrorClass {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::NotFound => "not_found",
            ErrorClass::AlreadyExists => "already_exists",
            ErrorClass::InvalidState => "invalid_state",
            ErrorClass::SourceUnavailable => "source_unavailable",
            ErrorClass::Terminal => "terminal",
        }
    }
    /// Whether retrying the same call later can succeed without anyone's help.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled
                | ErrorClass::Transient
                | ErrorClass::InvalidState
                | ErrorClass::SourceUnavailable
        )
    }
}

/// A failed AWS call.
#[derive(Debug, thiserror::Error)]
#[error("{service} {action} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct EngineError {
    pub class: ErrorClass,
    pub service: &'static str,
    pub action: &'static str,
    /// AWS's error code, when AWS answered.
    pub code: Option<String>,
    /// AWS's message, or what went wrong on the way.
    pub message: String,
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync>>,
}

impl EngineError {
    pub fn new(
        class: ErrorClass,
        service: &'static str,
        action: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            service,
            action,
            code: None,
            message: message.into(),
            source: None,
        }
    }
}

/// Redshift's `DependentServiceRequestThrottlingFault` (service-2.json shape of that
/// name: "a dependent service is throttling requests made by Amazon Redshift on your
/// behalf. Wait and retry the request."; AuthorizeSnapshotAccess, CreateCluster,
/// RestoreFromClusterSnapshot and others may answer it), which the SDK's list lacks.
const REDSHIFT_THROTTLING: &str = "DependentServiceRequestThrottlingFault";

/// Whether AWS's error `code` means throttling: the Rust SDK runtime's own list
/// (`aws_runtime::retries::classifiers::THROTTLING_ERRORS`, which its retry classifier
/// uses) plus Redshift's fault above. The error classes and the throttle metrics and
/// request budget (`metered`) both ask this.
pub(crate) fn is_throttling(code: &str) -> bool {
    code == REDSHIFT_THROTTLING
        || aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
}

const TRANSIENT: &[&str] = &[
    // Temporary credentials that expired in flight: the next attempt signs with new ones.
    "ExpiredToken",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Classifies an SDK error. `not_found`, `already_exists` and `invalid_state` are the
/// service's codes for those cases.
pub fn classify<E>(
    service: &'static str,
    action: &'static str,
    err: SdkError<E, Response>,
    codes: &ServiceCodes,
) -> EngineError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    // A call whose credentials could not be had (another account's role that cannot be
    // assumed): the class and words of STS's answer, carried as the source.
    if let Some(found) = engine_error_in(&err) {
        return EngineError {
            class: found.class,
            service,
            action,
            code: found.code.clone(),
            message: found.message.clone(),
            source: Some(Box::new(err)),
        };
    }
    let (class, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().map(str::to_string);
            let status = ctx.raw().status().as_u16();
            let c = code.as_deref().unwrap_or_default();
            let class = class_of_code(c, status, codes);
            let message = e.message().unwrap_or("no message").to_string();
            (class, code, message)
        }
        SdkError::TimeoutError(_) => (ErrorClass::Transient, None, "timed out".to_string()),
        SdkError::DispatchFailure(d) => (
            ErrorClass::Transient,
            None,
            format!("could not reach AWS: {:?}", d.as_connector_error()),
        ),
        SdkError::ResponseError(_) => (
            ErrorClass::Transient,
            None,
            "unreadable response".to_string(),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorClass::Terminal,
            None,
            "the request could not be built".to_string(),
        ),
        _ => (ErrorClass::Transient, None, err.to_string()),
    };
    EngineError {
        class,
        service,
        action,
        code,
        message,
        source: Some(Box::new(err)),
    }
}

/// An [`EngineError`] in the chain of sources of `err`.
fn engine_error_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a EngineError> {
    let mut next = err.source();
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<EngineError>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The class of an AWS error answer with code `c` and HTTP status `status`.
pub fn class_of_code(c: &str, status: u16, codes: &ServiceCodes) -> ErrorClass {
    if is_throttling(c) {
        ErrorClass::Throttled
    } else if TRANSIENT.contains(&c) || status >= 500 {
        ErrorClass::Transient
    } else if codes.not_found.contains(&c) {
        ErrorClass::NotFound
    } else if codes.already_exists.contains(&c) {
        ErrorClass::AlreadyExists
    } else if codes.invalid_state.contains(&c) {
        ErrorClass::InvalidState
    } else if codes.source_unavailable.contains(&c) {
        ErrorClass::SourceUnavailable
    } else {
        ErrorClass::Terminal
    }
}

/// A service's error codes for the classes that matter to the lifecycle.
pub struct ServiceCodes {
    pub not_found: &'static [&'static str],
    pub already_exists: &'static [&'static str],
    pub invalid_state: &'static [&'static str],
    /// The source cluster is not available now.
    pub source_unavailable: &'static [&'static str],
}

impl ServiceCodes {
    /// A service whose calls have no such codes (STS).
    pub const NONE: ServiceCodes = ServiceCodes {
        not_found: &[],
        already_exists: &[],
        invalid_state: &[],
        source_unavailable: &[],
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_the_sdks_plus_redshifts_dependent_service_fault() {
        for code in [
            "Throttling",
            "LimitExceededException",
            "DependentServiceRequestThrottlingFault",
        ] {
            assert_eq!(
                class_of_code(code, 400, &ServiceCodes::NONE),
                ErrorClass::Throttled,
                "{code}"
            );
        }
        assert!(ErrorClass::Throttled.is_retryable());
        assert_eq!(
            class_of_code("AccessDenied", 403, &ServiceCodes::NONE),
            ErrorClass::Terminal
        );
        assert_eq!(
            class_of_code("InternalFailure", 500, &ServiceCodes::NONE),
            ErrorClass::Transient
        );
    }

    #[test]
    fn a_source_cluster_that_is_not_available_is_waited_for() {
        let codes = ServiceCodes {
            source_unavailable: &["InvalidClusterState"],
            invalid_state: &["InvalidClusterSnapshotState"],
            ..ServiceCodes::NONE
        };
        let class = class_of_code("InvalidClusterState", 400, &codes);
        assert_eq!(class, ErrorClass::SourceUnavailable);
        assert!(class.is_retryable());
        assert_eq!(
            class_of_code("InvalidClusterSnapshotState", 400, &codes),
            ErrorClass::InvalidState
        );
    }
}
