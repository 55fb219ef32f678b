//! Every kind of problem either service answers, one constructor each: its status, slug, title
//! and field are written here once.

use std::time::Duration;

use actix_web::http::StatusCode;

use super::Problem;
use crate::wire::{LEASE_MS, MAX_PAGE, MAX_WAIT_SECS};

impl Problem {
    /// 400: a JSON body that is not what the endpoint takes.
    pub fn malformed_body(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            "Malformed request body",
            detail,
        )
        .with_field("body")
    }

    /// 400: a name in the path, body or query that is not valid.
    pub fn invalid_name(field: &str, error: &crate::NameError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-name",
            "Invalid name",
            format!("`{field}` is not a valid name: {error}"),
        )
        .with_field(field)
    }

    /// 400: a malformed `Idempotency-Key`.
    pub fn invalid_idempotency_key(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            detail,
        )
        .with_field("Idempotency-Key")
    }

    /// 400: a `limit` that is not a whole number from 1 to [`MAX_PAGE`].
    pub fn invalid_limit(raw: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-limit",
            "Invalid limit",
            format!("limit must be a whole number from 1 to {MAX_PAGE}; it was {raw:?}"),
        )
        .with_field("limit")
    }

    /// 400: neither a body nor a `from` query parameter named the sender.
    pub fn missing_sender() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing-sender",
            "Missing sender",
            "say who the hello is from: send the JSON body {\"from\": \"<your name>\"} \
             with Content-Type: application/json, or add ?from=<your name>",
        )
        .with_field("from")
    }

    /// 400: the body and the query name different senders.
    pub fn conflicting_sender(body: &str, query: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "conflicting-sender",
            "Conflicting sender",
            format!(
                "the body says the hello is from {body:?} but the query says {query:?}; send only one"
            ),
        )
        .with_field("from")
    }

    /// 400: a query string that does not parse.
    pub fn invalid_query(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query parameter",
            detail,
        )
    }

    /// 400: a path segment that does not parse.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            "Invalid path",
            detail,
        )
    }

    /// 400: an acknowledgement that names too few or too many leases, or malformed ids.
    pub fn invalid_acknowledgements(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-acknowledgements",
            "Invalid acknowledgements",
            detail,
        )
        .with_field("leases")
    }

    /// 404: a reliable read's receipt that is unknown, malformed, or of another name.
    pub fn receipt_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "receipt-not-found",
            "Receipt not found",
            "there is no read with this receipt for this name: it is malformed, belongs to \
             another name, or is too old to be remembered. Use the receipt the read answered with",
        )
        .with_field("receipt")
    }

    /// 410: a reliable read confirmed after its lease ran out.
    pub fn lease_expired() -> Self {
        Self::new(
            StatusCode::GONE,
            "lease-expired",
            "Lease expired",
            "this read's lease ran out before it was confirmed, so its hellos were, or will be, \
             delivered again: read again to get them (and confirm sooner, or ask for a longer \
             lease_ms)",
        )
        .with_field("receipt")
    }

    /// 400: a `lease_ms` outside the bounds a lease may have.
    pub fn invalid_lease_ms(raw: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-lease-ms",
            "Invalid lease_ms",
            format!(
                "lease_ms must be a whole number of milliseconds from {} to {}; it was {raw:?}",
                LEASE_MS.start(),
                LEASE_MS.end()
            ),
        )
        .with_field("lease_ms")
    }

    /// 400: a `wait` that is not a whole number of seconds from 0 to [`MAX_WAIT_SECS`].
    pub fn invalid_wait(raw: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-wait",
            "Invalid wait",
            format!(
                "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS} (how long to \
                 wait for a hello when the inbox is empty); it was {raw:?}"
            ),
        )
        .with_field("wait")
    }

    /// 400: a change to a watch session that world-service cannot take (internal API).
    pub fn invalid_watch(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-watch",
            "Invalid watch change",
            detail,
        )
    }

    /// 404: a watch session world-service does not know (internal API): send the whole set again.
    pub fn unknown_watch(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown-watch",
            "Unknown watch session",
            detail,
        )
    }

    /// 404: no such route.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("there is nothing at {path}; see /openapi.json for the routes this API serves"),
        )
    }

    /// 405: the route exists but not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{path} does not answer {method}; see /openapi.json for the methods it takes"),
        )
    }

    /// 408: the request did not arrive in time.
    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            detail,
        )
    }

    /// 409: the recipient's inbox holds as many hellos as it may.
    pub fn inbox_full(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "inbox-full", "Inbox full", detail).with_field("to")
    }

    /// 413: a body larger than `limit` bytes; `length` says how large it was, as far as known.
    pub fn body_too_large(length: impl std::fmt::Display, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body has {length} bytes; send at most {limit}"),
        )
        .with_field("body")
    }

    /// 415: a body that is not `application/json`; `detail` may say what it was.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
        .with_field("body")
    }

    /// 400: an `Authorization` header that is not `Bearer <token>` (another scheme, no token, an
    /// oversized one, several headers).
    pub fn bad_authorization(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-authorization",
            "Malformed Authorization header",
            detail,
        )
        .with_field("Authorization")
    }

    /// 400: a token in the query string, where it would end up in logs and browser history.
    pub fn token_in_query() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "token-in-query",
            "Token in the query string",
            "tokens are accepted only in the Authorization header ('Authorization: Bearer \
             <token>'), never in the address, where logs and browser history would keep them; \
             this request was refused and not logged with its query. Treat that token as \
             exposed and rotate it (POST /names/{name}/token)",
        )
    }

    /// 401: the inbox (or name) is claimed, and no token came with the request.
    pub fn token_required(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "token-required",
            "Token required",
            detail,
        )
        .with_field("Authorization")
    }

    /// 401: the token sent is not the token of the name it was used for.
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-token",
            "Invalid token",
            detail,
        )
        .with_field("Authorization")
    }

    /// 403: sending as a claimed name (or a look-alike of one) without that name's token.
    pub fn not_your_name(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "not-your-name",
            "Not your name",
            detail,
        )
        .with_field("from")
    }

    /// 404: the name is not claimed (so it cannot be rotated or released).
    pub fn name_not_claimed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "name-not-claimed",
            "Name not claimed",
            detail,
        )
        .with_field("name")
    }

    /// 409: the name, or a name that looks like it, is claimed already.
    pub fn name_taken(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "name-taken", "Name taken", detail).with_field("name")
    }

    /// 422: an idempotency key first used for a different hello.
    pub fn idempotency_key_reused(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            detail,
        )
        .with_field("Idempotency-Key")
    }

    /// 429: this client is over its rate; retry after `wait`.
    pub fn too_many_requests(detail: impl Into<String>, wait: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
            detail,
        )
        .with_retry_after(wait)
    }

    /// 500: a fault of ours, not of the request.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    /// 504: hello-service gave up waiting, or the answer was lost: the request may or may not
    /// have been carried out; `detail` says what is safe to do.
    pub fn outcome_unknown(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome-unknown",
            "Outcome unknown",
            detail,
        )
        .with_retry_after(retry_after)
    }

    /// 503: the store holds as much as it may; nothing was stored.
    pub fn store_full(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-full",
            "Store full",
            detail,
        )
        .with_retry_after(retry_after)
    }

    /// 503: a dependency is down; nothing was done.
    pub fn unavailable(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
        .with_retry_after(retry_after)
    }
}
