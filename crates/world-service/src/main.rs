use world_service::{config::Settings, startup::Application};

const USAGE: &str = "world-service: the sidecar that owns Scalable Hello World's data.

Usage:
  world-service                          serve (configured by WORLD_* variables: docs/configuration.md)
  world-service healthcheck [PATH]       probe the running service (default /healthz): exit 0 or 1
  world-service names reset-token NAME   give a claimed name a new token (shown once)
  world-service names release NAME       free a claimed name and delete its waiting hellos
  world-service --help                   this text";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hello_common::cli::check_arguments(USAGE, &["healthcheck", "names"]);
    let (settings, warnings) = Settings::from_env()?;
    // `world-service healthcheck [PATH]`: probe the running service, exit 0 (ok) or 1.
    hello_common::healthcheck::run_if_asked(settings.probe_target());
    // `world-service names release|reset-token NAME`: an operator's help with a lost token.
    world_service::admin::run_if_asked(&settings).await;
    // Kept to the end of main: dropping it flushes the traces not yet exported.
    let _telemetry = hello_common::telemetry::init("world-service");
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
