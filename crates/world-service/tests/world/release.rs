//! A release against the sends that race it (MongoDB), and against hellos an earlier release
//! wrote (both backends).
//!
//! On MongoDB a release is three single-document steps (mark the claim, delete the hellos of
//! every inbox it covered, delete the claim), and a send is a claim lookup then an insert: a send
//! that looked the claim up before the release began can store its hello after the release
//! deleted the inbox. Such a hello carries the claim it was sent under (`covered_by`) and is never
//! leased by a reader checked under no claim or another one. The embedded store runs a release
//! and the sends around it one after the other in its writer, so there is no race to test there.

use std::{sync::Arc, time::Duration};

use ::mongodb::bson::{Document, doc};
use hello_common::{testing::MongoTestServer, token::Token};
use world_service::store::{ClaimChange, Store, StoreError, mongo::MongoStore};

use crate::support::{hello, limits, name};

async fn store_and_hellos() -> (MongoStore, ::mongodb::Collection<Document>) {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    let store = MongoStore::connect(&uri, &database, limits())
        .await
        .unwrap();
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    (store, client.database(&database).collection("hellos"))
}

async fn lease_unclaimed(store: &dyn Store, to: &str) -> hello_common::wire::Lease {
    store
        .lease(&name(to), crate::support::take(1_000, 60_000))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hello_stored_after_the_release_deleted_its_inbox_is_never_read_by_others() {
    let (store, hellos) = store_and_hellos().await;
    let token = Token::generate();
    store
        .claim_name(&name("carol"), token.hash())
        .await
        .unwrap();
    // A send that looked the claim up before the release: its hello is stamped with the claim.
    let raced = store.send(hello("bob", "ｃａｒｏｌ", None)).await.unwrap();
    let stamped: Document = hellos
        .find_one(doc! { "_id": &raced.id })
        .await
        .unwrap()
        .unwrap();
    assert!(stamped.get_i64("covered_by").is_ok(), "{stamped}");
    let straggler = stamped.clone();
    assert_eq!(
        store
            .release_name(&name("carol"), &token.hash())
            .await
            .unwrap(),
        ClaimChange::Done
    );
    // ... and its insert lands after the release deleted the inbox.
    hellos.insert_one(straggler).await.unwrap();
    let read = lease_unclaimed(&store, "ｃａｒｏｌ").await;
    assert!(read.hellos.is_empty(), "{read:?}");
    assert_eq!(read.remaining, 0);
    // Not for a later owner either: it was sent under another claim.
    let later = Token::generate();
    store
        .claim_name(&name("carol"), later.hash())
        .await
        .unwrap();
    let claimed_at = store
        .claim_covering(&name("carol"))
        .await
        .unwrap()
        .unwrap()
        .claimed_at;
    let read = store
        .lease(
            &name("ｃａｒｏｌ"),
            world_service::store::LeaseRequest {
                covering_claim: Some(claimed_at),
                confirmable: true,
                ..crate::support::take(10, 60_000)
            },
        )
        .await
        .unwrap();
    assert!(read.hellos.is_empty(), "{read:?}");
    // Hellos sent with no claim covering the inbox are read as always.
    store
        .release_name(&name("carol"), &later.hash())
        .await
        .unwrap();
    store.send(hello("dora", "ｃａｒｏｌ", None)).await.unwrap();
    assert_eq!(lease_unclaimed(&store, "ｃａｒｏｌ").await.hellos.len(), 1);
}

#[tokio::test]
async fn a_send_to_a_name_being_released_is_refused_and_stores_nothing() {
    let (store, hellos) = store_and_hellos().await;
    let token = Token::generate();
    store.claim_name(&name("erin"), token.hash()).await.unwrap();
    // A release that stopped after marking the claim.
    hellos
        .client()
        .database(hellos.namespace().db.as_str())
        .collection::<Document>("names")
        .update_one(doc! {}, doc! { "$set": { "releasing_at": 1_i64 } })
        .await
        .unwrap();
    let refused = store.send(hello("bob", "ERIN", None)).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(hellos.count_documents(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn a_release_finds_look_alike_hellos_an_earlier_release_stored_without_their_key() {
    let (store, hellos) = store_and_hellos().await;
    let token = Token::generate();
    store.claim_name(&name("gus"), token.hash()).await.unwrap();
    store.send(hello("bob", "ｇｕｓ", None)).await.unwrap();
    // As an earlier release wrote it, during a rolling update: no look-alike key, no stamp.
    hellos
        .update_many(
            doc! {},
            doc! { "$unset": { "lookalike": "", "covered_by": "" } },
        )
        .await
        .unwrap();
    store
        .release_name(&name("gus"), &token.hash())
        .await
        .unwrap();
    assert_eq!(hellos.count_documents(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn sends_racing_a_release_leave_nothing_sent_before_it_readable() {
    let (store, _) = store_and_hellos().await;
    let store: Arc<dyn Store> = Arc::new(store);
    let token = Token::generate();
    store.claim_name(&name("hana"), token.hash()).await.unwrap();
    let lookalikes = ["hana", "HANA", "ｈａｎａ", "𝐡𝐚𝐧𝐚"];
    // Senders to the name and its look-alikes, bounded in count, racing one release, which
    // begins once some sends are stored (however fast this machine is).
    let stored = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (store, stored) = (Arc::clone(&store), Arc::clone(&stored));
            tokio::spawn(async move {
                let mut finished = Vec::new();
                for round in 0..40 {
                    let to = lookalikes[(sender + round) % lookalikes.len()];
                    if let Ok(sent) = store.send(hello("ivan", to, None)).await {
                        finished.push((sent.id, std::time::Instant::now()));
                        stored.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                finished
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stored.load(std::sync::atomic::Ordering::SeqCst) < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "no send was stored within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let release_began = std::time::Instant::now();
    assert_eq!(
        store
            .release_name(&name("hana"), &token.hash())
            .await
            .unwrap(),
        ClaimChange::Done
    );
    let mut sent_before = Vec::new();
    for sender in senders {
        for (id, finished) in sender.await.unwrap() {
            if finished < release_began {
                sent_before.push(id);
            }
        }
    }
    assert!(
        !sent_before.is_empty(),
        "no send finished before the release"
    );
    let mut readable = Vec::new();
    for to in ["hana", "ｈａｎａ", "𝐡𝐚𝐧𝐚"] {
        let read = lease_unclaimed(store.as_ref(), to).await;
        readable.extend(read.hellos.into_iter().map(|hello| hello.id));
    }
    let leaked: Vec<_> = readable
        .iter()
        .filter(|id| sent_before.contains(id))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} hellos sent under the claim are readable after its release",
        leaked.len()
    );
}

#[tokio::test]
async fn an_embedded_store_indexed_under_other_look_alike_rules_is_indexed_again_on_open() {
    use redb::{ReadableTable, TableDefinition};
    use world_service::store::embedded::{DATABASE_FILE, EmbeddedStore};
    const LOOKALIKE_INBOXES: TableDefinition<(&str, &str), ()> =
        TableDefinition::new("lookalike_inboxes");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), limits()).unwrap();
        store.send(hello("bob", "ｊｉｌｌ", None)).await.unwrap();
        store.close().await.unwrap();
    }
    {
        // As a store indexed under other look-alike rules (or before the index: no mark at all).
        let database = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
        let transaction = database.begin_write().unwrap();
        {
            let mut index = transaction.open_table(LOOKALIKE_INBOXES).unwrap();
            let keys: Vec<(String, String)> = index
                .iter()
                .unwrap()
                .map(|entry| {
                    let (key, _) = entry.unwrap();
                    let (lookalike, inbox) = key.value();
                    (lookalike.to_owned(), inbox.to_owned())
                })
                .collect();
            assert_eq!(keys.len(), 1, "the send indexed its inbox: {keys:?}");
            for (lookalike, inbox) in &keys {
                index.remove((lookalike.as_str(), inbox.as_str())).unwrap();
                // Under a key of other rules (a library's Unicode update), found by no release.
                index
                    .insert(("a key of other rules", inbox.as_str()), ())
                    .unwrap();
            }
            let mut meta = transaction.open_table(META).unwrap();
            meta.insert("lookalike_inboxes_version", 1).unwrap();
        }
        transaction.commit().unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), limits()).unwrap();
    let token = Token::generate();
    store.claim_name(&name("jill"), token.hash()).await.unwrap();
    store
        .release_name(&name("jill"), &token.hash())
        .await
        .unwrap();
    let read = lease_unclaimed(&store, "ｊｉｌｌ").await;
    assert!(read.hellos.is_empty(), "{read:?}");
}

#[tokio::test]
async fn mongodb_look_alike_keys_stored_under_other_rules_are_recomputed_on_open() {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    let store = MongoStore::connect(&uri, &database, limits())
        .await
        .unwrap();
    store.send(hello("bob", "ｋａｙ", None)).await.unwrap();
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    let hellos = client.database(&database).collection::<Document>("hellos");
    // As a library's Unicode update would leave them: keys of other rules, and their version.
    hellos
        .update_many(
            doc! {},
            doc! { "$set": { "lookalike": "a key of other rules" } },
        )
        .await
        .unwrap();
    client
        .database(&database)
        .collection::<Document>("meta")
        .update_one(
            doc! { "_id": "lookalike_keys" },
            doc! { "$set": { "version": 1_i64 } },
        )
        .await
        .unwrap();
    drop(store);
    let store = MongoStore::connect(&uri, &database, limits())
        .await
        .unwrap();
    let token = Token::generate();
    store.claim_name(&name("kay"), token.hash()).await.unwrap();
    store
        .release_name(&name("kay"), &token.hash())
        .await
        .unwrap();
    assert_eq!(hellos.count_documents(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn a_retried_send_finishing_after_the_release_keeps_the_claim_it_was_sent_under() {
    let (store, hellos) = store_and_hellos().await;
    let token = Token::generate();
    store.claim_name(&name("lena"), token.hash()).await.unwrap();
    let first = store
        .send(hello("bob", "lena", Some("key-1")))
        .await
        .unwrap();
    // The first attempt's answer was lost before it marked its key stored (a 504 for the client).
    hellos
        .client()
        .database(hellos.namespace().db.as_str())
        .collection::<Document>("idempotency")
        .update_many(doc! {}, doc! { "$unset": { "stored_at": "" } })
        .await
        .unwrap();
    store
        .release_name(&name("lena"), &token.hash())
        .await
        .unwrap();
    // The retry, as the 504 says to: the same hello, stored under the released claim.
    let again = store
        .send(hello("bob", "lena", Some("key-1")))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    let read = lease_unclaimed(&store, "lena").await;
    assert!(read.hellos.is_empty(), "{read:?}");
}
