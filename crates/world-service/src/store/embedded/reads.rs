//! A read's lease, taken on the request's own thread from a snapshot of the last commit, under
//! the lock on the leases in memory ([`super::live`]): nothing is written and the writer is not
//! waited for.

use hello_common::{
    Name,
    timestamp::Millis,
    wire::{DeliveredHello, Lease},
};
use redb::ReadTransaction;

use super::live::{LiveLeases, Run};
use super::tables::{HELLOS, HelloRecord, LEASES_BY_INBOX, Storage, hellos_of, inbox_size};
use crate::store::{LeaseRequest, new_lease_id};

/// How many hellos of `inbox` running leases hide at `now`: they are neither leasable nor
/// remaining. Written leases (written at a graceful stop, or by an earlier release) are indexed
/// by inbox; those that ran out stay in the index until they are forgotten, and are skipped.
pub(super) fn leased(
    transaction: &ReadTransaction,
    live: &LiveLeases,
    inbox: &str,
    now: i64,
) -> Storage<u64> {
    let mut leased = live.leased(inbox, now);
    let by_inbox = transaction.open_table(LEASES_BY_INBOX)?;
    // Lease ids are UUIDs (hex digits and '-'): every one sorts below "~".
    for entry in by_inbox.range((inbox, "")..(inbox, "~"))? {
        let (lease_until, count) = entry?.1.value();
        if lease_until > now {
            leased += count;
        }
    }
    Ok(leased)
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

    let leased = leased(transaction, live, name.key(), now.0)?;

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
