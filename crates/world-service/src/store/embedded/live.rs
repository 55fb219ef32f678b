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
//! The writer applies a batch of jobs in one transaction; if that transaction fails, nothing of it
//! is written, so the changes the batch made here are undone too ([`LiveLeases::rollback`]).

use std::{collections::HashMap, sync::Arc};

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

/// What a batch changed, to put back if its transaction fails: each inbox and lease id as it was
/// before the batch first touched it (`None`: absent).
#[derive(Debug, Default)]
struct Undo {
    inboxes: HashMap<String, Option<InboxLeases>>,
    lease_inboxes: HashMap<Arc<str>, Option<String>>,
}

/// Every lease in memory, by inbox, with the inbox of each lease id.
#[derive(Debug, Default)]
pub(super) struct LiveLeases {
    inboxes: HashMap<String, InboxLeases>,
    inbox_of: HashMap<Arc<str>, String>,
    /// Recording while a batch is applied ([`Self::begin`]); `None` outside batches.
    undo: Option<Undo>,
}

impl LiveLeases {
    /// Starts recording what is changed, until [`Self::commit`] or [`Self::rollback`].
    pub fn begin(&mut self) {
        self.undo = Some(Undo::default());
    }

    /// The batch's transaction committed: keep its changes.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// The batch's transaction failed: put back what it changed here.
    pub fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        for (inbox, before) in undo.inboxes {
            match before {
                Some(leases) => self.inboxes.insert(inbox, leases),
                None => self.inboxes.remove(&inbox),
            };
        }
        for (lease, before) in undo.lease_inboxes {
            match before {
                Some(inbox) => self.inbox_of.insert(lease, inbox),
                None => self.inbox_of.remove(&lease),
            };
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
        self.record_lease_id(&lease);
        self.inbox_of.insert(Arc::clone(&lease), inbox.to_owned());
        let leases = self.inbox_mut(inbox);
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
        let (lease, inbox) = self.inbox_of.get_key_value(lease_id)?;
        let (lease, inbox) = (Arc::clone(lease), inbox.clone());
        self.record_lease_id(&lease);
        self.inbox_of.remove(lease_id);
        let leases = self.inbox_mut(&inbox);
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
        if !self.inboxes.contains_key(inbox) {
            return;
        }
        let leases = self.inbox_mut(inbox);
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

    /// How many leases are in memory.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inbox_of.len()
    }

    fn inbox_mut(&mut self, inbox: &str) -> &mut InboxLeases {
        if let Some(undo) = &mut self.undo
            && !undo.inboxes.contains_key(inbox)
        {
            undo.inboxes
                .insert(inbox.to_owned(), self.inboxes.get(inbox).cloned());
        }
        self.inboxes.entry(inbox.to_owned()).or_default()
    }

    fn record_lease_id(&mut self, lease: &Arc<str>) {
        if let Some(undo) = &mut self.undo
            && !undo.lease_inboxes.contains_key(lease)
        {
            undo.lease_inboxes
                .insert(Arc::clone(lease), self.inbox_of.get(lease).cloned());
        }
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
    fn a_rolled_back_batch_leaves_the_leases_as_they_were() {
        let mut live = LiveLeases::default();
        live.insert("bob", "a", 100, vec![1]);
        live.begin();
        live.insert("bob", "b", 200, vec![2]);
        live.insert("ann", "c", 200, vec![7]);
        live.take("a").unwrap();
        live.release_inbox("bob");
        live.rollback();
        assert_eq!(live.len(), 1);
        assert_eq!(live.held("a"), vec![1]);
        assert!(live.get("b").is_none() && live.get("c").is_none());
        assert!(live.holder("ann", 7).is_none() && live.holder("bob", 2).is_none());
        // A committed batch stays.
        live.begin();
        live.insert("bob", "b", 200, vec![2]);
        live.commit();
        live.rollback();
        assert_eq!(live.held("b"), vec![2]);
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
