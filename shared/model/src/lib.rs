//! The data model of the single DynamoDB table: the domain values every
//! layer passes around (`domain`), every item type with its key, entity and
//! index names (`keys`), and one store per capability: a trait with its
//! DynamoDB implementation on `Table`.
//!
//! Nothing here knows HTTP or Lambda. A store answers with its own
//! `StoreError` (unavailable, throttled, a named `Condition` failed,
//! internal); the platform's one error table decides what each means to a
//! client. A failed transaction is decoded from its cancellation reasons
//! into the condition of the item that failed.

pub mod clock;
pub mod connections;
pub mod domain;
pub mod error;
pub mod idempotency;
pub mod keys;
pub mod notifications;
pub mod outbox;
pub mod patterns;
pub mod posts;
pub mod ratelimit;
pub mod sessions;
pub mod table;
pub mod uploads;
pub mod users;

pub use error::{Condition, StoreError};
pub use table::{Item, Page, Table};
