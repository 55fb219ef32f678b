//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers and types.

use actix_web::HttpResponse;
use hello_common::{
    Problem,
    wire::{DeliveredHello, StoredHello},
};
use utoipa::OpenApi;

use super::{health, hellos, info};

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
    paths(hellos::send, hellos::read, health::healthz, health::readyz, info::info, info::metrics),
    components(schemas(hellos::HelloBody, hellos::Inbox, info::Info, StoredHello, DeliveredHello, Problem)),
    tags(
        (name = "hello", description = "Say hello and read your inbox"),
        (name = "operations", description = "Probes, pod information and metrics"),
    )
)]
pub struct ApiDoc;

/// Serves the document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(ApiDoc::openapi().to_json().unwrap_or_default())
}
