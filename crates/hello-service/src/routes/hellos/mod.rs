//! `/hello/{name}` and `/hello/{name}/reads`: the public API of hellos.
//!
//! - [`schema`]: the bodies, queries and formats as the OpenAPI document describes them;
//! - [`send`]: saying hello; [`body`] reads and checks its request body;
//! - [`read`]: reading an inbox; its answer hands the read's lease to
//!   [`crate::settling::Settlements`] once written;
//! - [`reliable`]: reliable reads, which the reader confirms;
//! - [`waiting`]: the lease of a read with `wait`, for both kinds of read.

pub mod body;
pub mod read;
pub mod reliable;
pub mod schema;
pub mod send;
pub mod waiting;
