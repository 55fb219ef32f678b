//! Problems hello-service itself raises about a request (world-service's pass through as sent).

use actix_web::http::StatusCode;
use hello_common::Problem;

use crate::config::MAX_LIMIT;

/// `limit` outside 1..=1000 or not a number.
pub fn invalid_limit(raw: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-limit",
        "Invalid limit",
        format!("limit must be a whole number from 1 to {MAX_LIMIT}; it was {raw:?}"),
    )
    .with_field("limit")
}

/// Neither a body nor a `from` query parameter named the sender.
pub fn missing_sender() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "missing-sender",
        "Missing sender",
        "say who the hello is from: send the JSON body {\"from\": \"<your name>\"} \
         with Content-Type: application/json, or add ?from=<your name>",
    )
    .with_field("from")
}

/// The body and the query name different senders.
pub fn conflicting_sender(body: &str, query: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "conflicting-sender",
        "Conflicting sender",
        format!(
            "the body says the hello is from {body:?} but the query says {query:?}; send only one"
        ),
    )
    .with_field("from")
}
