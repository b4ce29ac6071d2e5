//! AWS STS: GetCallerIdentity (whose credentials a client holds) and AssumeRole
//! (temporary credentials in another account, if that account's role trusts the
//! caller). Roles and their trust are configured through `--role` and
//! `/_emulator/roles`; the temporary credentials are checked on every later call
//! ([`State::authenticate`]).
//!
//! AWS's words are botocore's `sts/2011-06-15/service-2.json`: AssumeRoleRequest
//! (RoleArn 20..2048; RoleSessionName 2..64 of `[\w+=,.@-]*`; DurationSeconds
//! 900..43200; ExternalId 2..1224 of `[\w+=,.@:\/-]*`), Credentials (AccessKeyId,
//! SecretAccessKey, SessionToken, Expiration, all required) and AssumedRoleUser
//! (AssumedRoleId, Arn). A role that does not exist, does not trust the caller's
//! account or wants another external id answers `AccessDenied` (HTTP 403) with the
//! same message, as AWS does, so that a caller cannot tell which.

use chrono::Duration;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::query::{ApiError, ApiResult, Params, Reply, Xml, is_account_id};
use crate::state::{Caller, State};

pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// IAM's MaxSessionDuration when a role does not set one.
pub const DEFAULT_MAX_SESSION: i64 = 3600;

/// An IAM role that AssumeRole hands out, with what its trust policy allows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    /// `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`
    pub role_arn: String,
    /// Accounts whose callers may assume it (the trust policy's
    /// `"Principal": {"AWS": "arn:aws:iam::ACCOUNT:root"}`).
    #[serde(default)]
    pub trusted_accounts: Vec<String>,
    /// The `sts:ExternalId` the trust policy's condition requires, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The role's MaxSessionDuration in seconds, 3600..=43200.
    #[serde(default = "default_max_session")]
    pub max_session_duration: i64,
}

fn default_max_session() -> i64 {
    DEFAULT_MAX_SESSION
}

impl Role {
    /// The account and the role's name (its path left out), or why the ARN is not a
    /// role's.
    pub fn parse_arn(arn: &str) -> Result<(String, String), String> {
        let bad = || format!("{arn} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)");
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(bad)?;
        let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
        let path = resource.strip_prefix("role/").ok_or_else(bad)?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !is_account_id(account) || !name_ok {
            return Err(bad());
        }
        Ok((account.to_string(), name.to_string()))
    }

    /// Checks a role given by flag or admin API.
    pub fn check(&self) -> Result<(), String> {
        Self::parse_arn(&self.role_arn)?;
        if let Some(a) = self.trusted_accounts.iter().find(|a| !is_account_id(a)) {
            return Err(format!("trustedAccounts: {a} is not a 12-digit account id"));
        }
        if !(3600..=43200).contains(&self.max_session_duration) {
            return Err(format!(
                "maxSessionDuration {} is not within 3600..43200 (IAM's range)",
                self.max_session_duration
            ));
        }
        Ok(())
    }

    /// `--role ROLE_ARN=ACCOUNT[,ACCOUNT...]`
    pub fn from_flag(flag: &str) -> Result<Self, String> {
        let (arn, accounts) = flag
            .rsplit_once('=')
            .ok_or_else(|| format!("--role {flag}: expected ROLE_ARN=ACCOUNT[,ACCOUNT...]"))?;
        let role = Role {
            role_arn: arn.to_string(),
            trusted_accounts: accounts
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
            external_id: None,
            max_session_duration: DEFAULT_MAX_SESSION,
        };
        role.check().map_err(|e| format!("--role {flag}: {e}"))?;
        Ok(role)
    }
}

/// Temporary credentials AssumeRole handed out.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub account: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`
    pub arn: String,
    /// `AROA...:SESSION`
    pub user_id: String,
    pub expires: chrono::DateTime<chrono::Utc>,
}

pub fn handle(st: &mut State, c: &Caller, action: &str, p: &Params) -> ApiResult<Reply> {
    match action {
        "GetCallerIdentity" => {
            let mut x = Xml::default();
            x.leaf("Arn", &c.arn);
            x.leaf("UserId", &c.user_id);
            x.leaf("Account", &c.account);
            Ok(Some(x))
        }
        "AssumeRole" => assume_role(st, c, p),
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

/// STS's validation fault, worded as AWS words it.
fn validation(value: &str, member: &str, constraint: &str) -> ApiError {
    ApiError::bad(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: {constraint}"
        ),
    )
}

fn check_string(
    p: &Params,
    key: &str,
    member: &str,
    (min, max): (usize, usize),
    extra: &str,
) -> ApiResult<Option<String>> {
    let Some(v) = p.get(key) else {
        return Ok(None);
    };
    let n = v.chars().count();
    if n < min {
        return Err(validation(
            v,
            member,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(validation(
            v,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if v.chars()
        .any(|c| !(c.is_alphanumeric() || c == '_' || extra.contains(c)))
    {
        return Err(validation(
            v,
            member,
            &format!(
                "Member must satisfy regular expression pattern: [\\w{}]*",
                extra.replace('/', "\\/")
            ),
        ));
    }
    Ok(Some(v.to_string()))
}

fn assume_role(st: &mut State, c: &Caller, p: &Params) -> ApiResult<Reply> {
    let arn = p
        .get("RoleArn")
        .ok_or_else(|| ApiError::bad("ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"))?
        .to_string();
    if !(20..=2048).contains(&arn.len()) {
        return Err(validation(
            &arn,
            "roleArn",
            "Member must have length between 20 and 2048",
        ));
    }
    let session = check_string(p, "RoleSessionName", "roleSessionName", (2, 64), "+=,.@-")?
        .ok_or_else(|| ApiError::bad("ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"))?;
    let external_id = check_string(p, "ExternalId", "externalId", (2, 1224), "+=,.@:/-")?;
    let duration = p.int("DurationSeconds")?.unwrap_or(DEFAULT_MAX_SESSION);
    if !(900..=43200).contains(&duration) {
        return Err(validation(
            &duration.to_string(),
            "durationSeconds",
            if duration < 900 {
                "Member must have value greater than or equal to 900"
            } else {
                "Member must have value less than or equal to 43200"
            },
        ));
    }
    let (account, name) = Role::parse_arn(&arn).map_err(|e| ApiError::bad("ValidationError", e))?;
    let denied = || {
        ApiError::new(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {arn}",
                c.arn
            ),
        )
    };
    let role = st.roles.get(&arn).cloned().ok_or_else(denied)?;
    if !role.trusted_accounts.contains(&c.account)
        || (role.external_id.is_some() && role.external_id != external_id)
    {
        return Err(denied());
    }
    if c.arn.contains(":assumed-role/") && duration > 3600 {
        return Err(ApiError::bad(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles \
             assumed by role chaining.",
        ));
    }
    if duration > role.max_session_duration {
        return Err(ApiError::bad(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    let mut lasts = duration as f64;
    if st.session_seconds > 0.0 {
        lasts = lasts.min(st.session_seconds);
    }
    let expires = c.now + Duration::milliseconds((lasts * 1000.0) as i64);
    // The access key ends in the role's account, as every key here does (state::account_of).
    let key = loop {
        let k = format!("ASIA{}{account}", random_chars(&mut st.rng, 4, UPPER));
        if !st.credentials.contains_key(&k) {
            break k;
        }
    };
    let secret = random_chars(&mut st.rng, 40, BASE64);
    let token = format!("IQoJb3JpZ2luX2Vj{}", random_chars(&mut st.rng, 300, BASE64));
    let role_id = format!("AROA{}", stable_id(&arn));
    let user = Session {
        token: token.clone(),
        account: account.clone(),
        arn: format!("arn:aws:sts::{account}:assumed-role/{name}/{session}"),
        user_id: format!("{role_id}:{session}"),
        expires,
    };
    st.credentials.insert(key.clone(), secret.clone());
    let mut x = Xml::default();
    x.open("Credentials");
    x.leaf("AccessKeyId", &key);
    x.leaf("SecretAccessKey", &secret);
    x.leaf("SessionToken", &token);
    x.time("Expiration", expires);
    x.close("Credentials");
    x.open("AssumedRoleUser");
    x.leaf("AssumedRoleId", &user.user_id);
    x.leaf("Arn", &user.arn);
    x.close("AssumedRoleUser");
    st.sessions.insert(key, user);
    Ok(Some(x))
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_chars(rng: &mut impl Rng, n: usize, alphabet: &[u8]) -> String {
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// 17 characters of IAM's unique-id alphabet that name a role the same way each time.
fn stable_id(arn: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    (0..17)
        .map(|i| {
            for b in arn.bytes().chain([i as u8]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            UPPER[(h % UPPER.len() as u64) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_name_an_account_and_a_role() {
        assert_eq!(
            Role::parse_arn("arn:aws:iam::210987654321:role/ops/dbsnapshot-operator"),
            Ok(("210987654321".into(), "dbsnapshot-operator".into()))
        );
        for bad in [
            "arn:aws:iam::2109876543:role/x",
            "arn:aws:iam::210987654321:user/x",
            "arn:aws:sts::210987654321:role/x",
            "arn:aws:iam::210987654321:role/",
            "arn:aws:iam::210987654321:role/a b",
        ] {
            assert!(Role::parse_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_flags_parse_and_are_checked() {
        let r =
            Role::from_flag("arn:aws:iam::210987654321:role/dr=123456789012,111122223333").unwrap();
        assert_eq!(r.trusted_accounts, ["123456789012", "111122223333"]);
        assert!(Role::from_flag("arn:aws:iam::210987654321:role/dr").is_err());
        assert!(Role::from_flag("arn:aws:iam::210987654321:role/dr=12").is_err());
    }

    #[test]
    fn role_ids_are_stable_and_iam_shaped() {
        let a = stable_id("arn:aws:iam::210987654321:role/dr");
        assert_eq!(a, stable_id("arn:aws:iam::210987654321:role/dr"));
        assert_ne!(a, stable_id("arn:aws:iam::210987654321:role/other"));
        assert_eq!(a.len(), 17);
        assert!(a.bytes().all(|b| UPPER.contains(&b)));
    }
}
