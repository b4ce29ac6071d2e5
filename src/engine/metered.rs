//! An SDK interceptor that counts every AWS call attempt by service, operation and
//! outcome (ok, throttled, client_error, server_error, no_response) into the metrics.
//! No IO of its own.

use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::metrics::Metrics;

#[derive(Debug)]
pub struct Metered {
    pub service: &'static str,
    pub metrics: Arc<Metrics>,
    /// The request budget to lower when AWS throttles.
    pub budget: Option<Arc<super::budget::Budget>>,
}

/// The outcome label of one attempt from its HTTP status and (for errors) body.
pub fn outcome(status: Option<u16>, body: Option<&[u8]>) -> &'static str {
    match status {
        None => "no_response",
        Some(s) if (200..300).contains(&s) => "ok",
        Some(s) => {
            let text = body.map(String::from_utf8_lossy).unwrap_or_default();
            // The same codes the error classes call throttling (query protocol:
            // `<Error><Code>…</Code>`).
            let throttled = error_code(&text).is_some_and(super::error::is_throttling);
            if s == 429 || throttled {
                "throttled"
            } else if s >= 500 {
                "server_error"
            } else {
                "client_error"
            }
        }
    }
}

/// The `<Code>` of a query-protocol error body.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    Some(body[start..start + len].trim())
}

impl Intercept for Metered {
    fn name(&self) -> &'static str {
        "dbsnapshot-metrics"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let response = context.response();
        let result = outcome(
            response.map(|r| r.status().as_u16()),
            response.and_then(|r| r.body().bytes()),
        );
        self.metrics.aws_call(self.service, &operation, result);
        // No answer because the connection failed says AWS is out of reach; an attempt
        // that timed out may have spent its time queued in the request budget.
        let unreached = result == "no_response"
            && matches!(context.output_or_error(), Some(Err(e)) if e.is_connector_error());
        if result != "no_response" || unreached {
            self.metrics.reach.aws(!unreached);
        }
        if let Some(budget) = &self.budget {
            match result {
                "throttled" => budget.throttled(),
                "no_response" => {}
                _ => budget.answered(),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(outcome(Some(200), None), "ok");
        assert_eq!(outcome(None, None), "no_response");
        assert_eq!(
            outcome(Some(400), Some(b"<Error><Code>Throttling</Code></Error>")),
            "throttled"
        );
        assert_eq!(outcome(Some(429), None), "throttled");
        assert_eq!(
            outcome(
                Some(400),
                Some(b"<Error><Code>DependentServiceRequestThrottlingFault</Code></Error>")
            ),
            "throttled"
        );
        assert_eq!(
            outcome(Some(404), Some(b"<Code>ClusterSnapshotNotFound</Code>")),
            "client_error"
        );
        assert_eq!(outcome(Some(500), None), "server_error");
    }

    /// Every code the SDK's retry classifier treats as throttling lowers the budget
    /// and counts as throttled, not only the common ones (ThrottledException,
    /// SlowDown, ... were missed by an earlier hand-written list).
    #[test]
    fn every_sdk_throttling_code_is_throttled() {
        for code in aws_runtime::retries::classifiers::THROTTLING_ERRORS
            .iter()
            .chain(["DependentServiceRequestThrottlingFault"].iter())
        {
            let body = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>"
            );
            assert_eq!(
                outcome(Some(400), Some(body.as_bytes())),
                "throttled",
                "{code}"
            );
            assert_eq!(
                crate::engine::error::class_of_code(
                    code,
                    400,
                    &crate::engine::error::ServiceCodes::NONE
                ),
                crate::engine::error::ErrorClass::Throttled,
                "{code}"
            );
        }
        assert_eq!(
            outcome(
                Some(400),
                Some(b"<Error><Code>ThrottlingNot</Code></Error>")
            ),
            "client_error"
        );
    }
}
