//! Client-like helpers for the Uploads routes: ask for an upload, send the
//! bytes to the presigned URL the way a browser would, complete it.

use std::collections::HashMap;

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
}
