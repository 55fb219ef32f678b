//! Taking hellos out of an inbox: lease them, then acknowledge the lease once they reached their
//! reader, or, for a reliable read, once its reader confirms (see [`hello_common::wire`]).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use hello_common::{
    Name, Problem,
    token::TokenHash,
    wire::{
        Acknowledged, Acknowledgements, Batch, BatchedConfirmation, BatchedLease, ConfirmOutcome,
        LEASE_MS, Lease, LeaseOutcome, MAX_ACKNOWLEDGEMENTS, MAX_LEASE_ID_LENGTH, MAX_PAGE,
        Outcomes,
    },
};

use crate::{
    batched::answer_together,
    ownership::{check_reader, token_hash},
    startup::AppState,
    store::{Confirmation, LeaseRequest, claims::ClaimsWanted},
};

/// `POST /v1/leases`: leases for reads, each judged and answered on its own (the owner's token
/// is needed for a claimed name): 200 with one outcome per lease, in their order.
pub async fn lease_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedLease>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = answer_together(body.into_inner().calls, 200, |leases| take(&state, leases))
        .await?
        .into_iter()
        .map(LeaseOutcome::from)
        .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// A read (a lease, or a confirmation) with its input parsed: its inbox, the token presented.
struct Reader<T> {
    name: Name,
    presented: Option<TokenHash>,
    call: T,
}

/// The claims every reader of a batch needs, looked up once: each reader checked against them
/// answers its covering claim ([`check_reader`]), or its problem.
async fn check_readers<T>(
    state: &AppState,
    readers: Vec<Result<Reader<T>, Problem>>,
) -> Vec<Result<(Reader<T>, Option<i64>), Problem>> {
    let mut wanted = ClaimsWanted::default();
    for reader in readers.iter().flatten() {
        wanted.cover(&reader.name);
        if let Some(token) = reader.presented {
            wanted.token(token);
        }
    }
    match state.store.claims(&wanted).await {
        Ok(claims) => readers
            .into_iter()
            .map(|reader| {
                let reader = reader?;
                let covering =
                    check_reader(&claims, &reader.name, reader.presented, state.require_claim)?;
                Ok((reader, covering))
            })
            .collect(),
        Err(error) => {
            let problem = Problem::from(error);
            readers
                .into_iter()
                .map(|reader| reader.and(Err(problem.clone())))
                .collect()
        }
    }
}

/// Hands the calls that passed their checks to the store together (`store`), and puts its
/// outcomes back in the batch's order.
async fn store_checked<C, R, F, Fut>(
    checked: Vec<Result<C, Problem>>,
    store: F,
) -> Vec<Result<R, Problem>>
where
    F: FnOnce(Vec<C>) -> Fut,
    Fut: std::future::Future<Output = Vec<Result<R, crate::store::StoreError>>>,
{
    let mut outcomes: Vec<Option<Result<R, Problem>>> = Vec::new();
    let (mut calls, mut places) = (Vec::new(), Vec::new());
    for (index, call) in checked.into_iter().enumerate() {
        match call {
            Ok(call) => {
                places.push(index);
                calls.push(call);
                outcomes.push(None);
            }
            Err(problem) => outcomes.push(Some(Err(problem))),
        }
    }
    for (index, outcome) in places.into_iter().zip(store(calls).await) {
        outcomes[index] = Some(outcome.map_err(Problem::from));
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Err(Problem::from(crate::batched::missing()))))
        .collect()
}

/// The batch's leases: input checked, readers checked, then taken together.
async fn take(state: &AppState, leases: Vec<BatchedLease>) -> Vec<Result<Lease, Problem>> {
    let _timers: Vec<_> = leases.iter().map(|_| state.time_store("lease")).collect();
    let parsed = leases.into_iter().map(|lease| {
        let presented = lease.token_sha256.as_deref().map(token_hash).transpose()?;
        let name =
            Name::parse(&lease.name).map_err(|error| Problem::invalid_name("name", &error))?;
        if !(1..=MAX_PAGE).contains(&lease.limit) {
            return Err(Problem::invalid_limit(&lease.limit.to_string()));
        }
        Ok(Reader {
            name,
            presented,
            call: lease,
        })
    });
    let checked = check_readers(state, parsed.collect()).await;
    let requests = checked.into_iter().map(|checked| {
        checked.map(|(reader, covering_claim)| {
            let lease_ms = reader.call.lease_ms.unwrap_or(state.lease_ms);
            let request = LeaseRequest {
                limit: reader.call.limit,
                lease: Duration::from_millis(lease_ms.clamp(*LEASE_MS.start(), *LEASE_MS.end())),
                covering_claim,
                confirmable: reader.call.confirmable,
            };
            (reader.name, request)
        })
    });
    let leases = store_checked(requests.collect(), |leases| state.store.lease_batch(leases)).await;
    for lease in leases.iter().flatten() {
        state.store_metrics.redelivered.inc_by(lease.redelivered);
    }
    leases
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
    let outcomes = answer_together(body.into_inner().calls, 204, |confirmations| {
        confirm(&state, confirmations)
    })
    .await?
    .into_iter()
    .map(ConfirmOutcome::from)
    .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// The batch's confirmations: readers checked, then confirmed together; `Ok` once a lease's
/// hellos are gone for good.
async fn confirm(
    state: &AppState,
    confirmations: Vec<BatchedConfirmation>,
) -> Vec<Result<(), Problem>> {
    let _timers: Vec<_> = confirmations
        .iter()
        .map(|_| state.time_store("confirm"))
        .collect();
    let parsed = confirmations.into_iter().map(|confirmation| {
        let presented = confirmation
            .token_sha256
            .as_deref()
            .map(token_hash)
            .transpose()?;
        let name = Name::parse(&confirmation.name)
            .map_err(|error| Problem::invalid_name("name", &error))?;
        Ok(Reader {
            name,
            presented,
            call: confirmation.lease,
        })
    });
    let checked = check_readers(state, parsed.collect()).await;
    // A lease id no lease can have is simply unknown: no need to ask the store.
    let possible =
        |lease_id: &String| !lease_id.is_empty() && lease_id.len() <= MAX_LEASE_ID_LENGTH;
    let asked = checked
        .into_iter()
        .map(|checked| checked.map(|(reader, _)| (reader.name, reader.call)));
    let confirmed = store_checked(
        asked.collect(),
        |confirmations: Vec<(Name, String)>| async move {
            let ask: Vec<usize> = (0..confirmations.len())
                .filter(|&at| possible(&confirmations[at].1))
                .collect();
            let mut answers: Vec<Result<Confirmation, crate::store::StoreError>> = Vec::new();
            answers.resize_with(confirmations.len(), || Ok(Confirmation::Unknown));
            let asking: Vec<(Name, String)> =
                ask.iter().map(|&at| confirmations[at].clone()).collect();
            for &at in &ask {
                answers[at] = Err(crate::batched::missing());
            }
            let answered = state.store.confirm_batch(asking).await;
            for (at, answer) in ask.into_iter().zip(answered) {
                answers[at] = answer;
            }
            answers
        },
    )
    .await;
    confirmed
        .into_iter()
        .map(|confirmation| {
            let (outcome, answer) = match confirmation? {
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
        })
        .collect()
}
