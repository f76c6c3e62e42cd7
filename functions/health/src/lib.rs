//! Liveness, readiness and the API's own description (docs/API.md,
//! Health): `/health`, `/ready`, `/openapi.json` and `/docs`.
//!
//! `/health` answers from memory and touches nothing, so it stays cheap for
//! load balancers and uptime checks. `/ready` asks DynamoDB and S3, each with
//! a short timeout, and names whichever is down. `/openapi.json` is the
//! committed document with the caller's `servers` ([`document`]); `/docs` a
//! page that renders it with a pinned renderer ([`docs`]).

use std::{sync::Arc, time::Duration};

use aws_config::SdkConfig;
use axum::{
    Extension, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{SecondsFormat, Utc};
use docs::{DocsConfig, DocsPage};
use lambda_http::request::RequestContext;
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

pub mod docs;
pub mod document;

/// How long one readiness check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health routes need, built once per cold start.
#[derive(Debug, Clone)]
struct HealthState {
    table: Table,
    s3: aws_sdk_s3::Client,
    bucket: Arc<str>,
    docs: Arc<DocsPage>,
}

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local gateway and the tests all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<HttpService, ConfigError> {
    let storage = StorageConfig::from_source(source)?;
    let docs = DocsPage::new(&DocsConfig::from_source(source)?);
    let clients = AwsClients::new(sdk, &storage);
    let state = HealthState {
        table: Table::new(clients.dynamodb, storage.table_name.clone()),
        s3: clients.s3,
        bucket: storage.bucket_name.as_str().into(),
        docs: Arc::new(docs),
    };
    Ok(http_service(router(state), HttpOptions::public(source)?))
}

fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(document::ROUTE, get(openapi_json))
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

/// GET /openapi.json. The request context is API Gateway's (lambda_http
/// puts it on every request it builds); without one, the document is for
/// the root.
async fn openapi_json(context: Option<Extension<RequestContext>>) -> Response {
    document::response(context.as_deref())
}

/// GET /docs
async fn docs(State(state): State<HealthState>) -> Response {
    state.docs.response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use lambda_http::{RequestExt, aws_lambda_events::apigw::ApiGatewayProxyRequestContext};
    use tower::ServiceExt;

    /// The function as API Gateway's REST API calls it for `path` of stage
    /// `stage`, the client having asked for `asked`.
    async fn get(stage: &str, asked: &str, path: &str) -> Response {
        let variables = |name: &str| match name {
            "TABLE_NAME" | "BUCKET_NAME" => Some("unused".to_owned()),
            _ => None,
        };
        let sdk = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let service = build(&variables, &sdk).expect("configuration");
        let mut context = ApiGatewayProxyRequestContext::default();
        context.stage = Some(stage.to_owned());
        context.path = Some(asked.to_owned());
        let request = http::Request::builder()
            .uri(format!("/{stage}{path}"))
            .body(lambda_http::Body::Empty)
            .unwrap()
            .with_request_context(RequestContext::ApiGatewayV1(context));
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn the_document_names_the_prefix_it_was_reached_under() {
        for (stage, asked, base) in [
            ("prod", "/prod/openapi.json", "/prod"),
            ("prod", "/v1/openapi.json", "/v1"),
            ("local", "/openapi.json", "/"),
        ] {
            let response = get(stage, asked, "/openapi.json").await;
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()[http::header::CONTENT_TYPE],
                "application/json"
            );
            let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(document["servers"], serde_json::json!([{ "url": base }]));
            assert!(document["paths"]["/health"].is_object());
        }
    }

    #[tokio::test]
    async fn the_docs_page_is_served_with_its_policy() {
        let response = get("prod", "/prod/docs", "/docs").await;
        assert_eq!(response.status(), 200);
        let policy = response.headers()[http::header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            policy.starts_with("default-src 'none'; script-src"),
            "{policy}"
        );
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        let pinned = docs::AssetsUrl::Absolute(docs::DEFAULT_ASSETS_URL.into()).renderer_url();
        assert!(html.contains(&pinned), "{html}");
    }
}
