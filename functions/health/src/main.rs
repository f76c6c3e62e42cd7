//! The health Lambda: telemetry, config, clients, run.

use shared::{
    aws,
    config::StorageConfig,
    http::{HttpOptions, http_service},
    telemetry,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let clients = aws::AwsClients::new(&aws::load_sdk_config().await, &storage);
    let options = HttpOptions::public_from_env()?;
    let state = health::HealthState::new(&clients, &storage);
    lambda_http::run(http_service(health::router(state), options)).await
}
