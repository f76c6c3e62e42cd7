//! The DynamoDB layer against a real moto server: SDK errors arrive in the
//! error table as the contract says.

use aws_sdk_dynamodb::types::AttributeValue;
use shared::{AppError, store};
use tests::{Moto, TestApp};

#[tokio::test]
async fn a_failed_condition_is_a_conflict() {
    let app = TestApp::spawn().await;
    let put = || {
        app.dynamodb
            .put_item()
            .table_name(&app.storage.table_name)
            .item("pk", AttributeValue::S("USER#1".into()))
            .item("sk", AttributeValue::S("PROFILE".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
    };
    put().await.expect("first write");
    let err = store::dynamo(put().await.expect_err("second write must fail"));
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_cancelled_transaction_on_a_condition_is_a_conflict() {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
    let app = TestApp::spawn().await;
    let item = |sk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&app.storage.table_name)
                    .item("pk", AttributeValue::S("EMAIL#a@b.c".into()))
                    .item("sk", AttributeValue::S(sk.into()))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let write = || {
        app.dynamodb
            .transact_write_items()
            .transact_items(item("EMAIL"))
            .send()
    };
    write().await.expect("first transaction");
    let err = store::dynamo(write().await.expect_err("second transaction must fail"));
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_table_is_an_opaque_500() {
    let app = TestApp::spawn().await;
    let err = app
        .dynamodb
        .get_item()
        .table_name("no-such-table")
        .key("pk", AttributeValue::S("x".into()))
        .key("sk", AttributeValue::S("x".into()))
        .send()
        .await
        .expect_err("no table");
    let err = store::dynamo(err);
    assert_eq!(err.status().as_u16(), 500, "{err:?}");
    assert!(!err.public_message().contains("no-such-table"));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_503_within_the_timeouts() {
    let mut moto = Moto::start();
    let app = TestApp::spawn_on(&moto.endpoint).await;
    moto.stop();
    let started = std::time::Instant::now();
    let table = store::Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
    let err = table.ping().await.expect_err("emulator is down");
    assert_eq!(err.status().as_u16(), 503, "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}
