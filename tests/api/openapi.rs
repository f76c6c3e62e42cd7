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
    use model::{
        domain::{
            Charset::{MultiLine, SingleLine},
            CommentBody, Name, PostBody, Title,
        },
        patterns,
    };
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let name = patterns::trimmed_text(SingleLine, Name::MIN_CHARS, Name::MAX_CHARS);
    let title = patterns::trimmed_text(SingleLine, 1, Title::MAX_CHARS);
    let running = patterns::running_text(MultiLine);
    for (schema, field, pattern, max_length) in [
        ("RegisterRequest", "name", &name, None),
        ("PatchMeRequest", "name", &name, None),
        ("CreatePostRequest", "title", &title, None),
        ("PatchPostRequest", "title", &title, None),
        (
            "CreatePostRequest",
            "body",
            &running,
            Some(PostBody::MAX_CHARS),
        ),
        (
            "PatchPostRequest",
            "body",
            &running,
            Some(PostBody::MAX_CHARS),
        ),
        (
            "CreateCommentRequest",
            "body",
            &running,
            Some(CommentBody::MAX_CHARS),
        ),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(
            property["pattern"].as_str(),
            Some(pattern.as_str()),
            "{schema}.{field}"
        );
        assert_eq!(
            property["maxLength"].as_u64(),
            max_length.map(|max| max as u64),
            "{schema}.{field}: a trimmed text's length is in its pattern"
        );
    }
    for schema in ["CreatePostRequest", "PatchPostRequest"] {
        let tags = &schemas[schema]["properties"]["tags"];
        assert_eq!(tags["items"]["pattern"], model::domain::Tag::PATTERN);
        assert_eq!(tags["items"]["maxLength"], model::domain::Tag::MAX_CHARS);
    }
    assert_eq!(
        schemas["RegisterRequest"]["properties"]["password"]["pattern"].as_str(),
        Some(patterns::password().as_str())
    );
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

/// The request bodies named by an operation of the document.
fn request_schemas(doc: &Value) -> BTreeSet<String> {
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| METHODS.iter().filter_map(|m| item.get(*m)))
        .filter_map(|operation| {
            operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
        })
        .map(|reference| reference.rsplit('/').next().unwrap().to_owned())
        .collect()
}

fn types(property: &Value) -> Vec<&str> {
    match &property["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn null_is_refused_where_a_field_is_required_and_taken_as_absent_elsewhere() {
    // docs/API.md §1.1: `null` counts as missing. A required field that
    // listed `null` would tell a client (and a fuzzer) that the 422 is a
    // success; an optional one that did not would call a valid body invalid.
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let bodies = request_schemas(&doc);
    assert!(bodies.len() >= 12, "{bodies:?}");
    for body in &bodies {
        let schema = &schemas[body.as_str()];
        assert_eq!(schema["additionalProperties"], false, "{body}");
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (field, property) in schema["properties"].as_object().unwrap() {
            let nullable = types(property).contains(&"null");
            assert_eq!(
                nullable,
                !required.contains(field.as_str()),
                "{body}.{field}: {property}"
            );
            if let Some(allowed) = property["enum"].as_array() {
                assert_eq!(allowed.contains(&Value::Null), nullable, "{body}.{field}");
            }
        }
    }
}

#[tokio::test]
async fn path_ids_links_and_headers_say_what_the_api_does() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut operation_ids = BTreeSet::new();
    let mut links = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned());
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    assert_eq!(
                        parameter["schema"]["pattern"].as_str(),
                        Some(model::patterns::ulid().as_str()),
                        "{method} {path} {}",
                        parameter["name"]
                    );
                }
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let headers = &response["headers"];
                assert_eq!(
                    headers["X-Request-ID"]["required"], true,
                    "{method} {path} {status}"
                );
                assert_eq!(
                    headers["Retry-After"]["required"].as_bool(),
                    (status == "429").then_some(true),
                    "{method} {path} {status}"
                );
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links.push((format!("{method} {path} {status} {name}"), link.clone()));
                }
            }
        }
    }
    // Each creating route links to the routes that use what it made.
    assert!(links.len() >= 12, "{} links", links.len());
    for (from, link) in &links {
        let target = link["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{from}: {link}"));
        assert!(operation_ids.contains(target), "{from} -> {target}");
        for (_, expression) in link["parameters"].as_object().unwrap() {
            assert!(
                expression
                    .as_str()
                    .unwrap()
                    .starts_with("$response.body#/data/"),
                "{from}: {expression}"
            );
        }
    }
    let idempotency = |path: &str| {
        doc["paths"][path]["post"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|parameter| parameter["name"] == "Idempotency-Key" && parameter["in"] == "header")
    };
    assert!(idempotency("/api/v1/posts"));
    assert!(idempotency("/api/v1/posts/{id}/comments"));
    assert!(!idempotency("/api/v1/uploads"));
}

#[tokio::test]
async fn documented_links_resolve_against_real_responses() {
    // A link's pointer must find the id in the response it hangs on, or
    // stateful fuzzing only ever sees 404s.
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let user = app.signed_up_user().await;
    let created = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &user.access_token,
            Some(serde_json::json!({"title": "Linked", "body": "text"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let post_id = created.body["data"]["id"].as_str().unwrap();
    let comment = app
        .send_as(
            "POST",
            &format!("/api/v1/posts/{post_id}/comments"),
            &user.access_token,
            Some(serde_json::json!({"body": "a comment"})),
        )
        .await;
    assert_eq!(comment.status, 201);
    for (path, response) in [
        ("/api/v1/posts", &created.body),
        ("/api/v1/posts/{id}/comments", &comment.body),
    ] {
        let links = doc["paths"][path]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap();
        assert!(!links.is_empty(), "{path}");
        for (name, link) in links {
            for (parameter, expression) in link["parameters"].as_object().unwrap() {
                let pointer = expression
                    .as_str()
                    .unwrap()
                    .trim_start_matches("$response.body#");
                let value = response.pointer(pointer);
                assert!(
                    value
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.len() == 26),
                    "{path} {name}.{parameter}: {pointer} in {response}"
                );
            }
        }
    }
}
