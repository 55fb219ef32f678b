use world_service::{config::Settings, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (settings, warnings) = Settings::from_env()?;
    // `world-service healthcheck [PATH]`: probe the running service, exit 0 (ok) or 1.
    hello_common::healthcheck::run_if_asked(settings.listen);
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
