//! A mock of the Lambda Runtime API (`/2018-06-01/runtime/...`), the HTTP
//! interface a `provided.al2023` bootstrap polls for events: `invocation/next`
//! hands out one event with the headers Lambda sends, `invocation/{id}/response`
//! and `invocation/{id}/error` take the answer, `init/error` a failed start.
//!
//! It timestamps what a benchmark needs: the first `next` poll (the end of
//! init), and for each invocation the moment the event was handed over and
//! the moment the answer arrived, with the emulator's busy time in between.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http::{HeaderValue, StatusCode};
use tokio::sync::{mpsc, oneshot, watch};

use super::emulator_proxy::EmulatorClock;

const API: &str = "/2018-06-01/runtime";

/// How one invocation ended.
#[derive(Debug)]
pub struct Outcome {
    /// `true` for `/response`, `false` for `/error`.
    pub succeeded: bool,
    pub body: Bytes,
    /// From the event handed over to the answer received.
    pub elapsed: Duration,
    /// Of `elapsed`, the time the emulator was busy.
    pub emulator: Duration,
}

struct Pending {
    payload: String,
    answer: oneshot::Sender<Outcome>,
}

struct Handed {
    at: Instant,
    emulator_at: Duration,
    answer: oneshot::Sender<Outcome>,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    handed: Mutex<HashMap<String, Handed>>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    function_arn: String,
    clock: EmulatorClock,
}

impl Shared {
    fn handed(&self) -> MutexGuard<'_, HashMap<String, Handed>> {
        crate::sync::lock(&self.handed)
    }
}

/// One function's Runtime API; start one per process.
pub struct RuntimeApi {
    address: SocketAddr,
    events: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("the function reported an init error: {0}")]
    InitFailed(String),
    #[error("no answer within {0:?} (did the process exit? see its log)")]
    TimedOut(Duration),
}

impl RuntimeApi {
    pub async fn start(function_name: &str, clock: EmulatorClock) -> std::io::Result<Self> {
        let (events, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(queue),
            handed: Mutex::new(HashMap::new()),
            first_poll: watch::channel(None).0,
            init_error: Mutex::new(None),
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}"),
            clock,
        });
        let app = Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(
                &format!("{API}/invocation/{{id}}/response"),
                post(|state, id, body| answer(state, id, body, true)),
            )
            .route(
                &format!("{API}/invocation/{{id}}/error"),
                post(|state, id, body| answer(state, id, body, false)),
            )
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "runtime API stopped");
            }
        });
        Ok(Self {
            address,
            events,
            shared,
            server,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the process: host and port, no scheme.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// When the process first asked for an event, i.e. finished its init.
    pub async fn first_poll(&self, timeout: Duration) -> Result<Instant, RuntimeApiError> {
        let mut polled = self.shared.first_poll.subscribe();
        let waited = tokio::time::timeout(timeout, polled.wait_for(Option::is_some)).await;
        if let Some(message) = self.init_error() {
            return Err(RuntimeApiError::InitFailed(message));
        }
        match waited {
            Ok(Ok(at)) => Ok(at.expect("waited for Some")),
            _ => Err(RuntimeApiError::TimedOut(timeout)),
        }
    }

    fn init_error(&self) -> Option<String> {
        crate::sync::lock(&self.shared.init_error).clone()
    }

    /// Hands `payload` to the function's next poll and waits for its answer.
    pub async fn invoke(
        &self,
        payload: String,
        timeout: Duration,
    ) -> Result<Outcome, RuntimeApiError> {
        let (answer, answered) = oneshot::channel();
        // The receiver lives as long as `self`; a send cannot fail here.
        let _ = self.events.send(Pending { payload, answer });
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => Err(RuntimeApiError::TimedOut(timeout)),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_poll.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(Instant::now());
        }
        unset
    });
    let Some(pending) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let deadline_ms = chrono::Utc::now().timestamp_millis() + 10_000;
    let trace_id = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        chrono::Utc::now().timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..24],
        &uuid::Uuid::new_v4().simple().to_string()[..16],
    );
    let mut response = pending.payload.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    shared.handed().insert(
        request_id,
        Handed {
            at: Instant::now(),
            emulator_at: shared.clock.busy(),
            answer: pending.answer,
        },
    );
    response
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
    succeeded: bool,
) -> Response {
    let answered_at = Instant::now();
    let emulator_now = shared.clock.busy();
    let Some(handed) = shared.handed().remove(&id) else {
        return (StatusCode::BAD_REQUEST, "unknown request id").into_response();
    };
    let _ = handed.answer.send(Outcome {
        succeeded,
        body,
        elapsed: answered_at - handed.at,
        emulator: emulator_now.saturating_sub(handed.emulator_at),
    });
    (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let message = String::from_utf8_lossy(&body).into_owned();
    *crate::sync::lock(&shared.init_error) = Some(message);
    (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
}
