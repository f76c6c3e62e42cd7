//! Client-like helpers for the Uploads routes: ask for an upload, send the
//! bytes to the presigned URL the way a browser would, complete it; and the
//! one thing moto never does to an upload, DynamoDB's TTL deletion of it,
//! with the stream record that deletion makes.

use std::collections::HashMap;

use aws_lambda_events::{dynamodb::Event, streams::DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use crate::{TestApp, TestResponse};

/// A created upload as a client holds it.
#[derive(Debug, Clone)]
pub struct CreatedUpload {
    pub id: String,
    pub upload_url: String,
    pub upload_headers: Vec<(String, String)>,
    /// The whole `data` of the 201.
    pub data: Value,
}

/// The body of `POST /api/v1/uploads` for a PNG avatar of `size` bytes.
pub fn upload_request(size: u64) -> Value {
    json!({
        "filename": "avatar.png",
        "contentType": "image/png",
        "size": size,
        "purpose": "avatar",
    })
}

/// PUTs `bytes` to a presigned URL with `headers`, straight to the emulator.
/// Returns the status S3 answered with.
pub async fn put_presigned(url: &str, headers: &[(String, String)], bytes: Vec<u8>) -> u16 {
    infra::calls::CallRecorder::record_presigned("PUT", url);
    let mut request = reqwest::Client::new().put(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
        .body(bytes)
        .send()
        .await
        .expect("the presigned URL reaches the emulator")
        .status()
        .as_u16()
}

/// GETs a presigned download URL, straight to the emulator, as the
/// signer's own request (which is how S3 authorizes it).
pub async fn get_presigned(url: &str) -> reqwest::Response {
    infra::calls::CallRecorder::record_presigned("GET", url);
    reqwest::get(url)
        .await
        .expect("the presigned URL reaches the emulator")
}

/// DynamoDB JSON (`{"S": "x"}`) of an item, as a stream record carries it
/// to Lambda: serde_dynamo's own, the form `aws_lambda_events` reads back.
fn image_json(item: &HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(serde_dynamo::Item::from(item.clone())).expect("an item is JSON")
}

/// The `REMOVE` record of a TTL deletion of `old` from `table`, shaped as
/// AWS's sample DynamoDB stream event is: the deleting principal is the
/// DynamoDB service itself, and with `NEW_AND_OLD_IMAGES` the record
/// carries the item as it was.
pub fn ttl_removal_record(table: &str, old: &HashMap<String, AttributeValue>) -> Value {
    let keys: HashMap<String, AttributeValue> = ["pk", "sk"]
        .into_iter()
        .map(|name| (name.to_owned(), old[name].clone()))
        .collect();
    let now = chrono::Utc::now();
    json!({
        "eventID": ulid::Ulid::new().to_string().to_ascii_lowercase(),
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": crate::REGION,
        "userIdentity": {
            "type": "Service",
            "principalId": "dynamodb.amazonaws.com",
        },
        "dynamodb": {
            "ApproximateCreationDateTime": now.timestamp(),
            "Keys": image_json(&keys),
            "OldImage": image_json(old),
            "SequenceNumber": format!("{}", now.timestamp_micros()),
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": format!(
            "arn:aws:dynamodb:{}:123456789012:table/{table}/stream/2024-01-01T00:00:00.000",
            crate::REGION
        ),
    })
}

impl TestApp {
    pub async fn post_upload(&self, token: &str, body: Value) -> TestResponse {
        self.send_as("POST", "/api/v1/uploads", token, Some(body))
            .await
    }

    pub async fn complete_upload(&self, token: &str, id: &str) -> TestResponse {
        self.send_as(
            "POST",
            &format!("/api/v1/uploads/{id}/complete"),
            token,
            None,
        )
        .await
    }

    pub async fn get_upload(&self, token: &str, id: &str) -> TestResponse {
        self.get_as(&format!("/api/v1/uploads/{id}"), token).await
    }

    /// Creates an upload with `body`, asserting the 201.
    pub async fn create_upload(&self, token: &str, body: Value) -> CreatedUpload {
        let response = self.post_upload(token, body).await;
        assert_eq!(response.status, 201, "{:#}", response.body);
        let data = response.body["data"].clone();
        CreatedUpload {
            id: data["upload"]["id"].as_str().expect("upload id").to_owned(),
            upload_url: data["uploadUrl"].as_str().expect("uploadUrl").to_owned(),
            upload_headers: data["uploadHeaders"]
                .as_object()
                .expect("uploadHeaders")
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        value.as_str().expect("header value").to_owned(),
                    )
                })
                .collect(),
            data,
        }
    }

    /// Creates a PNG upload of `bytes`, PUTs them as told, and completes it.
    pub async fn uploaded(&self, token: &str, bytes: Vec<u8>) -> CreatedUpload {
        let upload = self
            .create_upload(token, upload_request(bytes.len() as u64))
            .await;
        let status = put_presigned(&upload.upload_url, &upload.upload_headers, bytes).await;
        assert_eq!(status, 200, "PUT to the presigned URL");
        let response = self.complete_upload(token, &upload.id).await;
        assert_eq!(response.status, 200, "{:#}", response.body);
        upload
    }

    /// The stored item of upload `id`, read past the API.
    pub async fn upload_item(&self, id: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(&self.storage.table_name)
            .key(
                "pk",
                AttributeValue::S(model::keys::upload_pk(&id.parse().expect("an upload id"))),
            )
            .key("sk", AttributeValue::S(model::keys::UPLOAD_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get upload item")
            .item
    }

    /// Does to upload `id` what DynamoDB's TTL does once it expires, which
    /// moto never does: reads the item, deletes it, and returns the
    /// `REMOVE` record that deletion puts on the stream, for
    /// `deliver_to_stream`.
    pub async fn remove_upload_by_ttl(&self, id: &str) -> Value {
        let old = self.upload_item(id).await.expect("the upload to remove");
        self.dynamodb
            .delete_item()
            .table_name(&self.storage.table_name)
            .key("pk", old["pk"].clone())
            .key("sk", old["sk"].clone())
            .send()
            .await
            .expect("delete the upload item");
        ttl_removal_record(&self.storage.table_name, &old)
    }

    /// Invokes the stream worker with `records` as one batch, as the event
    /// source mapping would; its answer names the records to retry.
    pub async fn deliver_to_stream(&self, records: &[Value]) -> DynamoDbEventResponse {
        let event: Event =
            serde_json::from_value(json!({ "Records": records })).expect("a DynamoDB stream event");
        platform::lambda::invoke(&self.stream, event)
            .await
            .expect("the stream worker answers")
    }

    /// The ids of the uploads that hold `user`'s slots, read past the API.
    pub async fn upload_slots(&self, user: &str) -> Vec<String> {
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.storage.table_name)
            .key(
                "pk",
                AttributeValue::S(model::keys::user_pk(&user.parse().expect("a user id"))),
            )
            .key("sk", AttributeValue::S(model::keys::UPLOAD_SLOTS_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get upload slots")
            .item;
        let mut ids = item
            .and_then(|item| item.get("uploadIds").cloned())
            .map(|ids| ids.as_ss().expect("a string set").clone())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}
