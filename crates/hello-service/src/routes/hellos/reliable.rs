//! Reliable reads, modelled on a queue's receive and delete: `POST /hello/{name}/reads` leases
//! the oldest hellos and answers a receipt; `DELETE /hello/{name}/reads/{receipt}` confirms them,
//! and only then are they gone. A reader that dies, or loses its connection, before confirming
//! gets the same hellos again, in their order, once the lease runs out: nothing is lost end to
//! end.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use hello_common::{
    Name, Problem,
    observability::RequestId,
    wire::{LEASE_MS, MAX_LEASE_ID_LENGTH},
};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    body,
    read::page_limit,
    schema::{PersonName, ReliableRead, ReliableReadQuery},
    waiting,
};
use crate::{
    auth::Credential,
    routes::openapi::{TooManyReads, TooManyRequests},
    startup::AppState,
    world_client::{Call, LeaseFor},
};

/// Lease the oldest hellos of `name` until the reader confirms them.
#[utoipa::path(
    post,
    path = "/hello/{name}/reads",
    tag = "reliable reads",
    params(
        ("name" = PersonName, Path, description = "Whose inbox to read: a name, as for POST /hello/{name} (case-insensitive)"),
        ReliableReadQuery,
    ),
    security((), ("bearer" = [])),
    request_body(content = Option<Object>, content_type = "application/json", description = "None needed; an empty body or {} is accepted"),
    responses(
        (status = 201, description = "The hellos, leased to this read until lease_expires_at; confirm with the receipt. An empty inbox answers hellos [], receipt null (with wait: once the wait ran out; a wait ended by the pod stopping carries Retry-After: 1)", body = ReliableRead,
            headers(("Location" = String, description = "The read to confirm: /hello/{name}/reads/{receipt} (absent when nothing was taken)"))),
        (status = 400, description = "Invalid name, limit, lease_ms, wait or body; a malformed Authorization header; a token in the query string"),
        (status = 401, description = "The name is claimed (or looks like a claimed name) and no token, or not its token, came in Authorization; or HELLO_REQUIRE_CLAIM is on and the name is not claimed; or (with wait) its token was replaced, or the name released, while the read waited"),
        (status = 413, description = "Body too large"),
        TooManyReads,
        (status = 503, description = "Store unavailable, or (with wait) this pod holds as many waiting reads as it may; nothing taken; see Retry-After"),
        (status = 504, description = "Outcome unknown: hellos may have been leased to this read; they come back when the lease runs out"),
    )
)]
pub async fn take(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<ReliableReadQuery>,
    credential: Credential,
    request_id: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    let name = Name::parse(&name).map_err(|error| Problem::invalid_name("name", &error))?;
    let query = query.into_inner();
    let limit = page_limit(query.limit.as_deref(), state.default_limit)?;
    let lease_ms = query
        .lease_ms
        .as_deref()
        .map(|raw| {
            raw.trim()
                .parse::<u64>()
                .ok()
                .filter(|lease_ms| LEASE_MS.contains(lease_ms))
                .ok_or_else(|| Problem::invalid_lease_ms(raw))
        })
        .transpose()?;
    if let Some(body) = body::read(&request, payload, state.max_body_bytes).await? {
        body::empty_object(&body)?;
    }
    let wait = waiting::wait_time(query.wait.as_deref())?;
    let reader = state.reader(&request, &name, credential)?;
    let taken = waiting::lease(
        &state,
        &request,
        &name,
        limit,
        LeaseFor::ReliableRead { lease_ms },
        &reader,
        &request_id,
        wait,
    )
    .await?;
    let lease = &taken.lease;
    state.hellos_delivered_reliably.inc_by(lease.count as u64);
    let mut response = HttpResponse::Created();
    taken.mark(&state, &mut response);
    if let Some(receipt) = &lease.lease_id {
        response.insert_header((
            header::LOCATION,
            format!("{}/{receipt}", request.path().trim_end_matches('/')),
        ));
    }
    Ok(response.json(ReliableReadAnswer {
        receipt: lease.lease_id.as_deref(),
        name: name.as_str(),
        hellos: &lease.hellos,
        remaining: lease.remaining,
        lease_expires_at: lease.expires_at.as_deref(),
    }))
}

/// What [`ReliableRead`] describes, written with world's hellos as they came.
#[derive(Serialize)]
struct ReliableReadAnswer<'a> {
    receipt: Option<&'a str>,
    name: &'a str,
    hellos: &'a RawValue,
    remaining: u64,
    lease_expires_at: Option<&'a str>,
}

/// Confirm a reliable read: its hellos are gone for good.
#[utoipa::path(
    delete,
    path = "/hello/{name}/reads/{receipt}",
    tag = "reliable reads",
    params(
        ("name" = PersonName, Path, description = "The name the read was for"),
        ("receipt" = String, Path, description = "The receipt the read answered with"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Confirmed: the read's hellos are gone for good. Confirming again answers 204 again"),
        (status = 400, description = "Invalid name; a malformed Authorization header; a token in the query string"),
        (status = 401, description = "The name is claimed and no token, or not its token, came in Authorization"),
        (status = 404, description = "No read with this receipt for this name: unknown, malformed, another name's, or forgotten"),
        (status = 410, description = "The lease ran out before this confirmation: the hellos were, or will be, delivered again"),
        TooManyRequests,
        (status = 503, description = "Store unavailable; nothing changed; see Retry-After"),
        (status = 504, description = "Outcome unknown: repeat the DELETE"),
    )
)]
pub async fn confirm(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    credential: Credential,
    request_id: RequestId,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    let (name, receipt) = path.into_inner();
    let name = Name::parse(&name).map_err(|error| Problem::invalid_name("name", &error))?;
    if !is_receipt(&receipt) {
        return Err(Problem::receipt_not_found());
    }
    state
        .world
        .confirm(
            &name,
            &receipt,
            &state.reader(&request, &name, credential)?,
            &request_id,
        )
        .await
        .map_err(|error| state.charge_failures(&request, error.into_problem(Call::Confirm)))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Receipts are URL-safe ids; anything else cannot be one of ours.
fn is_receipt(receipt: &str) -> bool {
    (1..=MAX_LEASE_ID_LENGTH).contains(&receipt.len())
        && receipt
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}
