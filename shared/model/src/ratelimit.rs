//! Rate-limit windows (`RateWindows`): a counter per key and fixed window,
//! `pk = RATE#<key>`, `sk = W#<seconds>#<index>`, expiring a minute after
//! its window ends. What a limit is and what to answer when it is hit is
//! the platform's; this counts.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::{
    clock::unix_now,
    error::{StoreError, dynamo},
    keys::{self, TTL},
    table::{Table, key},
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
    /// The count of `key`'s current window, without adding a hit.
    async fn window_count(&self, key: &str, length_secs: u64) -> Result<WindowCount, StoreError>;
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
            .set_key(Some(key(
                keys::rate_pk(rate_key),
                keys::rate_window_sk(window.length_secs, window.index),
            )))
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

    async fn window_count(
        &self,
        rate_key: &str,
        length_secs: u64,
    ) -> Result<WindowCount, StoreError> {
        let window = Window::current(length_secs);
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(
                keys::rate_pk(rate_key),
                keys::rate_window_sk(window.length_secs, window.index),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(WindowCount {
            count: count_of(output.item.as_ref()).unwrap_or(0),
            reset_after_secs: window.reset_after_secs,
        })
    }
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
}
