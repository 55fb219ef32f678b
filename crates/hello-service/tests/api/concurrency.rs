//! Many senders and readers through the public API: every hello is delivered exactly once.

use std::{collections::HashMap, time::Duration};

use hello_common::testing::MongoTestServer;
use serde_json::Value;

use crate::support::{Options, TestApp, spawn_app, spawn_hello, start_world_process};

const SENDERS: usize = 8;
const PER_SENDER: usize = 250;
const READERS: usize = 4;

/// Sends `SENDERS x PER_SENDER` hellos to one name across `apps` while `READERS` drain it across
/// `apps`; returns (sent ids, delivery counts by id).
async fn run(apps: Vec<TestApp>) -> (Vec<String>, HashMap<String, usize>) {
    let apps: Vec<_> = apps.into_iter().map(std::sync::Arc::new).collect();
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let app = apps[sender % apps.len()].clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(PER_SENDER);
                for _ in 0..PER_SENDER {
                    let response = app.say(&format!("sender{sender}"), "popular").await;
                    assert_eq!(response.status(), 201);
                    let stored: Value = response.json().await.unwrap();
                    ids.push(stored["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let app = apps[reader % apps.len()].clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
                let mut idle_rounds = 0;
                while tokio::time::Instant::now() < deadline && idle_rounds < 40 {
                    let inbox = app.inbox("popular?limit=50").await;
                    let hellos = inbox["hellos"].as_array().unwrap();
                    if hellos.is_empty() {
                        idle_rounds += 1;
                        tokio::time::sleep(Duration::from_millis(25)).await;
                        continue;
                    }
                    idle_rounds = 0;
                    received.extend(
                        hellos
                            .iter()
                            .map(|hello| hello["id"].as_str().unwrap().to_owned()),
                    );
                }
                received
            })
        })
        .collect();
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.unwrap());
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for reader in readers {
        for id in reader.await.unwrap() {
            *counts.entry(id).or_default() += 1;
        }
    }
    (sent, counts)
}

fn check(label: &str, sent: &[String], counts: &HashMap<String, usize>) {
    let received: usize = counts.values().sum();
    let duplicates: usize = counts.values().map(|count| count - 1).sum();
    let lost = sent.iter().filter(|id| !counts.contains_key(*id)).count();
    println!(
        "[{label}] through hello-service: sent={} received={received} duplicates={duplicates} lost={lost}",
        sent.len()
    );
    assert_eq!(sent.len(), SENDERS * PER_SENDER);
    assert_eq!((received, duplicates, lost), (sent.len(), 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_and_readers_with_the_embedded_store_get_every_hello_once() {
    let app = spawn_app().await;
    let (sent, counts) = run(vec![app]).await;
    check("embedded, 1 world", &sent, &counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_world_processes_sharing_one_mongodb_deliver_every_hello_once() {
    let server = MongoTestServer::shared();
    let database = server.fresh_database();
    let env = [
        ("WORLD_MONGODB_URI", server.uri()),
        ("WORLD_MONGODB_DATABASE", database),
    ];
    let worlds = [start_world_process(&env), start_world_process(&env)];
    let apps = worlds
        .iter()
        .map(|world| spawn_hello(world.url(), &Options::default()))
        .collect();
    let (sent, counts) = run(apps).await;
    check("mongodb, 2 worlds", &sent, &counts);
}
