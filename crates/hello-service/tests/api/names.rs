//! Names that belong to someone, through the public API: claims, bearer tokens, verified
//! senders, look-alikes, rotation and release, and every status of the contract's ownership
//! section (world-service enforces them; its two-replica test is in world's `ownership`).

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::support::{Options, TestApp, expect_problem, spawn_app, spawn_app_with};

/// `METHOD path` with an optional bearer token and JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Claims `name`; its token.
async fn claim(app: &TestApp, name: &str) -> String {
    let response = call(app, Method::POST, &format!("/names/{name}"), None, None).await;
    assert_eq!(response.status(), 201, "claim {name}");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hw_") && token.len() == 46, "{token}");
    token
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_claimed_inbox_is_read_only_with_its_token() {
    let app = spawn_app().await;
    let token = claim(&app, "Bob").await;
    let again = call(&app, Method::POST, "/names/bob", None, None).await;
    expect_problem(again, 409).await;
    let lookalike = call(
        &app,
        Method::POST,
        "/names/%EF%BD%82%EF%BD%8F%EF%BD%82",
        None,
        None,
    )
    .await;
    let problem = expect_problem(lookalike, 409).await;
    assert_eq!(problem["type"], "/problems/name-taken");

    assert_eq!(app.say("alice", "bob").await.status(), 201);
    let anonymous = app.read("bob").await;
    assert_eq!(challenge(&anonymous), r#"Bearer realm="hello""#);
    expect_problem(anonymous, 401).await;
    let wrong = call(
        &app,
        Method::GET,
        "/hello/bob",
        Some("hw_not-the-token"),
        None,
    )
    .await;
    assert_eq!(
        challenge(&wrong),
        r#"Bearer realm="hello", error="invalid_token""#
    );
    expect_problem(wrong, 401).await;

    let owner = call(&app, Method::GET, "/hello/BOB", Some(&token), None).await;
    assert_eq!(owner.status(), 200);
    let inbox: Value = owner.json().await.unwrap();
    assert_eq!(inbox["hellos"][0]["from"], "alice");
    assert_eq!(inbox["hellos"][0]["verified"], false);
    // Reliable reads and their confirmations too.
    app.say("carol", "bob").await;
    let read = call(&app, Method::POST, "/hello/bob/reads", None, None).await;
    expect_problem(read, 401).await;
    let read = call(&app, Method::POST, "/hello/bob/reads", Some(&token), None).await;
    assert_eq!(read.status(), 201);
    let receipt = read.json::<Value>().await.unwrap()["receipt"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/hello/bob/reads/{receipt}");
    expect_problem(call(&app, Method::DELETE, &path, None, None).await, 401).await;
    assert_eq!(
        call(&app, Method::DELETE, &path, Some(&token), None)
            .await
            .status(),
        204
    );
    // A token sent to an unclaimed inbox is not its token.
    let stranger = call(&app, Method::GET, "/hello/nobody", Some(&token), None).await;
    assert_eq!(
        challenge(&stranger),
        r#"Bearer realm="hello", error="invalid_token""#
    );
}

#[tokio::test]
async fn only_the_token_holder_sends_as_a_claimed_name_and_its_hellos_are_verified() {
    let app = spawn_app().await;
    let token = claim(&app, "dora").await;
    for pretender in ["dora", "DORA", "ｄｏｒａ"] {
        let problem = expect_problem(app.say(pretender, "erin").await, 403).await;
        assert_eq!(problem["type"], "/problems/not-your-name", "{pretender}");
    }
    let body = json!({ "from": "someone" });
    expect_problem(
        call(&app, Method::POST, "/hello/erin", Some(&token), Some(body)).await,
        403,
    )
    .await;
    let body = json!({ "from": "dora" });
    expect_problem(
        call(
            &app,
            Method::POST,
            "/hello/erin",
            Some("hw_made-up"),
            Some(body),
        )
        .await,
        401,
    )
    .await;

    let sent = call(&app, Method::POST, "/hello/erin", Some(&token), None).await;
    assert_eq!(sent.status(), 201);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(
        (sent["from"].as_str(), sent["verified"].as_bool()),
        (Some("dora"), Some(true))
    );
    assert_eq!(app.say("frank", "erin").await.status(), 201);
    let inbox = app.inbox("erin").await;
    let verified: Vec<_> = inbox["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["verified"].as_bool())
        .collect();
    assert_eq!(verified, [Some(true), Some(false)]);
}

#[tokio::test]
async fn a_rotated_token_stops_at_once_and_a_released_name_takes_its_hellos_along() {
    let app = spawn_app().await;
    let old = claim(&app, "gus").await;
    app.say("hana", "gus").await;
    expect_problem(
        call(&app, Method::POST, "/names/gus/token", None, None).await,
        401,
    )
    .await;
    let rotated = call(&app, Method::POST, "/names/gus/token", Some(&old), None).await;
    assert_eq!(rotated.status(), 201);
    let new = rotated.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    expect_problem(
        call(&app, Method::GET, "/hello/gus", Some(&old), None).await,
        401,
    )
    .await;

    expect_problem(
        call(&app, Method::DELETE, "/names/gus", Some(&old), None).await,
        401,
    )
    .await;
    assert_eq!(
        call(&app, Method::DELETE, "/names/gus", Some(&new), None)
            .await
            .status(),
        204
    );
    let gone = call(&app, Method::DELETE, "/names/gus", Some(&new), None).await;
    assert_eq!(
        expect_problem(gone, 404).await["type"],
        "/problems/name-not-claimed"
    );
    // Free again, and empty: the previous owner's hellos left with the claim.
    assert_eq!(app.inbox("gus").await["hellos"], json!([]));
}

#[tokio::test]
async fn tokens_travel_only_in_a_well_formed_authorization_header() {
    let app = spawn_app().await;
    let token = claim(&app, "ida").await;
    for query in [
        "?access_token=abc",
        &format!("?t={token}"),
        "?limit=5&x=hw_x",
    ] {
        let response = call(&app, Method::GET, &format!("/hello/ida{query}"), None, None).await;
        let problem = expect_problem(response, 400).await;
        assert_eq!(problem["type"], "/problems/token-in-query", "{query}");
        assert!(
            !problem.to_string().contains(&token),
            "the token is not echoed"
        );
    }
    for header in [
        "Basic abc",
        "Bearer",
        &format!("Bearer {}", "a".repeat(300)),
        "Bearer a b",
    ] {
        let response = app
            .client
            .get(format!("{}/hello/ida", app.url))
            .header(header::AUTHORIZATION, header)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 400).await;
        assert_eq!(problem["type"], "/problems/bad-authorization", "{header}");
    }
}

#[tokio::test]
async fn with_require_claim_only_owners_read_and_anyone_still_sends() {
    let app = spawn_app_with(Options {
        require_claim: true,
        ..Options::default()
    })
    .await;
    assert_eq!(app.say("jon", "kim").await.status(), 201);
    let anonymous = app.read("kim").await;
    assert_eq!(challenge(&anonymous), r#"Bearer realm="hello""#);
    expect_problem(anonymous, 401).await;
    let token = claim(&app, "kim").await;
    let owner = call(&app, Method::GET, "/hello/kim", Some(&token), None).await;
    assert_eq!(owner.status(), 200);
}

#[tokio::test]
async fn claims_have_their_own_stricter_rate_limit() {
    let app = spawn_app_with(Options {
        claim_rate: Some((1, 2)),
        ..Options::default()
    })
    .await;
    claim(&app, "lou").await;
    claim(&app, "mia").await;
    let third = call(&app, Method::POST, "/names/ned", None, None).await;
    assert!(third.headers().contains_key(header::RETRY_AFTER));
    expect_problem(third, 429).await;
    // Other calls are not limited by it.
    assert_eq!(app.say("ola", "pia").await.status(), 201);
}

#[tokio::test]
async fn failed_attempts_cost_more_than_one_request() {
    // 1 request a second, a burst of 6: a wrong token costs 1 + 5, so the very next requests
    // are refused, where without the charge 5 more would pass. (Refilling one request takes a
    // second; the 4 requests below are sent in far less on any machine.)
    let app = spawn_app_with(Options {
        rate_limit: Some((1, 6)),
        ..Options::default()
    })
    .await;
    let token = claim(&app, "quinn").await;
    let _ = token;
    let wrong = call(&app, Method::GET, "/hello/quinn", Some("hw_guess"), None).await;
    assert_eq!(wrong.status(), 401);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.read("nobody").await.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "a failed attempt was not charged: {statuses:?}"
    );
}

#[tokio::test]
async fn with_a_token_from_may_be_left_out_in_every_body_form() {
    let app = spawn_app().await;
    let token = claim(&app, "iris").await;
    // No body, an empty body, white space, `{}`: the sender is the token's name.
    for (body, content_type) in [
        ("", None),
        ("", Some("application/json")),
        ("  \n", Some("application/json")),
        ("{}", Some("application/json")),
        (" { } ", Some("application/json; charset=utf-8")),
    ] {
        let mut request = app
            .client
            .post(format!("{}/hello/jack", app.url))
            .bearer_auth(&token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let sent = request.send().await.unwrap();
        assert_eq!(sent.status(), 201, "body {body:?}");
        let sent: Value = sent.json().await.unwrap();
        assert_eq!(
            (sent["from"].as_str(), sent["verified"].as_bool()),
            (Some("iris"), Some(true)),
            "body {body:?}"
        );
    }
    // Without a token, `{}` still says nobody: a 400 that asks for the sender.
    let anonymous = app
        .client
        .post(format!("{}/hello/jack", app.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let problem = expect_problem(anonymous, 400).await;
    assert_eq!(problem["type"], "/problems/missing-sender");
}
