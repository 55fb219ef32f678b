//! The waiting reads' check on the embedded store ([`crate::store::Store::wakeable`]): at most two
//! read transactions for every reader waiting on the process together. The writer wakes readers at
//! once for what it commits; this check finds what no commit announces (a lease that ran out) and
//! anything a reader may have missed between its empty read and its wait being registered.

use std::sync::Mutex;

use hello_common::{timestamp::Millis, token::TokenHash};
use redb::{Database, ReadableDatabase};

use super::{
    live::{self, LiveLeases},
    reads,
    tables::{self, ClaimRecord, Storage},
};
use crate::store::{Wakeable, WatchedRead};

/// See [`crate::store::Store::wakeable`]. First, without the lock on the leases in memory, the
/// claims and the inboxes that hold any hello at all (most waiting inboxes hold none); then,
/// under the lock and in a snapshot taken under it (as a lease takes its own), whether those
/// inboxes hold a hello no running lease hides.
pub(super) fn wakeable(
    database: &Database,
    live: &Mutex<LiveLeases>,
    watched: &[WatchedRead],
) -> Storage<(Wakeable, u64)> {
    let mut wake = Wakeable::default();
    let mut candidates: Vec<&str> = Vec::new();
    let mut transactions = 0;
    if watched.is_empty() {
        return Ok((wake, transactions));
    }
    {
        let transaction = database.begin_read()?;
        transactions += 1;
        let names = transaction.open_table(tables::NAMES)?;
        let hellos = transaction.open_table(tables::HELLOS)?;
        for read in watched {
            if wake.changed.contains(&*read.inbox) {
                continue;
            }
            let claim_token = match names.get(&*read.lookalike)? {
                Some(record) => {
                    let record: ClaimRecord = serde_json::from_slice(record.value())?;
                    TokenHash::from_hex(&record.token)
                }
                None => None,
            };
            if read.ownership_changed(claim_token.as_ref()) {
                wake.changed.insert(read.inbox.to_string());
            } else if tables::inbox_size(&hellos, &read.inbox)? > 0 {
                candidates.push(&read.inbox);
            }
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    candidates.retain(|inbox| !wake.changed.contains(*inbox));
    if candidates.is_empty() {
        return Ok((wake, transactions));
    }
    let live = live::lock(live);
    let transaction = database.begin_read()?;
    transactions += 1;
    let hellos = transaction.open_table(tables::HELLOS)?;
    let now = Millis::now().0;
    for inbox in candidates {
        let stored = tables::inbox_size(&hellos, inbox)?;
        if stored > reads::leased(&transaction, &live, inbox, now)? {
            wake.leasable.insert(inbox.to_owned());
        }
    }
    Ok((wake, transactions))
}
