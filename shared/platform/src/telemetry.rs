//! Structured JSON logs for CloudWatch.
//!
//! Every line carries the fields of the request span opened by the `http`
//! middleware (`requestId`, `lambdaRequestId`, `traceId`), so one request can
//! be followed through every line it wrote. The level comes from `RUST_LOG`,
//! or `LOG_LEVEL`, and defaults to `info`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the JSON subscriber; a second call (tests) is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into()))
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .try_init();
}
