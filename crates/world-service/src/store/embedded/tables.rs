//! The embedded store's tables and records, by their stored names.
//!
//! Stored names never follow renames in the code: a store written by an earlier release must open
//! and work with a later one. So a lease lives in the tables `claims` and `claims_by_inbox`, and a
//! hello names its lease in the field `claim`: the names of 0.1.0, when leases were called claims.

use std::time::Duration;

use hello_common::wire::StoredHello;
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

/// (inbox key, arrival sequence) → [`HelloRecord`]: iterating one inbox is iterating in order.
pub(super) const HELLOS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hellos");
/// inbox key → number of hellos stored (leased or not), for the inbox cap.
pub(super) const INBOX_SIZES: TableDefinition<&str, u64> = TableDefinition::new("inbox_sizes");
/// lease id → [`LeaseRecord`].
pub(super) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("claims");
/// (inbox key, lease id) → (lease until ms, hellos taken): the leases of one inbox, so that a
/// read counts the hellos leased to others without visiting every hello waiting behind them.
pub(super) const LEASES_BY_INBOX: TableDefinition<(&str, &str), (i64, u64)> =
    TableDefinition::new("claims_by_inbox");
/// idempotency key → [`IdempotencyRecord`].
pub(super) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// (created at, idempotency key) → (): expiring old keys without scanning them all.
pub(super) const IDEMPOTENCY_BY_AGE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("idempotency_by_age");
/// Counters: `next_sequence`.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// One waiting hello.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HelloRecord {
    pub id: String,
    pub to: String,
    pub from: String,
    pub at: i64,
    /// Hidden from readers until this instant (ms); 0 when never leased.
    pub lease_until: i64,
    /// The lease that took it last (stored as `claim`).
    #[serde(rename = "claim")]
    pub lease: Option<String>,
}

/// One live lease: which hellos of which inbox it took, and until when.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    pub inbox: String,
    pub sequences: Vec<u64>,
    pub until: i64,
}

/// The first hello sent with an idempotency key.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct IdempotencyRecord {
    pub to_key: String,
    pub from_key: String,
    pub hello: StoredHello,
    pub created: i64,
}

/// A failure of the storage itself: the whole batch is abandoned.
pub(super) type Storage<T> = Result<T, anyhow::Error>;

/// Creates the tables a new file lacks.
pub(super) fn create_tables(database: &Database) -> anyhow::Result<()> {
    let transaction = database.begin_write()?;
    transaction.open_table(HELLOS)?;
    transaction.open_table(INBOX_SIZES)?;
    transaction.open_table(LEASES)?;
    transaction.open_table(LEASES_BY_INBOX)?;
    transaction.open_table(IDEMPOTENCY)?;
    transaction.open_table(IDEMPOTENCY_BY_AGE)?;
    transaction.open_table(META)?;
    transaction.commit()?;
    Ok(())
}

/// A duration in whole milliseconds, saturating.
pub(super) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}
