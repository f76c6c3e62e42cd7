//! CORS as docs/API.md §6 states it: origins from `CORS_ALLOWED_ORIGINS`,
//! preflights answered 204, and every actual response (errors included)
//! carrying `Access-Control-Allow-Origin` for an allowed origin only.
//!
//! Tokens travel in the `Authorization` header, never in cookies, so
//! credentials are never allowed, which is what makes `*` safe to offer.

use axum::response::{IntoResponse, Response};
use http::{
    HeaderMap, HeaderValue, StatusCode,
    header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
        ORIGIN, VARY,
    },
};

use crate::config::{ConfigError, Source};

pub const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
pub const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, X-Request-ID";
pub const EXPOSED_HEADERS: &str = "X-Request-ID, Retry-After, X-RateLimit-Remaining";
pub const MAX_AGE_SECS: &str = "600";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    pub origins: AllowedOrigins,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            origins: AllowedOrigins::Any,
        }
    }
}

impl CorsConfig {
    /// `CORS_ALLOWED_ORIGINS`: `*`, or comma-separated origins such as
    /// `https://app.example.com`; `*` by default.
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let name = "CORS_ALLOWED_ORIGINS";
        let raw = source.get(name).unwrap_or_else(|| "*".into());
        let entries: Vec<String> = raw
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if entries.is_empty() || entries.iter().any(|o| o == "*") {
            return Ok(Self {
                origins: AllowedOrigins::Any,
            });
        }
        for origin in &entries {
            let scheme_ok = origin.starts_with("https://") || origin.starts_with("http://");
            if !scheme_ok || origin.matches('/').count() != 2 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("{origin:?} is not an origin like https://app.example.com"),
                });
            }
        }
        Ok(Self {
            origins: AllowedOrigins::List(entries),
        })
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`.
    pub fn allow_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        let origin = request.get(ORIGIN)?.to_str().ok()?;
        match &self.origins {
            AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
            AllowedOrigins::List(list) => list
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
                .then(|| HeaderValue::from_str(origin).ok())
                .flatten(),
        }
    }

    /// Whether the request is a CORS preflight.
    pub fn is_preflight(method: &http::Method, request: &HeaderMap) -> bool {
        method == http::Method::OPTIONS
            && request.contains_key(ORIGIN)
            && request.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The 204 answer to a preflight; an origin not allowed gets no CORS
    /// headers, which is how a browser learns it may not call.
    pub fn preflight(&self, request: &HeaderMap) -> Response {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Some(origin) = self.allow_origin(request) {
            let headers = response.headers_mut();
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            headers.insert(
                ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE_SECS),
            );
        }
        self.vary(response.headers_mut());
        response
    }

    /// Adds the CORS headers of an actual response.
    pub fn decorate(&self, request: &HeaderMap, response: &mut Response) {
        if let Some(origin) = self.allow_origin(request) {
            let headers = response.headers_mut();
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
        self.vary(response.headers_mut());
    }

    fn vary(&self, headers: &mut HeaderMap) {
        if matches!(self.origins, AllowedOrigins::List(_)) {
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(raw: &'static str) -> Result<CorsConfig, ConfigError> {
        CorsConfig::from_source(&move |name: &str| {
            (name == "CORS_ALLOWED_ORIGINS").then(|| raw.to_owned())
        })
    }

    fn origin(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_nothing() {
        let cors = config("https://app.example.com, http://localhost:5173/").unwrap();
        assert_eq!(
            cors.allow_origin(&origin("https://app.example.com"))
                .unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            cors.allow_origin(&origin("http://localhost:5173")).unwrap(),
            "http://localhost:5173"
        );
        assert!(
            cors.allow_origin(&origin("https://evil.example.com"))
                .is_none()
        );
        assert!(cors.allow_origin(&HeaderMap::new()).is_none());
    }

    #[test]
    fn a_star_allows_any_origin_without_credentials() {
        let cors = config("*").unwrap();
        assert_eq!(cors.allow_origin(&origin("https://x.test")).unwrap(), "*");
        let mut response = StatusCode::OK.into_response();
        cors.decorate(&origin("https://x.test"), &mut response);
        assert!(
            !response
                .headers()
                .contains_key(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        );
        assert_eq!(
            response.headers()[ACCESS_CONTROL_EXPOSE_HEADERS],
            EXPOSED_HEADERS
        );
    }

    #[test]
    fn malformed_origins_are_named() {
        let err = config("app.example.com").unwrap_err();
        assert!(err.to_string().contains("CORS_ALLOWED_ORIGINS"), "{err}");
        assert!(config("https://a.com/path").is_err());
    }

    #[test]
    fn preflights_answer_204_with_the_allowed_methods() {
        let cors = config("https://app.example.com").unwrap();
        let mut request = origin("https://app.example.com");
        request.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(CorsConfig::is_preflight(&http::Method::OPTIONS, &request));
        let response = cors.preflight(&request);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            response.headers()[ACCESS_CONTROL_ALLOW_METHODS],
            ALLOWED_METHODS
        );
        assert_eq!(response.headers()[ACCESS_CONTROL_MAX_AGE], MAX_AGE_SECS);
        let denied = cors.preflight(&origin("https://evil.test"));
        assert!(!denied.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
