//! Building the OpenAPI 3.1 document from the Rust types (utoipa's
//! `ToSchema` derives) and each function's route list.
//!
//! Every response body is the envelope, so instead of one hand-written
//! schema per operation, an operation says what its `data` is and this
//! module composes `Envelope` + `data` (+ `pagination` for lists). The
//! error responses an operation can give follow from what it takes: a
//! token (401, 403), a JSON body (400, 413, 415, 422), a path id (404).

use std::collections::BTreeMap;

use utoipa::{
    ToSchema,
    openapi::{
        Components, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
        RefOr, Required, ResponseBuilder, Schema,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type},
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

use model::domain::{Charset, CommentBody, Name, PostBody, Title};

use crate::{
    envelope::API_VERSION,
    error::{ErrorCode, FieldError},
};

pub const BEARER: &str = "bearerAuth";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// A text field of a request body as sent (`null` counts as missing):
/// its length in characters and its `Charset` as a `pattern`, taken from
/// the parser's own constants so that the document cannot drift from the
/// rule, and generated data the fuzzer means as valid is valid.
fn text(charset: Charset, min_chars: usize, max_chars: usize) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(min_chars))
        .max_length(Some(max_chars))
        .pattern(Some(charset.pattern()))
        .into()
}

/// `schema_with` of a user's `name`.
pub fn name_text() -> Schema {
    text(Charset::SingleLine, Name::MIN_CHARS, Name::MAX_CHARS)
}

/// `schema_with` of a post's `title`.
pub fn title_text() -> Schema {
    text(Charset::SingleLine, 1, Title::MAX_CHARS)
}

/// `schema_with` of a post's `body`.
pub fn post_body_text() -> Schema {
    text(Charset::MultiLine, 1, PostBody::MAX_CHARS)
}

/// `schema_with` of an upload's `filename` (at most `max_chars`, the
/// uploads function's bound).
pub fn filename_text(max_chars: usize) -> Schema {
    text(Charset::SingleLine, 1, max_chars)
}

/// `schema_with` of a comment's `body`.
pub fn comment_body_text() -> Schema {
    text(Charset::MultiLine, 1, CommentBody::MAX_CHARS)
}

/// `meta` of every response.
fn meta_schema() -> Schema {
    ObjectBuilder::new()
        .property("requestId", string())
        .property(
            "timestamp",
            string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            ))),
        )
        .property("durationMs", ObjectBuilder::new().schema_type(Type::Number))
        .property("path", string())
        .property("method", string())
        .property("version", string())
        .required("requestId")
        .required("timestamp")
        .required("durationMs")
        .required("path")
        .required("method")
        .required("version")
        .into()
}

fn pagination_schema() -> Schema {
    ObjectBuilder::new()
        .property(
            "limit",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(100)),
        )
        .property("nextCursor", string())
        .property("hasNext", ObjectBuilder::new().schema_type(Type::Boolean))
        .required("limit")
        .required("hasNext")
        .into()
}

fn success_envelope() -> Schema {
    ObjectBuilder::new()
        .property(
            "success",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([true])),
        )
        .property("message", string())
        .property("meta", schema_ref("Meta"))
        .required("success")
        .required("message")
        .required("meta")
        .into()
}

fn error_envelope() -> Schema {
    let codes: Vec<&str> = ErrorCode::HTTP.iter().map(|c| c.as_str()).collect();
    ObjectBuilder::new()
        .property(
            "success",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([false])),
        )
        .property("message", string())
        .property("data", ObjectBuilder::new())
        .property(
            "errors",
            ArrayBuilder::new().items(schema_ref("FieldError")),
        )
        .property("meta", schema_ref("Meta"))
        .property("code", string().enum_values(Some(codes)))
        .required("success")
        .required("message")
        .required("meta")
        .required("code")
        .into()
}

/// What `data` holds on success.
#[derive(Debug, Clone)]
pub enum Data {
    /// No `data`.
    Nothing,
    /// `data` is one schema.
    One(String),
    /// `data` is an array of one schema, with `pagination`.
    Page(String),
    /// Not an envelope: a document of this content type.
    Raw(&'static str),
}

/// A query parameter.
#[derive(Clone)]
pub struct Query {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: RefOr<Schema>,
}

impl Query {
    pub fn string(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            schema: string().into(),
        }
    }

    pub fn boolean(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            schema: ObjectBuilder::new().schema_type(Type::Boolean).into(),
        }
    }

    /// `limit` and `cursor` of every list.
    pub fn page() -> Vec<Self> {
        vec![
            Self {
                name: "limit",
                description: "Page size, 1 to 100 (default 20)",
                schema: ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(100))
                    .into(),
            },
            Self::string("cursor", "nextCursor of the previous page"),
        ]
    }
}

/// One operation of the API.
#[derive(Clone)]
pub struct Route {
    pub method: HttpMethod,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub body: Option<String>,
    pub status: u16,
    pub data: Data,
    pub query: Vec<Query>,
    /// Errors beyond those implied by auth, body and path parameters.
    pub errors: Vec<u16>,
}

impl Route {
    pub fn new(method: HttpMethod, path: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path,
            summary,
            auth: true,
            body: None,
            status: 200,
            data: Data::Nothing,
            query: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn public(mut self) -> Self {
        self.auth = false;
        self
    }

    pub fn body(mut self, schema: String) -> Self {
        self.body = Some(schema);
        self
    }

    pub fn created(mut self) -> Self {
        self.status = 201;
        self
    }

    pub fn data(mut self, data: Data) -> Self {
        self.data = data;
        self
    }

    pub fn query(mut self, query: Vec<Query>) -> Self {
        self.query.extend(query);
        self
    }

    pub fn errors(mut self, errors: &[u16]) -> Self {
        self.errors.extend_from_slice(errors);
        self
    }

    fn path_parameters(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }

    fn error_statuses(&self) -> Vec<u16> {
        let mut statuses = vec![429, 500, 503];
        if self.auth {
            statuses.extend([401, 403]);
        }
        if self.body.is_some() {
            statuses.extend([400, 413, 415, 422]);
        }
        if !self.query.is_empty() {
            statuses.push(400);
        }
        if !self.path_parameters().is_empty() {
            statuses.push(404);
        }
        statuses.extend(&self.errors);
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }
}

fn success_schema(data: &Data) -> RefOr<Schema> {
    let extra: Option<Schema> = match data {
        Data::Nothing => None,
        Data::Raw(_) => return ObjectBuilder::new().into(),
        Data::One(name) => Some(
            ObjectBuilder::new()
                .property("data", schema_ref(name))
                .required("data")
                .into(),
        ),
        Data::Page(name) => Some(
            ObjectBuilder::new()
                .property("data", ArrayBuilder::new().items(schema_ref(name)))
                .property("pagination", schema_ref("Pagination"))
                .required("data")
                .required("pagination")
                .into(),
        ),
    };
    match extra {
        None => schema_ref("SuccessEnvelope"),
        Some(extra) => AllOfBuilder::new()
            .item(schema_ref("SuccessEnvelope"))
            .item(extra)
            .into(),
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Collects one function's schemas and routes.
#[derive(Default)]
pub struct ApiBuilder {
    schemas: BTreeMap<String, RefOr<Schema>>,
    routes: Vec<Route>,
}

impl ApiBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `T` (and what it refers to) and returns its name.
    pub fn schema<T: ToSchema>(&mut self) -> String {
        let name = T::name().to_string();
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        self.schemas.extend(nested);
        self.schemas.insert(name.clone(), T::schema());
        name
    }

    pub fn route(&mut self, route: Route) -> &mut Self {
        self.routes.push(route);
        self
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The document of these routes alone; merge several with `merge`.
    pub fn build(mut self) -> OpenApi {
        self.schema::<FieldError>();
        self.schemas.insert("Meta".into(), meta_schema().into());
        self.schemas
            .insert("Pagination".into(), pagination_schema().into());
        self.schemas
            .insert("SuccessEnvelope".into(), success_envelope().into());
        self.schemas
            .insert("ErrorEnvelope".into(), error_envelope().into());

        let mut paths = Paths::new();
        for route in &self.routes {
            let mut operation = OperationBuilder::new()
                .summary(Some(route.summary))
                .operation_id(Some(format!(
                    "{}{}",
                    route_method_name(&route.method),
                    route.path.replace(['/', '{', '}', '-'], "_")
                )));
            if let Some(tag) = route.path.split('/').nth(3).or(Some("health")) {
                operation = operation.tag(tag);
            }
            for name in route.path_parameters() {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(string())),
                );
            }
            for query in &route.query {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(query.name)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(query.description))
                        .schema(Some(query.schema.clone())),
                );
            }
            if let Some(body) = &route.body {
                operation = operation.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(schema_ref(body))).build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ));
            }
            if route.auth {
                operation =
                    operation.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
            }
            operation = operation.response(
                route.status.to_string(),
                ResponseBuilder::new()
                    .description(reason(route.status))
                    .content(
                        match route.data {
                            Data::Raw(content_type) => content_type,
                            _ => "application/json",
                        },
                        ContentBuilder::new()
                            .schema(Some(success_schema(&route.data)))
                            .build(),
                    ),
            );
            for status in route.error_statuses() {
                operation = operation.response(
                    status.to_string(),
                    ResponseBuilder::new().description(reason(status)).content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(schema_ref("ErrorEnvelope")))
                            .build(),
                    ),
                );
            }
            paths.add_path_operation(route.path, vec![route.method.clone()], operation.build());
        }
        let mut components = Components::new();
        components.schemas = self.schemas;
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("Social API")
                    .version(API_VERSION)
                    .description(Some("The REST API of the social app backend. Every response is the envelope of docs/API.md §1."))
                    .build(),
            )
            .paths(paths)
            .components(Some(components))
            .build()
    }
}

fn route_method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
        HttpMethod::Head => "head",
        HttpMethod::Options => "options",
        HttpMethod::Trace => "trace",
    }
}

/// Merges function documents into one.
pub fn merge(documents: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut documents = documents.into_iter();
    let Some(mut merged) = documents.next() else {
        return ApiBuilder::new().build();
    };
    for document in documents {
        merged.merge(document);
    }
    merged
}
