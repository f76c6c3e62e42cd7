//! Accounts and sessions (docs/API.md §3 and Auth): register, login,
//! refresh with rotation, logout, profile, email verification and password
//! reset.
//!
//! Handlers live in `routes`; what is stored, and how, is `model`'s
//! (`model::sessions::Accounts`, `model::users::Users`). What only auth
//! needs lives here: password hashing and one-time token generation.

use std::time::Duration;

use aws_config::SdkConfig;
use axum::{
    Router,
    routing::{get, post},
};
use model::Table;
use platform::{
    auth::ApiState,
    config::{ConfigError, Source, positive_secs_or},
    email::EmailConfig,
    function::ApiFunction,
    http::HttpService,
    ratelimit::{RateLimitConfig, RateLimiter},
};

mod password;
mod routes;
mod tokens;

/// Everything the auth function is configured with.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub email: EmailConfig,
    pub limits: RateLimitConfig,
    /// `VERIFY_TOKEN_TTL_SECS`: how long an email verification link works.
    pub verify_token_ttl: Duration,
    /// `RESET_TOKEN_TTL_SECS`: how long a password reset link works (1 hour).
    pub reset_token_ttl: Duration,
    /// `SESSION_MAX_AGE_SECS`: how long a session lives from its login,
    /// however often it is refreshed (30 days).
    pub session_max_age: Duration,
}

impl AuthConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            email: EmailConfig::from_source(source)?,
            limits: RateLimitConfig::from_source(source)?,
            verify_token_ttl: positive_secs_or(source, "VERIFY_TOKEN_TTL_SECS", 24 * 3600)?,
            reset_token_ttl: positive_secs_or(source, "RESET_TOKEN_TTL_SECS", 3600)?,
            session_max_age: positive_secs_or(source, "SESSION_MAX_AGE_SECS", 30 * 24 * 3600)?,
        })
    }
}

/// What the auth routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    table: Table,
    limiter: RateLimiter,
    /// Where the links of the verification and reset emails lead; the
    /// emails themselves are outbox items the stream worker sends.
    app_url: String,
    limits: RateLimitConfig,
    verify_token_ttl: Duration,
    reset_token_ttl: Duration,
    session_max_age: Duration,
}

type AuthState = ApiState<Deps>;

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local gateway and the tests all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<HttpService, ConfigError> {
    let config = AuthConfig::from_source(source)?;
    let function = ApiFunction::from_source(source, sdk)?;
    let table = function.table.clone();
    let state = ApiState::new(
        function.authenticator.clone(),
        Deps {
            limiter: RateLimiter::new(table.clone()),
            app_url: config.email.app_url.clone(),
            table,
            limits: config.limits,
            verify_token_ttl: config.verify_token_ttl,
            reset_token_ttl: config.reset_token_ttl,
            session_max_age: config.session_max_age,
        },
    );
    Ok(function.serve(router(state)))
}

fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(routes::register))
        .route("/api/v1/auth/login", post(routes::login))
        .route("/api/v1/auth/refresh", post(routes::refresh))
        .route("/api/v1/auth/logout", post(routes::logout))
        .route("/api/v1/auth/profile", get(routes::profile))
        .route("/api/v1/auth/verify-email", post(routes::verify_email))
        .route(
            "/api/v1/auth/forgot-password",
            post(routes::forgot_password),
        )
        .route("/api/v1/auth/reset-password", post(routes::reset_password))
        .with_state(state)
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use model::users::UserResponse;
    use platform::openapi::{ApiBuilder, Data, Route};
    use utoipa::openapi::HttpMethod::{Get, Post};
    let mut api = ApiBuilder::new();
    let auth_response = api.schema::<routes::AuthResponse>();
    let token_pair = api.schema::<routes::TokenPair>();
    let user = api.schema::<UserResponse>();
    let register = api.schema::<routes::RawRegister>();
    let login = api.schema::<routes::RawLogin>();
    let refresh = api.schema::<routes::RawRefresh>();
    let token = api.schema::<routes::RawToken>();
    let forgot = api.schema::<routes::RawForgot>();
    let reset = api.schema::<routes::RawReset>();
    api.route(
        Route::new(
            Post,
            "/api/v1/auth/register",
            "Create an account and sign in",
        )
        .public()
        .body(register)
        .created()
        .data(Data::One(auth_response.clone()))
        .errors(&[409]),
    );
    api.route(
        Route::new(Post, "/api/v1/auth/login", "Sign in")
            .public()
            .body(login)
            .data(Data::One(auth_response))
            .errors(&[401, 403]),
    );
    api.route(
        Route::new(Post, "/api/v1/auth/refresh", "Rotate the refresh token")
            .public()
            .body(refresh)
            .data(Data::One(token_pair))
            .errors(&[401, 403]),
    );
    api.route(Route::new(
        Post,
        "/api/v1/auth/logout",
        "Revoke this session",
    ));
    api.route(Route::new(Get, "/api/v1/auth/profile", "The signed-in user").data(Data::One(user)));
    api.route(
        Route::new(
            Post,
            "/api/v1/auth/verify-email",
            "Verify the email address",
        )
        .public()
        .body(token),
    );
    api.route(
        Route::new(
            Post,
            "/api/v1/auth/forgot-password",
            "Send a password reset email",
        )
        .public()
        .body(forgot),
    );
    api.route(
        Route::new(
            Post,
            "/api/v1/auth/reset-password",
            "Set a new password with a reset token",
        )
        .public()
        .body(reset),
    );
    api.build()
}
