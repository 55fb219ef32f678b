//! Reads that wait for a hello (`wait`), through the real services on both backends: answered
//! by a send through this pod or through another replica, ended with 401 by a rotation, answered
//! empty when the time is up, bounded per client and per pod.

use std::time::{Duration, Instant};

use hello_common::testing::MongoTestServer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Options, TestApp, expect_problem, spawn_app_with};

/// Options for an embedded store, or for a fresh database on the shared nx-27017. world's check
/// runs every 10 s: what a test sees within a few seconds came from the wake at once, not from
/// the check.
pub(crate) fn on(backend: &str) -> Options {
    let mongodb = (backend == "mongodb").then(|| {
        let server = MongoTestServer::shared();
        (server.uri(), server.fresh_database())
    });
    Options {
        mongodb,
        wake_interval_ms: Some(10_000),
        ..Options::default()
    }
}

/// Far less than the 20 s a read waits and the 10 s between world's checks, far more than a
/// wake takes on any machine.
pub(crate) const SOON: Duration = Duration::from_secs(5);

/// `METHOD path` with an optional bearer token.
pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// A read of `path` started now, answered later.
pub(crate) fn start(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> tokio::task::JoinHandle<(reqwest::Response, Instant)> {
    let mut request = app.client.get(format!("{}{path}", app.url));
    if path.contains("/reads") {
        request = app.client.post(format!("{}{path}", app.url));
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    tokio::spawn(async move { (request.send().await.unwrap(), Instant::now()) })
}

/// Gives a started read time to reach its wait, and checks it is still waiting.
pub(crate) async fn still_waiting(read: &tokio::task::JoinHandle<(reqwest::Response, Instant)>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !read.is_finished(),
        "the read answered before anything happened"
    );
}

async fn claim(app: &TestApp, name: &str) -> String {
    let response = call(app, Method::POST, &format!("/names/{name}"), None).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn a_send_answers_a_waiting_read_with_its_hello(backend: &str) {
    let app = spawn_app_with(on(backend)).await;
    let read = start(&app, "/hello/bob?wait=20", None);
    still_waiting(&read).await;
    let sent = Instant::now();
    assert_eq!(app.say("alice", "Bob").await.status(), 201);
    let (answer, answered) = read.await.unwrap();
    assert_eq!(answer.status(), 200);
    let inbox: Value = answer.json().await.unwrap();
    assert_eq!(inbox["hellos"][0]["from"], "alice", "{inbox}");
    // Woken by the send itself (not by world's check, 10 s away), long before the wait's end.
    assert!(answered - sent < SOON, "{:?}", answered - sent);
    println!(
        "{backend}: answered {:?} after the send's 201",
        answered - sent
    );
    assert_eq!(
        app.inbox("bob").await["hellos"],
        json!([]),
        "delivered once"
    );
}

#[tokio::test]
async fn embedded_a_send_answers_a_waiting_read_with_its_hello() {
    a_send_answers_a_waiting_read_with_its_hello("embedded").await;
}

#[tokio::test]
async fn mongodb_a_send_answers_a_waiting_read_with_its_hello() {
    a_send_answers_a_waiting_read_with_its_hello("mongodb").await;
}

async fn a_rotation_ends_the_owners_wait_with_401(backend: &str) {
    let app = spawn_app_with(on(backend)).await;
    let token = claim(&app, "carol").await;
    // Without the token: 401 at once, before any wait.
    let started = Instant::now();
    let refused = call(&app, Method::GET, "/hello/carol?wait=20", None).await;
    expect_problem(refused, 401).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused before waiting"
    );
    // With it: waits; a rotation ends the wait with 401 and reads nothing.
    let read = start(&app, "/hello/carol?wait=20", Some(&token));
    let reliable = start(&app, "/hello/carol/reads?wait=20", Some(&token));
    still_waiting(&read).await;
    let rotating = Instant::now();
    let rotated = call(&app, Method::POST, "/names/carol/token", Some(&token)).await;
    assert_eq!(rotated.status(), 201);
    let new: Value = rotated.json().await.unwrap();
    let new = new["token"].as_str().unwrap().to_owned();
    for waiting in [read, reliable] {
        let (answer, answered) = waiting.await.unwrap();
        assert!(answered - rotating < SOON, "woken by the rotation itself");
        let problem = expect_problem(answer, 401).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("token"),
            "{problem}"
        );
    }
    // The new token waits and reads.
    let read = start(&app, "/hello/carol?wait=20", Some(&new));
    still_waiting(&read).await;
    assert_eq!(app.say("dave", "carol").await.status(), 201);
    let (answer, _) = read.await.unwrap();
    let inbox: Value = answer.json().await.unwrap();
    assert_eq!(inbox["hellos"][0]["from"], "dave", "{inbox}");
}

#[tokio::test]
async fn embedded_a_rotation_ends_the_owners_wait_with_401() {
    a_rotation_ends_the_owners_wait_with_401("embedded").await;
}

#[tokio::test]
async fn mongodb_a_rotation_ends_the_owners_wait_with_401() {
    a_rotation_ends_the_owners_wait_with_401("mongodb").await;
}

#[tokio::test]
async fn a_send_through_another_replica_wakes_the_reader_within_the_interval() {
    let server = MongoTestServer::shared();
    let shared = (server.uri(), server.fresh_database());
    let replica = |interval| Options {
        mongodb: Some(shared.clone()),
        wake_interval_ms: Some(interval),
        ..Options::default()
    };
    let here = spawn_app_with(replica(200)).await;
    let there = spawn_app_with(replica(200)).await;
    let read = start(&here, "/hello/erin?wait=20", None);
    let reliable = start(&here, "/hello/frank/reads?wait=20", None);
    still_waiting(&read).await;
    let sent = Instant::now();
    assert_eq!(there.say("alice", "erin").await.status(), 201);
    assert_eq!(there.say("alice", "frank").await.status(), 201);
    let (answer, answered) = read.await.unwrap();
    let inbox: Value = answer.json().await.unwrap();
    assert_eq!(inbox["hellos"][0]["from"], "alice", "{inbox}");
    // By the other world's check (every 200 ms), long before the wait's end.
    assert!(answered - sent < SOON, "{:?}", answered - sent);
    println!(
        "another replica's send answered {:?} after its 201",
        answered - sent
    );
    let (answer, _) = reliable.await.unwrap();
    assert_eq!(answer.status(), 201);
    let read: Value = answer.json().await.unwrap();
    assert_eq!(read["hellos"][0]["from"], "alice", "{read}");
    assert!(read["receipt"].is_string(), "{read}");
}

#[tokio::test]
async fn a_wait_that_runs_out_answers_an_empty_inbox() {
    let app = spawn_app_with(on("embedded")).await;
    let started = Instant::now();
    let answer = call(&app, Method::GET, "/hello/gina?wait=1", None).await;
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    let inbox: Value = answer.json().await.unwrap();
    assert_eq!(inbox["hellos"], json!([]));
    for bad in ["21", "-1", "1.5", "soon"] {
        let refused = call(&app, Method::GET, &format!("/hello/gina?wait={bad}"), None).await;
        let problem = expect_problem(refused, 400).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("wait"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn waiting_readers_are_bounded_per_client_and_per_pod() {
    let app = spawn_app_with(Options {
        wait_limits: Some((2, 3)),
        ..on("embedded")
    })
    .await;
    let first = start(&app, "/hello/h1?wait=20", None);
    let second = start(&app, "/hello/h2?wait=20", None);
    still_waiting(&second).await;
    let refused = call(&app, Method::GET, "/hello/h3?wait=20", None).await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_problem(refused, 429).await;
    // Without wait, or with something to read, nothing is refused.
    assert_eq!(
        call(&app, Method::GET, "/hello/h3", None).await.status(),
        200
    );
    assert_eq!(app.say("alice", "h1").await.status(), 201);
    let (answer, _) = first.await.unwrap();
    assert_eq!(answer.status(), 200);
    // Another client (X-Real-IP, as nginx passes it) has a slot of its own, up to the pod's.
    let other = |path: &str| {
        app.client
            .get(format!("{}{path}", app.url))
            .header("x-real-ip", "192.0.2.7")
            .send()
    };
    let third = tokio::spawn(other("/hello/h4?wait=20"));
    let fourth = tokio::spawn(other("/hello/h5?wait=20"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pod_full = other("/hello/h6?wait=20").await.unwrap();
    assert!(pod_full.headers().contains_key("retry-after"));
    expect_problem(pod_full, 503).await;
    for name in ["h2", "h4", "h5"] {
        assert_eq!(app.say("alice", name).await.status(), 201);
    }
    for waiting in [third, fourth] {
        assert_eq!(waiting.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(second.await.unwrap().0.status(), 200);
}

async fn a_lease_that_runs_out_wakes_a_waiting_reader(backend: &str) {
    // No commit announces a lease running out: world's check finds it.
    let app = spawn_app_with(Options {
        wake_interval_ms: Some(200),
        ..on(backend)
    })
    .await;
    assert_eq!(app.say("alice", "kim").await.status(), 201);
    // A reliable read takes the hello for 500 ms and never confirms.
    let taken = call(&app, Method::POST, "/hello/kim/reads?lease_ms=500", None).await;
    let taken: Value = taken.json().await.unwrap();
    assert_eq!(taken["hellos"][0]["from"], "alice", "{taken}");
    // A waiting read gets it when the lease runs out, with no new send.
    let (answer, _) = start(&app, "/hello/kim?wait=20", None).await.unwrap();
    let inbox: Value = answer.json().await.unwrap();
    assert_eq!(
        inbox["hellos"][0]["id"], taken["hellos"][0]["id"],
        "{inbox}"
    );
}

#[tokio::test]
async fn embedded_a_lease_that_runs_out_wakes_a_waiting_reader() {
    a_lease_that_runs_out_wakes_a_waiting_reader("embedded").await;
}

#[tokio::test]
async fn mongodb_a_lease_that_runs_out_wakes_a_waiting_reader() {
    a_lease_that_runs_out_wakes_a_waiting_reader("mongodb").await;
}

/// The sum of the series of `name` whose labels include every one of `labels`, in the
/// Prometheus text at `url`.
pub(crate) async fn metric(url: &str, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_hello_wakes_one_of_many_readers_of_its_inbox_and_each_hello_one_more() {
    let app = spawn_app_with(on("embedded")).await;
    let readers: Vec<_> = (0..12)
        .map(|_| start(&app, "/hello/herd?wait=20&limit=1", None))
        .collect();
    still_waiting(&readers[0]).await;
    let metrics = format!("{}/metrics", app.url);
    // Leases world has taken (its store timer's count), from hello's `/metrics`.
    let leases_taken = || {
        metric(
            &metrics,
            "world_store_operation_duration_seconds_count",
            &[r#"operation="lease""#],
        )
    };
    let before = leases_taken().await;
    // Three hellos: three readers answered, one each, the others still waiting.
    for sender in ["a1", "a2", "a3"] {
        assert_eq!(app.say(sender, "herd").await.status(), 201);
    }
    let deadline = Instant::now() + SOON;
    while readers.iter().filter(|read| read.is_finished()).count() < 3 {
        assert!(Instant::now() < deadline, "three readers answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(readers.iter().filter(|read| read.is_finished()).count(), 3);
    // About one lease a hello, not one per waiting reader (12 a hello before).
    let leases = leases_taken().await - before;
    assert!(
        leases <= 6.0,
        "{leases} leases for 3 hellos and 12 waiting readers"
    );
    let mut senders = Vec::new();
    for read in readers.into_iter().filter(|read| read.is_finished()) {
        let (answer, _) = read.await.unwrap();
        let inbox: Value = answer.json().await.unwrap();
        senders.push(inbox["hellos"][0]["from"].as_str().unwrap().to_owned());
    }
    senders.sort();
    assert_eq!(senders, ["a1", "a2", "a3"]);
}
