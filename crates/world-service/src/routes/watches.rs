//! `PUT /v1/watches/{session}` and `GET /v1/watches/{session}/wakes`: what hello-service's
//! waiting readers wait on (the protocol: [`hello_common::wire::watches`]; the state:
//! [`crate::watches`]).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use hello_common::{
    Problem,
    lifecycle::Lifecycle,
    wire::{MAX_SESSION_LENGTH, MAX_WAKES_WAIT_MS, MAX_WATCH_CHANGES, WatchChange},
};
use serde::Deserialize;

use crate::{startup::AppState, watches::WatchError};

/// The `Retry-After` of a wakes call while this process stops.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<WatchError> for Problem {
    fn from(error: WatchError) -> Self {
        match error {
            WatchError::UnknownSession => Problem::unknown_watch(error.to_string()),
            WatchError::Invalid(detail) => Problem::invalid_watch(detail),
        }
    }
}

/// A session id: 1 to [`MAX_SESSION_LENGTH`] letters, digits or '-'.
fn session(raw: &str) -> Result<&str, Problem> {
    let valid = (1..=MAX_SESSION_LENGTH).contains(&raw.len())
        && raw
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if valid {
        Ok(raw)
    } else {
        Err(Problem::invalid_path(format!(
            "a watch session is 1 to {MAX_SESSION_LENGTH} letters, digits or '-'"
        )))
    }
}

/// `PUT /v1/watches/{session}`: 204 once applied (additions past `WORLD_WATCH_CAP` dropped); 404
/// an unknown session (without `reset`); 400 an entry world cannot take.
pub async fn change(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<WatchChange>,
) -> Result<HttpResponse, Problem> {
    let session = session(&path)?;
    let change = body.into_inner();
    if change.add.len() > MAX_WATCH_CHANGES || change.remove.len() > MAX_WATCH_CHANGES {
        return Err(Problem::invalid_watch(format!(
            "add and remove at most {MAX_WATCH_CHANGES} inboxes each per change"
        )));
    }
    state.watches.change(session, change)?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
pub struct WakesQuery {
    wait_ms: Option<u64>,
}

/// `GET /v1/watches/{session}/wakes?wait_ms=N`: the inboxes woken since the last answer, as
/// soon as there are any; none after `wait_ms`, or once this process begins to stop (a call held
/// then is answered at once; one that arrives while it stops is 503 with `Retry-After`, so that
/// hello does not ask again and again through the drain).
pub async fn wakes(
    state: web::Data<AppState>,
    lifecycle: web::Data<Lifecycle>,
    path: web::Path<String>,
    query: web::Query<WakesQuery>,
) -> Result<HttpResponse, Problem> {
    let session = session(&path)?;
    if lifecycle.is_draining() {
        return Err(Problem::unavailable(
            "world-service is stopping: ask for wakes again later",
            RETRY_AFTER,
        ));
    }
    let wait = match query.wait_ms {
        None => 0,
        Some(wait) if wait <= MAX_WAKES_WAIT_MS => wait,
        Some(wait) => {
            return Err(Problem::invalid_query(format!(
                "wait_ms must be at most {MAX_WAKES_WAIT_MS}; it was {wait}"
            )));
        }
    };
    let wakes = state
        .watches
        .wakes(session, Duration::from_millis(wait), lifecycle.draining())
        .await?;
    Ok(HttpResponse::Ok().json(wakes))
}
