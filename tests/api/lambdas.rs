//! Every function of template.yaml as its Lambda runtime holds it, for the
//! modules that invoke them with Lambda events rather than over HTTP
//! (`samples`: AWS's own sample events; `sam_local`: the `sam local` kit).
//!
//! The functions are built by `functions::build` on a table and bucket of
//! the shared moto, and the `@connections` API is a recorder, so what the
//! functions push can be read back.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use aws_config::SdkConfig;
use aws_lambda_events::{
    apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest},
    dynamodb::Event,
    encodings::Body,
};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::{Engine, engine::general_purpose::STANDARD};
use infra::{
    functions::{self, Functions},
    template::Template,
};
use lambda_http::{
    Adapter,
    lambda_runtime::{Context, LambdaEvent},
    request::LambdaRequest,
    tower::ServiceExt,
};
use model::Table;
use serde_json::Value;
use tests::{REGION, TestApp, TestResponse, workspace_root};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// An item as the SDK reads it.
pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A vendored event of `events/` (see its README), as it is.
pub(crate) fn vendored(name: &str) -> Value {
    read_json(&workspace_root().join("events").join(name))
}

pub(crate) fn template() -> Template {
    Template::load(workspace_root().join("template.yaml")).expect("template.yaml")
}

// --- The @connections recorder ------------------------------------------

/// One request the functions made of the management API.
#[derive(Debug, Clone)]
struct ManagementCall {
    method: String,
    /// Decoded: `/{stage}/@connections/{id}`.
    path: String,
    body: String,
}

/// A stand-in for API Gateway's `@connections` API that answers every call
/// with 200 and keeps it (no connection of these events has a socket to
/// push to). One plain HTTP/1.1 server: the SDK sends each call with a
/// `Content-Length`.
pub(crate) struct ManagementApi {
    pub(crate) endpoint: String,
    stage: String,
    calls: Arc<Mutex<Vec<ManagementCall>>>,
}

impl ManagementApi {
    /// The recorder of `stage`, the stage the WebSocket events name.
    async fn start(stage: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, Arc::clone(&recorded)));
            }
        });
        Self {
            endpoint: format!("http://{address}/{stage}"),
            stage: stage.to_owned(),
            calls,
        }
    }

    /// The JSON frames pushed to `connection`, oldest first.
    pub(crate) fn frames_to(&self, connection: &str) -> Vec<Value> {
        let path = format!("/{}/@connections/{connection}", self.stage);
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|call| call.method == "POST" && call.path == path)
            .map(|call| serde_json::from_str(&call.body).expect("a JSON frame"))
            .collect()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(out).expect("a UTF-8 path")
}

async fn answer(mut stream: TcpStream, calls: Arc<Mutex<Vec<ManagementCall>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        assert!(
            !headers
                .iter()
                .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked")),
            "the recorder reads Content-Length bodies only"
        );
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
        buffer.drain(..head_end + length);
        calls.lock().expect("calls").push(ManagementCall {
            method,
            path: percent_decode(&target),
            body,
        });
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

// --- The functions, as their runtimes hold them --------------------------

/// Every function of template.yaml, built by `functions::build` on a fresh
/// table and bucket, pushing to a recorder.
pub(crate) struct Lambdas {
    pub(crate) app: TestApp,
    pub(crate) sdk: SdkConfig,
    pub(crate) template: Template,
    pub(crate) functions: Functions,
    pub(crate) management: ManagementApi,
    pub(crate) table: Table,
}

impl Lambdas {
    /// The functions with the variables `env_for` gives them from the app
    /// (its table and bucket) and the recorder's endpoint, whose stage is
    /// `stage`.
    pub(crate) async fn start(
        stage: &str,
        env_for: impl FnOnce(&TestApp, &str) -> HashMap<String, String>,
    ) -> Self {
        // The app provisions the table and bucket (and runs no poller: the
        // tests hand the stream worker its records themselves).
        let app = TestApp::spawn().await;
        let management = ManagementApi::start(stage).await;
        let env = env_for(&app, &management.endpoint);
        let source = |name: &str| env.get(name).cloned();
        let sdk = platform::aws::sdk_config_for_endpoint(&app.endpoint, REGION).await;
        let template = template();
        let functions = functions::build(&template, &source, &sdk).expect("the functions build");
        let table = Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
        Self {
            app,
            sdk,
            template,
            functions,
            management,
            table,
        }
    }

    /// Invokes the REST function `function` with `event` as the Lambda
    /// runtime does: lambda_http reads the payload and its adapter runs
    /// the service. The proxy response, as it goes back to API Gateway.
    pub(crate) async fn invoke_rest(&self, function: &str, event: Value) -> Value {
        let payload: LambdaRequest =
            serde_json::from_value(event).expect("lambda_http reads the event");
        assert!(
            matches!(payload, LambdaRequest::ApiGatewayV1(_)),
            "a REST proxy event, not {payload:?}"
        );
        let service = self
            .functions
            .rest
            .get(function)
            .unwrap_or_else(|| panic!("{function} is a REST function"))
            .clone();
        let mut context = Context::default();
        context.request_id = ulid::Ulid::new().to_string();
        context.invoked_function_arn =
            format!("arn:aws:lambda:{REGION}:123456789012:function:{function}");
        let adapter: Adapter<'_, _, _> = Adapter::from(service);
        let answer = match adapter.oneshot(LambdaEvent::new(payload, context)).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        };
        serde_json::to_value(answer).expect("a proxy response")
    }

    pub(crate) async fn invoke_ws(&self, event: Value) -> ApiGatewayProxyResponse {
        let request: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(event).expect("a WebSocket event");
        platform::lambda::invoke(&self.functions.websocket, request)
            .await
            .expect("the websocket function answers")
    }

    /// The stream worker's answer to `event`: the items it failed.
    pub(crate) async fn invoke_stream(&self, event: Value) -> Vec<Option<String>> {
        let event: Event = serde_json::from_value(event).expect("a DynamoDB stream event");
        platform::lambda::invoke(&self.functions.stream, event)
            .await
            .expect("the stream worker answers")
            .batch_item_failures
            .into_iter()
            .map(|failure| failure.item_identifier)
            .collect()
    }

    /// The items of partition `pk` whose sort key starts with `prefix`.
    pub(crate) async fn items_under(&self, pk: String, prefix: &str) -> Vec<Item> {
        self.app
            .dynamodb
            .query()
            .table_name(&self.app.storage.table_name)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("query")
            .items()
            .to_vec()
    }
}

/// A proxy response as a client would see it behind API Gateway.
pub(crate) fn proxy_response(answer: &Value) -> TestResponse {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut add = |name: &str, value: &Value| {
        if let (Ok(name), Some(Ok(value))) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(reqwest::header::HeaderValue::from_str),
        ) {
            headers.append(name, value);
        }
    };
    let multi = answer["multiValueHeaders"].as_object();
    for (name, values) in multi.into_iter().flatten() {
        for value in values.as_array().into_iter().flatten() {
            add(name, value);
        }
    }
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        if !multi.is_some_and(|multi| multi.contains_key(name)) {
            add(name, value);
        }
    }
    let bytes = match (answer["body"].as_str(), answer["isBase64Encoded"].as_bool()) {
        (Some(text), Some(true)) => STANDARD.decode(text).expect("a base64 body"),
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    TestResponse {
        status: answer["statusCode"].as_u64().expect("statusCode") as u16,
        headers,
        body: serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    }
}

pub(crate) fn body_text(response: &ApiGatewayProxyResponse) -> &str {
    match &response.body {
        Some(Body::Text(text)) => text,
        None => "",
        other => panic!("not a text body: {other:?}"),
    }
}

/// DynamoDB JSON of an item, as a stream record carries it.
pub(crate) fn image(item: &Item) -> Value {
    serde_json::to_value(serde_dynamo::Item::from(item.clone())).expect("an item is JSON")
}
