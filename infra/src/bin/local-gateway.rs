//! The local API Gateway: REST on API_PORT (3000) in front of every function
//! of template.yaml, invoked in process.

use infra::{functions, rest, template::Template};
use shared::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let config = functions::FunctionsConfig::from_env()?;
    let template =
        Template::load(std::env::var("TEMPLATE_PATH").unwrap_or_else(|_| "template.yaml".into()))?;
    let port: u16 = match std::env::var("API_PORT") {
        Ok(raw) => raw
            .parse()
            .map_err(|_| format!("environment variable API_PORT is invalid: {raw:?}"))?,
        Err(_) => 3000,
    };
    let sdk = aws::load_sdk_config().await;
    let gateway = rest::RestGateway::new(
        &template,
        functions::build(&sdk, &config),
        rest::LOCAL_STAGE,
    )?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(url = %format!("http://127.0.0.1:{port}"), "REST API listening");
    tokio::select! {
        served = rest::serve(listener, gateway) => served?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
