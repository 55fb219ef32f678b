//! `POST /v1/hellos`: storing hellos.

use actix_web::{HttpResponse, web};
use hello_common::{
    IdempotencyKey, Name, Problem,
    wire::{Batch, BatchedSend, Outcomes, SendOutcome, StoredHello},
};

use crate::{
    batched::each_on_its_own,
    ownership::{check_sender, token_hash},
    startup::AppState,
    store::NewHello,
};

/// `POST /v1/hellos`: sends, each judged and answered on its own: 200 with one outcome per send,
/// in their order, once every stored one is durable. Sending as a claimed name (or a look-alike)
/// needs its token; with one, `from` may be left out. They are all handed to the store at once,
/// so the embedded store commits them together.
pub async fn send_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedSend>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = each_on_its_own(body.into_inner().calls, 201, |send| store(&state, send))
        .await?
        .into_iter()
        .map(SendOutcome::from)
        .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One send: its input parsed, its sender checked, then stored durably.
async fn store(state: &AppState, send: BatchedSend) -> Result<StoredHello, Problem> {
    let presented = send.token_sha256.as_deref().map(token_hash).transpose()?;
    let to = Name::parse(&send.to).map_err(|error| Problem::invalid_name("to", &error))?;
    let from = send
        .from
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = send
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(Problem::invalid_idempotency_key)?;
    let _timer = state.time_store("send");
    let (from, verified) = check_sender(state.store.as_ref(), from, presented).await?;
    let inbox = to.key().to_owned();
    let stored = state
        .store
        .send(NewHello {
            to,
            from,
            idempotency_key,
            verified,
        })
        .await?;
    // Durable: its readers waiting on this pod may take it now.
    state.watches.wake_inbox(&inbox);
    Ok(stored)
}
