//! The HTTP and Lambda plumbing every function shares, above the data
//! model: the response envelope and the one error table, the middleware
//! and extractors (authentication, bodies, queries), JWTs, cursors, typed
//! configuration, AWS clients, telemetry, CORS, rate limits, email, pushes
//! to WebSocket connections and presigned downloads.
//!
//! It builds no table key and names no item: what is stored, and how, is
//! `model`'s. What only one function needs lives in that function.

pub mod admission;
pub mod auth;
pub mod aws;
pub mod config;
pub mod cors;
pub mod cursor;
pub mod email;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod function;
pub mod http;
pub mod jwt;
pub mod lambda;
pub mod openapi;
pub mod query;
pub mod ratelimit;
pub mod realtime;
pub mod telemetry;
pub mod uploads;

pub use envelope::{ApiResponse, Pagination};
pub use error::{AppError, FieldCode, FieldError};
pub use model;
