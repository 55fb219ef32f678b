//! Building and running world-service: the store, the listener, the HTTP server.

use std::{sync::Arc, time::Duration};

use actix_web::{App, HttpServer, middleware::from_fn, web};
use anyhow::Context;
use hello_common::{
    info::Uptime,
    lifecycle::Lifecycle,
    observability::{self, Metrics},
    problem::extractors,
    startup::{self as shared, BoundService},
    telemetry,
};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::{
    config::Settings,
    routes,
    store::{
        Store,
        embedded::{EmbeddedOptions, EmbeddedStore},
        mongo::MongoStore,
        traced::TracedStore,
    },
    watches::{self, Watches},
};

/// What every request handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The lease of a read that names none (`WORLD_LEASE_MS`).
    pub lease_ms: u64,
    /// Reading an unclaimed inbox needs a claim too (`WORLD_REQUIRE_CLAIM`).
    pub require_claim: bool,
    pub settings: Settings,
    pub uptime: Uptime,
    /// `world_store_operation_duration_seconds{operation, backend}`.
    pub store_latency: HistogramVec,
    /// What the store did: redeliveries, confirmations, hellos held, whether it answers.
    pub store_metrics: StoreMetrics,
    /// What hello's waiting readers wait on, and their wakes.
    pub watches: Arc<Watches>,
}

/// What the store did, for dashboards and alerts. Labels have a handful of values each: never
/// a name, a token or an id.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// `world_hellos_redelivered_total`: hellos leased again after an earlier lease ran out
    /// unconfirmed (a reader that vanished, or a GET whose answer did not arrive).
    pub redelivered: IntCounter,
    /// `world_confirmations_total{outcome}`: reliable reads confirmed (`confirmed`), too late
    /// (`expired`) or for an unknown lease (`unknown`).
    pub confirmations: IntCounterVec,
    /// `world_hellos_stored`: hellos held, waiting or leased; set at every scrape.
    pub stored: IntGauge,
    /// `world_store_up`: 1 when the store answered at the last scrape, else 0.
    pub store_up: IntGauge,
}

impl StoreMetrics {
    fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            redelivered: IntCounter::new(
                "hellos_redelivered_total",
                "Hellos leased again after an earlier lease ran out unconfirmed",
            )?,
            confirmations: IntCounterVec::new(
                Opts::new(
                    "confirmations_total",
                    "Reliable reads' confirmations, by outcome (confirmed, expired, unknown)",
                ),
                &["outcome"],
            )?,
            stored: IntGauge::new(
                "hellos_stored",
                "Hellos the store holds, waiting or leased (read at each scrape)",
            )?,
            store_up: IntGauge::new(
                "store_up",
                "1 when the store answered at this scrape, 0 when it did not",
            )?,
        };
        // Every outcome from the start: a series that appears only with its first event makes
        // rate() blind to that first event, and dashboards show "no data" instead of 0.
        for outcome in ["confirmed", "expired", "unknown"] {
            metrics.confirmations.with_label_values(&[outcome]);
        }
        registry.register(Box::new(metrics.redelivered.clone()))?;
        registry.register(Box::new(metrics.confirmations.clone()))?;
        registry.register(Box::new(metrics.stored.clone()))?;
        registry.register(Box::new(metrics.store_up.clone()))?;
        Ok(metrics)
    }
}

impl AppState {
    /// Starts timing one store operation; the time is recorded when the timer is dropped.
    pub fn time_store(&self, operation: &str) -> prometheus::HistogramTimer {
        self.store_latency
            .with_label_values(&[operation, self.store.backend()])
            .start_timer()
    }
}

/// A bound, not yet running world-service.
#[allow(missing_debug_implementations)] // actix-web's Server is not Debug
pub struct Application {
    service: BoundService,
    store: Arc<dyn Store>,
}

/// Opens the store the settings choose: MongoDB when `WORLD_MONGODB_URI` is set, else embedded.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    // With traces on, every store operation is a span (a wrapper that costs nothing otherwise).
    fn traced<S: Store>(store: S) -> Arc<dyn Store> {
        if telemetry::tracing_enabled() {
            Arc::new(TracedStore(store))
        } else {
            Arc::new(store)
        }
    }
    Ok(match &settings.mongodb_uri {
        Some(uri) => traced(
            MongoStore::connect(uri, &settings.mongodb_database, settings.store_limits())
                .await
                .context("cannot use MongoDB (WORLD_MONGODB_URI)")?,
        ),
        None => {
            if !settings.store_sync {
                tracing::warn!(
                    "WORLD_STORE_SYNC=false: sends are answered before they are on disk; \
                     a crash of the machine can lose acknowledged hellos. Use it only to measure"
                );
            }
            traced(EmbeddedStore::open_with(
                &settings.data_dir,
                settings.store_limits(),
                EmbeddedOptions {
                    cache_bytes: settings.store_cache_mb * 1024 * 1024,
                    sync_sends: settings.store_sync,
                },
            )?)
        }
    })
}

impl Application {
    /// Opens the store and binds `WORLD_LISTEN_SOCKET` (and `WORLD_LISTEN` when set).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings).await?;
        tracing::info!(backend = store.backend(), "store open");
        Self::build_with_store(&settings, store)
    }

    /// Binds `WORLD_LISTEN_SOCKET` (and `WORLD_LISTEN` when set) and serves the given store.
    pub fn build_with_store(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let listener = settings
            .listen
            .map(|address| shared::bind(address, "WORLD_LISTEN"))
            .transpose()?;
        let socket = settings
            .listen_socket
            .as_deref()
            .map(|path| shared::bind_socket(path, "WORLD_LISTEN_SOCKET"))
            .transpose()?;
        let lifecycle = Lifecycle::default();
        let metrics = Metrics::new("world", env!("CARGO_PKG_VERSION"));
        let store_latency = HistogramVec::new(
            HistogramOpts::new(
                "store_operation_duration_seconds",
                "Time the store took per operation (send, lease, acknowledge, confirm, ping)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["operation", "backend"],
        )?;
        metrics.registry.register(Box::new(store_latency.clone()))?;
        let store_metrics = StoreMetrics::register(&metrics.registry)?;
        metrics.registry.register(store.commands().collector())?;
        let watched = IntGauge::new(
            "watched_reads",
            "Waiting readers world-service watches for its hello-service (one per inbox and token)",
        )?;
        metrics.registry.register(Box::new(watched.clone()))?;
        let watches = Arc::new(Watches::new(settings.watch_cap, watched));
        tokio::spawn(watches::run_checks(
            Arc::downgrade(&watches),
            Arc::downgrade(&store),
            Duration::from_millis(settings.wake_interval_ms),
        ));
        let metrics = web::Data::new(metrics);
        let state = web::Data::new(AppState {
            store: Arc::clone(&store),
            lease_ms: settings.lease_ms,
            require_claim: settings.require_claim,
            settings: settings.clone(),
            uptime: Uptime::default(),
            store_latency,
            store_metrics,
            watches,
        });
        let max_body_bytes = settings.max_body_bytes;
        let shared_app = shared::shared(metrics, web::Data::new(lifecycle.clone()));
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(observability::observe))
                .app_data(state.clone())
                .app_data(extractors::json_config(max_body_bytes))
                .configure(shared_app.clone())
                .configure(routes::configure)
                .default_service(web::to(extractors::not_found))
        });
        Ok(Self {
            service: BoundService::start(
                "world-service",
                server,
                listener,
                socket,
                lifecycle,
                Duration::from_millis(settings.shutdown_drain_ms),
            )?,
            store,
        })
    }

    /// The TCP port it listens on, if `WORLD_LISTEN` asked for one (useful with port 0).
    pub fn port(&self) -> Option<u16> {
        self.service.port()
    }

    /// Serves until SIGTERM/SIGINT, then shuts down gracefully: once the last request is
    /// answered, the store is closed (synced), so that a restart finds every lease and
    /// acknowledgement where it was left.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.service.run_until_stopped().await;
        if let Err(error) = self.store.close().await {
            tracing::error!(error = %error, "closing the store failed");
        }
        served
    }
}
