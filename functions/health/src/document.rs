//! `GET /openapi.json`: the committed OpenAPI document, with `servers` set
//! to where this request reached the API.
//!
//! The document is generated without `servers`, because the path prefix the
//! API is reached under is only known per request: `/<stage>` on the
//! execute-api URL (`/prod`), the base path of a custom domain's mapping
//! (`/v1`, or none at the root), the root under `make dev`. API Gateway puts
//! the path the client asked for in `requestContext.path`, so the prefix is
//! that path without this route's own. The docs page's "try it" and any
//! other client that resolves `servers` against the document's URL then call
//! the same prefix.
//!
//! The prefix goes in by a splice after the document's opening brace, so a
//! request costs one copy of the text and no parse.

use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

/// The REST API's OpenAPI document, generated from the route crates into
/// this committed file (a test fails when it is stale), so that health
/// links none of them.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The route this document is served at, below the prefix.
pub const ROUTE: &str = "/openapi.json";

// The splice below relies on it; the file is generated, so a change of its
// shape is caught here when it is built rather than in a client.
const _: () = assert!(DOCUMENT.as_bytes()[0] == b'{');

/// The path prefix under which the client reached this API: what it asked
/// for (`requestContext.path`) without [`ROUTE`]. Without a request context
/// (not behind API Gateway), or a path that does not end in the route, the
/// stage's own prefix when there is a named stage, else the root.
pub fn public_base(context: Option<&RequestContext>) -> String {
    let context = match context {
        Some(RequestContext::ApiGatewayV1(context)) => context,
        _ => return "/".to_owned(),
    };
    let asked = context
        .path
        .as_deref()
        .map(|path| path.strip_suffix('/').unwrap_or(path));
    let base = match asked.and_then(|path| path.strip_suffix(ROUTE)) {
        Some(base) => base.to_owned(),
        None => match context.stage.as_deref() {
            Some(stage) if !stage.is_empty() && stage != "$default" => format!("/{stage}"),
            _ => String::new(),
        },
    };
    if base.is_empty() {
        "/".to_owned()
    } else {
        base
    }
}

/// [`DOCUMENT`] with `servers: [{"url": base}]` as its first member.
pub fn with_servers(base: &str) -> String {
    let url = serde_json::to_string(base).expect("a string serialises");
    // An OpenAPI document always has members (`openapi` is required), so
    // the comma always has one to precede.
    let mut document = String::with_capacity(DOCUMENT.len() + url.len() + 24);
    document.push_str("{\"servers\":[{\"url\":");
    document.push_str(&url);
    document.push_str("}],");
    document.push_str(&DOCUMENT[1..]);
    document
}

/// GET /openapi.json
pub fn response(context: Option<&RequestContext>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        with_servers(&public_base(context)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;
    use serde_json::Value;

    fn rest(stage: &str, path: &str) -> RequestContext {
        let mut context = ApiGatewayProxyRequestContext::default();
        context.stage = Some(stage.to_owned());
        context.path = Some(path.to_owned());
        context.resource_path = Some(ROUTE.to_owned());
        RequestContext::ApiGatewayV1(context)
    }

    #[test]
    fn the_execute_api_url_is_under_its_stage() {
        assert_eq!(
            public_base(Some(&rest("prod", "/prod/openapi.json"))),
            "/prod"
        );
        assert_eq!(
            public_base(Some(&rest("dev", "/dev/openapi.json/"))),
            "/dev"
        );
    }

    #[test]
    fn a_custom_domain_is_under_its_base_path_mapping() {
        // API Gateway reports the path the client used on the domain: the
        // mapping's base path, never the stage it maps to.
        assert_eq!(public_base(Some(&rest("prod", "/v1/openapi.json"))), "/v1");
        assert_eq!(
            public_base(Some(&rest("prod", "/social/api/openapi.json"))),
            "/social/api"
        );
        assert_eq!(public_base(Some(&rest("prod", "/openapi.json"))), "/");
    }

    #[test]
    fn the_local_gateway_serves_at_the_root() {
        assert_eq!(public_base(Some(&rest("local", "/openapi.json"))), "/");
        assert_eq!(public_base(None), "/");
    }

    #[test]
    fn without_the_path_the_stage_is_the_prefix() {
        let mut context = ApiGatewayProxyRequestContext::default();
        context.stage = Some("staging".into());
        assert_eq!(
            public_base(Some(&RequestContext::ApiGatewayV1(context.clone()))),
            "/staging"
        );
        context.stage = Some("$default".into());
        assert_eq!(
            public_base(Some(&RequestContext::ApiGatewayV1(context))),
            "/"
        );
    }

    #[test]
    fn the_committed_document_has_no_servers_of_its_own() {
        let document: Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(document.get("servers").is_none());
    }

    #[test]
    fn servers_are_spliced_into_the_document_and_nothing_else_changes() {
        let original: Value = serde_json::from_str(DOCUMENT).unwrap();
        for base in ["/", "/prod", "/v1/\"quoted\""] {
            let served: Value = serde_json::from_str(&with_servers(base)).unwrap();
            assert_eq!(served["servers"], serde_json::json!([{ "url": base }]));
            let mut rest = served.as_object().unwrap().clone();
            rest.remove("servers");
            assert_eq!(Value::Object(rest), original, "{base}");
        }
    }

    #[test]
    fn the_document_keeps_its_content_type() {
        let response = response(Some(&rest("prod", "/prod/openapi.json")));
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
    }
}
