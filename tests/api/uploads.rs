//! Uploads in docs/API.md, end to end: the API through the local
//! gateway, and the bytes straight to the presigned URLs on the moto server.
//!
//! moto does not check presigned signatures, so what S3 itself would refuse
//! (another length or type than was signed) is proved two ways: the URL is
//! shown to sign both, and objects of the wrong size or type are shown to be
//! refused by `complete`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tests::{
    CreatedUpload, TestApp, assert_envelope, get_presigned, put_presigned, upload_request,
};

const MAX_DEFAULT: u64 = 10 * 1024 * 1024;
const MAX_PENDING_DEFAULT: usize = 20;

fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn string_attr<'a>(
    item: &'a std::collections::HashMap<String, AttributeValue>,
    name: &str,
) -> &'a str {
    item[name]
        .as_s()
        .unwrap_or_else(|_| panic!("{name} is not a string"))
}

fn png_bytes(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(bytes.len())).map(|i| (i % 251) as u8));
    bytes.truncate(len);
    bytes
}

#[tokio::test]
async fn create_returns_a_signed_put_and_a_pending_upload() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let before = Utc::now();
    let response = app
        .post_upload(&user.access_token, upload_request(2048))
        .await;
    let body = assert_envelope(&response, 201, None);
    let data = &body["data"];

    let upload = data["upload"].as_object().expect("upload");
    let id = upload["id"].as_str().unwrap();
    assert!(id.parse::<ulid::Ulid>().is_ok(), "{id}");
    assert_eq!(upload["purpose"], "avatar");
    assert_eq!(upload["contentType"], "image/png");
    assert_eq!(upload["size"], 2048);
    assert_eq!(upload["status"], "pending");
    let created = DateTime::parse_from_rfc3339(upload["createdAt"].as_str().unwrap()).unwrap();
    assert!((created.with_timezone(&Utc) - before).num_seconds().abs() < 60);
    let mut keys: Vec<&str> = upload.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "contentType",
            "createdAt",
            "id",
            "purpose",
            "size",
            "status"
        ],
        "Upload carries exactly the contract's fields (no key, owner, filename or ttl)"
    );

    assert_eq!(data["uploadMethod"], "PUT");
    let url = data["uploadUrl"].as_str().unwrap();
    let expected_prefix = format!(
        "{}/{}/uploads/{}/{id}?",
        app.endpoint, app.storage.bucket_name, user.id
    );
    assert!(
        url.starts_with(&expected_prefix),
        "{url} should start with {expected_prefix}"
    );
    let signed: Vec<&str> = query_param(url, "X-Amz-SignedHeaders")
        .expect("a SigV4 query-signed URL")
        .split("%3B")
        .collect();
    assert!(signed.contains(&"content-length"), "{signed:?}");
    assert!(signed.contains(&"content-type"), "{signed:?}");
    assert_eq!(query_param(url, "X-Amz-Expires"), Some("900"));

    let headers = data["uploadHeaders"].as_object().expect("uploadHeaders");
    assert_eq!(headers["Content-Type"], "image/png");
    assert_eq!(headers["Content-Length"], "2048");
    for name in headers.keys() {
        assert!(
            signed.contains(&name.to_ascii_lowercase().as_str()),
            "{name} is handed to the client but not signed"
        );
    }

    let expires = DateTime::parse_from_rfc3339(data["expiresAt"].as_str().unwrap()).unwrap();
    assert!(data["expiresAt"].as_str().unwrap().ends_with('Z'));
    let ahead = (expires.with_timezone(&Utc) - before).num_seconds();
    assert!((880..=901).contains(&ahead), "expiresAt is {ahead}s ahead");

    let item = app.upload_item(id).await.expect("stored upload");
    assert_eq!(string_attr(&item, "ownerId"), user.id);
    assert_eq!(
        string_attr(&item, "key"),
        format!("uploads/{}/{id}", user.id)
    );
    assert_eq!(string_attr(&item, "filename"), "avatar.png");
    assert_eq!(string_attr(&item, "status"), "pending");
    let ttl: i64 = item["ttl"]
        .as_n()
        .expect("a pending upload has a ttl")
        .parse()
        .unwrap();
    let in_a_day = before.timestamp() + 24 * 3600;
    assert!(
        (in_a_day - 5..=in_a_day + 60).contains(&ttl),
        "ttl {ttl}, expected about {in_a_day}"
    );
    assert_eq!(
        app.upload_slots(&user.id).await,
        [id],
        "a pending upload holds a slot"
    );
}

#[tokio::test]
async fn every_create_rule_is_a_named_422() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;

    let response = app.post_upload(&token, json!({})).await;
    assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
    let codes = field_codes(&response.body);
    for field in ["filename", "contentType", "size", "purpose"] {
        assert!(
            codes.contains(&(field.to_owned(), "REQUIRED".to_owned())),
            "{field}: {codes:?}"
        );
    }
    assert_eq!(codes.len(), 4, "{codes:?}");

    let nulls = json!({"filename": null, "contentType": null, "size": null, "purpose": null});
    assert_eq!(
        field_codes(&app.post_upload(&token, nulls).await.body).len(),
        4
    );

    // Every failing field at once; the 415 and 413 this body would also earn
    // wait until the fields are right.
    let response = app
        .post_upload(
            &token,
            json!({"filename": "..", "contentType": "text/html", "size": 0, "purpose": "banner"}),
        )
        .await;
    assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
    assert_eq!(
        field_codes(&response.body),
        [
            ("filename".to_owned(), "INVALID_FORMAT".to_owned()),
            ("size".to_owned(), "OUT_OF_RANGE".to_owned()),
            ("purpose".to_owned(), "NOT_ALLOWED".to_owned()),
        ]
    );

    let cases = [
        ("filename", json!(""), "TOO_SHORT"),
        ("filename", json!("a".repeat(256)), "TOO_LONG"),
        ("filename", json!("photos/"), "INVALID_FORMAT"),
        ("filename", json!("cat\u{0}.png"), "INVALID_FORMAT"),
        ("filename", json!("cat\n.png"), "INVALID_FORMAT"),
        ("filename", json!("cat\t.png"), "INVALID_FORMAT"),
        ("filename", json!("photo\u{202e}gpj.exe"), "INVALID_FORMAT"),
        ("filename", json!("zero\u{200b}width.png"), "INVALID_FORMAT"),
        ("contentType", json!("  "), "REQUIRED"),
        ("size", json!(0), "OUT_OF_RANGE"),
        ("size", json!(-1), "OUT_OF_RANGE"),
        ("purpose", json!("Avatar"), "NOT_ALLOWED"),
        ("purpose", json!(""), "NOT_ALLOWED"),
    ];
    for (field, value, code) in cases {
        let mut body = upload_request(10);
        body[field] = value.clone();
        let response = app.post_upload(&token, body).await;
        assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
        assert_eq!(
            field_codes(&response.body),
            [(field.to_owned(), code.to_owned())],
            "{field} = {value}"
        );
    }
    let mut body = upload_request(10);
    body["filename"] = json!(format!("{}.png", "é".repeat(251)));
    assert_eq!(
        app.post_upload(&token, body).await.status,
        201,
        "255 characters are allowed"
    );
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_400() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    for (field, value) in [
        ("size", json!("10")),
        ("size", json!(1.5)),
        ("size", json!(true)),
        ("filename", json!(12)),
        ("purpose", json!(["avatar"])),
        ("owner", json!("someone-else")),
    ] {
        let mut body = upload_request(10);
        body[field] = value.clone();
        let response = app.post_upload(&token, body).await;
        assert_envelope(&response, 400, Some("BAD_REQUEST"));
        assert!(
            response.body["message"]
                .as_str()
                .unwrap()
                .contains("expected shape"),
            "{field} = {value}: {:#}",
            response.body
        );
    }
}

#[tokio::test]
async fn only_the_four_image_types_are_accepted() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    for refused in [
        "text/html",
        "image/svg+xml",
        "application/octet-stream",
        "image/png; charset=utf-8",
        "image/jpg",
    ] {
        let mut body = upload_request(10);
        body["contentType"] = json!(refused);
        let response = app.post_upload(&token, body).await;
        assert_envelope(&response, 415, Some("UNSUPPORTED_MEDIA_TYPE"));
        assert!(
            response.body["message"]
                .as_str()
                .unwrap()
                .contains("image/webp"),
            "the message lists what is allowed: {:#}",
            response.body
        );
    }
    for (sent, stored) in [
        ("image/jpeg", "image/jpeg"),
        ("image/png", "image/png"),
        ("image/webp", "image/webp"),
        ("image/gif", "image/gif"),
        (" IMAGE/GIF ", "image/gif"),
    ] {
        let mut body = upload_request(10);
        body["contentType"] = json!(sent);
        let upload = app.create_upload(&token, body).await;
        assert_eq!(upload.data["upload"]["contentType"], stored);
        assert_eq!(
            upload.data["uploadHeaders"]["Content-Type"], stored,
            "what is signed is what is stored"
        );
    }
    // The type is judged before the size.
    let mut body = upload_request(MAX_DEFAULT + 1);
    body["contentType"] = json!("text/plain");
    assert_envelope(
        &app.post_upload(&token, body).await,
        415,
        Some("UNSUPPORTED_MEDIA_TYPE"),
    );
}

#[tokio::test]
async fn sizes_over_the_default_limit_are_a_413() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    let at_limit = app.create_upload(&token, upload_request(MAX_DEFAULT)).await;
    assert_eq!(
        at_limit.data["uploadHeaders"]["Content-Length"],
        MAX_DEFAULT.to_string()
    );
    for over in [json!(MAX_DEFAULT + 1), json!(u64::MAX)] {
        let mut body = upload_request(1);
        body["size"] = over.clone();
        let response = app.post_upload(&token, body).await;
        assert_envelope(&response, 413, Some("PAYLOAD_TOO_LARGE"));
        assert!(
            response.body["message"]
                .as_str()
                .unwrap()
                .contains("10485760"),
            "{over}: {:#}",
            response.body
        );
    }
    // Beyond what serde_json::Value can even hold: sent as text.
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"filename":"a.png","contentType":"image/png","size":100000000000000000000000,"purpose":"avatar"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn the_limit_follows_upload_max_bytes() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_BYTES", "1024")]).await;
    let token = app.signed_up_user().await.access_token;
    app.create_upload(&token, upload_request(1024)).await;
    let response = app.post_upload(&token, upload_request(1025)).await;
    assert_envelope(&response, 413, Some("PAYLOAD_TOO_LARGE"));
    assert!(response.body["message"].as_str().unwrap().contains("1024"));
}

#[tokio::test]
async fn filenames_are_stored_without_paths_and_never_reach_the_key() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    for (sent, stored) in [
        ("../../etc/passwd", "passwd"),
        ("a/b\\c.png", "c.png"),
        ("..\\..\\windows\\system32\\x.gif", "x.gif"),
        ("/abs/path/ photo.jpg ", "photo.jpg"),
    ] {
        let mut body = upload_request(10);
        body["filename"] = json!(sent);
        let upload = app.create_upload(&user.access_token, body).await;
        let key = format!("uploads/{}/{}", user.id, upload.id);
        let item = app.upload_item(&upload.id).await.expect("stored upload");
        assert_eq!(string_attr(&item, "filename"), stored, "{sent:?}");
        assert_eq!(string_attr(&item, "key"), key, "{sent:?}");
        let path = upload.upload_url.split('?').next().unwrap();
        assert_eq!(
            path,
            format!("{}/{}/{key}", app.endpoint, app.storage.bucket_name),
            "{sent:?}"
        );
    }
    for refused in ["cat\u{0}.png", "../..", "uploads/..", "x/"] {
        let mut body = upload_request(10);
        body["filename"] = json!(refused);
        let response = app.post_upload(&user.access_token, body).await;
        assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
        assert_eq!(
            field_codes(&response.body),
            [("filename".to_owned(), "INVALID_FORMAT".to_owned())],
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn bytes_put_through_the_presigned_url_complete_the_upload() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let bytes = png_bytes(3000);
    let upload = app
        .create_upload(&user.access_token, upload_request(3000))
        .await;

    let status = put_presigned(&upload.upload_url, &upload.upload_headers, bytes.clone()).await;
    assert_eq!(status, 200);
    let response = app.complete_upload(&user.access_token, &upload.id).await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["id"], upload.id.as_str());
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["size"], 3000);
    assert_eq!(
        body["data"]["createdAt"],
        upload.data["upload"]["createdAt"]
    );
    let item = app.upload_item(&upload.id).await.expect("stored upload");
    assert_eq!(string_attr(&item, "status"), "ready");
    assert!(
        !item.contains_key("ttl"),
        "a ready upload must not expire: {item:?}"
    );

    // Completing again changes nothing and is not an error.
    let again = app.complete_upload(&user.access_token, &upload.id).await;
    let body = assert_envelope(&again, 200, None);
    assert_eq!(body["data"]["status"], "ready");

    let object = app
        .s3
        .head_object()
        .bucket(&app.storage.bucket_name)
        .key(format!("uploads/{}/{}", user.id, upload.id))
        .send()
        .await
        .expect("the object is where the key says");
    assert_eq!(object.content_length(), Some(3000));
    assert_eq!(object.content_type(), Some("image/png"));
}

#[tokio::test]
async fn the_download_url_serves_the_uploaded_bytes() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let bytes = png_bytes(1500);
    let upload = app.uploaded(&user.access_token, bytes.clone()).await;

    let response = app.get_upload(&user.access_token, &upload.id).await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["upload"]["status"], "ready");
    assert_eq!(body["data"]["upload"]["id"], upload.id.as_str());
    let url = body["data"]["downloadUrl"].as_str().expect("downloadUrl");
    assert_eq!(query_param(url, "X-Amz-Expires"), Some("900"));
    let download = get_presigned(url).await;
    assert_eq!(download.status().as_u16(), 200);
    assert_eq!(
        download.headers()["content-type"].to_str().unwrap(),
        "image/png"
    );
    assert_eq!(download.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn completing_before_the_upload_is_a_409() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    let upload = app.create_upload(&token, upload_request(10)).await;
    let response = app.complete_upload(&token, &upload.id).await;
    assert_envelope(&response, 409, Some("CONFLICT"));
    assert!(
        response.body["message"]
            .as_str()
            .unwrap()
            .contains("not been uploaded"),
        "{:#}",
        response.body
    );
    let item = app.upload_item(&upload.id).await.expect("stored upload");
    assert_eq!(string_attr(&item, "status"), "pending");
    assert!(item.contains_key("ttl"));

    // A pending upload can still be read, and says it is pending.
    let body = assert_envelope(&app.get_upload(&token, &upload.id).await, 200, None);
    assert_eq!(body["data"]["upload"]["status"], "pending");
}

#[tokio::test]
async fn a_body_of_another_length_does_not_complete() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    let upload = app.create_upload(&token, upload_request(100)).await;
    // The body's real length goes out instead of the signed one: S3 would
    // refuse this PUT outright, moto stores it, and `complete` must notice.
    let headers: Vec<(String, String)> = upload
        .upload_headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .cloned()
        .collect();
    let status = put_presigned(&upload.upload_url, &headers, png_bytes(150)).await;
    assert!(status < 300, "moto accepts the PUT ({status})");
    let response = app.complete_upload(&token, &upload.id).await;
    assert_envelope(&response, 409, Some("CONFLICT"));
    let message = response.body["message"].as_str().unwrap();
    assert!(
        message.contains("150") && message.contains("100"),
        "{message}"
    );
    let item = app.upload_item(&upload.id).await.expect("stored upload");
    assert_eq!(string_attr(&item, "status"), "pending");
}

#[tokio::test]
async fn complete_checks_the_object_size_and_type() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let upload = app
        .create_upload(&user.access_token, upload_request(64))
        .await;
    let key = format!("uploads/{}/{}", user.id, upload.id);
    let put = |content_type: &'static str, len: usize| {
        app.s3
            .put_object()
            .bucket(&app.storage.bucket_name)
            .key(&key)
            .content_type(content_type)
            .body(ByteStream::from(png_bytes(len)))
            .send()
    };

    put("image/png", 65).await.expect("put");
    let response = app.complete_upload(&user.access_token, &upload.id).await;
    assert_envelope(&response, 409, Some("CONFLICT"));
    assert!(
        response.body["message"]
            .as_str()
            .unwrap()
            .contains("65 bytes"),
        "{:#}",
        response.body
    );

    put("image/gif", 64).await.expect("put");
    let response = app.complete_upload(&user.access_token, &upload.id).await;
    assert_envelope(&response, 409, Some("CONFLICT"));
    assert!(
        response.body["message"]
            .as_str()
            .unwrap()
            .contains("image/gif"),
        "{:#}",
        response.body
    );

    put("image/png", 64).await.expect("put");
    let response = app.complete_upload(&user.access_token, &upload.id).await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["status"], "ready");
}

#[tokio::test]
async fn another_users_upload_is_a_404() {
    let app = TestApp::spawn().await;
    let owner = app.signed_up_user().await;
    let other = app.signed_up_user().await;
    let upload = app
        .create_upload(&owner.access_token, upload_request(20))
        .await;
    let status = put_presigned(&upload.upload_url, &upload.upload_headers, png_bytes(20)).await;
    assert_eq!(status, 200);

    let response = app.complete_upload(&other.access_token, &upload.id).await;
    assert_envelope(&response, 404, Some("NOT_FOUND"));
    let response = app.get_upload(&other.access_token, &upload.id).await;
    assert_envelope(&response, 404, Some("NOT_FOUND"));
    assert!(
        response.body["data"].is_null(),
        "no downloadUrl leaks: {:#}",
        response.body
    );
    let item = app.upload_item(&upload.id).await.expect("stored upload");
    assert_eq!(
        string_attr(&item, "status"),
        "pending",
        "the other user changed nothing"
    );

    // Still the owner's, and a ready upload is just as private.
    app.complete_upload(&owner.access_token, &upload.id).await;
    assert_envelope(
        &app.get_upload(&owner.access_token, &upload.id).await,
        200,
        None,
    );
    assert_envelope(
        &app.get_upload(&other.access_token, &upload.id).await,
        404,
        Some("NOT_FOUND"),
    );
    assert_envelope(
        &app.complete_upload(&other.access_token, &upload.id).await,
        404,
        Some("NOT_FOUND"),
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    let unknown = ulid::Ulid::new().to_string();
    for id in [
        unknown.as_str(),
        "not-a-ulid",
        "..%2F..%2Fetc%2Fpasswd",
        "%FF%FE",
    ] {
        assert_envelope(&app.get_upload(&token, id).await, 404, Some("NOT_FOUND"));
        assert_envelope(
            &app.complete_upload(&token, id).await,
            404,
            Some("NOT_FOUND"),
        );
    }
}

#[tokio::test]
async fn an_expired_pending_upload_is_gone() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    let upload = app.create_upload(&token, upload_request(10)).await;
    let status = put_presigned(&upload.upload_url, &upload.upload_headers, png_bytes(10)).await;
    assert_eq!(status, 200);
    // DynamoDB deletes expired items late; until it does, the API must
    // already treat them as gone.
    app.dynamodb
        .update_item()
        .table_name(&app.storage.table_name)
        .key(
            "pk",
            AttributeValue::S(model::keys::upload_pk(&upload.id.parse().unwrap())),
        )
        .key("sk", AttributeValue::S(model::keys::UPLOAD_SK.into()))
        .update_expression("SET #ttl = :past")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((Utc::now().timestamp() - 1).to_string()),
        )
        .send()
        .await
        .expect("backdate ttl");
    assert_envelope(
        &app.complete_upload(&token, &upload.id).await,
        404,
        Some("NOT_FOUND"),
    );
    assert_envelope(
        &app.get_upload(&token, &upload.id).await,
        404,
        Some("NOT_FOUND"),
    );
}

#[tokio::test]
async fn uploads_need_a_token() {
    let app = TestApp::spawn().await;
    let owner = app.signed_up_user().await;
    let upload = app
        .create_upload(&owner.access_token, upload_request(10))
        .await;
    let id = upload.id.as_str();
    let no_token = [
        app.request("POST", "/api/v1/uploads", Some(&upload_request(10)), &[])
            .await,
        app.request("POST", &format!("/api/v1/uploads/{id}/complete"), None, &[])
            .await,
        app.get(&format!("/api/v1/uploads/{id}")).await,
    ];
    for response in &no_token {
        assert_envelope(response, 401, Some("UNAUTHORIZED"));
    }
    assert_envelope(
        &app.post_upload("not-a-jwt", upload_request(10)).await,
        401,
        Some("UNAUTHORIZED"),
    );
    assert_envelope(
        &app.get_upload(&owner.refresh_token, id).await,
        401,
        Some("UNAUTHORIZED"),
    );
}

#[tokio::test]
async fn unknown_methods_on_upload_routes_are_405() {
    let app = TestApp::spawn().await;
    let token = app.signed_up_user().await.access_token;
    let id = ulid::Ulid::new().to_string();
    for (method, path) in [
        ("GET", "/api/v1/uploads".to_owned()),
        ("DELETE", format!("/api/v1/uploads/{id}")),
        ("GET", format!("/api/v1/uploads/{id}/complete")),
    ] {
        let response = app.send_as(method, &path, &token, None).await;
        assert_envelope(&response, 405, Some("METHOD_NOT_ALLOWED"));
    }
}

/// The ids of `uploads`, sorted as `upload_slots` returns them.
fn ids(uploads: &[&CreatedUpload]) -> Vec<String> {
    let mut ids: Vec<String> = uploads.iter().map(|u| u.id.clone()).collect();
    ids.sort();
    ids
}

/// Sets upload `id`'s `ttl` to a second ago: expired, not yet deleted.
async fn backdate(app: &TestApp, id: &str) {
    app.dynamodb
        .update_item()
        .table_name(&app.storage.table_name)
        .key(
            "pk",
            AttributeValue::S(model::keys::upload_pk(&id.parse().unwrap())),
        )
        .key("sk", AttributeValue::S(model::keys::UPLOAD_SK.into()))
        .update_expression("SET #ttl = :past")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((Utc::now().timestamp() - 1).to_string()),
        )
        .send()
        .await
        .expect("backdate ttl");
}

async fn object_exists(app: &TestApp, user: &str, id: &str) -> bool {
    let head = app
        .s3
        .head_object()
        .bucket(&app.storage.bucket_name)
        .key(format!("uploads/{user}/{id}"))
        .send()
        .await;
    match head {
        Ok(_) => true,
        Err(err) if err.raw_response().map(|r| r.status().as_u16()) == Some(404) => false,
        Err(err) => panic!("HeadObject: {err:?}"),
    }
}

fn assert_cap_refused(response: &tests::TestResponse, max: usize) {
    assert_envelope(response, 409, Some("CONFLICT"));
    let message = response.body["message"].as_str().unwrap();
    for says in [
        format!("{max} pending uploads"),
        "complete one".into(),
        "expire".into(),
    ] {
        assert!(message.contains(&says), "{says:?} in {message}");
    }
}

#[tokio::test]
async fn twenty_pending_uploads_are_the_most_and_completing_one_frees_a_slot() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let token = &user.access_token;
    let mut pending = Vec::new();
    for _ in 0..MAX_PENDING_DEFAULT {
        pending.push(app.create_upload(token, upload_request(10)).await);
    }
    let refused = app.post_upload(token, upload_request(10)).await;
    assert_cap_refused(&refused, MAX_PENDING_DEFAULT);
    assert_eq!(
        app.upload_slots(&user.id).await,
        ids(&pending.iter().collect::<Vec<_>>())
    );
    // Another user's slots are their own.
    let other = app.signed_up_user().await;
    app.create_upload(&other.access_token, upload_request(10))
        .await;

    let done = &pending[0];
    let status = put_presigned(&done.upload_url, &done.upload_headers, png_bytes(10)).await;
    assert_eq!(status, 200);
    assert_envelope(&app.complete_upload(token, &done.id).await, 200, None);
    // Completing again frees nothing more.
    assert_envelope(&app.complete_upload(token, &done.id).await, 200, None);
    assert_eq!(
        app.upload_slots(&user.id).await.len(),
        MAX_PENDING_DEFAULT - 1
    );
    let next = app.create_upload(token, upload_request(10)).await;
    assert_cap_refused(
        &app.post_upload(token, upload_request(10)).await,
        MAX_PENDING_DEFAULT,
    );
    let holders: Vec<&CreatedUpload> = pending[1..].iter().chain([&next]).collect();
    assert_eq!(app.upload_slots(&user.id).await, ids(&holders));
}

#[tokio::test]
async fn concurrent_requests_past_the_cap_never_exceed_it() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let requests = (0..MAX_PENDING_DEFAULT + 10)
        .map(|_| app.post_upload(&user.access_token, upload_request(10)));
    let responses = futures::future::join_all(requests).await;
    let mut created = Vec::new();
    for response in &responses {
        match response.status {
            201 => created.push(
                response.body["data"]["upload"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            _ => assert_cap_refused(response, MAX_PENDING_DEFAULT),
        }
    }
    created.sort();
    assert_eq!(
        created.len(),
        MAX_PENDING_DEFAULT,
        "every free slot is taken, no more"
    );
    assert_eq!(app.upload_slots(&user.id).await, created);
    // What is stored agrees: exactly the created uploads exist.
    let stored = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .filter_expression("entity = :upload AND ownerId = :owner")
        .expression_attribute_values(":upload", AttributeValue::S("upload".into()))
        .expression_attribute_values(":owner", AttributeValue::S(user.id.clone()))
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    let mut stored: Vec<String> = stored
        .items()
        .iter()
        .map(|item| string_attr(item, "id").to_owned())
        .collect();
    stored.sort();
    assert_eq!(stored, created);
}

#[tokio::test]
async fn the_cap_follows_upload_max_pending() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_PENDING", "2")]).await;
    let token = app.signed_up_user().await.access_token;
    app.create_upload(&token, upload_request(10)).await;
    app.create_upload(&token, upload_request(10)).await;
    assert_cap_refused(&app.post_upload(&token, upload_request(10)).await, 2);
}

#[tokio::test]
async fn a_ttl_removal_deletes_the_object_and_frees_the_slot() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_PENDING", "2")]).await;
    let user = app.signed_up_user().await;
    let token = &user.access_token;
    let abandoned = app.create_upload(token, upload_request(10)).await;
    let kept = app.create_upload(token, upload_request(10)).await;
    for upload in [&abandoned, &kept] {
        let status = put_presigned(&upload.upload_url, &upload.upload_headers, png_bytes(10)).await;
        assert_eq!(status, 200);
    }
    assert_cap_refused(&app.post_upload(token, upload_request(10)).await, 2);

    let record = app.remove_upload_by_ttl(&abandoned.id).await;
    let answer = app.deliver_to_stream(&[record]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert!(
        !object_exists(&app, &user.id, &abandoned.id).await,
        "the abandoned object is deleted"
    );
    assert!(
        object_exists(&app, &user.id, &kept.id).await,
        "only that one"
    );
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&kept]));
    app.create_upload(token, upload_request(10)).await;
}

#[tokio::test]
async fn a_completed_uploads_removal_keeps_its_object() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let done = app.uploaded(&user.access_token, png_bytes(10)).await;
    let pending = app
        .create_upload(&user.access_token, upload_request(10))
        .await;

    let record = app.remove_upload_by_ttl(&done.id).await;
    let answer = app.deliver_to_stream(&[record]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert!(
        object_exists(&app, &user.id, &done.id).await,
        "a ready upload's object may be an avatar or a post image"
    );
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&pending]));
}

#[tokio::test]
async fn removing_a_pending_upload_never_put_succeeds_and_redelivery_frees_nothing_more() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_PENDING", "2")]).await;
    let user = app.signed_up_user().await;
    let token = &user.access_token;
    let never_put = app.create_upload(token, upload_request(10)).await;
    let other = app.create_upload(token, upload_request(10)).await;

    let record = app.remove_upload_by_ttl(&never_put.id).await;
    let answer = app.deliver_to_stream(std::slice::from_ref(&record)).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&other]));

    // Delivery is at least once: the same record again, after the slot was
    // taken by a new upload, must not free that one.
    let new = app.create_upload(token, upload_request(10)).await;
    let answer = app.deliver_to_stream(&[record.clone(), record]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&other, &new]));
    assert_cap_refused(&app.post_upload(token, upload_request(10)).await, 2);
}

#[tokio::test]
async fn an_expired_upload_frees_its_slot_before_ttl_deletes_it() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_PENDING", "2")]).await;
    let user = app.signed_up_user().await;
    let token = &user.access_token;
    let expired = app.create_upload(token, upload_request(10)).await;
    let live = app.create_upload(token, upload_request(10)).await;
    backdate(&app, &expired.id).await;

    let new = app.create_upload(token, upload_request(10)).await;
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&live, &new]));
    assert_cap_refused(&app.post_upload(token, upload_request(10)).await, 2);
    // When TTL deletion gets to it, its removal frees nothing more.
    let record = app.remove_upload_by_ttl(&expired.id).await;
    let answer = app.deliver_to_stream(&[record]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&live, &new]));
}

#[tokio::test]
async fn uploads_from_before_the_cap_hold_no_slot() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_PENDING", "2")]).await;
    let user = app.signed_up_user().await;
    let token = &user.access_token;
    let old = app.create_upload(token, upload_request(10)).await;
    let another_old = app.create_upload(token, upload_request(10)).await;
    // As stored before slots existed: the uploads, and no slots item.
    app.dynamodb
        .delete_item()
        .table_name(&app.storage.table_name)
        .key(
            "pk",
            AttributeValue::S(model::keys::user_pk(&user.id.parse().unwrap())),
        )
        .key("sk", AttributeValue::S(model::keys::UPLOAD_SLOTS_SK.into()))
        .send()
        .await
        .expect("delete the slots item");

    let first = app.create_upload(token, upload_request(10)).await;
    let second = app.create_upload(token, upload_request(10)).await;
    assert_cap_refused(&app.post_upload(token, upload_request(10)).await, 2);
    // Completing or removing an old upload neither fails nor frees a slot
    // it never held.
    let status = put_presigned(&old.upload_url, &old.upload_headers, png_bytes(10)).await;
    assert_eq!(status, 200);
    assert_envelope(&app.complete_upload(token, &old.id).await, 200, None);
    let record = app.remove_upload_by_ttl(&another_old.id).await;
    let answer = app.deliver_to_stream(&[record]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(app.upload_slots(&user.id).await, ids(&[&first, &second]));
}
