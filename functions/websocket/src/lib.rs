//! The WebSocket API (API.md section 7): `$connect` authenticates the
//! `token` query parameter, `$disconnect` cleans up, and every other frame
//! is routed on its `action`.
//!
//! Replies go back through the management API (PostToConnection), the same
//! way pushes from the stream worker do, so there is one delivery path and
//! one place (`shared::realtime`) where a vanished peer is cleaned up.
//! A bad frame gets an error frame; the connection stays open.

use aws_lambda_events::{
    apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest},
    encodings::Body,
};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use shared::{
    AppError,
    auth::Authenticator,
    config::{ConfigError, Source},
    error::ErrorChain,
    ratelimit::{Limit, RateLimiter},
    realtime::{ConnectionItem, Realtime, error_frame, stats_frame},
};
use tracing::Instrument;

/// API Gateway's own frame limit.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Frames per connection per window; `RATE_LIMIT_WS_FRAMES`, 10 a second.
pub fn frame_limit_from(source: &dyn Source) -> Result<Limit, ConfigError> {
    Limit::from_source(source, "RATE_LIMIT_WS_FRAMES", Limit::per(10, 1))
}

/// What the function needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct WsState {
    pub authenticator: Authenticator,
    pub realtime: Realtime,
    pub limiter: RateLimiter,
    pub frame_limit: Limit,
}

fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = body.map(Body::Text);
    response
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Handles one event of the WebSocket API, whatever its route.
pub async fn handle(
    state: &WsState,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &request.request_context;
    let connection_id = context.connection_id.clone().unwrap_or_default();
    let route = context
        .route_key
        .clone()
        .unwrap_or_else(|| "$default".into());
    let span = tracing::info_span!(
        "ws",
        connectionId = %connection_id,
        routeKey = %route,
        requestId = %context.request_id.clone().unwrap_or_default(),
    );
    async {
        let started = std::time::Instant::now();
        let answer = match route.as_str() {
            "$connect" => connect(state, &connection_id, &request).await,
            "$disconnect" => disconnect(state, &connection_id).await,
            _ => {
                message(
                    state,
                    &connection_id,
                    request.body.as_deref(),
                    request.is_base64_encoded,
                )
                .await;
                response(200, None)
            }
        };
        tracing::info!(
            status = answer.status_code,
            durationMs = started.elapsed().as_secs_f64() * 1000.0,
            "ws event completed"
        );
        answer
    }
    .instrument(span)
    .await
}

/// `$connect`: a missing or bad token refuses the handshake with its status.
async fn connect(
    state: &WsState,
    connection_id: &str,
    request: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let token = request
        .query_string_parameters
        .first("token")
        .unwrap_or_default();
    let result = async {
        if token.is_empty() {
            return Err(AppError::Unauthorized(
                "Missing token query parameter".into(),
            ));
        }
        let user = state.authenticator.authenticate(token).await?;
        let public = user.user.to_public(None);
        state
            .realtime
            .connect(connection_id, &public, &now_rfc3339())
            .await
    }
    .await;
    match result {
        Ok(()) => response(200, None),
        Err(err) => {
            if err.status().is_server_error() {
                tracing::error!(error = %ErrorChain(&err), "connect failed");
            }
            // The contract refuses every handshake that fails authentication
            // with 401, a suspended account included; outages stay 5xx.
            let status = if err.status().is_server_error() {
                err.status().as_u16()
            } else {
                401
            };
            let body = json!({"success": false, "message": err.public_message(), "code": if status == 401 { "UNAUTHORIZED" } else { err.code().as_str() }});
            response(status as i64, Some(body.to_string()))
        }
    }
}

async fn disconnect(state: &WsState, connection_id: &str) -> ApiGatewayProxyResponse {
    match state.realtime.disconnect(connection_id).await {
        Ok(()) => response(200, None),
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "disconnect cleanup failed; TTL will remove the items");
            response(500, None)
        }
    }
}

async fn reply(state: &WsState, connection_id: &str, frame: Value) {
    if let Err(err) = state.realtime.push(connection_id, &frame).await {
        tracing::warn!(error = %ErrorChain(&err), "reply not delivered");
    }
}

/// A failed frame: why, as the contract's error frame.
struct FrameError {
    code: &'static str,
    message: String,
}

impl FrameError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<AppError> for FrameError {
    fn from(err: AppError) -> Self {
        if err.status().is_server_error() {
            tracing::error!(error = %ErrorChain(&err), "frame failed");
        }
        FrameError::new(err.code().as_str(), err.public_message())
    }
}

async fn message(state: &WsState, connection_id: &str, body: Option<&str>, is_base64: bool) {
    if let Err(err) = route_frame(state, connection_id, body, is_base64).await {
        reply(state, connection_id, error_frame(err.code, &err.message)).await;
    }
}

/// `room`: 1–64 characters of `[A-Za-z0-9_-]`.
fn parse_room(value: Option<&Value>) -> Result<String, FrameError> {
    let room = value.and_then(Value::as_str).ok_or_else(|| {
        FrameError::new("VALIDATION_ERROR", "room is required and must be a string")
    })?;
    let ok = (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(FrameError::new(
            "VALIDATION_ERROR",
            "room must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
        ));
    }
    Ok(room.to_owned())
}

fn parse_text(value: Option<&Value>) -> Result<String, FrameError> {
    let text = value.and_then(Value::as_str).ok_or_else(|| {
        FrameError::new("VALIDATION_ERROR", "text is required and must be a string")
    })?;
    let count = text.chars().count();
    if text.trim().is_empty() || count > MAX_TEXT_CHARS {
        return Err(FrameError::new(
            "VALIDATION_ERROR",
            format!("text must be 1-{MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

async fn route_frame(
    state: &WsState,
    connection_id: &str,
    body: Option<&str>,
    is_base64: bool,
) -> Result<(), FrameError> {
    let body = body.unwrap_or_default();
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::new(
            "PAYLOAD_TOO_LARGE",
            format!("Frames are limited to {} KiB", MAX_FRAME_BYTES / 1024),
        ));
    }
    // The frame is counted and its connection read at once: one round trip
    // before the action instead of two. The answer still puts the limit
    // first, then the frame's own errors, then the connection.
    let frame_key = format!("ws:{connection_id}");
    let (counted, connection) = tokio::join!(
        state.limiter.hit(&frame_key, state.frame_limit),
        state.realtime.connection(connection_id),
    );
    counted.map_err(|err| match err {
        AppError::RateLimited { .. } => {
            FrameError::new("RATE_LIMIT_EXCEEDED", "Too many frames; slow down")
        }
        other => other.into(),
    })?;
    if is_base64 {
        return Err(FrameError::new("BAD_REQUEST", "Frames must be JSON text"));
    }
    let frame: Value = serde_json::from_str(body)
        .map_err(|_| FrameError::new("BAD_REQUEST", "Frame is not valid JSON"))?;
    let Some(frame) = frame.as_object() else {
        return Err(FrameError::new(
            "BAD_REQUEST",
            "Frame must be a JSON object",
        ));
    };
    let connection = connection?.ok_or_else(|| {
        FrameError::new("UNAUTHORIZED", "Connection is not registered; reconnect")
    })?;
    match frame.get("action").and_then(Value::as_str) {
        Some("ping") => {
            reply(state, connection_id, json!({"type": "pong"})).await;
            Ok(())
        }
        Some("chat.join") => join(state, &connection, parse_room(frame.get("room"))?).await,
        Some("chat.leave") => {
            let room = parse_room(frame.get("room"))?;
            state.realtime.leave(connection_id, &room).await?;
            Ok(())
        }
        Some("chat.send") => {
            send(
                state,
                &connection,
                parse_room(frame.get("room"))?,
                parse_text(frame.get("text"))?,
            )
            .await
        }
        Some("dashboard.subscribe") => {
            state.realtime.subscribe_dashboard(&connection).await?;
            let stats = state.realtime.stats().await?;
            reply(state, connection_id, stats_frame(stats)).await;
            Ok(())
        }
        Some(other) => Err(FrameError::new(
            "UNKNOWN_ACTION",
            format!("Unknown action {:?}", truncate(other)),
        )),
        None => Err(FrameError::new("UNKNOWN_ACTION", "Frame has no action")),
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

async fn join(
    state: &WsState,
    connection: &ConnectionItem,
    room: String,
) -> Result<(), FrameError> {
    state.realtime.join(connection, &room).await?;
    let members = state.realtime.members(&room).await?;
    let frame = json!({"type": "chat.joined", "room": room, "user": connection.user()});
    state.realtime.fan_out(&members, &frame).await;
    Ok(())
}

async fn send(
    state: &WsState,
    connection: &ConnectionItem,
    room: String,
    text: String,
) -> Result<(), FrameError> {
    let members = state.realtime.members(&room).await?;
    if !members.contains(&connection.connection_id) {
        return Err(FrameError::new(
            "FORBIDDEN",
            format!("Join room {room} before sending to it"),
        ));
    }
    let frame = json!({
        "type": "chat.message",
        "room": room,
        "from": connection.user(),
        "text": text,
        "sentAt": now_rfc3339(),
        "id": ulid::Ulid::new().to_string(),
    });
    state.realtime.fan_out(&members, &frame).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_follow_the_rules() {
        assert_eq!(
            parse_room(Some(&json!("general_1-a"))).ok(),
            Some("general_1-a".to_owned())
        );
        for bad in [
            json!(""),
            json!("a b"),
            json!("x".repeat(65)),
            json!(5),
            json!("ü"),
        ] {
            assert!(parse_room(Some(&bad)).is_err(), "{bad}");
        }
        assert!(parse_room(None).is_err());
    }

    #[test]
    fn text_is_one_to_two_thousand_characters() {
        assert!(parse_text(Some(&json!("hi"))).is_ok());
        assert!(parse_text(Some(&json!("é".repeat(2000)))).is_ok());
        assert!(parse_text(Some(&json!("é".repeat(2001)))).is_err());
        assert!(parse_text(Some(&json!("  "))).is_err());
        assert!(parse_text(Some(&json!(["x"]))).is_err());
    }
}
