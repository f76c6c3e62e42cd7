//! Every key format, entity name and index name of the single table, once.
//! docs/DATA_MODEL.md draws the same layout for people; no other file of
//! the code spells a key prefix.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | user | `USER#<id>` | `PROFILE` (`gsi1`: `USERS` / `<id>`) |
//! | email claim | `EMAIL#<email>` | `EMAIL` |
//! | session | `USER#<id>` | `SESSION#<sid>` |
//! | one-time token | `TOKEN#<sha256>` | `VERIFY` or `RESET` |
//! | post | `POST#<id>` | `POST` (`gsi1`: `FEED#<shard>` / `<id>`, `gsi2`: `AUTHOR#<uid>` / `<id>`) |
//! | tag reference | `TAG#<tag>` | `POST#<id>` |
//! | comment | `POST#<postId>` | `COMMENT#<id>` |
//! | notification | `USER#<uid>` | `NOTIF#<id>` (`gsi2`, unread only: `UNREAD#<uid>` / `<id>`) |
//! | upload | `UPLOAD#<id>` | `UPLOAD` |
//! | a user's upload slots | `USER#<id>` | `UPLOADS` |
//! | idempotency record | `IDEMP#<uid>#<scope>#<key>` | `IDEMP` |
//! | rate-limit window | `RATE#<key>` | `W#<secs>#<index>` |
//! | connection | `CONN#<id>` | `META`, `ROOM#<room>`, `DASHBOARD` |
//! | presence | `PRESENCE` | `CONN#<id>` |
//! | a user's connection | `USER#<uid>` | `CONN#<id>` |
//! | room member | `ROOM#<room>` | `CONN#<id>` |
//! | dashboard subscriber | `DASHBOARD` | `CONN#<id>` |
//! | active-admin counter | `ADMINS` | `COUNT` |
//! | migration record | `MIGRATION#<version>` | `MIGRATION` |
//! | outbox email | `OUTBOX#<id>` | `OUTBOX` (`gsi1`, while unsent: `OUTBOXDUE#<shard>` / `<dueMs>#<id>`) |
//! | comment email throttle | `USER#<uid>` | `MAILED#<postId>`, `MAILDAY#<day>` |

use std::fmt::Display;

use crate::domain::{
    CommentId, ConnectionId, Email, NotificationId, PostId, Room, SessionId, Tag, UploadId, UserId,
};

/// The attribute names of the table's and the indexes' keys.
pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI2PK: &str = "gsi2pk";
pub const GSI2SK: &str = "gsi2sk";
/// The attribute DynamoDB's TTL deletes by.
pub const TTL: &str = "ttl";
/// The attribute naming an item's kind, which the stream filters read.
pub const ENTITY: &str = "entity";

/// The global secondary indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The feed shards and the users list.
    Gsi1,
    /// Posts by author and unread notifications (sparse).
    Gsi2,
}

impl Index {
    /// The unsettled outbox emails, by due time (`outbox_due_pk`): shared
    /// with the users list and the feed, with a prefix of its own.
    pub const OUTBOX: Index = Index::Gsi1;

    pub const ALL: [Index; 2] = [Index::Gsi1, Index::Gsi2];

    pub const fn name(self) -> &'static str {
        match self {
            Index::Gsi1 => "gsi1",
            Index::Gsi2 => "gsi2",
        }
    }

    /// The attribute of the index's partition key.
    pub const fn partition_key(self) -> &'static str {
        match self {
            Index::Gsi1 => GSI1PK,
            Index::Gsi2 => GSI2PK,
        }
    }

    /// The key attributes of the index, with the table's (what an
    /// `ExclusiveStartKey` on it needs).
    pub const fn page_key(self) -> &'static [&'static str] {
        match self {
            Index::Gsi1 => &[PK, SK, GSI1PK, GSI1SK],
            Index::Gsi2 => &[PK, SK, GSI2PK, GSI2SK],
        }
    }
}

/// The table's own key attributes, for pages of a table query.
pub const TABLE_PAGE_KEY: &[&str] = &[PK, SK];

/// The `entity` of every item type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    User,
    Email,
    Session,
    Token,
    Post,
    PostTag,
    Comment,
    Notification,
    Upload,
    UploadSlots,
    Idempotency,
    Connection,
    Presence,
    UserConnection,
    RoomMember,
    ConnectionRoom,
    DashboardSubscriber,
    ConnectionDashboard,
    AdminCount,
    Outbox,
    EmailThrottle,
}

impl Entity {
    pub const ALL: [Entity; 21] = [
        Entity::User,
        Entity::Email,
        Entity::Session,
        Entity::Token,
        Entity::Post,
        Entity::PostTag,
        Entity::Comment,
        Entity::Notification,
        Entity::Upload,
        Entity::UploadSlots,
        Entity::Idempotency,
        Entity::Connection,
        Entity::Presence,
        Entity::UserConnection,
        Entity::RoomMember,
        Entity::ConnectionRoom,
        Entity::DashboardSubscriber,
        Entity::ConnectionDashboard,
        Entity::AdminCount,
        Entity::Outbox,
        Entity::EmailThrottle,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Email => "email",
            Entity::Session => "session",
            Entity::Token => "token",
            Entity::Post => "post",
            Entity::PostTag => "post-tag",
            Entity::Comment => "comment",
            Entity::Notification => "notification",
            Entity::Upload => "upload",
            Entity::UploadSlots => "upload-slots",
            Entity::Idempotency => "idempotency",
            Entity::Connection => "connection",
            Entity::Presence => "presence",
            Entity::UserConnection => "user-connection",
            Entity::RoomMember => "room-member",
            Entity::ConnectionRoom => "connection-room",
            Entity::DashboardSubscriber => "dashboard-subscriber",
            Entity::ConnectionDashboard => "connection-dashboard",
            Entity::AdminCount => "admin-count",
            Entity::Outbox => "outbox",
            Entity::EmailThrottle => "email-throttle",
        }
    }

    pub fn parse(raw: &str) -> Option<Entity> {
        Entity::ALL
            .into_iter()
            .find(|entity| entity.as_str() == raw)
    }

    /// What the stream worker reacts to, by event: the template's
    /// `FilterCriteria` must let exactly these through (a test checks).
    pub const STREAMED_INSERTS: [Entity; 3] =
        [Entity::Notification, Entity::Presence, Entity::Outbox];
    /// Changes that may end sessions: a session revoked, a user whose
    /// sessions were cut (docs/API.md §7.5).
    pub const STREAMED_MODIFIES: [Entity; 2] = [Entity::User, Entity::Session];
    pub const STREAMED_REMOVES: [Entity; 3] = [Entity::Post, Entity::Upload, Entity::Presence];
}

const USER: &str = "USER#";
const EMAIL: &str = "EMAIL#";
const SESSION: &str = "SESSION#";
const TOKEN: &str = "TOKEN#";
const POST: &str = "POST#";
const TAG: &str = "TAG#";
const COMMENT: &str = "COMMENT#";
const FEED: &str = "FEED#";
const AUTHOR: &str = "AUTHOR#";
const NOTIFICATION: &str = "NOTIF#";
const UNREAD: &str = "UNREAD#";
const UPLOAD: &str = "UPLOAD#";
const IDEMPOTENCY: &str = "IDEMP#";
const RATE: &str = "RATE#";
const WINDOW: &str = "W#";
const CONNECTION: &str = "CONN#";
const ROOM: &str = "ROOM#";
const MIGRATION: &str = "MIGRATION#";
const OUTBOX: &str = "OUTBOX#";
const OUTBOX_DUE: &str = "OUTBOXDUE#";
const MAILED: &str = "MAILED#";
const MAIL_DAY: &str = "MAILDAY#";

fn prefixed(prefix: &str, id: impl Display) -> String {
    format!("{prefix}{id}")
}

pub const PROFILE_SK: &str = "PROFILE";
pub const EMAIL_SK: &str = "EMAIL";
pub const POST_SK: &str = "POST";
pub const UPLOAD_SK: &str = "UPLOAD";
/// A user's upload slots: the ids of their pending uploads, under their
/// `USER#<id>` partition.
pub const UPLOAD_SLOTS_SK: &str = "UPLOADS";
pub const IDEMPOTENCY_SK: &str = "IDEMP";
pub const META_SK: &str = "META";
pub const VERIFY_SK: &str = "VERIFY";
pub const RESET_SK: &str = "RESET";
/// The one partition of the users list on `gsi1`.
pub const USERS_INDEX_PK: &str = "USERS";
pub const PRESENCE_PK: &str = "PRESENCE";
pub const DASHBOARD_PK: &str = "DASHBOARD";
/// The connection's own marker that it watches the dashboard.
pub const DASHBOARD_SK: &str = "DASHBOARD";
/// The one item counting the active admins (`users::Users::admin_update`
/// keeps it true).
pub const ADMIN_COUNT_PK: &str = "ADMINS";
pub const ADMIN_COUNT_SK: &str = "COUNT";
/// The sort key of every migration record (`migration_pk`).
pub const MIGRATION_SK: &str = "MIGRATION";

pub fn user_pk(id: &UserId) -> String {
    prefixed(USER, id)
}

pub fn email_pk(email: &Email) -> String {
    prefixed(EMAIL, email)
}

pub fn session_sk(sid: &SessionId) -> String {
    prefixed(SESSION, sid)
}

/// `hash` is the hex SHA-256 of the token: the token itself is never kept.
pub fn token_pk(hash: &str) -> String {
    prefixed(TOKEN, hash)
}

pub fn post_pk(id: &PostId) -> String {
    prefixed(POST, id)
}

/// A tag reference sorts under its post's key.
pub fn tag_ref_sk(id: &PostId) -> String {
    post_pk(id)
}

pub fn tag_pk(tag: &Tag) -> String {
    prefixed(TAG, tag)
}

pub fn comment_sk(id: &CommentId) -> String {
    prefixed(COMMENT, id)
}

/// The sort-key prefix shared by a post's comments.
pub const COMMENT_SK_PREFIX: &str = COMMENT;

pub fn feed_pk(shard: u8) -> String {
    prefixed(FEED, shard)
}

pub fn author_pk(id: &UserId) -> String {
    prefixed(AUTHOR, id)
}

pub fn notification_sk(id: &NotificationId) -> String {
    prefixed(NOTIFICATION, id)
}

/// The sort-key prefix shared by a user's notifications.
pub const NOTIFICATION_SK_PREFIX: &str = NOTIFICATION;

pub fn unread_pk(user: &UserId) -> String {
    prefixed(UNREAD, user)
}

pub fn upload_pk(id: &UploadId) -> String {
    prefixed(UPLOAD, id)
}

pub fn idempotency_pk(user: &UserId, scope: &str, key: &str) -> String {
    format!("{IDEMPOTENCY}{user}#{scope}#{key}")
}

pub fn rate_pk(key: &str) -> String {
    prefixed(RATE, key)
}

pub fn rate_window_sk(length_secs: u64, index: u64) -> String {
    format!("{WINDOW}{length_secs}#{index}")
}

pub fn connection_pk(id: &ConnectionId) -> String {
    prefixed(CONNECTION, id)
}

/// A connection as the sort key of presence, room, user and dashboard items.
pub fn connection_sk(id: &ConnectionId) -> String {
    prefixed(CONNECTION, id)
}

/// The sort-key prefix of the items that point at a connection.
pub const CONNECTION_SK_PREFIX: &str = CONNECTION;

pub fn room_pk(room: &Room) -> String {
    prefixed(ROOM, room)
}

/// The connection's own record of a room it joined.
pub fn room_sk(room: &Room) -> String {
    prefixed(ROOM, room)
}

/// The record of item migration `version` (infra's `make migrate`): one
/// partition per version, read by key, never listed.
pub fn migration_pk(version: u32) -> String {
    prefixed(MIGRATION, version)
}

/// The sort key of every outbox email (`outbox_pk`).
pub const OUTBOX_SK: &str = "OUTBOX";

/// An email waiting to be sent, sent, or given up on: one partition per
/// email, read by key.
pub fn outbox_pk(id: impl Display) -> String {
    prefixed(OUTBOX, id)
}

/// The index partitions (`Index::OUTBOX`) of the emails not yet settled,
/// spread over `shard`s so their index writes stay off one key.
pub fn outbox_due_pk(shard: u8) -> String {
    prefixed(OUTBOX_DUE, shard)
}

/// The index sort key of an unsettled email: when it is due (epoch ms,
/// zero-padded so the string order is the time order), then its id.
pub fn outbox_due_sk(due_ms: i64, id: impl Display) -> String {
    format!("{due_ms:013}#{id}")
}

/// The greatest index sort key of an email due at or before `now_ms`: `~`
/// sorts after every character of an id.
pub fn outbox_due_until(now_ms: i64) -> String {
    format!("{now_ms:013}#~")
}

/// A recipient's last comment email about one post, in their partition:
/// the per-post throttle.
pub fn mailed_post_sk(post: &PostId) -> String {
    prefixed(MAILED, post)
}

/// A recipient's count of comment emails on day `day` (days since the
/// epoch, UTC), in their partition: the daily throttle.
pub fn mail_day_sk(day: i64) -> String {
    prefixed(MAIL_DAY, day)
}

/// The room a connection's `ROOM#<room>` sort key names.
pub fn room_of_sk(sk: &str) -> Option<Room> {
    sk.strip_prefix(ROOM).and_then(|raw| Room::parse(raw).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let user: UserId = "01J0000000000000000000000A".parse().unwrap();
        let post: PostId = "01J0000000000000000000000B".parse().unwrap();
        assert_eq!(user_pk(&user), "USER#01J0000000000000000000000A");
        assert_eq!(post_pk(&post), "POST#01J0000000000000000000000B");
        assert_eq!(tag_ref_sk(&post), post_pk(&post));
        assert_eq!(feed_pk(3), "FEED#3");
        assert_eq!(author_pk(&user), "AUTHOR#01J0000000000000000000000A");
        assert_eq!(rate_window_sk(60, 7), "W#60#7");
        assert_eq!(
            idempotency_pk(&user, "create-post", "k"),
            "IDEMP#01J0000000000000000000000A#create-post#k"
        );
        let room = Room::parse("general").unwrap();
        assert_eq!(room_of_sk(&room_sk(&room)), Some(room));
        assert_eq!(room_of_sk("META"), None);
    }

    #[test]
    fn every_key_builder_spells_its_documented_format() {
        let id = "01J0000000000000000000000A";
        let email = Email::parse("email", "a@b.test".into()).unwrap();
        let tag = Tag::parse("tag", "rust").unwrap();
        let room = Room::parse("general").unwrap();
        let connection = ConnectionId::parse("Abc=").unwrap();
        let cases = [
            (email_pk(&email), "EMAIL#a@b.test".to_owned()),
            (session_sk(&id.parse().unwrap()), format!("SESSION#{id}")),
            (token_pk("ab"), "TOKEN#ab".to_owned()),
            (tag_pk(&tag), "TAG#rust".to_owned()),
            (comment_sk(&id.parse().unwrap()), format!("COMMENT#{id}")),
            (notification_sk(&id.parse().unwrap()), format!("NOTIF#{id}")),
            (unread_pk(&id.parse().unwrap()), format!("UNREAD#{id}")),
            (upload_pk(&id.parse().unwrap()), format!("UPLOAD#{id}")),
            (rate_pk("ip:1"), "RATE#ip:1".to_owned()),
            (connection_pk(&connection), "CONN#Abc=".to_owned()),
            (connection_sk(&connection), "CONN#Abc=".to_owned()),
            (room_pk(&room), "ROOM#general".to_owned()),
            (room_sk(&room), "ROOM#general".to_owned()),
            (migration_pk(1), "MIGRATION#1".to_owned()),
            (migration_pk(42), "MIGRATION#42".to_owned()),
            (outbox_pk(id), format!("OUTBOX#{id}")),
            (outbox_due_pk(3), "OUTBOXDUE#3".to_owned()),
            (outbox_due_sk(42, id), format!("0000000000042#{id}")),
            (mailed_post_sk(&id.parse().unwrap()), format!("MAILED#{id}")),
            (mail_day_sk(20000), "MAILDAY#20000".to_owned()),
        ];
        for (built, expected) in cases {
            assert_eq!(built, expected);
        }
        assert!(comment_sk(&id.parse().unwrap()).starts_with(COMMENT_SK_PREFIX));
        assert!(notification_sk(&id.parse().unwrap()).starts_with(NOTIFICATION_SK_PREFIX));
        assert!(connection_sk(&connection).starts_with(CONNECTION_SK_PREFIX));
        assert_eq!(MIGRATION_SK, "MIGRATION");
        // Every email due by an instant sorts at or before its bound, and
        // one due a millisecond later after it.
        assert!(outbox_due_sk(1_700_000_000_000, id) <= outbox_due_until(1_700_000_000_000));
        assert!(outbox_due_sk(1_700_000_000_001, id) > outbox_due_until(1_700_000_000_000));
    }

    #[test]
    fn indexes_name_themselves_and_their_page_keys() {
        assert_eq!(Index::Gsi1.name(), "gsi1");
        assert_eq!(Index::Gsi2.name(), "gsi2");
        assert_eq!(Index::Gsi1.page_key(), [PK, SK, GSI1PK, GSI1SK]);
        assert_eq!(Index::Gsi2.page_key(), [PK, SK, GSI2PK, GSI2SK]);
        assert_eq!(TABLE_PAGE_KEY, [PK, SK]);
    }

    #[test]
    fn entity_names_are_unique_and_parse_back() {
        let mut names: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Entity::ALL.len());
        for entity in Entity::ALL {
            assert_eq!(Entity::parse(entity.as_str()), Some(entity));
        }
        assert_eq!(Entity::parse("nope"), None);
    }
}
