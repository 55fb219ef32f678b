use actix_web::{HttpResponse, web};
use hello_common::{IdempotencyKey, Name, Problem, wire::SendHello};

use crate::{startup::AppState, store::NewHello};

/// `POST /v1/inboxes/{to}/hellos`: answers 201 only once the hello is durable.
pub async fn send(
    state: web::Data<AppState>,
    to: web::Path<String>,
    body: web::Json<SendHello>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let to = Name::parse(&to).map_err(|error| Problem::invalid_name("to", &error))?;
    let from = Name::parse(&body.from).map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = body
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(Problem::invalid_idempotency_key)?;
    let _timer = state.time_store("send");
    let stored = state
        .store
        .send(NewHello {
            to,
            from,
            idempotency_key,
        })
        .await?;
    Ok(HttpResponse::Created().json(stored))
}
