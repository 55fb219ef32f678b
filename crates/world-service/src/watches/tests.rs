use std::{future::pending, time::Duration};

use hello_common::{
    token::TokenHash,
    wire::{WatchChange, WatchedInbox},
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

const NO_WAIT: Duration = Duration::from_millis(0);

#[tokio::test]
async fn a_session_starts_with_reset_and_wakes_only_what_it_watches() {
    let watches = watches(10);
    assert!(matches!(
        watches.change("s", add(false, &[inbox("bob", None)])),
        Err(WatchError::UnknownSession)
    ));
    assert!(matches!(
        watches.wakes("s", NO_WAIT, pending()).await,
        Err(WatchError::UnknownSession)
    ));
    watches
        .change("s", add(true, &[inbox("bob", None)]))
        .unwrap();
    watches.wake_inbox("alice");
    assert!(
        watches
            .wakes("s", NO_WAIT, pending())
            .await
            .unwrap()
            .is_empty()
    );
    watches.wake_inbox("bob");
    watches.wake_inbox("bob");
    assert_eq!(
        watches.wakes("s", NO_WAIT, pending()).await.unwrap(),
        ["bob"]
    );
    assert!(
        watches
            .wakes("s", NO_WAIT, pending())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_held_call_is_answered_by_a_wake_or_by_stopping() {
    let watches = std::sync::Arc::new(watches(10));
    watches
        .change("s", add(true, &[inbox("bob", None)]))
        .unwrap();
    let held = {
        let watches = std::sync::Arc::clone(&watches);
        tokio::spawn(async move { watches.wakes("s", Duration::from_secs(30), pending()).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    watches.wake_inbox("bob");
    let woken = tokio::time::timeout(Duration::from_secs(5), held).await;
    assert_eq!(woken.unwrap().unwrap().unwrap(), ["bob"]);
    let stopped = tokio::time::timeout(
        Duration::from_secs(5),
        watches.wakes("s", Duration::from_secs(30), async {}),
    )
    .await;
    assert!(stopped.unwrap().unwrap().is_empty());
}

#[tokio::test]
async fn a_claim_change_wakes_every_inbox_it_covers() {
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
    let mut woken = watches.wakes("s", NO_WAIT, pending()).await.unwrap();
    woken.sort();
    assert_eq!(woken, ["bob1", "bobl"]);
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
async fn at_the_cap_additions_are_refused_and_removals_in_the_same_change_make_room() {
    let watches = watches(2);
    let token = TokenHash::of("hw_token");
    watches
        .change(
            "s",
            add(true, &[inbox("bob", None), inbox("bob", Some(&token))]),
        )
        .unwrap();
    assert_eq!(watches.watched().len(), 2);
    assert!(matches!(
        watches.change("s", add(false, &[inbox("carol", None)])),
        Err(WatchError::Full { cap: 2 })
    ));
    assert_eq!(
        watched_inboxes(&watches),
        ["bob", "bob"],
        "no addition applied"
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
    assert!(matches!(
        watches.change("t", add(true, &[inbox("dave", None)])),
        Err(WatchError::Full { cap: 2 })
    ));
}

#[tokio::test]
async fn a_change_sent_twice_changes_nothing_more() {
    let watches = watches(10);
    let change = add(true, &[inbox("bob", None)]);
    watches.change("s", change.clone()).unwrap();
    watches
        .change("s", add(false, &[inbox("bob", None)]))
        .unwrap();
    assert_eq!(
        watched_inboxes(&watches),
        ["bob"],
        "an addition twice is one"
    );
    let removal = WatchChange {
        reset: false,
        add: Vec::new(),
        remove: vec![inbox("bob", None)],
    };
    watches.change("s", removal.clone()).unwrap();
    watches.change("s", removal).unwrap();
    assert!(
        watched_inboxes(&watches).is_empty(),
        "one removal undoes it"
    );
}

#[tokio::test]
async fn only_inbox_keys_and_hex_hashes_are_watched() {
    let watches = watches(10);
    for bad in [
        inbox("Bob", None),
        inbox("", None),
        inbox("a b", None),
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
    assert!(watches.watched().is_empty());
}
