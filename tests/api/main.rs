//! One test binary for the whole API (one link of the AWS SDK, one shared
//! emulator). Each module covers a route group or a piece of the stack.

mod auth;
mod edge;
mod faults;
mod filters;
mod floors;
mod gateway;
mod health;
mod hostile;
mod iam;
mod lambdas;
mod lifecycle;
mod migrate;
mod notifications;
mod openapi;
mod outbox;
mod posts;
mod realtime;
mod refused;
mod revocation;
mod sam_local;
mod samples;
mod store;
mod uploads;
mod users;
mod wiring;
