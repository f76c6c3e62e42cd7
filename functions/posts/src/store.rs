//! The DynamoDB access of the posts function; each function names its
//! round trips in docs/DATA_MODEL.md.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use futures::{TryFutureExt, future::try_join_all};
use shared::{
    AppError,
    query::PageRequest,
    store::{self, Item, Table, from_item, to_item, transact_write},
};

use crate::model::{
    CommentItem, FEED_SHARDS, POST_SK, PostItem, TagRefItem, comment_sk, feed_pk, key, post_pk,
    tag_pk,
};

fn build_error(err: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::internal("building a request", err)
}

pub use store::transact_put as put;

fn delete(
    table: &Table,
    key: Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, AppError> {
    let delete = Delete::builder()
        .table_name(&table.name)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

fn counter(table: &Table, post_id: &str, delta: i64) -> Result<TransactWriteItem, AppError> {
    let update = Update::builder()
        .table_name(&table.name)
        .set_key(Some(key(post_pk(post_id), POST_SK.into())))
        .update_expression("ADD commentCount :delta")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Writes a post, its tag references and, when keyed, the idempotency
/// record: one transaction.
pub async fn create_post(
    table: &Table,
    post: &PostItem,
    extra: Option<TransactWriteItem>,
) -> Result<(), AppError> {
    let mut items = vec![put(
        table,
        to_item(post)?,
        Some("attribute_not_exists(pk)"),
    )?];
    for tag in &post.tags {
        items.push(put(
            table,
            to_item(&TagRefItem::new(tag, &post.id, &post.author_id))?,
            None,
        )?);
    }
    items.extend(extra);
    transact_write(table, items).await
}

pub async fn get_post(table: &Table, id: &str) -> Result<Option<PostItem>, AppError> {
    let output = table
        .client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(key(post_pk(id), POST_SK.into())))
        .consistent_read(true)
        .send()
        .await
        .map_err(store::dynamo)?;
    output.item.map(from_item).transpose()
}

/// Replaces a post if its version is still `expected_version`, swapping tag
/// references for changed tags in the same transaction.
pub async fn update_post(
    table: &Table,
    old: &PostItem,
    new: &PostItem,
    expected_version: i64,
) -> Result<(), AppError> {
    let condition = format!("attribute_exists(pk) AND version = :v{expected_version}");
    let replace = Put::builder()
        .table_name(&table.name)
        .set_item(Some(to_item(new)?))
        .condition_expression(condition)
        .expression_attribute_values(
            format!(":v{expected_version}"),
            AttributeValue::N(expected_version.to_string()),
        )
        .build()
        .map_err(build_error)?;
    let mut items = vec![TransactWriteItem::builder().put(replace).build()];
    for removed in old.tags.iter().filter(|t| !new.tags.contains(t)) {
        items.push(delete(table, key(tag_pk(removed), post_pk(&old.id)), None)?);
    }
    for added in new.tags.iter().filter(|t| !old.tags.contains(t)) {
        items.push(put(
            table,
            to_item(&TagRefItem::new(added, &new.id, &new.author_id))?,
            None,
        )?);
    }
    transact_write(table, items).await.map_err(|err| match err {
        AppError::Conflict(_) => {
            AppError::Conflict("The post was changed by someone else; reload it and retry".into())
        }
        other => other,
    })
}

/// Deletes a post and its tag references. Its comments are removed by the
/// stream worker when it sees the post's REMOVE record.
pub async fn delete_post(table: &Table, post: &PostItem) -> Result<(), AppError> {
    let mut items = vec![delete(
        table,
        key(post_pk(&post.id), POST_SK.into()),
        Some("attribute_exists(pk)"),
    )?];
    for tag in &post.tags {
        items.push(delete(table, key(tag_pk(tag), post_pk(&post.id)), None)?);
    }
    transact_write(table, items).await.map_err(|err| match err {
        AppError::Conflict(_) => AppError::NotFound("Post not found".into()),
        other => other,
    })
}

fn posts_of(items: Vec<Item>) -> Result<Vec<PostItem>, AppError> {
    items.into_iter().map(from_item).collect()
}

const FEED_KEY: &[&str] = &["pk", "sk", "gsi1pk", "gsi1sk"];
const AUTHOR_KEY: &[&str] = &["pk", "sk", "gsi2pk", "gsi2sk"];
const TABLE_KEY: &[&str] = &["pk", "sk"];

/// Where each feed shard stands in a cursor: absent means not started, an
/// empty string means done, else the id of the last post taken from it.
const EXHAUSTED: &str = "";

fn shard_key(shard: u8) -> String {
    format!("s{shard}")
}

fn feed_start_key(shard: u8, post_id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(post_pk(post_id))),
        ("sk".to_owned(), AttributeValue::S(POST_SK.into())),
        ("gsi1pk".to_owned(), AttributeValue::S(feed_pk(shard))),
        ("gsi1sk".to_owned(), AttributeValue::S(post_id.to_owned())),
    ])
}

/// The newest posts across every feed shard: one exact page per shard, read
/// in parallel, merged by id (ULIDs sort by time). The cursor remembers
/// where each shard stands.
pub async fn list_feed(
    table: &Table,
    page: &PageRequest,
) -> Result<(Vec<PostItem>, Option<Item>), AppError> {
    let positions: Item = page.cursor.clone().map(|c| c.0).unwrap_or_default();
    let queries = (0..FEED_SHARDS).map(|shard| {
        let position = positions
            .get(&shard_key(shard))
            .and_then(|v| v.as_s().ok())
            .cloned();
        async move {
            if position.as_deref() == Some(EXHAUSTED) {
                return Ok::<_, AppError>((shard, Vec::new(), false));
            }
            let start = position.map(|id| feed_start_key(shard, &id));
            let (items, next) = store::query_page(page.limit, start, FEED_KEY, |start, limit| {
                table
                    .client
                    .query()
                    .table_name(&table.name)
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :shard")
                    .expression_attribute_values(":shard", AttributeValue::S(feed_pk(shard)))
                    .scan_index_forward(false)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .map_err(store::dynamo)
            })
            .await?;
            Ok((shard, posts_of(items)?, next.is_some()))
        }
    });
    let results = try_join_all(queries).await?;

    let mut merged: Vec<(u8, PostItem)> = results
        .iter()
        .flat_map(|(shard, posts, _)| posts.iter().cloned().map(move |p| (*shard, p)))
        .collect();
    merged.sort_by(|a, b| b.1.id.cmp(&a.1.id));
    merged.truncate(page.limit as usize);

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
                .map(|(_, p)| p.id.clone())
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

/// An author's posts, newest first.
pub async fn list_by_author(
    table: &Table,
    author_id: &str,
    page: &PageRequest,
) -> Result<(Vec<PostItem>, Option<Item>), AppError> {
    let (items, next) = store::query_page(
        page.limit,
        page.cursor.clone().map(|c| c.0),
        AUTHOR_KEY,
        |start, limit| {
            table
                .client
                .query()
                .table_name(&table.name)
                .index_name("gsi2")
                .key_condition_expression("gsi2pk = :author")
                .expression_attribute_values(
                    ":author",
                    AttributeValue::S(format!("AUTHOR#{author_id}")),
                )
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .map_err(store::dynamo)
        },
    )
    .await?;
    Ok((posts_of(items)?, next))
}

/// Posts with `tag` (optionally by one author), newest first: a page of the
/// tag's references, then the posts themselves in one batch read.
pub async fn list_by_tag(
    table: &Table,
    tag: &str,
    author_id: Option<&str>,
    page: &PageRequest,
) -> Result<(Vec<PostItem>, Option<Item>), AppError> {
    let (items, next) = store::query_page(
        page.limit,
        page.cursor.clone().map(|c| c.0),
        TABLE_KEY,
        |start, limit| {
            let mut query = table
                .client
                .query()
                .table_name(&table.name)
                .key_condition_expression("pk = :tag")
                .expression_attribute_values(":tag", AttributeValue::S(tag_pk(tag)))
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start);
            if let Some(author) = author_id {
                query = query
                    .filter_expression("authorId = :author")
                    .expression_attribute_values(":author", AttributeValue::S(author.to_owned()));
            }
            query.send().map_err(store::dynamo)
        },
    )
    .await?;
    let ids = items
        .into_iter()
        .map(|item| from_item::<TagRefItem>(item).map(|r| r.post_id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut posts = get_posts(table, &ids).await?;
    posts.sort_by(|a, b| b.id.cmp(&a.id));
    Ok((posts, next))
}

/// Reads posts by id, one round trip per 100.
pub async fn get_posts(table: &Table, ids: &[String]) -> Result<Vec<PostItem>, AppError> {
    let keys = ids
        .iter()
        .map(|id| key(post_pk(id), POST_SK.into()))
        .collect();
    store::batch_get(table, keys, false)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

/// Writes a comment, bumps the post's counter and stores what else the
/// comment brings (notification, idempotency record): one transaction, so
/// the counter is exact however many comments arrive at once.
pub async fn add_comment(
    table: &Table,
    comment: &CommentItem,
    extra: Vec<TransactWriteItem>,
) -> Result<(), AppError> {
    let mut items = vec![
        put(table, to_item(comment)?, Some("attribute_not_exists(pk)"))?,
        counter(table, &comment.post_id, 1)?,
    ];
    items.extend(extra);
    transact_write(table, items).await
}

/// A post's comments, oldest first.
pub async fn list_comments(
    table: &Table,
    post_id: &str,
    page: &PageRequest,
) -> Result<(Vec<CommentItem>, Option<Item>), AppError> {
    let (items, next) = store::query_page(
        page.limit,
        page.cursor.clone().map(|c| c.0),
        TABLE_KEY,
        |start, limit| {
            table
                .client
                .query()
                .table_name(&table.name)
                .key_condition_expression("pk = :post AND begins_with(sk, :comment)")
                .expression_attribute_values(":post", AttributeValue::S(post_pk(post_id)))
                .expression_attribute_values(":comment", AttributeValue::S("COMMENT#".into()))
                .scan_index_forward(true)
                .limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .map_err(store::dynamo)
        },
    )
    .await?;
    let comments = items
        .into_iter()
        .map(from_item)
        .collect::<Result<Vec<CommentItem>, _>>()?;
    Ok((comments, next))
}

/// A post and one of its comments in one round trip.
pub async fn get_post_and_comment(
    table: &Table,
    post_id: &str,
    comment_id: &str,
) -> Result<(Option<PostItem>, Option<CommentItem>), AppError> {
    let keys = vec![
        key(post_pk(post_id), POST_SK.into()),
        key(post_pk(post_id), comment_sk(comment_id)),
    ];
    let mut post = None;
    let mut comment = None;
    for item in store::batch_get(table, keys, true).await? {
        match item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some(POST_SK) => post = Some(from_item(item)?),
            Some(_) => comment = Some(from_item(item)?),
            None => {}
        }
    }
    Ok((post, comment))
}

/// Deletes a comment and decrements its post's counter.
pub async fn delete_comment(
    table: &Table,
    post_id: &str,
    comment_id: &str,
) -> Result<(), AppError> {
    let items = vec![
        delete(
            table,
            key(post_pk(post_id), comment_sk(comment_id)),
            Some("attribute_exists(pk)"),
        )?,
        counter(table, post_id, -1)?,
    ];
    transact_write(table, items).await.map_err(|err| match err {
        AppError::Conflict(_) => AppError::NotFound("Comment not found".into()),
        other => other,
    })
}
