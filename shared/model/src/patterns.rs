//! The rules of `domain` written as JSON Schema `pattern`s, for the OpenAPI
//! document: what a field accepts, exactly, so that a client generated from
//! the document and a fuzzer that trusts it send what the parser takes.
//!
//! Every character class here is computed from the predicate the parser
//! itself uses (`char::is_whitespace` for `trim`, `Charset::allows`,
//! `char::is_alphabetic`), so a pattern cannot drift from its rule; the
//! tests match each pattern against the parser on every code point and on
//! the shapes that trimming and lengths make.
//!
//! The dialect is the one both ECMA-262 (`u` flag) and Python's `re`
//! (which schemathesis generates from) read alike: `\uHHHH` escapes in the
//! BMP, characters above it written literally (the two share no escape
//! for them), no `\s`, `\d` or `\w` (their meanings differ), and no `$`
//! (Python's also matches before a final line feed): a pattern ends with
//! `END`. One difference stays: both dialects let a string hold a lone
//! surrogate, which a negated class matches, while the API refuses JSON
//! with one as malformed (a 400). Writing the surrogates out of the
//! classes (`\uD800-\uDFFF`) would say so, but schemathesis then drops the
//! pattern as one it cannot generate from.

use std::fmt::Write;

use crate::domain::Charset;

/// The end of the text, in both dialects.
pub const END: &str = "(?![\\s\\S])";

/// Any character (`\s` and `\S` differ between the dialects; their union
/// does not).
pub const ANY: &str = "[\\s\\S]";

/// `pattern` as regex-lite reads the same language (it has no lookaround;
/// its `$` is the end): for the tests that match a pattern against its
/// parser.
pub fn in_rust_dialect(pattern: &str) -> String {
    pattern.replace(END, "$")
}

/// A character class of every `char` for which `allows` holds, written
/// either as its ranges (`[...]`) or as the negation of the others
/// (`[^...]`), whichever lists fewer characters: the generators that read
/// these patterns (hypothesis, under schemathesis) stall on a class that
/// lists most of Unicode (measured on the OpenAPI document: a coverage
/// phase of 2 s for the whitespace written as its 25 characters, more
/// than 60 s for the same set written as the negation of the others).
pub fn class(allows: impl Fn(char) -> bool) -> String {
    let allowed = every_char().filter(|&c| allows(c)).count();
    let negate = allowed > every_char().count() - allowed;
    let mut out = String::from(if negate { "[^" } else { "[" });
    let mut start: Option<char> = None;
    let mut previous = '\0';
    // Ranges stop at the end of the BMP so that each end is written the
    // same way (an escape or a literal), and `char` skips the surrogates.
    let close = |out: &mut String, from: char, to: char| {
        push_char(out, from);
        if to != from {
            if u32::from(to) > u32::from(from) + 1 {
                out.push('-');
            }
            push_char(out, to);
        }
    };
    for c in every_char() {
        let contiguous = u32::from(c) == u32::from(previous) + 1 && u32::from(c) != 0x1_0000;
        match (start, allows(c) != negate) {
            (Some(from), true) if !contiguous => {
                close(&mut out, from, previous);
                start = Some(c);
            }
            (Some(from), false) => {
                close(&mut out, from, previous);
                start = None;
            }
            (None, true) => start = Some(c),
            _ => {}
        }
        previous = c;
    }
    if let Some(from) = start {
        close(&mut out, from, previous);
    }
    out.push(']');
    out
}

fn every_char() -> impl Iterator<Item = char> {
    (0..=0x10_FFFF).filter_map(char::from_u32)
}

fn push_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else if u32::from(c) <= 0xFFFF {
        let _ = write!(out, "\\u{:04X}", u32::from(c));
    } else {
        out.push(c);
    }
}

/// What `str::trim` removes.
fn whitespace() -> String {
    class(char::is_whitespace)
}

/// A text that is trimmed and then must be `min..=max` characters of
/// `charset` (a name, a title): surrounding whitespace of any kind is
/// taken, then an edge that is not whitespace, the inside, and an edge.
pub fn trimmed_text(charset: Charset, min: usize, max: usize) -> String {
    assert!(
        1 <= min && min <= max,
        "a trimmed text has 1..=max characters"
    );
    let ws = whitespace();
    let edge = class(|c| charset.allows(c) && !c.is_whitespace());
    let inside = class(|c| charset.allows(c));
    let core = match (min, max) {
        (1, 1) => edge.clone(),
        (1, _) => format!("{edge}(?:{inside}{{0,{}}}{edge})?", max - 2),
        _ => format!("{edge}{inside}{{{},{}}}{edge}", min - 2, max - 2),
    };
    format!("^{ws}*{core}{ws}*{END}")
}

/// A text of `charset` that is not only whitespace, kept as sent (post
/// and comment bodies); its length is the schema's `maxLength`.
pub fn running_text(charset: Charset) -> String {
    let inside = class(|c| charset.allows(c));
    let visible = class(|c| charset.allows(c) && !c.is_whitespace());
    format!("^{inside}*{visible}{inside}*{END}")
}

/// Any text that is not only whitespace (one-time and refresh tokens).
pub fn not_blank() -> String {
    let visible = class(|c| !c.is_whitespace());
    format!("^{ANY}*{visible}{ANY}*{END}")
}

/// The 26 Crockford base32 digits of a ULID, either case, as the `ulid`
/// crate decodes them.
const ULID: &str = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}";

/// A ULID as a path segment: exactly the id.
pub fn ulid() -> String {
    format!("^{ULID}{END}")
}

/// A ULID in a body, which the parser trims first.
pub fn trimmed_ulid() -> String {
    let ws = whitespace();
    format!("^{ws}*{ULID}{ws}*{END}")
}

/// A new password: at least one letter (`char::is_alphabetic`, any
/// script) and one ASCII digit, anywhere; its length is `minLength` and
/// `maxLength`. The only lookahead here: "one of each, in either order"
/// has no other form that does not write the letter class twice.
pub fn password() -> String {
    let letter = class(char::is_alphabetic);
    format!("^(?={ANY}*{letter})(?={ANY}*[0-9])")
}

/// An upload's file name as sent: characters of `Charset::SingleLine`
/// throughout, and a part after the last `/` or `\\` (the part kept) that,
/// trimmed, is neither empty nor only dots: it holds a character that is
/// neither whitespace nor a dot, or whitespace between two that are not
/// whitespace (`. .`). Its length is `maxLength`.
pub fn file_name() -> String {
    let allowed = |c: char| Charset::SingleLine.allows(c);
    let single = class(allowed);
    let base = class(|c| allowed(c) && !matches!(c, '/' | '\\'));
    let visible = class(|c| allowed(c) && !matches!(c, '/' | '\\') && !c.is_whitespace());
    let blank = class(|c| allowed(c) && c.is_whitespace());
    let named = class(|c| allowed(c) && !matches!(c, '/' | '\\' | '.') && !c.is_whitespace());
    format!(
        "^(?:{single}*[\\u002F\\u005C])?(?:{base}*{named}{base}*|{base}*{visible}{base}*{blank}{base}*{visible}{base}*){END}"
    )
}

/// One of `values` (ASCII, compared after `trim` and ASCII lower-casing):
/// media types, where `IMAGE/PNG` is `image/png`.
pub fn trimmed_ascii_choice(values: &[&str]) -> String {
    let ws = whitespace();
    let choices: Vec<String> = values
        .iter()
        .map(|value| {
            value
                .chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else if c.is_ascii_alphanumeric() {
                        c.to_string()
                    } else {
                        format!("\\u{:04X}", u32::from(c))
                    }
                })
                .collect()
        })
        .collect();
    format!("^{ws}*(?:{}){ws}*{END}", choices.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Name, PostBody, Title, UploadId};

    fn regex(pattern: &str) -> regex_lite::Regex {
        regex_lite::Regex::new(&in_rust_dialect(pattern)).unwrap()
    }

    #[test]
    fn a_class_holds_exactly_what_its_predicate_allows() {
        type Predicate = fn(char) -> bool;
        let predicates: [(&str, Predicate); 5] = [
            ("whitespace", char::is_whitespace),
            ("alphabetic", char::is_alphabetic),
            ("single line", |c| Charset::SingleLine.allows(c)),
            ("multi line", |c| Charset::MultiLine.allows(c)),
            ("ascii digit or astral", |c| {
                c.is_ascii_digit() || u32::from(c) >= 0xFFFF
            }),
        ];
        for (name, allows) in predicates {
            let class = regex(&format!("^{}$", class(allows)));
            for c in every_char() {
                assert_eq!(
                    class.is_match(c.encode_utf8(&mut [0; 4])),
                    allows(c),
                    "{name}: U+{:04X}",
                    u32::from(c)
                );
            }
        }
    }

    #[test]
    fn a_class_lists_whichever_side_is_smaller() {
        // About an eighth of all characters are letters: listed as such,
        // while their complement is written as the negation of them.
        let letters = class(char::is_alphabetic);
        let others = class(|c| !c.is_alphabetic());
        assert!(letters.starts_with('[') && !letters.starts_with("[^"));
        assert_eq!(others, letters.replacen('[', "[^", 1));
        assert!(class(char::is_whitespace).starts_with("[\\u0009"));
    }

    #[test]
    fn a_class_splits_ranges_at_the_end_of_the_bmp() {
        let listed = class(|c| (0xFFF0..=0x1_000F).contains(&u32::from(c)));
        assert_eq!(listed, "[\\uFFF0-\\uFFFF\u{10000}-\u{1000F}]");
        let negated = class(|c| !(0xFFFE..=0x1_0001).contains(&u32::from(c)));
        assert_eq!(negated, "[^\\uFFFE\\uFFFF\u{10000}\u{10001}]");
    }

    /// Texts built from the characters where the rules differ: each
    /// whitespace kind, refused characters, and ordinary ones.
    fn shapes() -> Vec<String> {
        let pieces = [
            "",
            " ",
            "\t",
            "\n",
            "\u{3000}",
            "\u{2028}",
            "\u{85}",
            "a",
            "é",
            "李",
            "\u{200B}",
            "\u{202E}",
            "\u{7}",
            "👩\u{200D}💻",
            "ab",
            " a b ",
        ];
        let mut texts = Vec::new();
        for first in pieces {
            for second in pieces {
                for third in ["", " ", "z", "\t"] {
                    texts.push(format!("{first}{second}{third}"));
                }
            }
        }
        texts.push("x".repeat(200));
        texts.push(format!("  {}  ", "x".repeat(200)));
        texts.push("x".repeat(201));
        texts.push("x".repeat(100));
        texts.push("x".repeat(101));
        texts
    }

    #[test]
    fn trimmed_texts_match_what_the_parsers_take() {
        let name = regex(&trimmed_text(
            Charset::SingleLine,
            Name::MIN_CHARS,
            Name::MAX_CHARS,
        ));
        let title = regex(&trimmed_text(Charset::SingleLine, 1, Title::MAX_CHARS));
        for text in shapes() {
            assert_eq!(
                name.is_match(&text),
                Name::parse("name", text.clone()).is_ok(),
                "name {text:?}"
            );
            assert_eq!(
                title.is_match(&text),
                Title::parse("title", text.clone()).is_ok(),
                "title {text:?}"
            );
        }
        let one = regex(&trimmed_text(Charset::SingleLine, 1, 1));
        assert!(one.is_match(" a ") && !one.is_match("ab") && !one.is_match(" "));
    }

    #[test]
    fn running_texts_match_what_the_parser_takes_within_its_length() {
        let body = regex(&running_text(Charset::MultiLine));
        for text in shapes() {
            let length_ok = (1..=PostBody::MAX_CHARS).contains(&text.chars().count());
            assert_eq!(
                body.is_match(&text) && length_ok,
                PostBody::parse("body", text.clone()).is_ok(),
                "body {text:?}"
            );
        }
    }

    #[test]
    fn not_blank_refuses_only_whitespace() {
        let token = regex(&not_blank());
        for text in shapes() {
            assert_eq!(token.is_match(&text), !text.trim().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn ulids_match_what_the_id_parser_takes() {
        let path = regex(&ulid());
        let body = regex(&trimmed_ulid());
        let id = UploadId::new().to_string();
        for text in [
            id.clone(),
            id.to_lowercase(),
            format!(" {id}\n"),
            id[1..].to_owned(),
            format!("{id}0"),
            id.replace(&id[3..4], "I"),
            id.replace(&id[3..4], "U"),
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ".into(),
            String::new(),
        ] {
            let parsed = UploadId::parse("id", text.clone()).is_ok();
            assert_eq!(body.is_match(&text), parsed, "body {text:?}");
            let in_path = text.parse::<UploadId>().is_ok();
            assert_eq!(path.is_match(&text), in_path, "path {text:?}");
        }
        // Every ASCII character in each place of an id.
        for c in (0u8..128).map(char::from) {
            let text = format!("{}{c}", &id[..25]);
            assert_eq!(
                path.is_match(&text),
                text.parse::<UploadId>().is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_password_pattern_asks_for_a_letter_of_any_script_and_a_digit() {
        let pattern = password();
        let letter = class(char::is_alphabetic);
        assert_eq!(pattern, format!("^(?={ANY}*{letter})(?={ANY}*[0-9])"));
        let any = regex(&format!("^{ANY}*{END}"));
        assert!(any.is_match("\u{0}\n\u{10FFFF}\u{FFFF}"));
    }

    #[test]
    fn media_types_match_in_either_case_trimmed() {
        let choice = regex(&trimmed_ascii_choice(&["image/png", "image/svg+xml"]));
        for (text, ok) in [
            ("image/png", true),
            (" IMAGE/Png\t", true),
            ("image/svg+xml", true),
            ("image/pngx", false),
            ("image png", false),
            ("imagexpng", false),
            ("", false),
        ] {
            assert_eq!(choice.is_match(text), ok, "{text:?}");
        }
    }
}
