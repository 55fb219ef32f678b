//! When has a GET's answer been delivered, so that its lease may be acknowledged and its hellos
//! leave the inbox for good?
//!
//! The rule (the spec's "written in full"): the answer was written out in full, and within the
//! settle window after that (`HELLO_SETTLE_MS`, 200 ms by default) no reset or error came back on
//! its connection. Whatever the client does
//! next does not matter: a plain `curl` that reads and closes, a keep-alive client that closes by
//! itself, an HTTP/1.0 client, one that sends another request or keeps the connection open all
//! get each hello once. A client that had closed its side before the answer was written (a FIN,
//! seen by [`crate::connection::WatchedStream`]) never reads it: not delivered. A client that
//! resets the connection without reading the answer (closing a socket with unread data sends a
//! reset), or a proxy killed with our answer unread in its
//! socket (the pod's Nginx, `kill -9`), makes the connection fail instead: the lease is left
//! alone, runs out, and the hellos are delivered again. At worst a hello is then seen twice,
//! never lost.
//!
//! [`crate::connection::WatchedStream`] records the failures; a write the peer has not taken yet
//! (a client that stopped reading) is not written in full, so its answer waits until the write
//! finishes or the connection ends. What this cannot see: a reader (or a proxy) that took the
//! whole answer and died before showing it. Reliable reads are for readers that must not lose a
//! hello even then.
//!
//! Answers that settle together are acknowledged together: one request to world-service, and one
//! store transaction, for many reads ([`crate::batching`], as for every call to world).

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::HttpRequest;
use hello_common::observability::RequestId;
use prometheus::IntCounter;
use tokio::{sync::Notify, time::Instant};

use crate::{
    batching::Batcher,
    connection::{self, ConnectionState},
    world_client::WorldClient,
};

/// The connection an answer is going out on.
#[derive(Debug)]
pub struct Connection {
    state: Option<Arc<ConnectionState>>,
    /// Bytes written on it before this answer: the peer must have left before any later byte
    /// to have never read the answer.
    written_before: u64,
}

impl Connection {
    /// The connection `request` arrived on, before its answer is written.
    pub fn of(request: &HttpRequest) -> Self {
        let state = connection::state_of(request);
        let written_before = state.as_ref().map_or(0, |state| state.bytes_written());
        Self {
            state,
            written_before,
        }
    }
}

/// An answer written, waiting for its connection to show whether it arrived.
#[derive(Debug)]
struct Written {
    due: Instant,
    connection: Connection,
    /// The client had closed its side before the answer was written: it never reads it.
    left_before: bool,
    lease_id: String,
    request_id: RequestId,
}

/// What the connection says about a written answer once its settle window has passed.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Lost,
    /// The write has not finished: ask again later.
    Pending,
}

/// Acknowledges leases once their answers have been delivered, and knows how many are pending.
///
/// Answers wait in one queue, in the order they were written (so in the order they are due); one
/// task takes those whose settle window has passed, judges them by their connections, and
/// acknowledges the delivered ones in batches.
#[derive(Debug, Clone)]
pub struct Settlements {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Acknowledgements on their way to world, in batches ([`crate::batching`]).
    acknowledgements: Batcher<String, ()>,
    /// How long after the answer was written a reset still counts against it.
    settle: Duration,
    queue: Mutex<VecDeque<Written>>,
    /// Wakes the task when an answer joins an empty queue.
    arrived: Notify,
    /// Answers written and not yet acknowledged or given up on (queued or being acknowledged).
    pending: AtomicUsize,
    settled: Notify,
    /// `hello_reads_not_acknowledged_total`
    not_acknowledged: IntCounter,
}

impl Settlements {
    /// Starts the task that acknowledges settled answers (on the current Tokio runtime).
    pub fn start(world: WorldClient, settle: Duration, not_acknowledged: IntCounter) -> Self {
        let settlements = Self {
            inner: Arc::new(Inner {
                acknowledgements: world.acknowledgements(),
                settle,
                queue: Mutex::default(),
                arrived: Notify::new(),
                pending: AtomicUsize::new(0),
                settled: Notify::new(),
                not_acknowledged,
            }),
        };
        tokio::spawn(settlements.clone().acknowledge_settled());
        settlements
    }

    /// Called once the answer carrying `lease_id` has been handed to the connection.
    pub fn answer_written(&self, connection: Connection, lease_id: String, request_id: RequestId) {
        self.inner.pending.fetch_add(1, Ordering::SeqCst);
        // Asked after the write, which may have reached the client, been read and been followed
        // by its FIN already: what counts is whether it left before this answer's first byte.
        let left_before = connection
            .state
            .as_ref()
            .is_some_and(|state| state.left_before(connection.written_before));
        self.enqueue(Written {
            due: Instant::now() + self.inner.settle,
            left_before,
            connection,
            lease_id,
            request_id,
        });
    }

    fn enqueue(&self, written: Written) {
        let was_empty = {
            let mut queue = self
                .inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.push_back(written);
            queue.len() == 1
        };
        if was_empty {
            self.inner.arrived.notify_one();
        }
    }

    /// The task: waits for the oldest answer to settle, then judges every settled one.
    async fn acknowledge_settled(self) {
        loop {
            let oldest_due = self
                .inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .front()
                .map(|written| written.due);
            match oldest_due {
                // `notify_one` keeps a permit, so an answer queued since the check still wakes us.
                None => self.inner.arrived.notified().await,
                Some(due) => {
                    tokio::time::sleep_until(due).await;
                    self.take_settled().await;
                }
            }
        }
    }

    /// Takes the answers due by now and acknowledges the delivered ones; an answer whose write
    /// has not finished goes back in the queue for another settle window.
    async fn take_settled(&self) {
        let now = Instant::now();
        let settled: Vec<Written> = {
            let mut queue = self
                .inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = queue
                .iter()
                .take_while(|written| written.due <= now)
                .count();
            queue.drain(..due).collect()
        };
        let mut delivered = Vec::new();
        let mut lost = 0;
        for mut written in settled {
            match verdict(&written.connection, written.left_before) {
                Verdict::Delivered => delivered.push(written.lease_id),
                Verdict::Pending => {
                    written.due = now + self.inner.settle;
                    self.enqueue(written);
                }
                Verdict::Lost => {
                    lost += 1;
                    self.inner.not_acknowledged.inc();
                    tracing::warn!(
                        request_id = %written.request_id.0,
                        lease_id = written.lease_id,
                        "the connection failed as the answer went out: not acknowledged, so its hellos come back when the lease runs out"
                    );
                }
            }
        }
        self.done(lost);
        if delivered.is_empty() {
            return;
        }
        // The acknowledgements join those waiting for a free batch; this task goes on judging.
        let settlements = self.clone();
        tokio::spawn(async move {
            let leases = delivered.len();
            settlements.inner.acknowledgements.call_all(delivered).await;
            settlements.done(leases);
        });
    }

    /// `answers` are acknowledged or given up on.
    fn done(&self, answers: usize) {
        if answers > 0 && self.inner.pending.fetch_sub(answers, Ordering::SeqCst) == answers {
            self.inner.settled.notify_waiters();
        }
    }

    /// Waits (at most the settle window and `limit`) until every written answer has been
    /// acknowledged or given up on: the last step of a graceful shutdown.
    pub async fn wait_until_settled(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + self.inner.settle + limit;
        while self.inner.pending.load(Ordering::SeqCst) > 0 {
            let notified = self.inner.settled.notified();
            if self.inner.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    pending = self.inner.pending.load(Ordering::SeqCst),
                    "stopping with acknowledgements still pending: those hellos come back when their lease runs out"
                );
                break;
            }
        }
    }
}

/// The rule of the module documentation, once the settle window after the write has passed.
fn verdict(connection: &Connection, left_before: bool) -> Verdict {
    let Some(state) = &connection.state else {
        return Verdict::Delivered; // not a watched connection (cannot happen in this server)
    };
    if state.is_broken() || left_before {
        Verdict::Lost
    } else if !state.is_write_blocked() {
        Verdict::Delivered
    } else if state.is_closed() {
        Verdict::Lost // the connection ended with the answer still unwritten
    } else {
        Verdict::Pending
    }
}
