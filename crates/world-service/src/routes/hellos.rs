use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use futures::future::join_all;
use hello_common::{
    IdempotencyKey, Name, Problem,
    token::TokenHash,
    wire::{MAX_SENDS_PER_BATCH, SendBatch, SendBatchAnswer, SendHello, SendOutcome, StoredHello},
};
use tracing::Instrument;

use super::ownership::{check_sender, presented_token, token_hash};
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
    body: web::Json<SendBatch>,
) -> Result<HttpResponse, Problem> {
    let sends = body.into_inner().sends;
    if sends.is_empty() || sends.len() > MAX_SENDS_PER_BATCH {
        return Err(Problem::malformed_body(format!(
            "a batch carries 1 to {MAX_SENDS_PER_BATCH} sends, not {}",
            sends.len()
        )));
    }
    let outcomes = join_all(sends.into_iter().map(|send| {
        let state = &state;
        // The public request's id, on whatever this send logs; and a line of its own, as the
        // access log gives a send that comes alone, so that its id shows in world's log too.
        let span = tracing::info_span!("batched send", request_id = %send.request_id);
        async move {
            let started = Instant::now();
            let presented = send.token_sha256.as_deref().map(token_hash).transpose();
            let outcome = match presented {
                Ok(presented) => {
                    store(
                        state,
                        &send.to,
                        send.from.as_deref(),
                        send.idempotency_key.as_deref(),
                        presented,
                    )
                    .await
                }
                Err(problem) => Err(problem),
            };
            let status = outcome
                .as_ref()
                .map_or_else(|problem| problem.status, |_| 201);
            tracing::info!(
                status,
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "answered"
            );
            match outcome {
                Ok(stored) => SendOutcome::Stored(stored),
                Err(problem) => SendOutcome::Refused(problem),
            }
        }
        .instrument(span)
    }))
    .await;
    Ok(HttpResponse::Ok().json(SendBatchAnswer { outcomes }))
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
