//! The embedded store forgets what is due while it is busy, not only when it is idle: under a
//! steady stream of writes (never the 200 ms of quiet the idle sweep waits for), a confirmed
//! lease whose memory has run out is forgotten.

use std::{sync::Arc, time::Duration};

use world_service::store::{Confirmation, Store, StoreLimits, embedded::EmbeddedStore};

use crate::support::{hello, name, take};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_embedded_store_still_forgets_what_is_due() {
    let dir = tempfile::tempdir().unwrap();
    // Leases are remembered for their length plus this: 50 ms.
    let limits = StoreLimits {
        inbox_cap: 1_000_000,
        store_cap: 10_000_000,
        idempotency_cap: 1_000_000,
        idempotency_ttl: Duration::from_millis(50),
        claim_cap: 1_000_000,
        lease_record_cap: 1_000_000,
    };
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), limits).unwrap());
    store.send(hello("alice", "bob", None)).await.unwrap();
    let read = store.lease(&name("bob"), take(10, 100)).await.unwrap();
    let receipt = read.lease_id.unwrap();
    assert_eq!(
        store.confirm(&name("bob"), &receipt).await.unwrap(),
        Confirmation::Confirmed
    );

    // Keep the writer busy: one send after another, never a pause.
    let busy = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                store.send(hello("load", "carol", None)).await.unwrap();
            }
        })
    };
    // Bounded, and only an upper bound: the sweep runs every second while busy.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut forgotten = false;
    while tokio::time::Instant::now() < deadline {
        if store.confirm(&name("bob"), &receipt).await.unwrap() == Confirmation::Unknown {
            forgotten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    busy.abort();
    assert!(
        forgotten,
        "the confirmed lease was never forgotten while the store was busy"
    );
}
