//! Creates the table and bucket of `template.yaml` against whatever endpoint
//! the SDK is configured for (moto, LocalStack). Idempotent: what exists is
//! left as it is, so `make dev` can run it on every start.
//!
//! On AWS, CloudFormation does this; this module is only for emulators.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule as S3CorsRule};
use platform::{aws::AwsClients, config::StorageConfig};

use crate::template::{KeyElement, Template, TemplateError};

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("creating table {table}: {message}")]
    Table { table: String, message: String },
    #[error("creating bucket {bucket}: {message}")]
    Bucket { bucket: String, message: String },
    #[error("creating email identity {identity}: {message}")]
    EmailIdentity { identity: String, message: String },
}

impl std::fmt::Debug for ProvisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn keys(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>, String> {
    elements
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn table_error(table: &str) -> impl Fn(String) -> ProvisionError + '_ {
    move |message| ProvisionError::Table {
        table: table.to_owned(),
        message,
    }
}

/// Creates (or keeps) the table and bucket named in `storage`, and the SES
/// identity that sends the API's email, when one is given.
pub async fn provision(
    sdk: &SdkConfig,
    template: &Template,
    storage: &StorageConfig,
    email_from: Option<&str>,
) -> Result<(), ProvisionError> {
    let clients = AwsClients::new(sdk, storage);
    create_table(&clients.dynamodb, template, &storage.table_name).await?;
    create_bucket(&clients.s3, template, &storage.bucket_name).await?;
    if let Some(from) = email_from {
        create_email_identity(&aws_sdk_sesv2::Client::new(sdk), from).await?;
    }
    Ok(())
}

/// Emulators verify an identity on creation; on AWS the template's
/// `AWS::SES::EmailIdentity` is verified by DNS or by a click.
async fn create_email_identity(
    client: &aws_sdk_sesv2::Client,
    from: &str,
) -> Result<(), ProvisionError> {
    match client
        .create_email_identity()
        .email_identity(from)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(err) => Err(ProvisionError::EmailIdentity {
            identity: from.to_owned(),
            message: platform::error::ErrorChain(&err).to_string(),
        }),
    }
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    template: &Template,
    name: &str,
) -> Result<(), ProvisionError> {
    let spec = template.main_table()?;
    let fail = table_error(name);
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&spec.keys).map_err(&fail)?));
    for (attribute, kind) in &spec.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    for index in &spec.global_indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(keys(&index.keys).map_err(&fail)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    if let Some(view) = &spec.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return Ok(());
        }
        Err(err) => return Err(fail(platform::error::ErrorChain(&err).to_string())),
    }
    if let Some(attribute) = &spec.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|err| fail(platform::error::ErrorChain(&err).to_string()))?;
    }
    Ok(())
}

async fn create_bucket(
    client: &aws_sdk_s3::Client,
    template: &Template,
    name: &str,
) -> Result<(), ProvisionError> {
    let spec = template.main_bucket()?;
    let fail = |message: String| ProvisionError::Bucket {
        bucket: name.to_owned(),
        message,
    };
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(err)
            if err.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            }) => {}
        Err(err) => return Err(fail(platform::error::ErrorChain(&err).to_string())),
    }
    if spec.cors_rules.is_empty() {
        return Ok(());
    }
    let mut cors = CorsConfiguration::builder();
    for rule in &spec.cors_rules {
        cors = cors.cors_rules(
            S3CorsRule::builder()
                .set_allowed_methods(Some(rule.allowed_methods.clone()))
                .set_allowed_origins(Some(rule.allowed_origins.clone()))
                .set_allowed_headers(Some(rule.allowed_headers.clone()))
                .set_expose_headers(Some(rule.exposed_headers.clone()))
                .set_max_age_seconds(rule.max_age_seconds)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    client
        .put_bucket_cors()
        .bucket(name)
        .cors_configuration(cors.build().map_err(|e| fail(e.to_string()))?)
        .send()
        .await
        .map_err(|err| fail(platform::error::ErrorChain(&err).to_string()))?;
    Ok(())
}
