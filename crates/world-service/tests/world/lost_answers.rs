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

/// Which command's answers to swallow; `None` passes everything.
type Armed = Arc<Mutex<Option<&'static str>>>;

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
    fn lose_answers_to(&self, command: &'static str) {
        *self.armed.lock().unwrap() = Some(command);
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

/// Relays one connection. A request whose command document starts with the armed command (in
/// BSON: a string element, type 0x02, named after the command) dooms the connection: the next
/// bytes the server sends back are dropped, and both sides are closed.
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
            if let Some(command) = *armed.lock().unwrap() {
                let element = [&[0x02][..], command.as_bytes(), &[0x00]].concat();
                if chunk.windows(element.len()).any(|window| window == element) {
                    doomed_tx.send_replace(true);
                }
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
