//! hello-service's integration tests: the real services on loopback, one module per concern.
//!
//! - `hellos`: the public contract of `POST`/`GET /hello/{name}`;
//! - `bad_input`: a table of invalid requests, each a 4xx problem that stores nothing;
//! - `operations`: probes, OpenAPI, the pod header, world or store down;
//! - `concurrency`: many senders and readers, one or two world processes: exactly once;
//! - `crash`: world killed with SIGKILL in the middle of reads: nothing lost;
//! - `settling`: a read is acknowledged only once its connection shows the answer arrived.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod concurrency;
mod crash;
mod hellos;
mod operations;
mod settling;
mod support;
