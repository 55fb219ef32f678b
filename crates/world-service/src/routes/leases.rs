//! Taking hellos out of an inbox: lease them, then acknowledge the lease once they reached their
//! reader, or, for a reliable read, once its reader confirms (see [`hello_common::wire`]).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use hello_common::{
    Name, Problem,
    wire::{
        Acknowledged, Acknowledgements, Batch, BatchedConfirmation, BatchedLease, ConfirmOutcome,
        LEASE_MS, Lease, LeaseOutcome, MAX_ACKNOWLEDGEMENTS, MAX_LEASE_ID_LENGTH, MAX_PAGE,
        Outcomes,
    },
};

use crate::{
    batched::each_on_its_own,
    ownership::{check_reader, token_hash},
    startup::AppState,
    store::{Confirmation, LeaseRequest},
};

/// `POST /v1/leases`: leases for reads, each judged and answered on its own (the owner's token
/// is needed for a claimed name): 200 with one outcome per lease, in their order.
pub async fn lease_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedLease>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = each_on_its_own(body.into_inner().calls, 200, |lease| take(&state, lease))
        .await?
        .into_iter()
        .map(LeaseOutcome::from)
        .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One lease: its input checked, its reader checked, then taken.
async fn take(state: &AppState, lease: BatchedLease) -> Result<Lease, Problem> {
    let presented = lease.token_sha256.as_deref().map(token_hash).transpose()?;
    let name = Name::parse(&lease.name).map_err(|error| Problem::invalid_name("name", &error))?;
    let limit = lease.limit;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_limit(&limit.to_string()));
    }
    let lease_ms = lease.lease_ms.unwrap_or(state.lease_ms);
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

/// `POST /v1/confirmations`: reliable reads confirm their leases, each judged and answered on
/// its own: 200 with one outcome per confirmation, in their order. A confirmation's outcome is
/// confirmed (now or before), 410 when the lease ran out first, or 404 when there is no such
/// lease for this inbox.
pub async fn confirm_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedConfirmation>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = each_on_its_own(body.into_inner().calls, 204, |confirmation| {
        confirm(&state, confirmation)
    })
    .await?
    .into_iter()
    .map(ConfirmOutcome::from)
    .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One confirmation: `Ok` once the lease's hellos are gone for good.
async fn confirm(state: &AppState, confirmation: BatchedConfirmation) -> Result<(), Problem> {
    let presented = confirmation
        .token_sha256
        .as_deref()
        .map(token_hash)
        .transpose()?;
    let (name, lease_id) = (&confirmation.name, &confirmation.lease);
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
