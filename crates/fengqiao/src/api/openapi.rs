//! The route table's description format, and the OpenAPI 3.1 document built from it.
//!
//! The router and this document are both built from [`super::ROUTES`], so a route cannot be
//! served without being documented, nor documented without being served.

use serde_json::{Map, Value, json};

use super::Operation;
use fengqiao_case::SCHEMA_VERSION;
use fengqiao_case::event_time;
use fengqiao_case::input_bounds::{
    FIRST_YEAR, MAX_HEADCOUNT, MAX_PETITIONERS, SEQUENCE_DIGITS, TextKind,
};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterType {
    String,
    Boolean,
    Integer,
    /// An instant (RFC 3339) or a date (YYYY-MM-DD, start of that day in China time).
    InstantOrDate,
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

/// A request or response body: one value of a named schema, or a list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySpec {
    One(&'static str),
    ListOf(&'static str),
}

impl BodySpec {
    fn schema_name(self) -> &'static str {
        match self {
            BodySpec::One(name) | BodySpec::ListOf(name) => name,
        }
    }

    fn schema(self) -> Value {
        match self {
            BodySpec::One(name) => schema_reference(name),
            BodySpec::ListOf(name) => json!({"type": "array", "items": schema_reference(name)}),
        }
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

const ERROR_SCHEMA: &str = "ApiError";

fn schema_reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
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

/// What each schema named in the table is; the types are defined in `fengqiao_case::model`.
fn schema_description(name: &str) -> &'static str {
    match name {
        "NodeInfo" => "the node's identity, tier, region and case count",
        "OpenApiDocument" => "this document",
        "RegisterCase" => "a new case: channel, petitioners, category, location, …",
        "CaseView" => "one case: header, derived state, every event, current warnings",
        "CaseListItem" => "a case summary with its warnings",
        "AppendEvent" => {
            "one event: `{\"kind\": \"accept\", \"payload\": {}}`, optional `at` (RFC 3339; \
             more than 5 minutes in the past only with `backdated_reason`). \
             Kinds: accept, reject, forward, assign, accept_assignment, object, divert, escalate \
             (上报), take_over (提级办理: an office above the holder becomes the holder), extend, \
             reply, evaluate, close, request_review, decide_review, reopen, resolve, mediate, \
             update_judicial_confirmation, link_repeat, issue_directive, acknowledge_directive, \
             report_directive, cross_off_directive, return_directive, amend_header, note"
        }
        "DirectiveListItem" => "a supervision directive (督办单) with its case and warnings",
        "Measures" => "the standard measures for a period, in total and per category",
        "StatsBreakdown" => {
            "total (the whole subtree), own (cases under no child) and children, each an \
             OfficeStats: node_id, name, revoked (a revoked office, named as it last was), \
             region_code, measures, sync (direct children: connected, since, last_contact, \
             last_successful_sync, pending_out, pending_in, quarantined) and its own children"
        }
        "ImportBatch" => {
            "ledger rows (`line`, `case`: a RegisterCase, `history`: AppendEvents, with their \
             bounds; `repeat`: earlier identical rows of the file), each a registration with its \
             history; `dry_run` to check only; `import_id` names the run in every event's mark"
        }
        "ImportRowReport" => {
            "per row: imported (or would be, with dry_run or when another row was rejected), \
             already_present, already_imported (by an earlier run, as `number`), or rejected \
             with the reason and the `field` it is about (e.g. history[1].text)"
        }
        "PeerView" => {
            "one federation link: node_id, name, relation, connected, since, \
             last_successful_sync, last_error, pending"
        }
        "RosterView" => {
            "the trusted root, each member office (node_id, name, tier, region_code, \
             admitted_by, issued_at) and the offices revoked, as their revocations name them"
        }
        "FederationReload" => {
            "what a reload changed: admitted, revoked, updated, roster_entries_signed, \
             needs_restart"
        }
        "AuditLog" => {
            "a case's events in hybrid-clock order: id, kind, non-personal summary, at, hlc, \
             node, office, operator, signature ({status: valid | unsigned | invalid, reason}), \
             imported ({import_id, row_key}) on events a ledger import made"
        }
        "AuditReport" => {
            "cases_checked, events_checked, unsigned, failures (case, event, node, reason) and \
             the quarantine log's size; clean when failures is empty"
        }
        "QuarantineListing" => {
            "one page of refused changes: id, received_at, peer, case, change_hash, \
             change_bytes, reason; next_after for the next page"
        }
        "ApiError" => "every error answer: `{\"error\": \"lowercase message\"}`",
        "SignIn" => "`{\"login\": …, \"password\": …}`",
        "SessionView" => {
            "who is signed in: account, operator (recorded in events), via (session, token, \
             cli); after a sign-in also csrf_token and idle_expiry_seconds"
        }
        "AccountView" => {
            "an account: login, display_name, roles (operator, supervisor, admin), created_at, \
             disabled_at, failed_sign_ins, last_sign_in_at"
        }
        "NewAccount" => "login, display_name, roles, optional password",
        "AccountWithPassword" => "account, and one_time_password when the node made one",
        "PasswordReset" => "optional password (else the node makes one)",
        "RolesChange" => "roles: a list of operator, supervisor, admin",
        "NewToken" => "login (the account it acts as) and name (what it is for)",
        "TokenCreated" => "token (id, name, login, created_at, revoked_at) and secret, shown once",
        "Token" => "a bearer token without its secret: id, name, login, created_at, revoked_at",
        _ => "",
    }
}

fn parameter_schema(value_type: ParameterType) -> Value {
    match value_type {
        ParameterType::String => json!({"type": "string"}),
        ParameterType::Boolean => json!({"type": "boolean"}),
        ParameterType::Integer => json!({"type": "integer", "minimum": 0}),
        ParameterType::InstantOrDate => json!({
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"format": "date"}],
        }),
    }
}

fn operation_object(route: &RouteSpec) -> Value {
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
                "schema": parameter_schema(parameter.value_type),
            })
        })
        .collect();
    // Who is acting is proved, not named: a bearer token or the session cookie (`api/auth.rs`).
    let security = if super::auth::access(route.operation) == super::auth::Access::Public {
        json!([])
    } else {
        json!([{"bearer": []}, {"session": []}])
    };

    let mut responses = Map::new();
    responses.insert(
        route.success_status.to_string(),
        json!({
            "description": status_description(route.success_status),
            "content": {"application/json": {"schema": route.response.schema()}},
        }),
    );
    for status in route.errors {
        responses.insert(
            status.to_string(),
            json!({
                "description": status_description(*status),
                "content": {"application/json": {"schema": schema_reference(ERROR_SCHEMA)}},
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
                "content": {"application/json": {"schema": request.schema()}},
            }),
        );
    }
    operation
}

/// A text field of `kind`: its length from the one bounds table, and the text rule.
fn text_schema(kind: TextKind) -> Value {
    let rule = if kind.keeps_line_breaks() {
        "no control or text-direction characters except line breaks"
    } else {
        "one line: no control, line-break or text-direction characters"
    };
    json!({"type": "string", "maxLength": kind.max_chars(), "description": rule})
}

fn required_text_schema(kind: TextKind) -> Value {
    let mut schema = text_schema(kind);
    if let Some(object) = schema.as_object_mut() {
        object.insert("minLength".to_owned(), json!(1));
    }
    schema
}

/// When a given time may lie, for registrations and events alike (`fengqiao_case::event_time`).
fn given_time_schema() -> Value {
    json!({
        "type": "string",
        "format": "date-time",
        "description": format!(
            "not before {FIRST_YEAR} (China time), not later than {allowance} minutes past the \
             node's clock, not before the event it follows (the transition, the registration, \
             the directive answered) by more than {allowance} minutes; more than {allowance} \
             minutes in the past only with `backdated_reason` and at most `[clock] \
             max_backdate_days` (default {max_days}) days; defaults to now. The measures count a \
             back-dated decision or reply at the time the node recorded it",
            allowance = event_time::CLOCK_SKEW_ALLOWANCE.num_minutes(),
            max_days = event_time::DEFAULT_MAX_BACKDATE_DAYS,
        ),
    })
}

/// Why a given time lies in the past (补录), for registrations and events alike.
fn backdated_reason_schema() -> Value {
    let mut schema = text_schema(TextKind::Line);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "description".to_owned(),
            json!(format!(
                "补录原因: why the time given lies more than {} minutes in the past (a paper \
                 record entered later); required then, refused otherwise; signed with the event \
                 and shown in its history",
                event_time::CLOCK_SKEW_ALLOWANCE.num_minutes()
            )),
        );
    }
    schema
}

/// The bounded fields of a request body (`fengqiao_case::input_bounds`): what a registration
/// holds, and what an event's payload may hold. Only those fields are described here.
fn request_bounds(name: &str) -> Option<Value> {
    use TextKind::{Identifier, Line, Name, Summary, Text};
    match name {
        "RegisterCase" => Some(json!({
            "number": {
                "type": "string",
                "pattern": format!("^([0-9]{{4}}|[0-9]{{6}}|[0-9]{{9}}|[0-9]{{12}})-[0-9]{{4}}-[0-9]{{{SEQUENCE_DIGITS}}}$"),
                "description": format!(
                    "REGION-YEAR-SEQUENCE in the node's region; the year from {FIRST_YEAR} to \
                     next year, the sequence {SEQUENCE_DIGITS} digits"
                ),
            },
            "registered_at": given_time_schema(),
            "backdated_reason": backdated_reason_schema(),
            "petitioners": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_PETITIONERS,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": required_text_schema(Name),
                        // Their shape, not a length, bounds these two (`personal_data`).
                        "id_number": {
                            "type": "string",
                            "description": "Empty if not given. A resident ID number: 18 characters with the GB 11643-1999 check character (X in either case) or 15 digits, a real birth date; other documents: see id_type."
                        },
                        "id_type": {
                            "type": "string",
                            "enum": ["resident_id", "passport", "hk_macao_permit", "taiwan_permit", "other"],
                            "default": "resident_id",
                            "description": "The document id_number belongs to; a resident ID is checked against GB 11643-1999 (18 characters with its check character, or 15 digits), any other is 5 to 32 letters, digits or '-'."
                        },
                        "phone": {
                            "type": "string",
                            "description": "A mobile (11 digits, 1[3-9]…) or a landline with its area code (0736-7221234, extension -123), perhaps after +86; spaces and dashes are ignored. Empty if not given."
                        },
                        "address": text_schema(Line),
                    },
                },
            },
            "headcount": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_HEADCOUNT,
                "description": "at least the number of petitioners",
            },
            "respondent": text_schema(Line),
            "summary": required_text_schema(Summary),
            "location": {
                "type": "object",
                "properties": {
                    "village": text_schema(Line),
                    "grid": text_schema(Line),
                    "grid_worker": text_schema(Name),
                },
            },
            "ownership": {
                "type": "object",
                "properties": {
                    "leader": text_schema(Name),
                    "unit": text_schema(Line),
                    "officer": text_schema(Name),
                    "plan": text_schema(Text),
                },
            },
        })),
        "AppendEvent" => Some(json!({
            "at": given_time_schema(),
            "backdated_reason": backdated_reason_schema(),
            "payload": {
                "type": "object",
                "description": format!(
                    "names (mediator, approver) at most {} characters, one line; ids (to_node, \
                     target_node, directive, chosen, mediation, earlier) at most {}, one line; \
                     units (to_unit) at most {}, one line; reason, text, note, requirement, \
                     required_result and agreement at most {}, line breaks allowed; \
                     amend_header values as in RegisterCase. No control or text-direction \
                     characters.",
                    Name.max_chars(),
                    Identifier.max_chars(),
                    Line.max_chars(),
                    Text.max_chars()
                ),
            },
        })),
        _ => None,
    }
}

/// The OpenAPI 3.1 document of `routes`.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut paths = Map::new();
    let mut schema_names = vec![ERROR_SCHEMA];
    for route in routes {
        let path_item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(path_item) = path_item.as_object_mut() {
            path_item.insert(
                route.method.openapi_name().to_owned(),
                operation_object(route),
            );
        }
        schema_names.extend(route.request.map(BodySpec::schema_name));
        schema_names.push(route.response.schema_name());
    }
    schema_names.sort_unstable();
    schema_names.dedup();
    let schemas: Map<String, Value> = schema_names
        .into_iter()
        .map(|name| {
            let schema = if name == ERROR_SCHEMA {
                json!({
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                    "description": schema_description(name),
                })
            } else {
                let module = match name {
                    "PeerView" => "fengqiao::federation",
                    "AccountView" => "fengqiao_accounts",
                    "Token" => "fengqiao_accounts::secret",
                    "SignIn"
                    | "SessionView"
                    | "NewAccount"
                    | "AccountWithPassword"
                    | "PasswordReset"
                    | "RolesChange"
                    | "NewToken"
                    | "TokenCreated" => "fengqiao_accounts::wire",
                    "AuditLog" | "AuditReport" | "QuarantineListing" => {
                        "fengqiao_case::model::audit"
                    }
                    _ => "fengqiao_case::model",
                };
                let mut schema = json!({
                    "type": "object",
                    "description": format!("{} ({module}::{name})", schema_description(name)),
                });
                if let (Some(properties), Some(object)) =
                    (request_bounds(name), schema.as_object_mut())
                {
                    object.insert("properties".to_owned(), properties);
                }
                schema
            };
            (name.to_owned(), schema)
        })
        .collect();
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
