//! The data of the local stack: what `make dev` keeps across restarts
//! ([`state`]: the app's half of it; the emulator's launcher,
//! infra/python/moto_launcher.py, does the rest) and the demo data `make
//! seed` loads into it through the public API ([`seed`]).
//!
//! Not for production: on AWS the table and the bucket keep their data.

pub mod seed;
pub mod state;
