//! The local gateway behaves as API Gateway does: unknown routes are a 404
//! envelope, request ids are echoed, the stage is hidden, and oversize
//! payloads are refused before reaching a function.

use tests::{TestApp, assert_envelope};

#[tokio::test]
async fn an_unknown_route_is_a_404_envelope() {
    let app = TestApp::spawn().await;
    for path in ["/nope", "/api/v1/nothing/here", "/health/extra"] {
        let response = app.get(path).await;
        let body = assert_envelope(&response, 404, Some("NOT_FOUND"));
        assert_eq!(body["meta"]["path"], path);
    }
}

#[tokio::test]
async fn a_known_path_with_the_wrong_method_is_405() {
    let app = TestApp::spawn().await;
    let response = app.request("DELETE", "/health", None, &[]).await;
    assert_envelope(&response, 405, Some("METHOD_NOT_ALLOWED"));
}

#[tokio::test]
async fn a_valid_request_id_is_echoed_and_a_bad_one_replaced() {
    let app = TestApp::spawn().await;
    let response = app
        .request("GET", "/health", None, &[("X-Request-ID", "abc-1")])
        .await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["meta"]["requestId"], "abc-1");
    assert_eq!(response.header("x-request-id"), Some("abc-1"));

    let response = app
        .request("GET", "/nope", None, &[("X-Request-ID", "abc-2")])
        .await;
    assert_eq!(response.header("x-request-id"), Some("abc-2"));

    for bad in ["has space", "x;y", &"a".repeat(129)] {
        let response = app
            .request("GET", "/health", None, &[("X-Request-ID", bad)])
            .await;
        let body = assert_envelope(&response, 200, None);
        let id = body["meta"]["requestId"].as_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a new UUID: {id}");
    }
}

#[tokio::test]
async fn a_body_over_api_gateways_limit_is_refused_at_the_gateway() {
    let app = TestApp::spawn().await;
    let response = app
        .send_raw(
            "POST",
            "/health",
            "application/json",
            vec![b' '; 10 * 1024 * 1024 + 1],
        )
        .await;
    assert_envelope(&response, 413, Some("PAYLOAD_TOO_LARGE"));
}

#[tokio::test]
async fn every_response_is_json_with_timing() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    let body = assert_envelope(&response, 200, None);
    assert!(body["meta"]["durationMs"].as_f64().unwrap() >= 0.0);
}
