use std::time::Duration;

use serde_json::Value;

use crate::support::{Options, expect_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn post_answers_201_with_the_stored_hello_then_get_returns_it_once() {
    let app = spawn_app().await;
    let response = app.say("alice", "bob").await;
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["to"], "bob");
    assert_eq!(stored["from"], "alice");
    let at = stored["at"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && at.len() == "2026-11-24T10:00:00.123Z".len(),
        "{at}"
    );

    let inbox = app.inbox("bob").await;
    assert_eq!(inbox["name"], "bob");
    assert_eq!(inbox["remaining"], 0);
    assert_eq!(inbox["hellos"][0]["from"], "alice");
    assert_eq!(inbox["hellos"][0]["at"], stored["at"]);
    assert_eq!(inbox["hellos"][0]["id"], stored["id"]);

    let next = app.inbox("bob").await;
    assert_eq!(next["hellos"], serde_json::json!([]));
}

#[tokio::test]
async fn an_empty_inbox_is_200_with_an_empty_list() {
    let app = spawn_app().await;
    let inbox = app.inbox("nobody").await;
    assert_eq!(
        inbox,
        serde_json::json!({ "name": "nobody", "hellos": [], "remaining": 0 })
    );
}

#[tokio::test]
async fn get_returns_the_oldest_first_up_to_limit_and_counts_the_rest() {
    let app = spawn_app().await;
    for sender in ["a1", "a2", "a3", "a4", "a5"] {
        assert_eq!(app.say(sender, "bob").await.status(), 201);
    }
    let first = app.inbox("bob?limit=2").await;
    let senders: Vec<_> = first["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hello| hello["from"].clone())
        .collect();
    assert_eq!(senders, ["a1", "a2"]);
    assert_eq!(first["remaining"], 3);
    let rest = app.inbox("bob?limit=1000").await;
    let senders: Vec<_> = rest["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hello| hello["from"].clone())
        .collect();
    assert_eq!(senders, ["a3", "a4", "a5"]);
    assert_eq!(rest["remaining"], 0);
}

#[tokio::test]
async fn names_are_case_insensitive_and_keep_the_senders_spelling() {
    let app = spawn_app().await;
    app.say("ALICE", "Bob").await;
    let inbox = app.inbox("BOB").await;
    assert_eq!(inbox["name"], "BOB");
    assert_eq!(inbox["hellos"][0]["from"], "ALICE");
}

#[tokio::test]
async fn percent_encoded_utf8_names_work_in_both_normal_forms() {
    let app = spawn_app().await;
    // "Zoë" composed (U+00EB) to "Ærøskøbing"; read back decomposed (e + U+0308) and upper-cased.
    let response = app
        .client
        .post(format!("{}/hello/%C3%86r%C3%B8sk%C3%B8bing", app.url))
        .json(&serde_json::json!({ "from": "Zo\u{00EB}" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let inbox = app.inbox("%C3%A6R%C3%98SK%C3%98BING").await;
    assert_eq!(inbox["hellos"][0]["from"], "Zo\u{00EB}");
    app.say("Zoe\u{0308}", "李小龍").await;
    let inbox = app.inbox("%E6%9D%8E%E5%B0%8F%E9%BE%8D").await;
    assert_eq!(inbox["hellos"][0]["from"], "Zo\u{00EB}", "stored in NFC");
}

#[tokio::test]
async fn the_from_query_parameter_is_a_shorthand_for_the_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/hello/bob?from=carol", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let agreeing = app
        .client
        .post(format!("{}/hello/bob?from=dave", app.url))
        .json(&serde_json::json!({ "from": "dave" }))
        .send()
        .await
        .unwrap();
    assert_eq!(agreeing.status(), 201);
    let inbox = app.inbox("bob").await;
    assert_eq!(inbox["hellos"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn repeating_a_post_with_the_same_idempotency_key_stores_nothing_new() {
    let app = spawn_app().await;
    let post = |key: &'static str, from: &'static str| {
        app.client
            .post(format!("{}/hello/bob", app.url))
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "from": from }))
            .send()
    };
    let first: Value = post("order-1", "alice")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let repeat = post("order-1", "alice").await.unwrap();
    assert_eq!(repeat.status(), 201);
    assert_eq!(repeat.json::<Value>().await.unwrap(), first);
    let inbox = app.inbox("bob").await;
    assert_eq!(inbox["hellos"].as_array().unwrap().len(), 1);

    // Keys are scoped to their sender: another sender's same key is a hello of their own.
    let mallorys = post("order-1", "mallory").await.unwrap();
    assert_eq!(mallorys.status(), 201);
    assert_ne!(mallorys.json::<Value>().await.unwrap()["id"], first["id"]);
    // The same sender reusing its key for a different hello: 422, naming no hello.
    let reused = app
        .client
        .post(format!("{}/hello/carol", app.url))
        .header("Idempotency-Key", "order-1")
        .json(&serde_json::json!({ "from": "alice" }))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(reused, 422).await;
    assert_eq!(problem["field"], "Idempotency-Key");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        !detail.contains("bob") && !detail.contains("alice"),
        "{detail}"
    );
}

#[tokio::test]
async fn delivered_hellos_are_acknowledged_and_never_come_back() {
    // A short lease: if the acknowledgement after the answer did not happen, the hellos would
    // reappear once it ends.
    let app = spawn_app_with(Options {
        lease_ms: 300,
        ..Options::default()
    })
    .await;
    app.say("alice", "bob").await;
    assert_eq!(
        app.inbox("bob").await["hellos"].as_array().unwrap().len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.inbox("bob").await["hellos"], serde_json::json!([]));
}

#[tokio::test]
async fn a_full_inbox_answers_409_and_stores_nothing() {
    let app = spawn_app_with(Options {
        inbox_cap: 2,
        ..Options::default()
    })
    .await;
    app.say("a", "bob").await;
    app.say("b", "bob").await;
    let problem = expect_problem(app.say("c", "bob").await, 409).await;
    assert_eq!(problem["type"], "/problems/inbox-full");
    assert!(problem["detail"].as_str().unwrap().contains("full"));
    assert_eq!(
        app.inbox("bob").await["hellos"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn too_many_requests_from_one_client_answer_429_with_retry_after() {
    // A burst of 3, then 1 a second: the 4th request in a row is over the limit unless the
    // requests took more than a second each, so this does not depend on the machine's speed.
    let app = spawn_app_with(Options {
        rate_limit: Some((1, 3)),
        ..Options::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = app.read("bob").await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .expect("Retry-After")
                .to_str()
                .unwrap()
                .to_owned();
            assert!(retry_after.parse::<u64>().unwrap() >= 1);
            expect_problem(response, 429).await;
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "never limited: {statuses:?}");
    assert!(statuses.len() > 3, "limited within the burst: {statuses:?}");
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|status| *status == 200),
        "{statuses:?}"
    );
}
