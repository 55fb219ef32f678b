//! The waiting reads' check on MongoDB ([`crate::store::Store::wakeable`]): two commands (a
//! `find`, an `aggregate`, each answered in one batch) for every reader waiting on the pod
//! together, whatever their number. Change streams would need a
//! replica set, and the MongoDB this project deploys is a standalone member: this works on both.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::TryStreamExt;
use hello_common::{timestamp::Millis, token::TokenHash};
use mongodb::bson::{Bson, Document, doc};

use super::{MongoStore, ONE_BATCH};
use crate::store::{StoreError, Wakeable, WatchedRead};

/// A stored instant in ms, however the server typed it (an Int64 may come back as an Int32 or a
/// double from some servers; a claim's `claimed_at` is a date).
fn millis(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int64(value) => Some(*value),
        Bson::Int32(value) => Some(i64::from(*value)),
        Bson::Double(value) => Some(*value as i64),
        Bson::DateTime(value) => Some(value.timestamp_millis()),
        _ => None,
    }
}

impl MongoStore {
    /// See [`crate::store::Store::wakeable`].
    pub(super) async fn wakeable_inboxes(
        &self,
        watched: &[WatchedRead],
    ) -> Result<Wakeable, StoreError> {
        let mut wake = Wakeable::default();
        if watched.is_empty() {
            return Ok(wake);
        }
        let lookalikes: BTreeSet<&str> = watched.iter().map(|read| &*read.lookalike).collect();
        let inboxes: BTreeSet<&str> = watched.iter().map(|read| &*read.inbox).collect();

        // The claims covering the watched inboxes: their tokens, and which claim they are.
        let mut claims: HashMap<String, (Option<TokenHash>, Option<i64>)> = HashMap::new();
        let mut found = self
            .names
            .clone_with_type::<Document>()
            .find(doc! { "_id": { "$in": lookalikes.iter().copied().collect::<Vec<_>>() } })
            .projection(doc! { "token": 1, "claimed_at": 1 })
            .batch_size(ONE_BATCH)
            .await
            .map_err(StoreError::unavailable)?;
        while let Some(claim) = found.try_next().await.map_err(StoreError::unavailable)? {
            let Ok(lookalike) = claim.get_str("_id") else {
                continue;
            };
            let token = claim.get_str("token").ok().and_then(TokenHash::from_hex);
            let claimed_at = claim.get("claimed_at").and_then(millis);
            claims.insert(lookalike.to_owned(), (token, claimed_at));
        }

        // The watched inboxes holding a hello no running lease hides and a lease of their
        // readers may take: one sent under no claim, or under a claim that covers a watched
        // inbox now (`covered_by`; a hello sent while a claim since released covered it is for
        // nobody else). Counted by inbox (`count_by_inbox`: a `$group` by a plain field, which
        // every server we test against supports).
        let claimed_at: Vec<i64> = claims.values().filter_map(|(_, at)| *at).collect();
        let leasable: HashSet<String> = self
            .count_by_inbox(doc! {
                "to": { "$in": inboxes.iter().copied().collect::<Vec<_>>() },
                "lease_until": { "$lt": Millis::now().0 },
                "$or": [ { "covered_by": null }, { "covered_by": { "$in": claimed_at } } ],
            })
            .await?
            .into_keys()
            .collect();

        for read in watched {
            let claim_token = claims
                .get(&*read.lookalike)
                .and_then(|(token, _)| token.as_ref());
            if read.ownership_changed(claim_token) {
                wake.changed.insert(read.inbox.to_string());
            } else if leasable.contains(&*read.inbox) {
                wake.leasable.insert(read.inbox.to_string());
            }
        }
        Ok(wake)
    }
}
