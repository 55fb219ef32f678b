//! hello-service settings, from `HELLO_*` environment variables (and `POD_NAME`).

use std::{net::SocketAddr, num::NonZeroUsize, time::Duration};

use hello_common::{
    config::{self, ensure},
    info::MountedDirs,
    startup::MAX_SOCKET_PATH_BYTES,
    wire::{DEFAULT_PAGE, MAX_PAGE},
};
use serde::{Deserialize, Serialize};

use crate::world_client::UNIX_SCHEME;

/// Every setting, with a default that works locally.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    /// `HELLO_LISTEN`: where the public API listens.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `HELLO_WORLD_URL`: the pod's world-service: `unix:<path>` for the Unix socket it listens
    /// on (`WORLD_LISTEN_SOCKET`; `unix:world.sock` by default), or an HTTP URL when world was
    /// given a TCP address (`WORLD_LISTEN`).
    #[serde(default = "default_world_url")]
    pub world_url: String,
    /// `HELLO_WORLD_TIMEOUT_MS`: longest wait for world-service on one request.
    #[serde(default = "default_world_timeout_ms")]
    pub world_timeout_ms: u64,
    /// `HELLO_MAX_BODY_BYTES`: largest request body; larger is 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// `HELLO_DEFAULT_LIMIT`: hellos per GET when `limit` is not given.
    #[serde(default = "default_limit")]
    pub default_limit: u32,
    /// `HELLO_RATE_LIMIT_PER_SECOND`: sustained requests per second per client to `/hello`
    /// (0 turns rate limiting off).
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: u32,
    /// `HELLO_RATE_LIMIT_BURST`: requests a client may send at once before the rate applies.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// `HELLO_REQUIRE_CLAIM`: `true` makes every inbox read (GET, reliable reads, confirmations)
    /// need a token: a read without one is 401 here, before world-service is asked. Sending is
    /// unchanged. For a service on the open internet, set with world-service's
    /// `WORLD_REQUIRE_CLAIM`, which decides the reads that carry a token (the `public` component
    /// sets both).
    #[serde(default)]
    pub require_claim: bool,
    /// `HELLO_CLAIM_RATE_PER_MINUTE`: sustained claims per minute per client (0: no limit beyond
    /// `HELLO_RATE_LIMIT_*`).
    #[serde(default = "default_claim_rate_per_minute")]
    pub claim_rate_per_minute: u32,
    /// `HELLO_CLAIM_BURST`: claims a client may make at once before that rate applies.
    #[serde(default = "default_claim_burst")]
    pub claim_burst: u32,
    /// `HELLO_SHUTDOWN_DRAIN_MS`: on SIGTERM, how long to keep serving (not ready) before closing.
    #[serde(default = "default_shutdown_drain_ms")]
    pub shutdown_drain_ms: u64,
    /// `HELLO_SETTLE_MS`: how long after a GET's answer is written a reset of its connection
    /// still means it was not delivered (then its hellos come back after the lease). 200 ms is
    /// ample for the pod's Nginx, whose reset arrives within microseconds of its death.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// `HELLO_WAIT_PER_CLIENT`: most reads one client may have waiting (`wait`) at once; more
    /// are 429. Below nginx's connections per client (`limit_conn`, 128).
    #[serde(default = "default_wait_per_client")]
    pub wait_per_client: u32,
    /// `HELLO_WAIT_PER_POD`: most reads waiting at once in this process; more are 503. The
    /// default fits the manifests' memory limits with room to spare: each waiting reader costs
    /// about 22 KiB here (actix-web's buffers of its connection) and 10 KiB in nginx
    /// (`bench/waiting.py`).
    #[serde(default = "default_wait_per_pod")]
    pub wait_per_pod: u32,
    /// `HELLO_CONFIG_DIR`, `HELLO_IMMUTABLE_CONFIG_DIR`, `HELLO_SECRET_DIR`: the pod's
    /// mounted ConfigMaps and Secret, shown in `/info`.
    #[serde(flatten)]
    pub mounted: MountedDirs,
    /// HTTP worker threads; `None`: one per core the process may use (actix-web's default, which
    /// follows a container's CPU limit). Not an environment variable: tests pin it, so that what
    /// they see of batching does not depend on the machine's cores.
    #[serde(skip)]
    pub http_workers: Option<NonZeroUsize>,
}

fn default_claim_rate_per_minute() -> u32 {
    5
}
fn default_claim_burst() -> u32 {
    3
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8081))
}
/// world-service's default socket (`WORLD_LISTEN_SOCKET`), in the same working directory.
fn default_world_url() -> String {
    "unix:world.sock".to_owned()
}
fn default_world_timeout_ms() -> u64 {
    5000
}
fn default_max_body_bytes() -> usize {
    4096
}
fn default_limit() -> u32 {
    DEFAULT_PAGE
}
fn default_rate_limit_per_second() -> u32 {
    50
}
fn default_rate_limit_burst() -> u32 {
    100
}
fn default_shutdown_drain_ms() -> u64 {
    1000
}
fn default_wait_per_client() -> u32 {
    16
}
fn default_wait_per_pod() -> u32 {
    2_000
}
fn default_settle_ms() -> u64 {
    200
}

impl Settings {
    /// Reads and checks the settings; the error names the variable to fix.
    pub fn from_env() -> anyhow::Result<Self> {
        let settings: Self = config::from_env("HELLO_")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the ranges envy cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let socket = self.world_url.strip_prefix(UNIX_SCHEME);
        ensure(
            self.world_url.starts_with("http://")
                || self.world_url.starts_with("https://")
                || socket.is_some_and(|path| (1..=MAX_SOCKET_PATH_BYTES).contains(&path.len())),
            "HELLO_WORLD_URL",
            "must be an http:// or https:// URL, e.g. http://127.0.0.1:8082, or unix: and the path \
             of world's Unix socket (at most 107 bytes), e.g. unix:/run/world/world.sock",
        )?;
        ensure(
            (1..=MAX_PAGE).contains(&self.default_limit),
            "HELLO_DEFAULT_LIMIT",
            &format!("must be between 1 and {MAX_PAGE}"),
        )?;
        ensure(
            (64..=1_048_576).contains(&self.max_body_bytes),
            "HELLO_MAX_BODY_BYTES",
            "must be between 64 and 1048576",
        )?;
        ensure(
            self.world_timeout_ms >= 10,
            "HELLO_WORLD_TIMEOUT_MS",
            "must be at least 10",
        )?;
        ensure(
            (1..=5000).contains(&self.settle_ms),
            "HELLO_SETTLE_MS",
            "must be between 1 and 5000",
        )?;
        ensure(
            (1..=1_000_000).contains(&self.wait_per_pod),
            "HELLO_WAIT_PER_POD",
            "must be between 1 and 1000000",
        )?;
        ensure(
            (1..=self.wait_per_pod).contains(&self.wait_per_client),
            "HELLO_WAIT_PER_CLIENT",
            "must be between 1 and HELLO_WAIT_PER_POD",
        )?;
        ensure(
            self.rate_limit_per_second == 0 || self.rate_limit_burst >= 1,
            "HELLO_RATE_LIMIT_BURST",
            "must be at least 1 when rate limiting is on",
        )?;
        Ok(())
    }

    /// The limits on waiting readers.
    pub fn wait_limits(&self) -> crate::waiting::WaitLimits {
        crate::waiting::WaitLimits {
            per_client: self.wait_per_client,
            per_pod: self.wait_per_pod,
        }
    }

    /// How long to wait for world-service.
    pub fn world_timeout(&self) -> Duration {
        Duration::from_millis(self.world_timeout_ms)
    }

    /// The settle window of GET's answers (`HELLO_SETTLE_MS`).
    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }

    /// Settings for tests: loopback port 0, the given world, rate limiting off.
    pub fn for_tests(world_url: String) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            world_url,
            world_timeout_ms: default_world_timeout_ms(),
            max_body_bytes: default_max_body_bytes(),
            default_limit: default_limit(),
            rate_limit_per_second: 0,
            rate_limit_burst: default_rate_limit_burst(),
            require_claim: false,
            claim_rate_per_minute: 0,
            claim_burst: default_claim_burst(),
            shutdown_drain_ms: 0,
            settle_ms: default_settle_ms(),
            wait_per_client: default_wait_per_client(),
            wait_per_pod: default_wait_per_pod(),
            mounted: MountedDirs::default(),
            http_workers: None,
        }
    }
}

/// Where this process runs, from the Kubernetes downward API (`POD_NAME`, `POD_IP`,
/// `NODE_NAME`, `POD_NAMESPACE`); outside Kubernetes the host name stands in for the pod name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodIdentity {
    pub name: String,
    pub ip: String,
    pub node: String,
    pub namespace: String,
}

impl PodIdentity {
    /// Reads the identity once, at start.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        Self {
            name: pod_name(),
            ip: var("POD_IP"),
            node: var("NODE_NAME"),
            namespace: var("POD_NAMESPACE"),
        }
    }
}

/// The serving pod's name: `POD_NAME` (Kubernetes downward API), else the host name.
pub fn pod_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn world_is_an_http_url_or_a_unix_socket_path() {
        for accepted in [
            "http://127.0.0.1:8082",
            "https://world.example",
            "unix:/run/world/world.sock",
            "unix:relative.sock",
        ] {
            let settings = Settings::for_tests(accepted.to_owned());
            assert!(settings.validate().is_ok(), "{accepted}");
        }
        let too_long = format!("unix:/{}", "w".repeat(107));
        for refused in ["127.0.0.1:8082", "unix:", too_long.as_str(), "ftp://world"] {
            let error = Settings::for_tests(refused.to_owned())
                .validate()
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("HELLO_WORLD_URL "), "{refused}: {error}");
        }
    }
}
