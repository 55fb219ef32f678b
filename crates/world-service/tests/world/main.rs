//! world-service's integration tests: one binary, one module per concern.
//!
//! - `store_suite`: the behaviour every [`Store`](world_service::store::Store) backend must have,
//!   run against the embedded store and against MongoDB (nx-27017);
//! - `processes`: the real binary killed with SIGKILL and restarted.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod processes;
mod store_suite;
mod support;
