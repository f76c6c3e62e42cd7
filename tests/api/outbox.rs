//! The email outbox end to end, against moto with its SES fault endpoint
//! (`infra/python/moto_launcher.py`): an email refused for our side is
//! retried, left `failed` and sent once by a later sweep; a permanent
//! refusal ends it; comment emails are throttled; a duplicated record sends
//! once; a failed email fails no stream record; and an email exists only
//! when its cause committed.

use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::types::AttributeValue;
use model::{
    keys,
    outbox::{EmailKind, OutboxItem, OutboxStatus},
};
use serde_json::{Value, json};
use tests::{Session, TestApp, assert_envelope, unique_email};

/// Quick retries: a test waits for the sweep's next attempt.
const FAST_RETRIES: &[(&str, &str)] = &[
    ("EMAIL_RETRY_BASE_MS", "10"),
    ("EMAIL_RETRY_AFTER_SECS", "1"),
];

/// Makes the emulator's SES refuse every send to `to` with `code`.
async fn refuse_sends(app: &TestApp, to: &str, code: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/_local/faults/ses/send-email", app.endpoint))
        .json(&json!({"code": code, "to": to}))
        .send()
        .await
        .expect("the fault endpoint");
    assert_eq!(response.status(), 200);
}

async fn lift_fault(app: &TestApp, to: &str) {
    let response = reqwest::Client::new()
        .delete(format!("{}/_local/faults/ses/send-email", app.endpoint))
        .json(&json!({"to": to}))
        .send()
        .await
        .expect("the fault endpoint");
    assert_eq!(response.status(), 200);
}

/// How many sends to `to` the fault refused.
async fn refused_sends(app: &TestApp, to: &str) -> u64 {
    let listed: Value = reqwest::get(format!("{}/_local/faults/ses/send-email", app.endpoint))
        .await
        .expect("the fault endpoint")
        .json()
        .await
        .expect("JSON");
    listed["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .find(|fault| fault["to"] == to)
        .and_then(|fault| fault["refused"].as_u64())
        .unwrap_or(0)
}

/// Every outbox item of the table, read past the API, oldest first.
async fn every_email(app: &TestApp) -> Vec<OutboxItem> {
    let output = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .filter_expression("entity = :outbox")
        .expression_attribute_values(":outbox", AttributeValue::S("outbox".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    let mut items: Vec<OutboxItem> = output
        .items()
        .iter()
        .map(|item| serde_dynamo::from_item(item.clone()).expect("an outbox item"))
        .collect();
    items.sort_by_key(|item| item.id);
    items
}

/// Every outbox item of `user_id`, oldest first.
pub(crate) async fn outbox_of(app: &TestApp, user_id: &str) -> Vec<OutboxItem> {
    every_email(app)
        .await
        .into_iter()
        .filter(|item| item.recipient_id.to_string() == user_id)
        .collect()
}

async fn only_email(app: &TestApp, user_id: &str, kind: EmailKind) -> OutboxItem {
    let items: Vec<_> = outbox_of(app, user_id)
        .await
        .into_iter()
        .filter(|item| item.kind == kind)
        .collect();
    assert_eq!(items.len(), 1, "{items:?}");
    items.into_iter().next().expect("one")
}

/// Waits (a few seconds at most) until `check` holds of `user_id`'s items.
async fn settles(
    app: &TestApp,
    user_id: &str,
    check: impl Fn(&[OutboxItem]) -> bool,
) -> Vec<OutboxItem> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let items = outbox_of(app, user_id).await;
        if check(&items) {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn register(app: &TestApp, email: &str) -> Session {
    let response = app.post_register("Test User", email, tests::PASSWORD).await;
    assert_envelope(&response, 201, None);
    tests::session_from(&response.body["data"], email)
}

/// A user whose address is verified, with the mailbox's one email read.
async fn verified_user(app: &TestApp) -> Session {
    let user = app.signed_up_user().await;
    let token = app.emails_to(&user.email).await[0].token();
    let verified = app
        .post_json("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_envelope(&verified, 200, None);
    user
}

async fn post_of(app: &TestApp, author: &Session) -> String {
    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &author.access_token,
            Some(json!({"title": "Mail", "body": "b"})),
        )
        .await;
    assert_envelope(&post, 201, None);
    post.body["data"]["id"].as_str().expect("id").to_owned()
}

async fn comment_on(app: &TestApp, commenter: &Session, post_id: &str) {
    let comment = app
        .send_as(
            "POST",
            &format!("/api/v1/posts/{post_id}/comments"),
            &commenter.access_token,
            Some(json!({"body": "nice one"})),
        )
        .await;
    assert_envelope(&comment, 201, None);
}

fn comment_emails(items: &[OutboxItem]) -> Vec<&OutboxItem> {
    items
        .iter()
        .filter(|item| item.kind == EmailKind::Comment)
        .collect()
}

/// The status and reason of each comment email about `post_id`.
fn statuses_on(items: &[OutboxItem], post_id: &str) -> Vec<(OutboxStatus, Option<String>)> {
    comment_emails(items)
        .into_iter()
        .filter(|item| item.post_id.map(|p| p.to_string()).as_deref() == Some(post_id))
        .map(|item| (item.status, item.status_reason.clone()))
        .collect()
}

/// The `INSERT` record the stream carries for `item`.
pub(crate) fn insert_record(table: &str, item: &OutboxItem, sequence: &str) -> Value {
    let image: HashMap<String, AttributeValue> =
        model::table::to_item(item).expect("an outbox item as an item");
    let keys: HashMap<String, AttributeValue> = ["pk", "sk"]
        .into_iter()
        .map(|name| (name.to_owned(), image[name].clone()))
        .collect();
    let json_of = |item: HashMap<String, AttributeValue>| {
        serde_json::to_value(serde_dynamo::Item::from(item)).expect("JSON")
    };
    json!({
        "eventID": ulid::Ulid::new().to_string(),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": tests::REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": chrono::Utc::now().timestamp(),
            "Keys": json_of(keys),
            "NewImage": json_of(image),
            "SequenceNumber": sequence,
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": format!("arn:aws:dynamodb:{}:123456789012:table/{table}/stream/2024-01-01T00:00:00.000", tests::REGION),
    })
}

/// Long enough for a test to look at a failed email before it is due.
const SLOW_RETRY_SECS: u64 = 4;

#[tokio::test]
async fn a_refused_send_is_retried_left_failed_and_sent_once_by_the_sweep() {
    let app = TestApp::spawn_live(&[
        ("EMAIL_RETRY_BASE_MS", "10"),
        ("EMAIL_RETRY_AFTER_SECS", "4"),
    ])
    .await;
    let email = unique_email();
    refuse_sends(&app, &email, "TooManyRequestsException").await;
    let user = register(&app, &email).await;

    // The stream worker tries it three times, then leaves it for the sweep.
    let items = settles(&app, &user.id, |items| {
        items
            .first()
            .is_some_and(|i| i.status == OutboxStatus::Failed)
    })
    .await;
    let failed = &items[0];
    assert_eq!(failed.kind, EmailKind::Verification);
    assert_eq!(failed.attempts, 3);
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("TooManyRequestsException")
    );
    let next = failed.next_attempt_at_ms.expect("a next attempt time");
    assert!(next > failed.created_at_ms, "{failed:?}");
    assert!(
        failed.gsi1pk.is_some(),
        "a failed email stays on the due index"
    );
    assert!(failed.text.is_some(), "its text is kept for the retry");
    assert_eq!(refused_sends(&app, &email).await, 3);
    assert!(app.mailbox_of(&email).await.is_empty());

    // A sweep before its next attempt leaves it alone, even with SES back.
    lift_fault(&app, &email).await;
    assert!(
        model::clock::unix_now_ms() < next,
        "the next attempt is {} s away",
        SLOW_RETRY_SECS
    );
    let early = app.run_sweep().await;
    assert_eq!(early.sent, 0, "{early:?}");
    assert!(app.mailbox_of(&email).await.is_empty());
    let wait = next - model::clock::unix_now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64 + 50)).await;
    }
    let swept = app.run_sweep().await;
    assert_eq!(swept.sent, 1, "{swept:?}");
    let again = app.run_sweep().await;
    assert_eq!(again.sent, 0, "{again:?}");

    let sent = app.mailbox_of(&email).await;
    assert_eq!(sent.len(), 1, "exactly once: {sent:?}");
    assert_eq!(sent[0].subject, "Verify your email address");
    let settled = only_email(&app, &user.id, EmailKind::Verification).await;
    assert_eq!(settled.status, OutboxStatus::Sent);
    assert_eq!(settled.attempts, 4);
    assert_eq!(settled.text, None, "the token's text is gone once sent");
    assert_eq!(settled.gsi1pk, None, "off the due index");
    // The token it carried works.
    let verified = app
        .post_json(
            "/api/v1/auth/verify-email",
            json!({"token": sent[0].token()}),
        )
        .await;
    assert_envelope(&verified, 200, None);
}

/// Registers an address whose sends SES refuses with `code` and runs one
/// sweep: the address, what the sweep did and the email as it left it.
async fn registered_while_refused(
    app: &TestApp,
    code: &str,
) -> (String, stream::Tally, OutboxItem) {
    let email = unique_email();
    refuse_sends(app, &email, code).await;
    let user = register(app, &email).await;
    let tally = app.run_sweep().await;
    let item = only_email(app, &user.id, EmailKind::Verification).await;
    (email, tally, item)
}

#[tokio::test]
async fn a_permanent_refusal_is_recorded_and_never_retried() {
    let app = TestApp::spawn_with(FAST_RETRIES).await;
    let (email, tally, refused) = registered_while_refused(&app, "MessageRejected").await;
    assert_eq!(tally.ended, 1, "{tally:?}");
    assert_eq!(refused.status, OutboxStatus::Refused);
    assert_eq!(refused.attempts, 1, "not retried inside the invocation");
    assert_eq!(refused.status_reason.as_deref(), Some("MessageRejected"));
    assert_eq!(refused.text, None);
    assert_eq!(refused.gsi1pk, None, "the sweep never sees it again");

    lift_fault(&app, &email).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.run_sweep().await.sent, 0);
    assert!(app.mailbox_of(&email).await.is_empty());
    assert_eq!(refused_sends(&app, &email).await, 0, "lifted");
}

#[tokio::test]
async fn a_sender_whose_identity_is_unverified_is_our_fault_and_retried() {
    let app = TestApp::spawn_with(FAST_RETRIES).await;
    let (email, tally, failed) =
        registered_while_refused(&app, "MailFromDomainNotVerifiedException").await;
    assert_eq!(tally.failed, 1, "{tally:?}");
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert_eq!(failed.attempts, 3);
    assert!(app.mailbox_of(&email).await.is_empty());
    lift_fault(&app, &email).await;
}

#[tokio::test]
async fn comment_emails_are_throttled_per_post_and_per_day() {
    let app = TestApp::spawn_with(&[("COMMENT_EMAILS_PER_DAY", "2")]).await;
    let author = verified_user(&app).await;
    let commenter = app.signed_up_user().await;
    let first_post = post_of(&app, &author).await;

    // Of two comment emails on one post within 15 minutes, one is sent.
    comment_on(&app, &commenter, &first_post).await;
    comment_on(&app, &commenter, &first_post).await;
    app.run_sweep().await;
    let items = outbox_of(&app, &author.id).await;
    let mut on_first = statuses_on(&items, &first_post);
    on_first.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        on_first,
        [
            (OutboxStatus::Sent, None),
            (
                OutboxStatus::Throttled,
                Some("one comment email per post per window".to_owned())
            ),
        ]
    );

    // Another post: the day's second email goes; the third of the day
    // (the 51st, with the default limit) does not.
    let second_post = post_of(&app, &author).await;
    comment_on(&app, &commenter, &second_post).await;
    app.run_sweep().await;
    let third_post = post_of(&app, &author).await;
    comment_on(&app, &commenter, &third_post).await;
    app.run_sweep().await;
    let items = outbox_of(&app, &author.id).await;
    assert_eq!(
        statuses_on(&items, &second_post),
        [(OutboxStatus::Sent, None)]
    );
    assert_eq!(
        statuses_on(&items, &third_post),
        [(
            OutboxStatus::Throttled,
            Some("daily comment email limit".to_owned())
        )]
    );
    let mailed = app
        .mailbox_of(&author.email)
        .await
        .into_iter()
        .filter(|e| e.subject == "New comment on your post")
        .count();
    assert_eq!(mailed, 2);
    // The notifications are not throttled.
    let unread = app
        .get_as("/api/v1/notifications/unread-count", &author.access_token)
        .await;
    assert_eq!(unread.body["data"]["count"], 4, "{:#}", unread.body);
}

#[tokio::test]
async fn no_comment_email_for_ones_own_post_nor_an_unverified_author() {
    let app = TestApp::spawn().await;
    let author = app.signed_up_user().await;
    let post = post_of(&app, &author).await;
    comment_on(&app, &author, &post).await;
    assert!(comment_emails(&outbox_of(&app, &author.id).await).is_empty());

    let commenter = app.signed_up_user().await;
    comment_on(&app, &commenter, &post).await;
    app.run_sweep().await;
    let items = outbox_of(&app, &author.id).await;
    let skipped = comment_emails(&items);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].status, OutboxStatus::Skipped);
    assert_eq!(
        skipped[0].status_reason.as_deref(),
        Some("the recipient's email is not verified")
    );
}

#[tokio::test]
async fn a_duplicated_outbox_record_sends_once() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let item = only_email(&app, &user.id, EmailKind::Verification).await;
    let record = insert_record(&app.storage.table_name, &item, "100");
    let duplicate = insert_record(&app.storage.table_name, &item, "101");
    let batch = app.deliver_to_stream(&[record.clone(), duplicate]).await;
    assert!(batch.batch_item_failures.is_empty());
    // Redelivered after it was sent: claimed by nobody.
    let again = app.deliver_to_stream(&[record]).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(app.run_sweep().await.sent, 0);
    assert_eq!(app.mailbox_of(&user.email).await.len(), 1);
    let sent = only_email(&app, &user.id, EmailKind::Verification).await;
    assert_eq!((sent.status, sent.attempts), (OutboxStatus::Sent, 1));
}

#[tokio::test]
async fn a_failed_comment_email_fails_no_record_and_pushes_once() {
    let app = TestApp::spawn_live(FAST_RETRIES).await;
    let author = verified_user(&app).await;
    let commenter = app.signed_up_user().await;
    let post = post_of(&app, &author).await;
    let mut socket = app
        .ws_connect(Some(&author.access_token))
        .await
        .expect("connected");
    refuse_sends(&app, &author.email, "ServiceUnavailable").await;
    comment_on(&app, &commenter, &post).await;
    socket.expect("notification", Duration::from_secs(3)).await;
    let items = settles(&app, &author.id, |items| {
        comment_emails(items)
            .first()
            .is_some_and(|i| i.status == OutboxStatus::Failed)
    })
    .await;
    assert_eq!(comment_emails(&items)[0].attempts, 3);
    // The failure retried no record: no second push of the notification.
    let later = socket.drain(Duration::from_millis(1500)).await;
    assert!(
        later.iter().all(|frame| frame["type"] != "notification"),
        "{later:?}"
    );
    // Handed the records again by hand, the worker reports no failure.
    let email = &comment_emails(&items)[0];
    let batch = app
        .deliver_to_stream(&[insert_record(&app.storage.table_name, email, "7")])
        .await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(
        app.mailbox_of(&author.email).await.len(),
        1,
        "only the verification email"
    );

    // SES back, the sweep sends it once its next attempt comes.
    lift_fault(&app, &author.email).await;
    // As the email is now: the record handed again may have been a due
    // attempt of its own, failed, with a later next attempt.
    let failed = only_email(&app, &author.id, EmailKind::Comment).await;
    assert_eq!(failed.status, OutboxStatus::Failed);
    let next = failed.next_attempt_at_ms.expect("a next attempt time");
    let wait = next - model::clock::unix_now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64 + 50)).await;
    }
    let swept = app.run_sweep().await;
    assert_eq!(swept.sent, 1, "{swept:?}");
    assert_eq!(app.run_sweep().await.sent, 0);
    let comments: Vec<_> = app
        .mailbox_of(&author.email)
        .await
        .into_iter()
        .filter(|e| e.subject == "New comment on your post")
        .collect();
    assert_eq!(comments.len(), 1, "exactly once: {comments:?}");
    assert!(comments[0].body.contains(&post), "{}", comments[0].body);
}

#[tokio::test]
async fn an_email_is_written_only_with_its_cause() {
    let app = TestApp::spawn().await;
    let email = unique_email();
    let first = register(&app, &email).await;
    // A register whose transaction fails (the email is taken) writes no
    // email, nor does it send one.
    let taken = app
        .post_register("Someone Else", &email, tests::PASSWORD)
        .await;
    assert_envelope(&taken, 409, Some("CONFLICT"));
    assert_eq!(
        every_email(&app).await.len(),
        1,
        "only the first register's email"
    );
    assert_eq!(outbox_of(&app, &first.id).await.len(), 1);

    // A forgot-password for an account that is not active: the cancelled
    // transaction answers as an unknown address does, and writes nothing.
    app.promote_to_admin(&first.id).await;
    let suspended_user = app.signed_up_user().await;
    let suspended = app
        .send_as(
            "PATCH",
            &format!("/api/v1/users/{}", suspended_user.id),
            &app.logged_in(&first.email, tests::PASSWORD)
                .await
                .access_token,
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_envelope(&suspended, 200, None);
    let before = outbox_of(&app, &suspended_user.id).await.len();
    let forgot = app
        .post_json(
            "/api/v1/auth/forgot-password",
            json!({"email": suspended_user.email}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/forgot-password",
            json!({"email": unique_email()}),
        )
        .await;
    assert_envelope(&forgot, 200, None);
    assert_eq!(forgot.body["message"], unknown.body["message"]);
    assert_eq!(outbox_of(&app, &suspended_user.id).await.len(), before);
    let token_items = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .filter_expression("entity = :token AND userId = :user AND sk = :reset")
        .expression_attribute_values(":token", AttributeValue::S("token".into()))
        .expression_attribute_values(":user", AttributeValue::S(suspended_user.id.clone()))
        .expression_attribute_values(":reset", AttributeValue::S(keys::RESET_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    assert_eq!(token_items.count(), 0);
}

/// The stream function's one Lambda handler tells its two event sources
/// apart: EventBridge's scheduled event (as AWS documents it) runs the
/// sweep, a stream batch is a batch, anything else is an error.
#[tokio::test]
async fn the_lambda_handler_runs_the_sweep_on_a_scheduled_event() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let env: HashMap<&str, String> = [
        ("TABLE_NAME", app.storage.table_name.clone()),
        ("BUCKET_NAME", app.storage.bucket_name.clone()),
        ("S3_FORCE_PATH_STYLE", "true".to_owned()),
        ("EMAIL_FROM", tests::EMAIL_FROM.to_owned()),
        (
            "WS_MANAGEMENT_ENDPOINT",
            "http://127.0.0.1:9/local".to_owned(),
        ),
        ("OUTBOX_PENDING_GRACE_SECS", "0".to_owned()),
    ]
    .into();
    let source = |name: &str| env.get(name).cloned();
    let sdk = platform::aws::sdk_config_for_endpoint(&app.endpoint, tests::REGION).await;
    let lambda = stream::build(&source, &sdk)
        .expect("the worker builds")
        .lambda();

    let scheduled = json!({
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2016-12-30T18:44:49Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/SampleRule"],
        "detail": {}
    });
    let tally = platform::lambda::invoke(&lambda, scheduled)
        .await
        .expect("the sweep answers");
    assert_eq!(tally["sent"], 1, "{tally}");
    assert_eq!(app.mailbox_of(&user.email).await.len(), 1);

    let batch = platform::lambda::invoke(&lambda, json!({"Records": []}))
        .await
        .expect("a batch answers");
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");

    let other = json!({"detail-type": "Something Else", "source": "aws.other"});
    assert!(platform::lambda::invoke(&lambda, other).await.is_err());
}

#[tokio::test]
async fn an_email_whose_token_died_first_is_never_sent() {
    let app = TestApp::spawn_with(&[("VERIFY_TOKEN_TTL_SECS", "1")]).await;
    let email = unique_email();
    let user = register(&app, &email).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let tally = app.run_sweep().await;
    assert_eq!(tally.ended, 1, "{tally:?}");
    let expired = only_email(&app, &user.id, EmailKind::Verification).await;
    assert_eq!(expired.status, OutboxStatus::Expired);
    assert_eq!(expired.text, None, "its token's text is gone");
    assert_eq!(expired.attempts, 0);
    assert!(app.mailbox_of(&email).await.is_empty());
}
