//! One suite, every backend (`on_every_backend!`): sending, leasing and acknowledging.
//! Confirmations and leases across a restart have their own suite (`leases_suite`), claimed names
//! theirs (`claims_suite`), the caps `caps_suite`. Test names print as `store_suite::embedded::...`
//! and `store_suite::mongodb::...`.

on_every_backend! {
    use std::{collections::HashMap, sync::Arc, time::Duration};

    use world_service::store::{Confirmation, Store, StoreError};

    use crate::support::{LONG_LEASE, hello, limits, name, take};

    #[tokio::test]
    async fn a_hello_is_delivered_once_and_then_gone() {
        let store = open(limits()).await;
        let sent = store.say("alice", "bob").await;
        assert_eq!((sent.to.as_str(), sent.from.as_str()), ("bob", "alice"));

        let lease = store.leased("bob", 100).await;
        assert_eq!(lease.hellos.len(), 1);
        assert_eq!(lease.hellos[0].id, sent.id);
        assert_eq!(lease.hellos[0].at, sent.at);
        assert_eq!(lease.remaining, 0);
        let deleted = store.acknowledge(&lease).await;
        assert_eq!(deleted, 1);

        let again = store.leased("bob", 100).await;
        assert!(again.hellos.is_empty() && again.lease_id.is_none());
    }

    #[tokio::test]
    async fn leases_take_the_oldest_first_up_to_the_limit() {
        let store = open(limits()).await;
        let mut sent = Vec::new();
        for sender in ["s1", "s2", "s3", "s4", "s5"] {
            sent.push(store.say(sender, "bob").await.id);
        }
        let first = store.leased("bob", 2).await;
        let ids: Vec<_> = first.hellos.iter().map(|hello| hello.id.clone()).collect();
        assert_eq!(ids, sent[..2]);
        assert_eq!(first.remaining, 3);
        store.acknowledge(&first).await;

        let rest = store.leased("bob", 10).await;
        let ids: Vec<_> = rest.hellos.iter().map(|hello| hello.id.clone()).collect();
        assert_eq!(ids, sent[2..]);
        assert_eq!(rest.remaining, 0);
    }

    #[tokio::test]
    async fn names_that_differ_only_in_case_share_one_inbox() {
        let store = open(limits()).await;
        store.say("Alice", "BOB").await;
        store.say("carol", "Bob").await;
        store.say("dave", "robert").await;
        let lease = store.leased("bob", 10).await;
        let senders: Vec<_> = lease.hellos.iter().map(|hello| hello.from.as_str()).collect();
        assert_eq!(senders, ["Alice", "carol"], "the sender's spelling is kept");
    }

    #[tokio::test]
    async fn a_leased_hello_is_hidden_from_other_readers() {
        let store = open(limits()).await;
        store.say("alice", "bob").await;
        let first = store.leased("bob", 10).await;
        assert_eq!(first.hellos.len(), 1);
        let second = store.leased("bob", 10).await;
        assert!(second.hellos.is_empty());
        assert_eq!(second.remaining, 0);
    }

    #[tokio::test]
    async fn remaining_counts_only_hellos_no_live_lease_holds() {
        let store = open(limits()).await;
        let mut sent = Vec::new();
        for index in 0..10 {
            sent.push(store.say(&format!("s{index}"), "bob").await.id);
        }
        let ids = |lease: &hello_common::wire::Lease| -> Vec<String> {
            lease.hellos.iter().map(|hello| hello.id.clone()).collect()
        };
        // Hellos 0-2 go to a reader whose lease runs out, 3-5 to one that stays. The first
        // lease must still hold when the second is taken, however slow the machine is at
        // that moment: it lasts 2 s, not the 200 ms the other expiry tests use.
        let expiring = store.store.lease(&name("bob"), take(3, 2_000)).await.unwrap();
        let holding = store.leased("bob", 3).await;
        assert_eq!(ids(&holding), sent[3..6]);
        assert_eq!(holding.remaining, 4);
        tokio::time::sleep(Duration::from_millis(2_200)).await;

        // 0-2 are visible again, ahead of 3-5 (leased) and 6-9.
        let next = store.leased("bob", 2).await;
        assert_eq!(ids(&next), sent[..2]);
        assert_eq!(next.remaining, 5, "hello 2 and hellos 6-9; not the 3 still leased");
        assert_eq!(expiring.hellos.len(), 3);

        store.acknowledge(&holding).await;
        let rest = store.leased("bob", 100).await;
        let expected: Vec<String> = std::iter::once(sent[2].clone()).chain(sent[6..].iter().cloned()).collect();
        assert_eq!(ids(&rest), expected);
        assert_eq!(rest.remaining, 0);
    }

    #[tokio::test]
    async fn an_unacknowledged_lease_is_delivered_again_after_its_lease() {
        let store = open(limits()).await;
        let sent = store.say("alice", "bob").await;
        let lost = store.store.lease(&name("bob"), take(10, 200)).await.unwrap();
        assert_eq!((lost.hellos.len(), lost.redelivered), (1, 0), "a first delivery");
        let later = store.say("carol", "bob").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let again = store.leased("bob", 10).await;
        let again_ids: Vec<&str> = again.hellos.iter().map(|hello| hello.id.as_str()).collect();
        assert_eq!(again_ids, [sent.id.as_str(), later.id.as_str()]);
        assert_eq!(again.redelivered, 1, "alice's hello goes out again, carol's for the first time");
    }

    #[tokio::test]
    async fn the_store_counts_the_hellos_it_holds_until_they_are_delivered() {
        let store = open(limits()).await;
        assert_eq!(store.store.stored_hellos().await.unwrap(), 0);
        for from in ["alice", "carol", "dave"] {
            store.say(from, "bob").await;
        }
        assert_eq!(store.store.stored_hellos().await.unwrap(), 3);
        let read = store.leased("bob", 2).await;
        assert_eq!(store.store.stored_hellos().await.unwrap(), 3, "leased hellos are still held");
        store.acknowledge(&read).await;
        assert_eq!(store.store.stored_hellos().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_late_acknowledgement_does_not_delete_hellos_leased_again() {
        let store = open(limits()).await;
        store.say("alice", "bob").await;
        let late = store.store.lease(&name("bob"), take(10, 200)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let current = store.leased("bob", 10).await;
        assert_eq!(current.hellos.len(), 1);
        let deleted = store.acknowledge(&late).await;
        assert_eq!(deleted, 0, "the first reader's lease had ended");
        let deleted = store.acknowledge(&current).await;
        assert_eq!(deleted, 1);
    }

    #[tokio::test]
    async fn acknowledging_twice_or_an_unknown_lease_deletes_nothing() {
        let store = open(limits()).await;
        store.say("alice", "bob").await;
        let lease = store.leased("bob", 10).await;
        let id = lease.lease_id.unwrap();
        assert_eq!(store.store.acknowledge(std::slice::from_ref(&id)).await.unwrap(), 1);
        assert_eq!(store.store.acknowledge(std::slice::from_ref(&id)).await.unwrap(), 0);
        assert_eq!(store.store.acknowledge(&["no-such-lease".to_owned()]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn one_acknowledgement_deletes_the_hellos_of_every_lease_it_names() {
        let store = open(limits()).await;
        for to in ["ann", "ben", "cal"] {
            store.say("alice", to).await;
            store.say("bruno", to).await;
        }
        let mut ids = Vec::new();
        for to in ["ann", "ben"] {
            ids.push(store.leased(to, 10).await.lease_id.unwrap());
        }
        // A lease of cal's inbox that is not named stays leased, and an unknown id is ignored.
        let cal = store.leased("cal", 1).await;
        ids.push("no-such-lease".to_owned());
        assert_eq!(store.store.acknowledge(&ids).await.unwrap(), 4);
        assert_eq!(store.store.acknowledge(&ids).await.unwrap(), 0, "acknowledging again deletes nothing");
        for to in ["ann", "ben"] {
            let after = store.leased(to, 10).await;
            assert!(after.hellos.is_empty(), "{to}: {after:?}");
        }
        let rest = store.leased("cal", 10).await;
        assert_eq!(rest.hellos.len(), 1, "cal's first hello is still leased to its lease: {rest:?}");
        assert_ne!(rest.hellos[0].id, cal.hellos[0].id);
    }

    #[tokio::test]
    async fn an_idempotent_send_stores_once_and_answers_the_first_hello() {
        let store = open(limits()).await;
        let first = store.store.send(hello("alice", "bob", Some("key-1"))).await.unwrap();
        let repeat = store.store.send(hello("alice", "bob", Some("key-1"))).await.unwrap();
        assert_eq!(first, repeat);
        let other = store.store.send(hello("alice", "bob", Some("key-2"))).await.unwrap();
        assert_ne!(first.id, other.id);
        let lease = store.leased("bob", 10).await;
        assert_eq!(lease.hellos.len(), 2);
        store.acknowledge(&lease).await;
        // Still remembered after delivery: a late retry must not deliver it twice.
        let late = store.store.send(hello("alice", "bob", Some("key-1"))).await.unwrap();
        assert_eq!(late, first);
        let lease = store.leased("bob", 10).await;
        assert!(lease.hellos.is_empty());
    }

    #[tokio::test]
    async fn an_idempotency_key_reused_for_another_hello_is_refused() {
        let store = open(limits()).await;
        store.store.send(hello("alice", "bob", Some("shared"))).await.unwrap();
        let error = store.store.send(hello("alice", "carol", Some("shared"))).await.unwrap_err();
        assert!(matches!(error, StoreError::IdempotencyKeyReused), "{error}");
        let message = error.to_string();
        assert!(!message.contains("bob") && !message.contains("alice"), "names nothing: {message}");
        let lease = store.leased("carol", 10).await;
        assert!(lease.hellos.is_empty(), "nothing stored for the refused send");
    }

    #[tokio::test]
    async fn idempotency_keys_are_scoped_to_their_sender() {
        let store = open(limits()).await;
        let alices = store.store.send(hello("alice", "bob", Some("guessable"))).await.unwrap();
        // Another sender with the same key: a hello of their own, neither refused nor
        // answered with alice's.
        let mallorys = store.store.send(hello("mallory", "bob", Some("guessable"))).await.unwrap();
        assert_ne!(alices.id, mallorys.id);
        assert_eq!(mallorys.from, "mallory");
        let other_recipient = store.store.send(hello("mallory", "carol", Some("guessable"))).await;
        assert!(matches!(other_recipient, Err(StoreError::IdempotencyKeyReused)), "mallory's own key");
        // Each sender's retry still answers their own first hello (case-insensitively).
        assert_eq!(store.store.send(hello("Alice", "bob", Some("guessable"))).await.unwrap().id, alices.id);
        let lease = store.leased("bob", 10).await;
        assert_eq!(lease.hellos.len(), 2);
    }

    #[tokio::test]
    async fn hellos_survive_closing_and_reopening_the_store() {
        let store = open(limits()).await;
        let sent = store.say("alice", "bob").await;
        let store = store.reopen().await;
        let lease = store.leased("bob", 10).await;
        assert_eq!(lease.hellos.len(), 1);
        assert_eq!(lease.hellos[0].id, sent.id);
    }

    #[tokio::test]
    async fn the_store_answers_a_ping() {
        let store = open(limits()).await;
        store.store.ping().await.unwrap();
    }

    /// 8 senders x 250 hellos to one name while 4 readers drain it: every hello is
    /// received exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_readers_receive_every_hello_exactly_once() {
        const SENDERS: usize = 8;
        const PER_SENDER: usize = 250;
        const READERS: usize = 4;
        let test = open(limits()).await;
        let store: Arc<dyn Store> = test.store.clone();

        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(PER_SENDER);
                    for _ in 0..PER_SENDER {
                        let hello = hello(&format!("sender{sender}"), "popular", None);
                        ids.push(store.send(hello).await.expect("send").id);
                    }
                    ids
                })
            })
            .collect();
        // Half the readers read as GET does (acknowledge), half as reliable reads do
        // (confirm): both ways take every hello exactly once, side by side.
        let readers: Vec<_> = (0..READERS)
            .map(|reader| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut received = Vec::new();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                    let mut idle_rounds = 0;
                    while tokio::time::Instant::now() < deadline && idle_rounds < 40 {
                        let lease = store.lease(&name("popular"), take(50, LONG_LEASE)).await.expect("lease");
                        if lease.hellos.is_empty() {
                            idle_rounds += 1;
                            tokio::time::sleep(Duration::from_millis(25)).await;
                            continue;
                        }
                        idle_rounds = 0;
                        received.extend(lease.hellos.into_iter().map(|hello| hello.id));
                        let lease_id = lease.lease_id.clone().unwrap();
                        if reader % 2 == 0 {
                            store.acknowledge(&[lease_id]).await.expect("ack");
                        } else {
                            let confirmed = store.confirm(&name("popular"), &lease_id).await.expect("confirm");
                            assert_eq!(confirmed, Confirmation::Confirmed);
                        }
                    }
                    received
                })
            })
            .collect();

        let mut sent = Vec::new();
        for sender in senders {
            sent.extend(sender.await.unwrap());
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for reader in readers {
            for id in reader.await.unwrap() {
                *counts.entry(id).or_default() += 1;
            }
        }
        let received: usize = counts.values().sum();
        let duplicates: usize = counts.values().map(|count| count - 1).sum();
        let missing = sent.iter().filter(|id| !counts.contains_key(*id)).count();
        println!(
            "[{}] exactly-once: sent={} received={received} duplicates={duplicates} missing={missing}",
            module_path!(),
            sent.len()
        );
        assert_eq!(sent.len(), SENDERS * PER_SENDER);
        assert_eq!(duplicates, 0);
        assert_eq!(missing, 0);
        assert_eq!(received, sent.len());
    }
}
