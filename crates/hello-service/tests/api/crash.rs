//! world-service killed with SIGKILL while readers are taking hellos: none is lost.
//!
//! Duplicates are expected and printed: reads whose answer or acknowledgement the crash cut
//! short, and reads acknowledged in the last moments before the crash, whose acknowledgement the
//! embedded store had not synced yet (it syncs them within about 100 ms).

use std::{collections::HashMap, time::Duration};

use hello_common::testing::ChildService;

use crate::support::{Options, spawn_hello, start_world_process, world_binary};

const HELLOS: usize = 1000;
const LEASE_MS: u64 = 500;

fn world_env(data_dir: &std::path::Path) -> [(&'static str, String); 2] {
    [
        ("WORLD_DATA_DIR", data_dir.display().to_string()),
        ("WORLD_LEASE_MS", LEASE_MS.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hellos_taken_by_reads_cut_short_by_kill_9_of_world_come_back_later() {
    let data = tempfile::tempdir().unwrap();
    let first_world = start_world_process(&world_env(data.path()));
    let address = first_world.address;
    let app = std::sync::Arc::new(spawn_hello(first_world.url(), &Options::default()));

    let mut sent = Vec::with_capacity(HELLOS);
    for index in 0..HELLOS {
        let response = app.say(&format!("s{index}"), "victim").await;
        assert_eq!(response.status(), 201);
        sent.push(
            response.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Two readers take small pages as fast as they can while world is killed under them.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let (mut failed, mut idle) = (0usize, 0usize);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while tokio::time::Instant::now() < deadline && idle < 30 {
                    let response = app.read("victim?limit=2").await;
                    if response.status() != 200 {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let inbox: serde_json::Value = response.json().await.unwrap();
                    let hellos = inbox["hellos"].as_array().unwrap();
                    if hellos.is_empty() {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    } else {
                        idle = 0;
                    }
                    received.extend(
                        hellos
                            .iter()
                            .map(|hello| hello["id"].as_str().unwrap().to_owned()),
                    );
                }
                (received, failed)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_pid = first_world.pid();
    first_world.kill();
    // Restart on the same address and data, as Kubernetes restarts a crashed container.
    let mut env = world_env(data.path()).to_vec();
    env.push(("WORLD_LISTEN", address.to_string()));
    env.push(("RUST_LOG", "warn".to_owned()));
    let restarted = ChildService::start(&world_binary(), &env, address);

    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut failed = 0;
    for reader in readers {
        let (received, reader_failed) = reader.await.unwrap();
        failed += reader_failed;
        for id in received {
            *counts.entry(id).or_default() += 1;
        }
    }
    drop(restarted);
    let lost = sent.iter().filter(|id| !counts.contains_key(*id)).count();
    let duplicates: usize = counts.values().map(|count| count - 1).sum();
    println!(
        "crash test: world pid {killed_pid} killed mid-read; sent={} delivered={} lost={lost} \
         duplicates={duplicates} (reads cut short or not yet synced) failed_reads={failed}",
        sent.len(),
        counts.len()
    );
    assert_eq!(lost, 0, "acknowledged hellos were lost");
}
