//! Readiness and graceful shutdown, the same in both services.
//!
//! On SIGTERM (or Ctrl-C) a service first turns `/readyz` to 503 so that Kubernetes (or the local
//! load balancer) stops sending it new requests, waits `drain_delay` for that to take effect, then
//! stops accepting connections and lets in-flight requests finish (up to actix-web's shutdown
//! timeout) before exiting.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::dev::Server;

use crate::Problem;

/// Whether this process wants new work. Cloning shares the flag.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    /// Tells those who wait (waiting reads, held calls) that draining began.
    began: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            draining: Arc::default(),
            began: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Lifecycle {
    /// Resolves once shutdown has begun (at once if it already has): what a held request waits
    /// on beside its own end, so that it is answered before the drain ends.
    pub async fn draining(&self) {
        let mut began = self.began.subscribe();
        // Errs only if the sender is gone, which `self` holds.
        let _ = began.wait_for(|began| *began).await;
    }

    /// True once shutdown has begun: readiness must then answer 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Marks the process as shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.began.send_replace(true);
    }

    /// For `/readyz`: a 503 problem once `service` is shutting down, so that traffic moves away
    /// before the listener closes.
    pub fn refuse_if_draining(&self, service: &str, retry_after: Duration) -> Result<(), Problem> {
        if self.is_draining() {
            return Err(Problem::unavailable(
                format!("{service} is shutting down"),
                retry_after,
            ));
        }
        Ok(())
    }
}

/// Runs `server` until SIGTERM or SIGINT, then shuts it down gracefully as described above.
/// The server must have been built with `.disable_signals()` so that this owns the signals.
pub async fn run_until_stopped(
    server: Server,
    lifecycle: Lifecycle,
    drain_delay: Duration,
) -> std::io::Result<()> {
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    wait_for_stop_signal().await;
    tracing::info!(
        drain_delay_ms = drain_delay.as_millis() as u64,
        "stop signal received: readiness is now false; finishing in-flight requests"
    );
    lifecycle.start_draining();
    tokio::time::sleep(drain_delay).await;
    handle.stop(true).await;
    let result = server_task.await.unwrap_or_else(|join_error| {
        Err(std::io::Error::other(format!(
            "server task failed: {join_error}"
        )))
    });
    tracing::info!("stopped");
    result
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
