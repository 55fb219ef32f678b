//! The embedded store's tables and records, by their stored names.
//!
//! Stored names never follow renames in the code: a store written by an earlier release must open
//! and work with a later one. So a lease lives in the tables `claims` and `claims_by_inbox`, and a
//! hello names its lease in the field `claim`: the names of 0.1.0, when leases were called claims.

use std::time::Duration;

use hello_common::wire::StoredHello;
use redb::{Database, ReadableTable, ReadableTableMetadata, Table, TableDefinition};
use serde::{Deserialize, Serialize};

pub(super) use crate::store::ttl_millis;

/// (inbox key, arrival sequence) → [`HelloRecord`]: iterating one inbox is iterating in order.
/// After an inbox's hellos, under [`SIZE_SEQUENCE`], the number of them stored (leased or not),
/// for the inbox cap: see [`inbox_size`].
pub(super) const HELLOS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hellos");
/// The sequence under which [`HELLOS`] keeps an inbox's size. No hello's sequence reaches it, so
/// the size sorts after the inbox's newest hello, the one a send adds: both land in the same
/// page, and a send writes one leaf of one B-tree instead of a leaf in each of two.
pub(super) const SIZE_SEQUENCE: u64 = u64::MAX;
/// Before 0.2.0: inbox key → number of hellos stored. [`create_tables`] moves the sizes into
/// [`HELLOS`] and deletes it.
const INBOX_SIZES: TableDefinition<&str, u64> = TableDefinition::new("inbox_sizes");
/// lease id → [`LeaseRecord`].
pub(super) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("claims");
/// (inbox key, lease id) → (lease until ms, hellos taken): the leases of one inbox, so that a
/// read counts the hellos leased to others without visiting every hello waiting behind them.
pub(super) const LEASES_BY_INBOX: TableDefinition<(&str, &str), (i64, u64)> =
    TableDefinition::new("claims_by_inbox");
/// (forget at ms, lease id) → (): when a lease's record may go (its end plus the idempotency
/// keys' lifetime), so that housekeeping finds them without scanning every lease. New in 0.2.0;
/// [`create_tables`] fills it for the leases of an older store.
pub(super) const LEASES_TO_FORGET: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("leases_to_forget");
/// idempotency key → [`IdempotencyRecord`].
pub(super) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// (created at, idempotency key) → (): expiring old keys without scanning them all.
pub(super) const IDEMPOTENCY_BY_AGE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("idempotency_by_age");
/// look-alike key → [`ClaimRecord`]: one claim per group of look-alike names. New in 0.2.0.
pub(super) const NAMES: TableDefinition<&str, &[u8]> = TableDefinition::new("names");
/// token SHA-256 (hex) → look-alike key: finding the claim of a presented token. New in 0.2.0.
pub(super) const NAMES_BY_TOKEN: TableDefinition<&str, &str> =
    TableDefinition::new("names_by_token");
/// (look-alike key, inbox key) → (): the inboxes holding hellos, by look-alike key, so that a
/// release finds every inbox its claim covered. An entry is added when an inbox gets its first
/// hello and removed when it is emptied ([`set_inbox_size`]). New in this release;
/// [`create_tables`] fills it for the hellos of an older store.
pub(super) const LOOKALIKE_INBOXES: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("lookalike_inboxes");
/// Counters: [`NEXT_SEQUENCE`], [`STORED_HELLOS`], [`STORED_KEYS`], [`CLAIMED_NAMES`].
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
    /// Sent with its sender's token; absent (false) in records written before 0.2.0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verified: bool,
}

/// One lease: which hellos of which inbox it took, until when, and whether a reliable read
/// confirmed it. Kept after its end (until it is forgotten) so that a confirmation can still be
/// answered: again 204 if it was confirmed in time, 410 if it ran out.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    pub inbox: String,
    pub sequences: Vec<u64>,
    pub until: i64,
    /// When a reliable read confirmed it (ms); absent in records written before 0.2.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<i64>,
}

impl LeaseRecord {
    /// When the record may go: the lease's end plus the idempotency keys' lifetime.
    pub fn forget_at(&self, ttl: Duration) -> i64 {
        self.until.saturating_add(ttl_millis(ttl))
    }
}

/// A claimed name.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ClaimRecord {
    /// As spelled when claimed.
    pub name: String,
    /// Its inbox key.
    pub inbox: String,
    /// SHA-256 of its token, lower-case hex.
    pub token: String,
    /// When it was claimed (ms).
    pub claimed_at: i64,
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

/// The keys of `inbox`'s hellos in [`HELLOS`], in order, without its size.
pub(super) fn hellos_of(inbox: &str) -> std::ops::Range<(&str, u64)> {
    (inbox, 0)..(inbox, SIZE_SEQUENCE)
}

/// The number of hellos stored (leased or not) in `inbox`.
pub(super) fn inbox_size(
    hellos: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    inbox: &str,
) -> Storage<u64> {
    hellos
        .get((inbox, SIZE_SEQUENCE))?
        .map_or(Ok(0), |size| decode_size(size.value()))
}

/// Sets the number of hellos stored in `inbox`; an empty inbox keeps no size. An inbox emptied
/// leaves [`LOOKALIKE_INBOXES`] (which the caller opens only for a size of 0 or 1: when an inbox
/// empties or gets its first hello).
pub(super) fn set_inbox_size(
    hellos: &mut Table<(&'static str, u64), &'static [u8]>,
    lookalike_inboxes: Option<&mut Table<(&'static str, &'static str), ()>>,
    inbox: &str,
    size: u64,
) -> Storage<()> {
    if let Some(lookalike_inboxes) = lookalike_inboxes {
        let lookalike = hello_common::lookalike_key_of_inbox(inbox);
        if size == 0 {
            lookalike_inboxes.remove((lookalike.as_str(), inbox))?;
        } else {
            lookalike_inboxes.insert((lookalike.as_str(), inbox), ())?;
        }
    }
    if size == 0 {
        hellos.remove((inbox, SIZE_SEQUENCE))?;
    } else {
        hellos.insert((inbox, SIZE_SEQUENCE), size.to_le_bytes().as_slice())?;
    }
    Ok(())
}

fn decode_size(bytes: &[u8]) -> Storage<u64> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("an inbox size of {} bytes, not 8", bytes.len()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The `META` entry that says what 0.2.0 keeps beside the data is filled: [`LEASES_TO_FORGET`]
/// holds every lease, and [`STORED_HELLOS`] and [`STORED_KEYS`] are counted.
const FILLED: &str = "filled_for_0.2.0";
/// `META`: the arrival sequence of the next hello stored (in every inbox).
pub(super) const NEXT_SEQUENCE: &str = "next_sequence";
/// `META`: hellos stored in all inboxes (leased or not), for `WORLD_STORE_CAP`.
pub(super) const STORED_HELLOS: &str = "stored_hellos";
/// `META`: idempotency records stored, for `WORLD_IDEMPOTENCY_CAP`.
pub(super) const STORED_KEYS: &str = "stored_idempotency_keys";
/// `META`: names claimed, for `WORLD_CLAIM_CAP` (0 when absent: claims are new in 0.2.0).
pub(super) const CLAIMED_NAMES: &str = "claimed_names";

/// A `META` counter; 0 when absent.
pub(super) fn counter(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Storage<u64> {
    Ok(meta.get(name)?.map_or(0, |value| value.value()))
}

/// Creates the tables a file lacks, and fills the tables an older release did not have.
pub(super) fn create_tables(database: &Database, idempotency_ttl: Duration) -> anyhow::Result<()> {
    let transaction = database.begin_write()?;
    transaction.open_table(HELLOS)?;
    transaction.open_table(LEASES_BY_INBOX)?;
    transaction.open_table(IDEMPOTENCY)?;
    transaction.open_table(IDEMPOTENCY_BY_AGE)?;
    transaction.open_table(NAMES)?;
    transaction.open_table(NAMES_BY_TOKEN)?;
    fill_lookalike_inboxes(&transaction)?;
    {
        let leases = transaction.open_table(LEASES)?;
        let mut to_forget = transaction.open_table(LEASES_TO_FORGET)?;
        let mut meta = transaction.open_table(META)?;
        if meta.get(FILLED)?.is_none() {
            // A store written before 0.2.0, once: index the leases it holds, and count its
            // hellos and idempotency keys.
            for entry in leases.iter()? {
                let (id, record) = entry?;
                let forget_at = serde_json::from_slice::<LeaseRecord>(record.value())
                    .map_or(i64::MIN, |lease| lease.forget_at(idempotency_ttl));
                to_forget.insert((forget_at, id.value()), ())?;
            }
            let mut hellos = 0;
            for entry in transaction.open_table(INBOX_SIZES)?.iter()? {
                hellos += entry?.1.value();
            }
            let keys = transaction.open_table(IDEMPOTENCY)?.len()?;
            meta.insert(STORED_HELLOS, hellos)?;
            meta.insert(STORED_KEYS, keys)?;
            meta.insert(FILLED, 1)?;
        }
    }
    move_inbox_sizes(&transaction)?;
    rekey_claims(&transaction)?;
    transaction.commit()?;
    Ok(())
}

/// Moves every claim to the look-alike key today's rules compute for it, and releases the later
/// of two claims that now share one ([`crate::store::rekey`]); in the transaction that opens the
/// store, so that no request sees a claim half moved.
fn rekey_claims(transaction: &redb::WriteTransaction) -> anyhow::Result<()> {
    use crate::store::rekey::{self, Rekey, StoredClaim};
    let mut names = transaction.open_table(NAMES)?;
    let mut claims = Vec::new();
    for entry in names.iter()? {
        let (key, record) = entry?;
        let record: ClaimRecord = serde_json::from_slice(record.value())?;
        claims.push(StoredClaim {
            key: key.value().to_owned(),
            name: record.name,
            inbox: record.inbox,
            claimed_at: record.claimed_at,
            token: record.token,
        });
    }
    let mut by_token = transaction.open_table(NAMES_BY_TOKEN)?;
    let mut meta = transaction.open_table(META)?;
    // Every record leaves its old key before any lands on its new one, so that a claim moving
    // onto the old key of another that moves too never overwrites it.
    let mut landing = Vec::new();
    for change in rekey::plan(claims) {
        match change {
            Rekey::Release { claim, kept } => {
                names.remove(claim.key.as_str())?;
                by_token.remove(claim.token.as_str())?;
                let claimed = counter(&meta, CLAIMED_NAMES)?;
                meta.insert(CLAIMED_NAMES, claimed.saturating_sub(1))?;
                rekey::warn_released(&claim, &kept);
            }
            Rekey::Move { claim, to } => {
                let record = names
                    .remove(claim.key.as_str())?
                    .map(|record| record.value().to_vec())
                    .ok_or_else(|| anyhow::anyhow!("a claim vanished while it was moved"))?;
                landing.push((claim, to, record));
            }
        }
    }
    for (claim, to, record) in landing {
        names.insert(to.as_str(), record.as_slice())?;
        by_token.insert(claim.token.as_str(), to.as_str())?;
        tracing::info!(name = %claim.name, "a claim moved to its new look-alike key");
    }
    Ok(())
}

/// `META`: the [`hello_common::name::unicode::lookalike_keys_version`] under which
/// [`LOOKALIKE_INBOXES`] holds every inbox that has hellos.
const LOOKALIKE_INBOXES_VERSION: &str = "lookalike_inboxes_version";

/// Fills [`LOOKALIKE_INBOXES`] from the inboxes of [`HELLOS`] when it was not filled under
/// today's look-alike keys: a store written before the table existed, or before a library's
/// Unicode update changed the keys.
fn fill_lookalike_inboxes(transaction: &redb::WriteTransaction) -> anyhow::Result<()> {
    let version = hello_common::name::unicode::lookalike_keys_version();
    let mut meta = transaction.open_table(META)?;
    if meta
        .get(LOOKALIKE_INBOXES_VERSION)?
        .map(|stored| stored.value())
        == Some(version)
    {
        return Ok(());
    }
    let hellos = transaction.open_table(HELLOS)?;
    transaction.delete_table(LOOKALIKE_INBOXES)?;
    let mut lookalike_inboxes = transaction.open_table(LOOKALIKE_INBOXES)?;
    let mut last: Option<String> = None;
    for entry in hellos.iter()? {
        let (key, _) = entry?;
        let inbox = key.value().0;
        if last.as_deref() != Some(inbox) {
            let lookalike = hello_common::lookalike_key_of_inbox(inbox);
            lookalike_inboxes.insert((lookalike.as_str(), inbox), ())?;
            last = Some(inbox.to_owned());
        }
    }
    meta.insert(LOOKALIKE_INBOXES_VERSION, version)?;
    Ok(())
}

/// Moves the sizes of a store written before they lived in [`HELLOS`] there, and deletes their
/// old table: once, in the transaction that opens such a store (a fresh or moved store has no
/// such table, and this does nothing).
fn move_inbox_sizes(transaction: &redb::WriteTransaction) -> anyhow::Result<()> {
    {
        let sizes = transaction.open_table(INBOX_SIZES)?;
        let mut hellos = transaction.open_table(HELLOS)?;
        for entry in sizes.iter()? {
            let (inbox, size) = entry?;
            set_inbox_size(&mut hellos, None, inbox.value(), size.value())?;
        }
    }
    transaction.delete_table(INBOX_SIZES)?;
    Ok(())
}
