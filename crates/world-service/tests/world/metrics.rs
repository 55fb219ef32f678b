//! The store's metrics, from the real binary's `/metrics`: hellos held, hellos delivered again
//! after a lease ran out, and confirmations by outcome (what the dashboards and alerts read).

use std::time::Duration;

use crate::{binary::start, calls};

/// The value of one sample (`name` with its labels, as printed) in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} is not in the scrape:\n{scrape}"))
}

#[tokio::test]
async fn the_store_reports_hellos_held_redelivered_and_confirmed() {
    let data = tempfile::tempdir().unwrap();
    let world = start(&[("WORLD_DATA_DIR", data.path().display().to_string())]);
    let client = reqwest::Client::new();
    let url = &world.url();
    let scrape = || async {
        let answer = client.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap()
    };
    let lease = |lease_ms: u64| async move {
        let (status, lease) = calls::lease(url, "bob", 10, Some(lease_ms), None).await;
        assert_eq!(status, 200, "{lease}");
        lease
    };
    for from in ["alice", "carol"] {
        let (status, stored) = calls::send(url, "bob", Some(from), None).await;
        assert_eq!(status, 201, "{stored}");
    }
    let first = scrape().await;
    assert_eq!(sample(&first, "world_hellos_stored"), 2.0);
    assert_eq!(sample(&first, "world_hellos_redelivered_total"), 0.0);
    assert_eq!(sample(&first, "world_store_up"), 1.0);

    // A reader that vanishes: its lease runs out, and both hellos go out again.
    let vanished = lease(100).await;
    assert_eq!(vanished["hellos"].as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = lease(60_000).await;
    assert_eq!(again["hellos"].as_array().unwrap().len(), 2);
    let receipt = again["lease_id"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(calls::confirm(url, "bob", receipt, None).await.0, 204);
    }
    let late = vanished["lease_id"].as_str().unwrap();
    assert_eq!(calls::confirm(url, "bob", late, None).await.0, 410);

    let last = scrape().await;
    assert_eq!(sample(&last, "world_hellos_redelivered_total"), 2.0);
    assert_eq!(
        sample(&last, "world_confirmations_total{outcome=\"confirmed\"}"),
        2.0
    );
    assert_eq!(
        sample(&last, "world_confirmations_total{outcome=\"expired\"}"),
        1.0
    );
    assert_eq!(sample(&last, "world_hellos_stored"), 0.0);
    assert!(sample(&last, "world_process_resident_memory_bytes") > 0.0);
}
