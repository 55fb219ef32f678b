//! Sends that arrive together go to world-service together: one request (and, in the embedded
//! store, one commit) for many hellos, instead of one request each.
//!
//! At most [`SEND_CALLS_IN_FLIGHT`] batch calls are out at once. A send that arrives while they
//! are out waits in the queue, and the next call takes everything waiting (up to
//! [`MAX_SENDS_PER_BATCH`]). So a lone send goes out at once, as before, and under load the
//! sends gather by themselves while the calls before them are out: no timer, no added wait.
//! Each send keeps its own terms and outcome (world-service judges it as if it came alone), and
//! its own deadline: one that waits, queued and then in its call, longer than
//! `HELLO_WORLD_TIMEOUT_MS` is answered 504, as a send alone would be.
//!
//! The queue is shared by every HTTP worker: each call takes the queue as a whole, whichever
//! worker it runs on.

use std::sync::{Arc, Mutex, PoisonError};

use hello_common::wire::{BatchedSend, MAX_SENDS_PER_BATCH, StoredHello};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::world_client::WorldError;

/// Batch calls out to world-service at once. Two: one on its way (being stored) while the next
/// gathers the sends that arrive meanwhile.
pub const SEND_CALLS_IN_FLIGHT: usize = 2;

/// A send waiting for its call, with where its outcome goes.
#[derive(Debug)]
pub struct Waiting {
    pub send: BatchedSend,
    pub outcome: oneshot::Sender<Result<StoredHello, WorldError>>,
}

/// The sends waiting for a call, and the calls that may be out.
#[derive(Debug)]
pub struct SendQueue {
    waiting: Mutex<Vec<Waiting>>,
    calls: Arc<Semaphore>,
}

impl Default for SendQueue {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            calls: Arc::new(Semaphore::new(SEND_CALLS_IN_FLIGHT)),
        }
    }
}

impl SendQueue {
    /// Queues a send; its outcome comes on the receiver once a call has carried it.
    pub fn push(&self, send: BatchedSend) -> oneshot::Receiver<Result<StoredHello, WorldError>> {
        let (outcome, receiver) = oneshot::channel();
        self.lock().push(Waiting { send, outcome });
        receiver
    }

    /// A call's permit if fewer than [`SEND_CALLS_IN_FLIGHT`] are out and sends are waiting.
    ///
    /// Whoever queues a send asks for one; so does a call that finds the queue empty, after it
    /// has given its own permit back. Between them no send is left behind: a send queued while
    /// every permit is held is taken by the next call of a holder, or found by that holder's
    /// look at the queue after it let its permit go.
    pub fn free_call(&self) -> Option<OwnedSemaphorePermit> {
        if self.lock().is_empty() {
            return None;
        }
        Arc::clone(&self.calls).try_acquire_owned().ok()
    }

    /// Takes the oldest waiting sends, at most [`MAX_SENDS_PER_BATCH`], for one call.
    pub fn take(&self) -> Vec<Waiting> {
        let mut waiting = self.lock();
        let taken = waiting.len().min(MAX_SENDS_PER_BATCH);
        waiting.drain(..taken).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
