//! Waiting reads (`wait` on GET and reliable reads): the readers this process holds, and the
//! one watch it keeps with world-service to learn when to wake them.
//!
//! A read with `wait` whose lease found nothing enters [`Waiting`] as a [`Waiter`], per inbox and
//! per token its reader was let in with, and sleeps; nothing is held per reader but that entry
//! (no batch slot, no call to world). The watch ([`watch`]) tells world which inboxes and tokens
//! are waited on, as changes, and holds one wakes call; world answers it when an inbox may have
//! something (a hello sent, a lease run out, the covering claim changed), and every waiter of
//! that inbox leases again: through the batches like any read, with its reader checked again.
//! Whoever finds nothing waits on for the rest of its time. A wake is a hint: a missed one costs
//! a reader the rest of its wait, never a hello.
//!
//! Bounded: at most `HELLO_WAIT_PER_CLIENT` waiting readers per client (beyond: 429) and
//! `HELLO_WAIT_PER_POD` in all (beyond: 503), both with `Retry-After`.

mod watch;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use hello_common::{Problem, token::TokenHash, wire::WatchedInbox};
use prometheus::IntGauge;
use tokio::sync::{Notify, futures::Notified};

pub use self::watch::run_watch;

/// When a refused waiting reader should try again: a slot frees as a wait ends (20 s at most).
const RETRY_WHEN_FULL: Duration = Duration::from_secs(5);

/// How many readers may wait at once.
#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    /// `HELLO_WAIT_PER_CLIENT`.
    pub per_client: u32,
    /// `HELLO_WAIT_PER_POD`.
    pub per_pod: u32,
}

/// The readers of one inbox.
#[derive(Debug)]
struct Inbox {
    /// Wakes them all.
    notify: Arc<Notify>,
    /// The tokens they were let in with, each with its number of readers.
    tokens: Vec<(Option<TokenHash>, u32)>,
}

/// Everything about the waiting readers, under one lock (held for map updates only).
#[derive(Debug, Default)]
struct State {
    inboxes: HashMap<String, Inbox>,
    per_client: HashMap<IpAddr, u32>,
    total: u32,
    /// What world has not been told yet: +1 for an inbox and token newly waited on, -1 for one
    /// no longer waited on (they cancel out before they are sent).
    pending: HashMap<WatchedInbox, i32>,
    /// world must be sent the whole set again (it forgot this process's session).
    resync: bool,
}

/// What changed since world was last told.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub reset: bool,
    pub add: Vec<WatchedInbox>,
    pub remove: Vec<WatchedInbox>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    limits: WaitLimits,
    /// The watch's cue that there are changes to send.
    changed: Notify,
    /// `hello_waiting_readers`.
    gauge: IntGauge,
}

/// The waiting readers of this process. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Waiting {
    shared: Arc<Shared>,
}

/// The client a waiting read counts against: its address, or for IPv6 its /64, which one host
/// is usually given whole (counting each of its addresses apart would give it 2^64 limits).
fn counted_as(client: IpAddr) -> IpAddr {
    let IpAddr::V6(address) = client else {
        return client;
    };
    if let Some(v4) = address.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    IpAddr::V6((u128::from(address) & !u128::from(u64::MAX)).into())
}

fn watched(inbox: &str, token: Option<&TokenHash>) -> WatchedInbox {
    WatchedInbox {
        inbox: inbox.to_owned(),
        token_sha256: token.map(TokenHash::to_hex),
    }
}

impl Waiting {
    /// Nobody waiting yet; `gauge` follows how many wait.
    pub fn new(limits: WaitLimits, gauge: IntGauge) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    // world learns of this process's session from its first change.
                    resync: true,
                    ..State::default()
                }),
                limits,
                changed: Notify::new(),
                gauge,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A reader from `client` begins to wait on `inbox`, let in with `token`; refused past the
    /// limits (429 for the client, 503 for the pod, with `Retry-After`).
    pub fn enter(
        &self,
        client: IpAddr,
        inbox: &str,
        token: Option<TokenHash>,
    ) -> Result<Waiter, Problem> {
        let client = counted_as(client);
        let mut state = self.lock();
        let limits = self.shared.limits;
        if state.total >= limits.per_pod {
            return Err(Problem::unavailable(
                format!(
                    "this pod holds as many waiting reads as it may ({}, HELLO_WAIT_PER_POD); read \
                     without wait, or wait again later",
                    limits.per_pod
                ),
                RETRY_WHEN_FULL,
            ));
        }
        let of_client = state.per_client.entry(client).or_default();
        if *of_client >= limits.per_client {
            let detail = format!(
                "you have {} reads waiting already, as many as one client may \
                 (HELLO_WAIT_PER_CLIENT); let one end before waiting again",
                *of_client
            );
            return Err(Problem::too_many_requests(detail, RETRY_WHEN_FULL));
        }
        *of_client += 1;
        state.total += 1;
        let entry = state
            .inboxes
            .entry(inbox.to_owned())
            .or_insert_with(|| Inbox {
                notify: Arc::new(Notify::new()),
                tokens: Vec::new(),
            });
        let notify = Arc::clone(&entry.notify);
        let first = match entry
            .tokens
            .iter_mut()
            .find(|(known, _)| TokenHash::same(known.as_ref(), token.as_ref()))
        {
            Some((_, readers)) => {
                *readers += 1;
                false
            }
            None => {
                entry.tokens.push((token, 1));
                true
            }
        };
        if first {
            *state
                .pending
                .entry(watched(inbox, token.as_ref()))
                .or_default() += 1;
        }
        self.shared.gauge.set(i64::from(state.total));
        drop(state);
        if first {
            self.shared.changed.notify_one();
        }
        Ok(Waiter {
            waiting: self.clone(),
            client,
            inbox: inbox.to_owned(),
            token,
            notify,
        })
    }

    /// A waiter is done (answered, or its client went away).
    fn leave(&self, waiter: &Waiter) {
        let mut state = self.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(of_client) = state.per_client.get_mut(&waiter.client) {
            *of_client -= 1;
            if *of_client == 0 {
                state.per_client.remove(&waiter.client);
            }
        }
        let mut last = false;
        if let Some(entry) = state.inboxes.get_mut(&waiter.inbox) {
            if let Some(at) = entry
                .tokens
                .iter()
                .position(|(known, _)| TokenHash::same(known.as_ref(), waiter.token.as_ref()))
            {
                entry.tokens[at].1 -= 1;
                if entry.tokens[at].1 == 0 {
                    entry.tokens.swap_remove(at);
                    last = true;
                }
            }
            if entry.tokens.is_empty() {
                state.inboxes.remove(&waiter.inbox);
            }
        }
        if last {
            let key = watched(&waiter.inbox, waiter.token.as_ref());
            *state.pending.entry(key).or_default() -= 1;
        }
        self.shared.gauge.set(i64::from(state.total));
        drop(state);
        if last {
            self.shared.changed.notify_one();
        }
    }

    /// Wakes one reader of each of these inboxes (a hello may be there to take): it leases, and
    /// wakes the next if more remain ([`Waiting::wake_one`]). Waking them all would cost the
    /// store a lease per waiting reader for each hello.
    pub(crate) fn wake_one_each(&self, inboxes: &[String]) {
        for inbox in inboxes {
            self.wake_one(inbox);
        }
    }

    /// Wakes one reader of `inbox`.
    pub fn wake_one(&self, inbox: &str) {
        if let Some(entry) = self.lock().inboxes.get(inbox) {
            entry.notify.notify_one();
        }
    }

    /// Wakes every reader of these inboxes (the claim covering them changed: each must be
    /// checked again).
    pub(crate) fn wake_every(&self, inboxes: &[String]) {
        let state = self.lock();
        for inbox in inboxes {
            if let Some(entry) = state.inboxes.get(inbox) {
                entry.notify.notify_waiters();
            }
        }
    }

    /// Wakes every reader (world may have missed something: it forgot the session).
    pub(crate) fn wake_all(&self) {
        for entry in self.lock().inboxes.values() {
            entry.notify.notify_waiters();
        }
    }

    /// world forgot the session: the next change sends everything again.
    pub(crate) fn resync(&self) {
        self.lock().resync = true;
        self.shared.changed.notify_one();
    }

    /// Takes what world has not been told.
    pub(crate) fn take_changes(&self) -> Changes {
        let mut state = self.lock();
        if std::mem::take(&mut state.resync) {
            state.pending.clear();
            let add = state
                .inboxes
                .iter()
                .flat_map(|(inbox, entry)| {
                    entry
                        .tokens
                        .iter()
                        .map(|(token, _)| watched(inbox, token.as_ref()))
                })
                .collect();
            return Changes {
                reset: true,
                add,
                remove: Vec::new(),
            };
        }
        let mut changes = Changes::default();
        for (key, net) in state.pending.drain() {
            match net {
                net if net > 0 => changes.add.push(key),
                net if net < 0 => changes.remove.push(key),
                _ => {}
            }
        }
        changes
    }

    /// Resolves when there may be changes to send.
    pub(crate) async fn changed(&self) {
        self.shared.changed.notified().await;
    }
}

/// One waiting reader; leaving is dropping it.
#[derive(Debug)]
pub struct Waiter {
    waiting: Waiting,
    client: IpAddr,
    inbox: String,
    token: Option<TokenHash>,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Resolves at the next wake of this reader's inbox (enable it before leasing, so that a
    /// wake during the lease is not missed).
    pub fn woken(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.waiting.leave(self);
    }
}

#[cfg(test)]
mod tests;
