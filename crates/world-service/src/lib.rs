//! world-service: the sidecar that owns the hellos.
//!
//! It is the only code that talks to the store. hello-service, in the same pod, calls its small
//! internal HTTP API over world's Unix socket (see [`routes`]). Layout:
//! - [`config`]: `WORLD_*` settings;
//! - [`startup`]: the [`startup::Application`] that binds its listener and serves;
//! - [`routes`]: the internal API and probes;
//! - [`batched`]: how the calls of a batch are run, each on its own;
//! - [`ownership`]: who may read an inbox and who may send as a name (policy, not routes);
//! - [`store`]: the [`store::Store`] trait and its embedded and MongoDB backends;
//! - [`watches`]: what world watches for hello's waiting readers, and how it wakes them;
//! - [`error`]: store errors as problem+json;
//! - [`admin`]: the `names` subcommand, for operators (lost tokens).

pub mod admin;
pub mod batched;
pub mod config;
pub mod error;
pub mod ownership;
pub mod routes;
pub mod startup;
pub mod store;
pub mod watches;
