//! Building and running hello-service.

use std::time::Duration;

use actix_web::{
    App, HttpRequest,
    http::header::{CACHE_CONTROL, HeaderValue},
    middleware::{DefaultHeaders, from_fn},
    web,
};
use hello_common::timestamp::Millis;
use hello_common::{
    Problem,
    info::Uptime,
    lifecycle::Lifecycle,
    observability::{self, Metrics, RequestId},
    problem::extractors,
    startup::{self as shared, BoundService},
};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::{
    auth::{self, Credential},
    config::{PodIdentity, Settings},
    rate_limit::ClientRateLimit,
    routes, server,
    settling::Settlements,
    waiting::{Waiting, run_watch},
    world_client::{Caller, RawLease, WorldClient},
};

/// The response header that names the serving pod.
pub const POD_NAME_HEADER: &str = "X-Pod-Name";

/// What every request handler can reach.
///
/// Each HTTP worker has its own copy, whose `world` is the worker's own client (see
/// [`Application::build`]); everything else in it is either a setting or shared between the
/// copies (the counters, rate limits and settlements are handles on one state).
#[derive(Debug, Clone)]
pub struct AppState {
    /// This worker's client of world-service: its connections and batch queues.
    pub world: WorldClient,
    pub rate_limit: ClientRateLimit,
    /// Claims, per client: stricter than `rate_limit`, which they also count against.
    pub claim_rate_limit: ClientRateLimit,
    pub max_body_bytes: usize,
    pub default_limit: u32,
    pub settings: Settings,
    pub pod: PodIdentity,
    pub uptime: Uptime,
    /// `hello_hellos_sent_total`: hellos stored through this process.
    pub hellos_sent: IntCounter,
    /// `hello_hellos_delivered_total{read="get"}`: hellos returned by GETs through this process.
    pub hellos_delivered_by_get: IntCounter,
    /// `hello_hellos_delivered_total{read="reliable"}`: hellos returned by reliable reads.
    pub hellos_delivered_reliably: IntCounter,
    /// Acknowledges reads' leases once their answers have settled.
    pub settlements: Settlements,
    /// The readers waiting for a hello (`wait`), and the watch that wakes them.
    pub waiting: Waiting,
    /// Whether this process is stopping: waiting readers are answered at once then.
    pub lifecycle: Lifecycle,
    /// `hello_wait_wake_seconds`: from a hello being stored to its waiting reader's answer.
    pub wake_latency: Histogram,
}

impl AppState {
    /// Who a request is, for world-service: its token's hash.
    pub fn caller(&self, credential: Credential) -> Caller {
        Caller {
            token: credential.0,
        }
    }

    /// Who a read (GET, reliable read, confirmation) of `name` is. With `HELLO_REQUIRE_CLAIM`, a
    /// read without a token is refused here, before world-service is asked: only owners read.
    /// world-service decides every read with a token, and enforces its own `WORLD_REQUIRE_CLAIM`
    /// whatever this service does.
    pub fn reader(
        &self,
        request: &HttpRequest,
        name: &hello_common::Name,
        credential: Credential,
    ) -> Result<Caller, Problem> {
        if self.settings.require_claim && credential.0.is_none() {
            return Err(self.charge_failures(
                request,
                Problem::token_required(format!(
                    "on this service an inbox is read only by its owner: read {name} with its \
                     token, in 'Authorization: Bearer <token>' (claim it first if nobody has: \
                     POST /names/{name})"
                )),
            ));
        }
        Ok(self.caller(credential))
    }

    /// Records how long the first hello sent while a reader waited (since `since`) took to
    /// reach it: from being stored (its `at`, a moment before its sender's 201) to now. A hello
    /// stored before the wait began (one whose lease ran out) is not a wake's measure.
    pub fn observe_wake(&self, lease: &RawLease, since: Millis) {
        #[derive(serde::Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            at: std::borrow::Cow<'a, str>,
        }
        let Ok(hellos) = serde_json::from_str::<Vec<Stored<'_>>>(lease.hellos.get()) else {
            return;
        };
        let sent_while_waiting = hellos
            .iter()
            .filter_map(|hello| Millis::parse_rfc3339(&hello.at))
            .find(|at| *at >= since);
        if let Some(at) = sent_while_waiting {
            let waited = Millis::now().0.saturating_sub(at.0).max(0);
            self.wake_latency.observe(waited as f64 / 1000.0);
        }
    }

    /// Passes a problem on; a failed attempt to use a name (401, 403) costs the client extra
    /// on its rate limit.
    pub fn charge_failures(&self, request: &HttpRequest, problem: Problem) -> Problem {
        if auth::is_failed_attempt(&problem) {
            self.rate_limit.charge_failed_attempt(request);
        }
        problem
    }
}

/// A bound, not yet running hello-service.
#[allow(missing_debug_implementations)] // actix-web's Server is not Debug
pub struct Application {
    service: BoundService,
    /// The TCP port of `HELLO_LISTEN`.
    port: u16,
    settlements: Settlements,
}

impl Application {
    /// Binds `HELLO_LISTEN`; does not need world-service to be up yet.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let open_files = shared::raise_open_files_limit();
        // Each waiting reader holds a connection from nginx; twice that leaves room for the rest.
        if open_files < 2 * u64::from(settings.wait_per_pod) {
            tracing::warn!(
                open_files,
                wait_per_pod = settings.wait_per_pod,
                "the limit of open files is below two per waiting reader (HELLO_WAIT_PER_POD): \
                 raise the container's nofile limit or lower HELLO_WAIT_PER_POD"
            );
        }
        let listener = shared::bind(settings.listen, "HELLO_LISTEN")?;
        let world = WorldClient::new(&settings.world_url, settings.world_timeout())?;
        let rate_limit =
            ClientRateLimit::new(settings.rate_limit_per_second, settings.rate_limit_burst);
        let claim_rate_limit =
            ClientRateLimit::per_minute(settings.claim_rate_per_minute, settings.claim_burst);
        let sweepers = [rate_limit.clone(), claim_rate_limit.clone()];
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            loop {
                every_minute.tick().await;
                for sweeper in &sweepers {
                    sweeper.forget_idle_clients();
                }
            }
        });
        let metrics = Metrics::new("hello", env!("CARGO_PKG_VERSION"));
        let hellos_sent =
            IntCounter::new("hellos_sent_total", "Hellos stored through this process")?;
        let hellos_delivered = IntCounterVec::new(
            Opts::new(
                "hellos_delivered_total",
                "Hellos returned by reads through this process, by kind of read (get, reliable)",
            ),
            &["read"],
        )?;
        metrics.registry.register(Box::new(hellos_sent.clone()))?;
        metrics
            .registry
            .register(Box::new(hellos_delivered.clone()))?;
        let not_acknowledged = IntCounter::new(
            "reads_not_acknowledged_total",
            "Reads whose connection failed as the answer went out: their hellos come back when the lease runs out",
        )?;
        metrics
            .registry
            .register(Box::new(not_acknowledged.clone()))?;
        let waiting_readers = IntGauge::new(
            "waiting_readers",
            "Reads waiting for a hello (wait) in this process",
        )?;
        metrics
            .registry
            .register(Box::new(waiting_readers.clone()))?;
        let wake_latency = Histogram::with_opts(
            HistogramOpts::new(
                "wait_wake_seconds",
                "From a hello being stored to the answer of the reader that waited for it",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        metrics.registry.register(Box::new(wake_latency.clone()))?;
        let metrics = web::Data::new(metrics);
        let lifecycle = Lifecycle::default();
        let waiting = Waiting::new(settings.wait_limits(), waiting_readers);
        // A new watch session at every start: a UUIDv7, as a request id is.
        tokio::spawn(run_watch(
            waiting.clone(),
            world.clone(),
            RequestId::generate().0,
        ));
        let settlements = Settlements::start(world.clone(), settings.settle(), not_acknowledged);
        let pod = PodIdentity::from_env();
        let pod_header = pod.name.clone();
        let state = AppState {
            world,
            rate_limit,
            claim_rate_limit,
            max_body_bytes: settings.max_body_bytes,
            default_limit: settings.default_limit,
            settings: settings.clone(),
            pod,
            uptime: Uptime::default(),
            hellos_sent,
            // Resolved once here, not by label on every read.
            hellos_delivered_by_get: hellos_delivered.with_label_values(&["get"]),
            hellos_delivered_reliably: hellos_delivered.with_label_values(&["reliable"]),
            settlements: settlements.clone(),
            waiting,
            lifecycle: lifecycle.clone(),
            wake_latency,
        };
        let shared_app = shared::shared(metrics, web::Data::new(lifecycle.clone()));
        let address = listener.local_addr()?;
        let world_url = settings.world_url.clone();
        let world_timeout = settings.world_timeout();
        let server = server::serve(
            move || {
                // Runs on each worker's thread. The worker gets a world client of its own, so
                // that its calls, their batches, the connections that carry them and the
                // answers all stay on its thread: a client shared by the workers woke another
                // thread about once per request (bench/profile.py --syscalls; docs/performance.md).
                // The settings built a client above, so building another cannot fail.
                let mut state = state.clone();
                state.world = WorldClient::new(&world_url, world_timeout)
                    .expect("the settings already built a world client");
                let state = web::Data::new(state);
                App::new()
                    // Inside `observe`, which logs and counts the refusal like any answer.
                    .wrap(from_fn(auth::refuse_tokens_in_queries))
                    .wrap(from_fn(observability::observe))
                    .wrap(
                        DefaultHeaders::new()
                            .add((POD_NAME_HEADER, pod_header.clone()))
                            // No answer of this API may be kept by a cache: a read's hellos
                            // are gone from the inbox once delivered.
                            .add((CACHE_CONTROL, HeaderValue::from_static("no-store"))),
                    )
                    .app_data(state.clone())
                    .configure(shared_app.clone())
                    .configure(routes::configure)
                    .default_service(web::to(extractors::not_found))
            },
            listener,
            settings.http_workers,
        )?;
        tracing::info!(world = %settings.world_url, "hello-service calls world-service here");
        Ok(Self {
            port: address.port(),
            service: BoundService::serving(
                "hello-service",
                server,
                address,
                lifecycle,
                Duration::from_millis(settings.shutdown_drain_ms),
            ),
            settlements,
        })
    }

    /// The port it listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then shuts down gracefully: the last answers' leases are
    /// acknowledged before the process exits.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.service.run_until_stopped().await;
        self.settlements
            .wait_until_settled(Duration::from_secs(5))
            .await;
        result
    }
}
