use hello_common::testing::free_port;
use serde_json::Value;

use crate::support::{expect_problem, spawn_app, spawn_hello};

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
    let app = spawn_hello(format!("http://127.0.0.1:{}", free_port()), None);
    for response in [
        app.say("alice", "bob").await,
        app.read("bob").await,
        app.client
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap(),
    ] {
        assert!(response.headers().contains_key("retry-after"));
        expect_problem(response, 503).await;
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
async fn openapi_describes_the_public_api_in_version_3_1() {
    let app = spawn_app().await;
    let document: Value = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let hello = &document["paths"]["/hello/{name}"];
    assert!(hello["post"]["responses"]["201"].is_object());
    assert!(hello["get"]["responses"]["200"].is_object());
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
