//! The facts that live in two places checked against each other: the
//! functions of template.yaml against the registry, the stream's
//! `FilterCriteria` against the entities the model writes and the worker
//! reacts to, the table's indexes and TTL against the model's names, and
//! the committed OpenAPI document against the one the route crates make.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use infra::{
    functions::{self, Kind},
    template::Template,
};
use model::keys::{self, Entity, Index};
use serde_json::Value;
use tests::workspace_root;

fn template() -> Template {
    Template::load(workspace_root().join("template.yaml")).expect("template.yaml")
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

/// A MODIFY filter also names attributes of the new image; each must be
/// one the model writes on that entity, or the filter never matches.
fn modified_attributes_exist(pattern: &str, entities: &BTreeSet<String>) {
    use model::{
        domain::{Email, Name, SessionId, UserId},
        sessions::{SessionItem, SessionOrigin},
        users::UserItem,
    };
    let user = UserItem::new(
        UserId::new(),
        Name::parse("name", "Alice".into()).unwrap(),
        Email::parse("email", "alice@example.com".into()).unwrap(),
        "hash".into(),
        "2025-01-01T00:00:00.000Z".into(),
    );
    let session = SessionItem::new(
        &user.id,
        SessionId::new(),
        "hash".into(),
        0,
        SessionOrigin::default(),
    );
    // As the table holds them: the type a filter names (`BOOL`, `N`) must
    // be the one serde_dynamo writes, or the filter never matches.
    let written = |entity: &str| -> HashMap<String, AttributeValue> {
        match Entity::parse(entity) {
            Some(Entity::User) => serde_dynamo::to_item(&user).unwrap(),
            Some(Entity::Session) => serde_dynamo::to_item(&session).unwrap(),
            other => panic!("no sample item of {other:?} to check {pattern} against"),
        }
    };
    let type_of = |value: &AttributeValue| match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        other => panic!("no filter compares a {other:?}"),
    };
    let pattern: Value = serde_json::from_str(pattern).unwrap();
    let image = pattern["dynamodb"]["NewImage"].as_object().unwrap();
    for entity in entities {
        let item = written(entity);
        for (attribute, test) in image.iter().filter(|(a, _)| *a != keys::ENTITY) {
            let value = item
                .get(attribute)
                .unwrap_or_else(|| panic!("{entity} items have no {attribute}"));
            let named: Vec<&String> = test.as_object().unwrap().keys().collect();
            assert_eq!(named, [type_of(value)], "{entity}.{attribute} in {pattern}");
        }
    }
}

#[test]
fn the_stream_filter_lets_through_exactly_what_the_worker_handles() {
    // The patterns as the local poller applies them (infra/src/filter.rs).
    let template = template();
    let stream = template.table_stream().expect("the table's stream event");
    let filters: Vec<&str> = stream.filters.patterns().collect();
    assert!(!filters.is_empty(), "the stream event has filters");
    let mut inserts = BTreeSet::new();
    let mut removes = BTreeSet::new();
    let mut modifies = BTreeSet::new();
    for pattern in filters {
        let (event, names) = filtered_entities(pattern);
        match event.as_str() {
            "INSERT" => inserts.extend(names),
            "REMOVE" => removes.extend(names),
            "MODIFY" => {
                modified_attributes_exist(pattern, &names);
                modifies.extend(names)
            }
            other => panic!("the worker handles no {other} events"),
        }
    }
    let names = |entities: &[Entity]| -> BTreeSet<String> {
        entities.iter().map(|e| e.as_str().to_owned()).collect()
    };
    assert_eq!(inserts, names(&Entity::STREAMED_INSERTS));
    assert_eq!(removes, names(&Entity::STREAMED_REMOVES));
    assert_eq!(modifies, names(&Entity::STREAMED_MODIFIES));
    for name in inserts.iter().chain(&removes).chain(&modifies) {
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
    let template = template();
    assert!(functions::build(&template, &source_without("", None), &sdk).is_ok());
    for (name, _) in complete {
        let err = functions::build(&template, &source_without(name, None), &sdk)
            .err()
            .unwrap_or_else(|| panic!("built without {name}"));
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    for (name, value) in [
        ("RATE_LIMIT_WS_FRAMES", "ten"),
        ("UPLOAD_MAX_BYTES", "0"),
        ("RESET_TOKEN_TTL_SECS", "-1"),
        ("SESSION_MAX_AGE_SECS", "0"),
        ("RATE_LIMIT_FORGOT_PASSWORD_EMAIL", "3 an hour"),
        ("UPLOAD_MAX_PENDING", "0"),
        ("JWT_SECRET", "short"),
        ("APP_URL", "not a url"),
    ] {
        let err = functions::build(&template, &source_without("", Some((name, value))), &sdk)
            .err()
            .unwrap_or_else(|| panic!("built with {name}={value}"));
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

/// The JWT secret goes only where tokens are signed or verified (or cursors
/// signed with a key derived from it): a function reads it exactly when
/// template.yaml gives it `JWT_SECRET`, and the health check and the stream
/// worker, which handle no token, are not given it.
#[tokio::test]
async fn the_jwt_secret_reaches_exactly_the_functions_that_read_it() {
    let sdk = platform::aws::sdk_config_for_endpoint("http://127.0.0.1:9", tests::REGION).await;
    let template = template();
    let complete = |name: &str| -> Option<String> {
        let value = match name {
            "TABLE_NAME" => "t",
            "BUCKET_NAME" => "b",
            "JWT_SECRET" => "test-secret-that-is-at-least-32-bytes-long",
            "EMAIL_FROM" => "no-reply@social.test",
            "WS_MANAGEMENT_ENDPOINT" => "http://127.0.0.1:9/local",
            _ => return None,
        };
        Some(value.to_owned())
    };
    let without_secret = |name: &str| (name != "JWT_SECRET").then(|| complete(name)).flatten();
    let mut readers = BTreeSet::new();
    for function in functions::REGISTRY {
        let build = |source: &dyn platform::config::Source| match function.kind {
            Kind::Rest { build, .. } => build(source, &sdk).map(drop),
            Kind::WebSocket(build) => build(source, &sdk).map(drop),
            Kind::Stream(build) => build(source, &sdk).map(drop),
        };
        let id = function.logical_id;
        assert!(build(&complete).is_ok(), "{id} builds with every variable");
        let reads_secret = match build(&without_secret) {
            Ok(()) => false,
            Err(err) => {
                assert!(err.to_string().contains("JWT_SECRET"), "{id}: {err}");
                true
            }
        };
        assert_eq!(
            template.environment_of(id).contains("JWT_SECRET"),
            reads_secret,
            "{id} {} JWT_SECRET but template.yaml {} it",
            if reads_secret {
                "reads"
            } else {
                "does not read"
            },
            if reads_secret {
                "does not give"
            } else {
                "gives"
            },
        );
        if reads_secret {
            readers.insert(id);
        }
    }
    assert!(
        !template.global_environment.contains("JWT_SECRET"),
        "JWT_SECRET is given to every function in Globals"
    );
    assert_eq!(
        readers,
        BTreeSet::from([
            "AuthFunction",
            "NotificationsFunction",
            "PostsFunction",
            "UploadsFunction",
            "UsersFunction",
            "WebSocketFunction",
        ])
    );
    for id in ["HealthFunction", "StreamFunction"] {
        assert!(!template.environment_of(id).contains("JWT_SECRET"), "{id}");
    }
}
