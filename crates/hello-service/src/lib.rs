//! hello-service: the public REST API of Scalable Hello World.
//!
//! It validates input, applies per-client rate limits and forwards to the pod's world-service
//! over localhost, which owns the data. Layout:
//! - [`config`]: `HELLO_*` settings;
//! - [`startup`]: the [`startup::Application`] that binds its listener and serves;
//! - [`routes`]: the public API, probes and `/openapi.json`;
//! - [`world_client`]: the pooled client of world-service;
//! - [`rate_limit`]: per-client token buckets;
//! - [`settling`]: when a GET's answer has settled, so that its lease is acknowledged.

pub mod config;
pub mod rate_limit;
pub mod routes;
pub mod settling;
pub mod startup;
pub mod world_client;
