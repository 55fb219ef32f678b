//! Sends, leases and confirmations go to world-service in batches, always: one request carries
//! the calls of one kind that came to hello-service at about the same time (one, when it is
//! quiet), and world answers each on its own.
//!
//! Each call carries what a request of its own would have carried in its headers: the id of the
//! public request it serves and, when traces are on, that request's W3C `traceparent`, so world
//! logs it under the public request's id and continues its trace.

use serde::{Deserialize, Serialize};

use super::{Lease, MAX_LEASE_ID_LENGTH, MAX_PAGE, StoredHello};
use crate::{Problem, idempotency::MAX_IDEMPOTENCY_KEY_LEN};

/// The longest `request_id` hello-service passes on (it takes 1 to 128 printable ASCII
/// characters from `X-Request-Id`, [`crate::observability`]).
const MAX_REQUEST_ID: usize = 128;
/// Printable ASCII written as JSON: `"` and `\` take two bytes each.
const fn escaped(ascii: usize) -> usize {
    2 * ascii
}
/// A name's longest spelling in bytes: 64 characters of up to 4 bytes (a name holds no character
/// JSON escapes).
const MAX_NAME_BYTES: usize = 64 * 4;
/// What any call adds besides its terms: a request id, a `traceparent` (55 characters in W3C's
/// version 00; 128 leaves room for a later version), a token hash, the fields' names and the
/// JSON around them.
const PER_CALL: usize = escaped(MAX_REQUEST_ID) + 128 + 64 + 128;

/// The most sends one [`Batch`] of sends may carry.
pub const MAX_SENDS_PER_BATCH: usize = 128;
/// The largest body of a [`Batch`] of sends: [`MAX_SENDS_PER_BATCH`] of the largest send (two
/// names and an idempotency key). Independent of `WORLD_MAX_BODY_BYTES`. A batch hello makes can
/// never be larger, whatever its calls hold: world refusing one would refuse every call in it.
pub const SEND_BATCH_BODY_LIMIT: usize =
    64 + MAX_SENDS_PER_BATCH * (PER_CALL + 2 * MAX_NAME_BYTES + escaped(MAX_IDEMPOTENCY_KEY_LEN));

/// The most leases one [`Batch`] of leases may carry.
pub const MAX_LEASES_PER_BATCH: usize = 128;
/// The most hellos the leases of one batch may ask for together (their limits added up), so that
/// its answer stays small: hello-service sends a read that asks for more in a batch of its own.
pub const MAX_HELLOS_PER_LEASE_BATCH: usize = MAX_PAGE as usize;
/// The largest body of a [`Batch`] of leases: [`MAX_LEASES_PER_BATCH`] of the largest lease (a
/// name and two numbers).
pub const LEASE_BATCH_BODY_LIMIT: usize =
    64 + MAX_LEASES_PER_BATCH * (PER_CALL + MAX_NAME_BYTES + 40);

/// The most confirmations one [`Batch`] of confirmations may carry.
pub const MAX_CONFIRMATIONS_PER_BATCH: usize = 128;
/// The largest body of a [`Batch`] of confirmations: [`MAX_CONFIRMATIONS_PER_BATCH`] of the
/// largest confirmation (a name and a lease id).
pub const CONFIRM_BATCH_BODY_LIMIT: usize =
    64 + MAX_CONFIRMATIONS_PER_BATCH * (PER_CALL + MAX_NAME_BYTES + MAX_LEASE_ID_LENGTH);

/// The body of a batch: calls of one kind, sent to world-service in one request.
///
/// Each call is judged on its own: its own names, token, terms and outcome. A batch is not a
/// transaction: some of its calls may be done and others refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    /// 1 to the kind's [`BatchedCall::MAX_PER_BATCH`] calls.
    pub calls: Vec<T>,
}

/// The answer to a [`Batch`]: one outcome per call, in the order of the calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcomes<O> {
    pub outcomes: Vec<O>,
}

/// What every kind of call in a batch has: whose request it serves, and its trace.
pub trait BatchedCall {
    /// What the call does, for logs and span names: `send`, `lease` or `confirm`.
    const KIND: &'static str;
    /// The name of world's span for one call of this kind: `send in batch`, ...
    const SPAN_NAME: &'static str;
    /// The most calls of this kind in one [`Batch`].
    const MAX_PER_BATCH: usize;
    /// The id of the public request it serves.
    fn request_id(&self) -> &str;
    /// That request's W3C `traceparent`, when traces are on.
    fn traceparent(&self) -> Option<&str>;
}

/// One send: store a hello durably. With a token, `from` may be left out (it is then the
/// token's name).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchedSend {
    /// The recipient.
    pub to: String,
    /// The sender; may be left out when a token comes with the send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Repeating a send with the same key stores nothing new and answers the first hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The SHA-256 (hex) of the token the send presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The id of the public request that carried it.
    pub request_id: String,
    /// The public request's trace context, when traces are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What became of one send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// Stored durably (the public POST answers 201).
    Stored(StoredHello),
    /// Not stored, or (a 504) not known to be: the problem to answer with.
    Refused(Problem),
}

/// One lease: take the oldest waiting hellos of an inbox for a read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchedLease {
    /// The inbox.
    pub name: String,
    /// How many hellos to take at most (1 to [`MAX_PAGE`]).
    pub limit: u32,
    /// How long the lease lasts; world-service's `WORLD_LEASE_MS` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// The SHA-256 (hex) of the token the read presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Whether a confirmation will follow (a reliable read): world keeps a record of the lease
    /// for it. A GET's lease is acknowledged at once and needs none. Absent: kept (as before the
    /// field existed).
    #[serde(default = "confirmable_by_default")]
    pub confirmable: bool,
    /// The id of the public request that carried it.
    pub request_id: String,
    /// The public request's trace context, when traces are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

fn confirmable_by_default() -> bool {
    true
}

/// What became of one lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeaseOutcome {
    /// Taken; `lease_id` is `None` when nothing was waiting.
    Leased(Lease),
    /// Refused, or (a 504) not known to have been taken: the problem to answer with.
    Refused(Problem),
}

/// One confirmation: a reliable read confirms its lease, and its hellos are gone for good.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchedConfirmation {
    /// The inbox.
    pub name: String,
    /// The lease id (the read's receipt).
    pub lease: String,
    /// The SHA-256 (hex) of the token the confirmation presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The id of the public request that carried it.
    pub request_id: String,
    /// The public request's trace context, when traces are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What became of one confirmation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmOutcome {
    /// Its hellos are gone for good, now or before (the public DELETE answers 204).
    Confirmed,
    /// Refused (410 ran out, 404 unknown, ...), or (a 504) not known to be confirmed: the
    /// problem to answer with.
    Refused(Problem),
}

macro_rules! batched_call {
    ($call:ty, $kind:literal, $most:expr, $outcome:ty, $done:ty, $variant:expr) => {
        impl BatchedCall for $call {
            const KIND: &'static str = $kind;
            const SPAN_NAME: &'static str = concat!($kind, " in batch");
            const MAX_PER_BATCH: usize = $most;

            fn request_id(&self) -> &str {
                &self.request_id
            }

            fn traceparent(&self) -> Option<&str> {
                self.traceparent.as_deref()
            }
        }

        impl From<Result<$done, Problem>> for $outcome {
            fn from(outcome: Result<$done, Problem>) -> Self {
                match outcome {
                    Ok(done) => $variant(done),
                    Err(problem) => Self::Refused(problem),
                }
            }
        }
    };
}

batched_call!(
    BatchedSend,
    "send",
    MAX_SENDS_PER_BATCH,
    SendOutcome,
    StoredHello,
    Self::Stored
);
batched_call!(
    BatchedLease,
    "lease",
    MAX_LEASES_PER_BATCH,
    LeaseOutcome,
    Lease,
    Self::Leased
);
batched_call!(
    BatchedConfirmation,
    "confirm",
    MAX_CONFIRMATIONS_PER_BATCH,
    ConfirmOutcome,
    (),
    |()| Self::Confirmed
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest value each field may take, in bytes.
    fn longest(bytes: usize) -> String {
        "é".repeat(bytes / 2)
    }

    fn body_of<T: Serialize + Clone>(call: T, calls: usize) -> usize {
        let calls: Vec<T> = std::iter::repeat_n(call, calls).collect();
        serde_json::to_vec(&Batch { calls }).unwrap().len()
    }

    /// Every field at its longest, and ASCII fields of the characters JSON writes in two bytes.
    #[test]
    fn the_largest_batch_of_each_kind_fits_its_body_limit() {
        let traceparent = Some(format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16)));
        let send = BatchedSend {
            to: longest(MAX_NAME_BYTES),
            from: Some(longest(MAX_NAME_BYTES)),
            idempotency_key: Some("\"".repeat(MAX_IDEMPOTENCY_KEY_LEN)),
            token_sha256: Some("f".repeat(64)),
            request_id: "\\".repeat(MAX_REQUEST_ID),
            traceparent: traceparent.clone(),
        };
        assert!(body_of(send, MAX_SENDS_PER_BATCH) <= SEND_BATCH_BODY_LIMIT);
        let lease = BatchedLease {
            name: longest(MAX_NAME_BYTES),
            limit: MAX_PAGE,
            lease_ms: Some(u64::MAX),
            token_sha256: Some("f".repeat(64)),
            confirmable: false,
            request_id: "\\".repeat(MAX_REQUEST_ID),
            traceparent: traceparent.clone(),
        };
        assert!(body_of(lease, MAX_LEASES_PER_BATCH) <= LEASE_BATCH_BODY_LIMIT);
        let confirmation = BatchedConfirmation {
            name: longest(MAX_NAME_BYTES),
            lease: "l".repeat(MAX_LEASE_ID_LENGTH),
            token_sha256: Some("f".repeat(64)),
            request_id: "\\".repeat(MAX_REQUEST_ID),
            traceparent,
        };
        assert!(body_of(confirmation, MAX_CONFIRMATIONS_PER_BATCH) <= CONFIRM_BATCH_BODY_LIMIT);
    }
}
