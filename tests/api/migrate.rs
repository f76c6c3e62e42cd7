//! `make migrate` (infra/src/migrate) on moto: a migration applies once and
//! says so in its record, a dry run writes nothing, a run cut midway
//! resumes from its checkpoint, two runners never both apply one, the
//! `admin-count` migration counts exactly, and the admin routes work on
//! migrated and unmigrated tables alike (the previous release's code).

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, Select},
};
use futures::{FutureExt, future::BoxFuture};
use infra::migrate::{
    self, AdminCount, MigrateError, Migration, Migrator, Outcome, PageDone, PageRead, Position,
    RunOptions, Source, Status,
};
use model::{
    Item, StoreError, Table,
    domain::{Email, Name, Role, UserId, UserStatus},
    error::dynamo,
    keys::{self, Entity},
    table::to_item,
    users::{UserItem, Users},
};
use serde_json::json;
use tests::{Session, TestApp, assert_envelope, unique_email};
use tokio::sync::Notify;

fn table(app: &TestApp) -> Table {
    Table::new(app.dynamodb.clone(), app.storage.table_name.clone())
}

async fn active_admins(app: &TestApp) -> Option<u64> {
    table(app).active_admins().await.expect("the admin count")
}

/// How many items the table holds, of every kind.
async fn item_count(app: &TestApp) -> i32 {
    app.dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .select(Select::Count)
        .send()
        .await
        .expect("scan")
        .count
}

/// The roles and statuses of the users `seed` writes, in id order: active
/// admins among suspended and deleted ones and ordinary users, so that
/// every page of a small page size holds a mix.
const MIX: [(Role, UserStatus); 20] = {
    use Role::{Admin, User};
    use UserStatus::{Active, Deleted, Suspended};
    [
        (User, Active),
        (Admin, Active),
        (Admin, Suspended),
        (User, Active),
        (Admin, Deleted),
        (Admin, Active),
        (User, Suspended),
        (User, Active),
        (Admin, Active),
        (User, Deleted),
        (Admin, Suspended),
        (User, Active),
        (Admin, Active),
        (User, Active),
        (Admin, Deleted),
        (User, Suspended),
        (User, Active),
        (Admin, Active),
        (User, Active),
        (User, Active),
    ]
};

fn active_admins_in(users: &[(Role, UserStatus)]) -> u64 {
    users
        .iter()
        .filter(|(role, status)| *role == Role::Admin && *status == UserStatus::Active)
        .count() as u64
}

/// Writes `users` as the code did before the admin counter existed (the
/// role and status on the user item alone), with ids that sort in the
/// order given; their ids.
async fn seed(app: &TestApp, users: &[(Role, UserStatus)]) -> Vec<UserId> {
    let base = 1_700_000_000_000u64;
    let mut ids = Vec::new();
    for (index, (role, status)) in users.iter().enumerate() {
        let id: UserId = ulid::Ulid::from_parts(base + index as u64, rand_bits())
            .to_string()
            .parse()
            .unwrap();
        let mut user = UserItem::new(
            id,
            Name::parse("name", "Seeded User".into()).unwrap(),
            Email::parse("email", unique_email()).unwrap(),
            "not-a-hash".into(),
            model::clock::now_rfc3339(),
        );
        user.role = *role;
        user.status = *status;
        app.dynamodb
            .put_item()
            .table_name(&app.storage.table_name)
            .set_item(Some(to_item(&user).unwrap()))
            .send()
            .await
            .expect("put user");
        ids.push(id);
    }
    ids
}

fn rand_bits() -> u128 {
    ulid::Ulid::new().random()
}

/// A page size that spreads the seeded users over several pages.
fn paged() -> RunOptions {
    RunOptions {
        page_size: Some(3),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn the_admin_count_is_exact_applied_once_and_a_dry_run_writes_nothing() {
    let app = TestApp::spawn().await;
    seed(&app, &MIX).await;
    let expected = active_admins_in(&MIX);
    assert_eq!(expected, 5);
    let migrator = Migrator::new(table(&app));
    let before = item_count(&app).await;

    let dry = RunOptions {
        dry_run: true,
        ..paged()
    };
    assert_eq!(
        migrator.run(&AdminCount, &dry).await.unwrap(),
        Outcome::WouldChange { items: 1 }
    );
    assert_eq!(item_count(&app).await, before, "a dry run writes nothing");
    assert_eq!(active_admins(&app).await, None);
    assert_eq!(migrator.status(&AdminCount).await.unwrap(), Status::Pending);

    assert_eq!(
        migrator.run(&AdminCount, &paged()).await.unwrap(),
        Outcome::Applied { changed: 1 }
    );
    assert_eq!(active_admins(&app).await, Some(expected));
    assert!(matches!(
        migrator.status(&AdminCount).await.unwrap(),
        Status::Applied { changed: 1, .. }
    ));
    let after = item_count(&app).await;
    assert_eq!(after, before + 2, "the counter and the record");

    // Again, by this runner or another, dry or not: nothing is read or
    // written, however the users changed since.
    seed(&app, &[(Role::Admin, UserStatus::Active)]).await;
    for runner in [&migrator, &Migrator::new(table(&app))] {
        for options in [&paged(), &dry] {
            assert_eq!(
                runner.run(&AdminCount, options).await.unwrap(),
                Outcome::AlreadyApplied
            );
        }
    }
    assert_eq!(active_admins(&app).await, Some(expected));
    assert_eq!(item_count(&app).await, after + 1);
}

#[tokio::test]
async fn a_run_cut_midway_resumes_from_its_checkpoint_once_its_lease_expires() {
    let app = TestApp::spawn().await;
    seed(&app, &MIX).await;
    let lease = Duration::from_secs(1);
    let crashed = Migrator::new(table(&app));
    let cut = RunOptions {
        page_size: Some(2),
        lease,
        stop_after_pages: Some(3),
        ..RunOptions::default()
    };
    assert_eq!(
        crashed.run(&AdminCount, &cut).await.unwrap(),
        Outcome::Stopped { pages: 3 }
    );
    assert_eq!(active_admins(&app).await, None, "nothing made yet");
    let Status::Running {
        checkpoint,
        lease: held,
    } = crashed.status(&AdminCount).await.unwrap()
    else {
        panic!("a record of the run under way");
    };
    // Three pages of two, in id order: the first six users counted.
    assert_eq!(checkpoint.tally, active_admins_in(&MIX[..6]));
    assert!(
        matches!(checkpoint.positions.as_slice(), [Position::After(_)]),
        "{checkpoint:?}"
    );
    assert_eq!(held.expect("a lease").owner, crashed.owner());

    // The crashed runner's lease holds another off until it expires...
    let next = Migrator::new(table(&app));
    let resume = RunOptions {
        page_size: Some(2),
        lease,
        ..RunOptions::default()
    };
    match next.run(&AdminCount, &resume).await {
        Err(MigrateError::LeaseHeld {
            version: 1, owner, ..
        }) => {
            assert_eq!(owner, crashed.owner())
        }
        other => panic!("the lease is held: {other:?}"),
    }
    // ...then it carries on from the checkpoint, and counts exactly.
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    assert_eq!(
        next.run(&AdminCount, &resume).await.unwrap(),
        Outcome::Applied { changed: 1 }
    );
    assert_eq!(active_admins(&app).await, Some(active_admins_in(&MIX)));
    // The crashed runner, back, finds it done.
    assert_eq!(
        crashed.run(&AdminCount, &resume).await.unwrap(),
        Outcome::AlreadyApplied
    );
}

/// Whether `item` is a user: a Scan also reads the migration records.
fn is_user(item: &Item) -> bool {
    matches!(
        item.get(keys::ENTITY),
        Some(AttributeValue::S(entity)) if entity == Entity::User.as_str()
    )
}

/// A backfill written as a real one would be: every user item gets an
/// attribute, with a conditional write, over a parallel Scan. It counts the
/// user items it is handed and the writes it attempts (dry runs aside),
/// and can hold its first page until told to go on.
#[derive(Default)]
struct Backfill {
    seen: AtomicU64,
    attempts: AtomicU64,
    hold: Option<Hold>,
}

#[derive(Default)]
struct Hold {
    entered: Notify,
    release: Notify,
    once: AtomicBool,
}

impl Backfill {
    const ATTRIBUTE: &str = "testBackfilled";

    fn held() -> Self {
        Backfill {
            hold: Some(Hold::default()),
            ..Backfill::default()
        }
    }

    fn needs_it(item: &Item) -> bool {
        is_user(item) && !item.contains_key(Self::ATTRIBUTE)
    }

    /// Whether the write changed the item; `false` when it already had it.
    async fn change(&self, table: &Table, item: &Item) -> Result<bool, StoreError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let key = model::table::key_of(item, keys::TABLE_PAGE_KEY);
        let written = table
            .client
            .update_item()
            .table_name(&table.name)
            .set_key(Some(key))
            .update_expression("SET #done = :yes ADD touches :one")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#done)")
            .expression_attribute_names("#done", Self::ATTRIBUTE)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(dynamo(err)),
        }
    }
}

impl Migration for Backfill {
    fn version(&self) -> u32 {
        9001
    }

    fn name(&self) -> &'static str {
        "test-backfill"
    }

    fn summary(&self) -> &'static str {
        "marks every user (a test's)"
    }

    fn source(&self, table: &Table) -> Source {
        Source::Scan {
            scan: table.client.scan().table_name(&table.name),
            segments: 2,
        }
    }

    fn page<'a>(
        &'a self,
        table: &'a Table,
        page: PageRead,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<PageDone, StoreError>> {
        async move {
            if let Some(hold) = &self.hold
                && !hold.once.swap(true, Ordering::SeqCst)
            {
                hold.entered.notify_one();
                hold.release.notified().await;
            }
            if !dry_run {
                let users = page.items.iter().filter(|item| is_user(item)).count();
                self.seen.fetch_add(users as u64, Ordering::SeqCst);
            }
            let mut changed = 0;
            for item in page.items.iter().filter(|item| Self::needs_it(item)) {
                if dry_run || self.change(table, item).await? {
                    changed += 1;
                }
            }
            Ok(PageDone { changed, tally: 0 })
        }
        .boxed()
    }
}

/// The users carrying the backfill's attribute, and whether each was
/// written exactly once.
async fn backfilled(app: &TestApp) -> (usize, bool) {
    let items = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    let marked: Vec<&Item> = items
        .iter()
        .filter(|item| item.contains_key(Backfill::ATTRIBUTE))
        .collect();
    let once = marked
        .iter()
        .all(|item| item.get("touches") == Some(&AttributeValue::N("1".into())));
    (marked.len(), once)
}

#[tokio::test]
async fn a_backfill_cut_midway_changes_each_item_once_and_reads_no_page_twice() {
    let app = TestApp::spawn().await;
    let users = [(Role::User, UserStatus::Active); 12];
    seed(&app, &users).await;
    let migration = Backfill::default();
    let first = Migrator::new(table(&app));
    let cut = RunOptions {
        page_size: Some(2),
        lease: Duration::from_millis(1),
        stop_after_pages: Some(3),
        ..RunOptions::default()
    };
    assert!(matches!(
        first.run(&migration, &cut).await.unwrap(),
        Outcome::Stopped { .. }
    ));
    let (marked, once) = backfilled(&app).await;
    assert!(marked < users.len(), "cut midway: {marked}");
    assert!(once);
    let Status::Running { checkpoint, .. } = first.status(&migration).await.unwrap() else {
        panic!("under way");
    };
    assert_eq!(checkpoint.positions.len(), 2, "a position per segment");
    assert_eq!(checkpoint.changed, marked as u64);

    // The dry run counts what is left, and writes nothing.
    let dry = RunOptions {
        dry_run: true,
        page_size: Some(2),
        ..RunOptions::default()
    };
    assert_eq!(
        first.run(&migration, &dry).await.unwrap(),
        Outcome::WouldChange {
            items: (users.len() - marked) as u64
        }
    );
    assert_eq!(backfilled(&app).await.0, marked);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let resume = RunOptions {
        page_size: Some(2),
        ..RunOptions::default()
    };
    let next = Migrator::new(table(&app));
    assert_eq!(
        next.run(&migration, &resume).await.unwrap(),
        Outcome::Applied {
            changed: users.len() as u64
        }
    );
    assert_eq!(backfilled(&app).await, (users.len(), true));
    // The resumed run started where the first stopped: no page was read
    // twice, no write attempted twice, not even a conditional one.
    assert_eq!(migration.seen.load(Ordering::SeqCst), users.len() as u64);
    assert_eq!(
        migration.attempts.load(Ordering::SeqCst),
        users.len() as u64
    );
    assert_eq!(
        next.run(&migration, &resume).await.unwrap(),
        Outcome::AlreadyApplied
    );
}

#[tokio::test]
async fn of_two_runners_at_once_only_one_applies() {
    // One holds the lease mid-run while the other tries.
    let app = TestApp::spawn().await;
    seed(&app, &[(Role::User, UserStatus::Active); 5]).await;
    let migration = Backfill::held();
    let hold = migration.hold.as_ref().unwrap();
    let (one, other) = (Migrator::new(table(&app)), Migrator::new(table(&app)));
    let options = paged();
    let (first, second) = tokio::join!(one.run(&migration, &options), async {
        hold.entered.notified().await;
        let second = other.run(&migration, &options).await;
        hold.release.notify_one();
        second
    });
    assert_eq!(first.unwrap(), Outcome::Applied { changed: 5 });
    match second {
        Err(MigrateError::LeaseHeld { owner, .. }) => assert_eq!(owner, one.owner()),
        other => panic!("the lease is held: {other:?}"),
    }
    assert_eq!(backfilled(&app).await, (5, true));
    assert_eq!(
        other.run(&migration, &paged()).await.unwrap(),
        Outcome::AlreadyApplied
    );

    // Two runs of the admin count started together: one applies, the other
    // finds the lease taken or the record applied; the count is made once.
    let app = TestApp::spawn().await;
    seed(&app, &MIX).await;
    let (one, other) = (Migrator::new(table(&app)), Migrator::new(table(&app)));
    let (a, b) = tokio::join!(
        one.run(&AdminCount, &options),
        other.run(&AdminCount, &options)
    );
    let results = [a, b];
    let applied = results
        .iter()
        .filter(|result| matches!(result, Ok(Outcome::Applied { changed: 1 })))
        .count();
    assert_eq!(applied, 1, "{results:?}");
    assert!(
        results.iter().all(|result| matches!(
            result,
            Ok(Outcome::Applied { .. } | Outcome::AlreadyApplied)
                | Err(MigrateError::LeaseHeld { .. })
        )),
        "{results:?}"
    );
    assert_eq!(active_admins(&app).await, Some(active_admins_in(&MIX)));
}

/// Two admins made as the code did before the counter existed.
async fn legacy_admins(app: &TestApp) -> (Session, Session) {
    let (boss, deputy) = (app.signed_up_user().await, app.signed_up_user().await);
    for user in [&boss, &deputy] {
        let id: UserId = user.id.parse().unwrap();
        app.dynamodb
            .update_item()
            .table_name(&app.storage.table_name)
            .set_key(Some(UserItem::key(&id)))
            .update_expression("SET #role = :admin")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":admin", AttributeValue::S(Role::Admin.as_str().into()))
            .send()
            .await
            .unwrap();
    }
    (boss, deputy)
}

#[tokio::test]
async fn the_admin_routes_work_on_migrated_and_unmigrated_tables() {
    for migrated in [true, false] {
        let app = TestApp::spawn().await;
        let (boss, deputy) = legacy_admins(&app).await;
        let migrator = Migrator::new(table(&app));
        if migrated {
            assert_eq!(
                migrator
                    .run(&AdminCount, &RunOptions::default())
                    .await
                    .unwrap(),
                Outcome::Applied { changed: 1 }
            );
            assert_eq!(active_admins(&app).await, Some(2));
        } else {
            assert_eq!(active_admins(&app).await, None);
        }
        let case = if migrated { "migrated" } else { "unmigrated" };
        let list = app.get_as("/api/v1/users", &boss.access_token).await;
        assert_envelope(&list, 200, None);
        let patch = |target: &Session, body: serde_json::Value| {
            let path = format!("/api/v1/users/{}", target.id);
            let token = boss.access_token.clone();
            let app = &app;
            async move { app.send_as("PATCH", &path, &token, Some(body)).await }
        };
        let demoted = patch(&deputy, json!({"role": "user"})).await;
        assert_envelope(&demoted, 200, None);
        assert_eq!(active_admins(&app).await, Some(1), "{case}");
        let last = patch(&boss, json!({"role": "user"})).await;
        assert_envelope(&last, 409, Some("CONFLICT"));
        let promoted = patch(&deputy, json!({"role": "admin"})).await;
        assert_envelope(&promoted, 200, None);
        assert_eq!(active_admins(&app).await, Some(2), "{case}");

        // On the unmigrated table the request made the counter; the
        // migration then finds it, reads nothing and changes nothing.
        let migrations = migrate::all();
        let results = migrator.run_all(&migrations, &RunOptions::default()).await;
        let lines: Vec<String> = results
            .into_iter()
            .map(|(migration, result)| migrate::line(migration, result.unwrap()))
            .collect();
        let expected = if migrated {
            "migration 1 (admin-count): already applied"
        } else {
            "migration 1 (admin-count): applied, 0 items changed"
        };
        // Migration 2 finds every claim with its copies already: these
        // users registered through the current code.
        assert_eq!(
            lines,
            [
                expected,
                "migration 2 (claim-login-copies): applied, 0 items changed"
            ],
            "{case}"
        );
        assert_eq!(active_admins(&app).await, Some(2), "{case}");
    }
}

/// Takes the copies off a user's email claim, as claims were before
/// migration 2.
async fn strip_claim(app: &TestApp, email: &str) {
    app.dynamodb
        .update_item()
        .table_name(&app.storage.table_name)
        .key(
            "pk",
            AttributeValue::S(keys::email_pk(
                &Email::parse("email", email.to_owned()).unwrap(),
            )),
        )
        .key("sk", AttributeValue::S(keys::EMAIL_SK.to_owned()))
        .update_expression("REMOVE passwordHash, #role")
        .expression_attribute_names("#role", "role")
        .send()
        .await
        .expect("stripping the claim");
}

#[tokio::test]
async fn login_copies_reach_older_claims_and_login_works_before_and_after() {
    let app = TestApp::spawn().await;
    let users = [app.signed_up_user().await, app.signed_up_user().await];
    for user in &users {
        strip_claim(&app, &user.email).await;
    }
    let claim = |email: &str| {
        let table = table(&app);
        let email = Email::parse("email", email.to_owned()).unwrap();
        async move { table.email_claim(&email).await.unwrap().unwrap() }
    };
    // The previous release's claims: login reads the user for them.
    let before = app.logged_in(&users[0].email, tests::PASSWORD).await;
    assert_eq!(before.id, users[0].id);
    assert!(claim(&users[0].email).await.password_hash.is_none());
    let refused = app.post_login(&users[0].email, "not-the-password-1").await;
    assert_envelope(&refused, 401, Some("UNAUTHORIZED"));

    let migrator = Migrator::new(table(&app));
    let copies = migrate::ClaimLoginCopies;
    let dry = RunOptions {
        dry_run: true,
        ..RunOptions::default()
    };
    assert_eq!(
        migrator.run(&copies, &dry).await.unwrap(),
        Outcome::WouldChange { items: 2 }
    );
    assert!(
        claim(&users[1].email).await.password_hash.is_none(),
        "a dry run writes nothing"
    );
    assert_eq!(
        migrator.run(&copies, &paged()).await.unwrap(),
        Outcome::Applied { changed: 2 }
    );
    for user in &users {
        let claim = claim(&user.email).await;
        assert!(claim.password_hash.is_some(), "{}", user.email);
        assert_eq!(claim.role, Some(Role::User));
        assert_eq!(
            app.logged_in(&user.email, tests::PASSWORD).await.id,
            user.id
        );
    }
    // A copy already there (a reset wrote it) is never overwritten.
    let stored = table(&app)
        .user(&users[0].id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!table(&app).fill_claim(&stored).await.unwrap());
}
