//! The pod's world-service, over its Unix socket: what hello-service asks of it.
//!
//! Sends, leases and confirmations go through [`crate::batching`], always: each is one call of a
//! batch, with the calls of its kind that arrive with it, queued per HTTP worker (each has its
//! own client). Acknowledgements are batched too, by one batcher for the whole process
//! ([`WorldClient::acknowledgements`]). With traces on, each send, lease and confirmation is a
//! client span, and its call carries that span's `traceparent`, which world continues: a trace
//! shows the path every request takes. Claims, token rotations and releases go one request each,
//! with the trace context in their headers.
//!
//! Nothing here retries a lease: a retried lease could take a second page of hellos while the
//! first is still leased. Acknowledgements are retried: acknowledging a lease twice is harmless.

mod http;
mod outcomes;
mod watch;

use std::time::Duration;

use hello_common::{
    IdempotencyKey, Name,
    observability::RequestId,
    telemetry,
    token::TokenHash,
    wire::{
        BatchedConfirmation, BatchedLease, BatchedSend, ClaimName, Claimed, MAX_ACKNOWLEDGEMENTS,
        MAX_CONFIRMATIONS_PER_BATCH, MAX_HELLOS_PER_LEASE_BATCH, MAX_LEASES_PER_BATCH,
        MAX_SENDS_PER_BATCH, RotateToken, StoredHello, TOKEN_HASH_HEADER, paths,
    },
};
use reqwest::Method;
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;

pub use self::{http::UNIX_SCHEME, outcomes::RawLease, watch::WatchCallError};
use self::{
    http::{WorldHttp, decode, encode, no_content},
    outcomes::{confirmed, leased, stored},
};
pub use crate::world_error::{Call, RETRY_AFTER_UNREACHABLE};
use crate::{
    batching::{
        ACKNOWLEDGEMENTS_IN_FLIGHT, BatchLimits, Batcher, CALLS_IN_FLIGHT, SENDS_IN_FLIGHT,
    },
    world_error::WorldError,
};

/// Sends may go 128 to a batch.
const SEND_BATCHES: BatchLimits<BatchedSend> = BatchLimits::at_most(MAX_SENDS_PER_BATCH);

/// Leases may go 128 to a batch, as long as they ask for at most 1,000 hellos together.
const LEASE_BATCHES: BatchLimits<BatchedLease> = BatchLimits {
    items: MAX_LEASES_PER_BATCH,
    weight: MAX_HELLOS_PER_LEASE_BATCH,
    weigh: |lease| lease.limit as usize,
};

/// Confirmations may go 128 to a batch.
const CONFIRM_BATCHES: BatchLimits<BatchedConfirmation> =
    BatchLimits::at_most(MAX_CONFIRMATIONS_PER_BATCH);

/// Acknowledgements may name 256 leases in one request.
const ACKNOWLEDGEMENT_BATCHES: BatchLimits<String> = BatchLimits::at_most(MAX_ACKNOWLEDGEMENTS);

/// Who is asking, as far as world-service needs to know: the hash of the token the request
/// presented (never the token). world-service decides what that token may do, by its own rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    pub token: Option<TokenHash>,
}

impl Caller {
    /// The presented token's hash as world-service takes it (lower-case hex), if any.
    fn token_hex(&self) -> Option<String> {
        self.token.map(|token| token.to_hex())
    }

    fn sign(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token_hex() {
            Some(token) => request.header(TOKEN_HASH_HEADER, token),
            None => request,
        }
    }
}

/// What a lease is for.
#[derive(Debug, Clone, Copy)]
pub enum LeaseFor {
    /// A GET: acknowledged as soon as its hellos are written to the client; world's lease time.
    Get,
    /// A reliable read: confirmed later by its reader, so world keeps a record of the lease; for
    /// `lease_ms`, or world's lease time.
    ReliableRead { lease_ms: Option<u64> },
}

/// A handle on world-service; cheap to clone, and clones share its connections and batchers.
/// Each HTTP worker makes its own with [`WorldClient::new`], so that its calls stay on its
/// thread; the settling of reads' answers uses another.
#[derive(Debug, Clone)]
pub struct WorldClient {
    http: WorldHttp,
    /// `HELLO_WORLD_TIMEOUT_MS`: how long a request, or a call from the moment it is queued, may
    /// take before its outcome is unknown.
    timeout: Duration,
    sends: Batcher<BatchedSend, StoredHello>,
    leases: Batcher<BatchedLease, RawLease>,
    confirmations: Batcher<BatchedConfirmation, ()>,
}

/// A batcher whose batches go to `path`, each call's outcome read by `outcome`.
fn batcher<T, O, R>(
    http: &WorldHttp,
    path: &'static str,
    limits: BatchLimits<T>,
    in_flight: usize,
    outcome: fn(O) -> Result<R, WorldError>,
) -> Batcher<T, R>
where
    T: Serialize + Send + 'static,
    O: DeserializeOwned + 'static,
    R: Send + 'static,
{
    let world = http.clone();
    Batcher::new(
        limits,
        in_flight,
        Box::new(move |calls| {
            let world = world.clone();
            Box::pin(async move { world.batch(path, calls, outcome).await })
        }),
    )
}

/// A span for one call to world-service when traces are on (none otherwise: no cost).
fn call_span(operation: &'static str) -> tracing::Span {
    if telemetry::tracing_enabled() {
        tracing::info_span!(
            "world call",
            otel.name = %format!("world {operation}"),
            otel.kind = "client",
            operation
        )
    } else {
        tracing::Span::none()
    }
}

impl WorldClient {
    /// A client for `world_url` (`unix:<path>`, or an HTTP URL) with a per-request `timeout`.
    pub fn new(world_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = WorldHttp::new(world_url, timeout)?;
        let sends = batcher(
            &http,
            paths::SEND_BATCH,
            SEND_BATCHES,
            SENDS_IN_FLIGHT,
            stored,
        );
        let leases = batcher(
            &http,
            paths::LEASE_BATCH,
            LEASE_BATCHES,
            CALLS_IN_FLIGHT,
            leased,
        );
        let confirmations = batcher(
            &http,
            paths::CONFIRM_BATCH,
            CONFIRM_BATCHES,
            CALLS_IN_FLIGHT,
            confirmed,
        );
        Ok(Self {
            http,
            timeout,
            sends,
            leases,
            confirmations,
        })
    }

    /// Stores a hello; answers once it is durable.
    pub async fn send(
        &self,
        to: &Name,
        from: Option<&Name>,
        idempotency_key: Option<&IdempotencyKey>,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<StoredHello, WorldError> {
        let send = |traceparent| BatchedSend {
            to: to.as_str().to_owned(),
            from: from.map(|from| from.as_str().to_owned()),
            idempotency_key: idempotency_key.map(|key| key.as_str().to_owned()),
            token_sha256: caller.token_hex(),
            request_id: request_id.0.clone(),
            traceparent,
        };
        self.batched(&self.sends, "send", send).await
    }

    /// Leases up to `limit` of the oldest hellos of `name`, for `read`. Never retried.
    pub async fn lease(
        &self,
        name: &Name,
        limit: u32,
        read: LeaseFor,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<RawLease, WorldError> {
        let (lease_ms, confirmable) = match read {
            LeaseFor::Get => (None, false),
            LeaseFor::ReliableRead { lease_ms } => (lease_ms, true),
        };
        let lease = |traceparent| BatchedLease {
            name: name.as_str().to_owned(),
            limit,
            lease_ms,
            token_sha256: caller.token_hex(),
            confirmable,
            request_id: request_id.0.clone(),
            traceparent,
        };
        self.batched(&self.leases, "lease", lease).await
    }

    /// Confirms a reliable read's lease: `Ok` once its hellos are gone for good (now or
    /// before); world's 410 or 404 problem otherwise.
    pub async fn confirm(
        &self,
        name: &Name,
        receipt: &str,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<(), WorldError> {
        let confirmation = |traceparent| BatchedConfirmation {
            name: name.as_str().to_owned(),
            lease: receipt.to_owned(),
            token_sha256: caller.token_hex(),
            request_id: request_id.0.clone(),
            traceparent,
        };
        self.batched(&self.confirmations, "confirm", confirmation)
            .await
    }

    /// One call through `batcher`, in a client span named for `operation` when traces are on;
    /// `call` makes the call with that span's `traceparent` (none when traces are off).
    async fn batched<T, R>(
        &self,
        batcher: &Batcher<T, R>,
        operation: &'static str,
        call: impl FnOnce(Option<String>) -> T,
    ) -> Result<R, WorldError>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        async {
            batcher
                .call(call(telemetry::current_traceparent()), self.timeout)
                .await
        }
        .instrument(call_span(operation))
        .await
    }

    /// A batcher of acknowledgements over this client's connections: one for the whole process
    /// ([`crate::settling::Settlements`] owns it). Each batch is one request naming up to
    /// [`MAX_ACKNOWLEDGEMENTS`] leases, retried a few times: giving up costs duplicates, not
    /// losses, as the leases run out and their hellos are delivered again.
    pub fn acknowledgements(&self) -> Batcher<String, ()> {
        let world = self.http.clone();
        Batcher::new(
            ACKNOWLEDGEMENT_BATCHES,
            ACKNOWLEDGEMENTS_IN_FLIGHT,
            Box::new(move |leases| {
                let world = world.clone();
                Box::pin(async move { world.acknowledge(paths::ACKNOWLEDGE, leases).await })
            }),
        )
    }

    /// Claims `name` for the token whose hash is `token`.
    pub async fn claim(
        &self,
        name: &Name,
        token: &TokenHash,
        request_id: &RequestId,
    ) -> Result<Claimed, WorldError> {
        async {
            let body = ClaimName {
                token_sha256: token.to_hex(),
            };
            let path = paths::name(&encode(name.as_str()));
            let request = self.http.request(Method::POST, &path, request_id);
            decode(request.json(&body).send().await).await
        }
        .instrument(call_span("claim"))
        .await
    }

    /// Replaces the token of `name` (the caller presents the current one).
    pub async fn rotate(
        &self,
        name: &Name,
        caller: &Caller,
        new: &TokenHash,
        request_id: &RequestId,
    ) -> Result<(), WorldError> {
        async {
            let body = RotateToken {
                new_token_sha256: new.to_hex(),
            };
            let path = paths::name_token(&encode(name.as_str()));
            let request = self.http.request(Method::POST, &path, request_id);
            no_content(caller.sign(request).json(&body).send().await).await
        }
        .instrument(call_span("rotate"))
        .await
    }

    /// Releases `name` (the caller presents its token) and deletes its waiting hellos.
    pub async fn release(
        &self,
        name: &Name,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<(), WorldError> {
        async {
            let path = paths::name(&encode(name.as_str()));
            let request = self.http.request(Method::DELETE, &path, request_id);
            no_content(caller.sign(request).send().await).await
        }
        .instrument(call_span("release"))
        .await
    }

    /// world-service's `/v1/info`.
    pub async fn info(&self, request_id: &RequestId) -> Result<serde_json::Value, WorldError> {
        async {
            let request = self.http.request(Method::GET, paths::INFO, request_id);
            decode(request.send().await).await
        }
        .instrument(call_span("info"))
        .await
    }

    /// world-service's `/metrics` text.
    pub async fn metrics(&self) -> Result<String, WorldError> {
        let unreachable = |error: reqwest::Error| WorldError::Unreachable(error.to_string());
        let response = self.http.get("/metrics").await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(WorldError::Unreachable(format!(
                "metrics answered {}",
                response.status()
            )));
        }
        response.text().await.map_err(unreachable)
    }

    /// Whether world-service is ready (and so its store answers).
    pub async fn ready(&self) -> Result<(), WorldError> {
        decode::<serde_json::Value>(self.http.get("/readyz").await)
            .await
            .map(|_| ())
    }
}
