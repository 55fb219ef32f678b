//! Claims stored under the look-alike keys of earlier builds move to today's keys on open, on each
//! backend.
//!
//! Earlier builds computed a claim's look-alike key from the raw spelling, with `caseless` (Unicode 16)
//! while the inbox key lower-cased with `std` (Unicode 17): the capitals and small letters of
//! Beria Erfe (new in 17) reached one inbox under two keys, so both could be claimed. Such a pair
//! is written here as they stored it, beside a claim under a key no name computes any more; the
//! store opened by this code keeps the earlier claim of the pair under today's key, releases the
//! later one (its token no longer works), moves the other claim, and leaves every hello where it
//! was.

use ::mongodb::bson::{DateTime, doc};
use hello_common::{Name, testing::MongoTestServer, token::TokenHash};
use redb::TableDefinition;
use world_service::store::{NewHello, Store, embedded::EmbeddedStore, mongo::MongoStore};

use crate::support::{limits, take};

/// Beria Erfe capitals U+16EA6..8 and their small letters U+16EC1..3: one inbox.
const CAPITALS: &str = "\u{16EA6}\u{16EA7}\u{16EA8}";
const SMALL: &str = "\u{16EC1}\u{16EC2}\u{16EC3}";

/// A claim as an earlier build stored it: under `key`, with its name, inbox, token and time.
struct OldClaim {
    key: &'static str,
    name: &'static str,
    inbox: String,
    token: TokenHash,
    claimed_at: i64,
}

fn old_claims() -> [OldClaim; 3] {
    let small = Name::parse_existing_claim(SMALL).unwrap();
    [
        // The earlier claim of the pair, by the capitals (its old key: the capitals themselves).
        OldClaim {
            key: CAPITALS,
            name: CAPITALS,
            inbox: small.key().to_owned(),
            token: TokenHash::of("first owner"),
            claimed_at: 1_000,
        },
        // The later one, by the small letters, under their own key.
        OldClaim {
            key: SMALL,
            name: SMALL,
            inbox: small.key().to_owned(),
            token: TokenHash::of("second owner"),
            claimed_at: 2_000,
        },
        // A claim under a key that no name computes today.
        OldClaim {
            key: "a key of an older rule",
            name: "carol",
            inbox: "carol".to_owned(),
            token: TokenHash::of("carol's owner"),
            claimed_at: 3_000,
        },
    ]
}

/// Sends to the pair's inbox before the upgrade (`parse_existing_claim`: the name is refused today).
async fn send_to_the_pair(store: &dyn Store) {
    store
        .send(NewHello {
            to: Name::parse_existing_claim(SMALL).unwrap(),
            from: Name::parse("alice").unwrap(),
            idempotency_key: None,
            verified: false,
        })
        .await
        .unwrap();
}

async fn the_claims_moved_and_the_later_of_the_pair_was_released(store: &dyn Store) {
    let [first, second, carol] = old_claims();
    for spelling in [CAPITALS, SMALL] {
        let claim = store
            .claim_covering(&Name::parse_existing_claim(spelling).unwrap())
            .await
            .unwrap()
            .expect("the pair's name is still claimed");
        assert_eq!(claim.name, first.name, "the earlier claim keeps the name");
    }
    assert!(store.claim_by_token(&first.token).await.unwrap().is_some());
    assert!(
        store.claim_by_token(&second.token).await.unwrap().is_none(),
        "the later claim's token no longer works"
    );
    let moved = store
        .claim_covering(&Name::parse("CAROL").unwrap())
        .await
        .unwrap()
        .expect("carol's claim moved to its key");
    assert!(moved.token.matches(&carol.token));
    // The hello sent to the pair's inbox is where it was, for the owner who kept the name.
    let lease = store
        .lease(
            &Name::parse_existing_claim(SMALL).unwrap(),
            world_service::store::LeaseRequest {
                covering_claim: Some(first.claimed_at),
                confirmable: true,
                ..take(10, 60_000)
            },
        )
        .await
        .unwrap();
    assert_eq!(lease.hellos.len(), 1);
    // The kept claim of a name refused today can still be released, which deletes its hellos.
    assert_eq!(
        store
            .release_name(&Name::parse_existing_claim(CAPITALS).unwrap(), &first.token)
            .await
            .unwrap(),
        world_service::store::ClaimChange::Done
    );
    assert!(
        store
            .claim_covering(&Name::parse_existing_claim(SMALL).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn embedded_claims_move_to_their_keys_and_the_later_of_two_is_released() {
    const NAMES: TableDefinition<&str, &[u8]> = TableDefinition::new("names");
    const NAMES_BY_TOKEN: TableDefinition<&str, &str> = TableDefinition::new("names_by_token");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), limits()).unwrap();
        send_to_the_pair(&store).await;
        store.close().await.unwrap();
    }
    {
        let database = redb::Database::open(
            dir.path()
                .join(world_service::store::embedded::DATABASE_FILE),
        )
        .unwrap();
        let transaction = database.begin_write().unwrap();
        {
            let mut names = transaction.open_table(NAMES).unwrap();
            let mut by_token = transaction.open_table(NAMES_BY_TOKEN).unwrap();
            for claim in old_claims() {
                let record = serde_json::json!({
                    "name": claim.name, "inbox": claim.inbox,
                    "token": claim.token.to_hex(), "claimed_at": claim.claimed_at,
                });
                names
                    .insert(claim.key, serde_json::to_vec(&record).unwrap().as_slice())
                    .unwrap();
                by_token
                    .insert(claim.token.to_hex().as_str(), claim.key)
                    .unwrap();
            }
            transaction
                .open_table(META)
                .unwrap()
                .insert("claimed_names", 3)
                .unwrap();
        }
        transaction.commit().unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), limits()).unwrap();
    the_claims_moved_and_the_later_of_the_pair_was_released(&store).await;
    // One claim left (carol's), whatever the cap counts.
    let small_cap = world_service::store::StoreLimits {
        claim_cap: 2,
        ..limits()
    };
    store.close().await.unwrap();
    drop(store);
    let store = EmbeddedStore::open(dir.path(), small_cap).unwrap();
    store
        .claim_name(&Name::parse("dave").unwrap(), TokenHash::of("dave"))
        .await
        .expect("one claim stored: a cap of two takes one more");
}

#[tokio::test]
async fn mongodb_claims_move_to_their_keys_and_the_later_of_two_is_released() {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    {
        let store = MongoStore::connect(&uri, &database, limits())
            .await
            .unwrap();
        send_to_the_pair(&store).await;
    }
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    let names = client
        .database(&database)
        .collection::<::mongodb::bson::Document>("names");
    for claim in old_claims() {
        names
            .insert_one(doc! {
                "_id": claim.key, "name": claim.name, "inbox": &claim.inbox,
                "token": claim.token.to_hex(),
                "claimed_at": DateTime::from_millis(claim.claimed_at),
            })
            .await
            .unwrap();
    }
    let store = MongoStore::connect(&uri, &database, limits())
        .await
        .unwrap();
    the_claims_moved_and_the_later_of_the_pair_was_released(&store).await;
    // Opening again changes nothing more.
    MongoStore::connect(&uri, &database, limits())
        .await
        .unwrap();
    let left = names.count_documents(doc! {}).await.unwrap();
    assert_eq!(left, 1, "carol's claim alone is left");
}

#[tokio::test]
async fn mongodb_a_move_interrupted_after_parking_the_token_is_finished_on_open() {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    drop(
        MongoStore::connect(&uri, &database, limits())
            .await
            .unwrap(),
    );
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    let names = client
        .database(&database)
        .collection::<::mongodb::bson::Document>("names");
    let token = TokenHash::of("erin's owner");
    // Both copies, as a crash after the insert and before the delete leaves them.
    names
        .insert_one(doc! {
            "_id": "an older key of erin", "name": "erin", "inbox": "erin",
            "token": format!("moving:{}", token.to_hex()), "claimed_at": DateTime::from_millis(5),
        })
        .await
        .unwrap();
    names
        .insert_one(doc! {
            "_id": Name::parse("erin").unwrap().lookalike_key(), "name": "erin", "inbox": "erin",
            "token": token.to_hex(), "claimed_at": DateTime::from_millis(5),
        })
        .await
        .unwrap();
    let store = MongoStore::connect(&uri, &database, limits())
        .await
        .unwrap();
    assert_eq!(names.count_documents(doc! {}).await.unwrap(), 1);
    let claim = store
        .claim_by_token(&token)
        .await
        .unwrap()
        .expect("erin's claim works");
    assert_eq!(claim.name, "erin");
}
