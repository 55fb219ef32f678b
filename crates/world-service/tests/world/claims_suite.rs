//! Claimed names, every backend: `on_every_backend!` expands the same tests for
//! each: claims covering their look-alikes, rotations, releases that clear every inbox a claim
//! covered, reads checked under one claim, the claim cap. Test names print as
//! `claims_suite::embedded::...` and `claims_suite::mongodb::...`.

on_every_backend! {
    use std::time::Duration;

    use hello_common::token::Token;
    use world_service::store::{ClaimChange, Confirmation, StoreError};

    use crate::support::{LONG_LEASE, limits, name};

    #[tokio::test]
    async fn a_claimed_name_covers_its_lookalikes_and_refuses_a_second_claim() {
        let store = open(limits()).await;
        let token = store.claim("Bob").await;
        for covered in ["bob", "BOB", "ｂｏｂ", "𝐛𝐨𝐛"] {
            let claim = store.store.claim_covering(&name(covered)).await.unwrap();
            let claim =
                claim.unwrap_or_else(|| panic!("{covered} is covered by Bob's claim"));
            assert_eq!((claim.name.as_str(), claim.inbox.as_str()), ("Bob", "bob"));
            assert!(claim.token.matches(&token.hash()));
            let again = store
                .store
                .claim_name(&name(covered), Token::generate().hash())
                .await;
            assert!(
                matches!(again, Err(StoreError::NameTaken { .. })),
                "{covered}: {again:?}"
            );
        }
        assert!(
            store
                .store
                .claim_covering(&name("bobby"))
                .await
                .unwrap()
                .is_none()
        );
        let found = store.claim_by_token(&token.hash()).await
            .unwrap();
        assert_eq!(found.name, "Bob");
        assert!(
            store
                .store
                .claim_by_token(&Token::generate().hash())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn claims_survive_closing_and_reopening_the_store() {
        let store = open(limits()).await;
        let token = store.claim("carol").await;
        let store = store.reopen().await;
        let claim = store
            .store
            .claim_covering(&name("carol"))
            .await
            .unwrap()
            .unwrap();
        assert!(claim.token.matches(&token.hash()));
    }

    #[tokio::test]
    async fn a_rotated_token_replaces_the_old_one_at_once() {
        let store = open(limits()).await;
        let (old, new) = (Token::generate(), Token::generate());
        store
            .store
            .claim_name(&name("dora"), old.hash())
            .await
            .unwrap();
        let rotate = |who: &'static str, current: Token| {
            let store = store.store.clone();
            async move {
                store
                    .rotate_token(&name(who), &current.hash(), Token::generate().hash())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            rotate("dora", Token::generate()).await,
            ClaimChange::WrongToken
        );
        assert_eq!(
            store
                .store
                .rotate_token(&name("DORA"), &old.hash(), new.hash())
                .await
                .unwrap(),
            ClaimChange::Done
        );
        let claim = store
            .store
            .claim_covering(&name("dora"))
            .await
            .unwrap()
            .unwrap();
        assert!(claim.token.matches(&new.hash()) && !claim.token.matches(&old.hash()));
        assert!(
            store.claim_by_token(&old.hash()).await
                .is_none()
        );
        assert_eq!(
            store.claim_by_token(&new.hash()).await
                .unwrap()
                .name,
            "dora"
        );
        assert_eq!(
            store
                .store
                .rotate_token(&name("dora"), &old.hash(), Token::generate().hash())
                .await
                .unwrap(),
            ClaimChange::WrongToken,
            "the old token stopped working"
        );
        // Only the claimed name itself is rotated or released, not a look-alike of it.
        assert_eq!(
            store
                .store
                .rotate_token(&name("ｄｏｒａ"), &new.hash(), Token::generate().hash())
                .await
                .unwrap(),
            ClaimChange::NotClaimed
        );
        assert_eq!(
            rotate("nobody", Token::generate()).await,
            ClaimChange::NotClaimed
        );
    }

    #[tokio::test]
    async fn releasing_a_name_frees_it_and_deletes_its_waiting_hellos() {
        let store = open(limits()).await;
        let token = Token::generate();
        store.say("alice", "erin").await;
        store.say("bob", "erin").await;
        store.say("carol", "frank").await;
        store
            .store
            .claim_name(&name("erin"), token.hash())
            .await
            .unwrap();
        // One of erin's hellos is leased when the name is released: it goes too.
        let leased = store.lease_as_checked("erin", 1, LONG_LEASE).await;
        assert_eq!(leased.hellos.len(), 1);

        assert_eq!(
            store
                .store
                .release_name(&name("erin"), &Token::generate().hash())
                .await
                .unwrap(),
            ClaimChange::WrongToken
        );
        assert_eq!(
            store
                .store
                .release_name(&name("Erin"), &token.hash())
                .await
                .unwrap(),
            ClaimChange::Done
        );
        assert!(
            store
                .store
                .claim_covering(&name("erin"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store.claim_by_token(&token.hash()).await
                .is_none()
        );
        assert_eq!(
            store
                .store
                .release_name(&name("erin"), &token.hash())
                .await
                .unwrap(),
            ClaimChange::NotClaimed
        );

        // A later owner finds an empty inbox.
        store.claim("erin").await;
        let read = store.lease_as_checked("erin", 10, LONG_LEASE).await;
        assert!(read.hellos.is_empty(), "{read:?}");
        assert_eq!(read.remaining, 0);
        // A confirmation of the old lease deletes nothing and still answers.
        let receipt = leased.lease_id.unwrap();
        assert_eq!(
            store.store.confirm(&name("erin"), &receipt).await.unwrap(),
            Confirmation::Confirmed
        );
        // Other inboxes are untouched; new hellos to the name arrive as usual.
        let other = store.leased("frank", 10).await;
        assert_eq!(other.hellos.len(), 1);
        store.say("gina", "erin").await;
        let read = store.lease_as_checked("erin", 10, LONG_LEASE).await;
        assert_eq!(read.hellos.len(), 1);
    }

    #[tokio::test]
    async fn a_reader_checked_before_a_claim_takes_nothing_sent_under_it() {
        let store = open(limits()).await;
        // The reader was checked while no claim covered the inbox (covering_claim
        // None); then the name was claimed and sent to, before its lease.
        store.claim("nina").await;
        store.say("bob", "NINA").await;
        let read = store.leased("nina", 10).await;
        assert!(read.hellos.is_empty(), "{read:?}");
        assert_eq!(
            store
                .lease_as_checked("nina", 10, LONG_LEASE)
                .await
                .hellos
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_release_deletes_the_hellos_of_every_inbox_its_claim_covered() {
        let store = open(limits()).await;
        let token = Token::generate();
        // Sent before and after the claim, to the name and to look-alikes of it.
        store.say("alice", "ｃａｒｏｌ").await;
        store
            .store
            .claim_name(&name("carol"), token.hash())
            .await
            .unwrap();
        for to in ["carol", "CAROL", "ｃａｒｏｌ", "𝐜𝐚𝐫𝐨𝐥", "caro1"] {
            store.say("bob", to).await;
        }
        store.say("bob", "dave").await;
        // One look-alike's hello is leased by the owner when the name is released; its
        // lease runs out before the reads after reopening below.
        let leased = store.lease_as_checked("𝐜𝐚𝐫𝐨𝐥", 1, 100).await;
        assert_eq!(leased.hellos.len(), 1);
        assert_eq!(
            store
                .store
                .release_name(&name("carol"), &token.hash())
                .await
                .unwrap(),
            ClaimChange::Done
        );
        // Nobody who never held the token reads any of them, now or after the lease.
        for to in ["carol", "ｃａｒｏｌ", "𝐜𝐚𝐫𝐨𝐥", "caro1"] {
            let read = store.lease_as_checked(to, 10, 100).await;
            assert!(read.hellos.is_empty(), "{to}: {read:?}");
            assert_eq!(read.remaining, 0, "{to}");
        }
        assert_eq!(
            store
                .lease_as_checked("dave", 10, LONG_LEASE)
                .await
                .hellos
                .len(),
            1
        );
        let store = store.reopen().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        for to in ["carol", "ｃａｒｏｌ", "𝐜𝐚𝐫𝐨𝐥", "caro1"] {
            let read = store.lease_as_checked(to, 10, LONG_LEASE).await;
            assert!(read.hellos.is_empty(), "{to} after reopening: {read:?}");
        }
        // The inboxes work as usual for what is sent after the release.
        store.say("erin", "ｃａｒｏｌ").await;
        assert_eq!(
            store
                .lease_as_checked("ｃａｒｏｌ", 10, LONG_LEASE)
                .await
                .hellos
                .len(),
            1
        );
    }
}
