//! Leases the embedded store keeps in its writer's memory instead of writing them.
//!
//! A read leases hellos and is acknowledged (or confirmed) moments later. Writing each lease only
//! to delete it again was most of what a read cost the disk: every hello it took rewritten, three
//! lease tables, then all of it removed, and all of that synced every 100 ms while reads queued
//! behind the sync. So a new lease lives here. It hides its hellos from other readers exactly as
//! a written one does (the writer checks this overlay before a hello's stored lease), and the
//! file changes only when the lease is done with:
//! - acknowledged or confirmed: its hellos are deleted, and a confirmation's record is written to
//!   answer repeats, as before;
//! - run out: housekeeping writes it as earlier releases wrote every lease, so that a late
//!   confirmation is still answered 410 and its hellos count as redelivered;
//! - the store closing: every lease still here is written first, so a graceful stop (a rolling
//!   restart) hides and answers after the restart exactly what it did before.
//!
//! A crash forgets what is here: those hellos become visible again (seen twice, never lost), which
//! is what a crash within the sync window already did to written leases.
//!
//! Reads lease here, on their own threads, from a read transaction: a lease writes nothing, so it
//! never waits for the writer or its syncs. One lock orders them with the writer. A read takes
//! its snapshot of the file while holding the lock, and the writer changes what is here only
//! after the transaction that deleted (or wrote) those hellos committed. So a snapshot that still
//! holds a hello also still sees the lease hiding it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// One lease not written to the file.
#[derive(Debug, Clone)]
pub(super) struct MemoryLease {
    /// When it runs out (ms).
    pub until: i64,
    /// The hellos it took (their sequences in the inbox), oldest first. A later lease may take
    /// one of them again once this one ran out; [`LiveLeases::held`] says which it still holds.
    pub sequences: Vec<u64>,
}

/// The lease that took a hello last, while that lease is in memory.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    pub lease: Arc<str>,
    pub until: i64,
}

/// The leases of one inbox that are in memory, and which hello each holds.
#[derive(Debug, Clone, Default)]
struct InboxLeases {
    leases: HashMap<Arc<str>, MemoryLease>,
    holders: HashMap<u64, Holder>,
}

/// What the writer changes here once its transaction committed (and forgets if it failed).
#[derive(Debug)]
pub(super) enum AfterCommit {
    /// The lease was acknowledged or confirmed: its hellos are deleted.
    Forget(String),
    /// The inbox's hellos were deleted with its name's release.
    ReleaseInbox(String),
}

/// Locks the leases. A panic while holding the lock aborts the process (`panic = "abort"`), so
/// a poisoned lock can only be seen in tests; what it guards is then still consistent, since
/// every change is a single map update.
pub(super) fn lock(live: &Mutex<LiveLeases>) -> MutexGuard<'_, LiveLeases> {
    live.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every lease in memory, by inbox, with the inbox of each lease id.
#[derive(Debug, Default)]
pub(super) struct LiveLeases {
    inboxes: HashMap<String, InboxLeases>,
    inbox_of: HashMap<Arc<str>, String>,
    /// Set once the store has written every lease here for good: no read may lease after that.
    closed: bool,
}

impl LiveLeases {
    /// Whether the store closed: leases taken now would not be written.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The store is closing: every lease here is being written for the last time.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Applies what a committed transaction changed.
    pub fn after_commit(&mut self, changes: Vec<AfterCommit>) {
        for change in changes {
            match change {
                AfterCommit::Forget(lease_id) => drop(self.take(&lease_id)),
                AfterCommit::ReleaseInbox(inbox) => self.release_inbox(&inbox),
            }
        }
    }

    /// The lease in memory that took this hello last, if any (it may have run out).
    pub fn holder(&self, inbox: &str, sequence: u64) -> Option<&Holder> {
        self.inboxes.get(inbox)?.holders.get(&sequence)
    }

    /// How many hellos of `inbox` the leases in memory hide at `now`.
    pub fn leased(&self, inbox: &str, now: i64) -> u64 {
        self.inboxes.get(inbox).map_or(0, |leases| {
            leases
                .leases
                .values()
                .filter(|lease| lease.until > now)
                .map(|lease| lease.sequences.len() as u64)
                .sum()
        })
    }

    /// A lease in memory: its inbox and what it took.
    pub fn get(&self, lease_id: &str) -> Option<(&str, &MemoryLease)> {
        let inbox = self.inbox_of.get(lease_id)?;
        let lease = self.inboxes.get(inbox)?.leases.get(lease_id)?;
        Some((inbox, lease))
    }

    /// The hellos a lease in memory still holds: those no later lease took.
    pub fn held(&self, lease_id: &str) -> Vec<u64> {
        let Some((inbox, lease)) = self.get(lease_id) else {
            return Vec::new();
        };
        lease
            .sequences
            .iter()
            .copied()
            .filter(|&sequence| {
                self.holder(inbox, sequence)
                    .is_some_and(|holder| *holder.lease == *lease_id)
            })
            .collect()
    }

    /// Remembers a new lease of `sequences` in `inbox`, which hides them until `until`.
    pub fn insert(&mut self, inbox: &str, lease_id: &str, until: i64, sequences: Vec<u64>) {
        let lease: Arc<str> = Arc::from(lease_id);
        self.inbox_of.insert(Arc::clone(&lease), inbox.to_owned());
        let leases = self.inboxes.entry(inbox.to_owned()).or_default();
        for &sequence in &sequences {
            leases.holders.insert(
                sequence,
                Holder {
                    lease: Arc::clone(&lease),
                    until,
                },
            );
        }
        leases
            .leases
            .insert(lease, MemoryLease { until, sequences });
    }

    /// Forgets a lease in memory; returns its inbox, the lease, and the hellos it still held
    /// (which nothing hides any more).
    pub fn take(&mut self, lease_id: &str) -> Option<(String, MemoryLease, Vec<u64>)> {
        let held = self.held(lease_id);
        let inbox = self.inbox_of.remove(lease_id)?;
        let leases = self.inboxes.get_mut(&inbox)?;
        let taken = leases.leases.remove(lease_id)?;
        for sequence in &held {
            leases.holders.remove(sequence);
        }
        if leases.leases.is_empty() {
            self.inboxes.remove(&inbox);
        }
        Some((inbox, taken, held))
    }

    /// The inbox's hellos are gone (its name was released): its leases in memory now hold
    /// nothing, but are kept to answer a confirmation (which then deletes nothing).
    pub fn release_inbox(&mut self, inbox: &str) {
        let Some(leases) = self.inboxes.get_mut(inbox) else {
            return;
        };
        leases.holders.clear();
        for lease in leases.leases.values_mut() {
            lease.sequences.clear();
        }
    }

    /// The ids of the leases in memory that ran out before `now` (all of them with `None`).
    pub fn ended(&self, now: Option<i64>) -> Vec<String> {
        self.inboxes
            .values()
            .flat_map(|leases| leases.leases.iter())
            .filter(|(_, lease)| now.is_none_or(|now| lease.until <= now))
            .map(|(id, _)| id.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_lease_takes_over_a_hello_and_the_first_no_longer_holds_it() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, vec![1, 2]);
        assert_eq!(live.leased("bob", 50), 2);
        assert_eq!(live.leased("bob", 100), 0, "ran out at 100");
        live.insert("bob", "b", 300, vec![2]);
        assert_eq!(live.held("a"), vec![1]);
        assert_eq!(live.held("b"), vec![2]);
        let (inbox, lease, held) = live.take("a").unwrap();
        assert_eq!((inbox.as_str(), lease.until, held), ("bob", 100, vec![1]));
        assert!(live.holder("bob", 1).is_none());
        assert_eq!(&*live.holder("bob", 2).unwrap().lease, "b");
        assert!(live.take("a").is_none());
    }

    #[test]
    fn a_released_inbox_keeps_its_leases_but_they_hold_nothing() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, vec![1, 2]);
        live.release_inbox("bob");
        assert_eq!(live.leased("bob", 0), 0);
        let (_, lease, held) = live.take("a").unwrap();
        assert!(lease.sequences.is_empty() && held.is_empty());
    }

    #[test]
    fn ended_lists_the_leases_that_ran_out_or_all() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, vec![1]);
        live.insert("ann", "b", 300, vec![1]);
        assert_eq!(live.ended(Some(200)), vec!["a".to_owned()]);
        let mut all = live.ended(None);
        all.sort();
        assert_eq!(all, vec!["a".to_owned(), "b".to_owned()]);
    }
}
