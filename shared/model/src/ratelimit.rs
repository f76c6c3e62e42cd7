//! Rate-limit windows (`RateWindows`): a counter per key and fixed window,
//! `pk = RATE#<key>`, `sk = W#<seconds>#<index>`, expiring a minute after
//! its window ends. What a limit is and what to answer when it is hit is
//! the platform's; this counts.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::{
    clock::unix_now,
    error::{StoreError, dynamo},
    keys::{self, TTL},
    table::{Item, Table, key},
};

/// The window of `length_secs` that holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub length_secs: u64,
    pub index: u64,
    /// Seconds until the next window starts.
    pub reset_after_secs: u64,
    /// When DynamoDB may delete the counter (epoch seconds).
    pub expires_at: u64,
}

impl Window {
    pub fn current(length_secs: u64) -> Self {
        Self::at(unix_now(), length_secs)
    }

    pub fn at(now: u64, length_secs: u64) -> Self {
        let length_secs = length_secs.max(1);
        let index = now / length_secs;
        let end = (index + 1) * length_secs;
        Self {
            length_secs,
            index,
            reset_after_secs: end - now,
            expires_at: end + 60,
        }
    }
}

/// Hits counted in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u64,
    pub reset_after_secs: u64,
}

/// Counting hits per key and window.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait RateWindows {
    /// Adds one hit to `key`'s current window and returns its count.
    async fn count_hit(&self, key: &str, length_secs: u64) -> Result<WindowCount, StoreError>;
    /// Adds one hit to `key`'s current window only if fewer than `max`
    /// are counted there: the check and the count are one conditional
    /// write, so concurrent callers never get more than `max` slots.
    /// `Ok(Err(window))` when the window is full.
    async fn take_slot(
        &self,
        key: &str,
        length_secs: u64,
        max: u64,
    ) -> Result<Result<Window, Window>, StoreError>;
    /// Gives back a slot taken in `window` (not the current one: a window
    /// that has rolled over must not gain a slot it never lost).
    async fn return_slot(&self, key: &str, window: Window) -> Result<(), StoreError>;
}

fn count_of(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> Option<u64> {
    match item?.get("count") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

impl RateWindows for Table {
    async fn count_hit(&self, rate_key: &str, length_secs: u64) -> Result<WindowCount, StoreError> {
        let window = Window::current(length_secs);
        let output = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(window_key(rate_key, &window)))
            .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ttl", AttributeValue::N(window.expires_at.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(WindowCount {
            count: count_of(output.attributes.as_ref()).unwrap_or(1),
            reset_after_secs: window.reset_after_secs,
        })
    }

    async fn take_slot(
        &self,
        rate_key: &str,
        length_secs: u64,
        max: u64,
    ) -> Result<Result<Window, Window>, StoreError> {
        let window = Window::current(length_secs);
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(window_key(rate_key, &window)))
            .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(#count) OR #count < :max")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(window.expires_at.to_string()))
            .send()
            .await
            .map_err(dynamo);
        match result {
            Ok(_) => Ok(Ok(window)),
            Err(StoreError::Condition(_)) => Ok(Err(window)),
            Err(err) => Err(err),
        }
    }

    async fn return_slot(&self, rate_key: &str, window: Window) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(window_key(rate_key, &window)))
            .update_expression("ADD #count :minus_one")
            // A window TTL has removed, or one at zero, stays as it is:
            // giving back must never create capacity.
            .condition_expression("#count > :zero")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":minus_one", AttributeValue::N("-1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .map_err(dynamo);
        match result {
            Ok(_) | Err(StoreError::Condition(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

fn window_key(rate_key: &str, window: &Window) -> Item {
    key(
        keys::rate_pk(rate_key),
        keys::rate_window_sk(window.length_secs, window.index),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_and_reset_at_their_end() {
        let window = Window::at(125, 60);
        assert_eq!(window.index, 2);
        assert_eq!(window.reset_after_secs, 55);
        assert_eq!(window.expires_at, 240);
        assert_eq!(Window::at(120, 60).reset_after_secs, 60);
        assert_eq!(Window::at(5, 0).length_secs, 1);
    }

    #[test]
    fn a_window_holds_now_and_its_counter_expires_a_minute_after_it_ends() {
        for length in [1, 2, 3, 7, 60, 900, 3600] {
            for now in [0, 1, 59, 60, 61, 125, 899, 900, 3600, 1_700_000_059] {
                let window = Window::at(now, length);
                let start = window.index * length;
                let end = start + length;
                assert!((start..end).contains(&now), "{now} in {window:?}");
                assert!(
                    (1..=length).contains(&window.reset_after_secs),
                    "{now}: {window:?}"
                );
                assert_eq!(now + window.reset_after_secs, end, "{now}: {window:?}");
                assert_eq!(window.expires_at, end + 60, "{now}: {window:?}");
            }
        }
    }

    #[test]
    fn the_current_window_is_the_window_of_now() {
        let before = unix_now();
        let window = Window::current(60);
        let after = unix_now();
        assert!(
            (before..=after).any(|now| Window::at(now, 60) == window),
            "{window:?}"
        );
    }

    #[test]
    fn a_count_is_read_from_a_numeric_count_attribute_only() {
        let count = |value: Option<AttributeValue>| {
            let item: std::collections::HashMap<_, _> = value
                .map(|value| ("count".to_owned(), value))
                .into_iter()
                .collect();
            count_of(Some(&item))
        };
        assert_eq!(count(Some(AttributeValue::N("7".into()))), Some(7));
        assert_eq!(count(Some(AttributeValue::N("0".into()))), Some(0));
        assert_eq!(count(Some(AttributeValue::S("7".into()))), None);
        assert_eq!(count(Some(AttributeValue::N("x".into()))), None);
        assert_eq!(count(None), None);
        assert_eq!(count_of(None), None);
    }

    #[test]
    fn a_counter_is_keyed_by_its_rate_key_window_length_and_index() {
        let ip = "login:ip:192.0.2.1";
        let at = |now, length| window_key(ip, &Window::at(now, length));
        let counter = at(125, 60);
        assert_eq!(counter, at(179, 60), "one counter per window");
        assert_eq!(counter[keys::PK].as_s().unwrap(), &keys::rate_pk(ip));
        assert_eq!(
            counter[keys::SK].as_s().unwrap(),
            &keys::rate_window_sk(60, Window::at(125, 60).index)
        );
        let other_key = window_key("login:ip:192.0.2.2", &Window::at(125, 60));
        for other in [at(180, 60), at(125, 900), other_key] {
            assert_ne!(other, counter);
        }
    }
}
