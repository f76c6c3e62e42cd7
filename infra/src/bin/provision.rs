//! Creates the table and bucket of template.yaml on the configured endpoint.

use infra::{provision::provision, template::Template};
use platform::{aws, config::StorageConfig, telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let template =
        Template::load(std::env::var("TEMPLATE_PATH").unwrap_or_else(|_| "template.yaml".into()))?;
    let email_from = std::env::var("EMAIL_FROM").ok().filter(|v| !v.is_empty());
    provision(
        &aws::load_sdk_config().await,
        &template,
        &storage,
        email_from.as_deref(),
    )
    .await?;
    tracing::info!(table = %storage.table_name, bucket = %storage.bucket_name, "provisioned");
    Ok(())
}
