//! How world-service's failures become problem+json answers.

use std::time::Duration;

use hello_common::Problem;

use crate::store::StoreError;

/// How long a client should wait before retrying while the store is down.
pub const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_secs(2);
/// How long a client should wait before retrying while the store is full.
pub const RETRY_AFTER_STORE_FULL: Duration = Duration::from_secs(30);

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::InboxFull { .. } => Problem::inbox_full(error.to_string()),
            StoreError::IdempotencyKeyReused { .. } => {
                Problem::idempotency_key_reused(error.to_string())
            }
            StoreError::StoreFull { .. } => {
                Problem::store_full(error.to_string(), RETRY_AFTER_STORE_FULL)
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
