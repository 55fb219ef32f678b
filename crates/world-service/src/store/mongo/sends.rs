//! Storing hellos in MongoDB, idempotently.

use std::{
    sync::PoisonError,
    time::{Duration, Instant},
};

use hello_common::{IdempotencyKey, Name, timestamp::Millis, wire::StoredHello};
use mongodb::bson::{DateTime, doc};

use super::{
    Counts, MongoStore, RACE_ATTEMPTS,
    documents::{HelloDocument, IdempotencyDocument, document_for, new_hello},
    is_duplicate_key, write_failed,
};
use crate::store::{NewHello, Operation, StoreError, scoped_idempotency_id};

/// How long a count of the store serves the caps before it is taken again. Between counts this
/// process adds its own writes; other replicas' show at the next count, so with several replicas
/// the store may go past its caps by what they write in this time.
const COUNTS_FRESH: Duration = Duration::from_millis(500);

impl MongoStore {
    /// Stores a hello; with an idempotency key, at most once per key.
    pub(super) async fn send_hello(&self, hello: NewHello) -> Result<StoredHello, StoreError> {
        if let Some(key) = &hello.idempotency_key {
            return self.send_idempotent(&hello, key).await;
        }
        let covered_by = self.covering_claim(&hello.to).await?;
        self.check_inbox_cap(&hello.to).await?;
        self.check_store_caps(false).await?;
        let (stored, document) = new_hello(&hello, covered_by);
        self.insert_hello(&document).await?;
        Ok(stored)
    }

    /// Inserts a hello document; a duplicate id (a retried idempotent send) is not an error.
    async fn insert_hello(&self, document: &HelloDocument) -> Result<(), StoreError> {
        match self.hellos.insert_one(document).await {
            Ok(_) => {
                self.count(1, 0);
                Ok(())
            }
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(write_failed(Operation::Send)(error)),
        }
    }

    /// Refuses a send when the store holds `WORLD_STORE_CAP` hellos, or a new key when it holds
    /// `WORLD_IDEMPOTENCY_CAP` keys.
    async fn check_store_caps(&self, new_key: bool) -> Result<(), StoreError> {
        let counts = self.counts().await?;
        if counts.hellos >= self.limits.store_cap {
            return Err(StoreError::StoreFull {
                what: "hellos",
                cap: self.limits.store_cap,
            });
        }
        if new_key && counts.keys >= self.limits.idempotency_cap {
            return Err(StoreError::StoreFull {
                what: "idempotency keys",
                cap: self.limits.idempotency_cap,
            });
        }
        Ok(())
    }

    /// What the store holds, as counted at most [`COUNTS_FRESH`] ago (plus this process's own
    /// writes since).
    async fn counts(&self) -> Result<Counts, StoreError> {
        let cached = *self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counts) = cached.filter(|counts| counts.at.elapsed() < COUNTS_FRESH) {
            return Ok(counts);
        }
        let hellos = self.hellos.estimated_document_count().await;
        let keys = self.idempotency.estimated_document_count().await;
        let leases = self.leases.estimated_document_count().await;
        let counts = Counts {
            at: Instant::now(),
            hellos: hellos.map_err(StoreError::unavailable)?,
            keys: keys.map_err(StoreError::unavailable)?,
            leases: leases.map_err(StoreError::unavailable)?,
        };
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = Some(counts);
        Ok(counts)
    }

    /// Refuses a lease that would take hellos when `lease_record_cap` leases are kept.
    pub(super) async fn check_lease_cap(&self) -> Result<(), StoreError> {
        if self.counts().await?.leases >= self.limits.lease_record_cap {
            return Err(StoreError::StoreFull {
                what: "lease records",
                cap: self.limits.lease_record_cap,
            });
        }
        Ok(())
    }

    /// Adds lease records this process inserted (or takes those it deleted) to the last count.
    pub(super) fn count_leases(&self, delta: i64) {
        if let Some(counts) = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            counts.leases = counts.leases.saturating_add_signed(delta);
        }
    }

    /// Takes hellos this process deleted off the last count.
    pub(super) fn count_deleted(&self, hellos: u64) {
        self.count(-i64::try_from(hellos).unwrap_or(i64::MAX), 0);
    }

    /// Adds this process's own writes to the last count.
    pub(super) fn count(&self, hellos: i64, keys: i64) {
        if let Some(counts) = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            counts.hellos = counts.hellos.saturating_add_signed(hellos);
            counts.keys = counts.keys.saturating_add_signed(keys);
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

    /// The record of this sender's key: stored scoped to the sender, or, for a key recorded
    /// before 0.2.0, bare (and then only if this sender made it).
    async fn first_send_with(
        &self,
        hello: &NewHello,
        key: &IdempotencyKey,
        scoped: &str,
    ) -> Result<Option<IdempotencyDocument>, StoreError> {
        let legacy = doc! { "_id": key.as_str(), "from_key": hello.from.key() };
        for filter in [legacy, doc! { "_id": scoped }] {
            if let Some(first) = self
                .idempotency
                .find_one(filter)
                .await
                .map_err(StoreError::unavailable)?
            {
                return Ok(Some(first));
            }
        }
        Ok(None)
    }

    async fn send_idempotent(
        &self,
        hello: &NewHello,
        key: &IdempotencyKey,
    ) -> Result<StoredHello, StoreError> {
        let scoped = scoped_idempotency_id(&hello.from, key);
        for _ in 0..RACE_ATTEMPTS {
            if let Some(first) = self.first_send_with(hello, key, &scoped).await? {
                if first.to_key != hello.to.key() {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                if first.stored_at.is_none() {
                    // The first attempt died between recording the key and storing the hello:
                    // store it under the claim it was sent under (a release since must not make
                    // it readable by others).
                    let covered_by = if first.stamped {
                        first.covered_by
                    } else {
                        self.covering_claim(&hello.to).await?
                    };
                    self.insert_hello(&document_for(&first.hello, &hello.to, covered_by)?)
                        .await?;
                    self.mark_stored(&first.key).await?;
                }
                return Ok(first.hello);
            }

            let covered_by = self.covering_claim(&hello.to).await?;
            self.check_inbox_cap(&hello.to).await?;
            self.check_store_caps(true).await?;
            let (stored, document) = new_hello(hello, covered_by);
            let record = IdempotencyDocument {
                key: scoped.clone(),
                to_key: hello.to.key().to_owned(),
                from_key: hello.from.key().to_owned(),
                hello: stored.clone(),
                created: DateTime::now(),
                stored_at: None,
                covered_by,
                stamped: true,
            };
            match self.idempotency.insert_one(&record).await {
                Ok(_) => self.count(0, 1),
                // Another request with this key got there first: answer what it recorded.
                Err(error) if is_duplicate_key(&error) => continue,
                Err(error) => return Err(write_failed(Operation::Send)(error)),
            }
            self.insert_hello(&document).await?;
            self.mark_stored(&scoped).await?;
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
            .map_err(write_failed(Operation::Send))?;
        Ok(())
    }
}
