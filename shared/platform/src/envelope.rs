//! The response envelope of docs/API.md §1, shared by success and error.
//!
//! The per-request facts the envelope needs (`requestId`, path, start time)
//! are set once by the `http` middleware in a task-local, so a handler only
//! says what it returns and never builds `meta` itself.

use std::{borrow::Cow, time::Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use serde::Serialize;

/// The API version reported in `meta.version`: the workspace version.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Facts about the request in flight, known before the handler runs.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub request_id: String,
    pub started: Instant,
    pub path: String,
    pub method: String,
}

tokio::task_local! {
    static CURRENT_REQUEST: RequestInfo;
}

/// Runs `fut` with `info` as the request in flight.
pub async fn scope<F: Future>(info: RequestInfo, fut: F) -> F::Output {
    CURRENT_REQUEST.scope(info, fut).await
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub request_id: String,
    pub timestamp: String,
    pub duration_ms: f64,
    pub path: String,
    pub method: String,
    pub version: &'static str,
}

/// `meta` for the request in flight; outside one (a unit test) a fresh id.
pub fn current_meta() -> Meta {
    let now = model::clock::now_rfc3339();
    CURRENT_REQUEST
        .try_with(|info| Meta {
            request_id: info.request_id.clone(),
            timestamp: now.clone(),
            duration_ms: round_ms(info.started.elapsed().as_secs_f64() * 1000.0),
            path: info.path.clone(),
            method: info.method.clone(),
            version: API_VERSION,
        })
        .unwrap_or_else(|_| Meta {
            request_id: uuid::Uuid::new_v4().to_string(),
            timestamp: now,
            duration_ms: 0.0,
            path: String::new(),
            method: String::new(),
            version: API_VERSION,
        })
}

/// Milliseconds to one decimal place, as the contract's example shows.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub has_next: bool,
}

impl Pagination {
    pub fn new(limit: u32, next_cursor: Option<String>) -> Self {
        Self {
            limit,
            has_next: next_cursor.is_some(),
            next_cursor,
        }
    }
}

/// The body of every REST response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub success: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::error::FieldError>,
    pub meta: Meta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

/// Serialises `body` as the JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => crate::error::AppError::internal("serialising a response", err).into_response(),
    }
}

/// A successful answer: what a handler returns inside `Ok`.
#[derive(Debug)]
pub struct ApiResponse<T> {
    status: StatusCode,
    message: Cow<'static, str>,
    data: Option<T>,
    pagination: Option<Pagination>,
}

impl<T: Serialize> ApiResponse<T> {
    /// 200 with `data`.
    pub fn ok(message: impl Into<Cow<'static, str>>, data: T) -> Self {
        Self {
            status: StatusCode::OK,
            message: message.into(),
            data: Some(data),
            pagination: None,
        }
    }

    /// 201 with `data`.
    pub fn created(message: impl Into<Cow<'static, str>>, data: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            ..Self::ok(message, data)
        }
    }

    /// 200 with one page of a list.
    pub fn page(message: impl Into<Cow<'static, str>>, items: T, pagination: Pagination) -> Self {
        Self {
            pagination: Some(pagination),
            ..Self::ok(message, items)
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl ApiResponse<()> {
    /// 200 with no `data`.
    pub fn message(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::OK,
            message: message.into(),
            data: None,
            pagination: None,
        }
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            success: true,
            message: self.message.into_owned(),
            data: self.data,
            errors: Vec::new(),
            meta: current_meta(),
            code: None,
            pagination: self.pagination,
        };
        json_response(self.status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AppError, FieldCode, FieldError};
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn info() -> RequestInfo {
        RequestInfo {
            request_id: "abc-1".into(),
            started: Instant::now(),
            path: "/api/v1/posts".into(),
            method: "POST".into(),
        }
    }

    #[tokio::test]
    async fn success_leaves_out_errors_code_and_pagination() {
        let response = scope(info(), async {
            ApiResponse::created("Post created successfully", serde_json::json!({"id": 1}))
                .into_response()
        })
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = body_of(response).await;
        assert_eq!(body["success"], true);
        assert_eq!(body["message"], "Post created successfully");
        assert_eq!(body["data"]["id"], 1);
        for absent in ["errors", "code", "pagination"] {
            assert!(
                body.get(absent).is_none(),
                "{absent} should be left out: {body}"
            );
        }
        let meta = &body["meta"];
        assert_eq!(meta["requestId"], "abc-1");
        assert_eq!(meta["path"], "/api/v1/posts");
        assert_eq!(meta["method"], "POST");
        assert_eq!(meta["version"], API_VERSION);
        assert!(meta["durationMs"].is_number());
        let ts = meta["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
    }

    #[tokio::test]
    async fn message_only_success_has_no_data() {
        let body = body_of(
            scope(info(), async {
                ApiResponse::message("Logged out").into_response()
            })
            .await,
        )
        .await;
        assert!(body.get("data").is_none(), "{body}");
    }

    #[tokio::test]
    async fn errors_carry_code_and_every_field() {
        let err = AppError::validation(vec![
            FieldError::new(
                "email",
                FieldCode::InvalidFormat,
                "must be a valid email address",
            ),
            FieldError::new(
                "password",
                FieldCode::TooShort,
                "must be at least 8 characters",
            ),
        ]);
        let response = scope(info(), async { err.into_response() }).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = body_of(response).await;
        assert_eq!(body["success"], false);
        assert_eq!(body["code"], "VALIDATION_ERROR");
        assert!(body.get("data").is_none());
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1]["field"], "password");
        assert_eq!(errors[1]["code"], "TOO_SHORT");
    }

    #[tokio::test]
    async fn pages_carry_pagination_in_camel_case() {
        let page = ApiResponse::page("ok", vec![1, 2], Pagination::new(2, Some("c".into())));
        let body = body_of(scope(info(), async { page.into_response() }).await).await;
        assert_eq!(body["pagination"]["limit"], 2);
        assert_eq!(body["pagination"]["nextCursor"], "c");
        assert_eq!(body["pagination"]["hasNext"], true);
        let last = ApiResponse::page("ok", vec![3], Pagination::new(2, None));
        let body = body_of(scope(info(), async { last.into_response() }).await).await;
        assert_eq!(body["pagination"]["hasNext"], false);
        assert!(body["pagination"].get("nextCursor").is_none());
    }

    #[tokio::test]
    async fn rate_limited_errors_say_when_to_retry() {
        let response = AppError::RateLimited {
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_of_their_cause() {
        let err = AppError::internal(
            "talking to dynamo",
            std::io::Error::other("arn:aws:dynamodb:secret"),
        );
        let body = body_of(err.into_response()).await;
        assert_eq!(body["code"], "INTERNAL_ERROR");
        assert!(!body.to_string().contains("arn:aws"), "{body}");
        assert!(!body.to_string().contains("dynamo"), "{body}");
    }
}
