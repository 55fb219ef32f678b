//! The store's caps, every backend: `on_every_backend!` expands the same tests for
//! each. At a cap the store refuses what would pass it, says which cap, and keeps working for
//! what does not. Test names print as `caps_suite::embedded::...` and `caps_suite::mongodb::...`.

on_every_backend! {
    use hello_common::token::Token;
    use world_service::store::{StoreError, StoreLimits};

    use crate::support::{LONG_LEASE, hello, limits, name, take};

    #[tokio::test]
    async fn a_full_inbox_refuses_more_until_it_is_read() {
        let store = open(StoreLimits {
            inbox_cap: 3,
            ..limits()
        })
        .await;
        for _ in 0..3 {
            store.say("alice", "bob").await;
        }
        let error = store
            .store
            .send(hello("alice", "bob", None))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::InboxFull { cap: 3, .. }),
            "{error}"
        );
        store.say("alice", "carol").await; // other inboxes are not affected
        let lease = store.leased("bob", 2).await;
        store.acknowledge(&lease).await;
        store.say("alice", "bob").await;
        let lease = store.leased("bob", 10).await;
        assert_eq!(lease.hellos.len(), 2);
    }

    #[tokio::test]
    async fn a_full_store_refuses_sends_until_hellos_are_read() {
        let store = open(StoreLimits {
            store_cap: 3,
            ..limits()
        })
        .await;
        for (from, to) in [("a", "bob"), ("b", "carol"), ("c", "dave")] {
            store.say(from, to).await;
        }
        let refused = store
            .store
            .send(hello("d", "erin", None))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::StoreFull {
                    what: "hellos",
                    cap: 3
                }
            ),
            "{refused:?}"
        );
        let erin = store.leased("erin", 10).await;
        assert!(
            erin.hellos.is_empty(),
            "nothing stored for the refused send"
        );
        // Reading makes room, also after a restart.
        let bob = store.leased("bob", 10).await;
        store.acknowledge(&bob).await;
        let store = store.reopen().await;
        store.say("d", "erin").await;
        let refused = store
            .store
            .send(hello("e", "erin", None))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::StoreFull { .. }),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_store_full_of_idempotency_keys_refuses_new_keys_only() {
        let store = open(StoreLimits {
            idempotency_cap: 2,
            ..limits()
        })
        .await;
        let first = store
            .store
            .send(hello("a", "bob", Some("k1")))
            .await
            .unwrap();
        store
            .store
            .send(hello("b", "bob", Some("k2")))
            .await
            .unwrap();
        let refused = store
            .store
            .send(hello("c", "bob", Some("k3")))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::StoreFull {
                    what: "idempotency keys",
                    cap: 2
                }
            ),
            "{refused:?}"
        );
        // A known key is still answered, and a send without a key still stored.
        assert_eq!(
            store
                .store
                .send(hello("a", "bob", Some("k1")))
                .await
                .unwrap(),
            first
        );
        store.store.send(hello("d", "bob", None)).await.unwrap();
        let bob = store.leased("bob", 10).await;
        let senders: Vec<_> = bob.hellos.iter().map(|hello| hello.from.as_str()).collect();
        assert_eq!(senders, ["a", "b", "d"]);
    }

    #[tokio::test]
    async fn a_store_keeping_lease_record_cap_leases_refuses_reads_that_would_take_more() {
        let store = open(StoreLimits {
            lease_record_cap: 2,
            ..limits()
        })
        .await;
        for to in ["ann", "ben", "cid"] {
            store.say("zed", to).await;
        }
        // Reliable reads' leases: kept, so that their confirmations can be answered.
        store.leased("ann", 1).await;
        store.leased("ben", 1).await;
        // A read that takes nothing keeps nothing, and still answers.
        let empty = store.leased("nobody", 1).await;
        assert!(empty.hellos.is_empty());
        match store.store.lease(&name("cid"), take(1, LONG_LEASE)).await {
            Err(StoreError::StoreFull {
                what: "lease records",
                cap: 2,
            }) => {}
            other => panic!("a third lease with a cap of two: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_store_with_claim_cap_names_claimed_refuses_more() {
        let store = open(StoreLimits {
            claim_cap: 2,
            ..limits()
        })
        .await;
        for claimed in ["n1", "n2"] {
            store
                .store
                .claim_name(&name(claimed), Token::generate().hash())
                .await
                .unwrap();
        }
        let refused = store
            .store
            .claim_name(&name("n3"), Token::generate().hash())
            .await;
        assert!(
            matches!(
                refused,
                Err(StoreError::StoreFull {
                    what: "claimed names",
                    cap: 2
                })
            ),
            "{refused:?}"
        );
    }
}
