//! On MongoDB, the first lease that takes a hello sent with an idempotency key marks that key's
//! record delivered before the reader sees the hello (`store/mongo/retries.rs`): a retry of the
//! send then answers the hello instead of storing it again. The record is marked whether or not
//! its send marked it stored (a retry may have read it before), and only if it is the record of
//! that very hello (a key reused after its record expired names another).

use hello_common::testing::MongoTestServer;
use mongodb::{
    Client,
    bson::{Document, doc},
};
use world_service::store::{Store, mongo::MongoStore};

use crate::support::{hello, limits, name, take};

/// A store on a fresh database, and that database read directly.
async fn store_and_database() -> (MongoStore, mongodb::Database) {
    let server = MongoTestServer::shared();
    let database = server.fresh_database();
    let store = MongoStore::connect(&server.uri(), &database, limits())
        .await
        .expect("connect");
    let client = Client::with_uri_str(server.uri()).await.unwrap();
    (store, client.database(&database))
}

/// The idempotency record that answers with the hello `id`.
async fn record_of(database: &mongodb::Database, id: &str) -> Document {
    database
        .collection::<Document>("idempotency")
        .find_one(doc! { "hello.id": id })
        .await
        .unwrap()
        .expect("the send's record")
}

#[tokio::test]
async fn a_lease_marks_a_finished_sends_record_delivered() {
    let (store, database) = store_and_database().await;
    let sent = store
        .send(hello("alice", "frank", Some("key-4")))
        .await
        .unwrap();
    let before = record_of(&database, &sent.id).await;
    assert!(before.get_i64("stored_at").is_ok(), "{before}");
    assert!(!before.contains_key("delivered_at"), "{before}");

    let lease = store.lease(&name("frank"), take(10, 60_000)).await.unwrap();
    assert_eq!(lease.hellos.len(), 1);
    let after = record_of(&database, &sent.id).await;
    assert!(
        after.get_i64("delivered_at").is_ok(),
        "marked delivered though its send had marked it stored: {after}"
    );
}

#[tokio::test]
async fn a_lease_leaves_alone_a_newer_record_under_the_same_key() {
    let (store, database) = store_and_database().await;
    let old = store
        .send(hello("alice", "grace", Some("key-5")))
        .await
        .unwrap();
    // The key's record expired and the key was used again: a record under the same id now
    // answers with another hello, whose send has not marked it stored yet.
    let records = database.collection::<Document>("idempotency");
    let reused = records
        .update_one(
            doc! { "hello.id": &old.id },
            doc! { "$set": { "hello.id": "a-newer-hello", "stored_at": null } },
        )
        .await
        .unwrap();
    assert_eq!(reused.modified_count, 1);

    let lease = store.lease(&name("grace"), take(10, 60_000)).await.unwrap();
    assert_eq!(lease.hellos.len(), 1, "the old hello is still delivered");
    let newer = record_of(&database, "a-newer-hello").await;
    assert!(
        !newer.contains_key("delivered_at"),
        "the newer send's record must not say its hello was delivered: {newer}"
    );
}
