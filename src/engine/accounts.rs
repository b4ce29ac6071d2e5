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

/// The shortest time before expiry at which credentials are renewed: more than the
/// SDK identity cache's own buffer (10 s), so that when a client asks again the
/// credentials it gets are new ones.
const MIN_RENEW_BEFORE: Duration = Duration::from_secs(15);
/// The longest: AWS's SDKs renew assumed credentials five minutes before expiry.
const MAX_RENEW_BEFORE: Duration = Duration::from_secs(300);

/// When credentials that last `lifetime` are renewed, before they expire: a quarter of
/// their life, within [`MIN_RENEW_BEFORE`]..[`MAX_RENEW_BEFORE`].
pub fn renew_before(lifetime: Duration) -> Duration {
    (lifetime / 4).clamp(MIN_RENEW_BEFORE, MAX_RENEW_BEFORE)
}

struct Held {
    credentials: Credentials,
    renew_at: SystemTime,
}

/// Temporary credentials of one account, from STS AssumeRole with the operator's own
/// credentials, held until shortly before they expire and shared by every client of
/// that account (every service and region): one AssumeRole per session, not one per
/// client.
pub struct AssumedRole {
    role: AccountRole,
    sts: aws_sdk_sts::Client,
    held: tokio::sync::Mutex<Option<Held>>,
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
            held: tokio::sync::Mutex::new(None),
        }
    }

    pub fn role(&self) -> &AccountRole {
        &self.role
    }

    /// The credentials held, or new ones if they are due for renewal.
    pub async fn credentials(&self) -> Result<Credentials, EngineError> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref()
            && SystemTime::now() < h.renew_at
        {
            return Ok(h.credentials.clone());
        }
        let fresh = self.assume().await?;
        let renew_at = match fresh.expiry() {
            Some(expiry) => {
                let lifetime = expiry.duration_since(SystemTime::now()).unwrap_or_default();
                expiry - renew_before(lifetime)
            }
            None => SystemTime::now(),
        };
        *held = Some(Held {
            credentials: fresh.clone(),
            renew_at,
        });
        Ok(fresh)
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

    /// The account the assumed credentials belong to (STS GetCallerIdentity with them).
    pub async fn caller_account(&self) -> Result<String, EngineError> {
        let creds = self.credentials().await?;
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
        out.account()
            .map(str::to_string)
            .ok_or_else(|| EngineError {
                class: super::ErrorClass::Transient,
                service: "sts",
                action: "GetCallerIdentity",
                code: None,
                message: "STS named no account".to_string(),
                source: None,
            })
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
            self.0.credentials().await.map_err(|e| {
                let message = format!(
                    "could not assume {} in account {}: {e}",
                    self.0.role.role_arn, self.0.role.account_id
                );
                CredentialsError::provider_error(message)
            })
        })
    }
}

/// The operator's configuration with an account's assumed credentials in place of its
/// own.
pub fn config_for(base: &SdkConfig, role: &Arc<AssumedRole>) -> SdkConfig {
    base.to_builder()
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
        assert_eq!(renew_before(s(3600)), s(300));
        assert_eq!(renew_before(s(900)), s(225));
        assert_eq!(renew_before(s(120)), s(30));
        assert_eq!(renew_before(s(30)), s(15));
        assert_eq!(renew_before(s(0)), s(15));
        assert_eq!(renew_before(s(43200)), s(300));
    }
}
