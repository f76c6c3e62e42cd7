//! Which function serves which logical id of `template.yaml`: the one list
//! the local gateway and the tests build their functions from. A new route
//! group adds its line here and its resource in the template.

use std::collections::HashMap;

use aws_config::SdkConfig;
use shared::{
    aws::AwsClients,
    config::StorageConfig,
    http::{HttpService, http_service},
};

/// Everything the functions are configured with, as their Lambdas read it
/// from the environment.
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    pub storage: StorageConfig,
}

impl FunctionsConfig {
    pub fn from_env() -> Result<Self, shared::config::ConfigError> {
        Ok(Self {
            storage: StorageConfig::from_env()?,
        })
    }
}

/// Builds every function's service, keyed by its logical id.
pub fn build(sdk: &SdkConfig, config: &FunctionsConfig) -> HashMap<String, HttpService> {
    let clients = AwsClients::new(sdk, &config.storage);
    HashMap::from([(
        "HealthFunction".to_owned(),
        http_service(health::router(health::HealthState::new(
            &clients,
            &config.storage,
        ))),
    )])
}
