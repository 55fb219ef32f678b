//! The real world-service binary, killed as a crash would kill it.

use std::{net::SocketAddr, path::Path, time::Duration};

use hello_common::{
    testing::{ChildService, free_port},
    wire::Acknowledged,
};

use crate::binary::{lease, send, start_world, start_world_with};

/// POSTs `body` as JSON to `path` on `world`.
async fn post_json(
    world: &ChildService,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", world.url()))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("POST {path}: {error}"))
}

#[tokio::test]
async fn an_acknowledged_send_survives_kill_9_of_world() {
    let dir = tempfile::tempdir().unwrap();
    let world = start_world(dir.path(), 30_000);
    let sent = send(&world, "alice", "bob").await;
    world.kill();

    let world = start_world(dir.path(), 30_000);
    let lease = lease(&world, "bob").await;
    assert_eq!(lease.hellos.len(), 1);
    assert_eq!(lease.hellos[0].id, sent.id);
}

#[tokio::test]
async fn hellos_taken_by_a_read_that_never_finished_come_back_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let world = start_world(dir.path(), 500);
    let first = send(&world, "alice", "bob").await;
    let second = send(&world, "carol", "bob").await;
    // A reader takes them, then world dies before the reader could acknowledge.
    let taken = lease(&world, "bob").await;
    assert_eq!(taken.hellos.len(), 2);
    world.kill();

    let world = start_world(dir.path(), 500);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = lease(&world, "bob").await;
    let ids: Vec<_> = again.hellos.iter().map(|hello| hello.id.as_str()).collect();
    println!(
        "crash during read: taken={} redelivered={}",
        taken.hellos.len(),
        ids.len()
    );
    assert_eq!(ids, [first.id.as_str(), second.id.as_str()]);
}

#[tokio::test]
async fn sigterm_stops_world_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let world = start_world(dir.path(), 30_000);
    send(&world, "alice", "bob").await;
    assert!(
        world.terminate(Duration::from_secs(15)),
        "world did not exit on SIGTERM"
    );
    let world = start_world(dir.path(), 30_000);
    assert_eq!(lease(&world, "bob").await.hellos.len(), 1);
}

async fn acknowledge(world: &ChildService, lease_ids: &[&str]) -> Acknowledged {
    let body = serde_json::json!({ "leases": lease_ids });
    let response = post_json(world, "/v1/leases/acknowledge", &body).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("acknowledged")
}

#[tokio::test]
async fn leases_and_acknowledgements_answered_before_sigterm_survive_the_restart() {
    // Leases and acknowledgements commit without syncing; a graceful stop must sync them, or a
    // restart would hand out hellos already delivered (ann's) or still leased (ben's).
    let dir = tempfile::tempdir().unwrap();
    let world = start_world(dir.path(), 30_000);
    send(&world, "alice", "ann").await;
    send(&world, "alice", "ben").await;
    let delivered = lease(&world, "ann").await;
    let deleted = acknowledge(&world, &[delivered.lease_id.as_deref().unwrap()]).await;
    assert_eq!(deleted.deleted, 1);
    assert_eq!(lease(&world, "ben").await.hellos.len(), 1);
    assert!(
        world.terminate(Duration::from_secs(15)),
        "world did not exit on SIGTERM"
    );
    let world = start_world(dir.path(), 30_000);
    assert_eq!(
        lease(&world, "ann").await.hellos,
        [],
        "acknowledged, so gone"
    );
    assert_eq!(lease(&world, "ben").await.hellos, [], "still leased");
}

#[tokio::test]
async fn acknowledgements_name_1_to_256_leases_of_sensible_length() {
    let dir = tempfile::tempdir().unwrap();
    let world = start_world(dir.path(), 30_000);
    let long = "x".repeat(65);
    let too_many: Vec<String> = (0..257).map(|i| format!("lease-{i}")).collect();
    for body in [
        serde_json::json!({ "leases": [] }),
        serde_json::json!({ "leases": too_many }),
        serde_json::json!({ "leases": [long] }),
        serde_json::json!({ "leases": "one" }),
    ] {
        let response = post_json(&world, "/v1/leases/acknowledge", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let most: Vec<String> = (0..256).map(|i| format!("{i:0>36}")).collect();
    assert_eq!(
        acknowledge(&world, &most.iter().map(String::as_str).collect::<Vec<_>>())
            .await
            .deleted,
        0,
        "256 unknown leases: accepted, nothing deleted"
    );
}

#[tokio::test]
async fn with_syncing_off_a_graceful_stop_still_puts_every_send_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let world = start_world_with(dir.path(), 30_000, &[("WORLD_STORE_SYNC", "false")]);
    let sent = send(&world, "alice", "bob").await;
    assert!(
        world.terminate(Duration::from_secs(15)),
        "world did not exit on SIGTERM"
    );
    let world = start_world(dir.path(), 30_000);
    let lease = lease(&world, "bob").await;
    assert_eq!(lease.hellos.len(), 1);
    assert_eq!(lease.hellos[0].id, sent.id);
}

#[tokio::test]
async fn the_healthcheck_subcommand_reports_whether_world_answers() {
    let dir = tempfile::tempdir().unwrap();
    let world = start_world(dir.path(), 30_000);
    let healthcheck = |path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
            .args(["healthcheck", path])
            .env("WORLD_LISTEN", world.address.to_string())
            .status()
            .unwrap()
            .success()
    };
    assert!(healthcheck("/healthz"));
    assert!(healthcheck("/readyz"));
    assert!(!healthcheck("/no-such-path"));
    let address = world.address;
    world.kill();
    let after = std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
        .args(["healthcheck"])
        .env("WORLD_LISTEN", address.to_string())
        .status()
        .unwrap();
    assert!(!after.success(), "a dead world is not healthy");
}

#[tokio::test]
async fn on_sigterm_readiness_turns_false_first_while_requests_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut world = ChildService::start(
        Path::new(env!("CARGO_BIN_EXE_world-service")),
        &[
            ("WORLD_LISTEN", address.to_string()),
            ("WORLD_DATA_DIR", dir.path().display().to_string()),
            ("WORLD_SHUTDOWN_DRAIN_MS", "1500".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
        address,
    );
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", world.url());
        async move {
            client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }
    };
    assert_eq!(status("/readyz").await, Some(200));
    world.send_sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status("/readyz").await,
        Some(503),
        "not ready once draining"
    );
    assert_eq!(
        status("/healthz").await,
        Some(200),
        "still serving while draining"
    );
    send(&world, "late", "bob").await; // work still accepted during the drain
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !world.has_exited() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(world.has_exited(), "world did not exit after its drain");
}
