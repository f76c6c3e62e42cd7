//! Items as the table already holds them keep reading: each sample below is
//! an item exactly as the code before the typed model wrote it (plain
//! strings for ids, names, tags and titles), and it must still read into
//! today's types, or every such item would become a 500 on read.

use model::{
    connections::ConnectionItem,
    domain::{Role, UserStatus, Version},
    idempotency::IdempotencyItem,
    keys::Entity,
    notifications::{NotificationItem, NotificationType},
    posts::{CommentItem, PostItem, TagRefItem},
    sessions::{SessionItem, TokenItem},
    table::{Item, from_item, to_item},
    uploads::{Purpose, UploadItem, UploadStatus},
    users::{EmailItem, UserItem},
};
use serde_json::{Value, json};

const USER: &str = "01JCZ5G4R3ZC8Y2Q1M5N6P7Q8R";
const OTHER: &str = "01JCZ5G4R3ZC8Y2Q1M5N6P7Q8S";
const POST: &str = "01JCZ5H0000000000000000000";
const COMMENT: &str = "01JCZ5H0000000000000000001";
const SID: &str = "01JCZ5H0000000000000000002";

fn stored(value: Value) -> Item {
    serde_dynamo::to_item(value).expect("a sample is an item")
}

#[test]
fn users_sessions_and_claims_still_read() {
    let user: UserItem = from_item(stored(json!({
        "pk": format!("USER#{USER}"), "sk": "PROFILE", "gsi1pk": "USERS", "gsi1sk": USER,
        "entity": "user", "id": USER, "name": "Al Ice", "email": "al.ice+x@example.com",
        "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "role": "admin", "status": "suspended", "emailVerified": true,
        "avatarKey": format!("uploads/{USER}/{POST}"), "lastLoginAt": "2026-01-01T00:00:00.000Z",
        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
        "sessionsValidAfter": 1_767_225_600_000_i64
    })))
    .unwrap();
    assert_eq!(user.id.to_string(), USER);
    assert_eq!(user.email.as_str(), "al.ice+x@example.com");
    assert_eq!(
        (user.role, user.status),
        (Role::Admin, UserStatus::Suspended)
    );
    // Written before `sessionsValidAfter` existed.
    let mut older = to_item(&user).unwrap();
    older.remove("sessionsValidAfter");
    assert_eq!(
        from_item::<UserItem>(older).unwrap().sessions_valid_after,
        0
    );

    let claim: EmailItem = from_item(stored(json!({
        "pk": "EMAIL#al.ice+x@example.com", "sk": "EMAIL", "entity": "email", "userId": USER
    })))
    .unwrap();
    assert_eq!(claim.user_id, user.id);

    let session: SessionItem = from_item(stored(json!({
        "pk": format!("USER#{USER}"), "sk": format!("SESSION#{SID}"), "entity": "session",
        "sid": SID, "userId": USER, "refreshHash": "ab", "revoked": false,
        "createdAtMs": 1_767_225_600_000_i64, "ttl": 1_769_817_600_i64, "ip": "127.0.0.1"
    })))
    .unwrap();
    assert_eq!(session.sid.to_string(), SID);
    assert!(session.user_agent.is_none());

    let token: TokenItem = from_item(stored(json!({
        "pk": "TOKEN#ab", "sk": "RESET", "entity": "token", "userId": USER,
        "expiresAt": 1_769_817_600_i64, "ttl": 1_769_817_600_i64
    })))
    .unwrap();
    assert_eq!(token.user_id, user.id);
}

#[test]
fn posts_comments_and_tags_still_read() {
    let post: PostItem = from_item(stored(json!({
        "pk": format!("POST#{POST}"), "sk": "POST", "gsi1pk": "FEED#2", "gsi1sk": POST,
        "gsi2pk": format!("AUTHOR#{USER}"), "gsi2sk": POST, "entity": "post", "id": POST,
        "authorId": USER, "title": "Hello", "body": "Body\nwith lines", "tags": ["rust", "web-dev"],
        "imageKey": format!("uploads/{USER}/{COMMENT}"), "commentCount": 3, "version": 7,
        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-02T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(post.version, Version::parse("version", 7).unwrap());
    assert_eq!(post.tags.len(), 2);
    // Rewritten, it is the same item.
    let round = from_item::<PostItem>(to_item(&post).unwrap()).unwrap();
    assert_eq!(round.title, post.title);

    let tag: TagRefItem = from_item(stored(json!({
        "pk": "TAG#rust", "sk": format!("POST#{POST}"), "entity": "post-tag",
        "postId": POST, "authorId": USER
    })))
    .unwrap();
    assert_eq!(tag.post_id, post.id);

    let comment: CommentItem = from_item(stored(json!({
        "pk": format!("POST#{POST}"), "sk": format!("COMMENT#{COMMENT}"), "entity": "comment",
        "id": COMMENT, "postId": POST, "authorId": OTHER, "body": "Nice",
        "createdAt": "2026-01-01T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(comment.body.as_str(), "Nice");
}

#[test]
fn notifications_uploads_records_and_connections_still_read() {
    let notification: NotificationItem = from_item(stored(json!({
        "pk": format!("USER#{USER}"), "sk": format!("NOTIF#{COMMENT}"), "entity": "notification",
        "id": COMMENT, "userId": USER, "type": "comment", "title": "New comment on your post",
        "body": "b", "data": {"postId": POST, "actorName": "Bob"}, "read": false,
        "createdAt": "2026-01-01T00:00:00.000Z", "gsi2pk": format!("UNREAD#{USER}"), "gsi2sk": COMMENT
    })))
    .unwrap();
    assert_eq!(notification.kind, NotificationType::Comment);
    // A read one has lost its index keys.
    let mut read = to_item(&notification).unwrap();
    read.remove("gsi2pk");
    read.remove("gsi2sk");
    assert!(
        from_item::<NotificationItem>(read)
            .unwrap()
            .gsi2pk
            .is_none()
    );

    let upload: UploadItem = from_item(stored(json!({
        "pk": format!("UPLOAD#{POST}"), "sk": "UPLOAD", "entity": "upload", "id": POST,
        "ownerId": USER, "purpose": "post-image", "contentType": "image/png", "size": 1024,
        "status": "ready", "key": format!("uploads/{USER}/{POST}"), "filename": "a.png",
        "createdAt": "2026-01-01T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(
        (upload.purpose, upload.status, upload.ttl),
        (Purpose::PostImage, UploadStatus::Ready, None)
    );

    let record: IdempotencyItem = from_item(stored(json!({
        "pk": format!("IDEMP#{USER}#create-post#key-1"), "sk": "IDEMP", "entity": "idempotency",
        "requestHash": "00", "response": "{\"id\":\"x\"}", "ttl": 1_769_817_600_i64
    })))
    .unwrap();
    assert_eq!(record.response, "{\"id\":\"x\"}");

    let connection: ConnectionItem = from_item(stored(json!({
        "pk": "CONN#Abc123=", "sk": "META", "entity": "connection", "connectionId": "Abc123=",
        "userId": USER, "userName": "Al Ice", "userCreatedAt": "2026-01-01T00:00:00.000Z",
        "connectedAt": "2026-01-01T00:00:00.000Z", "ttl": 1_769_817_600_i64
    })))
    .unwrap();
    assert_eq!(connection.connection_id.as_str(), "Abc123=");
    assert_eq!(connection.user().id, USER);
}

#[test]
fn every_entity_written_before_is_still_named() {
    for name in [
        "user",
        "email",
        "session",
        "token",
        "post",
        "post-tag",
        "comment",
        "notification",
        "upload",
        "idempotency",
        "connection",
        "presence",
        "user-connection",
        "room-member",
        "connection-room",
        "dashboard-subscriber",
        "connection-dashboard",
    ] {
        assert!(Entity::parse(name).is_some(), "{name}");
    }
}

/// Texts written before the text rules of `domain::Charset` refused tabs,
/// line breaks, bidi overrides and zero-width characters in names and
/// titles, and control characters in bodies: reading checks nothing, so
/// such items load and show as stored instead of failing every read.
#[test]
fn texts_written_before_the_text_rules_still_read() {
    let name = "Al\tIce\u{202E}\u{200B}";
    let user: UserItem = from_item(stored(json!({
        "pk": format!("USER#{USER}"), "sk": "PROFILE", "gsi1pk": "USERS", "gsi1sk": USER,
        "entity": "user", "id": USER, "name": name, "email": "al@example.com",
        "passwordHash": "h", "role": "user", "status": "active", "emailVerified": false,
        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(user.name.as_str(), name);
    assert_eq!(user.to_public(None).name, name);

    let post: PostItem = from_item(stored(json!({
        "pk": format!("POST#{POST}"), "sk": "POST", "gsi1pk": "FEED#2", "gsi1sk": POST,
        "gsi2pk": format!("AUTHOR#{USER}"), "gsi2sk": POST, "entity": "post", "id": POST,
        "authorId": USER, "title": "Tab\there\nand \u{2066}isolate", "body": "bell\u{7} \u{202E}",
        "tags": [], "commentCount": 0, "version": 1,
        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(post.title.as_str(), "Tab\there\nand \u{2066}isolate");
    assert_eq!(post.body.as_str(), "bell\u{7} \u{202E}");

    let comment: CommentItem = from_item(stored(json!({
        "pk": format!("POST#{POST}"), "sk": format!("COMMENT#{COMMENT}"), "entity": "comment",
        "id": COMMENT, "postId": POST, "authorId": OTHER, "body": "\u{0}nul\u{85}",
        "createdAt": "2026-01-01T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(comment.body.as_str(), "\u{0}nul\u{85}");

    let notification: NotificationItem = from_item(stored(json!({
        "pk": format!("USER#{USER}"), "sk": format!("NOTIF#{COMMENT}"), "entity": "notification",
        "id": COMMENT, "userId": USER, "type": "comment", "title": "New comment on your post",
        "body": format!("{name} commented"), "data": {"postId": POST, "actorName": name},
        "read": true, "createdAt": "2026-01-01T00:00:00.000Z"
    })))
    .unwrap();
    assert_eq!(notification.to_response().data["actorName"], name);
}
