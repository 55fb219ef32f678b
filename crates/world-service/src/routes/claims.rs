use std::time::Duration;

use actix_web::{HttpResponse, http::StatusCode, web};
use hello_common::{Name, Problem};
use serde::Deserialize;

use crate::{startup::AppState, store::ClaimRequest};

/// The most hellos one claim may take.
pub const MAX_CLAIM_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
pub struct ClaimQuery {
    limit: Option<u32>,
    lease_ms: Option<u64>,
}

/// `POST /v1/inboxes/{name}/claims`: leases the oldest waiting hellos to the caller.
pub async fn claim(
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<ClaimQuery>,
) -> Result<HttpResponse, Problem> {
    let name = Name::parse(&name).map_err(|error| Problem::invalid_name("name", &error))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_CLAIM_LIMIT).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-limit",
            "Invalid limit",
            format!("limit must be between 1 and {MAX_CLAIM_LIMIT}; it was {limit}"),
        )
        .with_field("limit"));
    }
    let lease_ms = query.lease_ms.unwrap_or(state.claim_lease_ms);
    let _timer = state.time_store("claim");
    let claim = state
        .store
        .claim(
            &name,
            ClaimRequest {
                limit,
                lease: Duration::from_millis(lease_ms.clamp(100, 3_600_000)),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(claim))
}

/// `DELETE /v1/claims/{claim_id}`: the caller delivered the hellos; delete them.
pub async fn acknowledge(
    state: web::Data<AppState>,
    claim_id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _timer = state.time_store("acknowledge");
    let deleted = state.store.acknowledge(&claim_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": deleted })))
}
