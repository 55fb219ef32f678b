//! A read is acknowledged only once its answer was received: an answer that dies with its
//! connection (the pod's nginx killed before it read it) comes back after the lease; an answer
//! whose connection lives on does not.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{Options, TestApp, spawn_app_with};

const LEASE_MS: u64 = 400;

async fn app_with_one_hello(to: &str) -> TestApp {
    let app = spawn_app_with(Options {
        lease_ms: LEASE_MS,
        ..Options::default()
    })
    .await;
    assert_eq!(app.say("alice", to).await.status(), 201);
    app
}

/// Sends `GET /hello/{name}` on a raw connection, as nginx would.
async fn raw_get(app: &TestApp, name: &str, extra_headers: &str) -> TcpStream {
    let address = app.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET /hello/{name} HTTP/1.1\r\nHost: pod\r\n{extra_headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buffer = vec![0u8; 4096];
    let read = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

async fn after_the_lease() {
    tokio::time::sleep(Duration::from_millis(LEASE_MS) + hello_service::settling::SETTLE * 3).await;
}

#[tokio::test]
async fn an_answer_lost_with_its_connection_is_delivered_again() {
    let app = app_with_one_hello("crashy").await;
    let stream = raw_get(&app, "crashy", "").await;
    // The peer dies without reading: closing a socket with unread data resets the connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);

    after_the_lease().await;
    let inbox = app.inbox("crashy").await;
    assert_eq!(inbox["hellos"][0]["from"], "alice", "{inbox}");
}

#[tokio::test]
async fn an_answer_whose_connection_stays_open_is_acknowledged() {
    let app = app_with_one_hello("steady").await;
    let mut stream = raw_get(&app, "steady", "").await;
    let answer = read_answer(&mut stream).await;
    assert!(answer.contains("alice"), "{answer}");

    after_the_lease().await;
    assert_eq!(app.inbox("steady").await["hellos"], serde_json::json!([]));
    drop(stream);
}

#[tokio::test]
async fn an_answer_followed_by_another_request_is_acknowledged_even_if_the_connection_then_closes()
{
    let app = app_with_one_hello("reused").await;
    let mut stream = raw_get(&app, "reused", "").await;
    assert!(read_answer(&mut stream).await.contains("alice"));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: pod\r\n\r\n")
        .await
        .unwrap();
    assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 200"));
    drop(stream);

    after_the_lease().await;
    assert_eq!(app.inbox("reused").await["hellos"], serde_json::json!([]));
}

#[tokio::test]
async fn an_answer_to_a_client_that_asked_to_close_is_acknowledged() {
    let app = app_with_one_hello("oneshot").await;
    let mut stream = raw_get(&app, "oneshot", "Connection: close\r\n").await;
    assert!(read_answer(&mut stream).await.contains("alice"));
    drop(stream);

    after_the_lease().await;
    assert_eq!(app.inbox("oneshot").await["hellos"], serde_json::json!([]));
}
