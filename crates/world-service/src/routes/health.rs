//! `/readyz` (`/healthz` is the same in both services: [`hello_common::startup::healthz`]).

use actix_web::{HttpResponse, web};
use hello_common::{Problem, lifecycle::Lifecycle};

use crate::{error::RETRY_AFTER_UNAVAILABLE, startup::AppState};

/// Ready: not shutting down, and the store answers.
pub async fn readyz(
    state: web::Data<AppState>,
    lifecycle: web::Data<Lifecycle>,
) -> Result<HttpResponse, Problem> {
    lifecycle.refuse_if_draining("world-service", RETRY_AFTER_UNAVAILABLE)?;
    let _timer = state.time_store("ping");
    state.store.ping().await.map_err(Problem::from)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": "ready",
        "store": state.store.backend(),
    })))
}
