//! The real binary's settings and start-up: names kept from earlier releases, bad values and
//! arguments refused with a message, the store's caps and file modes, and policy that is world's
//! own (no caller sets it).

use std::{net::SocketAddr, path::Path, time::Duration};

use hello_common::testing::{ChildService, free_port};

use crate::{
    binary::{lease, send, start_world_with},
    calls,
};

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
fn only_its_owner_may_open_the_embedded_store_whatever_the_umask() {
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
