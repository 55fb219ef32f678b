//! Upgradable (docs/guarantees.md): a store written by release 0.1.0 opens and works with this code.
//!
//! The fixtures in `tests/fixtures/0.1.0/` were written by the 0.1.0 world-service (their README
//! names the commit): the same history in an embedded store and in MongoDB documents, with two
//! hellos of bob's leased (under 0.1.0's names: the `claims` table, the `claim` field) and never
//! acknowledged. Both backends run the same tests.

use std::{path::PathBuf, sync::Arc, time::Duration};

use ::mongodb::bson::{Bson, Document};
use hello_common::{IdempotencyKey, Name, testing::MongoTestServer};
use tempfile::TempDir;
use world_service::store::{
    NewHello, Store, StoreLimits, embedded::EmbeddedStore, mongo::MongoStore,
};

use crate::support::take;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/0.1.0")
}

/// Idempotency keys outlive the test run whatever the fixture's age (it was written once).
fn limits() -> StoreLimits {
    StoreLimits {
        inbox_cap: 10_000,
        store_cap: 1_000_000,
        idempotency_cap: 1_000_000,
        idempotency_ttl: Duration::from_secs(10 * 365 * 24 * 3600),
        claim_cap: 1_000_000,
        lease_record_cap: 1_000_000,
    }
}

/// The 0.1.0 store file, copied into a temp dir (opening it may write to it).
async fn embedded_0_1_0() -> (Arc<dyn Store>, Option<TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("embedded/world.redb"),
        dir.path()
            .join(world_service::store::embedded::DATABASE_FILE),
    )
    .unwrap();
    let store = EmbeddedStore::open(dir.path(), limits()).expect("0.1.0's store opens");
    (Arc::new(store), Some(dir))
}

/// The 0.1.0 documents, inserted as they were into a fresh database on nx-27017.
async fn mongodb_0_1_0() -> (Arc<dyn Store>, Option<TempDir>) {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    for collection in ["hellos", "idempotency"] {
        let text =
            std::fs::read_to_string(fixtures().join(format!("mongodb/{collection}.json"))).unwrap();
        let documents: Vec<Document> = serde_json::from_str::<Vec<serde_json::Value>>(&text)
            .unwrap()
            .into_iter()
            .map(
                |value| match Bson::try_from(value).expect("Extended JSON") {
                    Bson::Document(document) => document,
                    other => panic!("not a document: {other}"),
                },
            )
            .collect();
        client
            .database(&database)
            .collection::<Document>(collection)
            .insert_many(documents)
            .await
            .unwrap();
    }
    let store = MongoStore::connect(&uri, &database, limits())
        .await
        .expect("0.1.0's documents open");
    (Arc::new(store), None)
}

/// The lease 0.1.0 took of bob's two oldest hellos, from the embedded fixture's `claims` table.
fn embedded_0_1_0_lease() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.redb");
    std::fs::copy(fixtures().join("embedded/world.redb"), &path).unwrap();
    let database = redb::Database::open(&path).unwrap();
    let transaction = redb::ReadableDatabase::begin_read(&database).unwrap();
    let leases: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("claims");
    let table = transaction.open_table(leases).unwrap();
    let mut ids = redb::ReadableTable::iter(&table)
        .unwrap()
        .map(|entry| entry.unwrap().0.value().to_owned());
    let id = ids.next().expect("0.1.0's lease is stored");
    assert!(ids.next().is_none(), "one lease was left unacknowledged");
    id
}

/// The same lease in the MongoDB fixture: the `claim` field of bob's oldest hello.
fn mongodb_0_1_0_lease() -> String {
    let text = std::fs::read_to_string(fixtures().join("mongodb/hellos.json")).unwrap();
    let documents: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    documents[0]["claim"]
        .as_str()
        .expect("a leased hello")
        .to_owned()
}

fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

macro_rules! upgrade_suite {
    ($backend:ident, $open:path, $old_lease:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn every_hello_written_by_0_1_0_is_read_in_order_leased_ones_included() {
                let (store, _dir) = $open().await;
                let bob = store.lease(&name("bob"), take(100, 60_000)).await.unwrap();
                let senders: Vec<&str> =
                    bob.hellos.iter().map(|hello| hello.from.as_str()).collect();
                assert_eq!(
                    senders,
                    ["alice", "carol", "dave", "alice", "frank"],
                    "{bob:?}"
                );
                assert_eq!(bob.remaining, 0);
                assert!(
                    bob.hellos.iter().all(|hello| hello.at.starts_with("2026-")),
                    "{bob:?}"
                );

                let zoe = store.lease(&name("ZOË"), take(100, 60_000)).await.unwrap();
                assert_eq!(zoe.hellos.len(), 1, "{zoe:?}");
                assert_eq!(zoe.hellos[0].from, "Åsa");
                let erin = store.lease(&name("erin"), take(100, 60_000)).await.unwrap();
                assert!(
                    erin.hellos.is_empty(),
                    "erin's hello was acknowledged in 0.1.0: {erin:?}"
                );

                // Acknowledging works on what 0.1.0 stored, and takes the hellos away for good.
                let lease_id = bob.lease_id.clone().unwrap();
                assert_eq!(store.acknowledge(&[lease_id]).await.unwrap(), 5);
                let again = store.lease(&name("bob"), take(100, 60_000)).await.unwrap();
                assert!(again.hellos.is_empty(), "{again:?}");
            }

            #[tokio::test]
            async fn an_inbox_written_by_0_1_0_still_counts_what_waits_in_it() {
                // Its size, kept apart in 0.1.0, counts what a read leaves behind (and fills
                // the inbox cap).
                let (store, _dir) = $open().await;
                let bob = store.lease(&name("bob"), take(2, 60_000)).await.unwrap();
                assert_eq!((bob.hellos.len(), bob.remaining), (2, 3), "{bob:?}");
            }

            #[tokio::test]
            async fn a_lease_taken_by_0_1_0_can_be_acknowledged_after_the_upgrade() {
                // The lease ran out long ago, but no read has taken its hellos since: they are
                // still its own, so acknowledging it deletes them (0.1.0's rule too).
                let (store, _dir) = $open().await;
                assert_eq!(store.acknowledge(&[$old_lease()]).await.unwrap(), 2);
                let bob = store.lease(&name("bob"), take(100, 60_000)).await.unwrap();
                let senders: Vec<&str> =
                    bob.hellos.iter().map(|hello| hello.from.as_str()).collect();
                assert_eq!(senders, ["dave", "alice", "frank"], "{bob:?}");
            }

            #[tokio::test]
            async fn an_idempotency_key_recorded_by_0_1_0_still_answers_with_the_first_hello() {
                let (store, _dir) = $open().await;
                let retry = NewHello {
                    to: name("Zoë"),
                    from: name("Åsa"),
                    idempotency_key: Some(IdempotencyKey::parse("fixture-key-1").unwrap()),
                    verified: false,
                };
                let first = store.send(retry).await.unwrap();
                assert!(first.at.starts_with("2026-"), "{first:?}");
                let zoe = store.lease(&name("zoë"), take(100, 60_000)).await.unwrap();
                assert_eq!(zoe.hellos.len(), 1, "the retry stored nothing new: {zoe:?}");
                assert_eq!(zoe.hellos[0].id, first.id);
            }

            #[tokio::test]
            async fn new_hellos_join_an_inbox_written_by_0_1_0_behind_the_old_ones() {
                let (store, _dir) = $open().await;
                let new = store
                    .send(NewHello {
                        to: name("bob"),
                        from: name("heidi"),
                        idempotency_key: None,
                        verified: false,
                    })
                    .await
                    .unwrap();
                let bob = store.lease(&name("bob"), take(100, 60_000)).await.unwrap();
                assert_eq!(bob.hellos.len(), 6, "{bob:?}");
                assert_eq!(bob.hellos[5].id, new.id, "{bob:?}");
            }
        }
    };
}

upgrade_suite!(embedded, embedded_0_1_0, embedded_0_1_0_lease);
upgrade_suite!(mongodb, mongodb_0_1_0, mongodb_0_1_0_lease);
