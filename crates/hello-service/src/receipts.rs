//! When may a read's claim be acknowledged, so that its hellos leave the inbox for good?
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
//! crashed peer looks like — the claim is left alone: its lease runs out and its hellos are
//! delivered again. At worst a hello is then seen twice, never lost. The pod's nginx keeps its
//! upstream connections open (see `deploy/nginx/nginx.conf`) so that this does not happen in
//! normal operation.

use std::{
    any::Any,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpRequest, dev::Extensions, http::ConnectionType};
use hello_common::{lifecycle::Lifecycle, observability::RequestId};
use prometheus::IntCounter;
use tokio::sync::Notify;

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

/// Where an answer is going: captured while handling the request.
#[derive(Debug)]
pub struct Delivery {
    connection: Option<Arc<ConnectionState>>,
    requests_so_far: u64,
    closing_after: bool,
}

impl Delivery {
    pub fn of(request: &HttpRequest) -> Self {
        let connection = request
            .conn_data::<ConnectionGuard>()
            .map(|guard| guard.0.clone());
        let requests_so_far = connection
            .as_ref()
            .map_or(0, |state| state.requests.load(Ordering::SeqCst));
        Self {
            connection,
            requests_so_far,
            closing_after: request.head().connection_type() == ConnectionType::Close,
        }
    }
}

/// Acknowledges claims once their answers are received, and knows how many are still pending.
#[derive(Debug, Clone)]
pub struct Receipts {
    world: WorldClient,
    lifecycle: Lifecycle,
    pending: Arc<(AtomicUsize, Notify)>,
    /// `hello_reads_not_acknowledged_total`
    not_acknowledged: IntCounter,
}

impl Receipts {
    pub fn new(world: WorldClient, lifecycle: Lifecycle, not_acknowledged: IntCounter) -> Self {
        Self {
            world,
            lifecycle,
            pending: Arc::default(),
            not_acknowledged,
        }
    }

    /// Called once the answer carrying `claim_id` has been handed to the connection.
    pub fn answer_written(&self, delivery: Delivery, claim_id: String, request_id: RequestId) {
        let receipts = self.clone();
        self.pending.0.fetch_add(1, Ordering::SeqCst);
        actix_web::rt::spawn(async move {
            if receipts.received(&delivery).await {
                receipts.world.acknowledge(&claim_id, &request_id).await;
            } else {
                receipts.not_acknowledged.inc();
                tracing::warn!(
                    request_id = %request_id.0,
                    claim_id,
                    "the connection closed right after the answer: not acknowledged, so its hellos come back when the lease ends"
                );
            }
            if receipts.pending.0.fetch_sub(1, Ordering::SeqCst) == 1 {
                receipts.pending.1.notify_waiters();
            }
        });
    }

    async fn received(&self, delivery: &Delivery) -> bool {
        let Some(connection) = &delivery.connection else {
            return true; // not a tracked TCP connection (cannot happen with HttpServer)
        };
        if delivery.closing_after {
            return true;
        }
        tokio::time::sleep(SETTLE).await;
        connection.requests.load(Ordering::SeqCst) > delivery.requests_so_far
            || !connection.closed.load(Ordering::SeqCst)
            || self.lifecycle.is_draining()
    }

    /// Waits (at most `limit`) until every written answer has been acknowledged or given up on:
    /// the last step of a graceful shutdown.
    pub async fn wait_until_settled(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.0.load(Ordering::SeqCst) > 0 {
            let notified = self.pending.1.notified();
            if self.pending.0.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    pending = self.pending.0.load(Ordering::SeqCst),
                    "stopping with acknowledgements still pending: those hellos come back when their lease ends"
                );
                break;
            }
        }
    }
}
