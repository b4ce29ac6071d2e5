//! Checks the `PreSignedUrl` of a cross-region CopyDBClusterSnapshot: a SigV4
//! query-signed request for CopyDBClusterSnapshot in the source region, naming the
//! source snapshot ARN, unexpired, and (when the signing key is known) with a signature
//! that verifies. Also makes such URLs, for tests. No IO.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::query::{ApiError, ApiResult};

const AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

fn invalid(why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_value(format!("PreSignedUrl could not be authenticated: {why}"))
}

/// What the destination region expects of the URL.
pub struct Expect<'a> {
    pub source_region: &'a str,
    pub source_arn: &'a str,
    pub target_identifier: &'a str,
    pub destination_region: &'a str,
}

/// The access key and session token a presigned URL carries.
pub fn credentials_of(url: &str) -> Option<(String, Option<String>)> {
    let parsed = url::Url::parse(url).ok()?;
    let get = |k: &str| {
        parsed
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let key = get("X-Amz-Credential")?.split('/').next()?.to_string();
    Some((key, get("X-Amz-Security-Token")))
}

pub fn verify(
    url: &str,
    expect: &Expect<'_>,
    credentials: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let parsed = url::Url::parse(url).map_err(|e| invalid(format!("not a URL ({e})")))?;
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(invalid("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| invalid("X-Amz-Credential missing"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, _date, region, service, "aws4_request"] = scope[..] else {
        return Err(invalid(format!("malformed credential scope {credential}")));
    };
    if region != expect.source_region {
        return Err(invalid(format!(
            "signed for region {region}, but the source snapshot is in {}",
            expect.source_region
        )));
    }
    if service != "rds" {
        return Err(invalid(format!("signed for service {service}, not rds")));
    }
    let signed_at = get("X-Amz-Date")
        .and_then(|d| NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
        .map(|d| d.and_utc())
        .ok_or_else(|| invalid("X-Amz-Date missing or malformed"))?;
    let expires: u64 = get("X-Amz-Expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| invalid("X-Amz-Expires missing or malformed"))?;
    if now > signed_at + chrono::Duration::seconds(expires as i64) {
        return Err(invalid("the presigned URL has expired"));
    }
    if signed_at > now + chrono::Duration::minutes(5) {
        return Err(invalid("X-Amz-Date is in the future"));
    }
    if get("X-Amz-SignedHeaders") != Some("host") {
        return Err(invalid("X-Amz-SignedHeaders must be host"));
    }
    let signature = get("X-Amz-Signature").ok_or_else(|| invalid("X-Amz-Signature missing"))?;
    if get("Action") != Some("CopyDBClusterSnapshot") {
        return Err(invalid("it is not a CopyDBClusterSnapshot request"));
    }
    if get("SourceDBClusterSnapshotIdentifier") != Some(expect.source_arn) {
        return Err(invalid(format!(
            "SourceDBClusterSnapshotIdentifier in the URL must be the source ARN {}",
            expect.source_arn
        )));
    }
    if let Some(t) = get("TargetDBClusterSnapshotIdentifier")
        && t != expect.target_identifier
    {
        return Err(invalid(format!(
            "TargetDBClusterSnapshotIdentifier {t} in the URL differs from the request's"
        )));
    }
    if let Some(d) = get("DestinationRegion")
        && d != expect.destination_region
    {
        return Err(invalid(format!(
            "DestinationRegion {d} in the URL is not {}",
            expect.destination_region
        )));
    }
    let secret = credentials
        .get(access_key)
        .ok_or_else(|| invalid(format!("the access key {access_key} is not known")))?;
    let mut unsigned = parsed.clone();
    unsigned.query_pairs_mut().clear().extend_pairs(
        pairs
            .iter()
            .filter(|(k, _)| !AUTH_PARAMS.contains(&k.as_str())),
    );
    let expected = signature_of(
        unsigned.as_str(),
        access_key,
        secret,
        get("X-Amz-Security-Token"),
        region,
        signed_at.into(),
        expires,
    )?;
    if expected != signature {
        return Err(invalid("the signature does not match"));
    }
    Ok(())
}

fn sign_url(
    url: &str,
    access_key: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    time: SystemTime,
    expires: u64,
) -> ApiResult<(String, String)> {
    let identity = Credentials::new(
        access_key,
        secret,
        session_token.map(str::to_string),
        None,
        "presign",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(expires));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds")
        .time(time)
        .settings(settings)
        .build()
        .map_err(invalid)?
        .into();
    let request = SignableRequest::new(
        "GET",
        url,
        std::iter::empty(),
        // Non-S3 presigned requests sign the hash of the (empty) body.
        SignableBody::Bytes(&[]),
    )
    .map_err(invalid)?;
    let (instructions, signature) = sign(request, &params).map_err(invalid)?.into_parts();
    let mut signed = url::Url::parse(url).map_err(invalid)?;
    {
        let mut q = signed.query_pairs_mut();
        for (k, v) in instructions.params() {
            q.append_pair(k, v);
        }
    }
    Ok((signed.to_string(), signature))
}

fn signature_of(
    url: &str,
    access_key: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    time: SystemTime,
    expires: u64,
) -> ApiResult<String> {
    sign_url(
        url,
        access_key,
        secret,
        session_token,
        region,
        time,
        expires,
    )
    .map(|(_, s)| s)
}

/// A cross-region CopyDBClusterSnapshot to presign.
pub struct CopyRequest<'a> {
    /// The endpoint the URL addresses (the source region's DocumentDB endpoint).
    pub endpoint: &'a str,
    pub source_arn: &'a str,
    pub target_identifier: &'a str,
    pub source_region: &'a str,
    pub destination_region: &'a str,
}

/// Makes a presigned CopyDBClusterSnapshot URL, as AWS SDKs do behind `SourceRegion`.
pub fn presign_copy(
    req: &CopyRequest<'_>,
    access_key: &str,
    secret: &str,
    time: SystemTime,
) -> Result<String, ApiError> {
    let mut url = url::Url::parse(req.endpoint).map_err(invalid)?;
    url.query_pairs_mut()
        .append_pair("Action", "CopyDBClusterSnapshot")
        .append_pair("Version", "2014-10-31")
        .append_pair("SourceDBClusterSnapshotIdentifier", req.source_arn)
        .append_pair("TargetDBClusterSnapshotIdentifier", req.target_identifier)
        .append_pair("DestinationRegion", req.destination_region);
    sign_url(
        url.as_str(),
        access_key,
        secret,
        None,
        req.source_region,
        time,
        3600,
    )
    .map(|(u, _)| u)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:src";

    fn creds() -> HashMap<String, String> {
        HashMap::from([("AKIATEST123456789012".to_string(), "s3cret".to_string())])
    }

    fn expect() -> Expect<'static> {
        Expect {
            source_region: "us-west-2",
            source_arn: ARN,
            target_identifier: "dst",
            destination_region: "us-east-1",
        }
    }

    fn url(region: &str, secret: &str) -> String {
        presign_copy(
            &CopyRequest {
                endpoint: "http://127.0.0.1:1/",
                source_arn: ARN,
                target_identifier: "dst",
                source_region: region,
                destination_region: "us-east-1",
            },
            "AKIATEST123456789012",
            secret,
            SystemTime::now(),
        )
        .unwrap()
    }

    #[test]
    fn a_correct_url_verifies() {
        verify(&url("us-west-2", "s3cret"), &expect(), &creds(), Utc::now()).unwrap();
    }

    #[test]
    fn wrong_key_region_arn_or_age_is_rejected() {
        let now = Utc::now();
        let bad_sig = verify(&url("us-west-2", "other"), &expect(), &creds(), now).unwrap_err();
        assert!(bad_sig.message.contains("signature"), "{bad_sig:?}");
        let bad_region = verify(&url("eu-west-1", "s3cret"), &expect(), &creds(), now).unwrap_err();
        assert!(bad_region.message.contains("region"), "{bad_region:?}");
        let tampered = url("us-west-2", "s3cret").replace("dst", "other");
        assert!(verify(&tampered, &expect(), &creds(), now).is_err());
        let late = now + chrono::Duration::hours(2);
        let expired = verify(&url("us-west-2", "s3cret"), &expect(), &creds(), late).unwrap_err();
        assert!(expired.message.contains("expired"));
        assert!(verify("not a url", &expect(), &creds(), now).is_err());
    }
}
