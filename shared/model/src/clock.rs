//! The clock every item is stamped with: epoch seconds for TTLs and
//! expiries, RFC 3339 with milliseconds for the timestamps clients read.

use chrono::{SecondsFormat, Utc};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch: session creation is compared at this
/// grain, so a session made in the second of a password reset survives it
/// only if it came after.
pub fn unix_now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Now as `docs/API.md` spells timestamps: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
