//! The one registry of the functions of `template.yaml`: each logical id
//! with its crate's constructor (and, for REST functions, its part of the
//! OpenAPI document). The local gateway, the tests and the OpenAPI
//! generator all build from this list; nothing else repeats the wiring. A
//! new route group adds its line here and its resource in the template.

use std::collections::{BTreeSet, HashMap};

use aws_config::SdkConfig;
use aws_lambda_events::{
    apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest},
    dynamodb::Event,
    streams::DynamoDbEventResponse,
};
use platform::{
    config::{ConfigError, Source},
    http::HttpService,
    lambda::EventService,
};

use crate::template::Template;

/// The websocket function as its Lambda runs it.
pub type WebSocketService = EventService<ApiGatewayWebsocketProxyRequest, ApiGatewayProxyResponse>;
/// The stream worker as the table's stream invokes it.
pub type StreamService = EventService<Event, DynamoDbEventResponse>;
/// The same worker as the outbox sweep's schedule invokes it.
pub type SweepService = EventService<stream::ScheduledEvent, stream::Tally>;

type Build<T> = fn(&dyn Source, &SdkConfig) -> Result<T, ConfigError>;

/// How a function is built, by the kind of event it serves.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Behind the REST API; `openapi` documents its routes.
    Rest {
        build: Build<HttpService>,
        openapi: fn() -> utoipa::openapi::OpenApi,
    },
    /// Behind the WebSocket API.
    WebSocket(Build<WebSocketService>),
    /// Fed by the table's stream, and run on the outbox sweep's schedule.
    Stream(Build<stream::StreamWorker>),
}

/// One function of the template.
#[derive(Clone, Copy)]
pub struct Function {
    pub logical_id: &'static str,
    pub kind: Kind,
}

const fn rest(
    logical_id: &'static str,
    build: Build<HttpService>,
    openapi: fn() -> utoipa::openapi::OpenApi,
) -> Function {
    Function {
        logical_id,
        kind: Kind::Rest { build, openapi },
    }
}

/// Every function of `template.yaml`, one line each.
pub const REGISTRY: &[Function] = &[
    rest("HealthFunction", health::build, health::openapi),
    rest("AuthFunction", auth::build, auth::openapi),
    rest("UsersFunction", users::build, users::openapi),
    rest("PostsFunction", posts::build, posts::openapi),
    rest("UploadsFunction", uploads::build, uploads::openapi),
    rest(
        "NotificationsFunction",
        notifications::build,
        notifications::openapi,
    ),
    Function {
        logical_id: "WebSocketFunction",
        kind: Kind::WebSocket(websocket::build),
    },
    Function {
        logical_id: "StreamFunction",
        kind: Kind::Stream(stream::build),
    },
];

/// The logical id of the function the table's stream feeds: the role the
/// local poller reads the stream with, as Lambda's event source mapping
/// does.
pub fn stream_logical_id() -> &'static str {
    REGISTRY
        .iter()
        .find_map(|function| {
            matches!(function.kind, Kind::Stream(_)).then_some(function.logical_id)
        })
        .expect("the registry has a stream function")
}

/// Every function, built with one configuration and one SDK config.
pub struct Functions {
    /// The REST functions by logical id.
    pub rest: HashMap<String, HttpService>,
    pub websocket: WebSocketService,
    pub stream: StreamService,
    /// The stream function's scheduled entry point (the outbox sweep).
    pub sweep: SweepService,
}

/// Why the functions could not all be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{function}: {source}")]
    Config {
        function: &'static str,
        #[source]
        source: ConfigError,
    },
    #[error("the registry has no {0}")]
    Missing(&'static str),
}

/// `source` as the Lambda of one function sees it: the variables the
/// template gives that function (`Globals` and its own), and those it gives
/// no function at all, which are local settings (`S3_FORCE_PATH_STYLE`, the
/// tests' limit and TTL overrides). A variable the template gives only to
/// other functions (`JWT_SECRET` to those that handle tokens) is absent,
/// as on AWS, so a function that reads what it is not given fails here too.
pub struct FunctionEnvironment<'a> {
    source: &'a dyn Source,
    withheld: BTreeSet<&'a str>,
}

impl<'a> FunctionEnvironment<'a> {
    pub fn new(template: &'a Template, function: &str, source: &'a dyn Source) -> Self {
        let given = template.environment_of(function);
        let withheld = template
            .declared_variables()
            .into_iter()
            .filter(|name| !given.contains(name))
            .collect();
        Self { source, withheld }
    }
}

impl Source for FunctionEnvironment<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if self.withheld.contains(name) {
            None
        } else {
            self.source.get(name)
        }
    }
}

/// Builds every function of the registry, as each Lambda would at cold
/// start, with `source` as its environment as far as `template` gives it
/// to that function (`FunctionEnvironment`).
pub fn build(
    template: &Template,
    source: &dyn Source,
    sdk: &SdkConfig,
) -> Result<Functions, BuildError> {
    build_with(template, source, &|_| sdk.clone())
}

/// [`build`] with each function's own SDK configuration, `sdk_of(logical
/// id)`: how the tests give every function its own recorded credentials
/// (`calls::CallRecorder`), as each has its own role on AWS.
pub fn build_with(
    template: &Template,
    source: &dyn Source,
    sdk_of: &dyn Fn(&str) -> SdkConfig,
) -> Result<Functions, BuildError> {
    let mut rest = HashMap::new();
    let mut websocket = None;
    let mut stream = None;
    for function in REGISTRY {
        let named = |source| BuildError::Config {
            function: function.logical_id,
            source,
        };
        let source = &FunctionEnvironment::new(template, function.logical_id, source);
        let sdk = &sdk_of(function.logical_id);
        match function.kind {
            Kind::Rest { build, .. } => {
                rest.insert(
                    function.logical_id.to_owned(),
                    build(source, sdk).map_err(named)?,
                );
            }
            Kind::WebSocket(build) => websocket = Some(build(source, sdk).map_err(named)?),
            Kind::Stream(build) => {
                let worker = build(source, sdk).map_err(named)?;
                stream = Some((worker.records, worker.sweep));
            }
        }
    }
    let (stream, sweep) = stream.ok_or(BuildError::Missing("stream function"))?;
    Ok(Functions {
        rest,
        websocket: websocket.ok_or(BuildError::Missing("WebSocket function"))?,
        stream,
        sweep,
    })
}

/// The REST API's OpenAPI document: every REST function's routes, merged.
/// `docs/openapi.json` is this, committed (`make openapi` writes it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    platform::openapi::merge(REGISTRY.iter().filter_map(|function| match function.kind {
        Kind::Rest { openapi, .. } => Some(openapi()),
        _ => None,
    }))
}

/// The committed document's text: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    platform::openapi::document_json(&openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_sees_its_own_variables_and_the_undeclared_ones_only() {
        let template = Template::parse(
            "Globals: {Function: {Environment: {Variables: {SHARED: x}}}}\n\
             Resources:\n\
             \x20 Signer: {Type: AWS::Serverless::Function, Properties: {Environment: {Variables: {SECRET: x}}}}\n\
             \x20 Worker: {Type: AWS::Serverless::Function, Properties: {}}\n",
        )
        .unwrap();
        let everything = |name: &str| Some(format!("value of {name}"));
        let signer = FunctionEnvironment::new(&template, "Signer", &everything);
        let worker = FunctionEnvironment::new(&template, "Worker", &everything);
        for name in ["SHARED", "SECRET", "LOCAL_ONLY"] {
            assert_eq!(signer.get(name), everything(name), "{name}");
        }
        assert_eq!(worker.get("SECRET"), None);
        assert_eq!(worker.get("SHARED"), everything("SHARED"));
        assert_eq!(worker.get("LOCAL_ONLY"), everything("LOCAL_ONLY"));
    }
}
