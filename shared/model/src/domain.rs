//! Domain values parsed once at the edge: ids, `Email`, `Password`, `Name`,
//! `Role`, `UserStatus`, `Tag`, `Title`, `Room`, `ChatText`, `Version` and
//! the texts of posts and comments. Their constructors are the only way in,
//! so code holding one knows it follows the rules of docs/API.md, and the
//! stores take nothing else.
//!
//! Parsers return a `FieldError` naming the field, so a request body can
//! collect every failure into one 422. The characters a text may hold are
//! its `Charset`: one line of visible text for names and titles, running
//! text for bodies and chat (tags and rooms are ASCII by their own rules).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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

/// Which characters a text may hold. Both rules refuse the C0 and C1
/// control characters (`char::is_control`: U+0000–001F, U+007F–009F, NEL
/// U+0085 included; running text keeps tab, LF and CR): they break
/// terminals, logs, CSV exports and the emails that quote a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Names and titles: one line of visible text. No control character
    /// at all (tab and line breaks included), no line or paragraph
    /// separator (U+2028, U+2029), and no format character (general
    /// category Cf: bidi embeddings, overrides and isolates, zero-width
    /// spaces and joiners, U+FEFF, word joiner, soft hyphen, tag
    /// characters, …). A name or title is shown next to other people's
    /// text, where an invisible character can impersonate another user or
    /// reorder what follows it.
    SingleLine,
    /// Post bodies, comment bodies and chat text: line breaks (`\n`, `\r`)
    /// and tabs are content here, other control characters are not. Of
    /// the format characters only the explicit directional formatting
    /// ones (U+202A–202E, U+2066–2069) are refused: an unterminated one
    /// reorders everything displayed after it, beyond the text itself (the
    /// rest of a list, of a notification or email that quotes the text),
    /// and no keyboard types them. The other Cf characters stay allowed in
    /// running text, where people do use them: zero-width joiners build
    /// emoji sequences and Persian or Indic spelling, LRM/RLM mark the
    /// direction of a single neutral character, soft hyphens and U+200B
    /// hint line breaks.
    MultiLine,
}

impl Charset {
    /// Whether `c` may appear anywhere in a text of this rule.
    pub fn allows(self, c: char) -> bool {
        match self {
            Charset::SingleLine => {
                !c.is_control()
                    && !matches!(
                        c.general_category(),
                        GeneralCategory::Format
                            | GeneralCategory::LineSeparator
                            | GeneralCategory::ParagraphSeparator
                    )
            }
            Charset::MultiLine => {
                (!c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                    && !is_directional_formatting(c)
            }
        }
    }

    /// `INVALID_FORMAT` on `field` when `value` holds a character the rule
    /// refuses.
    pub fn check(self, field: &str, value: &str) -> Result<(), FieldError> {
        if value.chars().all(|c| self.allows(c)) {
            return Ok(());
        }
        Err(FieldError::new(
            field,
            FieldCode::InvalidFormat,
            self.refusal(),
        ))
    }

    fn refusal(self) -> &'static str {
        match self {
            Charset::SingleLine => {
                "must not contain control characters, line breaks, tabs or invisible formatting characters"
            }
            Charset::MultiLine => {
                "must not contain control characters (other than line breaks and tabs) or bidirectional overrides"
            }
        }
    }
}

/// The explicit directional formatting characters of UAX #9 (§2.1–2.4):
/// LRE, RLE, PDF, LRO, RLO, then LRI, RLI, FSI, PDI. Written out because
/// no general category singles them out (they share Cf with harmless
/// characters), and the set is closed: UAX #9 defines exactly these.
fn is_directional_formatting(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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

/// A display name of 2–100 characters after trimming, of
/// `Charset::SingleLine`. It reads back from an item without a check, as
/// `Email` does: names stored before a rule was tightened must still load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MIN_CHARS: usize = 2;
    pub const MAX_CHARS: usize = 100;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let name = raw.trim();
        length(field, name, Self::MIN_CHARS, Self::MAX_CHARS)?;
        Charset::SingleLine.check(field, name)?;
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
/// item without a check, since only the parser ever wrote it, and a rule
/// tightened since (the text rules of `Charset`) must not turn what is
/// stored into 500s.
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
    /// The characters of a tag as a JSON Schema `pattern` (lengths apart).
    /// It ends with `patterns::END`, not `$` (see `patterns`).
    pub const PATTERN: &str = "^[a-z0-9-]*(?![\\s\\S])";

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
    /// A post's title: 1–200 characters after trimming, of
    /// `Charset::SingleLine`.
    Title
);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        length(field, trimmed, 1, Self::MAX_CHARS)?;
        Charset::SingleLine.check(field, trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }
}

/// A text of 1–`max` characters that is not only whitespace, kept as
/// written, of `Charset::MultiLine`.
fn text(field: &str, raw: String, max: usize) -> Result<String, FieldError> {
    if raw.trim().is_empty() {
        return Err(FieldError::new(
            field,
            FieldCode::TooShort,
            "must not be empty",
        ));
    }
    length(field, &raw, 1, max)?;
    Charset::MultiLine.check(field, &raw)?;
    Ok(raw)
}

checked_string!(
    /// The body of a post: 1–20,000 characters of `Charset::MultiLine`.
    PostBody
);

impl PostBody {
    pub const MAX_CHARS: usize = 20_000;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        text(field, raw, Self::MAX_CHARS).map(Self)
    }
}

checked_string!(
    /// The body of a comment: 1–5,000 characters of `Charset::MultiLine`.
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
    /// A chat message: 1–2,000 characters, not only whitespace, of
    /// `Charset::MultiLine`.
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
        // A frame's error names no field, so the message does.
        Charset::MultiLine
            .check("text", raw)
            .map_err(|err| FieldError {
                message: format!("text {}", err.message),
                ..err
            })?;
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

    /// The code a text field answers for `c` between ordinary letters, so
    /// that trimming cannot remove it: `None` when accepted.
    fn verdicts(c: char) -> [(&'static str, Option<FieldCode>); 7] {
        let text = format!("ab{c}cd");
        let code = |result: Result<(), FieldError>| result.err().map(|e| e.code);
        [
            ("name", code(Name::parse("name", text.clone()).map(drop))),
            ("title", code(Title::parse("title", text.clone()).map(drop))),
            ("tag", code(Tag::parse("tag", &text).map(drop))),
            ("room", code(Room::parse(&text).map(drop))),
            (
                "post body",
                code(PostBody::parse("body", text.clone()).map(drop)),
            ),
            (
                "comment body",
                code(CommentBody::parse("body", text.clone()).map(drop)),
            ),
            ("chat text", code(ChatText::parse(&text).map(drop))),
        ]
    }

    #[test]
    fn each_text_field_refuses_the_characters_of_its_charset() {
        const BAD: Option<FieldCode> = Some(FieldCode::InvalidFormat);
        // name, title, tag, room, post body, comment body, chat text
        let cases: [(char, [Option<FieldCode>; 7]); 15] = [
            ('\t', [BAD, BAD, BAD, BAD, None, None, None]),
            ('\n', [BAD, BAD, BAD, BAD, None, None, None]),
            ('\r', [BAD, BAD, BAD, BAD, None, None, None]),
            ('\u{0}', [BAD; 7]),
            ('\u{7}', [BAD; 7]),
            ('\u{7F}', [BAD; 7]),
            ('\u{85}', [BAD; 7]),
            ('\u{202E}', [BAD; 7]),
            ('\u{202A}', [BAD; 7]),
            ('\u{2066}', [BAD; 7]),
            ('\u{2069}', [BAD; 7]),
            ('\u{200B}', [BAD, BAD, BAD, BAD, None, None, None]),
            ('\u{200D}', [BAD, BAD, BAD, BAD, None, None, None]),
            ('\u{FEFF}', [BAD, BAD, BAD, BAD, None, None, None]),
            ('\u{2028}', [BAD, BAD, BAD, BAD, None, None, None]),
        ];
        for (c, expected) in cases {
            for ((field, got), want) in verdicts(c).into_iter().zip(expected) {
                assert_eq!(got, want, "{field} with U+{:04X}", u32::from(c));
            }
        }
        // Around the edges of the refused ranges: (character, allowed on
        // one line, allowed in running text).
        for (c, single, multi) in [
            ('\u{A0}', true, true),
            ('\u{2029}', false, true),
            ('\u{2065}', true, true),
            ('\u{206A}', false, true),
            ('\u{E0041}', false, true),
        ] {
            assert_eq!(
                (Charset::SingleLine.allows(c), Charset::MultiLine.allows(c)),
                (single, multi),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn a_refused_character_names_its_field_and_the_rule() {
        let err = Title::parse("title", "a\tb".into()).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.code),
            ("title", FieldCode::InvalidFormat)
        );
        assert!(err.message.contains("tabs"), "{}", err.message);
        let err = CommentBody::parse("body", "a\u{7}b".into()).unwrap_err();
        assert_eq!(err.field, "body");
        assert!(
            err.message.contains("control characters"),
            "{}",
            err.message
        );
        let err = ChatText::parse("a\u{202E}b").unwrap_err();
        assert_eq!(err.code, FieldCode::InvalidFormat);
        assert!(err.message.starts_with("text must not"), "{}", err.message);
    }

    #[test]
    fn ordinary_text_in_any_script_is_accepted() {
        for text in [
            "José Núñez",
            "李小龙",
            "محمد",
            "Ærøskøbing 🎉",
            "O'Brien-Smith",
        ] {
            assert!(Name::parse("name", text.into()).is_ok(), "{text:?}");
            assert!(Title::parse("title", text.into()).is_ok(), "{text:?}");
            assert!(PostBody::parse("body", text.into()).is_ok(), "{text:?}");
            assert!(ChatText::parse(text).is_ok(), "{text:?}");
        }
        // A ZWJ emoji sequence is running text's, not a name's.
        let family = "👩\u{200D}💻 at work";
        assert!(CommentBody::parse("body", family.into()).is_ok());
        assert!(Name::parse("name", family.into()).is_err());
        // Surrounding whitespace, tabs and newlines included, is trimmed
        // off names and titles before the rule applies.
        assert_eq!(
            Name::parse("name", "\tAda\n".into()).unwrap().as_str(),
            "Ada"
        );
    }

    #[test]
    fn the_tag_pattern_agrees_with_the_tag_rule() {
        let pattern =
            regex_lite::Regex::new(&crate::patterns::in_rust_dialect(Tag::PATTERN)).unwrap();
        for c in (0..0x3000).filter_map(char::from_u32) {
            let tag = c.to_string();
            assert_eq!(
                pattern.is_match(&tag),
                Tag::parse("tag", &tag).is_ok(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn stored_texts_read_back_without_the_rules() {
        // Written before the rules were tightened: reading must not check.
        let name: Name = serde_json::from_value(serde_json::json!("Al\tIce\u{202E}")).unwrap();
        assert_eq!(name.as_str(), "Al\tIce\u{202E}");
        let title: Title = serde_json::from_value(serde_json::json!("a\u{200B}\nb")).unwrap();
        assert_eq!(title.as_str(), "a\u{200B}\nb");
        let body: PostBody = serde_json::from_value(serde_json::json!("bell\u{7}")).unwrap();
        assert_eq!(body.as_str(), "bell\u{7}");
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
