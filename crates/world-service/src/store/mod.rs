//! The seam between world-service and where hellos live.
//!
//! Two backends implement [`Store`] and pass one shared test suite (`tests/world/store_suite.rs`):
//! - [`embedded`]: a redb file under `WORLD_DATA_DIR` — the default, nothing else to run;
//! - [`mongo`]: MongoDB, shared by every replica of the pod.
//!
//! Taking hellos is two-phase so that a crash never loses one: [`Store::lease`] leases the oldest
//! waiting hellos to the caller and hides them from other readers; [`Store::acknowledge`] deletes
//! them once the caller has delivered them (many leases at once: a busy reader sends them
//! together). A lease that runs out without an acknowledgement makes its hellos visible again, so
//! a reader that died mid-request costs a duplicate, never a loss.
//!
//! Stored names do not follow renames in the code: a lease is still stored under its 0.1.0 name
//! (the redb tables `claims` and `claims_by_inbox`, the field `claim` of a hello in both
//! backends), so that a store written by an earlier release opens and works with this one.

pub mod claims;
pub mod commands;
pub mod embedded;
mod error;
pub mod mongo;
pub mod rekey;
pub mod traced;

pub use error::{Operation, StoreError};

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use hello_common::{
    IdempotencyKey, Name,
    token::TokenHash,
    wire::{Lease, StoredHello},
};

/// A hello to store.
#[derive(Debug, Clone)]
pub struct NewHello {
    pub to: Name,
    pub from: Name,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Sent with the token of the claimed name `from`.
    pub verified: bool,
}

/// How many hellos to take and for how long to hide them.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest {
    /// At most this many (1 or more).
    pub limit: u32,
    /// How long the taken hellos stay hidden without an acknowledgement.
    pub lease: Duration,
    /// The claim that covered the inbox when its reader was checked ([`Claim::claimed_at`]), or
    /// none. On MongoDB a hello sent while another claim covered the inbox (a send that raced
    /// that claim's release) is never leased: it belonged to that claim's owner alone. The
    /// embedded store needs no such check (its writer runs a release and the sends around it one
    /// after the other) and ignores it.
    pub covering_claim: Option<i64>,
    /// Kept so that a confirmation can find it (a reliable read). A GET's lease is acknowledged
    /// as soon as its hellos are delivered and needs no record: MongoDB writes none (a
    /// confirmation of it answers [`Confirmation::Unknown`]); the embedded store keeps its leases
    /// in memory either way.
    pub confirmable: bool,
}

/// A reader waiting on an inbox, as [`Store::wakeable`] needs it.
#[derive(Debug, Clone)]
pub struct WatchedRead {
    /// The inbox key ([`Name::key`]); shared with the watch that holds it, not copied.
    pub inbox: std::sync::Arc<str>,
    /// Its look-alike key ([`Name::lookalike_key`]): where the claim covering it is stored.
    pub lookalike: std::sync::Arc<str>,
    /// The hash of the token its reader presented, and was let in with, if any.
    pub token: Option<TokenHash>,
}

impl WatchedRead {
    /// Whether a reader let in with this read's token would be judged differently now that
    /// `claim_token` (the token of the claim covering the inbox, if any) holds: a token rotated,
    /// a claim released or made since. Compared in constant time.
    pub fn ownership_changed(&self, claim_token: Option<&TokenHash>) -> bool {
        !TokenHash::same(claim_token, self.token.as_ref())
    }
}

/// What [`Store::wakeable`] found, by inbox key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wakeable {
    /// Inboxes holding a hello a lease of their readers could take: one reader looks.
    pub leasable: std::collections::HashSet<String>,
    /// Inboxes whose covering claim no longer lets in a reader as it did: every reader looks
    /// (and is answered 401).
    pub changed: std::collections::HashSet<String>,
}

/// What confirming a lease found; see [`Store::confirm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Confirmed in time (now or before): its hellos are gone for good.
    Confirmed,
    /// Its lease ran out before any confirmation.
    Expired,
    /// No such lease for this inbox (or it has been forgotten).
    Unknown,
}

/// A claimed name, as the store keeps it: the one record of who owns the name and every name
/// that looks like it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The name as spelled when it was claimed.
    pub name: String,
    /// Its own inbox key ([`Name::key`]); releasing the name empties this inbox.
    pub inbox: String,
    /// The SHA-256 of its current token.
    pub token: TokenHash,
    /// When it was claimed (ms since the epoch): with its look-alike key, which claim this is (a
    /// name released and claimed again is another claim).
    pub claimed_at: i64,
}

/// What rotating a token or releasing a name found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimChange {
    /// Done.
    Done,
    /// The name is not claimed (a name that only looks like a claimed one included).
    NotClaimed,
    /// The name is claimed, and the token presented is not its token.
    WrongToken,
}

/// Where hellos live.
///
/// No method leaves a half-done change that loses or duplicates a hello: the embedded store
/// applies each in one transaction; MongoDB's steps are single-document atomic operations,
/// ordered so that a crash between two of them is finished by a retry (a send with its
/// idempotency key) or undone by time (a lease runs out).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a hello durably (on disk, or majority-acknowledged and journaled) before returning.
    /// With an idempotency key already used for the same hello, stores nothing and returns the
    /// first hello.
    async fn send(&self, hello: NewHello) -> Result<StoredHello, StoreError>;

    /// Leases up to `request.limit` of the oldest visible hellos of `name` to the caller.
    async fn lease(&self, name: &Name, request: LeaseRequest) -> Result<Lease, StoreError>;

    /// Deletes the hellos of these leases, those they still hold (a lease that ran out holds
    /// those no later lease took). Returns how many were deleted. Acknowledging twice, or an
    /// unknown lease, deletes nothing and is not an error. Each lease is acknowledged whole or not
    /// at all; after an error, acknowledging them all again is safe.
    async fn acknowledge(&self, lease_ids: &[String]) -> Result<u64, StoreError>;

    /// Confirms the lease `lease_id` of `name`'s inbox, for a reliable read: its hellos, those it
    /// still holds, are deleted for good. Idempotent: confirming again answers
    /// [`Confirmation::Confirmed`] again. A lease that ran out before any confirmation answers
    /// [`Confirmation::Expired`] (its hellos were, or will be, delivered again). Both answers are
    /// remembered for the idempotency keys' lifetime after the lease's end; an unknown lease, one
    /// of another inbox, or one forgotten since, answers [`Confirmation::Unknown`].
    async fn confirm(&self, name: &Name, lease_id: &str) -> Result<Confirmation, StoreError>;

    /// The claims `wanted` names, looked up together for a batch to judge its readers and
    /// senders against (MongoDB: one `find`). The default asks name by name and token by token
    /// (the embedded store reads its last commit for each, no writer involved).
    async fn claims(&self, wanted: &claims::ClaimsWanted) -> Result<claims::Claims, StoreError> {
        let mut found = claims::Claims::default();
        for name in &wanted.covering {
            let claim = self.claim_covering(name).await?;
            let claim = claim.map(|claim| claims::Found {
                claim,
                releasing: false,
            });
            found.found_covering(name.lookalike_key(), claim);
        }
        for token in &wanted.tokens {
            found.found_token(*token, self.claim_by_token(token).await?);
        }
        Ok(found)
    }

    /// Stores hellos as [`Store::send`] does, each on its own terms (one refused or failed
    /// fails no other); their outcomes in their order. `claims` covers every recipient (a
    /// MongoDB hello is stamped with its recipient's claim). The default sends them all at once
    /// (the embedded store's writer takes them in one commit); MongoDB issues a fixed number of
    /// commands for the whole batch.
    async fn send_batch(
        &self,
        hellos: Vec<NewHello>,
        claims: &claims::Claims,
    ) -> Vec<Result<StoredHello, StoreError>> {
        let _ = claims;
        join_all(hellos.into_iter().map(|hello| self.send(hello))).await
    }

    /// Leases as [`Store::lease`] does, each on its own terms; their outcomes in their order.
    /// The default takes them all at once; MongoDB issues a fixed number of commands for the
    /// whole batch (more only when another replica won a lease's every candidate first).
    async fn lease_batch(
        &self,
        leases: Vec<(Name, LeaseRequest)>,
    ) -> Vec<Result<Lease, StoreError>> {
        join_all(
            leases
                .iter()
                .map(|(name, request)| self.lease(name, *request)),
        )
        .await
    }

    /// Confirms as [`Store::confirm`] does, each on its own terms; their outcomes in their
    /// order. The default confirms them all at once; MongoDB issues a fixed number of commands
    /// for the whole batch.
    async fn confirm_batch(
        &self,
        confirmations: Vec<(Name, String)>,
    ) -> Vec<Result<Confirmation, StoreError>> {
        join_all(
            confirmations
                .iter()
                .map(|(name, lease_id)| self.confirm(name, lease_id)),
        )
        .await
    }

    /// Claims `name` for the holder of the token whose hash is `token`. Refused with
    /// [`StoreError::NameTaken`] when the name or a look-alike of it is claimed, and with
    /// [`StoreError::StoreFull`] when `claim_cap` names are claimed.
    async fn claim_name(&self, name: &Name, token: TokenHash) -> Result<(), StoreError>;

    /// The claim that covers `name`: its own, or the claim on a name that looks like it.
    async fn claim_covering(&self, name: &Name) -> Result<Option<Claim>, StoreError>;

    /// The claim whose token has the hash `token`, if any.
    async fn claim_by_token(&self, token: &TokenHash) -> Result<Option<Claim>, StoreError>;

    /// Replaces the token of the claim on `name` (the claimed name itself, in any case), if
    /// `current` is its token: the old token stops working at once.
    async fn rotate_token(
        &self,
        name: &Name,
        current: &TokenHash,
        new: TokenHash,
    ) -> Result<ClaimChange, StoreError>;

    /// Frees `name` (the claimed name itself, in any case), if `token` is its token, and deletes
    /// the hellos waiting in its inbox and in every look-alike inbox the claim covered, so that
    /// nobody who never held the token reads them. Safe against a
    /// crash half-way: until it is finished the name stays claimed (its hellos unreadable
    /// without the token), and repeating the release, or a new claim of the name, finishes it.
    async fn release_name(&self, name: &Name, token: &TokenHash)
    -> Result<ClaimChange, StoreError>;

    /// Of these waiting reads, the inboxes where a wait could end now: one holding a hello a
    /// lease of its reader could take (a new one, or one whose lease ran out), or whose covering
    /// claim no longer lets its reader in as it did ([`WatchedRead::ownership_changed`]). Asked
    /// once per interval for every reader waiting on the pod together, never once per reader:
    /// at most two commands whatever their number (MongoDB: one `find` of the claims and one
    /// `aggregate` of the hellos, each answered in one batch; embedded: one read transaction, and
    /// a second when a watched inbox holds anything).
    async fn wakeable(
        &self,
        watched: std::sync::Arc<[WatchedRead]>,
    ) -> Result<Wakeable, StoreError>;

    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many hellos the store holds: waiting, and leased but not yet confirmed (for the
    /// `world_hellos_stored` gauge). Cheap: a counter the store keeps, or the collection's
    /// metadata, never a scan.
    async fn stored_hellos(&self) -> Result<u64, StoreError>;

    /// The last call, at shutdown: returns once everything written so far is durable (the
    /// embedded store syncs what it had not yet synced, stops its writer and lets go of the file
    /// once its handles are dropped).
    async fn close(&self) -> Result<(), StoreError>;

    /// `embedded` or `mongodb`, for logs, `/info` and metrics.
    fn backend(&self) -> &'static str;

    /// The commands this store has issued, by kind (see [`commands`]).
    fn commands(&self) -> &commands::StoreCommands;
}

/// Where a sender's idempotency key is stored: keys are scoped to their sender (the inbox key of
/// `from`), so another sender's key neither collides with nor reveals anything about this one.
/// Names have no spaces and keys are visible ASCII, so the space separates them unambiguously.
/// Keys stored before 0.2.0 were stored bare ([`IdempotencyKey::as_str`]); they still answer
/// the retries of the sender who made them.
pub fn scoped_idempotency_id(from: &Name, key: &IdempotencyKey) -> String {
    format!("{} {}", from.key(), key.as_str())
}

/// Limits every backend enforces.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Most hellos that may wait in one inbox.
    pub inbox_cap: u64,
    /// Most hellos that may wait in all inboxes together.
    pub store_cap: u64,
    /// Most idempotency keys the store may remember at once.
    pub idempotency_cap: u64,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    /// Most names that may be claimed at once.
    pub claim_cap: u64,
    /// Most leases kept at once, running or remembered after their end; at the cap a lease that
    /// would take hellos is [`StoreError::StoreFull`].
    pub lease_record_cap: u64,
}

/// A new lease id: unique, time-ordered.
fn new_lease_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new hello id: unique, time-ordered, so sorting by id is sorting by arrival.
fn new_hello_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A duration in whole milliseconds, saturating (for instants stored as ms since the epoch).
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}
