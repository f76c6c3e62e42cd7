//! The local stand-in for API Gateway's WebSocket API and its `@connections`
//! management API, which neither `sam local` nor cargo-lambda provide.
//!
//! - The handshake invokes `$connect` with the event API Gateway sends; a
//!   non-2xx answer refuses the upgrade with that status.
//! - Each text frame is routed on `$request.body.action` against the routes
//!   of template.yaml (else `$default`) and invokes the function.
//! - A clean close invokes `$disconnect`. An abrupt drop does not: API
//!   Gateway only promises `$disconnect` on a best-effort basis, and the
//!   worst case is what the functions must survive (the next push gets a
//!   410 and cleans up).
//! - `POST/GET/DELETE /{stage}/@connections/{id}` send, describe and close,
//!   answering 410 (GoneException) for an unknown or closed connection.
//!
//! The function runs in process: its event is built as JSON and
//! deserialised into `ApiGatewayWebsocketProxyRequest`, as the runtime does.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::{
    Router,
    body::Bytes,
    extract::{
        ConnectInfo, Path, RawQuery, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::functions::WebSocketService;

/// API Gateway's cap on one message through the management API.
const MAX_POST_BYTES: usize = 128 * 1024;
/// Frames a local client may send; API Gateway caps frames at 32 KiB and
/// messages at 128 KiB, the function enforces the contract's limit.
const MAX_INCOMING_BYTES: usize = 1024 * 1024;

enum Outgoing {
    Text(String),
    Close,
}

struct Connection {
    sender: mpsc::UnboundedSender<Outgoing>,
    connected_at_ms: i64,
    source_ip: String,
    user_agent: Option<String>,
    last_active_ms: i64,
}

/// The WebSocket side of the local gateway.
pub struct WsGateway {
    stage: String,
    routes: HashSet<String>,
    function: WebSocketService,
    connections: Mutex<HashMap<String, Connection>>,
}

impl WsGateway {
    pub fn new(
        stage: &str,
        routes: impl IntoIterator<Item = String>,
        function: WebSocketService,
    ) -> Arc<Self> {
        Arc::new(Self {
            stage: stage.to_owned(),
            routes: routes.into_iter().collect(),
            function,
            connections: Mutex::new(HashMap::new()),
        })
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(handshake))
            .route(
                "/{stage}/@connections/{id}",
                post(post_to_connection)
                    .get(get_connection)
                    .delete(delete_connection),
            )
            .with_state(self)
    }

    fn with_connections<T>(&self, f: impl FnOnce(&mut HashMap<String, Connection>) -> T) -> T {
        f(&mut crate::sync::lock(&self.connections))
    }

    /// The route key API Gateway would pick for a frame.
    fn route_key(&self, body: &str) -> String {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned))
            .filter(|action| self.routes.contains(action))
            .unwrap_or_else(|| "$default".to_owned())
    }

    async fn invoke(&self, event: Value) -> ApiGatewayProxyResponse {
        match serde_json::from_value::<ApiGatewayWebsocketProxyRequest>(event) {
            Ok(request) => match platform::lambda::invoke(&self.function, request).await {
                Ok(response) => response,
                Err(err) => {
                    tracing::error!(error = %err, "websocket function failed");
                    let mut response = ApiGatewayProxyResponse::default();
                    response.status_code = 500;
                    response
                }
            },
            Err(err) => {
                tracing::error!(error = %err, "websocket event rejected by its own type");
                let mut response = ApiGatewayProxyResponse::default();
                response.status_code = 500;
                response
            }
        }
    }

    fn send(&self, connection_id: &str, message: Outgoing) -> bool {
        self.with_connections(|connections| match connections.get_mut(connection_id) {
            Some(connection) => {
                connection.last_active_ms = Utc::now().timestamp_millis();
                connection.sender.send(message).is_ok()
            }
            None => false,
        })
    }
}

/// The `requestContext` of a WebSocket event, as API Gateway builds it.
pub fn request_context(
    stage: &str,
    connection_id: &str,
    route_key: &str,
    event_type: &str,
    connected_at_ms: i64,
    source_ip: &str,
    user_agent: Option<&str>,
) -> Value {
    let now = Utc::now();
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": uuid::Uuid::new_v4().to_string(),
        "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at_ms,
        "requestTimeEpoch": now.timestamp_millis(),
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "requestId": uuid::Uuid::new_v4().to_string(),
        "domainName": "127.0.0.1",
        "connectionId": connection_id,
        "apiId": "local",
    })
}

/// The `$connect` event of a handshake with `headers` and `query`.
pub fn connect_event(headers: &HeaderMap, query: Option<&str>, request_context: Value) -> Value {
    let (single_headers, multi_headers) = crate::event::headers(headers);
    let (single_query, multi_query) = crate::event::query(query);
    json!({
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "requestContext": request_context,
        "isBase64Encoded": false,
    })
}

/// API Gateway's connection ids: 10 random bytes, base64.
fn new_connection_id() -> String {
    STANDARD.encode(&uuid::Uuid::new_v4().as_bytes()[..10])
}

async fn handshake(
    State(gateway): State<Arc<WsGateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let connection_id = new_connection_id();
    let connected_at_ms = Utc::now().timestamp_millis();
    let source_ip = peer.ip().to_string();
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Registered before $connect runs: API Gateway accepts management calls
    // for a connection from its $connect on, and frames sent then are
    // delivered once the socket is up.
    let (sender, receiver) = mpsc::unbounded_channel();
    gateway.with_connections(|connections| {
        connections.insert(
            connection_id.clone(),
            Connection {
                sender,
                connected_at_ms,
                source_ip: source_ip.clone(),
                user_agent: user_agent.clone(),
                last_active_ms: connected_at_ms,
            },
        )
    });
    let context = request_context(
        &gateway.stage,
        &connection_id,
        "$connect",
        "CONNECT",
        connected_at_ms,
        &source_ip,
        user_agent.as_deref(),
    );
    let answer = gateway
        .invoke(connect_event(&headers, query.as_deref(), context))
        .await;
    if !(200..300).contains(&answer.status_code) {
        gateway.with_connections(|connections| connections.remove(&connection_id));
        let status = StatusCode::from_u16(answer.status_code as u16)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match answer.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => text,
            _ => String::new(),
        };
        return (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    upgrade
        .max_message_size(MAX_INCOMING_BYTES)
        .on_upgrade(move |socket| {
            session(
                gateway,
                socket,
                connection_id,
                connected_at_ms,
                source_ip,
                receiver,
            )
        })
}

async fn session(
    gateway: Arc<WsGateway>,
    socket: WebSocket,
    connection_id: String,
    connected_at_ms: i64,
    source_ip: String,
    mut receiver: mpsc::UnboundedReceiver<Outgoing>,
) {
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = receiver.recv().await {
            let result = match message {
                Outgoing::Text(text) => sink.send(Message::Text(text.into())).await,
                Outgoing::Close => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: 1000,
                            reason: "Goodbye".into(),
                        })))
                        .await;
                    break;
                }
            };
            if result.is_err() {
                break;
            }
        }
    });

    let clean_close = loop {
        let (body, is_base64) = match stream.next().await {
            Some(Ok(Message::Text(text))) => (text.to_string(), false),
            Some(Ok(Message::Binary(bytes))) => (STANDARD.encode(&bytes), true),
            Some(Ok(Message::Close(frame))) => {
                break Some(frame.map(|f| (f.code, f.reason.to_string())));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(_)) | None => break None,
        };
        let route_key = if is_base64 {
            "$default".to_owned()
        } else {
            gateway.route_key(&body)
        };
        let mut context = request_context(
            &gateway.stage,
            &connection_id,
            &route_key,
            "MESSAGE",
            connected_at_ms,
            &source_ip,
            None,
        );
        context["messageId"] = Value::String(uuid::Uuid::new_v4().to_string());
        gateway
            .invoke(json!({"requestContext": context, "body": body, "isBase64Encoded": is_base64}))
            .await;
    };

    gateway.with_connections(|connections| connections.remove(&connection_id));
    writer.abort();
    match clean_close {
        Some(close) => {
            let (code, reason) = close.unwrap_or((1005, String::new()));
            let mut context = request_context(
                &gateway.stage,
                &connection_id,
                "$disconnect",
                "DISCONNECT",
                connected_at_ms,
                &source_ip,
                None,
            );
            context["disconnectStatusCode"] = json!(code);
            context["disconnectReason"] = json!(reason);
            gateway
                .invoke(json!({"requestContext": context, "isBase64Encoded": false}))
                .await;
        }
        None => {
            tracing::info!(connectionId = %connection_id, "connection dropped without a close frame; no $disconnect")
        }
    }
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [
            ("x-amzn-ErrorType", "GoneException"),
            ("content-type", "application/json"),
        ],
        json!({"message": "Connection is gone"}).to_string(),
    )
        .into_response()
}

/// API Gateway answers 403 for a management call on another stage.
fn wrong_stage(gateway: &WsGateway, stage: &str) -> Option<Response> {
    if stage == gateway.stage {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            [
                ("x-amzn-ErrorType", "ForbiddenException"),
                ("content-type", "application/json"),
            ],
            json!({"message": "Forbidden"}).to_string(),
        )
            .into_response(),
    )
}

/// POST /{stage}/@connections/{id}
async fn post_to_connection(
    State(gateway): State<Arc<WsGateway>>,
    Path((stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(response) = wrong_stage(&gateway, &stage) {
        return response;
    }
    if body.len() > MAX_POST_BYTES {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [("x-amzn-ErrorType", "PayloadTooLargeException")],
            json!({"message": "Payload too large"}).to_string(),
        )
            .into_response();
    }
    if gateway.send(
        &id,
        Outgoing::Text(String::from_utf8_lossy(&body).into_owned()),
    ) {
        StatusCode::OK.into_response()
    } else {
        gone()
    }
}

/// GET /{stage}/@connections/{id}
async fn get_connection(
    State(gateway): State<Arc<WsGateway>>,
    Path((stage, id)): Path<(String, String)>,
) -> Response {
    if let Some(response) = wrong_stage(&gateway, &stage) {
        return response;
    }
    let described = gateway.with_connections(|connections| {
        connections.get(&id).map(|c| {
            json!({
                "ConnectedAt": c.connected_at_ms as f64 / 1000.0,
                "LastActiveAt": c.last_active_ms as f64 / 1000.0,
                "Identity": {"SourceIp": c.source_ip, "UserAgent": c.user_agent},
            })
        })
    });
    match described {
        Some(body) => ([("content-type", "application/json")], body.to_string()).into_response(),
        None => gone(),
    }
}

/// DELETE /{stage}/@connections/{id}
async fn delete_connection(
    State(gateway): State<Arc<WsGateway>>,
    Path((stage, id)): Path<(String, String)>,
) -> Response {
    if let Some(response) = wrong_stage(&gateway, &stage) {
        return response;
    }
    if gateway.send(&id, Outgoing::Close) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        gone()
    }
}

/// Serves the WebSocket gateway on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<WsGateway>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        gateway
            .router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
    }
}
