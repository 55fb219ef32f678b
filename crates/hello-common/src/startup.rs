//! What both services' start-up has in common: binding the listener, the app data and routes
//! every app registers, and serving until a stop signal.
//!
//! Each service's own `startup` builds its state and routes, then hands its actix-web server to
//! a [`BoundService`], which owns the graceful shutdown described in [`crate::lifecycle`].

use std::{
    net::{SocketAddr, TcpListener},
    time::Duration,
};

use actix_http::Request;
use actix_service::IntoServiceFactory;
use actix_web::{
    HttpResponse, HttpServer,
    body::MessageBody,
    dev::{AppConfig, Response, Server, Service, ServiceFactory},
    web,
};
use anyhow::Context;

use crate::{
    lifecycle::{self, Lifecycle},
    observability::Metrics,
    problem::extractors::{self, resource},
};

/// How long in-flight requests may take to finish once a service stops accepting connections
/// (actix-web's `HttpServer::shutdown_timeout`).
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Binds `address` (port 0 picks a free one, as the tests do); the error names the `variable`
/// that set the address.
pub fn bind(address: SocketAddr, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).with_context(|| format!("cannot listen on {address} ({variable})"))
}

/// For `App::configure` in both services: the metrics and lifecycle every handler may ask for,
/// problem+json answers for malformed queries and paths, and `/healthz`.
pub fn shared(
    metrics: web::Data<Metrics>,
    lifecycle: web::Data<Lifecycle>,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |config| {
        config
            .app_data(metrics.clone())
            .app_data(lifecycle.clone())
            .app_data(extractors::query_config())
            .app_data(extractors::path_config())
            .service(resource("/healthz", "GET").route(web::get().to(healthz)));
    }
}

/// Alive: the process answers. Kubernetes restarts the container when this fails.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "alive" }))
}

/// A service whose listener is bound and whose server is built, not yet serving.
#[allow(missing_debug_implementations)] // actix-web's Server is not Debug
pub struct BoundService {
    port: u16,
    server: Server,
    lifecycle: Lifecycle,
    drain_delay: Duration,
}

impl BoundService {
    /// Starts `server` on `listener` with the options both services share (signals handled here,
    /// [`SHUTDOWN_TIMEOUT_SECS`]). On SIGTERM, `lifecycle` turns readiness false for
    /// `drain_delay` before the listener closes.
    pub fn start<F, I, S, B>(
        service: &str,
        server: HttpServer<F, I, S, B>,
        listener: TcpListener,
        lifecycle: Lifecycle,
        drain_delay: Duration,
    ) -> anyhow::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: std::fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let address = listener.local_addr()?;
        let server = server
            .disable_signals()
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
            .listen(listener)?
            .run();
        Ok(Self::serving(
            service,
            server,
            address,
            lifecycle,
            drain_delay,
        ))
    }

    /// A server already started on `address` (built without actix-web's `HttpServer`, with
    /// signals disabled and [`SHUTDOWN_TIMEOUT_SECS`]).
    pub fn serving(
        service: &str,
        server: Server,
        address: SocketAddr,
        lifecycle: Lifecycle,
        drain_delay: Duration,
    ) -> Self {
        tracing::info!(%address, port = address.port(), "{service} listening");
        Self {
            port: address.port(),
            server,
            lifecycle,
            drain_delay,
        }
    }

    /// The port it listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then shuts down gracefully (see [`crate::lifecycle`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        lifecycle::run_until_stopped(self.server, self.lifecycle, self.drain_delay).await
    }
}
