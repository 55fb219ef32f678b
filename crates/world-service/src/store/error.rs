//! What a store operation answers when it does not succeed.

/// A store operation that changes something, named in an unknown outcome so that the answer can
/// say what is safe to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Send,
    Lease,
    Acknowledge,
    Confirm,
    Claim,
    Rotate,
    Release,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Send => "send",
            Operation::Lease => "lease",
            Operation::Acknowledge => "acknowledgement",
            Operation::Confirm => "confirmation",
            Operation::Claim => "claim",
            Operation::Rotate => "token rotation",
            Operation::Release => "release",
        })
    }
}

/// Why a store operation did not succeed. Nothing was written in any of these cases, except
/// [`StoreError::OutcomeUnknown`], which says that the caller cannot know.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The recipient already has `cap` hellos waiting.
    #[error("the inbox of {name} is full: {cap} hellos are waiting; it empties as {name} reads it")]
    InboxFull { name: String, cap: u64 },
    /// The store holds as many hellos, or idempotency keys, as it may (`what`, `cap`).
    #[error(
        "the store is full: it holds {cap} {what}, as many as it may; nothing was stored. It makes room as inboxes are read (and keys expire): retry later"
    )]
    StoreFull { what: &'static str, cap: u64 },
    /// The name, or a name that looks like it, is claimed already.
    #[error(
        "{name} is claimed already, or looks like a name that is (look-alikes share one owner); choose another name"
    )]
    NameTaken { name: String },
    /// The sender already used this idempotency key for a different hello. Keys are scoped to
    /// their sender, so the message names nothing the sender did not send.
    #[error(
        "you already used this Idempotency-Key for a different hello; use a new key for each hello (repeat a key only to retry the same hello)"
    )]
    IdempotencyKeyReused,
    /// The store cannot be reached, or refused the operation: nothing was done; the caller may
    /// retry.
    #[error("the store is unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
    /// A write reached the store but no answer came back (the connection broke, or the store did
    /// not confirm it durable): it may or may not have been done.
    #[error("the store did not answer whether the {operation} was done: {cause:#}")]
    OutcomeUnknown {
        operation: Operation,
        #[source]
        cause: anyhow::Error,
    },
}

impl StoreError {
    /// Wraps any storage failure as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(error.into())
    }

    /// The same failure again, for another call of a batch it touched: same kind, same message.
    pub fn for_another_call(&self) -> Self {
        match self {
            Self::InboxFull { name, cap } => Self::InboxFull {
                name: name.clone(),
                cap: *cap,
            },
            Self::StoreFull { what, cap } => Self::StoreFull { what, cap: *cap },
            Self::NameTaken { name } => Self::NameTaken { name: name.clone() },
            Self::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            Self::Unavailable(cause) => Self::Unavailable(anyhow::anyhow!("{cause:#}")),
            Self::OutcomeUnknown { operation, cause } => Self::OutcomeUnknown {
                operation: *operation,
                cause: anyhow::anyhow!("{cause:#}"),
            },
        }
    }
}
