//! What both services share, and nothing more:
//!
//! - [`config`]: settings from prefixed environment variables, errors naming the variable;
//! - [`healthcheck`]: the `healthcheck` subcommand of both binaries;
//! - [`idempotency`]: the [`IdempotencyKey`] a client may send with a POST;
//! - [`info`]: what `/info` shows: config with sources, secret key names, uptime;
//! - [`observability`]: request ids, access logs and Prometheus metrics;
//! - [`name`]: the [`Name`] domain type — the only way a person's name enters the system;
//! - [`wire`]: world-service's internal API: its paths, limits and JSON bodies;
//! - [`problem`]: RFC 9457 `application/problem+json` errors;
//! - [`timestamp`]: milliseconds since the epoch and their RFC 3339 form;
//! - [`token`]: bearer tokens that own a name, their stored hashes, `Authorization` parsing;
//! - [`telemetry`]: `tracing` set-up (`LOG_FORMAT=json` for machines);
//! - [`lifecycle`]: readiness and graceful shutdown on SIGTERM/SIGINT;
//! - [`startup`]: binding, the app data and routes both apps share, serving until stopped;
//! - `testing` (feature `testing`): nx-27017 and child processes for integration tests.

pub mod cli;
pub mod config;
#[cfg(feature = "testing")]
pub mod fuzzing;
pub mod healthcheck;
pub mod idempotency;
pub mod info;
pub mod lifecycle;
pub mod name;
pub mod observability;
pub mod problem;
pub mod startup;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;
pub mod token;
pub mod wire;

pub use idempotency::IdempotencyKey;
pub use name::{Name, NameError, lookalike_key_of_inbox};
pub use problem::Problem;
