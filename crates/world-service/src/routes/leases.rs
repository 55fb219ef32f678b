//! Taking hellos out of an inbox: lease them, then acknowledge the lease once they reached their
//! reader (see [`hello_common::wire`]).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use hello_common::{
    Name, Problem,
    token::TokenHash,
    wire::{
        Acknowledged, Acknowledgements, Batch, BatchedConfirmation, BatchedLease, ConfirmOutcome,
        DEFAULT_PAGE, LEASE_MS, Lease, LeaseOutcome, MAX_ACKNOWLEDGEMENTS,
        MAX_CONFIRMATIONS_PER_BATCH, MAX_LEASE_ID_LENGTH, MAX_LEASES_PER_BATCH, MAX_PAGE, Outcomes,
    },
};
use serde::Deserialize;

use super::{
    batches::each_as_if_alone,
    ownership::{check_reader, presented_token, token_hash},
};
use crate::{
    startup::AppState,
    store::{Confirmation, LeaseRequest},
};

#[derive(Debug, Deserialize)]
pub struct LeaseQuery {
    limit: Option<u32>,
    lease_ms: Option<u64>,
}

/// `POST /v1/inboxes/{name}/leases`: leases the oldest waiting hellos to the caller (the
/// owner's token required for a claimed name).
pub async fn lease(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    query: web::Query<LeaseQuery>,
) -> Result<HttpResponse, Problem> {
    let presented = presented_token(&request)?;
    let LeaseQuery { limit, lease_ms } = query.into_inner();
    let lease = take(&state, &name, limit, lease_ms, presented).await?;
    Ok(HttpResponse::Ok().json(lease))
}

/// `POST /v1/leases`: leases for several reads in one request, each judged and answered as if
/// it had come alone to `POST /v1/inboxes/{name}/leases`: 200 with one outcome per lease, in
/// their order.
pub async fn lease_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedLease>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = each_as_if_alone(
        body.into_inner().calls,
        MAX_LEASES_PER_BATCH,
        "leases",
        200,
        |lease| &lease.request_id,
        |lease| {
            let state = &state;
            async move {
                let presented = lease.token_sha256.as_deref().map(token_hash).transpose()?;
                let (limit, lease_ms) = (Some(lease.limit), lease.lease_ms);
                take(state, &lease.name, limit, lease_ms, presented).await
            }
        },
    )
    .await?
    .into_iter()
    .map(LeaseOutcome::from)
    .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One lease, alone or in a batch: its input checked, its reader checked, then taken.
async fn take(
    state: &AppState,
    name: &str,
    limit: Option<u32>,
    lease_ms: Option<u64>,
    presented: Option<TokenHash>,
) -> Result<Lease, Problem> {
    let name = Name::parse(name).map_err(|error| Problem::invalid_name("name", &error))?;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_limit(&limit.to_string()));
    }
    let lease_ms = lease_ms.unwrap_or(state.lease_ms);
    let _timer = state.time_store("lease");
    let covering_claim =
        check_reader(state.store.as_ref(), &name, presented, state.require_claim).await?;
    let lease = state
        .store
        .lease(
            &name,
            LeaseRequest {
                limit,
                lease: Duration::from_millis(lease_ms.clamp(*LEASE_MS.start(), *LEASE_MS.end())),
                covering_claim,
            },
        )
        .await?;
    state.store_metrics.redelivered.inc_by(lease.redelivered);
    Ok(lease)
}

/// `POST /v1/leases/acknowledge`: the caller delivered these leases' hellos; delete them.
pub async fn acknowledge(
    state: web::Data<AppState>,
    body: web::Json<Acknowledgements>,
) -> Result<HttpResponse, Problem> {
    let leases = body.into_inner().leases;
    if !(1..=MAX_ACKNOWLEDGEMENTS).contains(&leases.len()) {
        return Err(Problem::invalid_acknowledgements(format!(
            "name 1 to {MAX_ACKNOWLEDGEMENTS} leases per request; there were {}",
            leases.len()
        )));
    }
    if let Some(bad) = leases
        .iter()
        .find(|id| id.is_empty() || id.len() > MAX_LEASE_ID_LENGTH)
    {
        return Err(Problem::invalid_acknowledgements(format!(
            "a lease id has 1 to {MAX_LEASE_ID_LENGTH} characters; one had {}",
            bad.len()
        )));
    }
    let _timer = state.time_store("acknowledge");
    let deleted = state.store.acknowledge(&leases).await?;
    Ok(HttpResponse::Ok().json(Acknowledged { deleted }))
}

/// `DELETE /v1/inboxes/{name}/leases/{lease}`: a reliable read confirms its lease. 204 when
/// confirmed (now or before); 410 when the lease ran out first; 404 when there is no such lease
/// for this inbox.
pub async fn confirm(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (name, lease_id) = path.into_inner();
    let presented = presented_token(&request)?;
    confirm_one(&state, &name, &lease_id, presented).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v1/confirmations`: several confirmations in one request, each judged and answered as
/// if it had come alone to `DELETE /v1/inboxes/{name}/leases/{lease}`: 200 with one outcome per
/// confirmation, in their order.
pub async fn confirm_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedConfirmation>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = each_as_if_alone(
        body.into_inner().calls,
        MAX_CONFIRMATIONS_PER_BATCH,
        "confirmations",
        204,
        |confirmation| &confirmation.request_id,
        |confirmation| {
            let state = &state;
            async move {
                let presented = confirmation
                    .token_sha256
                    .as_deref()
                    .map(token_hash)
                    .transpose()?;
                let (name, lease) = (&confirmation.name, &confirmation.lease);
                confirm_one(state, name, lease, presented).await
            }
        },
    )
    .await?
    .into_iter()
    .map(ConfirmOutcome::from)
    .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One confirmation, alone or in a batch: `Ok` once the lease's hellos are gone for good.
async fn confirm_one(
    state: &AppState,
    name: &str,
    lease_id: &str,
    presented: Option<TokenHash>,
) -> Result<(), Problem> {
    let name = Name::parse(name).map_err(|error| Problem::invalid_name("name", &error))?;
    let _timer = state.time_store("confirm");
    check_reader(state.store.as_ref(), &name, presented, state.require_claim).await?;
    // A lease id no lease can have is simply unknown: no need to ask the store.
    let confirmation = if lease_id.is_empty() || lease_id.len() > MAX_LEASE_ID_LENGTH {
        Confirmation::Unknown
    } else {
        state.store.confirm(&name, lease_id).await?
    };
    let (outcome, answer) = match confirmation {
        Confirmation::Confirmed => ("confirmed", Ok(())),
        Confirmation::Expired => ("expired", Err(Problem::lease_expired())),
        Confirmation::Unknown => ("unknown", Err(Problem::receipt_not_found())),
    };
    state
        .store_metrics
        .confirmations
        .with_label_values(&[outcome])
        .inc();
    answer
}
