//! On MongoDB a batch is done together, each call on its own terms (a claim that cannot be read
//! fails only the calls that need it), and costs a fixed number of store commands whatever the
//! number of calls in it: batches of 1, 8 and 32 sends, GETs' and reliable reads' leases,
//! acknowledgements and confirmations through the real binary's routes, each counted by
//! `world_store_commands_total{command}` from its `/metrics`. Calls carry what costs commands on
//! a per-call path: a claimed recipient, a sender's token, idempotency keys, a reliable read's
//! record, hellos to take in every inbox.
//!
//! A GET's lease writes no record (a confirmation of it finds nothing); a lease that takes hellos
//! sent with keys costs one `update` more (their records marked delivered).
//! `count` (the collections' sizes from their metadata) is bounded rather than counted: the caps
//! take it at most every 500 ms whatever the load, and each scrape of `/metrics` once.

use std::collections::BTreeMap;

use hello_common::{
    testing::{ChildService, MongoTestServer},
    token::Token,
};
use serde_json::{Value, json};

use crate::binary::start;

/// Commands by name, as `/metrics` counts them so far.
async fn commands(world: &ChildService) -> BTreeMap<String, f64> {
    let scrape = reqwest::get(format!("{}/metrics", world.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    scrape
        .lines()
        .filter_map(|line| {
            let labels = line.strip_prefix("world_store_commands_total{command=\"")?;
            let (command, value) = labels.split_once("\"} ")?;
            Some((command.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The commands a batch of `calls` cost, by name (those it used at all), and its answer.
async fn cost(
    world: &ChildService,
    path: &str,
    calls: Vec<Value>,
) -> (BTreeMap<String, f64>, Value) {
    cost_body(world, path, json!({ "calls": calls })).await
}

/// The commands a POST of `body` cost, by name (those it used at all), and its answer. The
/// collections' `count` is left out of the names: at most four may fall in any call (the caps'
/// three, every 500 ms, and the scrape's one), so it is bounded here instead.
async fn cost_body(
    world: &ChildService,
    path: &str,
    body: Value,
) -> (BTreeMap<String, f64>, Value) {
    let before = commands(world).await;
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", world.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    let after = commands(world).await;
    let counts = after["count"] - before["count"];
    assert!(
        counts <= 4.0,
        "{path} cost {counts} counts of the collections"
    );
    let spent = after
        .into_iter()
        .map(|(command, count)| {
            let spent = count - before.get(&command).copied().unwrap_or_default();
            (command, spent)
        })
        .filter(|(command, spent)| *spent > 0.0 && command != "count")
        .collect();
    (spent, answer)
}

fn outcomes<'a>(answer: &'a Value, kind: &str) -> Vec<&'a Value> {
    let outcomes = answer["outcomes"].as_array().unwrap();
    for outcome in outcomes {
        assert!(outcome[kind].is_object(), "not {kind}: {outcome}");
    }
    outcomes.iter().map(|outcome| &outcome[kind]).collect()
}

#[tokio::test]
async fn a_batch_of_1_8_or_32_calls_costs_the_same_commands_on_mongodb() {
    let server = MongoTestServer::shared();
    let world = start(&[
        ("WORLD_MONGODB_URI", server.uri()),
        ("WORLD_MONGODB_DATABASE", server.fresh_database()),
    ]);
    let client = reqwest::Client::new();
    // A claimed sender and a claimed recipient: their claims are looked up with every batch.
    let mut tokens = BTreeMap::new();
    for name in ["sender", "owner"] {
        let token = Token::generate();
        let answer = client
            .post(format!("{}/v1/names/{name}", world.url()))
            .json(&json!({ "token_sha256": token.hash().to_hex() }))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "claim {name}: {}",
            answer.status()
        );
        tokens.insert(name, token.hash().to_hex());
    }

    let mut costs = Vec::new();
    for (round, size) in [1_usize, 8, 32].into_iter().enumerate() {
        let inbox = |call: usize| {
            if call == 0 {
                "owner".to_owned()
            } else {
                format!("r{round}-{call}")
            }
        };
        // Sends: every other one idempotent (unless `keyless`), every third from the claimed
        // sender by its token.
        let sends = |pass: &str, keyless: bool| -> Vec<Value> {
            (0..size)
                .map(|call| {
                    let mut send = json!({ "to": inbox(call), "request_id": format!("s{call}") });
                    if call % 3 == 0 {
                        send["token_sha256"] = json!(tokens["sender"]);
                    } else {
                        send["from"] = json!("someone");
                    }
                    if call % 2 == 0 && !keyless {
                        send["idempotency_key"] = json!(format!("key-{pass}-{round}-{call}"));
                    }
                    send
                })
                .collect()
        };
        let leases = |confirmable: bool| -> Vec<Value> {
            (0..size)
                .map(|call| {
                    let mut lease = json!({
                        "name": inbox(call),
                        "limit": 10,
                        "confirmable": confirmable,
                        "request_id": format!("l{call}"),
                    });
                    if call == 0 {
                        lease["token_sha256"] = json!(tokens["owner"]);
                    }
                    lease
                })
                .collect()
        };
        let mut cost_of = BTreeMap::new();

        let (spent, answer) = cost(&world, "/v1/hellos", sends("get", false)).await;
        assert_eq!(outcomes(&answer, "stored").len(), size);
        cost_of.insert("sends", spent);
        // GETs' leases, each finding its hello, then acknowledged together.
        let (spent, answer) = cost(&world, "/v1/leases", leases(false)).await;
        let taken = outcomes(&answer, "leased");
        assert!(
            taken
                .iter()
                .all(|lease| lease["hellos"].as_array().unwrap().len() == 1)
        );
        cost_of.insert("GET leases", spent);
        let ids: Vec<&Value> = taken.iter().map(|lease| &lease["lease_id"]).collect();
        let (spent, answer) =
            cost_body(&world, "/v1/leases/acknowledge", json!({ "leases": ids })).await;
        assert_eq!(answer["deleted"], json!(size), "{answer}");
        cost_of.insert("acknowledgements", spent);
        if round == 0 {
            // A GET's lease was never recorded: a confirmation of it finds nothing.
            let (_, answer) = cost(
                &world,
                "/v1/confirmations",
                vec![json!({
                    "name": inbox(0),
                    "lease": ids[0],
                    "token_sha256": tokens["owner"],
                    "request_id": "c",
                })],
            )
            .await;
            assert_eq!(answer["outcomes"][0]["refused"]["status"], 404, "{answer}");
        }

        // Reliable reads: their leases recorded, then confirmed together.
        let (spent, answer) = cost(&world, "/v1/hellos", sends("reliable", true)).await;
        assert_eq!(outcomes(&answer, "stored").len(), size);
        cost_of.insert("sends without keys", spent);
        let (spent, answer) = cost(&world, "/v1/leases", leases(true)).await;
        let leases = outcomes(&answer, "leased");
        assert!(
            leases
                .iter()
                .all(|lease| lease["hellos"].as_array().unwrap().len() == 1)
        );
        cost_of.insert("reliable leases", spent);
        let confirmations = leases
            .iter()
            .enumerate()
            .map(|(call, lease)| {
                let mut confirmation = json!({
                    "name": inbox(call),
                    "lease": lease["lease_id"],
                    "request_id": format!("c{call}"),
                });
                if call == 0 {
                    confirmation["token_sha256"] = json!(tokens["owner"]);
                }
                confirmation
            })
            .collect();
        let (spent, answer) = cost(&world, "/v1/confirmations", confirmations).await;
        let confirmed_all = answer["outcomes"].as_array().unwrap();
        assert!(
            confirmed_all.iter().all(|outcome| *outcome == "confirmed"),
            "{answer}"
        );
        cost_of.insert("confirmations", spent);
        costs.push((size, cost_of));
    }
    for (size, cost_of) in &costs {
        println!("{size:>2} calls: {cost_of:?}");
    }
    let (_, first) = &costs[0];
    for (size, other) in &costs[1..] {
        for (kind, spent) in other {
            assert_eq!(spent, &first[kind], "a batch of {size} {kind}");
        }
    }
    // What a batch costs, whatever its size: the claims' find and the documents' commands.
    let total = |kind: &str| first[kind].values().sum::<f64>();
    assert_eq!(total("sends"), 6.0, "sends: {first:?}");
    assert_eq!(
        total("sends without keys"),
        3.0,
        "sends without keys: {first:?}"
    );
    // GETs' leases take the first sends' hellos, some sent with keys: one `update` marks their
    // records delivered; they write no lease record.
    assert_eq!(
        total("GET leases"),
        6.0,
        "GET leases (no record, the keys' records marked): {first:?}"
    );
    assert_eq!(
        total("acknowledgements"),
        1.0,
        "acknowledgements: {first:?}"
    );
    // Reliable reads' leases take the hellos sent without keys: no record to mark.
    assert_eq!(total("reliable leases"), 6.0, "reliable leases: {first:?}");
    assert_eq!(total("confirmations"), 4.0, "confirmations: {first:?}");
}

/// A claim that cannot be read (its token parked mid-move by a crash, until the next open)
/// fails the calls that need it, not the others of their batch.
#[tokio::test]
async fn an_unreadable_claim_fails_only_the_calls_that_need_it() {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    let world = start(&[
        ("WORLD_MONGODB_URI", uri.clone()),
        ("WORLD_MONGODB_DATABASE", database.clone()),
    ]);
    let stuck = hello_common::Name::parse("stuck").unwrap();
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    client
        .database(&database)
        .collection::<::mongodb::bson::Document>("names")
        .insert_one(::mongodb::bson::doc! {
            "_id": stuck.lookalike_key(), "name": "stuck", "inbox": stuck.key(),
            "token": "moving:0123", "claimed_at": ::mongodb::bson::DateTime::now(),
        })
        .await
        .unwrap();
    let send = |to: &str| json!({ "to": to, "from": "someone", "request_id": format!("s-{to}") });
    let (_, answer) = cost(&world, "/v1/hellos", vec![send("stuck"), send("free")]).await;
    assert_eq!(answer["outcomes"][0]["refused"]["status"], 503, "{answer}");
    assert!(answer["outcomes"][1]["stored"].is_object(), "{answer}");
    let lease = |name: &str| json!({ "name": name, "limit": 1, "request_id": format!("l-{name}") });
    let (_, answer) = cost(&world, "/v1/leases", vec![lease("stuck"), lease("free")]).await;
    assert_eq!(answer["outcomes"][0]["refused"]["status"], 503, "{answer}");
    assert_eq!(
        answer["outcomes"][1]["leased"]["hellos"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{answer}"
    );
}
