//! Which function serves which logical id of `template.yaml`: the one list
//! the local gateway and the tests build their functions from. A new route
//! group adds its line here and its resource in the template.

use std::collections::HashMap;

use aws_config::SdkConfig;
use shared::{
    auth::Authenticator,
    aws::AwsClients,
    config::{ConfigError, ProcessEnv, Source, StorageConfig},
    cors::CorsConfig,
    email::Mailer,
    http::{HttpOptions, HttpService, http_service},
    jwt::JwtKeys,
    ratelimit::{Limit, RateLimiter},
    realtime::{Realtime, RealtimeConfig},
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
    pub realtime: RealtimeConfig,
    pub frame_limit: Limit,
    pub cors: CorsConfig,
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
            realtime: RealtimeConfig::from_source(source)?,
            frame_limit: websocket::frame_limit_from(source)?,
            cors: CorsConfig::from_source(source)?,
        })
    }
}

/// Builds every function's service, keyed by its logical id.
pub fn build(sdk: &SdkConfig, config: &FunctionsConfig) -> HashMap<String, HttpService> {
    let clients = AwsClients::new(sdk, &config.storage);
    let table = Table::new(clients.dynamodb.clone(), config.storage.table_name.clone());
    let ses = aws_sdk_sesv2::Client::new(sdk);
    let presigner = Presigner::new(clients.s3.clone(), config.storage.bucket_name.clone());
    let jwt = &config.auth.jwt;
    let api = || {
        HttpOptions::limited(
            config.cors.clone(),
            table.clone(),
            jwt,
            config.auth.limits.default,
        )
    };
    let public = HttpOptions {
        cors: config.cors.clone(),
        rate_guard: None,
    };
    HashMap::from([
        (
            "UsersFunction".to_owned(),
            http_service(
                users::router(users::UsersState::new(
                    table.clone(),
                    presigner.clone(),
                    jwt,
                )),
                api(),
            ),
        ),
        (
            "PostsFunction".to_owned(),
            http_service(
                posts::router(posts::PostsState::new(table.clone(), presigner, jwt)),
                api(),
            ),
        ),
        (
            "HealthFunction".to_owned(),
            http_service(
                health::router(health::HealthState::new(&clients, &config.storage)),
                public,
            ),
        ),
        (
            "UploadsFunction".to_owned(),
            http_service(
                uploads::router(uploads::UploadsState::new(
                    table.clone(),
                    clients.s3.clone(),
                    config.storage.bucket_name.clone(),
                    jwt,
                    &config.uploads,
                )),
                api(),
            ),
        ),
        (
            "NotificationsFunction".to_owned(),
            http_service(
                notifications::router(notifications::NotificationsState::new(table.clone(), jwt)),
                api(),
            ),
        ),
        (
            "AuthFunction".to_owned(),
            http_service(
                auth::router(auth::AuthState::new(table.clone(), ses, &config.auth)),
                api(),
            ),
        ),
    ])
}

fn realtime(sdk: &SdkConfig, config: &FunctionsConfig) -> Realtime {
    let table = Table::new(
        aws_sdk_dynamodb::Client::new(sdk),
        config.storage.table_name.clone(),
    );
    Realtime::new(table, config.realtime.client(sdk))
}

/// The `WebSocketFunction` of the template.
pub fn build_websocket(sdk: &SdkConfig, config: &FunctionsConfig) -> websocket::WsState {
    let realtime = realtime(sdk, config);
    websocket::WsState {
        authenticator: Authenticator::new(JwtKeys::new(&config.auth.jwt), realtime.table.clone()),
        limiter: RateLimiter::new(realtime.table.clone()),
        frame_limit: config.frame_limit,
        realtime,
    }
}

/// The `StreamFunction` of the template.
pub fn build_stream(sdk: &SdkConfig, config: &FunctionsConfig) -> stream::StreamState {
    let realtime = realtime(sdk, config);
    stream::StreamState {
        table: realtime.table.clone(),
        mailer: Mailer::new(aws_sdk_sesv2::Client::new(sdk), config.auth.email.clone()),
        realtime,
    }
}
