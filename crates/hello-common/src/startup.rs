//! What both services' start-up has in common: binding the listener, the app data and routes
//! every app registers, and serving until a stop signal.
//!
//! Each service's own `startup` builds its state and routes, then hands its actix-web server to
//! a [`BoundService`], which owns the graceful shutdown described in [`crate::lifecycle`].

use std::{
    net::{SocketAddr, TcpListener},
    os::unix::{
        fs::{DirBuilderExt, FileTypeExt, PermissionsExt},
        net::UnixListener,
    },
    path::Path,
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

/// Raises this process's limit of open files to the most it may have (the hard limit), as
/// servers do at start: each waiting reader holds a connection from nginx, and the soft limit is
/// often 1,024. Returns the limit now in force (`u64::MAX`: unlimited).
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%error, "cannot raise the limit of open files to its hard limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Binds `address` (port 0 picks a free one, as the tests do); the error names the `variable`
/// that set the address.
pub fn bind(address: SocketAddr, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).with_context(|| format!("cannot listen on {address} ({variable})"))
}

/// The longest path a Unix socket can have on Linux: `sun_path` holds 108 bytes, the last a NUL.
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Binds a Unix socket at `path` (`variable` names the setting in errors), readable and
/// writable by this user only, from its first moment: it is bound in a folder of its own (mode
/// 0700, beside `path`), made 0600, then moved to `path`, so that no other user can connect while
/// its mode is still the umask's. A socket file already there is a stale one (a process that
/// crashed, or a container restarted in the same pod volume): it is replaced. Anything else at
/// that path is left alone, and binding fails.
pub fn bind_socket(path: &Path, variable: &str) -> anyhow::Result<UnixListener> {
    let shown = path.display();
    if let Ok(metadata) = std::fs::symlink_metadata(path)
        && metadata.file_type().is_socket()
    {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot replace the stale socket {shown} ({variable})"))?;
    } else if std::fs::symlink_metadata(path).is_ok() {
        anyhow::bail!("cannot listen on {shown} ({variable}): something else is at that path");
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // Named by the process, so that a restarted container (often the same PID) finds its own.
    let private = parent.join(format!(".{}", std::process::id()));
    if std::fs::symlink_metadata(&private).is_ok() {
        std::fs::remove_dir_all(&private).with_context(|| {
            format!(
                "cannot remove {} left by an earlier start ({variable})",
                private.display()
            )
        })?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| {
            format!(
                "cannot make {} beside {shown} ({variable})",
                private.display()
            )
        })?;
    let staged = private.join("s");
    let bound = (|| {
        anyhow::ensure!(
            staged.as_os_str().len() <= MAX_SOCKET_PATH_BYTES,
            "{shown}'s folder is too deep to bind the socket privately first: use a shorter path"
        );
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound.with_context(|| format!("cannot listen on {shown} ({variable})"))
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
    port: Option<u16>,
    server: Server,
    lifecycle: Lifecycle,
    drain_delay: Duration,
}

impl BoundService {
    /// Starts `server` on a TCP `listener`, a Unix `socket`, or both, with the options both
    /// services share (signals handled here, [`SHUTDOWN_TIMEOUT_SECS`]). On SIGTERM,
    /// `lifecycle` turns readiness false for `drain_delay` before the listeners close.
    pub fn start<F, I, S, B>(
        service: &str,
        server: HttpServer<F, I, S, B>,
        listener: Option<TcpListener>,
        socket: Option<UnixListener>,
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
        anyhow::ensure!(
            listener.is_some() || socket.is_some(),
            "{service} has nowhere to listen: neither a TCP address nor a Unix socket"
        );
        let mut server = server
            .disable_signals()
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
        let mut port = None;
        if let Some(listener) = listener {
            let address = listener.local_addr()?;
            tracing::info!(%address, port = address.port(), "{service} listening");
            port = Some(address.port());
            server = server.listen(listener)?;
        }
        if let Some(socket) = socket {
            if let Some(path) = socket.local_addr()?.as_pathname() {
                tracing::info!(socket = %path.display(), "{service} listening on a Unix socket");
            }
            server = server.listen_uds(socket)?;
        }
        Ok(Self {
            port,
            server: server.run(),
            lifecycle,
            drain_delay,
        })
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
            port: Some(address.port()),
            server,
            lifecycle,
            drain_delay,
        }
    }

    /// The TCP port it listens on, if any (useful with port 0).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then shuts down gracefully (see [`crate::lifecycle`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        lifecycle::run_until_stopped(self.server, self.lifecycle, self.drain_delay).await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::{
        fs::{FileTypeExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    };

    use super::bind_socket;

    #[test]
    fn a_stale_socket_is_replaced_and_the_new_one_is_its_owners_only() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("world.sock");
        // A socket whose listener is gone: what a crashed world-service leaves behind.
        drop(UnixListener::bind(&path).unwrap());
        assert!(UnixStream::connect(&path).is_err());
        let listener = bind_socket(&path, "WORLD_LISTEN_SOCKET").unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert!(metadata.file_type().is_socket());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        UnixStream::connect(&path).unwrap();
        drop(listener);
    }

    /// Under umask 000 a socket is bound 0777: bound where it is to live, any local user could
    /// connect before it is made 0600. So it is bound in a 0700 folder and moved into place once
    /// 0600 (the order is in `bind_socket`; no test can see inside that moment): this checks that
    /// it arrives 0600, answers, and leaves no folder behind.
    #[test]
    fn the_socket_arrives_its_owners_only_and_leaves_no_private_folder() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("world.sock");
        let listener = bind_socket(&path, "WORLD_LISTEN_SOCKET").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let left: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left, ["world.sock"], "the private folder is gone");
        UnixStream::connect(&path).unwrap();
        drop(listener);
    }

    #[test]
    fn anything_else_at_the_path_is_left_untouched() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("world.sock");
        std::fs::write(&path, "not a socket").unwrap();
        let error = format!(
            "{:#}",
            bind_socket(&path, "WORLD_LISTEN_SOCKET").unwrap_err()
        );
        assert!(error.contains("WORLD_LISTEN_SOCKET"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    }
}
