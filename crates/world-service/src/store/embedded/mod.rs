//! The embedded backend: one redb file under the data directory, no other process needed.
//!
//! All writes go through one writer thread. It takes every request waiting in its queue, applies
//! them in one transaction and commits once (group commit), so concurrent sends share a single
//! `fsync` instead of paying one each. A batch that contains a send is committed with
//! `Durability::Immediate`: no send is answered before its hello is on disk (unless
//! [`EmbeddedOptions::sync_sends`] is off, which exists only to measure this cost). A lease is
//! taken by the read itself, from a snapshot, and kept in memory until it is acknowledged,
//! confirmed or runs out; it is written only if it runs out, or at a graceful stop ([`live`]).
//! Acknowledgements and confirmations commit without
//! syncing, and are synced soon after (by the first batch 100 ms after the last sync, or by the
//! writer once idle for 200 ms). A crash can lose only leases and those unsynced deletions, which
//! only makes hellos visible again (seen twice, never lost).
//!
//! - [`tables`]: the tables and records, by their stored names;
//! - [`writer`]: the writer thread and its batches;
//! - [`housekeeping`]: forgetting old lease records and idempotency keys, in the writer;
//! - [`live`]: the leases in memory;
//! - [`sends`]: a run of sends inside the writer's transaction;
//! - [`reads`]: a read's lease, from a snapshot, on the request's thread;
//! - [`operations`]: writing a lease, acknowledging and confirming, inside the writer's transaction;
//! - [`names`]: what claiming, rotating and releasing a name do inside a transaction.

mod housekeeping;
mod live;
mod names;
mod operations;
mod reads;
mod sends;
mod tables;
mod watch;
mod writer;

use std::{
    borrow::Cow,
    path::Path,
    sync::{Arc, Mutex, mpsc},
    thread,
};

use anyhow::Context;
use async_trait::async_trait;
use hello_common::{
    Name,
    token::TokenHash,
    wire::{Lease, StoredHello},
};
use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use tokio::sync::oneshot;

use self::{
    live::MemoryConfirmation,
    writer::{Job, MAX_BATCH, Writer},
};
use super::{
    Claim, ClaimChange, Confirmation, LeaseRequest, NewHello, Store, StoreError, StoreLimits,
    commands::StoreCommands,
};

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "world.redb";
/// redb's own page cache unless `WORLD_STORE_CACHE_MB` says otherwise (redb's default is 1 GiB).
/// The operating system caches the file as well, so a small cache costs system calls, not disk
/// reads (`bench/run.py` compares 1,000,000 stored hellos with an empty store).
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

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
    /// The running leases, which reads take without the writer (see [`live`]).
    live: Arc<Mutex<live::LiveLeases>>,
    /// For the cap on lease records, which reads check without the writer.
    lease_record_cap: u64,
    /// Transactions committed (by the writer) and read (by the waiting reads' check).
    commands: StoreCommands,
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
        // The store holds token hashes: its folder is the owner's alone (0700), whatever the
        // umask, so no other local user reaches the file even in the moment before its own mode
        // is set below.
        restrict(data_dir, 0o700, "the data directory (WORLD_DATA_DIR)")?;
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
        restrict(&path, 0o600, "the store's file")?;
        tables::create_tables(&database, limits.idempotency_ttl)?;
        let database = Arc::new(database);
        let live = Arc::new(Mutex::new(live::LiveLeases::default()));
        let (jobs, queue) = mpsc::sync_channel(4 * MAX_BATCH);
        let commands = StoreCommands::embedded();
        let writer = Writer {
            commands: commands.clone(),
            database: Arc::clone(&database),
            limits,
            sync_sends: options.sync_sends,
            live: Arc::clone(&live),
        };
        thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer.run(&queue))
            .context("cannot start the store's writer thread")?;
        Ok(Self {
            jobs,
            database,
            live,
            lease_record_cap: limits.lease_record_cap,
            commands,
        })
    }

    /// Queues `job` and waits for its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(job(reply)).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Queues `job` for the writer, waiting only for room in the queue.
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        // The queue is bounded: when it is full, wait on a blocking thread, not on the runtime.
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(job)) => {
                let jobs = self.jobs.clone();
                let queued = tokio::task::spawn_blocking(move || jobs.send(job).is_ok())
                    .await
                    .map_err(StoreError::unavailable)?;
                if queued {
                    Ok(())
                } else {
                    Err(writer_stopped())
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => Err(writer_stopped()),
        }
    }

    /// True when no hello, leased or not, is stored for `name`: a lookup in the page cache.
    fn inbox_is_empty(&self, name: &Name) -> Result<bool, StoreError> {
        let read = || -> tables::Storage<bool> {
            let transaction = self.database.begin_read()?;
            let hellos = transaction.open_table(tables::HELLOS)?;
            Ok(tables::inbox_size(&hellos, name.key())? == 0)
        };
        read().map_err(StoreError::unavailable)
    }

    /// The claim stored under a look-alike key, or under the key a token's hash names: a read of
    /// the last commit, in one transaction, no writer needed.
    fn read_claim(&self, lookup: ClaimLookup<'_>) -> Result<Option<Claim>, StoreError> {
        let read = || -> tables::Storage<Option<Claim>> {
            let transaction = self.database.begin_read()?;
            // Borrowed on the hot path (every read and send asks by name); owned only when a
            // token's hash names the key.
            let lookalike: Cow<'_, str> = match lookup {
                ClaimLookup::Lookalike(key) => Cow::Borrowed(key),
                ClaimLookup::Token(token) => {
                    let by_token = transaction.open_table(tables::NAMES_BY_TOKEN)?;
                    let Some(key) = by_token.get(token.to_hex().as_str())? else {
                        return Ok(None);
                    };
                    Cow::Owned(key.value().to_owned())
                }
            };
            let names = transaction.open_table(tables::NAMES)?;
            let Some(record) = names.get(lookalike.as_ref())? else {
                return Ok(None);
            };
            let record: tables::ClaimRecord = serde_json::from_slice(record.value())?;
            let token = TokenHash::from_hex(&record.token)
                .ok_or_else(|| anyhow::anyhow!("the stored token hash of a claim is not hex"))?;
            Ok(Some(Claim {
                name: record.name,
                inbox: record.inbox,
                token,
                claimed_at: record.claimed_at,
            }))
        };
        read().map_err(StoreError::unavailable)
    }
}

/// Sets `path`'s permission bits to `mode` (owner only), naming `what` in the error.
fn restrict(path: &Path, mode: u32, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(|| {
        format!(
            "cannot make {what} {} readable by its owner only (mode {mode:o})",
            path.display()
        )
    })
}

/// How a claim is found.
#[derive(Debug, Clone, Copy)]
enum ClaimLookup<'a> {
    /// By the look-alike key of a name.
    Lookalike(&'a str),
    /// By the hash of its token.
    Token(&'a TokenHash),
}

fn writer_stopped() -> StoreError {
    StoreError::unavailable(anyhow::anyhow!("the embedded store's writer has stopped"))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn send(&self, hello: NewHello) -> Result<StoredHello, StoreError> {
        self.submit(|reply| Job::Send(hello, reply)).await
    }

    async fn lease(&self, name: &Name, request: LeaseRequest) -> Result<Lease, StoreError> {
        // Most reads of a busy service find nothing; those need not take the lock. A send
        // answered before this read began is committed, so this read transaction sees it.
        if self.inbox_is_empty(name)? {
            return Ok(Lease {
                lease_id: None,
                hellos: Vec::new(),
                remaining: 0,
                expires_at: None,
                redelivered: 0,
            });
        }
        // A lease writes nothing: it is taken here, from a snapshot taken under the lock, and
        // never waits for the writer or its syncs.
        let read = || -> tables::Storage<Result<Lease, StoreError>> {
            let mut live = live::lock(&self.live);
            if live.closed() {
                anyhow::bail!("the embedded store is closed");
            }
            let transaction = self.database.begin_read()?;
            // Every lease may become a record kept for a day: the running ones and the written.
            let records = live.count() as u64 + transaction.open_table(tables::LEASES)?.len()?;
            if records >= self.lease_record_cap {
                return Ok(Err(StoreError::StoreFull {
                    what: "lease records",
                    cap: self.lease_record_cap,
                }));
            }
            reads::lease(&transaction, &mut live, name, request).map(Ok)
        };
        read().map_err(StoreError::unavailable)?
    }

    async fn acknowledge(&self, lease_ids: &[String]) -> Result<u64, StoreError> {
        let lease_ids = lease_ids.to_vec();
        self.submit(|reply| Job::Acknowledge(lease_ids, reply))
            .await
    }

    async fn confirm(&self, name: &Name, lease_id: &str) -> Result<Confirmation, StoreError> {
        // A lease in memory is confirmed there, at once: from then on its hellos stay hidden,
        // and the writer deletes them in its next batch, which this answer need not wait for
        // (nor for the sync after it). Like every confirmation, that deletion is synced within
        // 100 ms; a crash before can only bring the hellos back.
        let now = hello_common::timestamp::Millis::now().0;
        let in_memory = live::lock(&self.live).confirm(lease_id, name.key(), now);
        let (name, lease_id) = (name.clone(), lease_id.to_owned());
        match in_memory {
            MemoryConfirmation::OtherInbox => Ok(Confirmation::Unknown),
            MemoryConfirmation::Expired => Ok(Confirmation::Expired),
            MemoryConfirmation::Confirmed { first: false } => Ok(Confirmation::Confirmed),
            MemoryConfirmation::Confirmed { first: true } => {
                // Nobody waits for the writer's answer: the deletion's outcome is its own.
                let (reply, _answer) = oneshot::channel();
                match self
                    .enqueue(Job::Confirm(name, lease_id.clone(), reply))
                    .await
                {
                    Ok(()) => Ok(Confirmation::Confirmed),
                    Err(error) => {
                        live::lock(&self.live).unconfirm(&lease_id);
                        Err(error)
                    }
                }
            }
            MemoryConfirmation::NotHere => {
                self.submit(|reply| Job::Confirm(name, lease_id, reply))
                    .await
            }
        }
    }

    async fn claim_name(&self, name: &Name, token: TokenHash) -> Result<(), StoreError> {
        let name = name.clone();
        self.submit(|reply| Job::ClaimName(name, token, reply))
            .await
    }

    async fn claim_covering(&self, name: &Name) -> Result<Option<Claim>, StoreError> {
        self.read_claim(ClaimLookup::Lookalike(name.lookalike_key()))
    }

    async fn claim_by_token(&self, token: &TokenHash) -> Result<Option<Claim>, StoreError> {
        self.read_claim(ClaimLookup::Token(token))
    }

    async fn rotate_token(
        &self,
        name: &Name,
        current: &TokenHash,
        new: TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        let (name, current) = (name.clone(), *current);
        self.submit(|reply| Job::RotateToken(name, current, new, reply))
            .await
    }

    async fn release_name(
        &self,
        name: &Name,
        token: &TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        let (name, token) = (name.clone(), *token);
        self.submit(|reply| Job::ReleaseName(name, token, reply))
            .await
    }

    async fn wakeable(
        &self,
        watched: Arc<[super::WatchedRead]>,
    ) -> Result<super::Wakeable, StoreError> {
        // Thousands of lookups: on a blocking thread, not on the worker that serves requests.
        let (database, live) = (Arc::clone(&self.database), Arc::clone(&self.live));
        let (wake, transactions) =
            tokio::task::spawn_blocking(move || watch::wakeable(&database, &live, &watched))
                .await
                .map_err(StoreError::unavailable)?
                .map_err(StoreError::unavailable)?;
        for _ in 0..transactions {
            self.commands.count("read");
        }
        Ok(wake)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.submit(Job::Ping).await
    }

    async fn stored_hellos(&self) -> Result<u64, StoreError> {
        let read = || -> tables::Storage<u64> {
            let transaction = self.database.begin_read()?;
            tables::counter(
                &transaction.open_table(tables::META)?,
                tables::STORED_HELLOS,
            )
        };
        read().map_err(StoreError::unavailable)
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.submit(Job::Close).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn commands(&self) -> &StoreCommands {
        &self.commands
    }
}
