//! hello-service's integration tests: the real services on loopback, one module per concern.
//!
//! - `hellos`: the public contract of `POST`/`GET /hello/{name}`;
//! - `bad_input`: a table of invalid requests, each a 4xx problem that stores nothing;
//! - `operations`: probes, OpenAPI, the pod header, world or store down;
//! - `concurrency`: many senders and readers, one or two world processes: exactly once;
//! - `crash`: world killed with SIGKILL in the middle of reads: nothing lost;
//! - `batching`: sends and reads arriving together go to world-service together, each with its
//!   own outcome;
//! - `settling`: a GET's answer is delivered once written in full without a reset: every kind
//!   of client sees each hello once;
//! - `reliable`: reliable reads and their receipts, every status;
//! - `names`: claims, bearer tokens, verified senders, look-alikes, rotation and release;
//! - `waiting`: reads that wait for a hello, on both backends: woken by a send here or through
//!   another replica, ended by a rotation, bounded per client and per pod, one reader per hello;
//! - `waiting_processes`: waiting reads when hello stops, world stops or restarts, or the client
//!   hangs up, and their metrics.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod batching;
mod concurrency;
mod crash;
mod hellos;
mod names;
mod operations;
mod reliable;
mod settling;
mod support;
mod waiting;
mod waiting_processes;
