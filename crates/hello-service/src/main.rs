use hello_service::{config::Settings, startup::Application};

const USAGE: &str = "hello-service: the public REST API of Scalable Hello World.

Usage:
  hello-service                      serve (configured by HELLO_* variables: docs/configuration.md)
  hello-service healthcheck [PATH]   probe the running service (default /healthz): exit 0 or 1
  hello-service --help               this text";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hello_common::cli::check_arguments(USAGE, &["healthcheck"]);
    let settings = Settings::from_env()?;
    // `hello-service healthcheck [PATH]`: probe the running service, exit 0 (ok) or 1.
    hello_common::healthcheck::run_if_asked(hello_common::healthcheck::Target::Tcp(
        settings.listen,
    ));
    // Kept to the end of main: dropping it flushes the traces not yet exported.
    let _telemetry = hello_common::telemetry::init("hello-service");
    Application::build(&settings)?.run_until_stopped().await?;
    Ok(())
}
