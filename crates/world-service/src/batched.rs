//! What world does with every batch (`POST /v1/hellos`, `/v1/leases`, `/v1/confirmations`): hands
//! the whole batch to the store together (MongoDB answers it with a fixed number of commands,
//! the embedded store's writer takes its writes in one commit), and gives each call a span of
//! its own that continues its public request's trace and carries its request id, with a log line
//! of its own as an access log would give it. The store's spans are under the first call's span.

use std::{future::Future, time::Instant};

use hello_common::{Problem, telemetry, wire::BatchedCall};
use tracing::Instrument;

/// Runs `run` on `calls` (1 to the kind's most, else 400), which answers one outcome per call,
/// in their order. `done` is the status the public request answers when its call succeeds.
pub async fn answer_together<T, R, F, Fut>(
    calls: Vec<T>,
    done: u16,
    run: F,
) -> Result<Vec<Result<R, Problem>>, Problem>
where
    T: BatchedCall,
    F: FnOnce(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<Result<R, Problem>>>,
{
    if calls.is_empty() || calls.len() > T::MAX_PER_BATCH {
        return Err(Problem::malformed_body(format!(
            "a batch carries 1 to {} calls of {}, not {}",
            T::MAX_PER_BATCH,
            T::KIND,
            calls.len()
        )));
    }
    let spans: Vec<tracing::Span> = calls
        .iter()
        .map(|call| {
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
            span
        })
        .collect();
    // The batch's store work is one piece of work: traced under its first call, which the
    // others' spans follow from (a span has one parent).
    for span in &spans[1..] {
        span.follows_from(&spans[0]);
    }
    let started = Instant::now();
    let outcomes = run(calls).instrument(spans[0].clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    for (span, outcome) in spans.iter().zip(&outcomes) {
        let status = outcome
            .as_ref()
            .map_or_else(|problem| problem.status, |_| done);
        span.in_scope(|| tracing::info!(status, latency_ms, "answered"));
    }
    Ok(outcomes)
}

/// The store answered fewer outcomes than it was given calls: world's bug, a 503.
pub fn missing() -> crate::store::StoreError {
    crate::store::StoreError::unavailable(anyhow::anyhow!("the store left a call unanswered"))
}
