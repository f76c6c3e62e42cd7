//! Domain values parsed once at the edge: ids, `Email`, `Password`, `Name`,
//! `Role`, `UserStatus`, `Tag`, `Title`, `Room`, `ChatText`, `Version` and
//! the texts of posts and comments. Their constructors are the only way in,
//! so code holding one knows it follows the rules of docs/API.md, and the
//! stores take nothing else.
//!
//! Parsers return a `FieldError` naming the field, so a request body can
//! collect every failure into one 422.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The code of one entry of `errors[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldCode {
    Required,
    InvalidFormat,
    TooShort,
    TooLong,
    OutOfRange,
    NotAllowed,
    Mismatch,
    WeakPassword,
}

/// One failing field of a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub code: FieldCode,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: FieldCode, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            code,
        }
    }
}

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

/// A trimmed, lower-cased email address of at most 254 characters. It
/// reads back from an item without a check, as only `parse` ever made one:
/// a rule tightened later must not turn stored users into 500s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id that is a ULID: made here, or parsed from a client or an item.
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(ulid::Ulid);

        impl $name {
            /// A new id; ULIDs sort by creation time.
            pub fn new() -> Self {
                Self(ulid::Ulid::new())
            }

            /// Parses an id given in a body or query.
            pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
                raw.trim().parse().map_err(|_| {
                    FieldError::new(field, FieldCode::InvalidFormat, "must be a valid id")
                })
            }

            /// The last character of the id, from its random part.
            pub fn last_byte(&self) -> u8 {
                self.0.to_string().as_bytes().last().copied().unwrap_or(0)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = ulid::DecodeError;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                raw.parse::<ulid::Ulid>().map(Self)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ulid::DecodeError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                raw.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

ulid_id!(
    /// The id of a user.
    UserId
);
ulid_id!(
    /// The id of a session (the `sid` of its tokens).
    SessionId
);
ulid_id!(
    /// The id of a post.
    PostId
);
ulid_id!(
    /// The id of a comment.
    CommentId
);
ulid_id!(
    /// The id of a notification.
    NotificationId
);
ulid_id!(
    /// The id of an upload.
    UploadId
);
ulid_id!(
    /// The id of a chat message.
    MessageId
);

/// A string newtype whose parser is the only way in; it reads back from an
/// item without a check, since only the parser ever wrote it.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_string!(
    /// The id API Gateway gives a WebSocket connection: opaque, 1–128
    /// printable ASCII characters.
    ConnectionId
);

impl ConnectionId {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
    }
}

checked_string!(
    /// A tag: 1–30 characters of `[a-z0-9-]`.
    Tag
);

impl Tag {
    pub const MAX_CHARS: usize = 30;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        length(field, raw, 1, Self::MAX_CHARS)?;
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(FieldError::new(
                field,
                FieldCode::InvalidFormat,
                "may contain only a-z, 0-9 and -",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

checked_string!(
    /// A post's title: 1–200 characters after trimming, no control
    /// characters.
    Title
);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        length(field, trimmed, 1, Self::MAX_CHARS)?;
        no_control_chars(field, trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }
}

/// A text of 1–`max` characters that is not only whitespace, kept as
/// written (line breaks and tabs allowed, other control characters not).
fn text(field: &str, raw: String, max: usize) -> Result<String, FieldError> {
    if raw.trim().is_empty() {
        return Err(FieldError::new(
            field,
            FieldCode::TooShort,
            "must not be empty",
        ));
    }
    length(field, &raw, 1, max)?;
    no_control_chars(field, &raw)?;
    Ok(raw)
}

checked_string!(
    /// The body of a post: 1–20,000 characters.
    PostBody
);

impl PostBody {
    pub const MAX_CHARS: usize = 20_000;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        text(field, raw, Self::MAX_CHARS).map(Self)
    }
}

checked_string!(
    /// The body of a comment: 1–5,000 characters.
    CommentBody
);

impl CommentBody {
    pub const MAX_CHARS: usize = 5_000;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        text(field, raw, Self::MAX_CHARS).map(Self)
    }
}

checked_string!(
    /// A chat room: 1–64 characters of `[A-Za-z0-9_-]`.
    Room
);

impl Room {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let ok = (1..=Self::MAX_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(FieldError::new(
                "room",
                FieldCode::InvalidFormat,
                "room must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

checked_string!(
    /// A chat message: 1–2,000 characters, not only whitespace.
    ChatText
);

impl ChatText {
    pub const MAX_CHARS: usize = 2_000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let count = raw.chars().count();
        if raw.trim().is_empty() || count > Self::MAX_CHARS {
            return Err(FieldError::new(
                "text",
                if count > Self::MAX_CHARS {
                    FieldCode::TooLong
                } else {
                    FieldCode::TooShort
                },
                format!("text must be 1-{} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// The optimistic version of a post: 1 when created, one more per edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(i64);

impl Version {
    pub const FIRST: Version = Version(1);

    /// A version a client names: at least 1.
    pub fn parse(field: &str, raw: i64) -> Result<Self, FieldError> {
        if raw < 1 {
            return Err(FieldError::new(
                field,
                FieldCode::OutOfRange,
                "must be at least 1",
            ));
        }
        Ok(Self(raw))
    }

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Version {
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
        let id = PostId::new();
        assert_eq!(id.to_string().parse::<PostId>().unwrap(), id);
        assert!("../etc/passwd".parse::<PostId>().is_err());
        assert_eq!(
            UploadId::parse("uploadId", "nope".into()).unwrap_err().code,
            FieldCode::InvalidFormat
        );
        let json = serde_json::to_value(id).unwrap();
        assert_eq!(json, serde_json::json!(id.to_string()));
        assert_eq!(serde_json::from_value::<PostId>(json).unwrap(), id);
        assert!(serde_json::from_value::<PostId>(serde_json::json!("x")).is_err());
    }

    #[test]
    fn tags_titles_rooms_and_texts_follow_the_rules() {
        assert_eq!(
            Tag::parse("tag", "rust-2024").unwrap().as_str(),
            "rust-2024"
        );
        for bad in ["", "Rust", "a b", &"x".repeat(31)] {
            assert!(Tag::parse("tag", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Title::parse("title", "  Hi ".into()).unwrap().as_str(),
            "Hi"
        );
        assert!(Title::parse("title", "   ".into()).is_err());
        assert!(Title::parse("title", "a\u{0}b".into()).is_err());
        assert!(PostBody::parse("body", "line\nbreak\ttab".into()).is_ok());
        assert!(PostBody::parse("body", " \n".into()).is_err());
        assert!(CommentBody::parse("body", "x".repeat(5000)).is_ok());
        assert!(CommentBody::parse("body", "x".repeat(5001)).is_err());
        assert_eq!(Room::parse("general_1-a").unwrap().as_str(), "general_1-a");
        for bad in ["", "a b", &"x".repeat(65), "ü"] {
            assert!(Room::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ChatText::parse("hi").is_ok());
        assert!(ChatText::parse(&"é".repeat(2000)).is_ok());
        assert!(ChatText::parse(&"é".repeat(2001)).is_err());
        assert!(ChatText::parse("  ").is_err());
        assert!(ConnectionId::parse("abc=").is_some());
        assert!(ConnectionId::parse("").is_none() && ConnectionId::parse("a b").is_none());
        assert_eq!(Version::parse("version", 1).unwrap(), Version::FIRST);
        assert_eq!(Version::FIRST.next().get(), 2);
        assert!(Version::parse("version", 0).is_err());
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

    #[test]
    fn a_field_error_reads_as_a_sentence() {
        let err = FieldError::new("email", FieldCode::Required, "is required");
        assert_eq!(err.to_string(), "email is required");
    }

    #[test]
    fn optional_fields_and_finishing() {
        let mut errors = FieldErrors::new();
        assert!(errors.is_empty());
        assert_eq!(errors.optional("name", None, Name::parse), Some(None));
        let name = errors.optional("name", Some("Al".into()), Name::parse);
        assert_eq!(name.flatten().map(Name::into_inner), Some("Al".to_owned()));
        assert!(errors.is_empty());
        assert_eq!(errors.optional("name", Some("A".into()), Name::parse), None);
        assert!(!errors.is_empty());
        let failures = errors.finish(Some(())).unwrap_err();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].field, "name");

        let mut errors = FieldErrors::new();
        errors.push(FieldError::new("x", FieldCode::Mismatch, "differs"));
        assert!(!errors.is_empty());
        assert_eq!(
            errors.finish(Some(1)).unwrap_err()[0].code,
            FieldCode::Mismatch
        );

        assert_eq!(FieldErrors::new().finish(Some(7)), Ok(7));
        let incomplete = FieldErrors::new().finish::<()>(None).unwrap_err();
        assert_eq!(incomplete.len(), 1);
        assert_eq!(incomplete[0].field, "body");
        assert_eq!(incomplete[0].code, FieldCode::Required);
    }

    #[test]
    fn lengths_say_which_bound_was_missed() {
        assert_eq!(
            length("f", "", 1, 5).unwrap_err().message,
            "must not be empty"
        );
        assert_eq!(
            length("f", "a", 2, 5).unwrap_err().message,
            "must be at least 2 characters"
        );
        assert_eq!(
            length("f", "abcdef", 1, 5).unwrap_err().message,
            "must be at most 5 characters"
        );
        assert!(length("f", "ab", 2, 2).is_ok());
    }

    #[test]
    fn emails_at_the_bounds_of_the_rules() {
        let label = "x".repeat(63);
        let longest = format!("a@{label}.{label}.{label}.{}.com", "x".repeat(56));
        assert_eq!(longest.chars().count(), EMAIL_MAX);
        assert!(email(&longest).is_ok());
        for bad in ["a@b.com.", "ä@b.com", "a@.com", "a@bcom"] {
            assert_eq!(email(bad), Err(FieldCode::InvalidFormat), "{bad:?}");
        }
    }

    #[test]
    fn a_password_shows_only_to_the_code_that_hashes_it() {
        let password = Password::parse("password", "secret123".into()).unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert_eq!(password.expose(), "secret123");
        assert_eq!(password.into_inner(), "secret123");
    }

    #[test]
    fn names_and_versions_display_as_themselves() {
        let name = Name::parse("name", " Ada ".into()).unwrap();
        assert_eq!(name.as_str(), "Ada");
        assert_eq!(name.to_string(), "Ada");
        assert_eq!(Version::FIRST.next().to_string(), "2");
    }

    #[test]
    fn chat_text_is_bounded_in_characters() {
        assert!(ChatText::parse(&"é".repeat(ChatText::MAX_CHARS)).is_ok());
        let long = ChatText::parse(&"é".repeat(ChatText::MAX_CHARS + 1)).unwrap_err();
        assert_eq!(long.code, FieldCode::TooLong);
        assert_eq!(
            ChatText::parse(" \n").unwrap_err().code,
            FieldCode::TooShort
        );
        // Blank at the very limit is still blank, not too long.
        let blank = " ".repeat(ChatText::MAX_CHARS);
        assert_eq!(
            ChatText::parse(&blank).unwrap_err().code,
            FieldCode::TooShort
        );
        assert_eq!(ChatText::parse("x").unwrap().as_str(), "x");
    }

    #[test]
    fn roles_and_statuses_round_trip_their_spelling() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(Role::parse("role", role.as_str().into()), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert_eq!(Role::User.as_str(), "user");
        assert_eq!(Role::Admin.as_str(), "admin");
        assert!(Role::parse("role", "root".into()).is_err());
        for status in [
            UserStatus::Active,
            UserStatus::Suspended,
            UserStatus::Deleted,
        ] {
            assert_eq!(
                UserStatus::parse("status", status.as_str().into()),
                Ok(status)
            );
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(UserStatus::Active.as_str(), "active");
        assert_eq!(UserStatus::Suspended.as_str(), "suspended");
        assert_eq!(UserStatus::Deleted.as_str(), "deleted");
        assert!(UserStatus::parse("status", "gone".into()).is_err());
    }
}
