//! `GET /v1/info`: world-service's view of itself, for hello-service's `/info`; and `GET /metrics`.

use actix_web::{HttpResponse, web};
use hello_common::{
    info::{SecretEntry, describe_settings},
    observability::{Metrics, metrics_endpoint},
};

use crate::{config::SECRET_SETTINGS, startup::AppState};

/// Version, store, uptime, configuration with sources, secrets by key name only.
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    let settings = &state.settings;
    let mut config = describe_settings("WORLD_", settings, SECRET_SETTINGS);
    config.extend(settings.mounted.config_entries());
    let mut secrets = settings.mounted.secret_entries();
    if settings.mongodb_uri.is_some() {
        secrets.push(SecretEntry {
            key: "WORLD_MONGODB_URI".to_owned(),
            source: "environment".to_owned(),
        });
    }
    HttpResponse::Ok().json(serde_json::json!({
        "service": "world-service",
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.store.backend(),
        "started_at": state.uptime.started_at(),
        "uptime_seconds": state.uptime.seconds(),
        "config": config,
        "secrets": secrets,
    }))
}

/// `GET /metrics`: the registry, with `world_hellos_stored` read from the store first. If the
/// store does not answer, the gauge keeps its last value (the store's own alerts say why).
pub async fn metrics(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> HttpResponse {
    if let Ok(stored) = state.store.stored_hellos().await {
        state
            .store_metrics
            .stored
            .set(i64::try_from(stored).unwrap_or(i64::MAX));
    }
    metrics_endpoint(metrics).await
}
