//! Migration 2, `claim-login-copies`: copies each user's password hash and
//! role onto the claim of their email (`EMAIL#<email>`/`EMAIL`), so that
//! login checks a password from the one item it can find by email and
//! then writes: two round trips instead of three (docs/DATA_MODEL.md,
//! `POST /auth/login`).
//!
//! It reads every user from the users partition of `gsi1` and writes with
//! the store's own conditional update (`Users::fill_claim`): only a claim
//! that is still that user's and has no hash yet, so a reset that wrote
//! the claim's hash meanwhile wins, and a page done twice changes nothing.
//! A dry run reads each claim to count those still without a hash.
//!
//! Additive: login still reads the user for a claim without the copy, so
//! the previous release and unmigrated tables keep working; a later
//! release may drop that path once every table has this migration.

use futures::{FutureExt, StreamExt, TryStreamExt, future::BoxFuture, stream};
use model::{
    StoreError, Table,
    table::from_item,
    users::{UserItem, Users},
};

use super::{Migration, PageDone, PageRead, Source};

pub struct ClaimLoginCopies;

/// Claims written at once per page: the table's write capacity, not this
/// runner, should be what paces a large table.
const IN_FLIGHT: usize = 16;

impl Migration for ClaimLoginCopies {
    fn version(&self) -> u32 {
        2
    }

    fn name(&self) -> &'static str {
        "claim-login-copies"
    }

    fn summary(&self) -> &'static str {
        "copies each user's password hash and role onto their email claim, for login"
    }

    fn source(&self, table: &Table) -> Source {
        Source::Query(table.all_users_query())
    }

    fn page<'a>(
        &'a self,
        table: &'a Table,
        page: PageRead,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<PageDone, StoreError>> {
        async move {
            let users = page
                .items
                .into_iter()
                .map(from_item::<UserItem>)
                .collect::<Result<Vec<_>, _>>()?;
            let changed = stream::iter(users)
                .map(|user| async move {
                    if dry_run {
                        let claim = table.email_claim(&user.email).await?;
                        Ok::<_, StoreError>(claim.is_some_and(|claim| {
                            claim.user_id == user.id && claim.password_hash.is_none()
                        }))
                    } else {
                        table.fill_claim(&user).await
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .try_fold(
                    0u64,
                    |sum, changed| async move { Ok(sum + u64::from(changed)) },
                )
                .await?;
            Ok(PageDone { changed, tally: 0 })
        }
        .boxed()
    }
}
