//! The documents the MongoDB backend stores, by their stored names.

use hello_common::timestamp::Millis;
use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

use crate::store::{NewHello, StoreError, new_hello_id};
use hello_common::wire::StoredHello;

/// The field of a hello that names the lease that took it: `claim`, a lease's name before 0.2.0,
/// kept so that a later release opens an earlier store.
pub const LEASE_FIELD: &str = "claim";

/// One waiting hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct HelloDocument {
    #[serde(rename = "_id")]
    pub id: String,
    pub to: String,
    pub to_spelling: String,
    pub from: String,
    /// Stored at, ms since the epoch.
    pub at: i64,
    pub order: String,
    /// Hidden from readers until this instant (ms since the epoch); 0 when never leased,
    /// [`super::retries::PARKED`] while a retry's copy is not yet known undelivered.
    pub lease_until: i64,
    /// The lease that took it last (stored as [`LEASE_FIELD`]).
    #[serde(default, rename = "claim")]
    pub lease: Option<String>,
    /// Sent with its sender's token; absent (false) in documents written before 0.2.0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verified: bool,
    /// The look-alike key of `to`, so that a release finds every inbox its claim covered.
    /// Absent in documents written by earlier releases: filled on open and before each release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookalike: Option<String>,
    /// The `claimed_at` (ms) of the claim that covered `to` when it was sent, if one did. Only a
    /// lease under that same claim takes it: a send that raced the claim's release, and was
    /// stored after the release deleted the inbox, stays unread by whoever reads next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<i64>,
    /// The idempotency record of the send that stored it, if it was sent with a key: a lease
    /// marks that record stored before the hello is delivered (see [`super::retries`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// The first hello sent with an idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IdempotencyDocument {
    #[serde(rename = "_id")]
    pub key: String,
    pub to_key: String,
    pub from_key: String,
    pub hello: StoredHello,
    pub created: DateTime,
    /// When the hello was stored (ms), set by the send after its insert; `null` until then, in
    /// which case a retry finishes the send (see [`super::retries`]).
    #[serde(default)]
    pub stored_at: Option<i64>,
    /// When a lease first won the hello (ms): the hello was stored, and may be delivered and
    /// deleted already; a retry must not store it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
    /// The claim covering the recipient when the first attempt was made
    /// ([`HelloDocument::covered_by`]), for a retry that finishes the insert: the hello keeps
    /// the claim it was sent under, even if that claim was released meanwhile. `stamped` is
    /// false in records written before hellos were stamped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<i64>,
    #[serde(default)]
    pub stamped: bool,
}

/// A lease that took something, kept so that a confirmation can be answered until it is
/// forgotten.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LeaseDocument {
    /// The lease id: the `claim` of the hellos it took.
    #[serde(rename = "_id")]
    pub id: String,
    /// The inbox (case-folded name).
    pub to: String,
    /// When the lease runs out, ms since the epoch.
    pub until: i64,
    /// When the TTL index removes this document: `until` plus the idempotency keys' lifetime.
    pub forget_at: DateTime,
    /// When a reliable read confirmed it (ms); set before its hellos are deleted, so that a
    /// retried confirmation finishes a deletion a crash interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<i64>,
}

/// A new hello and the document that stores it; `covered_by` and `record` as
/// [`HelloDocument`]'s.
pub(super) fn new_hello(
    hello: &NewHello,
    covered_by: Option<i64>,
    record: Option<String>,
) -> (StoredHello, HelloDocument) {
    let now = Millis::now();
    let id = new_hello_id();
    let stored = StoredHello {
        id: id.clone(),
        to: hello.to.to_string(),
        from: hello.from.to_string(),
        at: now.to_rfc3339(),
        verified: hello.verified,
    };
    let document = HelloDocument {
        order: id.clone(),
        id,
        to: hello.to.key().to_owned(),
        to_spelling: stored.to.clone(),
        from: stored.from.clone(),
        at: now.0,
        lease_until: 0,
        lease: None,
        verified: hello.verified,
        lookalike: Some(hello.to.lookalike_key().to_owned()),
        covered_by,
        record,
    };
    (stored, document)
}

/// Rebuilds, parked (see [`super::retries`]), the document of a hello whose send recorded
/// `record` and may have died before storing it.
pub(super) fn parked_document_for(
    hello: &StoredHello,
    to: &hello_common::Name,
    covered_by: Option<i64>,
    record: &str,
) -> Result<HelloDocument, StoreError> {
    let at = DateTime::parse_rfc3339_str(&hello.at)
        .map_err(StoreError::unavailable)?
        .timestamp_millis();
    Ok(HelloDocument {
        id: hello.id.clone(),
        to: to.key().to_owned(),
        to_spelling: hello.to.clone(),
        from: hello.from.clone(),
        at,
        order: hello.id.clone(),
        lease_until: super::retries::PARKED,
        lease: None,
        verified: hello.verified,
        lookalike: Some(to.lookalike_key().to_owned()),
        covered_by,
        record: Some(record.to_owned()),
    })
}
