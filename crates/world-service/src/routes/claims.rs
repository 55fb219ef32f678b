use std::time::Duration;

use actix_web::{HttpResponse, http::StatusCode, web};
use hello_common::{
    Name, Problem,
    wire::{Acknowledged, Acknowledgements, MAX_ACKNOWLEDGEMENTS},
};
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

/// The largest body of `POST /v1/acknowledgements`: [`MAX_ACKNOWLEDGEMENTS`] claim ids of up to
/// [`MAX_CLAIM_ID_LENGTH`] characters, quoted and separated. Independent of
/// `WORLD_MAX_BODY_BYTES`, which bounds hellos.
pub const ACKNOWLEDGEMENTS_BODY_LIMIT: usize =
    16 + MAX_ACKNOWLEDGEMENTS * (MAX_CLAIM_ID_LENGTH + 3);
/// Claim ids are UUIDs (36 characters); anything much longer is not one of ours.
const MAX_CLAIM_ID_LENGTH: usize = 64;

/// `POST /v1/acknowledgements`: the caller delivered these claims' hellos; delete them.
pub async fn acknowledge(
    state: web::Data<AppState>,
    body: web::Json<Acknowledgements>,
) -> Result<HttpResponse, Problem> {
    let claims = body.into_inner().claims;
    if !(1..=MAX_ACKNOWLEDGEMENTS).contains(&claims.len()) {
        return Err(invalid_acknowledgements(format!(
            "name 1 to {MAX_ACKNOWLEDGEMENTS} claims per request; there were {}",
            claims.len()
        )));
    }
    if let Some(bad) = claims
        .iter()
        .find(|id| id.is_empty() || id.len() > MAX_CLAIM_ID_LENGTH)
    {
        return Err(invalid_acknowledgements(format!(
            "a claim id has 1 to {MAX_CLAIM_ID_LENGTH} characters; one had {}",
            bad.len()
        )));
    }
    let _timer = state.time_store("acknowledge");
    let deleted = state.store.acknowledge(&claims).await?;
    Ok(HttpResponse::Ok().json(Acknowledged { deleted }))
}

fn invalid_acknowledgements(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-acknowledgements",
        "Invalid acknowledgements",
        detail,
    )
    .with_field("claims")
}
