//! Post and comment items and their API views.
//!
//! Keys (see docs/DATA_MODEL.md):
//! - post:    `pk = POST#<id>`, `sk = POST`;
//!   feed: `gsi1pk = FEED#<shard>`, `gsi1sk = <id>`;
//!   by author: `gsi2pk = AUTHOR#<authorId>`, `gsi2sk = <id>`
//! - tag ref: `pk = TAG#<tag>`, `sk = POST#<id>` (one per tag of a post)
//! - comment: `pk = POST#<postId>`, `sk = COMMENT#<id>`

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use shared::{store::Item, users::PublicUser};

/// Posts are spread over this many feed partitions so that no single key
/// takes every write; reading the feed merges the shards.
pub const FEED_SHARDS: u8 = 4;

pub const POST_SK: &str = "POST";

pub fn post_pk(id: &str) -> String {
    format!("POST#{id}")
}

pub fn tag_pk(tag: &str) -> String {
    format!("TAG#{tag}")
}

pub fn comment_sk(id: &str) -> String {
    format!("COMMENT#{id}")
}

/// The feed shard of a post, from the random tail of its ULID.
pub fn feed_shard(id: &str) -> u8 {
    id.as_bytes().last().copied().unwrap_or(0) % FEED_SHARDS
}

pub fn feed_pk(shard: u8) -> String {
    format!("FEED#{shard}")
}

pub fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ])
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostItem {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub gsi2pk: String,
    pub gsi2sk: String,
    pub entity: String,
    pub id: String,
    pub author_id: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    pub comment_count: i64,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl PostItem {
    pub fn new(
        id: String,
        author_id: String,
        title: String,
        body: String,
        tags: Vec<String>,
        image_key: Option<String>,
        now: String,
    ) -> Self {
        Self {
            pk: post_pk(&id),
            sk: POST_SK.into(),
            gsi1pk: feed_pk(feed_shard(&id)),
            gsi1sk: id.clone(),
            gsi2pk: format!("AUTHOR#{author_id}"),
            gsi2sk: id.clone(),
            entity: "post".into(),
            id,
            author_id,
            title,
            body,
            tags,
            image_key,
            comment_count: 0,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

/// The reference that lists a post under one of its tags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagRefItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub post_id: String,
    pub author_id: String,
}

impl TagRefItem {
    pub fn new(tag: &str, post_id: &str, author_id: &str) -> Self {
        Self {
            pk: tag_pk(tag),
            sk: post_pk(post_id),
            entity: "post-tag".into(),
            post_id: post_id.to_owned(),
            author_id: author_id.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: String,
    pub post_id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: String,
}

/// `Post` of API.md.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Post {
    pub id: String,
    pub author_id: String,
    pub author: PublicUser,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    pub comment_count: i64,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// `Comment` of API.md.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    pub post_id: String,
    pub author_id: String,
    pub author: PublicUser,
    pub body: String,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_spread_over_every_shard() {
        let mut seen = [0u32; FEED_SHARDS as usize];
        for _ in 0..400 {
            seen[feed_shard(&ulid::Ulid::new().to_string()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{seen:?}");
    }
}
