//! What the MongoDB store holds, counted for its caps: the whole store's counts from the
//! collections' metadata (at most every [`COUNTS_FRESH`]), and a batch's recipients' inboxes in
//! one `aggregate`.

use std::{
    collections::HashMap,
    sync::PoisonError,
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use super::{Counts, MongoStore, ONE_BATCH};
use super::{batch::CallOutcomes, sends::Pending};
use crate::store::{StoreError, StoreLimits};
use hello_common::wire::StoredHello;

/// How long a count of the store serves the caps before it is taken again. Between counts this
/// process adds its own writes; other replicas' show at the next count, so with several replicas
/// the store may go past its caps by what they write in this time.
const COUNTS_FRESH: Duration = Duration::from_millis(500);

impl MongoStore {
    /// What the store holds, as counted at most [`COUNTS_FRESH`] ago (plus this process's own
    /// writes since).
    pub(super) async fn counts(&self) -> Result<Counts, StoreError> {
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

    /// Adds lease records this process inserted to the last count.
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

    /// How many hellos wait in each of these inboxes (inbox key → count; an empty inbox is
    /// left out): one `aggregate`, answered in one batch, whatever their number.
    pub(super) async fn inbox_sizes(
        &self,
        inboxes: &[&str],
    ) -> Result<HashMap<String, u64>, StoreError> {
        self.count_by_inbox(doc! { "to": { "$in": inboxes } }).await
    }

    /// How many hellos `filter` selects in each inbox (inbox key → count; none is left out):
    /// one `aggregate`, answered in one batch.
    pub(super) async fn count_by_inbox(
        &self,
        filter: Document,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let pipeline = [
            doc! { "$match": filter },
            doc! { "$group": { "_id": "$to", "hellos": { "$sum": 1 } } },
        ];
        let mut counts = HashMap::new();
        let mut groups = self
            .hellos
            .clone_with_type::<Document>()
            .aggregate(pipeline)
            .batch_size(ONE_BATCH)
            .await
            .map_err(StoreError::unavailable)?;
        while let Some(group) = groups.try_next().await.map_err(StoreError::unavailable)? {
            if let (Ok(inbox), Some(hellos)) = (group.get_str("_id"), group.get("hellos")) {
                counts.insert(inbox.to_owned(), whole(hellos));
            }
        }
        Ok(counts)
    }
}

/// A count as an aggregation answers it (an Int32, an Int64 or a double, by server).
pub(super) fn whole(value: &Bson) -> u64 {
    match value {
        Bson::Int32(count) => u64::try_from(*count).unwrap_or_default(),
        Bson::Int64(count) => u64::try_from(*count).unwrap_or_default(),
        Bson::Double(count) => *count as u64,
        _ => 0,
    }
}

/// Refuses, in the batch's order, the new sends past an inbox's cap or the store's caps.
pub(super) fn check_caps(
    pending: &mut Vec<Pending>,
    outcomes: &mut CallOutcomes<StoredHello>,
    limits: StoreLimits,
    sizes: Result<HashMap<String, u64>, StoreError>,
    counts: Result<Counts, StoreError>,
) {
    let (mut sizes, counts) = match (sizes, counts) {
        (Ok(sizes), Ok(counts)) => (sizes, counts),
        (Err(error), _) | (_, Err(error)) => {
            let new = pending.iter().filter(|send| !send.finishing);
            outcomes.fail(new.map(|send| send.index), &error);
            pending.retain(|send| send.finishing);
            return;
        }
    };
    let (mut hellos, mut keys) = (counts.hellos, counts.keys);
    pending.retain(|send| {
        if send.finishing {
            return true;
        }
        let waiting = sizes.entry(send.hello.to.key().to_owned()).or_default();
        let refusal = if *waiting >= limits.inbox_cap {
            Some(StoreError::InboxFull {
                name: send.hello.to.to_string(),
                cap: limits.inbox_cap,
            })
        } else if hellos >= limits.store_cap {
            Some(StoreError::StoreFull {
                what: "hellos",
                cap: limits.store_cap,
            })
        } else if send.record.is_some() && keys >= limits.idempotency_cap {
            Some(StoreError::StoreFull {
                what: "idempotency keys",
                cap: limits.idempotency_cap,
            })
        } else {
            None
        };
        match refusal {
            Some(error) => {
                outcomes.set(send.index, Err(error));
                false
            }
            None => {
                *waiting += 1;
                hellos += 1;
                keys += u64::from(send.record.is_some());
                true
            }
        }
    });
}
