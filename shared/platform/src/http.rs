//! What wraps every function's router: request ids, the stage prefix, the
//! request log line, panic recovery and the 404/405 envelopes.
//!
//! `http_service` turns a function's `Router` into the one service that the
//! Lambda runtime, the local gateway and the tests all call, so the three can
//! never disagree about these cross-cutting rules.

use std::{any::Any, convert::Infallible, sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, Uri, header::USER_AGENT};
use lambda_http::{RequestExt, request::RequestContext};
use model::Table;
use tower::{ServiceBuilder, util::BoxCloneSyncService};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::{
    admission::{Admission, is_read_only},
    config::{ConfigError, Source},
    cors::CorsConfig,
    envelope::{self, RequestInfo, round_ms},
    error::AppError,
    jwt::JwtKeys,
    ratelimit::{Limit, RateLimitConfig, RateLimiter, RateStatus},
};

/// The header that carries the request id both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A function's HTTP side, ready for `lambda_http::run` or the local gateway.
pub type HttpService = BoxCloneSyncService<lambda_http::Request, Response, Infallible>;

/// Adds the unknown-route and wrong-method envelopes to a function's routes.
pub fn with_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|| async { AppError::NotFound("Route not found".into()) })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
}

/// The per-user (or per-IP) limit of docs/API.md §5 on every `/api/`
/// route. Probes (`/health`, `/ready`) are left out: they must not depend
/// on DynamoDB, and API Gateway's stage throttling already covers them.
#[derive(Debug, Clone)]
pub struct RateGuard {
    pub limiter: RateLimiter,
    pub jwt: JwtKeys,
    pub limit: Limit,
}

/// What every function's HTTP side is configured with.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub cors: CorsConfig,
    pub rate_guard: Option<RateGuard>,
}

impl HttpOptions {
    /// For `/api/` functions: CORS and the default limit as configured
    /// (`CORS_ALLOWED_ORIGINS`, `RATE_LIMIT_DEFAULT`; every `RATE_LIMIT_*`
    /// is read and checked, so a bad one fails the cold start).
    /// `jwt` are the function's own keys: the guard only reads the caller
    /// from a token, so it shares them rather than deriving its own.
    pub fn api(source: &dyn Source, table: Table, jwt: JwtKeys) -> Result<Self, ConfigError> {
        let limits = RateLimitConfig::from_source(source)?;
        Ok(Self::limited(
            CorsConfig::from_source(source)?,
            table,
            jwt,
            limits.default,
        ))
    }

    /// For the probes: CORS only.
    pub fn public(source: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            cors: CorsConfig::from_source(source)?,
            rate_guard: None,
        })
    }

    /// The given CORS rules and the default rate limit on `/api/`.
    pub fn limited(cors: CorsConfig, table: Table, jwt: JwtKeys, limit: Limit) -> Self {
        Self {
            cors,
            rate_guard: Some(RateGuard {
                limiter: RateLimiter::new(table),
                jwt,
                limit,
            }),
        }
    }
}

/// Wraps a finished router with the cross-cutting layers: request ids and
/// the log line outermost, then CORS and the rate limit (so a 429 carries
/// CORS headers too), then panic recovery around the routes.
pub fn http_service(router: Router, options: HttpOptions) -> HttpService {
    let service = ServiceBuilder::new()
        .map_request(|request: lambda_http::Request| request.map(Body::new))
        .layer(middleware::from_fn(request_context))
        .layer(middleware::from_fn_with_state(Arc::new(options), edge))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(undecodable_path))
        .service(with_fallbacks(router));
    BoxCloneSyncService::new(service)
}

fn rate_limit_headers(response: &mut Response, status: &RateStatus) {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(status.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(status.remaining));
}

/// The rate-limit key: the user when the request carries a valid access
/// token (signature and expiry only; no store read), else the client IP.
fn rate_key(guard: &RateGuard, parts: &http::request::Parts) -> String {
    crate::auth::bearer_token(parts)
        .ok()
        .and_then(|token| guard.jwt.verify(token, crate::jwt::TokenType::Access).ok())
        .map(|claims| format!("api:user:{}", claims.sub))
        .unwrap_or_else(|| format!("api:ip:{}", source_ip(parts)))
}

/// What the rate limit decided about one request: let through, with the
/// status for its headers (none when the store could not be asked: an outage
/// must not hide the route's own answer, which will report it itself), or
/// refused.
type Decision = Result<Option<RateStatus>, RateStatus>;

async fn admit(guard: &RateGuard, key: &str) -> Decision {
    match guard.limiter.hit(key, guard.limit).await {
        Ok(status) => Ok(Some(status)),
        Err(AppError::RateLimited { retry_after_secs }) => Err(RateStatus {
            limit: guard.limit.max,
            remaining: 0,
            reset_after_secs: retry_after_secs,
        }),
        Err(err) => {
            tracing::warn!(error = %crate::error::ErrorChain(&err), "rate limit not checked");
            Ok(None)
        }
    }
}

/// Runs a route while its hit is being counted, rather than after: its
/// reads and its session check go out with the hit, one round trip instead
/// of two. A request over the limit still gets nothing but the 429 and
/// changes nothing: the route is dropped as soon as the limit says no, what
/// it may have read by then is thrown away, and it can have written nothing,
/// since writes wait for the verdict ([`Admission::granted`]), which the
/// hit gives before this answers.
///
/// A route that can write is not dropped on a refusal but left to run to
/// its wait for the verdict, where it stops: what it took before that
/// (login's failure slot) it gives back on its way out. Its answer is then
/// thrown away for the 429.
async fn admit_alongside(
    admission: impl Future<Output = Decision>,
    route: impl Future<Output = Response>,
    can_write: bool,
) -> Result<(Option<RateStatus>, Response), RateStatus> {
    tokio::pin!(admission, route);
    tokio::select! {
        // The hit goes out first: it is the one that can stop the route.
        biased;
        admission = &mut admission => match admission {
            Ok(status) => Ok((status, route.await)),
            Err(refused) => {
                if can_write {
                    route.await;
                }
                Err(refused)
            }
        },
        response = &mut route => Ok((admission.await?, response)),
    }
}

async fn edge(State(options): State<Arc<HttpOptions>>, request: Request, next: Next) -> Response {
    let request_headers = request.headers().clone();
    if CorsConfig::is_preflight(request.method(), &request_headers) {
        return options.cors.preflight(&request_headers);
    }
    let mut response = match &options.rate_guard {
        Some(guard) if request.uri().path().starts_with("/api/") => {
            let (mut parts, body) = request.into_parts();
            let key = rate_key(guard, &parts);
            let can_write = !is_read_only(&parts.method);
            let (admission, verdicts) = Admission::pending();
            parts.extensions.insert(admission);
            let request = Request::from_parts(parts, body);
            let decided = async {
                let decision = admit(guard, &key).await;
                verdicts.decide(decision.is_ok());
                decision
            };
            match admit_alongside(decided, next.run(request), can_write).await {
                Ok((Some(status), mut response)) => {
                    rate_limit_headers(&mut response, &status);
                    response
                }
                Ok((None, response)) => response,
                Err(refused) => {
                    let mut response = refused.exceeded().into_response();
                    rate_limit_headers(&mut response, &refused);
                    response
                }
            }
        }
        _ => next.run(request).await,
    };
    options.cors.decorate(&request_headers, &mut response);
    response
}

/// The `X-Request-ID` to use: the caller's when it is 1–128 characters of
/// `[A-Za-z0-9._-]`, else a new UUID. Anything else could inject into logs
/// or response headers.
pub fn request_id_from(header: Option<&HeaderValue>) -> String {
    header
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_valid_request_id(value))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

pub fn is_valid_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// API Gateway hands lambda_http a path that starts with the stage
/// (`/dev/health`); routes are declared without it, and `meta.path` must not
/// show it either.
pub fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path
        .strip_prefix('/')
        .and_then(|rest| rest.strip_prefix(stage))
    {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

fn stage_of(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.clone(),
        RequestContext::WebSocket(ctx) => ctx.stage.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The caller's address as API Gateway saw it.
pub fn source_ip(request: &http::request::Parts) -> String {
    let from_context = match request.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
        Some(RequestContext::WebSocket(ctx)) => ctx.identity.source_ip.clone(),
        _ => None,
    };
    from_context.unwrap_or_else(|| "unknown".to_owned())
}

/// Who is calling, as API Gateway saw it: for rate limits and sessions.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientInfo {
            ip: source_ip(parts),
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(256).collect()),
        })
    }
}

async fn request_context(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let stage = stage_of(&request);
    let path = strip_stage(request.uri().path(), stage.as_deref()).to_owned();
    if path != request.uri().path() {
        let rewritten = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        if let Ok(uri) = rewritten.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    let request_id = request_id_from(request.headers().get(REQUEST_ID_HEADER));
    let method = request.method().to_string();
    let (lambda_request_id, trace_id) = request
        .lambda_context_ref()
        .map(|ctx| {
            (
                ctx.request_id.clone(),
                ctx.xray_trace_id.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let ip = source_ip(&parts);
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let request = Request::from_parts(parts, body);

    let span = tracing::info_span!(
        "request",
        requestId = %request_id,
        lambdaRequestId = %lambda_request_id,
        traceId = %trace_id,
    );
    let info = RequestInfo {
        request_id: request_id.clone(),
        started,
        path: path.clone(),
        method: method.clone(),
    };
    // At debug a request also marks its start, so one that never ends (a
    // dependency hanging) still shows. The method and path only: headers
    // and bodies may hold secrets.
    span.in_scope(|| tracing::debug!(method = %method, path = %path, "request started"));
    let mut response = envelope::scope(info, next.run(request))
        .instrument(span.clone())
        .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            durationMs = round_ms(started.elapsed().as_secs_f64() * 1000.0),
            ip = %ip,
            userAgent = %user_agent,
            "request completed"
        );
    });
    response
}

/// A path whose percent-decoding is not UTF-8 (`/posts/%FF`) names no
/// route and no resource: every path parameter is an id. It is a 404 here,
/// since axum's `Path` would answer it with a plain-text 400.
async fn undecodable_path(request: Request, next: Next) -> Response {
    if decodes_to_utf8(request.uri().path()) {
        next.run(request).await
    } else {
        AppError::NotFound("Resource not found".into()).into_response()
    }
}

/// Whether `path` percent-decodes to UTF-8; a `%` not followed by two hex
/// digits stays as it is, as axum leaves it.
fn decodes_to_utf8(path: &str) -> bool {
    let hex = |b: &u8| char::from(*b).to_digit(16).map(|d| d as u8);
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).and_then(hex),
            bytes.get(i + 2).and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(high << 4 | low);
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    AppError::Internal {
        context: "handler panicked",
        source: Some(detail.to_owned().into()),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn status(remaining: u32) -> RateStatus {
        RateStatus {
            limit: 4,
            remaining,
            reset_after_secs: 7,
        }
    }

    fn answer(text: &'static str) -> Response {
        text.into_response()
    }

    async fn text_of(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The route must run while the hit is still out, or it would wait for
    /// both round trips one after the other: here the hit only answers
    /// once the route has finished, so running them in turn never ends.
    #[tokio::test]
    async fn a_route_runs_while_its_hit_is_counted() {
        for decision in [Ok(Some(status(3))), Ok(None)] {
            let (decide, decided) = tokio::sync::oneshot::channel::<Decision>();
            let admission = async { decided.await.unwrap() };
            let route = async {
                decide.send(decision).unwrap();
                answer("the route's answer")
            };
            let answered = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                admit_alongside(admission, route, false),
            )
            .await
            .expect("the route ran before the hit was counted");
            let (status, response) = answered.unwrap();
            assert_eq!(status, decision.unwrap());
            assert_eq!(text_of(response).await, "the route's answer");
        }
    }

    #[tokio::test]
    async fn a_refused_read_is_dropped_before_it_starts_when_the_limit_answers_first() {
        let started = std::sync::atomic::AtomicBool::new(false);
        let route = async {
            started.store(true, std::sync::atomic::Ordering::SeqCst);
            answer("must not be seen")
        };
        let answered = admit_alongside(async { Err(status(0)) }, route, false).await;
        assert_eq!(answered.unwrap_err(), status(0));
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
    }

    /// A refused write is not dropped mid-way: it reaches its wait for the
    /// verdict and cleans up after itself (login gives back its slot).
    #[tokio::test]
    async fn a_refused_write_runs_to_its_gate_and_its_answer_is_thrown_away() {
        let cleaned = std::sync::atomic::AtomicBool::new(false);
        let (admission, verdicts) = Admission::pending();
        let route = async {
            if admission.granted().await.is_err() {
                cleaned.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            answer("must not be seen")
        };
        let decided = async {
            verdicts.decide(false);
            Err(status(0))
        };
        let answered = admit_alongside(decided, route, true).await;
        assert_eq!(answered.unwrap_err(), status(0));
        assert!(cleaned.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_refused_read_that_already_answered_is_thrown_away() {
        let (decide, decided) = tokio::sync::oneshot::channel::<Decision>();
        let route = async {
            decide.send(Err(status(0))).unwrap();
            answer("must not be seen")
        };
        let answered = admit_alongside(async { decided.await.unwrap() }, route, false).await;
        assert_eq!(answered.unwrap_err(), status(0));
    }

    #[test]
    fn request_ids_follow_the_contract() {
        let ok = HeaderValue::from_static("abc-1.x_Y");
        assert_eq!(request_id_from(Some(&ok)), "abc-1.x_Y");
        let long = "a".repeat(128);
        assert_eq!(
            request_id_from(Some(&HeaderValue::from_str(&long).unwrap())),
            long
        );
        for bad in [
            "",
            "has space",
            "semi;colon",
            "ümlaut-free?",
            &"a".repeat(129),
        ] {
            let header = HeaderValue::from_bytes(bad.as_bytes()).ok();
            let id = request_id_from(header.as_ref());
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} gave {id}");
        }
        assert!(uuid::Uuid::parse_str(&request_id_from(None)).is_ok());
    }

    #[test]
    fn paths_are_checked_after_percent_decoding() {
        for ok in [
            "/posts/01J",
            "/posts/%C3%A9",
            "/a%2Fb",
            "/100%",
            "/%zz",
            "/%4",
        ] {
            assert!(decodes_to_utf8(ok), "{ok}");
        }
        for bad in ["/posts/%FF", "/posts/%C3%28", "/%c3", "/x/%80/y"] {
            assert!(!decodes_to_utf8(bad), "{bad}");
        }
    }

    #[test]
    fn the_stage_is_stripped_only_as_a_whole_segment() {
        assert_eq!(strip_stage("/dev/health", Some("dev")), "/health");
        assert_eq!(strip_stage("/dev", Some("dev")), "/");
        assert_eq!(strip_stage("/devices", Some("dev")), "/devices");
        assert_eq!(strip_stage("/health", Some("dev")), "/health");
        assert_eq!(strip_stage("/health", None), "/health");
        assert_eq!(strip_stage("/health", Some("$default")), "/health");
    }

    fn app() -> HttpService {
        with_options(HttpOptions::default())
    }

    fn with_options(options: HttpOptions) -> HttpService {
        http_service(
            Router::new()
                .route(
                    "/ok",
                    get(|| async { envelope::ApiResponse::message("fine") }),
                )
                .route("/boom", get(|| async { panic!("kaboom") as &'static str })),
            options,
        )
    }

    async fn call(
        service: HttpService,
        method: &str,
        uri: &str,
        request_id: Option<&str>,
    ) -> (u16, http::HeaderMap, serde_json::Value) {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(id) = request_id {
            builder = builder.header(REQUEST_ID_HEADER, id);
        }
        let response = service
            .oneshot(builder.body(lambda_http::Body::Empty).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn the_request_id_is_echoed_in_header_and_meta() {
        let (status, headers, body) = call(app(), "GET", "/ok", Some("abc-1")).await;
        assert_eq!(status, 200);
        assert_eq!(headers[REQUEST_ID_HEADER], "abc-1");
        assert_eq!(body["meta"]["requestId"], "abc-1");
        assert_eq!(body["meta"]["path"], "/ok");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_envelopes() {
        let (status, headers, body) = call(app(), "GET", "/nope", None).await;
        assert_eq!(status, 404);
        assert_eq!(body["code"], "NOT_FOUND");
        assert_eq!(
            headers[REQUEST_ID_HEADER],
            body["meta"]["requestId"].as_str().unwrap()
        );
        let (status, _, body) = call(app(), "DELETE", "/ok", None).await;
        assert_eq!(status, 405);
        assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn preflights_and_errors_carry_cors_headers_for_allowed_origins() {
        let cors = CorsConfig {
            origins: crate::cors::AllowedOrigins::List(vec!["https://app.test".into()]),
        };
        let service = with_options(HttpOptions {
            cors,
            rate_guard: None,
        });
        let preflight = http::Request::builder()
            .method("OPTIONS")
            .uri("/nope")
            .header("origin", "https://app.test")
            .header("access-control-request-method", "POST")
            .body(lambda_http::Body::Empty)
            .unwrap();
        let response = service.clone().oneshot(preflight).await.unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.test"
        );
        let request = http::Request::builder()
            .uri("/nope")
            .header("origin", "https://app.test")
            .body(lambda_http::Body::Empty)
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.test"
        );
        assert!(
            response.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("Retry-After")
        );
        let foreign = http::Request::builder()
            .uri("/ok")
            .header("origin", "https://evil.test")
            .body(lambda_http::Body::Empty)
            .unwrap();
        let response = service.oneshot(foreign).await.unwrap();
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_envelope_and_the_service_keeps_serving() {
        let service = app();
        let (status, _, body) = call(service.clone(), "GET", "/boom", Some("p-1")).await;
        assert_eq!(status, 500);
        assert_eq!(body["code"], "INTERNAL_ERROR");
        assert_eq!(body["meta"]["requestId"], "p-1");
        assert!(!body.to_string().contains("kaboom"));
        let (status, _, _) = call(service, "GET", "/ok", None).await;
        assert_eq!(status, 200);
    }
}
