//! Every function invoked as its Lambda runtime invokes it, with AWS's own
//! sample events (`events/`, see its README) instead of the events our
//! local gateway builds.
//!
//! Each sample is read as vendored; the adapters here replace only what a
//! route or an item decides (path, method, resource, path and query
//! parameters, body, the bearer token; connection id and route key; the
//! images of a stream record) and keep everything else AWS sent. The
//! result is deserialised into the runtime's own request type (lambda_http's
//! `LambdaRequest`, `aws_lambda_events`' WebSocket and DynamoDB events) and
//! handed to the service `functions::build` builds from template.yaml, on a
//! table and bucket of the shared moto. The `@connections` API is a
//! recorder here, so what the functions push can be read back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::{Engine, engine::general_purpose::STANDARD};
use infra::{rest, template::Template};
use model::{connections::Connections, domain::ConnectionId, keys};
use serde_json::{Value, json};
use tests::{EMAIL_FROM, PASSWORD, TestResponse, assert_envelope, unique_email, upload_request};

use crate::lambdas::{Item, Lambdas, body_text, image, proxy_response, vendored};

const REST_SAMPLES: &[&str] = &[
    "aws-lambda-events-1.2.1/example-apigw-request.json",
    "sam-cli-1.170.0/apigateway-aws-proxy.json",
];
const WS_CONNECT: &str =
    "aws-lambda-events-1.2.1/example-apigw-websocket-request-without-method.json";
const WS_MESSAGE: &str = "derived/apigw-websocket-message.json";
const WS_DISCONNECT: &str =
    "aws-lambda-events-1.2.1/example-apigw-websocket-request-disconnect-route.json";
const DYNAMODB_BATCH: &str = "sam-cli-1.170.0/dynamodb-update.json";
const DYNAMODB_FOREIGN: &str = "aws-lambda-events-1.2.1/example-dynamodb-event.json";

/// The stage of the recorder's `@connections` API, which the WebSocket
/// events name too.
const STAGE: &str = "samples";
const JWT_SECRET: &str = "samples-secret-that-is-at-least-32-bytes";

/// Every function, with the variables our deploy gives them and the
/// recorder of [`STAGE`].
async fn start() -> Lambdas {
    Lambdas::start(STAGE, |app, management| {
        HashMap::from([
            ("TABLE_NAME".to_owned(), app.storage.table_name.clone()),
            ("BUCKET_NAME".to_owned(), app.storage.bucket_name.clone()),
            ("S3_FORCE_PATH_STYLE".to_owned(), "true".to_owned()),
            ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
            ("EMAIL_FROM".to_owned(), EMAIL_FROM.to_owned()),
            ("APP_URL".to_owned(), "http://app.test".to_owned()),
            ("WS_MANAGEMENT_ENDPOINT".to_owned(), management.to_owned()),
        ])
    })
    .await
}

impl Lambdas {
    /// Adapts a REST sample to `call` and invokes the function template.yaml
    /// routes it to.
    async fn call(&self, sample: &Value, call: Call<'_>) -> TestResponse {
        let (function, event) = rest_event(sample, &self.template, &call);
        proxy_response(&self.invoke_rest(&function, event).await)
    }

    /// Registers a user through the auth function; the id and access token.
    async fn register(&self, sample: &Value) -> (String, String) {
        let response = self
            .call(
                sample,
                Call::post(
                    "/api/v1/auth/register",
                    json!({"name": "Sample User", "email": unique_email(), "password": PASSWORD}),
                ),
            )
            .await;
        assert_eq!(response.status, 201, "{:#}", response.body);
        let data = &response.body["data"];
        (
            data["user"]["id"].as_str().expect("user id").to_owned(),
            data["accessToken"].as_str().expect("token").to_owned(),
        )
    }

    async fn item(&self, pk: String, sk: String) -> Item {
        self.app
            .dynamodb
            .get_item()
            .table_name(&self.app.storage.table_name)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
            .expect("the item exists")
    }

    async fn comment_count_of(&self, post: &str) -> usize {
        let pk = keys::post_pk(&post.parse().expect("a post id"));
        self.items_under(pk, keys::COMMENT_SK_PREFIX).await.len()
    }
}

// --- Adapters: a sample, with what our route or item decides -------------

/// A request to one of our routes, as a client makes it.
struct Call<'a> {
    method: &'a str,
    /// The route's path in template.yaml.
    resource: &'a str,
    path: String,
    query: Vec<(&'a str, &'a str)>,
    token: Option<&'a str>,
    body: Option<Value>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, resource: &'a str, path: impl Into<String>) -> Self {
        Self {
            method,
            resource,
            path: path.into(),
            query: Vec::new(),
            token: None,
            body: None,
        }
    }

    fn get(path: &'a str) -> Self {
        Self::new("GET", path, path)
    }

    fn post(path: &'a str, body: Value) -> Self {
        Self::new("POST", path, path).body(body)
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn token(mut self, token: &'a str) -> Self {
        self.token = Some(token);
        self
    }

    fn query(mut self, name: &'a str, value: &'a str) -> Self {
        self.query.push((name, value));
        self
    }
}

/// Sets a header in both of the sample's header maps, replacing the
/// sample's own of that name whatever its case.
fn set_header(event: &mut Value, name: &str, value: &str) {
    for (map, value) in [
        ("headers", json!(value)),
        ("multiValueHeaders", json!([value])),
    ] {
        if !event[map].is_object() {
            event[map] = json!({});
        }
        let headers = event[map].as_object_mut().expect("a header map");
        headers.retain(|existing, _| !existing.eq_ignore_ascii_case(name));
        headers.insert(name.to_owned(), value);
    }
}

/// The REST sample adapted to `call`, and the logical id of the function
/// template.yaml routes it to.
fn rest_event(sample: &Value, template: &Template, call: &Call) -> (String, Value) {
    let route = template
        .routes
        .iter()
        .find(|route| {
            route.path == call.resource && (route.method == "ANY" || route.method == call.method)
        })
        .unwrap_or_else(|| panic!("template.yaml has no {} {}", call.method, call.resource));
    let params =
        rest::path_parameters(route, &call.path).expect("the path is one of the route's paths");
    let mut event = sample.clone();
    event["resource"] = json!(call.resource);
    event["path"] = json!(call.path);
    event["httpMethod"] = json!(call.method);
    event["pathParameters"] = if params.is_empty() {
        Value::Null
    } else {
        json!(params)
    };
    if call.query.is_empty() {
        event["queryStringParameters"] = Value::Null;
        event["multiValueQueryStringParameters"] = Value::Null;
    } else {
        let mut single = serde_json::Map::new();
        let mut multi = serde_json::Map::new();
        for (name, value) in &call.query {
            single.insert((*name).to_owned(), json!(value));
            multi
                .entry(*name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("values")
                .push(json!(value));
        }
        event["queryStringParameters"] = Value::Object(single);
        event["multiValueQueryStringParameters"] = Value::Object(multi);
    }
    if let Some(token) = call.token {
        set_header(&mut event, "Authorization", &format!("Bearer {token}"));
    }
    match &call.body {
        Some(body) => {
            set_header(&mut event, "Content-Type", "application/json");
            // The body keeps the sample's encoding: the SAM sample's is
            // base64, as API Gateway sends binary media types.
            let text = body.to_string();
            event["body"] = if sample["isBase64Encoded"] == true {
                json!(STANDARD.encode(text))
            } else {
                json!(text)
            };
        }
        None => {
            event["body"] = Value::Null;
            event["isBase64Encoded"] = json!(false);
        }
    }
    let context = &mut event["requestContext"];
    let stage = context["stage"].as_str().expect("a stage").to_owned();
    context["resourcePath"] = json!(call.resource);
    context["httpMethod"] = json!(call.method);
    context["path"] = json!(format!("/{stage}{}", call.path));
    (route.function.clone(), event)
}

/// A WebSocket sample adapted to our connection and route.
fn ws_event(sample: &Value, connection_id: &str, route_key: &str) -> Value {
    let mut event = sample.clone();
    let context = &mut event["requestContext"];
    context["connectionId"] = json!(connection_id);
    context["routeKey"] = json!(route_key);
    context["stage"] = json!(STAGE);
    event
}

/// The `$connect` sample with `?token=` as our clients connect.
fn connect_event(connection_id: &str, token: &str) -> Value {
    let mut event = ws_event(&vendored(WS_CONNECT), connection_id, "$connect");
    event["queryStringParameters"] = json!({"token": token});
    event["multiValueQueryStringParameters"] = json!({"token": [token]});
    event
}

/// A frame on the connection, in the MESSAGE sample.
fn message_event(connection_id: &str, frame: Value) -> Value {
    let action = frame["action"].as_str().expect("an action").to_owned();
    let mut event = ws_event(&vendored(WS_MESSAGE), connection_id, &action);
    event["body"] = json!(frame.to_string());
    event
}

/// A record of the stream sample with our table and one of our items.
fn stream_record(record: &Value, table: &str, old: Option<&Item>, new: Option<&Item>) -> Value {
    let mut record = record.clone();
    let item = new.or(old).expect("an image");
    let key: Item = [keys::PK, keys::SK]
        .into_iter()
        .map(|name| (name.to_owned(), item[name].clone()))
        .collect();
    let change = record["dynamodb"].as_object_mut().expect("dynamodb");
    change.insert("Keys".into(), image(&key));
    for (name, value) in [("OldImage", old), ("NewImage", new)] {
        match value {
            Some(value) => change.insert(name.into(), image(value)),
            None => change.remove(name),
        };
    }
    // The sample's ARN with our table in it: `…:table/{table}/stream/{label}`.
    let arn = record["eventSourceARN"].as_str().expect("eventSourceARN");
    let (head, rest) = arn.split_once(":table/").expect("a table ARN");
    let (_, label) = rest.split_once("/stream/").expect("a stream ARN");
    record["eventSourceARN"] = json!(format!("{head}:table/{table}/stream/{label}"));
    record
}

// --- REST functions -------------------------------------------------------

#[tokio::test]
async fn health_answers_aws_rest_samples() {
    let lambdas = start().await;
    for name in REST_SAMPLES {
        let response = lambdas.call(&vendored(name), Call::get("/health")).await;
        let body = assert_envelope(&response, 200, None);
        assert_eq!(body["message"], "Service is healthy", "{name}");
        assert_eq!(body["data"]["status"], "ok", "{name}");
        // The sample's stage ("testStage", "prod") is in the request's
        // path as lambda_http builds it, and out of the contract's.
        assert_eq!(body["meta"]["path"], "/health", "{name}");
        assert_eq!(body["meta"]["method"], "GET", "{name}");
    }
}

#[tokio::test]
async fn auth_registers_from_aws_rest_samples() {
    let lambdas = start().await;
    for name in REST_SAMPLES {
        let sample = vendored(name);
        let email = unique_email();
        let response = lambdas
            .call(
                &sample,
                Call::post(
                    "/api/v1/auth/register",
                    json!({"name": "Ada Lovelace", "email": email, "password": PASSWORD}),
                ),
            )
            .await;
        let body = assert_envelope(&response, 201, None);
        assert_eq!(body["message"], "User registered successfully", "{name}");
        let user = &body["data"]["user"];
        assert_eq!(user["email"], email.as_str(), "{name}");
        assert_eq!(user["role"], "user", "{name}");
        assert_eq!(user["emailVerified"], false, "{name}");
        let token = body["data"]["accessToken"].as_str().expect("accessToken");
        let profile = lambdas
            .call(&sample, Call::get("/api/v1/auth/profile").token(token))
            .await;
        let profile = assert_envelope(&profile, 200, None);
        assert_eq!(profile["data"]["id"], user["id"], "{name}");
    }
}

#[tokio::test]
async fn users_answer_aws_rest_samples() {
    let lambdas = start().await;
    for name in REST_SAMPLES {
        let sample = vendored(name);
        let (id, token) = lambdas.register(&sample).await;
        let path = format!("/api/v1/users/{id}");
        let response = lambdas
            .call(
                &sample,
                Call::new("GET", "/api/v1/users/{id}", path).token(&token),
            )
            .await;
        let body = assert_envelope(&response, 200, None);
        assert_eq!(body["data"]["id"], id.as_str(), "{name}");
        assert_eq!(body["data"]["name"], "Sample User", "{name}");
        // The user is the one the path names: another id, another answer.
        let unknown = format!("/api/v1/users/{}", ulid::Ulid::new());
        let response = lambdas
            .call(
                &sample,
                Call::new("GET", "/api/v1/users/{id}", unknown).token(&token),
            )
            .await;
        assert_envelope(&response, 404, Some("NOT_FOUND"));
    }
}

#[tokio::test]
async fn posts_answer_aws_rest_samples() {
    let lambdas = start().await;
    for name in REST_SAMPLES {
        let sample = vendored(name);
        let (author, token) = lambdas.register(&sample).await;
        let created = lambdas
            .call(
                &sample,
                Call::post(
                    "/api/v1/posts",
                    json!({"title": "From a sample", "body": "Sent as AWS sends it", "tags": ["samples"]}),
                )
                .token(&token),
            )
            .await;
        let created = assert_envelope(&created, 201, None);
        let post = &created["data"];
        assert_eq!(post["title"], "From a sample", "{name}");
        assert_eq!(post["version"], 1, "{name}");
        assert_eq!(post["commentCount"], 0, "{name}");
        assert_eq!(post["tags"], json!(["samples"]), "{name}");
        let id = post["id"].as_str().expect("post id");
        let read = lambdas
            .call(
                &sample,
                Call::new("GET", "/api/v1/posts/{id}", format!("/api/v1/posts/{id}")).token(&token),
            )
            .await;
        let read = assert_envelope(&read, 200, None);
        assert_eq!(read["data"]["id"], id, "{name}");
        assert_eq!(read["data"]["authorId"], author.as_str(), "{name}");
    }
}

#[tokio::test]
async fn uploads_answer_aws_rest_samples() {
    let lambdas = start().await;
    for name in REST_SAMPLES {
        let sample = vendored(name);
        let (_, token) = lambdas.register(&sample).await;
        let created = lambdas
            .call(
                &sample,
                Call::post("/api/v1/uploads", upload_request(1024)).token(&token),
            )
            .await;
        let created = assert_envelope(&created, 201, None);
        let data = &created["data"];
        assert_eq!(data["uploadMethod"], "PUT", "{name}");
        assert_eq!(data["upload"]["status"], "pending", "{name}");
        assert!(
            data["uploadUrl"]
                .as_str()
                .is_some_and(|url| url.contains(&lambdas.app.storage.bucket_name)),
            "{name}: {data:#}"
        );
        let id = data["upload"]["id"].as_str().expect("upload id");
        let read = lambdas
            .call(
                &sample,
                Call::new(
                    "GET",
                    "/api/v1/uploads/{id}",
                    format!("/api/v1/uploads/{id}"),
                )
                .token(&token),
            )
            .await;
        let read = assert_envelope(&read, 200, None);
        assert_eq!(read["data"]["upload"]["id"], id, "{name}");
    }
}

/// `commenter` comments on a new post of `author`'s; the post's id.
async fn commented_post(
    lambdas: &Lambdas,
    sample: &Value,
    author: &str,
    commenter: &str,
) -> String {
    let created = lambdas
        .call(
            sample,
            Call::post(
                "/api/v1/posts",
                json!({"title": "Comment on me", "body": "Please"}),
            )
            .token(author),
        )
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    let post = created.body["data"]["id"]
        .as_str()
        .expect("post id")
        .to_owned();
    let comment = lambdas
        .call(
            sample,
            Call::new(
                "POST",
                "/api/v1/posts/{id}/comments",
                format!("/api/v1/posts/{post}/comments"),
            )
            .body(json!({"body": "Nice one"}))
            .token(commenter),
        )
        .await;
    assert_eq!(comment.status, 201, "{:#}", comment.body);
    post
}

#[tokio::test]
async fn notifications_answer_aws_rest_samples() {
    let lambdas = start().await;
    for name in REST_SAMPLES {
        let sample = vendored(name);
        let (_, author) = lambdas.register(&sample).await;
        let (_, commenter) = lambdas.register(&sample).await;
        let post = commented_post(&lambdas, &sample, &author, &commenter).await;
        let count = lambdas
            .call(
                &sample,
                Call::get("/api/v1/notifications/unread-count").token(&author),
            )
            .await;
        let count = assert_envelope(&count, 200, None);
        assert_eq!(count["data"]["count"], 1, "{name}");
        // The query string reaches the function as the sample carries it.
        let page = lambdas
            .call(
                &sample,
                Call::get("/api/v1/notifications")
                    .query("limit", "1")
                    .query("unread", "true")
                    .token(&author),
            )
            .await;
        let page = assert_envelope(&page, 200, None);
        assert_eq!(page["pagination"]["limit"], 1, "{name}");
        assert_eq!(page["data"][0]["type"], "comment", "{name}");
        assert_eq!(page["data"][0]["data"]["postId"], post.as_str(), "{name}");
    }
}

// --- The WebSocket function ---------------------------------------------

#[tokio::test]
async fn websocket_serves_aws_websocket_samples() {
    let lambdas = start().await;
    let rest_sample = vendored(REST_SAMPLES[0]);
    let (user, token) = lambdas.register(&rest_sample).await;
    // An id as API Gateway makes them: 10 bytes, base64, so with a `=`
    // that the management API's path must escape.
    let id = "c2FtcGxlcy0wMQ==";
    let connection = ConnectionId::parse(id).expect("a connection id");

    let refused = lambdas.invoke_ws(connect_event(id, "not-a-token")).await;
    assert_eq!(refused.status_code, 401);
    let refusal: Value = serde_json::from_str(body_text(&refused)).expect("a JSON refusal");
    assert_eq!(refusal["success"], false);
    assert_eq!(refusal["code"], "UNAUTHORIZED");
    assert!(
        lambdas
            .table
            .connection(&connection)
            .await
            .unwrap()
            .is_none()
    );

    let connected = lambdas.invoke_ws(connect_event(id, &token)).await;
    assert_eq!(connected.status_code, 200, "{}", body_text(&connected));
    let item = lambdas
        .table
        .connection(&connection)
        .await
        .unwrap()
        .expect("the connection is recorded");
    assert_eq!(item.user_id.to_string(), user);

    let pinged = lambdas
        .invoke_ws(message_event(id, json!({"action": "ping"})))
        .await;
    assert_eq!(pinged.status_code, 200);
    assert_eq!(
        lambdas.management.frames_to(id),
        vec![json!({"type": "pong"})]
    );

    let joined = lambdas
        .invoke_ws(message_event(
            id,
            json!({"action": "chat.join", "room": "samples"}),
        ))
        .await;
    assert_eq!(joined.status_code, 200);
    let frames = lambdas.management.frames_to(id);
    assert_eq!(frames.len(), 2, "{frames:#?}");
    assert_eq!(frames[1]["type"], "chat.joined");
    assert_eq!(frames[1]["room"], "samples");
    assert_eq!(frames[1]["user"]["id"], user.as_str());
    let room = model::domain::Room::parse("samples").expect("a room");
    assert_eq!(
        lambdas.table.members(&room).await.unwrap(),
        vec![connection.clone()]
    );

    let disconnected = lambdas
        .invoke_ws(ws_event(&vendored(WS_DISCONNECT), id, "$disconnect"))
        .await;
    assert_eq!(disconnected.status_code, 200);
    assert!(
        lambdas
            .table
            .connection(&connection)
            .await
            .unwrap()
            .is_none()
    );
    assert!(lambdas.table.members(&room).await.unwrap().is_empty());
}

// --- The stream worker --------------------------------------------------

#[tokio::test]
async fn stream_worker_serves_aws_dynamodb_samples() {
    let lambdas = start().await;
    let rest_sample = vendored(REST_SAMPLES[1]);
    let table = lambdas.app.storage.table_name.clone();
    let (author_id, author) = lambdas.register(&rest_sample).await;
    let (_, commenter) = lambdas.register(&rest_sample).await;
    // The author is online, where the notification is pushed.
    let id = "c2FtcGxlcy0wMg==";
    let connected = lambdas.invoke_ws(connect_event(id, &author)).await;
    assert_eq!(connected.status_code, 200, "{}", body_text(&connected));

    let created = lambdas
        .call(
            &rest_sample,
            Call::post(
                "/api/v1/posts",
                json!({"title": "Streamed", "body": "Watch"}),
            )
            .token(&author),
        )
        .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    let post = created.body["data"]["id"]
        .as_str()
        .expect("post id")
        .to_owned();
    let post_id = post.parse().expect("a post id");
    let post_item = || lambdas.item(keys::post_pk(&post_id), keys::POST_SK.to_owned());
    let post_before_comment = post_item().await;
    let comment = lambdas
        .call(
            &rest_sample,
            Call::new(
                "POST",
                "/api/v1/posts/{id}/comments",
                format!("/api/v1/posts/{post}/comments"),
            )
            .body(json!({"body": "Nice one"}))
            .token(&commenter),
        )
        .await;
    assert_eq!(comment.status, 201, "{:#}", comment.body);
    let post_after_comment = post_item().await;
    let page = lambdas
        .call(
            &rest_sample,
            Call::get("/api/v1/notifications").token(&author),
        )
        .await;
    let notification_id = page.body["data"][0]["id"]
        .as_str()
        .expect("a notification")
        .to_owned();
    let notification = lambdas
        .item(
            keys::user_pk(&author_id.parse().expect("a user id")),
            keys::notification_sk(&notification_id.parse().expect("a notification id")),
        )
        .await;
    let deleted = lambdas
        .call(
            &rest_sample,
            Call::new(
                "DELETE",
                "/api/v1/posts/{id}",
                format!("/api/v1/posts/{post}"),
            )
            .token(&author),
        )
        .await;
    assert_envelope(&deleted, 200, None);
    // Deleting a post leaves its comments to the stream worker.
    assert_eq!(lambdas.comment_count_of(&post).await, 1);

    // SAM's batch is an INSERT, a MODIFY and a REMOVE: here the new
    // notification, the post as the comment changed it, and the post gone.
    let batch = vendored(DYNAMODB_BATCH);
    let records = batch["Records"].as_array().expect("Records");
    let event = json!({"Records": [
        stream_record(&records[0], &table, None, Some(&notification)),
        stream_record(&records[1], &table, Some(&post_before_comment), Some(&post_after_comment)),
        stream_record(&records[2], &table, Some(&post_after_comment), None),
    ]});
    assert_eq!(
        lambdas.invoke_stream(event).await,
        Vec::<Option<String>>::new()
    );
    let frames = lambdas.management.frames_to(id);
    assert_eq!(frames.len(), 1, "{frames:#?}");
    assert_eq!(frames[0]["type"], "notification");
    assert_eq!(frames[0]["notification"]["id"], notification_id.as_str());
    assert_eq!(frames[0]["notification"]["data"]["postId"], post.as_str());
    assert_eq!(lambdas.comment_count_of(&post).await, 0);

    // The crate's sample as it is, items of another table: nothing to do,
    // and nothing failed.
    assert_eq!(
        lambdas.invoke_stream(vendored(DYNAMODB_FOREIGN)).await,
        Vec::<Option<String>>::new()
    );
    assert_eq!(lambdas.management.frames_to(id).len(), 1);
}
