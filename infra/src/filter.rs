//! Lambda's event filtering, as the stream's event source mapping applies
//! the template's `FilterCriteria` before a record reaches the function.
//!
//! Lambda documents its filter rules as EventBridge's event patterns
//! (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>);
//! where its page is terse, the semantics follow EventBridge's
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html>)
//! and aws/event-ruler, the engine behind them, whose compiler is also the
//! model for what a pattern may not be. Written here rather than taken from
//! a crate: the one Rust crate for such patterns (`quamina`) ports a
//! different engine (Tim Bray's quamina), so its semantics and its refusals
//! are not Lambda's, and Lambda's own differences (below) would have to be
//! layered over it anyway.
//!
//! What follows from the documentation and is easy to get wrong:
//!
//! - A record is delivered if any filter matches; in a pattern, fields are
//!   ANDed, the values of one field ORed, and an array in the record
//!   matches if any of its elements does.
//! - `numeric` only matches JSON numbers. DynamoDB's `N` values are JSON
//!   strings (`{"N": "5"}`), so a `numeric` rule on them never matches on
//!   AWS; the DynamoDB developer guide says so ("it doesn't apply because
//!   numbers in DynamoDB are stored as strings", Streams.Lambda.Tutorial2).
//! - A number in a plain value list is compared as written: `300` is not
//!   `300.0`.
//! - `exists` (like every operator) only looks at leaves: a field whose
//!   value is an object does not exist for it, so `{"exists": false}`
//!   matches it.
//! - `anything-but` needs the field to be there, and matches a value of
//!   another type: `{"anything-but": "x"}` matches the number 5.
//!
//! A pattern Lambda would refuse at deploy time is refused here when the
//! template is read, so the local stack does not start with it.

use serde_json::{Map, Value};

/// The documented maximum length of one `Pattern` (Lambda's `Filter` type).
const MAX_PATTERN_LEN: usize = 4096;

/// Lambda's quota of filters per event source mapping (5 unless raised on
/// request, to at most 10): a deploy with more fails, so the template may
/// not have more.
const MAX_FILTERS: usize = 5;

/// A `FilterCriteria`: the records its filters select. Without filters,
/// every record is selected, as without `FilterCriteria` on AWS.
#[derive(Debug, Clone, Default)]
pub struct FilterCriteria {
    filters: Vec<Filter>,
}

#[derive(Debug, Clone)]
struct Filter {
    source: String,
    fields: Fields,
}

/// The fields of one level of a pattern, all of which must match.
type Fields = Vec<(String, Node)>;

#[derive(Debug, Clone)]
enum Node {
    /// `"name": {...}`: the record's `name` is an object matching these.
    Nested(Fields),
    /// `"name": [...]`: one of these rules matches a leaf at `name`.
    Rules(Vec<Rule>),
}

#[derive(Debug, Clone)]
enum Rule {
    /// Decided on all the leaves at a place at once: absent means none.
    Exists(bool),
    /// Matches if any leaf at the place matches.
    Value(ValueRule),
}

#[derive(Debug, Clone)]
enum ValueRule {
    /// A plain string, number, `true`, `false` or `null`.
    Equals(Value),
    /// Kept lower-cased, the form it is compared in.
    EqualsIgnoreCase(String),
    Prefix {
        text: String,
        ignore_case: bool,
    },
    Suffix {
        text: String,
        ignore_case: bool,
    },
    AnythingBut(Exclusion),
    /// Every bound must hold (`[">", 0, "<=", 5]` is two).
    Numeric(Vec<Bound>),
}

#[derive(Debug, Clone)]
enum Exclusion {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Lower-cased.
    IgnoringCase(Vec<String>),
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    op: Op,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A pattern Lambda would refuse, with where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FilterCriteria.Filters[{index}].Pattern: {reason}")]
pub struct FilterError {
    pub index: usize,
    pub reason: String,
}

impl FilterCriteria {
    /// Compiles the `Pattern` of each filter, in order.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, FilterError> {
        let filters: Vec<Filter> = patterns
            .into_iter()
            .enumerate()
            .map(|(index, source)| {
                compile(source)
                    .map(|fields| Filter {
                        source: source.to_owned(),
                        fields,
                    })
                    .map_err(|reason| FilterError { index, reason })
            })
            .collect::<Result<_, _>>()?;
        if filters.len() > MAX_FILTERS {
            return Err(FilterError {
                index: MAX_FILTERS,
                reason: format!(
                    "{} filters, more than Lambda's quota of {MAX_FILTERS} per event source mapping",
                    filters.len()
                ),
            });
        }
        Ok(FilterCriteria { filters })
    }

    /// The patterns as the template wrote them.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().map(|f| f.source.as_str())
    }

    /// Whether Lambda hands `record` (one element of the event's `Records`,
    /// as the function receives it) to the function.
    pub fn selects(&self, record: &Value) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| fields_match(&f.fields, Some(record)))
    }
}

fn compile(source: &str) -> Result<Fields, String> {
    if source.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "{} characters, more than Lambda's {MAX_PATTERN_LEN}",
            source.len()
        ));
    }
    let pattern: Value =
        serde_json::from_str(source).map_err(|e| format!("not valid JSON: {e}"))?;
    match &pattern {
        Value::Object(fields) => compile_fields(fields, ""),
        _ => Err("the pattern is not a JSON object".into()),
    }
}

fn compile_fields(fields: &Map<String, Value>, path: &str) -> Result<Fields, String> {
    if fields.is_empty() {
        return Err(at(path, "empty objects are not allowed"));
    }
    fields
        .iter()
        .map(|(name, value)| {
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            // EventBridge reads `$or` as an OR of objects; Lambda's filter
            // documentation does not have it, so it is not taken on trust.
            if name == "$or" {
                return Err(at(&path, "`$or` is not among Lambda's filter rules"));
            }
            let node = match value {
                Value::Object(nested) => Node::Nested(compile_fields(nested, &path)?),
                Value::Array(rules) => Node::Rules(compile_rules(rules, &path)?),
                _ => return Err(at(&path, "must be an object or an array")),
            };
            Ok((name.clone(), node))
        })
        .collect()
}

fn compile_rules(rules: &[Value], path: &str) -> Result<Vec<Rule>, String> {
    if rules.is_empty() {
        return Err(at(path, "empty arrays are not allowed"));
    }
    rules
        .iter()
        .map(|rule| match rule {
            Value::Object(operator) => compile_operator(operator, path),
            Value::Array(_) => Err(at(
                path,
                "a match value must be a string, number, true, false, null or an operator",
            )),
            plain => Ok(Rule::Value(ValueRule::Equals(plain.clone()))),
        })
        .collect()
}

/// The one `{"operator": argument}` of a rule.
fn single(object: &Map<String, Value>, path: &str) -> Result<(String, Value), String> {
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some((name, value)), None) => Ok((name.clone(), value.clone())),
        (None, _) => Err(at(path, "an operator object is empty")),
        (Some(_), Some(_)) => Err(at(path, "only one key is allowed in an operator object")),
    }
}

fn compile_operator(operator: &Map<String, Value>, path: &str) -> Result<Rule, String> {
    let (name, argument) = single(operator, path)?;
    let path = &format!("{path} {name}");
    match name.as_str() {
        "prefix" | "suffix" => {
            let (text, ignore_case) = match &argument {
                Value::String(text) => (text.clone(), false),
                Value::Object(inner) => match single(inner, path)? {
                    (option, Value::String(text)) if option == "equals-ignore-case" => {
                        (text.to_lowercase(), true)
                    }
                    (option, _) if option == "equals-ignore-case" => {
                        return Err(at(path, "equals-ignore-case takes a string"));
                    }
                    (option, _) => return Err(at(path, &format!("unsupported option {option}"))),
                },
                _ => return Err(at(path, "takes a string")),
            };
            Ok(Rule::Value(if name == "prefix" {
                ValueRule::Prefix { text, ignore_case }
            } else {
                ValueRule::Suffix { text, ignore_case }
            }))
        }
        "equals-ignore-case" => match argument {
            Value::String(text) => Ok(Rule::Value(ValueRule::EqualsIgnoreCase(
                text.to_lowercase(),
            ))),
            _ => Err(at(path, "takes a string")),
        },
        "anything-but" => {
            compile_anything_but(&argument, path).map(|e| Rule::Value(ValueRule::AnythingBut(e)))
        }
        "numeric" => compile_numeric(&argument, path).map(|b| Rule::Value(ValueRule::Numeric(b))),
        "exists" => match argument {
            Value::Bool(exists) => Ok(Rule::Exists(exists)),
            _ => Err(at(path, "takes true or false")),
        },
        // EventBridge has these; Lambda's filter documentation does not.
        "wildcard" | "cidr" => Err(at(path, "is not among Lambda's filter rules")),
        _ => Err(at(path, "is not a known operator")),
    }
}

fn compile_anything_but(argument: &Value, path: &str) -> Result<Exclusion, String> {
    match argument {
        Value::String(text) => Ok(Exclusion::Strings(vec![text.clone()])),
        Value::Number(_) => Ok(Exclusion::Numbers(vec![number(argument, path)?])),
        Value::Array(values) if values.is_empty() => Err(at(path, "empty arrays are not allowed")),
        Value::Array(values) if values.iter().all(Value::is_string) => {
            Ok(Exclusion::Strings(strings(values, path)?))
        }
        Value::Array(values) if values.iter().all(Value::is_number) => Ok(Exclusion::Numbers(
            values
                .iter()
                .map(|v| number(v, path))
                .collect::<Result<_, _>>()?,
        )),
        Value::Array(_) => Err(at(path, "a list must be all strings or all numbers")),
        Value::Object(inner) => {
            let (option, texts) = single(inner, path)?;
            let affix = match option.as_str() {
                "prefix" | "suffix" => true,
                "equals-ignore-case" => false,
                "wildcard" => return Err(at(path, "wildcard is not among Lambda's filter rules")),
                _ => return Err(at(path, &format!("unsupported option {option}"))),
            };
            let texts = match &texts {
                Value::String(text) => vec![text.clone()],
                Value::Array(values) if !values.is_empty() => strings(values, path)?,
                _ => return Err(at(path, &format!("{option} takes a string or strings"))),
            };
            if affix && texts.iter().any(String::is_empty) {
                return Err(at(path, &format!("an empty {option} is not allowed")));
            }
            Ok(match option.as_str() {
                "prefix" => Exclusion::Prefixes(texts),
                "suffix" => Exclusion::Suffixes(texts),
                _ => Exclusion::IgnoringCase(texts.iter().map(|t| t.to_lowercase()).collect()),
            })
        }
        _ => Err(at(path, "takes a string, a number or a list of them")),
    }
}

fn strings(values: &[Value], path: &str) -> Result<Vec<String>, String> {
    values
        .iter()
        .map(|v| match v {
            Value::String(text) => Ok(text.clone()),
            _ => Err(at(path, "takes strings only")),
        })
        .collect()
}

fn number(value: &Value, path: &str) -> Result<f64, String> {
    value
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| at(path, &format!("{value} is not a number it can compare")))
}

/// `[op, n]`, or a range `[">" | ">=", low, "<" | "<=", high]`.
fn compile_numeric(argument: &Value, path: &str) -> Result<Vec<Bound>, String> {
    let Value::Array(terms) = argument else {
        return Err(at(path, "takes an array"));
    };
    let op = |term: &Value| -> Result<Op, String> {
        match term.as_str() {
            Some("=") => Ok(Op::Eq),
            Some("<") => Ok(Op::Lt),
            Some("<=") => Ok(Op::Le),
            Some(">") => Ok(Op::Gt),
            Some(">=") => Ok(Op::Ge),
            _ => Err(at(path, &format!("{term} is not a comparison"))),
        }
    };
    match terms.as_slice() {
        [first, value] => Ok(vec![Bound {
            op: op(first)?,
            value: number(value, path)?,
        }]),
        [low_op, low, high_op, high] => {
            let (low_op, high_op) = (op(low_op)?, op(high_op)?);
            if !matches!(low_op, Op::Gt | Op::Ge) || !matches!(high_op, Op::Lt | Op::Le) {
                return Err(at(
                    path,
                    "a range is a lower bound (> or >=) then an upper one (< or <=)",
                ));
            }
            let (low, high) = (number(low, path)?, number(high, path)?);
            if low >= high {
                return Err(at(path, "the lower bound must be less than the upper one"));
            }
            Ok(vec![
                Bound {
                    op: low_op,
                    value: low,
                },
                Bound {
                    op: high_op,
                    value: high,
                },
            ])
        }
        _ => Err(at(path, "takes [op, n] or [low op, n, high op, n]")),
    }
}

fn at(path: &str, problem: &str) -> String {
    if path.is_empty() {
        problem.to_owned()
    } else {
        format!("{path}: {problem}")
    }
}

fn fields_match(fields: &Fields, value: Option<&Value>) -> bool {
    let object = value.and_then(Value::as_object);
    fields
        .iter()
        .all(|(name, node)| node_matches(node, object.and_then(|o| o.get(name))))
}

fn node_matches(node: &Node, value: Option<&Value>) -> bool {
    match (node, value) {
        (Node::Rules(rules), _) => {
            let mut found = Vec::new();
            leaves(value, &mut found);
            rules.iter().any(|rule| rule.accepts(&found))
        }
        // An array of objects matches if one element matches as a whole.
        (Node::Nested(_), Some(Value::Array(items))) if !items.is_empty() => {
            items.iter().any(|item| node_matches(node, Some(item)))
        }
        // Not an object: none of the nested fields is there.
        (Node::Nested(fields), _) => fields_match(fields, value),
    }
}

/// The leaf values at one place in the record: an array contributes its
/// elements, an object (an intermediate node) nothing.
fn leaves<'a>(value: Option<&'a Value>, found: &mut Vec<&'a Value>) {
    match value {
        None | Some(Value::Object(_)) => {}
        Some(Value::Array(items)) => items.iter().for_each(|item| leaves(Some(item), found)),
        Some(leaf) => found.push(leaf),
    }
}

impl Rule {
    fn accepts(&self, leaves: &[&Value]) -> bool {
        match self {
            Rule::Exists(wanted) => leaves.is_empty() != *wanted,
            Rule::Value(rule) => leaves.iter().any(|leaf| rule.matches(leaf)),
        }
    }
}

impl ValueRule {
    fn matches(&self, leaf: &Value) -> bool {
        let text = leaf.as_str();
        match self {
            // serde_json's numbers compare as parsed: 300 and 300.0 differ,
            // as Lambda documents.
            ValueRule::Equals(expected) => leaf == expected,
            ValueRule::EqualsIgnoreCase(expected) => {
                text.is_some_and(|t| t.to_lowercase() == *expected)
            }
            ValueRule::Prefix {
                text: p,
                ignore_case,
            } => text.is_some_and(|t| folded(t, *ignore_case).starts_with(p.as_str())),
            ValueRule::Suffix {
                text: s,
                ignore_case,
            } => text.is_some_and(|t| folded(t, *ignore_case).ends_with(s.as_str())),
            ValueRule::AnythingBut(exclusion) => !exclusion.excludes(leaf),
            // `as_f64` is `None` for a string, however numeric it reads.
            ValueRule::Numeric(bounds) => leaf
                .as_f64()
                .is_some_and(|n| bounds.iter().all(|b| b.holds(n))),
        }
    }
}

fn folded(text: &str, ignore_case: bool) -> std::borrow::Cow<'_, str> {
    if ignore_case {
        text.to_lowercase().into()
    } else {
        text.into()
    }
}

impl Exclusion {
    /// Only a value of the excluded kind can be excluded: a number is never
    /// one of the excluded strings.
    fn excludes(&self, leaf: &Value) -> bool {
        let text = leaf.as_str();
        match self {
            Exclusion::Strings(set) => text.is_some_and(|t| set.iter().any(|s| s == t)),
            Exclusion::Numbers(set) => leaf.as_f64().is_some_and(|n| set.contains(&n)),
            Exclusion::Prefixes(set) => {
                text.is_some_and(|t| set.iter().any(|p| t.starts_with(p.as_str())))
            }
            Exclusion::Suffixes(set) => {
                text.is_some_and(|t| set.iter().any(|s| t.ends_with(s.as_str())))
            }
            Exclusion::IgnoringCase(set) => text.is_some_and(|t| set.contains(&t.to_lowercase())),
        }
    }
}

impl Bound {
    fn holds(self, n: f64) -> bool {
        match self.op {
            Op::Eq => n == self.value,
            Op::Lt => n < self.value,
            Op::Le => n <= self.value,
            Op::Gt => n > self.value,
            Op::Ge => n >= self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn selects(pattern: &str, record: Value) -> bool {
        FilterCriteria::parse([pattern])
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .selects(&record)
    }

    fn refused(pattern: &str) -> String {
        match FilterCriteria::parse([pattern]) {
            Ok(_) => panic!("{pattern} was accepted"),
            Err(e) => e.reason,
        }
    }

    // The rows of Lambda's "Filter rule syntax" table, each with a record
    // it matches and records it does not.

    #[test]
    fn more_filters_than_lambdas_quota_are_refused() {
        let pattern = r#"{"a": ["x"]}"#;
        assert!(FilterCriteria::parse([pattern; MAX_FILTERS]).is_ok());
        let err = FilterCriteria::parse([pattern; MAX_FILTERS + 1]).unwrap_err();
        assert_eq!(err.index, MAX_FILTERS);
        assert!(err.reason.contains("6 filters"), "{}", err.reason);
    }

    #[test]
    fn null_matches_a_null_value_only() {
        let pattern = r#"{"UserID": [null]}"#;
        assert!(selects(pattern, json!({"UserID": null})));
        assert!(!selects(pattern, json!({"UserID": "u-1"})));
        assert!(
            !selects(pattern, json!({"UserID": ""})),
            "null is not empty"
        );
        assert!(!selects(pattern, json!({})), "null is not absent");
    }

    #[test]
    fn empty_matches_the_empty_string_only() {
        let pattern = r#"{"LastName": [""]}"#;
        assert!(selects(pattern, json!({"LastName": ""})));
        assert!(!selects(pattern, json!({"LastName": null})));
        assert!(!selects(pattern, json!({"LastName": "Doe"})));
    }

    #[test]
    fn equals_is_exact_and_typed() {
        let pattern = r#"{"Name": ["Alice"]}"#;
        assert!(selects(pattern, json!({"Name": "Alice"})));
        assert!(!selects(pattern, json!({"Name": "alice"})));
        assert!(!selects(pattern, json!({"Name": "Alice "})));
        assert!(selects(r#"{"ok": [true]}"#, json!({"ok": true})));
        assert!(!selects(r#"{"ok": [true]}"#, json!({"ok": "true"})));
        assert!(!selects(r#"{"ok": [true]}"#, json!({"ok": false})));
        // Numbers compare as written (Lambda: 300, 300.0 and 3.0e2 differ).
        assert!(selects(r#"{"n": [300]}"#, json!({"n": 300})));
        assert!(!selects(r#"{"n": [300]}"#, json!({"n": 300.0})));
        assert!(!selects(r#"{"n": [300]}"#, json!({"n": "300"})));
    }

    #[test]
    fn fields_are_anded_and_values_ored() {
        let and = r#"{"Location": ["New York"], "Day": ["Monday"]}"#;
        assert!(selects(
            and,
            json!({"Location": "New York", "Day": "Monday"})
        ));
        assert!(!selects(
            and,
            json!({"Location": "New York", "Day": "Tuesday"})
        ));
        assert!(!selects(and, json!({"Location": "New York"})));
        let or = r#"{"PaymentType": ["Credit", "Debit"]}"#;
        assert!(selects(or, json!({"PaymentType": "Credit"})));
        assert!(selects(or, json!({"PaymentType": "Debit"})));
        assert!(!selects(or, json!({"PaymentType": "Cash"})));
    }

    #[test]
    fn anything_but_needs_the_field_and_excludes_its_own_kind_only() {
        let pattern = r#"{"Weather": [{"anything-but": ["Raining"]}]}"#;
        assert!(selects(pattern, json!({"Weather": "Sunny"})));
        assert!(!selects(pattern, json!({"Weather": "Raining"})));
        assert!(
            !selects(pattern, json!({})),
            "an absent field is not anything"
        );
        // event-ruler: a string exclusion never excludes a number.
        assert!(selects(pattern, json!({"Weather": 3})));
        let single = r#"{"state": [{"anything-but": "initializing"}]}"#;
        assert!(selects(single, json!({"state": "running"})));
        assert!(!selects(single, json!({"state": "initializing"})));
        let numbers = r#"{"x-limit": [{"anything-but": [100, 200, 300]}]}"#;
        assert!(selects(numbers, json!({"x-limit": 150})));
        assert!(!selects(numbers, json!({"x-limit": 200})));
        assert!(
            !selects(numbers, json!({"x-limit": 200.0})),
            "compared as numbers"
        );
        assert!(selects(numbers, json!({"x-limit": "200"})));
        let number = r#"{"x-limit": [{"anything-but": 100}]}"#;
        assert!(selects(number, json!({"x-limit": 150})));
        assert!(!selects(number, json!({"x-limit": 100})));
        assert!(selects(number, json!({"x-limit": "100"})));
    }

    #[test]
    fn anything_but_prefix_suffix_and_ignoring_case() {
        let prefix = r#"{"Region": [{"anything-but": {"prefix": "us-"}}]}"#;
        assert!(selects(prefix, json!({"Region": "eu-west-1"})));
        assert!(!selects(prefix, json!({"Region": "us-east-1"})));
        let suffixes = r#"{"FileName": [{"anything-but": {"suffix": [".png", ".jpg"]}}]}"#;
        assert!(selects(suffixes, json!({"FileName": "a.gif"})));
        assert!(!selects(suffixes, json!({"FileName": "a.jpg"})));
        let case =
            r#"{"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]}"#;
        assert!(selects(case, json!({"state": "running"})));
        assert!(!selects(case, json!({"state": "STOPPED"})));
        assert!(!selects(case, json!({"state": "overloaded"})));
    }

    #[test]
    fn numeric_compares_json_numbers_only() {
        let equals = r#"{"Price": [{"numeric": ["=", 100]}]}"#;
        assert!(selects(equals, json!({"Price": 100})));
        assert!(
            selects(equals, json!({"Price": 100.0})),
            "numerically equal"
        );
        assert!(!selects(equals, json!({"Price": 101})));
        assert!(
            !selects(equals, json!({"Price": "100"})),
            "a string is no number"
        );
        let range = r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#;
        assert!(selects(range, json!({"Price": 20})));
        assert!(selects(range, json!({"Price": 10.5})));
        assert!(!selects(range, json!({"Price": 10})));
        assert!(!selects(range, json!({"Price": 20.5})));
        assert!(!selects(range, json!({})));
        for (op, below, at, above) in [
            ("<", true, false, false),
            ("<=", true, true, false),
            (">", false, false, true),
            (">=", false, true, true),
        ] {
            let pattern = format!(r#"{{"n": [{{"numeric": ["{op}", 5]}}]}}"#);
            assert_eq!(selects(&pattern, json!({"n": 4})), below, "4 {op} 5");
            assert_eq!(selects(&pattern, json!({"n": 5})), at, "5 {op} 5");
            assert_eq!(selects(&pattern, json!({"n": 6})), above, "6 {op} 5");
        }
    }

    #[test]
    fn numeric_never_matches_dynamodb_numbers_which_are_strings() {
        // The DynamoDB developer guide (Streams.Lambda.Tutorial2): numeric
        // filtering "doesn't apply because numbers in DynamoDB are stored as
        // strings"; LocalStack's AWS-validated test of the same (a record
        // with N "101" and `numeric > 100` is not delivered) agrees.
        let record = json!({"dynamodb": {"NewImage": {"count": {"N": "101"}}}});
        let numeric = r#"{"dynamodb": {"NewImage": {"count": {"N": [{"numeric": [">", 100]}]}}}}"#;
        assert!(!selects(numeric, record.clone()));
        // What does work on them: the string itself.
        let text = r#"{"dynamodb": {"NewImage": {"count": {"N": ["101"]}}}}"#;
        assert!(selects(text, record.clone()));
        let not_zero = r#"{"dynamodb": {"NewImage": {"count": {"N": [{"anything-but": "0"}]}}}}"#;
        assert!(selects(not_zero, record));
        assert!(!selects(
            not_zero,
            json!({"dynamodb": {"NewImage": {"count": {"N": "0"}}}})
        ));
    }

    #[test]
    fn exists_looks_at_leaves_only() {
        let exists = r#"{"detail": {"c-count": [{"exists": true}]}}"#;
        let absent = r#"{"detail": {"c-count": [{"exists": false}]}}"#;
        let present = json!({"detail": {"c-count": 5}});
        let missing = json!({"detail": {"state": "running"}});
        // EventBridge's own example: an object is no leaf, so it does not
        // exist for `exists`.
        let intermediate = json!({"detail": {"c-count": {"c1": 100}}});
        assert!(selects(exists, present.clone()));
        assert!(!selects(exists, missing.clone()));
        assert!(!selects(exists, intermediate.clone()));
        assert!(!selects(absent, present));
        assert!(selects(absent, missing));
        assert!(selects(absent, intermediate));
        assert!(selects(absent, json!({})), "no detail at all");
        assert!(
            selects(exists, json!({"detail": {"c-count": null}})),
            "null is a value"
        );
        // An empty array holds no object, so nothing exists under it.
        assert!(selects(absent, json!({"detail": []})));
        assert!(!selects(exists, json!({"detail": []})));
        // DynamoDB: the typed leaf is what exists (LocalStack's validated case).
        let typed = r#"{"dynamodb": {"NewImage": {"k": {"S": [{"exists": true}]}}}}"#;
        assert!(selects(
            typed,
            json!({"dynamodb": {"NewImage": {"k": {"S": "v"}}}})
        ));
        assert!(!selects(
            typed,
            json!({"dynamodb": {"NewImage": {"j": {"S": "v"}}}})
        ));
    }

    #[test]
    fn prefix_suffix_and_ignoring_case_match_strings() {
        let prefix = r#"{"Region": [{"prefix": "us-"}]}"#;
        assert!(selects(prefix, json!({"Region": "us-east-1"})));
        assert!(!selects(prefix, json!({"Region": "eu-west-1"})));
        assert!(!selects(prefix, json!({"Region": "US-east-1"})));
        let suffix = r#"{"FileName": [{"suffix": ".png"}]}"#;
        assert!(selects(suffix, json!({"FileName": "image.png"})));
        assert!(!selects(suffix, json!({"FileName": "image.png.txt"})));
        let equals = r#"{"Name": [{"equals-ignore-case": "alice"}]}"#;
        assert!(selects(equals, json!({"Name": "ALICE"})));
        assert!(!selects(equals, json!({"Name": "alicia"})));
        let prefix_case = r#"{"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}"#;
        assert!(selects(prefix_case, json!({"service": "EventBridge"})));
        assert!(!selects(prefix_case, json!({"service": "Lambda"})));
        let suffix_case = r#"{"service": [{"suffix": {"equals-ignore-case": "tBridge"}}]}"#;
        assert!(selects(suffix_case, json!({"service": "EVENTBRIDGE"})));
        assert!(!selects(suffix_case, json!({"service": "EventBus"})));
        assert!(!selects(prefix, json!({"Region": 7})), "not a string");
    }

    #[test]
    fn an_array_in_the_record_matches_if_an_element_does() {
        let pattern = r#"{"resources": ["arn:a", "arn:b"]}"#;
        assert!(selects(pattern, json!({"resources": ["arn:x", "arn:b"]})));
        assert!(!selects(pattern, json!({"resources": ["arn:x"]})));
        assert!(!selects(pattern, json!({"resources": []})));
        let nested = r#"{"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}"#;
        let employees = |last: &str| {
            json!({"employees": [
                {"firstName": "John", "lastName": "Doe"},
                {"firstName": "Anna", "lastName": last},
            ]})
        };
        assert!(selects(nested, employees("Smith")));
        assert!(
            !selects(nested, employees("Jones")),
            "fields of different elements do not combine"
        );
    }

    #[test]
    fn the_documented_dynamodb_patterns_read_the_typed_json() {
        let record = json!({
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {"CustomerName": {"S": "AnyCompany Industries"}},
                "NewImage": {
                    "AccountManager": {"S": "Pat Candella"},
                    "PaymentTerms": {"S": "60 days"},
                    "CustomerName": {"S": "AnyCompany Industries"},
                },
            },
        });
        for pattern in [
            r#"{"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}"#,
            r#"{"dynamodb": {"NewImage": {"AccountManager": {"S": ["Pat Candella", "Shirley Rodriguez"]}}}}"#,
            r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"PaymentTerms": {"S": [{"prefix": "60"}]}}}}"#,
        ] {
            assert!(selects(pattern, record.clone()), "{pattern}");
        }
        for pattern in [
            // Without the type, the pattern names an object, not a leaf.
            r#"{"dynamodb": {"NewImage": {"AccountManager": ["Pat Candella"]}}}"#,
            r#"{"dynamodb": {"OldImage": {"AccountManager": {"S": ["Pat Candella"]}}}}"#,
            r#"{"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"AccountManager": {"S": ["Pat Candella"]}}}}"#,
        ] {
            assert!(!selects(pattern, record.clone()), "{pattern}");
        }
    }

    #[test]
    fn a_record_is_selected_by_any_filter_and_by_none_without_filters() {
        let criteria = FilterCriteria::parse([r#"{"a": [1]}"#, r#"{"b": [2]}"#]).unwrap();
        assert!(criteria.selects(&json!({"a": 1})));
        assert!(criteria.selects(&json!({"b": 2})));
        assert!(!criteria.selects(&json!({"a": 2, "b": 1})));
        assert_eq!(
            criteria.patterns().collect::<Vec<_>>(),
            [r#"{"a": [1]}"#, r#"{"b": [2]}"#]
        );
        let none = FilterCriteria::default();
        assert!(none.selects(&json!({"anything": "at all"})));
    }

    #[test]
    fn patterns_lambda_refuses_are_refused_with_where() {
        for (pattern, reason) in [
            ("single-string", "not valid JSON"),
            (r#"[{"eventName": ["INSERT"=123}]"#, "not valid JSON"),
            (r#"["INSERT"]"#, "not a JSON object"),
            (r#"{}"#, "empty objects"),
            (
                r#"{"eventName": "INSERT"}"#,
                "eventName: must be an object or an array",
            ),
            (r#"{"eventName": []}"#, "eventName: empty arrays"),
            (r#"{"a": {"b": {}}}"#, "a.b: empty objects"),
            (r#"{"a": [["x"]]}"#, "a: a match value must be"),
            (r#"{"a": [{}]}"#, "empty"),
            (r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#, "only one key"),
            (
                r#"{"a": [{"like": "x"}]}"#,
                "a like: is not a known operator",
            ),
            (r#"{"a": [{"prefix": 1}]}"#, "takes a string"),
            (
                r#"{"a": [{"prefix": {"ignore-case": "x"}}]}"#,
                "unsupported option",
            ),
            (
                r#"{"a": [{"prefix": {"equals-ignore-case": 1}}]}"#,
                "equals-ignore-case takes a string",
            ),
            (
                r#"{"a": [{"equals-ignore-case": ["x"]}]}"#,
                "takes a string",
            ),
            (r#"{"a": [{"exists": "yes"}]}"#, "takes true or false"),
            (r#"{"a": [{"numeric": [">", "0"]}]}"#, "is not a number"),
            (r#"{"a": [{"numeric": ["!=", 0]}]}"#, "is not a comparison"),
            (
                r#"{"a": [{"numeric": ["<", 5, ">", 0]}]}"#,
                "a range is a lower bound",
            ),
            (
                r#"{"a": [{"numeric": [">", 0, ">", 5]}]}"#,
                "a range is a lower bound",
            ),
            (
                r#"{"a": [{"numeric": ["<", 0, "<", 5]}]}"#,
                "a range is a lower bound",
            ),
            (
                r#"{"a": [{"numeric": [">", 5, "<", 5]}]}"#,
                "must be less than",
            ),
            (r#"{"a": [{"numeric": [">", 0, "<"]}]}"#, "takes [op, n]"),
            (r#"{"a": [{"numeric": 5}]}"#, "takes an array"),
            (
                r#"{"a": [{"anything-but": ["x", 1]}]}"#,
                "all strings or all numbers",
            ),
            (r#"{"a": [{"anything-but": []}]}"#, "empty arrays"),
            (
                r#"{"a": [{"anything-but": true}]}"#,
                "takes a string, a number",
            ),
            (
                r#"{"a": [{"anything-but": {"prefix": ""}}]}"#,
                "an empty prefix",
            ),
            (
                r#"{"a": [{"anything-but": {"suffix": []}}]}"#,
                "suffix takes a string or strings",
            ),
            (
                r#"{"a": [{"anything-but": {"exists": true}}]}"#,
                "unsupported option",
            ),
            (
                r#"{"a": [{"anything-but": {"wildcard": "*.png"}}]}"#,
                "wildcard is not among Lambda's filter rules",
            ),
            (
                r#"{"a": [{"wildcard": "*.png"}]}"#,
                "not among Lambda's filter rules",
            ),
            (
                r#"{"a": [{"cidr": "10.0.0.0/24"}]}"#,
                "not among Lambda's filter rules",
            ),
            (
                r#"{"$or": [{"a": ["x"]}, {"b": ["y"]}]}"#,
                "`$or` is not among",
            ),
        ] {
            let refused = refused(pattern);
            assert!(refused.contains(reason), "{pattern}: {refused:?}");
        }
        let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(MAX_PATTERN_LEN));
        assert!(refused(&long).contains("more than Lambda's 4096"));
        // The maximum itself is allowed.
        let longest = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(MAX_PATTERN_LEN - 11));
        assert_eq!(longest.len(), MAX_PATTERN_LEN);
        assert!(selects(
            &longest,
            json!({"a": "x".repeat(MAX_PATTERN_LEN - 11)})
        ));
        let error = FilterCriteria::parse([r#"{"a": ["x"]}"#, r#"{"a": "x"}"#]).unwrap_err();
        assert_eq!(error.index, 1);
        assert_eq!(
            error.to_string(),
            "FilterCriteria.Filters[1].Pattern: a: must be an object or an array"
        );
    }
}
