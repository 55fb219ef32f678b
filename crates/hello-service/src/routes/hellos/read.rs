//! `GET /hello/{name}`: who said hello to `name` since the last read.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{
    HttpRequest, HttpResponse,
    body::{BodySize, MessageBody},
    web::{self, Bytes},
};
use hello_common::{Name, Problem, observability::RequestId, wire::MAX_PAGE};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    schema::{Inbox, PersonName, ReadQuery},
    waiting,
};
use crate::{
    auth::Credential,
    routes::openapi::TooManyReads,
    settling::{Connection, Settlements},
    startup::AppState,
    world_client::LeaseFor,
};

/// Who said hello to `name` since the last read.
#[utoipa::path(
    get,
    path = "/hello/{name}",
    tag = "hello",
    params(
        ("name" = PersonName, Path, description = "Whose inbox to read: a name, as for POST (case-insensitive)"),
        ReadQuery,
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The hellos since the last read, oldest first; they are removed from the inbox. With wait, answered when a hello could be taken or the wait ran out (an empty list); a wait ended by the pod stopping carries Retry-After: 1", body = Inbox),
        (status = 400, description = "Invalid name, limit or wait; a malformed Authorization header; a token in the query string"),
        (status = 401, description = "The name is claimed (or looks like a claimed name) and no token, or not its token, came in Authorization; or HELLO_REQUIRE_CLAIM is on and the name is not claimed; or (with wait) its token was replaced, or the name released, while the read waited. WWW-Authenticate says which"),
        TooManyReads,
        (status = 503, description = "Store unavailable, or (with wait) this pod holds as many waiting reads as it may; nothing taken; see Retry-After"),
        (status = 504, description = "Outcome unknown: hellos may have been leased to this read; they come back when the lease runs out"),
    )
)]
pub async fn read(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<ReadQuery>,
    credential: Credential,
    request_id: RequestId,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    let name = Name::parse(&name).map_err(|error| Problem::invalid_name("name", &error))?;
    let limit = page_limit(query.limit.as_deref(), state.default_limit)?;
    let wait = waiting::wait_time(query.wait.as_deref())?;
    let reader = state.reader(&request, &name, credential)?;
    let taken = waiting::lease(
        &state,
        &request,
        &name,
        limit,
        LeaseFor::Get,
        &reader,
        &request_id,
        wait,
    )
    .await?;
    let lease = &taken.lease;
    state.hellos_delivered_by_get.inc_by(lease.count as u64);
    // [`Inbox`], with world's hellos passed on as they are.
    let inbox = InboxAnswer {
        name: name.as_str(),
        hellos: &lease.hellos,
        remaining: lease.remaining,
    };
    // Serialising plain strings and numbers cannot fail; if it ever did, the lease is not
    // acknowledged and its hellos come back when it runs out.
    let body = Bytes::from(
        serde_json::to_vec(&inbox)
            .map_err(|error| Problem::internal(format!("cannot encode the answer: {error}")))?,
    );
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    taken.mark(&state, &mut response);
    Ok(match taken.lease.lease_id {
        None => response.body(body),
        Some(lease_id) => response.body(SettlesWhenWritten {
            size: body.len() as u64,
            body: Some(body),
            written: Some((
                state.settlements.clone(),
                Connection::of(&request),
                lease_id,
                request_id,
            )),
        }),
    })
}

/// What [`Inbox`] describes, written with world's hellos as they came.
#[derive(Serialize)]
struct InboxAnswer<'a> {
    name: &'a str,
    hellos: &'a RawValue,
    remaining: u64,
}

/// The `limit` of a read: 1 to [`MAX_PAGE`], `default` when not given.
pub(super) fn page_limit(raw: Option<&str>, default: u32) -> Result<u32, Problem> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| Problem::invalid_limit(raw)),
    }
}

/// A response body that hands its lease to [`Settlements`] once it has been written out in full;
/// they acknowledge it when the connection shows the answer was received.
///
/// If the client goes away first, the body is dropped unfinished, nothing is acknowledged, and
/// the hellos come back when the lease runs out: delivered at least once, never lost.
struct SettlesWhenWritten {
    body: Option<Bytes>,
    size: u64,
    written: Option<(Settlements, Connection, String, RequestId)>,
}

impl MessageBody for SettlesWhenWritten {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(body) = this.body.take() {
            return Poll::Ready(Some(Ok(body)));
        }
        if let Some((settlements, connection, lease_id, request_id)) = this.written.take() {
            settlements.answer_written(connection, lease_id, request_id);
        }
        Poll::Ready(None)
    }
}
