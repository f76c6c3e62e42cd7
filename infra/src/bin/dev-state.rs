//! `dev-state load|save`: has the emulator at `AWS_ENDPOINT_URL` (our
//! launcher, started by `make dev` with `--state-dir`) load or save the
//! local stack's state, skipping the items of live WebSocket connections
//! (`infra::dev_data::state`). `make dev` runs `load` after provisioning
//! and before the gateway, and `save` once the gateway has stopped.
//!
//! `dev-state connections <userId>` prints how many live connections the
//! table holds for a user and how many of them are in presence, so that
//! scripts (the smoke test's hot-reload check) can see `$connect` and
//! `$disconnect` at work without spelling the key layout themselves.

use aws_sdk_dynamodb::types::AttributeValue;
use infra::dev_data::state::StateClient;
use model::{domain::UserId, keys};
use platform::{
    aws,
    config::{ProcessEnv, StorageConfig},
};

const USAGE: &str = "usage: dev-state load|save|connections <userId>";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let message = match args.as_slice() {
        [command] if command == "load" => StateClient::from_source(&ProcessEnv)?.load().await?,
        [command] if command == "save" => StateClient::from_source(&ProcessEnv)?.save().await?,
        [command, user] if command == "connections" => {
            let user = UserId::parse("userId", user.clone()).map_err(|e| format!("{e:?}"))?;
            connections(&user).await?
        }
        _ => return Err(USAGE.into()),
    };
    println!("{message}");
    Ok(())
}

/// "<connections> <in presence>" for `user`, read strongly consistently.
async fn connections(user: &UserId) -> Result<String, Box<dyn std::error::Error>> {
    let storage = StorageConfig::from_source(&ProcessEnv)?;
    let db = aws_sdk_dynamodb::Client::new(&aws::load_sdk_config().await);
    let items = db
        .query()
        .table_name(&storage.table_name)
        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
        .expression_attribute_names("#pk", keys::PK)
        .expression_attribute_names("#sk", keys::SK)
        .expression_attribute_values(":pk", AttributeValue::S(keys::user_pk(user)))
        .expression_attribute_values(
            ":prefix",
            AttributeValue::S(keys::CONNECTION_SK_PREFIX.into()),
        )
        .consistent_read(true)
        .send()
        .await?
        .items
        .unwrap_or_default();
    let mut present = 0;
    for item in &items {
        let Some(AttributeValue::S(sk)) = item.get(keys::SK) else {
            continue;
        };
        // A user's connection item and the connection's presence item
        // share their sort key (`CONN#<id>`).
        let found = db
            .get_item()
            .table_name(&storage.table_name)
            .key(keys::PK, AttributeValue::S(keys::PRESENCE_PK.into()))
            .key(keys::SK, AttributeValue::S(sk.clone()))
            .consistent_read(true)
            .send()
            .await?;
        if found.item.is_some() {
            present += 1;
        }
    }
    Ok(format!("{} {present}", items.len()))
}
