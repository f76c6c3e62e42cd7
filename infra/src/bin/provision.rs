//! Creates the table and bucket of template.yaml on the configured endpoint.

use infra::{provision::provision, template::Template};
use platform::{aws, config::StorageConfig, telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let storage = StorageConfig::from_env()?;
    let template =
        Template::load(std::env::var("TEMPLATE_PATH").unwrap_or_else(|_| "template.yaml".into()))?;
    // LocalStack's community edition has no SES v2 API, so creating the
    // sender there fails; PROVISION_EMAIL_IDENTITY=false skips it (the
    // functions' sends then fail and are logged, as any SES outage is).
    let create_identity = match std::env::var("PROVISION_EMAIL_IDENTITY").as_deref() {
        Err(_) | Ok("true") => true,
        Ok("false") => false,
        Ok(other) => {
            return Err(format!(
                "environment variable PROVISION_EMAIL_IDENTITY is invalid: {other:?} (true or false)"
            )
            .into());
        }
    };
    let email_from = std::env::var("EMAIL_FROM")
        .ok()
        .filter(|v| !v.is_empty() && create_identity);
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
