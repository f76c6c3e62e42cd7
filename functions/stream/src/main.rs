//! The stream worker Lambda: telemetry, then the function `build` makes.

use platform::{aws, config::ProcessEnv, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::load_sdk_config().await;
    lambda_runtime::run(stream::build(&ProcessEnv, &sdk)?.lambda()).await
}
