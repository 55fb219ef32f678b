//! world-service's internal API, which hello-service calls over world's Unix socket: its paths,
//! its limits and the JSON bodies exchanged. They live here so that neither service declares them
//! again; world's routes are listed in `world_service::routes`. The public bodies that
//! hello-service answers with reuse [`DeliveredHello`] and [`StoredHello`].
//!
//! Sends, leases and confirmations always go in batches ([`Batch`], see [`batches`]);
//! acknowledgements name many leases in one request ([`Acknowledgements`]); claims, token
//! rotations and releases go one request each.
//!
//! Taking hellos is two steps so that none is lost when a process dies in between: a
//! [`Lease`] hides the oldest waiting hellos from other readers for a while; acknowledging it
//! ([`Acknowledgements`], sent once the answer has reached the reader, for many leases at a time)
//! deletes them. A lease that is never acknowledged runs out and its hellos are delivered again.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod batches;
pub mod watches;

pub use batches::*;
pub use watches::*;

/// The version prefix of world-service's internal API.
pub const WORLD_API_PREFIX: &str = "/v1";

/// The routes of world-service's internal API, as actix-web patterns and as URLs to call.
pub mod paths {
    use super::WORLD_API_PREFIX;

    /// `POST`: store several hellos, each on its own terms ([`super::Batch`] of
    /// [`super::BatchedSend`] → [`super::Outcomes`] of [`super::SendOutcome`]).
    pub const SEND_BATCH: &str = "/v1/hellos";
    /// `POST`: lease for several reads, each on its own terms ([`super::Batch`] of
    /// [`super::BatchedLease`] → [`super::Outcomes`] of [`super::LeaseOutcome`]).
    pub const LEASE_BATCH: &str = "/v1/leases";
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
    /// `PUT`: change what a session watches ([`super::WatchChange`]; 204).
    pub const WATCH: &str = "/v1/watches/{session}";
    /// `GET`: wait for a session's wakes ([`super::Wakes`]).
    pub const WAKES: &str = "/v1/watches/{session}/wakes";

    /// The URL path of the claim on `name` (encoded).
    pub fn name(name: &str) -> String {
        format!("{WORLD_API_PREFIX}/names/{name}")
    }

    /// The URL path of a watch session.
    pub fn watch(session: &str) -> String {
        format!("{WORLD_API_PREFIX}/watches/{session}")
    }

    /// The URL path of a watch session's wakes.
    pub fn wakes(session: &str) -> String {
        format!("{WORLD_API_PREFIX}/watches/{session}/wakes")
    }

    /// The URL path that replaces the token of `name` (encoded).
    pub fn name_token(name: &str) -> String {
        format!("{WORLD_API_PREFIX}/names/{name}/token")
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_urls_match_their_route_patterns() {
            assert_eq!(super::name("{name}"), super::NAME);
            assert_eq!(super::name_token("{name}"), super::NAME_TOKEN);
            assert_eq!(super::watch("{session}"), super::WATCH);
            assert_eq!(super::wakes("{session}"), super::WAKES);
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
/// The longest a read may wait for a hello (`wait`, in seconds; SQS's long-polling bound).
pub const MAX_WAIT_SECS: u64 = 20;
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
