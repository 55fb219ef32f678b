//! Calls that arrive together go to world-service together: one request for many sends (and, in
//! the embedded store, one commit), for many leases, or for many confirmations, instead of one
//! request each.
//!
//! Each kind of call has its queue. At most [`CALLS_IN_FLIGHT`] batch calls of a kind are out at
//! once ([`SENDS_IN_FLIGHT`] for sends). A call that arrives while they are out waits in the
//! queue, and the next batch takes everything waiting (up to the kind's limits). So a lone call
//! goes out at once, as before, and under load the calls gather by themselves while the batches
//! before them are out: no timer, no added wait. Each call keeps its own terms and outcome
//! (world-service judges it as if it came alone), and its own deadline: one that waits, queued
//! and then in its batch, longer than `HELLO_WORLD_TIMEOUT_MS` is answered 504, as a call alone
//! would be.
//!
//! Each HTTP worker has its own queues (its own [`WorldClient`](crate::world_client::WorldClient)):
//! a call, its batch, the connection that carries it and the outcome stay on the worker's
//! thread, with no wake-up of another thread on the way. So those limits are per worker.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::world_client::WorldError;

/// Batch calls of leases or of confirmations out to world-service at once, per HTTP worker.
/// Two: one on its way while the next gathers the calls that arrive meanwhile (four measured
/// the same; one, for every kind, took a fifth off the reads per second).
pub const CALLS_IN_FLIGHT: usize = 2;

/// Batches of sends out at once, per HTTP worker: one. Every send waits for the store's writer,
/// which commits one batch after another, so a second batch out does not go faster; it only
/// splits the sends that arrive meanwhile into smaller batches, each a request of its own for
/// both services (`bench/profile.py`, docs/performance.md: about 14 sends per call instead of
/// 10, and a twentieth less of the pod's CPU per POST).
pub const SENDS_IN_FLIGHT: usize = 1;

/// What one batch may carry: at most `items` calls, and calls whose weights (the hellos a lease
/// may take) add up to at most `weight`, so that one answer stays small. A call heavier than
/// `weight` goes alone.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits<T> {
    pub items: usize,
    pub weight: usize,
    pub weigh: fn(&T) -> usize,
}

impl<T> BatchLimits<T> {
    /// At most `items` calls to a batch, whatever they weigh.
    pub const fn at_most(items: usize) -> Self {
        Self {
            items,
            weight: usize::MAX,
            weigh: |_| 0,
        }
    }
}

/// A call waiting for its batch, with where its outcome goes.
#[derive(Debug)]
pub struct Waiting<T, R> {
    pub item: T,
    pub outcome: oneshot::Sender<Result<R, WorldError>>,
}

/// The calls of one kind waiting for a batch, and the batches that may be out.
#[derive(Debug)]
pub struct CallQueue<T, R> {
    waiting: Mutex<Vec<Waiting<T, R>>>,
    batches: Arc<Semaphore>,
    limits: BatchLimits<T>,
}

impl<T, R> CallQueue<T, R> {
    /// A queue whose batches carry at most `limits`, at most `in_flight` of them out at once.
    pub fn new(limits: BatchLimits<T>, in_flight: usize) -> Self {
        Self {
            waiting: Mutex::default(),
            batches: Arc::new(Semaphore::new(in_flight)),
            limits,
        }
    }

    /// Queues a call; its outcome comes on the receiver once a batch has carried it.
    pub fn push(&self, item: T) -> oneshot::Receiver<Result<R, WorldError>> {
        let (outcome, receiver) = oneshot::channel();
        self.lock().push(Waiting { item, outcome });
        receiver
    }

    /// A batch's permit if fewer than the queue's `in_flight` are out and calls are waiting.
    ///
    /// Whoever queues a call asks for one; so does a batch that finds the queue empty, after it
    /// has given its own permit back. Between them no call is left behind: a call queued while
    /// every permit is held is taken by the next batch of a holder, or found by that holder's
    /// look at the queue after it let its permit go.
    pub fn free_batch(&self) -> Option<OwnedSemaphorePermit> {
        if self.lock().is_empty() {
            return None;
        }
        Arc::clone(&self.batches).try_acquire_owned().ok()
    }

    /// Takes the oldest waiting calls, within the limits, for one batch.
    pub fn take(&self) -> Vec<Waiting<T, R>> {
        let mut waiting = self.lock();
        let mut weight = 0;
        let taken = waiting
            .iter()
            .take(self.limits.items)
            .take_while(|call| {
                weight += (self.limits.weigh)(&call.item);
                weight <= self.limits.weight
            })
            .count()
            // The first goes, however heavy.
            .max(usize::from(!waiting.is_empty()));
        waiting.drain(..taken).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting<T, R>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_the_oldest_calls_within_its_limits_and_the_first_however_heavy() {
        let queue: CallQueue<usize, ()> = CallQueue::new(
            BatchLimits {
                items: 3,
                weight: 100,
                weigh: |weight| *weight,
            },
            CALLS_IN_FLIGHT,
        );
        for weight in [500, 10, 20, 30, 40, 90, 5] {
            drop(queue.push(weight));
        }
        let taken = |queue: &CallQueue<usize, ()>| -> Vec<usize> {
            queue.take().into_iter().map(|call| call.item).collect()
        };
        assert_eq!(taken(&queue), [500], "too heavy, so alone");
        assert_eq!(taken(&queue), [10, 20, 30], "at most 3");
        assert_eq!(taken(&queue), [40], "40 + 90 is over 100");
        assert_eq!(taken(&queue), [90, 5]);
        assert!(taken(&queue).is_empty());
    }
}
