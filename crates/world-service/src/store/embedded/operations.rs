//! What writing a lease, acknowledging a GET's lease and confirming a reliable read's do inside
//! the writer's transaction. Nothing here commits: the writer commits a whole batch, then answers
//! its jobs. (A send's work is in [`super::sends`], a read's lease in [`super::reads`].)

use std::sync::Mutex;

use hello_common::{Name, timestamp::Millis};
use redb::{ReadableTable, WriteTransaction};

use super::live::{AfterCommit, LiveLeases, Run, lock};
use super::tables::{
    HELLOS, HelloRecord, LEASES, LEASES_BY_INBOX, LEASES_TO_FORGET, LOOKALIKE_INBOXES, LeaseRecord,
    META, STORED_HELLOS, Storage, counter, inbox_size, set_inbox_size,
};
use crate::store::{Confirmation, StoreLimits};

/// Writes a lease kept in memory the way earlier releases wrote every lease: its record, when to
/// forget it, its place in its inbox's lease index while it runs, and its id and end on each
/// hello it still holds (`held`), so that a restarted store hides them, answers its
/// confirmation, and counts them as redelivered once it ran out.
pub(super) fn write_lease(
    transaction: &WriteTransaction,
    lease_id: &str,
    inbox: &str,
    until: i64,
    held: &[Run],
    limits: &StoreLimits,
) -> Storage<()> {
    let mut hellos = transaction.open_table(HELLOS)?;
    // Read in one pass over the runs, then rewritten (a table cannot change while it is read).
    let mut records = Vec::new();
    for &(first, last) in held {
        for entry in hellos.range((inbox, first)..=(inbox, last))? {
            let (key, value) = entry?;
            let record: HelloRecord = serde_json::from_slice(value.value())?;
            records.push((key.value().1, record));
        }
    }
    let mut sequences = Vec::with_capacity(records.len());
    for (sequence, mut record) in records {
        record.lease_until = until;
        record.lease = Some(lease_id.to_owned());
        hellos.insert((inbox, sequence), serde_json::to_vec(&record)?.as_slice())?;
        sequences.push(sequence);
    }
    let record = LeaseRecord {
        inbox: inbox.to_owned(),
        sequences,
        until,
        confirmed_at: None,
    };
    insert_lease_record(transaction, lease_id, &record, limits)?;
    if until > Millis::now().0 {
        transaction
            .open_table(LEASES_BY_INBOX)?
            .insert((inbox, lease_id), (until, record.sequences.len() as u64))?;
    }
    Ok(())
}

/// Writes a lease's record, and when to forget it.
fn insert_lease_record(
    transaction: &WriteTransaction,
    lease_id: &str,
    record: &LeaseRecord,
    limits: &StoreLimits,
) -> Storage<()> {
    transaction
        .open_table(LEASES)?
        .insert(lease_id, serde_json::to_vec(record)?.as_slice())?;
    transaction
        .open_table(LEASES_TO_FORGET)?
        .insert((record.forget_at(limits.idempotency_ttl), lease_id), ())?;
    Ok(())
}

/// A GET's lease, delivered: deletes the hellos it still holds and forgets it at once (no one
/// will ask about it again); 0 for an unknown (or already acknowledged) lease.
pub(super) fn acknowledge(
    transaction: &WriteTransaction,
    live: &Mutex<LiveLeases>,
    after: &mut Vec<AfterCommit>,
    lease_id: &str,
    limits: &StoreLimits,
) -> Storage<u64> {
    let in_memory = {
        let live = lock(live);
        live.get(lease_id)
            .map(|(inbox, _)| (inbox.to_owned(), live.held(lease_id)))
    };
    if let Some((inbox, held)) = in_memory {
        after.push(AfterCommit::Forget(lease_id.to_owned()));
        return delete_hellos(transaction, &inbox, &held);
    }
    let Some(lease) = transaction
        .open_table(LEASES)?
        .remove(lease_id)?
        .map(|record| serde_json::from_slice::<LeaseRecord>(record.value()))
        .transpose()?
    else {
        return Ok(0);
    };
    transaction
        .open_table(LEASES_TO_FORGET)?
        .remove((lease.forget_at(limits.idempotency_ttl), lease_id))?;
    delete_held(transaction, live, &lease, lease_id)
}

/// A reliable read's confirmation; see [`crate::store::Store::confirm`].
pub(super) fn confirm(
    transaction: &WriteTransaction,
    live: &Mutex<LiveLeases>,
    after: &mut Vec<AfterCommit>,
    name: &Name,
    lease_id: &str,
    limits: &StoreLimits,
) -> Storage<Confirmation> {
    let now = Millis::now().0;
    let in_memory = {
        let live = lock(live);
        live.get(lease_id).map(|(inbox, lease)| {
            let in_time = lease.confirmed || lease.until >= now;
            (inbox.to_owned(), lease.until, in_time, live.held(lease_id))
        })
    };
    if let Some((inbox, until, in_time, held)) = in_memory {
        if inbox != name.key() {
            return Ok(Confirmation::Unknown);
        }
        if !in_time {
            return Ok(Confirmation::Expired);
        }
        delete_hellos(transaction, &inbox, &held)?;
        after.push(AfterCommit::Forget(lease_id.to_owned()));
        // Written now, only to answer repeats until it is forgotten.
        let record = LeaseRecord {
            inbox,
            sequences: Vec::new(),
            until,
            confirmed_at: Some(now),
        };
        insert_lease_record(transaction, lease_id, &record, limits)?;
        return Ok(Confirmation::Confirmed);
    }
    let mut leases = transaction.open_table(LEASES)?;
    let Some(mut lease) = leases
        .get(lease_id)?
        .map(|record| serde_json::from_slice::<LeaseRecord>(record.value()))
        .transpose()?
        .filter(|lease| lease.inbox == name.key())
    else {
        return Ok(Confirmation::Unknown);
    };
    if lease.confirmed_at.is_some() {
        return Ok(Confirmation::Confirmed);
    }
    if lease.until < now {
        return Ok(Confirmation::Expired);
    }
    delete_held(transaction, live, &lease, lease_id)?;
    lease.confirmed_at = Some(now);
    lease.sequences.clear(); // nothing left to delete; the record only answers repeats now
    leases.insert(lease_id, serde_json::to_vec(&lease)?.as_slice())?;
    Ok(Confirmation::Confirmed)
}

/// Deletes the hellos a written `lease` still holds (those no later lease took, in memory or
/// written), and its place in its inbox's lease index; returns how many hellos it deleted.
fn delete_held(
    transaction: &WriteTransaction,
    live: &Mutex<LiveLeases>,
    lease: &LeaseRecord,
    lease_id: &str,
) -> Storage<u64> {
    transaction
        .open_table(LEASES_BY_INBOX)?
        .remove((lease.inbox.as_str(), lease_id))?;
    // Which of its hellos a lease in memory took since (the leases there are newer).
    let in_memory: Vec<Option<bool>> = {
        let live = lock(live);
        lease
            .sequences
            .iter()
            .map(|&sequence| {
                live.holder(&lease.inbox, sequence)
                    .map(|holder| *holder.lease == *lease_id)
            })
            .collect()
    };
    let hellos = transaction.open_table(HELLOS)?;
    let mut held = Vec::with_capacity(lease.sequences.len());
    for (&sequence, in_memory) in lease.sequences.iter().zip(in_memory) {
        let still_ours = match in_memory {
            Some(ours) => ours,
            None => hellos
                .get((lease.inbox.as_str(), sequence))?
                .map(|record| serde_json::from_slice::<HelloRecord>(record.value()))
                .transpose()?
                .is_some_and(|record| record.lease.as_deref() == Some(lease_id)),
        };
        if still_ours {
            held.push((sequence, sequence));
        }
    }
    drop(hellos);
    delete_hellos(transaction, &lease.inbox, &held)
}

/// The sequences of the hellos of `inbox` stored in these runs.
fn sequences_in(
    hellos: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    inbox: &str,
    runs: &[Run],
) -> Storage<Vec<u64>> {
    let mut sequences = Vec::new();
    for &(first, last) in runs {
        for entry in hellos.range((inbox, first)..=(inbox, last))? {
            sequences.push(entry?.0.value().1);
        }
    }
    Ok(sequences)
}

/// Deletes the hellos of `inbox` in these runs and counts them out of the inbox's size and the
/// store's total; returns how many it deleted.
fn delete_hellos(transaction: &WriteTransaction, inbox: &str, runs: &[Run]) -> Storage<u64> {
    let mut hellos = transaction.open_table(HELLOS)?;
    let mut deleted = 0u64;
    for sequence in sequences_in(&hellos, inbox, runs)? {
        if hellos.remove((inbox, sequence))?.is_some() {
            deleted += 1;
        }
    }
    if deleted > 0 {
        let mut meta = transaction.open_table(META)?;
        let stored_hellos = counter(&meta, STORED_HELLOS)?;
        meta.insert(STORED_HELLOS, stored_hellos.saturating_sub(deleted))?;
        let left = inbox_size(&hellos, inbox)?.saturating_sub(deleted);
        let mut lookalike_inboxes = if left == 0 {
            Some(transaction.open_table(LOOKALIKE_INBOXES)?)
        } else {
            None
        };
        set_inbox_size(&mut hellos, lookalike_inboxes.as_mut(), inbox, left)?;
    }
    Ok(deleted)
}
