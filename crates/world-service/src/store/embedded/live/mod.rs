//! Leases the embedded store keeps in memory instead of writing them.
//!
//! A read leases hellos and is acknowledged (or confirmed) moments later. Writing each lease only
//! to delete it again was most of what a read cost the disk: every hello it took rewritten, three
//! lease tables, then all of it removed, and all of that synced every 100 ms while reads queued
//! behind the sync. So a new lease lives here. It hides its hellos from other readers exactly as
//! a written one does (reads check this overlay before a hello's stored lease), and the file
//! changes only when the lease is done with:
//! - acknowledged or confirmed: the writer deletes its hellos, and writes a confirmation's record
//!   to answer repeats, as before. A confirmation is answered as soon as it is marked here
//!   ([`LiveLeases::confirm`]); the mark hides the hellos until the writer's next batch deleted
//!   them;
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

mod inbox;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use self::inbox::InboxLeases;

/// Consecutive hellos of one inbox, by sequence: every hello of the inbox whose sequence lies in
/// `first..=last`. A read takes the oldest visible hellos in order, so what one lease takes is
/// usually one run, whatever its size: memory grows with the number of leases, not of hellos.
/// (Sequences come from one counter for the whole store, so a run's numbers are not all the
/// inbox's; and a new hello always gets a higher sequence than every stored one, so it never falls
/// inside an existing run.)
pub(super) type Run = (u64, u64);

/// One lease not written to the file.
#[derive(Debug, Clone)]
pub(super) struct MemoryLease {
    /// When it runs out (ms).
    pub until: i64,
    /// How many hellos it took, which it hides while it runs.
    pub taken: u64,
    /// The hellos it took. A later lease may take some of them again once this one ran out;
    /// [`LiveLeases::held`] says which it still holds.
    pub runs: Vec<Run>,
    /// Confirmed in time, and answered so: its hellos stay hidden, whatever the time, until the
    /// writer deleted them.
    pub confirmed: bool,
}

/// What the leases in memory say about a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemoryConfirmation {
    /// Not a lease in memory: the file knows, or nobody does.
    NotHere,
    /// A lease of another inbox.
    OtherInbox,
    /// It ran out before any confirmation.
    Expired,
    /// Confirmed now (`first`), or already: the writer deletes its hellos.
    Confirmed { first: bool },
}

/// The lease that took a hello last, while that lease is in memory.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    pub lease: Arc<str>,
    pub until: i64,
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
    /// How many leases are in memory.
    pub fn count(&self) -> usize {
        self.inbox_of.len()
    }

    /// Whether the store closed: leases taken now would not be written.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The store is closing: every lease here is being written for the last time.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The writer's transaction failed: the leases it confirmed are not.
    pub fn after_failure(&mut self, changes: Vec<AfterCommit>) {
        for change in changes {
            if let AfterCommit::Forget(lease_id) = change {
                self.unconfirm(&lease_id);
            }
        }
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
        self.inboxes.get(inbox)?.holder(sequence)
    }

    /// How many hellos of `inbox` the leases in memory hide at `now`.
    pub fn leased(&self, inbox: &str, now: i64) -> u64 {
        self.inboxes.get(inbox).map_or(0, |leases| {
            leases
                .leases
                .values()
                .filter(|lease| lease.confirmed || lease.until > now)
                .map(|lease| lease.taken)
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
    pub fn held(&self, lease_id: &str) -> Vec<Run> {
        let Some(inbox) = self.inbox_of.get(lease_id) else {
            return Vec::new();
        };
        let Some(leases) = self.inboxes.get(inbox) else {
            return Vec::new();
        };
        leases
            .leases
            .get(lease_id)
            .map_or_else(Vec::new, |lease| leases.held(lease_id, &lease.runs))
    }

    /// Remembers a new lease of `taken` hellos in `runs` of `inbox`, which hides them until
    /// `until`.
    pub fn insert(&mut self, inbox: &str, lease_id: &str, until: i64, taken: u64, runs: Vec<Run>) {
        let lease: Arc<str> = Arc::from(lease_id);
        self.inbox_of.insert(Arc::clone(&lease), inbox.to_owned());
        let leases = self.inboxes.entry(inbox.to_owned()).or_default();
        for &run in &runs {
            let holder = Holder {
                lease: Arc::clone(&lease),
                until,
            };
            leases.assign(run, holder);
        }
        let lease_record = MemoryLease {
            until,
            taken,
            runs,
            confirmed: false,
        };
        leases.leases.insert(lease, lease_record);
    }

    /// Forgets a lease in memory; returns its inbox, the lease, and the hellos it still held
    /// (which nothing hides any more).
    pub fn take(&mut self, lease_id: &str) -> Option<(String, MemoryLease, Vec<Run>)> {
        let held = self.held(lease_id);
        let inbox = self.inbox_of.remove(lease_id)?;
        let leases = self.inboxes.get_mut(&inbox)?;
        let taken = leases.leases.remove(lease_id)?;
        for (first, _) in &held {
            leases.holders.remove(first);
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
            lease.taken = 0;
            lease.runs.clear();
        }
    }

    /// Confirms a lease in memory of `inbox` at `now`, if it has not run out: from then on its
    /// hellos stay hidden until the writer deleted them ([`AfterCommit::Forget`]), or, if its
    /// transaction fails, until the lease runs out ([`Self::unconfirm`]).
    pub fn confirm(&mut self, lease_id: &str, inbox: &str, now: i64) -> MemoryConfirmation {
        if self.closed {
            // Written to the file: the writer answers (or, stopped, says it is unavailable).
            return MemoryConfirmation::NotHere;
        }
        let Some(lease_inbox) = self.inbox_of.get(lease_id) else {
            return MemoryConfirmation::NotHere;
        };
        if lease_inbox != inbox {
            return MemoryConfirmation::OtherInbox;
        }
        let Some(leases) = self.inboxes.get_mut(inbox) else {
            return MemoryConfirmation::NotHere;
        };
        let Some(lease) = leases.leases.get_mut(lease_id) else {
            return MemoryConfirmation::NotHere;
        };
        if lease.confirmed {
            return MemoryConfirmation::Confirmed { first: false };
        }
        if lease.until < now {
            return MemoryConfirmation::Expired;
        }
        lease.confirmed = true;
        let runs = lease.runs.clone();
        leases.set_until(lease_id, &runs, i64::MAX);
        MemoryConfirmation::Confirmed { first: true }
    }

    /// The transaction that was to delete a confirmed lease's hellos failed: they come back when
    /// the lease runs out, as if it had not been confirmed (seen twice, never lost).
    pub fn unconfirm(&mut self, lease_id: &str) {
        let Some(inbox) = self.inbox_of.get(lease_id) else {
            return;
        };
        let Some(leases) = self.inboxes.get_mut(inbox) else {
            return;
        };
        let Some(lease) = leases.leases.get_mut(lease_id) else {
            return;
        };
        if !std::mem::take(&mut lease.confirmed) {
            return;
        }
        let (runs, until) = (lease.runs.clone(), lease.until);
        leases.set_until(lease_id, &runs, until);
    }

    /// The ids of the leases in memory that ran out before `now` (all of them with `None`). A
    /// confirmed one has not run out: the writer is about to delete its hellos.
    pub fn ended(&self, now: Option<i64>) -> Vec<String> {
        self.inboxes
            .values()
            .flat_map(|leases| leases.leases.iter())
            .filter(|(_, lease)| now.is_none_or(|now| !lease.confirmed && lease.until <= now))
            .map(|(id, _)| id.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_lease_takes_over_part_of_a_run_and_the_first_keeps_the_rest() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, 3, vec![(1, 9)]);
        assert_eq!(live.leased("bob", 50), 3);
        assert_eq!(live.leased("bob", 100), 0, "ran out at 100");
        live.insert("bob", "b", 300, 1, vec![(4, 5)]);
        assert_eq!(live.held("a"), vec![(1, 3), (6, 9)]);
        assert_eq!(live.held("b"), vec![(4, 5)]);
        assert_eq!(&*live.holder("bob", 7).unwrap().lease, "a");
        assert_eq!(live.holder("bob", 5).unwrap().until, 300);
        assert!(live.holder("bob", 10).is_none() && live.holder("bob", 0).is_none());
        let (inbox, lease, held) = live.take("a").unwrap();
        assert_eq!((inbox.as_str(), lease.until), ("bob", 100));
        assert_eq!(held, vec![(1, 3), (6, 9)]);
        assert!(live.holder("bob", 1).is_none() && live.holder("bob", 9).is_none());
        assert_eq!(&*live.holder("bob", 4).unwrap().lease, "b");
        assert!(live.take("a").is_none());
        live.take("b").unwrap();
        assert!(live.holder("bob", 4).is_none());
    }

    #[test]
    fn a_lease_over_several_runs_replaces_whole_runs_and_cuts_the_edges() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, 1, vec![(1, 2)]);
        live.insert("bob", "b", 100, 1, vec![(3, 4)]);
        live.insert("bob", "c", 100, 1, vec![(5, 8)]);
        live.insert("bob", "d", 300, 2, vec![(2, 3), (6, 6)]);
        assert_eq!(live.held("a"), vec![(1, 1)]);
        assert_eq!(live.held("b"), vec![(4, 4)]);
        assert_eq!(live.held("c"), vec![(5, 5), (7, 8)]);
        assert_eq!(live.held("d"), vec![(2, 3), (6, 6)]);
        live.insert("bob", "e", 400, 8, vec![(1, 8)]);
        for lease in ["a", "b", "c", "d"] {
            assert_eq!(live.held(lease), vec![], "{lease} holds nothing now");
        }
        assert_eq!(live.held("e"), vec![(1, 8)]);
    }

    #[test]
    fn a_released_inbox_keeps_its_leases_but_they_hold_nothing() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, 2, vec![(1, 2)]);
        live.release_inbox("bob");
        assert_eq!(live.leased("bob", 0), 0);
        let (_, lease, held) = live.take("a").unwrap();
        assert!(lease.runs.is_empty() && held.is_empty());
    }

    #[test]
    fn a_confirmed_lease_hides_its_hellos_past_its_end_until_unconfirmed() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, 2, vec![(1, 2)]);
        assert_eq!(live.confirm("a", "ann", 50), MemoryConfirmation::OtherInbox);
        assert_eq!(live.confirm("x", "bob", 50), MemoryConfirmation::NotHere);
        assert_eq!(
            live.confirm("a", "bob", 50),
            MemoryConfirmation::Confirmed { first: true }
        );
        assert_eq!(
            live.confirm("a", "bob", 500),
            MemoryConfirmation::Confirmed { first: false }
        );
        assert_eq!(live.leased("bob", 500), 2);
        assert_eq!(live.holder("bob", 2).unwrap().until, i64::MAX);
        assert!(live.ended(Some(500)).is_empty(), "confirmed: not run out");
        live.after_failure(vec![AfterCommit::Forget("a".into())]);
        assert_eq!(live.holder("bob", 2).unwrap().until, 100);
        assert_eq!(live.confirm("a", "bob", 500), MemoryConfirmation::Expired);
        assert_eq!(live.ended(Some(500)), vec!["a".to_owned()]);
    }

    #[test]
    fn ended_lists_the_leases_that_ran_out_or_all() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, 1, vec![(1, 1)]);
        live.insert("ann", "b", 300, 1, vec![(1, 1)]);
        assert_eq!(live.ended(Some(200)), vec!["a".to_owned()]);
        let mut all = live.ended(None);
        all.sort();
        assert_eq!(all, vec!["a".to_owned(), "b".to_owned()]);
    }
}
