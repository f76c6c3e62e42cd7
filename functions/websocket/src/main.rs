//! The websocket Lambda: telemetry, config, clients, run.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::{
    auth::Authenticator,
    aws,
    config::{JwtConfig, ProcessEnv, StorageConfig},
    jwt::JwtKeys,
    ratelimit::RateLimiter,
    realtime::{Realtime, RealtimeConfig},
    store::Table,
    telemetry,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let jwt = JwtConfig::from_env()?;
    let realtime_config = RealtimeConfig::from_env()?;
    let frame_limit = websocket::frame_limit_from(&ProcessEnv)?;
    let sdk = aws::load_sdk_config().await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&sdk), storage.table_name);
    let state = websocket::WsState {
        authenticator: Authenticator::new(JwtKeys::new(&jwt), table.clone()),
        realtime: Realtime::new(table.clone(), realtime_config.client(&sdk)),
        limiter: RateLimiter::new(table),
        frame_limit,
    };
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            // Boxed: the handler's future is deep enough to hit the compiler's
            // type-layout recursion limit when nested inside the runtime's.
            Ok::<_, lambda_runtime::Error>(Box::pin(websocket::handle(state, event.payload)).await)
        },
    ))
    .await
}
