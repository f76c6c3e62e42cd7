//! The WebSocket API (docs/API.md §7): `$connect` authenticates the
//! `token` query parameter, `$disconnect` cleans up, and every other frame
//! is an `IncomingFrame`, routed on its `action`.
//!
//! Replies go back through the management API (PostToConnection), the same
//! way pushes from the stream worker do, so there is one delivery path and
//! one place (`platform::realtime`) where a vanished peer is cleaned up.
//! A bad frame gets an error frame; the connection stays open. A frame on
//! a connection whose items are gone (its session ended, and the stream
//! worker removed them) gets an `UNAUTHORIZED` error frame, and then the
//! server closes the connection.

pub mod protocol;

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::{
    apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest},
    encodings::Body,
};
use model::{
    StoreError, Table,
    clock::now_rfc3339,
    connections::{ConnectionItem, Connections, Stats},
    domain::{ChatText, ConnectionId, MessageId, Room},
};
use platform::{
    AppError,
    auth::Authenticator,
    config::{ConfigError, JwtConfig, Source, StorageConfig},
    error::{ErrorChain, ErrorCode},
    jwt::JwtKeys,
    lambda::{EventService, event_service},
    ratelimit::{Limit, RateLimiter},
    realtime::{OutgoingFrame, Realtime, RealtimeConfig, to_wire_json},
};
use serde::Serialize;
use tracing::Instrument;

use crate::protocol::{FrameError, IncomingFrame, MAX_FRAME_BYTES, json_object};

/// What the function needs, built once per cold start.
#[derive(Debug)]
struct WsState {
    table: Table,
    authenticator: Authenticator,
    realtime: Realtime,
    limiter: RateLimiter,
    /// Frames per connection per window: `RATE_LIMIT_WS_FRAMES`.
    frame_limit: Limit,
}

/// 10 frames a second per connection unless `RATE_LIMIT_WS_FRAMES` says.
const DEFAULT_FRAME_LIMIT: Limit = Limit::per(10, 1);

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local gateway and the tests all build it here.
pub fn build(
    source: &dyn Source,
    sdk: &SdkConfig,
) -> Result<EventService<ApiGatewayWebsocketProxyRequest, ApiGatewayProxyResponse>, ConfigError> {
    let storage = StorageConfig::from_source(source)?;
    let jwt = JwtConfig::from_source(source)?;
    let realtime = RealtimeConfig::from_source(source)?;
    let frame_limit = Limit::from_source(source, "RATE_LIMIT_WS_FRAMES", DEFAULT_FRAME_LIMIT)?;
    let table = Table::new(aws_sdk_dynamodb::Client::new(sdk), storage.table_name);
    let state = Arc::new(WsState {
        authenticator: Authenticator::new(JwtKeys::new(&jwt), table.clone()),
        realtime: Realtime::new(table.clone(), realtime.client(sdk)),
        limiter: RateLimiter::new(table.clone()),
        frame_limit,
        table,
    });
    Ok(event_service(move |request| {
        let state = Arc::clone(&state);
        // Boxed: the handler's future is deep enough to hit the compiler's
        // type-layout recursion limit when nested inside the runtime's.
        async move { Box::pin(handle(&state, request)).await }
    }))
}

fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = body.map(Body::Text);
    response
}

/// Handles one event of the WebSocket API, whatever its route.
async fn handle(
    state: &WsState,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &request.request_context;
    let raw_id = context.connection_id.as_deref().unwrap_or_default();
    let route = context.route_key.as_deref().unwrap_or("$default");
    let span = tracing::info_span!(
        "ws",
        connectionId = %raw_id,
        routeKey = %route,
        requestId = %context.request_id.as_deref().unwrap_or_default(),
    );
    async {
        let started = std::time::Instant::now();
        let answer = match ConnectionId::parse(raw_id) {
            // API Gateway always names the connection; nothing to answer to.
            None => {
                tracing::error!("event without a valid connection id");
                response(400, None)
            }
            Some(connection_id) => match route {
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
            },
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

/// The body of a refused handshake.
#[derive(Debug, Serialize)]
struct Refusal {
    success: bool,
    message: String,
    code: ErrorCode,
}

/// `$connect`: a missing or bad token refuses the handshake with its status.
async fn connect(
    state: &WsState,
    connection_id: &ConnectionId,
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
        state
            .table
            .connect(connection_id, &user.user, &user.session_id, &now_rfc3339())
            .await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => response(200, None),
        Err(err) => refuse(&err),
    }
}

/// The contract refuses every handshake that fails authentication with
/// 401, a suspended account included; outages stay 5xx.
fn refuse(err: &AppError) -> ApiGatewayProxyResponse {
    let (status, code) = if err.status().is_server_error() {
        tracing::error!(error = %ErrorChain(err), "connect failed");
        (err.status().as_u16(), err.code())
    } else {
        (401, ErrorCode::Unauthorized)
    };
    let refusal = Refusal {
        success: false,
        message: err.public_message(),
        code,
    };
    match to_wire_json(&refusal) {
        Ok(body) => response(i64::from(status), Some(body)),
        Err(err) => {
            tracing::error!(error = %err, "refusal not serialised");
            response(500, None)
        }
    }
}

async fn disconnect(state: &WsState, connection_id: &ConnectionId) -> ApiGatewayProxyResponse {
    match state.table.disconnect(connection_id).await {
        Ok(()) => response(200, None),
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "disconnect cleanup failed; TTL will remove the items");
            response(500, None)
        }
    }
}

async fn reply(state: &WsState, connection_id: &ConnectionId, frame: &OutgoingFrame) {
    if let Err(err) = state.realtime.push(connection_id, frame).await {
        tracing::warn!(error = %ErrorChain(&err), "reply not delivered");
    }
}

async fn message(
    state: &WsState,
    connection_id: &ConnectionId,
    body: Option<&str>,
    is_base64: bool,
) {
    if let Err(err) = route_frame(state, connection_id, body, is_base64).await {
        reply(state, connection_id, &err.to_frame()).await;
        if err.closes
            && let Err(err) = state.realtime.end(connection_id).await
        {
            tracing::warn!(error = %ErrorChain(&err), "connection not closed");
        }
    }
}

/// Checks a frame in the contract's order (size, rate, connection, JSON
/// object, action, fields) and carries out its action.
async fn route_frame(
    state: &WsState,
    connection_id: &ConnectionId,
    body: Option<&str>,
    is_base64: bool,
) -> Result<(), FrameError> {
    let body = body.unwrap_or_default();
    if body.len() > MAX_FRAME_BYTES {
        return Err(AppError::PayloadTooLarge(format!(
            "Frames are limited to {} KiB",
            MAX_FRAME_BYTES / 1024
        ))
        .into());
    }
    // The frame is parsed in memory first, so that the read its action
    // needs (the room's members, the presence for the stats) goes out with
    // the frame's count and its connection's read: one round trip before
    // the action's pushes (chat.send) or its one write (chat.join,
    // dashboard.subscribe). The answer still puts the limit first, then
    // the connection (a connection that may no longer act is closed
    // whatever it sent), then the frame's own errors; the action's read is
    // thrown away unless all of them pass.
    let parsed: Result<IncomingFrame, FrameError> = if is_base64 {
        Err(AppError::BadRequest("Frames must be JSON text".into()).into())
    } else {
        json_object(body)
            .map_err(FrameError::from)
            .and_then(IncomingFrame::from_object)
    };
    let frame_key = format!("ws:{connection_id}");
    let (counted, connection, ready) = tokio::join!(
        state.limiter.hit(&frame_key, state.frame_limit),
        state.table.connection(connection_id),
        async {
            match parsed {
                Ok(frame) => Ok(prepare(state, frame).await),
                Err(err) => Err(err),
            }
        },
    );
    counted.map_err(|err| match err {
        AppError::RateLimited { .. } => FrameError::new(err.code(), "Too many frames; slow down"),
        other => other.into(),
    })?;
    let connection = connection.map_err(AppError::from)?.ok_or_else(|| {
        FrameError::closing(AppError::Unauthorized(
            "Connection is not registered; reconnect".into(),
        ))
    })?;
    match ready?.map_err(AppError::from)? {
        Ready::Ping => {
            reply(state, connection_id, &OutgoingFrame::Pong).await;
            Ok(())
        }
        Ready::Join { room, members } => join(state, &connection, room, members).await,
        Ready::Leave { room } => {
            state
                .table
                .leave(connection_id, &room)
                .await
                .map_err(AppError::from)?;
            Ok(())
        }
        Ready::Send {
            room,
            text,
            members,
        } => send(state, &connection, room, text, &members).await,
        Ready::Subscribe { stats } => {
            state
                .table
                .subscribe_dashboard(&connection)
                .await
                .map_err(AppError::from)?;
            reply(state, connection_id, &OutgoingFrame::DashboardStats(stats)).await;
            Ok(())
        }
    }
}

/// A frame with what its action read before its connection was confirmed.
enum Ready {
    Ping,
    Join {
        room: Room,
        members: Vec<ConnectionId>,
    },
    Leave {
        room: Room,
    },
    Send {
        room: Room,
        text: ChatText,
        members: Vec<ConnectionId>,
    },
    Subscribe {
        stats: Stats,
    },
}

/// Makes the read `frame`'s action needs, alongside the frame's checks.
async fn prepare(state: &WsState, frame: IncomingFrame) -> Result<Ready, StoreError> {
    Ok(match frame {
        IncomingFrame::Ping => Ready::Ping,
        IncomingFrame::ChatJoin { room } => Ready::Join {
            members: state.table.members(&room).await?,
            room,
        },
        IncomingFrame::ChatLeave { room } => Ready::Leave { room },
        IncomingFrame::ChatSend { room, text } => Ready::Send {
            members: state.table.members(&room).await?,
            room,
            text,
        },
        IncomingFrame::DashboardSubscribe => Ready::Subscribe {
            stats: state.table.stats().await?,
        },
    })
}

/// Joins `room` and tells its members, read before the join, and the
/// joiner. A member joining at the same instant may miss this join (each
/// read the room before the other's write); it learns of the other from
/// the room's next message.
async fn join(
    state: &WsState,
    connection: &ConnectionItem,
    room: Room,
    mut members: Vec<ConnectionId>,
) -> Result<(), FrameError> {
    state
        .table
        .join(connection, &room)
        .await
        .map_err(AppError::from)?;
    if !members.contains(&connection.connection_id) {
        members.push(connection.connection_id.clone());
    }
    let frame = OutgoingFrame::ChatJoined {
        room,
        user: connection.user(),
    };
    state.realtime.fan_out(&members, &frame).await;
    Ok(())
}

async fn send(
    state: &WsState,
    connection: &ConnectionItem,
    room: Room,
    text: ChatText,
    members: &[ConnectionId],
) -> Result<(), FrameError> {
    if !members.contains(&connection.connection_id) {
        return Err(AppError::Forbidden(format!("Join room {room} before sending to it")).into());
    }
    let frame = OutgoingFrame::ChatMessage {
        room,
        from: connection.user(),
        text,
        sent_at: now_rfc3339(),
        id: MessageId::new(),
    };
    state.realtime.fan_out(members, &frame).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn body(response: &ApiGatewayProxyResponse) -> &str {
        match &response.body {
            Some(Body::Text(text)) => text,
            other => panic!("no text body: {other:?}"),
        }
    }

    #[test]
    fn a_failed_authentication_is_refused_with_401() {
        for err in [
            AppError::Unauthorized("Missing token query parameter".into()),
            AppError::Forbidden("Account is suspended".into()),
        ] {
            let answer = refuse(&err);
            assert_eq!(answer.status_code, 401);
            let expected = json!({
                "success": false,
                "message": err.public_message(),
                "code": "UNAUTHORIZED",
            });
            assert_eq!(body(&answer), expected.to_string());
        }
        assert_eq!(
            body(&refuse(&AppError::Forbidden("Account is suspended".into()))),
            r#"{"code":"UNAUTHORIZED","message":"Account is suspended","success":false}"#
        );
    }

    #[test]
    fn an_outage_is_refused_with_its_own_status() {
        let answer = refuse(&AppError::unavailable("dynamodb", "down"));
        assert_eq!(answer.status_code, 503);
        assert_eq!(
            body(&answer),
            r#"{"code":"SERVICE_UNAVAILABLE","message":"Service temporarily unavailable, please retry","success":false}"#
        );
        let answer = refuse(&AppError::internal("x", "y"));
        assert_eq!(answer.status_code, 500);
        assert_eq!(
            body(&answer),
            r#"{"code":"INTERNAL_ERROR","message":"Internal server error","success":false}"#
        );
    }

    fn source(pairs: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    fn sdk() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build()
    }

    fn config(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = vec![
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("WS_MANAGEMENT_ENDPOINT", "http://127.0.0.1:3001/local"),
        ];
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn build_reads_its_configuration() {
        assert!(build(&source(config(&[])), &sdk()).is_ok());
        assert!(build(&source(config(&[("RATE_LIMIT_WS_FRAMES", "3/60")])), &sdk()).is_ok());
        let mut missing = config(&[]);
        missing.retain(|(name, _)| *name != "WS_MANAGEMENT_ENDPOINT");
        assert_eq!(
            build(&source(missing), &sdk()).err(),
            Some(ConfigError::Missing {
                name: "WS_MANAGEMENT_ENDPOINT"
            })
        );
        assert!(matches!(
            build(&source(config(&[("RATE_LIMIT_WS_FRAMES", "lots")])), &sdk()).err(),
            Some(ConfigError::Invalid {
                name: "RATE_LIMIT_WS_FRAMES",
                ..
            })
        ));
    }
}
