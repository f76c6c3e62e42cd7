//! The OpenAPI document against what is deployed and what is served: every
//! path of template.yaml is documented and nothing else is, and every
//! documented operation exists in its function's router.

use std::collections::BTreeSet;

use infra::template::Template;
use serde_json::Value;
use tests::{TestApp, workspace_root};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.body
}

#[tokio::test]
async fn the_document_covers_exactly_the_routes_of_the_template() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], platform::envelope::API_VERSION);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );

    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let template = Template::load(workspace_root().join("template.yaml")).unwrap();
    let deployed: BTreeSet<String> = template.routes.iter().map(|r| r.path.clone()).collect();
    let missing: Vec<_> = deployed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&deployed).collect();
    assert!(
        missing.is_empty(),
        "in template.yaml but not documented: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented but not in template.yaml: {extra:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let concrete = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "01ARZ3NDEKTSV4RRFFQ69G5FAV"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let response = app
                .request(&method.to_uppercase(), &concrete, None, &[])
                .await;
            assert_ne!(
                response.status, 405,
                "{method} {path} is documented but not routed"
            );
            assert_ne!(
                response.body["message"], "Route not found",
                "{method} {path}"
            );
            if operation.get("security").is_some() {
                assert_eq!(
                    response.status, 401,
                    "{method} {path} is documented as authenticated"
                );
            }
            for status in operation["responses"].as_object().unwrap().keys() {
                assert!(status.parse::<u16>().is_ok(), "{method} {path}: {status}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 35, "only {checked} operations documented");
}

#[tokio::test]
async fn the_docs_page_renders_the_document() {
    let app = TestApp::spawn().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.body.as_str().unwrap().contains("openapi.json"));
}

/// Each text field of a request body (tags included) states its text rule
/// as a `pattern`: the rule's own constant, checked against the parser in
/// model::domain, so a fuzzer's valid data is valid here too.
#[tokio::test]
async fn text_fields_carry_the_pattern_of_their_text_rule() {
    use model::domain::Charset::{MultiLine, SingleLine};
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, field, charset) in [
        ("RegisterRequest", "name", SingleLine),
        ("PatchMeRequest", "name", SingleLine),
        ("CreatePostRequest", "title", SingleLine),
        ("PatchPostRequest", "title", SingleLine),
        ("CreatePostRequest", "body", MultiLine),
        ("PatchPostRequest", "body", MultiLine),
        ("CreateCommentRequest", "body", MultiLine),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(
            property["pattern"].as_str(),
            Some(charset.pattern()),
            "{schema}.{field}: {property}"
        );
        assert!(property["maxLength"].is_u64(), "{schema}.{field}");
    }
    for schema in ["CreatePostRequest", "PatchPostRequest"] {
        let tags = &schemas[schema]["properties"]["tags"];
        assert_eq!(tags["items"]["pattern"], model::domain::Tag::PATTERN);
        assert_eq!(tags["items"]["maxLength"], model::domain::Tag::MAX_CHARS);
    }
    // `schema_with` replaces the generated schema, not the required list.
    assert_eq!(
        schemas["CreatePostRequest"]["required"],
        serde_json::json!(["title", "body"])
    );
    assert_eq!(
        schemas["RegisterRequest"]["required"],
        serde_json::json!(["name", "email", "password"])
    );
    assert_eq!(
        schemas["CreateCommentRequest"]["required"],
        serde_json::json!(["body"])
    );
}
