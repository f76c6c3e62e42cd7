//! The local API Gateway: REST on API_PORT (3000) and WebSocket on WS_PORT
//! (3001) in front of every function of template.yaml, invoked in process,
//! plus the DynamoDB Streams poller that feeds the stream worker and the
//! scheduler that runs its outbox sweep at template.yaml's rate.
//!
//! SIGINT or SIGTERM stops it gracefully, within [`STOP_LIMIT`] plus
//! [`STREAM_DRAIN`]: that is how `make dev`'s hot reload
//! (infra/python/dev_reload.py) replaces it, and how Ctrl-C ends it. REST
//! stops accepting and finishes the requests under way; every WebSocket is
//! closed with 1001 and gets its `$disconnect`, as API Gateway does when a
//! connection ends, so no connection, room or presence item outlives its
//! socket; then the stream poller runs on for [`STREAM_DRAIN`], so the
//! records of those last writes reach the worker before the next gateway's
//! poller starts at LATEST. Signals after the first are ignored: a Ctrl-C
//! reaches both this process and the reloader, which forwards it.

use std::time::Duration;

use infra::{functions, rest, schedule, streams, template::Template, ws};
use platform::{
    aws,
    config::{ProcessEnv, StorageConfig},
    cors::CorsConfig,
    telemetry,
};
use tokio::{sync::watch, time::Instant};

/// How long the requests under way and the `$disconnect`s of the open
/// sockets may take before the gateway stops regardless. A client that
/// never answers its close frame costs `ws`'s one-second close grace.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// How long the stream poller runs on after the last `$disconnect`: it
/// polls every 100 ms, so this covers a read and the worker's batch
/// (presence removals: a `dashboard.stats` push, which finds every socket
/// gone by then) with room to spare.
const STREAM_DRAIN: Duration = Duration::from_secs(1);

fn port(name: &str, default: u16) -> Result<u16, String> {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .map_err(|_| format!("environment variable {name} is invalid: {raw:?}")),
        Err(_) => Ok(default),
    }
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed when
/// this is called, not when it is first polled, so a signal during start-up
/// is not lost either (nor does it kill the process halfway).
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}

/// Completes once `stop` is set: what each server's graceful shutdown waits on.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let signal = stop_signal()?;
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
    let mut poller =
        streams::start(&sdk, &sdk, &storage.table_name, &template, built.stream).await?;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let mut scheduler = schedule::start(&template, &region, built.sweep)?;

    let rest_listener = tokio::net::TcpListener::bind(("127.0.0.1", api_port)).await?;
    let ws_listener = tokio::net::TcpListener::bind(("127.0.0.1", ws_port)).await?;
    let (stop_rest, rest_stopped) = watch::channel(false);
    let (stop_ws, ws_stopped) = watch::channel(false);
    let mut rest_server = tokio::spawn(rest::serve_until(
        rest_listener,
        rest_gateway,
        stopped(rest_stopped),
    ));
    let mut ws_server = tokio::spawn(ws::serve_until(
        ws_listener,
        std::sync::Arc::clone(&ws_gateway),
        stopped(ws_stopped),
    ));
    tracing::info!(rest = %format!("http://127.0.0.1:{api_port}"), websocket = %format!("ws://127.0.0.1:{ws_port}"), "local gateway listening");
    tokio::select! {
        served = &mut rest_server => return Err(format!("the REST server stopped: {served:?}").into()),
        served = &mut ws_server => return Err(format!("the WebSocket server stopped: {served:?}").into()),
        _ = &mut poller => return Err("the stream poller stopped".into()),
        _ = &mut scheduler => return Err("the scheduler stopped".into()),
        signal = signal => tracing::info!(signal, "stopping"),
    }

    let started = Instant::now();
    let deadline = started + STOP_LIMIT;
    // The WebSocket server stays up for now: the `@connections` calls of the
    // functions still running must get their 410s, not a refused connection.
    let _ = stop_rest.send(true);
    let disconnected = ws_gateway.shut_down(STOP_LIMIT).await;
    if tokio::time::timeout_at(deadline, &mut rest_server)
        .await
        .is_err()
    {
        tracing::warn!("stopping with REST requests still under way");
    }
    tokio::time::sleep(STREAM_DRAIN).await;
    let _ = stop_ws.send(true);
    if tokio::time::timeout(Duration::from_secs(1), &mut ws_server)
        .await
        .is_err()
    {
        tracing::warn!("stopping with management API calls still under way");
    }
    poller.abort();
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        every_disconnect = disconnected,
        "stopped"
    );
    Ok(())
}
