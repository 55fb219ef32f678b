//! MongoDB writes whose answer is lost on the way back: the store did the write, world-service
//! cannot know it. Such an outcome is unknown (504, saying what is safe), never "unavailable,
//! nothing was changed" (503); doing what the answer says is safe finishes the job exactly once.
//!
//! A [`LossyProxy`] between the store and nx-27017 passes everything through until it is armed
//! with a command name; then each request carrying that command reaches the server (and is
//! applied), but the server's answer is swallowed and the connection broken.

use std::sync::{Arc, Mutex};

use hello_common::{testing::MongoTestServer, token::Token};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use world_service::store::{Confirmation, Operation, Store, StoreError, mongo::MongoStore};

use crate::support::{hello, limits, name, take};

/// Which requests' answers to swallow: those whose bytes hold the pattern, once `skip` such
/// requests have passed; `None` passes everything.
type Armed = Arc<Mutex<Option<Trap>>>;

struct Trap {
    pattern: Vec<u8>,
    skip: usize,
    /// Whether the doomed request reaches the server (a lost answer) or not (the process died
    /// before sending it).
    reaches_server: bool,
}

struct LossyProxy {
    uri: String,
    armed: Armed,
    accepting: JoinHandle<()>,
}

impl LossyProxy {
    async fn start(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!(
            "mongodb://{}/?directConnection=true",
            listener.local_addr().unwrap()
        );
        let armed = Armed::default();
        let shared = armed.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, shared.clone()));
            }
        });
        Self {
            uri,
            armed,
            accepting,
        }
    }

    /// From now on, answers to `command` (for example `insert`) are lost.
    fn lose_answers_to(&self, command: &str) {
        // In BSON: a string element (type 0x02) named after the command.
        let pattern = [&[0x02][..], command.as_bytes(), &[0x00]].concat();
        *self.armed.lock().unwrap() = Some(Trap {
            pattern,
            skip: 0,
            reaches_server: true,
        });
    }

    /// From now on, the answers to `command` on `collection` are lost, once `skip` of them have
    /// passed (counted by the chunks read from the driver: each of these small commands is one);
    /// unless `reaches_server`, the requests are lost too.
    fn lose_nth(&self, command: &str, collection: &str, skip: usize, reaches_server: bool) {
        // The element `command: collection`: its name, then the string's length (with its NUL).
        let length = i32::try_from(collection.len() + 1).unwrap().to_le_bytes();
        let pattern = [
            &[0x02][..],
            command.as_bytes(),
            &[0x00],
            &length,
            collection.as_bytes(),
            &[0x00],
        ]
        .concat();
        *self.armed.lock().unwrap() = Some(Trap {
            pattern,
            skip,
            reaches_server,
        });
    }

    fn pass_everything(&self) {
        *self.armed.lock().unwrap() = None;
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Relays one connection. A request holding the armed pattern (once the trap's `skip` have
/// passed) dooms the connection: it reaches the server or not as the trap says, the next bytes
/// the server sends back are dropped, and both sides are closed.
async fn relay(client: TcpStream, server: TcpStream, armed: Armed) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let (doomed_tx, mut doomed) = tokio::sync::watch::channel(false);
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let Ok(read) = from_client.read(&mut buffer).await else {
                return;
            };
            if read == 0 {
                return;
            }
            let chunk = &buffer[..read];
            let mut forward = true;
            if let Some(trap) = armed.lock().unwrap().as_mut() {
                let pattern = &trap.pattern;
                if chunk.windows(pattern.len()).any(|window| window == pattern) {
                    if trap.skip == 0 {
                        doomed_tx.send_replace(true);
                        forward = trap.reaches_server;
                    } else {
                        trap.skip -= 1;
                    }
                }
            }
            if !forward {
                // The server sees the connection end, closes its side, and so ends the relay.
                let _ = to_server.shutdown().await;
                return;
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read) = from_server.read(&mut buffer).await {
        if read == 0 || *doomed.borrow_and_update() {
            break; // the answer to the doomed request, or the end: lose it
        }
        if to_client.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

async fn open_through(proxy: &LossyProxy) -> MongoStore {
    let database = MongoTestServer::shared().fresh_database();
    MongoStore::connect(&proxy.uri, &database, limits())
        .await
        .expect("connect through the proxy")
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_an_unknown_outcome_and_its_retry_stores_it_once() {
    let proxy = LossyProxy::start(MongoTestServer::shared().port()).await;
    let store = open_through(&proxy).await;

    proxy.lose_answers_to("insert");
    let lost = store.send(hello("alice", "bob", Some("key-1"))).await;
    assert!(
        matches!(
            lost,
            Err(StoreError::OutcomeUnknown {
                operation: Operation::Send,
                ..
            })
        ),
        "a send whose answer was lost must be an unknown outcome, not 'nothing was done': {lost:?}"
    );

    proxy.pass_everything();
    let retried = store
        .send(hello("alice", "bob", Some("key-1")))
        .await
        .expect("the retry with the same key");
    let again = store
        .send(hello("alice", "bob", Some("key-1")))
        .await
        .expect("a second retry");
    assert_eq!(retried.id, again.id, "the key answers with the first hello");
    let lease = store.lease(&name("bob"), take(10, 60_000)).await.unwrap();
    let ids: Vec<_> = lease.hellos.iter().map(|hello| &hello.id).collect();
    assert_eq!(ids, [&retried.id], "stored exactly once");
}

#[tokio::test]
async fn a_retry_after_the_hello_was_delivered_answers_it_and_does_not_store_it_again() {
    let proxy = LossyProxy::start(MongoTestServer::shared().port()).await;
    let store = open_through(&proxy).await;

    // The hello is inserted, and the process dies before marking its key's record stored.
    proxy.lose_nth("update", "idempotency", 0, false);
    let lost = store.send(hello("alice", "dave", Some("key-2"))).await;
    assert!(
        matches!(lost, Err(StoreError::OutcomeUnknown { .. })),
        "{lost:?}"
    );
    proxy.pass_everything();

    // Read, confirmed and deleted before the client retries.
    let lease = store.lease(&name("dave"), take(10, 60_000)).await.unwrap();
    assert_eq!(lease.hellos.len(), 1, "the hello was stored: {lease:?}");
    let receipt = lease.lease_id.clone().expect("a hello was leased");
    assert_eq!(
        store.confirm(&name("dave"), &receipt).await.unwrap(),
        Confirmation::Confirmed
    );

    let retried = store
        .send(hello("alice", "dave", Some("key-2")))
        .await
        .expect("the retry with the same key");
    assert_eq!(
        retried.id, lease.hellos[0].id,
        "the key answers the first hello"
    );
    let after = store.lease(&name("dave"), take(10, 60_000)).await.unwrap();
    assert!(
        after.hellos.is_empty(),
        "a confirmed hello is never delivered again, even to a retry of its send: {after:?}"
    );
}

#[tokio::test]
async fn a_retry_cut_short_before_showing_its_hello_is_finished_by_the_next_and_delivered_once() {
    let proxy = LossyProxy::start(MongoTestServer::shared().port()).await;
    let store = open_through(&proxy).await;

    // The first attempt records the key and dies before storing the hello.
    proxy.lose_answers_to("insert");
    let lost = store.send(hello("alice", "erin", Some("key-3"))).await;
    assert!(
        matches!(lost, Err(StoreError::OutcomeUnknown { .. })),
        "{lost:?}"
    );
    // Its retry inserts the hello hidden; the answer to reading the record again (the second
    // `find` of the record: the first is the retry's own lookup) is lost, so the retry stops
    // with its copy hidden.
    proxy.lose_nth("find", "idempotency", 1, true);
    let cut = store.send(hello("alice", "erin", Some("key-3"))).await;
    assert!(
        matches!(cut, Err(StoreError::OutcomeUnknown { .. })),
        "{cut:?}"
    );
    proxy.pass_everything();
    let hidden = store.lease(&name("erin"), take(10, 60_000)).await.unwrap();
    assert!(
        hidden.hellos.is_empty(),
        "a retry's copy stays hidden until it is settled: {hidden:?}"
    );

    let finished = store
        .send(hello("alice", "erin", Some("key-3")))
        .await
        .expect("the next retry finishes it");
    let lease = store.lease(&name("erin"), take(10, 60_000)).await.unwrap();
    let ids: Vec<_> = lease.hellos.iter().map(|hello| &hello.id).collect();
    assert_eq!(ids, [&finished.id], "stored exactly once, and shown");
    let receipt = lease.lease_id.expect("a hello was leased");
    store.confirm(&name("erin"), &receipt).await.unwrap();
    let again = store
        .send(hello("alice", "erin", Some("key-3")))
        .await
        .unwrap();
    assert_eq!(again.id, finished.id);
    let after = store.lease(&name("erin"), take(10, 60_000)).await.unwrap();
    assert!(after.hellos.is_empty(), "{after:?}");
}

#[tokio::test]
async fn a_confirmation_whose_answer_was_lost_is_an_unknown_outcome_and_repeating_it_is_safe() {
    let proxy = LossyProxy::start(MongoTestServer::shared().port()).await;
    let store = open_through(&proxy).await;
    store.send(hello("alice", "carol", None)).await.unwrap();
    let lease = store.lease(&name("carol"), take(10, 60_000)).await.unwrap();
    let receipt = lease.lease_id.expect("a hello was leased");

    // The confirmation marks the lease, then deletes its hellos: lose the deletion's answer.
    proxy.lose_answers_to("delete");
    let lost = store.confirm(&name("carol"), &receipt).await;
    assert!(
        matches!(
            lost,
            Err(StoreError::OutcomeUnknown {
                operation: Operation::Confirm,
                ..
            })
        ),
        "{lost:?}"
    );

    proxy.pass_everything();
    assert_eq!(
        store.confirm(&name("carol"), &receipt).await.unwrap(),
        Confirmation::Confirmed
    );
    let after = store.lease(&name("carol"), take(10, 1)).await.unwrap();
    assert!(
        after.hellos.is_empty(),
        "confirmed hellos are gone: {after:?}"
    );
}

#[tokio::test]
async fn a_release_cut_short_keeps_the_name_claimed_until_a_new_claim_finishes_it() {
    let proxy = LossyProxy::start(MongoTestServer::shared().port()).await;
    let store = open_through(&proxy).await;
    let owner = Token::generate();
    store.send(hello("alice", "hana", None)).await.unwrap();
    store.claim_name(&name("hana"), owner.hash()).await.unwrap();

    // The release marks the claim, then deletes the inbox: lose the deletion's answer.
    proxy.lose_answers_to("delete");
    let cut = store.release_name(&name("hana"), &owner.hash()).await;
    assert!(
        matches!(
            cut,
            Err(StoreError::OutcomeUnknown {
                operation: Operation::Release,
                ..
            })
        ),
        "{cut:?}"
    );
    proxy.pass_everything();
    // Half-way, the name is still claimed: nobody reads its inbox without the owner's token.
    let claim = store.claim_covering(&name("hana")).await.unwrap();
    assert!(claim.is_some_and(|claim| claim.token.matches(&owner.hash())));

    // A new claim finishes the release first: the new owner never sees the old hellos.
    let next = Token::generate();
    store.claim_name(&name("hana"), next.hash()).await.unwrap();
    let claim = store.claim_covering(&name("hana")).await.unwrap().unwrap();
    assert!(claim.token.matches(&next.hash()));
    let read = store.lease(&name("hana"), take(10, 60_000)).await.unwrap();
    assert!(read.hellos.is_empty(), "{read:?}");
}
