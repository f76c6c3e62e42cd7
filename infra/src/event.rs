//! The parts of API Gateway's event JSON that the REST and WebSocket
//! emulations build the same way: headers and query strings, each in both
//! their single-value and multi-value forms.

use http::HeaderMap;
use serde_json::{Map, Value, json};

fn push(
    single: &mut Map<String, Value>,
    multi: &mut Map<String, Value>,
    key: String,
    value: String,
) {
    single.insert(key.clone(), Value::String(value.clone()));
    match multi.get_mut(&key) {
        Some(Value::Array(values)) => values.push(Value::String(value)),
        _ => {
            multi.insert(key, json!([value]));
        }
    }
}

/// `headers` and `multiValueHeaders`: the last value of a repeated header
/// in the first, every value in the second.
pub fn headers(headers: &HeaderMap) -> (Value, Value) {
    let (mut single, mut multi) = (Map::new(), Map::new());
    for (name, value) in headers {
        push(
            &mut single,
            &mut multi,
            name.to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
    }
    (Value::Object(single), Value::Object(multi))
}

/// `queryStringParameters` and `multiValueQueryStringParameters`, decoded;
/// both `null` when there is no query string, as API Gateway sends them.
pub fn query(query: Option<&str>) -> (Value, Value) {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return (Value::Null, Value::Null);
    };
    let (mut single, mut multi) = (Map::new(), Map::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        push(
            &mut single,
            &mut multi,
            key.into_owned(),
            value.into_owned(),
        );
    }
    (Value::Object(single), Value::Object(multi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_keep_every_value_decoded() {
        let (single, multi) = query(Some("tag=a&tag=b&limit=5&q=x%20y&token=a%2Bb"));
        assert_eq!(single["tag"], "b");
        assert_eq!(multi["tag"], json!(["a", "b"]));
        assert_eq!(single["q"], "x y");
        assert_eq!(single["token"], "a+b");
        assert_eq!(query(None), (Value::Null, Value::Null));
        assert_eq!(query(Some("")), (Value::Null, Value::Null));
    }

    #[test]
    fn repeated_headers_keep_every_value() {
        let mut map = HeaderMap::new();
        map.append("x-a", "1".parse().unwrap());
        map.append("x-a", "2".parse().unwrap());
        let (single, multi) = headers(&map);
        assert_eq!(single["x-a"], "2");
        assert_eq!(multi["x-a"], json!(["1", "2"]));
    }
}
