//! world-service settings, from `WORLD_*` environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use hello_common::{
    config::{self, ensure},
    info::MountedDirs,
    startup::MAX_SOCKET_PATH_BYTES,
    wire::LEASE_MS,
};
use serde::{Deserialize, Serialize};

use crate::store::StoreLimits;

/// Every setting, with a default that works locally.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    /// `WORLD_LISTEN`: a TCP address where the internal API listens too (off when unset). Only
    /// for tools that cannot use a Unix socket: any process that reaches a TCP port can call
    /// world, which trusts its caller (hello-service) with token hashes.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// `WORLD_LISTEN_SOCKET`: the Unix socket where the internal API listens
    /// ([`DEFAULT_SOCKET`] when neither this nor `WORLD_LISTEN` is set). hello-service talks to
    /// world through it (`HELLO_WORLD_URL=unix:<path>`), and world's probes use it
    /// (`world-service healthcheck`). The socket is made readable and writable by its owner only
    /// (both services run as the same user, and no other user of the pod or the machine can open
    /// it); a stale one left by a crash is replaced.
    #[serde(default)]
    pub listen_socket: Option<PathBuf>,
    /// `WORLD_DATA_DIR`: where the embedded store keeps its file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `WORLD_MONGODB_URI`: when set, hellos live in MongoDB instead of the embedded store.
    #[serde(default)]
    pub mongodb_uri: Option<String>,
    /// `WORLD_MONGODB_DATABASE`: the MongoDB database.
    #[serde(default = "default_database")]
    pub mongodb_database: String,
    /// `WORLD_STORE_CACHE_MB`: the embedded store's own page cache, in MiB.
    #[serde(default = "default_store_cache_mb")]
    pub store_cache_mb: usize,
    /// `WORLD_STORE_SYNC`: `false` makes the embedded store answer sends before they are synced
    /// to disk (synced only when the writer is idle, or at shutdown). Only for measuring what
    /// syncing costs: a crash of the machine can then lose acknowledged hellos.
    #[serde(default = "default_store_sync")]
    pub store_sync: bool,
    /// `WORLD_INBOX_CAP`: most hellos that may wait in one inbox.
    #[serde(default = "default_inbox_cap")]
    pub inbox_cap: u64,
    /// `WORLD_STORE_CAP`: most hellos that may wait in all inboxes together.
    #[serde(default = "default_store_cap")]
    pub store_cap: u64,
    /// `WORLD_IDEMPOTENCY_CAP`: most idempotency keys remembered at once.
    #[serde(default = "default_idempotency_cap")]
    pub idempotency_cap: u64,
    /// `WORLD_CLAIM_CAP`: most names that may be claimed at once.
    #[serde(default = "default_claim_cap")]
    pub claim_cap: u64,
    /// `WORLD_LEASE_RECORD_CAP`: most leases kept at once (running, or remembered after their end
    /// to answer a confirmation for as long as idempotency keys live). At the cap a read that
    /// would take hellos is 503 with `Retry-After`; no record is dropped early.
    #[serde(default = "default_lease_record_cap")]
    pub lease_record_cap: u64,
    /// `WORLD_LEASE_MS`: how long hellos taken by a read stay hidden without an acknowledgement
    /// before they are delivered again.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// `WORLD_CLAIM_LEASE_MS`: the name of `WORLD_LEASE_MS` before 0.2.0, still read so that
    /// existing deployments keep their setting (with a warning at start-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_lease_ms: Option<u64>,
    /// `WORLD_IDEMPOTENCY_TTL_SECS`: how long an idempotency key is remembered.
    #[serde(default = "default_idempotency_ttl_secs")]
    pub idempotency_ttl_secs: u64,
    /// `WORLD_MAX_BODY_BYTES`: largest request body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// `WORLD_REQUIRE_CLAIM`: `true` makes every read of an unclaimed inbox (GET, reliable reads,
    /// confirmations) a 401: only owners read. world-service's own setting, never its caller's;
    /// the `public` component sets it with hello-service's `HELLO_REQUIRE_CLAIM`.
    #[serde(default)]
    pub require_claim: bool,
    /// `WORLD_SHUTDOWN_DRAIN_MS`: on SIGTERM, how long to keep serving (not ready) before closing.
    /// Longer than hello-service's, so that the pod's hello can finish its requests.
    #[serde(default = "default_shutdown_drain_ms")]
    pub shutdown_drain_ms: u64,
    /// `WORLD_WAKE_INTERVAL_MS`: how often the store is asked, for every reader waiting on this
    /// pod together, whether any of them can be answered (a hello sent through another replica,
    /// a lease that ran out, a claim rotated or released). A hello sent through this pod wakes
    /// its readers at once; this bounds the wait for everything else.
    #[serde(default = "default_wake_interval_ms")]
    pub wake_interval_ms: u64,
    /// `WORLD_WATCH_CAP`: most inboxes and tokens world watches for its hello-service's waiting
    /// readers, in all its sessions; beyond it hello's additions are refused and those readers
    /// are woken by nothing (they wait out their time). At least twice hello's
    /// `HELLO_WAIT_PER_POD`: a restarted hello's old session is kept beside the new one until it
    /// is forgotten.
    #[serde(default = "default_watch_cap")]
    pub watch_cap: usize,
    /// `WORLD_CONFIG_DIR`, `WORLD_IMMUTABLE_CONFIG_DIR`, `WORLD_SECRET_DIR`: the pod's
    /// mounted ConfigMaps and Secret, shown in `/info`.
    #[serde(flatten)]
    pub mounted: MountedDirs,
}

/// The longest expiry MongoDB accepts for a TTL index (`expireAfterSeconds`, a 32-bit integer).
const MAX_TTL_INDEX_SECS: u64 = i32::MAX as u64;

/// Settings whose values are secret: `/v1/info` shows their names, never the value.
pub const SECRET_SETTINGS: &[&str] = &["mongodb_uri"];

/// Where world listens when neither `WORLD_LISTEN_SOCKET` nor `WORLD_LISTEN` is set: beside
/// hello-service's default `HELLO_WORLD_URL` (`unix:world.sock`), in the working directory.
pub const DEFAULT_SOCKET: &str = "world.sock";
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_database() -> String {
    "hello".to_owned()
}
fn default_store_cache_mb() -> usize {
    4
}
fn default_store_sync() -> bool {
    true
}
fn default_store_cap() -> u64 {
    1_000_000
}
fn default_idempotency_cap() -> u64 {
    1_000_000
}
fn default_lease_record_cap() -> u64 {
    1_000_000
}
fn default_claim_cap() -> u64 {
    1_000_000
}
fn default_inbox_cap() -> u64 {
    10_000
}
fn default_lease_ms() -> u64 {
    30_000
}
fn default_idempotency_ttl_secs() -> u64 {
    24 * 60 * 60
}
fn default_max_body_bytes() -> usize {
    4096
}
fn default_wake_interval_ms() -> u64 {
    250
}
fn default_watch_cap() -> usize {
    20_000
}
fn default_shutdown_drain_ms() -> u64 {
    2000
}

impl Settings {
    /// Reads and checks the settings; the error names the variable to fix. Also returns the
    /// warnings to log once logging is set up (variables read under a name that is going away).
    pub fn from_env() -> anyhow::Result<(Self, Vec<String>)> {
        let mut settings: Self = config::from_env("WORLD_")?;
        let warnings = settings.adopt_old_names(std::env::var_os("WORLD_LEASE_MS").is_some());
        if settings.listen.is_none() && settings.listen_socket.is_none() {
            settings.listen_socket = Some(PathBuf::from(DEFAULT_SOCKET));
        }
        settings.validate()?;
        Ok((settings, warnings))
    }

    /// Applies variables still read under their names before 0.2.0, unless the new name is set
    /// too (`lease_ms_set`); returns a warning for each.
    pub fn adopt_old_names(&mut self, lease_ms_set: bool) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(old) = self.claim_lease_ms {
            if lease_ms_set {
                warnings.push(format!(
                    "WORLD_CLAIM_LEASE_MS={old} is ignored: WORLD_LEASE_MS is set and replaces it; \
                     remove WORLD_CLAIM_LEASE_MS"
                ));
            } else {
                self.lease_ms = old;
                warnings.push(
                    "WORLD_CLAIM_LEASE_MS is read as WORLD_LEASE_MS; it will stop being read in a \
                     later release: rename it to WORLD_LEASE_MS"
                        .to_owned(),
                );
            }
        }
        warnings
    }

    /// Where `world-service healthcheck` reaches the running service: its socket, as hello-service
    /// does; its TCP address only when it has no socket.
    pub fn probe_target(&self) -> hello_common::healthcheck::Target {
        use hello_common::healthcheck::Target;
        match (&self.listen_socket, self.listen) {
            (None, Some(address)) => Target::Tcp(address),
            (socket, _) => Target::Unix(
                socket
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            ),
        }
    }

    /// Checks the ranges envy cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure(
            self.listen.is_some() || self.listen_socket.is_some(),
            "WORLD_LISTEN_SOCKET",
            "must be set (or WORLD_LISTEN): world-service must listen somewhere",
        )?;
        if let Some(socket) = &self.listen_socket {
            let length = socket.as_os_str().len();
            ensure(
                (1..=MAX_SOCKET_PATH_BYTES).contains(&length),
                "WORLD_LISTEN_SOCKET",
                "must be a path of at most 107 bytes, e.g. /run/world/world.sock",
            )?;
        }
        ensure(self.inbox_cap >= 1, "WORLD_INBOX_CAP", "must be at least 1")?;
        ensure(self.store_cap >= 1, "WORLD_STORE_CAP", "must be at least 1")?;
        ensure(
            self.idempotency_cap >= 1,
            "WORLD_IDEMPOTENCY_CAP",
            "must be at least 1",
        )?;
        ensure(self.claim_cap >= 1, "WORLD_CLAIM_CAP", "must be at least 1")?;
        ensure(
            self.lease_record_cap >= 1,
            "WORLD_LEASE_RECORD_CAP",
            "must be at least 1",
        )?;
        ensure(
            (1..=65_536).contains(&self.store_cache_mb),
            "WORLD_STORE_CACHE_MB",
            "must be between 1 and 65536",
        )?;
        ensure(
            LEASE_MS.contains(&self.lease_ms),
            if self.claim_lease_ms == Some(self.lease_ms) {
                "WORLD_CLAIM_LEASE_MS"
            } else {
                "WORLD_LEASE_MS"
            },
            &format!(
                "must be between {} and {} (one hour)",
                LEASE_MS.start(),
                LEASE_MS.end()
            ),
        )?;
        ensure(
            (1..=MAX_TTL_INDEX_SECS).contains(&self.idempotency_ttl_secs),
            "WORLD_IDEMPOTENCY_TTL_SECS",
            &format!(
                "must be between 1 and {MAX_TTL_INDEX_SECS} (the most a MongoDB TTL index takes)"
            ),
        )?;
        ensure(
            self.max_body_bytes >= 64,
            "WORLD_MAX_BODY_BYTES",
            "must be at least 64",
        )?;
        ensure(
            (10..=10_000).contains(&self.wake_interval_ms),
            "WORLD_WAKE_INTERVAL_MS",
            "must be between 10 and 10000",
        )?;
        ensure(
            (1..=1_000_000).contains(&self.watch_cap),
            "WORLD_WATCH_CAP",
            "must be between 1 and 1000000",
        )?;
        if let Some(uri) = &self.mongodb_uri {
            ensure(
                uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"),
                "WORLD_MONGODB_URI",
                "must start with mongodb:// or mongodb+srv://",
            )?;
            if let Some(problem) = uri_credentials_problem(uri) {
                // Never the URI itself in the message: it may hold a password.
                anyhow::bail!("WORLD_MONGODB_URI {problem}");
            }
            ensure(
                self.store_sync,
                "WORLD_STORE_SYNC",
                "applies to the embedded store only: MongoDB writes always wait for the journal",
            )?;
        }
        ensure(
            !self.mongodb_database.is_empty()
                && !self.mongodb_database.contains(['/', '.', ' ', '$']),
            "WORLD_MONGODB_DATABASE",
            "must be a MongoDB database name (no '/', '.', ' ' or '$')",
        )?;
        Ok(())
    }

    /// The limits every store enforces.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            inbox_cap: self.inbox_cap,
            store_cap: self.store_cap,
            idempotency_cap: self.idempotency_cap,
            idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs),
            claim_cap: self.claim_cap,
            lease_record_cap: self.lease_record_cap,
        }
    }

    /// Settings for tests: a Unix socket in the given data directory (`world.sock`, as in the pod
    /// no TCP port), defaults elsewhere.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Self {
            listen: None,
            listen_socket: Some(data_dir.join(DEFAULT_SOCKET)),
            data_dir,
            mongodb_uri: None,
            mongodb_database: default_database(),
            store_cache_mb: default_store_cache_mb(),
            store_sync: default_store_sync(),
            inbox_cap: default_inbox_cap(),
            store_cap: default_store_cap(),
            idempotency_cap: default_idempotency_cap(),
            claim_cap: default_claim_cap(),
            lease_record_cap: default_lease_record_cap(),
            lease_ms: default_lease_ms(),
            claim_lease_ms: None,
            idempotency_ttl_secs: default_idempotency_ttl_secs(),
            max_body_bytes: default_max_body_bytes(),
            require_claim: false,
            wake_interval_ms: default_wake_interval_ms(),
            watch_cap: default_watch_cap(),
            shutdown_drain_ms: 0,
            mounted: MountedDirs::default(),
        }
    }
}

/// What is wrong with the credentials in a MongoDB URI, if anything. In Kubernetes the URI is
/// composed from a Secret (`$(MONGODB_PASSWORD)`): a missing key leaves the reference unexpanded,
/// an empty one leaves an empty password, and a start with either would fail later, at the first
/// store call, with a less helpful message (or, without authentication on the server, not at all).
fn uri_credentials_problem(uri: &str) -> Option<&'static str> {
    if uri.contains("$(") {
        return Some(
            "holds an unexpanded $(VARIABLE): a variable it refers to is not set \
             (is a key missing from the Secret it comes from?)",
        );
    }
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let before_query = rest.split('?').next().unwrap_or(rest);
    let (userinfo, _hosts) = before_query.rsplit_once('@')?;
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    if user.is_empty() {
        return Some("has credentials with an empty user name");
    }
    if password == Some("") {
        return Some(
            "has an empty password: the Secret it comes from is empty (see the \
             troubleshooting section of docs/deploy.md)",
        );
    }
    let needs_encoding = |part: &str| part.contains(['/', '?', '#', '[', ']', '@', ':']);
    if needs_encoding(user) || password.is_some_and(needs_encoding) {
        return Some(
            "has a user name or password with a character that must be percent-encoded \
             (one of / ? # [ ] @ :)",
        );
    }
    None
}

#[cfg(test)]
mod tests;
