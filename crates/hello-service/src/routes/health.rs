//! `/readyz` (`/healthz` is the same in both services: [`hello_common::startup::healthz`]).

use actix_web::{HttpResponse, web};
use hello_common::{Problem, lifecycle::Lifecycle};

use crate::{
    startup::AppState,
    world_client::{Call, RETRY_AFTER_UNREACHABLE},
};

/// Ready: not shutting down, and world-service and its store answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic"),
        (status = 503, description = "Shutting down, or world-service or its store is down"),
    ))]
pub async fn readyz(
    state: web::Data<AppState>,
    lifecycle: web::Data<Lifecycle>,
) -> Result<HttpResponse, Problem> {
    lifecycle.refuse_if_draining("hello-service", RETRY_AFTER_UNREACHABLE)?;
    state
        .world
        .ready()
        .await
        .map_err(|error| error.into_problem(Call::Look))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
