//! Fixed-window rate limits kept in DynamoDB, so every instance of every
//! function counts against the same numbers (docs/API.md §5).
//!
//! One counter per key and window (`model::ratelimit`), bumped with a
//! single atomic `ADD`; the TTL removes old windows. A check is therefore
//! one round trip.

use std::time::Duration;

use model::{
    Table,
    ratelimit::{RateWindows, WindowCount},
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
    /// `RATE_LIMIT_DEFAULT`: every other route, per user (or IP when anonymous).
    pub default: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_ip: Limit::per(10, 60),
            login_failures_per_email: Limit::per(5, 15 * 60),
            forgot_password_per_ip: Limit::per(10, 60),
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

    /// Counts one hit without refusing: for counters checked elsewhere
    /// (failed logins are counted after the fact, checked before).
    pub async fn record(&self, key: &str, limit: Limit) -> Result<RateStatus, AppError> {
        Ok(status(limit, self.add(key, limit).await?))
    }

    /// Refuses when `key` has used up its window, without counting a hit.
    pub async fn check(&self, key: &str, limit: Limit) -> Result<RateStatus, AppError> {
        let counted = self.table.window_count(key, limit.window.as_secs()).await?;
        let current = status(limit, counted);
        if counted.count >= limit.max as u64 {
            return Err(current.exceeded());
        }
        Ok(current)
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
}
