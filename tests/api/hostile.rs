//! Hostile input through the local gateway (issue "API hardening"): broken
//! and oversized bodies, wrong JSON types, hostile headers, query values
//! and paths. Each case must get its 4xx envelope of docs/API.md §2, never
//! a 500 or a bare body, and must leave the table exactly as it was.

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use tests::{
    PASSWORD, Session, Snapshot, TestApp, TestResponse, assert_envelope, unique_email,
    upload_request,
};

/// Asserts status and `code` with a label first (the loops below send
/// dozens of cases), then the whole envelope.
fn expect(what: &str, response: &TestResponse, status: u16, code: &str) {
    assert_eq!(
        (response.status, response.body["code"].as_str()),
        (status, Some(code)),
        "{what}: {:#}",
        response.body
    );
    assert_envelope(response, status, Some(code));
}

/// `(field, code)` of every entry of `errors[]`.
fn field_errors(response: &TestResponse) -> Vec<(String, String)> {
    response.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_owned(),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Sends exactly these bytes and headers, past the JSON helpers of the
/// harness: header values may be any bytes.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, HeaderValue)],
    body: Option<Vec<u8>>,
) -> TestResponse {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("request reaches the gateway");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    TestResponse {
        status,
        headers,
        body,
    }
}

fn bearer(session: &Session) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {}", session.access_token)).expect("token header")
}

fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Sends `body` as JSON bytes, with the user's token when there is one.
async fn send_bytes(
    app: &TestApp,
    method: &str,
    path: &str,
    user: Option<&Session>,
    body: Vec<u8>,
) -> TestResponse {
    let mut headers = vec![("content-type", json_type())];
    if let Some(user) = user {
        headers.push(("authorization", bearer(user)));
    }
    send(app, method, path, &headers, Some(body)).await
}

/// A user with one post, and the table as it stands after that.
struct Fixture {
    app: TestApp,
    user: Session,
    post_id: String,
    post_path: String,
    before: Snapshot,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let response = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &user.access_token,
            Some(json!({"title": "A post", "body": "Its body", "tags": ["rust"]})),
        )
        .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    let post_id = response.body["data"]["id"]
        .as_str()
        .expect("post id")
        .to_owned();
    let before = app.snapshot().await;
    Fixture {
        post_path: format!("/api/v1/posts/{post_id}"),
        post_id,
        app,
        user,
        before,
    }
}

/// One JSON route of the API with a body it accepts.
struct JsonRoute {
    method: &'static str,
    path: String,
    authenticated: bool,
    valid: Value,
}

impl Fixture {
    /// Every route that takes a JSON body with fields of several types.
    fn json_routes(&self) -> Vec<JsonRoute> {
        let route = |method, path: &str, authenticated, valid| JsonRoute {
            method,
            path: path.to_owned(),
            authenticated,
            valid,
        };
        vec![
            route(
                "POST",
                "/api/v1/auth/register",
                false,
                json!({"name": "Valid Name", "email": unique_email(), "password": PASSWORD}),
            ),
            route(
                "POST",
                "/api/v1/auth/login",
                false,
                json!({"email": self.user.email, "password": PASSWORD}),
            ),
            route(
                "POST",
                "/api/v1/posts",
                true,
                json!({"title": "T", "body": "B", "tags": ["a"]}),
            ),
            route(
                "PATCH",
                &self.post_path,
                true,
                json!({"title": "T", "body": "B", "tags": ["a"], "version": 1}),
            ),
            route(
                "POST",
                &format!("{}/comments", self.post_path),
                true,
                json!({"body": "A comment"}),
            ),
            route("POST", "/api/v1/uploads", true, upload_request(100)),
            route(
                "PATCH",
                "/api/v1/users/me",
                true,
                json!({"name": "New Name"}),
            ),
        ]
    }

    async fn send_json(&self, route: &JsonRoute, body: &Value) -> TestResponse {
        let user = route.authenticated.then_some(&self.user);
        send_bytes(
            &self.app,
            route.method,
            &route.path,
            user,
            serde_json::to_vec(body).expect("json"),
        )
        .await
    }
}

/// `base` with `field` set to `value`.
fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut body = base.clone();
    body[field] = value;
    body
}

#[tokio::test]
async fn bodies_that_are_not_utf8_are_400_and_store_nothing() {
    let f = fixture().await;
    let bodies: [&[u8]; 4] = [
        b"{\"name\":\"\xff\xfe\",\"email\":\"a@b.com\",\"password\":\"abcdefg1\"}",
        b"\xff\xfe{}",
        b"{\"title\":\"\xc3\x28\",\"body\":\"b\"}",
        // A lone surrogate escape is valid JSON syntax but not a string.
        br#"{"title":"\ud800","body":"b"}"#,
    ];
    for route in f.json_routes() {
        for body in bodies {
            let user = route.authenticated.then_some(&f.user);
            let response = send_bytes(&f.app, route.method, &route.path, user, body.to_vec()).await;
            let what = format!("{} {} {:?}", route.method, route.path, body);
            expect(&what, &response, 400, "BAD_REQUEST");
        }
    }
    f.app.assert_unchanged(&f.before, "non-UTF-8 bodies").await;
}

#[tokio::test]
async fn a_body_just_over_64_kib_is_a_413_from_the_function() {
    let f = fixture().await;
    for route in f.json_routes() {
        // A well-formed body one byte over the limit.
        let padding = 64 * 1024 + 1 - br#"{"name":""}"#.len();
        let body = format!(r#"{{"name":"{}"}}"#, "x".repeat(padding)).into_bytes();
        assert_eq!(body.len(), 64 * 1024 + 1);
        let user = route.authenticated.then_some(&f.user);
        let response = send_bytes(&f.app, route.method, &route.path, user, body).await;
        let what = format!("{} {}", route.method, route.path);
        expect(&what, &response, 413, "PAYLOAD_TOO_LARGE");
        // The function answered: its edge layer counts /api requests.
        assert!(
            response.header("x-ratelimit-limit").is_some(),
            "{what}: not the function's 413"
        );
    }
    // Exactly 64 KiB is read and judged on its content instead.
    let padding = 64 * 1024 - br#"{"title":"","body":"b"}"#.len();
    let body = format!(r#"{{"title":"{}","body":"b"}}"#, "x".repeat(padding)).into_bytes();
    let response = send_bytes(&f.app, "POST", "/api/v1/posts", Some(&f.user), body).await;
    expect("64 KiB exactly", &response, 422, "VALIDATION_ERROR");
    assert_eq!(
        field_errors(&response),
        vec![("title".to_owned(), "TOO_LONG".to_owned())]
    );
    f.app.assert_unchanged(&f.before, "oversized bodies").await;
}

#[tokio::test]
async fn a_body_over_10_mb_is_a_413_from_the_gateway() {
    let f = fixture().await;
    let body = vec![b' '; 10 * 1024 * 1024 + 1];
    let response = send_bytes(&f.app, "POST", "/api/v1/posts", Some(&f.user), body).await;
    expect("10 MiB + 1", &response, 413, "PAYLOAD_TOO_LARGE");
    // The gateway refused it before any function ran.
    assert!(response.header("x-ratelimit-limit").is_none());
    // And the gateway keeps serving.
    assert_eq!(f.app.get("/health").await.status, 200);
    f.app.assert_unchanged(&f.before, "a 10 MB body").await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_not_a_crash() {
    let f = fixture().await;
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let in_a_field = format!(
        r#"{{"title":"t","body":"b","tags":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    // Nine bytes a level: half as deep keeps it under 64 KiB.
    let named = format!(
        "{}1{}",
        r#"{"title":"#.repeat(depth / 2),
        "}".repeat(depth / 2)
    );
    let unclosed = "[{".repeat(depth);
    for route in f.json_routes() {
        for body in [&arrays, &objects, &in_a_field, &named, &unclosed] {
            let user = route.authenticated.then_some(&f.user);
            let response = send_bytes(
                &f.app,
                route.method,
                &route.path,
                user,
                body.clone().into_bytes(),
            )
            .await;
            let what = format!("{} {} {}", route.method, route.path, &body[..20]);
            expect(&what, &response, 400, "BAD_REQUEST");
        }
    }
    // The functions survived: a good request still works.
    let response = f.app.get_as(&f.post_path, &f.user.access_token).await;
    assert_envelope(&response, 200, None);
    f.app
        .assert_unchanged(&f.before, "deeply nested bodies")
        .await;
}

#[tokio::test]
async fn a_wrong_json_type_in_any_field_is_a_400() {
    let f = fixture().await;
    let not_a_string = || {
        vec![
            json!(5),
            json!(1.5),
            json!(true),
            json!(["x"]),
            json!({"x": "y"}),
        ]
    };
    let not_a_tag_list = [
        json!("rust"),
        json!(5),
        json!([5]),
        json!([["a"]]),
        json!([null]),
        json!({"0": "a"}),
    ];
    // `1e2` is the integer 100 (JSON has one number type; JSON Schema's
    // `integer` takes it), so only a fraction is not an integer.
    let not_an_integer = [
        json!("1"),
        json!(1.5),
        json!(1e-2),
        json!(true),
        json!([1]),
        json!({"v": 1}),
    ];
    // The string, list and integer fields of each route of `json_routes`.
    let fields: Vec<(Vec<&str>, Vec<&str>, Vec<&str>)> = vec![
        (vec!["name", "email", "password"], vec![], vec![]),
        (vec!["email", "password"], vec![], vec![]),
        (vec!["title", "body", "imageUploadId"], vec!["tags"], vec![]),
        (vec!["title", "body"], vec!["tags"], vec!["version"]),
        (vec!["body"], vec![], vec![]),
        (
            vec!["filename", "contentType", "purpose"],
            vec![],
            vec!["size"],
        ),
        (vec!["name", "avatarUploadId"], vec![], vec![]),
    ];
    let routes = f.json_routes();
    assert_eq!(routes.len(), fields.len());
    let mut cases = 0;
    for (route, (strings, lists, integers)) in routes.iter().zip(&fields) {
        let wrong = strings
            .iter()
            .flat_map(|field| not_a_string().into_iter().map(move |v| (*field, v)))
            .chain(
                lists
                    .iter()
                    .flat_map(|field| not_a_tag_list.iter().map(move |v| (*field, v.clone()))),
            )
            .chain(
                integers
                    .iter()
                    .flat_map(|field| not_an_integer.iter().map(move |v| (*field, v.clone()))),
            );
        for (field, value) in wrong {
            let body = with(&route.valid, field, value.clone());
            let response = f.send_json(route, &body).await;
            let what = format!("{} {} {field}={value}", route.method, route.path);
            expect(&what, &response, 400, "BAD_REQUEST");
            cases += 1;
        }
    }
    assert!(cases > 90, "{cases}");
    // A number JSON itself cannot hold in a double is malformed.
    for raw in [r#"{"title":"T","version":1e400}"#] {
        let response = send_bytes(
            &f.app,
            "PATCH",
            &f.post_path,
            Some(&f.user),
            raw.as_bytes().to_vec(),
        )
        .await;
        expect(raw, &response, 400, "BAD_REQUEST");
    }
    f.app.assert_unchanged(&f.before, "wrong JSON types").await;
}

#[tokio::test]
async fn unknown_fields_are_a_400() {
    let f = fixture().await;
    for route in f.json_routes() {
        for (field, value) in [
            ("role", json!("admin")),
            ("status", json!("active")),
            ("id", json!("01J00000000000000000000000")),
            ("authorId", json!(f.user.id)),
            ("__proto__", json!({"admin": true})),
            ("na\u{0}me", json!("x")),
            ("Title", json!("case matters")),
        ] {
            let body = with(&route.valid, field, value);
            let response = f.send_json(&route, &body).await;
            let what = format!("{} {} +{field:?}", route.method, route.path);
            expect(&what, &response, 400, "BAD_REQUEST");
        }
    }
    f.app.assert_unchanged(&f.before, "unknown fields").await;
}

/// `null` reads as absent: for a required field that is a 422 `REQUIRED`
/// naming it (the extractor's wire types are all `Option`, so that a
/// missing field is a rule, not a shape, error).
#[tokio::test]
async fn null_for_a_required_field_is_a_422_required() {
    let f = fixture().await;
    let required: Vec<Vec<&str>> = vec![
        vec!["name", "email", "password"],
        vec!["email", "password"],
        vec!["title", "body"],
        vec!["version"],
        vec!["body"],
        vec!["filename", "contentType", "size", "purpose"],
        vec![],
    ];
    let routes = f.json_routes();
    assert_eq!(routes.len(), required.len());
    for (route, fields) in routes.iter().zip(required) {
        for field in fields {
            let body = with(&route.valid, field, Value::Null);
            let response = f.send_json(route, &body).await;
            let what = format!("{} {} {field}=null", route.method, route.path);
            expect(&what, &response, 422, "VALIDATION_ERROR");
            assert_eq!(
                field_errors(&response),
                vec![(field.to_owned(), "REQUIRED".to_owned())],
                "{what}"
            );
        }
    }
    f.app.assert_unchanged(&f.before, "null fields").await;
}

#[tokio::test]
async fn huge_negative_and_non_numeric_limits_are_a_400() {
    let f = fixture().await;
    let lists = [
        "/api/v1/posts".to_owned(),
        "/api/v1/notifications".to_owned(),
        format!("{}/comments", f.post_path),
    ];
    for list in &lists {
        for limit in [
            "99999999999999999999",
            "4294967296",
            "4294967297",
            "-1",
            "-4294967295",
            "0",
            "101",
            "abc",
            "1.5",
            "1e2",
            "0x10",
            "",
            "%00",
            "5%00",
            "%EF%BC%95",
        ] {
            let path = format!("{list}?limit={limit}");
            let response = f.app.get_as(&path, &f.user.access_token).await;
            expect(&path, &response, 400, "BAD_REQUEST");
        }
        let response = f
            .app
            .get_as(&format!("{list}?limit=100"), &f.user.access_token)
            .await;
        assert_envelope(&response, 200, None);
    }
    f.app.assert_unchanged(&f.before, "bad limits").await;
}

#[tokio::test]
async fn a_huge_or_out_of_range_version_changes_nothing() {
    let f = fixture().await;
    let patch = |version: Value| json!({"title": "Changed", "version": version});
    for (version, status, code) in [
        (json!(i64::MAX), 409, "CONFLICT"),
        (json!(2), 409, "CONFLICT"),
        (json!(0), 422, "VALIDATION_ERROR"),
        (json!(-1), 422, "VALIDATION_ERROR"),
        (json!(i64::MIN), 422, "VALIDATION_ERROR"),
        // Beyond 64 bits a version is still an integer, and names no
        // version the post ever had.
        (json!(u64::MAX), 409, "CONFLICT"),
        (json!(1e30), 409, "CONFLICT"),
        (json!(-1e30), 422, "VALIDATION_ERROR"),
        (json!(2.0), 409, "CONFLICT"),
        (json!(1.5), 400, "BAD_REQUEST"),
    ] {
        let response = f
            .app
            .send_as(
                "PATCH",
                &f.post_path,
                &f.user.access_token,
                Some(patch(version.clone())),
            )
            .await;
        expect(&format!("version {version}"), &response, status, code);
    }
    f.app.assert_unchanged(&f.before, "bad versions").await;
    let post = f.app.get_as(&f.post_path, &f.user.access_token).await;
    assert_eq!(post.body["data"]["version"], 1);
    assert_eq!(post.body["data"]["title"], "A post");
}

#[tokio::test]
async fn negative_huge_and_fractional_upload_sizes_are_refused() {
    let f = fixture().await;
    let size = |raw: &str| {
        format!(
            r#"{{"filename":"a.png","contentType":"image/png","purpose":"avatar","size":{raw}}}"#
        )
    };
    for (raw, status, code) in [
        ("-1", 422, "VALIDATION_ERROR"),
        ("0", 422, "VALIDATION_ERROR"),
        ("-9223372036854775808", 422, "VALIDATION_ERROR"),
        ("-1e30", 422, "VALIDATION_ERROR"),
        ("10485761", 413, "PAYLOAD_TOO_LARGE"),
        ("9223372036854775807", 413, "PAYLOAD_TOO_LARGE"),
        ("18446744073709551615", 413, "PAYLOAD_TOO_LARGE"),
        ("18446744073709551616", 413, "PAYLOAD_TOO_LARGE"),
        ("1e30", 413, "PAYLOAD_TOO_LARGE"),
        ("1e400", 400, "BAD_REQUEST"),
        ("1.5", 400, "BAD_REQUEST"),
        ("1e-2", 400, "BAD_REQUEST"),
        ("10485761.0", 413, "PAYLOAD_TOO_LARGE"),
        ("0.0", 422, "VALIDATION_ERROR"),
        ("\"100\"", 400, "BAD_REQUEST"),
        ("NaN", 400, "BAD_REQUEST"),
    ] {
        let response = send_bytes(
            &f.app,
            "POST",
            "/api/v1/uploads",
            Some(&f.user),
            size(raw).into_bytes(),
        )
        .await;
        expect(&format!("size {raw}"), &response, status, code);
        if status == 422 {
            assert_eq!(
                field_errors(&response),
                vec![("size".to_owned(), "OUT_OF_RANGE".to_owned())]
            );
        }
    }
    f.app.assert_unchanged(&f.before, "bad sizes").await;
}

#[tokio::test]
async fn hostile_request_ids_are_replaced_by_a_fresh_uuid() {
    let f = fixture().await;
    let long = "a".repeat(200);
    let just_over = "b".repeat(129);
    let hostile: Vec<HeaderValue> = [
        "has space",
        "\"quoted\"",
        "'single'",
        "<script>alert(1)</script>",
        "semi;colon",
        "a/b",
        "tab\tinside",
        "",
        long.as_str(),
        just_over.as_str(),
    ]
    .into_iter()
    .map(|v| HeaderValue::from_str(v).expect("visible ASCII"))
    .chain([
        HeaderValue::from_bytes(b"id-\xff\xfe").expect("obs-text"),
        HeaderValue::from_bytes("ünïcödé".as_bytes()).expect("obs-text"),
        HeaderValue::from_bytes(b"\x80\x81\x82").expect("obs-text"),
    ])
    .collect();
    let token = bearer(&f.user);
    // A function's answer, a function's error, and the gateway's own 404.
    let targets: [(&str, Option<&HeaderValue>, u16, Option<&str>); 4] = [
        ("/health", None, 200, None),
        ("/api/v1/users/me", Some(&token), 200, None),
        ("/api/v1/posts", None, 401, Some("UNAUTHORIZED")),
        ("/api/v1/no-such-route", None, 404, Some("NOT_FOUND")),
    ];
    for value in &hostile {
        for (path, auth, status, code) in &targets {
            let mut headers = vec![("x-request-id", value.clone())];
            if let Some(auth) = auth {
                headers.push(("authorization", (*auth).clone()));
            }
            let response = send(&f.app, "GET", path, &headers, None).await;
            // Checks that the header and meta.requestId agree.
            assert_envelope(&response, *status, *code);
            let id = response.header("x-request-id").expect("a request id");
            assert!(
                uuid_like(id),
                "{path} with {value:?} answered request id {id:?}"
            );
            assert_ne!(id.as_bytes(), value.as_bytes());
        }
    }
    // A well-formed id is kept, as the contract says.
    let response = send(
        &f.app,
        "GET",
        "/health",
        &[("x-request-id", HeaderValue::from_static("client-1.2_3"))],
        None,
    )
    .await;
    assert_eq!(response.header("x-request-id"), Some("client-1.2_3"));
    assert_eq!(response.body["meta"]["requestId"], "client-1.2_3");
    f.app
        .assert_unchanged(&f.before, "hostile request ids")
        .await;
}

/// A hyphenated UUID: 8-4-4-4-12 lower-case hex digits.
fn uuid_like(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[tokio::test]
async fn path_traversal_in_path_parameters_is_a_404() {
    let f = fixture().await;
    let id = &f.post_id;
    let traversals = [
        "..%2F..%2Fetc%2Fpasswd",
        "..%5C..%5Cwindows%5Cwin.ini",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%00",
        "%FF",
        "%C3%28",
        "%2F",
        "%20",
        &format!("{id}%00"),
        &format!("{id}%2F..%2F"),
    ];
    let mut cases = 0;
    for bad in traversals {
        for (method, path, body) in [
            ("GET", format!("/api/v1/posts/{bad}"), None),
            (
                "PATCH",
                format!("/api/v1/posts/{bad}"),
                Some(json!({"title": "x", "version": 1})),
            ),
            ("DELETE", format!("/api/v1/posts/{bad}"), None),
            ("GET", format!("/api/v1/posts/{bad}/comments"), None),
            (
                "POST",
                format!("/api/v1/posts/{bad}/comments"),
                Some(json!({"body": "x"})),
            ),
            ("DELETE", format!("/api/v1/posts/{id}/comments/{bad}"), None),
            ("GET", format!("/api/v1/users/{bad}"), None),
            ("GET", format!("/api/v1/uploads/{bad}"), None),
            ("POST", format!("/api/v1/uploads/{bad}/complete"), None),
            ("PATCH", format!("/api/v1/notifications/{bad}/read"), None),
            ("DELETE", format!("/api/v1/notifications/{bad}"), None),
        ] {
            let response = f
                .app
                .send_as(method, &path, &f.user.access_token, body)
                .await;
            expect(&format!("{method} {path}"), &response, 404, "NOT_FOUND");
            cases += 1;
        }
    }
    assert!(cases > 100, "{cases}");
    // Literal dot segments are resolved by the client; what arrives is an
    // unknown route, also a 404 envelope.
    let response = f
        .app
        .get_as("/api/v1/posts/../../etc/passwd", &f.user.access_token)
        .await;
    expect("dot segments", &response, 404, "NOT_FOUND");
    f.app.assert_unchanged(&f.before, "path traversal").await;
}

#[tokio::test]
async fn path_traversal_in_upload_filenames_never_reaches_a_key() {
    let f = fixture().await;
    for name in ["..", "../..", "/", "../", "..\\..\\", " / ", "a/.."] {
        let body = with(&upload_request(100), "filename", json!(name));
        let response = f.app.post_upload(&f.user.access_token, body.clone()).await;
        expect(
            &format!("filename {name:?}"),
            &response,
            422,
            "VALIDATION_ERROR",
        );
        assert_eq!(
            field_errors(&response),
            vec![("filename".to_owned(), "INVALID_FORMAT".to_owned())]
        );
    }
    f.app
        .assert_unchanged(&f.before, "filenames that name no file")
        .await;
    for (name, stored) in [
        ("../../etc/passwd.png", "passwd.png"),
        ("..\\..\\boot.png", "boot.png"),
        ("/etc/../x.png", "x.png"),
        ("uploads/someone-else/01J.png", "01J.png"),
    ] {
        let body = with(&upload_request(100), "filename", json!(name));
        let upload = f.app.create_upload(&f.user.access_token, body).await;
        let url = reqwest::Url::parse(&upload.upload_url).expect("upload url");
        assert_eq!(
            url.path(),
            format!(
                "/{}/uploads/{}/{}",
                f.app.storage.bucket_name, f.user.id, upload.id
            ),
            "{name}"
        );
        let item = f.app.upload_item(&upload.id).await.expect("stored upload");
        assert_eq!(
            item.get("filename"),
            Some(&AttributeValue::S(stored.into()))
        );
        assert_eq!(
            item.get("key"),
            Some(&AttributeValue::S(format!(
                "uploads/{}/{}",
                f.user.id, upload.id
            )))
        );
    }
}

#[tokio::test]
async fn nul_bytes_in_text_fields_are_a_422() {
    let f = fixture().await;
    let comments = format!("{}/comments", f.post_path);
    let cases: Vec<(&str, &str, bool, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/auth/register",
            false,
            json!({"name": "Al\u{0}ice", "email": unique_email(), "password": PASSWORD}),
            "name",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            false,
            json!({"name": "Alice", "email": "al\u{0}ice@example.com", "password": PASSWORD}),
            "email",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            false,
            json!({"email": format!("{}\u{0}", f.user.email), "password": PASSWORD}),
            "email",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t\u{0}", "body": "b"}),
            "title",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t", "body": "\u{0}"}),
            "body",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t", "body": "b", "tags": ["ru\u{0}st"]}),
            "tags[0]",
        ),
        (
            "PATCH",
            &f.post_path,
            true,
            json!({"title": "\u{0}\u{0}", "version": 1}),
            "title",
        ),
        (
            "PATCH",
            &f.post_path,
            true,
            json!({"body": "a\u{0}b", "version": 1}),
            "body",
        ),
        (
            "PATCH",
            &f.post_path,
            true,
            json!({"tags": ["\u{0}"], "version": 1}),
            "tags[0]",
        ),
        (
            "POST",
            &comments,
            true,
            json!({"body": "nice\u{0}"}),
            "body",
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            true,
            json!({"name": "Bo\u{0}b"}),
            "name",
        ),
        (
            "POST",
            "/api/v1/uploads",
            true,
            with(&upload_request(100), "filename", json!("a\u{0}.png")),
            "filename",
        ),
    ];
    for (method, path, authenticated, body, field) in cases {
        let user = authenticated.then_some(&f.user);
        let response = send_bytes(
            &f.app,
            method,
            path,
            user,
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
        let what = format!("{method} {path} {body}");
        expect(&what, &response, 422, "VALIDATION_ERROR");
        assert_eq!(
            field_errors(&response),
            vec![(field.to_owned(), "INVALID_FORMAT".to_owned())],
            "{what}"
        );
    }
    f.app.assert_unchanged(&f.before, "NUL in text").await;
}

#[tokio::test]
async fn nul_bytes_in_query_values_are_a_400() {
    let f = fixture().await;
    for path in [
        "/api/v1/posts?tag=ru%00st".to_owned(),
        "/api/v1/posts?tag=%00".to_owned(),
        "/api/v1/posts?authorId=%00".to_owned(),
        format!("/api/v1/posts?authorId={}%00", f.user.id),
        "/api/v1/posts?cursor=%00".to_owned(),
        "/api/v1/posts?limit=%0010".to_owned(),
        "/api/v1/notifications?unread=true%00".to_owned(),
        "/api/v1/notifications?cursor=a%00.b".to_owned(),
        format!("{}/comments?cursor=%00", f.post_path),
    ] {
        let response = f.app.get_as(&path, &f.user.access_token).await;
        expect(&path, &response, 400, "BAD_REQUEST");
    }
    f.app.assert_unchanged(&f.before, "NUL in queries").await;
}

#[tokio::test]
async fn oversized_and_garbage_authorization_is_a_401() {
    let f = fixture().await;
    let garbage: String = (0..10 * 1024)
        .map(|i| (b'A' + (i * 7 % 26) as u8) as char)
        .collect();
    let jwt_shaped = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.{}",
        &garbage[..5000],
        &garbage[5000..]
    );
    let huge = "x".repeat(100 * 1024);
    for value in [
        format!("Bearer {huge}"),
        huge,
        format!("Bearer {garbage}"),
        format!("Bearer {jwt_shaped}"),
        format!("Bearer {}.{}", f.user.access_token, garbage),
        format!("Basic {garbage}"),
    ] {
        let header = HeaderValue::from_str(&value).expect("visible ASCII");
        for (method, path, body) in [
            ("GET", "/api/v1/posts", None),
            (
                "POST",
                "/api/v1/posts",
                Some(br#"{"title":"t","body":"b"}"#.to_vec()),
            ),
            ("GET", "/api/v1/users/me", None),
            ("GET", "/api/v1/auth/profile", None),
        ] {
            let mut headers = vec![("authorization", header.clone())];
            if body.is_some() {
                headers.push(("content-type", json_type()));
            }
            let response = send(&f.app, method, path, &headers, body).await;
            let what = format!("{method} {path} with {} bytes", value.len());
            expect(&what, &response, 401, "UNAUTHORIZED");
            assert!(
                !response.body.to_string().contains(&garbage[..64]),
                "{what}: the token is echoed"
            );
        }
    }
    f.app.assert_unchanged(&f.before, "bad tokens").await;
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400() {
    let f = fixture().await;
    let comments = format!("{}/comments", f.post_path);
    let too_long = HeaderValue::from_str(&"k".repeat(129)).expect("ASCII");
    for (path, body) in [
        ("/api/v1/posts", br#"{"title":"t","body":"b"}"#.to_vec()),
        (comments.as_str(), br#"{"body":"c"}"#.to_vec()),
    ] {
        for key in [
            too_long.clone(),
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_bytes(b"key-\xff").expect("obs-text"),
        ] {
            let headers = [
                ("authorization", bearer(&f.user)),
                ("content-type", json_type()),
                ("idempotency-key", key.clone()),
            ];
            let response = send(&f.app, "POST", path, &headers, Some(body.clone())).await;
            expect(
                &format!("{path} key {key:?}"),
                &response,
                400,
                "BAD_REQUEST",
            );
        }
    }
    f.app
        .assert_unchanged(&f.before, "bad idempotency keys")
        .await;
    // 128 characters is the longest key, and it works.
    let headers = [
        ("authorization", bearer(&f.user)),
        ("content-type", json_type()),
        (
            "idempotency-key",
            HeaderValue::from_str(&"k".repeat(128)).expect("ASCII"),
        ),
    ];
    let body = br#"{"title":"t","body":"b"}"#.to_vec();
    let first = send(
        &f.app,
        "POST",
        "/api/v1/posts",
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_envelope(&first, 201, None);
    let again = send(&f.app, "POST", "/api/v1/posts", &headers, Some(body)).await;
    assert_envelope(&again, 201, None);
    assert_eq!(again.body["data"]["id"], first.body["data"]["id"]);
}

#[tokio::test]
async fn json_routes_refuse_other_content_types_with_a_415() {
    let f = fixture().await;
    for route in f.json_routes() {
        let json_body = serde_json::to_vec(&route.valid).expect("json");
        let form_body = b"name=Valid+Name&email=a%40b.com&password=abcdefg1".to_vec();
        for (content_type, body) in [
            (Some("text/plain"), json_body.clone()),
            (Some("application/x-www-form-urlencoded"), form_body.clone()),
            (Some("application/x-www-form-urlencoded"), json_body.clone()),
            (Some("multipart/form-data; boundary=x"), json_body.clone()),
            (Some("application/jsonp"), json_body.clone()),
            (Some("application/xml"), json_body.clone()),
            (Some("json"), json_body.clone()),
            (None, json_body.clone()),
        ] {
            let mut headers = Vec::new();
            if let Some(content_type) = content_type {
                headers.push(("content-type", HeaderValue::from_static(content_type)));
            }
            if route.authenticated {
                headers.push(("authorization", bearer(&f.user)));
            }
            let response = send(&f.app, route.method, &route.path, &headers, Some(body)).await;
            let what = format!("{} {} as {content_type:?}", route.method, route.path);
            expect(&what, &response, 415, "UNSUPPORTED_MEDIA_TYPE");
        }
    }
    f.app
        .assert_unchanged(&f.before, "wrong content types")
        .await;
}

#[tokio::test]
async fn hidden_characters_in_text_fields_are_a_422_on_the_field() {
    let f = fixture().await;
    let comments = format!("{}/comments", f.post_path);
    let register =
        |name: &str| json!({"name": name, "email": unique_email(), "password": PASSWORD});
    // Names, titles and tags are one line of visible text; bodies may
    // break lines but hold no other control character nor bidi override.
    let cases: Vec<(&str, &str, bool, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/auth/register",
            false,
            register("Ada\u{202E}evil"),
            "name",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            false,
            register("Ada\nLovelace"),
            "name",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            false,
            register("Ada\u{200B}L"),
            "name",
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            true,
            json!({"name": "Bob\u{202E}"}),
            "name",
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            true,
            json!({"name": "Bob\nBob"}),
            "name",
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            true,
            json!({"name": "Bob\u{2066}x"}),
            "name",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "a\tb", "body": "b"}),
            "title",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "a\u{FEFF}b", "body": "b"}),
            "title",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t", "body": "b", "tags": ["rust\u{200B}"]}),
            "tags[0]",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t", "body": "ring\u{7}"}),
            "body",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t", "body": "a\u{85}b"}),
            "body",
        ),
        (
            "POST",
            "/api/v1/posts",
            true,
            json!({"title": "t", "body": "a\u{202E}b"}),
            "body",
        ),
        (
            "PATCH",
            &f.post_path,
            true,
            json!({"title": "a\nb", "version": 1}),
            "title",
        ),
        (
            "PATCH",
            &f.post_path,
            true,
            json!({"body": "a\u{7F}b", "version": 1}),
            "body",
        ),
        (
            "POST",
            &comments,
            true,
            json!({"body": "ring\u{7}"}),
            "body",
        ),
        (
            "POST",
            &comments,
            true,
            json!({"body": "a\u{2067}b"}),
            "body",
        ),
    ];
    for (method, path, authenticated, body, field) in cases {
        let user = authenticated.then_some(&f.user);
        let bytes = serde_json::to_vec(&body).expect("json");
        let response = send_bytes(&f.app, method, path, user, bytes).await;
        let what = format!("{method} {path} {body}");
        expect(&what, &response, 422, "VALIDATION_ERROR");
        assert_eq!(
            field_errors(&response),
            vec![(field.to_owned(), "INVALID_FORMAT".to_owned())],
            "{what}"
        );
    }
    f.app.assert_unchanged(&f.before, "hidden characters").await;
}

#[tokio::test]
async fn bodies_keep_their_line_breaks_and_tabs_and_any_script() {
    let f = fixture().await;
    let body = "First line\nsecond line\r\n\tindented, 👩\u{200D}💻 and José's 李";
    let response = f
        .app
        .send_as(
            "POST",
            "/api/v1/posts",
            &f.user.access_token,
            Some(json!({"title": "  José 🎉 李  ", "body": body})),
        )
        .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    assert_eq!(response.body["data"]["body"], body, "stored as sent");
    assert_eq!(response.body["data"]["title"], "José 🎉 李");
    let comments = format!("{}/comments", f.post_path);
    let response = f
        .app
        .send_as(
            "POST",
            &comments,
            &f.user.access_token,
            Some(json!({"body": body})),
        )
        .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    assert_eq!(response.body["data"]["body"], body);
    let listed = f.app.get_as(&comments, &f.user.access_token).await;
    assert_eq!(listed.body["data"][0]["body"], body, "read back as sent");
    let response = f
        .app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &f.user.access_token,
            Some(json!({"name": "Zoë Ñandú"})),
        )
        .await;
    assert_eq!(response.status, 200, "{:#}", response.body);
    assert_eq!(response.body["data"]["name"], "Zoë Ñandú");
}
