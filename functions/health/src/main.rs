//! The health Lambda: telemetry, config, clients, run.

use shared::{aws, config::StorageConfig, http::http_service, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let clients = aws::AwsClients::new(&aws::load_sdk_config().await, &storage);
    lambda_http::run(http_service(health::router(health::HealthState::new(
        &clients, &storage,
    ))))
    .await
}
