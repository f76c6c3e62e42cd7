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

use model::{
    domain::{Charset, CommentBody, Name, PostBody, Tag, Title},
    patterns,
};

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

/// Whether a request field must be there. `null` counts as missing
/// (docs/API.md §1.1): a required field refuses it (a 422), an optional one
/// takes it as absent, so only an optional field's type lists `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
}

/// `kind`, and `null` too where the field is optional.
fn schema_type(kind: Type, presence: Presence) -> SchemaType {
    match presence {
        Presence::Required => SchemaType::new(kind),
        Presence::Optional => SchemaType::from_iter([kind, Type::Null]),
    }
}

fn typed(kind: Type, presence: Presence) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(schema_type(kind, presence))
}

fn text(presence: Presence, pattern: String) -> ObjectBuilder {
    typed(Type::String, presence).pattern(Some(pattern))
}

/// A user's `name`: 2–100 characters after trimming, one line.
pub fn name_text(presence: Presence) -> Schema {
    text(
        presence,
        patterns::trimmed_text(Charset::SingleLine, Name::MIN_CHARS, Name::MAX_CHARS),
    )
    .into()
}

/// A post's `title`: 1–200 characters after trimming, one line.
pub fn title_text(presence: Presence) -> Schema {
    text(
        presence,
        patterns::trimmed_text(Charset::SingleLine, 1, Title::MAX_CHARS),
    )
    .into()
}

/// Running text of at most `max_chars`, not only whitespace, kept as sent.
fn running_text(presence: Presence, max_chars: usize) -> Schema {
    text(presence, patterns::running_text(Charset::MultiLine))
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .into()
}

/// A post's `body`.
pub fn post_body_text(presence: Presence) -> Schema {
    running_text(presence, PostBody::MAX_CHARS)
}

/// A comment's `body`.
pub fn comment_body_text(presence: Presence) -> Schema {
    running_text(presence, CommentBody::MAX_CHARS)
}

/// An upload's `filename` of at most `max_chars` as sent.
pub fn filename_text(max_chars: usize) -> Schema {
    text(Presence::Required, patterns::file_name())
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .into()
}

/// An email address, trimmed and lower-cased before it is checked.
pub fn email_text() -> Schema {
    typed(Type::String, Presence::Required)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Email,
        )))
        .max_length(Some(model::domain::EMAIL_MAX))
        .into()
}

/// A new password (register, reset): 8–128 characters, a letter of any
/// script and an ASCII digit.
pub fn new_password_text() -> Schema {
    text(Presence::Required, patterns::password())
        .min_length(Some(8))
        .max_length(Some(128))
        .into()
}

/// The password of a login: 1–128 characters, strength not judged.
pub fn login_password_text() -> Schema {
    typed(Type::String, Presence::Required)
        .min_length(Some(1))
        .max_length(Some(128))
        .into()
}

/// A one-time or refresh token: not only whitespace, at most 4,096
/// characters. Only the server can tell a real one (a 400 or a 401).
pub fn token_text() -> Schema {
    text(Presence::Required, patterns::not_blank())
        .max_length(Some(TOKEN_MAX_CHARS))
        .into()
}

/// The longest token a body may carry.
pub const TOKEN_MAX_CHARS: usize = 4096;

/// An id (a ULID) in a body, trimmed first.
pub fn id_text(presence: Presence) -> Schema {
    text(presence, patterns::trimmed_ulid()).into()
}

/// `tags` of a post: at most 10, each 1–30 characters of `[a-z0-9-]`.
pub fn tags_list(presence: Presence, max_tags: usize) -> Schema {
    ArrayBuilder::new()
        .schema_type(schema_type(Type::Array, presence))
        .items(tag_text())
        .max_items(Some(max_tags))
        .into()
}

fn tag_text() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(Tag::MAX_CHARS))
        .pattern(Some(Tag::PATTERN))
}

/// A whole number of at least `minimum`. JSON has one number type: `3.0`
/// is the integer 3 here, as in JSON Schema.
pub fn whole_number(presence: Presence, minimum: i64) -> Schema {
    typed(Type::Integer, presence)
        .minimum(Some(minimum as f64))
        .into()
}

/// One of `values`, spelled exactly.
pub fn one_of(presence: Presence, values: &[&str]) -> Schema {
    let mut allowed: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if presence == Presence::Optional {
        allowed.push(serde_json::Value::Null);
    }
    typed(Type::String, presence)
        .enum_values(Some(allowed))
        .into()
}

/// One of the ASCII `values`, in any case, trimmed (media types).
pub fn one_of_any_case(values: &[&str]) -> Schema {
    text(Presence::Required, patterns::trimmed_ascii_choice(values)).into()
}

/// The request fields of the API's bodies, as `#[schema(schema_with =
/// ...)]` takes them (a function of no arguments).
pub mod fields {
    use model::{
        domain::{Role, UserStatus},
        uploads::Purpose,
    };

    use super::{Presence::*, *};

    pub fn name() -> Schema {
        name_text(Required)
    }
    pub fn name_optional() -> Schema {
        name_text(Optional)
    }
    pub fn title() -> Schema {
        title_text(Required)
    }
    pub fn title_optional() -> Schema {
        title_text(Optional)
    }
    pub fn post_body() -> Schema {
        post_body_text(Required)
    }
    pub fn post_body_optional() -> Schema {
        post_body_text(Optional)
    }
    pub fn comment_body() -> Schema {
        comment_body_text(Required)
    }
    pub fn email() -> Schema {
        email_text()
    }
    pub fn new_password() -> Schema {
        new_password_text()
    }
    pub fn login_password() -> Schema {
        login_password_text()
    }
    pub fn token() -> Schema {
        token_text()
    }
    pub fn id_optional() -> Schema {
        id_text(Optional)
    }
    /// A post's `version` as a client names it: at least 1.
    pub fn version() -> Schema {
        whole_number(Required, 1)
    }
    /// An upload's declared `size` in bytes: at least 1 (above the
    /// limit is a 413, so no `maximum` here).
    pub fn size() -> Schema {
        whole_number(Required, 1)
    }
    pub fn role_optional() -> Schema {
        one_of(Optional, &[Role::User, Role::Admin].map(Role::as_str))
    }
    pub fn status_optional() -> Schema {
        one_of(
            Optional,
            &[
                UserStatus::Active,
                UserStatus::Suspended,
                UserStatus::Deleted,
            ]
            .map(UserStatus::as_str),
        )
    }
    pub fn purpose() -> Schema {
        one_of(
            Required,
            &[Purpose::Avatar, Purpose::PostImage].map(Purpose::as_str),
        )
    }
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

    /// A string parameter that must match `pattern`.
    pub fn pattern(name: &'static str, description: &'static str, pattern: String) -> Self {
        Self {
            name,
            description,
            schema: string().pattern(Some(pattern)).into(),
        }
    }

    /// A user id (trimmed, as a body id is).
    pub fn id(name: &'static str, description: &'static str) -> Self {
        Self::pattern(name, description, patterns::trimmed_ulid())
    }

    /// A tag, exactly as stored.
    pub fn tag(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            schema: tag_text().into(),
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
            Self {
                name: "cursor",
                description: "nextCursor of the previous page (signed: only the server makes one)",
                schema: string()
                    .pattern(Some(crate::cursor::CURSOR_PATTERN))
                    .max_length(Some(crate::cursor::MAX_CURSOR_LEN))
                    .into(),
            },
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
    /// Whether the route honours `Idempotency-Key`.
    pub idempotent: bool,
    /// The operations that take what this one answers.
    pub links: Vec<Link>,
}

/// An OpenAPI link from a route's success to another operation: which of
/// its path parameters come from where in the response body.
#[derive(Clone)]
pub struct Link {
    pub method: HttpMethod,
    pub path: &'static str,
    /// `(parameter, JSON pointer into the response body)`.
    pub parameters: Vec<(&'static str, &'static str)>,
}

impl Link {
    pub fn to(method: HttpMethod, path: &'static str) -> Self {
        Self {
            method,
            path,
            parameters: Vec::new(),
        }
    }

    /// Path parameter `name` is the response's value at `pointer`.
    pub fn with(mut self, name: &'static str, pointer: &'static str) -> Self {
        self.parameters.push((name, pointer));
        self
    }

    fn name(&self) -> String {
        operation_id(&self.method, self.path)
    }
}

/// The operation id of a route, as the document names it.
pub fn operation_id(method: &HttpMethod, path: &str) -> String {
    format!(
        "{}{}",
        route_method_name(method),
        path.replace(['/', '{', '}', '-'], "_")
    )
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
            idempotent: false,
            links: Vec::new(),
        }
    }

    /// Honours `Idempotency-Key` (a malformed one is a 400).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    pub fn link(mut self, link: Link) -> Self {
        self.links.push(link);
        self
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
        if !self.query.is_empty() || self.idempotent {
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
                .operation_id(Some(operation_id(&route.method, route.path)));
            if let Some(tag) = route.path.split('/').nth(3).or(Some("health")) {
                operation = operation.tag(tag);
            }
            for name in route.path_parameters() {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some("An id (a ULID); anything else names nothing, a 404"))
                        .schema(Some(string().pattern(Some(patterns::ulid())))),
                );
            }
            if route.idempotent {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(IDEMPOTENCY_KEY)
                        .parameter_in(ParameterIn::Header)
                        .required(Required::False)
                        .description(Some(
                            "1–128 printable ASCII characters; a retry with the same key and body replays the first answer",
                        ))
                        .schema(Some(string().pattern(Some(IDEMPOTENCY_KEY_PATTERN)))),
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
            let api = route.path.starts_with("/api/");
            let mut success = ResponseBuilder::new().description(reason(route.status));
            for (name, header) in response_headers(api, route.status) {
                success = success.header(name, header);
            }
            for link in &route.links {
                let mut built = utoipa::openapi::link::LinkBuilder::new().operation_id(link.name());
                for (name, pointer) in &link.parameters {
                    built = built.parameter(*name, format!("$response.body#{pointer}"));
                }
                success = success.link(link.name(), built.build());
            }
            operation = operation.response(
                route.status.to_string(),
                success.content(
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
                let mut failure = ResponseBuilder::new().description(reason(status));
                for (name, header) in response_headers(api, status) {
                    failure = failure.header(name, header);
                }
                operation = operation.response(
                    status.to_string(),
                    failure.content(
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

/// The header of `Idempotency-Key` (docs/API.md, Posts).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// 1–128 printable ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[\\u0021-\\u007E]{1,128}(?![\\s\\S])";

/// The headers a response carries: `X-Request-ID` always; on `/api/` the
/// rate limit's `X-RateLimit-Limit` and `X-RateLimit-Remaining` (left out
/// when the limit's store could not be asked, so not required); on a 429
/// `Retry-After` in seconds.
fn response_headers(
    api: bool,
    status: u16,
) -> Vec<(&'static str, utoipa::openapi::header::Header)> {
    use utoipa::openapi::header::HeaderBuilder;
    let header = |kind: Type, description: &'static str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(kind))
            .description(Some(description))
            .build()
    };
    let mut headers = vec![(
        "X-Request-ID",
        header(
            Type::String,
            "The request id: the client's own X-Request-ID when it sent a usable one",
        ),
    )];
    if api {
        headers.push((
            "X-RateLimit-Limit",
            header(Type::Integer, "Requests allowed in the current window"),
        ));
        headers.push((
            "X-RateLimit-Remaining",
            header(Type::Integer, "Requests left in the current window"),
        ));
    }
    if status == 429 {
        headers.push((
            "Retry-After",
            header(Type::Integer, "Seconds to wait before trying again"),
        ));
    }
    headers
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

/// The document as the API serves it: JSON, with `required` on the
/// headers every response carries (`X-Request-ID`, and `Retry-After` on a
/// 429), which utoipa's header type cannot say, and its links' fields
/// spelled as OpenAPI spells them (utoipa 5.5 writes `operation_id`, not
/// `operationId`, so no tool would follow them).
pub fn document_json(document: &OpenApi) -> String {
    let mut value = serde_json::to_value(document).expect("an OpenAPI document always serialises");
    let operations = value["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let responses = operation
            .get_mut("responses")
            .and_then(|r| r.as_object_mut())
            .into_iter()
            .flat_map(|r| r.values_mut());
        for response in responses {
            let links = response
                .get_mut("links")
                .and_then(|l| l.as_object_mut())
                .into_iter()
                .flat_map(|l| l.values_mut())
                .filter_map(|link| link.as_object_mut());
            for link in links {
                for (written, spelled) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(field) = link.remove(written) {
                        link.insert(spelled.into(), field);
                    }
                }
            }
            if let Some(headers) = response.get_mut("headers").and_then(|h| h.as_object_mut()) {
                for name in ["X-Request-ID", "Retry-After"] {
                    if let Some(header) = headers.get_mut(name).and_then(|h| h.as_object_mut()) {
                        header.insert("required".into(), true.into());
                    }
                }
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&value).expect("a JSON value always serialises");
    text.push('\n');
    text
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
