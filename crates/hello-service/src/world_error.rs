//! Why a call to world-service did not succeed, and what the client is told.

use std::time::Duration;

use hello_common::Problem;

/// How long a client should wait before retrying when world-service is unreachable.
pub const RETRY_AFTER_UNREACHABLE: Duration = Duration::from_secs(1);

/// Why a call to world-service did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorldError {
    /// world-service answered with a problem: pass it on to the client as it is.
    #[error("{0}")]
    Answered(Problem),
    /// world-service could not be reached: the request never got there, nothing was done.
    #[error("world-service is unreachable: {0}")]
    Unreachable(String),
    /// The request may have reached world-service, but no usable answer came back (hello-service
    /// stopped waiting, the connection broke, the answer was unreadable): it may or may not have
    /// been carried out.
    #[error("world-service did not answer: {0}")]
    NoAnswer(String),
}

/// Which call failed, so that a [`WorldError::NoAnswer`] can say what is safe to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Storing a hello.
    Send,
    /// Leasing hellos for a read.
    Lease,
    /// Confirming a reliable read.
    Confirm,
    /// Claiming a name.
    Claim,
    /// Replacing a name's token.
    Rotate,
    /// Releasing a name.
    Release,
    /// A call that changes nothing (readiness, info).
    Look,
}

impl WorldError {
    /// The problem the client gets: world's own as it is; 503 when nothing was done; 504, saying
    /// what is safe for this call, when the outcome is unknown.
    pub fn into_problem(self, call: Call) -> Problem {
        match self {
            WorldError::Answered(problem) => problem,
            WorldError::Unreachable(cause) => {
                tracing::warn!(%cause, "world-service unreachable");
                Problem::unavailable(
                    "the inbox service of this pod is not answering; nothing was changed. Retry shortly",
                    RETRY_AFTER_UNREACHABLE,
                )
            }
            WorldError::NoAnswer(cause) => {
                tracing::warn!(%cause, ?call, "world-service gave no usable answer");
                let detail = match call {
                    Call::Send => {
                        "hello-service stopped waiting for the inbox service, so this hello may or \
                         may not have been stored. Send it again with the same Idempotency-Key: if \
                         it was stored, the retry answers with the first hello and stores nothing \
                         new (without a key, a retry may store it twice)"
                    }
                    Call::Lease => {
                        "hello-service stopped waiting for the inbox service while reading, so \
                         hellos may have been taken for this read; they stay hidden until its \
                         lease runs out, then come back. Read again later"
                    }
                    Call::Confirm => {
                        "hello-service stopped waiting for the inbox service while confirming, so \
                         this read may or may not be confirmed. Repeat the DELETE: confirming \
                         again is safe"
                    }
                    Call::Claim => {
                        "hello-service stopped waiting for the inbox service while claiming, so \
                         the name may or may not be claimed now, and its token cannot be shown \
                         again. Claim it again: 409 means the first claim went through, and only \
                         an operator can release the name"
                    }
                    Call::Rotate => {
                        "hello-service stopped waiting for the inbox service while replacing the \
                         token, so the old token may or may not still work. Try it: if it \
                         answers 401, only an operator can reset the token"
                    }
                    Call::Release => {
                        "hello-service stopped waiting for the inbox service while releasing, so \
                         the name may or may not be free yet. Repeat the DELETE with the same \
                         token: a repeat finishes a release"
                    }
                    Call::Look => {
                        "the inbox service of this pod did not answer in time; nothing was \
                         changed. Retry shortly"
                    }
                };
                if call == Call::Look {
                    Problem::unavailable(detail, RETRY_AFTER_UNREACHABLE)
                } else {
                    Problem::outcome_unknown(detail, RETRY_AFTER_UNREACHABLE)
                }
            }
        }
    }
}
