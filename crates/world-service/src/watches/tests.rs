use std::{future::pending, sync::Arc, time::Duration};

use hello_common::{
    token::TokenHash,
    wire::{Wakes, WatchChange, WatchedInbox},
};
use prometheus::IntGauge;

use super::{WatchError, Watches};

fn watches(cap: usize) -> Watches {
    Watches::new(cap, IntGauge::new("watched", "watched").unwrap())
}

fn inbox(inbox: &str, token: Option<&TokenHash>) -> WatchedInbox {
    WatchedInbox {
        inbox: inbox.to_owned(),
        token_sha256: token.map(TokenHash::to_hex),
    }
}

fn add(reset: bool, inboxes: &[WatchedInbox]) -> WatchChange {
    WatchChange {
        reset,
        add: inboxes.to_vec(),
        remove: Vec::new(),
    }
}

fn removal(inboxes: &[WatchedInbox]) -> WatchChange {
    WatchChange {
        reset: false,
        add: Vec::new(),
        remove: inboxes.to_vec(),
    }
}

/// The wakes of session "s" now (without waiting): (leasable, changed), each sorted.
async fn woken(watches: &Watches) -> (Vec<String>, Vec<String>) {
    let Wakes {
        mut inboxes,
        mut changed,
    } = watches.wakes("s", Duration::ZERO, pending()).await.unwrap();
    inboxes.sort();
    changed.sort();
    (inboxes, changed)
}

fn watched_inboxes(watches: &Watches) -> Vec<String> {
    let mut watched: Vec<String> = watches
        .watched()
        .iter()
        .map(|read| read.inbox.to_string())
        .collect();
    watched.sort();
    watched
}

#[tokio::test]
async fn a_session_starts_with_reset_and_wakes_only_what_it_watches() {
    let watches = watches(10);
    assert!(matches!(
        watches.change("s", add(false, &[inbox("bob", None)])),
        Err(WatchError::UnknownSession)
    ));
    assert!(matches!(
        watches.wakes("s", Duration::ZERO, pending()).await,
        Err(WatchError::UnknownSession)
    ));
    watches
        .change("s", add(true, &[inbox("bob", None)]))
        .unwrap();
    watches.wake_inbox("alice");
    assert_eq!(woken(&watches).await, (vec![], vec![]));
    watches.wake_inbox("bob");
    watches.wake_inbox("bob");
    assert_eq!(woken(&watches).await, (vec!["bob".to_owned()], vec![]));
    assert_eq!(woken(&watches).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_held_call_is_answered_by_a_wake_or_by_stopping() {
    let watches = Arc::new(watches(10));
    watches
        .change("s", add(true, &[inbox("bob", None)]))
        .unwrap();
    let held = {
        let watches = Arc::clone(&watches);
        tokio::spawn(async move { watches.wakes("s", Duration::from_secs(30), pending()).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    watches.wake_inbox("bob");
    let woken = tokio::time::timeout(Duration::from_secs(5), held).await;
    assert_eq!(woken.unwrap().unwrap().unwrap().inboxes, ["bob"]);
    let stopped = tokio::time::timeout(
        Duration::from_secs(5),
        watches.wakes("s", Duration::from_secs(30), async {}),
    )
    .await;
    let stopped = stopped.unwrap().unwrap();
    assert!(stopped.inboxes.is_empty() && stopped.changed.is_empty());
}

#[tokio::test]
async fn a_claim_change_wakes_every_reader_of_every_inbox_it_covers() {
    let watches = watches(10);
    let token = TokenHash::of("hw_token");
    // "bob1" and "bobl" are look-alikes; "carol" is not.
    watches
        .change(
            "s",
            add(
                true,
                &[
                    inbox("bob1", Some(&token)),
                    inbox("bobl", None),
                    inbox("carol", None),
                ],
            ),
        )
        .unwrap();
    watches.wake_lookalike(&hello_common::lookalike_key_of_inbox("bobl"));
    assert_eq!(
        woken(&watches).await,
        (vec![], vec!["bob1".to_owned(), "bobl".to_owned()])
    );
}

#[tokio::test]
async fn additions_past_the_cap_are_dropped_and_removals_make_room() {
    let watches = watches(2);
    let token = TokenHash::of("hw_token");
    watches
        .change(
            "s",
            add(true, &[inbox("bob", None), inbox("bob", Some(&token))]),
        )
        .unwrap();
    watches
        .change("s", add(false, &[inbox("carol", None)]))
        .unwrap();
    assert_eq!(
        watched_inboxes(&watches),
        ["bob", "bob"],
        "carol is past the cap"
    );
    // One out, one in, in one change: the removal is applied first.
    watches
        .change(
            "s",
            WatchChange {
                reset: false,
                add: vec![inbox("carol", None)],
                remove: vec![inbox("bob", Some(&token))],
            },
        )
        .unwrap();
    assert_eq!(watched_inboxes(&watches), ["bob", "carol"]);
    // Another session's reads count against the same cap.
    watches
        .change("t", add(true, &[inbox("dave", None)]))
        .unwrap();
    assert_eq!(watched_inboxes(&watches), ["bob", "carol"]);
}

#[tokio::test]
async fn a_change_sent_twice_changes_nothing_more() {
    let watches = watches(10);
    watches
        .change("s", add(true, &[inbox("bob", None)]))
        .unwrap();
    watches
        .change("s", add(false, &[inbox("bob", None)]))
        .unwrap();
    assert_eq!(
        watched_inboxes(&watches),
        ["bob"],
        "an addition twice is one"
    );
    watches.change("s", removal(&[inbox("bob", None)])).unwrap();
    watches.change("s", removal(&[inbox("bob", None)])).unwrap();
    assert!(
        watched_inboxes(&watches).is_empty(),
        "one removal undoes it"
    );
}

#[tokio::test]
async fn any_inbox_key_hello_makes_is_watched_and_only_hex_hashes() {
    let watches = watches(10);
    // "İ" case-folds to two characters: 64 of them make a key longer than any name.
    let long_key = "i\u{307}".repeat(64);
    watches
        .change("s", add(true, &[inbox(&long_key, None)]))
        .unwrap();
    assert_eq!(watched_inboxes(&watches), [long_key]);
    for bad in [
        inbox("", None),
        inbox(&"x".repeat(2000), None),
        WatchedInbox {
            inbox: "bob".into(),
            token_sha256: Some("not hex".into()),
        },
    ] {
        assert!(
            matches!(
                watches.change("s", add(true, std::slice::from_ref(&bad))),
                Err(WatchError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_session_nobody_asks_for_its_wakes_is_forgotten_and_frees_the_cap() {
    let idle = Duration::from_millis(200);
    let watches = Watches::forgetting_after(idle, 1, IntGauge::new("watched", "watched").unwrap());
    watches
        .change("dead", add(true, &[inbox("bob", None)]))
        .unwrap();
    watches
        .change("alive", add(true, &[inbox("carol", None)]))
        .unwrap();
    assert_eq!(watched_inboxes(&watches), ["bob"], "carol is past the cap");
    tokio::time::sleep(idle * 2).await;
    // Neither asked for its wakes: the check forgets both. A live hello learns it from a 404 and
    // sends its set again, and finds room now.
    assert!(watches.watched().is_empty());
    assert!(matches!(
        watches.wakes("dead", Duration::ZERO, pending()).await,
        Err(WatchError::UnknownSession)
    ));
    watches
        .change("alive", add(true, &[inbox("carol", None)]))
        .unwrap();
    watches
        .wakes("alive", Duration::ZERO, pending())
        .await
        .unwrap();
    assert_eq!(
        watched_inboxes(&watches),
        ["carol"],
        "room again for the live session"
    );
}
