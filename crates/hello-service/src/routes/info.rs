//! `GET /info` (the serving pod, its configuration and secrets) and `GET /metrics`.

use actix_web::{HttpResponse, web};
use hello_common::{
    info::{ConfigEntry, SecretEntry, describe_settings},
    observability::{Metrics, RequestId},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{config::PodIdentity, startup::AppState};

/// The serving pod as `/info` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Info {
    /// Always `hello-service`.
    pub service: &'static str,
    /// The running version.
    pub version: &'static str,
    /// Pod name, IP, node and namespace (Kubernetes downward API; `unknown` outside it).
    #[schema(value_type = Object)]
    pub pod: PodIdentity,
    /// When this process started (RFC 3339 UTC).
    pub started_at: String,
    pub uptime_seconds: u64,
    /// Every setting with its source: `environment`, `default`, `mounted file` (the ConfigMap
    /// directory, read afresh on every call) or `immutable ConfigMap`.
    pub config: Vec<ConfigEntry>,
    /// Secrets by key name only; never a value nor anything derived from it.
    pub secrets: Vec<SecretEntry>,
    /// world-service's view of itself, fetched over its Unix socket (or `{"error": ...}`).
    #[schema(value_type = Object)]
    pub world: serde_json::Value,
}

/// The serving pod: identity, version, uptime, configuration with sources, secret key names.
#[utoipa::path(get, path = "/info", tag = "operations",
    responses((status = 200, description = "The serving pod", body = Info)))]
pub async fn info(state: web::Data<AppState>, request_id: RequestId) -> HttpResponse {
    let settings = &state.settings;
    let mut config = describe_settings("HELLO_", settings, &[]);
    config.extend(settings.mounted.config_entries());
    let world = match state.world.info(&request_id).await {
        Ok(world) => world,
        Err(error) => serde_json::json!({ "error": error.to_string() }),
    };
    HttpResponse::Ok().json(Info {
        service: "hello-service",
        version: env!("CARGO_PKG_VERSION"),
        pod: state.pod.clone(),
        started_at: state.uptime.started_at(),
        uptime_seconds: state.uptime.seconds(),
        config,
        secrets: settings.mounted.secret_entries(),
        world,
    })
}

/// Prometheus metrics of hello-service, followed by world-service's (which listens on loopback
/// only), so that a Prometheus that can reach only the pod's IP scrapes both in one target.
/// `hello_world_metrics_up` says whether world's part could be fetched. Not part of the public
/// API (nor of `/openapi.json`): nginx does not serve it, Prometheus scrapes port 8081 in-cluster.
pub async fn metrics(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> HttpResponse {
    let mut text = metrics.render();
    let world = state.world.metrics().await;
    text.push_str(
        "# HELP hello_world_metrics_up Whether world-service's metrics below could be fetched.\n\
         # TYPE hello_world_metrics_up gauge\n",
    );
    match world {
        Ok(world) => {
            text.push_str("hello_world_metrics_up 1\n");
            text.push_str(&world);
        }
        Err(_) => text.push_str("hello_world_metrics_up 0\n"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
