//! Building AWS SDK clients once, at cold start.
//!
//! `aws_config` already honours `AWS_ENDPOINT_URL`, region and credentials
//! from the environment, so the same code talks to moto, LocalStack or AWS.
//! What we add are timeouts short enough that an unreachable service becomes
//! a 503 well inside the function's own timeout, and path-style S3 addressing
//! when the emulator needs it. Loading the config does no network I/O.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};

use crate::config::StorageConfig;

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// The shared SDK configuration from the environment.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// SDK configuration for an explicit endpoint with fixed test credentials:
/// what the tests and the local tools use against the emulator, so that no
/// process environment needs to be changed.
pub async fn sdk_config_for_endpoint(endpoint_url: &str, region: &str) -> SdkConfig {
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "static");
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint_url)
        .credentials_provider(credentials)
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The clients every data-touching function needs.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    pub fn new(sdk: &SdkConfig, storage: &StorageConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(storage.s3_force_path_style)
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}
