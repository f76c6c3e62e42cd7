//! What every route shares at the edge: the default rate limit with its
//! headers, and CORS (docs/API.md §5 and §6), through the local gateway.

use std::time::Duration;

use serde_json::json;
use tests::{TestApp, assert_envelope};

/// Sleeps until just after the next fixed window of `secs` seconds opens.
async fn start_of_next_window(secs: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_window = Duration::from_millis((now.as_millis() % (secs as u128 * 1000)) as u64);
    tokio::time::sleep(Duration::from_secs(secs) - into_window + Duration::from_millis(50)).await;
}

#[tokio::test]
async fn every_api_route_is_limited_per_user_and_recovers_after_the_window() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_DEFAULT", "4/3")]).await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    // Windows are fixed: start right after one opens, so that the five
    // requests below fall into the same window even on a loaded machine.
    start_of_next_window(3).await;
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let response = app.get_as("/api/v1/users/me", &alice.access_token).await;
        assert_eq!(response.status, 200, "{:#}", response.body);
        assert_eq!(response.header("x-ratelimit-limit"), Some("4"));
        remaining.push(
            response
                .header("x-ratelimit-remaining")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    let limited = app.get_as("/api/v1/posts", &alice.access_token).await;
    assert_envelope(&limited, 429, Some("RATE_LIMIT_EXCEEDED"));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(remaining, vec![3, 2, 1, 0]);

    assert_eq!(
        app.get_as("/api/v1/users/me", &bob.access_token)
            .await
            .status,
        200,
        "other users are not affected"
    );
    assert_eq!(
        app.get("/health").await.status,
        200,
        "probes are not limited"
    );

    start_of_next_window(3).await;
    assert_eq!(
        app.get_as("/api/v1/users/me", &alice.access_token)
            .await
            .status,
        200,
        "back under the limit"
    );
}

/// Reads run while their hit is counted (platform::http), writes only after:
/// a refused write must leave nothing behind.
#[tokio::test]
async fn a_write_over_the_limit_is_refused_before_it_runs() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_DEFAULT", "2/3")]).await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let title = format!("limited-{}", ulid::Ulid::new());
    let post = || json!({"title": title, "body": "Some body", "tags": []});
    start_of_next_window(3).await;
    for _ in 0..2 {
        let created = app
            .send_as("POST", "/api/v1/posts", &alice.access_token, Some(post()))
            .await;
        assert_eq!(created.status, 201, "{:#}", created.body);
    }
    let refused = app
        .send_as("POST", "/api/v1/posts", &alice.access_token, Some(post()))
        .await;
    assert_envelope(&refused, 429, Some("RATE_LIMIT_EXCEEDED"));

    let listed = app
        .get_as(
            &format!("/api/v1/posts?authorId={}&limit=100", alice.id),
            &bob.access_token,
        )
        .await;
    assert_eq!(listed.status, 200, "{:#}", listed.body);
    let stored = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|post| post["title"] == title.as_str())
        .count();
    assert_eq!(stored, 2, "the refused post must not exist");
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_ip() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_DEFAULT", "3/60")]).await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/posts").await.status, 401);
    }
    let response = app.get("/api/v1/posts").await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
    assert!(response.header("retry-after").is_some());
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_allowed_origins_only() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let preflight = app
        .request(
            "OPTIONS",
            "/api/v1/posts",
            None,
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type",
                ),
            ],
        )
        .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("Authorization")
    );
    assert!(preflight.header("access-control-max-age").is_some());

    for path in ["/api/v1/posts", "/health", "/nope"] {
        let response = app
            .request("GET", path, None, &[("Origin", "https://app.example.com")])
            .await;
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://app.example.com"),
            "{path}"
        );
        let exposed = response.header("access-control-expose-headers").unwrap();
        for header in ["X-Request-ID", "Retry-After", "X-RateLimit-Remaining"] {
            assert!(exposed.contains(header), "{path}: {exposed}");
        }
        let foreign = app
            .request("GET", path, None, &[("Origin", "https://evil.example.com")])
            .await;
        assert!(
            foreign.header("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    let response = app.request("GET", "/health", None, &[]).await;
    assert!(
        response.header("access-control-allow-origin").is_none(),
        "no Origin, no CORS headers"
    );
}
