//! What world-service watches for the readers waiting in its hello-service, and how it wakes
//! them (the protocol: [`hello_common::wire::watches`]).
//!
//! hello holds the waiting readers; world holds one *session* per hello process: the inboxes
//! its readers wait on, each with the token hashes they were let in with. A session's inbox is
//! woken, and its wakes call answered, when
//! - this process commits something a reader of it may want: a hello sent to it (through this
//!   pod), a claim, rotation or release of the name covering it ([`Watches::wake_inbox`],
//!   [`Watches::wake_lookalike`]);
//! - the check finds it, every `WORLD_WAKE_INTERVAL_MS` ([`run_checks`]): one
//!   [`Store::wakeable`] for every watched inbox of every session together, which finds what no
//!   commit here announced (a hello sent through another replica, a lease that ran out, a claim
//!   changed elsewhere, a send that came between a reader's empty lease and its watch).
//!
//! Memory is bounded by `WORLD_WATCH_CAP` watched reads in all; a session nobody asked for its
//! wakes for [`SESSION_IDLE_MS`] (its hello died) is forgotten.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hello_common::{
    lookalike_key_of_inbox,
    token::TokenHash,
    wire::{SESSION_IDLE_MS, Wakes, WatchChange, WatchedInbox},
};
use prometheus::IntGauge;
use tokio::sync::Notify;

use crate::store::{Store, Wakeable, WatchedRead};

/// Why a change to a session, or a wakes call, was refused.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "world-service does not know this watch session (it restarted, or forgot an idle one): send the whole set again with reset"
    )]
    UnknownSession,
    #[error("{0}")]
    Invalid(String),
}

/// One watched inbox of a session.
#[derive(Debug)]
struct Watched {
    lookalike: Arc<str>,
    /// The token hashes its readers were let in with (usually one: a claimed inbox's token, or
    /// none). A set: adding one twice, or removing one that is not there, changes nothing.
    tokens: Vec<Option<TokenHash>>,
}

/// One hello-service process's watch.
#[derive(Debug)]
struct Session {
    inboxes: HashMap<Arc<str>, Watched>,
    /// Watched reads: pairs of inbox and token.
    reads: usize,
    /// Inboxes woken since the last answer: something may be leasable.
    woken: HashSet<String>,
    /// Inboxes whose covering claim changed since the last answer: every reader must look.
    changed: HashSet<String>,
    /// Wakes the held call (a permit is kept when none is held, so no wake is missed).
    notify: Arc<Notify>,
    /// When a wakes call last came, or was woken.
    seen: Instant,
}

impl Session {
    fn new() -> Self {
        Self {
            inboxes: HashMap::new(),
            reads: 0,
            woken: HashSet::new(),
            changed: HashSet::new(),
            notify: Arc::new(Notify::new()),
            seen: Instant::now(),
        }
    }

    fn wake(&mut self, inbox: &str) {
        if self.inboxes.contains_key(inbox) && self.woken.insert(inbox.to_owned()) {
            self.notify.notify_one();
        }
    }

    fn claim_changed(&mut self, inbox: &str) {
        if self.inboxes.contains_key(inbox) && self.changed.insert(inbox.to_owned()) {
            self.notify.notify_one();
        }
    }
}

/// Every session of this process, and the cap on what they watch together.
#[derive(Debug)]
pub struct Watches {
    sessions: Mutex<HashMap<String, Session>>,
    cap: usize,
    /// The cap was reached and said so in the log.
    warned_full: AtomicBool,
    /// How long a session nobody asks for its wakes is kept ([`SESSION_IDLE_MS`]).
    idle: Duration,
    /// `world_watched_reads`: watched reads of every session.
    gauge: IntGauge,
}

/// The longest inbox key world watches, in bytes: a 64-character name whose every character
/// case-folds to three (`İ` folds to `i̇`, two characters), at four bytes each.
const MAX_INBOX_KEY_BYTES: usize = 64 * 3 * 4;

/// What a [`WatchedInbox`] says, checked: an inbox key (hello-service computed it, by rules that
/// may make it longer than the name; world only compares it), and a token hash.
fn parse(watched: &WatchedInbox) -> Result<(String, Option<TokenHash>), WatchError> {
    if watched.inbox.is_empty() || watched.inbox.len() > MAX_INBOX_KEY_BYTES {
        return Err(WatchError::Invalid(format!(
            "an inbox of the change is empty or longer than {MAX_INBOX_KEY_BYTES} bytes"
        )));
    }
    let token = match &watched.token_sha256 {
        None => None,
        Some(hex) => Some(TokenHash::from_hex(hex).ok_or_else(|| {
            WatchError::Invalid("a token_sha256 of the change is not 64 hex digits".into())
        })?),
    };
    Ok((watched.inbox.clone(), token))
}

impl Watches {
    /// No session yet; at most `cap` watched reads in all; `gauge` follows their number.
    pub fn new(cap: usize, gauge: IntGauge) -> Self {
        Self::forgetting_after(Duration::from_millis(SESSION_IDLE_MS), cap, gauge)
    }

    /// Like [`Watches::new`], keeping an idle session for `idle` (tests shorten it).
    pub fn forgetting_after(idle: Duration, cap: usize, gauge: IntGauge) -> Self {
        Self {
            sessions: Mutex::default(),
            cap,
            warned_full: AtomicBool::new(false),
            idle,
            gauge,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to `session`: its removals, then its additions as far as the cap allows
    /// (those beyond it are dropped, and logged once: their readers wait out their time). Both
    /// are set operations, so a change sent twice (its first answer lost) does no harm.
    pub fn change(&self, session: &str, change: WatchChange) -> Result<(), WatchError> {
        let add = change
            .add
            .iter()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        let remove = change
            .remove
            .iter()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        let mut sessions = self.lock();
        if !change.reset && !sessions.contains_key(session) {
            return Err(WatchError::UnknownSession);
        }
        let others: usize = sessions
            .iter()
            .filter(|(id, _)| id.as_str() != session)
            .map(|(_, watching)| watching.reads)
            .sum();
        let watching = sessions
            .entry(session.to_owned())
            .or_insert_with(Session::new);
        if change.reset {
            watching.inboxes.clear();
            watching.woken.clear();
            watching.changed.clear();
            watching.reads = 0;
        }
        for (inbox, token) in remove {
            let Some(watched) = watching.inboxes.get_mut(inbox.as_str()) else {
                continue;
            };
            if let Some(at) = watched
                .tokens
                .iter()
                .position(|known| TokenHash::same(known.as_ref(), token.as_ref()))
            {
                watched.tokens.swap_remove(at);
                watching.reads -= 1;
            }
            if watched.tokens.is_empty() {
                watching.inboxes.remove(inbox.as_str());
                watching.woken.remove(&inbox);
                watching.changed.remove(&inbox);
            }
        }
        let mut dropped = 0;
        for (inbox, token) in add {
            if others + watching.reads >= self.cap {
                dropped += 1;
                continue;
            }
            let watched = watching
                .inboxes
                .entry(Arc::from(inbox))
                .or_insert_with_key(|inbox| Watched {
                    lookalike: Arc::from(lookalike_key_of_inbox(inbox)),
                    tokens: Vec::new(),
                });
            if !watched
                .tokens
                .iter()
                .any(|known| TokenHash::same(known.as_ref(), token.as_ref()))
            {
                watched.tokens.push(token);
                watching.reads += 1;
            }
        }
        self.gauge.set((others + watching.reads) as i64);
        drop(sessions);
        if dropped > 0 && !self.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cap = self.cap,
                dropped,
                "world-service watches as many inboxes and tokens as it may (WORLD_WATCH_CAP): \
                 readers beyond it are woken by nothing and wait out their time; raise it to at \
                 least twice HELLO_WAIT_PER_POD"
            );
        }
        Ok(())
    }

    /// The inboxes of `session` woken since its last answer, as soon as there are any, or none
    /// once `wait` has passed or `stopping` resolves.
    pub async fn wakes(
        &self,
        session: &str,
        wait: Duration,
        stopping: impl std::future::Future<Output = ()>,
    ) -> Result<Wakes, WatchError> {
        let deadline = tokio::time::Instant::now() + wait;
        tokio::pin!(stopping);
        loop {
            let notify = {
                let mut sessions = self.lock();
                let watching = sessions
                    .get_mut(session)
                    .ok_or(WatchError::UnknownSession)?;
                watching.seen = Instant::now();
                if !watching.woken.is_empty() || !watching.changed.is_empty() {
                    return Ok(Wakes {
                        inboxes: watching.woken.drain().collect(),
                        changed: watching.changed.drain().collect(),
                    });
                }
                Arc::clone(&watching.notify)
            };
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(Wakes::default()),
                () = &mut stopping => return Ok(Wakes::default()),
            }
        }
    }

    /// Wakes the readers of `inbox` in every session (a hello was sent to it here).
    pub fn wake_inbox(&self, inbox: &str) {
        for watching in self.lock().values_mut() {
            watching.wake(inbox);
        }
    }

    /// Wakes the readers of every inbox the claim on `lookalike` covers or covered (it was made,
    /// rotated or released here). Rare, so a scan.
    pub fn wake_lookalike(&self, lookalike: &str) {
        for watching in self.lock().values_mut() {
            let covered: Vec<String> = watching
                .inboxes
                .iter()
                .filter(|(_, watched)| &*watched.lookalike == lookalike)
                .map(|(inbox, _)| inbox.to_string())
                .collect();
            for inbox in covered {
                watching.claim_changed(&inbox);
            }
        }
    }

    /// Wakes what the check found in every session that watches it.
    pub fn wake_found(&self, found: &Wakeable) {
        for watching in self.lock().values_mut() {
            for inbox in &found.leasable {
                watching.wake(inbox);
            }
            for inbox in &found.changed {
                watching.claim_changed(inbox);
            }
        }
    }

    /// Every watched read of every session, for the check; forgets idle sessions first.
    pub fn watched(&self) -> Arc<[WatchedRead]> {
        let mut sessions = self.lock();
        sessions.retain(|_, watching| watching.seen.elapsed() < self.idle);
        let reads = sessions
            .values()
            .map(|watching| watching.reads)
            .sum::<usize>();
        self.gauge.set(reads as i64);
        let mut watched = Vec::with_capacity(reads);
        for watching in sessions.values() {
            for (inbox, entry) in &watching.inboxes {
                for token in &entry.tokens {
                    watched.push(WatchedRead {
                        inbox: Arc::clone(inbox),
                        lookalike: Arc::clone(&entry.lookalike),
                        token: *token,
                    });
                }
            }
        }
        watched.into()
    }
}

/// Every `interval`, asks the store which watched inboxes can be answered and wakes them, for
/// as long as the service holds `watches` and `store` (it lets go of both when it stops, and the
/// embedded store's file with them). A failed check is logged once until one succeeds again (the
/// readers' waits still end on time).
pub async fn run_checks(watches: Weak<Watches>, store: Weak<dyn Store>, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        let (Some(watches), Some(store)) = (watches.upgrade(), store.upgrade()) else {
            return;
        };
        let watched = watches.watched();
        if watched.is_empty() {
            continue;
        }
        match store.wakeable(watched).await {
            Ok(found) => {
                failing = false;
                watches.wake_found(&found);
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot check the store for waiting readers; their waits end on time"
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
