use std::net::{IpAddr, Ipv4Addr};

use hello_common::token::TokenHash;
use prometheus::IntGauge;

use super::{WaitLimits, Waiting};

fn waiting(per_client: u32, per_pod: u32) -> Waiting {
    Waiting::new(
        WaitLimits {
            per_client,
            per_pod,
        },
        IntGauge::new("waiting", "waiting").unwrap(),
    )
}

fn client(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[test]
fn the_first_change_resets_and_then_only_transitions_are_sent() {
    let waiting = waiting(10, 100);
    let first = waiting.take_changes();
    assert!(first.reset && first.add.is_empty());
    let token = TokenHash::of("hw_token");
    let a = waiting.enter(client(1), "bob", Some(token)).unwrap();
    let b = waiting.enter(client(2), "bob", Some(token)).unwrap();
    let c = waiting.enter(client(2), "bob", None).unwrap();
    let changes = waiting.take_changes();
    assert!(!changes.reset);
    assert_eq!(
        changes.add.len(),
        2,
        "bob with the token, bob without: {changes:?}"
    );
    drop(a);
    assert!(
        waiting.take_changes().remove.is_empty(),
        "b still waits with the token"
    );
    drop(b);
    drop(c);
    let changes = waiting.take_changes();
    assert_eq!((changes.add.len(), changes.remove.len()), (0, 2));
    // Waiting and leaving between two changes sends nothing.
    drop(waiting.enter(client(1), "carol", None).unwrap());
    let changes = waiting.take_changes();
    assert!(
        changes.add.is_empty() && changes.remove.is_empty(),
        "{changes:?}"
    );
}

#[test]
fn limits_per_client_and_per_pod_refuse_with_retry_after() {
    let waiting = waiting(2, 3);
    let _a = waiting.enter(client(1), "a", None).unwrap();
    let _b = waiting.enter(client(1), "b", None).unwrap();
    let refused = waiting.enter(client(1), "c", None).unwrap_err();
    assert_eq!(refused.status, 429);
    assert!(refused.retry_after.is_some());
    let _c = waiting.enter(client(2), "c", None).unwrap();
    let refused = waiting.enter(client(3), "d", None).unwrap_err();
    assert_eq!(refused.status, 503);
    drop(_a);
    waiting.enter(client(3), "d", None).unwrap();
}

#[test]
fn a_resync_sends_the_whole_set_instead_of_what_was_pending() {
    let waiting = waiting(10, 100);
    waiting.take_changes();
    let _a = waiting.enter(client(1), "bob", None).unwrap();
    assert_eq!(waiting.take_changes().add.len(), 1);
    let b = waiting.enter(client(1), "carol", None).unwrap();
    let _c = waiting.enter(client(1), "dave", None).unwrap();
    drop(b);
    waiting.resync();
    let changes = waiting.take_changes();
    assert!(changes.reset && changes.remove.is_empty());
    let mut added: Vec<_> = changes
        .add
        .into_iter()
        .map(|watched| watched.inbox)
        .collect();
    added.sort();
    assert_eq!(added, ["bob", "dave"]);
    let after = waiting.take_changes();
    assert!(!after.reset && after.add.is_empty() && after.remove.is_empty());
}

#[tokio::test]
async fn a_wake_reaches_every_reader_of_the_inbox_and_no_other() {
    let waiting = waiting(10, 100);
    let bob = waiting.enter(client(1), "bob", None).unwrap();
    let bob_too = waiting.enter(client(2), "bob", None).unwrap();
    let carol = waiting.enter(client(1), "carol", None).unwrap();
    let (mut woken_bob, mut woken_bob_too, mut woken_carol) = (
        Box::pin(bob.woken()),
        Box::pin(bob_too.woken()),
        Box::pin(carol.woken()),
    );
    woken_bob.as_mut().enable();
    woken_bob_too.as_mut().enable();
    woken_carol.as_mut().enable();
    waiting.wake_every(&["bob".to_owned()]);
    let soon = std::time::Duration::from_secs(1);
    tokio::time::timeout(soon, woken_bob).await.unwrap();
    tokio::time::timeout(soon, woken_bob_too).await.unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), woken_carol)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_hello_wakes_one_reader_of_its_inbox_and_a_claim_change_every_one() {
    let waiting = waiting(10, 100);
    let first = waiting.enter(client(1), "bob", None).unwrap();
    let second = waiting.enter(client(2), "bob", None).unwrap();
    let (mut one, mut two) = (Box::pin(first.woken()), Box::pin(second.woken()));
    one.as_mut().enable();
    two.as_mut().enable();
    waiting.wake_one_each(&["bob".to_owned()]);
    let soon = std::time::Duration::from_millis(200);
    let woken_first = tokio::time::timeout(soon, one.as_mut()).await.is_ok();
    let woken_second = tokio::time::timeout(soon, two.as_mut()).await.is_ok();
    assert!(
        woken_first ^ woken_second,
        "exactly one looks: {woken_first} {woken_second}"
    );
    let (mut one, mut two) = (Box::pin(first.woken()), Box::pin(second.woken()));
    one.as_mut().enable();
    two.as_mut().enable();
    waiting.wake_every(&["bob".to_owned()]);
    tokio::time::timeout(soon, one).await.unwrap();
    tokio::time::timeout(soon, two).await.unwrap();
}

#[test]
fn an_ipv6_client_counts_as_its_64_and_a_mapped_ipv4_one_as_itself() {
    let waiting = waiting(2, 100);
    let host = |last: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, last));
    let _a = waiting.enter(host(1), "a", None).unwrap();
    let _b = waiting.enter(host(2), "b", None).unwrap();
    assert_eq!(waiting.enter(host(3), "c", None).unwrap_err().status, 429);
    let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1));
    waiting.enter(other, "c", None).unwrap();
    let mapped = "::ffff:192.0.2.1".parse::<IpAddr>().unwrap();
    let _d = waiting.enter(mapped, "d", None).unwrap();
    let _e = waiting
        .enter("192.0.2.1".parse().unwrap(), "e", None)
        .unwrap();
    assert_eq!(waiting.enter(mapped, "f", None).unwrap_err().status, 429);
}
