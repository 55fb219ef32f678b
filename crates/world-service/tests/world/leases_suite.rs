//! One suite, every backend (as `store_suite`): confirming a reliable read's lease, and leases
//! across closing and reopening the store. Test names print as `leases_suite::embedded::...` and
//! `leases_suite::mongodb::...`.

on_every_backend! {
    use std::time::Duration;

    use world_service::store::Confirmation;

    use crate::support::{limits, name, take};

    #[tokio::test]
    async fn a_confirmed_lease_deletes_its_hellos_and_confirms_again() {
        let store = open(limits()).await;
        store.say("alice", "bob").await;
        store.say("carol", "bob").await;
        let read = store.leased("bob", 1).await;
        assert!(
            read.expires_at
                .as_deref()
                .is_some_and(|at| at.ends_with('Z')),
            "{read:?}"
        );
        let receipt = read.lease_id.clone().unwrap();
        assert_eq!(
            store.store.confirm(&name("Bob"), &receipt).await.unwrap(),
            Confirmation::Confirmed
        );
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Confirmed,
            "a repeat"
        );
        let rest = store.leased("bob", 10).await;
        let senders: Vec<_> = rest
            .hellos
            .iter()
            .map(|hello| hello.from.as_str())
            .collect();
        assert_eq!(senders, ["carol"], "alice's hello is gone for good");
        // Still remembered after a restart.
        let store = store.reopen().await;
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Confirmed
        );
    }

    #[tokio::test]
    async fn a_lease_confirmed_too_late_is_expired_and_its_hellos_come_back_in_order() {
        let store = open(limits()).await;
        for sender in ["s1", "s2", "s3"] {
            store.say(sender, "bob").await;
        }
        let read = store.store.lease(&name("bob"), take(2, 200)).await.unwrap();
        let receipt = read.lease_id.clone().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Expired
        );
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Expired,
            "a repeat"
        );
        let again = store.leased("bob", 10).await;
        let senders: Vec<_> = again
            .hellos
            .iter()
            .map(|hello| hello.from.as_str())
            .collect();
        assert_eq!(senders, ["s1", "s2", "s3"]);
        // The expired lease cannot delete the hellos a later read holds.
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Expired
        );
        let second = again.lease_id.clone().unwrap();
        assert_eq!(
            store.store.confirm(&name("bob"), &second).await.unwrap(),
            Confirmation::Confirmed
        );
    }

    /// A graceful stop (a rolling restart) must not give a running lease's hellos to
    /// another reader, nor forget its receipt.
    #[tokio::test]
    async fn a_lease_running_when_the_store_closes_still_holds_after_reopening() {
        let store = open(limits()).await;
        for sender in ["s1", "s2", "s3"] {
            store.say(sender, "bob").await;
        }
        let read = store.leased("bob", 2).await;
        let receipt = read.lease_id.clone().unwrap();
        let store = store.reopen().await;
        let other = store.leased("bob", 10).await;
        let senders: Vec<_> = other
            .hellos
            .iter()
            .map(|hello| hello.from.as_str())
            .collect();
        assert_eq!(
            (senders, other.remaining),
            (vec!["s3"], 0),
            "s1 and s2 are still leased"
        );
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Confirmed
        );
        store.acknowledge(&other).await;
        let after = store.leased("bob", 10).await;
        assert_eq!(
            (after.hellos.len(), after.remaining),
            (0, 0),
            "all three delivered once"
        );
    }

    /// Leases taken between and around other readers' leases delete exactly their own
    /// hellos: one that skips a hello held by another must leave it alone.
    #[tokio::test]
    async fn interleaved_leases_delete_exactly_the_hellos_they_took() {
        let store = open(limits()).await;
        let mut sent = Vec::new();
        for sender in ["s1", "s2", "s3", "s4", "s5", "s6"] {
            sent.push(store.say(sender, "bob").await.id);
        }
        let ids = |lease: &hello_common::wire::Lease| -> Vec<String> {
            lease.hellos.iter().map(|hello| hello.id.clone()).collect()
        };
        // b must still hold when c is taken, however slow the machine is: 2 s.
        let a = store.leased("bob", 2).await;
        let b = store
            .store
            .lease(&name("bob"), take(1, 2_000))
            .await
            .unwrap();
        let c = store.leased("bob", 1).await;
        assert_eq!(
            (ids(&a), ids(&b), ids(&c)),
            (
                sent[0..2].to_vec(),
                sent[2..3].to_vec(),
                sent[3..4].to_vec()
            )
        );
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        // b ran out: d takes s3 again, skips s4 (c's), and takes s5 and s6.
        let d = store.leased("bob", 10).await;
        assert_eq!(ids(&d), [sent[2].clone(), sent[4].clone(), sent[5].clone()]);
        assert_eq!((d.redelivered, d.remaining), (1, 0));
        assert_eq!(store.acknowledge(&d).await, 3, "s3, s5 and s6, not c's s4");
        assert_eq!(store.store.stored_hellos().await.unwrap(), 3);
        assert_eq!(
            store
                .store
                .confirm(&name("bob"), c.lease_id.as_deref().unwrap())
                .await
                .unwrap(),
            Confirmation::Confirmed
        );
        // The embedded store answers a confirmation at once and deletes in its writer's
        // next batch: done once the writer answered a later job.
        store.store.ping().await.unwrap();
        assert_eq!(
            store.store.stored_hellos().await.unwrap(),
            2,
            "c deleted s4"
        );
        assert_eq!(store.acknowledge(&a).await, 2);
        assert_eq!(store.acknowledge(&b).await, 0, "b's hello went to d");
        assert_eq!(store.store.stored_hellos().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_lease_that_ran_out_before_the_store_closed_is_expired_after_reopening() {
        let store = open(limits()).await;
        store.say("s1", "bob").await;
        let read = store
            .store
            .lease(&name("bob"), take(10, 200))
            .await
            .unwrap();
        let receipt = read.lease_id.clone().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let store = store.reopen().await;
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Expired
        );
        let again = store.leased("bob", 10).await;
        assert_eq!(
            (again.hellos.len(), again.redelivered),
            (1, 1),
            "it goes out again, counted"
        );
    }

    #[tokio::test]
    async fn an_unknown_lease_or_another_inboxs_is_not_confirmed() {
        let store = open(limits()).await;
        store.say("alice", "bob").await;
        let read = store.leased("bob", 10).await;
        let receipt = read.lease_id.clone().unwrap();
        assert_eq!(
            store.store.confirm(&name("carol"), &receipt).await.unwrap(),
            Confirmation::Unknown
        );
        assert_eq!(
            store
                .store
                .confirm(&name("bob"), "no-such-lease")
                .await
                .unwrap(),
            Confirmation::Unknown
        );
        // Nothing was deleted by those: the lease still confirms.
        assert_eq!(
            store.store.confirm(&name("bob"), &receipt).await.unwrap(),
            Confirmation::Confirmed
        );
    }
}
