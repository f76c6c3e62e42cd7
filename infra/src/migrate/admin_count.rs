//! Migration 1, `admin-count`: makes the active-admin counter
//! (`ADMINS`/`COUNT`) of a table whose admins were made before it existed,
//! so that no admin write has to count the users inside a request
//! (docs/DATA_MODEL.md, "M — an admin write", step 3).
//!
//! It counts with the store's own Query and creates the counter with the
//! store's own conditional create (`Table::active_admins_query`,
//! `Table::create_admin_count`): one rule for both paths. The count can be
//! built up over several runs, its running total saved with each page's
//! checkpoint, because while the counter is missing no write that makes or
//! unmakes an active admin can commit (each moves the counter in its
//! transaction), so the pages already counted cannot change under it. If
//! a request makes the counter first, from its own complete count, the
//! create here finds it and changes nothing.
//!
//! Additive: the request path that counts when the counter is missing
//! stays, for tables not yet migrated and for the previous release after
//! a rollback; a later release may drop it once every table has this
//! migration recorded.

use aws_sdk_dynamodb::types::Select;
use futures::{FutureExt, future::BoxFuture};
use model::{StoreError, Table, users::Users};

use super::{Migration, PageDone, PageRead, Source};

pub struct AdminCount;

impl Migration for AdminCount {
    fn version(&self) -> u32 {
        1
    }

    fn name(&self) -> &'static str {
        "admin-count"
    }

    fn summary(&self) -> &'static str {
        "makes the active-admin counter (ADMINS/COUNT) from a count of the users"
    }

    fn source(&self, table: &Table) -> Source {
        Source::Query(table.active_admins_query().select(Select::Count))
    }

    fn needed<'a>(&'a self, table: &'a Table) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move { Ok(table.active_admins().await?.is_none()) }.boxed()
    }

    fn page<'a>(
        &'a self,
        _table: &'a Table,
        page: PageRead,
        _dry_run: bool,
    ) -> BoxFuture<'a, Result<PageDone, StoreError>> {
        async move {
            Ok(PageDone {
                changed: 0,
                tally: page.count,
            })
        }
        .boxed()
    }

    fn finish<'a>(
        &'a self,
        table: &'a Table,
        tally: u64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move {
            if dry_run {
                // `needed` found no counter: the one item it would make.
                return Ok(1);
            }
            Ok(u64::from(table.create_admin_count(tally).await?))
        }
        .boxed()
    }
}
