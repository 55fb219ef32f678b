//! The MongoDB backend: what every replica of the pod shares.
//!
//! Document model, chosen so that a hot inbox stays cheap and many world-service processes can
//! read one inbox at once without two of them taking the same hello:
//! - `hellos`: one small document per waiting hello, `{_id, to, to_spelling, from, at, order,
//!   lease_until, claim, verified, lookalike, covered_by, record}` (`record`: its send's
//!   idempotency record, see [`retries`]; `lease_until` is `i64::MAX` while a retry's copy is
//!   parked). `to` is the case-folded name; `claim` holds the id of the lease that
//!   took the hello (the field keeps its 0.1.0 name); `order` repeats the time-ordered id so that
//!   the index `{to: 1, order: 1}` walks an inbox oldest first and stops after `limit` documents.
//!   Sends are multi-document inserts: no document grows, none is contended by writers.
//! - Leases mark documents with `claim` and `lease_until` through an `update` with one statement
//!   per lease, the leasable filter repeated: MongoDB updates each document atomically, so each
//!   hello is won by exactly one lease, whichever replica asked. Acknowledging is
//!   `deleteMany({claim: {$in: ids}})` (`claim` is the stored name of a hello's lease,
//!   [`documents::LEASE_FIELD`]).
//! - `leases`: one document per reliable read's lease that took something, `{_id, to, until,
//!   forget_at, confirmed_at}`, so that its confirmation can be answered (again 204 after a
//!   confirmation in time, 410 after the lease ran out) until a TTL index on `forget_at` (the
//!   lease's end plus the idempotency keys' lifetime) removes it. A GET's lease, acknowledged at
//!   once, has none (earlier releases wrote one and deleted it on acknowledgement; any left
//!   are forgotten by the TTL). A lease taken by 0.1.0 has none either, and is unknown to a
//!   confirmation.
//! - `idempotency`: one document per key, expired by a TTL index on `created`; marked
//!   `stored_at` by its send, and `delivered_at` by the first lease that takes its hello.
//! - `names`: one document per claimed name, keyed by its look-alike key; see [`names`]. New in
//!   0.2.0.
//!
//! Only single-document atomicity is relied on (a standalone MongoDB refuses multi-document
//! transactions); where an operation takes several steps, they are ordered so that a crash
//! between two loses nothing acknowledged: the next attempt finishes it, or a lease runs out.
//!
//! A batch of calls from hello-service (sends, leases, confirmations) costs a fixed number of
//! commands whatever its size: multi-document `insert`s, `update`s of one statement per lease,
//! `deleteMany`, `find` and `aggregate` over every call's documents together, each call keeping
//! its own outcome ([`batch`]). Only commands MongoDB 7.0 has (`bulkWrite` is 8.0's).
//!
//! - [`documents`]: the stored documents;
//! - [`sends`]: storing hellos, idempotently; [`retries`]: why a retried send never stores a
//!   delivered hello again;
//! - [`leases`]: leasing; [`confirmations`]: acknowledging and confirming;
//! - [`counts`]: what the store holds, for its caps;
//! - [`names`]: claiming, rotating and releasing names.
//!
//! Every write uses write concern `majority` with journaling: a send is answered only once it is
//! durable on a majority of the replica set.
//!
//! Instants that are compared or updated (`at`, `lease_until`) are Int64 milliseconds since the
//! epoch: exact, cheap to index, and they survive `$set` on every server we test against (the
//! nx-27017 test server turns a `$set` DateTime into a string). `created` and `forget_at` stay BSON
//! dates because MongoDB's TTL index needs one; they are only ever inserted.

mod batch;
mod confirmations;
mod counts;
mod documents;
mod leases;
mod names;
mod retries;
mod sends;
mod setup;
mod watch;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use async_trait::async_trait;
use hello_common::{
    Name,
    token::TokenHash,
    wire::{Lease, StoredHello},
};
use mongodb::{
    Client, Collection,
    bson::doc,
    error::{ErrorKind, WriteFailure},
    event::{EventHandler, command::CommandEvent},
    options::{Acknowledgment, ClientOptions, CollectionOptions, WriteConcern},
};

use self::{
    documents::{HelloDocument, IdempotencyDocument, LeaseDocument},
    names::NameDocument,
};
use super::{
    Claim, ClaimChange, Confirmation, LeaseRequest, NewHello, Operation, Store, StoreError,
    StoreLimits,
    claims::{Claims, ClaimsWanted},
    commands::StoreCommands,
};

/// MongoDB's code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;
/// How many times, at most, an operation tries when it keeps losing a race with another replica
/// (or another request): its attempts, or a batch's rounds, in all.
const RACE_ATTEMPTS: usize = 5;
/// Every answer in its first batch (a server's default is 101 documents, then a `getMore` per
/// batch), so that a query over a whole batch of calls, or over every watched inbox, stays one
/// command: at most a few thousand small documents, far below a 16 MiB batch.
const ONE_BATCH: u32 = 1_000_000;

/// The MongoDB store.
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    database: String,
    hellos: Collection<HelloDocument>,
    idempotency: Collection<IdempotencyDocument>,
    leases: Collection<LeaseDocument>,
    names: Collection<NameDocument>,
    limits: StoreLimits,
    /// What this process last counted of the store, for its caps; see [`counts`].
    counts: Arc<Mutex<Option<Counts>>>,
    /// Every command the driver starts, by name.
    commands: StoreCommands,
}

/// Hellos and idempotency keys in the store, as counted at `at` (and kept up to date with this
/// process's own writes since).
#[derive(Debug, Clone, Copy)]
struct Counts {
    at: std::time::Instant,
    hellos: u64,
    keys: u64,
    /// Lease records (running or remembered), for `lease_record_cap`.
    leases: u64,
}

impl MongoStore {
    /// Connects and creates the indexes. Fails if the server cannot be reached.
    pub async fn connect(uri: &str, database: &str, limits: StoreLimits) -> anyhow::Result<Self> {
        let mut options = ClientOptions::parse(uri)
            .await
            .context("WORLD_MONGODB_URI is not a valid MongoDB connection string")?;
        options
            .app_name
            .get_or_insert_with(|| "world-service".to_owned());
        // Fail fast so that readiness and requests answer 503 quickly while the store is down.
        options
            .server_selection_timeout
            .get_or_insert(Duration::from_secs(2));
        options
            .connect_timeout
            .get_or_insert(Duration::from_secs(2));
        let commands = StoreCommands::mongodb();
        let counted = commands.clone();
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                counted.count_mongodb(&started.command_name);
            }
        }));
        let client = Client::with_options(options)?;
        let durable = CollectionOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
            )
            .build();
        let db = client.database(database);
        let store = Self {
            hellos: db.collection_with_options("hellos", durable.clone()),
            idempotency: db.collection_with_options("idempotency", durable.clone()),
            leases: db.collection_with_options("leases", durable.clone()),
            names: db.collection_with_options("names", durable),
            database: database.to_owned(),
            client,
            limits,
            counts: Arc::default(),
            commands,
        };
        store.create_indexes().await?;
        store
            .recompute_lookalike_keys()
            .await
            .context("cannot store the look-alike keys of hellos written by an earlier release")?;
        store
            .rekey_claims()
            .await
            .context("cannot move the claims to their look-alike keys")?;
        Ok(store)
    }
}

/// Sorts a failed write. A write the server refused, or one never sent (no server could be
/// selected, no connection could be had), did nothing: [`StoreError::Unavailable`], 503. A write
/// whose connection broke after it was sent, or that was applied but not confirmed durable
/// (a write concern error), may or may not have been done: [`StoreError::OutcomeUnknown`], 504.
fn write_failed(operation: Operation) -> impl Fn(mongodb::error::Error) -> StoreError {
    move |error| match error.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::InvalidResponse { .. }
        | ErrorKind::Internal { .. }
        | ErrorKind::Write(WriteFailure::WriteConcernError(_)) => StoreError::OutcomeUnknown {
            operation,
            cause: error.into(),
        },
        _ => StoreError::unavailable(error),
    }
}

/// A batch of one answered nothing: world's bug, answered as a store failure.
fn one_outcome_missing<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable(anyhow::anyhow!(
        "a batch of one call answered no outcome"
    )))
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(failure)) => failure.code == DUPLICATE_KEY,
        ErrorKind::Command(failure) => failure.code == DUPLICATE_KEY,
        _ => false,
    }
}

#[async_trait]
impl Store for MongoStore {
    // One path: a single call is a batch of one.
    async fn send(&self, hello: NewHello) -> Result<StoredHello, StoreError> {
        let mut wanted = ClaimsWanted::default();
        wanted.cover(&hello.to);
        let claims = self.claims(&wanted).await?;
        let sent = self.send_batch_here(vec![hello], &claims).await;
        sent.into_iter().next().unwrap_or_else(one_outcome_missing)
    }

    async fn lease(&self, name: &Name, request: LeaseRequest) -> Result<Lease, StoreError> {
        let leased = self.lease_batch_here(vec![(name.clone(), request)]).await;
        leased
            .into_iter()
            .next()
            .unwrap_or_else(one_outcome_missing)
    }

    async fn claims(&self, wanted: &ClaimsWanted) -> Result<Claims, StoreError> {
        self.claims_here(wanted).await
    }

    async fn send_batch(
        &self,
        hellos: Vec<NewHello>,
        claims: &Claims,
    ) -> Vec<Result<StoredHello, StoreError>> {
        self.send_batch_here(hellos, claims).await
    }

    async fn lease_batch(
        &self,
        leases: Vec<(Name, LeaseRequest)>,
    ) -> Vec<Result<Lease, StoreError>> {
        self.lease_batch_here(leases).await
    }

    async fn confirm_batch(
        &self,
        confirmations: Vec<(Name, String)>,
    ) -> Vec<Result<Confirmation, StoreError>> {
        self.confirm_batch_here(confirmations).await
    }

    async fn acknowledge(&self, lease_ids: &[String]) -> Result<u64, StoreError> {
        self.acknowledge_leases(lease_ids).await
    }

    async fn confirm(&self, name: &Name, lease_id: &str) -> Result<Confirmation, StoreError> {
        let confirmed = self
            .confirm_batch_here(vec![(name.clone(), lease_id.to_owned())])
            .await;
        confirmed
            .into_iter()
            .next()
            .unwrap_or_else(one_outcome_missing)
    }

    async fn claim_name(&self, name: &Name, token: TokenHash) -> Result<(), StoreError> {
        self.claim_name_here(name, token).await
    }

    async fn claim_covering(&self, name: &Name) -> Result<Option<Claim>, StoreError> {
        self.claim_covering_here(name).await
    }

    async fn claim_by_token(&self, token: &TokenHash) -> Result<Option<Claim>, StoreError> {
        self.claim_by_token_here(token).await
    }

    async fn rotate_token(
        &self,
        name: &Name,
        current: &TokenHash,
        new: TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        self.rotate_token_here(name, current, new).await
    }

    async fn release_name(
        &self,
        name: &Name,
        token: &TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        self.release_name_here(name, token).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .database(&self.database)
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn stored_hellos(&self) -> Result<u64, StoreError> {
        // The collection's count from its metadata: the same figure the store cap is checked
        // against, without reading a document.
        self.hellos
            .estimated_document_count()
            .await
            .map_err(StoreError::unavailable)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every write was acknowledged by a majority before it was answered: nothing to flush.
        // Ending the sessions and connections politely spares the server their timeouts.
        self.client.clone().shutdown().await;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn wakeable(
        &self,
        watched: Arc<[super::WatchedRead]>,
    ) -> Result<super::Wakeable, StoreError> {
        self.wakeable_inboxes(&watched).await
    }

    fn commands(&self) -> &StoreCommands {
        &self.commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_whose_connection_broke_has_an_unknown_outcome() {
        let broken = mongodb::error::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            write_failed(Operation::Send)(broken),
            StoreError::OutcomeUnknown {
                operation: Operation::Send,
                ..
            }
        ));
    }
}
