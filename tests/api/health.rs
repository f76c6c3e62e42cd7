//! Health and readiness through the local gateway, including `/ready` with
//! the emulator stopped, and the API's description: `/docs` with its pinned
//! renderer served by the gateway, `/openapi.json` with the gateway's root
//! as its server.

use tests::{Moto, TestApp, assert_envelope};

#[tokio::test]
async fn health_answers_in_the_envelope() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["status"], "ok");
    assert_eq!(body["data"]["version"], platform::envelope::API_VERSION);
    assert!(chrono_like(body["data"]["time"].as_str().unwrap()));
    assert_eq!(
        body["meta"]["path"], "/health",
        "the stage must not show in meta.path"
    );
    assert_eq!(body["meta"]["method"], "GET");
}

fn chrono_like(value: &str) -> bool {
    value.len() >= 20 && value.ends_with('Z') && value.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn ready_checks_dynamodb_and_s3() {
    let app = TestApp::spawn().await;
    let response = app.get("/ready").await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["checks"]["dynamodb"], "ok");
    assert_eq!(body["data"]["checks"]["s3"], "ok");
}

#[tokio::test]
async fn ready_names_a_missing_table() {
    let app = TestApp::spawn().await;
    app.dynamodb
        .delete_table()
        .table_name(&app.storage.table_name)
        .send()
        .await
        .unwrap();
    let response = app.get("/ready").await;
    let body = assert_envelope(&response, 503, Some("SERVICE_UNAVAILABLE"));
    assert_eq!(body["data"]["checks"]["dynamodb"], "unavailable");
    assert_eq!(body["data"]["checks"]["s3"], "ok");
    assert!(
        body["message"].as_str().unwrap().contains("dynamodb"),
        "{body:?}"
    );
}

#[tokio::test]
async fn ready_is_503_with_the_emulator_stopped_and_health_stays_up() {
    let mut moto = Moto::start();
    let app = TestApp::spawn_on(&moto.endpoint).await;
    assert_eq!(app.get("/ready").await.status, 200);

    moto.stop();
    let started = std::time::Instant::now();
    let response = app.get("/ready").await;
    let elapsed = started.elapsed();
    let body = assert_envelope(&response, 503, Some("SERVICE_UNAVAILABLE"));
    assert_eq!(body["data"]["checks"]["dynamodb"], "unavailable");
    assert_eq!(body["data"]["checks"]["s3"], "unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("dynamodb") && message.contains("s3"),
        "{message}"
    );
    assert!(
        elapsed < health::CHECK_TIMEOUT * 2,
        "ready took {elapsed:?}"
    );
    assert!(
        !response.body.to_string().contains("127.0.0.1"),
        "no internals in the body"
    );

    assert_eq!(app.get("/health").await.status, 200);
}

#[tokio::test]
async fn docs_loads_the_pinned_renderer_from_the_local_gateway() {
    let app = TestApp::spawn().await;
    let page = app.get("/docs").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").expect("a CSP");
    assert!(policy.starts_with("default-src 'none';"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    let html = page.body.as_str().expect("HTML");
    let renderer = health::docs::RENDERER;
    let src = format!("{}/{}", infra::cdn::LOCAL_CDN_PATH, renderer.cdn_path());
    assert!(
        html.contains(&format!(
            r#"<script src="{src}" integrity="{}" crossorigin="anonymous">"#,
            renderer.integrity
        )),
        "{html}"
    );

    let asset = app.get(&src).await;
    assert_eq!(asset.status, 200);
    assert_eq!(
        asset.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
}

#[tokio::test]
async fn the_document_names_the_root_the_local_gateway_serves_at() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.body["servers"],
        serde_json::json!([{ "url": "/" }])
    );
}
