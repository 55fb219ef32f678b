//! The public API (see `/openapi.json`) and the probes.

pub mod health;
pub mod hellos;
pub mod info;
pub mod openapi;

use actix_web::web;
use hello_common::problem::extractors::method_not_allowed;

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/openapi.json").route(web::get().to(openapi::document)))
        .service(resource("/info").route(web::get().to(info::info)))
        .service(resource("/metrics").route(web::get().to(info::metrics)))
        .service(
            resource("/hello/{name}")
                .route(web::post().to(hellos::send))
                .route(web::get().to(hellos::read)),
        );
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}
