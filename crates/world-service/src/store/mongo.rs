//! The MongoDB backend: what every replica of the pod shares.
//!
//! Document model, chosen so that a hot inbox stays cheap and many world-service processes can
//! read one inbox at once without two of them taking the same hello:
//! - `hellos`: one small document per waiting hello, `{_id, to, to_spelling, from, at, order,
//!   lease_until, claim}`. `to` is the case-folded name; `claim` holds the id of the lease that
//!   took the hello (the field keeps its 0.1.0 name); `order` repeats the time-ordered id so that
//!   the index `{to: 1, order: 1}` walks an inbox oldest first and stops after `limit` documents.
//!   Sends are single inserts: no document grows, none is contended by writers.
//! - Leases mark documents with `claim` and `lease_until` through `updateMany` with the leasable
//!   filter repeated: MongoDB updates each document atomically, so each hello is won by exactly
//!   one lease, whichever replica asked. Acknowledging is `deleteMany({claim: {$in: ids}})`.
//! - `idempotency`: one document per key, expired by a TTL index on `created`.
//!
//! Every write uses write concern `majority` with journaling: a send is answered only once it is
//! durable on a majority of the replica set.
//!
//! Instants that are compared or updated (`at`, `lease_until`) are Int64 milliseconds since the
//! epoch: exact, cheap to index, and they survive `$set` on every server we test against (the
//! nx-27017 test server turns a `$set` DateTime into a string). `created` stays a BSON date
//! because MongoDB's TTL index needs one; it is only ever inserted.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::TryStreamExt;
use hello_common::{
    Name,
    timestamp::Millis,
    wire::{DeliveredHello, Lease, StoredHello},
};
use mongodb::{
    Client, Collection, IndexModel,
    bson::{DateTime, doc},
    error::{ErrorKind, WriteFailure},
    options::{Acknowledgment, ClientOptions, CollectionOptions, IndexOptions, WriteConcern},
};
use serde::{Deserialize, Serialize};

use super::{LeaseRequest, NewHello, Store, StoreError, StoreLimits, new_hello_id, new_lease_id};

/// MongoDB's code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;
/// How often an operation that lost a race with another replica tries again.
const RACE_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HelloDocument {
    #[serde(rename = "_id")]
    id: String,
    to: String,
    to_spelling: String,
    from: String,
    /// Stored at, ms since the epoch.
    at: i64,
    order: String,
    /// Hidden from readers until this instant (ms since the epoch); 0 when never leased.
    lease_until: i64,
    /// The lease that took it last (stored as `claim`, its name before 0.2.0).
    #[serde(default, rename = "claim")]
    lease: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotencyDocument {
    #[serde(rename = "_id")]
    key: String,
    to_key: String,
    from_key: String,
    hello: StoredHello,
    created: DateTime,
    /// When the hello was inserted (ms); absent between recording the key and inserting its
    /// hello, in which case a retry finishes the insert.
    #[serde(default)]
    stored_at: Option<i64>,
}

/// The MongoDB store.
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    database: String,
    hellos: Collection<HelloDocument>,
    idempotency: Collection<IdempotencyDocument>,
    limits: StoreLimits,
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
            idempotency: db.collection_with_options("idempotency", durable),
            database: database.to_owned(),
            client,
            limits,
        };
        store.create_indexes().await?;
        Ok(store)
    }

    async fn create_indexes(&self) -> anyhow::Result<()> {
        let indexes = [
            IndexModel::builder()
                .keys(doc! { "to": 1, "order": 1 })
                .build(),
            IndexModel::builder().keys(doc! { "claim": 1 }).build(),
        ];
        self.hellos
            .create_indexes(indexes)
            .await
            .context("cannot create the indexes of the hellos collection")?;
        let expiry = IndexModel::builder()
            .keys(doc! { "created": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(self.limits.idempotency_ttl)
                    .build(),
            )
            .build();
        self.idempotency
            .create_index(expiry)
            .await
            .context("cannot create the TTL index of the idempotency collection")?;
        Ok(())
    }

    /// Inserts a hello document; a duplicate id (a retried idempotent send) is not an error.
    async fn insert_hello(&self, document: &HelloDocument) -> Result<(), StoreError> {
        match self.hellos.insert_one(document).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(StoreError::unavailable(error)),
        }
    }

    async fn check_inbox_cap(&self, to: &Name) -> Result<(), StoreError> {
        let waiting = self
            .hellos
            .count_documents(doc! { "to": to.key() })
            .limit(self.limits.inbox_cap)
            .await
            .map_err(StoreError::unavailable)?;
        if waiting >= self.limits.inbox_cap {
            return Err(StoreError::InboxFull {
                name: to.to_string(),
                cap: self.limits.inbox_cap,
            });
        }
        Ok(())
    }

    async fn send_idempotent(
        &self,
        hello: &NewHello,
        key: &str,
    ) -> Result<StoredHello, StoreError> {
        for _ in 0..RACE_ATTEMPTS {
            if let Some(first) = self
                .idempotency
                .find_one(doc! { "_id": key })
                .await
                .map_err(StoreError::unavailable)?
            {
                if first.to_key != hello.to.key() || first.from_key != hello.from.key() {
                    return Err(StoreError::IdempotencyKeyReused {
                        to: first.hello.to,
                        from: first.hello.from,
                    });
                }
                if first.stored_at.is_none() {
                    // The first attempt died between recording the key and storing the hello.
                    self.insert_hello(&document_for(&first.hello, hello.to.key())?)
                        .await?;
                    self.mark_stored(key).await?;
                }
                return Ok(first.hello);
            }

            self.check_inbox_cap(&hello.to).await?;
            let (stored, document) = new_hello(hello);
            let record = IdempotencyDocument {
                key: key.to_owned(),
                to_key: hello.to.key().to_owned(),
                from_key: hello.from.key().to_owned(),
                hello: stored.clone(),
                created: DateTime::now(),
                stored_at: None,
            };
            match self.idempotency.insert_one(&record).await {
                Ok(_) => {}
                // Another request with this key got there first: answer what it recorded.
                Err(error) if is_duplicate_key(&error) => continue,
                Err(error) => return Err(StoreError::unavailable(error)),
            }
            self.insert_hello(&document).await?;
            self.mark_stored(key).await?;
            return Ok(stored);
        }
        Err(StoreError::unavailable(anyhow::anyhow!(
            "the idempotency record for this key kept changing; retry"
        )))
    }

    async fn mark_stored(&self, key: &str) -> Result<(), StoreError> {
        self.idempotency
            .update_one(
                doc! { "_id": key },
                doc! { "$set": { "stored_at": Millis::now().0 } },
            )
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    /// One attempt to lease up to `limit` hellos: pick candidates, then win what is still free.
    async fn try_lease(
        &self,
        name: &Name,
        request: LeaseRequest,
        lease_id: &str,
    ) -> Result<(usize, Vec<HelloDocument>), StoreError> {
        let now = Millis::now();
        let until = now
            .plus_millis(u64::try_from(request.lease.as_millis()).unwrap_or(u64::MAX))
            .0;
        let now = now.0;
        let leasable = doc! { "to": name.key(), "lease_until": { "$lt": now } };
        let candidates: Vec<HelloDocument> = self
            .hellos
            .find(leasable.clone())
            .sort(doc! { "order": 1 })
            .limit(i64::from(request.limit))
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        if candidates.is_empty() {
            return Ok((0, Vec::new()));
        }
        let ids: Vec<&str> = candidates.iter().map(|hello| hello.id.as_str()).collect();
        let mut win = leasable;
        win.insert("_id", doc! { "$in": ids });
        self.hellos
            .update_many(
                win,
                doc! { "$set": { "lease_until": until, "claim": lease_id } },
            )
            .await
            .map_err(StoreError::unavailable)?;
        let won: Vec<HelloDocument> = self
            .hellos
            .find(doc! { "claim": lease_id })
            .sort(doc! { "order": 1 })
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        Ok((candidates.len(), won))
    }
}

fn new_hello(hello: &NewHello) -> (StoredHello, HelloDocument) {
    let now = Millis::now();
    let id = new_hello_id();
    let stored = StoredHello {
        id: id.clone(),
        to: hello.to.to_string(),
        from: hello.from.to_string(),
        at: now.to_rfc3339(),
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
    };
    (stored, document)
}

/// Rebuilds the document of a hello recorded with an idempotency key.
fn document_for(hello: &StoredHello, to_key: &str) -> Result<HelloDocument, StoreError> {
    let at = DateTime::parse_rfc3339_str(&hello.at)
        .map_err(StoreError::unavailable)?
        .timestamp_millis();
    Ok(HelloDocument {
        id: hello.id.clone(),
        to: to_key.to_owned(),
        to_spelling: hello.to.clone(),
        from: hello.from.clone(),
        at,
        order: hello.id.clone(),
        lease_until: 0,
        lease: None,
    })
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
    async fn send(&self, hello: NewHello) -> Result<StoredHello, StoreError> {
        if let Some(key) = &hello.idempotency_key {
            return self.send_idempotent(&hello, key.as_str()).await;
        }
        self.check_inbox_cap(&hello.to).await?;
        let (stored, document) = new_hello(&hello);
        self.insert_hello(&document).await?;
        Ok(stored)
    }

    async fn lease(&self, name: &Name, request: LeaseRequest) -> Result<Lease, StoreError> {
        let lease_id = new_lease_id();
        let mut won = Vec::new();
        for _ in 0..RACE_ATTEMPTS {
            let (candidates, documents) = self.try_lease(name, request, &lease_id).await?;
            won = documents;
            // Stop when there was nothing to take, or when we won something: a smaller page is
            // fine. Retry only if other readers took every candidate first.
            if candidates == 0 || !won.is_empty() {
                break;
            }
        }
        let remaining = self
            .hellos
            .count_documents(doc! { "to": name.key(), "lease_until": { "$lt": Millis::now().0 } })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Lease {
            lease_id: (!won.is_empty()).then_some(lease_id),
            hellos: won
                .into_iter()
                .map(|hello| DeliveredHello {
                    id: hello.id,
                    from: hello.from,
                    at: Millis(hello.at).to_rfc3339(),
                })
                .collect(),
            remaining,
        })
    }

    async fn acknowledge(&self, lease_ids: &[String]) -> Result<u64, StoreError> {
        let result = self
            .hellos
            .delete_many(doc! { "claim": { "$in": lease_ids } })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(result.deleted_count)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .database(&self.database)
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
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
}
