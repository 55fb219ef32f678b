use actix_web::{HttpRequest, HttpResponse, web};
use hello_common::{
    IdempotencyKey, Name, Problem,
    token::TokenHash,
    wire::{
        Batch, BatchedSend, MAX_SENDS_PER_BATCH, Outcomes, SendHello, SendOutcome, StoredHello,
    },
};

use super::{
    batches::each_as_if_alone,
    ownership::{check_sender, presented_token, token_hash},
};
use crate::{startup::AppState, store::NewHello};

/// `POST /v1/inboxes/{to}/hellos`: answers 201 only once the hello is durable. Sending as a
/// claimed name (or a look-alike) needs its token; with one, `from` may be left out.
pub async fn send(
    state: web::Data<AppState>,
    request: HttpRequest,
    to: web::Path<String>,
    body: web::Json<SendHello>,
) -> Result<HttpResponse, Problem> {
    let SendHello {
        from,
        idempotency_key,
    } = body.into_inner();
    let presented = presented_token(&request)?;
    let stored = store(
        &state,
        &to,
        from.as_deref(),
        idempotency_key.as_deref(),
        presented,
    )
    .await?;
    Ok(HttpResponse::Created().json(stored))
}

/// `POST /v1/hellos`: several sends in one request, each judged and answered as if it had come
/// alone to `POST /v1/inboxes/{to}/hellos`: 200 with one outcome per send, in their order, once
/// every stored one is durable. They are all handed to the store at once, so the embedded store
/// commits them together.
pub async fn send_batch(
    state: web::Data<AppState>,
    body: web::Json<Batch<BatchedSend>>,
) -> Result<HttpResponse, Problem> {
    let outcomes = each_as_if_alone(
        body.into_inner().calls,
        MAX_SENDS_PER_BATCH,
        "sends",
        201,
        |send| &send.request_id,
        |send| {
            let state = &state;
            async move {
                let presented = send.token_sha256.as_deref().map(token_hash).transpose()?;
                let (from, key) = (send.from.as_deref(), send.idempotency_key.as_deref());
                store(state, &send.to, from, key, presented).await
            }
        },
    )
    .await?
    .into_iter()
    .map(SendOutcome::from)
    .collect();
    Ok(HttpResponse::Ok().json(Outcomes { outcomes }))
}

/// One send, alone or in a batch: its input parsed, its sender checked, then stored durably.
async fn store(
    state: &AppState,
    to: &str,
    from: Option<&str>,
    idempotency_key: Option<&str>,
    presented: Option<TokenHash>,
) -> Result<StoredHello, Problem> {
    let to = Name::parse(to).map_err(|error| Problem::invalid_name("to", &error))?;
    let from = from
        .map(Name::parse)
        .transpose()
        .map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = idempotency_key
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(Problem::invalid_idempotency_key)?;
    let _timer = state.time_store("send");
    let (from, verified) = check_sender(state.store.as_ref(), from, presented).await?;
    Ok(state
        .store
        .send(NewHello {
            to,
            from,
            idempotency_key,
            verified,
        })
        .await?)
}
