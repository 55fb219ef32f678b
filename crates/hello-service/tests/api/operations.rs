use hello_common::testing::free_port;

use crate::support::{Options, expect_problem, get_json, spawn_app, spawn_hello};

#[tokio::test]
async fn every_answer_names_the_serving_pod() {
    let app = spawn_app().await;
    for response in [
        app.say("alice", "bob").await,
        app.read("bob").await,
        app.read("$bad").await,
        app.client
            .get(format!("{}/nowhere", app.url))
            .send()
            .await
            .unwrap(),
        app.client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap(),
    ] {
        let pod = response
            .headers()
            .get("x-pod-name")
            .expect("X-Pod-Name header");
        assert!(!pod.is_empty());
    }
}

#[tokio::test]
async fn health_and_readiness_answer_200_when_world_is_up() {
    let app = spawn_app().await;
    for probe in ["healthz", "readyz"] {
        let response = app
            .client
            .get(format!("{}/{probe}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "/{probe}");
    }
}

#[tokio::test]
async fn without_world_requests_answer_503_with_retry_after_and_readiness_fails() {
    let no_socket = tempfile::tempdir().unwrap();
    for world_url in [
        format!("http://127.0.0.1:{}", free_port()),
        format!("unix:{}", no_socket.path().join("world.sock").display()),
    ] {
        assert_world_is_missing(&world_url).await;
    }
}

async fn assert_world_is_missing(world_url: &str) {
    let app = spawn_hello(world_url.to_owned(), &Options::default());
    for response in [
        app.say("alice", "bob").await,
        app.read("bob").await,
        app.client
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap(),
    ] {
        assert!(
            response.headers().contains_key("retry-after"),
            "{world_url}"
        );
        let problem = expect_problem(response, 503).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("nothing was changed")),
            "{world_url}: {problem}"
        );
    }
    let alive = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200, "liveness does not depend on world");
}

#[tokio::test]
async fn when_world_takes_the_request_but_does_not_answer_in_time_the_outcome_is_504_with_what_is_safe()
 {
    // A world that accepts connections and reads, but never answers: the request got there, so
    // hello-service cannot say that nothing was done.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let world_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let app = spawn_hello(
        world_url,
        &Options {
            world_timeout_ms: Some(300),
            ..Options::default()
        },
    );
    let sent = expect_problem(app.say("alice", "bob").await, 504).await;
    assert_eq!(sent["type"], "/problems/outcome-unknown");
    let detail = sent["detail"].as_str().unwrap();
    assert!(detail.contains("same Idempotency-Key"), "{detail}");
    assert!(!detail.contains("nothing was changed"), "{detail}");

    let read = expect_problem(app.read("bob").await, 504).await;
    let detail = read["detail"].as_str().unwrap();
    assert!(detail.contains("lease runs out"), "{detail}");

    // Readiness changes nothing: not answering in time is simply "not ready".
    let ready = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    expect_problem(ready, 503).await;
}

#[tokio::test]
async fn openapi_describes_the_public_api_in_version_3_1() {
    let app = spawn_app().await;
    let document = get_json(&app.client, &format!("{}/openapi.json", app.url)).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let hello = &document["paths"]["/hello/{name}"];
    assert!(hello["post"]["responses"]["201"].is_object());
    assert!(hello["get"]["responses"]["200"].is_object());
    assert!(
        hello["post"]["responses"]["504"].is_object(),
        "the unknown outcome is documented"
    );
    let reads = &document["paths"]["/hello/{name}/reads"]["post"]["responses"];
    assert!(reads["201"]["headers"]["Location"].is_object(), "{reads}");
    let confirm = &document["paths"]["/hello/{name}/reads/{receipt}"]["delete"]["responses"];
    for status in ["204", "404", "410", "504"] {
        assert!(
            confirm[status].is_object(),
            "DELETE .../reads/{{receipt}} documents {status}"
        );
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/nowhere", app.url))
        .send()
        .await
        .unwrap();
    expect_problem(response, 404).await;
    let response = app
        .client
        .delete(format!("{}/hello/bob", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["allow"],
        "GET, POST",
        "RFC 9110: a 405 lists the methods"
    );
    expect_problem(response, 405).await;
}

#[test]
fn help_prints_the_usage_and_an_unknown_argument_stops_instead_of_serving() {
    hello_common::testing::assert_command_line(
        env!("CARGO_BIN_EXE_hello-service"),
        "healthcheck [PATH]",
        "--port=9",
    );
}

/// A small deterministic generator (xorshift), so that a failure can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }

    /// A random HTTP method: 1 to 40 characters of RFC 9110's token alphabet.
    fn method(&mut self) -> reqwest::Method {
        const TOKEN: &[u8] =
            b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let length = 1 + self.roll(40);
        let method: Vec<u8> = (0..length).map(|_| TOKEN[self.roll(TOKEN.len())]).collect();
        reqwest::Method::from_bytes(&method).expect("a token is a method")
    }

    /// A random path: under a route of the API or beside them, with a random part of 6 to 12
    /// letters (too long to be part of a route pattern by chance).
    fn path(&mut self) -> (String, String) {
        let random: String = (0..6 + self.roll(7))
            .map(|_| char::from(b'a' + self.roll(26) as u8))
            .collect();
        let prefixes = [
            "/hello/",
            "/names/",
            "/hello/bob/reads/",
            "/",
            "/metrics/",
            "/v1/",
        ];
        (
            format!("{}{random}", prefixes[self.roll(prefixes.len())]),
            random,
        )
    }
}

/// The label values of every series of `name` in a Prometheus text exposition.
fn label_values(exposition: &str, name: &str, label: &str) -> std::collections::BTreeSet<String> {
    let prefix = format!("{name}{{");
    let needle = format!("{label}=\"");
    exposition
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| {
            let start = line.find(&needle)? + needle.len();
            let end = start + line[start..].find('"')?;
            Some(line[start..end].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_requests_with_random_methods_and_paths_add_no_metric_series() {
    let app = spawn_app().await;
    let socket = app.world_socket().expect("world on its socket");
    // A connection each: a service may close a connection after answering a strange request,
    // and a pooled connection would race that close.
    let world = reqwest::Client::builder()
        .unix_socket(socket)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let hello = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let metrics = || async {
        let response = app
            .client
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let before = metrics().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut dice = Dice(seed);
    let mut sent = Vec::new();
    for _ in 0..1_000 {
        let (method, (path, random)) = (dice.method(), dice.path());
        sent.push(random);
        let answer = hello
            .request(method.clone(), format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().as_u16() < 500,
            "{method} {path}: {}",
            answer.status()
        );
        let (method, (path, random)) = (dice.method(), dice.path());
        sent.push(random);
        let answer = world
            .request(method.clone(), format!("http://world{path}"))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().as_u16() < 500,
            "world: {method} {path}: {}",
            answer.status()
        );
    }
    let after = metrics().await;
    for service in ["hello", "world"] {
        let requests = format!("{service}_http_requests_total");
        let methods = label_values(&after, &requests, "method");
        assert!(
            methods.contains("other"),
            "seed {seed}: {service} counted no request as 'other' (its metrics: {methods:?})"
        );
        let unknown: Vec<&String> = methods
            .iter()
            .filter(|method| !hello_common::observability::METHOD_LABELS.contains(&method.as_str()))
            .take(10)
            .collect();
        assert!(
            unknown.is_empty(),
            "seed {seed}: {service}'s method labels include {unknown:?}"
        );
        // A route label is a pattern or `unmatched`, never a path a client sent.
        let routes = label_values(&after, &requests, "route");
        let leaked: Vec<&String> = routes
            .iter()
            .filter(|route| sent.iter().any(|part| route.contains(part.as_str())))
            .collect();
        assert!(
            leaked.is_empty(),
            "seed {seed}: {service}'s route labels {leaked:?}"
        );
    }
    // Every series is one of a fixed set: at most a route, a method label and a status each.
    let growth = after.len().saturating_sub(before.len());
    assert!(
        growth < 64 * 1024,
        "seed {seed}: /metrics grew by {growth} bytes, from {} to {}",
        before.len(),
        after.len()
    );
}
