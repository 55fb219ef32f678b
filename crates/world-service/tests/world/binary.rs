//! The real world-service binary, started for a test on an embedded store, and the one-call
//! helpers that expect success.

use std::{net::SocketAddr, path::Path};

use hello_common::{
    testing::{ChildService, free_port},
    wire::{Lease, StoredHello},
};

use crate::calls;

/// world-service on `127.0.0.1` (TCP, for the test's client), quiet, stopping at once, with `env`.
pub fn start(env: &[(&str, String)]) -> ChildService {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut all = vec![
        ("WORLD_LISTEN", address.to_string()),
        ("WORLD_SHUTDOWN_DRAIN_MS", "0".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    all.extend(env.iter().cloned());
    ChildService::start(
        Path::new(env!("CARGO_BIN_EXE_world-service")),
        &all,
        address,
    )
}

/// world-service on an embedded store in `data_dir`, its leases lasting `lease_ms`.
pub fn start_world(data_dir: &Path, lease_ms: u64) -> ChildService {
    start_world_with(data_dir, lease_ms, &[])
}

/// As [`start_world`], with the settings `extra` too.
pub fn start_world_with(data_dir: &Path, lease_ms: u64, extra: &[(&str, &str)]) -> ChildService {
    let mut env = vec![
        ("WORLD_DATA_DIR", data_dir.display().to_string()),
        ("WORLD_LEASE_MS", lease_ms.to_string()),
    ];
    env.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
    start(&env)
}

/// Sends `from` → `to` and expects it stored.
pub async fn send(world: &ChildService, from: &str, to: &str) -> StoredHello {
    let (status, stored) = calls::send(&world.url(), to, Some(from), None).await;
    assert_eq!(status, 201, "{stored}");
    serde_json::from_value(stored).expect("stored hello")
}

/// Leases up to 100 hellos of `name` and expects a lease.
pub async fn lease(world: &ChildService, name: &str) -> Lease {
    let (status, lease) = calls::lease(&world.url(), name, 100, None, None).await;
    assert_eq!(status, 200, "{lease}");
    serde_json::from_value(lease).expect("lease")
}
