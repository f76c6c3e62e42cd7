//! Structured JSON logs for CloudWatch.
//!
//! Every line carries the fields of the request span opened by the `http`
//! middleware (`requestId`, `lambdaRequestId`, `traceId`), so one request can
//! be followed through every line it wrote. The level comes from `RUST_LOG`,
//! or `LOG_LEVEL`, and defaults to `info`.
//!
//! Whatever those say, only this workspace's own crates log below `info`.
//! Below it the crates under ours print the secrets passing through them:
//! the Lambda runtime every raw event it is handed (`Authorization:
//! Bearer` headers, bodies with passwords and tokens, the WebSocket
//! `?token=`), the AWS SDK every request and response it sends and what it
//! signs (the text of a reset email, with its token), and the HTTP and TLS
//! stacks what they move. Our own lines never carry a secret, at any level;
//! `tests/logs` runs the real functions at `trace` and searches what they
//! print for every secret they were given.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, LevelFilter, filter_fn},
    fmt::{self, MakeWriter},
    prelude::*,
};

use crate::config::{ProcessEnv, Source, present};

/// The crates that log at whatever level is asked: the workspace's own
/// (libraries and binaries; a test in `tests/repo` checks every function
/// crate is here). Any other crate is held to `DEPENDENCY_MAX_LEVEL`, a new
/// dependency included, so a dependency cannot start printing payloads
/// because someone turned the level up.
pub const OWN_CRATES: [&str; 13] = [
    "model",
    "platform",
    "auth",
    "health",
    "notifications",
    "posts",
    "stream",
    "uploads",
    "users",
    "websocket",
    "infra",
    "local_gateway",
    "provision",
];

/// The most verbose level any other crate may log at.
pub const DEPENDENCY_MAX_LEVEL: Level = Level::INFO;

/// Whether `target` (a module path, `auth::routes`) is one of ours: its
/// crate is named exactly, so `modeling` is not `model`.
fn is_own(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    OWN_CRATES.contains(&krate)
}

fn may_log(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= DEPENDENCY_MAX_LEVEL || is_own(metadata.target())
}

/// `RUST_LOG` (any `tracing` filter) if it parses, else the level
/// `LOG_LEVEL` names, else `info`: a bad value never stops a cold start.
/// `LOG_LEVEL` is a level only, so a typo is not taken for a crate's name
/// (which would silence every other one).
fn requested(source: &dyn Source) -> EnvFilter {
    if let Some(filter) =
        present(source, "RUST_LOG").and_then(|directives| EnvFilter::try_new(directives).ok())
    {
        return filter;
    }
    let level = present(source, "LOG_LEVEL")
        .and_then(|level| level.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    EnvFilter::default().add_directive(level.into())
}

/// The subscriber every binary installs, writing JSON lines to `writer`:
/// the level `source` asks for, within the dependencies' cap.
pub fn subscriber<W>(source: &dyn Source, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_writer(writer);
    // The cap is a filter of its own beside the requested one, not a
    // directive among them, so that no `RUST_LOG` can lift it.
    let filter = requested(source).and(filter_fn(may_log));
    tracing_subscriber::registry().with(json.with_filter(filter))
}

/// Installs the JSON subscriber on stdout, configured from the process
/// environment; a second call (tests) is a no-op.
pub fn init() {
    let _ = subscriber(&ProcessEnv, std::io::stdout).try_init();
}

/// Implements `Debug` for types that hold a secret (a password, a token, an
/// email whose link holds one) as their name alone, `Type { .. }`: no `{:?}`
/// in a log line or a panic message can print the secret, and a
/// `#[derive(Debug)]` put back beside it would not compile.
#[macro_export]
macro_rules! redacted_debug {
    ($($type:ident),+ $(,)?) => {
        $(
            impl ::std::fmt::Debug for $type {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    f.write_str(concat!(stringify!($type), " { .. }"))
                }
            }
        )+
    };
}

/// A log writer for the crate's unit tests: what a subscriber wrote, as
/// text, so a test can read what a line would have told an operator.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    /// The messages that reach the log, under the subscriber `init` would
    /// install with these variables, of one event per target and level.
    fn logged(variables: &[(&str, &str)]) -> Vec<String> {
        let env: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let source = move |name: &str| env.get(name).cloned();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber(&source, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            // `target:` must be a constant, hence one line per target.
            macro_rules! each_level {
                ($target:literal) => {
                    tracing::trace!(target: $target, "{} trace", $target);
                    tracing::debug!(target: $target, "{} debug", $target);
                    tracing::info!(target: $target, "{} info", $target);
                    tracing::warn!(target: $target, "{} warn", $target);
                };
            }
            each_level!("lambda_runtime::layers::api_response");
            each_level!("lambda_http");
            each_level!("aws_smithy_runtime::client::orchestrator");
            each_level!("aws_sigv4::http_request::sign");
            each_level!("hyper_util::client::legacy");
            each_level!("some_future_dependency");
            each_level!("modeling");
            each_level!("auth::routes");
            each_level!("platform");
        });
        let output = captured.text();
        output
            .lines()
            .map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
                line["message"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    const DEPENDENCIES: [&str; 7] = [
        "lambda_runtime::layers::api_response",
        "lambda_http",
        "aws_smithy_runtime::client::orchestrator",
        "aws_sigv4::http_request::sign",
        "hyper_util::client::legacy",
        "some_future_dependency",
        "modeling",
    ];

    fn expect(lines: &[String], target: &str, levels: &[&str]) {
        for level in ["trace", "debug", "info", "warn"] {
            let line = format!("{target} {level}");
            assert_eq!(
                lines.contains(&line),
                levels.contains(&level),
                "{line} in {lines:#?}"
            );
        }
    }

    #[test]
    fn dependencies_never_log_below_info_whatever_the_level_asked() {
        for variables in [
            &[("LOG_LEVEL", "trace")][..],
            &[("RUST_LOG", "trace")],
            &[(
                "RUST_LOG",
                "lambda_runtime=trace,aws_smithy_runtime=trace,hyper_util=trace,trace",
            )],
        ] {
            let lines = logged(variables);
            for dependency in DEPENDENCIES {
                expect(&lines, dependency, &["info", "warn"]);
            }
            for own in ["auth::routes", "platform"] {
                expect(&lines, own, &["trace", "debug", "info", "warn"]);
            }
        }
    }

    #[test]
    fn the_level_comes_from_rust_log_then_log_level_then_info() {
        let lines = logged(&[("RUST_LOG", "auth=debug,warn"), ("LOG_LEVEL", "trace")]);
        expect(&lines, "auth::routes", &["debug", "info", "warn"]);
        expect(&lines, "platform", &["warn"]);
        for unusable in ["", "  ", "auth=nonsense"] {
            let lines = logged(&[("RUST_LOG", unusable), ("LOG_LEVEL", "debug")]);
            expect(&lines, "platform", &["debug", "info", "warn"]);
        }
        for unusable in ["loud", "platform"] {
            let lines = logged(&[("LOG_LEVEL", unusable)]);
            expect(&lines, "platform", &["info", "warn"]);
            expect(&lines, "auth::routes", &["info", "warn"]);
        }
        let lines = logged(&[("LOG_LEVEL", " WARN ")]);
        expect(&lines, "platform", &["warn"]);
        let lines = logged(&[]);
        expect(&lines, "auth::routes", &["info", "warn"]);
        expect(&lines, "lambda_http", &["info", "warn"]);
    }

    #[test]
    fn own_crates_are_named_whole() {
        assert!(is_own("auth"));
        assert!(is_own("auth::routes"));
        assert!(is_own("local_gateway"));
        assert!(!is_own("authz::routes"));
        assert!(!is_own("aws_sdk_dynamodb"));
    }

    #[test]
    fn a_redacted_type_prints_its_name_only() {
        struct Login {
            #[expect(dead_code, reason = "only its absence from Debug matters")]
            password: String,
        }
        redacted_debug!(Login);
        let login = Login {
            password: "hunter2".into(),
        };
        assert_eq!(format!("{login:?}"), "Login { .. }");
        assert_eq!(format!("{login:#?}"), "Login { .. }");
    }
}
