//! `migrate [--dry-run] [list|status]`: applies the table's pending item
//! migrations (`infra::migrate`), each once, or counts what they would
//! change, or shows their records. Exits non-zero when one fails.

use infra::migrate::{self, Command, Message, Migrator, RunOptions, Target};
use model::Table;
use platform::{aws, config::ProcessEnv};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = Command::parse(&args)?;
    let migrations = migrate::all();
    if command == Command::List {
        for migration in &migrations {
            println!("{}", migrate::line(migration.as_ref(), migration.summary()));
        }
        return Ok(());
    }
    let target = Target::from_source(&ProcessEnv)?;
    println!("migrate: {target}");
    let sdk = aws::load_sdk_config().await;
    let migrator = Migrator::new(Table::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        target.table_name,
    ));
    match command {
        Command::List => unreachable!("listed above"),
        Command::Status => {
            for migration in &migrations {
                let status = migrator.status(migration.as_ref()).await?;
                println!("{}", migrate::line(migration.as_ref(), status));
            }
        }
        Command::Apply { dry_run } => {
            let options = RunOptions {
                dry_run,
                ..RunOptions::default()
            };
            for (migration, result) in migrator.run_all(&migrations, &options).await {
                match result {
                    Ok(outcome) => println!("{}", migrate::line(migration, outcome)),
                    Err(err) => return Err(Message(migrate::line(migration, err)).into()),
                }
            }
        }
    }
    Ok(())
}
