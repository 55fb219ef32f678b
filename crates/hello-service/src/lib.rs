//! hello-service: the public REST API of Scalable Hello World.
//!
//! It validates input, applies per-client rate limits and forwards to the pod's world-service
//! over its Unix socket; world owns the data. Layout:
//! - [`config`]: `HELLO_*` settings;
//! - [`startup`]: the [`startup::Application`] that binds its listener and serves;
//! - [`routes`]: the public API, probes and `/openapi.json`;
//! - [`world_client`]: what hello-service asks of world-service, over its Unix socket;
//! - [`batching`]: sends, leases, confirmations and acknowledgements that arrive together go to
//!   world-service in one request (always this path, traced or not);
//! - [`world_error`]: why a call to world-service failed, and what the client is told;
//! - [`rate_limit`]: per-client token buckets;
//! - [`auth`]: bearer tokens at the edge: parsed once, refused in query strings, failures charged;
//! - [`server`]: the HTTP server, with every connection a [`connection::WatchedStream`];
//! - [`connection`]: what is seen of each connection: resets, writes the peer has not taken;
//! - [`settling`]: when a GET's answer is delivered, so that its lease is acknowledged;
//! - [`waiting`]: reads that wait for a hello (`wait`), and the one watch with world-service
//!   that wakes them.

pub mod auth;
pub mod batching;
pub mod config;
pub mod connection;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod settling;
pub mod startup;
pub mod waiting;
pub mod world_client;
pub mod world_error;
