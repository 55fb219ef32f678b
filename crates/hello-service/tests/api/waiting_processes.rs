//! Waiting reads and the processes around them: hello stopping (SIGTERM answers every waiting
//! reader at once), world stopping (not asked again and again) or restarting (it learns the
//! watched set again), a client hanging up (its slot is free at once), and the metrics of a read
//! that waited.

use std::time::{Duration, Instant};

use hello_common::testing::{ChildService, free_port};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    support::{Options, TestApp, spawn_app_with, spawn_hello, start_world_process, world_binary},
    waiting::{call, metric, on, start, still_waiting},
};

#[tokio::test]
async fn sigterm_answers_every_waiting_reader_at_once_with_nothing() {
    let data = tempfile::tempdir().unwrap();
    let world = start_world_process(&[("WORLD_DATA_DIR", data.path().display().to_string())]);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut hello = ChildService::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_hello-service")),
        &[
            ("HELLO_LISTEN", address.to_string()),
            ("HELLO_WORLD_URL", world.url()),
            // Long enough to tell "answered at once" from "answered when the drain ended".
            ("HELLO_SHUTDOWN_DRAIN_MS", "5000".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
        address,
    );
    let app = TestApp::at(hello.url());
    let reads: Vec<_> = [
        "/hello/ivan?wait=20",
        "/hello/ivan/reads?wait=20",
        "/hello/judy?wait=20",
    ]
    .into_iter()
    .map(|path| start(&app, path, None))
    .collect();
    still_waiting(&reads[0]).await;
    hello.send_sigterm();
    let stopping = Instant::now();
    for read in reads {
        let (answer, answered) = read.await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        // Come back in a second, on a new connection (to a pod that is not stopping).
        assert_eq!(answer.headers()["retry-after"], "1");
        assert_eq!(answer.headers()["connection"], "close");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["hellos"], json!([]), "{body}");
        assert!(
            body.get("receipt").is_none_or(Value::is_null),
            "nothing leased: {body}"
        );
        assert!(
            answered - stopping < Duration::from_secs(4),
            "answered before the drain ended"
        );
    }
    assert!(
        !hello.has_exited(),
        "still draining when the readers were answered"
    );
    assert!(hello.terminate(Duration::from_secs(15)));
    world.kill();
}

#[tokio::test]
async fn a_restarted_world_learns_again_what_is_waited_on() {
    let data = tempfile::tempdir().unwrap();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let env = [
        ("WORLD_LISTEN", address.to_string()),
        ("WORLD_DATA_DIR", data.path().display().to_string()),
        ("WORLD_SHUTDOWN_DRAIN_MS", "0".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let world = ChildService::start(&world_binary(), &env, address);
    let app = spawn_hello(world.url(), &Options::default());
    let read = start(&app, "/hello/liam?wait=20", None);
    still_waiting(&read).await;
    world.kill();
    let world = ChildService::start(&world_binary(), &env, address);
    // The restarted world knows no session: hello sends its set again, and the send wakes it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!read.is_finished());
    assert_eq!(app.say("alice", "liam").await.status(), 201);
    let (answer, _) = read.await.unwrap();
    let inbox: Value = answer.json().await.unwrap();
    assert_eq!(inbox["hellos"][0]["from"], "alice", "{inbox}");
    world.kill();
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_waiting_slot() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(Options {
        wait_limits: Some((1, 10)),
        ..on("embedded")
    })
    .await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut client = tokio::net::TcpStream::connect(&address).await.unwrap();
    client
        .write_all(b"GET /hello/mia?wait=20 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let metrics = format!("{}/metrics", app.url);
    let waiting = || metric(&metrics, "hello_waiting_readers", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting().await < 1.0 {
        assert!(Instant::now() < deadline, "the read never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client gives up: its slot (the only one it may have) is free again at once.
    drop(client);
    while waiting().await > 0.0 {
        assert!(Instant::now() < deadline, "the wait outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = start(&app, "/hello/mia?wait=20", None);
    still_waiting(&again).await;
    assert_eq!(app.say("alice", "mia").await.status(), 201);
    assert_eq!(again.await.unwrap().0.status(), 200);
}

/// `hello_http_request_duration_seconds_count` for `GET /hello/{name}` and its requests counted.
async fn read_metrics(app: &TestApp) -> (f64, f64) {
    let url = format!("{}/metrics", app.url);
    let read = [r#"route="/hello/{name}""#, r#"method="GET""#];
    (
        metric(&url, "hello_http_request_duration_seconds_count", &read).await,
        metric(&url, "hello_http_requests_total", &read).await,
    )
}

#[tokio::test]
async fn a_read_that_waited_is_counted_but_left_out_of_the_latency_histogram() {
    let app = spawn_app_with(on("embedded")).await;
    let (timed, counted) = read_metrics(&app).await;
    assert_eq!(
        call(&app, Method::GET, "/hello/nina?wait=1", None)
            .await
            .status(),
        200
    );
    let (timed_after, counted_after) = read_metrics(&app).await;
    assert_eq!(counted_after, counted + 1.0, "counted");
    assert_eq!(
        timed_after, timed,
        "its time is the wait's: not in the latency histogram"
    );
    // A read with wait that found something at once is timed like any read.
    assert_eq!(app.say("alice", "nina").await.status(), 201);
    assert_eq!(
        call(&app, Method::GET, "/hello/nina?wait=1", None)
            .await
            .status(),
        200
    );
    assert_eq!(read_metrics(&app).await.0, timed + 1.0);
}

#[tokio::test]
async fn a_stopping_world_is_not_asked_for_wakes_again_and_again() {
    let data = tempfile::tempdir().unwrap();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let world = ChildService::start(
        &world_binary(),
        &[
            ("WORLD_LISTEN", address.to_string()),
            ("WORLD_DATA_DIR", data.path().display().to_string()),
            ("WORLD_SHUTDOWN_DRAIN_MS", "3000".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
        address,
    );
    let _app = spawn_hello(world.url(), &Options::default());
    let metrics = format!("{}/metrics", world.url());
    let wakes_calls = || {
        metric(
            &metrics,
            "world_http_requests_total",
            &[r#"route="/v1/watches/{session}/wakes""#],
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = wakes_calls().await;
    world.send_sigterm();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Still draining (3 s): it answers, and was asked a handful of times, not thousands.
    let during = wakes_calls().await - before;
    assert!(
        during <= 10.0,
        "{during} wakes calls in 2 s of world's drain"
    );
    assert!(world.terminate(Duration::from_secs(15)));
}
