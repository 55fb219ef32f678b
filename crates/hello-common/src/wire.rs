//! world-service's internal API, which hello-service calls over localhost: its paths, its limits
//! and the JSON bodies exchanged. They live here so that neither service declares them again.
//! The public bodies that hello-service answers with reuse [`DeliveredHello`] and [`StoredHello`].
//!
//! Taking hellos is two steps so that none is lost when a process dies in between: a
//! [`Lease`] hides the oldest waiting hellos from other readers for a while; acknowledging it
//! ([`Acknowledgements`], sent once the answer has reached the reader, for many leases at a time)
//! deletes them. A lease that is never acknowledged runs out and its hellos are delivered again.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The version prefix of world-service's internal API.
pub const WORLD_API_PREFIX: &str = "/v1";

/// The routes of world-service's internal API, as actix-web patterns and as URLs to call.
pub mod paths {
    use super::WORLD_API_PREFIX;

    /// `POST`: store one hello ([`super::SendHello`] → [`super::StoredHello`]).
    pub const SEND: &str = "/v1/inboxes/{to}/hellos";
    /// `POST`: store several hellos, each on its own terms ([`super::Batch`] of
    /// [`super::BatchedSend`] → [`super::Outcomes`] of [`super::SendOutcome`]).
    pub const SEND_BATCH: &str = "/v1/hellos";
    /// `POST ?limit=N&lease_ms=M`: lease the oldest waiting hellos (→ [`super::Lease`]).
    pub const LEASE: &str = "/v1/inboxes/{name}/leases";
    /// `POST`: lease for several reads, each on its own terms ([`super::Batch`] of
    /// [`super::BatchedLease`] → [`super::Outcomes`] of [`super::LeaseOutcome`]).
    pub const LEASE_BATCH: &str = "/v1/leases";
    /// `DELETE`: confirm a lease for a reliable read (204; 410 ran out; 404 unknown).
    pub const CONFIRM: &str = "/v1/inboxes/{name}/leases/{lease}";
    /// `POST`: confirm several leases, each on its own terms ([`super::Batch`] of
    /// [`super::BatchedConfirmation`] → [`super::Outcomes`] of [`super::ConfirmOutcome`]).
    pub const CONFIRM_BATCH: &str = "/v1/confirmations";
    /// `POST`: acknowledge leases ([`super::Acknowledgements`] → [`super::Acknowledged`]).
    pub const ACKNOWLEDGE: &str = "/v1/leases/acknowledge";
    /// `GET`: world-service's view of itself.
    pub const INFO: &str = "/v1/info";
    /// `POST`: claim a name ([`super::ClaimName`] → 201 [`super::Claimed`]); `DELETE`: release
    /// it (its token's hash in [`super::TOKEN_HASH_HEADER`]; 204).
    pub const NAME: &str = "/v1/names/{name}";
    /// `POST`: replace a name's token ([`super::RotateToken`], the current one's hash in
    /// [`super::TOKEN_HASH_HEADER`]; 204).
    pub const NAME_TOKEN: &str = "/v1/names/{name}/token";

    /// The URL path that sends a hello to the inbox whose name percent-encodes to `to`.
    pub fn send(to: &str) -> String {
        format!("{WORLD_API_PREFIX}/inboxes/{to}/hellos")
    }

    /// The URL path that leases hellos of the inbox whose name percent-encodes to `name`.
    pub fn lease(name: &str) -> String {
        format!("{WORLD_API_PREFIX}/inboxes/{name}/leases")
    }

    /// The URL path that confirms the lease `lease` (URL-safe) of the inbox `name` (encoded).
    pub fn confirm(name: &str, lease: &str) -> String {
        format!("{WORLD_API_PREFIX}/inboxes/{name}/leases/{lease}")
    }

    /// The URL path of the claim on `name` (encoded).
    pub fn name(name: &str) -> String {
        format!("{WORLD_API_PREFIX}/names/{name}")
    }

    /// The URL path that replaces the token of `name` (encoded).
    pub fn name_token(name: &str) -> String {
        format!("{WORLD_API_PREFIX}/names/{name}/token")
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_urls_match_their_route_patterns() {
            assert_eq!(super::send("{to}"), super::SEND);
            assert_eq!(super::lease("{name}"), super::LEASE);
            assert_eq!(super::confirm("{name}", "{lease}"), super::CONFIRM);
            assert_eq!(super::name("{name}"), super::NAME);
            assert_eq!(super::name_token("{name}"), super::NAME_TOKEN);
            assert!(super::ACKNOWLEDGE.starts_with(super::WORLD_API_PREFIX));
            assert!(super::SEND_BATCH.starts_with(super::WORLD_API_PREFIX));
            assert!(super::LEASE_BATCH.starts_with(super::WORLD_API_PREFIX));
            assert!(super::CONFIRM_BATCH.starts_with(super::WORLD_API_PREFIX));
            assert!(super::INFO.starts_with(super::WORLD_API_PREFIX));
        }
    }
}

/// The most hellos one read may take (the `limit` of a GET and of a lease).
pub const MAX_PAGE: u32 = 1000;
/// How many hellos a read takes when it does not say.
pub const DEFAULT_PAGE: u32 = 100;
/// The lengths a lease may have, in milliseconds (100 ms to one hour).
pub const LEASE_MS: RangeInclusive<u64> = 100..=3_600_000;
/// The most leases one acknowledgement may name.
pub const MAX_ACKNOWLEDGEMENTS: usize = 256;
/// Lease ids are UUIDs (36 characters); anything much longer is not one of ours.
pub const MAX_LEASE_ID_LENGTH: usize = 64;
/// The largest body of an acknowledgement: [`MAX_ACKNOWLEDGEMENTS`] ids of up to
/// [`MAX_LEASE_ID_LENGTH`] characters, quoted and separated. Independent of
/// `WORLD_MAX_BODY_BYTES`, which bounds hellos.
pub const ACKNOWLEDGEMENTS_BODY_LIMIT: usize =
    16 + MAX_ACKNOWLEDGEMENTS * (MAX_LEASE_ID_LENGTH + 3);

/// The most sends one [`Batch`] of sends may carry.
pub const MAX_SENDS_PER_BATCH: usize = 128;
/// The largest body of a [`Batch`] of sends: [`MAX_SENDS_PER_BATCH`] sends of at most 1 KiB each (two
/// names of at most 64 characters of up to 4 bytes, an idempotency key of 128, a token hash of 64
/// and a request id of 128, with their field names). Independent of `WORLD_MAX_BODY_BYTES`,
/// which bounds a single hello's body.
pub const SEND_BATCH_BODY_LIMIT: usize = 64 + MAX_SENDS_PER_BATCH * 1024;

/// The most leases one [`Batch`] of leases may carry.
pub const MAX_LEASES_PER_BATCH: usize = 128;
/// The most hellos the leases of one batch may ask for together (their limits added up), so that
/// its answer stays small: hello-service sends a read that asks for more alone.
pub const MAX_HELLOS_PER_LEASE_BATCH: usize = MAX_PAGE as usize;
/// The largest body of a [`Batch`] of leases: [`MAX_LEASES_PER_BATCH`] leases of at most 512 bytes
/// each (a name of at most 64 characters of up to 4 bytes, a token hash of 64, a request id of
/// 128, the numbers, with their field names).
pub const LEASE_BATCH_BODY_LIMIT: usize = 64 + MAX_LEASES_PER_BATCH * 512;

/// The most confirmations one [`Batch`] of confirmations may carry.
pub const MAX_CONFIRMATIONS_PER_BATCH: usize = 128;
/// The largest body of a [`Batch`] of confirmations: [`MAX_CONFIRMATIONS_PER_BATCH`] confirmations of at
/// most 640 bytes each (a name of at most 64 characters of up to 4 bytes, a lease id of at most
/// [`MAX_LEASE_ID_LENGTH`], a token hash of 64 and a request id of 128, with their field names).
pub const CONFIRM_BATCH_BODY_LIMIT: usize = 64 + MAX_CONFIRMATIONS_PER_BATCH * 640;

/// The header in which hello-service passes world-service the SHA-256 (hex) of the token a
/// request presented: world-service decides what the token may do, and never sees the token.
pub const TOKEN_HASH_HEADER: &str = "x-token-sha256";

/// The body of a claim: the hash of the new token (the token itself stays with hello-service,
/// which shows it once).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClaimName {
    /// SHA-256 of the token, lower-case hex.
    pub token_sha256: String,
}

/// The answer to a claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claimed {
    /// The name claimed, as spelled.
    pub name: String,
}

/// The body of a token rotation: the hash of the token that replaces the current one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// SHA-256 of the new token, lower-case hex.
    pub new_token_sha256: String,
}

/// The body of a send: one hello, stored durably.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendHello {
    /// The sender, a valid name; may be left out when a token comes with the send (it is then
    /// the token's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
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
    /// Sent with the token of the claimed name `from`: the sender is who they say. Hellos
    /// stored before 0.2.0 are not verified.
    #[serde(default)]
    #[schema(example = false)]
    pub verified: bool,
}

/// The body of a batch: calls of one kind (sends, leases or confirmations) that came to
/// hello-service at about the same time, sent to world-service in one request instead of one
/// request each.
///
/// Each call is judged on its own, exactly as if it had come alone to its own route: its own
/// names, token, terms and outcome. A batch is not a transaction: some of its calls may be done
/// and others refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    /// 1 to the kind's most calls per batch ([`MAX_SENDS_PER_BATCH`], ...).
    pub calls: Vec<T>,
}

/// The answer to a [`Batch`]: one outcome per call, in the order of the calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcomes<O> {
    pub outcomes: Vec<O>,
}

/// One send of a [`Batch`] (stored in one commit with the others): what [`paths::SEND`] takes in
/// its path, body and headers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchedSend {
    /// The recipient (as in the path of [`paths::SEND`]).
    pub to: String,
    /// The sender; may be left out when a token comes with the send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// As [`SendHello::idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The SHA-256 (hex) of the token the send presented (as in [`TOKEN_HASH_HEADER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The id of the public request that carried it, for world-service's log lines about it.
    pub request_id: String,
}

/// What became of one send of a batch: what [`paths::SEND`] would have answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// Stored durably (201 alone).
    Stored(StoredHello),
    /// Not stored, or (a 504) not known to be: the problem it would have been answered with.
    Refused(crate::Problem),
}

impl From<Result<StoredHello, crate::Problem>> for SendOutcome {
    fn from(outcome: Result<StoredHello, crate::Problem>) -> Self {
        match outcome {
            Ok(stored) => Self::Stored(stored),
            Err(problem) => Self::Refused(problem),
        }
    }
}

/// One lease of a [`Batch`]: what [`paths::LEASE`] takes in its path, query and headers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchedLease {
    /// The inbox (as in the path of [`paths::LEASE`]).
    pub name: String,
    /// How many hellos to take at most (1 to [`MAX_PAGE`]).
    pub limit: u32,
    /// How long the lease lasts; world-service's `WORLD_LEASE_MS` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// The SHA-256 (hex) of the token the read presented (as in [`TOKEN_HASH_HEADER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The id of the public request that carried it, for world-service's log lines about it.
    pub request_id: String,
}

/// What became of one lease of a batch: what [`paths::LEASE`] would have answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeaseOutcome {
    /// Taken (200 alone); `lease_id` is `None` when nothing was waiting.
    Leased(Lease),
    /// Refused, or (a 504) not known to have been taken: the problem it would have been answered
    /// with.
    Refused(crate::Problem),
}

impl From<Result<Lease, crate::Problem>> for LeaseOutcome {
    fn from(outcome: Result<Lease, crate::Problem>) -> Self {
        match outcome {
            Ok(lease) => Self::Leased(lease),
            Err(problem) => Self::Refused(problem),
        }
    }
}

/// One confirmation of a [`Batch`]: what [`paths::CONFIRM`] takes in its path, query and
/// headers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchedConfirmation {
    /// The inbox (as in the path of [`paths::CONFIRM`]).
    pub name: String,
    /// The lease id (the read's receipt).
    pub lease: String,
    /// The SHA-256 (hex) of the token the confirmation presented (as in [`TOKEN_HASH_HEADER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The id of the public request that carried it, for world-service's log lines about it.
    pub request_id: String,
}

/// What became of one confirmation of a batch: what [`paths::CONFIRM`] would have answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmOutcome {
    /// Its hellos are gone for good, now or before (204 alone).
    Confirmed,
    /// Refused (410 ran out, 404 unknown, ...), or (a 504) not known to be confirmed: the
    /// problem it would have been answered with.
    Refused(crate::Problem),
}

impl From<Result<(), crate::Problem>> for ConfirmOutcome {
    fn from(outcome: Result<(), crate::Problem>) -> Self {
        match outcome {
            Ok(()) => Self::Confirmed,
            Err(problem) => Self::Refused(problem),
        }
    }
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
    /// Sent with the token of the claimed name `from`.
    #[serde(default)]
    #[schema(example = false)]
    pub verified: bool,
}

/// The answer to a lease: the oldest waiting hellos, now hidden from other readers until the
/// lease runs out or is acknowledged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// Acknowledge with this id; `None` when nothing was taken.
    pub lease_id: Option<String>,
    /// Oldest first.
    pub hellos: Vec<DeliveredHello>,
    /// Hellos still waiting (not taken by this or any live lease).
    pub remaining: u64,
    /// When the lease runs out (RFC 3339, UTC, milliseconds); `None` when nothing was taken.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// How many of `hellos` an earlier lease had taken and not confirmed in time: delivered
    /// again. For world-service's metrics only; never sent.
    #[serde(skip)]
    pub redelivered: u64,
}

/// The body of an acknowledgement: these leases' hellos reached their readers; delete them.
///
/// One request carries every lease whose answer settled since the last one, so a busy reader
/// pays one request and one store transaction for many reads. Acknowledging a lease twice, or an
/// unknown one, deletes nothing and is not an error: retrying is always safe. A lease that ran out
/// deletes those of its hellos that no other read has leased since.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgements {
    /// 1 to [`MAX_ACKNOWLEDGEMENTS`] lease ids.
    pub leases: Vec<String>,
}

/// The answer to an acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Acknowledged {
    /// Hellos deleted (those of leases that still held them).
    pub deleted: u64,
}
