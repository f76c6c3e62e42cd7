//! The stream worker Lambda: telemetry, config, clients, run.

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::{
    aws,
    config::StorageConfig,
    email::{EmailConfig, Mailer},
    realtime::{Realtime, RealtimeConfig},
    store::Table,
    telemetry,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let email = EmailConfig::from_env()?;
    let realtime_config = RealtimeConfig::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&sdk), storage.table_name);
    let state = stream::StreamState {
        realtime: Realtime::new(table.clone(), realtime_config.client(&sdk)),
        mailer: Mailer::new(aws_sdk_sesv2::Client::new(&sdk), email),
        table,
    };
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, lambda_runtime::Error>(Box::pin(stream::handle(state, event.payload)).await)
    }))
    .await
}
