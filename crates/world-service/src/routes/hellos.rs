use actix_web::{HttpRequest, HttpResponse, web};
use hello_common::{IdempotencyKey, Name, Problem, wire::SendHello};

use super::ownership::{check_sender, presented_token};
use crate::{startup::AppState, store::NewHello};

/// `POST /v1/inboxes/{to}/hellos`: answers 201 only once the hello is durable. Sending as a
/// claimed name (or a look-alike) needs its token; with one, `from` may be left out.
pub async fn send(
    state: web::Data<AppState>,
    request: HttpRequest,
    to: web::Path<String>,
    body: web::Json<SendHello>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let to = Name::parse(&to).map_err(|error| Problem::invalid_name("to", &error))?;
    let from = body
        .from
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = body
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(Problem::invalid_idempotency_key)?;
    let presented = presented_token(&request)?;
    let _timer = state.time_store("send");
    let (from, verified) = check_sender(state.store.as_ref(), from, presented).await?;
    let stored = state
        .store
        .send(NewHello {
            to,
            from,
            idempotency_key,
            verified,
        })
        .await?;
    Ok(HttpResponse::Created().json(stored))
}
