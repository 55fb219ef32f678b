//! What the MongoDB store does when it opens: its indexes, and the look-alike keys of hellos
//! written by earlier releases.

use std::time::Duration;

use anyhow::Context;
use mongodb::{IndexModel, bson::doc, options::IndexOptions};

use super::{MongoStore, documents::LEASE_FIELD};

impl MongoStore {
    /// On open: recomputes every hello's look-alike key when they were stored under other rules
    /// than today's ([`hello_common::name::unicode::lookalike_keys_version`], kept in the `meta`
    /// collection), else fills only the keys an earlier release left out.
    pub(super) async fn recompute_lookalike_keys(&self) -> anyhow::Result<()> {
        let meta = self
            .client
            .database(&self.database)
            .collection::<mongodb::bson::Document>("meta");
        let version = hello_common::name::unicode::lookalike_keys_version() as i64;
        let stored = meta
            .find_one(doc! { "_id": "lookalike_keys" })
            .await?
            .and_then(|document| document.get_i64("version").ok());
        if stored == Some(version) {
            return self.fill_lookalike_keys(doc! { "lookalike": null }).await;
        }
        self.fill_lookalike_keys(doc! {}).await?;
        meta.update_one(
            doc! { "_id": "lookalike_keys" },
            doc! { "$set": { "version": version } },
        )
        .upsert(true)
        .await?;
        Ok(())
    }

    /// Stores the look-alike key of the hellos `filter` selects, computed from their inbox. Before
    /// each release for the keys left out (`{lookalike: null}`: an earlier release may still be
    /// running beside this one during a rolling update), so that the release finds them.
    pub(super) async fn fill_lookalike_keys(
        &self,
        filter: mongodb::bson::Document,
    ) -> anyhow::Result<()> {
        use futures::TryStreamExt;
        let hellos = self.hellos.clone_with_type::<mongodb::bson::Document>();
        let mut inboxes = std::collections::BTreeSet::new();
        let mut missing = hellos
            .find(filter.clone())
            .projection(doc! { "to": 1 })
            .await?;
        while let Some(document) = missing.try_next().await? {
            if let Ok(inbox) = document.get_str("to") {
                inboxes.insert(inbox.to_owned());
            }
        }
        for inbox in inboxes {
            let lookalike = hello_common::lookalike_key_of_inbox(&inbox);
            let mut selected = filter.clone();
            selected.insert("to", &inbox);
            self.hellos
                .update_many(selected, doc! { "$set": { "lookalike": lookalike } })
                .await?;
        }
        Ok(())
    }

    pub(super) async fn create_indexes(&self) -> anyhow::Result<()> {
        let indexes = [
            IndexModel::builder()
                .keys(doc! { "to": 1, "order": 1 })
                .build(),
            IndexModel::builder().keys(doc! { LEASE_FIELD: 1 }).build(),
            // A release deletes the hellos of every inbox its claim covered.
            IndexModel::builder().keys(doc! { "lookalike": 1 }).build(),
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
        let forget = IndexModel::builder()
            .keys(doc! { "forget_at": 1 })
            .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
            .build();
        self.leases
            .create_index(forget)
            .await
            .context("cannot create the TTL index of the leases collection")?;
        let by_token = IndexModel::builder()
            .keys(doc! { "token": 1 })
            .options(IndexOptions::builder().unique(true).build())
            .build();
        self.names
            .create_index(by_token)
            .await
            .context("cannot create the token index of the names collection")?;
        Ok(())
    }
}
