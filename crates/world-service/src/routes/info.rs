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

/// `GET /metrics`: the registry, with `world_hellos_stored` and `world_store_up` read from the
/// store first. If the store does not answer, `world_store_up` is 0 and `world_hellos_stored`
/// keeps its last value.
pub async fn metrics(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> HttpResponse {
    let store = &state.store_metrics;
    match state.store.stored_hellos().await {
        Ok(stored) => {
            store.stored.set(i64::try_from(stored).unwrap_or(i64::MAX));
            store.store_up.set(1);
        }
        Err(_) => store.store_up.set(0),
    }
    metrics_endpoint(metrics).await
}
