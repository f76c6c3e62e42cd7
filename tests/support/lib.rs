//! Test harness: a real moto server over HTTP, a fresh table and bucket per
//! test, and the local gateway in front of the functions, so that a test
//! talks to the API the way a client does.
//!
//! `TestApp` reads like a client (`app.get("/health")`). Tests never share
//! state: each gets its own table and bucket on the shared emulator, and a
//! test that needs to stop the emulator starts its own.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, OnceLock},
};

use infra::{
    calls::{CallRecorder, Deployment},
    functions,
    provision::provision,
    rest::{self, RestGateway},
    streams,
    template::Template,
    ws,
};
use platform::{config::StorageConfig, cors::CorsConfig};
use serde_json::Value;

mod client;
mod snapshot;
mod uploads;
mod websocket;
pub use client::*;
pub use snapshot::*;
pub use uploads::*;
pub use websocket::*;

pub const REGION: &str = "us-east-1";

/// The workspace root, where template.yaml and .venv live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A moto server process. Dropping it stops the server.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts a moto server on a free port and waits until it answers.
    pub fn start() -> Moto {
        Moto::start_on(0)
    }

    /// Starts a moto server on `port` (0: any free one) and waits until it
    /// answers; fault-injection tests restart one where the functions
    /// already point.
    pub fn start_on(port: u16) -> Moto {
        let python = std::env::var("MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join(".venv/bin/python"));
        let mut child = Command::new(&python)
            .arg(workspace_root().join("infra/python/moto_launcher.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start moto with {}: {err} (run `make venv`)",
                    python.display()
                )
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("moto launcher output");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("moto did not start: {line:?}"));
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// The emulator shared by every test of this binary. Its launcher exits
    /// when this process does, since its standard input closes with it.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// Kills the server now, for fault-injection tests.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One isolated copy of the API: its own table and bucket, its own gateway.
pub struct TestApp {
    pub address: SocketAddr,
    pub ws_address: SocketAddr,
    pub endpoint: String,
    pub storage: StorageConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    /// The stream worker, for tests that hand it records themselves: those
    /// of changes moto never makes, such as a TTL deletion.
    pub stream: functions::StreamService,
    /// The stream function's scheduled entry point, the outbox sweep, for
    /// tests to run when they choose (no test app runs the schedule).
    pub sweep: functions::SweepService,
    /// Every AWS call the functions made, by function (and route).
    pub calls: Arc<CallRecorder>,
    client: reqwest::Client,
    _poller: AbortOnDrop,
}

/// Stops a background task with its test: the stream poller would
/// otherwise keep polling a table nobody uses.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// The sender every test app mails from.
pub const EMAIL_FROM: &str = "no-reply@social.test";

/// The environment a test app's functions read, as a Lambda would; tests
/// override single variables with `TestApp::spawn_with`.
fn test_environment(overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let mut env: HashMap<String, String> = [
        ("TABLE_NAME", format!("test-{id}")),
        ("BUCKET_NAME", format!("test-{id}")),
        ("S3_FORCE_PATH_STYLE", "true".to_owned()),
        (
            "JWT_SECRET",
            "test-secret-that-is-at-least-32-bytes-long".to_owned(),
        ),
        ("EMAIL_FROM", EMAIL_FROM.to_owned()),
        ("APP_URL", "http://app.test".to_owned()),
        // The sweep takes a new email at once, so a test without the stream
        // poller gets its emails by running it (`TestApp::emails_to`).
        ("OUTBOX_PENDING_GRACE_SECS", "0".to_owned()),
        // As under `make dev`: /docs loads its renderer from the gateway,
        // so it renders without internet.
        ("DOCS_ASSETS_URL", infra::cdn::LOCAL_CDN_PATH.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (name, value) in overrides {
        env.insert((*name).to_owned(), (*value).to_owned());
    }
    env
}

impl TestApp {
    /// An app on the shared emulator.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// An app on the shared emulator with some variables overridden.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_on_with(&Moto::shared().endpoint, overrides, false).await
    }

    /// An app that also runs the DynamoDB Streams poller, for tests of what
    /// the stream worker does. Others skip it: every poller is load on the
    /// one shared emulator.
    pub async fn spawn_live(overrides: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_on_with(&Moto::shared().endpoint, overrides, true).await
    }

    /// An app on the emulator at `endpoint`.
    pub async fn spawn_on(endpoint: &str) -> TestApp {
        TestApp::spawn_on_with(endpoint, &[], false).await
    }

    /// An app whose WebSocket gateway runs with `settings` (short limits, a
    /// lost `$disconnect`), for tests of how connections end; `streams`
    /// also runs the stream poller, as `spawn_live` does.
    pub async fn spawn_with_ws(settings: ws::WsSettings, streams: bool) -> TestApp {
        TestApp::spawn_on_with_ws(&Moto::shared().endpoint, &[], streams, settings).await
    }

    async fn spawn_on_with(endpoint: &str, overrides: &[(&str, &str)], streams: bool) -> TestApp {
        TestApp::spawn_on_with_ws(endpoint, overrides, streams, ws::WsSettings::AWS).await
    }

    async fn spawn_on_with_ws(
        endpoint: &str,
        overrides: &[(&str, &str)],
        streams: bool,
        ws_settings: ws::WsSettings,
    ) -> TestApp {
        // The WebSocket port must be known before the functions are built:
        // it is where they find the @connections API.
        let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let ws_address = ws_listener.local_addr().expect("address");
        let management = format!("http://{ws_address}/{}", rest::LOCAL_STAGE);
        let mut overrides = overrides.to_vec();
        if !overrides
            .iter()
            .any(|(name, _)| *name == "WS_MANAGEMENT_ENDPOINT")
        {
            overrides.push(("WS_MANAGEMENT_ENDPOINT", &management));
        }
        let env = test_environment(&overrides);
        let source = |name: &str| env.get(name).cloned();
        let storage = StorageConfig::from_source(&source).expect("test configuration");
        let cors = CorsConfig::from_source(&source).expect("test configuration");
        let sdk = platform::aws::sdk_config_for_endpoint(endpoint, REGION).await;
        let template =
            Template::load(workspace_root().join("template.yaml")).expect("template.yaml");
        let recorder = CallRecorder::logged(Deployment {
            region: REGION.to_owned(),
            table: storage.table_name.clone(),
            bucket: storage.bucket_name.clone(),
            stage: rest::LOCAL_STAGE.to_owned(),
            parameters: [("EmailFrom".to_owned(), EMAIL_FROM.to_owned())].into(),
        });
        let built = functions::build_with(&template, &source, &|function| {
            recorder.sdk_config(&sdk, function)
        })
        .expect("test configuration");
        provision(&sdk, &template, &storage, Some(EMAIL_FROM))
            .await
            .expect("provisioning");
        let gateway = RestGateway::new(&template, built.rest, rest::LOCAL_STAGE, cors)
            .expect("every routed function is built");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(rest::serve(listener, gateway));
        let ws_gateway = ws::WsGateway::with_settings(
            rest::LOCAL_STAGE,
            template.ws_routes.clone(),
            built.websocket,
            ws_settings,
        );
        tokio::spawn(ws::serve(ws_listener, ws_gateway));
        let stream = built.stream.clone();
        let sweep = built.sweep.clone();
        let poller = if streams {
            Some(
                // Lambda reads the stream with the function's own role.
                streams::start(
                    &sdk,
                    &recorder.sdk_config(&sdk, functions::stream_logical_id()),
                    &storage.table_name,
                    &template,
                    built.stream,
                )
                .await
                .expect("stream poller"),
            )
        } else {
            None
        };
        let clients = platform::aws::AwsClients::new(&sdk, &storage);
        TestApp {
            address,
            ws_address,
            endpoint: endpoint.to_owned(),
            storage,
            dynamodb: clients.dynamodb,
            s3: clients.s3,
            stream,
            sweep,
            calls: recorder,
            client: reqwest::Client::new(),
            _poller: AbortOnDrop(poller),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Sends a request with optional JSON body and extra headers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the gateway");
        Self::read(response).await
    }

    /// Sends raw bytes with a given content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> TestResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request reaches the gateway");
        Self::read(response).await
    }

    async fn read(response: reqwest::Response) -> TestResponse {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request("GET", path, None, &[]).await
    }
}

/// Asserts the envelope shape every response shares and returns its body.
pub fn assert_envelope(
    response: &TestResponse,
    status: u16,
    code: Option<&str>,
) -> HashMap<String, Value> {
    assert_eq!(
        response.status, status,
        "unexpected status: {:#}",
        response.body
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", response.body))
        .clone();
    assert_eq!(
        body["success"],
        Value::Bool(code.is_none()),
        "{:#}",
        response.body
    );
    assert!(body["message"].is_string());
    match code {
        Some(code) => assert_eq!(body["code"], code, "{:#}", response.body),
        None => assert!(!body.contains_key("code"), "{:#}", response.body),
    }
    let meta = body["meta"].as_object().expect("meta");
    for key in [
        "requestId",
        "timestamp",
        "durationMs",
        "path",
        "method",
        "version",
    ] {
        assert!(
            meta.contains_key(key),
            "meta.{key} missing: {:#}",
            response.body
        );
    }
    assert_eq!(response.header("x-request-id"), meta["requestId"].as_str());
    body.into_iter().collect()
}
