//! The leases in memory of one inbox: which lease holds which run of its hellos.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use super::{Holder, MemoryLease, Run};

/// A run of hellos and the lease in memory that took them last.
#[derive(Debug, Clone)]
pub(super) struct HeldRun {
    last: u64,
    holder: Holder,
}

/// The leases of one inbox that are in memory, and which hellos each holds: disjoint runs, by
/// their first sequence.
#[derive(Debug, Clone, Default)]
pub(super) struct InboxLeases {
    pub leases: HashMap<Arc<str>, MemoryLease>,
    pub holders: BTreeMap<u64, HeldRun>,
}

impl InboxLeases {
    pub fn holder(&self, sequence: u64) -> Option<&Holder> {
        let (_, run) = self.holders.range(..=sequence).next_back()?;
        (sequence <= run.last).then_some(&run.holder)
    }

    /// The runs `lease` still holds. Runs are only ever cut, never grown, so they all lie within
    /// the runs it took.
    pub fn held(&self, lease: &str, taken: &[Run]) -> Vec<Run> {
        taken
            .iter()
            .flat_map(|&(first, last)| self.holders.range(first..=last))
            .filter(|(_, run)| *run.holder.lease == *lease)
            .map(|(&first, run)| (first, run.last))
            .collect()
    }

    /// Sets when the runs `lease` still holds (within `taken`) are hidden until.
    pub fn set_until(&mut self, lease: &str, taken: &[Run], until: i64) {
        for &(first, last) in taken {
            for (_, run) in self.holders.range_mut(first..=last) {
                if *run.holder.lease == *lease {
                    run.holder.until = until;
                }
            }
        }
    }

    /// `first..=last` is now held by `holder`: the runs of earlier leases are cut around it.
    pub fn assign(&mut self, (first, last): Run, holder: Holder) {
        // A run that starts before and reaches into this one keeps its head (and its tail, if
        // it reaches beyond).
        if let Some((_, before)) = self.holders.range_mut(..first).next_back()
            && before.last >= first
        {
            let end = before.last;
            before.last = first - 1;
            if end > last {
                let tail = HeldRun {
                    last: end,
                    holder: before.holder.clone(),
                };
                self.holders.insert(last + 1, tail);
            }
        }
        let inside: Vec<u64> = self
            .holders
            .range(first..=last)
            .map(|(&start, _)| start)
            .collect();
        for start in inside {
            if let Some(run) = self.holders.remove(&start)
                && run.last > last
            {
                self.holders.insert(last + 1, run);
            }
        }
        self.holders.insert(first, HeldRun { last, holder });
    }
}
