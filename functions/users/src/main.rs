//! The users Lambda: telemetry, config, clients, run.

use shared::{
    aws,
    config::{JwtConfig, StorageConfig},
    http::{HttpOptions, http_service},
    store::Table,
    telemetry,
    uploads::Presigner,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let jwt = JwtConfig::from_env()?;
    let clients = aws::AwsClients::new(&aws::load_sdk_config().await, &storage);
    let table = Table::new(clients.dynamodb, storage.table_name);
    let presigner = Presigner::new(clients.s3, storage.bucket_name);
    let options = HttpOptions::api_from_env(table.clone(), &jwt)?;
    let state = users::UsersState::new(table, presigner, &jwt);
    lambda_http::run(http_service(users::router(state), options)).await
}
