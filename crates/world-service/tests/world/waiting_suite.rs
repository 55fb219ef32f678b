//! The waiting reads' check (`Store::wakeable`), every backend: which watched inboxes can be
//! answered, and that asking costs the same few store commands for 10 readers or 1,000. Test
//! names print as `waiting_suite::embedded::...` and `waiting_suite::mongodb::...`.

on_every_backend! {
    use std::{collections::HashSet, time::Duration};

    use hello_common::token::TokenHash;
    use world_service::store::{ClaimChange, Store, Wakeable, WatchedRead};

    use crate::support::{limits, name, take};

    fn watching(inbox: &str, token: Option<TokenHash>) -> WatchedRead {
        let name = name(inbox);
        WatchedRead {
            inbox: name.key().into(),
            lookalike: name.lookalike_key().into(),
            token,
        }
    }

    async fn check(store: &dyn Store, watched: &[WatchedRead]) -> Wakeable {
        store.wakeable(watched.to_vec().into()).await.expect("the check answers")
    }

    /// The inboxes where a hello can be leased.
    async fn woken(store: &dyn Store, watched: &[WatchedRead]) -> HashSet<String> {
        let found = check(store, watched).await;
        assert!(found.changed.is_empty(), "no claim changed: {found:?}");
        found.leasable
    }

    /// The inboxes whose claim changed for their readers.
    async fn changed(store: &dyn Store, watched: &[WatchedRead]) -> HashSet<String> {
        check(store, watched).await.changed
    }

    #[tokio::test]
    async fn an_inbox_wakes_when_it_holds_a_hello_no_running_lease_hides() {
        let store = open(limits()).await;
        let watched = [watching("bob", None), watching("carol", None)];
        assert!(woken(&*store.store, &watched).await.is_empty());
        store.say("alice", "Bob").await;
        assert_eq!(woken(&*store.store, &watched).await, HashSet::from(["bob".to_owned()]));
        // Leased: nothing for another reader, until the lease runs out.
        let lease = store.store.lease(&name("bob"), take(10, 300)).await.unwrap();
        assert_eq!(lease.hellos.len(), 1);
        assert!(woken(&*store.store, &watched).await.is_empty());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(woken(&*store.store, &watched).await, HashSet::from(["bob".to_owned()]));
        // Delivered: gone.
        let lease = store.leased("bob", 10).await;
        store.acknowledge(&lease).await;
        assert!(woken(&*store.store, &watched).await.is_empty());
    }

    #[tokio::test]
    async fn a_reader_wakes_when_the_claim_it_was_let_in_by_changes() {
        let store = open(limits()).await;
        // "bob1" and "bobl" are look-alikes: one claim covers both inboxes.
        let token = store.claim("bob1").await;
        let owner = [watching("bob1", Some(token.hash())), watching("bobl", Some(token.hash()))];
        assert!(changed(&*store.store, &owner).await.is_empty());
        // Anyone waiting with another token, or without one, is woken (to be answered 401).
        let strangers = [
            watching("bobl", Some(TokenHash::of("hw_other"))),
            watching("dave", Some(TokenHash::of("hw_other"))),
            watching("bob1", None),
        ];
        assert_eq!(
            changed(&*store.store, &strangers).await,
            HashSet::from(["bobl".to_owned(), "dave".to_owned(), "bob1".to_owned()])
        );
        // A rotation wakes the owner's readers waiting with the old token.
        let new = hello_common::token::Token::generate();
        let rotated = store
            .store
            .rotate_token(&name("bob1"), &token.hash(), new.hash())
            .await
            .unwrap();
        assert_eq!(rotated, ClaimChange::Done);
        assert_eq!(
            changed(&*store.store, &owner).await,
            HashSet::from(["bob1".to_owned(), "bobl".to_owned()])
        );
        let owner = [watching("bobl", Some(new.hash()))];
        assert!(changed(&*store.store, &owner).await.is_empty());
        // A release wakes them too.
        let released = store.store.release_name(&name("bob1"), &new.hash()).await.unwrap();
        assert_eq!(released, ClaimChange::Done);
        assert_eq!(changed(&*store.store, &owner).await, HashSet::from(["bobl".to_owned()]));
        // And a new claim wakes whoever waits without a token on an inbox it covers.
        let anonymous = [watching("bobl", None), watching("dave", None)];
        assert!(changed(&*store.store, &anonymous).await.is_empty());
        store.claim("BOB1").await;
        assert_eq!(changed(&*store.store, &anonymous).await, HashSet::from(["bobl".to_owned()]));
    }

    #[tokio::test]
    async fn the_check_costs_at_most_two_commands_for_ten_readers_or_a_thousand() {
        let store = open(limits()).await;
        // Some inboxes hold hellos, more than a server's first batch (101) are claimed: every
        // kind of work the check does, and answers that need more than one batch.
        for index in 0..120 {
            store.claim(&format!("reader{index}")).await;
        }
        for inbox in ["reader1", "reader7", "reader500"] {
            store.say("alice", inbox).await;
        }
        let readers = |count: usize| -> Vec<WatchedRead> {
            (0..count).map(|index| watching(&format!("reader{index}"), None)).collect()
        };
        let mut costs = Vec::new();
        for count in [10, 1000, 10] {
            let before = store.store.commands().total();
            let found = check(&*store.store, &readers(count)).await;
            costs.push(store.store.commands().total() - before);
            // Claimed (and watched without a token): every reader must look.
            assert!(found.changed.contains("reader1") && found.changed.contains("reader0"), "{found:?}");
        }
        // A fixed number, whatever the readers: two at most (MongoDB: a find and an aggregate,
        // each answered in one batch; embedded: one read transaction, and a second when a
        // watched inbox holds anything).
        assert!(costs.iter().all(|cost| (1..=2).contains(cost)), "10, 1,000, 10 readers: {costs:?}");
        // Nobody waiting: nothing asked.
        let before = store.store.commands().total();
        assert_eq!(check(&*store.store, &[]).await, Wakeable::default());
        assert_eq!(store.store.commands().total(), before);
    }
}
