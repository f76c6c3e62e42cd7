//! Properties of the parsers that stand at the edge of the API: whatever a
//! client sends, they answer with a value that follows the contract or with
//! the contract's error, and never panic.
//!
//! Each property is checked against a hand-written model of the rule in
//! docs/API.md rather than against the code's own helpers.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use platform::{
    AppError,
    cursor::{Cursor, CursorCodec},
    extract::parse_json,
    http::is_valid_request_id,
    model::domain::{EMAIL_MAX, Email},
};
use proptest::prelude::*;
use serde_json::Value;

fn codec() -> CursorCodec {
    CursorCodec::new(b"property-test-secret-of-32-bytes!")
}

/// Strings that look like addresses often enough to reach every branch of
/// `Email::parse`: odd characters in both halves, padding, case, length.
fn email_like() -> impl Strategy<Value = String> {
    let local = "[a-zA-Z0-9.+_\"()<>\\[\\]@ \t-]{0,70}";
    let domain = "[a-zA-Z0-9.@\\[\\]-]{0,70}";
    (local, domain, "[ \t]{0,2}", "[ \t]{0,2}", 0usize..200).prop_map(
        |(local, domain, before, after, pad)| {
            // Occasionally long enough to cross the 254-character limit.
            let local = if pad > 180 {
                format!("{local}{}", "a".repeat(pad))
            } else {
                local
            };
            format!("{before}{local}@{domain}{after}")
        },
    )
}

fn any_email_input() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), email_like(), "\\PC{0,300}"]
}

proptest! {
    #[test]
    fn email_parse_never_panics_and_accepts_only_canonical_addresses(raw in any_email_input()) {
        if let Ok(email) = Email::parse("email", raw.clone()) {
            let email = email.as_str();
            prop_assert_eq!(email, email.to_lowercase(), "not lower-case");
            prop_assert_eq!(email, email.trim(), "not trimmed");
            prop_assert!(email.chars().count() <= EMAIL_MAX, "longer than {EMAIL_MAX}");
            prop_assert_eq!(email.matches('@').count(), 1, "not exactly one @: {:?}", email);
            prop_assert_eq!(email, raw.trim().to_lowercase(), "changed beyond trim and case");
        }
    }
}

proptest! {
    /// Keeps the property above from holding only because nothing passes.
    #[test]
    fn plain_addresses_are_accepted_trimmed_and_lower_cased(
        local in "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,30}[a-zA-Z0-9]",
        domain in "[a-zA-Z0-9]{1,20}(\\.[a-zA-Z0-9]{1,20}){0,2}\\.[a-zA-Z]{2,6}",
        padding in "[ \t]{0,3}",
    ) {
        prop_assume!(!local.contains(".."));
        let raw = format!("{padding}{local}@{domain}{padding}");
        let email = Email::parse("email", raw.clone());
        prop_assert!(email.is_ok(), "{:?} refused: {:?}", raw, email);
        let expected = format!("{local}@{domain}").to_lowercase();
        let email = email.unwrap();
        prop_assert_eq!(email.as_str(), expected);
    }
}

/// A DynamoDB key as a cursor carries one: string and number attributes.
fn key_map() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
    let value = prop_oneof![
        any::<String>().prop_map(AttributeValue::S),
        any::<String>().prop_map(AttributeValue::N),
        "-?[0-9]{1,38}(\\.[0-9]{1,5})?".prop_map(AttributeValue::N),
    ];
    proptest::collection::hash_map(any::<String>(), value, 1..6)
}

fn is_bad_request(result: &Result<Cursor, AppError>) -> bool {
    matches!(result, Err(AppError::BadRequest(_)))
}

proptest! {
    #[test]
    fn cursors_round_trip_any_key_of_strings_and_numbers(
        list in "\\PC{0,40}",
        key in key_map(),
    ) {
        let cursor = codec()
            .encode(&list, Some(&key))
            .expect("encoding never fails for S and N keys")
            .expect("a non-empty key gives a cursor");
        prop_assert_eq!(codec().decode(&list, &cursor).expect("decodes"), Cursor(key));
    }

    #[test]
    fn any_single_byte_change_to_a_cursor_is_refused(
        key in key_map(),
        position in any::<prop::sample::Index>(),
        replacement in 0u8..128,
    ) {
        let cursor = codec().encode("posts", Some(&key)).unwrap().unwrap();
        let mut bytes = cursor.clone().into_bytes();
        let index = position.index(bytes.len());
        prop_assume!(bytes[index] != replacement);
        bytes[index] = replacement;
        let forged = String::from_utf8(bytes).expect("ASCII stays UTF-8");
        let result = codec().decode("posts", &forged);
        prop_assert!(is_bad_request(&result), "{:?} from {:?}", result, forged);
    }

    #[test]
    fn a_cursor_of_one_list_is_refused_by_every_other(
        list in "\\PC{0,40}",
        other in "\\PC{0,40}",
        key in key_map(),
    ) {
        prop_assume!(list != other);
        let cursor = codec().encode(&list, Some(&key)).unwrap().unwrap();
        prop_assert!(is_bad_request(&codec().decode(&other, &cursor)));
    }

    #[test]
    fn arbitrary_text_is_never_a_cursor(junk in any::<String>()) {
        prop_assert!(is_bad_request(&codec().decode("posts", &junk)));
    }
}

fn header_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!-~]{0,130}",
        "[ -~]{0,130}",
        "[\\x00-\\x7f]{0,130}",
        any::<String>(),
        (1usize..=140).prop_map(|n| "k".repeat(n)),
    ]
}

/// docs/API.md section 1: `[A-Za-z0-9._-]{1,128}`, written out by hand.
fn matches_request_id_regex(value: &str) -> bool {
    let count = value.chars().count();
    (1..=128).contains(&count)
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

proptest! {
    #[test]
    fn request_ids_follow_the_contract_regex_exactly(
        value in prop_oneof![
            "[A-Za-z0-9._-]{0,130}",
            "[A-Za-z0-9._ ;<>\"'/-]{0,130}",
            header_like(),
            (1usize..=140).prop_map(|n| "a".repeat(n)),
        ]
    ) {
        prop_assert_eq!(is_valid_request_id(&value), matches_request_id_regex(&value), "{:?}", value);
    }
}

/// Any JSON value up to a modest depth, objects included.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Few significant digits: serde_json reads these back exactly.
        (any::<i32>(), 0i32..4).prop_map(|(m, e)| Value::from(f64::from(m) / 10f64.powi(e))),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|map: BTreeMap<String, Value>| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Bytes that are sometimes JSON, sometimes almost JSON, sometimes noise.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (json_value(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, byte)| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let index = at.index(bytes.len());
            bytes[index] = byte;
            bytes
        }),
        (json_value(), "[ \t\r\n]{0,3}", "[ \t\r\n]{0,3}")
            .prop_map(|(v, before, after)| format!("{before}{v}{after}").into_bytes()),
        (1usize..3000, prop::bool::ANY).prop_map(|(depth, object)| {
            if object {
                format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()
            } else {
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
        }),
    ]
}

proptest! {
    #[test]
    fn parsing_any_bytes_gives_an_object_or_a_bad_request(bytes in body_bytes()) {
        match parse_json::<Value>(&bytes) {
            Ok(value) => prop_assert!(value.is_object(), "accepted a non-object: {}", value),
            Err(AppError::BadRequest(message)) => {
                prop_assert!(!message.contains("line "), "position leaked: {}", message);
            }
            Err(other) => prop_assert!(false, "not a 400: {:?}", other),
        }
    }

    #[test]
    fn well_formed_json_parses_exactly_when_it_is_an_object(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let result = parse_json::<Value>(&bytes);
        if value.is_object() {
            prop_assert_eq!(result.expect("an object parses"), value);
        } else {
            prop_assert!(matches!(result, Err(AppError::BadRequest(_))), "{:?}", result);
        }
    }
}
