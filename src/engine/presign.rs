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

/// What the DocumentDB client's endpoint depends on, besides the region: read once from
/// the SDK configuration, the same way the SDK's DocumentDB client reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    /// The configured endpoint URL: DocumentDB's own (`AWS_ENDPOINT_URL_DOCDB`, or
    /// `endpoint_url` in the profile's `docdb` services section) or else the global one.
    pub url: Option<String>,
    pub use_fips: bool,
    pub use_dual_stack: bool,
}

impl EndpointSettings {
    pub fn from_sdk_config(config: &aws_types::SdkConfig) -> Self {
        // As `aws_sdk_docdb::config::Builder::from(&SdkConfig)` does: an endpoint URL set
        // in code wins, then the service's own setting, then the global one.
        let service = if config.get_origin("endpoint_url").is_client_config() {
            None
        } else {
            aws_types::service_config::ServiceConfigKey::builder()
                .service_id("DocDB")
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()
                .and_then(|key| config.service_config()?.load_config(key))
        };
        Self {
            url: service.or_else(|| config.endpoint_url().map(str::to_string)),
            use_fips: config.use_fips().unwrap_or(false),
            use_dual_stack: config.use_dual_stack().unwrap_or(false),
        }
    }
}

/// DocumentDB's endpoint in `region`, from the SDK's own endpoint rules: the partition's
/// DNS suffix (`amazonaws.com.cn` in China, `amazonaws.com` in GovCloud), FIPS and
/// dual-stack hosts, or the configured endpoint URL.
pub async fn endpoint(settings: &EndpointSettings, region: &str) -> Result<String, String> {
    use aws_sdk_docdb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let params = Params::builder()
        .region(region)
        .use_fips(settings.use_fips)
        .use_dual_stack(settings.use_dual_stack)
        .set_endpoint(settings.url.clone())
        .build()
        .map_err(|e| format!("DocumentDB endpoint parameters for {region}: {e}"))?;
    let resolved = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| format!("no DocumentDB endpoint for region {region}: {e}"))?;
    Ok(resolved.url().to_string())
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
                endpoint: "https://rds.us-east-1.amazonaws.com",
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

    fn resolve(settings: &EndpointSettings, region: &str) -> Result<String, String> {
        futures::executor::block_on(endpoint(settings, region))
    }

    #[test]
    fn endpoints_follow_the_partition_of_the_source_region() {
        let plain = EndpointSettings::default();
        for (region, url) in [
            ("us-east-1", "https://rds.us-east-1.amazonaws.com"),
            ("eu-west-1", "https://rds.eu-west-1.amazonaws.com"),
            // China: its own DNS suffix.
            ("cn-north-1", "https://rds.cn-north-1.amazonaws.com.cn"),
            (
                "cn-northwest-1",
                "https://rds.cn-northwest-1.amazonaws.com.cn",
            ),
            // GovCloud.
            ("us-gov-west-1", "https://rds.us-gov-west-1.amazonaws.com"),
        ] {
            assert_eq!(resolve(&plain, region).unwrap(), url, "{region}");
        }
    }

    #[test]
    fn fips_and_dual_stack_endpoints_come_from_the_sdk_rules() {
        let fips = EndpointSettings {
            use_fips: true,
            ..Default::default()
        };
        assert_eq!(
            resolve(&fips, "us-east-1").unwrap(),
            "https://rds-fips.us-east-1.amazonaws.com"
        );
        assert_eq!(
            resolve(&fips, "us-gov-west-1").unwrap(),
            "https://rds.us-gov-west-1.amazonaws.com"
        );
        let dual = EndpointSettings {
            use_dual_stack: true,
            ..Default::default()
        };
        assert_eq!(
            resolve(&dual, "us-east-1").unwrap(),
            "https://rds.us-east-1.api.aws"
        );
        assert_eq!(
            resolve(&dual, "cn-north-1").unwrap(),
            "https://rds.cn-north-1.api.amazonwebservices.com.cn"
        );
    }

    #[test]
    fn a_configured_endpoint_url_wins_and_its_service_setting_first() {
        let set = EndpointSettings {
            url: Some("http://127.0.0.1:4566".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&set, "cn-north-1").unwrap(),
            "http://127.0.0.1:4566"
        );

        // A DocumentDB-only endpoint (AWS_ENDPOINT_URL_DOCDB, or a profile's services
        // section) beats the global one; one set in code beats both.
        #[derive(Debug)]
        struct DocdbOnly;
        impl aws_types::service_config::LoadServiceConfig for DocdbOnly {
            fn load_config(
                &self,
                key: aws_types::service_config::ServiceConfigKey<'_>,
            ) -> Option<String> {
                (key.service_id() == "DocDB" && key.env() == "AWS_ENDPOINT_URL")
                    .then(|| "http://127.0.0.1:2222".to_string())
            }
        }
        let global = aws_types::SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:1111")
            .build();
        assert_eq!(
            EndpointSettings::from_sdk_config(&global).url.as_deref(),
            Some("http://127.0.0.1:1111")
        );
        let mut from_env = aws_types::SdkConfig::builder().service_config(DocdbOnly);
        from_env.insert_origin(
            "endpoint_url",
            aws_types::origin::Origin::shared_environment_variable(),
        );
        let from_env = from_env.endpoint_url("http://127.0.0.1:1111").build();
        let settings = EndpointSettings::from_sdk_config(&from_env);
        assert_eq!(settings.url.as_deref(), Some("http://127.0.0.1:2222"));
        assert_eq!(
            resolve(&settings, "eu-west-1").unwrap(),
            "http://127.0.0.1:2222"
        );
        let fips = aws_types::SdkConfig::builder().use_fips(true).build();
        assert!(EndpointSettings::from_sdk_config(&fips).use_fips);
    }
}
