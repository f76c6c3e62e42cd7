//! Liveness, readiness and the API's own description (docs/API.md,
//! Health): `/health`, `/ready`, `/openapi.json` and `/docs`.
//!
//! `/health` answers from memory and touches nothing, so it stays cheap for
//! load balancers and uptime checks. `/ready` asks DynamoDB and S3, each with
//! a short timeout, and names whichever is down.

use std::{sync::Arc, time::Duration};

use aws_config::SdkConfig;
use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{SecondsFormat, Utc};
use model::Table;
use platform::{
    ApiResponse, AppError,
    aws::AwsClients,
    config::{ConfigError, Source, StorageConfig},
    envelope::API_VERSION,
    error::ErrorChain,
    http::{HttpOptions, HttpService, http_service},
};
use serde::Serialize;

/// How long one readiness check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The REST API's OpenAPI document, generated from the route crates into
/// this committed file (a test fails when it is stale), so that health
/// links none of them.
const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// What the health routes need, built once per cold start.
#[derive(Debug, Clone)]
struct HealthState {
    table: Table,
    s3: aws_sdk_s3::Client,
    bucket: Arc<str>,
}

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local gateway and the tests all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<HttpService, ConfigError> {
    let storage = StorageConfig::from_source(source)?;
    let clients = AwsClients::new(sdk, &storage);
    let state = HealthState {
        table: Table::new(clients.dynamodb, storage.table_name.clone()),
        s3: clients.s3,
        bucket: storage.bucket_name.as_str().into(),
    };
    Ok(http_service(router(state), HttpOptions::public(source)?))
}

fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .with_state(state)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthData {
    status: &'static str,
    version: &'static str,
    time: String,
}

/// GET /health
async fn health() -> ApiResponse<HealthData> {
    ApiResponse::ok(
        "Service is healthy",
        HealthData {
            status: "ok",
            version: API_VERSION,
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        },
    )
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Checks {
    dynamodb: &'static str,
    s3: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyData {
    status: &'static str,
    checks: Checks,
}

async fn check<F>(name: &'static str, probe: F) -> &'static str
where
    F: Future<Output = Result<(), AppError>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) => {
            tracing::warn!(check = name, error = %ErrorChain(&err), "readiness check failed");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!(
                check = name,
                timeout_ms = CHECK_TIMEOUT.as_millis() as u64,
                "readiness check timed out"
            );
            "unavailable"
        }
    }
}

/// GET /ready
async fn ready(State(state): State<HealthState>) -> Response {
    let s3_probe = async {
        state
            .s3
            .head_bucket()
            .bucket(state.bucket.as_ref())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| AppError::from(model::error::translate("s3", err)))
    };
    let dynamodb_probe = async { state.table.ping().await.map_err(AppError::from) };
    let (dynamodb, s3) = tokio::join!(check("dynamodb", dynamodb_probe), check("s3", s3_probe));
    let checks = Checks { dynamodb, s3 };
    let failing: Vec<&str> = [("dynamodb", dynamodb), ("s3", s3)]
        .into_iter()
        .filter(|(_, result)| *result != "ok")
        .map(|(name, _)| name)
        .collect();
    if failing.is_empty() {
        return ApiResponse::ok(
            "Service is ready",
            ReadyData {
                status: "ready",
                checks,
            },
        )
        .into_response();
    }
    AppError::NotReady {
        failing: failing.join(", "),
    }
    .into_response_with(Some(ReadyData {
        status: "not_ready",
        checks,
    }))
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use platform::openapi::{ApiBuilder, Data, Route};
    use utoipa::openapi::HttpMethod::Get;
    let mut api = ApiBuilder::new();
    let health = api.schema::<HealthData>();
    let ready = api.schema::<ReadyData>();
    api.route(
        Route::new(Get, "/health", "Liveness")
            .public()
            .data(Data::One(health)),
    );
    api.route(
        Route::new(Get, "/ready", "Readiness of DynamoDB and S3")
            .public()
            .data(Data::One(ready)),
    );
    api.route(
        Route::new(Get, "/openapi.json", "This document (not enveloped)")
            .public()
            .data(Data::Raw("application/json")),
    );
    api.route(
        Route::new(Get, "/docs", "An HTML page rendering this document")
            .public()
            .data(Data::Raw("text/html")),
    );
    api.build()
}

/// GET /openapi.json
async fn openapi_json() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

/// The viewer loads from a CDN in the reader's browser; the function itself
/// fetches nothing.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Social API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
<script id="api-reference" data-url="openapi.json"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>
"#;

/// GET /docs
async fn docs() -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DOCS_PAGE,
    )
        .into_response()
}
