//! The one error table of the API: every failure a handler can return, with
//! its HTTP status and its `code` (docs/API.md §2), for REST and WebSocket
//! alike, and what each error of the data model means to a client.
//!
//! Handlers return `Result<_, AppError>`; SDK errors are turned into the
//! model's `StoreError` where they happen (`model::error`), and a store's
//! error becomes an `AppError` here, by `From`. A 5xx body never carries
//! internal detail: the cause chain goes to the log only.

use std::{error::Error as StdError, fmt};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use serde::Serialize;

pub use model::domain::{FieldCode, FieldError};
use model::{Condition, StoreError};

use crate::envelope::{self, Envelope};

/// A boxed cause kept for the log.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The `code` of an error envelope, one per row of the contract's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
    RateLimitExceeded,
    InternalError,
    ServiceUnavailable,
    /// A WebSocket frame whose `action` the API does not have; frames only.
    UnknownAction,
}

impl ErrorCode {
    /// The codes an HTTP response can carry: every one but the frames'
    /// own `UNKNOWN_ACTION`.
    pub const HTTP: [ErrorCode; 12] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ValidationError,
        ErrorCode::RateLimitExceeded,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
    ];

    /// Every code, for tests that walk the table: the HTTP ones, then the
    /// frames' own.
    pub const ALL: [ErrorCode; 13] = {
        let mut all = [ErrorCode::UnknownAction; 13];
        let mut index = 0;
        while index < Self::HTTP.len() {
            all[index] = Self::HTTP[index];
            index += 1;
        }
        all
    };

    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            // Never an HTTP answer: the status a frame's error would have.
            ErrorCode::UnknownAction => StatusCode::BAD_REQUEST,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::UnknownAction => "UNKNOWN_ACTION",
        }
    }
}

/// Every failure a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A WebSocket frame with an action the API does not have.
    #[error("{0}")]
    UnknownAction(String),
    #[error("Validation failed")]
    Validation(Vec<FieldError>),
    #[error("Rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    /// A backing service is down or throttling after the SDK's retries.
    #[error("{service} is unavailable")]
    Unavailable {
        service: &'static str,
        #[source]
        source: Option<BoxError>,
    },
    /// A readiness probe found dependencies down; names only which ones.
    #[error("Not ready: {failing} unavailable")]
    NotReady { failing: String },
    /// A bug. The cause is logged, never sent.
    #[error("internal error: {context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Option<BoxError>,
    },
}

impl AppError {
    pub fn internal(context: &'static str, source: impl Into<BoxError>) -> Self {
        AppError::Internal {
            context,
            source: Some(source.into()),
        }
    }

    pub fn unavailable(service: &'static str, source: impl Into<BoxError>) -> Self {
        AppError::Unavailable {
            service,
            source: Some(source.into()),
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        AppError::Validation(errors)
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::BadRequest(_) => ErrorCode::BadRequest,
            AppError::Unauthorized(_) => ErrorCode::Unauthorized,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            AppError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            AppError::UnknownAction(_) => ErrorCode::UnknownAction,
            AppError::Validation(_) => ErrorCode::ValidationError,
            AppError::RateLimited { .. } => ErrorCode::RateLimitExceeded,
            AppError::Unavailable { .. } | AppError::NotReady { .. } => {
                ErrorCode::ServiceUnavailable
            }
            AppError::Internal { .. } => ErrorCode::InternalError,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// What the client reads. Server-side failures get a fixed sentence so
    /// that no SDK text or internal detail can leak into a body.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unavailable { .. } => {
                "Service temporarily unavailable, please retry".to_owned()
            }
            AppError::Internal { .. } => "Internal server error".to_owned(),
            other => other.to_string(),
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            AppError::Validation(errors) => errors,
            _ => &[],
        }
    }

    /// The error envelope, with `data` for the rare error that has some
    /// (the failing checks of `/ready`).
    pub fn into_response_with<T: Serialize>(self, data: Option<T>) -> Response {
        self.log();
        let status = self.status();
        let body = Envelope {
            success: false,
            message: self.public_message(),
            data,
            errors: self.field_errors().to_vec(),
            meta: envelope::current_meta(),
            code: Some(self.code().as_str()),
            pagination: None,
        };
        let mut response = envelope::json_response(status, &body);
        if let AppError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }

    fn log(&self) {
        match self {
            AppError::Internal { .. } => {
                tracing::error!(error = %ErrorChain(self), code = self.code().as_str(), "request failed")
            }
            AppError::Unavailable { .. } => {
                tracing::warn!(error = %ErrorChain(self), code = self.code().as_str(), "dependency unavailable")
            }
            _ => {}
        }
    }
}

/// What each failure of the data model means to a client: a condition
/// that failed is named by the store, so its answer is decided here once.
impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { service, source }
            | StoreError::Throttled { service, source } => AppError::Unavailable {
                service,
                source: Some(source),
            },
            StoreError::Internal { context, source } => AppError::Internal {
                context,
                source: Some(source),
            },
            StoreError::Condition(condition) => condition.into(),
        }
    }
}

impl From<Condition> for AppError {
    fn from(condition: Condition) -> Self {
        let message = |text: &str| text.to_owned();
        match condition {
            Condition::EmailTaken => AppError::Conflict(message("Email is already registered")),
            Condition::UserGone => AppError::NotFound(message("User not found")),
            Condition::RefreshSuperseded => AppError::Unauthorized(message(
                "Refresh token was already used; the session has been revoked",
            )),
            Condition::SessionEnded => AppError::Unauthorized(message("Session has been revoked")),
            Condition::TokenSuperseded => AppError::BadRequest(message("Invalid or expired token")),
            Condition::PostGone => AppError::NotFound(message("Post not found")),
            Condition::PostChanged => AppError::Conflict(message(
                "The post was changed by someone else; reload it and retry",
            )),
            Condition::CommentGone => AppError::NotFound(message("Comment not found")),
            Condition::NotificationGone => AppError::NotFound(message("Notification not found")),
            Condition::UploadGone => AppError::NotFound(message("Upload not found")),
            Condition::TooManyPendingUploads { max } => AppError::Conflict(format!(
                "You already have {max} pending uploads, the most allowed; complete one, \
                 or wait for one to expire ({} hours after it was requested), to free a slot",
                model::uploads::PENDING_TTL_SECS / 3600
            )),
            Condition::Replayed => AppError::Conflict(message(
                "A request with this Idempotency-Key is already being processed",
            )),
            Condition::AlreadyExists => {
                AppError::Conflict(message("The resource was changed or already exists"))
            }
            Condition::LastAdmin => AppError::Conflict(message(
                "This would leave no active admin; promote another admin first",
            )),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.into_response_with::<()>(None)
    }
}

/// Formats an error with every `source()` below it, for the log.
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut current = self.0.source();
        while let Some(cause) = current {
            write!(f, ": {cause}")?;
            current = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::telemetry::Captured;

    /// What `err` writes to the log when it becomes a response.
    fn logged(err: AppError) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || drop(err.into_response()));
        captured.text()
    }

    #[test]
    fn server_failures_log_their_cause_chain_and_client_errors_nothing() {
        let internal = logged(AppError::internal(
            "loading user",
            std::io::Error::other("disk on fire"),
        ));
        assert!(internal.contains("ERROR"), "{internal}");
        assert!(
            internal.contains("loading user: disk on fire"),
            "{internal}"
        );
        assert!(internal.contains("INTERNAL_ERROR"), "{internal}");
        let unavailable = logged(AppError::unavailable(
            "dynamodb",
            std::io::Error::other("dispatch failure"),
        ));
        assert!(unavailable.contains("WARN"), "{unavailable}");
        assert!(unavailable.contains("dispatch failure"), "{unavailable}");
        assert!(unavailable.contains("SERVICE_UNAVAILABLE"), "{unavailable}");
        assert_eq!(logged(AppError::NotFound("Post not found".into())), "");
    }

    #[test]
    fn every_code_maps_to_the_status_of_the_contract() {
        let expected = [
            (400, "BAD_REQUEST"),
            (401, "UNAUTHORIZED"),
            (403, "FORBIDDEN"),
            (404, "NOT_FOUND"),
            (405, "METHOD_NOT_ALLOWED"),
            (409, "CONFLICT"),
            (413, "PAYLOAD_TOO_LARGE"),
            (415, "UNSUPPORTED_MEDIA_TYPE"),
            (422, "VALIDATION_ERROR"),
            (429, "RATE_LIMIT_EXCEEDED"),
            (500, "INTERNAL_ERROR"),
            (503, "SERVICE_UNAVAILABLE"),
            (400, "UNKNOWN_ACTION"),
        ];
        for (code, (status, name)) in ErrorCode::ALL.iter().zip(expected) {
            assert_eq!(code.status().as_u16(), status);
            assert_eq!(code.as_str(), name);
            assert_eq!(serde_json::to_value(code).unwrap(), name);
        }
    }

    #[test]
    fn server_errors_never_reveal_their_cause() {
        let err = AppError::internal("loading user", std::io::Error::other("secret table xyz"));
        assert_eq!(err.public_message(), "Internal server error");
        let err = AppError::unavailable("dynamodb", std::io::Error::other("dispatch failure"));
        assert!(!err.public_message().contains("dispatch"));
    }

    #[test]
    fn the_chain_names_every_cause() {
        let err = AppError::internal("loading user", std::io::Error::other("disk on fire"));
        let text = ErrorChain(&err).to_string();
        assert!(text.contains("loading user"), "{text}");
        assert!(text.contains("disk on fire"), "{text}");
    }

    #[test]
    fn store_errors_map_to_their_row() {
        let status = |err: StoreError| AppError::from(err).status().as_u16();
        assert_eq!(status(StoreError::Condition(Condition::PostGone)), 404);
        assert_eq!(status(StoreError::Condition(Condition::EmailTaken)), 409);
        assert_eq!(status(StoreError::Condition(Condition::Replayed)), 409);
        let full = AppError::from(Condition::TooManyPendingUploads { max: 20 });
        assert_eq!(full.code(), ErrorCode::Conflict);
        let message = full.public_message();
        for says in ["20 pending uploads", "complete one", "expire", "24 hours"] {
            assert!(message.contains(says), "{says:?} in {message}");
        }
        assert_eq!(
            status(StoreError::Condition(Condition::RefreshSuperseded)),
            401
        );
        assert_eq!(status(StoreError::unavailable("dynamodb", "down")), 503);
        assert_eq!(
            status(StoreError::Throttled {
                service: "dynamodb",
                source: "slow".into()
            }),
            503
        );
        let internal = AppError::from(StoreError::internal("reading", "table arn:aws:x"));
        assert_eq!(internal.status().as_u16(), 500);
        assert!(!internal.public_message().contains("arn"));
    }

    #[test]
    fn field_codes_serialise_as_the_contract_spells_them() {
        let err = FieldError::new("email", FieldCode::InvalidFormat, "bad");
        let json = serde_json::to_value(err).unwrap();
        assert_eq!(json["code"], "INVALID_FORMAT");
        assert_eq!(
            serde_json::to_value(FieldCode::WeakPassword).unwrap(),
            "WEAK_PASSWORD"
        );
    }
}
