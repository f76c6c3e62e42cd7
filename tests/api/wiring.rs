//! The facts that live in two places checked against each other: the
//! functions of template.yaml against the registry, the stream's
//! `FilterCriteria` against the entities the model writes and the worker
//! reacts to, the table's indexes and TTL against the model's names, and
//! the committed OpenAPI document against the one the route crates make.

use std::collections::BTreeSet;

use infra::{functions, template::Template};
use model::keys::{self, Entity, Index};
use serde_json::Value;
use tests::workspace_root;

fn template() -> Template {
    Template::load(workspace_root().join("template.yaml")).expect("template.yaml")
}

fn template_yaml() -> serde_norway::Value {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

#[test]
fn the_registry_builds_exactly_the_functions_of_the_template() {
    let registered: BTreeSet<&str> = functions::REGISTRY.iter().map(|f| f.logical_id).collect();
    assert_eq!(
        registered.len(),
        functions::REGISTRY.len(),
        "a logical id is registered twice"
    );
    let template = template();
    let declared: BTreeSet<&str> = template
        .functions
        .iter()
        .map(|f| f.logical_id.as_str())
        .collect();
    assert_eq!(registered, declared);
}

/// The entity names a filter pattern lets through, by event name.
fn filtered_entities(pattern: &str) -> (String, BTreeSet<String>) {
    let pattern: Value = serde_json::from_str(pattern).expect("a filter pattern is JSON");
    let events = pattern["eventName"].as_array().expect("eventName list");
    assert_eq!(events.len(), 1, "one event name per filter: {pattern}");
    let event = events[0].as_str().unwrap().to_owned();
    let image = if event == "REMOVE" {
        "OldImage"
    } else {
        "NewImage"
    };
    let names = pattern["dynamodb"][image][keys::ENTITY]["S"]
        .as_array()
        .unwrap_or_else(|| panic!("{event} filters on {image}.{}: {pattern}", keys::ENTITY))
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    (event, names)
}

#[test]
fn the_stream_filter_lets_through_exactly_what_the_worker_handles() {
    let yaml = template_yaml();
    let filters = yaml["Resources"]["StreamFunction"]["Properties"]["Events"]["TableStream"]
        ["Properties"]["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("the stream event has filters");
    let mut inserts = BTreeSet::new();
    let mut removes = BTreeSet::new();
    for filter in filters {
        let (event, names) = filtered_entities(filter["Pattern"].as_str().unwrap());
        match event.as_str() {
            "INSERT" => inserts.extend(names),
            "REMOVE" => removes.extend(names),
            other => panic!("the worker handles no {other} events"),
        }
    }
    let names = |entities: &[Entity]| -> BTreeSet<String> {
        entities.iter().map(|e| e.as_str().to_owned()).collect()
    };
    assert_eq!(inserts, names(&Entity::STREAMED_INSERTS));
    assert_eq!(removes, names(&Entity::STREAMED_REMOVES));
    for name in inserts.iter().chain(&removes) {
        assert!(Entity::parse(name).is_some(), "no item is a {name:?}");
    }
}

#[test]
fn the_table_has_the_keys_indexes_and_ttl_the_model_names() {
    let template = template();
    let [table] = template.tables.as_slice() else {
        panic!("one table: {:?}", template.tables);
    };
    let key: Vec<&str> = table.keys.iter().map(|k| k.attribute.as_str()).collect();
    assert_eq!(key, [keys::PK, keys::SK]);
    assert_eq!(table.ttl_attribute.as_deref(), Some(keys::TTL));
    let declared: BTreeSet<&str> = table
        .global_indexes
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let named: BTreeSet<&str> = Index::ALL.iter().map(|i| i.name()).collect();
    assert_eq!(declared, named);
    for index in Index::ALL {
        let spec = table
            .global_indexes
            .iter()
            .find(|spec| spec.name == index.name())
            .unwrap();
        let attributes: Vec<&str> = spec.keys.iter().map(|k| k.attribute.as_str()).collect();
        // An index's page key is the table's key and then its own.
        assert_eq!(attributes, index.page_key()[2..], "{}", index.name());
    }
}

#[test]
fn the_committed_openapi_document_is_current() {
    let path = workspace_root().join("docs/openapi.json");
    let committed = std::fs::read_to_string(&path).expect("docs/openapi.json");
    let generated = functions::openapi_json();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `make openapi` and commit it"
    );
}

#[tokio::test]
async fn a_missing_or_bad_variable_fails_the_build_and_names_itself() {
    let sdk = platform::aws::sdk_config_for_endpoint("http://127.0.0.1:9", tests::REGION).await;
    // Every variable without a default; the rest have one.
    let complete = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("JWT_SECRET", "test-secret-that-is-at-least-32-bytes-long"),
        ("EMAIL_FROM", "no-reply@social.test"),
        ("WS_MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/local"),
    ];
    let source_without = |left_out: &'static str, bad: Option<(&'static str, &'static str)>| {
        move |name: &str| {
            if let Some((bad_name, value)) = bad
                && bad_name == name
            {
                return Some(value.to_owned());
            }
            complete
                .iter()
                .find(|(key, _)| *key == name && *key != left_out)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    assert!(functions::build(&source_without("", None), &sdk).is_ok());
    for (name, _) in complete {
        let err = functions::build(&source_without(name, None), &sdk)
            .err()
            .unwrap_or_else(|| panic!("built without {name}"));
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    for (name, value) in [
        ("RATE_LIMIT_WS_FRAMES", "ten"),
        ("UPLOAD_MAX_BYTES", "0"),
        ("RESET_TOKEN_TTL_SECS", "-1"),
        ("JWT_SECRET", "short"),
        ("APP_URL", "not a url"),
    ] {
        let err = functions::build(&source_without("", Some((name, value))), &sdk)
            .err()
            .unwrap_or_else(|| panic!("built with {name}={value}"));
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}
