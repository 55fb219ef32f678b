//! The real world-service binary, killed as a crash would kill it.

use std::{net::SocketAddr, path::Path, time::Duration};

use hello_common::{
    testing::{ChildService, free_port},
    wire::{Acknowledged, Lease, StoredHello},
};

use crate::calls;

fn start_world(data_dir: &Path, lease_ms: u64) -> ChildService {
    start_world_with(data_dir, lease_ms, &[])
}

fn start_world_with(data_dir: &Path, lease_ms: u64, extra: &[(&str, &str)]) -> ChildService {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut env = vec![
        ("WORLD_LISTEN", address.to_string()),
        ("WORLD_DATA_DIR", data_dir.display().to_string()),
        ("WORLD_LEASE_MS", lease_ms.to_string()),
        ("WORLD_SHUTDOWN_DRAIN_MS", "0".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    env.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
    ChildService::start(
        Path::new(env!("CARGO_BIN_EXE_world-service")),
        &env,
        address,
    )
}

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

async fn send(world: &ChildService, from: &str, to: &str) -> StoredHello {
    let (status, stored) = calls::send(&world.url(), to, Some(from), None).await;
    assert_eq!(status, 201, "{stored}");
    serde_json::from_value(stored).expect("stored hello")
}

async fn lease(world: &ChildService, name: &str) -> Lease {
    let (status, lease) = calls::lease(&world.url(), name, 100, None, None).await;
    assert_eq!(status, 200, "{lease}");
    serde_json::from_value(lease).expect("lease")
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

#[tokio::test]
async fn the_lease_setting_is_still_read_under_its_name_before_0_2_0_with_a_warning() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("world.log");
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let world = ChildService::start_logging_to(
        Path::new(env!("CARGO_BIN_EXE_world-service")),
        &[
            ("WORLD_LISTEN", address.to_string()),
            (
                "WORLD_DATA_DIR",
                data.path().join("store").display().to_string(),
            ),
            ("WORLD_CLAIM_LEASE_MS", "150".to_owned()),
        ],
        address,
        &log,
    );
    send(&world, "alice", "bob").await;
    assert_eq!(lease(&world, "bob").await.hellos.len(), 1);
    // Leased for 150 ms (WORLD_CLAIM_LEASE_MS), not the default 30 s: it comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        lease(&world, "bob").await.hellos.len(),
        1,
        "the old name was not applied"
    );
    assert!(world.terminate(Duration::from_secs(10)));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("WORLD_CLAIM_LEASE_MS is read as WORLD_LEASE_MS"),
        "no start-up warning: {logged}"
    );
}

#[tokio::test]
async fn a_full_store_answers_503_store_full_with_retry_after() {
    let data = tempfile::tempdir().unwrap();
    let world = start_world_with(data.path(), 30_000, &[("WORLD_STORE_CAP", "2")]);
    send(&world, "alice", "bob").await;
    send(&world, "carol", "bob").await;
    let (status, problem) = calls::send(&world.url(), "bob", Some("dave"), None).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/store-full", "{problem}");
    assert!(problem["retry_after"].as_u64().is_some(), "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{problem}"
    );
}

#[test]
fn a_bad_setting_stops_start_up_with_a_message_naming_the_variable() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
        .env("WORLD_INBOX_CAP", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("WORLD_INBOX_CAP"), "{message}");
    for variable in ["WORLD_LEASE_MS", "WORLD_CLAIM_LEASE_MS"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
            .env(variable, "5")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            message.contains(&format!("{variable} must be between 100")),
            "{message}"
        );
    }
    // Turning syncing off is for the embedded store only; MongoDB always waits for its journal.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
        .env("WORLD_STORE_SYNC", "false")
        .env("WORLD_MONGODB_URI", "mongodb://127.0.0.1:1/")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("WORLD_STORE_SYNC"), "{message}");
}

#[test]
fn help_prints_the_usage_and_an_unknown_argument_stops_instead_of_serving() {
    hello_common::testing::assert_command_line(
        env!("CARGO_BIN_EXE_world-service"),
        "names release NAME",
        "--verbose",
    );
}

#[test]
fn the_embedded_store_is_its_owners_alone_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // umask 022 would leave a new folder 0755 and a new file 0644, readable by every local user.
    let opened = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" names release nobody",
            env!("CARGO_BIN_EXE_world-service"),
        ])
        .env("WORLD_DATA_DIR", &data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    // `nobody` is not claimed (exit 1), but the store was created and opened.
    assert!(
        String::from_utf8_lossy(&opened.stdout).contains("not claimed")
            || String::from_utf8_lossy(&opened.stderr).contains("not claimed"),
        "{opened:?}"
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let file = data.join(world_service::store::embedded::DATABASE_FILE);
    assert_eq!(mode(&file), 0o600, "the store's file");
    // A file made beside it under the same umask is readable by others: the umask did apply.
    let beside = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            "umask 022 && touch \"$0\"",
            &dir.path().join("beside").display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(beside.success());
    assert_eq!(mode(&dir.path().join("beside")), 0o644);
    // A store made readable by others (as earlier releases left it) is its owner's again on open.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_world-service"))
        .args(["names", "release", "nobody"])
        .env("WORLD_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(
        (mode(&data), mode(&file)),
        (0o700, 0o600),
        "after reopening"
    );
}

#[tokio::test]
async fn whether_reads_need_a_claim_is_worlds_own_setting_and_no_callers() {
    let dir = tempfile::tempdir().unwrap();
    let strict = start_world_with(dir.path(), 30_000, &[("WORLD_REQUIRE_CLAIM", "true")]);
    send(&strict, "jon", "kim").await;
    let (status, _) = calls::lease(&strict.url(), "kim", 10, None, None).await;
    assert_eq!(status, 401, "WORLD_REQUIRE_CLAIM=true");
    drop(strict);
    let open = start_world_with(&dir.path().join("open"), 30_000, &[]);
    send(&open, "jon", "kim").await;
    let (status, _) = calls::lease(&open.url(), "kim", 10, None, None).await;
    assert_eq!(status, 200, "WORLD_REQUIRE_CLAIM unset");
    // A caller cannot ask for a rule world does not have: a call that tries is not taken.
    let asking = serde_json::json!({"calls": [
        {"name": "kim", "limit": 10, "request_id": "test", "require_claim": true}
    ]});
    let answer = reqwest::Client::new()
        .post(format!(
            "{}{}",
            open.url(),
            hello_common::wire::paths::LEASE_BATCH
        ))
        .json(&asking)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
}
