//! The JSON bodies of world-service's internal API (`/v1/...`), which hello-service calls over
//! localhost. They live here so that neither service declares them again. The public bodies that
//! hello-service answers with reuse [`DeliveredHello`] and [`StoredHello`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The version prefix of world-service's internal API.
pub const WORLD_API_PREFIX: &str = "/v1";

/// `POST /v1/inboxes/{to}/hellos`: store one hello, durably.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendHello {
    /// The sender, a valid name.
    pub from: String,
    /// Repeating a send with the same key stores nothing new and answers the first hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A stored hello, as the answer to a send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct StoredHello {
    /// Unique id of this hello (time-ordered UUID).
    #[schema(example = "019ab6e0-7c3a-7f21-9d2e-5b8c1a0e4f11")]
    pub id: String,
    /// The recipient, as the sender spelled it.
    #[schema(example = "bob")]
    pub to: String,
    /// The sender, as the sender spelled it.
    #[schema(example = "alice")]
    pub from: String,
    /// When the hello was stored: RFC 3339, UTC, milliseconds.
    #[schema(example = "2026-11-24T10:00:00.123Z")]
    pub at: String,
}

/// One hello taken out of an inbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
pub struct DeliveredHello {
    /// Unique id of this hello, the same as in the answer to its POST.
    #[schema(example = "019ab6e0-7c3a-7f21-9d2e-5b8c1a0e4f11")]
    pub id: String,
    /// Who said hello, as they spelled their name.
    #[schema(example = "alice")]
    pub from: String,
    /// When the hello was stored: RFC 3339, UTC, milliseconds.
    #[schema(example = "2026-11-24T10:00:00.123Z")]
    pub at: String,
}

/// `POST /v1/inboxes/{name}/claims?limit=N`: the oldest waiting hellos, now leased to the caller.
///
/// Taking hellos is two steps so that none is lost when a process dies in between: the claim
/// hides them for a lease; `POST /v1/acknowledgements` (sent once the answer has gone out, for
/// many claims at a time) removes them. A claim that is never acknowledged expires and its hellos
/// are delivered again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    /// Acknowledge with this id; `None` when nothing was taken.
    pub claim_id: Option<String>,
    /// Oldest first.
    pub hellos: Vec<DeliveredHello>,
    /// Hellos still waiting (not taken by this or any live claim).
    pub remaining: u64,
}

/// The most claims one `POST /v1/acknowledgements` may name.
pub const MAX_ACKNOWLEDGEMENTS: usize = 256;

/// `POST /v1/acknowledgements`: these claims' answers were received; delete their hellos.
///
/// One request carries every claim whose answer settled since the last one, so a busy reader
/// pays one request and one store transaction for many reads. Acknowledging a claim twice, or an
/// unknown or expired one, deletes nothing and is not an error: retrying is always safe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgements {
    /// 1 to [`MAX_ACKNOWLEDGEMENTS`] claim ids.
    pub claims: Vec<String>,
}

/// The answer to `POST /v1/acknowledgements`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Acknowledged {
    /// Hellos deleted (those of claims that still held them).
    pub deleted: u64,
}
