//! Taking hellos out of MongoDB: leasing, acknowledging (GET) and confirming (reliable reads).

use std::collections::HashSet;

use futures::TryStreamExt;
use hello_common::{
    Name,
    timestamp::Millis,
    wire::{DeliveredHello, Lease},
};
use mongodb::bson::{DateTime, doc};

use super::{
    MongoStore, RACE_ATTEMPTS,
    documents::{HelloDocument, LEASE_FIELD, LeaseDocument},
    is_duplicate_key, write_failed,
};
use crate::store::{Confirmation, LeaseRequest, Operation, StoreError, new_lease_id, ttl_millis};

/// What one attempt to lease found.
#[derive(Default)]
struct Attempt {
    /// Hellos that were free to take when the attempt looked.
    candidates: usize,
    /// Those it won (others may have taken the rest first), oldest first.
    won: Vec<HelloDocument>,
    /// When the lease runs out.
    until: i64,
    /// How many of `won` an earlier lease had taken.
    redelivered: u64,
}

/// The hellos of `name` a lease may take at `now`: not leased, and sent while no claim covered
/// the inbox or while the claim that covers it now did (see `HelloDocument::covered_by`).
fn leasable(name: &Name, request: &LeaseRequest, now: i64) -> mongodb::bson::Document {
    let covered_by = match request.covering_claim {
        Some(claim) => mongodb::bson::Bson::Document(doc! { "$in": [null, claim] }),
        None => mongodb::bson::Bson::Null,
    };
    doc! { "to": name.key(), "lease_until": { "$lt": now }, "covered_by": covered_by }
}

impl MongoStore {
    /// Leases up to `request.limit` of the oldest visible hellos of `name`.
    pub(super) async fn lease_hellos(
        &self,
        name: &Name,
        request: LeaseRequest,
    ) -> Result<Lease, StoreError> {
        let lease_id = new_lease_id();
        let mut attempt = Attempt::default();
        for _ in 0..RACE_ATTEMPTS {
            attempt = self.try_lease(name, request, &lease_id).await?;
            // Stop when there was nothing to take, or when we won something: a smaller page is
            // fine. Retry only if other readers took every candidate first.
            if attempt.candidates == 0 || !attempt.won.is_empty() {
                break;
            }
        }
        let Attempt {
            won,
            until,
            redelivered,
            ..
        } = attempt;
        if !won.is_empty() {
            // Recorded after the hellos are won: a crash in between leaves a lease no
            // confirmation knows (404), whose hellos come back when it runs out.
            let lease = LeaseDocument {
                id: lease_id.clone(),
                to: name.key().to_owned(),
                until,
                forget_at: DateTime::from_millis(
                    until.saturating_add(ttl_millis(self.limits.idempotency_ttl)),
                ),
                confirmed_at: None,
            };
            match self.leases.insert_one(&lease).await {
                Ok(_) => self.count_leases(1),
                Err(error) if is_duplicate_key(&error) => {}
                Err(error) => return Err(write_failed(Operation::Lease)(error)),
            }
        }
        let remaining = self
            .hellos
            .count_documents(leasable(name, &request, Millis::now().0))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Lease {
            lease_id: (!won.is_empty()).then_some(lease_id),
            expires_at: (!won.is_empty()).then(|| Millis(until).to_rfc3339()),
            hellos: won
                .into_iter()
                .map(|hello| DeliveredHello {
                    id: hello.id,
                    from: hello.from,
                    at: Millis(hello.at).to_rfc3339(),
                    verified: hello.verified,
                })
                .collect(),
            remaining,
            redelivered,
        })
    }

    /// One attempt to lease up to `limit` hellos: pick candidates, then win what is still free.
    async fn try_lease(
        &self,
        name: &Name,
        request: LeaseRequest,
        lease_id: &str,
    ) -> Result<Attempt, StoreError> {
        let now = Millis::now();
        let until = now
            .plus_millis(u64::try_from(request.lease.as_millis()).unwrap_or(u64::MAX))
            .0;
        let now = now.0;
        let leasable = leasable(name, &request, now);
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
            return Ok(Attempt {
                until,
                ..Attempt::default()
            });
        }
        // This lease would take hellos, and so be kept: refused at the cap, before it takes any.
        self.check_lease_cap().await?;
        // Candidates an earlier lease took (and did not confirm in time): if won, delivered again.
        let leased_before: HashSet<&str> = candidates
            .iter()
            .filter(|hello| hello.lease_until != 0)
            .map(|hello| hello.id.as_str())
            .collect();
        let ids: Vec<&str> = candidates.iter().map(|hello| hello.id.as_str()).collect();
        let mut win = leasable;
        win.insert("_id", doc! { "$in": ids });
        self.hellos
            .update_many(
                win,
                doc! { "$set": { "lease_until": until, LEASE_FIELD: lease_id } },
            )
            .await
            .map_err(write_failed(Operation::Lease))?;
        let won: Vec<HelloDocument> = self
            .hellos
            .find(doc! { LEASE_FIELD: lease_id })
            .sort(doc! { "order": 1 })
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        let redelivered = won
            .iter()
            .filter(|hello| leased_before.contains(hello.id.as_str()))
            .count() as u64;
        Ok(Attempt {
            candidates: candidates.len(),
            won,
            until,
            redelivered,
        })
    }

    /// A GET's leases, delivered: deletes the hellos they still hold, and forgets them.
    pub(super) async fn acknowledge_leases(&self, lease_ids: &[String]) -> Result<u64, StoreError> {
        let result = self
            .hellos
            .delete_many(doc! { LEASE_FIELD: { "$in": lease_ids } })
            .await
            .map_err(write_failed(Operation::Acknowledge))?;
        self.count_deleted(result.deleted_count);
        let forgotten = self
            .leases
            .delete_many(doc! { "_id": { "$in": lease_ids } })
            .await
            .map_err(write_failed(Operation::Acknowledge))?;
        self.count_leases(-i64::try_from(forgotten.deleted_count).unwrap_or(i64::MAX));
        Ok(result.deleted_count)
    }

    /// A reliable read's confirmation; see [`crate::store::Store::confirm`]. The lease is marked
    /// confirmed (only while it still holds) before its hellos are deleted: a crash in between
    /// is finished by the client's retry, which finds the mark and deletes again.
    pub(super) async fn confirm_lease(
        &self,
        name: &Name,
        lease_id: &str,
    ) -> Result<Confirmation, StoreError> {
        let ours = doc! { "_id": lease_id, "to": name.key() };
        let Some(lease) = self
            .leases
            .find_one(ours.clone())
            .await
            .map_err(StoreError::unavailable)?
        else {
            return Ok(Confirmation::Unknown);
        };
        if lease.confirmed_at.is_none() {
            let now = Millis::now().0;
            let mut in_time = ours;
            in_time.insert("until", doc! { "$gte": now });
            in_time.insert("confirmed_at", doc! { "$exists": false });
            let marked = self
                .leases
                .update_one(in_time, doc! { "$set": { "confirmed_at": now } })
                .await
                .map_err(write_failed(Operation::Confirm))?;
            if marked.modified_count == 0 {
                // Ran out before this confirmation, unless another one just marked it.
                let again = self
                    .leases
                    .find_one(doc! { "_id": lease_id })
                    .await
                    .map_err(StoreError::unavailable)?;
                if again.and_then(|lease| lease.confirmed_at).is_none() {
                    return Ok(Confirmation::Expired);
                }
            }
        }
        let deleted = self
            .hellos
            .delete_many(doc! { LEASE_FIELD: lease_id })
            .await
            .map_err(write_failed(Operation::Confirm))?;
        self.count_deleted(deleted.deleted_count);
        Ok(Confirmation::Confirmed)
    }
}
