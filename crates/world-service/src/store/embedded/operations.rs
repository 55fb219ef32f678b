//! What each job does inside the writer's transaction. Nothing here commits: the writer commits
//! a whole batch, then answers its jobs.

use std::sync::Mutex;

use hello_common::{
    Name,
    timestamp::Millis,
    wire::{DeliveredHello, Lease, StoredHello},
};
use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::live::{AfterCommit, LiveLeases, Run, lock};
use super::tables::{
    HELLOS, HelloRecord, IDEMPOTENCY, IDEMPOTENCY_BY_AGE, IdempotencyRecord, LEASES,
    LEASES_BY_INBOX, LEASES_TO_FORGET, LOOKALIKE_INBOXES, LeaseRecord, META, NEXT_SEQUENCE,
    STORED_HELLOS, STORED_KEYS, Storage, counter, hellos_of, inbox_size, set_inbox_size,
    ttl_millis,
};
use crate::store::{
    Confirmation, LeaseRequest, NewHello, StoreError, StoreLimits, new_hello_id, new_lease_id,
    scoped_idempotency_id,
};

/// The sends of one run of consecutive send jobs in a batch: their tables are opened once and
/// their counters read once, kept here and written once at the end ([`Sends::close`]), instead of
/// three tables opened and three counters read and written for every send. The writer's CPU is
/// what bounds durable sends, and most of a send's was spent on that bookkeeping.
pub(super) struct Sends<'t> {
    transaction: &'t WriteTransaction,
    idempotency: Table<'t, &'static str, &'static [u8]>,
    /// Opened with the run's first idempotency key.
    idempotency_by_age: Option<Table<'t, (i64, &'static str), ()>>,
    hellos: Table<'t, (&'static str, u64), &'static [u8]>,
    /// Opened with the run's first send to an empty inbox.
    lookalike_inboxes: Option<Table<'t, (&'static str, &'static str), ()>>,
    /// The counters as this run leaves them, written by [`Sends::close`].
    next_sequence: u64,
    stored_hellos: u64,
    stored_keys: u64,
    /// Whether any send of the run was stored (otherwise nothing is written).
    stored_any: bool,
}

impl<'t> Sends<'t> {
    /// Opens the tables of a run of sends and reads its counters.
    pub(super) fn open(transaction: &'t WriteTransaction) -> Storage<Self> {
        let meta = transaction.open_table(META)?;
        Ok(Self {
            transaction,
            idempotency: transaction.open_table(IDEMPOTENCY)?,
            idempotency_by_age: None,
            hellos: transaction.open_table(HELLOS)?,
            lookalike_inboxes: None,
            next_sequence: counter(&meta, NEXT_SEQUENCE)?,
            stored_hellos: counter(&meta, STORED_HELLOS)?,
            stored_keys: counter(&meta, STORED_KEYS)?,
            stored_any: false,
        })
    }

    /// Stores a hello, unless its idempotency key is known (then: the first answer, or a
    /// refusal) or its inbox is full.
    pub(super) fn send(
        &mut self,
        hello: NewHello,
        limits: &StoreLimits,
    ) -> Storage<Result<StoredHello, StoreError>> {
        let now = Millis::now();
        // Where this sender's key is stored (scoped to the sender).
        let scoped = hello
            .idempotency_key
            .as_ref()
            .map(|key| scoped_idempotency_id(&hello.from, key));
        // The key's record from a send so old that the key is free again, to be replaced.
        let mut expired_key = None;
        if let (Some(key), Some(scoped)) = (&hello.idempotency_key, &scoped) {
            let read = |id: &str| -> Storage<Option<IdempotencyRecord>> {
                Ok(self
                    .idempotency
                    .get(id)?
                    .map(|record| serde_json::from_slice::<IdempotencyRecord>(record.value()))
                    .transpose()?)
            };
            let fresh = |first: &IdempotencyRecord| {
                first.created + ttl_millis(limits.idempotency_ttl) > now.0
            };
            // A key stored bare before 0.2.0 still answers its own sender's retries.
            let legacy = read(key.as_str())?
                .filter(|first| first.from_key == hello.from.key() && fresh(first));
            let first = match legacy {
                Some(first) => Some(first),
                None => read(scoped)?,
            };
            if let Some(first) = first {
                if !fresh(&first) {
                    expired_key = Some(first.created);
                } else {
                    return Ok(if first.to_key == hello.to.key() {
                        Ok(first.hello)
                    } else {
                        Err(StoreError::IdempotencyKeyReused)
                    });
                }
            }
        }

        let size = inbox_size(&self.hellos, hello.to.key())?;
        if size >= limits.inbox_cap {
            return Ok(Err(StoreError::InboxFull {
                name: hello.to.to_string(),
                cap: limits.inbox_cap,
            }));
        }
        if self.stored_hellos >= limits.store_cap {
            return Ok(Err(StoreError::StoreFull {
                what: "hellos",
                cap: limits.store_cap,
            }));
        }
        let new_key = hello.idempotency_key.is_some() && expired_key.is_none();
        if new_key && self.stored_keys >= limits.idempotency_cap {
            return Ok(Err(StoreError::StoreFull {
                what: "idempotency keys",
                cap: limits.idempotency_cap,
            }));
        }
        let sequence = self.next_sequence;

        let stored = StoredHello {
            id: new_hello_id(),
            to: hello.to.to_string(),
            from: hello.from.to_string(),
            at: now.to_rfc3339(),
            verified: hello.verified,
        };
        let record = HelloRecord {
            id: stored.id.clone(),
            to: stored.to.clone(),
            from: stored.from.clone(),
            at: now.0,
            lease_until: 0,
            lease: None,
            verified: hello.verified,
        };
        self.hellos.insert(
            (hello.to.key(), sequence),
            serde_json::to_vec(&record)?.as_slice(),
        )?;
        let first_hello = if size == 0 {
            Some(match &mut self.lookalike_inboxes {
                Some(table) => table,
                table => table.insert(self.transaction.open_table(LOOKALIKE_INBOXES)?),
            })
        } else {
            None
        };
        set_inbox_size(&mut self.hellos, first_hello, hello.to.key(), size + 1)?;

        if let Some(scoped) = &scoped {
            let record = IdempotencyRecord {
                to_key: hello.to.key().to_owned(),
                from_key: hello.from.key().to_owned(),
                hello: stored.clone(),
                created: now.0,
            };
            self.idempotency
                .insert(scoped.as_str(), serde_json::to_vec(&record)?.as_slice())?;
            let by_age = match &mut self.idempotency_by_age {
                Some(by_age) => by_age,
                by_age => by_age.insert(self.transaction.open_table(IDEMPOTENCY_BY_AGE)?),
            };
            if let Some(created) = expired_key {
                by_age.remove((created, scoped.as_str()))?;
            }
            by_age.insert((now.0, scoped.as_str()), ())?;
        }
        self.next_sequence = sequence + 1;
        self.stored_hellos += 1;
        if new_key {
            self.stored_keys += 1;
        }
        self.stored_any = true;
        Ok(Ok(stored))
    }

    /// Writes the run's counters. Until then the transaction does not hold them: a run must be
    /// closed before anything else in the transaction reads them, and before the commit.
    pub(super) fn close(self) -> Storage<()> {
        let Self {
            transaction,
            idempotency,
            idempotency_by_age,
            hellos,
            lookalike_inboxes,
            next_sequence,
            stored_hellos,
            stored_keys,
            stored_any,
        } = self;
        // redb lets a table be open once at a time: these go before META is opened again.
        drop((idempotency, idempotency_by_age, hellos, lookalike_inboxes));
        if stored_any {
            let mut meta = transaction.open_table(META)?;
            meta.insert(NEXT_SEQUENCE, next_sequence)?;
            meta.insert(STORED_HELLOS, stored_hellos)?;
            meta.insert(STORED_KEYS, stored_keys)?;
        }
        Ok(())
    }
}

/// Leases the oldest visible hellos of `name`, up to `request.limit`, in a snapshot taken while
/// holding the lock on `live` (see [`super::live`]). The lease is kept in `live`: nothing is
/// written until it is done with.
pub(super) fn lease(
    transaction: &ReadTransaction,
    live: &mut LiveLeases,
    name: &Name,
    request: LeaseRequest,
) -> Storage<Lease> {
    let now = Millis::now();
    let until = now.plus_millis(u64::try_from(request.lease.as_millis()).unwrap_or(u64::MAX));
    let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);

    // The reader was checked against the claim covering the inbox a moment ago, in another
    // snapshot: if a claim was made, changed hands or released since, hellos sent under it may
    // be here, and this reader was not checked for them. Take nothing; the next read is checked
    // anew.
    let claim_now = transaction
        .open_table(super::tables::NAMES)?
        .get(name.lookalike_key())?
        .map(|record| serde_json::from_slice::<super::tables::ClaimRecord>(record.value()))
        .transpose()?
        .map(|claim| claim.claimed_at);
    if claim_now != request.covering_claim {
        return Ok(Lease {
            lease_id: None,
            expires_at: None,
            hellos: Vec::new(),
            remaining: 0,
            redelivered: 0,
        });
    }

    // Hellos leased to running leases of this inbox: they are neither taken nor remaining.
    // Written leases (written at a graceful stop, or by an earlier release) are indexed by
    // inbox; those that ran out stay in the index until they are forgotten, and are skipped.
    let mut leased = live.leased(name.key(), now.0);
    let by_inbox = transaction.open_table(LEASES_BY_INBOX)?;
    // Lease ids are UUIDs (hex digits and '-'): every one sorts below "~".
    for entry in by_inbox.range((name.key(), "")..(name.key(), "~"))? {
        let (lease_until, count) = entry?.1.value();
        if lease_until > now.0 {
            leased += count;
        }
    }

    // The oldest visible hellos: skip those leased (they sit near the head, since reads take
    // the oldest first) and stop at `limit`, so a read costs the same with 10 or 10,000 waiting.
    // A lease in memory is newer than the one a hello's record names. What it takes is kept as
    // runs of consecutive hellos: a hidden one ends a run.
    let hellos = transaction.open_table(HELLOS)?;
    let mut taken: Vec<(HelloRecord, bool)> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut in_run = false;
    for entry in hellos.range(hellos_of(name.key()))? {
        if taken.len() >= limit {
            break;
        }
        let (key, value) = entry?;
        let sequence = key.value().1;
        let record: HelloRecord = serde_json::from_slice(value.value())?;
        let (hidden_until, leased_before) = match live.holder(name.key(), sequence) {
            Some(holder) => (holder.until, true),
            None => (record.lease_until, record.lease_until != 0),
        };
        if hidden_until > now.0 {
            in_run = false;
            continue; // leased to a reader that has not acknowledged yet
        }
        match runs.last_mut() {
            Some((_, last)) if in_run => *last = sequence,
            _ => runs.push((sequence, sequence)),
        }
        in_run = true;
        taken.push((record, leased_before));
    }
    let stored = inbox_size(&hellos, name.key())?;
    let count = taken.len() as u64;
    let remaining = stored.saturating_sub(leased).saturating_sub(count);
    if taken.is_empty() {
        return Ok(Lease {
            lease_id: None,
            hellos: Vec::new(),
            remaining,
            expires_at: None,
            redelivered: 0,
        });
    }

    let lease_id = new_lease_id();
    let mut delivered = Vec::with_capacity(taken.len());
    let mut redelivered = 0;
    for (record, leased_before) in taken {
        // A hello an earlier lease took (and did not confirm in time) goes out again.
        redelivered += u64::from(leased_before);
        delivered.push(DeliveredHello {
            id: record.id,
            from: record.from,
            at: Millis(record.at).to_rfc3339(),
            verified: record.verified,
        });
    }
    live.insert(name.key(), &lease_id, until.0, count, runs);
    Ok(Lease {
        lease_id: Some(lease_id),
        hellos: delivered,
        remaining,
        expires_at: Some(until.to_rfc3339()),
        redelivered,
    })
}

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
