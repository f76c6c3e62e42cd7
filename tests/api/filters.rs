//! The template's `FilterCriteria` applied by the local stream poller: a
//! change no filter selects never reaches the stream worker, one a filter
//! selects does, in stream order, as the event source mapping does on AWS.
//!
//! The worker here is a stand-in that records what it is handed: these
//! tests are about what the mapping delivers, not what the worker does with
//! it. "Never delivered" is decided without waiting on a clock: each test
//! ends with a change that is delivered, and the poller reads the stream in
//! order, so once that one has arrived everything written before it has
//! been either delivered or skipped.

use std::time::Duration;

use aws_lambda_events::{dynamodb::Event, streams::DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use infra::{streams, template::Template};
use model::keys::{self, Entity};
use serde_dynamo::AttributeValue as Delivered;
use serde_json::json;
use tests::{PASSWORD, REGION, TestApp, workspace_root};
use tokio::sync::mpsc;

/// Far longer than the poller's 100 ms round; only a change that is never
/// delivered waits this long.
const WAIT: Duration = Duration::from_secs(10);

/// A record as the worker was handed it.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    event_name: String,
    pk: String,
    entity: String,
    new_image: serde_dynamo::Item,
}

impl Record {
    fn of(record: &aws_lambda_events::dynamodb::EventRecord) -> Record {
        let text = |item: &serde_dynamo::Item, name: &str| match item.get(name) {
            Some(Delivered::S(text)) => Some(text.clone()),
            _ => None,
        };
        let change = &record.change;
        Record {
            event_name: record.event_name.clone(),
            pk: text(&change.keys, keys::PK).unwrap_or_default(),
            entity: text(&change.new_image, keys::ENTITY)
                .or_else(|| text(&change.old_image, keys::ENTITY))
                .unwrap_or_default(),
            new_image: change.new_image.clone(),
        }
    }

    fn is(&self, event_name: &str, pk: &str) -> bool {
        self.event_name == event_name && self.pk == pk
    }
}

/// The poller of `app`'s table with the template's filters, feeding a
/// recording stand-in for the worker; stopped when dropped.
struct Poller {
    invocations: mpsc::UnboundedReceiver<Vec<Record>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Poller {
    async fn start(app: &TestApp) -> Poller {
        let template =
            Template::load(workspace_root().join("template.yaml")).expect("template.yaml");
        let (sender, invocations) = mpsc::unbounded_channel();
        let worker = platform::lambda::event_service(move |event: Event| {
            let sender = sender.clone();
            async move {
                // The receiver outlives every write a test waits for.
                let _ = sender.send(event.records.iter().map(Record::of).collect());
                DynamoDbEventResponse::default()
            }
        });
        let sdk = platform::aws::sdk_config_for_endpoint(&app.endpoint, REGION).await;
        let task = streams::start(&sdk, &sdk, &app.storage.table_name, &template, worker)
            .await
            .expect("stream poller");
        Poller { invocations, task }
    }

    /// Every invocation up to the one that delivers a record `last` picks,
    /// as the records each was handed.
    async fn until(&mut self, last: impl Fn(&Record) -> bool) -> Vec<Vec<Record>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut invocations = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.invocations.recv()).await {
                Ok(Some(records)) => {
                    let done = records.iter().any(&last);
                    invocations.push(records);
                    if done {
                        break;
                    }
                }
                _ => panic!(
                    "the awaited record was not delivered within {WAIT:?}; delivered: {invocations:#?}"
                ),
            }
        }
        assert!(
            invocations.iter().all(|records| !records.is_empty()),
            "a batch the filters emptied still invoked the worker: {invocations:#?}"
        );
        invocations
    }
}

/// The records but the outbox emails' INSERTs, which the worker gets for
/// every email a route writes (register's, forgot-password's).
fn without_emails(records: Vec<Record>) -> Vec<Record> {
    let (emails, others): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|r| r.entity == Entity::Outbox.as_str());
    assert!(
        emails.iter().all(|r| r.event_name == "INSERT"),
        "{emails:#?}"
    );
    others
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

/// What the table's writes look like to the stream, item by item.
struct Table<'a>(&'a TestApp);

impl Table<'_> {
    async fn put(&self, pk: &str, entity: Entity, more: &[(&str, AttributeValue)]) {
        let mut put = self
            .0
            .dynamodb
            .put_item()
            .table_name(&self.0.storage.table_name)
            .item(keys::PK, s(pk))
            .item(keys::SK, s("ITEM"))
            .item(keys::ENTITY, s(entity.as_str()));
        for (name, value) in more {
            put = put.item(*name, value.clone());
        }
        put.send().await.expect("put");
    }

    async fn set(&self, pk: &str, name: &str, value: AttributeValue) {
        self.0
            .dynamodb
            .update_item()
            .table_name(&self.0.storage.table_name)
            .key(keys::PK, s(pk))
            .key(keys::SK, s("ITEM"))
            .update_expression("SET #name = :value")
            .expression_attribute_names("#name", name)
            .expression_attribute_values(":value", value)
            .send()
            .await
            .expect("update");
    }

    async fn delete(&self, pk: &str) {
        self.0
            .dynamodb
            .delete_item()
            .table_name(&self.0.storage.table_name)
            .key(keys::PK, s(pk))
            .key(keys::SK, s("ITEM"))
            .send()
            .await
            .expect("delete");
    }
}

#[tokio::test]
async fn each_filter_lets_through_its_own_changes_and_nothing_else() {
    let app = TestApp::spawn().await;
    let mut poller = Poller::start(&app).await;
    let table = Table(&app);

    table.put("post", Entity::Post, &[]).await;
    table
        .put(
            "session",
            Entity::Session,
            &[("revoked", AttributeValue::Bool(false))],
        )
        .await;
    table.set("session", "ip", s("203.0.113.7")).await;
    table
        .put(
            "notification",
            Entity::Notification,
            &[("read", AttributeValue::Bool(false))],
        )
        .await;
    table
        .set("notification", "read", AttributeValue::Bool(true))
        .await;
    table.put("presence", Entity::Presence, &[]).await;
    table.put("outbox", Entity::Outbox, &[]).await;
    table.set("outbox", "status", s("sent")).await;
    table.put("comment", Entity::Comment, &[]).await;
    table.delete("post").await;
    table.delete("comment").await;
    table.delete("notification").await;
    table
        .set("session", "revoked", AttributeValue::Bool(true))
        .await;
    table.put("upload", Entity::Upload, &[]).await;
    table.delete("upload").await;
    table.delete("presence").await;

    let delivered: Vec<(String, String)> = poller
        .until(|r| r.is("REMOVE", "presence"))
        .await
        .concat()
        .into_iter()
        .map(|r| (r.event_name, r.pk))
        .collect();
    let expected = [
        ("INSERT", "notification"),
        ("INSERT", "presence"),
        ("INSERT", "outbox"),
        ("REMOVE", "post"),
        ("MODIFY", "session"),
        ("REMOVE", "upload"),
        ("REMOVE", "presence"),
    ]
    .map(|(event, pk)| (event.to_owned(), pk.to_owned()));
    assert_eq!(delivered, expected);
}

#[tokio::test]
async fn a_session_reaches_the_worker_when_it_is_revoked_and_not_before() {
    let app = TestApp::spawn().await;
    let mut poller = Poller::start(&app).await;
    // A registration, a post and a refresh: inserts of items no filter
    // names (but the registration's email), and a change to a session that
    // is still live.
    let session = app.signed_up_user().await;
    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &session.access_token,
            Some(json!({"title": "Filters", "body": "not for the worker", "tags": ["local"]})),
        )
        .await;
    assert_eq!(post.status, 201, "{:#}", post.body);
    let refreshed = app.post_refresh(&session.refresh_token).await;
    assert_eq!(refreshed.status, 200, "{:#}", refreshed.body);
    let access_token = refreshed.body["data"]["accessToken"].as_str().unwrap();
    let logout = app
        .send_as("POST", "/api/v1/auth/logout", access_token, None)
        .await;
    assert_eq!(logout.status, 200, "{:#}", logout.body);

    let revoked = Some(&Delivered::Bool(true));
    let delivered = without_emails(
        poller
            .until(|r| r.entity == "session" && r.new_image.get("revoked") == revoked)
            .await
            .concat(),
    );
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0].event_name, "MODIFY");
}

/// The worker closes the sockets of a user whose sessions were cut; a
/// password reset cuts them by moving `sessionsValidAfter` forward. A
/// profile edit must not reach it.
#[tokio::test]
async fn a_password_reset_reaches_the_worker_and_a_profile_edit_does_not() {
    let app = TestApp::spawn().await;
    let mut poller = Poller::start(&app).await;
    let session = app.signed_up_user().await;
    let edit = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &session.access_token,
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(edit.status, 200, "{:#}", edit.body);
    let token = app.requested_reset_token(&session.email).await;
    let reset = app
        .post_json(
            "/api/v1/auth/reset-password",
            json!({"token": token, "password": format!("{PASSWORD}-new")}),
        )
        .await;
    assert_eq!(reset.status, 200, "{:#}", reset.body);

    let never_cut = Some(&Delivered::N("0".into()));
    let delivered = without_emails(
        poller
            .until(|r| r.entity == "user" && r.new_image.get("sessionsValidAfter") != never_cut)
            .await
            .concat(),
    );
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0].event_name, "MODIFY");
}
