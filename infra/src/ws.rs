//! The local stand-in for API Gateway's WebSocket API and its `@connections`
//! management API, which neither `sam local` nor cargo-lambda provide.
//!
//! - The handshake invokes `$connect` with the event API Gateway sends; a
//!   non-2xx answer refuses the upgrade with that status (and no
//!   `$disconnect` follows: there never was a connection).
//! - Each text frame is routed on `$request.body.action` against the routes
//!   of template.yaml (else `$default`) and invokes the function.
//! - `POST/GET/DELETE /{stage}/@connections/{id}` send, describe and close,
//!   answering 410 (GoneException) for an unknown or closed connection.
//! - Every accepted connection ends with exactly one `$disconnect`, whatever
//!   ended it, with the `disconnectStatusCode` and `disconnectReason` AWS
//!   sends for that cause ([`Closure`]); when the gateway is the one
//!   closing, the client first gets a close frame with that code, and up
//!   to a second to answer it.
//! - [`WsSettings`] holds API Gateway's idle timeout and maximum duration
//!   (tests shorten them) and a switch that loses the `$disconnect` of a
//!   drop: AWS calls `$disconnect` best effort, and the functions' answer
//!   to a lost one (the next push gets a 410 and cleans up) must stay
//!   testable.
//! - [`WsGateway::shut_down`] is how the gateway stops (a hot reload under
//!   `make dev`, Ctrl-C): it refuses new handshakes with 503, closes every
//!   connection with `1001 Going away` and waits, within a bound, until
//!   each has had its `$disconnect`, so that no connection, room or
//!   presence item outlives its socket. The management API keeps
//!   answering meanwhile (410 for every connection, as they are gone).
//!
//! The causes, codes, limits, what counts as activity and the sources for
//! each (and what is uncertain) are in one place: docs/API.md §7.6.
//!
//! The function runs in process: its event is built as JSON and
//! deserialised into `ApiGatewayWebsocketProxyRequest`, as the runtime does.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::{
    Router,
    body::Bytes,
    extract::{
        ConnectInfo, Path, RawQuery, State,
        ws::{CloseFrame, Message, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};

use crate::functions::WebSocketService;

/// API Gateway's cap on one message through the management API.
const MAX_POST_BYTES: usize = 128 * 1024;
/// Messages a local client may send; API Gateway caps frames at 32 KiB and
/// messages at 128 KiB, the function enforces the contract's limit. Over
/// this the gateway closes with 1009, as API Gateway does over its caps.
const MAX_INCOMING_BYTES: usize = 1024 * 1024;
/// What the WebSocket layer buffers of one message: enough to see a message
/// over the limit whole and close it with 1009. Beyond it the read fails,
/// which counts as a drop.
const MAX_BUFFERED_BYTES: usize = 16 * MAX_INCOMING_BYTES;
/// How long a client has to answer the gateway's close frame (or to take
/// the answer to its own) before the TCP connection goes; AWS documents no
/// figure.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// API Gateway's limits on a connection, and the one liberty the local
/// gateway may take with `$disconnect`. `Default` is AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    /// A connection without a data message either way for this long is
    /// closed with 1001 (AWS: 10 minutes, not adjustable).
    pub idle_timeout: Duration,
    /// Every connection is closed with 1001 this long after its handshake,
    /// active or not (AWS: 2 hours, not adjustable).
    pub max_duration: Duration,
    /// Whether a connection that ends without a close frame gets its
    /// `$disconnect`, as it normally does on AWS. `false` takes the worst
    /// case AWS's best effort allows, for tests of what follows a lost one.
    pub disconnect_on_drop: bool,
}

impl WsSettings {
    /// API Gateway's own values.
    pub const AWS: Self = Self {
        idle_timeout: Duration::from_secs(10 * 60),
        max_duration: Duration::from_secs(2 * 60 * 60),
        disconnect_on_drop: true,
    };
}

impl Default for WsSettings {
    fn default() -> Self {
        Self::AWS
    }
}

/// How a connection was closed: the code and reason of the gateway's close
/// frame, and `$disconnect`'s `disconnectStatusCode` and `disconnectReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub code: u16,
    pub reason: String,
}

impl Closure {
    fn new(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
        }
    }

    /// `DELETE @connections`: what API Gateway logs for a DeleteConnection.
    fn deleted() -> Self {
        Self::new(1000, "Connection Closed Normally")
    }

    /// The idle timeout and the maximum duration share 1001 on AWS.
    fn going_away() -> Self {
        Self::new(1001, "Going away")
    }

    /// A close frame without a code, with AWS's own wording.
    fn no_status() -> Self {
        Self::new(1005, "Client-side close frame status not set")
    }

    /// No close frame at all.
    fn abnormal() -> Self {
        Self::new(1006, "Connection closed abnormally")
    }

    /// A message over what the gateway takes.
    fn too_big() -> Self {
        Self::new(1009, "Message too big")
    }
}

/// How a session ended, which decides its `$disconnect`.
#[derive(Debug)]
enum End {
    /// The client's close frame; `None` when it carried no code.
    Client(Option<Closure>),
    /// The gateway's close frame, answered or not.
    Gateway(Closure),
    /// No close frame either way: the TCP connection ended or failed.
    Dropped,
}

impl End {
    fn closure(self) -> Closure {
        match self {
            End::Client(Some(closure)) | End::Gateway(closure) => closure,
            End::Client(None) => Closure::no_status(),
            End::Dropped => Closure::abnormal(),
        }
    }
}

enum Outgoing {
    Text(String),
    Close(Closure),
}

/// How often [`WsGateway::shut_down`] sweeps for connections whose
/// `$connect` was still running at its previous sweep.
const SHUTDOWN_SWEEP: Duration = Duration::from_millis(50);

/// One connection from its handshake to the end of its `$disconnect` (or
/// of a refused `$connect`), for [`WsGateway::shut_down`] to wait on. Held
/// in whichever task finishes the connection, and counted down when that
/// task lets go of it however it ends.
struct Live(Arc<watch::Sender<usize>>);

impl Live {
    fn new(count: &Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|live| *live += 1);
        Self(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.send_modify(|live| *live -= 1);
    }
}

/// What the gateway knows of a connection from its handshake on.
#[derive(Debug, Clone)]
struct Peer {
    connected_at_ms: i64,
    /// The handshake's start, from which the maximum duration counts.
    opened: Instant,
    source_ip: String,
    user_agent: Option<String>,
}

struct Connection {
    sender: mpsc::UnboundedSender<Outgoing>,
    /// Tells the session that the gateway closed it, and how.
    closing: oneshot::Sender<Closure>,
    peer: Peer,
    last_active_ms: i64,
    /// The last data message either way, for the idle timeout.
    last_active: Instant,
}

/// The WebSocket side of the local gateway.
pub struct WsGateway {
    stage: String,
    routes: HashSet<String>,
    function: WebSocketService,
    settings: WsSettings,
    connections: Mutex<HashMap<String, Connection>>,
    /// How many connections are [`Live`].
    live: Arc<watch::Sender<usize>>,
    /// Set by [`WsGateway::shut_down`]: handshakes are refused from then on.
    shutting_down: AtomicBool,
}

impl WsGateway {
    /// The gateway with API Gateway's own limits.
    pub fn new(
        stage: &str,
        routes: impl IntoIterator<Item = String>,
        function: WebSocketService,
    ) -> Arc<Self> {
        Self::with_settings(stage, routes, function, WsSettings::AWS)
    }

    /// The gateway with other limits, or with `$disconnect` lost on drops.
    pub fn with_settings(
        stage: &str,
        routes: impl IntoIterator<Item = String>,
        function: WebSocketService,
        settings: WsSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            stage: stage.to_owned(),
            routes: routes.into_iter().collect(),
            function,
            settings,
            connections: Mutex::new(HashMap::new()),
            live: Arc::new(watch::Sender::new(0)),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// Stops the gateway as a server going away: handshakes are refused
    /// with 503 from now on, and every connection is closed with `1001
    /// Going away` (the client's reconnect finds the next gateway) and
    /// gets its `$disconnect`. Returns once all have, `false` if `limit`
    /// passed first (a `$disconnect` stuck on its store, say): the caller
    /// stops anyway, and what was not cleaned up expires by its TTL, as
    /// after a lost `$disconnect` on AWS.
    pub async fn shut_down(&self, limit: Duration) -> bool {
        self.shutting_down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + limit;
        let mut live = self.live.subscribe();
        loop {
            // Again on every sweep: a handshake that was past its check of
            // `shutting_down` registers after the sweep before.
            let ids: Vec<String> =
                self.with_connections(|connections| connections.keys().cloned().collect());
            for id in ids {
                self.close(&id, Closure::going_away());
            }
            let sweep = deadline.min(Instant::now() + SHUTDOWN_SWEEP);
            let none_left = tokio::time::timeout_at(sweep, live.wait_for(|live| *live == 0))
                .await
                .is_ok();
            if none_left {
                return true;
            }
            if Instant::now() >= deadline {
                let left = *live.borrow();
                tracing::warn!(
                    connections = left,
                    "stopping before every connection had its $disconnect"
                );
                return false;
            }
        }
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
        let route_key = event["requestContext"]["routeKey"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match serde_json::from_value::<ApiGatewayWebsocketProxyRequest>(event) {
            Ok(request) => match crate::calls::serving(
                route_key,
                platform::lambda::invoke(&self.function, request),
            )
            .await
            {
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

    /// Records a connection as its handshake begins: API Gateway accepts
    /// management calls for a connection from its `$connect` on, and frames
    /// sent then are delivered once the socket is up.
    fn register(
        &self,
        connection_id: &str,
        peer: Peer,
    ) -> (
        mpsc::UnboundedReceiver<Outgoing>,
        oneshot::Receiver<Closure>,
    ) {
        let (sender, outgoing) = mpsc::unbounded_channel();
        let (closing, closed) = oneshot::channel();
        let connection = Connection {
            sender,
            closing,
            last_active_ms: peer.connected_at_ms,
            last_active: peer.opened,
            peer,
        };
        self.with_connections(|connections| {
            connections.insert(connection_id.to_owned(), connection)
        });
        (outgoing, closed)
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Notes a data message on the connection, either way.
    fn touch(connection: &mut Connection) {
        connection.last_active_ms = Utc::now().timestamp_millis();
        connection.last_active = Instant::now();
    }

    /// Queues a message for the client; `false` if the connection is gone.
    fn send(&self, connection_id: &str, text: String) -> bool {
        self.with_connections(|connections| match connections.get_mut(connection_id) {
            Some(connection) => {
                Self::touch(connection);
                connection.sender.send(Outgoing::Text(text)).is_ok()
            }
            None => false,
        })
    }

    /// When the connection falls idle unless something happens first.
    fn idle_deadline(&self, connection_id: &str) -> Option<Instant> {
        self.with_connections(|connections| {
            connections
                .get(connection_id)
                .map(|connection| connection.last_active + self.settings.idle_timeout)
        })
    }

    /// Closes a connection from the gateway's side: it is gone at once for
    /// the management API, its close frame follows whatever was queued
    /// before, and its session learns how it was closed. `false` if it was
    /// already gone, so only the first close of a connection counts.
    fn close(&self, connection_id: &str, closure: Closure) -> bool {
        let Some(connection) =
            self.with_connections(|connections| connections.remove(connection_id))
        else {
            return false;
        };
        // Either end may be gone already: the session ends on its own then.
        let _ = connection.sender.send(Outgoing::Close(closure.clone()));
        let _ = connection.closing.send(closure);
        true
    }

    /// Serves one upgraded connection until it ends, then invokes its one
    /// `$disconnect`.
    async fn session<R, W>(
        self: Arc<Self>,
        connection_id: String,
        peer: Peer,
        mut reader: R,
        writer: W,
        outgoing: mpsc::UnboundedReceiver<Outgoing>,
        closed: oneshot::Receiver<Closure>,
    ) where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
        W: Sink<Message> + Unpin + Send + 'static,
    {
        let writer = tokio::spawn(write(writer, outgoing));
        let end = self.read(&connection_id, &peer, &mut reader, closed).await;
        // As API Gateway runs `$disconnect` once the connection is closed, a
        // push from it already gets a 410.
        self.with_connections(|connections| connections.remove(&connection_id));
        writer.abort();
        if matches!(end, End::Client(_)) {
            // Reading on sends the answer the WebSocket layer queued for the
            // client's close frame, so the client's close completes cleanly.
            let _ = tokio::time::timeout(CLOSE_GRACE, reader.next()).await;
        }
        self.disconnect(&connection_id, &peer, end).await;
    }

    /// Routes the client's frames until the connection ends, and says how
    /// it ended. Whoever closes, the gateway's close frame (if any) is what
    /// `$disconnect` reports once it has been sent.
    async fn read<R>(
        &self,
        connection_id: &str,
        peer: &Peer,
        reader: &mut R,
        mut closed: oneshot::Receiver<Closure>,
    ) -> End
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        let idle = tokio::time::sleep_until(peer.opened + self.settings.idle_timeout);
        let lifetime = tokio::time::sleep_until(peer.opened + self.settings.max_duration);
        let answer = tokio::time::sleep(CLOSE_GRACE);
        tokio::pin!(idle, lifetime, answer);
        let mut closing: Option<Closure> = None;
        loop {
            tokio::select! {
                // A close preempts whatever else is ready, then the
                // deadlines, then the next frame.
                biased;
                sent = &mut closed, if closing.is_none() => {
                    match sent {
                        Ok(closure) => closing = Some(closure),
                        // Only a close removes a connection (and its sender)
                        // while its session reads, so this cannot happen.
                        Err(_) => return End::Dropped,
                    }
                    answer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                }
                // The deadlines before the next frame: a client that always
                // has a frame waiting would otherwise outlive both.
                // The client did not answer the gateway's close frame in time.
                () = &mut answer, if closing.is_some() => {
                    return closing.map_or(End::Dropped, End::Gateway);
                }
                () = &mut lifetime, if closing.is_none() => {
                    self.close(connection_id, Closure::going_away());
                }
                frame = reader.next() => {
                    let (body, is_base64, size) = match frame {
                        Some(Ok(Message::Text(text))) => {
                            let size = text.len();
                            (text.to_string(), false, size)
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            (STANDARD.encode(&bytes), true, bytes.len())
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(frame))) => {
                            return match closing {
                                Some(closure) => End::Gateway(closure),
                                None => End::Client(frame.map(|frame| Closure {
                                    code: frame.code,
                                    reason: frame.reason.to_string(),
                                })),
                            };
                        }
                        Some(Err(_)) | None => {
                            return closing.map_or(End::Dropped, End::Gateway);
                        }
                    };
                    // Nothing is routed after the gateway's close frame.
                    if closing.is_some() {
                        continue;
                    }
                    self.with_connections(|connections| {
                        connections.get_mut(connection_id).map(Self::touch)
                    });
                    if size > MAX_INCOMING_BYTES {
                        self.close(connection_id, Closure::too_big());
                        continue;
                    }
                    self.route(connection_id, peer, body, is_base64).await;
                }
                () = &mut idle, if closing.is_none() => {
                    match self.idle_deadline(connection_id) {
                        Some(deadline) if deadline > Instant::now() => {
                            idle.as_mut().reset(deadline);
                        }
                        // Gone already means closed meanwhile: `closed` says how.
                        _ => {
                            self.close(connection_id, Closure::going_away());
                        }
                    }
                }
            }
        }
    }

    /// Invokes the route of one data frame.
    async fn route(&self, connection_id: &str, peer: &Peer, body: String, is_base64: bool) {
        let route_key = if is_base64 {
            "$default".to_owned()
        } else {
            self.route_key(&body)
        };
        let context = request_context(
            &self.stage,
            connection_id,
            &route_key,
            "MESSAGE",
            peer.connected_at_ms,
            &peer.source_ip,
            None,
        );
        self.invoke(message_event(context, &body, is_base64)).await;
    }

    /// Invokes `$disconnect` for a connection that ended as `end`, unless
    /// the settings lose it.
    async fn disconnect(&self, connection_id: &str, peer: &Peer, end: End) {
        if matches!(end, End::Dropped) && !self.settings.disconnect_on_drop {
            tracing::info!(connectionId = %connection_id, "connection dropped without a close frame; its $disconnect is lost, as WsSettings::disconnect_on_drop asks");
            return;
        }
        let closure = end.closure();
        tracing::info!(connectionId = %connection_id, code = closure.code, reason = %closure.reason, "connection closed");
        let context = request_context(
            &self.stage,
            connection_id,
            "$disconnect",
            "DISCONNECT",
            peer.connected_at_ms,
            &peer.source_ip,
            peer.user_agent.as_deref(),
        );
        self.invoke(disconnect_event(context, closure.code, &closure.reason))
            .await;
    }
}

/// Sends what the management API queues, in order, up to and including the
/// gateway's close frame.
async fn write<W>(mut sink: W, mut outgoing: mpsc::UnboundedReceiver<Outgoing>)
where
    W: Sink<Message> + Unpin,
{
    while let Some(message) = outgoing.recv().await {
        match message {
            Outgoing::Text(text) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            Outgoing::Close(closure) => {
                let frame = CloseFrame {
                    code: closure.code,
                    reason: closure.reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        }
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
    // `userAgent` only when the client sent one, as in AWS's samples, whose
    // identity is `{"sourceIp": …}` alone otherwise.
    let identity = match user_agent {
        Some(user_agent) => json!({"sourceIp": source_ip, "userAgent": user_agent}),
        None => json!({"sourceIp": source_ip}),
    };
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": uuid::Uuid::new_v4().to_string(),
        "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at_ms,
        "requestTimeEpoch": now.timestamp_millis(),
        "identity": identity,
        "requestId": uuid::Uuid::new_v4().to_string(),
        "domainName": "127.0.0.1",
        "connectionId": connection_id,
        "apiId": "local",
    })
}

/// The `$connect` event of a handshake with `headers` and `query`.
pub fn connect_event(headers: &HeaderMap, query: Option<&str>, request_context: Value) -> Value {
    let (single_headers, multi_headers) = crate::event::headers(headers);
    let mut event = json!({
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "requestContext": request_context,
        "isBase64Encoded": false,
    });
    // Without a query string AWS leaves both out (its `$connect` samples),
    // where the REST API sends them as `null`.
    if let (single @ Value::Object(_), multi) = crate::event::query(query) {
        event["queryStringParameters"] = single;
        event["multiValueQueryStringParameters"] = multi;
    }
    event
}

/// The event of one data frame.
pub fn message_event(mut request_context: Value, body: &str, is_base64: bool) -> Value {
    request_context["messageId"] = Value::String(uuid::Uuid::new_v4().to_string());
    json!({"requestContext": request_context, "body": body, "isBase64Encoded": is_base64})
}

/// The `$disconnect` event of a connection closed with `code` and
/// `reason`. API Gateway's carries four headers of its own, not the
/// handshake's: its domain as `Host`, the client's address and two empty
/// ones.
pub fn disconnect_event(mut request_context: Value, code: u16, reason: &str) -> Value {
    request_context["disconnectStatusCode"] = json!(code);
    request_context["disconnectReason"] = json!(reason);
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let headers = [
        ("Host", text(&request_context["domainName"])),
        ("x-api-key", String::new()),
        (
            "X-Forwarded-For",
            text(&request_context["identity"]["sourceIp"]),
        ),
        ("x-restapi", String::new()),
    ];
    let single: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    let multi: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!([value])))
        .collect();
    json!({
        "headers": single,
        "multiValueHeaders": multi,
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
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A client that leaves during `$connect` drops this request's future;
    // the handshake runs on regardless, as Lambda runs `$connect` to the
    // end, so that a connection `$connect` accepted reaches the failed
    // upgrade below (and its `$disconnect`) instead of staying registered.
    tokio::spawn(accept(gateway, addr, query, headers, upgrade))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn accept(
    gateway: Arc<WsGateway>,
    addr: SocketAddr,
    query: Option<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if gateway.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(http::header::CONTENT_TYPE, "application/json")],
            json!({"message": "Service Unavailable"}).to_string(),
        )
            .into_response();
    }
    // From before `$connect`, so that a shutdown waits for a handshake
    // under way as for an open connection.
    let live = Arc::new(Live::new(&gateway.live));
    let connection_id = new_connection_id();
    let peer = Peer {
        connected_at_ms: Utc::now().timestamp_millis(),
        opened: Instant::now(),
        source_ip: addr.ip().to_string(),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let (outgoing, closed) = gateway.register(&connection_id, peer.clone());
    let context = request_context(
        &gateway.stage,
        &connection_id,
        "$connect",
        "CONNECT",
        peer.connected_at_ms,
        &peer.source_ip,
        peer.user_agent.as_deref(),
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
    let failed = (
        Arc::clone(&gateway),
        connection_id.clone(),
        peer.clone(),
        Arc::clone(&live),
    );
    upgrade
        .max_message_size(MAX_BUFFERED_BYTES)
        // `$connect` accepted it and recorded it: a client gone before the
        // upgrade completes has dropped like any other.
        .on_failed_upgrade(move |_| {
            let (gateway, connection_id, peer, live) = failed;
            tokio::spawn(async move {
                gateway.with_connections(|connections| connections.remove(&connection_id));
                gateway
                    .disconnect(&connection_id, &peer, End::Dropped)
                    .await;
                drop(live);
            });
        })
        .on_upgrade(move |socket| async move {
            let (writer, reader) = socket.split();
            gateway
                .session(connection_id, peer, reader, writer, outgoing, closed)
                .await;
            drop(live);
        })
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
    if gateway.send(&id, String::from_utf8_lossy(&body).into_owned()) {
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
                "ConnectedAt": c.peer.connected_at_ms as f64 / 1000.0,
                "LastActiveAt": c.last_active_ms as f64 / 1000.0,
                "Identity": {"SourceIp": c.peer.source_ip, "UserAgent": c.peer.user_agent},
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
    if gateway.close(&id, Closure::deleted()) {
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
    serve_until(listener, gateway, std::future::pending()).await
}

/// Serves the WebSocket gateway on `listener` until `stop` completes, then
/// stops accepting and returns once its HTTP connections are done.
/// Upgraded sockets are no longer HTTP connections: they are ended by
/// [`WsGateway::shut_down`], which is therefore called before `stop`.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    gateway: Arc<WsGateway>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        gateway
            .router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::channel::mpsc as channel;
    use tower::ServiceExt;

    type Seen = Arc<Mutex<Vec<ApiGatewayWebsocketProxyRequest>>>;

    /// A function that answers 200 to everything and keeps every event.
    fn recording() -> (WebSocketService, Seen) {
        let seen: Seen = Arc::default();
        let log = Arc::clone(&seen);
        let function =
            platform::lambda::event_service(move |request: ApiGatewayWebsocketProxyRequest| {
                let log = Arc::clone(&log);
                async move {
                    crate::sync::lock(&log).push(request);
                    // As a real function awaits its I/O: the session's task
                    // yields here, and its timers get to fire.
                    tokio::task::yield_now().await;
                    let mut response = ApiGatewayProxyResponse::default();
                    response.status_code = 200;
                    response
                }
            });
        (function, seen)
    }

    fn gateway(settings: WsSettings) -> (Arc<WsGateway>, Seen) {
        let (function, seen) = recording();
        let routes = ["ping".to_owned()];
        (
            WsGateway::with_settings("local", routes, function, settings),
            seen,
        )
    }

    /// The `$disconnect` events seen so far: code and reason.
    fn disconnects(seen: &Seen) -> Vec<(i64, String)> {
        crate::sync::lock(seen)
            .iter()
            .filter(|event| event.request_context.route_key.as_deref() == Some("$disconnect"))
            .map(|event| {
                let context = &event.request_context;
                (
                    context.disconnect_status_code.unwrap_or_default(),
                    context.disconnect_reason.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn routed(seen: &Seen) -> usize {
        crate::sync::lock(seen)
            .iter()
            .filter(|event| event.request_context.event_type.as_deref() == Some("MESSAGE"))
            .count()
    }

    /// A client on in-memory channels, its session running as an upgraded
    /// socket's would.
    struct Client {
        id: String,
        /// Dropping it ends the socket without a close frame.
        to_gateway: Option<channel::UnboundedSender<Result<Message, axum::Error>>>,
        from_gateway: channel::UnboundedReceiver<Message>,
        session: tokio::task::JoinHandle<()>,
    }

    fn open(gateway: &Arc<WsGateway>) -> Client {
        let id = new_connection_id();
        let peer = Peer {
            connected_at_ms: Utc::now().timestamp_millis(),
            opened: Instant::now(),
            source_ip: "192.0.2.1".to_owned(),
            user_agent: Some("unit-test".to_owned()),
        };
        let (outgoing, closed) = gateway.register(&id, peer.clone());
        let (to_gateway, reader) = channel::unbounded();
        let (writer, from_gateway) = channel::unbounded();
        // Counted as `accept` counts a connection, for the shutdown tests.
        let live = Live::new(&gateway.live);
        let session =
            Arc::clone(gateway).session(id.clone(), peer, reader, writer, outgoing, closed);
        let session = tokio::spawn(async move {
            session.await;
            drop(live);
        });
        Client {
            id,
            to_gateway: Some(to_gateway),
            from_gateway,
            session,
        }
    }

    impl Client {
        fn send(&self, message: Message) {
            if let Some(to_gateway) = &self.to_gateway {
                let _ = to_gateway.unbounded_send(Ok(message));
            }
        }

        fn text(&self, text: &str) {
            self.send(Message::Text(text.into()));
        }

        fn close_with(&self, code: u16, reason: &str) {
            self.send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })));
        }

        /// The gateway's close frame, skipping text; `None` if none comes
        /// within `wait`.
        async fn close_frame(&mut self, wait: Duration) -> Option<(u16, String)> {
            let deadline = Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, self.from_gateway.next()).await {
                    Ok(Some(Message::Close(Some(frame)))) => {
                        return Some((frame.code, frame.reason.to_string()));
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return None,
                }
            }
        }

        /// Ends the TCP connection, as a client does once the close
        /// handshake is over, and waits for the session to end.
        async fn ended(mut self) {
            self.to_gateway.take();
            tokio::time::timeout(Duration::from_secs(5), self.session)
                .await
                .expect("the session ends")
                .expect("the session does not panic");
        }
    }

    async fn management(gateway: &Arc<WsGateway>, method: &str, id: &str) -> StatusCode {
        let request = http::Request::builder()
            .method(method)
            // Ids are standard base64: `/` and `+` must be escaped too.
            .uri(format!(
                "/local/@connections/{}",
                form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            ))
            .body(axum::body::Body::from("{}"))
            .expect("request");
        Arc::clone(gateway)
            .router()
            .oneshot(request)
            .await
            .expect("infallible")
            .status()
    }

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
    }

    #[tokio::test]
    async fn a_clients_close_frame_passes_its_code_and_reason_on() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let client = open(&gateway);
        client.close_with(4000, "bye");
        client.ended().await;
        assert_eq!(disconnects(&seen), [(4000, "bye".to_owned())]);

        let client = open(&gateway);
        client.send(Message::Close(None));
        client.ended().await;
        assert_eq!(
            disconnects(&seen)[1],
            (1005, "Client-side close frame status not set".to_owned()),
            "AWS's own code and wording for a close frame without a code"
        );
    }

    #[tokio::test]
    async fn a_drop_or_a_read_error_is_1006_once() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let mut client = open(&gateway);
        client.to_gateway.take();
        client.ended().await;
        let client = open(&gateway);
        client.send(Message::Text("{}".into()));
        if let Some(to_gateway) = &client.to_gateway {
            let _ = to_gateway.unbounded_send(Err(axum::Error::new(std::io::Error::other(
                "connection reset",
            ))));
        }
        client.ended().await;
        let abnormal = (1006, "Connection closed abnormally".to_owned());
        assert_eq!(disconnects(&seen), [abnormal.clone(), abnormal]);
        assert!(gateway.with_connections(|connections| connections.is_empty()));
    }

    #[tokio::test]
    async fn the_switch_loses_the_disconnect_of_a_drop_only() {
        let (gateway, seen) = gateway(WsSettings {
            disconnect_on_drop: false,
            ..WsSettings::AWS
        });
        let mut dropped = open(&gateway);
        dropped.to_gateway.take();
        let id = dropped.id.clone();
        dropped.ended().await;
        assert!(disconnects(&seen).is_empty());
        assert_eq!(management(&gateway, "POST", &id).await, StatusCode::GONE);

        let closed = open(&gateway);
        closed.close_with(1000, "");
        closed.ended().await;
        assert_eq!(disconnects(&seen), [(1000, String::new())]);
    }

    #[tokio::test]
    async fn delete_closes_with_1000_and_disconnects_once() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let mut client = open(&gateway);
        assert!(gateway.send(&client.id, "queued first".to_owned()));
        assert_eq!(
            management(&gateway, "DELETE", &client.id).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            client.from_gateway.next().await,
            Some(Message::Text("queued first".into())),
            "what was queued before the close goes first"
        );
        let frame = client.close_frame(Duration::from_secs(1)).await;
        assert_eq!(frame, Some((1000, "Connection Closed Normally".to_owned())));
        for method in ["DELETE", "POST", "GET"] {
            assert_eq!(
                management(&gateway, method, &client.id).await,
                StatusCode::GONE,
                "{method} after the close"
            );
        }
        client.close_with(1000, "");
        client.ended().await;
        assert_eq!(
            disconnects(&seen),
            [(1000, "Connection Closed Normally".to_owned())],
            "the gateway's close is reported, not the client's answer"
        );
    }

    #[tokio::test]
    async fn a_close_the_client_never_answers_still_disconnects() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let mut client = open(&gateway);
        assert!(gateway.close(&client.id, Closure::deleted()));
        assert!(client.close_frame(Duration::from_secs(1)).await.is_some());
        let started = Instant::now();
        let to_gateway = client.to_gateway.take();
        tokio::time::timeout(Duration::from_secs(5), client.session)
            .await
            .expect("ends after the grace")
            .expect("no panic");
        drop(to_gateway);
        assert!(started.elapsed() >= CLOSE_GRACE - Duration::from_millis(100));
        assert_eq!(disconnects(&seen).len(), 1);
    }

    #[tokio::test]
    async fn a_client_close_and_a_delete_disconnect_once_whichever_comes_first() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        // The delete first: the session reads the gateway's close before
        // the client's, and reports the delete's code.
        let client = open(&gateway);
        assert!(gateway.close(&client.id, Closure::deleted()));
        client.close_with(4000, "bye");
        client.ended().await;
        assert_eq!(
            disconnects(&seen),
            [(1000, "Connection Closed Normally".to_owned())]
        );

        // The client's close first: once the session has read it, the
        // connection is gone and a delete finds nothing to close.
        let client = open(&gateway);
        client.close_with(4000, "bye");
        let id = client.id.clone();
        while gateway.with_connections(|connections| connections.contains_key(&id)) {
            tokio::task::yield_now().await;
        }
        assert!(!gateway.close(&id, Closure::deleted()));
        client.ended().await;
        assert_eq!(
            disconnects(&seen),
            [
                (1000, "Connection Closed Normally".to_owned()),
                (4000, "bye".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_client_gone_during_connect_is_disconnected_and_forgotten() {
        let seen: Seen = Arc::default();
        let log = Arc::clone(&seen);
        let slow_connect =
            platform::lambda::event_service(move |request: ApiGatewayWebsocketProxyRequest| {
                let log = Arc::clone(&log);
                async move {
                    if request.request_context.route_key.as_deref() == Some("$connect") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    crate::sync::lock(&log).push(request);
                    let mut response = ApiGatewayProxyResponse::default();
                    response.status_code = 200;
                    response
                }
            });
        let gateway = WsGateway::with_settings("local", [], slow_connect, WsSettings::AWS);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::clone(&gateway)));

        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut client,
            b"GET / HTTP/1.1\r\nHost: local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(client);

        let deadline = Instant::now() + Duration::from_secs(5);
        while disconnects(&seen).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let connects = crate::sync::lock(&seen)
            .iter()
            .filter(|event| event.request_context.route_key.as_deref() == Some("$connect"))
            .count();
        assert_eq!(connects, 1, "$connect ran to its end");
        assert_eq!(
            disconnects(&seen),
            [(1006, "Connection closed abnormally".to_owned())]
        );
        assert!(gateway.with_connections(|connections| connections.is_empty()));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_with_1001() {
        let idle = Duration::from_millis(200);
        let (gateway, seen) = gateway(WsSettings {
            idle_timeout: idle,
            ..WsSettings::AWS
        });
        let started = Instant::now();
        let mut client = open(&gateway);
        let frame = client.close_frame(Duration::from_secs(2)).await;
        assert_eq!(frame, Some((1001, "Going away".to_owned())));
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        client.close_with(1001, "");
        client.ended().await;
        assert_eq!(disconnects(&seen), [(1001, "Going away".to_owned())]);
    }

    /// Keeps a connection busy with `activity` every 50 ms for three idle
    /// timeouts; whether it is still open then.
    async fn survives(activity: impl Fn(&Client, &WsGateway)) -> bool {
        let idle = Duration::from_millis(250);
        let (gateway, _) = gateway(WsSettings {
            idle_timeout: idle,
            ..WsSettings::AWS
        });
        let mut client = open(&gateway);
        let until = Instant::now() + 3 * idle;
        while Instant::now() < until {
            activity(&client, &gateway);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.close_frame(Duration::ZERO).await.is_none()
            && gateway.with_connections(|connections| connections.contains_key(&client.id))
    }

    #[tokio::test]
    async fn frames_either_way_are_activity_but_pings_are_not() {
        assert!(
            survives(|client, _| client.text(r#"{"action":"ping"}"#)).await,
            "frames from the client"
        );
        assert!(
            survives(|client, gateway| {
                gateway.send(&client.id, "push".to_owned());
            })
            .await,
            "pushes to the client"
        );
        assert!(
            !survives(|client, _| client.send(Message::Ping(Bytes::new()))).await,
            "ping control frames"
        );
        assert!(!survives(|_, _| ()).await, "nothing at all");
    }

    #[tokio::test]
    async fn the_maximum_duration_closes_an_active_connection() {
        let max = Duration::from_millis(300);
        let (gateway, seen) = gateway(WsSettings {
            max_duration: max,
            ..WsSettings::AWS
        });
        let started = Instant::now();
        let mut client = open(&gateway);
        let frame = loop {
            client.text(r#"{"action":"ping"}"#);
            if let Some(frame) = client.close_frame(Duration::from_millis(30)).await {
                break frame;
            }
            assert!(started.elapsed() < Duration::from_secs(3), "never closed");
        };
        assert_eq!(frame, (1001, "Going away".to_owned()));
        assert!(started.elapsed() >= max, "{:?}", started.elapsed());
        client.close_with(1001, "");
        client.ended().await;
        assert_eq!(disconnects(&seen), [(1001, "Going away".to_owned())]);
    }

    #[tokio::test]
    async fn a_client_that_always_has_a_frame_waiting_is_still_closed_at_the_maximum_duration() {
        const QUEUED: usize = 20_000;
        let (gateway, seen) = gateway(WsSettings {
            max_duration: Duration::from_millis(20),
            ..WsSettings::AWS
        });
        let mut client = open(&gateway);
        for _ in 0..QUEUED {
            client.text(r#"{"action":"ping"}"#);
        }
        let frame = client.close_frame(Duration::from_secs(30)).await;
        assert_eq!(frame, Some((1001, "Going away".to_owned())));
        let before_close = routed(&seen);
        assert!(
            before_close < QUEUED / 2,
            "the deadline waited for the queue: {before_close} of {QUEUED} frames routed first"
        );
        // What was still queued is not routed after the close.
        client.ended().await;
        assert!(routed(&seen) <= before_close + 1);
        assert_eq!(disconnects(&seen), [(1001, "Going away".to_owned())]);
    }

    #[tokio::test]
    async fn an_oversized_message_is_closed_with_1009_unrouted() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let mut client = open(&gateway);
        client.text(&"x".repeat(MAX_INCOMING_BYTES));
        client.text(&"x".repeat(MAX_INCOMING_BYTES + 1));
        let frame = client.close_frame(Duration::from_secs(2)).await;
        assert_eq!(frame, Some((1009, "Message too big".to_owned())));
        client.close_with(1009, "");
        client.ended().await;
        assert_eq!(routed(&seen), 1, "only the message within the limit");
        assert_eq!(disconnects(&seen), [(1009, "Message too big".to_owned())]);
    }

    #[test]
    fn the_disconnect_event_reads_as_the_functions_type() {
        let context = request_context(
            "prod",
            "AAAA1234=",
            "$disconnect",
            "DISCONNECT",
            1_707_503_007_396,
            "192.0.2.1",
            Some("Mozilla/5.0"),
        );
        let closure = Closure::no_status();
        let event = disconnect_event(context, closure.code, &closure.reason);
        let request: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(event).expect("the function's own type reads it");
        let context = &request.request_context;
        assert_eq!(context.disconnect_status_code, Some(1005));
        assert_eq!(
            context.disconnect_reason.as_deref(),
            Some("Client-side close frame status not set")
        );
        assert_eq!(context.route_key.as_deref(), Some("$disconnect"));
        assert_eq!(context.identity.user_agent.as_deref(), Some("Mozilla/5.0"));
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("host"), Some("127.0.0.1"), "the domain, as on AWS");
        assert_eq!(header("x-forwarded-for"), Some("192.0.2.1"));
        assert_eq!(header("x-api-key"), Some(""));
        assert_eq!(header("x-restapi"), Some(""));
        assert_eq!(request.headers.len(), 4);
    }

    /// A function that answers 200 to everything, keeps every event, and
    /// waits `connect` in `$connect` and `disconnect` in `$disconnect`.
    fn slow(connect: Duration, disconnect: Duration) -> (WebSocketService, Seen) {
        let seen: Seen = Arc::default();
        let log = Arc::clone(&seen);
        let function =
            platform::lambda::event_service(move |request: ApiGatewayWebsocketProxyRequest| {
                let log = Arc::clone(&log);
                async move {
                    match request.request_context.route_key.as_deref() {
                        Some("$connect") => tokio::time::sleep(connect).await,
                        Some("$disconnect") => tokio::time::sleep(disconnect).await,
                        _ => {}
                    }
                    crate::sync::lock(&log).push(request);
                    let mut response = ApiGatewayProxyResponse::default();
                    response.status_code = 200;
                    response
                }
            });
        (function, seen)
    }

    /// Sends `request` on a new TCP connection and reads the response head.
    async fn raw_request(
        address: SocketAddr,
        request: &[u8],
    ) -> (tokio::net::TcpStream, String, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut read = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&read[..end]).into_owned();
                let rest = read[end + 4..].to_vec();
                return (stream, head, rest);
            }
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("a response within 5 s")
                .unwrap();
            assert!(n > 0, "the connection closed before a response head");
            read.extend_from_slice(&buffer[..n]);
        }
    }

    const UPGRADE: &[u8] =
        b"GET / HTTP/1.1\r\nHost: local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[tokio::test]
    async fn a_shutdown_closes_every_connection_with_1001_and_waits_for_each_disconnect() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let mut clients = vec![open(&gateway), open(&gateway)];
        let stopping = tokio::spawn({
            let gateway = Arc::clone(&gateway);
            async move { gateway.shut_down(Duration::from_secs(5)).await }
        });
        for client in &mut clients {
            let frame = client.close_frame(Duration::from_secs(1)).await;
            assert_eq!(frame, Some((1001, "Going away".to_owned())));
            client.close_with(1001, "");
        }
        assert!(stopping.await.unwrap(), "every $disconnect ran in time");
        assert_eq!(
            disconnects(&seen),
            vec![(1001, "Going away".to_owned()); 2],
            "done by the time shut_down returns"
        );
        assert!(gateway.with_connections(|connections| connections.is_empty()));
        for client in clients {
            client.ended().await;
        }
    }

    #[tokio::test]
    async fn a_shutdown_waits_for_a_silent_client_no_longer_than_the_close_grace() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let _silent = open(&gateway);
        let started = Instant::now();
        assert!(gateway.shut_down(Duration::from_secs(10)).await);
        let took = started.elapsed();
        assert!(
            took >= CLOSE_GRACE - Duration::from_millis(100) && took < 3 * CLOSE_GRACE,
            "{took:?}"
        );
        assert_eq!(disconnects(&seen), [(1001, "Going away".to_owned())]);
    }

    #[tokio::test]
    async fn a_shutdown_gives_up_at_its_limit() {
        let (function, seen) = slow(Duration::ZERO, Duration::from_secs(60));
        let gateway = WsGateway::with_settings("local", [], function, WsSettings::AWS);
        let client = open(&gateway);
        client.close_with(1000, "");
        let started = Instant::now();
        assert!(!gateway.shut_down(Duration::from_millis(300)).await);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(disconnects(&seen).is_empty(), "the $disconnect still runs");
    }

    #[tokio::test]
    async fn a_handshake_under_way_at_a_shutdown_is_closed_and_disconnected() {
        let (function, seen) = slow(Duration::from_millis(300), Duration::ZERO);
        let gateway = WsGateway::with_settings("local", [], function, WsSettings::AWS);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::clone(&gateway)));

        let handshake = tokio::spawn(raw_request(address, UPGRADE));
        while gateway.with_connections(|connections| connections.is_empty()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stopping = tokio::spawn({
            let gateway = Arc::clone(&gateway);
            async move { gateway.shut_down(Duration::from_secs(5)).await }
        });
        let (stream, head, mut frame) = handshake.await.unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // The server's close frame: FIN and opcode 8, unmasked, then the code.
        let mut stream = stream;
        while frame.len() < 4 {
            let mut buffer = [0u8; 64];
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer)
                .await
                .unwrap();
            assert!(n > 0, "no close frame");
            frame.extend_from_slice(&buffer[..n]);
        }
        assert_eq!(frame[0], 0x88);
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1001);
        drop(stream);
        assert!(stopping.await.unwrap());
        assert_eq!(disconnects(&seen), [(1001, "Going away".to_owned())]);
    }

    #[tokio::test]
    async fn after_a_shutdown_handshakes_get_503_while_the_management_api_answers() {
        let (gateway, seen) = gateway(WsSettings::AWS);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(serve_until(listener, Arc::clone(&gateway), async {
            let _ = stopped.await;
        }));
        assert!(gateway.shut_down(Duration::from_secs(1)).await);

        let (_, head, _) = raw_request(address, UPGRADE).await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(crate::sync::lock(&seen).is_empty(), "no $connect");
        let (_, head, _) = raw_request(
            address,
            b"POST /local/@connections/AAAA HTTP/1.1\r\nHost: local\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 410"), "{head}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("serve_until returns once stopped")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }
}
