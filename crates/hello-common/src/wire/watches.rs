//! Waiting reads between the services: hello-service holds its waiting readers and keeps one
//! watch with world-service per process, a *session* (any unique id it chooses at start), in two
//! calls:
//!
//! - `PUT /v1/watches/{session}` ([`WatchChange`] → 204): the inboxes it now watches, as changes
//!   (each one inbox and the token hash its readers presented); `reset` replaces the whole set.
//!   A session world does not know (world restarted, or forgot a session idle for
//!   [`SESSION_IDLE_MS`]) is 404 unless `reset`: hello then sends its whole set again.
//! - `GET /v1/watches/{session}/wakes?wait_ms=N` ([`Wakes`]): answers as soon as any watched
//!   inbox may have something for its readers (a hello sent or a lease run out: one reader looks;
//!   the claim covering it changed: every reader looks), else after `wait_ms` (at most
//!   [`MAX_WAKES_WAIT_MS`]) with none. One such call is held at a time per session.
//!
//! A wake is a hint, never a delivery: the woken readers lease again, and whoever finds the inbox
//! empty waits again. So a wake lost (a session forgotten, a call that failed) costs a reader its
//! wait's remaining time at worst, never a hello.
//!
//! - Additions and removals are set operations: adding an inbox and token twice, or removing one
//!   that is not there, changes nothing, so a change repeated after a lost answer does no harm.
//!   hello sends the whole set again (`reset`) after any failure.
//! - Additions that would take world past `WORLD_WATCH_CAP` are dropped (world logs it once):
//!   their readers are woken by nothing and wait out their time. An entry world cannot take (an
//!   empty or overlong inbox key, a token hash that is not hex) makes the change a 400.
//! - hello chooses a new session id (a UUIDv7) at every start; world forgets a session nobody
//!   asked for its wakes for [`SESSION_IDLE_MS`], and counts it against the cap until then.
//! - While world stops, a held wakes call is answered at once, and a new one is 503.

use serde::{Deserialize, Serialize};

/// The most inboxes one [`WatchChange`] may add or remove together.
pub const MAX_WATCH_CHANGES: usize = 2048;
/// The longest a wakes call may be held.
pub const MAX_WAKES_WAIT_MS: u64 = 30_000;
/// How long world keeps a session that has not asked for its wakes.
pub const SESSION_IDLE_MS: u64 = 90_000;
/// The most bytes a session id may have (letters, digits and '-').
pub const MAX_SESSION_LENGTH: usize = 64;

/// One watched inbox, with the token its readers were let in with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchedInbox {
    /// The inbox key (the case-folded name).
    pub inbox: String,
    /// The SHA-256 (lower-case hex) of the token its readers presented, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

/// Changes to a session's watched inboxes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatchChange {
    /// Forget every inbox watched so far first (and create the session if needed).
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub add: Vec<WatchedInbox>,
    #[serde(default)]
    pub remove: Vec<WatchedInbox>,
}

/// The inboxes woken since the last answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Wakes {
    /// A hello may be leasable there: one reader looks, and passes the wake on if more remain
    /// (every reader looking would cost the store a lease per waiting reader).
    pub inboxes: Vec<String>,
    /// The claim covering them changed (made, rotated, released): every reader looks, to be
    /// answered 401 if it no longer may read.
    #[serde(default)]
    pub changed: Vec<String>,
}

/// The largest body of a [`WatchChange`]: [`MAX_WATCH_CHANGES`] entries of at most a 64-character
/// name (4 bytes a character in UTF-8, doubled for JSON escapes) and a 64-character hash.
pub const WATCH_CHANGE_BODY_LIMIT: usize = 2 * MAX_WATCH_CHANGES * (64 * 8 + 64 + 48) + 64;
