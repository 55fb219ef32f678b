//! The internal API, versioned under `/v1` (hello-service is its only client), and the probes.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/v1/inboxes/{to}/hellos` | store a hello durably: 201 with it |
//! | POST | `/v1/inboxes/{name}/claims?limit=N&lease_ms=M` | lease the oldest waiting hellos |
//! | POST | `/v1/acknowledgements` | acknowledge claims (`{"claims": [ids]}`): their hellos are deleted |
//! | GET | `/v1/info` | version, store, uptime, configuration and its sources, secret fingerprints |
//! | GET | `/healthz`, `/readyz` | alive; ready (store answers, not shutting down) |
//! | GET | `/metrics` | Prometheus text format |

mod claims;
mod health;
mod hellos;
mod info;

use actix_web::web;
use hello_common::{
    observability::metrics_endpoint,
    problem::extractors::{json_config, resource},
};

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(metrics_endpoint)))
        .service(resource("/v1/info", "GET").route(web::get().to(info::info)))
        .service(resource("/v1/inboxes/{to}/hellos", "POST").route(web::post().to(hellos::send)))
        .service(resource("/v1/inboxes/{name}/claims", "POST").route(web::post().to(claims::claim)))
        .service(
            resource("/v1/acknowledgements", "POST")
                .app_data(json_config(claims::ACKNOWLEDGEMENTS_BODY_LIMIT))
                .route(web::post().to(claims::acknowledge)),
        );
}
