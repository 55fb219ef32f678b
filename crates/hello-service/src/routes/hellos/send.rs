//! `POST /hello/{name}`: say hello.

use actix_web::{HttpRequest, HttpResponse, web};
use hello_common::{IdempotencyKey, Name, Problem, observability::RequestId, wire::StoredHello};

use super::{
    body,
    schema::{HelloBody, IdempotencyKeyHeader, PersonName, SendQuery},
};
use crate::{
    auth::Credential, routes::openapi::TooManyRequests, startup::AppState, world_client::Call,
};

/// Say hello to `name`.
#[utoipa::path(
    post,
    path = "/hello/{name}",
    tag = "hello",
    params(
        ("name" = PersonName, Path, description = "Who the hello is for: 1-64 characters (after NFC): letters and digits of one script (Han may mix with Hiragana, Katakana, Bopomofo, Hangul and Latin), combining marks, '.', '_', '-'; starts with a letter or digit; case-insensitive"),
        SendQuery,
        ("Idempotency-Key" = Option<IdempotencyKeyHeader>, Header, description = "1-128 visible ASCII characters; repeating a POST with the same key stores nothing new and returns the first answer"),
    ),
    request_body(content = Option<HelloBody>, content_type = "application/json", description = "Optional when `from` is in the query, or when the token of a claimed name comes in Authorization (the sender is then that name)"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Stored durably; `verified` when sent with the token of the claimed sender", body = StoredHello),
        (status = 400, description = "Invalid name, body, or header; a malformed Authorization header; a token in the query string"),
        (status = 401, description = "The token in Authorization is not the token of any claimed name"),
        (status = 403, description = "Sending as a claimed name (or a look-alike of one) without its token, or with another name's token"),
        (status = 409, description = "The recipient's inbox is full"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Body is not application/json"),
        (status = 422, description = "Idempotency-Key already used for a different hello"),
        TooManyRequests,
        (status = 503, description = "Store unavailable or full; nothing stored; see Retry-After"),
        (status = 504, description = "Outcome unknown: the hello may have been stored; retry with the same Idempotency-Key"),
    )
)]
pub async fn send(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<SendQuery>,
    credential: Credential,
    request_id: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    let to = Name::parse(&name).map_err(|error| Problem::invalid_name("to", &error))?;
    let body = body::read(&request, payload, state.max_body_bytes).await?;
    let body_from = match &body {
        Some(body) => body::sender(&request, body)?,
        None => None,
    };
    let from = match (body_from, query.into_inner().from) {
        (Some(body), Some(query)) if body != query => {
            return Err(Problem::conflicting_sender(&body, &query));
        }
        (Some(from), _) | (None, Some(from)) => Some(from),
        // With a token the sender is the token's name.
        (None, None) if credential.0.is_some() => None,
        (None, None) => return Err(Problem::missing_sender()),
    };
    let from = from
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = idempotency_key(&request)?;

    let caller = state.caller(credential);
    let stored = state
        .world
        .send(
            &to,
            from.as_ref(),
            idempotency_key.as_ref(),
            &caller,
            &request_id,
        )
        .await
        .map_err(|error| state.charge_failures(&request, error.into_problem(Call::Send)))?;
    state.hellos_sent.inc();
    Ok(HttpResponse::Created().json(stored))
}

/// The `Idempotency-Key` header, if sent.
fn idempotency_key(request: &HttpRequest) -> Result<Option<IdempotencyKey>, Problem> {
    request
        .headers()
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| {
                    Problem::invalid_idempotency_key(
                        "an Idempotency-Key may only contain visible ASCII characters",
                    )
                })
                .and_then(|raw| {
                    IdempotencyKey::parse(raw).map_err(Problem::invalid_idempotency_key)
                })
        })
        .transpose()
}
