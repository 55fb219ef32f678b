//! A run of sends inside the writer's transaction: each send checked against its key, its inbox's
//! cap and the store's, then stored; the run's tables and counters opened and read once. Nothing
//! here commits: the writer commits the whole batch, then answers its jobs.

use hello_common::{timestamp::Millis, wire::StoredHello};
use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::{
    HELLOS, HelloRecord, IDEMPOTENCY, IDEMPOTENCY_BY_AGE, IdempotencyRecord, LOOKALIKE_INBOXES,
    META, NEXT_SEQUENCE, STORED_HELLOS, STORED_KEYS, Storage, counter, inbox_size, set_inbox_size,
    ttl_millis,
};
use crate::store::{NewHello, StoreError, StoreLimits, new_hello_id, scoped_idempotency_id};

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
