//! The data model's error translation against a real moto server: SDK
//! errors arrive as the model's `StoreError`, a cancelled transaction is
//! decoded from the cancellation reasons the emulator sends, by position,
//! and the platform's error table answers as the contract says.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use model::{
    Condition, StoreError, Table,
    error::{TransactionFailure, decode_cancellation, dynamo},
    keys,
};
use platform::AppError;
use tests::{Moto, TestApp};

#[tokio::test]
async fn a_failed_condition_is_a_conflict() {
    let app = TestApp::spawn().await;
    let put = || {
        app.dynamodb
            .put_item()
            .table_name(&app.storage.table_name)
            .item(keys::PK, AttributeValue::S("A".into()))
            .item(keys::SK, AttributeValue::S("B".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
    };
    put().await.expect("first write");
    let err = AppError::from(dynamo(put().await.expect_err("second write must fail")));
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
}

fn conditional_put(app: &TestApp, pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(&app.storage.table_name)
                .item(keys::PK, AttributeValue::S(pk.into()))
                .item(keys::SK, AttributeValue::S("S".into()))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn a_cancelled_transaction_names_the_item_whose_condition_failed() {
    let app = TestApp::spawn().await;
    let write = |items: Vec<TransactWriteItem>| {
        app.dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
    };
    write(vec![conditional_put(&app, "taken")])
        .await
        .expect("first transaction");
    // The taken item second: the decoder must read the position from the
    // reasons, not guess from the message.
    let err = write(vec![
        conditional_put(&app, "free"),
        conditional_put(&app, "taken"),
    ])
    .await
    .expect_err("second transaction must fail");
    let failure = decode_cancellation(err);
    assert!(
        matches!(&failure, TransactionFailure::Conditions(failed) if failed == &[1]),
        "{failure:?}"
    );
    let err = failure.named(|failed| (failed == [1]).then_some(Condition::EmailTaken));
    assert!(err.is(Condition::EmailTaken), "{err:?}");
    let err = AppError::from(err);
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_table_is_an_opaque_500() {
    let app = TestApp::spawn().await;
    let err = app
        .dynamodb
        .get_item()
        .table_name("no-such-table")
        .key(keys::PK, AttributeValue::S("x".into()))
        .key(keys::SK, AttributeValue::S("x".into()))
        .send()
        .await
        .expect_err("no table");
    let err = dynamo(err);
    assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    let err = AppError::from(err);
    assert_eq!(err.status().as_u16(), 500, "{err:?}");
    assert!(!err.public_message().contains("no-such-table"));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_503_within_the_timeouts() {
    let mut moto = Moto::start();
    let app = TestApp::spawn_on(&moto.endpoint).await;
    moto.stop();
    let started = std::time::Instant::now();
    let table = Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
    let err = AppError::from(table.ping().await.expect_err("emulator is down"));
    assert_eq!(err.status().as_u16(), 503, "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}
