//! Shared set-up for the emulator's SDK tests: an in-process emulator on a loopback
//! port and SDK clients pointed at it.
#![allow(dead_code)]

pub mod process;

use std::fmt::Debug;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use aws_credential_types::Credentials;
use aws_emulator::server::{Options, Shared};
use aws_sdk_redshift::error::ProvideErrorMetadata;

pub const KEY: &str = "AKIATEST123456789012";
pub const OTHER_KEY: &str = "AKIATEST210987654321";
pub const OTHER_ACCOUNT: &str = "210987654321";
pub const SECRET: &str = "testbed-secret-key";

pub struct Emu {
    pub url: String,
    pub state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Emu {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn emulator(snapshot_seconds: f64) -> Emu {
    let (addr, state, task) = aws_emulator::start(
        0,
        Options {
            snapshot_seconds,
            ..Options::default()
        },
    )
    .await
    .expect("emulator starts");
    Emu {
        url: format!("http://{addr}"),
        state,
        task,
    }
}

impl Emu {
    /// SDK configuration with retries off, so every fault is seen as AWS sent it.
    pub async fn config(&self, region: &str, key: &str) -> SdkConfig {
        config_for(&self.url, region, key, RetryConfig::disabled()).await
    }
    pub async fn redshift(&self) -> aws_sdk_redshift::Client {
        aws_sdk_redshift::Client::new(&self.config("us-east-1", KEY).await)
    }
    pub async fn docdb(&self, region: &str) -> aws_sdk_docdb::Client {
        aws_sdk_docdb::Client::new(&self.config(region, KEY).await)
    }
    pub async fn elasticache(&self) -> aws_sdk_elasticache::Client {
        aws_sdk_elasticache::Client::new(&self.config("us-east-1", KEY).await)
    }
    pub async fn admin_post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/_emulator/{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("admin call")
    }
    pub async fn admin_delete(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .delete(format!("{}/_emulator/{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("admin call")
    }
    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}/_emulator/{path}", self.url))
            .await
            .expect("admin call")
            .json()
            .await
            .expect("admin JSON")
    }
    pub async fn set_snapshot_seconds(&self, s: f64) {
        let r = self
            .admin_post("settings", serde_json::json!({ "snapshotSeconds": s }))
            .await;
        assert!(r.status().is_success());
    }
}

pub async fn config_for(url: &str, region: &str, key: &str, retry: RetryConfig) -> SdkConfig {
    config_with(
        url,
        region,
        Credentials::new(key, SECRET, None, None, "test"),
        retry,
    )
    .await
}

/// SDK configuration with given credentials (temporary ones from STS, for example).
pub async fn config_with(
    url: &str,
    region: &str,
    credentials: Credentials,
    retry: RetryConfig,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // The emulator speaks plain HTTP on loopback.
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(url)
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        .retry_config(retry)
        .load()
        .await
}

/// The AWS error code of a failed call.
pub fn code<T: Debug, E: ProvideErrorMetadata + Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => panic!("expected an AWS error, got {v:?}"),
        Err(e) => e.code().unwrap_or("<no code>").to_string(),
    }
}

/// The AWS error code and message of a failed call.
pub fn error<T: Debug, E: ProvideErrorMetadata + Debug>(r: Result<T, E>) -> (String, String) {
    match r {
        Ok(v) => panic!("expected an AWS error, got {v:?}"),
        Err(e) => (
            e.code().unwrap_or("<no code>").to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

pub async fn sleep_secs(s: f64) {
    tokio::time::sleep(Duration::from_secs_f64(s)).await;
}
