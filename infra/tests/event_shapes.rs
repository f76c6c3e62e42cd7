//! The events the local gateway builds, held against AWS's own samples in
//! `events/`: for every sample, the gateway is given the request (or the
//! stream record) the sample stands for, and the JSON it builds must carry
//! every key the sample carries, with the same JSON type, recursively.
//!
//! Where a key's name is data (a header, a query parameter, an attribute)
//! only the values are compared. A difference is accepted only when it is
//! listed below with its reason: a key the sample has because of a feature
//! our template does not use, a value that is `null` here for the same
//! reason, or a key AWS sends that none of the vendored samples happens to
//! show. An entry no sample needs any more fails the test too, so the lists
//! stay exactly as long as the differences.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
};

use aws_sdk_dynamodbstreams::{
    primitives::{Blob, DateTime},
    types::{AttributeValue, Identity, OperationType, Record, StreamRecord, StreamViewType},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderName, HeaderValue};
use infra::{rest, streams, template::ApiRoute, ws};
use serde_json::{Value, json};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn sample(name: &str) -> Value {
    let path = events_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The JSON types a value may have; integers and fractions are told apart
/// because typed readers (Go, Java, serde) are strict about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Null,
    Bool,
    Integer,
    Fraction,
    String,
    Array,
    Object,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Integer,
        Value::Number(_) => Kind::Fraction,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// An accepted difference at a key path (`a.b`, `[]` for array items,
/// `*` for keys that are data), and why AWS's events differ there too.
struct Allowed {
    path: &'static str,
    reason: &'static str,
}

const fn allowed(path: &'static str, reason: &'static str) -> Allowed {
    Allowed { path, reason }
}

/// How one kind of event is compared.
struct Rules {
    /// Objects whose keys are data: matched case-insensitively (API Gateway
    /// keeps the client's header case, HTTP/1.1 servers lower-case it).
    maps: &'static [&'static str],
    /// Keys of a sample that our event may lack.
    missing: &'static [Allowed],
    /// Keys our event may carry as `null` where the samples hold a value.
    null: &'static [Allowed],
    /// Keys our event may carry that no sample of the kind carries.
    extra: &'static [Allowed],
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Every key path of `value`, with the types it has there.
fn collect(rules: &Rules, path: &str, value: &Value, seen: &mut BTreeMap<String, BTreeSet<Kind>>) {
    seen.entry(path.to_owned()).or_default().insert(kind(value));
    match value {
        Value::Object(map) => {
            let is_map = rules.maps.contains(&path);
            for (key, value) in map {
                let next = if is_map {
                    child(path, "*")
                } else {
                    child(path, key)
                };
                collect(rules, &next, value, seen);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(rules, &format!("{path}[]"), item, seen);
            }
        }
        _ => {}
    }
}

struct Comparison<'a> {
    rules: &'a Rules,
    /// The types each path has in any sample of the kind: a type one AWS
    /// sample shows is one AWS sends.
    seen: BTreeMap<String, BTreeSet<Kind>>,
    used: BTreeSet<&'static str>,
    findings: Vec<String>,
}

impl<'a> Comparison<'a> {
    fn new(rules: &'a Rules, samples: &[(String, Value, Value)]) -> Self {
        let mut seen = BTreeMap::new();
        for (_, sample, _) in samples {
            collect(rules, "", sample, &mut seen);
        }
        Self {
            rules,
            seen,
            used: BTreeSet::new(),
            findings: Vec::new(),
        }
    }

    fn allows(&mut self, list: &'static [Allowed], path: &str) -> bool {
        match list.iter().find(|allowed| allowed.path == path) {
            Some(allowed) => {
                self.used.insert(allowed.path);
                true
            }
            None => false,
        }
    }

    /// Every key of `sample` is in `ours`, with the same type.
    fn covers(&mut self, name: &str, path: &str, sample: &Value, ours: &Value) {
        let (expected, found) = (kind(sample), kind(ours));
        if expected != found {
            let sent_elsewhere = self.seen.get(path).is_some_and(|k| k.contains(&found));
            // A null no other sample explains needs its entry in `null`.
            if !(sent_elsewhere || (found == Kind::Null && self.allows(self.rules.null, path))) {
                self.findings.push(format!(
                    "{name}: `{path}` is {expected:?} in the sample but {found:?} here"
                ));
            }
            return;
        }
        match (sample, ours) {
            (Value::Object(sample_map), Value::Object(our_map)) => {
                let is_map = self.rules.maps.contains(&path);
                for (key, value) in sample_map {
                    let found = if is_map {
                        our_map
                            .iter()
                            .find(|(ours, _)| ours.eq_ignore_ascii_case(key))
                            .map(|(_, v)| v)
                    } else {
                        our_map.get(key)
                    };
                    let next = if is_map {
                        child(path, "*")
                    } else {
                        child(path, key)
                    };
                    match found {
                        Some(ours) => self.covers(name, &next, value, ours),
                        None if !is_map && self.allows(self.rules.missing, &next) => {}
                        None => self
                            .findings
                            .push(format!("{name}: `{}` is missing", child(path, key))),
                    }
                }
            }
            (Value::Array(sample_items), Value::Array(our_items)) => {
                for (index, item) in sample_items.iter().enumerate() {
                    match our_items.get(index).or(our_items.first()) {
                        Some(ours) => self.covers(name, &format!("{path}[]"), item, ours),
                        None => self
                            .findings
                            .push(format!("{name}: `{path}` is an empty array here")),
                    }
                }
            }
            _ => {}
        }
    }

    /// Every key of `ours` is one some sample carries, with a type some
    /// sample has there, or an allowed extra.
    fn no_strangers(&mut self, name: &str, path: &str, ours: &Value) {
        let found = kind(ours);
        if let Some(kinds) = self.seen.get(path).cloned()
            && !kinds.contains(&found)
            && !(found == Kind::Null && self.allows(self.rules.null, path))
        {
            self.findings.push(format!(
                "{name}: `{path}` is {found:?} here but {kinds:?} in every sample"
            ));
            return;
        }
        match ours {
            Value::Object(map) => {
                let is_map = self.rules.maps.contains(&path);
                for (key, value) in map {
                    let next = if is_map {
                        child(path, "*")
                    } else {
                        child(path, key)
                    };
                    if self.seen.contains_key(&next) {
                        self.no_strangers(name, &next, value);
                    } else if !self.allows(self.rules.extra, &next) {
                        self.findings
                            .push(format!("{name}: `{next}` is sent here but in no sample"));
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.no_strangers(name, &format!("{path}[]"), item);
                }
            }
            _ => {}
        }
    }
}

/// Compares each `(name, sample, ours)`; panics with every finding.
fn assert_same_shape(rules: &Rules, samples: &[(String, Value, Value)]) {
    let mut comparison = Comparison::new(rules, samples);
    for (name, sample, ours) in samples {
        comparison.covers(name, "", sample, ours);
        comparison.no_strangers(name, "", ours);
    }
    for list in [rules.missing, rules.null, rules.extra] {
        for allowed in list {
            if !comparison.used.contains(allowed.path) {
                comparison.findings.push(format!(
                    "`{}` is allowed ({}) but no sample needs it any more",
                    allowed.path, allowed.reason
                ));
            }
        }
    }
    assert!(
        comparison.findings.is_empty(),
        "the gateway's events differ from AWS's samples:\n{}",
        comparison.findings.join("\n")
    );
}

// --- REST ---------------------------------------------------------------

const REST_SAMPLES: &[&str] = &[
    "aws-lambda-events-1.2.1/example-apigw-request.json",
    "sam-cli-1.170.0/apigateway-aws-proxy.json",
];

const REST: Rules = Rules {
    maps: &[
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
    ],
    missing: &[allowed(
        "requestContext.authorizer",
        "only with a Lambda or Cognito authorizer; template.yaml declares none, \
         the functions check the bearer token themselves",
    )],
    null: &[
        allowed(
            "stageVariables",
            "null when the stage has no variables (AWS's REST input format); \
             template.yaml's stages declare none",
        ),
        allowed(
            "requestContext.identity.apiKey",
            "set only when the method requires an API key; none of ours does",
        ),
        allowed(
            "requestContext.identity.apiKeyId",
            "set only when the method requires an API key; none of ours does",
        ),
    ],
    extra: &[allowed(
        "requestContext.extendedRequestId",
        "$context.extendedRequestId is in every REST proxy event (API Gateway's \
         REST input format; lambda_http's ApiGatewayProxyRequestContext reads it); \
         neither vendored sample shows it",
    )],
};

/// The headers API Gateway itself adds to what the client sent.
const GATEWAY_HEADERS: &[&str] = &["x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"];

fn header_map(sample: &Value, skip: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let multi = sample["multiValueHeaders"].as_object();
    let single = sample["headers"].as_object();
    let names: BTreeSet<&String> = multi
        .into_iter()
        .flatten()
        .map(|(name, _)| name)
        .chain(single.into_iter().flatten().map(|(name, _)| name))
        .collect();
    for name in names {
        if skip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            continue;
        }
        let values: Vec<&str> = match multi.and_then(|m| m.get(name)) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
            _ => single
                .and_then(|s| s.get(name))
                .and_then(Value::as_str)
                .into_iter()
                .collect(),
        };
        let header = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        for value in values {
            headers.append(
                header.clone(),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
    }
    headers
}

fn query_string(sample: &Value) -> Option<String> {
    let query = sample["multiValueQueryStringParameters"].as_object()?;
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, values) in query {
        for value in values.as_array().into_iter().flatten() {
            out.append_pair(name, value.as_str().unwrap_or_default());
        }
    }
    Some(out.finish())
}

fn peer(sample: &Value) -> SocketAddr {
    let ip = sample["requestContext"]["identity"]["sourceIp"]
        .as_str()
        .expect("sourceIp");
    format!("{ip}:443").parse().expect("an address")
}

/// What our REST gateway builds for the request `sample` stands for.
fn rest_event_like(sample: &Value) -> Value {
    let path = sample["path"].as_str().expect("path");
    let uri = match query_string(sample) {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut builder = http::Request::builder()
        .method(sample["httpMethod"].as_str().expect("httpMethod"))
        .uri(uri);
    *builder.headers_mut().expect("a valid request") = header_map(sample, GATEWAY_HEADERS);
    let parts = builder.body(()).expect("a request").into_parts().0;
    let body = match (sample["body"].as_str(), sample["isBase64Encoded"].as_bool()) {
        (Some(text), Some(true)) => STANDARD.decode(text).expect("a base64 body"),
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let route = ApiRoute {
        function: "SampleFunction".into(),
        path: sample["resource"].as_str().expect("resource").into(),
        method: "ANY".into(),
    };
    let params = rest::path_parameters(&route, path).expect("the sample's path fits its resource");
    let stage = sample["requestContext"]["stage"].as_str().expect("stage");
    rest::proxy_event(stage, &route, &parts, params, &body, peer(sample))
}

#[test]
fn rest_proxy_events_carry_every_key_of_aws_samples() {
    let samples: Vec<_> = REST_SAMPLES
        .iter()
        .map(|name| {
            let sample = sample(name);
            let ours = rest_event_like(&sample);
            (name.to_string(), sample, ours)
        })
        .collect();
    assert_same_shape(&REST, &samples);
}

#[test]
fn the_callers_address_is_appended_to_x_forwarded_for() {
    // API Gateway appends the caller's address to the one header it got; a
    // second header would leave `headers` with the last hop only.
    let parts = http::Request::builder()
        .uri("/health")
        .header("x-forwarded-for", "203.0.113.7")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let route = ApiRoute {
        function: "HealthFunction".into(),
        path: "/health".into(),
        method: "GET".into(),
    };
    let event = rest::proxy_event(
        "prod",
        &route,
        &parts,
        Default::default(),
        &[],
        "192.0.2.10:50000".parse().unwrap(),
    );
    assert_eq!(
        event["headers"]["x-forwarded-for"],
        "203.0.113.7, 192.0.2.10"
    );
    assert_eq!(
        event["multiValueHeaders"]["x-forwarded-for"],
        json!(["203.0.113.7, 192.0.2.10"])
    );
    let direct = http::Request::builder()
        .uri("/health")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let event = rest::proxy_event(
        "prod",
        &route,
        &direct,
        Default::default(),
        &[],
        "192.0.2.10:50000".parse().unwrap(),
    );
    assert_eq!(event["headers"]["x-forwarded-for"], "192.0.2.10");
}

// --- WebSocket ----------------------------------------------------------

const WS_CONNECT: &str =
    "aws-lambda-events-1.2.1/example-apigw-websocket-request-without-method.json";
const WS_MESSAGE: &str = "derived/apigw-websocket-message.json";
const WS_DISCONNECT: &str =
    "aws-lambda-events-1.2.1/example-apigw-websocket-request-disconnect-route.json";

/// Keys only an API that requires an API key sends: the `$connect`
/// sample's API does (it carries an `x-api-key` header), ours does not.
const API_KEY_IDENTITY: &[Allowed] = &[
    allowed(
        "requestContext.identity.apiKey",
        "the sample's API requires an API key; template.yaml's WebSocket API does not",
    ),
    allowed(
        "requestContext.identity.apiKeyId",
        "the sample's API requires an API key; template.yaml's WebSocket API does not",
    ),
];

const WS_CONNECT_RULES: Rules = Rules {
    maps: &[
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
    ],
    missing: API_KEY_IDENTITY,
    null: &[],
    extra: &[
        allowed(
            "queryStringParameters",
            "sent on $connect when the URL has a query string (only $connect sees \
             the request's query); our clients always connect with ?token=, the \
             sample connected without one",
        ),
        allowed(
            "multiValueQueryStringParameters",
            "as queryStringParameters: with a query string on $connect",
        ),
        allowed(
            "requestContext.identity.userAgent",
            "$context.identity.userAgent (API Gateway's WebSocket context variables) \
             when the client sends a User-Agent; the sample's client sent none",
        ),
    ],
};

const WS_MESSAGE_RULES: Rules = Rules {
    maps: &[],
    missing: &[],
    null: &[],
    extra: &[],
};

const WS_DISCONNECT_RULES: Rules = Rules {
    maps: &["headers", "multiValueHeaders"],
    missing: &[],
    null: &[],
    extra: &[],
};

fn context_like(sample: &Value, user_agent: Option<&str>) -> Value {
    let context = &sample["requestContext"];
    let text = |key: &str| context[key].as_str().unwrap_or_else(|| panic!("{key}"));
    ws::request_context(
        text("stage"),
        text("connectionId"),
        text("routeKey"),
        text("eventType"),
        context["connectedAt"].as_i64().expect("connectedAt"),
        context["identity"]["sourceIp"].as_str().expect("sourceIp"),
        user_agent,
    )
}

#[test]
fn websocket_connect_events_carry_every_key_of_aws_samples() {
    let sample = sample(WS_CONNECT);
    let headers = header_map(&sample, &[]);
    let as_sampled = ws::connect_event(&headers, None, context_like(&sample, None));
    // The handshake our clients make: a token in the query, and a browser's
    // User-Agent.
    let mut browser = headers.clone();
    browser.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Mozilla/5.0"),
    );
    let with_token = ws::connect_event(
        &browser,
        Some("token=abc.def.ghi"),
        context_like(&sample, Some("Mozilla/5.0")),
    );
    assert_same_shape(
        &WS_CONNECT_RULES,
        &[
            (
                format!("{WS_CONNECT} (as sampled)"),
                sample.clone(),
                as_sampled,
            ),
            (format!("{WS_CONNECT} (with ?token=)"), sample, with_token),
        ],
    );
}

#[test]
fn websocket_message_events_carry_every_key_of_aws_samples() {
    let sample = sample(WS_MESSAGE);
    let ours = ws::message_event(
        context_like(&sample, None),
        sample["body"].as_str().expect("body"),
        false,
    );
    assert_same_shape(&WS_MESSAGE_RULES, &[(WS_MESSAGE.to_owned(), sample, ours)]);
}

#[test]
fn websocket_disconnect_events_carry_every_key_of_aws_samples() {
    let sample = sample(WS_DISCONNECT);
    let context = &sample["requestContext"];
    let ours = ws::disconnect_event(
        context_like(&sample, None),
        context["disconnectStatusCode"].as_u64().expect("code") as u16,
        context["disconnectReason"].as_str().expect("reason"),
    );
    assert_same_shape(
        &WS_DISCONNECT_RULES,
        &[(WS_DISCONNECT.to_owned(), sample, ours)],
    );
}

// --- DynamoDB Streams ---------------------------------------------------

const DYNAMODB_SAMPLES: &[&str] = &[
    "aws-lambda-events-1.2.1/example-dynamodb-event.json",
    "sam-cli-1.170.0/dynamodb-update.json",
];

const DYNAMODB: Rules = Rules {
    maps: &["dynamodb.Keys", "dynamodb.NewImage", "dynamodb.OldImage"],
    missing: &[],
    null: &[],
    extra: &[],
};

fn attribute(value: &Value) -> AttributeValue {
    let (tag, inner) = value
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("an attribute value");
    let strings = || -> Vec<String> {
        inner
            .as_array()
            .expect("a set")
            .iter()
            .map(|v| v.as_str().expect("a set member").to_owned())
            .collect()
    };
    let blob = |v: &Value| {
        Blob::new(
            STANDARD
                .decode(v.as_str().expect("base64"))
                .expect("base64"),
        )
    };
    match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str().expect("S").to_owned()),
        "N" => AttributeValue::N(inner.as_str().expect("N").to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().expect("BOOL")),
        "NULL" => AttributeValue::Null(true),
        "B" => AttributeValue::B(blob(inner)),
        "SS" => AttributeValue::Ss(strings()),
        "NS" => AttributeValue::Ns(strings()),
        "BS" => AttributeValue::Bs(inner.as_array().expect("BS").iter().map(blob).collect()),
        "L" => AttributeValue::L(inner.as_array().expect("L").iter().map(attribute).collect()),
        "M" => AttributeValue::M(image(inner).expect("M")),
        other => panic!("unknown attribute type {other}"),
    }
}

fn image(value: &Value) -> Option<HashMap<String, AttributeValue>> {
    Some(
        value
            .as_object()?
            .iter()
            .map(|(name, value)| (name.clone(), attribute(value)))
            .collect(),
    )
}

/// The record the DynamoDB Streams API returns for the change `sample`
/// shows, as the stream poller reads it.
fn stream_record(sample: &Value) -> Record {
    let change = &sample["dynamodb"];
    let mut stream = StreamRecord::builder()
        .set_keys(image(&change["Keys"]))
        .set_new_image(image(&change["NewImage"]))
        .set_old_image(image(&change["OldImage"]))
        .set_sequence_number(change["SequenceNumber"].as_str().map(str::to_owned))
        .set_size_bytes(change["SizeBytes"].as_i64())
        .set_stream_view_type(change["StreamViewType"].as_str().map(StreamViewType::from));
    if let Some(seconds) = change["ApproximateCreationDateTime"].as_f64() {
        stream = stream.approximate_creation_date_time(DateTime::from_secs_f64(seconds));
    }
    let identity = sample["userIdentity"].as_object().map(|identity| {
        Identity::builder()
            .set_principal_id(identity["principalId"].as_str().map(str::to_owned))
            .set_type(identity["type"].as_str().map(str::to_owned))
            .build()
    });
    Record::builder()
        .set_event_id(sample["eventID"].as_str().map(str::to_owned))
        .set_event_name(sample["eventName"].as_str().map(OperationType::from))
        .set_event_version(sample["eventVersion"].as_str().map(str::to_owned))
        .set_event_source(sample["eventSource"].as_str().map(str::to_owned))
        .set_aws_region(sample["awsRegion"].as_str().map(str::to_owned))
        .dynamodb(stream.build())
        .set_user_identity(identity)
        .build()
}

#[test]
fn dynamodb_stream_records_carry_every_key_of_aws_samples() {
    let mut samples = Vec::new();
    for name in DYNAMODB_SAMPLES {
        let event = sample(name);
        for (index, record) in event["Records"]
            .as_array()
            .expect("Records")
            .iter()
            .enumerate()
        {
            let ours = streams::record_json(
                &stream_record(record),
                record["eventSourceARN"].as_str().expect("eventSourceARN"),
                "us-east-1",
            );
            samples.push((format!("{name} Records[{index}]"), record.clone(), ours));
        }
    }
    assert_same_shape(&DYNAMODB, &samples);
}

// --- The originals ------------------------------------------------------

/// The vendored files of `aws_lambda_events` are the crate's own, byte for
/// byte: the crate's sources are where cargo unpacked them to build it.
#[test]
fn vendored_crate_samples_are_unchanged() {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registry = cargo_home.join("registry/src");
    let fixtures: Vec<PathBuf> = std::fs::read_dir(&registry)
        .unwrap_or_else(|err| panic!("{}: {err}", registry.display()))
        .filter_map(Result::ok)
        .map(|index| index.path().join("aws_lambda_events-1.2.1/src/fixtures"))
        .filter(|path| path.is_dir())
        .collect();
    let fixtures = fixtures.first().unwrap_or_else(|| {
        panic!(
            "aws_lambda_events 1.2.1 is not unpacked under {}",
            registry.display()
        )
    });
    let vendored = events_dir().join("aws-lambda-events-1.2.1");
    let mut compared = 0;
    for entry in std::fs::read_dir(&vendored).expect("events/aws-lambda-events-1.2.1") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let name = path.file_name().expect("a file name");
            assert_eq!(
                std::fs::read(&path).expect("the vendored file"),
                std::fs::read(fixtures.join(name)).expect("the crate's file"),
                "{} differs from the crate's",
                path.display()
            );
            compared += 1;
        }
    }
    assert_eq!(
        compared, 4,
        "every vendored sample of the crate is compared"
    );
}
