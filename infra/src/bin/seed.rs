//! `seed`: demo data for a running `make dev` through its public API
//! (`infra::dev_data::seed`), then how to log in. `make seed` runs it.

use infra::dev_data::seed::{SeedConfig, seed};
use model::Table;
use platform::{aws, config::ProcessEnv};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SeedConfig::from_source(&ProcessEnv)?;
    // As `make admin` does: the SDK finds the emulator in AWS_ENDPOINT_URL.
    let sdk = aws::load_sdk_config().await;
    let table = Table::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.table_name.clone(),
    );
    print!("{}", seed(&config, &table).await?);
    Ok(())
}
