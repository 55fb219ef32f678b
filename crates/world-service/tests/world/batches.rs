//! `POST /v1/hellos`, `/v1/leases` and `/v1/confirmations`: batches of sends, leases and
//! confirmations, each judged on its own, through the real binary on each backend (the embedded
//! store, and MongoDB on nx-27017): some done, some refused, each with the outcome it would have
//! had in a batch of its own.

use hello_common::{
    testing::{ChildService, MongoTestServer},
    token::Token,
    wire::{MAX_LEASES_PER_BATCH, MAX_SENDS_PER_BATCH, paths},
};
use serde_json::{Value, json};

use crate::{binary::start, calls};

async fn post(world: &ChildService, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", world.url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn send(to: &str, from: Option<&str>, token: Option<&str>, key: Option<&str>) -> Value {
    let mut send = json!({ "to": to, "request_id": format!("test-{to}") });
    if let Some(from) = from {
        send["from"] = json!(from);
    }
    if let Some(token) = token {
        send["token_sha256"] = json!(token);
    }
    if let Some(key) = key {
        send["idempotency_key"] = json!(key);
    }
    send
}

/// A batch of no calls, or of one too many, is refused as a whole, saying how many it may carry.
async fn assert_sizes_refused(world: &ChildService, path: &str, call: Value, most: usize) {
    for count in [0, most + 1] {
        let calls = vec![call.clone(); count];
        let (status, body) = post(world, path, &json!({ "calls": calls })).await;
        assert_eq!(status, 400, "{count} calls to {path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(&most.to_string()),
            "{body}"
        );
    }
}

/// The problem type of a refused outcome, or "stored" or "leased".
fn kind(outcome: &Value) -> String {
    match (&outcome["stored"], &outcome["leased"], &outcome["refused"]) {
        (Value::Object(_), _, _) => "stored".to_owned(),
        (_, Value::Object(_), _) => "leased".to_owned(),
        (_, _, Value::Object(problem)) => format!("{} {}", problem["status"], problem["type"]),
        _ => panic!("neither done nor refused: {outcome}"),
    }
}

/// Claims Carol; the hash of her token.
async fn claim_carol(world: &ChildService) -> String {
    let owner = Token::generate().hash().to_hex();
    let (status, body) = post(
        world,
        &paths::name("Carol"),
        &json!({ "token_sha256": owner }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    owner
}

async fn each_send_of_a_batch_has_the_outcome_it_would_have_on_its_own(world: ChildService) {
    let owner = claim_carol(&world).await;

    let sends = vec![
        send("bob", Some("alice"), None, None),
        send("$bob", Some("alice"), None, None),
        send("bob", Some("carol"), None, None),
        send("bob", None, Some(&owner), None),
        send("bob", None, Some(&Token::generate().hash().to_hex()), None),
        send("bob", Some("alice"), Some("not hex"), None),
        send("dora", Some("alice"), None, Some("key-1")),
        send("dora", Some("alice"), None, Some("key-1")),
    ];
    let (status, answer) = post(&world, paths::SEND_BATCH, &json!({ "calls": sends })).await;
    assert_eq!(status, 200, "{answer}");
    let outcomes = answer["outcomes"].as_array().unwrap();
    let kinds: Vec<String> = outcomes.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "stored",
            "400 \"/problems/invalid-name\"",
            "403 \"/problems/not-your-name\"",
            "stored",
            "401 \"/problems/invalid-token\"",
            "401 \"/problems/invalid-token\"",
            "stored",
            "stored",
        ],
        "{answer}"
    );
    assert_eq!(outcomes[1]["refused"]["field"], "to");
    assert_eq!(outcomes[0]["stored"]["from"], "alice");
    assert_eq!(outcomes[0]["stored"]["verified"], false);
    assert_eq!(outcomes[3]["stored"]["from"], "Carol", "the token's name");
    assert_eq!(outcomes[3]["stored"]["verified"], true);
    // The same idempotency key twice in one batch: stored once, both answered with it. (The
    // calls of a batch run at once, as concurrent requests would: which of two runs first is
    // not promised, so a key used for another hello is tried in a batch of its own, after.)
    assert_eq!(outcomes[6]["stored"], outcomes[7]["stored"]);
    let reused = vec![send("erin", Some("alice"), None, Some("key-1"))];
    let (_, answer) = post(&world, paths::SEND_BATCH, &json!({ "calls": reused })).await;
    assert_eq!(
        kind(&answer["outcomes"][0]),
        "422 \"/problems/idempotency-key-reused\"",
        "{answer}"
    );

    let (_, bob) = calls::lease(&world.url(), "bob", 10, None, None).await;
    let mut senders: Vec<&str> = bob["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hello| hello["from"].as_str().unwrap())
        .collect();
    senders.sort_unstable();
    assert_eq!(senders, ["Carol", "alice"], "{bob}");
    let (_, dora) = calls::lease(&world.url(), "dora", 10, None, None).await;
    assert_eq!(dora["hellos"].as_array().unwrap().len(), 1, "{dora}");

    assert_sizes_refused(
        &world,
        paths::SEND_BATCH,
        send("bob", Some("alice"), None, None),
        MAX_SENDS_PER_BATCH,
    )
    .await;
    let (status, body) = post(&world, paths::SEND_BATCH, &json!({ "calls": "bob" })).await;
    assert_eq!(status, 400, "{body}");
}

fn lease(name: &str, limit: u32, token: Option<&str>) -> Value {
    let mut lease = json!({
        "name": name,
        "limit": limit,
        "lease_ms": 60_000,
        "request_id": format!("test-{name}"),
    });
    if let Some(token) = token {
        lease["token_sha256"] = json!(token);
    }
    lease
}

async fn each_lease_of_a_batch_has_the_outcome_it_would_have_on_its_own(world: ChildService) {
    let owner = claim_carol(&world).await;
    let sends: Vec<Value> = ["bob", "bob", "bob", "Carol", "dora"]
        .iter()
        .map(|to| send(to, Some("alice"), None, None))
        .collect();
    let (status, answer) = post(&world, paths::SEND_BATCH, &json!({ "calls": sends })).await;
    assert_eq!(status, 200, "{answer}");

    let leases = vec![
        lease("bob", 2, None),
        lease("bob", 5, None),
        lease("$bob", 1, None),
        lease("carol", 1, None),
        lease("carol", 5, Some(&owner)),
        lease("dora", 0, None),
        lease("dora", 1, None),
        lease("nobody", 1, None),
    ];
    let (status, answer) = post(&world, paths::LEASE_BATCH, &json!({ "calls": leases })).await;
    assert_eq!(status, 200, "{answer}");
    let outcomes = answer["outcomes"].as_array().unwrap();
    let kinds: Vec<String> = outcomes.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "leased",
            "leased",
            "400 \"/problems/invalid-name\"",
            "401 \"/problems/token-required\"",
            "leased",
            "400 \"/problems/invalid-limit\"",
            "leased",
            "leased",
        ],
        "{answer}"
    );
    // Policy is world's own (WORLD_REQUIRE_CLAIM): a call that tries to set it is not taken.
    let mut asking = lease("dora", 1, None);
    asking["require_claim"] = json!(true);
    let (status, refused) = post(&world, paths::LEASE_BATCH, &json!({ "calls": [asking] })).await;
    assert_eq!(status, 400, "{refused}");
    // Two leases of one inbox in one batch: each takes what the other did not, between them
    // all three (which runs first, and so takes more, is not promised).
    let ids = |outcome: &Value| -> Vec<String> {
        outcome["leased"]["hellos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hello| hello["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut both = [ids(&outcomes[0]), ids(&outcomes[1])].concat();
    both.sort_unstable();
    both.dedup();
    assert_eq!(both.len(), 3, "{answer}");
    assert!(ids(&outcomes[0]).len() <= 2, "{answer}");
    assert_eq!(ids(&outcomes[4]).len(), 1);
    assert!(outcomes[4]["leased"]["lease_id"].is_string());
    assert_eq!(
        outcomes[7]["leased"]["lease_id"],
        Value::Null,
        "nothing to take"
    );

    // Confirmed in a batch of confirmations, each on its own.
    let lease_of = |outcome: &Value| outcome["leased"]["lease_id"].as_str().map(str::to_owned);
    let confirm = |name: &str, lease: &str, token: Option<&str>| {
        let mut confirmation = json!({"name": name, "lease": lease, "request_id": "test"});
        if let Some(token) = token {
            confirmation["token_sha256"] = json!(token);
        }
        confirmation
    };
    // One of bob's two leases took hellos (the first, unless the second took all three).
    let bobs = lease_of(&outcomes[0])
        .or_else(|| lease_of(&outcomes[1]))
        .unwrap();
    let carols = lease_of(&outcomes[4]).unwrap();
    let confirmations = vec![
        confirm("bob", &bobs, None),
        confirm("bob", &bobs, None),
        confirm("bob", "no-such-lease", None),
        confirm("$bob", &bobs, None),
        confirm("carol", &carols, None),
        confirm("carol", &carols, Some(&owner)),
    ];
    let (status, answer) = post(
        &world,
        paths::CONFIRM_BATCH,
        &json!({ "calls": confirmations }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let kinds: Vec<String> = answer["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| match outcome.as_str() {
            Some(done) => done.to_owned(),
            None => kind(outcome),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "confirmed",
            "confirmed",
            "404 \"/problems/receipt-not-found\"",
            "400 \"/problems/invalid-name\"",
            "401 \"/problems/token-required\"",
            "confirmed",
        ],
        "{answer}"
    );

    assert_sizes_refused(
        &world,
        paths::LEASE_BATCH,
        lease("bob", 1, None),
        MAX_LEASES_PER_BATCH,
    )
    .await;
}

/// A world-service on a fresh store of `backend`; the directory lives as long as it.
fn fresh(backend: &str) -> (ChildService, Option<tempfile::TempDir>) {
    match backend {
        "embedded" => {
            let data = tempfile::tempdir().unwrap();
            let world = start(&[("WORLD_DATA_DIR", data.path().display().to_string())]);
            (world, Some(data))
        }
        _ => {
            let server = MongoTestServer::shared();
            let world = start(&[
                ("WORLD_MONGODB_URI", server.uri()),
                ("WORLD_MONGODB_DATABASE", server.fresh_database()),
            ]);
            (world, None)
        }
    }
}

#[tokio::test]
async fn each_call_of_a_batch_has_the_outcome_it_would_have_on_its_own_embedded() {
    let (world, _data) = fresh("embedded");
    each_send_of_a_batch_has_the_outcome_it_would_have_on_its_own(world).await;
    let (world, _data) = fresh("embedded");
    each_lease_of_a_batch_has_the_outcome_it_would_have_on_its_own(world).await;
}

#[tokio::test]
async fn each_call_of_a_batch_has_the_outcome_it_would_have_on_its_own_mongodb() {
    let (world, _) = fresh("mongodb");
    each_send_of_a_batch_has_the_outcome_it_would_have_on_its_own(world).await;
    let (world, _) = fresh("mongodb");
    each_lease_of_a_batch_has_the_outcome_it_would_have_on_its_own(world).await;
}
