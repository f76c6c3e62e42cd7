//! What every function shares: the response envelope and error table, the
//! HTTP middleware, body extraction, JWTs, password hashing, cursors,
//! configuration, telemetry and the DynamoDB layer.
//!
//! Nothing here knows about a particular route group; a helper that two
//! function crates need lives here rather than being copied between them.

pub mod auth;
pub mod aws;
pub mod config;
pub mod cors;
pub mod cursor;
pub mod domain;
pub mod email;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod http;
pub mod idempotency;
pub mod jwt;
pub mod notifications;
pub mod openapi;
pub mod password;
pub mod query;
pub mod ratelimit;
pub mod realtime;
pub mod store;
pub mod telemetry;
pub mod uploads;
pub mod users;

pub use envelope::{ApiResponse, Pagination};
pub use error::{AppError, FieldCode, FieldError};
