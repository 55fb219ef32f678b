//! Spawning hello-service and world-service for a test.

use std::{net::SocketAddr, num::NonZeroUsize, path::PathBuf, time::Duration};

use actix_web::{App, HttpServer, dev::ServerHandle, web};
use hello_common::testing::{ChildService, free_port};
use hello_service::{config::Settings as HelloSettings, startup::Application as Hello};
use serde_json::Value;
use tempfile::TempDir;
use world_service::{config::Settings as WorldSettings, startup::Application as World};

/// A hello-service in this process, in front of a world-service.
#[derive(Debug)]
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    _data: Option<TempDir>,
}

/// Options for [`spawn_app_with`].
#[derive(Debug, Clone)]
pub struct Options {
    pub inbox_cap: u64,
    pub lease_ms: u64,
    pub rate_limit: Option<(u32, u32)>,
    /// `HELLO_SETTLE_MS`; the service's default when `None`.
    pub settle_ms: Option<u64>,
    /// `HELLO_WORLD_TIMEOUT_MS`; the service's default when `None`.
    pub world_timeout_ms: Option<u64>,
    /// `HELLO_REQUIRE_CLAIM` and `WORLD_REQUIRE_CLAIM`, as the `public` component sets them.
    pub require_claim: bool,
    /// `HELLO_CLAIM_RATE_PER_MINUTE` and `HELLO_CLAIM_BURST`; no claim limit when `None`.
    pub claim_rate: Option<(u32, u32)>,
    /// hello-service's HTTP workers; one per core when `None`.
    pub http_workers: Option<NonZeroUsize>,
    /// `HELLO_WAIT_PER_CLIENT` and `HELLO_WAIT_PER_POD`; the defaults when `None`.
    pub wait_limits: Option<(u32, u32)>,
    /// world's MongoDB (URI, database) instead of an embedded store.
    pub mongodb: Option<(String, String)>,
    /// `WORLD_WAKE_INTERVAL_MS`; the default when `None`.
    pub wake_interval_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inbox_cap: 10_000,
            lease_ms: 30_000,
            rate_limit: None,
            settle_ms: None,
            world_timeout_ms: None,
            require_claim: false,
            claim_rate: None,
            http_workers: None,
            wait_limits: None,
            mongodb: None,
            wake_interval_ms: None,
        }
    }
}

/// hello + world (embedded store in a temp dir), both in this process on port 0; hello talks to
/// world over world's Unix socket, as in the pod.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// Like [`spawn_app`] with other limits.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = WorldSettings::for_tests(data.path().to_path_buf());
    settings.inbox_cap = options.inbox_cap;
    settings.lease_ms = options.lease_ms;
    settings.require_claim = options.require_claim;
    if let Some((uri, database)) = &options.mongodb {
        settings.mongodb_uri = Some(uri.clone());
        settings.mongodb_database = database.clone();
    }
    if let Some(interval) = options.wake_interval_ms {
        settings.wake_interval_ms = interval;
    }
    let socket = data.path().join("world.sock");
    settings.listen_socket = Some(socket.clone());
    let world = World::build(settings).await.expect("build world-service");
    let world_url = format!("unix:{}", socket.display());
    tokio::spawn(world.run_until_stopped());
    let mut app = spawn_hello(world_url, &options);
    app._data = Some(data);
    app
}

/// hello-service alone, in this process, pointing at `world_url` (its options: the rate limit,
/// the settle window and the world timeout).
pub fn spawn_hello(world_url: String, options: &Options) -> TestApp {
    let mut settings = HelloSettings::for_tests(world_url);
    if let Some((per_second, burst)) = options.rate_limit {
        settings.rate_limit_per_second = per_second;
        settings.rate_limit_burst = burst;
    }
    if let Some(settle_ms) = options.settle_ms {
        settings.settle_ms = settle_ms;
    }
    if let Some(timeout_ms) = options.world_timeout_ms {
        settings.world_timeout_ms = timeout_ms;
    }
    settings.require_claim = options.require_claim;
    settings.http_workers = options.http_workers;
    if let Some((per_client, per_pod)) = options.wait_limits {
        settings.wait_per_client = per_client;
        settings.wait_per_pod = per_pod;
    }
    if let Some((per_minute, burst)) = options.claim_rate {
        settings.claim_rate_per_minute = per_minute;
        settings.claim_burst = burst;
    }
    let hello = Hello::build(&settings).expect("build hello-service");
    let url = format!("http://127.0.0.1:{}", hello.port());
    tokio::spawn(hello.run_until_stopped());
    TestApp::at(url)
}

/// A stand-in world-service on a free port of 127.0.0.1 (one worker), serving what `routes`
/// sets up; returns its URL and the handle that stops it.
pub fn spawn_stand_in_world<F>(routes: F) -> (String, ServerHandle)
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let stop = server.handle();
    tokio::spawn(server);
    (url, stop)
}

/// The world-service binary: built beside hello-service's by `cargo test --workspace`.
pub fn world_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_hello-service")).with_file_name("world-service");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p world-service` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A world-service process with the given extra environment, on a free loopback port.
pub fn start_world_process(env: &[(&str, String)]) -> ChildService {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut all = vec![
        ("WORLD_LISTEN", address.to_string()),
        ("WORLD_SHUTDOWN_DRAIN_MS", "0".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    all.extend(env.iter().map(|(name, value)| (*name, value.clone())));
    ChildService::start(&world_binary(), &all, address)
}

impl TestApp {
    /// A hello-service already running at `url` (a child process).
    pub fn at(url: String) -> Self {
        Self {
            url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _data: None,
        }
    }

    /// world-service's Unix socket, when [`spawn_app`] started one.
    pub fn world_socket(&self) -> Option<PathBuf> {
        self._data
            .as_ref()
            .map(|data| data.path().join("world.sock"))
    }

    /// `POST /hello/{to}` with `{"from": from}`.
    pub async fn say(&self, from: &str, to: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/hello/{to}", self.url))
            .json(&serde_json::json!({ "from": from }))
            .send()
            .await
            .expect("POST /hello")
    }

    /// `GET /hello/{name}` (path as given, so tests can send encoded forms).
    pub async fn read(&self, name: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/hello/{name}", self.url))
            .send()
            .await
            .expect("GET /hello")
    }

    /// `GET /hello/{name}` expecting 200; the JSON body.
    pub async fn inbox(&self, name: &str) -> Value {
        let response = self.read(name).await;
        assert_eq!(response.status(), 200, "GET /hello/{name}");
        response.json().await.expect("inbox JSON")
    }
}

/// The answer's `Content-Type`, or "" when it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// GETs `url` and reads its JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("GET");
    response.json().await.expect("a JSON body")
}

/// Asserts a problem+json answer with `status`; returns the problem.
pub async fn expect_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    assert_eq!(content_type(&response), "application/problem+json");
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["status"], status);
    for member in ["type", "title", "detail"] {
        assert!(
            problem[member]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "problem lacks {member}: {problem}"
        );
    }
    problem
}
