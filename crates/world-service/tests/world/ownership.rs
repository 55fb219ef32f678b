//! Names that belong to someone, through world-service's internal API: two real world-service
//! processes (two replicas) on one MongoDB (nx-27017). A claim made through one is enforced by
//! the other at once; a rotated token stops at once on both; a released name's hellos are gone.

use hello_common::{
    testing::{ChildService, MongoTestServer},
    token::Token,
    wire::TOKEN_HASH_HEADER,
};
use serde_json::{Value, json};

use crate::{binary::start, calls};

struct Replicas {
    a: ChildService,
    b: ChildService,
    client: reqwest::Client,
}

fn start_replica(database: &str, require_claim: bool) -> ChildService {
    start(&[
        ("WORLD_MONGODB_URI", MongoTestServer::shared().uri()),
        ("WORLD_MONGODB_DATABASE", database.to_owned()),
        ("WORLD_REQUIRE_CLAIM", require_claim.to_string()),
    ])
}

fn replicas() -> Replicas {
    replicas_requiring_claims(false)
}

/// Two replicas whose `WORLD_REQUIRE_CLAIM` is `require_claim`.
fn replicas_requiring_claims(require_claim: bool) -> Replicas {
    let database = MongoTestServer::shared().fresh_database();
    Replicas {
        a: start_replica(&database, require_claim),
        b: start_replica(&database, require_claim),
        client: reqwest::Client::new(),
    }
}

/// One request to the names routes: (status, JSON body or Null).
async fn call(
    replicas: &Replicas,
    world: &ChildService,
    method: reqwest::Method,
    path: &str,
    token: Option<&Token>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = replicas
        .client
        .request(method, format!("{}{path}", world.url()));
    if let Some(token) = token {
        request = request.header(TOKEN_HASH_HEADER, token.hash().to_hex());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn claim(replicas: &Replicas, world: &ChildService, name: &str) -> (u16, Value, Token) {
    let token = Token::generate();
    let (status, body) = call(
        replicas,
        world,
        reqwest::Method::POST,
        &format!("/v1/names/{name}"),
        None,
        Some(json!({ "token_sha256": token.hash().to_hex() })),
    )
    .await;
    (status, body, token)
}

async fn send(
    world: &ChildService,
    to: &str,
    from: Option<&str>,
    token: Option<&Token>,
) -> (u16, Value) {
    calls::send(&world.url(), to, from, token.map(Token::hash).as_ref()).await
}

async fn read(world: &ChildService, name: &str, token: Option<&Token>) -> (u16, Value) {
    let token = token.map(Token::hash);
    calls::lease(&world.url(), name, 100, Some(60_000), token.as_ref()).await
}

#[tokio::test]
async fn a_claim_through_one_replica_is_enforced_by_the_other_at_once() {
    let replicas = replicas();
    let (status, body, owner) = claim(&replicas, &replicas.a, "Ivy").await;
    assert_eq!(
        (status, body["name"].as_str()),
        (201, Some("Ivy")),
        "{body}"
    );
    // Claimed again, or a look-alike, through the other replica: 409.
    for taken in ["ivy", "ｉｖｙ"] {
        let (status, body, _) = claim(&replicas, &replicas.b, taken).await;
        assert_eq!(status, 409, "{taken}: {body}");
        assert_eq!(body["type"], "/problems/name-taken");
    }
    assert_eq!(send(&replicas.b, "ivy", Some("jon"), None).await.0, 201);

    // No token: 401 with the Bearer challenge; another name's token or a made-up one: invalid_token.
    let (status, body) = read(&replicas.b, "ivy", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "/problems/token-required");
    let (_, _, other) = claim(&replicas, &replicas.a, "kim").await;
    for wrong in [&other, &Token::generate()] {
        let (status, body) = read(&replicas.b, "ivy", Some(wrong)).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (401, Some("/problems/invalid-token"))
        );
    }
    // The owner's token reads the inbox, through either replica, and its look-alike inboxes.
    let (status, body) = read(&replicas.b, "IVY", Some(&owner)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hellos"][0]["from"], "jon");
    assert_eq!(body["hellos"][0]["verified"], false);
    let (status, _) = read(&replicas.a, "ｉｖｙ", None).await;
    assert_eq!(status, 401, "a look-alike inbox is covered by the claim");
    let (status, _) = read(&replicas.a, "ｉｖｙ", Some(&owner)).await;
    assert_eq!(status, 200);
    // A token sent to an unclaimed inbox is not its token.
    let (status, body) = read(&replicas.a, "nobody", Some(&owner)).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (401, Some("/problems/invalid-token"))
    );
    assert_eq!(read(&replicas.a, "nobody", None).await.0, 200);
}

#[tokio::test]
async fn sending_as_a_claimed_name_needs_its_token_and_is_then_verified() {
    let replicas = replicas();
    let (_, _, owner) = claim(&replicas, &replicas.a, "lea").await;
    // Without the token, as the name or a look-alike: 403.
    for pretender in ["lea", "LEA", "ｌｅａ"] {
        let (status, body) = send(&replicas.b, "max", Some(pretender), None).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (403, Some("/problems/not-your-name")),
            "{pretender}: {body}"
        );
    }
    // With a made-up token: 401; with a valid token and another `from`: 403.
    let (status, _) = send(&replicas.b, "max", Some("lea"), Some(&Token::generate())).await;
    assert_eq!(status, 401);
    let (status, body) = send(&replicas.b, "max", Some("someone"), Some(&owner)).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some("/problems/not-your-name"))
    );
    // With the token: verified, with or without `from`.
    let (status, body) = send(&replicas.b, "max", Some("Lea"), Some(&owner)).await;
    assert_eq!(
        (status, body["verified"].as_bool()),
        (201, Some(true)),
        "{body}"
    );
    let (status, body) = send(&replicas.a, "max", None, Some(&owner)).await;
    assert_eq!(
        (status, body["from"].as_str(), body["verified"].as_bool()),
        (201, Some("lea"), Some(true))
    );
    // Without a token, and without `from`: 400. Unclaimed senders still send, unverified.
    assert_eq!(send(&replicas.a, "max", None, None).await.0, 400);
    let (status, body) = send(&replicas.a, "max", Some("ned"), None).await;
    assert_eq!((status, body["verified"].as_bool()), (201, Some(false)));

    let (_, body) = read(&replicas.b, "max", None).await;
    let verified: Vec<_> = body["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["verified"].as_bool().unwrap())
        .collect();
    assert_eq!(verified, [true, true, false]);
}

async fn release(replicas: &Replicas, token: &Token) -> (u16, Value) {
    call(
        replicas,
        &replicas.a,
        reqwest::Method::DELETE,
        "/v1/names/ola",
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn a_rotated_token_stops_at_once_on_every_replica_and_a_released_name_leaves_nothing() {
    let replicas = replicas();
    let (_, _, old) = claim(&replicas, &replicas.a, "ola").await;
    send(&replicas.a, "ola", Some("pat"), None).await;
    let new = Token::generate();
    let rotate = |token: Option<Token>| {
        let body = json!({ "new_token_sha256": new.hash().to_hex() });
        let replicas = &replicas;
        async move {
            call(
                replicas,
                &replicas.b,
                reqwest::Method::POST,
                "/v1/names/ola/token",
                token.as_ref(),
                Some(body),
            )
            .await
        }
    };
    assert_eq!(rotate(None).await.0, 401);
    assert_eq!(rotate(Some(Token::generate())).await.0, 401);
    let (status, body) = call(
        &replicas,
        &replicas.b,
        reqwest::Method::POST,
        "/v1/names/ola/token",
        Some(&old),
        Some(json!({ "new_token_sha256": new.hash().to_hex() })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    for world in [&replicas.a, &replicas.b] {
        assert_eq!(
            read(world, "ola", Some(&old)).await.0,
            401,
            "the old token stopped"
        );
    }
    // Released with the new token (the old one is refused), through the other replica.
    assert_eq!(release(&replicas, &old).await.0, 401);
    assert_eq!(release(&replicas, &new).await.0, 204);
    assert_eq!(release(&replicas, &new).await.0, 404);
    // Free again: anyone reads it, and finds the previous owner's hellos gone.
    let (status, body) = read(&replicas.b, "ola", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["hellos"], json!([]), "{body}");
    let (status, _, _) = claim(&replicas, &replicas.b, "ola").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn with_require_claim_an_unclaimed_inbox_is_not_read() {
    let replicas = replicas_requiring_claims(true);
    let (status, body) = read(&replicas.a, "quinn", None).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (401, Some("/problems/token-required")),
        "{body}"
    );
    let (_, _, owner) = claim(&replicas, &replicas.a, "quinn").await;
    assert_eq!(read(&replicas.b, "quinn", Some(&owner)).await.0, 200);
}

/// `world-service names ACTION NAME` against the replicas' database, as an operator runs it
/// inside the world container: (exit success, stdout, stderr).
fn operator(database: &str, action: &str, name: &str) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
        .args(["names", action, name])
        .env("WORLD_MONGODB_URI", MongoTestServer::shared().uri())
        .env("WORLD_MONGODB_DATABASE", database)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_operator_resets_a_lost_token_or_releases_the_name_beside_the_running_service() {
    let database = MongoTestServer::shared().fresh_database();
    let replicas = Replicas {
        a: start_replica(&database, false),
        b: start_replica(&database, false),
        client: reqwest::Client::new(),
    };
    let (_, _, lost) = claim(&replicas, &replicas.a, "rita").await;
    send(&replicas.a, "rita", Some("sam"), None).await;

    let (ok, out, err) = operator(&database, "reset-token", "Rita");
    assert!(ok, "{out}{err}");
    let token = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(token.starts_with("hw_"), "{out}");
    assert_eq!(
        read(&replicas.b, "rita", Some(&lost)).await.0,
        401,
        "the lost token stopped"
    );
    // The printed token is the one that now reads the inbox (world sees its hash).
    assert_eq!(read(&replicas.b, "rita", None).await.0, 401);
    let hash = hello_common::token::TokenHash::of(&token);
    let (status, body) = calls::lease(&replicas.a.url(), "rita", 100, None, Some(&hash)).await;
    assert_eq!(status, 200, "{body}");

    let (ok, out, err) = operator(&database, "release", "rita");
    assert!(ok, "{out}{err}");
    assert_eq!(
        claim(&replicas, &replicas.b, "rita").await.0,
        201,
        "free again"
    );
    let (ok, _, err) = operator(&database, "release", "nobody");
    assert!(!ok && err.contains("not claimed"), "{err}");
    let (ok, _, err) = operator(&database, "rename", "rita");
    assert!(!ok && err.contains("usage"), "{err}");
}
