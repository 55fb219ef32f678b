//! The lease of a read with `wait`: taken at once when there is something to take; otherwise the
//! reader waits ([`crate::waiting`]) and leases again at each wake, its reader checked again by
//! world each time (a token rotated, or a name released, ends the wait with 401), until it takes
//! something or its time is up. A read arriving while the process stops, or waiting when it
//! begins to, is answered at once with what it found: nothing, and nothing leased; a read whose
//! client left ends as well.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponseBuilder, http::header};
use hello_common::{
    Name, Problem,
    observability::{RequestId, Waited},
    timestamp::Millis,
    wire::MAX_WAIT_SECS,
};

use crate::{
    connection,
    rate_limit::client_address,
    startup::AppState,
    world_client::{Call, Caller, LeaseFor, RawLease},
};

/// What a read took, and whether it waited for it.
#[derive(Debug)]
pub(super) struct Taken {
    pub lease: RawLease,
    /// The read waited (its time is the wait's, not the service's: see [`Waited`]).
    pub waited: bool,
}

impl Taken {
    /// Marks the answer of a read that waited, for the metrics, and tells a client whose wait was
    /// ended by this process stopping to come back in a second (`Retry-After: 1`): without it, a
    /// client reading in a loop would be answered at once, again and again, for the whole drain.
    /// The connection to nginx is closed too; nginx keeps the client's own connection open until
    /// it stops itself, so a client may be answered so a few times before it reaches another pod.
    pub(super) fn mark(&self, state: &AppState, response: &mut HttpResponseBuilder) {
        if self.waited {
            response.extensions_mut().insert(Waited);
            if state.lifecycle.is_draining() {
                response.force_close();
                response.insert_header((header::RETRY_AFTER, "1"));
            }
        }
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
    read: LeaseFor,
    reader: &Caller,
    request_id: &RequestId,
    wait: Duration,
) -> Result<Taken, Problem> {
    let take = || async {
        state
            .world
            .lease(name, limit, read, reader, request_id)
            .await
            .map_err(|error| state.charge_failures(request, error.into_problem(Call::Lease)))
    };
    // The wait counts from the request's start: its first lease and the last one after a wake
    // each take up to HELLO_WORLD_TIMEOUT_MS, and the whole must stay within nginx's 30 s.
    let deadline = tokio::time::Instant::now() + wait;
    let found = take().await?;
    let draining = state.lifecycle.is_draining();
    if found.count > 0 || wait.is_zero() || draining {
        return Ok(Taken {
            lease: found,
            waited: !wait.is_zero() && draining,
        });
    }
    let waiter = state
        .waiting
        .enter(client_address(request), name.key(), reader.token)?;
    let since = Millis::now();
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
    let nothing = |lease| {
        Ok(Taken {
            lease,
            waited: true,
        })
    };
    let mut woken = Box::pin(waiter.woken());
    woken.as_mut().enable();
    loop {
        tokio::select! {
            () = woken.as_mut() => {}
            () = tokio::time::sleep_until(deadline) => return nothing(found),
            () = &mut stopping => return nothing(found),
            () = &mut client_left => return nothing(found),
        }
        // Listening for the next wake before leasing: one that comes during the lease counts.
        woken.set(waiter.woken());
        woken.as_mut().enable();
        let taken = take().await?;
        if taken.count > 0 {
            if taken.remaining > 0 {
                // More than this read took: the next reader of the inbox looks.
                state.waiting.wake_one(name.key());
            }
            state.observe_wake(&taken, since);
            return Ok(Taken {
                lease: taken,
                waited: true,
            });
        }
    }
}
