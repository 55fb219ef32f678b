//! What every batch route (`POST /v1/hellos`, `/v1/leases`, `/v1/confirmations`) does with its
//! calls: each is run as if it had come alone to its own route, all of them at once (so the
//! embedded store's writer takes their writes in one commit), with the public request's id on
//! what it logs and a log line of its own, as the access log gives a call that comes alone.

use std::{future::Future, time::Instant};

use futures::future::join_all;
use hello_common::Problem;
use tracing::Instrument;

/// Runs `run` on each of `calls` (1 to `limit` of them, else 400), all at once; their outcomes
/// in their order. `what` names the calls in the refusal and the logs; `done` is the status a
/// call answered alone would have had on success.
pub async fn each_as_if_alone<T, R, F, Fut>(
    calls: Vec<T>,
    limit: usize,
    what: &'static str,
    done: u16,
    request_id: fn(&T) -> &str,
    run: F,
) -> Result<Vec<Result<R, Problem>>, Problem>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, Problem>>,
{
    if calls.is_empty() || calls.len() > limit {
        return Err(Problem::malformed_body(format!(
            "a batch carries 1 to {limit} {what}, not {}",
            calls.len()
        )));
    }
    Ok(join_all(calls.into_iter().map(|call| {
        let span = tracing::info_span!("batched", what, request_id = %request_id(&call));
        let outcome = run(call);
        async move {
            let started = Instant::now();
            let outcome = outcome.await;
            let status = outcome
                .as_ref()
                .map_or_else(|problem| problem.status, |_| done);
            tracing::info!(
                status,
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "answered"
            );
            outcome
        }
        .instrument(span)
    }))
    .await)
}
