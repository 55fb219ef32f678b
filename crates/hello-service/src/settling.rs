//! When has a GET's answer settled, so that its lease may be acknowledged and its hellos leave
//! the inbox for good?
//!
//! Writing the answer to the socket is not enough. In the pod, the peer of hello-service is the
//! pod's nginx; if nginx dies (kill -9, OOM) after our bytes reached its socket but before it
//! passed them on, nobody ever sees those hellos. So an answer counts as received once the
//! connection it went out on shows that the peer is alive and took it:
//! - another request arrived on the same connection afterwards (nginx reuses an upstream
//!   connection only once it has read the whole previous answer), or
//! - the connection is still open [`SETTLE`] after the answer was written (a live nginx reads
//!   its sockets within microseconds), or
//! - the client asked to close the connection after this answer (`Connection: close`, HTTP/1.0):
//!   then the peer is the end client itself, and closing is what it asked for, or
//! - this process is shutting down (it closes its own connections; the peer is not at fault).
//!
//! Otherwise — the connection ended within [`SETTLE`] with no further request, which is what a
//! crashed peer looks like — the lease is left alone: it runs out and its hellos are
//! delivered again. At worst a hello is then seen twice, never lost. The pod's nginx keeps its
//! upstream connections open (see `deploy/nginx/nginx.conf`) so that this does not happen in
//! normal operation.

use std::{
    any::Any,
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpRequest, dev::Extensions, http::ConnectionType};
use hello_common::{lifecycle::Lifecycle, observability::RequestId, wire::MAX_ACKNOWLEDGEMENTS};
use prometheus::IntCounter;
use tokio::{sync::Notify, time::Instant};

use crate::world_client::WorldClient;

/// How long an answer's connection must stay open before the answer counts as received.
pub const SETTLE: Duration = Duration::from_millis(200);

/// What this process knows about one client connection.
#[derive(Debug, Default)]
struct ConnectionState {
    requests: AtomicU64,
    closed: AtomicBool,
}

/// Lives in actix's per-connection data; dropped when the connection ends, however it ends.
#[derive(Debug)]
struct ConnectionGuard(Arc<ConnectionState>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
    }
}

/// For `HttpServer::on_connect`: starts tracking a new connection.
pub fn on_connect(_: &dyn Any, data: &mut Extensions) {
    data.insert(ConnectionGuard(Arc::default()));
}

/// Counts a request on its connection (called for every request, by a middleware).
pub fn count_request(request: &HttpRequest) {
    if let Some(guard) = request.conn_data::<ConnectionGuard>() {
        guard.0.requests.fetch_add(1, Ordering::SeqCst);
    }
}

/// The connection an answer is going out on, as it was while the request was handled.
#[derive(Debug)]
pub struct Connection {
    state: Option<Arc<ConnectionState>>,
    requests_so_far: u64,
    closing_after: bool,
}

impl Connection {
    pub fn of(request: &HttpRequest) -> Self {
        let state = request
            .conn_data::<ConnectionGuard>()
            .map(|guard| guard.0.clone());
        let requests_so_far = state
            .as_ref()
            .map_or(0, |state| state.requests.load(Ordering::SeqCst));
        Self {
            state,
            requests_so_far,
            closing_after: request.head().connection_type() == ConnectionType::Close,
        }
    }
}

/// An answer written, waiting for its connection to show it was received.
#[derive(Debug)]
struct Written {
    due: Instant,
    connection: Connection,
    lease_id: String,
    request_id: RequestId,
}

/// Acknowledges leases once their answers have settled, and knows how many are still pending.
///
/// Answers wait in one queue, in the order they were written (so in the order they are due); one
/// task takes those whose [`SETTLE`] has passed, checks their connections, and acknowledges the
/// received ones in batches: a busy service sends world-service one request, and its store one
/// transaction, for the many reads that settled in the meantime.
#[derive(Debug, Clone)]
pub struct Settlements {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    world: WorldClient,
    lifecycle: Lifecycle,
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
    pub fn start(world: WorldClient, lifecycle: Lifecycle, not_acknowledged: IntCounter) -> Self {
        let settlements = Self {
            inner: Arc::new(Inner {
                world,
                lifecycle,
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
        let was_empty = {
            let mut queue = self
                .inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.push_back(Written {
                due: Instant::now() + SETTLE,
                connection,
                lease_id,
                request_id,
            });
            queue.len() == 1
        };
        if was_empty {
            self.inner.arrived.notify_one();
        }
    }

    /// The task: waits for the oldest answer to settle, then acknowledges every settled one.
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
                    self.take_settled();
                }
            }
        }
    }

    /// Takes the answers due by now, sorts the received from the lost, acknowledges the received.
    fn take_settled(&self) {
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
        let (received, lost): (Vec<Written>, Vec<Written>) = settled
            .into_iter()
            .partition(|written| self.received(&written.connection));
        for written in &lost {
            self.inner.not_acknowledged.inc();
            tracing::warn!(
                request_id = %written.request_id.0,
                lease_id = written.lease_id,
                "the connection closed right after the answer: not acknowledged, so its hellos come back when the lease ends"
            );
        }
        self.done(lost.len());
        let lease_ids: Vec<String> = received
            .into_iter()
            .map(|written| written.lease_id)
            .collect();
        for batch in lease_ids.chunks(MAX_ACKNOWLEDGEMENTS) {
            let (settlements, batch) = (self.clone(), batch.to_vec());
            tokio::spawn(async move {
                let leases = batch.len();
                settlements
                    .inner
                    .world
                    .acknowledge(batch, &RequestId::generate())
                    .await;
                settlements.done(leases);
            });
        }
    }

    /// Whether the answer's connection shows, [`SETTLE`] after it was written, that it arrived.
    fn received(&self, answer: &Connection) -> bool {
        let Some(connection) = &answer.state else {
            return true; // not a tracked TCP connection (cannot happen with HttpServer)
        };
        answer.closing_after
            || connection.requests.load(Ordering::SeqCst) > answer.requests_so_far
            || !connection.closed.load(Ordering::SeqCst)
            || self.inner.lifecycle.is_draining()
    }

    /// `answers` are acknowledged or given up on.
    fn done(&self, answers: usize) {
        if answers > 0 && self.inner.pending.fetch_sub(answers, Ordering::SeqCst) == answers {
            self.inner.settled.notify_waiters();
        }
    }

    /// Waits (at most `limit`) until every written answer has been acknowledged or given up on:
    /// the last step of a graceful shutdown.
    pub async fn wait_until_settled(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.inner.pending.load(Ordering::SeqCst) > 0 {
            let notified = self.inner.settled.notified();
            if self.inner.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    pending = self.inner.pending.load(Ordering::SeqCst),
                    "stopping with acknowledgements still pending: those hellos come back when their lease ends"
                );
                break;
            }
        }
    }
}
