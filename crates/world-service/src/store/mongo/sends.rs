//! Storing hellos in MongoDB, a batch at a time. Whatever the number of sends in it, a batch
//! costs the same commands: one `find` of the idempotency records its keys name, one
//! `aggregate` counting its recipients' inboxes, one multi-document `insert` of its new
//! idempotency records, one of its hellos, and one `update` marking the records stored: five,
//! two without idempotency keys (plus the one `find` of the batch's claims, made by the route,
//! and the caps' count of the collections, at most every 500 ms). A key repeated within the
//! batch, or recorded by another request meanwhile, costs a second pass (see `send_pass`); a
//! batch holding a retry that finishes a send cut short, up to three more (see
//! [`super::retries`]).
//! Every send keeps its own outcome: a full inbox, a reused key or a refused document fails that
//! send alone.
//!
//! With an idempotency key a send is stored at most once: its record (the hello it stores,
//! `stored_at` null) is inserted before the hello and marked once the hello is. A retry finds the
//! record and answers its hello, finishing the send first if the first attempt died in between
//! (see [`super::retries`]: a hello delivered meanwhile is not stored again). A key used twice in
//! one batch is answered once the first use is done, as a retry.

use std::collections::HashMap;

use hello_common::{Name, timestamp::Millis, wire::StoredHello};
use mongodb::bson::{DateTime, doc};

use super::{
    MongoStore, RACE_ATTEMPTS,
    batch::{CallOutcomes, Inserted, find_all, inserted},
    documents::{HelloDocument, IdempotencyDocument, new_hello, parked_document_for},
    write_failed,
};
use crate::store::{NewHello, Operation, StoreError, claims::Claims, scoped_idempotency_id};

/// One send of a batch, on its way to the store.
pub(super) struct Pending {
    /// Its place in the batch.
    pub index: usize,
    pub hello: NewHello,
    /// What it answers, and the document that stores it.
    pub stored: StoredHello,
    pub document: HelloDocument,
    /// The id of its idempotency record, if it has a key.
    pub record: Option<String>,
    /// A retry finishing a first attempt that recorded its key and may have died before storing
    /// the hello: its document is inserted parked, then settled ([`super::retries`]); nothing
    /// new to record or to count against the caps.
    pub finishing: bool,
}

/// The claim a hello to `to` is stamped with (see `HelloDocument::covered_by`). A claim being
/// released refuses the send (503, retry): its hellos are being deleted.
fn stamp(claims: &Claims, to: &Name) -> Result<Option<i64>, StoreError> {
    match claims.covering(to)? {
        Some(found) if found.releasing => Err(StoreError::unavailable(anyhow::anyhow!(
            "the claim covering the recipient is being released; retry"
        ))),
        Some(found) => Ok(Some(found.claim.claimed_at)),
        None => Ok(None),
    }
}

impl MongoStore {
    /// See [`crate::store::Store::send_batch`].
    pub(super) async fn send_batch_here(
        &self,
        hellos: Vec<NewHello>,
        claims: &Claims,
    ) -> Vec<Result<StoredHello, StoreError>> {
        self.send_pass(hellos, claims, 0).await
    }

    /// One pass over `hellos`. The first holds back the later uses of a key the batch repeats;
    /// they go in the next pass with the sends whose key another request recorded first, all
    /// answered as retries then. A pass after the first holds nothing back, so the passes are
    /// few (a key repeated in the batch whose first use was refused records in the second pass
    /// and answers the rest in the third), and at most [`RACE_ATTEMPTS`] whatever happens.
    async fn send_pass(
        &self,
        hellos: Vec<NewHello>,
        claims: &Claims,
        pass: usize,
    ) -> Vec<Result<StoredHello, StoreError>> {
        let mut outcomes = CallOutcomes::new(hellos.len());
        if pass >= RACE_ATTEMPTS {
            let error = StoreError::unavailable(anyhow::anyhow!(
                "the idempotency record for this key kept changing; retry"
            ));
            outcomes.fail(0..hellos.len(), &error);
            return outcomes.into_vec();
        }
        let mut pending: Vec<Pending> = Vec::new();
        let mut repeats: Vec<(usize, NewHello)> = Vec::new();
        for (index, hello) in hellos.into_iter().enumerate() {
            let covered_by = match stamp(claims, &hello.to) {
                Ok(covered_by) => covered_by,
                Err(error) => {
                    outcomes.set(index, Err(error));
                    continue;
                }
            };
            let record = hello
                .idempotency_key
                .as_ref()
                .map(|key| scoped_idempotency_id(&hello.from, key));
            if pass == 0 && record.is_some() && pending.iter().any(|other| other.record == record) {
                repeats.push((index, hello));
                continue;
            }
            let (stored, document) = new_hello(&hello, covered_by, record.clone());
            pending.push(Pending {
                index,
                hello,
                stored,
                document,
                record,
                finishing: false,
            });
        }
        if pending.iter().any(|send| send.record.is_some()) {
            self.answer_retries(&mut pending, &mut outcomes).await;
        }
        if pending.iter().any(|send| !send.finishing) {
            let sizes = self.inbox_sizes_of(&pending).await;
            let counts = self.counts().await;
            super::counts::check_caps(&mut pending, &mut outcomes, self.limits, sizes, counts);
        }
        repeats.extend(self.record_keys(&mut pending, &mut outcomes).await);
        self.insert_hellos(&mut pending, &mut outcomes).await;
        self.settle_parked(&mut pending, &mut outcomes).await;
        self.mark_stored(pending, &mut outcomes).await;
        if !repeats.is_empty() {
            // Now answered as retries of the first use of their key (or, if another request
            // recorded the key first, of that one).
            let (indices, hellos): (Vec<usize>, Vec<NewHello>) = repeats.into_iter().unzip();
            let answers = Box::pin(self.send_pass(hellos, claims, pass + 1)).await;
            for (index, answer) in indices.into_iter().zip(answers) {
                outcomes.set(index, answer);
            }
        }
        outcomes.into_vec()
    }

    /// Answers the sends whose key is recorded already (their first hello, or a reused key),
    /// and turns those whose first attempt died half-way into finishing ones: one `find`.
    async fn answer_retries(
        &self,
        pending: &mut Vec<Pending>,
        outcomes: &mut CallOutcomes<StoredHello>,
    ) {
        // Keys recorded before 0.2.0 were stored bare; they answer only the sender who made them.
        let ids: Vec<&str> = pending
            .iter()
            .filter_map(|send| {
                Some((
                    send.record.as_deref()?,
                    send.hello.idempotency_key.as_ref()?,
                ))
            })
            .flat_map(|(scoped, key)| [scoped, key.as_str()])
            .collect();
        let found = find_all(&self.idempotency, doc! { "_id": { "$in": ids } }).await;
        let records: HashMap<String, IdempotencyDocument> = match found {
            Ok(records) => records
                .into_iter()
                .map(|record| (record.key.clone(), record))
                .collect(),
            Err(error) => {
                let error = StoreError::unavailable(error);
                let keyed = pending.iter().filter(|send| send.record.is_some());
                outcomes.fail(keyed.map(|send| send.index), &error);
                pending.retain(|send| send.record.is_none());
                return;
            }
        };
        pending.retain_mut(|send| {
            let (Some(scoped), Some(key)) = (&send.record, &send.hello.idempotency_key) else {
                return true;
            };
            let legacy = records
                .get(key.as_str())
                .filter(|record| record.from_key == send.hello.from.key());
            let Some(first) = legacy.or_else(|| records.get(scoped)) else {
                return true;
            };
            if first.to_key != send.hello.to.key() {
                outcomes.set(send.index, Err(StoreError::IdempotencyKeyReused));
                return false;
            }
            if first.stored_at.is_some() || first.delivered_at.is_some() {
                outcomes.set(send.index, Ok(first.hello.clone()));
                return false;
            }
            // Stored under the claim it was first sent under: a release since must not make it
            // readable by others.
            let covered_by = if first.stamped {
                first.covered_by
            } else {
                send.document.covered_by
            };
            match parked_document_for(&first.hello, &send.hello.to, covered_by, &first.key) {
                Ok(document) => {
                    send.document = document;
                    send.stored = first.hello.clone();
                    send.record = Some(first.key.clone());
                    send.finishing = true;
                    true
                }
                Err(error) => {
                    outcomes.set(send.index, Err(error));
                    false
                }
            }
        });
    }

    /// How many hellos wait in the inboxes new sends go to: one `aggregate`.
    async fn inbox_sizes_of(
        &self,
        pending: &[Pending],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut inboxes: Vec<&str> = pending
            .iter()
            .filter(|send| !send.finishing)
            .map(|send| send.hello.to.key())
            .collect();
        inboxes.sort_unstable();
        inboxes.dedup();
        if inboxes.is_empty() {
            return Ok(HashMap::new());
        }
        self.inbox_sizes(&inboxes).await
    }

    /// Records the new sends' keys: one `insert`. Answers the sends another request recorded
    /// the same key for first: they go again, as retries.
    async fn record_keys(
        &self,
        pending: &mut Vec<Pending>,
        outcomes: &mut CallOutcomes<StoredHello>,
    ) -> Vec<(usize, NewHello)> {
        let new: Vec<usize> = (0..pending.len())
            .filter(|&at| pending[at].record.is_some() && !pending[at].finishing)
            .collect();
        if new.is_empty() {
            return Vec::new();
        }
        let records: Vec<IdempotencyDocument> = new
            .iter()
            .map(|&at| {
                let send = &pending[at];
                IdempotencyDocument {
                    key: send.record.clone().unwrap_or_default(),
                    to_key: send.hello.to.key().to_owned(),
                    from_key: send.hello.from.key().to_owned(),
                    hello: send.stored.clone(),
                    created: DateTime::now(),
                    stored_at: None,
                    delivered_at: None,
                    covered_by: send.document.covered_by,
                    stamped: true,
                }
            })
            .collect();
        let outcome = self.idempotency.insert_many(records).ordered(false).await;
        let mut dropped = vec![false; pending.len()];
        let mut raced = Vec::new();
        match inserted(outcome.map(|_| ()), Operation::Send) {
            Inserted::Each { refused } => {
                self.count(0, (new.len() - refused.len()) as i64);
                for (index, duplicate) in refused {
                    let at = new[index];
                    dropped[at] = true;
                    if duplicate {
                        raced.push(at);
                    } else {
                        let error = StoreError::unavailable(anyhow::anyhow!(
                            "the store refused this send's idempotency record"
                        ));
                        outcomes.set(pending[at].index, Err(error));
                    }
                }
            }
            Inserted::All(error) => {
                // No hello is stored for a key whose record is in doubt: its retry finishes it.
                outcomes.fail(new.iter().map(|&at| pending[at].index), &error);
                for &at in &new {
                    dropped[at] = true;
                }
            }
        }
        let mut kept = Vec::with_capacity(pending.len());
        let mut again = Vec::new();
        for (at, send) in std::mem::take(pending).into_iter().enumerate() {
            if raced.contains(&at) {
                again.push((send.index, send.hello));
            } else if !dropped[at] {
                kept.push(send);
            }
        }
        *pending = kept;
        again
    }

    /// Inserts the hellos: one `insert`. A hello already there is not an error: the first
    /// attempt's, met by a retry, or a retry's parked copy, met by a slow first attempt (which
    /// then settles it as a retry would, see [`super::retries`]).
    async fn insert_hellos(
        &self,
        pending: &mut Vec<Pending>,
        outcomes: &mut CallOutcomes<StoredHello>,
    ) {
        if pending.is_empty() {
            return;
        }
        let documents: Vec<&HelloDocument> = pending.iter().map(|send| &send.document).collect();
        let outcome = self.hellos.insert_many(documents).ordered(false).await;
        match inserted(outcome.map(|_| ()), Operation::Send) {
            Inserted::Each { refused } => {
                let mut stored = 0;
                let mut at = 0;
                pending.retain_mut(|send| {
                    let refusal = refused.iter().find(|(index, _)| *index == at);
                    at += 1;
                    match refusal {
                        None => {
                            stored += 1;
                            true
                        }
                        // The hello is there already: a retry finishing it, or (a first
                        // attempt, whose id is new) a retry's copy, which may be parked.
                        Some((_, true)) => {
                            send.finishing |= send.record.is_some();
                            true
                        }
                        Some((_, false)) => {
                            let error = StoreError::unavailable(anyhow::anyhow!(
                                "the store refused this hello"
                            ));
                            outcomes.set(send.index, Err(error));
                            false
                        }
                    }
                });
                self.count(stored, 0);
            }
            Inserted::All(error) => {
                outcomes.fail(pending.iter().map(|send| send.index), &error);
                pending.clear();
            }
        }
    }

    /// Marks the stored hellos' records stored (one `update`) and answers every stored send.
    async fn mark_stored(&self, pending: Vec<Pending>, outcomes: &mut CallOutcomes<StoredHello>) {
        let records: Vec<&str> = pending
            .iter()
            .filter_map(|send| send.record.as_deref())
            .collect();
        let marked = if records.is_empty() {
            Ok(())
        } else {
            self.idempotency
                .update_many(
                    doc! { "_id": { "$in": records } },
                    doc! { "$set": { "stored_at": Millis::now().0 } },
                )
                .await
                .map(|_| ())
                .map_err(write_failed(Operation::Send))
        };
        for send in pending {
            match (&marked, &send.record) {
                (Err(error), Some(_)) => outcomes.fail([send.index], error),
                _ => outcomes.set(send.index, Ok(send.stored)),
            }
        }
    }
}
