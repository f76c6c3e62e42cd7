//! The `sam local` kit held to what docs/LOCALSTACK_AND_SAM_LOCAL.md says of
//! it, without Docker: every event of `events/local/` is the shape of the
//! vendored original it was made from, parses into the type its function's
//! runtime reads, and is served by that function (built from template.yaml
//! by `functions::build`, on moto) with the status the contract gives, the
//! token put in by the documented command (`sam_local_check.py stamp`);
//! and `events/sam-local.env.json` gives each function only variables
//! template.yaml declares for it (beside the emulator's endpoint, which the
//! template does not declare yet) and every declared one `sam local` could
//! not otherwise get right, with `infra/scripts/env.sh`'s values as a
//! container sees them. What SAM CLI itself makes of both is
//! `infra/python/sam_local_check.py check`'s part.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use aws_lambda_events::{apigw::ApiGatewayWebsocketProxyRequest, dynamodb::Event};
use infra::{provision::provision, template::Template};
use lambda_http::request::LambdaRequest;
use model::{connections::Connections, domain::ConnectionId, keys};
use serde_json::{Value, json};
use tests::workspace_root;

use crate::lambdas::{
    Item, Lambdas, body_text, image, proxy_response, read_json, template, vendored,
};

const ENV_FILE: &str = "events/sam-local.env.json";
const LOCAL_EVENTS: &str = "events/local";
const TOKEN: &str = "__ACCESS_TOKEN__";
const USER_ID: &str = "__USER_ID__";
/// What the env-vars file sets and template.yaml does not declare yet, so
/// that SAM CLI drops it (sam_local_check.py's `AWAITING_TEMPLATE`, and the
/// doc's "What is still missing").
const AWAITING_TEMPLATE: [&str; 2] = ["AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE"];
/// The variables a function dials itself: from SAM's container the host
/// is `host.docker.internal`, not the container's own loopback.
const DIALED: [&str; 2] = ["AWS_ENDPOINT_URL", "WS_MANAGEMENT_ENDPOINT"];
/// The one connection of the WebSocket events.
const CONNECTION: &str = "c2FtLWxvY2FsLTE=";
/// The user the auth events register and log in.
const EMAIL: &str = "sam-local@social.local";

/// The vendored original a local event was made from (events/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Rest,
    WsConnect,
    WsMessage,
    WsDisconnect,
    Stream,
}

/// Every file of `events/local/`, with its origin.
const EVENTS: &[(&str, Origin)] = &[
    ("health-get.json", Origin::Rest),
    ("auth-register.json", Origin::Rest),
    ("auth-login.json", Origin::Rest),
    ("users-me.json", Origin::Rest),
    ("posts-create.json", Origin::Rest),
    ("posts-list.json", Origin::Rest),
    ("notifications-list.json", Origin::Rest),
    ("uploads-create.json", Origin::Rest),
    ("websocket-connect.json", Origin::WsConnect),
    ("websocket-ping.json", Origin::WsMessage),
    ("websocket-chat-join.json", Origin::WsMessage),
    ("websocket-chat-send.json", Origin::WsMessage),
    ("websocket-disconnect.json", Origin::WsDisconnect),
    ("stream-comment-notification.json", Origin::Stream),
];

fn local_event(name: &str) -> Value {
    read_json(&workspace_root().join(LOCAL_EVENTS).join(name))
}

/// The logical id of the function built from the crate a file is named
/// after (`users-me.json`: `users`), by its CodeUri (`functions/users`).
fn function_of(template: &Template, file: &str) -> String {
    let krate = file.split('-').next().expect("a crate prefix");
    template
        .functions
        .iter()
        .find(|function| {
            function
                .code_uri
                .as_deref()
                .is_some_and(|uri| uri.trim_end_matches('/').rsplit('/').next() == Some(krate))
        })
        .unwrap_or_else(|| panic!("{file}: no function of template.yaml is built from {krate}"))
        .logical_id
        .clone()
}

fn keys_of(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

// --- Shapes ---------------------------------------------------------------

/// The single and multi-value header maps agree, as API Gateway sends them
/// when no header repeats.
fn headers_agree(name: &str, event: &Value) {
    let single = event["headers"].as_object().expect("headers");
    let multi = event["multiValueHeaders"]
        .as_object()
        .expect("multiValueHeaders");
    assert_eq!(
        single.keys().collect::<Vec<_>>(),
        multi.keys().collect::<Vec<_>>(),
        "{name}"
    );
    for (header, value) in single {
        assert_eq!(multi[header], json!([value]), "{name}: {header}");
    }
}

/// The JSON type of each key is the original's, or null where API Gateway
/// sends null for an absent part (no path parameters, no query, no body).
fn types_agree(name: &str, ours: &Value, original: &Value, nullable: &[&str]) {
    for (key, value) in ours.as_object().expect("an object") {
        let Some(theirs) = original.get(key) else {
            continue;
        };
        let same = std::mem::discriminant(value) == std::mem::discriminant(theirs)
            || theirs.is_null()
            || (value.is_null() && nullable.contains(&key.as_str()));
        assert!(same, "{name}: {key} is {value}, the original's {theirs}");
    }
}

/// One level of an event (the event, its context, its identity) and the
/// keys API Gateway sends there beyond the samples'.
type Level = (fn(&Value) -> &Value, &'static [&'static str]);

/// A REST event has every key of SAM's generated event and none that
/// neither SAM's nor the crate's capture has, at each level, but one:
/// `requestContext.extendedRequestId`, which API Gateway sends and `sam
/// local start-api` does too (sam_local_check.py holds our events to the
/// keys of start-api's), while neither vendored sample has it.
fn rest_shape(name: &str, event: &Value) {
    let sam = vendored("sam-cli-1.170.0/apigateway-aws-proxy.json");
    let capture = vendored("aws-lambda-events-1.2.1/example-apigw-request.json");
    let levels: [Level; 3] = [
        (|v| v, &[]),
        (|v| &v["requestContext"], &["extendedRequestId"]),
        (|v| &v["requestContext"]["identity"], &[]),
    ];
    for (level, also_sent) in levels {
        let ours = keys_of(level(event));
        let required = keys_of(level(&sam));
        let mut known: BTreeSet<String> =
            required.union(&keys_of(level(&capture))).cloned().collect();
        known.extend(set(also_sent));
        assert!(
            ours.is_superset(&required),
            "{name}: lacks {:?}",
            required.difference(&ours).collect::<Vec<_>>()
        );
        assert!(
            ours.is_subset(&known),
            "{name}: invents {:?}",
            ours.difference(&known).collect::<Vec<_>>()
        );
    }
    types_agree(
        name,
        event,
        &sam,
        &[
            "body",
            "pathParameters",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "stageVariables",
        ],
    );
    types_agree(name, &event["requestContext"], &sam["requestContext"], &[]);
    headers_agree(name, event);
    assert_eq!(event["isBase64Encoded"], false, "{name}: JSON is text");
    let context = &event["requestContext"];
    assert_eq!(context["resourcePath"], event["resource"], "{name}");
    assert_eq!(context["httpMethod"], event["httpMethod"], "{name}");
    let stage = context["stage"].as_str().expect("a stage");
    assert_eq!(
        context["path"].as_str(),
        Some(format!("/{stage}{}", event["path"].as_str().expect("a path")).as_str()),
        "{name}: the execute-api path is the stage's"
    );
}

/// A WebSocket event has the keys of its original, at each level; a
/// `$connect` also the query string our clients connect with, and no API
/// key (our API has none).
fn ws_shape(name: &str, event: &Value, origin: Origin) {
    let original = vendored(match origin {
        Origin::WsConnect => {
            "aws-lambda-events-1.2.1/example-apigw-websocket-request-without-method.json"
        }
        Origin::WsMessage => "derived/apigw-websocket-message.json",
        _ => "aws-lambda-events-1.2.1/example-apigw-websocket-request-disconnect-route.json",
    });
    let mut top = keys_of(&original);
    let mut identity = keys_of(&original["requestContext"]["identity"]);
    if origin == Origin::WsConnect {
        top.extend(set(&[
            "queryStringParameters",
            "multiValueQueryStringParameters",
        ]));
        identity.retain(|key| !key.starts_with("apiKey"));
        assert!(
            !event["headers"]
                .as_object()
                .expect("headers")
                .keys()
                .any(|header| header.eq_ignore_ascii_case("x-api-key")),
            "{name}: no API key"
        );
    }
    assert_eq!(keys_of(event), top, "{name}");
    assert_eq!(
        keys_of(&event["requestContext"]),
        keys_of(&original["requestContext"]),
        "{name}"
    );
    assert_eq!(
        keys_of(&event["requestContext"]["identity"]),
        identity,
        "{name}"
    );
    types_agree(
        name,
        &event["requestContext"],
        &original["requestContext"],
        &[],
    );
    if event.get("headers").is_some() {
        headers_agree(name, event);
    }
    let context = &event["requestContext"];
    assert_eq!(
        context["connectionId"], CONNECTION,
        "{name}: one connection"
    );
    if origin == Origin::WsMessage {
        let frame: Value =
            serde_json::from_str(event["body"].as_str().expect("a text frame")).expect("JSON");
        assert_eq!(
            frame["action"], context["routeKey"],
            "{name}: API Gateway routes on the body's action"
        );
    }
}

/// A stream record has the keys of SAM's INSERT record and passes the
/// filters of the template's event source mapping.
fn stream_shape(name: &str, event: &Value, template: &Template) {
    let sam = vendored("sam-cli-1.170.0/dynamodb-update.json");
    let insert = &sam["Records"][0];
    let filters = &template.table_stream().expect("a table stream").filters;
    let records = event["Records"].as_array().expect("Records");
    assert!(!records.is_empty(), "{name}");
    for record in records {
        assert_eq!(keys_of(record), keys_of(insert), "{name}");
        assert_eq!(
            keys_of(&record["dynamodb"]),
            keys_of(&insert["dynamodb"]),
            "{name}"
        );
        types_agree(name, record, insert, &[]);
        assert!(
            filters.selects(record),
            "{name}: the template's FilterCriteria drop it"
        );
    }
}

#[test]
fn every_local_event_is_listed_parses_and_keeps_its_originals_shape() {
    let listed: BTreeSet<String> = EVENTS.iter().map(|(file, _)| (*file).to_owned()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(workspace_root().join(LOCAL_EVENTS))
        .expect("events/local")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(present, listed, "events/local/ and this list differ");
    let template = template();
    for (file, origin) in EVENTS {
        let event = local_event(file);
        function_of(&template, file);
        match origin {
            Origin::Rest => {
                let request: LambdaRequest =
                    serde_json::from_value(event.clone()).expect("lambda_http reads it");
                assert!(
                    matches!(request, LambdaRequest::ApiGatewayV1(_)),
                    "{file}: a REST proxy event"
                );
                rest_shape(file, &event);
            }
            Origin::Stream => {
                let _: Event = serde_json::from_value(event.clone()).expect("a DynamoDB event");
                stream_shape(file, &event, &template);
            }
            ws => {
                let _: ApiGatewayWebsocketProxyRequest =
                    serde_json::from_value(event.clone()).expect("a WebSocket event");
                ws_shape(file, &event, *ws);
            }
        }
        // The routes that take a token have its placeholder, the others none.
        let text = event.to_string();
        let takes_token = *origin == Origin::WsConnect
            || (*origin == Origin::Rest
                && !matches!(
                    *file,
                    "health-get.json" | "auth-register.json" | "auth-login.json"
                ));
        assert_eq!(text.contains(TOKEN), takes_token, "{file}: {TOKEN}");
        assert_eq!(
            text.contains(USER_ID),
            *origin == Origin::Stream,
            "{file}: {USER_ID}"
        );
    }
}

// --- The env-vars file ----------------------------------------------------

/// What `infra/scripts/env.sh` exports in an empty environment, and the
/// endpoint `dev.sh` then gives its processes.
fn env_sh() -> HashMap<String, String> {
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            "set -eu; source infra/scripts/env.sh; \
             export AWS_ENDPOINT_URL=\"http://127.0.0.1:$MOTO_PORT\"; env -0",
        )
        .current_dir(workspace_root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("bash runs env.sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The raw `Environment.Variables` of the template's `Globals` and of each
/// function, tags (`!Ref`, `!Sub`) kept.
fn raw_variables() -> (
    serde_norway::Mapping,
    BTreeMap<String, serde_norway::Mapping>,
    BTreeSet<String>,
) {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template");
    let root: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let variables = |holder: &serde_norway::Value| {
        holder["Environment"]["Variables"]
            .as_mapping()
            .cloned()
            .unwrap_or_default()
    };
    let resources = root["Resources"].as_mapping().expect("Resources");
    let ids = resources
        .keys()
        .filter_map(|key| key.as_str().map(str::to_owned))
        .collect();
    let functions = resources
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, resource)| {
            (
                id.as_str().expect("an id").to_owned(),
                variables(&resource["Properties"]),
            )
        })
        .collect();
    (variables(&root["Globals"]["Function"]), functions, ids)
}

/// Whether a template value is one only a deploy resolves: a reference to
/// a resource or a secret, which `sam local` would pass as the resource's
/// logical id or the reference's text.
fn resolved_only_on_aws(value: &serde_norway::Value, resources: &BTreeSet<String>) -> bool {
    let serde_norway::Value::Tagged(tagged) = value else {
        return false;
    };
    let text = match &tagged.value {
        serde_norway::Value::String(text) => text.clone(),
        other => serde_norway::to_string(other).expect("YAML"),
    };
    match tagged.tag.to_string().trim_start_matches('!') {
        "Ref" => resources.contains(text.trim()),
        "GetAtt" => true,
        _ => {
            text.contains("{{resolve:")
                || resources.iter().any(|id| {
                    text.contains(&format!("${{{id}}}")) || text.contains(&format!("${{{id}."))
                })
        }
    }
}

#[test]
fn the_env_vars_file_gives_each_function_its_declared_variables_as_env_sh_sets_them() {
    let file = read_json(&workspace_root().join(ENV_FILE));
    let file = file.as_object().expect("an object of functions");
    let template = template();
    let functions: BTreeSet<String> = template
        .functions
        .iter()
        .map(|function| function.logical_id.clone())
        .collect();
    assert_eq!(
        file.keys().cloned().collect::<BTreeSet<_>>(),
        functions,
        "one entry per function of template.yaml, and no other"
    );
    let local = env_sh();
    let (globals, own, resources) = raw_variables();
    let mut values_by_name: HashMap<&str, &str> = HashMap::new();
    for (function, variables) in file {
        let variables = variables.as_object().expect("a map of variables");
        let declared: BTreeSet<String> = template
            .environment_of(function)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let given: BTreeSet<String> = variables.keys().cloned().collect();
        let awaiting = set(&AWAITING_TEMPLATE);
        let undeclared: Vec<_> = given
            .iter()
            .filter(|name| !declared.contains(*name) && !awaiting.contains(*name))
            .collect();
        assert!(
            undeclared.is_empty(),
            "{function}: {undeclared:?} are not declared for it in template.yaml; SAM CLI would drop them"
        );
        assert!(
            given.is_superset(&awaiting),
            "{function}: the emulator's endpoint"
        );
        for name in &declared {
            let from_env_sh = local.contains_key(name);
            let template_value = own[function]
                .get(name.as_str())
                .or_else(|| globals.get(name.as_str()))
                .expect("declared");
            assert!(
                !(from_env_sh || resolved_only_on_aws(template_value, &resources))
                    || given.contains(name),
                "{function}: {name} needs a value here (env.sh sets it, or only AWS resolves the template's)"
            );
        }
        for (name, value) in variables {
            let value = value.as_str().expect("values are strings, as Lambda's are");
            let from_env_sh = local.get(name).unwrap_or_else(|| {
                panic!("{function}: {name} is not something infra/scripts/env.sh sets")
            });
            let expected = if DIALED.contains(&name.as_str()) {
                from_env_sh.replacen("://127.0.0.1:", "://host.docker.internal:", 1)
            } else {
                from_env_sh.clone()
            };
            assert_eq!(value, expected, "{function}: {name}");
            // One value per name: the tests below build every function from
            // the file's values together.
            if let Some(before) = values_by_name.insert(name, value) {
                assert_eq!(before, value, "{name} differs between functions");
            }
        }
    }
}

// --- Invoking the functions with the events --------------------------------

/// The stage of the events, and of the file's `@connections` endpoint.
const STAGE: &str = "dev";

/// A REST answer: the proxy response as `sam local invoke` prints it, and
/// its status and parsed body.
struct Answer {
    printed: Value,
    status: u16,
    body: Value,
}

impl Answer {
    /// The answer, once it is known to have `status`.
    fn status_is(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{:#}", self.body);
        self
    }
}

/// A string of an answer (an id), owned.
fn string_at(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// Every function, as `sam local` would run it with the env-vars file once
/// template.yaml declares the endpoint's variables: the file's values, on a
/// table, bucket and `@connections` of the test's own, against the test's
/// moto instead of `host.docker.internal`.
async fn start() -> Lambdas {
    let file = read_json(&workspace_root().join(ENV_FILE));
    let mut env: HashMap<String, String> = HashMap::new();
    for variables in file.as_object().expect("functions").values() {
        for (name, value) in variables.as_object().expect("variables") {
            env.insert(name.clone(), value.as_str().expect("a string").to_owned());
        }
    }
    // The SDK configuration points at this test's emulator.
    env.remove("AWS_ENDPOINT_URL");
    let sender = env.get("EMAIL_FROM").cloned();
    let lambdas = Lambdas::start(STAGE, |app, management| {
        env.insert("TABLE_NAME".into(), app.storage.table_name.clone());
        env.insert("BUCKET_NAME".into(), app.storage.bucket_name.clone());
        env.insert("WS_MANAGEMENT_ENDPOINT".into(), management.to_owned());
        env
    })
    .await;
    // The file's sender, as `make dev` provisions it.
    provision(
        &lambdas.sdk,
        &lambdas.template,
        &lambdas.app.storage,
        sender.as_deref(),
    )
    .await
    .expect("provisioning");
    lambdas
}

impl Lambdas {
    /// Invokes the REST function the file is named for, as its runtime
    /// does (lambda_http's adapter over the service).
    async fn rest(&self, file: &str, event: Value) -> Answer {
        let printed = self
            .invoke_rest(&function_of(&self.template, file), event)
            .await;
        let response = proxy_response(&printed);
        Answer {
            printed,
            status: response.status,
            body: response.body,
        }
    }

    /// The REST file as it is.
    async fn as_is(&self, file: &str) -> Answer {
        self.rest(file, local_event(file)).await
    }

    /// The REST file stamped with the token of `login`.
    async fn stamped(&self, login: &Answer, file: &str) -> Answer {
        self.rest(file, stamp(&login.printed, file)).await
    }

    async fn notifications_of(&self, user: &str) -> Vec<Item> {
        let pk = keys::user_pk(&user.parse().expect("a user id"));
        self.items_under(pk, keys::NOTIFICATION_SK_PREFIX).await
    }
}

/// `sam_local_check.py stamp --login - EVENT`, as the doc tells users to
/// run it, with `login` (what `sam local invoke AuthFunction` printed) on
/// its standard input.
fn stamp(login: &Value, file: &str) -> Value {
    let python = std::env::var("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".venv/bin/python"));
    let mut child = Command::new(&python)
        .arg(workspace_root().join("infra/python/sam_local_check.py"))
        .args(["stamp", "--login", "-"])
        .arg(workspace_root().join(LOCAL_EVENTS).join(file))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{}: {err}", python.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(login.to_string().as_bytes())
        .expect("the login answer is written");
    let output = child.wait_with_output().expect("stamp ends");
    assert!(
        output.status.success(),
        "stamp {file}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stamped: Value = serde_json::from_slice(&output.stdout).expect("stamp prints JSON");
    let text = stamped.to_string();
    assert!(!text.contains(TOKEN) && !text.contains(USER_ID), "{file}");
    stamped
}

/// A REST event moved to another route of the same function, for the
/// steps the kit has no file for (verifying the email, commenting).
fn moved(mut event: Value, resource: &str, path: &str, params: Value, body: Value) -> Value {
    event["resource"] = json!(resource);
    event["path"] = json!(path);
    event["pathParameters"] = params;
    event["body"] = json!(body.to_string());
    let stage = event["requestContext"]["stage"]
        .as_str()
        .expect("a stage")
        .to_owned();
    event["requestContext"]["resourcePath"] = json!(resource);
    event["requestContext"]["path"] = json!(format!("/{stage}{path}"));
    event
}

/// The attribute names of an item, each with its DynamoDB type.
fn attribute_types(item: &Value) -> BTreeMap<String, String> {
    item.as_object()
        .expect("an item")
        .iter()
        .flat_map(|(name, value)| {
            let (kind, inner) = value
                .as_object()
                .and_then(|typed| typed.iter().next())
                .expect("a typed attribute");
            let nested = if kind == "M" {
                attribute_types(inner)
                    .into_iter()
                    .map(|(inner_name, inner_kind)| (format!("{name}.{inner_name}"), inner_kind))
                    .collect()
            } else {
                Vec::new()
            };
            std::iter::once((name.clone(), kind.clone())).chain(nested)
        })
        .collect()
}

#[tokio::test]
async fn a_sam_local_session_gets_the_documented_answers() {
    let kit = start().await;

    // The public routes, as the files are.
    let health = kit.as_is("health-get.json").await.status_is(200);
    assert_eq!(health.body["data"]["status"], "ok");
    kit.as_is("auth-register.json").await.status_is(201);
    let again = kit.as_is("auth-register.json").await;
    assert_eq!(again.status, 409, "registering twice: {:#}", again.body);
    assert_eq!(again.body["code"], "CONFLICT");
    let login = kit.as_is("auth-login.json").await.status_is(200);
    let user = string_at(&login.body["data"]["user"]["id"]);

    // The routes behind a token, stamped with the login's.
    let me = kit.stamped(&login, "users-me.json").await.status_is(200);
    assert_eq!(me.body["data"]["id"], user.as_str());
    assert_eq!(me.body["data"]["email"], EMAIL);
    let created = kit
        .stamped(&login, "posts-create.json")
        .await
        .status_is(201);
    let post = string_at(&created.body["data"]["id"]);
    let listed = kit.stamped(&login, "posts-list.json").await.status_is(200);
    assert_eq!(listed.body["data"][0]["id"], post.as_str());
    assert_eq!(listed.body["pagination"]["limit"], 20);
    let notifications = kit
        .stamped(&login, "notifications-list.json")
        .await
        .status_is(200);
    assert_eq!(notifications.body["data"], json!([]));
    let upload = kit
        .stamped(&login, "uploads-create.json")
        .await
        .status_is(201);
    assert_eq!(upload.body["data"]["uploadMethod"], "PUT");
    assert!(
        upload.body["data"]["uploadUrl"]
            .as_str()
            .is_some_and(|url| url.contains(&kit.app.storage.bucket_name)),
        "{:#}",
        upload.body
    );

    // The WebSocket session: connect, ping, join, send.
    let connected = kit
        .invoke_ws(stamp(&login.printed, "websocket-connect.json"))
        .await;
    assert_eq!(connected.status_code, 200, "{}", body_text(&connected));
    let connection = ConnectionId::parse(CONNECTION).expect("a connection id");
    let item = kit
        .table
        .connection(&connection)
        .await
        .expect("read")
        .expect("the connection is recorded");
    assert_eq!(item.user_id.to_string(), user);
    for file in [
        "websocket-ping.json",
        "websocket-chat-join.json",
        "websocket-chat-send.json",
    ] {
        let answered = kit.invoke_ws(local_event(file)).await;
        assert_eq!(
            answered.status_code,
            200,
            "{file}: {}",
            body_text(&answered)
        );
    }
    let frames = kit.management.frames_to(CONNECTION);
    assert_eq!(frames.len(), 3, "{frames:#?}");
    assert_eq!(frames[0], json!({"type": "pong"}));
    assert_eq!(frames[1]["type"], "chat.joined");
    assert_eq!(frames[1]["room"], "sam-local");
    assert_eq!(frames[2]["type"], "chat.message");
    assert_eq!(frames[2]["text"], "Hello from sam local");
    assert_eq!(frames[2]["from"]["id"], user.as_str());

    // The stream batch has the attributes of the notification a real
    // comment writes: another user comments on the post.
    let commenter = kit
        .rest(
            "auth-register.json",
            moved(
                local_event("auth-register.json"),
                "/api/v1/auth/register",
                "/api/v1/auth/register",
                Value::Null,
                json!({"name": "Ada Lovelace", "email": "ada@social.local", "password": "sam-local-42"}),
            ),
        )
        .await
        .status_is(201);
    let comments = format!("/api/v1/posts/{post}/comments");
    let comment = async |body: &str| {
        kit.rest(
            "posts-create.json",
            moved(
                stamp(&commenter.printed, "posts-create.json"),
                "/api/v1/posts/{id}/comments",
                &comments,
                json!({"id": post}),
                json!({"body": body}),
            ),
        )
        .await
        .status_is(201);
    };
    comment("Nice one").await;
    let written = kit.notifications_of(&user).await;
    assert_eq!(written.len(), 1);
    let written = image(&written[0]);
    let batch = stamp(&login.printed, "stream-comment-notification.json");
    let image = batch["Records"][0]["dynamodb"]["NewImage"].clone();
    assert_eq!(
        attribute_types(&image),
        attribute_types(&written),
        "the event's notification and the one posts writes"
    );
    assert_eq!(image["userId"], json!({"S": user}));
    // Its keys are the data model's, for that user.
    let user_id = user.parse().expect("a user id");
    let notification_id = image["id"]["S"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("a notification id");
    assert_eq!(image["pk"], json!({"S": keys::user_pk(&user_id)}));
    assert_eq!(
        image["sk"],
        json!({"S": keys::notification_sk(&notification_id)})
    );
    assert_eq!(image["gsi2pk"], json!({"S": keys::unread_pk(&user_id)}));
    assert_eq!(
        batch["Records"][0]["dynamodb"]["Keys"],
        json!({"pk": image["pk"], "sk": image["sk"]})
    );

    // The comment's email goes to a verified address only.
    let sent = kit.app.emails_to(EMAIL).await;
    let verification = sent
        .iter()
        .find(|email| email.subject == "Verify your email address")
        .expect("the verification email");
    kit.rest(
        "auth-login.json",
        moved(
            local_event("auth-login.json"),
            "/api/v1/auth/verify-email",
            "/api/v1/auth/verify-email",
            Value::Null,
            json!({"token": verification.token()}),
        ),
    )
    .await
    .status_is(200);

    assert_eq!(kit.invoke_stream(batch).await, Vec::<Option<String>>::new());
    let frames = kit.management.frames_to(CONNECTION);
    assert_eq!(frames.len(), 4, "{frames:#?}");
    assert_eq!(frames[3]["type"], "notification");
    assert_eq!(
        frames[3]["notification"]["id"], image["id"]["S"],
        "{frames:#?}"
    );
    // The record only pushes: the email of a comment is the outbox's, and
    // the first comment's was due while the address was unverified. A
    // comment now, to the verified address, is emailed, once.
    let emailed = |kit_emails: Vec<tests::SentEmail>| -> Vec<tests::SentEmail> {
        kit_emails
            .into_iter()
            .filter(|email| email.subject == "New comment on your post")
            .collect()
    };
    assert_eq!(emailed(kit.app.emails_to(EMAIL).await).len(), 0);
    comment("Nice one again").await;
    // Its outbox INSERT, as the stream carries it, to the worker as sam
    // local runs it (with its APP_URL).
    let author_id = user.as_str();
    let pending: Vec<_> = crate::outbox::outbox_of(&kit.app, author_id)
        .await
        .into_iter()
        .filter(|item| item.status == model::outbox::OutboxStatus::Pending)
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let record = crate::outbox::insert_record(&kit.app.storage.table_name, &pending[0], "900");
    assert_eq!(
        kit.invoke_stream(json!({"Records": [record]})).await,
        Vec::<Option<String>>::new()
    );
    let emailed = emailed(kit.app.mailbox_of(EMAIL).await);
    assert_eq!(emailed.len(), 1, "{emailed:#?}");
    let post_link = format!("http://127.0.0.1:3000/posts/{post}");
    assert!(
        emailed[0].body.contains(&post_link),
        "the link is APP_URL's: {}",
        emailed[0].body
    );

    let disconnected = kit
        .invoke_ws(local_event("websocket-disconnect.json"))
        .await;
    assert_eq!(disconnected.status_code, 200);
    assert!(
        kit.table
            .connection(&connection)
            .await
            .expect("read")
            .is_none()
    );
}
