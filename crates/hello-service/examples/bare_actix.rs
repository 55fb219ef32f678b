//! The benchmark's ceiling for one Rust HTTP hop: actix-web answering a constant, nothing else.
//! `BARE_LISTEN` (default 127.0.0.1:8090). Used by bench/run.py; not part of the product.
//!
//! It also answers `/readyz` as world-service would when ready, so that hello-service pointed at
//! it measures the pod's two-hop path (nginx -> hello -> world) with no store work behind it;
//! with `BARE_SOCKET` set it listens on that Unix socket as well, as world-service does.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("BARE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/",
                web::get().to(|| async { HttpResponse::Ok().body("hello") }),
            )
            .route(
                "/readyz",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"status":"ready","store":"none"}"#)
                }),
            )
    })
    .bind(listen)?;
    match std::env::var_os("BARE_SOCKET") {
        Some(socket) => server.bind_uds(socket)?.run().await,
        None => server.run().await,
    }
}
