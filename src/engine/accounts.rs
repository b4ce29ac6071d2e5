//! Other AWS accounts: the role the operator assumes in each (STS AssumeRole with its
//! own credentials), and the temporary credentials, cached per account and refreshed
//! before they expire, that every client of that account signs with.
//!
//! The provider is written on `aws-sdk-sts` rather than taken from
//! `aws_config::sts::AssumeRoleProvider` because that provider logs the access key id
//! of every credential it obtains (at debug level), and no credential may reach a log.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};

use super::EngineError;
use super::error::{ServiceCodes, classify};

/// The session name the operator's AssumeRole calls carry (CloudTrail shows it in the
/// assumed role's ARN: `arn:aws:sts::ACCOUNT:assumed-role/ROLE/dbsnapshot-operator`).
pub const SESSION_NAME: &str = "dbsnapshot-operator";

/// An account the operator works in through a role it assumes there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountRole {
    /// The 12-digit account the role belongs to.
    pub account_id: String,
    pub role_arn: String,
    /// The `sts:ExternalId` the role's trust policy requires, if any.
    pub external_id: Option<String>,
    /// How long each session asks to last (STS's DurationSeconds; AWS's default, one
    /// hour, when `None`).
    pub session_seconds: Option<u32>,
}

/// How long before the SDK's identity cache considers credentials expired it asks for
/// new ones (its buffer: 10 s, less up to half of it as jitter).
const SDK_BUFFER: Duration = Duration::from_secs(10);
/// The shortest time credentials stay valid after the operator stops signing with them:
/// more than one attempt's timeout (45 s), since a request waits for the request budget
/// after it is signed.
const MIN_RENEW_BEFORE: Duration = Duration::from_secs(60);
/// The longest: AWS's SDKs renew assumed credentials five minutes before expiry.
const MAX_RENEW_BEFORE: Duration = Duration::from_secs(300);
/// How long a failed AssumeRole answers for the account before STS is asked again, so
/// that a role that cannot be assumed costs one STS call per few seconds, not one per
/// request.
const FAILURE_HELD: Duration = Duration::from_secs(5);

/// How long before credentials that last `lifetime` expire the operator stops signing
/// with them: a quarter of their life, within [`MIN_RENEW_BEFORE`]..[`MAX_RENEW_BEFORE`],
/// and at most half of it (only sessions shorter than AWS allows, in tests, get there).
pub fn renew_before(lifetime: Duration) -> Duration {
    (lifetime / 4)
        .clamp(MIN_RENEW_BEFORE, MAX_RENEW_BEFORE)
        .min(lifetime / 2)
}

struct Held {
    /// What the SDK gets: expiring at `renew_at`, so that its identity cache asks again
    /// before then, and never signs with credentials close to their real expiry.
    credentials: Credentials,
    renew_at: SystemTime,
    /// STS's expiry.
    expires: SystemTime,
}

/// The last AssumeRole's failure, answered for [`FAILURE_HELD`].
struct Failed {
    at: std::time::Instant,
    class: super::ErrorClass,
    code: Option<String>,
    message: String,
}

#[derive(Default)]
struct State {
    held: Option<Held>,
    failed: Option<Failed>,
}

/// Temporary credentials of one account, from STS AssumeRole with the operator's own
/// credentials, held until shortly before they expire and shared by every client of
/// that account (every service and region): one AssumeRole per session, not one per
/// client.
pub struct AssumedRole {
    role: AccountRole,
    sts: aws_sdk_sts::Client,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for AssumedRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("AssumedRole")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl AssumedRole {
    /// `base`: the operator's own configuration (its credentials call STS).
    pub fn new(base: &SdkConfig, role: AccountRole) -> Self {
        let mut conf = aws_sdk_sts::config::Builder::from(base);
        if base.region().is_none() {
            conf.set_region(Some(aws_config::Region::new("us-east-1")));
        }
        if base.behavior_version().is_none() {
            conf.set_behavior_version(Some(aws_config::BehaviorVersion::latest()));
        }
        Self {
            role,
            sts: aws_sdk_sts::Client::from_conf(conf.build()),
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    pub fn role(&self) -> &AccountRole {
        &self.role
    }

    /// The credentials held, or new ones once they are due for renewal. If renewing
    /// fails while the held ones are still good for a while, those are handed out (the
    /// next request tries again); a failure is remembered for a few seconds.
    pub async fn credentials(&self) -> Result<Credentials, EngineError> {
        let mut state = self.state.lock().await;
        let now = SystemTime::now();
        if let Some(h) = &state.held
            && now + SDK_BUFFER < h.renew_at
        {
            return Ok(h.credentials.clone());
        }
        if let Some(f) = &state.failed
            && f.at.elapsed() < FAILURE_HELD
        {
            return Err(self.failure(f));
        }
        match self.assume().await {
            Ok(fresh) => {
                state.failed = None;
                Ok(Self::hold(&mut state, fresh))
            }
            Err(e) => {
                state.failed = Some(Failed {
                    at: std::time::Instant::now(),
                    class: e.class,
                    code: e.code.clone(),
                    message: e.message.clone(),
                });
                match &state.held {
                    Some(h) if now + MIN_RENEW_BEFORE < h.expires => {
                        tracing::warn!(role = %self.role.role_arn, error = %e, "could not renew the account's credentials; using the current ones until they near expiry");
                        Ok(h.credentials.clone())
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Assumes the role now, whatever is held, and asks STS whose identity the new
    /// credentials are: the account and the assumed role's ARN. What an AWSAccount's
    /// check does, so that a changed trust policy is seen.
    pub async fn verify(&self) -> Result<(String, String), EngineError> {
        let creds = {
            let mut state = self.state.lock().await;
            let fresh = self.assume().await?;
            state.failed = None;
            Self::hold(&mut state, fresh)
        };
        let conf = self
            .sts
            .config()
            .to_builder()
            .credentials_provider(creds)
            .build();
        let out = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("sts", "GetCallerIdentity", e, &ServiceCodes::NONE))?;
        match (out.account(), out.arn()) {
            (Some(account), Some(arn)) => Ok((account.to_string(), arn.to_string())),
            _ => Err(EngineError {
                class: super::ErrorClass::Transient,
                service: "sts",
                action: "GetCallerIdentity",
                code: None,
                message: "STS named no account".to_string(),
                source: None,
            }),
        }
    }

    fn failure(&self, f: &Failed) -> EngineError {
        EngineError {
            class: f.class,
            service: "sts",
            action: "AssumeRole",
            code: f.code.clone(),
            message: f.message.clone(),
            source: None,
        }
    }

    /// Keeps fresh credentials and returns what the SDK gets of them.
    fn hold(state: &mut State, fresh: Credentials) -> Credentials {
        let now = SystemTime::now();
        let expires = fresh.expiry().unwrap_or(now);
        let lifetime = expires.duration_since(now).unwrap_or_default();
        let renew_at = expires - renew_before(lifetime);
        let credentials = Credentials::new(
            fresh.access_key_id(),
            fresh.secret_access_key(),
            fresh.session_token().map(str::to_string),
            Some(renew_at),
            "dbsnapshot-operator-assume-role",
        );
        state.held = Some(Held {
            credentials: credentials.clone(),
            renew_at,
            expires,
        });
        credentials
    }

    async fn assume(&self) -> Result<Credentials, EngineError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role.role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.role.external_id.clone())
            .set_duration_seconds(self.role.session_seconds.map(|s| s as i32))
            .send()
            .await
            .map_err(|e| classify("sts", "AssumeRole", e, &ServiceCodes::NONE))?;
        let c = out.credentials().ok_or_else(|| EngineError {
            class: super::ErrorClass::Transient,
            service: "sts",
            action: "AssumeRole",
            code: None,
            message: "STS returned no credentials".to_string(),
            source: None,
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "dbsnapshot-operator-assume-role",
        ))
    }
}

/// The SDK's view of an account's credentials: every client of the account asks the
/// one [`AssumedRole`].
#[derive(Debug)]
struct Provider(Arc<AssumedRole>);

impl ProvideCredentials for Provider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            // The EngineError travels as the source, so that `classify` gives the call
            // the class of STS's answer (AccessDenied: terminal), not a network error's.
            self.0.credentials().await.map_err(|e| {
                CredentialsError::provider_error(EngineError {
                    message: format!(
                        "could not assume {} in account {}: {}",
                        self.0.role.role_arn, self.0.role.account_id, e
                    ),
                    ..e
                })
            })
        })
    }
}

/// The operator's configuration with an account's assumed credentials in place of its
/// own.
pub fn config_for(base: &SdkConfig, role: &Arc<AssumedRole>) -> SdkConfig {
    base.to_builder()
        // AssumeRole may take longer than the SDK's default 5 s load timeout (its own
        // retries); a load cut short would be lost.
        .identity_cache(
            aws_config::identity::IdentityCache::lazy()
                .load_timeout(Duration::from_secs(60))
                .build(),
        )
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Provider(role.clone())),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_a_quarter_of_their_life_before_expiry_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(renew_before(s(43200)), s(300));
        assert_eq!(renew_before(s(3600)), s(300));
        // AWS's shortest session.
        assert_eq!(renew_before(s(900)), s(225));
        assert_eq!(renew_before(s(240)), s(60));
        // Shorter than AWS allows (the emulator's, in tests): half of it.
        assert_eq!(renew_before(s(100)), s(50));
        assert_eq!(renew_before(s(20)), s(10));
        assert_eq!(renew_before(s(0)), s(0));
    }
}
