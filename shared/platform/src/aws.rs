//! Building AWS SDK clients once, at cold start.
//!
//! `aws_config` already honours `AWS_ENDPOINT_URL`, region and credentials
//! from the environment, so the same code talks to moto, LocalStack or AWS.
//! What we add are timeouts short enough that an unreachable service becomes
//! a 503 well inside the function's own timeout, and path-style S3 addressing
//! when the emulator needs it. Loading the config does no network I/O.
//!
//! Every SDK client gets the same HTTPS client: rustls on ring (aws-lc, the
//! SDK's default, is a large C library for crypto we use in one TLS suite).
//! Inside Lambda, talking to AWS itself, it trusts only the roots AWS's
//! endpoints chain to, compiled in: the default client reads the system's
//! roots once per process and parses all of them again for each SDK client
//! it builds, which was most of a function's cold start in `make bench`
//! (docs/PERFORMANCE.md). Everywhere else (tools on a laptop, behind a
//! TLS-inspecting proxy, or with an endpoint override) the system's roots
//! are used, as such an endpoint's certificate may come from anywhere.

use std::time::Duration;

use aws_config::{
    BehaviorVersion, ConfigLoader, SdkConfig, environment::EnvironmentVariableCredentialsProvider,
    retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::StorageConfig;

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// Amazon Trust Services' roots, and the Starfield root that cross-signs
/// them: every AWS service endpoint's certificate chains to one of these.
const AWS_ROOTS: [&str; 5] = [
    include_str!("../certs/Amazon_Root_CA_1.pem"),
    include_str!("../certs/Amazon_Root_CA_2.pem"),
    include_str!("../certs/Amazon_Root_CA_3.pem"),
    include_str!("../certs/Amazon_Root_CA_4.pem"),
    include_str!("../certs/Starfield_Services_Root_Certificate_Authority_-_G2.pem"),
];

/// An HTTPS client (rustls on ring) that trusts `trust`.
fn https_client(trust: TrustStore) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store of PEM certificates");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// The client for AWS itself: [`AWS_ROOTS`] alone.
fn aws_https_client() -> SharedHttpClient {
    https_client(AWS_ROOTS.iter().fold(TrustStore::empty(), |store, pem| {
        store.with_pem_certificate(*pem)
    }))
}

/// The client with the system's roots: for an endpoint override (an
/// emulator, LocalStack, a proxy) or anything outside Lambda.
fn endpoint_https_client() -> SharedHttpClient {
    https_client(TrustStore::default())
}

/// Whether this process is a Lambda function talking to AWS's own endpoints:
/// Lambda sets `AWS_LAMBDA_FUNCTION_NAME`; `AWS_ENDPOINT_URL` points it
/// elsewhere. (A per-service `AWS_ENDPOINT_URL_<SERVICE>` over HTTPS to a
/// non-AWS host inside Lambda would need the system's roots too; the
/// benchmark uses those variables over plain HTTP, where roots play no part.)
fn trusts_only_aws(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    lookup("AWS_LAMBDA_FUNCTION_NAME").is_some() && lookup("AWS_ENDPOINT_URL").is_none()
}

/// The region and static credentials the environment sets, when it sets all
/// of them, as Lambda does. The default chains would find the same ones
/// first, but building them costs a cold start about 0.4 ms (an STS client
/// for web identity, with its endpoint rules, and the IMDS and container
/// providers; docs/PERFORMANCE.md has the measurement); with anything
/// missing, they are left to find what they can.
fn region_and_credentials_from_env(
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<String> {
    // Blank counts as unset, as the SDK's own environment provider has it.
    let set = |name: &str| lookup(name).filter(|value| !value.to_string_lossy().trim().is_empty());
    set("AWS_ACCESS_KEY_ID")?;
    set("AWS_SECRET_ACCESS_KEY")?;
    set("AWS_REGION")?.into_string().ok()
}

/// What every SDK configuration here starts from: the HTTPS client, and the
/// timeouts and retries the functions and the tests share.
fn loader(http_client: SharedHttpClient) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
}

/// The shared SDK configuration from the environment.
pub async fn load_sdk_config() -> SdkConfig {
    let lookup = |name: &str| std::env::var_os(name);
    let http_client = if trusts_only_aws(lookup) {
        aws_https_client()
    } else {
        endpoint_https_client()
    };
    let mut config = loader(http_client);
    if let Some(region) = region_and_credentials_from_env(lookup) {
        config = config
            .region(aws_config::Region::new(region))
            .credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    config.load().await
}

/// SDK configuration for an explicit endpoint with fixed test credentials:
/// what the tests and the local tools use against the emulator, so that no
/// process environment needs to be changed.
pub async fn sdk_config_for_endpoint(endpoint_url: &str, region: &str) -> SdkConfig {
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "static");
    loader(endpoint_https_client())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint_url)
        .credentials_provider(credentials)
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
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            s3: s3_client(sdk, storage),
        }
    }
}

/// The S3 client of the uploads bucket: path-style addressing where the
/// endpoint needs it (`S3_FORCE_PATH_STYLE`, for emulators).
pub fn s3_client(sdk: &SdkConfig, storage: &StorageConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(storage.s3_force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_root_is_a_certificate_the_tls_stack_accepts() {
        for pem in AWS_ROOTS {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        }
        // Building a client builds its connector, which parses each root and
        // panics on one it cannot use.
        let sdk = SdkConfig::builder()
            .http_client(aws_https_client())
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let _client = aws_sdk_dynamodb::Client::new(&sdk);
    }

    #[test]
    fn the_default_chains_are_skipped_only_when_the_environment_sets_everything() {
        let env = |vars: &[(&'static str, &'static str)]| {
            let vars = vars.to_vec();
            move |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| std::ffi::OsString::from(value))
            }
        };
        let lambda = [
            ("AWS_ACCESS_KEY_ID", "ASIA"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_REGION", "eu-west-1"),
        ];
        assert_eq!(
            region_and_credentials_from_env(env(&lambda)).as_deref(),
            Some("eu-west-1")
        );
        for missing in 0..2 {
            let mut partial = lambda.to_vec();
            partial.remove(missing);
            assert_eq!(region_and_credentials_from_env(env(&partial)), None);
        }
        assert_eq!(
            region_and_credentials_from_env(env(&[
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ])),
            None,
            "no region: the chain looks in the profile"
        );
        assert_eq!(
            region_and_credentials_from_env(env(&[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "eu-west-1"),
            ])),
            None,
            "an empty key is not a credential"
        );
        assert_eq!(
            region_and_credentials_from_env(env(&[
                ("AWS_ACCESS_KEY_ID", " "),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "eu-west-1"),
            ])),
            None,
            "nor is a blank one"
        );
    }

    #[test]
    fn only_a_lambda_function_without_an_endpoint_override_pins_the_aws_roots() {
        let env = |vars: &'static [&'static str]| {
            move |name: &str| vars.contains(&name).then(|| std::ffi::OsString::from("x"))
        };
        assert!(trusts_only_aws(env(&["AWS_LAMBDA_FUNCTION_NAME"])));
        assert!(!trusts_only_aws(env(&[])), "a laptop or CI");
        assert!(!trusts_only_aws(env(&[
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_ENDPOINT_URL"
        ])));
    }
}
