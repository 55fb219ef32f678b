//! hello-service: the public REST API of Scalable Hello World.
//!
//! It validates input, applies per-client rate limits and forwards to the pod's world-service
//! over localhost, which owns the data. Layout:
//! - [`config`]: `HELLO_*` settings;
//! - [`startup`]: the [`startup::Application`] that binds its listener and serves;
//! - [`routes`]: the public API, probes and `/openapi.json`;
//! - [`world_client`]: the pooled client of world-service;
//! - [`rate_limit`]: per-client token buckets;
//! - [`receipts`]: when a read's answer counts as received, so that its claim is acknowledged;
//! - [`error`]: the problems hello-service raises itself.

pub mod config;
pub mod error;
pub mod rate_limit;
pub mod receipts;
pub mod routes;
pub mod startup;
pub mod world_client;
