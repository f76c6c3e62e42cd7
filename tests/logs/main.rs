//! No secret in any log, at the most verbose level there is: the auth, users
//! and websocket functions run as Lambda runs them, each a process of its
//! own with `LOG_LEVEL=trace`, polling a mock of the Lambda Runtime API
//! (`infra::bench::runtime_api`) against the emulator. Every request that
//! carries a secret goes through them: register, verify-email, a wrong and
//! a right login, refresh, an authenticated GET (`Authorization: Bearer`)
//! of each REST function, forgot-password and reset-password (the tokens
//! travel in emails), a WebSocket `$connect?token=`, logout; and register
//! and forgot-password once more, whose emails the stream function (run the
//! same way, on its sweep's scheduled event) sends from an address SES
//! refuses, so that the failed sends are logged. Then all they printed,
//! standard output and error, is searched for every password, token and
//! one-time token they were given, for anything shaped like a JWT, and for
//! the `token=` of an email's link.
//!
//! A process of this binary is either the test or, when `LOGS_TEST_FUNCTION`
//! names one, that function, run as its `main` runs it: `telemetry::init`,
//! the SDK configuration from the environment, the runtime's loop. (No
//! harness: the test starts processes of itself.)

use std::{
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::Duration,
};

use infra::bench::{
    emulator_proxy::EmulatorClock, rest_event, runtime_api::RuntimeApi, ws_context,
};
use platform::{aws, config::ProcessEnv, telemetry};
use serde_json::{Value, json};
use tests::{EMAIL_FROM, REGION, TestApp};

/// Names the function a process of this binary is to be.
const FUNCTION: &str = "LOGS_TEST_FUNCTION";
/// How long a start, or one invocation, may take.
const PATIENCE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match std::env::var(FUNCTION) {
        Ok(function) => match runtime.block_on(serve(&function)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{function}: {err}");
                ExitCode::FAILURE
            }
        },
        Err(_) => {
            let started = std::time::Instant::now();
            runtime.block_on(no_secret_is_logged_at_trace());
            println!(
                "test no_secret_is_logged_at_trace ... ok ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
    }
}

/// What the function's `main` does (functions/<name>/src/main.rs).
async fn serve(function: &str) -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::load_sdk_config().await;
    match function {
        "auth" => lambda_http::run(auth::build(&ProcessEnv, &sdk)?).await,
        "users" => lambda_http::run(users::build(&ProcessEnv, &sdk)?).await,
        "websocket" => lambda_runtime::run(websocket::build(&ProcessEnv, &sdk)?).await,
        "stream" => lambda_runtime::run(stream::build(&ProcessEnv, &sdk)?.lambda()).await,
        other => Err(format!("no function {other:?} in this test").into()),
    }
}

/// One function's process and its Runtime API.
struct Function {
    /// Which process it is, in messages and its log's name.
    label: &'static str,
    api: RuntimeApi,
    log: PathBuf,
    _process: tokio::process::Child,
}

impl Function {
    /// Starts function `name` with `env` and what Lambda adds, its output
    /// in `dir`, and waits for its first poll.
    async fn start(
        name: &'static str,
        label: &'static str,
        env: &[(&str, String)],
        dir: &Path,
    ) -> Function {
        let api = RuntimeApi::start(name, EmulatorClock::default())
            .await
            .expect("a runtime API");
        let log = dir.join(format!("{label}.log"));
        let stdout = std::fs::File::create(&log).expect("a log file");
        let stderr = stdout.try_clone().expect("a log file");
        let process = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
            // Nothing of the caller's environment (a RUST_LOG, a profile):
            // only what a deployed function is given.
            .env_clear()
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .env(FUNCTION, name)
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "logs-test")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("a process of this binary");
        let function = Function {
            label,
            api,
            log,
            _process: process,
        };
        if let Err(err) = function.api.first_poll(PATIENCE).await {
            panic!("{label} did not start: {err}\n{}", function.output());
        }
        function
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Invokes with `event`; the proxy response's status and parsed body.
    async fn call(&self, event: Value) -> (u16, Value) {
        let outcome = self
            .api
            .invoke(event.to_string(), PATIENCE)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}\n{}", self.label, self.output()));
        assert!(
            outcome.succeeded,
            "{}: invocation error {}",
            self.label,
            String::from_utf8_lossy(&outcome.body)
        );
        let answer: Value = serde_json::from_slice(&outcome.body).expect("a JSON answer");
        let status = answer["statusCode"].as_u64().expect("a status") as u16;
        let body = answer["body"]
            .as_str()
            .and_then(|body| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null);
        (status, body)
    }

    /// Invokes with an event that is no HTTP request; whether it succeeded.
    async fn invoke(&self, event: Value) -> bool {
        self.api
            .invoke(event.to_string(), PATIENCE)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}\n{}", self.label, self.output()))
            .succeeded
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(rest_event("POST", path, path, token, Some(&body)))
            .await
    }
}

/// The secrets handed to the functions, named for the failure message.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, name: &str, value: &str) {
        assert!(value.len() >= 8, "{name} is too short to search for");
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// The tokens of a login, register or refresh answer.
    fn add_pair(&mut self, name: &str, data: &Value) -> String {
        let access = data["accessToken"].as_str().expect("an access token");
        self.add(&format!("{name} access token"), access);
        let refresh = data["refreshToken"].as_str().expect("a refresh token");
        self.add(&format!("{name} refresh token"), refresh);
        access.to_owned()
    }

    /// `line` with every secret replaced by its name, to be shown.
    fn masked(&self, line: &str) -> String {
        self.0.iter().fold(line.to_owned(), |line, (name, value)| {
            line.replace(value, &format!("<{name}>"))
        })
    }
}

async fn no_secret_is_logged_at_trace() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("logs-test-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("a log directory");
    let env = [
        ("LOG_LEVEL", "trace".to_owned()),
        ("AWS_ENDPOINT_URL", app.endpoint.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("TABLE_NAME", app.storage.table_name.clone()),
        ("BUCKET_NAME", app.storage.bucket_name.clone()),
        ("S3_FORCE_PATH_STYLE", "true".to_owned()),
        (
            "JWT_SECRET",
            "a-logs-test-secret-of-at-least-32-bytes".to_owned(),
        ),
        ("EMAIL_FROM", EMAIL_FROM.to_owned()),
        ("APP_URL", "http://app.test".to_owned()),
        // No push is made: $connect answers in its HTTP response.
        (
            "WS_MANAGEMENT_ENDPOINT",
            "http://127.0.0.1:9/local".to_owned(),
        ),
    ];
    // The stream function, mailing from an address SES does not know, and
    // taking every pending email at once.
    let mut refused = env.to_vec();
    for (name, value) in &mut refused {
        if *name == "EMAIL_FROM" {
            *value = "unverified@elsewhere.test".to_owned();
        }
    }
    refused.push(("OUTBOX_PENDING_GRACE_SECS", "0".to_owned()));
    refused.push(("EMAIL_RETRY_BASE_MS", "10".to_owned()));
    let (auth, users, websocket, unmailed) = tokio::join!(
        Function::start("auth", "auth", &env, &dir),
        Function::start("users", "users", &env, &dir),
        Function::start("websocket", "websocket", &env, &dir),
        Function::start("stream", "stream-refused-mail", &refused, &dir),
    );

    let mut secrets = Secrets::default();
    let run = ulid::Ulid::new().to_string();
    let email = format!("logs-{}@example.com", run.to_ascii_lowercase());
    let password = format!("first-Pass-{run}-1");
    let wrong = format!("wrong-Pass-{run}-2");
    let new_password = format!("new-Pass-{run}-3");
    secrets.add("password", &password);
    secrets.add("wrong password", &wrong);
    secrets.add("new password", &new_password);

    let (status, body) = auth
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Log Reader", "email": email, "password": password}),
        )
        .await;
    assert_eq!(status, 201, "register: {body}");
    secrets.add_pair("register", &body["data"]);

    let verify = emailed_token(&app, &email, "Verify").await;
    secrets.add("verification token", &verify);
    let (status, body) = auth
        .post("/api/v1/auth/verify-email", None, json!({"token": verify}))
        .await;
    assert_eq!(status, 200, "verify-email: {body}");

    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": wrong}),
        )
        .await;
    assert_eq!(status, 401, "a wrong password: {body}");
    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(status, 200, "login: {body}");
    let refresh = body["data"]["refreshToken"].as_str().unwrap().to_owned();
    secrets.add_pair("login", &body["data"]);

    let (status, body) = auth
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": refresh}),
        )
        .await;
    assert_eq!(status, 200, "refresh: {body}");
    let access = secrets.add_pair("refresh", &body["data"]);
    let profile = "/api/v1/auth/profile";
    let (status, body) = auth
        .call(rest_event("GET", profile, profile, Some(&access), None))
        .await;
    assert_eq!(status, 200, "profile: {body}");

    let (status, body) = auth
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": email}),
        )
        .await;
    assert_eq!(status, 200, "forgot-password: {body}");
    let reset = emailed_token(&app, &email, "Reset").await;
    secrets.add("reset token", &reset);
    let (status, body) = auth
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": reset, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "reset-password: {body}");

    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "login after the reset: {body}");
    let access = secrets.add_pair("second login", &body["data"]);
    let me = "/api/v1/users/me";
    let (status, body) = users
        .call(rest_event("GET", me, me, Some(&access), None))
        .await;
    assert_eq!(status, 200, "users/me: {body}");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("127.0.0.1"),
    );
    let (status, body) = websocket
        .call(infra::ws::connect_event(
            &headers,
            Some(&format!("token={access}")),
            ws_context("bG9ncy10ZXN0MDE=", "$connect", "CONNECT"),
        ))
        .await;
    assert_eq!(status, 200, "$connect: {body}");
    let (status, body) = auth
        .post("/api/v1/auth/logout", Some(&access), json!({}))
        .await;
    assert_eq!(status, 200, "logout: {body}");

    let other = format!("logs-other-{}@example.com", run.to_ascii_lowercase());
    let other_password = format!("other-Pass-{run}-4");
    secrets.add("unmailed user's password", &other_password);
    let (status, body) = auth
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Log Reader", "email": other, "password": other_password}),
        )
        .await;
    assert_eq!(status, 201, "register, its email refused: {body}");
    secrets.add_pair("unmailed register", &body["data"]);
    let (status, body) = auth
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": other}),
        )
        .await;
    assert_eq!(status, 200, "forgot-password, its email refused: {body}");
    let sweep = json!({
        "version": "0",
        "id": ulid::Ulid::new().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/OutboxSweep"],
        "detail": {}
    });
    assert!(unmailed.invoke(sweep).await, "the sweep ran");
    assert!(
        unmailed.output().matches("email not sent").count() >= 2,
        "the refused emails were logged:\n{}",
        unmailed.output()
    );

    let mut found = Vec::new();
    for function in [&auth, &users, &websocket, &unmailed] {
        let output = function.output();
        // The search means something only if the functions did log, at
        // the level asked for: the request lines, and the debug line that
        // marks each request's start.
        let completed = match function.label {
            "websocket" => "ws event completed",
            "stream-refused-mail" => "outbox swept",
            _ => "request completed",
        };
        assert!(
            output.contains(completed),
            "{} logged no {completed:?}:\n{output}",
            function.label
        );
        if !["websocket", "stream-refused-mail"].contains(&function.label) {
            assert!(
                output.contains(r#""level":"DEBUG""#) && output.contains("request started"),
                "{} logged nothing below info: was LOG_LEVEL=trace applied?\n{output}",
                function.label
            );
        }
        for (number, line) in output.lines().enumerate() {
            let leaked: Vec<&str> = secrets
                .0
                .iter()
                .filter(|(_, value)| line.contains(value.as_str()))
                .map(|(name, _)| name.as_str())
                .collect();
            // Every token the API issues is a JWT, whose header is base64
            // of `{"`, and an email's link ends in `token=<token>`: one
            // not seen above (a refused email's) is still a leak.
            let shaped: Vec<&str> = [("eyJ", "a JWT"), ("token=", "a link's token")]
                .into_iter()
                .filter(|(pattern, _)| line.contains(pattern))
                .map(|(_, what)| what)
                .collect();
            if !leaked.is_empty() || !shaped.is_empty() {
                found.push(format!(
                    "{}.log line {}: {leaked:?} {shaped:?}\n    {}",
                    function.label,
                    number + 1,
                    truncated(&secrets.masked(line)),
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "secrets in the logs at LOG_LEVEL=trace ({} lines; logs in {}):\n{}",
        found.len(),
        dir.display(),
        found.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The token of the latest email to `to` whose subject starts with
/// `subject`: what the user would click.
async fn emailed_token(app: &TestApp, to: &str, subject: &str) -> String {
    for _ in 0..50 {
        let emails = app.emails_to(to).await;
        if let Some(email) = emails
            .iter()
            .rev()
            .find(|email| email.subject.starts_with(subject))
        {
            return email.token();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {subject:?} email to {to}");
}

fn truncated(line: &str) -> String {
    const SHOWN: usize = 600;
    match line.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}
