//! On MongoDB a batch costs a fixed number of store commands whatever the number of calls in it:
//! batches of 1, 8 and 32 sends, leases and confirmations through the real binary's routes, each
//! counted by `world_store_commands_total{command}` from its `/metrics`. Calls carry what costs
//! commands on the old per-call path: a claimed recipient, a sender's token, idempotency keys, a
//! reliable read's record, hellos to take in every inbox.
//!
//! Left out of the counts: `count`, the collections' sizes from their metadata, which the store
//! caps take at most every 500 ms whatever the load (so it may fall in any batch) and each
//! scrape of `/metrics` takes for `world_hellos_stored`.

use std::collections::BTreeMap;

use hello_common::{
    testing::{ChildService, MongoTestServer},
    token::Token,
};
use serde_json::{Value, json};

use crate::binary::start;

/// Commands by name, as `/metrics` counts them so far (without `count`).
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
        .filter(|(command, _)| command != "count")
        .collect()
}

/// The commands `batch` cost, by name (those it used at all).
async fn cost(
    world: &ChildService,
    path: &str,
    calls: Vec<Value>,
) -> (BTreeMap<String, f64>, Value) {
    let before = commands(world).await;
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", world.url()))
        .json(&json!({ "calls": calls }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let outcomes: Value = answer.json().await.unwrap();
    let after = commands(world).await;
    let spent = after
        .into_iter()
        .map(|(command, count)| {
            let spent = count - before.get(&command).copied().unwrap_or_default();
            (command, spent)
        })
        .filter(|(_, spent)| *spent > 0.0)
        .collect();
    (spent, outcomes)
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
        // Sends: every other one idempotent, every third from the claimed sender by its token.
        let sends = (0..size)
            .map(|call| {
                let mut send = json!({ "to": inbox(call), "request_id": format!("s{call}") });
                if call % 3 == 0 {
                    send["token_sha256"] = json!(tokens["sender"]);
                } else {
                    send["from"] = json!("someone");
                }
                if call % 2 == 0 {
                    send["idempotency_key"] = json!(format!("key-{round}-{call}"));
                }
                send
            })
            .collect();
        let (sent, answer) = cost(&world, "/v1/hellos", sends).await;
        assert_eq!(outcomes(&answer, "stored").len(), size);

        // Leases: reliable reads (kept), each finding its hello.
        let leases = (0..size)
            .map(|call| {
                let mut lease =
                    json!({ "name": inbox(call), "limit": 10, "request_id": format!("l{call}") });
                if call == 0 {
                    lease["token_sha256"] = json!(tokens["owner"]);
                }
                lease
            })
            .collect();
        let (leased, answer) = cost(&world, "/v1/leases", leases).await;
        let leases = outcomes(&answer, "leased");
        assert!(
            leases
                .iter()
                .all(|lease| lease["hellos"].as_array().unwrap().len() == 1)
        );

        // Confirmations of those leases.
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
        let (confirmed, answer) = cost(&world, "/v1/confirmations", confirmations).await;
        let confirmed_all = answer["outcomes"].as_array().unwrap();
        assert!(
            confirmed_all.iter().all(|outcome| *outcome == "confirmed"),
            "{answer}"
        );
        costs.push((size, sent, leased, confirmed));
    }
    for (size, sent, leased, confirmed) in &costs {
        println!("{size:>2} calls: sends {sent:?}, leases {leased:?}, confirmations {confirmed:?}");
    }
    let (_, sent, leased, confirmed) = &costs[0];
    for (size, other_sent, other_leased, other_confirmed) in &costs[1..] {
        assert_eq!(other_sent, sent, "a batch of {size} sends");
        assert_eq!(other_leased, leased, "a batch of {size} leases");
        assert_eq!(
            other_confirmed, confirmed,
            "a batch of {size} confirmations"
        );
    }
    // What a batch costs, whatever its size: the claims' find and the documents' writes.
    assert_eq!(sent.values().sum::<f64>(), 6.0, "sends: {sent:?}");
    assert_eq!(leased.values().sum::<f64>(), 6.0, "leases: {leased:?}");
    assert_eq!(
        confirmed.values().sum::<f64>(),
        4.0,
        "confirmations: {confirmed:?}"
    );
}
