//! Query-string parameters and pagination input (`?limit&cursor`).
//!
//! axum's `Query` answers a malformed query with its own plain-text 400;
//! this reader never fails on its own, and each parameter is parsed into a
//! typed value whose failure is a 400 envelope naming it.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::{
    cursor::{Cursor, CursorCodec},
    error::AppError,
};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The decoded query string; the last value of a repeated key wins, as in
/// API Gateway's `queryStringParameters`.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams(
            parts
                .uri
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        ))
    }
}

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `?limit` in 1..=100, 20 when absent.
    pub fn limit(&self) -> Result<u32, AppError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
                _ => Err(AppError::BadRequest(format!(
                    "Query parameter limit must be an integer from 1 to {MAX_LIMIT}"
                ))),
            },
        }
    }

    /// `?cursor` decoded for `list`; absent means the first page.
    pub fn cursor(&self, codec: &CursorCodec, list: &str) -> Result<Option<Cursor>, AppError> {
        self.get("cursor")
            .map(|raw| codec.decode(list, raw))
            .transpose()
    }

    /// `?name=true|false`, absent is `None`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, AppError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(AppError::BadRequest(format!(
                "Query parameter {name} must be true or false"
            ))),
        }
    }
}

/// One page request: how many, and where to resume.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    /// The page as a store reads it.
    pub fn page(&self) -> model::Page {
        model::Page {
            limit: self.limit,
            start: self.cursor.clone().map(|cursor| cursor.0),
        }
    }

    pub fn from_query(
        query: &QueryParams,
        codec: &CursorCodec,
        list: &str,
    ) -> Result<Self, AppError> {
        Ok(Self {
            limit: query.limit()?,
            cursor: query.cursor(codec, list)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn limits_outside_the_range_are_bad_requests() {
        assert_eq!(query(&[]).limit().unwrap(), 20);
        assert_eq!(query(&[("limit", "1")]).limit().unwrap(), 1);
        assert_eq!(query(&[("limit", "100")]).limit().unwrap(), 100);
        for bad in ["0", "101", "-1", "abc", "", "1.5", "99999999999999999999"] {
            assert!(
                matches!(
                    query(&[("limit", bad)]).limit(),
                    Err(AppError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags_are_strict() {
        assert_eq!(
            query(&[("unread", "true")]).flag("unread").unwrap(),
            Some(true)
        );
        assert_eq!(query(&[]).flag("unread").unwrap(), None);
        assert!(query(&[("unread", "yes")]).flag("unread").is_err());
    }

    #[test]
    fn a_bad_cursor_is_a_bad_request() {
        let codec = CursorCodec::new(b"k");
        assert!(matches!(
            query(&[("cursor", "junk")]).cursor(&codec, "users"),
            Err(AppError::BadRequest(_))
        ));
        assert!(query(&[]).cursor(&codec, "users").unwrap().is_none());
    }
}
