//! hello-service's HTTP server: actix-web's app served by actix-server, as `HttpServer` would
//! serve it, except that every accepted connection is first wrapped in a
//! [`WatchedStream`](crate::connection::WatchedStream), so that a GET's answer is acknowledged
//! only when its connection did not fail (see [`crate::settling`]).
//!
//! The HTTP settings are those `HttpServer` uses: keep-alive 5 s, 5 s for a request's head,
//! 1 s to close after an answer, half-closed connections still answered, TCP_NODELAY; plus the
//! shared shutdown timeout and signals left to [`hello_common::lifecycle`].

use std::{fmt, net::TcpListener, num::NonZeroUsize, time::Duration};

use actix_http::{
    HttpService, KeepAlive, Request, Response, body::MessageBody, error::DispatchError,
};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::{
    Error,
    dev::{AppConfig, Extensions, Server, Service, ServiceFactory},
};
use hello_common::startup::SHUTDOWN_TIMEOUT_SECS;
use tokio::net::TcpStream;

use crate::connection::WatchedStream;

/// Starts serving the apps `factory` makes (one per worker, on that worker's thread) on
/// `listener`, with `workers` worker threads (`None`: one per core the process may use).
pub fn serve<F, I, S, B>(
    factory: F,
    listener: TcpListener,
    workers: Option<NonZeroUsize>,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let mut builder = actix_server::Server::build();
    if let Some(workers) = workers {
        builder = builder.workers(workers.get());
    }
    let shutdown = builder.graceful_shutdown_signal();
    Ok(builder
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen("hello-service", listener, move || {
            let shutdown = shutdown.clone();
            let app = factory()
                .into_factory()
                .map_err(|error| error.into().error_response());
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(true)
                .local_addr(address)
                .on_connect_ext(|io: &WatchedStream, data: &mut Extensions| io.register(data))
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|io: TcpStream| async move {
                io.set_nodelay(true).map_err(DispatchError::Io)?;
                let peer = io.peer_addr().ok();
                Ok::<_, DispatchError>((WatchedStream::new(io), peer))
            })
            .and_then(http)
        })?
        .run())
}
