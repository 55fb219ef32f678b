use hello_service::{config::Settings, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hello_common::telemetry::init("hello-service");
    let settings = Settings::from_env()?;
    Application::build(&settings)?.run_until_stopped().await?;
    Ok(())
}
