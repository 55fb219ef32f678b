//! One send, lease or confirmation through world's batch routes (hello-service's only way to ask
//! for them), read back as the status and body the public request would answer with.

use hello_common::{token::TokenHash, wire::paths};
use serde_json::{Value, json};

/// Stores a hello: (201, the stored hello) or (the problem's status, the problem).
pub async fn send(
    url: &str,
    to: &str,
    from: Option<&str>,
    token: Option<&TokenHash>,
) -> (u16, Value) {
    let mut call = json!({ "to": to, "request_id": "test-send" });
    if let Some(from) = from {
        call["from"] = json!(from);
    }
    one(url, paths::SEND_BATCH, call, token).await
}

/// Leases at most `limit` hellos: (200, the lease) or (the problem's status, the problem).
pub async fn lease(
    url: &str,
    name: &str,
    limit: u32,
    lease_ms: Option<u64>,
    token: Option<&TokenHash>,
) -> (u16, Value) {
    let mut call = json!({ "name": name, "limit": limit, "request_id": "test-lease" });
    if let Some(lease_ms) = lease_ms {
        call["lease_ms"] = json!(lease_ms);
    }
    one(url, paths::LEASE_BATCH, call, token).await
}

/// Confirms a lease: (204, null) or (the problem's status, the problem).
pub async fn confirm(
    url: &str,
    name: &str,
    lease: &str,
    token: Option<&TokenHash>,
) -> (u16, Value) {
    let call = json!({ "name": name, "lease": lease, "request_id": "test-confirm" });
    one(url, paths::CONFIRM_BATCH, call, token).await
}

/// A batch of one `call` to `path`, its outcome as a status and a body.
async fn one(url: &str, path: &str, mut call: Value, token: Option<&TokenHash>) -> (u16, Value) {
    if let Some(token) = token {
        call["token_sha256"] = json!(token.to_hex());
    }
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(&json!({ "calls": [call] }))
        .send()
        .await
        .unwrap_or_else(|error| panic!("POST {path}: {error}"));
    assert_eq!(response.status(), 200, "a batch of one to {path}");
    let mut answer: Value = response.json().await.expect("outcomes");
    let outcome = answer["outcomes"][0].take();
    if outcome == json!("confirmed") {
        return (204, Value::Null);
    }
    match outcome
        .as_object()
        .and_then(|outcome| outcome.iter().next())
    {
        Some((kind, body)) if kind == "refused" => {
            (body["status"].as_u64().unwrap() as u16, body.clone())
        }
        Some((kind, body)) if kind == "stored" => (201, body.clone()),
        Some((kind, body)) if kind == "leased" => (200, body.clone()),
        _ => panic!("not an outcome: {outcome}"),
    }
}
