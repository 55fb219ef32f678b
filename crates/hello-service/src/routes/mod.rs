//! The public API (see `/openapi.json`) and the probes.

pub mod health;
pub mod hellos;
pub mod info;
pub mod names;
pub mod openapi;

use actix_web::web;
use hello_common::problem::extractors::resource;

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi::document)))
        .service(resource("/info", "GET").route(web::get().to(info::info)))
        .service(resource("/metrics", "GET").route(web::get().to(info::metrics)))
        .service(
            resource("/hello/{name}", "GET, POST")
                .route(web::post().to(hellos::send::send))
                .route(web::get().to(hellos::read::read)),
        )
        .service(
            resource("/hello/{name}/reads", "POST").route(web::post().to(hellos::reliable::take)),
        )
        .service(
            resource("/hello/{name}/reads/{receipt}", "DELETE")
                .route(web::delete().to(hellos::reliable::confirm)),
        )
        .service(
            resource("/names/{name}", "POST, DELETE")
                .route(web::post().to(names::claim))
                .route(web::delete().to(names::release)),
        )
        .service(resource("/names/{name}/token", "POST").route(web::post().to(names::rotate)));
}
