//! Typed configuration, read from the environment once at cold start.
//!
//! Each function reads only the sections it needs, so the health function
//! never holds the JWT secret. A missing or malformed variable fails start-up
//! with a message naming it; secrets are `SecretString` so they never reach a
//! log through `Debug`.

use std::{str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: &'static str },
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Where variables come from: the process environment in production, a map
/// in tests (tests never mutate the process environment).
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Source for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The value of `name`; blank counts as unset.
pub fn present(source: &dyn Source, name: &'static str) -> Option<String> {
    source.get(name).filter(|value| !value.trim().is_empty())
}

/// The value of `name`, which must be set.
pub fn required(source: &dyn Source, name: &'static str) -> Result<String, ConfigError> {
    present(source, name).ok_or(ConfigError::Missing { name })
}

fn parsed_or<T>(source: &dyn Source, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match present(source, name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|err: T::Err| ConfigError::Invalid {
                name,
                reason: format!("{err} (got {raw:?})"),
            }),
    }
}

/// A whole number in `1..=max` of `unit`s, or `default` when unset.
pub fn positive_or(
    source: &dyn Source,
    name: &'static str,
    default: u64,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    match present(source, name) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(value) if (1..=max).contains(&value) => Ok(value),
            _ => Err(ConfigError::Invalid {
                name,
                reason: if max == u64::MAX {
                    format!("expected a positive number of {unit} (got {raw:?})")
                } else {
                    format!("expected a positive number of {unit} up to {max} (got {raw:?})")
                },
            }),
        },
    }
}

/// An `http(s)://` URL without a trailing slash; `default` when unset
/// (`None`: the variable is required).
pub fn http_url(
    source: &dyn Source,
    name: &'static str,
    default: Option<&str>,
) -> Result<String, ConfigError> {
    let url = match (present(source, name), default) {
        (Some(url), _) => url.trim().to_owned(),
        (None, Some(default)) => default.to_owned(),
        (None, None) => return Err(ConfigError::Missing { name }),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(' ') {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("expected an http(s) URL (got {url:?})"),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A positive number of seconds, or `default` seconds when unset.
pub fn positive_secs_or(
    source: &dyn Source,
    name: &'static str,
    default: u64,
) -> Result<std::time::Duration, ConfigError> {
    positive_or(source, name, default, u64::MAX, "seconds").map(std::time::Duration::from_secs)
}

fn bool_or(source: &dyn Source, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match present(source, name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false (got {v:?})"),
        }),
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `TABLE_NAME`: the single DynamoDB table.
    pub table_name: String,
    /// `BUCKET_NAME`: the private uploads bucket.
    pub bucket_name: String,
    /// `S3_FORCE_PATH_STYLE`: emulators serve buckets by path, not by host.
    pub s3_force_path_style: bool,
}

impl StorageConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Just `TABLE_NAME`, for tools that touch nothing else.
    pub fn table_name(source: &dyn Source) -> Result<String, ConfigError> {
        required(source, "TABLE_NAME")
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(source, "TABLE_NAME")?,
            bucket_name: required(source, "BUCKET_NAME")?,
            s3_force_path_style: bool_or(source, "S3_FORCE_PATH_STYLE", false)?,
        })
    }
}

/// Token signing and lifetimes.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `JWT_SECRET`: at least 32 bytes, as HS256 wants a key as long as its hash.
    pub secret: SecretString,
    /// `JWT_ISSUER`.
    pub issuer: String,
    /// `JWT_AUDIENCE`.
    pub audience: String,
    /// `ACCESS_TOKEN_TTL_SECS`, 15 minutes by default.
    pub access_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS`, 7 days by default.
    pub refresh_ttl: Duration,
}

pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl JwtConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let secret = required(source, "JWT_SECRET")?;
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes (got {})",
                    secret.len()
                ),
            });
        }
        let access = parsed_or::<u64>(source, "ACCESS_TOKEN_TTL_SECS", 15 * 60)?;
        let refresh = parsed_or::<u64>(source, "REFRESH_TOKEN_TTL_SECS", 7 * 24 * 3600)?;
        for (name, value) in [
            ("ACCESS_TOKEN_TTL_SECS", access),
            ("REFRESH_TOKEN_TTL_SECS", refresh),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be greater than 0".into(),
                });
            }
        }
        Ok(Self {
            secret: SecretString::from(secret),
            issuer: present(source, "JWT_ISSUER").unwrap_or_else(|| "social-api".into()),
            audience: present(source, "JWT_AUDIENCE").unwrap_or_else(|| "social-app".into()),
            access_ttl: Duration::from_secs(access),
            refresh_ttl: Duration::from_secs(refresh),
        })
    }

    pub fn secret_bytes(&self) -> &[u8] {
        self.secret.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn urls_are_http_and_lose_their_trailing_slash() {
        let read = |raw: &str, default| http_url(&source(&[("U", raw)]), "U", default);
        assert_eq!(read("https://a.test/x/", None).unwrap(), "https://a.test/x");
        assert_eq!(read(" http://a.test ", None).unwrap(), "http://a.test");
        assert_eq!(read("", Some("http://d.test")).unwrap(), "http://d.test");
        assert_eq!(read("", None), Err(ConfigError::Missing { name: "U" }));
        for bad in ["a.test", "ftp://a.test", "http://a b"] {
            let err = read(bad, None).unwrap_err();
            assert!(err.to_string().contains("U"), "{bad}: {err}");
        }
    }

    #[test]
    fn positive_numbers_are_bounded_and_named() {
        let read = |raw: &str| positive_or(&source(&[("N", raw)]), "N", 7, 10, "bytes");
        assert_eq!(read(""), Ok(7));
        assert_eq!(read(" 10 "), Ok(10));
        assert_eq!(read("1"), Ok(1));
        for bad in ["0", "11", "-1", "x", "1.5"] {
            let err = read(bad).unwrap_err();
            assert!(err.to_string().contains("N"), "{bad}: {err}");
            assert!(err.to_string().contains("up to 10"), "{bad}: {err}");
        }
        let secs = positive_secs_or(&source(&[("S", "90")]), "S", 5).unwrap();
        assert_eq!(secs.as_secs(), 90);
        assert_eq!(positive_secs_or(&source(&[]), "S", 5).unwrap().as_secs(), 5);
        let err = positive_secs_or(&source(&[("S", "0")]), "S", 5).unwrap_err();
        assert!(
            err.to_string().contains("positive number of seconds"),
            "{err}"
        );
    }

    #[test]
    fn storage_names_the_missing_variable() {
        let err = StorageConfig::from_source(&source(&[("BUCKET_NAME", "b")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "TABLE_NAME" });
        assert!(err.to_string().contains("TABLE_NAME"));
        let err = StorageConfig::from_source(&source(&[("TABLE_NAME", "t"), ("BUCKET_NAME", " ")]))
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "BUCKET_NAME"
            }
        );
    }

    #[test]
    fn flags_read_both_ways_and_errors_print_their_message() {
        let flag = |raw: &str| bool_or(&source(&[("F", raw)]), "F", true);
        for yes in ["1", "true", "YES"] {
            assert_eq!(flag(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "No"] {
            assert_eq!(flag(no), Ok(false), "{no}");
        }
        assert_eq!(flag(""), Ok(true));
        let err = flag("maybe").unwrap_err();
        // `main` returns this error: its Debug is what the log shows.
        assert_eq!(format!("{err:?}"), err.to_string());
        assert!(format!("{err:?}").contains("F"));
    }

    #[test]
    fn the_process_environment_is_a_source() {
        // PATH is set wherever tests run; setting a variable would race
        // the other tests of this binary.
        assert_eq!(ProcessEnv.get("PATH"), std::env::var("PATH").ok());
        assert!(ProcessEnv.get("PATH").is_some_and(|path| !path.is_empty()));
    }

    #[test]
    fn tools_read_just_the_table_name() {
        let only_table = source(&[("TABLE_NAME", " t ")]);
        assert_eq!(StorageConfig::table_name(&only_table).unwrap(), " t ");
        assert_eq!(
            StorageConfig::table_name(&source(&[])),
            Err(ConfigError::Missing { name: "TABLE_NAME" })
        );
    }

    #[test]
    fn storage_rejects_a_malformed_flag() {
        let err = StorageConfig::from_source(&source(&[
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            ("S3_FORCE_PATH_STYLE", "maybe"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("S3_FORCE_PATH_STYLE"), "{err}");
        let ok = StorageConfig::from_source(&source(&[
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            ("S3_FORCE_PATH_STYLE", "true"),
        ]))
        .unwrap();
        assert!(ok.s3_force_path_style);
    }

    #[test]
    fn a_short_jwt_secret_is_refused_by_name() {
        let err = JwtConfig::from_source(&source(&[("JWT_SECRET", "short")])).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: "JWT_SECRET",
                    ..
                }
            ),
            "{err}"
        );
        let err = JwtConfig::from_source(&source(&[])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "JWT_SECRET" });
    }

    #[test]
    fn jwt_defaults_follow_the_contract() {
        let config = JwtConfig::from_source(&source(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(config.access_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_ttl, Duration::from_secs(604_800));
    }

    #[test]
    fn bad_ttls_are_named() {
        let err = JwtConfig::from_source(&source(&[
            ("JWT_SECRET", SECRET),
            ("ACCESS_TOKEN_TTL_SECS", "soon"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("ACCESS_TOKEN_TTL_SECS"), "{err}");
        let err = JwtConfig::from_source(&source(&[
            ("JWT_SECRET", SECRET),
            ("REFRESH_TOKEN_TTL_SECS", "0"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("REFRESH_TOKEN_TTL_SECS"), "{err}");
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let config = JwtConfig::from_source(&source(&[("JWT_SECRET", SECRET)])).unwrap();
        assert!(!format!("{config:?}").contains(SECRET));
    }
}
