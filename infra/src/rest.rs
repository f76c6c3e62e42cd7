//! The local stand-in for API Gateway's REST API.
//!
//! Each HTTP request is matched against the `Type: Api` events of
//! `template.yaml`, turned into the exact REST proxy event API Gateway would
//! send (stage, requestContext, multi-value headers and query strings,
//! base64 for binary bodies), deserialised by lambda_http's own code and run
//! through lambda_http's own adapter, in process. The adapter's JSON answer is
//! then written back as API Gateway would. What the function sees locally is
//! therefore what it sees on AWS.
//!
//! The gateway serves the API at the root of its host and reports the stage
//! `local`: what API Gateway does for a custom domain whose root is mapped to
//! that stage. Beside the API it serves the local stand-in for jsDelivr
//! ([`crate::cdn`]), which is not a route of the template.
//!
//! [`serve_until`] stops it gracefully: no new connections, the requests
//! under way answered.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{ConnectInfo, Request, State},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lambda_http::{
    Adapter,
    lambda_runtime::{Context, LambdaEvent},
    request::LambdaRequest,
};
use platform::{
    AppError,
    cors::CorsConfig,
    envelope::{self, RequestInfo},
    http::{HttpService, REQUEST_ID_HEADER, request_id_from},
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{
    cdn::LocalCdn,
    event,
    template::{ApiRoute, Template},
};

/// API Gateway refuses REST payloads over 10 MB.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// The stage the local gateway reports, as `make dev` serves it.
pub const LOCAL_STAGE: &str = "local";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    route: ApiRoute,
    segments: Vec<Segment>,
}

impl CompiledRoute {
    fn new(route: ApiRoute) -> Self {
        let segments = route
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match name.strip_suffix('+') {
                        Some(greedy) => Segment::Greedy(greedy.to_owned()),
                        None => Segment::Param(name.to_owned()),
                    },
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Self { route, segments }
    }

    /// The path parameters when `parts` matches, with a specificity score:
    /// API Gateway prefers literal segments over variables.
    fn matches(&self, parts: &[&str]) -> Option<(usize, BTreeMap<String, String>)> {
        let mut params = BTreeMap::new();
        let mut literals = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy(name) => {
                    let rest = parts.get(index..).filter(|rest| !rest.is_empty())?;
                    params.insert(name.clone(), rest.join("/"));
                    return Some((literals, params));
                }
                Segment::Literal(literal) => {
                    if parts.get(index)? != literal {
                        return None;
                    }
                    literals += 1;
                }
                Segment::Param(name) => {
                    params.insert(name.clone(), percent_decode(parts.get(index)?));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some((literals, params))
    }
}

/// The segments of a request path, as routes are matched against them.
fn path_segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The path parameters API Gateway would give `route` for `path`, or `None`
/// when `path` is not one of its paths.
pub fn path_parameters(route: &ApiRoute, path: &str) -> Option<BTreeMap<String, String>> {
    CompiledRoute::new(route.clone())
        .matches(&path_segments(path))
        .map(|(_, params)| params)
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_owned())
}

/// The REST side of the local gateway.
pub struct RestGateway {
    cors: CorsConfig,
    routes: Vec<CompiledRoute>,
    functions: HashMap<String, HttpService>,
    timeouts: HashMap<String, Duration>,
    stage: String,
    cdn: LocalCdn,
}

impl RestGateway {
    /// Fails when the template routes to a function that was not given, or
    /// when the docs page's renderer is not installed for the local CDN.
    pub fn new(
        template: &Template,
        functions: HashMap<String, HttpService>,
        stage: &str,
        cors: CorsConfig,
    ) -> Result<Self, String> {
        let missing: Vec<&str> = template
            .routes
            .iter()
            .map(|r| r.function.as_str())
            .filter(|f| !functions.contains_key(*f))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "template.yaml routes to functions the gateway does not have: {missing:?}"
            ));
        }
        let timeouts = template
            .routes
            .iter()
            .map(|r| {
                (
                    r.function.clone(),
                    Duration::from_secs(template.timeout_of(&r.function)),
                )
            })
            .collect();
        Ok(Self {
            cors,
            routes: template
                .routes
                .iter()
                .cloned()
                .map(CompiledRoute::new)
                .collect(),
            functions,
            timeouts,
            stage: stage.to_owned(),
            cdn: LocalCdn::locate()?,
        })
    }

    /// The axum app that serves the gateway.
    pub fn into_router(self) -> Router {
        Router::new()
            .merge(self.cdn.clone().router())
            .fallback(handle)
            .with_state(Arc::new(self))
    }

    fn route(&self, method: &str, path: &str) -> Option<(&ApiRoute, BTreeMap<String, String>)> {
        let parts = path_segments(path);
        self.routes
            .iter()
            .filter(|r| r.route.method == "ANY" || r.route.method == method)
            .filter_map(|r| r.matches(&parts).map(|(score, params)| (score, r, params)))
            .max_by_key(|(score, r, _)| (*score, r.route.method != "ANY"))
            .map(|(_, r, params)| (&r.route, params))
    }
}

/// Serves `gateway` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, gateway: RestGateway) -> std::io::Result<()> {
    serve_until(listener, gateway, std::future::pending()).await
}

/// Serves `gateway` on `listener` until `stop` completes, then stops
/// accepting, lets the requests under way finish (closing idle keep-alive
/// connections) and returns: how the local gateway stops for a hot reload,
/// so no invocation is cut off halfway through its writes.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    gateway: RestGateway,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        gateway
            .into_router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

impl RestGateway {
    /// Answers as API Gateway's own Gateway Responses do: the envelope,
    /// with CORS headers for an allowed origin.
    async fn error(
        &self,
        request: &HeaderMap,
        request_id: String,
        path: &str,
        method: &str,
        err: AppError,
    ) -> Response {
        let info = RequestInfo {
            request_id: request_id.clone(),
            started: Instant::now(),
            path: path.to_owned(),
            method: method.to_owned(),
        };
        let mut response = envelope::scope(info, async { err.into_response() }).await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        self.cors.decorate(request, &mut response);
        response
    }
}

async fn handle(
    State(gateway): State<Arc<RestGateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let client_request_id = request_id_from(request.headers().get(REQUEST_ID_HEADER));
    let request_headers = request.headers().clone();

    let Some((route, path_params)) = gateway.route(&method, &path) else {
        return gateway
            .error(
                &request_headers,
                client_request_id,
                &path,
                &method,
                AppError::NotFound("Route not found".into()),
            )
            .await;
    };
    let route = route.clone();
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return gateway
            .error(
                &request_headers,
                client_request_id,
                &path,
                &method,
                AppError::PayloadTooLarge("Request body is too large".into()),
            )
            .await;
    };
    let event = proxy_event(&gateway.stage, &route, &parts, path_params, &body, peer);
    let Some(service) = gateway.functions.get(&route.function).cloned() else {
        return gateway
            .error(
                &request_headers,
                client_request_id,
                &path,
                &method,
                AppError::NotFound("Route not found".into()),
            )
            .await;
    };
    let timeout = gateway
        .timeouts
        .get(&route.function)
        .copied()
        .unwrap_or(Duration::from_secs(3));
    // lambda_http's response future is not `Send` (it borrows the body while
    // collecting it), which the Lambda runtime never needs; here it runs on a
    // blocking thread of its own, as one invocation per execution environment.
    let function = route.function.clone();
    let served = format!("{method} {}", route.path);
    let runtime = tokio::runtime::Handle::current();
    let invocation = tokio::task::spawn_blocking(move || {
        runtime.block_on(crate::calls::serving(
            served,
            invoke(service, event, function, timeout),
        ))
    });
    match tokio::time::timeout(timeout, invocation).await {
        Ok(Ok(Ok(answer))) => proxy_response(answer),
        Ok(Ok(Err(message))) => {
            tracing::error!(function = %route.function, error = %message, "function returned an unusable response");
            gateway
                .error(
                    &request_headers,
                    client_request_id,
                    &path,
                    &method,
                    AppError::Internal {
                        context: "function response",
                        source: Some(message.into()),
                    },
                )
                .await
        }
        Ok(Err(join)) => {
            tracing::error!(function = %route.function, error = %join, "function crashed");
            gateway
                .error(
                    &request_headers,
                    client_request_id,
                    &path,
                    &method,
                    AppError::Internal {
                        context: "function crashed",
                        source: Some(join.into()),
                    },
                )
                .await
        }
        Err(_) => {
            tracing::error!(function = %route.function, timeout_s = timeout.as_secs(), "function timed out");
            gateway
                .error(
                    &request_headers,
                    client_request_id,
                    &path,
                    &method,
                    AppError::Unavailable {
                        service: "function",
                        source: None,
                    },
                )
                .await
        }
    }
}

/// Runs one invocation through lambda_http's adapter, as the runtime would.
async fn invoke(
    service: HttpService,
    event: Value,
    function: String,
    timeout: Duration,
) -> Result<Value, String> {
    let payload: LambdaRequest =
        serde_json::from_value(event).map_err(|e| format!("event rejected by lambda_http: {e}"))?;
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.invoked_function_arn =
        format!("arn:aws:lambda:us-east-1:000000000000:function:{function}");
    context.deadline = (Utc::now().timestamp_millis().max(0) as u64) + timeout.as_millis() as u64;
    context.xray_trace_id = Some(xray_trace_id());
    let adapter: Adapter<'static, Response, HttpService> = Adapter::from(service);
    let answer = match adapter.oneshot(LambdaEvent::new(payload, context)).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    serde_json::to_value(answer).map_err(|e| format!("response not serialisable: {e}"))
}

fn xray_trace_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        Utc::now().timestamp(),
        &id[..24],
        &id[16..32]
    )
}

fn is_text(headers: &http::request::Parts) -> bool {
    let Some(content_type) = headers
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || mime == "application/xml"
        || mime == "application/x-www-form-urlencoded"
}

/// The REST proxy event API Gateway sends for this request.
pub fn proxy_event(
    stage: &str,
    route: &ApiRoute,
    parts: &http::request::Parts,
    path_params: BTreeMap<String, String>,
    body: &[u8],
    peer: SocketAddr,
) -> Value {
    let mut headers = parts.headers.clone();
    // API Gateway adds these before the function sees the request. The
    // caller's address is appended to the one X-Forwarded-For header, as a
    // proxy does (AWS's samples carry `"client, proxy"` in one value): a
    // second header would leave the single-value `headers` with the last
    // hop only.
    let hops: Vec<String> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .chain([peer.ip().to_string()])
        .collect();
    // A client's header that is not text is dropped rather than passed on.
    if let Ok(value) = HeaderValue::from_str(&hops.join(", "))
        .or_else(|_| HeaderValue::from_str(&peer.ip().to_string()))
    {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    if let Ok(port) = HeaderValue::from_str(&peer.port().to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-port"), port);
    }
    let (single_headers, multi_headers) = event::headers(&headers);
    let (single_query, multi_query) = event::query(parts.uri.query());
    let (body, is_base64) = match (body.is_empty(), is_text(parts), std::str::from_utf8(body)) {
        (true, _, _) => (Value::Null, false),
        (false, true, Ok(text)) => (Value::String(text.to_owned()), false),
        _ => (Value::String(STANDARD.encode(body)), true),
    };
    let path = parts.uri.path();
    let now = Utc::now();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let path_parameters = if path_params.is_empty() {
        Value::Null
    } else {
        json!(path_params)
    };
    json!({
        "resource": route.path,
        "path": path,
        "httpMethod": parts.method.as_str(),
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": Value::Null,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": parts.method.as_str(),
            "extendedRequestId": uuid::Uuid::new_v4().to_string(),
            "requestId": uuid::Uuid::new_v4().to_string(),
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "requestTimeEpoch": now.timestamp_millis(),
            // The path the client asked for. On the execute-api URL it
            // starts with the stage (`/prod/health`); here, as behind a
            // custom domain, it is the path at the root, so what a function
            // derives from it (health's `servers`) points back here.
            "path": path,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("local"),
            "identity": {
                "sourceIp": peer.ip().to_string(),
                "userAgent": user_agent,
                "accountId": Value::Null,
                "caller": Value::Null,
                "user": Value::Null,
                "userArn": Value::Null,
                "apiKey": Value::Null,
                "apiKeyId": Value::Null,
                "accessKey": Value::Null,
                "cognitoIdentityId": Value::Null,
                "cognitoIdentityPoolId": Value::Null,
                "cognitoAuthenticationType": Value::Null,
                "cognitoAuthenticationProvider": Value::Null,
            },
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// Writes the function's proxy response back as API Gateway does.
fn proxy_response(answer: Value) -> Response {
    let status = answer
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &Value| {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            headers.append(name, value);
        }
    };
    if let Some(Value::Object(multi)) = answer.get("multiValueHeaders") {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                add(name, value);
            }
        }
    }
    if let Some(Value::Object(single)) = answer.get("headers") {
        for (name, value) in single {
            add(name, value);
        }
    }
    let body = match (
        answer.get("body").and_then(Value::as_str),
        answer.get("isBase64Encoded").and_then(Value::as_bool),
    ) {
        (Some(text), Some(true)) => STANDARD.decode(text).unwrap_or_default(),
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, method: &str, function: &str) -> CompiledRoute {
        CompiledRoute::new(ApiRoute {
            function: function.into(),
            path: path.into(),
            method: method.into(),
        })
    }

    fn gateway(routes: Vec<CompiledRoute>) -> RestGateway {
        RestGateway {
            cors: CorsConfig::default(),
            routes,
            functions: HashMap::new(),
            timeouts: HashMap::new(),
            stage: "local".into(),
            cdn: LocalCdn {
                package_dir: std::path::PathBuf::new(),
            },
        }
    }

    #[tokio::test]
    async fn a_stop_lets_the_request_under_way_finish_then_refuses_connections() {
        let started = Arc::new(tokio::sync::Notify::new());
        let slow: HttpService = tower::util::BoxCloneSyncService::new(tower::service_fn({
            let started = Arc::clone(&started);
            move |_: lambda_http::Request| {
                started.notify_one();
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, std::convert::Infallible>(Response::new(Body::from("finished")))
                }
            }
        }));
        let mut gw = gateway(vec![route("/slow", "GET", "Slow")]);
        gw.functions.insert("Slow".into(), slow);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve_until(listener, gw, async {
            let _ = stopped.await;
        }));
        let request = tokio::spawn(reqwest::get(format!("http://{address}/slow")));
        started.notified().await;
        stop.send(()).unwrap();
        let response = request.await.unwrap().expect("answered after the stop");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "finished");
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("serve_until returns once its requests are done")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }

    #[test]
    fn literal_segments_win_over_variables() {
        let gw = gateway(vec![
            route("/api/v1/users/{id}", "ANY", "Users"),
            route("/api/v1/users/me", "ANY", "Me"),
            route("/files/{proxy+}", "GET", "Files"),
        ]);
        assert_eq!(
            gw.route("GET", "/api/v1/users/me").unwrap().0.function,
            "Me"
        );
        let (r, params) = gw.route("PATCH", "/api/v1/users/01ABC").unwrap();
        assert_eq!(r.function, "Users");
        assert_eq!(params["id"], "01ABC");
        let (_, params) = gw.route("GET", "/files/a/b/c.png").unwrap();
        assert_eq!(params["proxy"], "a/b/c.png");
        assert!(gw.route("POST", "/files/a").is_none());
        assert!(gw.route("GET", "/files").is_none());
        assert!(gw.route("GET", "/api/v1/users/me/extra").is_none());
        assert!(gw.route("GET", "/nope").is_none());
    }

    #[test]
    fn path_parameters_are_decoded() {
        let gw = gateway(vec![route("/things/{id}", "ANY", "T")]);
        assert_eq!(gw.route("GET", "/things/a%20b").unwrap().1["id"], "a b");
        assert_eq!(gw.route("GET", "/things/a+b").unwrap().1["id"], "a+b");
    }

    #[test]
    fn path_parameters_of_one_route() {
        let comments = route("/api/v1/posts/{id}/comments", "GET", "P").route;
        let params = path_parameters(&comments, "/api/v1/posts/01AB/comments").unwrap();
        assert_eq!(params["id"], "01AB");
        assert_eq!(path_parameters(&comments, "/api/v1/posts/01AB"), None);
        let health = route("/health", "GET", "H").route;
        assert_eq!(path_parameters(&health, "/health"), Some(BTreeMap::new()));
    }

    #[test]
    fn events_are_accepted_by_lambda_http_with_the_stage() {
        let parts = http::Request::builder()
            .method("POST")
            .uri("/api/v1/things/42?x=1")
            .header("content-type", "image/png")
            .header("host", "127.0.0.1:3000")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let api_route = ApiRoute {
            function: "T".into(),
            path: "/api/v1/things/{id}".into(),
            method: "ANY".into(),
        };
        let params = BTreeMap::from([("id".to_owned(), "42".to_owned())]);
        let event = proxy_event(
            "local",
            &api_route,
            &parts,
            params,
            &[0xff, 0x00, 0x01],
            "127.0.0.1:5555".parse().unwrap(),
        );
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["requestContext"]["path"], "/api/v1/things/42");
        assert_eq!(event["requestContext"]["stage"], "local");
        assert_eq!(event["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
        let request: lambda_http::Request = serde_json::from_value::<LambdaRequest>(event)
            .unwrap()
            .into();
        assert_eq!(request.uri().path(), "/local/api/v1/things/42");
        let body: &[u8] = request.body().as_ref();
        assert_eq!(body, &[0xff, 0x00, 0x01]);
        use lambda_http::RequestExt;
        assert_eq!(request.path_parameters().first("id"), Some("42"));
    }

    #[test]
    fn proxy_responses_keep_status_headers_and_binary_bodies() {
        let response = proxy_response(json!({
            "statusCode": 201,
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"], "content-type": ["image/png"]},
            "body": STANDARD.encode([1u8, 2, 3]),
            "isBase64Encoded": true,
        }));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    }
}
