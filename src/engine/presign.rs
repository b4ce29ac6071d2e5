//! SigV4 query-signed (presigned) URLs for cross-region DocumentDB copies: the Rust SDK
//! has no `SourceRegion`, so the operator signs the source-region request itself, as
//! the other SDKs do. No IO.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

/// A cross-region CopyDBClusterSnapshot to presign.
pub struct CopyPresign<'a> {
    /// The source region's DocumentDB (RDS) endpoint.
    pub endpoint: &'a str,
    pub source_arn: &'a str,
    pub target_identifier: &'a str,
    pub kms_key_id: Option<&'a str>,
    pub source_region: &'a str,
    pub destination_region: &'a str,
}

/// The endpoint of DocumentDB in `region`, or the configured override.
pub fn endpoint(override_url: Option<&str>, region: &str) -> String {
    match override_url {
        Some(url) => url.to_string(),
        None => format!("https://rds.{region}.amazonaws.com/"),
    }
}

/// The presigned URL: a GET of CopyDBClusterSnapshot, signed for the source region and
/// the `rds` service, valid for an hour.
pub fn presign_copy(
    req: &CopyPresign<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<String, String> {
    let mut url =
        url::Url::parse(req.endpoint).map_err(|e| format!("endpoint {}: {e}", req.endpoint))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("Action", "CopyDBClusterSnapshot")
            .append_pair("Version", "2014-10-31")
            .append_pair("SourceDBClusterSnapshotIdentifier", req.source_arn)
            .append_pair("TargetDBClusterSnapshotIdentifier", req.target_identifier);
        if let Some(k) = req.kms_key_id {
            q.append_pair("KmsKeyId", k);
        }
        q.append_pair("DestinationRegion", req.destination_region);
    }
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(3600));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(req.source_region)
        .name("rds")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        // Non-S3 presigned requests sign the hash of the (empty) body.
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in instructions.params() {
            q.append_pair(k, v);
        }
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_call_and_is_signed_for_the_source_region() {
        let creds = Credentials::new("AKIATEST123456789012", "secret", None, None, "test");
        let url = presign_copy(
            &CopyPresign {
                endpoint: &endpoint(None, "us-east-1"),
                source_arn: "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:src",
                target_identifier: "dst",
                kms_key_id: Some("alias/k"),
                source_region: "us-east-1",
                destination_region: "eu-west-1",
            },
            &creds,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.host_str(), Some("rds.us-east-1.amazonaws.com"));
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "CopyDBClusterSnapshot");
        assert_eq!(
            q["SourceDBClusterSnapshotIdentifier"],
            "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:src"
        );
        assert_eq!(q["DestinationRegion"], "eu-west-1");
        assert_eq!(q["KmsKeyId"], "alias/k");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert!(q["X-Amz-Credential"].ends_with("/us-east-1/rds/aws4_request"));
        assert_eq!(q["X-Amz-Expires"], "3600");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
    }
}
