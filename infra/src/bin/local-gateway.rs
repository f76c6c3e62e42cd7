//! The local API Gateway: REST on API_PORT (3000) and WebSocket on WS_PORT
//! (3001) in front of every function of template.yaml, invoked in process,
//! plus the DynamoDB Streams poller that feeds the stream worker.

use infra::{functions, rest, streams, template::Template, ws};
use platform::{
    aws,
    config::{ProcessEnv, StorageConfig},
    cors::CorsConfig,
    telemetry,
};

fn port(name: &str, default: u16) -> Result<u16, String> {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .map_err(|_| format!("environment variable {name} is invalid: {raw:?}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let storage = StorageConfig::from_source(&ProcessEnv)?;
    let cors = CorsConfig::from_source(&ProcessEnv)?;
    let template =
        Template::load(std::env::var("TEMPLATE_PATH").unwrap_or_else(|_| "template.yaml".into()))?;
    let (api_port, ws_port) = (port("API_PORT", 3000)?, port("WS_PORT", 3001)?);
    let sdk = aws::load_sdk_config().await;
    // Each function gets the process environment as far as the template
    // gives it that variable.
    let built = functions::build(&template, &ProcessEnv, &sdk)?;

    let rest_gateway = rest::RestGateway::new(&template, built.rest, rest::LOCAL_STAGE, cors)?;
    let ws_gateway = ws::WsGateway::new(
        rest::LOCAL_STAGE,
        template.ws_routes.clone(),
        built.websocket,
    );
    let poller = streams::start(&sdk, &sdk, &storage.table_name, &template, built.stream).await?;

    let rest_listener = tokio::net::TcpListener::bind(("127.0.0.1", api_port)).await?;
    let ws_listener = tokio::net::TcpListener::bind(("127.0.0.1", ws_port)).await?;
    tracing::info!(rest = %format!("http://127.0.0.1:{api_port}"), websocket = %format!("ws://127.0.0.1:{ws_port}"), "local gateway listening");
    tokio::select! {
        served = rest::serve(rest_listener, rest_gateway) => served?,
        served = ws::serve(ws_listener, ws_gateway) => served?,
        _ = poller => tracing::error!("stream poller stopped"),
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
