//! The auth Lambda: telemetry, config, clients, run.

use shared::{
    aws,
    config::StorageConfig,
    http::{HttpOptions, http_service},
    store::Table,
    telemetry,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let config = auth::AuthConfig::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&sdk), storage.table_name);
    let options = HttpOptions::api_from_env(table.clone(), &config.jwt)?;
    let state = auth::AuthState::new(table, aws_sdk_sesv2::Client::new(&sdk), &config);
    lambda_http::run(http_service(auth::router(state), options)).await
}
