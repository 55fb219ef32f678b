//! The internal API, versioned under `/v1` (hello-service is its only client; the paths are
//! declared in [`hello_common::wire::paths`]), and the probes.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/v1/hellos` | store hellos (`{"calls": [sends]}`), each durably and on its own terms: 200 with one outcome each |
//! | POST | `/v1/leases` | lease the oldest waiting hellos for reads (`{"calls": [leases]}`): 200 with one outcome each |
//! | POST | `/v1/confirmations` | confirm reliable reads' leases (`{"calls": [confirmations]}`): 200 with one outcome each (confirmed; 410 ran out; 404 unknown; 503 the store refused or did not answer it) |
//! | POST | `/v1/leases/acknowledge` | acknowledge leases (`{"leases": [ids]}`): their hellos are deleted |
//! | POST | `/v1/names/{name}` | claim a name (`{"token_sha256"}`): 201; 409 it or a look-alike is claimed |
//! | POST | `/v1/names/{name}/token` | replace its token (`{"new_token_sha256"}`, the current one's hash in `x-token-sha256`): 204; 401; 404 |
//! | DELETE | `/v1/names/{name}` | release it and delete its waiting hellos (token hash in `x-token-sha256`): 204; 401; 404 |
//! | PUT | `/v1/watches/{session}` | change what hello's waiting readers wait on (`{"reset", "add", "remove"}`, inboxes with token hashes): 204; 404 unknown session; 503 past `WORLD_WATCH_CAP` |
//! | GET | `/v1/watches/{session}/wakes?wait_ms=N` | the watched inboxes woken since the last answer, held until there are some (or `wait_ms`, or shutdown): `{"inboxes": [...]}` |
//! | GET | `/v1/info` | version, store, uptime, configuration and its sources, secret key names |
//! | GET | `/healthz`, `/readyz` | alive (shared: [`hello_common::startup::healthz`]); ready (store answers, not shutting down) |
//! | GET | `/metrics` | Prometheus text format |
//!
//! Sends, leases and confirmations always come in batches ([`hello_common::wire::batches`]), one
//! call or many; each carries the presented token's hash, its public request's id and, with
//! traces on, its `traceparent`, and is judged on its own ([`crate::batched`]). What a token may
//! do is decided in [`crate::ownership`]. Policy (`WORLD_REQUIRE_CLAIM`, the limits) is world's
//! own configuration: no caller can set it.

mod health;
mod hellos;
mod info;
mod leases;
mod names;
mod watches;

use actix_web::web;
use hello_common::{
    problem::extractors::{json_config, resource},
    wire::{
        ACKNOWLEDGEMENTS_BODY_LIMIT, CONFIRM_BATCH_BODY_LIMIT, LEASE_BATCH_BODY_LIMIT,
        SEND_BATCH_BODY_LIMIT, WATCH_CHANGE_BODY_LIMIT, paths,
    },
};

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(info::metrics)))
        .service(resource(paths::INFO, "GET").route(web::get().to(info::info)))
        .service(
            resource(paths::SEND_BATCH, "POST")
                .app_data(json_config(SEND_BATCH_BODY_LIMIT))
                .route(web::post().to(hellos::send_batch)),
        )
        .service(
            resource(paths::LEASE_BATCH, "POST")
                .app_data(json_config(LEASE_BATCH_BODY_LIMIT))
                .route(web::post().to(leases::lease_batch)),
        )
        .service(
            resource(paths::CONFIRM_BATCH, "POST")
                .app_data(json_config(CONFIRM_BATCH_BODY_LIMIT))
                .route(web::post().to(leases::confirm_batch)),
        )
        .service(
            resource(paths::NAME, "POST, DELETE")
                .route(web::post().to(names::claim))
                .route(web::delete().to(names::release)),
        )
        .service(resource(paths::NAME_TOKEN, "POST").route(web::post().to(names::rotate)))
        .service(
            resource(paths::ACKNOWLEDGE, "POST")
                .app_data(json_config(ACKNOWLEDGEMENTS_BODY_LIMIT))
                .route(web::post().to(leases::acknowledge)),
        )
        .service(
            resource(paths::WATCH, "PUT")
                .app_data(json_config(WATCH_CHANGE_BODY_LIMIT))
                .route(web::put().to(watches::change)),
        )
        .service(resource(paths::WAKES, "GET").route(web::get().to(watches::wakes)));
}
