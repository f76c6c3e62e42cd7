//! Domain values parsed once at the edge: `Email`, `Password`, `Name`,
//! `UserId`, `Role`, `UserStatus`. Their constructors are the only way in,
//! so a handler holding one knows it follows the rules of API.md.
//!
//! Parsers return a `FieldError` naming the field, so a request body can
//! collect every failure into one 422.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldCode, FieldError};

/// Collects the failures of one body so a 422 names every field at once.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a required field, remembering why it failed.
    pub fn required<T>(
        &mut self,
        field: &str,
        value: Option<String>,
        parse: impl FnOnce(&str, String) -> Result<T, FieldError>,
    ) -> Option<T> {
        match value {
            None => {
                self.0
                    .push(FieldError::new(field, FieldCode::Required, "is required"));
                None
            }
            Some(value) => self.check(parse(field, value)),
        }
    }

    /// Parses an optional field.
    pub fn optional<T>(
        &mut self,
        field: &str,
        value: Option<String>,
        parse: impl FnOnce(&str, String) -> Result<T, FieldError>,
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(value) => self.check(parse(field, value)).map(Some),
        }
    }

    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.0.push(err);
                None
            }
        }
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing failed, else every failure.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => Err(vec![FieldError::new(
                "body",
                FieldCode::Required,
                "is incomplete",
            )]),
            _ => Err(self.0),
        }
    }
}

fn char_count(value: &str) -> usize {
    value.chars().count()
}

/// Checks a length in characters (not bytes) within `min..=max`.
pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let count = char_count(value);
    if count < min {
        let message = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        };
        return Err(FieldError::new(field, FieldCode::TooShort, message));
    }
    if count > max {
        return Err(FieldError::new(
            field,
            FieldCode::TooLong,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Rejects NUL and other control characters except line breaks and tabs:
/// they have no place in names or text and break downstream consumers.
pub fn no_control_chars(field: &str, value: &str) -> Result<(), FieldError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            FieldCode::InvalidFormat,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A trimmed, lower-cased email address of at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

pub const EMAIL_MAX: usize = 254;

impl Email {
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(FieldError::new(field, FieldCode::Required, "is required"));
        }
        if char_count(&email) > EMAIL_MAX {
            return Err(FieldError::new(
                field,
                FieldCode::TooLong,
                format!("must be at most {EMAIL_MAX} characters"),
            ));
        }
        let invalid = || {
            FieldError::new(
                field,
                FieldCode::InvalidFormat,
                "must be a valid email address",
            )
        };
        // email_address implements RFC 5322's addr-spec; on top of it we
        // require a dotted domain and no quoted or bracketed forms, which no
        // mail provider a user signs up with hands out.
        let parsed = email_address::EmailAddress::parse_with_options(
            &email,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .map_err(|_| invalid())?;
        let domain = parsed.domain();
        let local = parsed.local_part();
        if local.starts_with('"')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || !email.is_ascii()
        {
            return Err(invalid());
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse("email", value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password of 8–128 characters with at least one letter and one digit.
/// Deliberately not `Debug`-printable and not serialisable.
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        length(field, &raw, 8, 128)?;
        let has_letter = raw.chars().any(char::is_alphabetic);
        let has_digit = raw.chars().any(|c| c.is_ascii_digit());
        if !has_letter || !has_digit {
            return Err(FieldError::new(
                field,
                FieldCode::WeakPassword,
                "must contain at least one letter and one digit",
            ));
        }
        Ok(Password(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A display name of 2–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let name = raw.trim();
        length(field, name, 2, 100)?;
        no_control_chars(field, name)?;
        Ok(Name(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A ULID naming any resource; user ids, post ids and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(ulid::Ulid);

/// The id of a user.
pub type UserId = Id;

impl Id {
    pub fn new() -> Self {
        Id(ulid::Ulid::new())
    }

    /// Parses a path parameter; anything but a ULID cannot name a resource,
    /// so it is a 404 rather than a validation error.
    pub fn from_path(raw: &str) -> Result<Self, AppError> {
        raw.parse::<ulid::Ulid>()
            .map(Id)
            .map_err(|_| AppError::NotFound("Resource not found".into()))
    }

    /// Parses an id given in a body or query.
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        raw.trim()
            .parse::<ulid::Ulid>()
            .map(Id)
            .map_err(|_| FieldError::new(field, FieldCode::InvalidFormat, "must be a valid id"))
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        match raw.as_str() {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err(FieldError::new(
                field,
                FieldCode::NotAllowed,
                "must be one of: user, admin",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Suspended,
    Deleted,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Deleted => "deleted",
        }
    }

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        match raw.as_str() {
            "active" => Ok(UserStatus::Active),
            "suspended" => Ok(UserStatus::Suspended),
            "deleted" => Ok(UserStatus::Deleted),
            _ => Err(FieldError::new(
                field,
                FieldCode::NotAllowed,
                "must be one of: active, suspended, deleted",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &str) -> Result<Email, FieldCode> {
        Email::parse("email", raw.to_owned()).map_err(|e| e.code)
    }

    fn password(raw: &str) -> Result<(), FieldCode> {
        Password::parse("password", raw.to_owned())
            .map(|_| ())
            .map_err(|e| e.code)
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(
            email("a.b+tag@sub.example.org").unwrap().as_str(),
            "a.b+tag@sub.example.org"
        );
    }

    #[test]
    fn bad_emails_are_refused_with_their_reason() {
        for bad in [
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.com",
            "a@b..com",
            "a@.b.com",
            "\"q\"@b.com",
            "a@[1.2.3.4]",
            "Alice <a@b.com>",
            "a@b.com\0",
        ] {
            assert_eq!(email(bad), Err(FieldCode::InvalidFormat), "{bad:?}");
        }
        assert_eq!(email("   "), Err(FieldCode::Required));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(email(&long), Err(FieldCode::TooLong));
    }

    #[test]
    fn passwords_follow_the_rules() {
        assert!(password("abcdefg1").is_ok());
        assert!(password(&format!("a1{}", "x".repeat(126))).is_ok());
        assert_eq!(password("abc1"), Err(FieldCode::TooShort));
        assert_eq!(
            password(&format!("a1{}", "x".repeat(127))),
            Err(FieldCode::TooLong)
        );
        assert_eq!(password("abcdefgh"), Err(FieldCode::WeakPassword));
        assert_eq!(password("12345678"), Err(FieldCode::WeakPassword));
        assert!(
            !format!("{:?}", Password::parse("p", "secret123".into()).unwrap()).contains("secret")
        );
    }

    #[test]
    fn names_count_characters_after_trimming() {
        assert_eq!(
            Name::parse("name", "  Al ".into()).unwrap().into_inner(),
            "Al"
        );
        assert_eq!(
            Name::parse("name", " A ".into()).unwrap_err().code,
            FieldCode::TooShort
        );
        assert!(Name::parse("name", "é".repeat(100)).is_ok());
        assert_eq!(
            Name::parse("name", "é".repeat(101)).unwrap_err().code,
            FieldCode::TooLong
        );
        assert_eq!(
            Name::parse("name", "Al\0ice".into()).unwrap_err().code,
            FieldCode::InvalidFormat
        );
    }

    #[test]
    fn ids_are_ulids() {
        let id = Id::new();
        assert_eq!(Id::from_path(&id.to_string()).unwrap(), id);
        assert!(matches!(
            Id::from_path("../etc/passwd"),
            Err(AppError::NotFound(_))
        ));
        assert_eq!(
            Id::parse("uploadId", "nope".into()).unwrap_err().code,
            FieldCode::InvalidFormat
        );
    }

    #[test]
    fn field_errors_collect_every_failure() {
        let mut errors = FieldErrors::new();
        let name = errors.required("name", None, Name::parse);
        let email = errors.required("email", Some("bad".into()), Email::parse);
        let password = errors.required("password", Some("abcdefg1".into()), Password::parse);
        assert!(name.is_none() && email.is_none() && password.is_some());
        let failures = errors.finish(Some(())).unwrap_err();
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].code, FieldCode::Required);
        assert_eq!(failures[1].field, "email");
    }
}
