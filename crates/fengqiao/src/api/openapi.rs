//! The route table's description format, and the OpenAPI 3.1 document built from it.
//!
//! The router and this document are both built from [`super::ROUTES`], so a route cannot be
//! served without being documented, nor documented without being served. Every body's schema
//! is derived from its Rust type (`schemars`, with the bounds `fengqiao_case::schema` states).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use super::Operation;
use fengqiao_case::{ApiError, SCHEMA_VERSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

impl HttpMethod {
    /// The method as OpenAPI spells it (lowercase).
    pub fn openapi_name(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Delete => "delete",
        }
    }

    pub fn http_name(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterLocation {
    Path,
    Query,
}

/// JSON schema type of a parameter's value.
#[derive(Debug, Clone, Copy)]
pub enum ParameterType {
    String,
    Boolean,
    /// A whole number of at least `minimum`: the API refuses a smaller one
    /// (`QueryValues::count` reads the bound from here, so the document says what is checked).
    Count {
        minimum: u64,
    },
    /// An instant (RFC 3339) or a date (YYYY-MM-DD, start of that day in China time).
    InstantOrDate,
    /// One of the serde names of a model enum, whose schema gives them.
    OneOf(SchemaOf),
}

#[derive(Debug, Clone, Copy)]
pub struct ParameterSpec {
    pub name: &'static str,
    pub location: ParameterLocation,
    pub value_type: ParameterType,
    pub description: &'static str,
}

impl ParameterSpec {
    pub const fn path(name: &'static str, description: &'static str) -> ParameterSpec {
        ParameterSpec {
            name,
            location: ParameterLocation::Path,
            value_type: ParameterType::String,
            description,
        }
    }

    pub const fn query(
        name: &'static str,
        value_type: ParameterType,
        description: &'static str,
    ) -> ParameterSpec {
        ParameterSpec {
            name,
            location: ParameterLocation::Query,
            value_type,
            description,
        }
    }
}

/// How to make the schema of one Rust type: `schema_of::<T>`. The document's schemas are
/// derived from the wire types (`#[derive(JsonSchema)]`), so a new field or enum value is
/// documented as soon as it exists.
pub type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`: a reference into `components/schemas` for a named type.
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A request or response body: one value of a type, or a list of them.
#[derive(Debug, Clone, Copy)]
pub enum BodySpec {
    One(SchemaOf),
    ListOf(SchemaOf),
    /// Plain text (`text/plain`), described in words: the Prometheus scrape.
    Text(&'static str),
    /// Bytes (`application/octet-stream`), described in words: a backup file.
    Binary(&'static str),
}

impl BodySpec {
    fn schema(self, generator: &mut SchemaGenerator) -> Value {
        match self {
            BodySpec::One(schema_of) => schema_of(generator).to_value(),
            BodySpec::ListOf(schema_of) => {
                json!({"type": "array", "items": schema_of(generator).to_value()})
            }
            BodySpec::Text(description) => json!({"type": "string", "description": description}),
            BodySpec::Binary(description) => {
                json!({"type": "string", "format": "binary", "description": description})
            }
        }
    }

    /// The media type the body is sent as.
    pub fn media_type(self) -> &'static str {
        match self {
            BodySpec::One(_) | BodySpec::ListOf(_) => "application/json",
            BodySpec::Text(_) => "text/plain",
            BodySpec::Binary(_) => "application/octet-stream",
        }
    }
}

/// `GET /api/openapi.json`: this document, described as an OpenAPI object, not schema by schema.
#[derive(Debug)]
pub struct OpenApiDocument;

impl JsonSchema for OpenApiDocument {
    fn schema_name() -> Cow<'static, str> {
        "OpenApiDocument".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "an OpenAPI 3.1 document: this one",
            "required": ["openapi", "info", "paths", "components"],
            "properties": {"openapi": {"type": "string", "const": "3.1.0"}},
        })
    }
}

/// One route: what the router serves and the OpenAPI document describes.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub operation: Operation,
    pub method: HttpMethod,
    /// In axum's syntax, which is also OpenAPI's: `/api/cases/{number}`.
    pub path: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    /// Changes data: requires the operator header, which is recorded in the events it makes.
    pub mutating: bool,
    pub parameters: &'static [ParameterSpec],
    pub request: Option<BodySpec>,
    pub success_status: u16,
    pub response: BodySpec,
    /// Error statuses this route answers with (always with an `ApiError` body).
    pub errors: &'static [u16],
}

impl RouteSpec {
    /// `{name}` segments of the path.
    pub fn path_parameter_names(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }

    pub fn query_parameters(&self) -> impl Iterator<Item = &'static ParameterSpec> {
        self.parameters
            .iter()
            .filter(|parameter| parameter.location == ParameterLocation::Query)
    }
}

fn status_description(status: u16) -> &'static str {
    match status {
        200 => "ok",
        201 => "created",
        400 => {
            "invalid request: bad JSON, a field or parameter the route does not know, a value out \
             of bounds or with control characters (the message names the field)"
        }
        401 => "no account: sign in (POST /api/session) or send a bearer token",
        403 => {
            "forbidden: the account's role does not allow it (the role table), this node has no \
             authority to make the event (the authority table), or a change made with the \
             session cookie lacks its CSRF token; the message names the rule"
        }
        429 => "too many failed sign-ins: wait the Retry-After seconds",
        404 => "no such case",
        409 => "refused: the case already exists, or its current state does not allow the event",
        413 => "request body too large",
        414 => "the request's path and query are too long",
        431 => "the request's header fields are too large",
        415 => "the body is not sent as application/json",
        422 => "the JSON body does not have the expected fields",
        500 => "the node failed (storage); see its log",
        503 => {
            "the node takes no writes: its store is unhealthy (it serves reads; `store` says \
             why), or, for a change, its clock is more than 5 minutes off against its peers \
             (本机时钟偏差, the message says by how much): correct the clock, or set [clock] \
             allow_skew"
        }
        507 => {
            "disk full (磁盘空间不足): nothing was written; send it again once space is freed \
                on the node's disk"
        }
        _ => "",
    }
}

/// The error statuses a route answers with: those it names, and those every route of its kind
/// can answer: 400 (an unknown query parameter), the authentication middleware's 401 and 403,
/// the URI bound's 414 and hyper's 431 (`api/bare_refusals.rs`), and for a body the
/// extractor's 413, 415 and 422.
pub fn error_statuses(route: &RouteSpec) -> Vec<u16> {
    let mut statuses = route.errors.to_vec();
    statuses.extend([400, 414, 431]);
    if super::auth::access(route.operation) != super::auth::Access::Public {
        statuses.extend([401, 403]);
    }
    if route.request.is_some() {
        statuses.extend([413, 415, 422]);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn parameter_schema(value_type: ParameterType, generator: &mut SchemaGenerator) -> Value {
    match value_type {
        ParameterType::String => json!({"type": "string"}),
        ParameterType::Boolean => json!({"type": "boolean"}),
        ParameterType::Count { minimum } => json!({"type": "integer", "minimum": minimum}),
        ParameterType::InstantOrDate => json!({
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"format": "date"}],
        }),
        ParameterType::OneOf(schema_of) => schema_of(generator).to_value(),
    }
}

fn operation_object(route: &RouteSpec, generator: &mut SchemaGenerator) -> Value {
    let parameters: Vec<Value> = route
        .parameters
        .iter()
        .map(|parameter| {
            let location = match parameter.location {
                ParameterLocation::Path => "path",
                ParameterLocation::Query => "query",
            };
            json!({
                "name": parameter.name,
                "in": location,
                "required": parameter.location == ParameterLocation::Path,
                "description": parameter.description,
                "schema": parameter_schema(parameter.value_type, generator),
            })
        })
        .collect();
    // Who is acting is proved, not named: a bearer token or the session cookie (`api/auth.rs`).
    let security = match super::auth::access(route.operation) {
        super::auth::Access::Public => json!([]),
        // `{}`: no credential at all, which only a loopback caller may send.
        super::auth::Access::LoopbackOrRole(_) => json!([{}, {"bearer": []}, {"session": []}]),
        _ => json!([{"bearer": []}, {"session": []}]),
    };

    let mut responses = Map::new();
    responses.insert(
        route.success_status.to_string(),
        json!({
            "description": status_description(route.success_status),
            "content": {route.response.media_type(): {"schema": route.response.schema(generator)}},
        }),
    );
    let error_schema = schema_of::<ApiError>(generator).to_value();
    for status in error_statuses(route) {
        responses.insert(
            status.to_string(),
            json!({
                "description": status_description(status),
                "content": {"application/json": {"schema": error_schema.clone()}},
            }),
        );
    }

    let mut operation = json!({
        "operationId": route.operation.id(),
        "summary": route.summary,
        "description": route.description,
        "parameters": parameters,
        "responses": responses,
        "security": security,
    });
    if let (Some(request), Some(object)) = (route.request, operation.as_object_mut()) {
        object.insert(
            "requestBody".to_owned(),
            json!({
                "required": true,
                "content": {"application/json": {"schema": request.schema(generator)}},
            }),
        );
    }
    operation
}

/// An enum whose values carry doc comments comes out of schemars as `oneOf` one `const` each;
/// client generators read a plain `enum` best. The values' descriptions are kept, in order, in
/// `x-enum-descriptions` (the extension generators read) and the schema's description.
fn enum_of_documented_values(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let Some(variants) = object.get("oneOf").and_then(Value::as_array) else {
        return;
    };
    let mut values = Vec::new();
    let mut descriptions = Vec::new();
    for variant in variants {
        let Some(fields) = variant.as_object() else {
            return;
        };
        let only_a_value = fields
            .keys()
            .all(|key| matches!(key.as_str(), "const" | "type" | "description"))
            && fields.get("type") == Some(&json!("string"));
        let Some(value) = fields
            .get("const")
            .and_then(Value::as_str)
            .filter(|_| only_a_value)
        else {
            return;
        };
        values.push(value.to_owned());
        descriptions.push(
            fields
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        );
    }
    let listed: Vec<String> = values
        .iter()
        .zip(&descriptions)
        .map(|(value, description)| format!("`{value}`: {description}"))
        .collect();
    let description = match object.get("description").and_then(Value::as_str) {
        Some(own) => format!("{own}\n\n{}", listed.join("; ")),
        None => listed.join("; "),
    };
    object.remove("oneOf");
    object.insert("type".to_owned(), json!("string"));
    object.insert("enum".to_owned(), json!(values));
    object.insert("x-enum-descriptions".to_owned(), json!(descriptions));
    object.insert("description".to_owned(), json!(description));
}

/// The OpenAPI 3.1 document of `routes`. Its schemas are JSON Schema 2020-12 (OpenAPI 3.1's
/// dialect), made from the Rust types as the node reads them (schemars' deserialize contract:
/// a field with a default is optional), which the answers it writes also conform to.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for route in routes {
        let operation = operation_object(route, &mut generator);
        let path_item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(path_item) = path_item.as_object_mut() {
            path_item.insert(route.method.openapi_name().to_owned(), operation);
        }
    }
    let mut schemas = generator.take_definitions(true);
    for schema in schemas.values_mut() {
        enum_of_documented_values(schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Fengqiao node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The JSON API of one Fengqiao node (petition and dispute case handling). Body \
                 schema version {SCHEMA_VERSION}. Every route but the health check, this \
                 document and the sign-in needs an account (a bearer token or the session \
                 cookie); the operator of every change is that account. Every error is an \
                 `ApiError`. A request body \
                 field the body does not know is refused (400), as is text with control or \
                 text-direction characters or beyond the bounds the schemas give."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `fengqiao token create` (acts as its account), \
                                    or the node's CLI token with `x-fengqiao-as: LOGIN`",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": fengqiao_accounts::secret::SESSION_COOKIE,
                    "description": "the cookie POST /api/session sets; a change made with it \
                                    carries the session's CSRF token in x-csrf-token",
                },
            },
        },
    })
}
