//! Stands between the benchmarked functions and the emulator: forwards every
//! AWS call to it, answers the WebSocket `@connections` API itself, and keeps
//! an [`EmulatorClock`] of how long calls were in flight, so that the
//! emulator's own time can be taken out of a function's measured duration.
//!
//! The clock counts wall time during which *at least one* call was in flight
//! (the union of the intervals, not their sum), so concurrent fan-out calls
//! are not counted twice. The proxy hop itself is counted as emulator time:
//! on AWS that time is the network, not the function.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, Method, StatusCode, Uri};

#[derive(Default)]
struct Busy {
    in_flight: usize,
    since: Option<Instant>,
    total: Duration,
    /// Stretches with at least one call in flight: the round trips a caller
    /// waited for one after the other (calls made together count once).
    periods: u64,
    /// Calls by operation (`DynamoDB.GetItem`, `S3.HEAD`, `@connections.POST`).
    calls: BTreeMap<String, u64>,
    /// The body of the last `@connections` POST: what a client was sent.
    last_push: Bytes,
}

/// Time the emulator was busy, and which calls it served.
#[derive(Clone, Default)]
pub struct EmulatorClock(Arc<Mutex<Busy>>);

impl EmulatorClock {
    fn lock(&self) -> MutexGuard<'_, Busy> {
        crate::sync::lock(&self.0)
    }

    /// Total busy time so far, the call in flight included.
    pub fn busy(&self) -> Duration {
        let busy = self.lock();
        busy.total + busy.since.map(|since| since.elapsed()).unwrap_or_default()
    }

    /// Busy stretches so far: sequential round trips.
    pub fn round_trips(&self) -> u64 {
        self.lock().periods
    }

    /// Calls so far, by operation.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// What the last push through `@connections` carried, forgetting it,
    /// so that an invocation that pushes nothing is not credited with the
    /// previous one's push.
    pub fn take_last_push(&self) -> Bytes {
        std::mem::take(&mut self.lock().last_push)
    }

    fn enter(&self, operation: String) -> InFlight {
        let mut busy = self.lock();
        if busy.in_flight == 0 {
            busy.since = Some(Instant::now());
            busy.periods += 1;
        }
        busy.in_flight += 1;
        *busy.calls.entry(operation).or_default() += 1;
        InFlight(self.clone())
    }
}

/// Ends its call's interval when dropped, whatever way the call ends.
struct InFlight(EmulatorClock);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut busy = self.0.lock();
        busy.in_flight -= 1;
        if busy.in_flight == 0
            && let Some(since) = busy.since.take()
        {
            busy.total += since.elapsed();
        }
    }
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    clock: EmulatorClock,
}

/// Names a call the way the cost table counts it.
fn operation(method: &Method, uri: &Uri, headers: &HeaderMap) -> String {
    if uri.path().contains("/@connections/") {
        return format!("@connections.{method}");
    }
    // SES v2 is a REST API without a target header, as S3 is.
    if uri.path().starts_with("/v2/email/") {
        return format!("SESv2.{method}");
    }
    match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        // `DynamoDB_20120810.GetItem` → `DynamoDB.GetItem`
        Some(target) => match target.split_once('.') {
            Some((service, op)) => {
                format!("{}.{op}", service.split('_').next().unwrap_or(service))
            }
            None => target.to_owned(),
        },
        None => format!("S3.{method}"),
    }
}

/// `@connections` as API Gateway answers it for a live connection: the
/// benchmark measures the function's side of a push, not delivery.
fn connections_answer(method: &Method) -> Response {
    match *method {
        Method::POST => StatusCode::OK.into_response(),
        Method::DELETE => StatusCode::NO_CONTENT.into_response(),
        _ => (
            [(http::header::CONTENT_TYPE, "application/json")],
            r#"{"connectedAt":"2026-01-01T00:00:00Z","identity":{"sourceIp":"127.0.0.1"},"lastActiveAt":"2026-01-01T00:00:00Z"}"#,
        )
            .into_response(),
    }
}

/// Hop-by-hop and length headers that the forwarding client sets itself.
fn forwarded(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive"
    )
}

/// Response headers to pass back: as [`forwarded`], but a HEAD answer keeps
/// its `Content-Length`, which is the object's size, not the (empty) body's.
fn answered(method: &Method, name: &http::HeaderName) -> bool {
    forwarded(name) || (*method == Method::HEAD && name == http::header::CONTENT_LENGTH)
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = proxy.clock.enter(operation(&method, &uri, &headers));
    if uri.path().contains("/@connections/") {
        if method == Method::POST {
            proxy.clock.lock().last_push = body;
        }
        return connections_answer(&method);
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = proxy
        .client
        .request(method.clone(), format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in headers.iter().filter(|(name, _)| forwarded(name)) {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut response_headers = HeaderMap::new();
            for (name, value) in answer
                .headers()
                .iter()
                .filter(|(name, _)| answered(&method, name))
            {
                response_headers.append(name, value.clone());
            }
            match answer.bytes().await {
                Ok(bytes) => (status, response_headers, Body::from(bytes)).into_response(),
                Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
            }
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// Starts the proxy in front of `upstream` (the emulator's base URL) on a
/// free port of 127.0.0.1 and returns its address.
pub async fn start(upstream: &str, clock: EmulatorClock) -> std::io::Result<SocketAddr> {
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        // The emulator is reached directly, as the functions would reach
        // AWS: no environment proxy, and a redirect is passed back as is.
        client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?,
        clock,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "emulator proxy stopped");
        }
    });
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_service_and_action() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", "DynamoDB_20120810.GetItem".parse().unwrap());
        let uri: Uri = "/".parse().unwrap();
        assert_eq!(operation(&Method::POST, &uri, &headers), "DynamoDB.GetItem");
        let s3: Uri = "/bucket/key".parse().unwrap();
        assert_eq!(operation(&Method::HEAD, &s3, &HeaderMap::new()), "S3.HEAD");
        let ses: Uri = "/v2/email/outbound-emails".parse().unwrap();
        assert_eq!(
            operation(&Method::POST, &ses, &HeaderMap::new()),
            "SESv2.POST"
        );
        let ws: Uri = "/bench/@connections/abc%3D".parse().unwrap();
        assert_eq!(
            operation(&Method::POST, &ws, &HeaderMap::new()),
            "@connections.POST"
        );
    }

    #[test]
    fn overlapping_calls_count_once() {
        let clock = EmulatorClock::default();
        // Two calls in flight for the same 60 ms: their union is 60 ms, their
        // sum 120 ms.
        let first = clock.enter("a".into());
        let second = clock.enter("b".into());
        std::thread::sleep(Duration::from_millis(60));
        drop(first);
        drop(second);
        let busy = clock.busy();
        assert!(busy >= Duration::from_millis(60), "{busy:?}");
        assert!(busy < Duration::from_millis(110), "counted twice: {busy:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.busy(), busy, "idle time is not counted");
        assert_eq!(clock.calls().values().sum::<u64>(), 2);
        assert_eq!(clock.round_trips(), 1, "made together, waited for once");
        drop(clock.enter("c".into()));
        drop(clock.enter("d".into()));
        assert_eq!(clock.round_trips(), 3, "one after the other");
    }
}
