//! Calls that arrive together go to world-service together: one request for many sends (and, in
//! the embedded store, one commit), for many leases, for many confirmations, or for many
//! acknowledgements, instead of one request each. Every send, lease, confirmation and
//! acknowledgement takes this path, traced or not.
//!
//! Each kind of call has its [`Batcher`]. At most `in_flight` batches of a kind are out at once
//! ([`CALLS_IN_FLIGHT`], [`SENDS_IN_FLIGHT`], [`ACKNOWLEDGEMENTS_IN_FLIGHT`]). A call that
//! arrives while they are out waits in the queue, and the next batch takes everything waiting
//! (up to the kind's [`BatchLimits`]). So a lone call goes out at once, and under load the calls
//! gather by themselves while the batches before them are out: no timer, no added wait. Each call
//! keeps its own terms and outcome (world-service judges it on its own), and its own deadline: a
//! call that waits, queued and then in its batch, longer than its timeout is answered 504.
//!
//! Each HTTP worker has its own batchers (its own
//! [`WorldClient`](crate::world_client::WorldClient)): a call, its batch, the connection that
//! carries it and the outcome stay on the worker's thread, with no wake-up of another thread on
//! the way. So those limits are per worker.
//!
//! A queue holds at most one call per request in progress on its worker (actix-web's 25,000
//! connections per worker at most, nginx's 128 in progress per client), and a call whose caller
//! stopped waiting is dropped, not carried.
//!
//! This module knows nothing of HTTP: a batcher is given the function that carries a batch.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::{BoxFuture, join_all};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::world_error::WorldError;

/// Batches of leases or of confirmations out to world-service at once, per HTTP worker. Two: one
/// on its way while the next gathers the calls that arrive meanwhile (four measured the same;
/// one, for every kind, took a fifth off the reads per second).
pub const CALLS_IN_FLIGHT: usize = 2;

/// Batches of sends out at once, per HTTP worker: one. Every send waits for the store's writer,
/// which commits one batch after another, so a second batch out does not go faster; it only
/// splits the sends that arrive meanwhile into smaller batches, each a request of its own for
/// both services (`bench/profile.py`: about 14 sends per call instead of 10, and a twentieth less
/// of the pod's CPU per POST).
pub const SENDS_IN_FLIGHT: usize = 1;

/// Acknowledgements out to world-service at once. Two: one on its way while the answers that
/// settle meanwhile gather for the next. Unbounded, a busy reader's acknowledgements went out a
/// few leases each and overlapped, and the calls needed so many connections to world-service
/// (about 260 at once, against 64 readers) that both services' memory grew by several MiB.
pub const ACKNOWLEDGEMENTS_IN_FLIGHT: usize = 2;

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

/// The outcomes of one batch: one per call, in their order, or an error none of them escapes.
pub type BatchOutcomes<R> = Result<Vec<Result<R, WorldError>>, WorldError>;

/// Carries one batch to world-service.
pub type Carry<T, R> = Box<dyn Fn(Vec<T>) -> BoxFuture<'static, BatchOutcomes<R>> + Send + Sync>;

/// A call waiting for its batch, with where its outcome goes.
struct Waiting<T, R> {
    item: T,
    outcome: oneshot::Sender<Result<R, WorldError>>,
}

/// The calls of one kind waiting for a batch, the batches that may be out, and how a batch is
/// carried. Cheap to clone; clones share the queue.
pub struct Batcher<T, R> {
    queue: Arc<Queue<T, R>>,
}

struct Queue<T, R> {
    waiting: Mutex<Vec<Waiting<T, R>>>,
    batches: Arc<Semaphore>,
    limits: BatchLimits<T>,
    carry: Carry<T, R>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: Arc::clone(&self.queue),
        }
    }
}

impl<T, R> std::fmt::Debug for Batcher<T, R> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Batcher")
            .field("waiting", &self.queue.lock().len())
            .field("free_batches", &self.queue.batches.available_permits())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// A batcher whose batches carry at most `limits`, at most `in_flight` of them out at once,
    /// each carried by `carry`.
    pub fn new(limits: BatchLimits<T>, in_flight: usize, carry: Carry<T, R>) -> Self {
        Self {
            queue: Arc::new(Queue {
                waiting: Mutex::default(),
                batches: Arc::new(Semaphore::new(in_flight)),
                limits,
                carry,
            }),
        }
    }

    /// Queues `item` for the next batch and waits for its outcome, at most `timeout` from now.
    pub async fn call(&self, item: T, timeout: Duration) -> Result<R, WorldError> {
        let outcome = self.queue.push(item);
        self.make_sure_a_batch_goes();
        match tokio::time::timeout(timeout, outcome).await {
            Ok(outcome) => outcome.unwrap_or_else(|_| Err(ended_without_outcome())),
            Err(_) => Err(WorldError::NoAnswer(format!(
                "no outcome within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Queues `items` and waits, with no deadline of its own, until a batch has carried each:
    /// their outcomes, in their order. For acknowledgements, whose carrying gives up by itself.
    pub async fn call_all(&self, items: Vec<T>) -> Vec<Result<R, WorldError>> {
        let outcomes: Vec<_> = items
            .into_iter()
            .map(|item| self.queue.push(item))
            .collect();
        self.make_sure_a_batch_goes();
        join_all(outcomes)
            .await
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|_| Err(ended_without_outcome())))
            .collect()
    }

    /// Starts a run of batches if fewer than `in_flight` are out (otherwise one that is out takes
    /// what was queued, when it is done).
    fn make_sure_a_batch_goes(&self) {
        if let Some(permit) = self.queue.free_batch() {
            tokio::spawn(Arc::clone(&self.queue).carry_batches(permit));
        }
    }
}

fn ended_without_outcome() -> WorldError {
    WorldError::NoAnswer("the batch carrying this call ended without an outcome".to_owned())
}

impl<T, R> Queue<T, R> {
    fn push(&self, item: T) -> oneshot::Receiver<Result<R, WorldError>> {
        let (outcome, receiver) = oneshot::channel();
        self.lock().push(Waiting { item, outcome });
        receiver
    }

    /// A batch's permit if fewer than `in_flight` are out and calls are waiting.
    ///
    /// Whoever queues a call asks for one; so does a batch that finds the queue empty, after it
    /// has given its own permit back. Between them no call is left behind: a call queued while
    /// every permit is held is taken by the next batch of a holder, or found by that holder's
    /// look at the queue after it let its permit go.
    fn free_batch(&self) -> Option<OwnedSemaphorePermit> {
        if self.lock().is_empty() {
            return None;
        }
        Arc::clone(&self.batches).try_acquire_owned().ok()
    }

    /// Takes the oldest waiting calls, within the limits, for one batch. A call whose caller has
    /// stopped waiting (answered 504, or gone) is dropped instead of carried: its client was told
    /// the outcome is unknown, and a lease nobody reads would only hide hellos.
    fn take(&self) -> Vec<Waiting<T, R>> {
        let mut waiting = self.lock();
        waiting.retain(|call| !call.outcome.is_closed());
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

    /// One batch after another, each with the calls waiting when it starts, until none is
    /// waiting; `permit` counts it among the batches out.
    async fn carry_batches(self: Arc<Self>, mut permit: OwnedSemaphorePermit) {
        loop {
            let waiting = self.take();
            if waiting.is_empty() {
                drop(permit);
                match self.free_batch() {
                    Some(next) => {
                        permit = next;
                        continue;
                    }
                    None => return,
                }
            }
            let (items, outcomes): (Vec<T>, Vec<_>) = waiting
                .into_iter()
                .map(|waiting| (waiting.item, waiting.outcome))
                .unzip();
            // A call whose request has gone (its client left, or it stopped waiting) no longer
            // takes its outcome; what was done stays done.
            match (self.carry)(items).await {
                Ok(answered) => {
                    for (outcome, answer) in outcomes.into_iter().zip(answered) {
                        drop(outcome.send(answer));
                    }
                }
                Err(error) => {
                    for outcome in outcomes {
                        drop(outcome.send(Err(error.clone())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_carried() -> Carry<usize, ()> {
        Box::new(|_| Box::pin(async { unreachable!("this test takes batches by hand") }))
    }

    #[test]
    fn a_batch_takes_the_oldest_calls_within_its_limits_and_the_first_however_heavy() {
        let limits = BatchLimits {
            items: 3,
            weight: 100,
            weigh: |weight| *weight,
        };
        let batcher = Batcher::new(limits, CALLS_IN_FLIGHT, never_carried());
        let queue = &batcher.queue;
        let _waiting: Vec<_> = [500, 10, 20, 30, 40, 90, 5]
            .into_iter()
            .map(|weight| queue.push(weight))
            .collect();
        let taken = || -> Vec<usize> { queue.take().into_iter().map(|call| call.item).collect() };
        assert_eq!(taken(), [500], "too heavy, so alone");
        assert_eq!(taken(), [10, 20, 30], "at most 3");
        assert_eq!(taken(), [40], "40 + 90 is over 100");
        assert_eq!(taken(), [90, 5]);
        assert!(taken().is_empty());
    }

    #[test]
    fn a_call_whose_caller_stopped_waiting_is_not_carried() {
        let batcher = Batcher::new(BatchLimits::at_most(8), CALLS_IN_FLIGHT, never_carried());
        let queue = &batcher.queue;
        let waiting = queue.push(1);
        drop(queue.push(2));
        let also_waiting = queue.push(3);
        let taken: Vec<usize> = queue.take().into_iter().map(|call| call.item).collect();
        assert_eq!(taken, [1, 3]);
        drop((waiting, also_waiting));
    }

    #[tokio::test]
    async fn calls_that_arrive_while_a_batch_is_out_go_together_in_the_next() {
        let (release, released) = tokio::sync::watch::channel(false);
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let carry: Carry<usize, usize> = {
            let sizes = Arc::clone(&sizes);
            Box::new(move |items: Vec<usize>| {
                sizes.lock().unwrap().push(items.len());
                let mut released = released.clone();
                Box::pin(async move {
                    drop(released.wait_for(|go| *go).await);
                    Ok(items.into_iter().map(|item| Ok(item * 2)).collect())
                })
            })
        };
        let batcher = Batcher::new(BatchLimits::at_most(128), 1, carry);
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call(1, Duration::from_secs(10)).await }
        });
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call_all(vec![2, 3, 4]).await }
        });
        while batcher.queue.lock().len() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 2);
        let rest: Vec<usize> = rest
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rest, [4, 6, 8]);
        assert_eq!(
            *sizes.lock().unwrap(),
            [1, 3],
            "one alone, then the three that waited"
        );
    }
}
