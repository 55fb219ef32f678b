//! world-service's integration tests: one binary, one module per concern.
//!
//! - `backends`: `on_every_backend!`, which runs a suite on the embedded store and on MongoDB;
//! - `batch_commands`: on MongoDB a batch of 1, 8 or 32 calls costs the same store commands, and
//!   an unreadable claim fails only the calls that need it;
//! - `batches`: batches of sends, leases and confirmations, each call judged on its own, on each backend;
//! - `calls`: one send, lease or confirmation through the batch routes, as a status and a body;
//! - `binary`: the real binary started for a test, and one-call helpers;
//! - `caps_suite`: the store's caps on every backend (as `store_suite`);
//! - `claims_suite`: claimed names on every backend (as `store_suite`);
//! - `leases_suite`: confirmations and leases across a restart on every backend (as `store_suite`);
//! - `delivered_records`: on MongoDB a lease marks the records of the keyed hellos it takes;
//! - `store_suite`: the behaviour every [`Store`](world_service::store::Store) backend must have,
//!   run against the embedded store and against MongoDB (nx-27017);
//! - `housekeeping`: a busy embedded store still forgets what is due;
//! - `lost_answers`: MongoDB writes whose answer was lost are unknown outcomes, safely retried;
//! - `metrics`: the store's metrics from the real binary's `/metrics`;
//! - `ownership`: claimed names enforced by two real replicas on one MongoDB;
//! - `processes`: the real binary killed with SIGKILL and restarted;
//! - `release`: a release on MongoDB against sends racing it and hellos of earlier releases;
//! - `settings`: the binary's settings, start-up refusals, file modes and world's own policy;
//! - `rekey`: claims stored under older look-alike keys move to today's keys on open;
//! - `upgrade`: stores written by release 0.1.0, opened and used by this code;
//! - `waiting_suite`: the waiting reads' check on every backend (as `store_suite`).

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod backends;
mod batch_commands;
mod batches;
mod binary;
mod calls;
mod caps_suite;
mod claims_suite;
mod delivered_records;
mod housekeeping;
mod leases_suite;
mod lost_answers;
mod metrics;
mod ownership;
mod processes;
mod rekey;
mod release;
mod settings;
mod store_suite;
mod support;
mod upgrade;
mod waiting_suite;
