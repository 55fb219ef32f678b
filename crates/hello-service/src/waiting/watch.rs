//! The watch this process keeps with world-service for its waiting readers (the protocol:
//! [`hello_common::wire::watches`]): changes go as they come, one call at a time, and one wakes
//! call is always held.
//!
//! Whatever goes wrong, the next change is the whole set again (`reset`): a change whose answer
//! never came may or may not have been applied, and world may have restarted. A wake is a hint,
//! so what is lost meanwhile costs readers time, never hellos; once world knows the session
//! again, every reader leases once, for what it may have missed.

use std::time::{Duration, Instant};

use hello_common::wire::{MAX_WATCH_CHANGES, WatchChange, WatchedInbox};

use super::{Changes, Waiting};
use crate::world_client::{WatchCallError, WorldClient};

/// How long world may hold a wakes call before answering "nothing".
const WAKES_WAIT: Duration = Duration::from_secs(10);
/// The pause after a failed call before the next (world restarting, stopping, or not up yet),
/// and after an empty wakes answer that came back much sooner than asked (world stopping).
const AFTER_FAILURE: Duration = Duration::from_millis(500);
/// The pause after world said it does not know the session, while the reset is sent.
const AFTER_UNKNOWN_SESSION: Duration = Duration::from_millis(100);

/// Keeps this process's watch session `session` with world: sends what its readers wait on and
/// wakes them as world says. Runs for the life of the process; the first wakes call is made
/// once world knows the session.
pub async fn run_watch(waiting: Waiting, world: WorldClient, session: String) {
    let mut failing = false;
    while let Err(error) = send(&world, &session, waiting.take_changes()).await {
        waiting.resync();
        log_once(&mut failing, &error);
        tokio::time::sleep(AFTER_FAILURE).await;
    }
    tokio::join!(
        send_changes(&waiting, &world, &session),
        receive_wakes(&waiting, &world, &session)
    );
}

fn log_once(failing: &mut bool, error: &WatchCallError) {
    if !*failing {
        *failing = true;
        tracing::warn!(%error, "cannot tell world-service what readers wait on; waits still end on time");
    }
}

/// Sends the changes to what is waited on, as they come.
async fn send_changes(waiting: &Waiting, world: &WorldClient, session: &str) {
    let mut failing = false;
    loop {
        let changes = waiting.take_changes();
        if !changes.reset && changes.add.is_empty() && changes.remove.is_empty() {
            waiting.changed().await;
            continue;
        }
        match send(world, session, changes).await {
            Ok(()) => failing = false,
            Err(WatchCallError::UnknownSession) => waiting.resync(),
            Err(error) => {
                waiting.resync();
                log_once(&mut failing, &error);
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
}

/// Sends `changes` in calls of at most [`MAX_WATCH_CHANGES`] additions and removals each, the
/// reset (if any) first.
async fn send(world: &WorldClient, session: &str, changes: Changes) -> Result<(), WatchCallError> {
    let Changes {
        mut reset,
        mut add,
        mut remove,
    } = changes;
    let take = |list: &mut Vec<WatchedInbox>| {
        let rest = list.split_off(list.len().min(MAX_WATCH_CHANGES));
        std::mem::replace(list, rest)
    };
    loop {
        let change = WatchChange {
            reset,
            remove: take(&mut remove),
            add: take(&mut add),
        };
        world.change_watch(session, &change).await?;
        reset = false;
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
    }
}

/// Holds one wakes call at a time and wakes the readers of each inbox world names.
async fn receive_wakes(waiting: &Waiting, world: &WorldClient, session: &str) {
    let mut failing = false;
    // world forgot the session: once it knows it again, every reader looks once.
    let mut lost = false;
    loop {
        let asked = Instant::now();
        match world.wakes(session, WAKES_WAIT).await {
            Ok(wakes) => {
                failing = false;
                if std::mem::take(&mut lost) {
                    waiting.wake_all();
                }
                waiting.wake_one_each(&wakes.inboxes);
                waiting.wake_every(&wakes.changed);
                if wakes.inboxes.is_empty()
                    && wakes.changed.is_empty()
                    && asked.elapsed() < WAKES_WAIT / 2
                {
                    // Answered early with nothing: world is stopping.
                    tokio::time::sleep(AFTER_FAILURE).await;
                }
            }
            Err(WatchCallError::UnknownSession) => {
                lost = true;
                waiting.resync();
                tokio::time::sleep(AFTER_UNKNOWN_SESSION).await;
            }
            Err(error) => {
                if !failing {
                    failing = true;
                    tracing::warn!(%error, "cannot hear from world-service about waiting readers; waits still end on time");
                }
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
}
