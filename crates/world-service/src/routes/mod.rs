//! The internal API, versioned under `/v1` (hello-service is its only client; the paths are
//! declared in [`hello_common::wire::paths`]), and the probes.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/v1/inboxes/{to}/hellos` | store a hello durably: 201 with it |
//! | POST | `/v1/hellos` | store several (`{"calls": [sends]}`), each as if alone: 200 with one outcome each |
//! | POST | `/v1/inboxes/{name}/leases?limit=N&lease_ms=M` | lease the oldest waiting hellos |
//! | POST | `/v1/leases` | lease for several reads (`{"calls": [leases]}`), each as if alone: 200 with one outcome each |
//! | DELETE | `/v1/inboxes/{name}/leases/{lease}` | confirm a reliable read's lease: 204, 410 (ran out), 404 (unknown) |
//! | POST | `/v1/confirmations` | confirm several (`{"calls": [confirmations]}`), each as if alone: 200 with one outcome each |
//! | POST | `/v1/leases/acknowledge` | acknowledge leases (`{"leases": [ids]}`): their hellos are deleted |
//! | POST | `/v1/names/{name}` | claim a name (`{"token_sha256"}`): 201; 409 it or a look-alike is claimed |
//! | POST | `/v1/names/{name}/token` | replace its token (`{"new_token_sha256"}`, the current one's hash in `x-token-sha256`): 204; 401; 404 |
//! | DELETE | `/v1/names/{name}` | release it and delete its waiting hellos (token hash in `x-token-sha256`): 204; 401; 404 |
//!
//! Sends, leases and confirmations take the presented token's hash in `x-token-sha256` too; see
//! [`ownership`] for what each may do. Policy (`WORLD_REQUIRE_CLAIM`, the limits) is world's own
//! configuration: no caller can set it.
//! | GET | `/v1/info` | version, store, uptime, configuration and its sources, secret key names |
//! | GET | `/healthz`, `/readyz` | alive (shared: [`hello_common::startup::healthz`]); ready (store answers, not shutting down) |
//! | GET | `/metrics` | Prometheus text format |

mod batches;
mod health;
mod hellos;
mod info;
mod leases;
mod names;
mod ownership;

use actix_web::web;
use hello_common::{
    problem::extractors::{json_config, resource},
    wire::{
        ACKNOWLEDGEMENTS_BODY_LIMIT, CONFIRM_BATCH_BODY_LIMIT, LEASE_BATCH_BODY_LIMIT,
        SEND_BATCH_BODY_LIMIT, paths,
    },
};

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(info::metrics)))
        .service(resource(paths::INFO, "GET").route(web::get().to(info::info)))
        .service(resource(paths::SEND, "POST").route(web::post().to(hellos::send)))
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
        .service(resource(paths::LEASE, "POST").route(web::post().to(leases::lease)))
        .service(resource(paths::CONFIRM, "DELETE").route(web::delete().to(leases::confirm)))
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
        );
}
