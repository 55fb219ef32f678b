//! What world does with every batch (`POST /v1/hellos`, `/v1/leases`, `/v1/confirmations`): runs
//! each call on its own terms, all at once (so the embedded store's writer takes their writes in
//! one commit), each in a span of its own that continues its public request's trace and carries
//! its request id, with a log line of its own as an access log would give it.

use std::{future::Future, time::Instant};

use futures::future::join_all;
use hello_common::{Problem, telemetry, wire::BatchedCall};
use tracing::Instrument;

/// Runs `run` on each of `calls` (1 to the kind's most, else 400), all at once; their outcomes in
/// their order. `done` is the status the public request answers when its call succeeds.
pub async fn each_on_its_own<T, R, F, Fut>(
    calls: Vec<T>,
    done: u16,
    run: F,
) -> Result<Vec<Result<R, Problem>>, Problem>
where
    T: BatchedCall,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, Problem>>,
{
    if calls.is_empty() || calls.len() > T::MAX_PER_BATCH {
        return Err(Problem::malformed_body(format!(
            "a batch carries 1 to {} calls of {}, not {}",
            T::MAX_PER_BATCH,
            T::KIND,
            calls.len()
        )));
    }
    Ok(join_all(calls.into_iter().map(|call| {
        let span = tracing::info_span!(
            "batched",
            otel.name = T::SPAN_NAME,
            otel.kind = "server",
            what = T::KIND,
            request_id = %call.request_id(),
        );
        if let Some(traceparent) = call.traceparent() {
            telemetry::continue_trace(&span, traceparent);
        }
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
