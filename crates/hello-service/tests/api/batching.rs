//! Sends (and reads) that arrive together go to world-service together, at most two calls out
//! at once, and each still gets its own outcome: its own stored hello or hellos, or its own
//! problem.
//!
//! A stand-in world-service holds every batch call for a while and counts them, so that calls
//! arriving meanwhile must wait and gather; the outcomes it gives depend only on each call.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpResponse, web};
use hello_common::wire::paths;
use serde_json::{Value, json};

use crate::support::{Options, expect_problem, spawn_hello, spawn_stand_in_world};

#[derive(Default)]
struct SlowBatches {
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// The number of sends each call carried.
    calls: Mutex<Vec<usize>>,
}

/// Stores every send to a name starting `ok` (its id says whom it was for); refuses those to
/// `full` as world-service refuses a full inbox, and answers those to `broken` with a 500
/// problem, an answer hello-service must not pass on as it is.
async fn hold_and_answer(world: web::Data<SlowBatches>, body: web::Json<Value>) -> HttpResponse {
    let now = world.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    world.most_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sends = body["sends"].as_array().cloned().unwrap_or_default();
    world.calls.lock().unwrap().push(sends.len());
    let outcomes: Vec<Value> = sends
        .iter()
        .map(|send| {
            let to = send["to"].as_str().unwrap_or_default();
            let problem = |status: u16, kind: &str| {
                json!({"refused": {"type": kind, "title": kind, "status": status, "detail": format!("{to}: {kind}")}})
            };
            if to.starts_with("full") {
                problem(409, "/problems/inbox-full")
            } else if to.starts_with("broken") {
                problem(500, "/problems/internal")
            } else {
                json!({"stored": {"id": format!("id-of-{to}"), "to": to, "from": send["from"], "at": "2026-12-01T00:00:00.000Z"}})
            }
        })
        .collect();
    world.in_flight.fetch_sub(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({ "outcomes": outcomes }))
}

#[tokio::test]
async fn sends_arriving_together_go_in_few_calls_two_at_a_time_each_with_its_own_outcome() {
    let world = web::Data::new(SlowBatches::default());
    let (world_url, stop) = spawn_stand_in_world({
        let world = world.clone();
        move |routes| {
            routes
                .app_data(world.clone())
                .route(paths::SEND_BATCH, web::post().to(hold_and_answer));
        }
    });
    let app = std::sync::Arc::new(spawn_hello(world_url, &Options::default()));

    const SENDS: usize = 40;
    let sends: Vec<_> = (0..SENDS)
        .map(|number| {
            let app = app.clone();
            let to = match number % 8 {
                6 => format!("full{number}"),
                7 => format!("broken{number}"),
                _ => format!("ok{number}"),
            };
            tokio::spawn(async move {
                let response = app.say("alice", &to).await;
                (to, response)
            })
        })
        .collect();
    for send in sends {
        let (to, response) = send.await.unwrap();
        if to.starts_with("full") {
            let problem = expect_problem(response, 409).await;
            assert_eq!(problem["detail"], format!("{to}: /problems/inbox-full"));
        } else if to.starts_with("broken") {
            // Not an answer the client can act on: the outcome is unknown.
            expect_problem(response, 504).await;
        } else {
            assert_eq!(response.status(), 201, "{to}");
            let stored: Value = response.json().await.unwrap();
            assert_eq!(stored["id"], format!("id-of-{to}"), "its own outcome");
        }
    }
    stop.stop(false).await;

    let calls = world.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().sum::<usize>(),
        SENDS,
        "each send in one call: {calls:?}"
    );
    assert!(
        calls.len() < SENDS,
        "the sends that waited went together: {calls:?}"
    );
    assert!(
        world.most_in_flight.load(Ordering::SeqCst) <= 2,
        "{} calls were out at once",
        world.most_in_flight.load(Ordering::SeqCst)
    );
}

/// Leases one hello to every read of a name starting `ok` (its id says whose it is), refuses
/// those of `claimed` as world-service refuses a read without its token; acknowledges anything.
async fn hold_and_lease(world: web::Data<SlowBatches>, body: web::Json<Value>) -> HttpResponse {
    let now = world.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    world.most_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leases = body["leases"].as_array().cloned().unwrap_or_default();
    world.calls.lock().unwrap().push(leases.len());
    let outcomes: Vec<Value> = leases
        .iter()
        .map(|lease| {
            let name = lease["name"].as_str().unwrap_or_default();
            if name.starts_with("claimed") {
                json!({"refused": {"type": "/problems/token-required", "title": "Token required", "status": 401, "detail": format!("{name} is claimed")}})
            } else {
                json!({"leased": {
                    "lease_id": format!("lease-of-{name}"),
                    "hellos": [{"id": format!("hello-of-{name}"), "from": "alice", "at": "2026-12-01T00:00:00.000Z"}],
                    "remaining": lease["limit"],
                    "expires_at": "2026-12-01T00:01:00.000Z",
                }})
            }
        })
        .collect();
    world.in_flight.fetch_sub(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({ "outcomes": outcomes }))
}

async fn acknowledge(body: web::Json<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"deleted": body["leases"].as_array().map_or(0, Vec::len)}))
}

fn stand_in_leases() -> (web::Data<SlowBatches>, String, actix_web::dev::ServerHandle) {
    let world = web::Data::new(SlowBatches::default());
    let (world_url, stop) = spawn_stand_in_world({
        let world = world.clone();
        move |routes| {
            routes
                .app_data(world.clone())
                .route(paths::LEASE_BATCH, web::post().to(hold_and_lease))
                .route(paths::ACKNOWLEDGE, web::post().to(acknowledge));
        }
    });
    (world, world_url, stop)
}

#[tokio::test]
async fn reads_arriving_together_go_in_few_calls_two_at_a_time_each_with_its_own_hellos() {
    let (world, world_url, stop) = stand_in_leases();
    let app = std::sync::Arc::new(spawn_hello(world_url, &Options::default()));

    const READS: usize = 40;
    let reads: Vec<_> = (0..READS)
        .map(|number| {
            let app = app.clone();
            let name = if number % 5 == 4 {
                format!("claimed{number}")
            } else {
                format!("ok{number}")
            };
            tokio::spawn(async move {
                let response = app.read(&name).await;
                (name, response)
            })
        })
        .collect();
    for read in reads {
        let (name, response) = read.await.unwrap();
        if name.starts_with("claimed") {
            let problem = expect_problem(response, 401).await;
            assert_eq!(problem["detail"], format!("{name} is claimed"));
        } else {
            assert_eq!(response.status(), 200, "{name}");
            let inbox: Value = response.json().await.unwrap();
            assert_eq!(
                inbox["hellos"][0]["id"],
                format!("hello-of-{name}"),
                "its own hellos"
            );
            assert_eq!(
                inbox["remaining"], 100,
                "its own limit went to world-service"
            );
        }
    }
    stop.stop(false).await;

    let calls = world.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().sum::<usize>(),
        READS,
        "each read in one call: {calls:?}"
    );
    assert!(
        calls.len() < READS,
        "the reads that waited went together: {calls:?}"
    );
    assert!(
        world.most_in_flight.load(Ordering::SeqCst) <= 2,
        "{} calls were out at once",
        world.most_in_flight.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn reads_asking_for_many_hellos_go_together_only_up_to_a_thousand() {
    let (world, world_url, stop) = stand_in_leases();
    let app = std::sync::Arc::new(spawn_hello(world_url, &Options::default()));
    // 600 + 600 is over 1,000: however they arrive, each goes in a call of its own.
    let reads: Vec<_> = (0..4)
        .map(|number| {
            let app = app.clone();
            tokio::spawn(async move { app.read(&format!("ok{number}?limit=600")).await })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().status(), 200);
    }
    stop.stop(false).await;
    assert_eq!(*world.calls.lock().unwrap(), [1, 1, 1, 1]);
}
