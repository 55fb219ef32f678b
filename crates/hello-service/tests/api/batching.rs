//! Sends (and reads, and confirmations) that arrive together go to world-service together, at
//! most one batch of sends and two of the others out at once per HTTP worker, and each still
//! gets its own outcome: its own stored hello or hellos, or its own problem.
//!
//! A stand-in world-service holds every batch call for a while and counts them, so that calls
//! arriving meanwhile must wait and gather; the outcomes it gives depend only on each call.
//! hello-service runs one HTTP worker here (each worker batches its own calls), but for the test
//! that runs two.

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpResponse, dev::ServerHandle, web};
use hello_common::wire::paths;
use hello_service::batching::{CALLS_IN_FLIGHT, SENDS_IN_FLIGHT};
use serde_json::{Value, json};

use crate::support::{Options, TestApp, expect_problem, spawn_hello, spawn_stand_in_world};

#[derive(Default)]
struct SlowBatches {
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// The number of calls each batch carried.
    calls: Mutex<Vec<usize>>,
}

impl SlowBatches {
    /// Holds a batch for 300 ms, counting the batches out at once and the calls in each, then
    /// answers each call with what `outcome` makes of it.
    async fn hold_and_answer_each(
        &self,
        body: &Value,
        outcome: fn(&Value) -> Value,
    ) -> HttpResponse {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = body["calls"].as_array().cloned().unwrap_or_default();
        self.calls.lock().unwrap().push(calls.len());
        let outcomes: Vec<Value> = calls.iter().map(outcome).collect();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        HttpResponse::Ok().json(json!({ "outcomes": outcomes }))
    }
}

/// A stand-in world-service answering batches at `path` with `handler` (and acknowledging
/// anything), and a hello-service with `workers` HTTP workers in front of it.
fn stand_in<H, Args>(
    path: &'static str,
    handler: H,
    workers: usize,
) -> (
    web::Data<SlowBatches>,
    std::sync::Arc<TestApp>,
    ServerHandle,
)
where
    H: actix_web::Handler<Args> + Clone + Send,
    Args: actix_web::FromRequest + 'static,
    H::Output: actix_web::Responder + 'static,
{
    let world = web::Data::new(SlowBatches::default());
    let (world_url, stop) = spawn_stand_in_world({
        let world = world.clone();
        move |routes| {
            routes
                .app_data(world.clone())
                .route(path, web::post().to(handler.clone()))
                .route(paths::ACKNOWLEDGE, web::post().to(acknowledge));
        }
    });
    let options = Options {
        http_workers: NonZeroUsize::new(workers),
        ..Options::default()
    };
    let app = std::sync::Arc::new(spawn_hello(world_url, &options));
    (world, app, stop)
}

/// Every call went in exactly one batch, those that waited went together, and at most
/// `in_flight` batches per worker were out at once.
fn assert_went_together(world: &SlowBatches, calls: usize, workers: usize, in_flight: usize) {
    let batches = world.calls.lock().unwrap().clone();
    assert_eq!(
        batches.iter().sum::<usize>(),
        calls,
        "each call in one batch: {batches:?}"
    );
    assert!(
        batches.len() < calls,
        "the calls that waited went together: {batches:?}"
    );
    assert!(
        world.most_in_flight.load(Ordering::SeqCst) <= in_flight * workers,
        "{} batches were out at once, from {workers} workers",
        world.most_in_flight.load(Ordering::SeqCst)
    );
}

/// A refused outcome: the problem world-service would have answered.
fn refusal(status: u16, kind: &str, detail: String) -> Value {
    json!({"refused": {"type": kind, "title": kind, "status": status, "detail": detail}})
}

/// Stores every send to a name starting `ok` (its id says whom it was for); refuses those to
/// `full` as world-service refuses a full inbox, and answers those to `broken` with a 500
/// problem, an answer hello-service must not pass on as it is.
async fn hold_and_answer(world: web::Data<SlowBatches>, body: web::Json<Value>) -> HttpResponse {
    world
        .hold_and_answer_each(&body, |send| {
            let to = send["to"].as_str().unwrap_or_default();
            if to.starts_with("full") {
                refusal(409, "/problems/inbox-full", format!("{to}: /problems/inbox-full"))
            } else if to.starts_with("broken") {
                refusal(500, "/problems/internal", format!("{to}: /problems/internal"))
            } else {
                json!({"stored": {"id": format!("id-of-{to}"), "to": to, "from": send["from"], "at": "2026-12-01T00:00:00.000Z"}})
            }
        })
        .await
}

#[tokio::test]
async fn sends_arriving_together_go_in_few_calls_one_at_a_time_each_with_its_own_outcome() {
    sends_go_together_each_with_its_own_outcome(1).await;
}

#[tokio::test]
async fn with_two_workers_each_batches_its_own_sends_and_each_send_keeps_its_own_outcome() {
    sends_go_together_each_with_its_own_outcome(2).await;
}

async fn sends_go_together_each_with_its_own_outcome(workers: usize) {
    let (world, app, stop) = stand_in(paths::SEND_BATCH, hold_and_answer, workers);

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
    assert_went_together(&world, SENDS, workers, SENDS_IN_FLIGHT);
}

/// Leases one hello to every read of a name starting `ok` (its id says whose it is), refuses
/// those of `claimed` as world-service refuses a read without its token; acknowledges anything.
async fn hold_and_lease(world: web::Data<SlowBatches>, body: web::Json<Value>) -> HttpResponse {
    world
        .hold_and_answer_each(&body, |lease| {
            let name = lease["name"].as_str().unwrap_or_default();
            if name.starts_with("claimed") {
                refusal(401, "/problems/token-required", format!("{name} is claimed"))
            } else {
                json!({"leased": {
                    "lease_id": format!("lease-of-{name}"),
                    "hellos": [{"id": format!("hello-of-{name}"), "from": "alice", "at": "2026-12-01T00:00:00.000Z"}],
                    "remaining": lease["limit"],
                    "expires_at": "2026-12-01T00:01:00.000Z",
                }})
            }
        })
        .await
}

async fn acknowledge(body: web::Json<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"deleted": body["leases"].as_array().map_or(0, Vec::len)}))
}

#[tokio::test]
async fn reads_arriving_together_go_in_few_calls_two_at_a_time_each_with_its_own_hellos() {
    let (world, app, stop) = stand_in(paths::LEASE_BATCH, hold_and_lease, 1);

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
    assert_went_together(&world, READS, 1, CALLS_IN_FLIGHT);
}

#[tokio::test]
async fn reads_asking_for_many_hellos_go_together_only_up_to_a_thousand() {
    let (world, app, stop) = stand_in(paths::LEASE_BATCH, hold_and_lease, 1);

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

/// Confirms every receipt but those starting `late`, which ran out as world-service says.
async fn hold_and_confirm(world: web::Data<SlowBatches>, body: web::Json<Value>) -> HttpResponse {
    world
        .hold_and_answer_each(&body, |confirmation| {
            let lease = confirmation["lease"].as_str().unwrap_or_default();
            if lease.starts_with("late") {
                refusal(410, "/problems/lease-expired", format!("{lease} ran out"))
            } else {
                json!("confirmed")
            }
        })
        .await
}

#[tokio::test]
async fn confirmations_arriving_together_go_in_few_calls_each_with_its_own_outcome() {
    let (world, app, stop) = stand_in(paths::CONFIRM_BATCH, hold_and_confirm, 1);

    const CONFIRMATIONS: usize = 40;
    let confirmations: Vec<_> = (0..CONFIRMATIONS)
        .map(|number| {
            let app = app.clone();
            let receipt = if number % 4 == 3 {
                format!("late-{number}")
            } else {
                format!("lease-{number}")
            };
            tokio::spawn(async move {
                let response = app
                    .client
                    .delete(format!("{}/hello/reader/reads/{receipt}", app.url))
                    .send()
                    .await
                    .unwrap();
                (receipt, response)
            })
        })
        .collect();
    for confirmation in confirmations {
        let (receipt, response) = confirmation.await.unwrap();
        if receipt.starts_with("late") {
            let problem = expect_problem(response, 410).await;
            assert_eq!(problem["detail"], format!("{receipt} ran out"));
        } else {
            assert_eq!(response.status(), 204, "{receipt}");
        }
    }
    stop.stop(false).await;
    assert_went_together(&world, CONFIRMATIONS, 1, CALLS_IN_FLIGHT);
}

/// A batch world refuses as a whole (here a 413, as for a batch too large) carried nothing out,
/// and the client is not at fault: it gets a 503 saying nothing changed, never world's refusal.
#[tokio::test]
async fn a_batch_refused_as_a_whole_is_a_503_for_each_of_its_calls_not_worlds_refusal() {
    async fn too_large() -> HttpResponse {
        HttpResponse::PayloadTooLarge()
            .content_type("application/problem+json")
            .json(
                json!({"type": "/problems/body-too-large", "title": "Body too large",
                         "status": 413, "detail": "the body has 146701 bytes", "field": "body"}),
            )
    }
    let (world_url, stop) = spawn_stand_in_world(|routes| {
        routes.route(paths::SEND_BATCH, web::post().to(too_large));
    });
    let app = spawn_hello(world_url, &Options::default());
    let response = app
        .client
        .post(format!("{}/hello/bob", app.url))
        .json(&json!({"from": "alice"}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 503).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{problem}"
    );
    stop.stop(false).await;
}
