//! The lease of a read with `wait`: taken at once when there is something to take; otherwise the
//! reader waits ([`crate::waiting`]) and leases again at each wake, its reader checked again by
//! world each time (a token rotated, or a name released, ends the wait with 401), until it takes
//! something or its time is up. A read arriving while the process stops, or waiting when it
//! begins to, is answered at once with what it found: nothing, and nothing leased; a read whose
//! client left ends as well.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponseBuilder, http::header};
use hello_common::{Name, Problem, observability::RequestId, wire::MAX_WAIT_SECS};

use crate::{
    connection,
    rate_limit::client_address,
    startup::AppState,
    world_client::{Call, Caller, RawLease},
};

/// A waiting read answered because this process is stopping says so to its client: come back
/// in a second, on a new connection (which the Service sends to a pod that is not stopping).
/// Without it a client reading in a loop would be answered at once, again and again, for the
/// whole drain.
pub(super) fn tell_if_stopping(
    state: &AppState,
    wait: Duration,
    response: &mut HttpResponseBuilder,
) {
    if !wait.is_zero() && state.lifecycle.is_draining() {
        response.force_close();
        response.insert_header((header::RETRY_AFTER, "1"));
    }
}

/// The `wait` of a read: 0 to [`MAX_WAIT_SECS`] seconds, 0 when not given.
pub(super) fn wait_time(raw: Option<&str>) -> Result<Duration, Problem> {
    match raw {
        None => Ok(Duration::ZERO),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_WAIT_SECS)
            .map(Duration::from_secs)
            .ok_or_else(|| Problem::invalid_wait(raw)),
    }
}

/// What a read leases of `name`, waiting up to `wait` for something to take.
#[allow(clippy::too_many_arguments)] // each is one part of the read, as the routes parse them
pub(super) async fn lease(
    state: &AppState,
    request: &HttpRequest,
    name: &Name,
    limit: u32,
    lease_ms: Option<u64>,
    reader: &Caller,
    request_id: &RequestId,
    wait: Duration,
) -> Result<RawLease, Problem> {
    let take = || async {
        state
            .world
            .lease(name, limit, lease_ms, reader, request_id)
            .await
            .map_err(|error| state.charge_failures(request, error.into_problem(Call::Lease)))
    };
    let found = take().await?;
    if found.count > 0 || wait.is_zero() || state.lifecycle.is_draining() {
        return Ok(found);
    }
    let waiter = state
        .waiting
        .enter(client_address(request), name.key(), reader.token)?;
    let deadline = tokio::time::Instant::now() + wait;
    let stopping = state.lifecycle.draining();
    tokio::pin!(stopping);
    // A client that leaves ends its wait at once: its slot is free for others.
    let connection = connection::state_of(request);
    let client_left = async {
        match &connection {
            Some(connection) => connection.peer_gone().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(client_left);
    let mut woken = Box::pin(waiter.woken());
    woken.as_mut().enable();
    loop {
        tokio::select! {
            () = woken.as_mut() => {}
            () = tokio::time::sleep_until(deadline) => return Ok(found),
            () = &mut stopping => return Ok(found),
            () = &mut client_left => return Ok(found),
        }
        // Listening for the next wake before leasing: one that comes during the lease counts.
        woken.set(waiter.woken());
        woken.as_mut().enable();
        let taken = take().await?;
        if taken.count > 0 {
            state.observe_wake(&taken);
            return Ok(taken);
        }
    }
}
