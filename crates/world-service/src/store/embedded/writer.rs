//! The embedded store's one writer thread: group commit of everything waiting in its queue.

use std::{
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use hello_common::{Name, timestamp::Millis, token::TokenHash, wire::StoredHello};
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::{
    housekeeping,
    live::{AfterCommit, LiveLeases, Run, lock},
    names, operations, sends,
    tables::{Storage, ttl_millis},
};
use crate::store::{
    ClaimChange, Confirmation, NewHello, StoreError, StoreLimits, commands::StoreCommands,
};

/// How many queued requests one transaction takes at most.
pub(super) const MAX_BATCH: usize = 512;
/// How long the writer waits idle before syncing unsynced leases and sweeping expired entries.
const IDLE_SYNC_AFTER: Duration = Duration::from_millis(200);
/// The longest leases and acknowledgements stay unsynced while the writer is busy.
const MAX_UNSYNCED: Duration = Duration::from_millis(100);
/// How often a busy writer forgets what is due, between batches: housekeeping must keep up
/// under load, not wait for a quiet moment that may never come. Its indexes make a sweep cost
/// what it removes, not what the store holds.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A request to the writer, with where to send its answer.
pub(super) enum Job {
    Send(NewHello, oneshot::Sender<Result<StoredHello, StoreError>>),
    Acknowledge(Vec<String>, oneshot::Sender<Result<u64, StoreError>>),
    Confirm(
        Name,
        String,
        oneshot::Sender<Result<Confirmation, StoreError>>,
    ),
    ClaimName(Name, TokenHash, oneshot::Sender<Result<(), StoreError>>),
    RotateToken(
        Name,
        TokenHash,
        TokenHash,
        oneshot::Sender<Result<ClaimChange, StoreError>>,
    ),
    ReleaseName(
        Name,
        TokenHash,
        oneshot::Sender<Result<ClaimChange, StoreError>>,
    ),
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// Commit what is queued before it, sync, and stop: answered once everything is on disk.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

impl Job {
    /// Whether its answer may only be given once it is on disk: a stored hello, and every
    /// change of who owns a name (a token shown, or a name freed, must not be undone by a crash).
    fn must_be_durable(&self) -> bool {
        matches!(
            self,
            Job::Send(..) | Job::ClaimName(..) | Job::RotateToken(..) | Job::ReleaseName(..)
        )
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub database: Arc<Database>,
    pub limits: StoreLimits,
    pub sync_sends: bool,
    /// Leases not written to the file (see [`super::live`]), shared with the reads that take
    /// them.
    pub live: Arc<Mutex<LiveLeases>>,
    /// Counts each commit.
    pub commands: StoreCommands,
}

/// Which leases in memory housekeeping writes to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Those that ran out: they must still answer a late confirmation with 410.
    Ended,
    /// All of them: the store is stopping.
    All,
}

/// What one job produced inside the transaction, to be answered only after the commit.
enum Outcome {
    Send(
        oneshot::Sender<Result<StoredHello, StoreError>>,
        Result<StoredHello, StoreError>,
    ),
    Acknowledge(oneshot::Sender<Result<u64, StoreError>>, u64),
    Confirm(
        oneshot::Sender<Result<Confirmation, StoreError>>,
        Confirmation,
    ),
    Claim(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Change(
        oneshot::Sender<Result<ClaimChange, StoreError>>,
        ClaimChange,
    ),
    Ping(oneshot::Sender<Result<(), StoreError>>),
}

impl Writer {
    /// Runs until the store is closed or every handle is dropped.
    pub(super) fn run(self, queue: &mpsc::Receiver<Job>) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        let mut last_sweep = Instant::now();
        loop {
            let first = match queue.recv_timeout(IDLE_SYNC_AFTER) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(error) = self.housekeeping(unsynced, Write::Ended) {
                        tracing::warn!(error = format!("{error:#}"), "store housekeeping failed");
                    } else {
                        unsynced = false;
                        last_sync = Instant::now();
                    }
                    last_sweep = Instant::now();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = Vec::new();
            let mut close = None;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Close(reply) => close = Some(reply),
                    job => batch.push(job),
                }
                if close.is_none() && batch.len() < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if let Some(reply) = close {
                if !batch.is_empty() {
                    self.apply_batch(batch, self.sync_sends);
                }
                let synced = self.housekeeping(true, Write::All);
                if let Err(error) = &synced {
                    tracing::error!(error = format!("{error:#}"), "final store sync failed");
                }
                // Let go of the database before answering: once the last handle is dropped too,
                // the file is free to open again at once.
                drop(self);
                drop(reply.send(synced.map(drop).map_err(StoreError::unavailable)));
                // Jobs still queued are dropped with the queue: their callers see "unavailable".
                return;
            }
            let durable = self.sync_sends
                && (batch.iter().any(Job::must_be_durable)
                    || (unsynced && last_sync.elapsed() >= MAX_UNSYNCED));
            // A durable commit also persists every unsynced commit before it.
            if self.apply_batch(batch, durable) {
                if durable {
                    unsynced = false;
                    last_sync = Instant::now();
                } else {
                    unsynced = true;
                }
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                match self.housekeeping(false, Write::Ended) {
                    Ok(true) => {
                        unsynced = false;
                        last_sync = Instant::now();
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "store housekeeping failed");
                    }
                }
                last_sweep = Instant::now();
            }
        }
        // Every handle was dropped without closing: still write and sync what was committed.
        if let Err(error) = self.housekeeping(true, Write::All) {
            tracing::warn!(error = format!("{error:#}"), "final store sync failed");
        }
    }

    /// Applies and commits a batch, then answers its jobs; false if the transaction failed.
    fn apply_batch(&self, batch: Vec<Job>, durable: bool) -> bool {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut after = Vec::new();
        let result = (|| -> Storage<()> {
            let mut transaction = self.database.begin_write()?;
            if !durable {
                transaction.set_durability(Durability::None)?;
            }
            let mut jobs = batch.into_iter().peekable();
            while let Some(job) = jobs.next() {
                let Job::Send(hello, reply) = job else {
                    outcomes.push(self.apply(&transaction, &mut after, job)?);
                    continue;
                };
                // Consecutive sends (most of a busy batch) share their tables and counters.
                let mut sends = sends::Sends::open(&transaction)?;
                outcomes.push(Outcome::Send(reply, sends.send(hello, &self.limits)?));
                while let Some(Job::Send(hello, reply)) =
                    jobs.next_if(|job| matches!(job, Job::Send(..)))
                {
                    outcomes.push(Outcome::Send(reply, sends.send(hello, &self.limits)?));
                }
                sends.close()?;
            }
            transaction.commit()?;
            self.commands
                .count(if durable { "synced_commit" } else { "commit" });
            Ok(())
        })();
        match result {
            Ok(()) => {
                lock(&self.live).after_commit(after);
                for outcome in outcomes {
                    outcome.answer();
                }
                true
            }
            Err(error) => {
                lock(&self.live).after_failure(after);
                tracing::error!(
                    error = format!("{error:#}"),
                    "store transaction failed; nothing of it was written"
                );
                // Jobs not yet applied when the failure happened were dropped with their
                // senders, which their callers see as "unavailable"; answer the applied ones.
                for outcome in outcomes {
                    outcome.fail(&error);
                }
                false
            }
        }
    }

    /// Applies one job inside the batch's transaction; what it changes in the leases in memory
    /// goes to `after`, for once the transaction committed.
    fn apply(
        &self,
        transaction: &WriteTransaction,
        after: &mut Vec<AfterCommit>,
        job: Job,
    ) -> Storage<Outcome> {
        Ok(match job {
            Job::Send(hello, reply) => {
                let mut sends = sends::Sends::open(transaction)?;
                let stored = sends.send(hello, &self.limits)?;
                sends.close()?;
                Outcome::Send(reply, stored)
            }
            Job::Acknowledge(lease_ids, reply) => {
                let mut deleted = 0;
                for lease_id in &lease_ids {
                    deleted += operations::acknowledge(
                        transaction,
                        &self.live,
                        after,
                        lease_id,
                        &self.limits,
                    )?;
                }
                Outcome::Acknowledge(reply, deleted)
            }
            Job::Confirm(name, lease_id, reply) => {
                let confirmation = operations::confirm(
                    transaction,
                    &self.live,
                    after,
                    &name,
                    &lease_id,
                    &self.limits,
                )?;
                Outcome::Confirm(reply, confirmation)
            }
            Job::ClaimName(name, token, reply) => Outcome::Claim(
                reply,
                names::claim_name(transaction, &name, token, &self.limits)?,
            ),
            Job::RotateToken(name, current, new, reply) => Outcome::Change(
                reply,
                names::rotate_token(transaction, &name, &current, new)?,
            ),
            Job::ReleaseName(name, token, reply) => {
                let change = names::release_name(transaction, after, &name, &token)?;
                Outcome::Change(reply, change)
            }
            Job::Ping(reply) => Outcome::Ping(reply),
            Job::Close(_) => unreachable!("the writer takes Close out of every batch"),
        })
    }

    /// Writes the leases in memory that ran out (or all of them, when stopping), forgets leases
    /// and idempotency keys whose time has come, and syncs when asked to (or when it changed
    /// anything); returns whether it committed, which also syncs every commit before.
    fn housekeeping(&self, sync: bool, write: Write) -> Storage<bool> {
        let now = Millis::now().0;
        let mut transaction = self.database.begin_write()?;
        let mut changed = false;
        // The leases to write, with what each still holds. When stopping, no read may lease
        // after this: its lease would not be written.
        let to_write: Vec<(String, String, i64, Vec<Run>)> = {
            let mut live = lock(&self.live);
            if write == Write::All {
                live.close();
            }
            live.ended((write == Write::Ended).then_some(now))
                .into_iter()
                .filter_map(|lease_id| {
                    let held = live.held(&lease_id);
                    let (inbox, lease) = live.get(&lease_id)?;
                    Some((lease_id.clone(), inbox.to_owned(), lease.until, held))
                })
                .collect()
        };
        for (lease_id, inbox, until, held) in &to_write {
            operations::write_lease(&transaction, lease_id, inbox, *until, held, &self.limits)?;
        }
        changed |= !to_write.is_empty();
        changed |= housekeeping::forget_old_leases(&transaction, now)?;
        let horizon = now - ttl_millis(self.limits.idempotency_ttl);
        changed |= housekeeping::forget_old_idempotency_keys(&transaction, horizon)?;
        if !changed && !sync {
            transaction.abort()?;
            return Ok(false);
        }
        transaction.set_durability(Durability::Immediate)?;
        transaction.commit()?;
        self.commands.count("synced_commit");
        // On the file now: hidden and answered from there.
        lock(&self.live).after_commit(
            to_write
                .into_iter()
                .map(|(lease_id, ..)| AfterCommit::Forget(lease_id))
                .collect(),
        );
        Ok(true)
    }
}

impl Outcome {
    fn answer(self) {
        // A caller that went away no longer needs the answer; the work is committed anyway.
        match self {
            Self::Send(reply, result) => drop(reply.send(result)),
            Self::Acknowledge(reply, deleted) => drop(reply.send(Ok(deleted))),
            Self::Confirm(reply, confirmation) => drop(reply.send(Ok(confirmation))),
            Self::Claim(reply, result) => drop(reply.send(result)),
            Self::Change(reply, change) => drop(reply.send(Ok(change))),
            Self::Ping(reply) => drop(reply.send(Ok(()))),
        }
    }

    fn fail(self, error: &anyhow::Error) {
        let unavailable = || StoreError::unavailable(anyhow::anyhow!("{error:#}"));
        match self {
            Self::Send(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Acknowledge(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Confirm(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Claim(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Change(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Ping(reply) => drop(reply.send(Err(unavailable()))),
        }
    }
}
