//! The pod's world-service, over localhost: a pooled keep-alive client with timeouts.
//!
//! Nothing here retries a lease: a retried lease could take a second page of hellos while the
//! first is still leased. Acknowledgements are retried: acknowledging a lease twice is harmless.
//! Sends, leases and confirmations that arrive together go in one call ([`crate::batching`]).
//! With traces on, each call is a client span whose context world-service continues, and each
//! send, lease and confirmation is a call of its own, so that its trace goes on in world-service.

use std::{sync::Arc, time::Duration};

use actix_web::http::StatusCode;
use futures::future::BoxFuture;
use hello_common::{
    Name, Problem,
    observability::{REQUEST_ID_HEADER, RequestId},
    problem::PROBLEM_JSON,
    telemetry,
    token::TokenHash,
    wire::{
        Acknowledgements, Batch, BatchedConfirmation, BatchedLease, BatchedSend, ClaimName,
        Claimed, ConfirmOutcome, MAX_CONFIRMATIONS_PER_BATCH, MAX_HELLOS_PER_LEASE_BATCH,
        MAX_LEASES_PER_BATCH, MAX_SENDS_PER_BATCH, Outcomes, RotateToken, SendHello, SendOutcome,
        StoredHello, TOKEN_HASH_HEADER, paths,
    },
};
use reqwest::Method;
use serde::{
    Deserialize, Serialize,
    de::{DeserializeOwned, IgnoredAny},
};
use serde_json::value::RawValue;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use crate::batching::{BatchLimits, CALLS_IN_FLIGHT, CallQueue, SENDS_IN_FLIGHT};

/// world-service's answer to a lease, with its hellos as world wrote them. They already have the
/// shape of the public answers' hellos ([`hello_common::wire::DeliveredHello`], the one type
/// both services use), so they are passed on as they are, not parsed and written again: on a
/// read of 100 hellos that was most of hello-service's own work.
#[derive(Debug, Deserialize)]
pub struct PassedLease {
    /// Acknowledge with this id; `None` when nothing was taken.
    pub lease_id: Option<String>,
    /// A JSON array of hellos, oldest first.
    pub hellos: Box<RawValue>,
    /// Hellos still waiting (not taken by this or any live lease).
    pub remaining: u64,
    /// When the lease runs out (RFC 3339); `None` when nothing was taken.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// How many hellos `hellos` holds: counted (and checked to be an array) on arrival.
    #[serde(skip)]
    pub count: usize,
}

impl PassedLease {
    /// Counts its hellos (and so checks that they are an array).
    fn counted(mut self) -> Result<Self, WorldError> {
        self.count = serde_json::from_str::<Vec<IgnoredAny>>(self.hellos.get())
            .map_err(|error| WorldError::NoAnswer(format!("unreadable hellos: {error}")))?
            .len();
        Ok(self)
    }
}

/// One outcome of a batch of leases ([`hello_common::wire::LeaseOutcome`]), with its hellos
/// passed on as they came.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PassedLeaseOutcome {
    Leased(PassedLease),
    Refused(Problem),
}

/// A batch call of one kind: the calls' items in, one outcome per item out, in their order.
type BatchCall<T, R> =
    fn(WorldClient, Vec<T>) -> BoxFuture<'static, Result<Vec<Result<R, WorldError>>, WorldError>>;

/// Sends may go 128 to a call.
const SEND_BATCHES: BatchLimits<BatchedSend> = BatchLimits::at_most(MAX_SENDS_PER_BATCH);

/// Leases may go 128 to a call, as long as they ask for at most 1,000 hellos together.
const LEASE_BATCHES: BatchLimits<BatchedLease> = BatchLimits {
    items: MAX_LEASES_PER_BATCH,
    weight: MAX_HELLOS_PER_LEASE_BATCH,
    weigh: |lease| lease.limit as usize,
};

/// Confirmations may go 128 to a call.
const CONFIRM_BATCHES: BatchLimits<BatchedConfirmation> =
    BatchLimits::at_most(MAX_CONFIRMATIONS_PER_BATCH);

/// How `HELLO_WORLD_URL` names a Unix socket: `unix:/run/world/world.sock`.
pub const UNIX_SCHEME: &str = "unix:";

/// Idle connections to world-service kept for reuse, per HTTP worker (each has its own client):
/// as many as each of the pod's Nginx workers keeps to hello-service (`keepalive 256`), so that
/// every request Nginx can have in flight finds one.
/// With fewer, each request beyond them opened a connection, and the pool closed it again after
/// (`bench/compare.py` at 256 connections, 3 rounds, 64 against 256: GET 126%, POST 111% of the
/// requests per second, both services' peak RSS about 2.5 MiB lower; no change at 64).
const IDLE_CONNECTIONS_TO_WORLD: usize = 256;

/// How long a client should wait before retrying when world-service is unreachable.
pub const RETRY_AFTER_UNREACHABLE: Duration = Duration::from_secs(1);

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

/// A handle on world-service; cheap to clone, and clones share its connections and batch
/// queues. Each HTTP worker makes its own with [`WorldClient::new`], so that its calls stay on
/// its thread; the settling of reads' answers uses another.
#[derive(Debug, Clone)]
pub struct WorldClient {
    http: reqwest::Client,
    base_url: String,
    /// `HELLO_WORLD_TIMEOUT_MS`: how long a call, or a send from the moment it is queued, may
    /// take before its outcome is unknown.
    timeout: Duration,
    /// Sends waiting to go to world-service together.
    sends: Arc<CallQueue<BatchedSend, StoredHello>>,
    /// Leases waiting to go to world-service together.
    leases: Arc<CallQueue<BatchedLease, PassedLease>>,
    /// Confirmations waiting to go to world-service together.
    confirmations: Arc<CallQueue<BatchedConfirmation, ()>>,
}

/// Why a call to world-service did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorldError {
    /// world-service answered with a problem: pass it on to the client as it is.
    #[error("{0}")]
    Answered(Problem),
    /// world-service could not be reached: the request never got there, nothing was done.
    #[error("world-service is unreachable: {0}")]
    Unreachable(String),
    /// The request may have reached world-service, but no usable answer came back (hello-service
    /// stopped waiting, the connection broke, the answer was unreadable): it may or may not have
    /// been carried out.
    #[error("world-service did not answer: {0}")]
    NoAnswer(String),
}

/// Which call failed, so that a [`WorldError::NoAnswer`] can say what is safe to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Storing a hello.
    Send,
    /// Leasing hellos for a read.
    Lease,
    /// Confirming a reliable read.
    Confirm,
    /// Claiming a name.
    Claim,
    /// Replacing a name's token.
    Rotate,
    /// Releasing a name.
    Release,
    /// A call that changes nothing (readiness, info).
    Look,
}

impl WorldError {
    /// The problem the client gets: world's own as it is; 503 when nothing was done; 504, saying
    /// what is safe for this call, when the outcome is unknown.
    pub fn into_problem(self, call: Call) -> Problem {
        match self {
            WorldError::Answered(problem) => problem,
            WorldError::Unreachable(cause) => {
                tracing::warn!(%cause, "world-service unreachable");
                Problem::unavailable(
                    "the inbox service of this pod is not answering; nothing was changed. Retry shortly",
                    RETRY_AFTER_UNREACHABLE,
                )
            }
            WorldError::NoAnswer(cause) => {
                tracing::warn!(%cause, ?call, "world-service gave no usable answer");
                let detail = match call {
                    Call::Send => {
                        "hello-service stopped waiting for the inbox service, so this hello may or \
                         may not have been stored. Send it again with the same Idempotency-Key: if \
                         it was stored, the retry answers with the first hello and stores nothing \
                         new (without a key, a retry may store it twice)"
                    }
                    Call::Lease => {
                        "hello-service stopped waiting for the inbox service while reading, so \
                         hellos may have been taken for this read; they stay hidden until its \
                         lease runs out, then come back. Read again later"
                    }
                    Call::Confirm => {
                        "hello-service stopped waiting for the inbox service while confirming, so \
                         this read may or may not be confirmed. Repeat the DELETE: confirming \
                         again is safe"
                    }
                    Call::Claim => {
                        "hello-service stopped waiting for the inbox service while claiming, so \
                         the name may or may not be claimed now, and its token cannot be shown \
                         again. Claim it again: 409 means the first claim went through, and only \
                         an operator can release the name"
                    }
                    Call::Rotate => {
                        "hello-service stopped waiting for the inbox service while replacing the \
                         token, so the old token may or may not still work. Try it: if it \
                         answers 401, only an operator can reset the token"
                    }
                    Call::Release => {
                        "hello-service stopped waiting for the inbox service while releasing, so \
                         the name may or may not be free yet. Repeat the DELETE with the same \
                         token: a repeat finishes a release"
                    }
                    Call::Look => {
                        "the inbox service of this pod did not answer in time; nothing was \
                         changed. Retry shortly"
                    }
                };
                if call == Call::Look {
                    Problem::unavailable(detail, RETRY_AFTER_UNREACHABLE)
                } else {
                    Problem::outcome_unknown(detail, RETRY_AFTER_UNREACHABLE)
                }
            }
        }
    }
}

/// Sorts a failed request: refused before it was sent, or maybe carried out.
fn request_failed(error: reqwest::Error) -> WorldError {
    if error.is_connect() {
        WorldError::Unreachable(error.to_string())
    } else {
        WorldError::NoAnswer(error.to_string())
    }
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
    /// A request to world-service carrying the request id and, when traces are on, the W3C
    /// trace context of the current span.
    fn call(&self, method: Method, url: &str, request_id: &RequestId) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, url)
            .header(REQUEST_ID_HEADER, &request_id.0);
        for (name, value) in telemetry::outgoing_headers() {
            request = request.header(name, value);
        }
        request
    }

    /// A client for `world_url` with a per-request `timeout`: an HTTP URL (e.g.
    /// `http://127.0.0.1:8082`), or `unix:<path>` for world's Unix socket in the pod (the cheaper
    /// way: see `WORLD_LISTEN_SOCKET`).
    pub fn new(world_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(IDLE_CONNECTIONS_TO_WORLD)
            .no_proxy();
        let (http, base_url) = match world_url.strip_prefix(UNIX_SCHEME) {
            // Every request goes to the socket; the URL's host only fills the Host header.
            Some(socket) => (
                builder.unix_socket(socket).build()?,
                "http://world-service".to_owned(),
            ),
            None => (
                builder.tcp_nodelay(true).build()?,
                world_url.trim_end_matches('/').to_owned(),
            ),
        };
        Ok(Self {
            http,
            base_url,
            timeout,
            sends: Arc::new(CallQueue::new(SEND_BATCHES, SENDS_IN_FLIGHT)),
            leases: Arc::new(CallQueue::new(LEASE_BATCHES, CALLS_IN_FLIGHT)),
            confirmations: Arc::new(CallQueue::new(CONFIRM_BATCHES, CALLS_IN_FLIGHT)),
        })
    }

    /// Stores a hello; answers once it is durable. It goes to world-service with the sends that
    /// arrive with it ([`crate::batching`]); alone when traces are on.
    pub async fn send(
        &self,
        to: &Name,
        hello: SendHello,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<StoredHello, WorldError> {
        if telemetry::tracing_enabled() {
            return self.send_alone(to, &hello, caller, request_id).await;
        }
        let send = BatchedSend {
            to: to.as_str().to_owned(),
            from: hello.from,
            idempotency_key: hello.idempotency_key,
            token_sha256: caller.token_hex(),
            request_id: request_id.0.clone(),
        };
        self.batched(&self.sends, send, |world, sends| {
            Box::pin(async move { world.send_batch(sends).await })
        })
        .await
    }

    /// Queues `item` for the next batch of its kind, makes sure a batch will carry it, and waits
    /// for its outcome, at most the timeout from now.
    async fn batched<T, R>(
        &self,
        queue: &Arc<CallQueue<T, R>>,
        item: T,
        call: BatchCall<T, R>,
    ) -> Result<R, WorldError>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        let outcome = queue.push(item);
        if let Some(permit) = queue.free_batch() {
            tokio::spawn(self.clone().call_batches(Arc::clone(queue), permit, call));
        }
        match tokio::time::timeout(self.timeout, outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(WorldError::NoAnswer(
                "the batch carrying this call ended without an outcome".to_owned(),
            )),
            Err(_) => Err(WorldError::NoAnswer(format!(
                "no outcome within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// One batch after another, each with the calls waiting when it starts, until none is
    /// waiting; `permit` counts it among the batches out.
    async fn call_batches<T, R>(
        self,
        queue: Arc<CallQueue<T, R>>,
        mut permit: OwnedSemaphorePermit,
        call: BatchCall<T, R>,
    ) {
        loop {
            let waiting = queue.take();
            if waiting.is_empty() {
                drop(permit);
                match queue.free_batch() {
                    Some(next) => {
                        permit = next;
                        continue;
                    }
                    None => return,
                }
            }
            let (items, outcomes): (Vec<T>, Vec<_>) = waiting
                .into_iter()
                .map(|waiting| (waiting.item, waiting.outcome))
                .unzip();
            // A call whose request has gone (its client left, or it stopped waiting) no longer
            // takes its outcome; what was done stays done.
            match call(self.clone(), items).await {
                Ok(answered) => {
                    for (outcome, answer) in outcomes.into_iter().zip(answered) {
                        drop(outcome.send(answer));
                    }
                }
                Err(error) => {
                    for outcome in outcomes {
                        drop(outcome.send(Err(error.clone())));
                    }
                }
            }
        }
    }

    /// One call with several sends: one outcome for each, in their order.
    async fn send_batch(
        &self,
        sends: Vec<BatchedSend>,
    ) -> Result<Vec<Result<StoredHello, WorldError>>, WorldError> {
        let outcomes = self.call_batch(paths::SEND_BATCH, sends).await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                SendOutcome::Stored(stored) => Ok(stored),
                SendOutcome::Refused(problem) => Err(refused(problem.status, problem)),
            })
            .collect())
    }

    /// One call with several leases: one outcome for each, in their order.
    async fn lease_batch(
        &self,
        leases: Vec<BatchedLease>,
    ) -> Result<Vec<Result<PassedLease, WorldError>>, WorldError> {
        let outcomes = self.call_batch(paths::LEASE_BATCH, leases).await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                PassedLeaseOutcome::Leased(lease) => lease.counted(),
                PassedLeaseOutcome::Refused(problem) => Err(refused(problem.status, problem)),
            })
            .collect())
    }

    /// One call with several confirmations: one outcome for each, in their order.
    async fn confirm_batch(
        &self,
        confirmations: Vec<BatchedConfirmation>,
    ) -> Result<Vec<Result<(), WorldError>>, WorldError> {
        let outcomes = self.call_batch(paths::CONFIRM_BATCH, confirmations).await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                ConfirmOutcome::Confirmed => Ok(()),
                ConfirmOutcome::Refused(problem) => Err(refused(problem.status, problem)),
            })
            .collect())
    }

    /// A batch of `calls` to `path`: their outcomes, one per call (or none can be trusted).
    async fn call_batch<T: Serialize, O: DeserializeOwned>(
        &self,
        path: &str,
        calls: Vec<T>,
    ) -> Result<Vec<O>, WorldError> {
        let count = calls.len();
        let url = format!("{}{path}", self.base_url);
        let request = self
            .call(Method::POST, &url, &RequestId::generate())
            .json(&Batch { calls });
        let answer: Outcomes<O> = decode(request.send().await).await?;
        if answer.outcomes.len() != count {
            return Err(WorldError::NoAnswer(format!(
                "world-service answered {} outcomes for {count} calls",
                answer.outcomes.len()
            )));
        }
        Ok(answer.outcomes)
    }

    /// Stores a hello in a call of its own.
    async fn send_alone(
        &self,
        to: &Name,
        hello: &SendHello,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<StoredHello, WorldError> {
        async {
            let url = format!("{}{}", self.base_url, paths::send(&encode(to.as_str())));
            let request = self.call(Method::POST, &url, request_id);
            decode(caller.sign(request).json(hello).send().await).await
        }
        .instrument(call_span("send"))
        .await
    }

    /// Leases up to `limit` of the oldest hellos of `name`. Never retried. It goes to
    /// world-service with the leases that arrive with it ([`crate::batching`]); alone when traces
    /// are on.
    pub async fn lease(
        &self,
        name: &Name,
        limit: u32,
        lease_ms: Option<u64>,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<PassedLease, WorldError> {
        if telemetry::tracing_enabled() {
            return self
                .lease_alone(name, limit, lease_ms, caller, request_id)
                .await;
        }
        let lease = BatchedLease {
            name: name.as_str().to_owned(),
            limit,
            lease_ms,
            token_sha256: caller.token_hex(),
            request_id: request_id.0.clone(),
        };
        self.batched(&self.leases, lease, |world, leases| {
            Box::pin(async move { world.lease_batch(leases).await })
        })
        .await
    }

    /// Leases in a call of its own.
    async fn lease_alone(
        &self,
        name: &Name,
        limit: u32,
        lease_ms: Option<u64>,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<PassedLease, WorldError> {
        async {
            let mut url = format!(
                "{}{}?limit={limit}",
                self.base_url,
                paths::lease(&encode(name.as_str())),
            );
            if let Some(lease_ms) = lease_ms {
                url.push_str(&format!("&lease_ms={lease_ms}"));
            }
            let request = self.call(Method::POST, &url, request_id);
            let lease: PassedLease = decode(caller.sign(request).send().await).await?;
            lease.counted()
        }
        .instrument(call_span("lease"))
        .await
    }

    /// Confirms a reliable read's lease: `Ok` once its hellos are gone for good (now or
    /// before); world's 410 or 404 problem otherwise. It goes to world-service with the
    /// confirmations that arrive with it ([`crate::batching`]); alone when traces are on.
    pub async fn confirm(
        &self,
        name: &Name,
        receipt: &str,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<(), WorldError> {
        if telemetry::tracing_enabled() {
            return self.confirm_alone(name, receipt, caller, request_id).await;
        }
        let confirmation = BatchedConfirmation {
            name: name.as_str().to_owned(),
            lease: receipt.to_owned(),
            token_sha256: caller.token_hex(),
            request_id: request_id.0.clone(),
        };
        self.batched(&self.confirmations, confirmation, |world, confirmations| {
            Box::pin(async move { world.confirm_batch(confirmations).await })
        })
        .await
    }

    /// Confirms in a call of its own.
    async fn confirm_alone(
        &self,
        name: &Name,
        receipt: &str,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<(), WorldError> {
        async {
            let url = format!(
                "{}{}",
                self.base_url,
                paths::confirm(&encode(name.as_str()), &encode(receipt)),
            );
            let request = self.call(Method::DELETE, &url, request_id);
            no_content(caller.sign(request).send().await).await
        }
        .instrument(call_span("confirm"))
        .await
    }

    /// Claims `name` for the token whose hash is `token`.
    pub async fn claim(
        &self,
        name: &Name,
        token: &TokenHash,
        request_id: &RequestId,
    ) -> Result<Claimed, WorldError> {
        async {
            let url = format!("{}{}", self.base_url, paths::name(&encode(name.as_str())));
            let body = ClaimName {
                token_sha256: token.to_hex(),
            };
            let request = self.call(Method::POST, &url, request_id);
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
            let url = format!(
                "{}{}",
                self.base_url,
                paths::name_token(&encode(name.as_str()))
            );
            let body = RotateToken {
                new_token_sha256: new.to_hex(),
            };
            let request = self.call(Method::POST, &url, request_id);
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
            let url = format!("{}{}", self.base_url, paths::name(&encode(name.as_str())));
            let request = self.call(Method::DELETE, &url, request_id);
            no_content(caller.sign(request).send().await).await
        }
        .instrument(call_span("release"))
        .await
    }

    /// Acknowledges leases whose answers settled (at most `MAX_ACKNOWLEDGEMENTS`), retrying a
    /// few times. Giving up costs duplicates, not losses: the leases run out and their hellos are
    /// delivered again.
    pub async fn acknowledge(&self, lease_ids: Vec<String>, request_id: &RequestId) {
        async {
            let url = format!("{}{}", self.base_url, paths::ACKNOWLEDGE);
            let leases = lease_ids.len();
            let body = Acknowledgements { leases: lease_ids };
            let mut delay = Duration::from_millis(50);
            for attempt in 1..=5 {
                let request = self.call(Method::POST, &url, request_id).json(&body);
                match request.send().await {
                    Ok(response) if response.status().is_success() => return,
                    Ok(response) => {
                        tracing::warn!(attempt, status = %response.status(), leases, "acknowledgement refused");
                    }
                    Err(error) => {
                        tracing::warn!(attempt, %error, leases, "acknowledgement failed");
                    }
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            tracing::error!(
                leases,
                "acknowledgement gave up: these hellos will be delivered again when their leases end"
            );
        }
        .instrument(call_span("acknowledge"))
        .await
    }

    /// world-service's `/v1/info`.
    pub async fn info(&self, request_id: &RequestId) -> Result<serde_json::Value, WorldError> {
        async {
            let url = format!("{}{}", self.base_url, paths::INFO);
            decode(self.call(Method::GET, &url, request_id).send().await).await
        }
        .instrument(call_span("info"))
        .await
    }

    /// world-service's `/metrics` text.
    pub async fn metrics(&self) -> Result<String, WorldError> {
        let url = format!("{}/metrics", self.base_url);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| WorldError::Unreachable(error.to_string()))?;
        if !response.status().is_success() {
            return Err(WorldError::Unreachable(format!(
                "metrics answered {}",
                response.status()
            )));
        }
        response
            .text()
            .await
            .map_err(|error| WorldError::Unreachable(error.to_string()))
    }

    /// Whether world-service is ready (and so its store answers).
    pub async fn ready(&self) -> Result<(), WorldError> {
        let url = format!("{}/readyz", self.base_url);
        decode::<serde_json::Value>(self.http.get(url).send().await)
            .await
            .map(|_| ())
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A 204, or world's problem.
async fn no_content(response: Result<reqwest::Response, reqwest::Error>) -> Result<(), WorldError> {
    match response {
        Ok(response) if response.status() == StatusCode::NO_CONTENT.as_u16() => Ok(()),
        other => decode::<serde_json::Value>(other).await.map(|_| ()),
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, WorldError> {
    let response = response.map_err(request_failed)?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|error| WorldError::NoAnswer(format!("unreadable answer: {error}")));
    }
    let is_problem = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Problem>(&body) {
        Ok(problem) if is_problem => Err(refused(status.as_u16(), problem)),
        _ => Err(WorldError::NoAnswer(format!(
            "world-service answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

/// world's problem answered with `status` (alone, or for one send of a batch): passed on as it
/// is when the client can act on it (a 4xx; a 503, nothing was done, or a 504, the store's
/// outcome is unknown, each with world's own account of what is safe); any other is an answer
/// nobody understood.
fn refused(status: u16, problem: Problem) -> WorldError {
    let passed_on = (400..500).contains(&status)
        || status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
        || status == StatusCode::GATEWAY_TIMEOUT.as_u16();
    if passed_on {
        WorldError::Answered(problem)
    } else {
        WorldError::NoAnswer(format!(
            "world-service answered {status}: {}",
            problem.detail
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: &str, body: &str) -> reqwest::Response {
        http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body.to_owned())
            .unwrap()
            .into()
    }

    #[tokio::test]
    async fn worlds_own_account_of_an_unknown_outcome_is_passed_on() {
        let problem = Problem::outcome_unknown(
            "send it again with the same Idempotency-Key",
            Duration::from_secs(1),
        );
        let body = serde_json::to_string(&problem).unwrap();
        let decoded = decode::<serde_json::Value>(Ok(answer(504, PROBLEM_JSON, &body))).await;
        assert!(
            matches!(&decoded, Err(WorldError::Answered(passed)) if *passed == problem),
            "{decoded:?}"
        );
        // A 504 that is not world's problem (a proxy's page) is an answer nobody understood.
        let decoded =
            decode::<serde_json::Value>(Ok(answer(504, "text/html", "<h1>504</h1>"))).await;
        assert!(
            matches!(decoded, Err(WorldError::NoAnswer(_))),
            "{decoded:?}"
        );
    }

    #[test]
    fn encodes_every_byte_outside_the_unreserved_set() {
        assert_eq!(encode("bob"), "bob");
        assert_eq!(encode("Zoë"), "Zo%C3%AB");
        assert_eq!(encode("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    }
}
