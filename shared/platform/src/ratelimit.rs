//! Fixed-window rate limits kept in DynamoDB, so every instance of every
//! function counts against the same numbers (docs/API.md §5).
//!
//! One counter per key and window (`model::ratelimit`), bumped with a
//! single atomic `ADD`; the TTL removes old windows. A check is therefore
//! one round trip.

use std::time::Duration;

use model::{
    Table,
    ratelimit::{RateWindows, Window, WindowCount},
};

use crate::{
    config::{ConfigError, Source, present},
    error::AppError,
};

/// At most `max` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn per(max: u32, window_secs: u64) -> Self {
        Self {
            max,
            window: Duration::from_secs(window_secs),
        }
    }

    /// Reads `MAX/SECONDS`, e.g. `10/60` for ten a minute.
    pub fn from_source(
        source: &dyn Source,
        name: &'static str,
        default: Limit,
    ) -> Result<Self, ConfigError> {
        let Some(raw) = present(source, name) else {
            return Ok(default);
        };
        let invalid = || ConfigError::Invalid {
            name,
            reason: format!("expected MAX/SECONDS such as 10/60 (got {raw:?})"),
        };
        let (max, secs) = raw.trim().split_once('/').ok_or_else(invalid)?;
        let max: u32 = max.trim().parse().map_err(|_| invalid())?;
        let secs: u64 = secs.trim().parse().map_err(|_| invalid())?;
        if max == 0 || secs == 0 {
            return Err(invalid());
        }
        Ok(Limit::per(max, secs))
    }
}

/// Every limit of the contract; each configurable by its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_LOGIN`: login attempts per client IP.
    pub login_per_ip: Limit,
    /// `RATE_LIMIT_LOGIN_FAILURES`: failed logins per email.
    pub login_failures_per_email: Limit,
    /// `RATE_LIMIT_FORGOT_PASSWORD`: reset requests per client IP.
    pub forgot_password_per_ip: Limit,
    /// `RATE_LIMIT_FORGOT_PASSWORD_EMAIL`: reset requests per email.
    pub forgot_password_per_email: Limit,
    /// `RATE_LIMIT_DEFAULT`: every other route, per user (or IP when anonymous).
    pub default: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_ip: Limit::per(10, 60),
            login_failures_per_email: Limit::per(5, 15 * 60),
            forgot_password_per_ip: Limit::per(10, 60),
            forgot_password_per_email: Limit::per(3, 3600),
            default: Limit::per(600, 60),
        }
    }
}

impl RateLimitConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            login_per_ip: Limit::from_source(source, "RATE_LIMIT_LOGIN", defaults.login_per_ip)?,
            login_failures_per_email: Limit::from_source(
                source,
                "RATE_LIMIT_LOGIN_FAILURES",
                defaults.login_failures_per_email,
            )?,
            forgot_password_per_ip: Limit::from_source(
                source,
                "RATE_LIMIT_FORGOT_PASSWORD",
                defaults.forgot_password_per_ip,
            )?,
            forgot_password_per_email: Limit::from_source(
                source,
                "RATE_LIMIT_FORGOT_PASSWORD_EMAIL",
                defaults.forgot_password_per_email,
            )?,
            default: Limit::from_source(source, "RATE_LIMIT_DEFAULT", defaults.default)?,
        })
    }
}

/// Where a key stands in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset_after_secs: u64,
}

impl RateStatus {
    pub fn exceeded(&self) -> AppError {
        AppError::RateLimited {
            retry_after_secs: self.reset_after_secs.max(1),
        }
    }
}

/// A slot taken from a key's window, until it is given back or the
/// window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a slot that is not kept is given back"]
pub struct Slot {
    key: String,
    window: Window,
}

/// Counts hits per key in the table.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    table: Table,
}

fn status(limit: Limit, counted: WindowCount) -> RateStatus {
    RateStatus {
        limit: limit.max,
        remaining: (limit.max as u64).saturating_sub(counted.count) as u32,
        reset_after_secs: counted.reset_after_secs,
    }
}

impl RateLimiter {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Counts one hit on `key`; over the limit is a 429 with `Retry-After`.
    pub async fn hit(&self, key: &str, limit: Limit) -> Result<RateStatus, AppError> {
        let counted = self.add(key, limit).await?;
        if counted.count > limit.max as u64 {
            return Err(status(limit, counted).exceeded());
        }
        Ok(status(limit, counted))
    }

    /// Takes one of `key`'s slots in the current window before the thing
    /// it limits is tried, or refuses with 429 when none is left. Taking
    /// is one conditional write, so N concurrent attempts get at most
    /// `limit.max` slots whatever their timing; an attempt that turns out
    /// not to count gives its slot back (`give_back`).
    pub async fn take(&self, key: &str, limit: Limit) -> Result<Slot, AppError> {
        let max = u64::from(limit.max);
        match self
            .table
            .take_slot(key, limit.window.as_secs(), max)
            .await?
        {
            Ok(window) => Ok(Slot {
                key: key.to_owned(),
                window,
            }),
            Err(window) => Err(AppError::RateLimited {
                retry_after_secs: window.reset_after_secs.max(1),
            }),
        }
    }

    /// Returns a slot to the window it was taken from. A slot that cannot
    /// be returned only makes the limit stricter until its window ends, so
    /// the failure is logged rather than failing a request that succeeded.
    pub async fn give_back(&self, slot: Slot) {
        if let Err(err) = self.table.return_slot(&slot.key, slot.window).await {
            tracing::warn!(error = %crate::error::ErrorChain(&err), "rate-limit slot not given back");
        }
    }

    async fn add(&self, key: &str, limit: Limit) -> Result<WindowCount, AppError> {
        Ok(self.table.count_hit(key, limit.window.as_secs()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn limits_parse_max_per_seconds() {
        let config = RateLimitConfig::from_source(&source(&[("RATE_LIMIT_LOGIN", "3/2")])).unwrap();
        assert_eq!(config.login_per_ip, Limit::per(3, 2));
        assert_eq!(config.default, Limit::per(600, 60));
        for bad in ["3", "a/2", "3/b", "0/60", "3/0", "-1/60"] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("RATE_LIMIT_DEFAULT", bad)]));
            let err = RateLimitConfig::from_source(&source(pairs)).unwrap_err();
            assert!(
                err.to_string().contains("RATE_LIMIT_DEFAULT"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn remaining_never_goes_below_zero() {
        let counted = |count| WindowCount {
            count,
            reset_after_secs: 5,
        };
        assert_eq!(status(Limit::per(10, 60), counted(12)).remaining, 0);
        assert_eq!(status(Limit::per(10, 60), counted(3)).remaining, 7);
        assert_eq!(status(Limit::per(10, 60), counted(3)).reset_after_secs, 5);
    }

    #[test]
    fn retry_after_is_the_time_to_the_window_end_and_never_zero() {
        for reset_after_secs in [0, 1, 2, 37, 900] {
            let refused = RateStatus {
                limit: 10,
                remaining: 0,
                reset_after_secs,
            }
            .exceeded();
            let AppError::RateLimited { retry_after_secs } = refused else {
                panic!("expected 429, got {refused:?}");
            };
            assert_eq!(retry_after_secs, reset_after_secs.max(1));
            let response = axum::response::IntoResponse::into_response(refused);
            assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
            let header: u64 = response.headers()[http::header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(header, retry_after_secs);
            assert!(header >= 1);
        }
    }
}
