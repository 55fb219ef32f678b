//! Sends retried with their idempotency key, and what a delivery must do first so that such a
//! retry never stores a delivered hello again.
//!
//! A keyed send records its key (`stored_at` null), inserts its hello, then marks the record
//! stored. A process that dies between the insert and the mark leaves a record that does not say
//! whether its hello is in the store. The hello may be read, confirmed and deleted before the
//! client's retry comes; the retry then finds neither the hello nor a mark, and must not store
//! the hello again. So:
//! - every hello sent with a key names its record (`HelloDocument::record`), and the first lease
//!   that wins the hello marks that record `delivered_at` before it is answered
//!   ([`MongoStore::mark_delivered_records`]): a delivered hello has a record that says so, and
//!   a retry answers it without storing it, even one that read the record before the send
//!   marked it stored;
//! - a retry that finds its record neither stored nor delivered (`Pending::finishing`) inserts
//!   the hello *parked* (hidden from every lease), reads the record again, and only then shows
//!   the hello, or deletes its copy if the record now says delivered
//!   ([`MongoStore::settle_parked`]). A lease cannot take the parked copy, so a delivery seen
//!   after the insert was of the first attempt's hello: the copy must go. `stored_at` alone
//!   proves nothing here: the first attempt, slow rather than dead, may have marked it after its
//!   own insert met the copy;
//! - such a first attempt (its insert met a copy: same id) settles the copy the same way before
//!   it answers, so a copy whose retry died is shown, never left hidden behind a 201.
//!
//! What this does not cover: a first attempt whose insert reaches the store only after its retry
//! showed the hello and the hello was delivered and deleted stores it again (one extra delivery;
//! the client retried before the first attempt's answer was due). A copy whose retry died, with
//! no first attempt or later retry to settle it, stays hidden: that send was never answered 201.
//! Hellos stored before this release name no record.

use std::collections::HashSet;

use hello_common::{timestamp::Millis, wire::StoredHello};
use mongodb::bson::{Document, doc};

use super::{
    MongoStore,
    batch::{CallOutcomes, find_all},
    documents::HelloDocument,
    sends::Pending,
};
use crate::store::{Operation, StoreError};

/// The `lease_until` of a retry's copy of a hello until the retry knows it was never delivered:
/// no lease takes it (a lease takes hellos whose `lease_until` has passed).
pub(super) const PARKED: i64 = i64::MAX;

impl MongoStore {
    /// Marks delivered the idempotency records of `hellos` (which a lease won), those not marked
    /// delivered yet: one `update`, a statement per hello, and none when no hello was sent with
    /// a key. A retry of their sends then answers the hello instead of storing it again, even
    /// after it was deleted, whether or not its send had marked the record stored (a retry may
    /// have read the record before that).
    pub(super) async fn mark_delivered_records(
        &self,
        hellos: &[&HelloDocument],
    ) -> Result<(), StoreError> {
        let now = Millis::now().0;
        let marks: Vec<Document> = hellos
            .iter()
            .filter_map(|hello| Some((hello.record.as_deref()?, hello.id.as_str())))
            .map(|(record, hello)| {
                doc! {
                    // The record of this very hello: a key reused once its record expired has
                    // a new record under the same id, for another hello. `null` matches a
                    // missing field too.
                    "q": { "_id": record, "hello.id": hello, "delivered_at": null },
                    "u": { "$set": { "delivered_at": now } },
                    "multi": false,
                }
            })
            .collect();
        if marks.is_empty() {
            return Ok(());
        }
        let refused = self
            .update_each("idempotency", marks, Operation::Lease)
            .await?;
        if refused.is_empty() {
            Ok(())
        } else {
            Err(StoreError::OutcomeUnknown {
                operation: Operation::Lease,
                cause: anyhow::anyhow!("the store refused to mark a delivered hello's record"),
            })
        }
    }

    /// After the insert, for the sends whose hello may be a parked copy (`finishing`: retries,
    /// and first attempts whose insert met a retry's copy): one `find` of their records, then one
    /// `delete` of the copies whose record a delivery marked meanwhile (answered with their first
    /// hello) and one `update` showing the others, which stay in `pending` to be marked stored.
    pub(super) async fn settle_parked(
        &self,
        pending: &mut Vec<Pending>,
        outcomes: &mut CallOutcomes<StoredHello>,
    ) {
        let parked: Vec<&str> = pending
            .iter()
            .filter(|send| send.finishing)
            .filter_map(|send| send.record.as_deref())
            .collect();
        if parked.is_empty() {
            return;
        }
        let found = find_all(&self.idempotency, doc! { "_id": { "$in": &parked } }).await;
        // The records a lease marked delivered: their hellos' copies must go.
        let delivered: HashSet<String> = match found {
            Ok(records) => records
                .into_iter()
                .filter(|record| record.delivered_at.is_some())
                .map(|record| record.key)
                .collect(),
            Err(error) => {
                // The copy stays parked: the client's retry settles it.
                let error = StoreError::OutcomeUnknown {
                    operation: Operation::Send,
                    cause: error.into(),
                };
                let finishing = pending.iter().filter(|send| send.finishing);
                outcomes.fail(finishing.map(|send| send.index), &error);
                pending.retain(|send| !send.finishing);
                return;
            }
        };
        let was_delivered = |send: &Pending| {
            send.record
                .as_ref()
                .is_some_and(|record| delivered.contains(record))
        };
        // The copy of each retry, if it is still parked: deleted, or shown to readers.
        let (mut copies, mut shown) = (Vec::new(), Vec::new());
        for send in pending.iter().filter(|send| send.finishing) {
            let copy = doc! { "_id": &send.document.id, "lease_until": PARKED };
            if was_delivered(send) {
                copies.push(doc! { "q": copy, "limit": 1 });
            } else {
                let show = doc! { "$set": { "lease_until": 0_i64 } };
                shown.push(doc! { "q": copy, "u": show, "multi": false });
            }
        }
        let failed = match self.delete_and_show(copies, shown).await {
            Ok(deleted) => {
                self.count(-i64::try_from(deleted).unwrap_or(i64::MAX), 0);
                None
            }
            Err(error) => Some(error),
        };
        pending.retain(|send| {
            if !send.finishing {
                return true;
            }
            if let Some(error) = &failed {
                outcomes.fail([send.index], error);
                return false;
            }
            if was_delivered(send) {
                outcomes.set(send.index, Ok(send.stored.clone()));
                return false;
            }
            true
        });
    }

    /// Deletes the parked `copies` (one `delete`) and shows the `shown` ones (one `update`), each
    /// command only if it has statements; answers how many copies were deleted.
    async fn delete_and_show(
        &self,
        copies: Vec<Document>,
        shown: Vec<Document>,
    ) -> Result<u64, StoreError> {
        let deleted = if copies.is_empty() {
            0
        } else {
            self.delete_each("hellos", copies, Operation::Send).await?
        };
        if !shown.is_empty() {
            let refused = self.update_each("hellos", shown, Operation::Send).await?;
            if !refused.is_empty() {
                return Err(StoreError::OutcomeUnknown {
                    operation: Operation::Send,
                    cause: anyhow::anyhow!("the store refused to show a retried hello"),
                });
            }
        }
        Ok(deleted)
    }
}
