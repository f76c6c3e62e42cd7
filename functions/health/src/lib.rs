//! Liveness and readiness (API.md, Health table).
//!
//! `/health` answers from memory and touches nothing, so it stays cheap for
//! load balancers and uptime checks. `/ready` asks DynamoDB and S3, each with
//! a short timeout, and names whichever is down.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use shared::{
    ApiResponse, AppError,
    aws::AwsClients,
    config::StorageConfig,
    envelope::API_VERSION,
    store::{self, Table},
};

/// How long one readiness check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct HealthState {
    table: Table,
    s3: aws_sdk_s3::Client,
    bucket: Arc<str>,
}

impl HealthState {
    pub fn new(clients: &AwsClients, storage: &StorageConfig) -> Self {
        Self {
            table: Table::new(clients.dynamodb.clone(), storage.table_name.clone()),
            s3: clients.s3.clone(),
            bucket: storage.bucket_name.as_str().into(),
        }
    }
}

pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Checks {
    dynamodb: &'static str,
    s3: &'static str,
}

#[derive(Debug, Serialize)]
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
            tracing::warn!(check = name, error = %shared::error::ErrorChain(&err), "readiness check failed");
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
            .map_err(|err| store::translate("s3", err))
    };
    let (dynamodb, s3) = tokio::join!(check("dynamodb", state.table.ping()), check("s3", s3_probe));
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
