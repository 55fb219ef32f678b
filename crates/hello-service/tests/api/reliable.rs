//! Reliable reads: `POST /hello/{name}/reads` leases and answers a receipt;
//! `DELETE /hello/{name}/reads/{receipt}` confirms. Every status the contract gives them.

use std::time::Duration;

use serde_json::Value;

use crate::support::{TestApp, expect_problem, spawn_app};

impl TestApp {
    /// `POST /hello/{name}/reads{query}` with no body.
    async fn take(&self, name: &str, query: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/hello/{name}/reads{query}", self.url))
            .send()
            .await
            .expect("POST /hello/{name}/reads")
    }

    /// Like [`TestApp::take`], expecting 201; the JSON body.
    async fn take_ok(&self, name: &str, query: &str) -> Value {
        let response = self.take(name, query).await;
        assert_eq!(response.status(), 201, "POST /hello/{name}/reads{query}");
        response.json().await.expect("reliable read JSON")
    }

    /// `DELETE /hello/{name}/reads/{receipt}`.
    async fn confirm(&self, name: &str, receipt: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}/hello/{name}/reads/{receipt}", self.url))
            .send()
            .await
            .expect("DELETE /hello/{name}/reads/{receipt}")
    }
}

fn senders(read: &Value) -> Vec<&str> {
    read["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hello| hello["from"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_reliable_read_leases_the_oldest_hellos_and_answers_a_receipt() {
    let app = spawn_app().await;
    for sender in ["ann", "ben", "cy"] {
        app.say(sender, "bob").await;
    }
    let response = app.take("Bob", "?limit=2").await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let read: Value = response.json().await.unwrap();
    assert_eq!(senders(&read), ["ann", "ben"]);
    assert_eq!(read["name"], "Bob");
    assert_eq!(read["remaining"], 1);
    let receipt = read["receipt"].as_str().unwrap();
    assert!(
        receipt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe: {receipt}"
    );
    assert_eq!(location, format!("/hello/Bob/reads/{receipt}"));
    let expires = read["lease_expires_at"].as_str().unwrap();
    assert!(
        expires.len() == 24 && expires.ends_with('Z'),
        "formatted like `at`: {expires}"
    );
    // Hidden from every other reader until confirmed or run out.
    assert_eq!(senders(&app.inbox("bob").await), ["cy"]);
}

/// hello-service passes world's hellos on as they came: the answers must still have exactly
/// the documented fields, at the top and in each hello.
#[tokio::test]
async fn read_answers_have_exactly_the_documented_fields() {
    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }
    let app = spawn_app().await;
    for sender in ["ann", "ben", "cy"] {
        app.say(sender, "bob").await;
    }
    let read = app.take_ok("bob", "?limit=2").await;
    assert_eq!(
        keys(&read),
        ["hellos", "lease_expires_at", "name", "receipt", "remaining"]
    );
    let inbox = app.inbox("bob").await;
    assert_eq!(keys(&inbox), ["hellos", "name", "remaining"]);
    for hello in read["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .chain(inbox["hellos"].as_array().unwrap())
    {
        assert_eq!(keys(hello), ["at", "from", "id", "verified"]);
        assert_eq!(hello["verified"], false);
    }
    assert_eq!(
        read["hellos"].as_array().unwrap().len() + inbox["hellos"].as_array().unwrap().len(),
        3
    );
}

#[tokio::test]
async fn an_empty_inbox_answers_201_with_no_receipt() {
    let app = spawn_app().await;
    let response = app.take("nobody", "").await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("location").is_none());
    let read: Value = response.json().await.unwrap();
    assert_eq!(read["hellos"], serde_json::json!([]));
    assert_eq!(read["receipt"], Value::Null);
    assert_eq!(read["lease_expires_at"], Value::Null);
    assert_eq!(read["remaining"], 0);
}

#[tokio::test]
async fn confirming_deletes_the_hellos_for_good_and_confirming_again_is_204() {
    let app = spawn_app().await;
    app.say("ann", "bob").await;
    let read = app.take_ok("bob", "").await;
    let receipt = read["receipt"].as_str().unwrap();
    for _ in 0..2 {
        let response = app.confirm("BOB", receipt).await;
        assert_eq!(response.status(), 204);
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    assert_eq!(
        app.take_ok("bob", "").await["hellos"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn unconfirmed_hellos_come_back_in_order_and_a_late_confirmation_is_410() {
    let app = spawn_app().await;
    for sender in ["ann", "ben", "cy"] {
        app.say(sender, "bob").await;
    }
    let first = app.take_ok("bob", "?limit=2&lease_ms=150").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = app.confirm("bob", first["receipt"].as_str().unwrap()).await;
    let problem = expect_problem(late, 410).await;
    assert_eq!(problem["type"], "/problems/lease-expired");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("delivered again"),
        "{problem}"
    );
    let again = app.take_ok("bob", "").await;
    assert_eq!(senders(&again), ["ann", "ben", "cy"]);
    // Still 410 on repeat, and the later read's receipt confirms.
    expect_problem(
        app.confirm("bob", first["receipt"].as_str().unwrap()).await,
        410,
    )
    .await;
    assert_eq!(
        app.confirm("bob", again["receipt"].as_str().unwrap())
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn an_unknown_malformed_or_other_names_receipt_is_404_and_changes_nothing() {
    let app = spawn_app().await;
    app.say("ann", "bob").await;
    let read = app.take_ok("bob", "").await;
    let receipt = read["receipt"].as_str().unwrap();
    let too_long = "a".repeat(65);
    for (name, receipt) in [
        ("carol", receipt),
        ("bob", "01a22c50-0000-7000-8000-000000000000"),
        ("bob", "not%20a%20receipt"),
        ("bob", "..%2F..%2Fhealthz"),
        ("bob", too_long.as_str()),
    ] {
        let problem = expect_problem(app.confirm(name, receipt).await, 404).await;
        assert_eq!(
            problem["type"], "/problems/receipt-not-found",
            "{name} {receipt}"
        );
    }
    assert_eq!(app.confirm("bob", receipt).await.status(), 204);
}

#[tokio::test]
async fn bad_limits_lease_lengths_and_bodies_are_400_and_take_nothing() {
    let app = spawn_app().await;
    app.say("ann", "bob").await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=many", "limit"),
        ("?lease_ms=99", "lease_ms"),
        ("?lease_ms=3600001", "lease_ms"),
        ("?lease_ms=soon", "lease_ms"),
        ("?lease_ms=-1", "lease_ms"),
    ] {
        let problem = expect_problem(app.take("bob", query).await, 400).await;
        assert_eq!(problem["field"], field, "{query}");
    }
    expect_problem(app.take("bob", "?colour=red").await, 400).await;
    expect_problem(app.take("$bob", "").await, 400).await;
    for body in ["hello", "{\"limit\": 5}", "[]", "null"] {
        let response = app
            .client
            .post(format!("{}/hello/bob/reads", app.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 400).await;
        assert_eq!(problem["type"], "/problems/malformed-body", "{body}");
    }
    // Nothing was taken by any of those; an empty object is fine, with or without a type.
    for (body, content_type) in [("{}", Some("application/json")), (" {} ", None), ("", None)] {
        let mut request = app
            .client
            .post(format!("{}/hello/bob/reads", app.url))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 201, "{body:?}");
        let read: Value = response.json().await.unwrap();
        if let Some(receipt) = read["receipt"].as_str() {
            assert_eq!(senders(&read), ["ann"]);
            assert_eq!(app.confirm("bob", receipt).await.status(), 204);
        }
    }
}
