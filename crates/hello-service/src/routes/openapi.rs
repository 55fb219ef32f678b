//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers and types.

use actix_web::HttpResponse;
use hello_common::{
    Problem,
    problem::PROBLEM_JSON,
    wire::{DeliveredHello, StoredHello},
};
use utoipa::OpenApi;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{health, hellos, info, names};

/// The bearer token of a claimed name (RFC 6750), in `Authorization` only.
#[derive(Debug)]
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hw_ followed by 43 URL-safe characters")
                    .description(Some(
                        "The token POST /names/{name} answered, as 'Authorization: Bearer \
                         <token>'. Never in the query string (400). Needed to read a claimed \
                         name's inbox and to send as it.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every error answer is a [`Problem`] as `application/problem+json`: said here once, so that a
/// handler's rows give only the status and what it means for that operation.
#[derive(Debug)]
struct ProblemAnswers;

impl utoipa::Modify for ProblemAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr};
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
        });
        for operation in operations {
            for (status, response) in &mut operation.responses.responses {
                let is_error = status.parse::<u16>().is_ok_and(|status| status >= 400);
                if let (true, RefOr::T(response)) = (is_error, response)
                    && response.content.is_empty()
                {
                    let problem = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build();
                    response.content.insert(PROBLEM_JSON.to_owned(), problem);
                }
            }
        }
    }
}

/// 429, for every operation a client's request budget limits.
#[derive(Debug, utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "Too many requests from this client; see Retry-After"
)]
pub struct TooManyRequests;

/// 429, for the reads that may wait (GET and reliable reads).
#[derive(Debug, utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "Too many requests from this client, or (with wait) too many of its reads waiting already (HELLO_WAIT_PER_CLIENT); see Retry-After"
)]
pub struct TooManyReads;

/// What refuses a change to a claimed name made with its token (new token, release).
#[derive(Debug, utoipa::IntoResponses)]
pub enum OwnerRefusals {
    #[response(
        status = 400,
        description = "Invalid name; a malformed Authorization header; a token in the query string"
    )]
    Invalid,
    #[response(status = 401, description = "No token, or not this name's token")]
    NotTheToken,
    #[response(status = 404, description = "The name is not claimed")]
    NotClaimed,
    #[response(
        status = 429,
        description = "Too many requests from this client; see Retry-After"
    )]
    TooMany,
    #[response(
        status = 503,
        description = "Store unavailable; nothing changed; see Retry-After"
    )]
    Unavailable,
}

/// The public API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Scalable Hello World",
        description = "Say hello to a name; ask who said hello to you since you last asked. \
            Every error is application/problem+json (RFC 9457). Every answer carries the serving \
            pod's name in the X-Pod-Name header.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(hellos::send::send, hellos::read::read, hellos::reliable::take, hellos::reliable::confirm, names::claim, names::rotate, names::release, hello_common::startup::healthz, health::readyz, info::info),
    components(schemas(hellos::schema::PersonName, hellos::schema::IdempotencyKeyHeader, hellos::schema::HelloBody, hellos::schema::Inbox, hellos::schema::ReliableRead, names::ClaimedName, info::Info, StoredHello, DeliveredHello, Problem)),
    modifiers(&BearerToken, &ProblemAnswers),
    tags(
        (name = "hello", description = "Say hello and read your inbox"),
        (name = "reliable reads", description = "Read an inbox and confirm what arrived: nothing is lost if the reader dies before it confirms"),
        (name = "names", description = "Claim a name: then only the holder of its token reads its inbox and sends as it (or as any name that looks like it)"),
        (name = "operations", description = "Probes, pod information and metrics"),
    )
)]
pub struct ApiDoc;

/// Serves the document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(document_json())
}

/// The document as JSON. utoipa describes every optional parameter and body as "X or null"; a
/// query parameter, a header or a body is absent or present, never null, so that alternative is
/// removed (clients that generate requests from the document would otherwise send "null").
pub fn document_json() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(paths) = document["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(|path| path.as_object_mut()) {
            for parameters in operation
                .values_mut()
                .filter_map(|operation| operation.get_mut("parameters"))
                .filter_map(|parameters| parameters.as_array_mut())
            {
                for schema in parameters
                    .iter_mut()
                    .filter_map(|parameter| parameter.get_mut("schema"))
                {
                    drop_null_alternative(schema);
                }
            }
            // An optional body is absent, not the JSON value null.
            for media in operation
                .values_mut()
                .filter_map(|operation| operation.pointer_mut("/requestBody/content"))
                .filter_map(|content| content.as_object_mut())
                .flat_map(|content| content.values_mut())
            {
                if let Some(schema) = media.get_mut("schema") {
                    drop_null_alternative(schema);
                }
            }
        }
    }
    document
}

fn drop_null_alternative(schema: &mut serde_json::Value) {
    let is_null = |alternative: &serde_json::Value| alternative["type"] == "null";
    if let Some(alternatives) = schema.get("oneOf").and_then(|oneof| oneof.as_array()) {
        let kept: Vec<_> = alternatives
            .iter()
            .filter(|a| !is_null(a))
            .cloned()
            .collect();
        if let [only] = kept.as_slice() {
            *schema = only.clone();
        }
    }
    if let Some(types) = schema.get_mut("type") {
        let kept: Vec<_> = types
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| *t != "null")
            .cloned()
            .collect();
        if let [only] = kept.as_slice() {
            *types = only.clone();
        }
    }
}
