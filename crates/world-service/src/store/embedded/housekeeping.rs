//! What the writer forgets when its time has come: lease records whose end lies an idempotency
//! lifetime back, and idempotency keys older than their lifetime. Each runs inside the writer's
//! housekeeping transaction and says whether it changed anything.

use redb::{ReadableTable, WriteTransaction};

use super::tables::{
    IDEMPOTENCY, IDEMPOTENCY_BY_AGE, IdempotencyRecord, LEASES, LEASES_BY_INBOX, LEASES_TO_FORGET,
    LeaseRecord, META, STORED_KEYS, Storage, counter,
};

/// Forgets the lease records whose end lies an idempotency lifetime before `now`: nobody may ask
/// about them any more. The index finds them without visiting the leases still remembered.
pub(super) fn forget_old_leases(transaction: &WriteTransaction, now: i64) -> Storage<bool> {
    let mut to_forget = transaction.open_table(LEASES_TO_FORGET)?;
    let due = due_before(&to_forget, now)?;
    let mut leases = transaction.open_table(LEASES)?;
    let mut by_inbox = transaction.open_table(LEASES_BY_INBOX)?;
    for (forget_at, id) in &due {
        to_forget.remove((*forget_at, id.as_str()))?;
        let inbox = leases
            .remove(id.as_str())?
            .and_then(|record| serde_json::from_slice::<LeaseRecord>(record.value()).ok())
            .map(|lease| lease.inbox);
        if let Some(inbox) = inbox {
            by_inbox.remove((inbox.as_str(), id.as_str()))?;
        }
    }
    Ok(!due.is_empty())
}

/// Forgets the idempotency keys stored before `horizon`, and counts them out of the store's
/// total.
pub(super) fn forget_old_idempotency_keys(
    transaction: &WriteTransaction,
    horizon: i64,
) -> Storage<bool> {
    let mut by_age = transaction.open_table(IDEMPOTENCY_BY_AGE)?;
    let old = due_before(&by_age, horizon)?;
    let mut idempotency = transaction.open_table(IDEMPOTENCY)?;
    let mut forgotten = 0;
    for (created, key) in &old {
        by_age.remove((*created, key.as_str()))?;
        // Only the record this entry indexes: a key reused since has a newer one.
        let same = idempotency
            .get(key.as_str())?
            .and_then(|record| serde_json::from_slice::<IdempotencyRecord>(record.value()).ok())
            .is_none_or(|record| record.created == *created);
        if same && idempotency.remove(key.as_str())?.is_some() {
            forgotten += 1;
        }
    }
    if forgotten > 0 {
        let mut meta = transaction.open_table(META)?;
        let stored_keys = counter(&meta, STORED_KEYS)?;
        meta.insert(STORED_KEYS, stored_keys.saturating_sub(forgotten))?;
    }
    Ok(!old.is_empty())
}

/// The entries of a (time, id) index that lie before `time`, oldest first.
fn due_before(
    index: &impl ReadableTable<(i64, &'static str), ()>,
    time: i64,
) -> Storage<Vec<(i64, String)>> {
    Ok(index
        .range((i64::MIN, "")..(time, ""))?
        .filter_map(Result::ok)
        .map(|(key, _)| {
            let (at, id) = key.value();
            (at, id.to_owned())
        })
        .collect())
}
