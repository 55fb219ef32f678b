//! The watch this process keeps with world-service for its waiting readers (the protocol:
//! [`hello_common::wire::watches`]): changes go as they come, one call at a time, and one wakes
//! call is always held.

use std::time::Duration;

use hello_common::wire::{MAX_WATCH_CHANGES, WatchChange, WatchedInbox};

use super::{Changes, Waiting};
use crate::world_client::{WatchCallError, WorldClient};

/// How long world may hold a wakes call before answering "nothing".
const WAKES_WAIT: Duration = Duration::from_secs(10);
/// The pause after a failed call before the next (world restarting, or not up yet).
const AFTER_FAILURE: Duration = Duration::from_millis(500);

/// Keeps this process's watch session `session` with world: sends what its readers wait on and
/// wakes them as world says. Runs for the life of the process.
pub async fn run_watch(waiting: Waiting, world: WorldClient, session: String) {
    tokio::join!(
        send_changes(&waiting, &world, &session),
        receive_wakes(&waiting, &world, &session)
    );
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
            Err((WatchCallError::UnknownSession, unsent)) => {
                waiting.restore_changes(unsent);
                waiting.resync();
            }
            Err((WatchCallError::Failed(error), unsent)) => {
                waiting.restore_changes(unsent);
                if !failing {
                    failing = true;
                    tracing::warn!(
                        %error,
                        "cannot tell world-service what readers wait on; waits still end on time"
                    );
                }
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
}

/// Sends `changes` in calls of at most [`MAX_WATCH_CHANGES`] each; on failure, what was not
/// sent (all of it, if the reset itself failed).
async fn send(
    world: &WorldClient,
    session: &str,
    changes: Changes,
) -> Result<(), (WatchCallError, Changes)> {
    let Changes {
        mut reset,
        mut add,
        mut remove,
    } = changes;
    loop {
        let take = |list: &mut Vec<WatchedInbox>| {
            let rest = list.split_off(list.len().min(MAX_WATCH_CHANGES));
            std::mem::replace(list, rest)
        };
        let change = WatchChange {
            reset,
            remove: take(&mut remove),
            add: take(&mut add),
        };
        if let Err(error) = world.change_watch(session, &change).await {
            let unsent = if change.reset {
                Changes {
                    reset: true,
                    ..Changes::default()
                }
            } else {
                let mut change = change;
                change.add.extend(add);
                change.remove.extend(remove);
                Changes {
                    reset: false,
                    add: change.add,
                    remove: change.remove,
                }
            };
            return Err((error, unsent));
        }
        reset = false;
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
    }
}

/// Holds one wakes call at a time and wakes the readers of each inbox world names.
async fn receive_wakes(waiting: &Waiting, world: &WorldClient, session: &str) {
    let mut failing = false;
    loop {
        match world.wakes(session, WAKES_WAIT).await {
            Ok(wakes) => {
                failing = false;
                waiting.wake(&wakes.inboxes);
            }
            Err(WatchCallError::UnknownSession) => {
                // world forgot what was waited on (it restarted): tell it again, and let every
                // reader look once, since wakes may have been missed meanwhile.
                waiting.resync();
                waiting.wake_all();
                tokio::time::sleep(AFTER_FAILURE / 5).await;
            }
            Err(WatchCallError::Failed(error)) => {
                if !failing {
                    failing = true;
                    tracing::warn!(%error, "cannot hear from world-service about waiting readers; waits still end on time");
                }
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
}
