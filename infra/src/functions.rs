//! Which function serves which logical id of `template.yaml`: the one list
//! the local gateway and the tests build their functions from. A new route
//! group adds its line here and its resource in the template.

use std::collections::HashMap;

use aws_config::SdkConfig;
use shared::{
    aws::AwsClients,
    config::{ConfigError, ProcessEnv, Source, StorageConfig},
    http::{HttpService, http_service},
    store::Table,
    uploads::Presigner,
};

/// Everything the functions are configured with, as their Lambdas read it
/// from the environment.
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    pub storage: StorageConfig,
    pub auth: auth::AuthConfig,
    pub uploads: uploads::UploadsConfig,
}

impl FunctionsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            storage: StorageConfig::from_source(source)?,
            auth: auth::AuthConfig::from_source(source)?,
            uploads: uploads::UploadsConfig::from_source(source)?,
        })
    }
}

/// Builds every function's service, keyed by its logical id.
pub fn build(sdk: &SdkConfig, config: &FunctionsConfig) -> HashMap<String, HttpService> {
    let clients = AwsClients::new(sdk, &config.storage);
    let table = Table::new(clients.dynamodb.clone(), config.storage.table_name.clone());
    let ses = aws_sdk_sesv2::Client::new(sdk);
    let presigner = Presigner::new(clients.s3.clone(), config.storage.bucket_name.clone());
    HashMap::from([
        (
            "UsersFunction".to_owned(),
            http_service(users::router(users::UsersState::new(
                table.clone(),
                presigner.clone(),
                &config.auth.jwt,
            ))),
        ),
        (
            "PostsFunction".to_owned(),
            http_service(posts::router(posts::PostsState::new(
                table.clone(),
                presigner,
                &config.auth.jwt,
            ))),
        ),
        (
            "HealthFunction".to_owned(),
            http_service(health::router(health::HealthState::new(
                &clients,
                &config.storage,
            ))),
        ),
        (
            "UploadsFunction".to_owned(),
            http_service(uploads::router(uploads::UploadsState::new(
                table.clone(),
                clients.s3.clone(),
                config.storage.bucket_name.clone(),
                &config.auth.jwt,
                &config.uploads,
            ))),
        ),
        (
            "AuthFunction".to_owned(),
            http_service(auth::router(auth::AuthState::new(table, ses, &config.auth))),
        ),
    ])
}
