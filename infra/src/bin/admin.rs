//! `admin promote EMAIL`: makes a registered user an admin.

use infra::admin;
use model::Table;
use platform::{
    aws,
    config::{ProcessEnv, StorageConfig},
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, email] = args.as_slice() else {
        return Err("usage: admin promote EMAIL".into());
    };
    if command != "promote" {
        return Err(format!("unknown command {command:?}; usage: admin promote EMAIL").into());
    }
    let table_name = StorageConfig::table_name(&ProcessEnv)?;
    let sdk = aws::load_sdk_config().await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&sdk), table_name);
    let user_id = admin::promote(&table, email).await?;
    println!("{email} ({user_id}) is now an admin");
    Ok(())
}
