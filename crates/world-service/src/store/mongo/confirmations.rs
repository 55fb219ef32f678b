//! Ending leases on MongoDB, a batch at a time: a GET's acknowledgements cost one `delete`; a
//! batch of reliable reads' confirmations one `update` marking the leases confirmed (only those
//! that still hold), one `delete` of the hellos they still hold and one `find` reading the leases
//! back, whatever its number of calls.

use std::collections::HashMap;

use hello_common::{Name, timestamp::Millis};
use mongodb::bson::{Document, doc};

use super::{
    MongoStore,
    batch::{CallOutcomes, find_all},
    documents::{LEASE_FIELD, LeaseDocument},
    write_failed,
};
use crate::store::{Confirmation, Operation, StoreError};

impl MongoStore {
    /// A GET's leases, delivered: deletes the hellos they still hold (one `delete`). A GET's
    /// lease has no record to forget (those of earlier releases are forgotten by their TTL).
    pub(super) async fn acknowledge_leases(&self, lease_ids: &[String]) -> Result<u64, StoreError> {
        let result = self
            .hellos
            .delete_many(doc! { LEASE_FIELD: { "$in": lease_ids } })
            .await
            .map_err(write_failed(Operation::Acknowledge))?;
        self.count_deleted(result.deleted_count);
        Ok(result.deleted_count)
    }

    /// See [`crate::store::Store::confirm_batch`]. The leases are marked confirmed (only those
    /// that still hold) before their hellos are deleted: a failure in between is finished by the
    /// client's retry, which finds the mark and deletes again.
    pub(super) async fn confirm_batch_here(
        &self,
        confirmations: Vec<(Name, String)>,
    ) -> Vec<Result<Confirmation, StoreError>> {
        let mut outcomes = CallOutcomes::new(confirmations.len());
        if confirmations.is_empty() {
            return Vec::new();
        }
        let every = 0..confirmations.len();
        // One statement per confirmation, each naming its lease and its inbox, in one command.
        let now = Millis::now().0;
        let marks: Vec<Document> = confirmations
            .iter()
            .map(|(name, lease_id)| {
                doc! {
                    "q": {
                        "_id": lease_id,
                        "to": name.key(),
                        "until": { "$gte": now },
                        "confirmed_at": { "$exists": false },
                    },
                    "u": { "$set": { "confirmed_at": now } },
                    "multi": false,
                }
            })
            .collect();
        match self.update_each("leases", marks, Operation::Confirm).await {
            Ok(refused) => {
                let error = StoreError::unavailable(anyhow::anyhow!(
                    "the store refused to mark this lease confirmed"
                ));
                outcomes.fail(refused, &error);
            }
            Err(error) => {
                outcomes.fail(every, &error);
                return outcomes.into_vec();
            }
        }
        // Right after the mark, in one command, a statement each: the hellos each lease still
        // holds (its own, in its inbox, its time not run out). Marked and deleted one round trip
        // apart, so that a lease running out in between, and its hellos leased again by another
        // replica, is as unlikely as it can be without a transaction; a lease that ran out keeps
        // its hellos (they come back), and one confirmed before has its leftovers deleted.
        let deletes: Vec<Document> = confirmations
            .iter()
            .map(|(name, lease_id)| {
                doc! {
                    "q": { LEASE_FIELD: lease_id, "to": name.key(), "lease_until": { "$gte": now } },
                    "limit": 0,
                }
            })
            .collect();
        match self
            .delete_each("hellos", deletes, Operation::Confirm)
            .await
        {
            Ok(deleted) => self.count_deleted(deleted),
            Err(error) => {
                outcomes.fail(every, &error);
                return outcomes.into_vec();
            }
        }
        let ids: Vec<&str> = confirmations.iter().map(|(_, id)| id.as_str()).collect();
        let found = find_all(&self.leases, doc! { "_id": { "$in": &ids } }).await;
        let leases: HashMap<String, LeaseDocument> = match found {
            Ok(found) => found
                .into_iter()
                .map(|lease| (lease.id.clone(), lease))
                .collect(),
            Err(error) => {
                // The leases that still held are marked confirmed: repeating is safe, and says.
                let error = StoreError::OutcomeUnknown {
                    operation: Operation::Confirm,
                    cause: error.into(),
                };
                outcomes.fail(every, &error);
                return outcomes.into_vec();
            }
        };
        let answers: Vec<Confirmation> = confirmations
            .iter()
            .map(|(name, id)| match leases.get(id) {
                Some(lease) if lease.to == name.key() && lease.confirmed_at.is_some() => {
                    Confirmation::Confirmed
                }
                Some(lease) if lease.to == name.key() => Confirmation::Expired,
                _ => Confirmation::Unknown,
            })
            .collect();
        for (at, answer) in answers.into_iter().enumerate() {
            if !outcomes.is_set(at) {
                outcomes.set(at, Ok(answer));
            }
        }
        outcomes.into_vec()
    }
}
