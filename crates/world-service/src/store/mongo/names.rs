//! Claimed names in MongoDB: one document per group of look-alike names.
//!
//! `names`: `{_id: look-alike key, name, inbox, token, claimed_at, releasing_at}`. The `_id` makes
//! one claim per look-alike group (a second claim is a duplicate key); `token` is the SHA-256 of
//! the token (hex), unique, so that a presented token finds its claim. A token is checked in this
//! process, in constant time, and every change is conditioned on the token that was checked, so a
//! rotation racing another change loses rather than overwrites.
//!
//! Releasing takes three steps, in this order: mark the claim `releasing_at`, delete the hellos of
//! every inbox it covered (by their stored look-alike key), delete the claim. Until the last step
//! the name stays claimed, so a crash half-way never leaves its hellos readable by anyone else;
//! repeating the release, or claiming the name anew, finishes it. A send stamps its hello with
//! the claim covering its recipient (looked up with the batch's claims), so that one which raced the
//! release and landed after its deletion is leased by nobody who reads under another claim.
//!
//! Moving a claim to a new look-alike key ([`crate::store::rekey`], on open) takes three steps too,
//! because the token index is unique: park the old document's token under [`MOVING`], insert the
//! claim under its new key with its token, delete the old document. A crash between them leaves
//! the name claimed (its owner's token fails until the next open finishes the move).

use hello_common::{Name, timestamp::Millis, token::TokenHash};
use mongodb::bson::{DateTime, doc};
use serde::{Deserialize, Serialize};

use super::{MongoStore, RACE_ATTEMPTS, is_duplicate_key, write_failed};
use crate::store::{
    Claim, ClaimChange, Operation, StoreError,
    claims::{Claims, ClaimsWanted, Found},
    rekey::{self, Rekey, StoredClaim},
};

/// The prefix of a token hash parked while its claim moves to a new key (see the module's docs).
const MOVING: &str = "moving:";

/// A claimed name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NameDocument {
    /// The look-alike key: what the claim covers.
    #[serde(rename = "_id")]
    pub lookalike: String,
    pub name: String,
    pub inbox: String,
    /// SHA-256 of the token, lower-case hex.
    pub token: String,
    pub claimed_at: DateTime,
    /// When a release began that has not finished (ms since the epoch; an Int64, which survives
    /// `$set` on every server we test against, where a boolean may come back as an integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releasing_at: Option<i64>,
}

impl NameDocument {
    fn claim(self) -> Result<Claim, StoreError> {
        let token = TokenHash::from_hex(&self.token).ok_or_else(|| {
            StoreError::unavailable(anyhow::anyhow!(
                "the stored token hash of a claim is not hex"
            ))
        })?;
        Ok(Claim {
            name: self.name,
            inbox: self.inbox,
            token,
            claimed_at: self.claimed_at.timestamp_millis(),
        })
    }
}

impl MongoStore {
    pub(super) async fn claim_name_here(
        &self,
        name: &Name,
        token: TokenHash,
    ) -> Result<(), StoreError> {
        let document = NameDocument {
            lookalike: name.lookalike_key().to_owned(),
            name: name.to_string(),
            inbox: name.key().to_owned(),
            token: token.to_hex(),
            claimed_at: DateTime::now(),
            releasing_at: None,
        };
        let claimed = self
            .names
            .estimated_document_count()
            .await
            .map_err(StoreError::unavailable)?;
        if claimed >= self.limits.claim_cap {
            return Err(StoreError::StoreFull {
                what: "claimed names",
                cap: self.limits.claim_cap,
            });
        }
        for _ in 0..RACE_ATTEMPTS {
            match self.names.insert_one(&document).await {
                Ok(_) => return Ok(()),
                Err(error) if is_duplicate_key(&error) => {}
                Err(error) => return Err(write_failed(Operation::Claim)(error)),
            }
            match self.name_document(name).await? {
                // A release that stopped half-way: finish it, then claim again.
                Some(taken) if taken.releasing_at.is_some() => self.finish_release(&taken).await?,
                Some(_) => {
                    return Err(StoreError::NameTaken {
                        name: name.to_string(),
                    });
                }
                None => {} // released meanwhile: try again
            }
        }
        Err(StoreError::unavailable(anyhow::anyhow!(
            "the claim on this name kept changing; retry"
        )))
    }

    async fn name_document(&self, name: &Name) -> Result<Option<NameDocument>, StoreError> {
        self.names
            .find_one(doc! { "_id": name.lookalike_key() })
            .await
            .map_err(StoreError::unavailable)
    }

    /// See [`crate::store::Store::claims`]: one `find`, answered in one batch, whatever the
    /// number of names and tokens. A token's claim is found by its hash and compared again in
    /// constant time ([`Claims::by_token`]).
    pub(super) async fn claims_here(&self, wanted: &ClaimsWanted) -> Result<Claims, StoreError> {
        use futures::TryStreamExt;
        let mut claims = Claims::default();
        if wanted.covering.is_empty() && wanted.tokens.is_empty() {
            return Ok(claims);
        }
        let lookalikes: Vec<&str> = wanted.covering.iter().map(Name::lookalike_key).collect();
        let tokens: Vec<String> = wanted.tokens.iter().map(TokenHash::to_hex).collect();
        let found: Vec<NameDocument> = self
            .names
            .find(doc! { "$or": [ { "_id": { "$in": &lookalikes } }, { "token": { "$in": tokens } } ] })
            .batch_size(super::ONE_BATCH)
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        for lookalike in lookalikes {
            let document = found
                .iter()
                .find(|document| document.lookalike == lookalike);
            // A claim that cannot be read (a move to a new key a crash interrupted) fails the
            // calls that need it, not the batch.
            match document.map(|document| (document.clone().claim(), document)) {
                None => claims.found_covering(lookalike, None),
                Some((Ok(claim), document)) => claims.found_covering(
                    lookalike,
                    Some(Found {
                        claim,
                        releasing: document.releasing_at.is_some(),
                    }),
                ),
                Some((Err(error), _)) => claims.unreadable_covering(lookalike, error.to_string()),
            }
        }
        for token in &wanted.tokens {
            let mut claim = None;
            for document in &found {
                let stored = TokenHash::from_hex(&document.token);
                if stored.is_some_and(|stored| stored.matches(token)) {
                    claim = Some(document.clone().claim()?);
                }
            }
            claims.found_token(*token, claim);
        }
        Ok(claims)
    }

    pub(super) async fn claim_covering_here(
        &self,
        name: &Name,
    ) -> Result<Option<Claim>, StoreError> {
        self.name_document(name)
            .await?
            .map(NameDocument::claim)
            .transpose()
    }

    pub(super) async fn claim_by_token_here(
        &self,
        token: &TokenHash,
    ) -> Result<Option<Claim>, StoreError> {
        self.names
            .find_one(doc! { "token": token.to_hex() })
            .await
            .map_err(StoreError::unavailable)?
            .map(NameDocument::claim)
            .transpose()
    }

    /// The claim on `name` itself, if `token` is its token (compared here, in constant time).
    async fn own_claim(
        &self,
        name: &Name,
        token: &TokenHash,
    ) -> Result<Result<NameDocument, ClaimChange>, StoreError> {
        let Some(document) = self
            .name_document(name)
            .await?
            .filter(|document| document.inbox == name.key())
        else {
            return Ok(Err(ClaimChange::NotClaimed));
        };
        let stored = TokenHash::from_hex(&document.token);
        if !stored.is_some_and(|stored| stored.matches(token)) {
            return Ok(Err(ClaimChange::WrongToken));
        }
        Ok(Ok(document))
    }

    pub(super) async fn rotate_token_here(
        &self,
        name: &Name,
        current: &TokenHash,
        new: TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        let document = match self.own_claim(name, current).await? {
            Ok(document) if document.releasing_at.is_none() => document,
            Ok(_) => return Ok(ClaimChange::NotClaimed), // being released
            Err(change) => return Ok(change),
        };
        let replaced = self
            .names
            .update_one(
                doc! { "_id": &document.lookalike, "token": &document.token, "releasing_at": { "$exists": false } },
                doc! { "$set": { "token": new.to_hex() } },
            )
            .await
            .map_err(write_failed(Operation::Rotate))?;
        // Another change of this claim came first: the token checked is no longer its token.
        Ok(if replaced.matched_count == 1 {
            ClaimChange::Done
        } else {
            ClaimChange::WrongToken
        })
    }

    pub(super) async fn release_name_here(
        &self,
        name: &Name,
        token: &TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        let document = match self.own_claim(name, token).await? {
            Ok(document) => document,
            Err(change) => return Ok(change),
        };
        if document.releasing_at.is_none() {
            let marked = self
                .names
                .update_one(
                    doc! { "_id": &document.lookalike, "token": &document.token },
                    doc! { "$set": { "releasing_at": Millis::now().0 } },
                )
                .await
                .map_err(write_failed(Operation::Release))?;
            if marked.matched_count == 0 {
                return Ok(ClaimChange::WrongToken); // rotated meanwhile
            }
        }
        self.finish_release(&document).await?;
        Ok(ClaimChange::Done)
    }

    /// The last two steps of a release: the hellos of every inbox the claim covered (its own and
    /// its look-alikes', found by their stored look-alike key, filled first where an earlier
    /// release left it out), then the claim.
    async fn finish_release(&self, document: &NameDocument) -> Result<(), StoreError> {
        self.fill_lookalike_keys(doc! { "lookalike": null })
            .await
            .map_err(StoreError::unavailable)?;
        // The claim's key and its inbox's are one after the claims moved on open; both, in case a
        // claim was stored by a process of other rules since.
        let keys = [
            document.lookalike.clone(),
            hello_common::lookalike_key_of_inbox(&document.inbox),
        ];
        let deleted = self
            .hellos
            .delete_many(doc! { "lookalike": { "$in": keys.as_slice() } })
            .await
            .map_err(write_failed(Operation::Release))?;
        self.count_deleted(deleted.deleted_count);
        self.names
            .delete_one(doc! { "_id": &document.lookalike, "token": &document.token })
            .await
            .map_err(write_failed(Operation::Release))?;
        Ok(())
    }
}

impl MongoStore {
    /// Moves every claim to the look-alike key today's rules compute for it, and releases the
    /// later of two claims that now share one ([`crate::store::rekey`]).
    pub(super) async fn rekey_claims(&self) -> anyhow::Result<()> {
        use futures::TryStreamExt;
        let documents: Vec<NameDocument> = self.names.find(doc! {}).await?.try_collect().await?;
        let claims = documents
            .into_iter()
            .map(|document| StoredClaim {
                key: document.lookalike,
                name: document.name,
                inbox: document.inbox,
                claimed_at: document.claimed_at.timestamp_millis(),
                token: document.token,
            })
            .collect();
        for change in rekey::plan(claims) {
            match change {
                Rekey::Release { claim, kept } => {
                    self.names
                        .delete_one(doc! { "_id": &claim.key, "token": &claim.token })
                        .await?;
                    rekey::warn_released(&claim, &kept);
                }
                Rekey::Move { claim, to } => self.move_claim(claim, &to).await?,
            }
        }
        Ok(())
    }

    async fn move_claim(&self, claim: StoredClaim, to: &str) -> anyhow::Result<()> {
        let token = claim.token.strip_prefix(MOVING).unwrap_or(&claim.token);
        let parked = format!("{MOVING}{token}");
        self.names
            .update_one(
                doc! { "_id": &claim.key, "token": &claim.token },
                doc! { "$set": { "token": &parked } },
            )
            .await?;
        let Some(mut document) = self.names.find_one(doc! { "_id": &claim.key }).await? else {
            return Ok(()); // released meanwhile
        };
        document.lookalike = to.to_owned();
        document.token = token.to_owned();
        match self.names.insert_one(&document).await {
            Ok(_) => {}
            Err(error) if is_duplicate_key(&error) => {
                // Another process moved it first, or another claim took the key meanwhile: the
                // claim at the key keeps the name either way.
                let there = self.names.find_one(doc! { "_id": to }).await?;
                if there.is_none_or(|there| there.token != token) {
                    rekey::warn_released(&claim, "the claim already under its new key");
                }
            }
            Err(error) => return Err(error.into()),
        }
        self.names
            .delete_one(doc! { "_id": &claim.key, "token": &parked })
            .await?;
        tracing::info!(name = %claim.name, "a claim moved to its new look-alike key");
        Ok(())
    }
}
