//! Posts and comments: the post, tag-reference and comment items, their
//! API views, and the store of the posts function (`Posts`).
//!
//! The feed is spread over `FEED_SHARDS` partitions of `gsi1` so that no one
//! key takes every new post; a page reads every shard in parallel and
//! merges them. Listing by author uses `gsi2`, by tag the tag's reference
//! items. Comments live in their post's partition, and a comment, its
//! post's counter, the notification it causes and its idempotency record
//! are one transaction, whose failure is named from its cancellation
//! reasons (`Condition::PostGone`, `Condition::Replayed`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use futures::{TryFutureExt, future::try_join_all};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{CommentBody, CommentId, PostBody, PostId, Tag, Title, UserId, Version},
    error::{Condition, StoreError, dynamo},
    idempotency::IdempotencyItem,
    keys::{
        COMMENT_SK_PREFIX, Entity, GSI1PK, GSI1SK, Index, PK, POST_SK, SK, TABLE_PAGE_KEY,
        author_pk, comment_sk, feed_pk, post_pk, tag_pk, tag_ref_sk,
    },
    notifications::NotificationItem,
    table::{
        self, Item, Page, Partition, Table, from_item, key, to_item, transact_delete, transact_put,
        transact_update, transact_write,
    },
    users::{PublicUser, UserItem, Users},
};

/// Posts are spread over this many feed partitions so that no single key
/// takes every write; reading the feed merges the shards.
pub const FEED_SHARDS: u8 = 4;

/// The feed shard of a post, from the random tail of its ULID.
pub fn feed_shard(id: &PostId) -> u8 {
    id.last_byte() % FEED_SHARDS
}

fn post_key(id: &PostId) -> Item {
    key(post_pk(id), POST_SK.into())
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
    pub id: PostId,
    pub author_id: UserId,
    pub title: Title,
    pub body: PostBody,
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    pub comment_count: i64,
    pub version: Version,
    pub created_at: String,
    pub updated_at: String,
}

impl PostItem {
    pub fn new(
        id: PostId,
        author_id: UserId,
        title: Title,
        body: PostBody,
        tags: Vec<Tag>,
        image_key: Option<String>,
        now: String,
    ) -> Self {
        Self {
            pk: post_pk(&id),
            sk: POST_SK.into(),
            gsi1pk: feed_pk(feed_shard(&id)),
            gsi1sk: id.to_string(),
            gsi2pk: author_pk(&author_id),
            gsi2sk: id.to_string(),
            entity: Entity::Post.as_str().into(),
            id,
            author_id,
            title,
            body,
            tags,
            image_key,
            comment_count: 0,
            version: Version::FIRST,
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
    pub post_id: PostId,
    pub author_id: UserId,
}

impl TagRefItem {
    pub fn new(tag: &Tag, post_id: &PostId, author_id: &UserId) -> Self {
        Self {
            pk: tag_pk(tag),
            sk: tag_ref_sk(post_id),
            entity: Entity::PostTag.as_str().into(),
            post_id: *post_id,
            author_id: *author_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: CommentId,
    pub post_id: PostId,
    pub author_id: UserId,
    pub body: CommentBody,
    pub created_at: String,
}

impl CommentItem {
    pub fn new(post_id: &PostId, author_id: &UserId, body: CommentBody, now: String) -> Self {
        let id = CommentId::new();
        Self {
            pk: post_pk(post_id),
            sk: comment_sk(&id),
            entity: Entity::Comment.as_str().into(),
            id,
            post_id: *post_id,
            author_id: *author_id,
            body,
            created_at: now,
        }
    }
}

/// `Post` of docs/API.md.
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
    #[schema(nullable = false)]
    pub image_url: Option<String>,
    pub comment_count: i64,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// `Comment` of docs/API.md.
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

/// What a new comment brings along in its transaction.
#[derive(Debug, Default)]
pub struct CommentExtras<'a> {
    /// For the post's author, unless they commented themself.
    pub notification: Option<&'a NotificationItem>,
    /// The first answer, when the request carried an `Idempotency-Key`.
    pub record: Option<&'a IdempotencyItem>,
}

/// A page of posts under a tag, with the users who wrote them (keyed by
/// id; a missing author is absent).
#[derive(Debug, Clone)]
pub struct TagPage {
    pub posts: Vec<PostItem>,
    pub authors: HashMap<UserId, UserItem>,
}

/// Posts, their tags and their comments.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Posts {
    /// A post, its tag references and, when keyed, the idempotency record:
    /// one transaction; `Replayed` when a concurrent request with the same
    /// key recorded first.
    async fn create_post(
        &self,
        post: &PostItem,
        record: Option<&IdempotencyItem>,
    ) -> Result<(), StoreError>;
    /// A post, strongly consistent.
    async fn post(&self, id: &PostId) -> Result<Option<PostItem>, StoreError>;
    /// Replaces `old` with `new` if `old`'s version is still stored,
    /// swapping the references of changed tags in the same transaction;
    /// `PostChanged` otherwise.
    async fn update_post(&self, old: &PostItem, new: &PostItem) -> Result<(), StoreError>;
    /// Deletes a post and its tag references (its comments go with the
    /// stream worker); `PostGone` if it already went.
    async fn delete_post(&self, post: &PostItem) -> Result<(), StoreError>;
    /// The newest posts across every feed shard: one exact page per shard,
    /// read in parallel, merged by id (ULIDs sort by time). The cursor
    /// remembers where each shard stands.
    async fn feed(&self, page: Page) -> Result<(Vec<PostItem>, Option<Item>), StoreError>;
    /// An author's posts, newest first.
    async fn posts_by_author(
        &self,
        author: &UserId,
        page: Page,
    ) -> Result<(Vec<PostItem>, Option<Item>), StoreError>;
    /// Posts with a tag (optionally by one author), newest first, with
    /// their authors: a page of the tag's references, then the posts and
    /// their authors (each reference names its post's author) in two batch
    /// reads sent together, so listing by tag costs two round trips.
    async fn posts_by_tag(
        &self,
        tag: &Tag,
        author: Option<&UserId>,
        page: Page,
    ) -> Result<(TagPage, Option<Item>), StoreError>;
    /// A comment with its post's counter, its notification and its
    /// idempotency record: one transaction, so the counter is exact however
    /// many comments arrive at once. `PostGone` when the post went first,
    /// `Replayed` when a concurrent request with the same key won.
    async fn add_comment(
        &self,
        comment: &CommentItem,
        extras: CommentExtras<'_>,
    ) -> Result<(), StoreError>;
    /// A post's comments, oldest first.
    async fn comments(
        &self,
        post: &PostId,
        page: Page,
    ) -> Result<(Vec<CommentItem>, Option<Item>), StoreError>;
    /// A post and one of its comments in one round trip.
    async fn post_and_comment(
        &self,
        post: &PostId,
        comment: &CommentId,
    ) -> Result<(Option<PostItem>, Option<CommentItem>), StoreError>;
    /// Deletes a comment and decrements its post's counter;
    /// `CommentGone` if it already went.
    async fn delete_comment(&self, post: &PostId, comment: &CommentId) -> Result<(), StoreError>;
    /// Deletes every comment left under a removed post; how many went.
    async fn remove_comments(&self, post: &PostId) -> Result<usize, StoreError>;
}

fn counter(table: &Table, post_id: &PostId, delta: i64) -> Result<TransactWriteItem, StoreError> {
    transact_update(
        table,
        post_key(post_id),
        "ADD commentCount :delta",
        "attribute_exists(pk)",
        vec![(":delta", AttributeValue::N(delta.to_string()))],
    )
}

impl Posts for Table {
    async fn create_post(
        &self,
        post: &PostItem,
        record: Option<&IdempotencyItem>,
    ) -> Result<(), StoreError> {
        let transaction = post_transaction(self, post, record)?;
        let record_at = transaction.record_at;
        transact_write(self, transaction.items)
            .await
            .map_err(|failure| failure.named(|failed| name_creation(failed, record_at, 1)))
    }

    async fn post(&self, id: &PostId) -> Result<Option<PostItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(post_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        output.item.map(from_item).transpose()
    }

    async fn update_post(&self, old: &PostItem, new: &PostItem) -> Result<(), StoreError> {
        let expected = old.version;
        let replace = Put::builder()
            .table_name(&self.name)
            .set_item(Some(to_item(new)?))
            .condition_expression(format!("attribute_exists(pk) AND version = :v{expected}"))
            .expression_attribute_values(
                format!(":v{expected}"),
                AttributeValue::N(expected.to_string()),
            )
            .build()
            .map_err(|err| StoreError::internal("building a transaction", err))?;
        let mut items = vec![TransactWriteItem::builder().put(replace).build()];
        for removed in old.tags.iter().filter(|t| !new.tags.contains(t)) {
            items.push(transact_delete(
                self,
                key(tag_pk(removed), tag_ref_sk(&old.id)),
                None,
            )?);
        }
        for added in new.tags.iter().filter(|t| !old.tags.contains(t)) {
            items.push(transact_put(
                self,
                to_item(&TagRefItem::new(added, &new.id, &new.author_id))?,
                None,
            )?);
        }
        transact_write(self, items).await.map_err(|failure| {
            failure.named(|failed| (failed == [0]).then_some(Condition::PostChanged))
        })
    }

    async fn delete_post(&self, post: &PostItem) -> Result<(), StoreError> {
        let mut items = vec![transact_delete(
            self,
            post_key(&post.id),
            Some("attribute_exists(pk)"),
        )?];
        for tag in &post.tags {
            items.push(transact_delete(
                self,
                key(tag_pk(tag), tag_ref_sk(&post.id)),
                None,
            )?);
        }
        transact_write(self, items).await.map_err(|failure| {
            failure.named(|failed| (failed == [0]).then_some(Condition::PostGone))
        })
    }

    async fn feed(&self, page: Page) -> Result<(Vec<PostItem>, Option<Item>), StoreError> {
        let limit = page.limit;
        let positions: Item = page.start.unwrap_or_default();
        let starts = (0..FEED_SHARDS)
            .map(|shard| {
                let position = positions.get(&shard_key(shard)).and_then(|v| v.as_s().ok());
                let start =
                    match position.map(String::as_str) {
                        None => Some(None),
                        Some(EXHAUSTED) => None,
                        Some(id) => Some(Some(id.parse::<PostId>().map_err(|err| {
                            StoreError::internal("reading a feed position", err)
                        })?)),
                    };
                Ok::<_, StoreError>((shard, start))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let queries = starts.into_iter().map(|(shard, start)| async move {
            // `None`: this shard was read to its end by an earlier page.
            let Some(after) = start else {
                return Ok::<_, StoreError>((shard, Vec::new(), false));
            };
            let start = after.map(|id| feed_start_key(shard, &id));
            let partition = Partition {
                index: Some(FEED_INDEX),
                key: feed_pk(shard),
                sort_prefix: None,
                newest_first: true,
            };
            let (items, next) = self.page_of(&partition, Page { limit, start }).await?;
            Ok((shard, posts_of(items)?, next.is_some()))
        });
        let results = try_join_all(queries).await?;

        let mut merged: Vec<(u8, PostItem)> = results
            .iter()
            .flat_map(|(shard, posts, _)| posts.iter().cloned().map(move |p| (*shard, p)))
            .collect();
        merged.sort_by_key(|(_, post)| std::cmp::Reverse(post.id));
        merged.truncate(limit as usize);

        let mut next = positions.clone();
        let mut any_left = false;
        for (shard, posts, more) in &results {
            let taken = merged.iter().filter(|(s, _)| s == shard).count();
            let left_in_shard = *more || taken < posts.len();
            let position = if !left_in_shard {
                Some(EXHAUSTED.to_owned())
            } else {
                merged
                    .iter()
                    .rev()
                    .find(|(s, _)| s == shard)
                    .map(|(_, p)| p.id.to_string())
            };
            any_left |= left_in_shard;
            if let Some(position) = position {
                next.insert(shard_key(*shard), AttributeValue::S(position));
            }
        }
        Ok((
            merged.into_iter().map(|(_, p)| p).collect(),
            any_left.then_some(next),
        ))
    }

    async fn posts_by_author(
        &self,
        author: &UserId,
        page: Page,
    ) -> Result<(Vec<PostItem>, Option<Item>), StoreError> {
        let partition = Partition {
            index: Some(AUTHOR_INDEX),
            key: author_pk(author),
            sort_prefix: None,
            newest_first: true,
        };
        let (items, next) = self.page_of(&partition, page).await?;
        Ok((posts_of(items)?, next))
    }

    async fn posts_by_tag(
        &self,
        tag: &Tag,
        author: Option<&UserId>,
        page: Page,
    ) -> Result<(TagPage, Option<Item>), StoreError> {
        let (items, next) =
            table::query_page(page.limit, page.start, TABLE_PAGE_KEY, |start, limit| {
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.name)
                    .key_condition_expression(format!("{PK} = :tag"))
                    .expression_attribute_values(":tag", AttributeValue::S(tag_pk(tag)))
                    .scan_index_forward(false)
                    .limit(limit)
                    .set_exclusive_start_key(start);
                if let Some(author) = author {
                    query = query
                        .filter_expression("authorId = :author")
                        .expression_attribute_values(
                            ":author",
                            AttributeValue::S(author.to_string()),
                        );
                }
                query.send().map_err(dynamo)
            })
            .await?;
        let refs = items
            .into_iter()
            .map(from_item::<TagRefItem>)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<PostId> = refs.iter().map(|r| r.post_id).collect();
        let author_ids: Vec<UserId> = refs.iter().map(|r| r.author_id).collect();
        let (mut posts, authors) =
            tokio::try_join!(get_posts(self, &ids), self.users(&author_ids))?;
        posts.sort_by_key(|post| std::cmp::Reverse(post.id));
        Ok((TagPage { posts, authors }, next))
    }

    async fn add_comment(
        &self,
        comment: &CommentItem,
        extras: CommentExtras<'_>,
    ) -> Result<(), StoreError> {
        let transaction = comment_transaction(self, comment, extras)?;
        let record_at = transaction.record_at;
        transact_write(self, transaction.items)
            .await
            .map_err(|failure| failure.named(|failed| name_creation(failed, record_at, 2)))
    }

    async fn comments(
        &self,
        post: &PostId,
        page: Page,
    ) -> Result<(Vec<CommentItem>, Option<Item>), StoreError> {
        let partition = Partition {
            index: None,
            key: post_pk(post),
            sort_prefix: Some(COMMENT_SK_PREFIX),
            newest_first: false,
        };
        let (items, next) = self.page_of(&partition, page).await?;
        let comments = items
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<CommentItem>, _>>()?;
        Ok((comments, next))
    }

    async fn post_and_comment(
        &self,
        post: &PostId,
        comment: &CommentId,
    ) -> Result<(Option<PostItem>, Option<CommentItem>), StoreError> {
        let keys = vec![post_key(post), key(post_pk(post), comment_sk(comment))];
        let mut post = None;
        let mut comment = None;
        for item in table::batch_get(self, keys, true).await? {
            match item.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str) {
                Some(POST_SK) => post = Some(from_item(item)?),
                Some(_) => comment = Some(from_item(item)?),
                None => {}
            }
        }
        Ok((post, comment))
    }

    async fn delete_comment(&self, post: &PostId, comment: &CommentId) -> Result<(), StoreError> {
        let items = vec![
            transact_delete(
                self,
                key(post_pk(post), comment_sk(comment)),
                Some("attribute_exists(pk)"),
            )?,
            counter(self, post, -1)?,
        ];
        transact_write(self, items).await.map_err(|failure| {
            // The counter's condition fails only when the post went too.
            failure.named(|_| Some(Condition::CommentGone))
        })
    }

    async fn remove_comments(&self, post: &PostId) -> Result<usize, StoreError> {
        let mut start: Option<Item> = None;
        let mut removed = 0usize;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression(format!("{PK} = :pk AND begins_with({SK}, :comment)"))
                .expression_attribute_values(":pk", AttributeValue::S(post_pk(post)))
                .expression_attribute_values(
                    ":comment",
                    AttributeValue::S(COMMENT_SK_PREFIX.into()),
                )
                .projection_expression(format!("{PK}, {SK}"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(dynamo)?;
            let requests = output
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| match (item.get(PK), item.get(SK)) {
                    (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                        Some(table::delete_request(pk.clone(), sk.clone()))
                    }
                    _ => None,
                })
                .collect::<Result<Vec<_>, _>>()?;
            removed += requests.len();
            table::batch_write(self, requests).await?;
            match output.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(removed),
            }
        }
    }
}

/// The items of a creating transaction, and where its idempotency record
/// is among them, if it has one.
struct Creation {
    items: Vec<TransactWriteItem>,
    record_at: Option<usize>,
}

impl Creation {
    /// The record goes last, so its position is known whatever came before.
    fn push_record(
        &mut self,
        table: &Table,
        record: Option<&IdempotencyItem>,
    ) -> Result<(), StoreError> {
        if let Some(record) = record {
            self.record_at = Some(self.items.len());
            self.items.push(record.transact_put(table)?);
        }
        Ok(())
    }
}

/// A new post (conditional on its id being new), its tag references, and
/// its idempotency record.
fn post_transaction(
    table: &Table,
    post: &PostItem,
    record: Option<&IdempotencyItem>,
) -> Result<Creation, StoreError> {
    let mut items = vec![transact_put(
        table,
        to_item(post)?,
        Some("attribute_not_exists(pk)"),
    )?];
    for tag in &post.tags {
        items.push(transact_put(
            table,
            to_item(&TagRefItem::new(tag, &post.id, &post.author_id))?,
            None,
        )?);
    }
    let mut creation = Creation {
        items,
        record_at: None,
    };
    creation.push_record(table, record)?;
    Ok(creation)
}

/// A new comment (conditional on its id being new), its post's counter
/// (conditional on the post existing), the notification and its email, and
/// the idempotency record.
fn comment_transaction(
    table: &Table,
    comment: &CommentItem,
    extras: CommentExtras<'_>,
) -> Result<Creation, StoreError> {
    let mut items = vec![
        transact_put(table, to_item(comment)?, Some("attribute_not_exists(pk)"))?,
        counter(table, &comment.post_id, 1)?,
    ];
    if let Some(notification) = extras.notification {
        items.push(transact_put(table, to_item(notification)?, None)?);
        // Its email goes with it: there is one exactly when the
        // notification commits (whether it is sent is the worker's call).
        let email = crate::outbox::OutboxItem::comment(notification)?;
        items.push(transact_put(table, to_item(&email)?, None)?);
    }
    let mut creation = Creation {
        items,
        record_at: None,
    };
    creation.push_record(table, extras.record)?;
    Ok(creation)
}

/// Which condition of a creating transaction failed, from the positions
/// that failed: the idempotency record first (a concurrent request with the
/// key won, and its answer is the one to give whatever else failed), then,
/// for a comment, the post's counter (the post is gone), then the new
/// item's own put (an id collision). The first `conditional` items and the
/// record are the ones with a condition; any other position is a bug.
fn name_creation(
    failed: &[usize],
    record_at: Option<usize>,
    conditional: usize,
) -> Option<Condition> {
    if failed.iter().any(|index| Some(*index) == record_at) {
        return Some(Condition::Replayed);
    }
    if failed.iter().any(|index| *index >= conditional) {
        return None;
    }
    if failed.contains(&1) {
        return Some(Condition::PostGone);
    }
    failed.contains(&0).then_some(Condition::AlreadyExists)
}

fn posts_of(items: Vec<Item>) -> Result<Vec<PostItem>, StoreError> {
    items.into_iter().map(from_item).collect()
}

const FEED_INDEX: Index = Index::Gsi1;
const AUTHOR_INDEX: Index = Index::Gsi2;

/// Where each feed shard stands in a cursor: absent means not started, an
/// empty string means done, else the id of the last post taken from it.
const EXHAUSTED: &str = "";

fn shard_key(shard: u8) -> String {
    format!("s{shard}")
}

fn feed_start_key(shard: u8, post_id: &PostId) -> Item {
    let mut start = post_key(post_id);
    start.insert(GSI1PK.to_owned(), AttributeValue::S(feed_pk(shard)));
    start.insert(GSI1SK.to_owned(), AttributeValue::S(post_id.to_string()));
    start
}

/// Reads posts by id, one round trip per 100.
async fn get_posts(table: &Table, ids: &[PostId]) -> Result<Vec<PostItem>, StoreError> {
    let keys = ids.iter().map(post_key).collect();
    table::batch_get(table, keys, false)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_spread_over_every_shard() {
        let mut seen = [0u32; FEED_SHARDS as usize];
        for _ in 0..400 {
            seen[feed_shard(&PostId::new()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{seen:?}");
    }

    fn table() -> Table {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        Table::new(aws_sdk_dynamodb::Client::from_conf(config), "t")
    }

    fn pk_of(item: &TransactWriteItem) -> String {
        let attributes = item
            .put()
            .map(|put| put.item())
            .or_else(|| item.update().map(|update| update.key()))
            .expect("a put or an update");
        attributes[PK].as_s().unwrap().clone()
    }

    fn record() -> IdempotencyItem {
        let key = crate::idempotency::RecordKey::new(&UserId::new(), "scope", "key");
        IdempotencyItem::new(&key, "hash".into(), "{}".into())
    }

    #[test]
    fn a_comment_transaction_knows_where_its_record_is() {
        let table = table();
        let comment = CommentItem::new(
            &PostId::new(),
            &UserId::new(),
            CommentBody::parse("body", "hi".into()).unwrap(),
            "2026-01-01T00:00:00.000Z".into(),
        );
        let notification = NotificationItem::new(
            &UserId::new(),
            crate::notifications::NotificationType::Comment,
            "t".into(),
            "b".into(),
            serde_json::Map::new(),
            "2026-01-01T00:00:00.000Z".into(),
        );
        let record = record();
        for (notify, keyed) in [(false, false), (true, false), (false, true), (true, true)] {
            let extras = CommentExtras {
                notification: notify.then_some(&notification),
                record: keyed.then_some(&record),
            };
            let creation = comment_transaction(&table, &comment, extras).unwrap();
            assert_eq!(pk_of(&creation.items[0]), comment.pk);
            assert_eq!(pk_of(&creation.items[1]), post_pk(&comment.post_id));
            if notify {
                assert_eq!(pk_of(&creation.items[2]), notification.pk);
                // The email of the notification, under its id.
                assert_eq!(
                    pk_of(&creation.items[3]),
                    crate::keys::outbox_pk(notification.id)
                );
            }
            match creation.record_at {
                Some(at) => {
                    assert!(keyed);
                    assert_eq!(pk_of(&creation.items[at]), record.pk);
                }
                None => assert!(!keyed),
            }
            let expected = 2 + 2 * usize::from(notify) + usize::from(keyed);
            assert_eq!(creation.items.len(), expected);
        }
    }

    #[test]
    fn a_post_transaction_knows_where_its_record_is() {
        let table = table();
        let tags = ["a", "b"].map(|t| Tag::parse("tag", t).unwrap()).to_vec();
        let post = PostItem::new(
            PostId::new(),
            UserId::new(),
            Title::parse("title", "T".into()).unwrap(),
            PostBody::parse("body", "B".into()).unwrap(),
            tags,
            None,
            "2026-01-01T00:00:00.000Z".into(),
        );
        let record = record();
        let creation = post_transaction(&table, &post, Some(&record)).unwrap();
        assert_eq!(creation.record_at, Some(3));
        assert_eq!(pk_of(&creation.items[3]), record.pk);
        assert_eq!(pk_of(&creation.items[0]), post.pk);
        let unkeyed = post_transaction(&table, &post, None).unwrap();
        assert_eq!((unkeyed.record_at, unkeyed.items.len()), (None, 3));
    }

    #[test]
    fn a_creation_failure_names_the_item_that_failed() {
        // A comment: put, counter, notification, record.
        assert_eq!(name_creation(&[1], Some(3), 2), Some(Condition::PostGone));
        assert_eq!(
            name_creation(&[0], Some(3), 2),
            Some(Condition::AlreadyExists)
        );
        assert_eq!(name_creation(&[0, 1], None, 2), Some(Condition::PostGone));
        assert_eq!(name_creation(&[3], Some(3), 2), Some(Condition::Replayed));
        // The post went and a concurrent request with the key won: replay.
        assert_eq!(
            name_creation(&[1, 3], Some(3), 2),
            Some(Condition::Replayed)
        );
        assert_eq!(
            name_creation(&[1, 2], Some(2), 2),
            Some(Condition::Replayed)
        );
        assert_eq!(name_creation(&[1], None, 2), Some(Condition::PostGone));
        // The notification's put has no condition: its failure is a bug.
        assert_eq!(name_creation(&[2], Some(3), 2), None);
        assert_eq!(name_creation(&[2], None, 2), None);
        assert_eq!(name_creation(&[], None, 2), None);
        // A post: put, tags, record; only the put and the record have one.
        assert_eq!(
            name_creation(&[0], Some(3), 1),
            Some(Condition::AlreadyExists)
        );
        assert_eq!(
            name_creation(&[0, 3], Some(3), 1),
            Some(Condition::Replayed)
        );
        assert_eq!(name_creation(&[1], Some(3), 1), None);
    }
}
