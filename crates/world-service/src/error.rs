//! How world-service's failures become problem+json answers.

use std::time::Duration;

use hello_common::Problem;

use crate::store::{Operation, StoreError};

/// How long a client should wait before retrying while the store is down.
pub const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_secs(2);
/// How long a client should wait before retrying while the store is full.
pub const RETRY_AFTER_STORE_FULL: Duration = Duration::from_secs(30);

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::InboxFull { .. } => Problem::inbox_full(error.to_string()),
            StoreError::NameTaken { .. } => Problem::name_taken(error.to_string()),
            StoreError::IdempotencyKeyReused => Problem::idempotency_key_reused(error.to_string()),
            StoreError::StoreFull { .. } => {
                Problem::store_full(error.to_string(), RETRY_AFTER_STORE_FULL)
            }
            StoreError::OutcomeUnknown { operation, cause } => {
                tracing::warn!(error = format!("{cause:#}"), %operation, "store outcome unknown");
                Problem::outcome_unknown(what_is_safe(*operation), RETRY_AFTER_UNAVAILABLE)
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "store unavailable");
                Problem::unavailable(
                    "the hello store is unavailable; nothing was changed. Retry shortly",
                    RETRY_AFTER_UNAVAILABLE,
                )
            }
        }
    }
}

/// The detail of an unknown outcome: what the caller can safely do about it.
fn what_is_safe(operation: Operation) -> &'static str {
    match operation {
        Operation::Send => {
            "the hello store took this hello but did not answer whether it was stored. Send it \
             again with the same Idempotency-Key: if it was stored, the retry answers with the \
             first hello and stores nothing new (without a key, a retry may store it twice)"
        }
        Operation::Lease => {
            "the hello store did not answer whether hellos were taken for this read; any it took \
             stay hidden until the lease runs out, then come back. Read again later"
        }
        Operation::Acknowledge => {
            "the hello store did not answer whether these leases were acknowledged; any hellos \
             they still hold come back when the lease runs out. Acknowledging again is safe"
        }
        Operation::Confirm => {
            "the hello store did not answer whether this read was confirmed. Repeat the DELETE: \
             confirming again is safe"
        }
        Operation::Claim => {
            "the hello store did not answer whether the name was claimed, and its token cannot be \
             shown again. Claim it again: if the first claim went through, the name is taken \
             (409), and only an operator can release it"
        }
        Operation::Rotate => {
            "the hello store did not answer whether the token was replaced. Try it again \
             with the old token: if that answers 401, the new token took effect and was lost, \
             and only an operator can reset it"
        }
        Operation::Release => {
            "the hello store did not answer whether the name was released. Repeat the DELETE \
             with the same token: releasing is finished by a repeat"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_for(error: StoreError) -> serde_json::Value {
        serde_json::to_value(Problem::from(error)).unwrap()
    }

    #[test]
    fn an_unknown_outcome_is_504_and_says_what_is_safe_for_the_operation() {
        for (operation, safe) in [
            (Operation::Send, "same Idempotency-Key"),
            (Operation::Lease, "lease runs out"),
            (Operation::Acknowledge, "Acknowledging again is safe"),
            (Operation::Confirm, "Repeat the DELETE"),
        ] {
            let problem = problem_for(StoreError::OutcomeUnknown {
                operation,
                cause: anyhow::anyhow!("connection reset"),
            });
            assert_eq!(problem["status"], 504, "{problem}");
            assert_eq!(problem["type"], "/problems/outcome-unknown");
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(safe), "{operation}: {detail}");
            assert!(!detail.contains("nothing was changed"), "{detail}");
            assert!(
                !detail.contains("connection reset"),
                "no internals: {detail}"
            );
        }
    }

    #[test]
    fn an_unavailable_store_is_503_and_nothing_was_changed() {
        let problem = problem_for(StoreError::unavailable(anyhow::anyhow!("server selection")));
        assert_eq!(problem["status"], 503, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("nothing was changed")
        );
    }
}
