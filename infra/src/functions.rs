//! The one registry of the functions of `template.yaml`: each logical id
//! with its crate's constructor (and, for REST functions, its part of the
//! OpenAPI document). The local gateway, the tests and the OpenAPI
//! generator all build from this list; nothing else repeats the wiring. A
//! new route group adds its line here and its resource in the template.

use std::collections::HashMap;

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

/// The websocket function as its Lambda runs it.
pub type WebSocketService = EventService<ApiGatewayWebsocketProxyRequest, ApiGatewayProxyResponse>;
/// The stream worker as its Lambda runs it.
pub type StreamService = EventService<Event, DynamoDbEventResponse>;

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
    /// Fed by the table's stream.
    Stream(Build<StreamService>),
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

/// Every function, built with one configuration and one SDK config.
pub struct Functions {
    /// The REST functions by logical id.
    pub rest: HashMap<String, HttpService>,
    pub websocket: WebSocketService,
    pub stream: StreamService,
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

/// Builds every function of the registry, as each Lambda would at cold
/// start with `source` as its environment.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<Functions, BuildError> {
    let mut rest = HashMap::new();
    let mut websocket = None;
    let mut stream = None;
    for function in REGISTRY {
        let named = |source| BuildError::Config {
            function: function.logical_id,
            source,
        };
        match function.kind {
            Kind::Rest { build, .. } => {
                rest.insert(
                    function.logical_id.to_owned(),
                    build(source, sdk).map_err(named)?,
                );
            }
            Kind::WebSocket(build) => websocket = Some(build(source, sdk).map_err(named)?),
            Kind::Stream(build) => stream = Some(build(source, sdk).map_err(named)?),
        }
    }
    Ok(Functions {
        rest,
        websocket: websocket.ok_or(BuildError::Missing("WebSocket function"))?,
        stream: stream.ok_or(BuildError::Missing("stream function"))?,
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
    let mut text = openapi()
        .to_pretty_json()
        .expect("an OpenAPI document always serialises");
    text.push('\n');
    text
}
