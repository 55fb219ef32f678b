//! The embedded backend: one redb file under the data directory, no other process needed.
//!
//! All writes go through one writer thread. It takes every request waiting in its queue, applies
//! them in one transaction and commits once (group commit), so concurrent sends share a single
//! `fsync` instead of paying one each. A batch that contains a send is committed with
//! `Durability::Immediate`: no send is answered before its hello is on disk (unless
//! [`EmbeddedOptions::sync_sends`] is off, which exists only to measure this cost). Claims and
//! acknowledgements alone commit without syncing, and are synced within `MAX_UNSYNCED` (by the
//! next batch, or by the idle writer): losing one in a crash only makes hellos visible again
//! (seen twice, never lost), and the window bounds how many.

use std::{
    path::Path,
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use async_trait::async_trait;
use hello_common::{
    Name,
    timestamp::Millis,
    wire::{Claim, DeliveredHello, StoredHello},
};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{ClaimRequest, NewHello, Store, StoreError, StoreLimits, new_claim_id, new_hello_id};

/// (inbox key, arrival sequence) → [`HelloRecord`]: iterating one inbox is iterating in order.
const HELLOS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hellos");
/// inbox key → number of hellos stored (leased or not), for the inbox cap.
const INBOX_SIZES: TableDefinition<&str, u64> = TableDefinition::new("inbox_sizes");
/// claim id → [`ClaimRecord`].
const CLAIMS: TableDefinition<&str, &[u8]> = TableDefinition::new("claims");
/// (inbox key, claim id) → (lease until ms, hellos taken): the claims of one inbox, so that a
/// read counts the hellos leased to others without visiting every hello waiting behind them.
const CLAIMS_BY_INBOX: TableDefinition<(&str, &str), (i64, u64)> =
    TableDefinition::new("claims_by_inbox");
/// idempotency key → [`IdempotencyRecord`].
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// (created at, idempotency key) → (): expiring old keys without scanning them all.
const IDEMPOTENCY_BY_AGE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("idempotency_by_age");
/// Counters: `next_sequence`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "world.redb";
/// redb's own page cache unless `WORLD_STORE_CACHE_MB` says otherwise (redb's default is 1 GiB).
/// The operating system caches the file as well, so a small cache costs system calls, not disk
/// reads (`bench/run.py` compares 1,000,000 stored hellos with an empty store).
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// How many queued requests one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How long the writer waits idle before syncing unsynced claims and sweeping expired entries.
const IDLE_SYNC_AFTER: Duration = Duration::from_millis(200);
/// The longest claims and acknowledgements stay unsynced while the writer is busy.
const MAX_UNSYNCED: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
struct HelloRecord {
    id: String,
    to: String,
    from: String,
    at: i64,
    /// Hidden from readers until this instant (ms); 0 when never claimed.
    lease_until: i64,
    claim: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimRecord {
    inbox: String,
    sequences: Vec<u64>,
    until: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyRecord {
    to_key: String,
    from_key: String,
    hello: StoredHello,
    created: i64,
}

enum Job {
    Send(NewHello, oneshot::Sender<Result<StoredHello, StoreError>>),
    Claim(
        Name,
        ClaimRequest,
        oneshot::Sender<Result<Claim, StoreError>>,
    ),
    Acknowledge(Vec<String>, oneshot::Sender<Result<u64, StoreError>>),
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// Commit what is queued before it, sync, and stop: answered once everything is on disk.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// How the embedded store uses memory and the disk.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// redb's own page cache. The operating system's page cache still holds the file; this
    /// bounds the process's own memory.
    pub cache_bytes: usize,
    /// Sync a batch holding a send before answering it (the default). `false` exists only to
    /// measure what syncing costs: sends are then synced when the writer is idle, so a crash of
    /// the machine can lose acknowledged hellos.
    pub sync_sends: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            sync_sends: true,
        }
    }
}

/// The embedded store: a handle to its writer thread.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    jobs: mpsc::SyncSender<Job>,
    /// For reads that need no writer: redb's readers see the last commit without waiting.
    database: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) `data_dir/world.redb` with the default options and starts the writer.
    pub fn open(data_dir: &Path, limits: StoreLimits) -> anyhow::Result<Self> {
        Self::open_with(data_dir, limits, EmbeddedOptions::default())
    }

    /// Like [`EmbeddedStore::open`] with the given cache size and syncing.
    pub fn open_with(
        data_dir: &Path,
        limits: StoreLimits,
        options: EmbeddedOptions,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "cannot create the data directory {} (WORLD_DATA_DIR)",
                data_dir.display()
            )
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let database = redb::Builder::new()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .with_context(|| {
                format!(
                    "cannot open {}: is another world-service using this WORLD_DATA_DIR?",
                    path.display()
                )
            })?;
        create_tables(&database)?;
        let database = Arc::new(database);
        let (jobs, queue) = mpsc::sync_channel(4 * MAX_BATCH);
        let writer = Writer {
            database: Arc::clone(&database),
            limits,
            sync_sends: options.sync_sends,
        };
        thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer.run(&queue))
            .context("cannot start the store's writer thread")?;
        Ok(Self { jobs, database })
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.clone();
        let job = job(reply);
        // The queue is bounded: when it is full, wait on a blocking thread, not on the runtime.
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                let queued = tokio::task::spawn_blocking(move || jobs.send(job).is_ok())
                    .await
                    .map_err(StoreError::unavailable)?;
                if !queued {
                    return Err(writer_stopped());
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(writer_stopped()),
        }
        answer.await.map_err(|_| writer_stopped())?
    }

    /// True when no hello, leased or not, is stored for `name`: a lookup in the page cache.
    fn inbox_is_empty(&self, name: &Name) -> Result<bool, StoreError> {
        let read = || -> Storage<bool> {
            let transaction = self.database.begin_read()?;
            let sizes = transaction.open_table(INBOX_SIZES)?;
            Ok(sizes.get(name.key())?.is_none_or(|size| size.value() == 0))
        };
        read().map_err(StoreError::unavailable)
    }
}

fn writer_stopped() -> StoreError {
    StoreError::unavailable(anyhow::anyhow!("the embedded store's writer has stopped"))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn send(&self, hello: NewHello) -> Result<StoredHello, StoreError> {
        self.submit(|reply| Job::Send(hello, reply)).await
    }

    async fn claim(&self, name: &Name, request: ClaimRequest) -> Result<Claim, StoreError> {
        // Most reads of a busy service find nothing; those need no write transaction. A send
        // answered before this read began is committed, so this read transaction sees it.
        if self.inbox_is_empty(name)? {
            return Ok(Claim {
                claim_id: None,
                hellos: Vec::new(),
                remaining: 0,
            });
        }
        let name = name.clone();
        self.submit(|reply| Job::Claim(name, request, reply)).await
    }

    async fn acknowledge(&self, claim_ids: &[String]) -> Result<u64, StoreError> {
        let claim_ids = claim_ids.to_vec();
        self.submit(|reply| Job::Acknowledge(claim_ids, reply))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.submit(Job::Ping).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.submit(Job::Close).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

fn create_tables(database: &Database) -> anyhow::Result<()> {
    let transaction = database.begin_write()?;
    transaction.open_table(HELLOS)?;
    transaction.open_table(INBOX_SIZES)?;
    transaction.open_table(CLAIMS)?;
    transaction.open_table(CLAIMS_BY_INBOX)?;
    transaction.open_table(IDEMPOTENCY)?;
    transaction.open_table(IDEMPOTENCY_BY_AGE)?;
    transaction.open_table(META)?;
    transaction.commit()?;
    Ok(())
}

/// A failure of the storage itself: the whole batch is abandoned.
type Storage<T> = Result<T, anyhow::Error>;

struct Writer {
    database: Arc<Database>,
    limits: StoreLimits,
    sync_sends: bool,
}

/// What one job produced inside the transaction, to be answered only after the commit.
enum Outcome {
    Send(
        oneshot::Sender<Result<StoredHello, StoreError>>,
        Result<StoredHello, StoreError>,
    ),
    Claim(oneshot::Sender<Result<Claim, StoreError>>, Claim),
    Acknowledge(oneshot::Sender<Result<u64, StoreError>>, u64),
    Ping(oneshot::Sender<Result<(), StoreError>>),
}

impl Writer {
    fn run(self, queue: &mpsc::Receiver<Job>) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        loop {
            let first = match queue.recv_timeout(IDLE_SYNC_AFTER) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(error) = self.housekeeping(unsynced) {
                        tracing::warn!(error = format!("{error:#}"), "store housekeeping failed");
                    } else {
                        unsynced = false;
                        last_sync = Instant::now();
                    }
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
                let synced = self.housekeeping(true);
                if let Err(error) = &synced {
                    tracing::error!(error = format!("{error:#}"), "final store sync failed");
                }
                // Let go of the database before answering: once the last handle is dropped too,
                // the file is free to open again at once.
                drop(self);
                drop(reply.send(synced.map_err(StoreError::unavailable)));
                // Jobs still queued are dropped with the queue: their callers see "unavailable".
                return;
            }
            let durable = self.sync_sends
                && (batch.iter().any(|job| matches!(job, Job::Send(..)))
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
        }
        // Every handle was dropped without closing: still sync what was committed.
        if let Err(error) = self.housekeeping(true) {
            tracing::warn!(error = format!("{error:#}"), "final store sync failed");
        }
    }

    /// Applies and commits a batch, then answers its jobs; false if the transaction failed.
    fn apply_batch(&self, batch: Vec<Job>, durable: bool) -> bool {
        let mut outcomes = Vec::with_capacity(batch.len());
        let result = (|| -> Storage<()> {
            let mut transaction = self.database.begin_write()?;
            if !durable {
                transaction.set_durability(Durability::None)?;
            }
            for job in batch {
                outcomes.push(self.apply(&transaction, job)?);
            }
            transaction.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                for outcome in outcomes {
                    outcome.answer();
                }
                true
            }
            Err(error) => {
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

    fn apply(&self, transaction: &WriteTransaction, job: Job) -> Storage<Outcome> {
        Ok(match job {
            Job::Send(hello, reply) => Outcome::Send(reply, self.send(transaction, hello)?),
            Job::Claim(name, request, reply) => {
                Outcome::Claim(reply, claim(transaction, &name, request)?)
            }
            Job::Acknowledge(claim_ids, reply) => {
                let mut deleted = 0;
                for claim_id in &claim_ids {
                    deleted += acknowledge(transaction, claim_id)?;
                }
                Outcome::Acknowledge(reply, deleted)
            }
            Job::Ping(reply) => Outcome::Ping(reply),
            Job::Close(_) => unreachable!("the writer takes Close out of every batch"),
        })
    }

    fn send(
        &self,
        transaction: &WriteTransaction,
        hello: NewHello,
    ) -> Storage<Result<StoredHello, StoreError>> {
        let now = Millis::now();
        let mut idempotency = transaction.open_table(IDEMPOTENCY)?;
        if let Some(key) = &hello.idempotency_key {
            let first = idempotency
                .get(key.as_str())?
                .map(|record| serde_json::from_slice::<IdempotencyRecord>(record.value()))
                .transpose()?;
            if let Some(first) = first {
                let fresh = first.created + ttl_millis(self.limits.idempotency_ttl) > now.0;
                if fresh {
                    return Ok(
                        if first.to_key == hello.to.key() && first.from_key == hello.from.key() {
                            Ok(first.hello)
                        } else {
                            Err(StoreError::IdempotencyKeyReused {
                                to: first.hello.to,
                                from: first.hello.from,
                            })
                        },
                    );
                }
            }
        }

        let mut sizes = transaction.open_table(INBOX_SIZES)?;
        let size = sizes.get(hello.to.key())?.map_or(0, |size| size.value());
        if size >= self.limits.inbox_cap {
            return Ok(Err(StoreError::InboxFull {
                name: hello.to.to_string(),
                cap: self.limits.inbox_cap,
            }));
        }
        let mut meta = transaction.open_table(META)?;
        let sequence = meta.get("next_sequence")?.map_or(0, |next| next.value());
        meta.insert("next_sequence", sequence + 1)?;

        let stored = StoredHello {
            id: new_hello_id(),
            to: hello.to.to_string(),
            from: hello.from.to_string(),
            at: now.to_rfc3339(),
        };
        let record = HelloRecord {
            id: stored.id.clone(),
            to: stored.to.clone(),
            from: stored.from.clone(),
            at: now.0,
            lease_until: 0,
            claim: None,
        };
        let mut hellos = transaction.open_table(HELLOS)?;
        hellos.insert(
            (hello.to.key(), sequence),
            serde_json::to_vec(&record)?.as_slice(),
        )?;
        sizes.insert(hello.to.key(), size + 1)?;

        if let Some(key) = &hello.idempotency_key {
            let record = IdempotencyRecord {
                to_key: hello.to.key().to_owned(),
                from_key: hello.from.key().to_owned(),
                hello: stored.clone(),
                created: now.0,
            };
            idempotency.insert(key.as_str(), serde_json::to_vec(&record)?.as_slice())?;
            transaction
                .open_table(IDEMPOTENCY_BY_AGE)?
                .insert((now.0, key.as_str()), ())?;
        }
        Ok(Ok(stored))
    }

    /// Syncs unsynced commits and forgets expired claims and idempotency keys.
    fn housekeeping(&self, sync: bool) -> Storage<()> {
        let now = Millis::now().0;
        let mut transaction = self.database.begin_write()?;
        let mut changed = false;
        {
            let mut claims = transaction.open_table(CLAIMS)?;
            // (claim id, inbox); an unreadable record has no inbox to clean up after.
            let expired: Vec<(String, Option<String>)> = claims
                .iter()?
                .filter_map(Result::ok)
                .filter_map(|(id, record)| {
                    match serde_json::from_slice::<ClaimRecord>(record.value()) {
                        Ok(claim) if claim.until >= now => None,
                        Ok(claim) => Some((id.value().to_owned(), Some(claim.inbox))),
                        Err(_) => Some((id.value().to_owned(), None)),
                    }
                })
                .collect();
            let mut by_inbox = transaction.open_table(CLAIMS_BY_INBOX)?;
            for (id, inbox) in &expired {
                claims.remove(id.as_str())?;
                if let Some(inbox) = inbox {
                    by_inbox.remove((inbox.as_str(), id.as_str()))?;
                }
            }
            changed |= !expired.is_empty();

            let horizon = now - ttl_millis(self.limits.idempotency_ttl);
            let mut by_age = transaction.open_table(IDEMPOTENCY_BY_AGE)?;
            let old: Vec<(i64, String)> = by_age
                .range((i64::MIN, "")..(horizon, ""))?
                .filter_map(Result::ok)
                .map(|(key, _)| {
                    let (created, key) = key.value();
                    (created, key.to_owned())
                })
                .collect();
            let mut idempotency = transaction.open_table(IDEMPOTENCY)?;
            for (created, key) in &old {
                by_age.remove((*created, key.as_str()))?;
                idempotency.remove(key.as_str())?;
            }
            changed |= !old.is_empty();
        }
        if !changed && !sync {
            transaction.abort()?;
            return Ok(());
        }
        transaction.set_durability(Durability::Immediate)?;
        transaction.commit()?;
        Ok(())
    }
}

fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn claim(transaction: &WriteTransaction, name: &Name, request: ClaimRequest) -> Storage<Claim> {
    let now = Millis::now();
    let until = now.plus_millis(u64::try_from(request.lease.as_millis()).unwrap_or(u64::MAX));
    let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);

    // Hellos leased to live claims of this inbox: they are neither taken nor remaining.
    let mut by_inbox = transaction.open_table(CLAIMS_BY_INBOX)?;
    let mut leased = 0u64;
    // Claim ids are UUIDs (hex digits and '-'): every one sorts below "~".
    for entry in by_inbox.range((name.key(), "")..(name.key(), "~"))? {
        let (_, value) = entry?;
        let (lease_until, count) = value.value();
        if lease_until > now.0 {
            leased += count;
        }
    }

    // The oldest visible hellos: skip those leased (they sit near the head, since reads take
    // the oldest first) and stop at `limit`, so a read costs the same with 10 or 10,000 waiting.
    let mut hellos = transaction.open_table(HELLOS)?;
    let mut taken: Vec<(u64, HelloRecord)> = Vec::new();
    for entry in hellos.range((name.key(), 0)..=(name.key(), u64::MAX))? {
        if taken.len() >= limit {
            break;
        }
        let (key, value) = entry?;
        let record: HelloRecord = serde_json::from_slice(value.value())?;
        if record.lease_until > now.0 {
            continue; // leased to a reader that has not acknowledged yet
        }
        taken.push((key.value().1, record));
    }
    let stored = transaction
        .open_table(INBOX_SIZES)?
        .get(name.key())?
        .map_or(0, |size| size.value());
    let count = taken.len() as u64;
    let remaining = stored.saturating_sub(leased).saturating_sub(count);
    if taken.is_empty() {
        return Ok(Claim {
            claim_id: None,
            hellos: Vec::new(),
            remaining,
        });
    }

    let claim_id = new_claim_id();
    let mut delivered = Vec::with_capacity(taken.len());
    let mut sequences = Vec::with_capacity(taken.len());
    for (sequence, mut record) in taken {
        record.lease_until = until.0;
        record.claim = Some(claim_id.clone());
        hellos.insert(
            (name.key(), sequence),
            serde_json::to_vec(&record)?.as_slice(),
        )?;
        sequences.push(sequence);
        delivered.push(DeliveredHello {
            id: record.id,
            from: record.from,
            at: Millis(record.at).to_rfc3339(),
        });
    }
    let record = ClaimRecord {
        inbox: name.key().to_owned(),
        sequences,
        until: until.0,
    };
    transaction
        .open_table(CLAIMS)?
        .insert(claim_id.as_str(), serde_json::to_vec(&record)?.as_slice())?;
    by_inbox.insert((name.key(), claim_id.as_str()), (until.0, count))?;
    Ok(Claim {
        claim_id: Some(claim_id),
        hellos: delivered,
        remaining,
    })
}

fn acknowledge(transaction: &WriteTransaction, claim_id: &str) -> Storage<u64> {
    let mut claims = transaction.open_table(CLAIMS)?;
    let Some(claim) = claims
        .remove(claim_id)?
        .map(|record| serde_json::from_slice::<ClaimRecord>(record.value()))
        .transpose()?
    else {
        return Ok(0);
    };
    transaction
        .open_table(CLAIMS_BY_INBOX)?
        .remove((claim.inbox.as_str(), claim_id))?;
    let mut hellos = transaction.open_table(HELLOS)?;
    let mut deleted = 0u64;
    for sequence in claim.sequences {
        let key = (claim.inbox.as_str(), sequence);
        let still_ours = hellos
            .get(key)?
            .map(|record| serde_json::from_slice::<HelloRecord>(record.value()))
            .transpose()?
            .is_some_and(|record| record.claim.as_deref() == Some(claim_id));
        if still_ours {
            hellos.remove(key)?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        let mut sizes = transaction.open_table(INBOX_SIZES)?;
        let size = sizes
            .get(claim.inbox.as_str())?
            .map_or(0, |size| size.value());
        let left = size.saturating_sub(deleted);
        if left == 0 {
            sizes.remove(claim.inbox.as_str())?;
        } else {
            sizes.insert(claim.inbox.as_str(), left)?;
        }
    }
    Ok(deleted)
}

impl Outcome {
    fn answer(self) {
        // A caller that went away no longer needs the answer; the work is committed anyway.
        match self {
            Self::Send(reply, result) => drop(reply.send(result)),
            Self::Claim(reply, claim) => drop(reply.send(Ok(claim))),
            Self::Acknowledge(reply, deleted) => drop(reply.send(Ok(deleted))),
            Self::Ping(reply) => drop(reply.send(Ok(()))),
        }
    }

    fn fail(self, error: &anyhow::Error) {
        let unavailable = || StoreError::unavailable(anyhow::anyhow!("{error:#}"));
        match self {
            Self::Send(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Claim(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Acknowledge(reply, _) => drop(reply.send(Err(unavailable()))),
            Self::Ping(reply) => drop(reply.send(Err(unavailable()))),
        }
    }
}
