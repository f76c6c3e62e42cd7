//! `make bench`: cold start, warm latency, memory and size of every
//! function's bootstrap, with no AWS account.
//!
//! Each bootstrap runs as a child process, as Lambda runs it: its only
//! contact with the outside is [`runtime_api`], a mock of the Lambda Runtime
//! API, and the AWS endpoint, which is [`emulator_proxy`] in front of the
//! emulator. The fixture it needs (users, a post with a comment, an upload, a
//! WebSocket connection, the notification's stream record) is made by the
//! same bootstraps before anything is timed.

pub mod emulator_proxy;
pub mod report;
pub mod runtime_api;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{Value, json};

use crate::template::ApiRoute;
use emulator_proxy::EmulatorClock;
use runtime_api::{Outcome, RuntimeApi, RuntimeApiError};

/// The stage the benchmark's events name.
const STAGE: &str = "bench";
/// How long init, or one invocation, may take before the run is abandoned.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{function}: {source}")]
    Runtime {
        function: String,
        source: RuntimeApiError,
    },
    #[error("{function}: {what}: {detail}")]
    Failed {
        function: String,
        what: String,
        detail: String,
    },
    #[error("{0}")]
    Setup(String),
}

/// What the benchmark runs against.
pub struct BenchConfig {
    /// Where the bootstraps are (`<dir>/<crate>`, `<dir>/hello`).
    pub binaries: PathBuf,
    /// The emulator's base URL (provisioned).
    pub emulator: String,
    /// Where each process's output goes (`<dir>/<function>.log`).
    pub logs: PathBuf,
    pub table_name: String,
    pub warm_invocations: usize,
    pub cold_starts: usize,
}

/// The measurements of one function.
#[derive(Debug, Clone)]
pub struct Measured {
    pub function: String,
    pub route: String,
    /// Process start to first `next` poll, one per cold start.
    pub init: Vec<Duration>,
    /// The first invocation after each cold start: (total, emulator).
    pub first: Vec<(Duration, Duration)>,
    /// Warm invocations: (total, emulator).
    pub warm: Vec<(Duration, Duration)>,
    /// `VmHWM` after the warm invocations, KiB.
    pub peak_rss_kib: u64,
    /// Emulator calls per warm invocation, by operation.
    pub calls_per_invocation: BTreeMap<String, f64>,
    /// Emulator round trips waited for one after the other, per warm
    /// invocation (calls in flight together count once).
    pub round_trips_per_invocation: f64,
    /// CPU time (user + system) the process used per warm invocation.
    pub cpu_per_invocation: Duration,
}

/// A running bootstrap and its Runtime API.
struct Process {
    function: String,
    child: tokio::process::Child,
    api: RuntimeApi,
    init: Duration,
}

impl Process {
    async fn invoke(&self, payload: &Value) -> Result<Outcome, BenchError> {
        let outcome = self
            .api
            .invoke(payload.to_string(), PATIENCE)
            .await
            .map_err(|source| BenchError::Runtime {
                function: self.function.clone(),
                source,
            })?;
        if !outcome.succeeded {
            return Err(self.failed(
                "invocation error",
                String::from_utf8_lossy(&outcome.body).into_owned(),
            ));
        }
        Ok(outcome)
    }

    /// Invokes and requires a 2xx proxy response; returns its JSON body.
    async fn call(&self, payload: &Value) -> Result<(Value, Outcome), BenchError> {
        let outcome = self.invoke(payload).await?;
        let answer: Value = serde_json::from_slice(&outcome.body)
            .map_err(|err| self.failed("answer is not JSON", err.to_string()))?;
        // Proxy responses carry a status; the stream worker's answer is a
        // batch response, whose failures are what count.
        let status = answer["statusCode"].as_u64().unwrap_or(200);
        if !(200..300).contains(&status) {
            return Err(self.failed(&format!("status {status}"), answer.to_string()));
        }
        if answer["batchItemFailures"]
            .as_array()
            .is_some_and(|failures| !failures.is_empty())
        {
            return Err(self.failed("records failed", answer.to_string()));
        }
        let body = match answer.get("body").and_then(Value::as_str) {
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => answer,
        };
        Ok((body, outcome))
    }

    fn failed(&self, what: &str, detail: String) -> BenchError {
        BenchError::Failed {
            function: self.function.clone(),
            what: what.to_owned(),
            detail,
        }
    }

    /// User plus system CPU time of the process so far.
    fn cpu_time(&self) -> Duration {
        let Some(pid) = self.child.id() else {
            return Duration::ZERO;
        };
        // Fields 14 and 15 of /proc/<pid>/stat, in clock ticks (USER_HZ,
        // 100 on Linux); the command name in field 2 may hold spaces, so
        // count from its closing parenthesis.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks: u64 =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some(Duration::from_millis(ticks * 10))
            })
            .unwrap_or_default()
    }

    fn peak_rss_kib(&self) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The benchmark's side of the world: the emulator proxy and its clock.
pub struct Bench {
    config: BenchConfig,
    clock: EmulatorClock,
    proxy: SocketAddr,
}

impl Bench {
    pub async fn start(config: BenchConfig) -> Result<Self, BenchError> {
        let clock = EmulatorClock::default();
        let proxy = emulator_proxy::start(&config.emulator, clock.clone())
            .await
            .map_err(|err| BenchError::Setup(format!("starting the emulator proxy: {err}")))?;
        std::fs::create_dir_all(&config.logs)
            .map_err(|err| BenchError::Setup(format!("creating {:?}: {err}", config.logs)))?;
        Ok(Self {
            config,
            clock,
            proxy,
        })
    }

    pub fn binary(&self, function: &str) -> PathBuf {
        self.config.binaries.join(function)
    }

    /// Starts `function`'s bootstrap with the environment Lambda gives it,
    /// and waits for its first poll.
    async fn spawn(&self, function: &str) -> Result<Process, BenchError> {
        let api = RuntimeApi::start(function, self.clock.clone())
            .await
            .map_err(|err| BenchError::Setup(format!("starting a runtime API: {err}")))?;
        let log_path = self.config.logs.join(format!("{function}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|err| BenchError::Setup(format!("opening {log_path:?}: {err}")))?;
        let log_err = log
            .try_clone()
            .map_err(|err| BenchError::Setup(format!("opening {log_path:?}: {err}")))?;
        let proxy = format!("http://{}", self.proxy);
        let mut command = tokio::process::Command::new(self.binary(function));
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            // Per-service endpoints rather than AWS_ENDPOINT_URL, with which
            // the functions keep the system's roots for an emulator's TLS:
            // this way they build the HTTPS client they build on AWS.
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy)
            .env("AWS_ENDPOINT_URL_S3", &proxy)
            .env("AWS_ENDPOINT_URL_SESV2", &proxy)
            .env("WS_MANAGEMENT_ENDPOINT", format!("{proxy}/{STAGE}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = command.spawn().map_err(|err| {
            BenchError::Setup(format!(
                "starting {:?}: {err} (built? see make bench)",
                self.binary(function)
            ))
        })?;
        // A bootstrap that fails its config exits at once: say so then,
        // rather than after the whole wait for a first poll.
        let polled_at = tokio::select! {
            polled = api.first_poll(PATIENCE) => polled.map_err(|source| BenchError::Runtime {
                function: function.to_owned(),
                source,
            })?,
            status = child.wait() => {
                return Err(BenchError::Failed {
                    function: function.to_owned(),
                    what: "exited before its first poll".into(),
                    detail: format!("{status:?}; its output is in {log_path:?}"),
                });
            }
        };
        Ok(Process {
            function: function.to_owned(),
            child,
            api,
            init: polled_at - spawned_at,
        })
    }

    /// Builds what the representative routes read, through the bootstraps.
    pub async fn fixture(&self) -> Result<Fixture, BenchError> {
        let run = ulid::Ulid::new().to_string().to_lowercase();
        let auth = self.spawn("auth").await?;
        let mut users = Vec::new();
        for name in ["alice", "bob"] {
            let body = json!({"name": name, "email": format!("{name}-{run}@example.com"), "password": "bench-password-1"});
            let (answer, _) = auth
                .call(&rest_event(
                    "POST",
                    "/api/v1/auth/register",
                    "/api/v1/auth/register",
                    None,
                    Some(&body),
                ))
                .await?;
            users.push(text(&answer["data"]["accessToken"], "accessToken")?);
        }
        auth.stop().await;
        let (alice, bob) = (users[0].clone(), users[1].clone());

        let posts = self.spawn("posts").await?;
        let post = json!({"title": "Benchmark", "body": "A post to read.", "tags": ["bench"]});
        let (answer, _) = posts
            .call(&rest_event(
                "POST",
                "/api/v1/posts",
                "/api/v1/posts",
                Some(&alice),
                Some(&post),
            ))
            .await?;
        let post_id = text(&answer["data"]["id"], "post id")?;
        posts
            .call(&rest_event(
                "POST",
                "/api/v1/posts/{id}/comments",
                &format!("/api/v1/posts/{post_id}/comments"),
                Some(&bob),
                Some(&json!({"body": "A comment that notifies alice."})),
            ))
            .await?;
        posts.stop().await;

        let uploads = self.spawn("uploads").await?;
        let upload = json!({"filename": "avatar.png", "contentType": "image/png", "size": 1024, "purpose": "avatar"});
        let (answer, _) = uploads
            .call(&rest_event(
                "POST",
                "/api/v1/uploads",
                "/api/v1/uploads",
                Some(&alice),
                Some(&upload),
            ))
            .await?;
        let upload_id = text(&answer["data"]["upload"]["id"], "upload id")?;
        uploads.stop().await;

        let connection_id = "YmVuY2hjb25uMDE=".to_owned();
        let websocket = self.spawn("websocket").await?;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("127.0.0.1"),
        );
        websocket
            .call(&crate::ws::connect_event(
                &headers,
                Some(&format!("token={alice}")),
                ws_context(&connection_id, "$connect", "CONNECT"),
            ))
            .await?;
        websocket.stop().await;

        let notification_record = self.notification_record().await?;
        Ok(Fixture {
            alice,
            post_id,
            upload_id,
            connection_id,
            notification_record,
        })
    }

    /// The stream record of the comment notification the fixture created,
    /// read from the emulator's stream as the event source mapping would.
    async fn notification_record(&self) -> Result<Value, BenchError> {
        let sdk = platform::aws::load_sdk_config().await;
        let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
        let (stream_arn, iterators) = crate::streams::shard_iterators(
            &sdk,
            &streams,
            &self.config.table_name,
            ShardIteratorType::TrimHorizon,
        )
        .await
        .map_err(|err| BenchError::Setup(format!("reading the stream: {err}")))?;
        let mut latest = None;
        for first in iterators {
            let mut iterator = Some(first);
            while let Some(current) = iterator.take() {
                let page = streams
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .map_err(|err| {
                        BenchError::Setup(format!(
                            "reading the stream: {}",
                            aws_sdk_dynamodbstreams::error::DisplayErrorContext(err)
                        ))
                    })?;
                if page.records().is_empty() {
                    break;
                }
                for record in page.records() {
                    let json = crate::streams::record_json(record, &stream_arn, "us-east-1");
                    if json["eventName"] == "INSERT"
                        && json["dynamodb"]["NewImage"]["entity"]["S"] == "notification"
                    {
                        latest = Some(json);
                    }
                }
                iterator = page.next_shard_iterator;
            }
        }
        latest.ok_or_else(|| BenchError::Setup("no notification record in the stream".into()))
    }

    /// Invokes, and for a function that answers through `@connections`,
    /// checks that what it pushed holds `pushed`.
    async fn call_checked(
        &self,
        process: &Process,
        event: &Value,
        pushed: Option<&str>,
    ) -> Result<Outcome, BenchError> {
        self.clock.take_last_push();
        let outcome = process.call(event).await?.1;
        if let Some(expected) = pushed {
            let push = self.clock.take_last_push();
            if !String::from_utf8_lossy(&push).contains(expected) {
                return Err(process.failed(
                    &format!("pushed no {expected}"),
                    String::from_utf8_lossy(&push).into_owned(),
                ));
            }
        }
        Ok(outcome)
    }

    /// Cold starts, first invocations and warm invocations of
    /// `invocation`'s function.
    pub async fn measure(&self, invocation: &Invocation) -> Result<Measured, BenchError> {
        let (function, event, pushed) = (invocation.function, &invocation.event, invocation.pushes);
        let mut measured = Measured {
            function: function.to_owned(),
            route: invocation.route.clone(),
            init: Vec::new(),
            first: Vec::new(),
            warm: Vec::with_capacity(self.config.warm_invocations),
            peak_rss_kib: 0,
            calls_per_invocation: BTreeMap::new(),
            round_trips_per_invocation: 0.0,
            cpu_per_invocation: Duration::ZERO,
        };
        for cold_start in 0..self.config.cold_starts.max(1) {
            let process = self.spawn(function).await?;
            measured.init.push(process.init);
            let first = self.call_checked(&process, event, pushed).await?;
            measured.first.push((first.elapsed, first.emulator));
            if cold_start == 0 {
                let calls_before = self.clock.calls();
                let round_trips_before = self.clock.round_trips();
                let cpu_before = process.cpu_time();
                for _ in 0..self.config.warm_invocations {
                    let outcome = self.call_checked(&process, event, pushed).await?;
                    measured.warm.push((outcome.elapsed, outcome.emulator));
                }
                measured.calls_per_invocation = per_invocation(
                    &calls_before,
                    &self.clock.calls(),
                    self.config.warm_invocations,
                );
                measured.round_trips_per_invocation =
                    (self.clock.round_trips() - round_trips_before) as f64
                        / self.config.warm_invocations.max(1) as f64;
                measured.cpu_per_invocation = process.cpu_time().saturating_sub(cpu_before)
                    / self.config.warm_invocations.max(1) as u32;
                measured.peak_rss_kib = process.peak_rss_kib();
            }
            process.stop().await;
        }
        Ok(measured)
    }
}

fn per_invocation(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    invocations: usize,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(op, n)| {
            let delta = n - before.get(op).copied().unwrap_or(0);
            (op.clone(), delta as f64 / invocations.max(1) as f64)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

fn text(value: &Value, what: &str) -> Result<String, BenchError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::Setup(format!("no {what} in the answer")))
}

/// One function's representative invocation.
pub struct Invocation {
    pub function: &'static str,
    pub route: String,
    pub event: Value,
    /// For a function that answers through `@connections`: what every push
    /// must contain (so a rate-limited or failed frame is not measured).
    pub pushes: Option<&'static str>,
}

impl Invocation {
    fn new(function: &'static str, route: &str, event: Value) -> Self {
        Self {
            function,
            route: route.to_owned(),
            event,
            pushes: None,
        }
    }

    fn pushing(mut self, expected: &'static str) -> Self {
        self.pushes = Some(expected);
        self
    }
}

/// What the representative routes read.
pub struct Fixture {
    pub alice: String,
    pub post_id: String,
    pub upload_id: String,
    pub connection_id: String,
    pub notification_record: Value,
}

impl Fixture {
    /// Each function's representative invocation. REST functions get an
    /// authenticated GET, the hot path of a social app; the WebSocket
    /// function a `ping` frame; the stream worker the notification record
    /// of a comment, which it pushes to a socket.
    pub fn invocations(&self) -> Vec<Invocation> {
        let get =
            |resource: &str, path: &str| rest_event("GET", resource, path, Some(&self.alice), None);
        vec![
            Invocation::new("hello", "(payload echo)", json!({"hello": "world"})),
            Invocation::new("health", "GET /health", get("/health", "/health")),
            Invocation::new(
                "auth",
                "GET /api/v1/auth/profile",
                get("/api/v1/auth/profile", "/api/v1/auth/profile"),
            ),
            Invocation::new(
                "users",
                "GET /api/v1/users/me",
                get("/api/v1/users/me", "/api/v1/users/me"),
            ),
            Invocation::new(
                "posts",
                "GET /api/v1/posts/{id}",
                get(
                    "/api/v1/posts/{id}",
                    &format!("/api/v1/posts/{}", self.post_id),
                ),
            ),
            Invocation::new(
                "notifications",
                "GET /api/v1/notifications",
                get("/api/v1/notifications", "/api/v1/notifications"),
            ),
            Invocation::new(
                "uploads",
                "GET /api/v1/uploads/{id}",
                get(
                    "/api/v1/uploads/{id}",
                    &format!("/api/v1/uploads/{}", self.upload_id),
                ),
            ),
            Invocation::new(
                "websocket",
                "frame {action: ping}",
                json!({
                    "requestContext": ws_context(&self.connection_id, "ping", "MESSAGE"),
                    "body": r#"{"action":"ping"}"#,
                    "isBase64Encoded": false,
                }),
            )
            .pushing(r#""type":"pong""#),
            Invocation::new(
                "stream",
                "comment notification record",
                json!({"Records": [self.notification_record]}),
            )
            .pushing(r#""type":"notification""#),
        ]
    }
}

/// The `requestContext` of a WebSocket event of the benchmark's stage.
pub fn ws_context(connection_id: &str, route_key: &str, event_type: &str) -> Value {
    let connected_at = chrono::Utc::now().timestamp_millis();
    crate::ws::request_context(
        STAGE,
        connection_id,
        route_key,
        event_type,
        connected_at,
        "127.0.0.1",
        Some("bench"),
    )
}

/// A REST proxy event for `path` (matched by the template's `resource`),
/// with `Authorization: Bearer <token>` when a token is given.
pub fn rest_event(
    method: &str,
    resource: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Value {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "api.bench.local")
        .header(http::header::USER_AGENT, "bench");
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(http::header::CONTENT_TYPE, "application/json");
    }
    let (parts, ()) = request
        .body(())
        .expect("a well-formed request")
        .into_parts();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let route = ApiRoute {
        function: String::new(),
        path: resource.to_owned(),
        method: method.to_owned(),
    };
    let path_params = crate::rest::path_parameters(&route, path)
        .unwrap_or_else(|| panic!("{path} is not a path of {resource}"));
    crate::rest::proxy_event(
        STAGE,
        &route,
        &parts,
        path_params,
        body.as_bytes(),
        "127.0.0.1:40000".parse().expect("an address"),
    )
}

/// The deflated zip Lambda would be given for a bootstrap, in bytes.
pub fn zip_size(bootstrap: &Path) -> Result<u64, BenchError> {
    if !bootstrap.is_file() {
        return Err(BenchError::Setup(format!("{bootstrap:?} is not built")));
    }
    let out = std::env::temp_dir().join(format!("bench-{}.zip", ulid::Ulid::new()));
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
             \x20   z.write(sys.argv[2], 'bootstrap')",
        ])
        .arg(&out)
        .arg(bootstrap)
        .status()
        .map_err(|err| BenchError::Setup(format!("running python3 to zip: {err}")))?;
    if !status.success() {
        return Err(BenchError::Setup(format!("zipping {bootstrap:?} failed")));
    }
    let size = std::fs::metadata(&out)
        .map(|m| m.len())
        .map_err(|err| BenchError::Setup(format!("reading {out:?}: {err}")))?;
    let _ = std::fs::remove_file(&out);
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_events_are_what_lambda_http_accepts() {
        let event = rest_event(
            "GET",
            "/api/v1/posts/{id}",
            "/api/v1/posts/42",
            Some("token"),
            None,
        );
        let request: lambda_http::request::LambdaRequest =
            serde_json::from_value(event.clone()).unwrap();
        assert!(matches!(
            request,
            lambda_http::request::LambdaRequest::ApiGatewayV1(_)
        ));
        assert_eq!(event["pathParameters"]["id"], "42");
        assert_eq!(event["requestContext"]["stage"], STAGE);
        assert_eq!(event["headers"]["authorization"], "Bearer token");
    }
}
