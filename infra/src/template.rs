//! Reading `template.yaml`: the routes, the table, the bucket, which
//! environment variables each function is given and which crate `sam build`
//! builds it from, so that the local stack is defined by the same file that
//! deploys to AWS.
//!
//! CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`, …) arrive as
//! tagged YAML values; we only read literal properties and treat anything
//! computed as "decided at deploy time".

use std::{collections::BTreeSet, path::Path};

use serde_norway::{Mapping, Value};

use crate::filter::FilterCriteria;

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("template: {0}")]
    Shape(String),
}

impl std::fmt::Debug for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// One REST event of a function: `Path` and `Method` of a `Type: Api` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    pub function: String,
    pub path: String,
    /// Upper case; `ANY` matches every method.
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub keys: Vec<KeyElement>,
}

/// An `AWS::DynamoDB::Table` as far as an emulator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// (name, `S` | `N` | `B`)
    pub attributes: Vec<(String, String)>,
    pub keys: Vec<KeyElement>,
    pub global_indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
    pub stream_view_type: Option<String>,
}

/// A CORS rule of the bucket; computed origins become `*` locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsRule {
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub logical_id: String,
    pub cors_rules: Vec<CorsRule>,
}

/// The parts of the template the local stack uses.
#[derive(Debug, Clone)]
pub struct Template {
    pub routes: Vec<ApiRoute>,
    pub tables: Vec<TableSpec>,
    pub buckets: Vec<BucketSpec>,
    /// Default function timeout (`Globals.Function.Timeout`), seconds.
    pub function_timeout_secs: u64,
    /// Default function memory (`Globals.Function.MemorySize`), MB.
    pub function_memory_mb: u64,
    /// The names of `Globals.Function.Environment.Variables`: every
    /// function is given these.
    pub global_environment: BTreeSet<String>,
    /// Every `AWS::Serverless::Function`, with what it overrides.
    pub functions: Vec<FunctionSpec>,
    /// Route keys of the WebSocket API (`$connect`, `chat.send`, …).
    pub ws_routes: Vec<String>,
    /// Every `Type: DynamoDB` event: a stream feeding a function.
    pub stream_events: Vec<StreamEvent>,
    /// Every `Type: Schedule` event: EventBridge invoking a function at a
    /// fixed rate.
    pub schedule_events: Vec<ScheduleEvent>,
}

/// A `Type: Schedule` event of a function, with its `rate(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEvent {
    pub function: String,
    /// Its key under `Events`.
    pub name: String,
    pub every: std::time::Duration,
}

/// EventBridge's `rate(value unit)`: a positive whole `value` of minutes,
/// hours or days (singular for 1, as EventBridge insists). A `cron(...)`
/// schedule is not emulated locally, so it stops the template loading
/// rather than never firing.
pub fn parse_rate(expression: &str) -> Result<std::time::Duration, String> {
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| format!("{expression:?}: only rate(...) schedules are emulated"))?;
    let (value, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("{expression:?}: expected rate(<value> <unit>)"))?;
    let value: u64 = value
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{expression:?}: the value must be a positive whole number"))?;
    let unit_secs = match (value, unit.trim()) {
        (1, "minute") | (2.., "minutes") => 60,
        (1, "hour") | (2.., "hours") => 3600,
        (1, "day") | (2.., "days") => 86_400,
        _ => {
            return Err(format!(
                "{expression:?}: the unit must be minute(s), hour(s) or day(s), singular for 1"
            ));
        }
    };
    Ok(std::time::Duration::from_secs(value * unit_secs))
}

/// A `Type: DynamoDB` event of a function, with the `FilterCriteria` its
/// event source mapping applies.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub function: String,
    /// Its key under `Events`.
    pub name: String,
    pub filters: FilterCriteria,
}

/// An `AWS::Serverless::Function`: where it is built from and what it sets
/// beside `Globals` (`None` takes the global value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub timeout_secs: Option<u64>,
    pub memory_mb: Option<u64>,
    /// `functions/<crate>`: the directory `sam build` runs cargo-lambda in.
    pub code_uri: Option<String>,
    /// `Metadata.BuildMethod`: how `sam build` builds it
    /// (`rust-cargolambda`).
    pub build_method: Option<String>,
    /// `Metadata.BuildProperties.Binary`: the bin target `sam build` asks
    /// cargo-lambda for (`--bin`) and copies as the bootstrap.
    pub binary: Option<String>,
    /// The names of its own `Environment.Variables`, beside the global ones.
    pub environment: BTreeSet<String>,
}

impl FunctionSpec {
    /// The crate of its `CodeUri`, `functions/<crate>` (a trailing `/`
    /// allowed); `None` for code from anywhere else.
    pub fn crate_name(&self) -> Option<&str> {
        let krate = self
            .code_uri
            .as_deref()?
            .trim_end_matches('/')
            .strip_prefix("functions/")?;
        (!krate.is_empty() && !krate.contains('/')).then_some(krate)
    }
}

fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(Value::String(key.to_owned()))
}

fn str_of<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    get(map, key).and_then(Value::as_str)
}

fn map_of<'a>(map: &'a Mapping, key: &str) -> Option<&'a Mapping> {
    get(map, key).and_then(Value::as_mapping)
}

fn seq_of<'a>(map: &'a Mapping, key: &str) -> &'a [Value] {
    get(map, key)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn strings(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The variable names of an `Environment: {Variables: …}` property; the
/// values may be computed (`!Ref`, `!Sub`), the names never are.
fn variable_names(holder: Option<&Mapping>) -> BTreeSet<String> {
    holder
        .and_then(|h| map_of(h, "Environment"))
        .and_then(|e| map_of(e, "Variables"))
        .map(|variables| {
            variables
                .keys()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn key_schema(values: &[Value]) -> Vec<KeyElement> {
    values
        .iter()
        .filter_map(Value::as_mapping)
        .filter_map(|key| {
            Some(KeyElement {
                attribute: str_of(key, "AttributeName")?.to_owned(),
                key_type: str_of(key, "KeyType")?.to_owned(),
            })
        })
        .collect()
}

impl Template {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_norway::from_str(text)?;
        let root = root
            .as_mapping()
            .ok_or_else(|| TemplateError::Shape("the root is not a mapping".into()))?;
        let resources = map_of(root, "Resources")
            .ok_or_else(|| TemplateError::Shape("no Resources section".into()))?;
        let globals = map_of(root, "Globals").and_then(|g| map_of(g, "Function"));
        let function_timeout_secs = globals
            .and_then(|f| get(f, "Timeout"))
            .and_then(Value::as_u64)
            .unwrap_or(3);
        // Lambda's defaults when the template says nothing.
        let function_memory_mb = globals
            .and_then(|f| get(f, "MemorySize"))
            .and_then(Value::as_u64)
            .unwrap_or(128);

        let mut template = Template {
            routes: Vec::new(),
            tables: Vec::new(),
            buckets: Vec::new(),
            function_timeout_secs,
            function_memory_mb,
            global_environment: variable_names(globals),
            functions: Vec::new(),
            ws_routes: Vec::new(),
            stream_events: Vec::new(),
            schedule_events: Vec::new(),
        };
        for (id, resource) in resources {
            let (Some(id), Some(resource)) = (id.as_str(), resource.as_mapping()) else {
                continue;
            };
            let properties = map_of(resource, "Properties");
            match str_of(resource, "Type") {
                Some("AWS::Serverless::Function") => {
                    let Some(properties) = properties else {
                        continue;
                    };
                    template.read_function(id, properties, map_of(resource, "Metadata"))?;
                }
                Some("AWS::DynamoDB::Table") => {
                    let Some(properties) = properties else {
                        continue;
                    };
                    template.tables.push(read_table(id, properties));
                }
                Some("AWS::ApiGatewayV2::Route") => {
                    if let Some(key) = properties.and_then(|p| str_of(p, "RouteKey")) {
                        template.ws_routes.push(key.to_owned());
                    }
                }
                Some("AWS::S3::Bucket") => {
                    template.buckets.push(read_bucket(id, properties));
                }
                _ => {}
            }
        }
        Ok(template)
    }

    fn read_function(
        &mut self,
        id: &str,
        properties: &Mapping,
        metadata: Option<&Mapping>,
    ) -> Result<(), TemplateError> {
        self.functions.push(FunctionSpec {
            logical_id: id.to_owned(),
            timeout_secs: get(properties, "Timeout").and_then(Value::as_u64),
            memory_mb: get(properties, "MemorySize").and_then(Value::as_u64),
            code_uri: str_of(properties, "CodeUri").map(str::to_owned),
            build_method: metadata
                .and_then(|m| str_of(m, "BuildMethod"))
                .map(str::to_owned),
            binary: metadata
                .and_then(|m| map_of(m, "BuildProperties"))
                .and_then(|b| str_of(b, "Binary"))
                .map(str::to_owned),
            environment: variable_names(Some(properties)),
        });
        let Some(events) = map_of(properties, "Events") else {
            return Ok(());
        };
        for (name, event) in events {
            let (Some(name), Some(event)) = (name.as_str(), event.as_mapping()) else {
                continue;
            };
            if str_of(event, "Type") == Some("DynamoDB") {
                // Lambda refuses a bad pattern at deploy time; so does this.
                let filters = read_filter_criteria(map_of(event, "Properties"))
                    .map_err(|e| TemplateError::Shape(format!("{id}.Events.{name}: {e}")))?;
                self.stream_events.push(StreamEvent {
                    function: id.to_owned(),
                    name: name.to_owned(),
                    filters,
                });
                continue;
            }
            if str_of(event, "Type") == Some("Schedule") {
                let schedule = map_of(event, "Properties")
                    .and_then(|p| str_of(p, "Schedule"))
                    .ok_or_else(|| {
                        TemplateError::Shape(format!("{id}.Events.{name}: no Schedule"))
                    })?;
                let every = parse_rate(schedule)
                    .map_err(|e| TemplateError::Shape(format!("{id}.Events.{name}: {e}")))?;
                self.schedule_events.push(ScheduleEvent {
                    function: id.to_owned(),
                    name: name.to_owned(),
                    every,
                });
                continue;
            }
            if str_of(event, "Type") != Some("Api") {
                continue;
            }
            let Some(props) = map_of(event, "Properties") else {
                continue;
            };
            if let (Some(path), Some(method)) = (str_of(props, "Path"), str_of(props, "Method")) {
                self.routes.push(ApiRoute {
                    function: id.to_owned(),
                    path: path.to_owned(),
                    method: method.to_ascii_uppercase(),
                });
            }
        }
        Ok(())
    }

    fn function(&self, logical_id: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    /// The timeout of `function`, seconds.
    pub fn timeout_of(&self, function: &str) -> u64 {
        self.function(function)
            .and_then(|f| f.timeout_secs)
            .unwrap_or(self.function_timeout_secs)
    }

    /// The memory of `function`, MB.
    pub fn memory_of(&self, function: &str) -> u64 {
        self.function(function)
            .and_then(|f| f.memory_mb)
            .unwrap_or(self.function_memory_mb)
    }

    /// The variables `function` is given on AWS: the global ones and its
    /// own.
    pub fn environment_of(&self, function: &str) -> BTreeSet<&str> {
        let own = self.function(function).map(|f| &f.environment);
        self.global_environment
            .iter()
            .chain(own.into_iter().flatten())
            .map(String::as_str)
            .collect()
    }

    /// Every variable the template gives to at least one function.
    pub fn declared_variables(&self) -> BTreeSet<&str> {
        self.global_environment
            .iter()
            .chain(self.functions.iter().flat_map(|f| &f.environment))
            .map(String::as_str)
            .collect()
    }

    /// The function whose `CodeUri` is the crate `functions/<krate>`.
    pub fn function_built_from(&self, krate: &str) -> Option<&str> {
        self.functions
            .iter()
            .find(|f| f.crate_name() == Some(krate))
            .map(|f| f.logical_id.as_str())
    }

    /// The one table of the single-table design.
    pub fn main_table(&self) -> Result<&TableSpec, TemplateError> {
        match self.tables.as_slice() {
            [table] => Ok(table),
            other => Err(TemplateError::Shape(format!(
                "expected exactly one table, found {}",
                other.len()
            ))),
        }
    }

    /// The one stream event source: the table's stream and the function it
    /// feeds.
    pub fn table_stream(&self) -> Result<&StreamEvent, TemplateError> {
        match self.stream_events.as_slice() {
            [event] => Ok(event),
            other => Err(TemplateError::Shape(format!(
                "expected exactly one DynamoDB stream event, found {}",
                other.len()
            ))),
        }
    }

    /// The one uploads bucket.
    pub fn main_bucket(&self) -> Result<&BucketSpec, TemplateError> {
        match self.buckets.as_slice() {
            [bucket] => Ok(bucket),
            other => Err(TemplateError::Shape(format!(
                "expected exactly one bucket, found {}",
                other.len()
            ))),
        }
    }
}

fn read_table(id: &str, properties: &Mapping) -> TableSpec {
    let attributes = seq_of(properties, "AttributeDefinitions")
        .iter()
        .filter_map(Value::as_mapping)
        .filter_map(|a| {
            Some((
                str_of(a, "AttributeName")?.to_owned(),
                str_of(a, "AttributeType")?.to_owned(),
            ))
        })
        .collect();
    let global_indexes = seq_of(properties, "GlobalSecondaryIndexes")
        .iter()
        .filter_map(Value::as_mapping)
        .filter_map(|index| {
            Some(IndexSpec {
                name: str_of(index, "IndexName")?.to_owned(),
                keys: key_schema(seq_of(index, "KeySchema")),
            })
        })
        .collect();
    let ttl_attribute = map_of(properties, "TimeToLiveSpecification")
        .filter(|ttl| {
            get(ttl, "Enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .and_then(|ttl| str_of(ttl, "AttributeName"))
        .map(str::to_owned);
    let stream_view_type = map_of(properties, "StreamSpecification")
        .and_then(|s| str_of(s, "StreamViewType"))
        .map(str::to_owned);
    TableSpec {
        logical_id: id.to_owned(),
        attributes,
        keys: key_schema(seq_of(properties, "KeySchema")),
        global_indexes,
        ttl_attribute,
        stream_view_type,
    }
}

/// The `FilterCriteria` of a DynamoDB event's properties; none selects
/// every record, as on AWS.
fn read_filter_criteria(properties: Option<&Mapping>) -> Result<FilterCriteria, String> {
    let Some(criteria) = properties.and_then(|p| get(p, "FilterCriteria")) else {
        return Ok(FilterCriteria::default());
    };
    // Only literal YAML can be applied: a computed pattern (`!Sub`) is
    // known at deploy time only, and `as_sequence` and `as_str` would
    // read a tag's argument as if it were the value.
    let filters = match criteria {
        Value::Mapping(criteria) => match get(criteria, "Filters") {
            None => &[][..],
            Some(Value::Sequence(filters)) => filters.as_slice(),
            Some(_) => return Err("FilterCriteria.Filters is not a literal list".into()),
        },
        _ => return Err("FilterCriteria is not a literal mapping".into()),
    };
    let patterns = filters
        .iter()
        .enumerate()
        .map(|(index, filter)| match filter {
            Value::Mapping(filter) => match get(filter, "Pattern") {
                Some(Value::String(pattern)) => Ok(pattern.as_str()),
                _ => Err(format!(
                    "FilterCriteria.Filters[{index}].Pattern is not a literal string"
                )),
            },
            _ => Err(format!("FilterCriteria.Filters[{index}] is not a mapping")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    FilterCriteria::parse(patterns).map_err(|e| e.to_string())
}

fn read_bucket(id: &str, properties: Option<&Mapping>) -> BucketSpec {
    let cors_rules = properties
        .and_then(|p| map_of(p, "CorsConfiguration"))
        .map(|cors| seq_of(cors, "CorsRules"))
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_mapping)
        .map(|rule| {
            // `as_sequence` sees through tags, so `!Split [...]` would read as
            // its arguments; only a literal list counts.
            let origins = match get(rule, "AllowedOrigins") {
                Some(Value::Sequence(values)) => strings(values),
                _ => Vec::new(),
            };
            CorsRule {
                allowed_methods: strings(seq_of(rule, "AllowedMethods")),
                // Origins computed from a parameter are a deploy-time choice;
                // locally any origin may upload.
                allowed_origins: if origins.is_empty() {
                    vec!["*".into()]
                } else {
                    origins
                },
                allowed_headers: strings(seq_of(rule, "AllowedHeaders")),
                exposed_headers: strings(seq_of(rule, "ExposedHeaders")),
                max_age_seconds: get(rule, "MaxAge")
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok()),
            }
        })
        .collect();
    BucketSpec {
        logical_id: id.to_owned(),
        cors_rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO_TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

    fn repo_template() -> Template {
        Template::load(REPO_TEMPLATE).unwrap()
    }

    fn repo_template_text() -> String {
        std::fs::read_to_string(REPO_TEMPLATE).unwrap()
    }

    #[test]
    fn the_outbox_sweep_is_scheduled_on_the_stream_function() {
        let template = repo_template();
        assert_eq!(
            template.schedule_events,
            [ScheduleEvent {
                function: crate::functions::stream_logical_id().to_owned(),
                name: "OutboxSweep".into(),
                every: std::time::Duration::from_secs(300),
            }]
        );
    }

    #[test]
    fn rates_parse_as_eventbridge_writes_them() {
        assert_eq!(
            parse_rate("rate(1 minute)"),
            Ok(std::time::Duration::from_secs(60))
        );
        assert_eq!(
            parse_rate("rate(2 hours)"),
            Ok(std::time::Duration::from_secs(7200))
        );
        assert_eq!(
            parse_rate("rate(1 day)"),
            Ok(std::time::Duration::from_secs(86_400))
        );
        for refused in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(5 seconds)",
            "cron(0 12 * * ? *)",
            "rate(5)",
        ] {
            assert!(parse_rate(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_repository_template_has_one_table_with_streams_and_ttl() {
        let template = repo_template();
        let table = template.main_table().unwrap();
        assert_eq!(
            table.keys[0],
            KeyElement {
                attribute: "pk".into(),
                key_type: "HASH".into()
            }
        );
        assert_eq!(table.ttl_attribute.as_deref(), Some("ttl"));
        assert_eq!(
            table.stream_view_type.as_deref(),
            Some("NEW_AND_OLD_IMAGES")
        );
        for index in &table.global_indexes {
            for key in &index.keys {
                assert!(
                    table
                        .attributes
                        .iter()
                        .any(|(name, _)| *name == key.attribute),
                    "{} undefined",
                    key.attribute
                );
            }
        }
    }

    #[test]
    fn the_repository_template_routes_health() {
        let template = repo_template();
        for path in ["/health", "/ready"] {
            assert!(
                template
                    .routes
                    .iter()
                    .any(|r| r.path == path && r.function == "HealthFunction"),
                "{path} not routed"
            );
        }
        let bucket = template.main_bucket().unwrap();
        assert!(
            bucket.cors_rules[0]
                .allowed_methods
                .contains(&"PUT".to_owned())
        );
        assert_eq!(bucket.cors_rules[0].allowed_origins, vec!["*".to_owned()]);
    }

    const FUNCTIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");

    fn function_crates() -> Vec<String> {
        let mut crates = std::fs::read_dir(FUNCTIONS_DIR)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>();
        crates.sort();
        crates
    }

    /// The `name` of each `[[bin]]` table of a manifest.
    fn bin_names(manifest: &str) -> Vec<&str> {
        manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|table| {
                table
                    .lines()
                    .take_while(|line| !line.starts_with('['))
                    .find_map(|line| line.trim().strip_prefix("name = "))
            })
            .map(|name| name.trim_matches('"'))
            .collect()
    }

    // `sam build` runs `cargo lambda build --release --arm64 --bin <Binary>`
    // in each CodeUri and deploys the bootstrap of that bin: a function
    // without the build method would be zipped as a directory of sources,
    // and a Binary naming no bin of that crate fails only in the hour-long
    // release build.
    #[test]
    fn sam_build_builds_every_function_crate_with_cargo_lambda() {
        let template = repo_template();
        let crates = function_crates();
        assert_eq!(crates.len(), template.functions.len());
        for krate in &crates {
            let id = template.function_built_from(krate).unwrap_or_else(|| {
                panic!("functions/{krate} has no function with CodeUri functions/{krate}")
            });
            let function = template.function(id).unwrap();
            assert_eq!(
                function.build_method.as_deref(),
                Some("rust-cargolambda"),
                "{id}: Metadata.BuildMethod"
            );
            assert_eq!(
                function.binary.as_deref(),
                Some(krate.as_str()),
                "{id}: Metadata.BuildProperties.Binary"
            );
            let manifest =
                std::fs::read_to_string(format!("{FUNCTIONS_DIR}/{krate}/Cargo.toml")).unwrap();
            assert_eq!(
                bin_names(&manifest),
                [krate.as_str()],
                "functions/{krate}'s bins"
            );
        }
        assert_eq!(template.memory_of("HealthFunction"), 128);
        assert_eq!(template.memory_of("AuthFunction"), 1024);
        assert_eq!(
            template.memory_of("PostsFunction"),
            256,
            "the global default"
        );
    }

    // What `sam build` passes to cargo-lambda comes from these: arm64 gives
    // `--arm64`, as `make bench` sizes and the bench targets assume; on
    // provided.al2 the builder would target glibc 2.26 instead.
    #[test]
    fn every_function_is_built_for_arm64_on_provided_al2023() {
        let root: Value = serde_norway::from_str(&repo_template_text()).unwrap();
        let globals = &root["Globals"]["Function"];
        assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
        assert_eq!(
            globals["Architectures"],
            Value::Sequence(vec![Value::String("arm64".into())])
        );
        for (id, resource) in root["Resources"].as_mapping().unwrap() {
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            for property in ["Runtime", "Architectures"] {
                assert!(
                    resource["Properties"].get(property).is_none(),
                    "{id:?} overrides the global {property}"
                );
            }
        }
    }

    #[test]
    fn a_function_is_built_from_the_crate_of_its_code_uri() {
        let template = Template::parse(
            "Resources:\n\
             \x20 One: {Type: AWS::Serverless::Function, Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: one}}, Properties: {CodeUri: functions/one}}\n\
             \x20 Two: {Type: AWS::Serverless::Function, Properties: {CodeUri: functions/two/}}\n\
             \x20 Old: {Type: AWS::Serverless::Function, Properties: {CodeUri: target/lambda/old/}}\n\
             \x20 Deep: {Type: AWS::Serverless::Function, Properties: {CodeUri: functions/a/b}}\n\
             \x20 Bare: {Type: AWS::Serverless::Function, Properties: {CodeUri: functions/}}\n",
        )
        .unwrap();
        assert_eq!(template.function_built_from("one"), Some("One"));
        assert_eq!(template.function_built_from("two"), Some("Two"));
        for krate in ["old", "a", "b", ""] {
            assert_eq!(template.function_built_from(krate), None, "{krate:?}");
        }
        let one = template.function("One").unwrap();
        assert_eq!(one.build_method.as_deref(), Some("rust-cargolambda"));
        assert_eq!(one.binary.as_deref(), Some("one"));
        let two = template.function("Two").unwrap();
        assert_eq!(
            (two.build_method.as_deref(), two.binary.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn the_bins_of_a_manifest_are_read_from_its_bin_tables() {
        assert_eq!(
            bin_names(
                "[package]\nname = \"p\"\n\n[[bin]]\nname = \"one\"\npath = \"src/main.rs\"\n\n[[bin]]\npath = \"x.rs\"\nname = \"two\"\n"
            ),
            ["one", "two"]
        );
        assert!(bin_names("[package]\nname = \"p\"\n").is_empty());
        assert!(bin_names("[[bin]]\npath = \"a.rs\"\n[dependencies]\nname = \"x\"\n").is_empty());
    }

    #[test]
    fn every_gateway_response_carries_cors_headers() {
        let text = repo_template_text();
        let root: Value = serde_norway::from_str(&text).unwrap();
        let responses = root["Resources"]["RestApi"]["Properties"]["GatewayResponses"]
            .as_mapping()
            .expect("the REST API has gateway responses");
        assert!(responses.len() >= 6);
        for (kind, response) in responses {
            let headers = response["ResponseParameters"]["Headers"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{kind:?} sets no headers"));
            for header in [
                "Access-Control-Allow-Origin",
                "Access-Control-Expose-Headers",
                "X-Request-ID",
            ] {
                assert!(
                    headers.contains_key(Value::String(header.into())),
                    "{kind:?} lacks {header}"
                );
            }
            assert_eq!(
                headers[&Value::String("Access-Control-Expose-Headers".into())].as_str(),
                Some(format!("'{}'", platform::cors::EXPOSED_HEADERS).as_str()),
                "{kind:?} exposes other headers than the functions"
            );
        }
    }

    #[test]
    fn gateway_responses_report_the_api_version() {
        let text = repo_template_text();
        let expected = format!(r#""version":"{}""#, platform::envelope::API_VERSION);
        let stale: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#""version":"#) && !l.contains(&expected))
            .collect();
        assert!(
            stale.is_empty(),
            "gateway responses with a stale version: {stale:?}"
        );
    }

    #[test]
    fn a_function_is_given_the_global_variables_and_its_own() {
        let template = Template::parse(
            "Globals: {Function: {Environment: {Variables: {A: !Ref X, B: b}}}}\n\
             Resources:\n\
             \x20 One: {Type: AWS::Serverless::Function, Properties: {Environment: {Variables: {C: !Sub '${X}'}}}}\n\
             \x20 Two: {Type: AWS::Serverless::Function, Properties: {Environment: {Variables: {D: d}}}}\n\
             \x20 Three: {Type: AWS::Serverless::Function, Properties: {}}\n",
        )
        .unwrap();
        assert_eq!(
            template.environment_of("One"),
            BTreeSet::from(["A", "B", "C"])
        );
        assert_eq!(template.environment_of("Three"), BTreeSet::from(["A", "B"]));
        assert_eq!(
            template.environment_of("Unknown"),
            BTreeSet::from(["A", "B"])
        );
        assert_eq!(
            template.declared_variables(),
            BTreeSet::from(["A", "B", "C", "D"])
        );
    }

    #[test]
    fn broken_templates_are_reported() {
        assert!(matches!(
            Template::parse("a: [unclosed"),
            Err(TemplateError::Yaml(_))
        ));
        assert!(matches!(
            Template::parse("Foo: 1"),
            Err(TemplateError::Shape(_))
        ));
        let template = Template::parse("Resources: {}").unwrap();
        assert!(template.main_table().is_err());
    }

    #[test]
    fn the_repository_stream_feeds_the_registered_worker_through_its_filters() {
        let template = repo_template();
        let stream = template.table_stream().unwrap();
        let worker = crate::functions::REGISTRY
            .iter()
            .find(|f| matches!(f.kind, crate::functions::Kind::Stream(_)))
            .unwrap();
        assert_eq!(stream.function, worker.logical_id);
        assert_eq!(stream.name, "TableStream");
        assert!(
            stream.filters.patterns().count() > 0,
            "its filters are read"
        );
    }

    fn with_stream_event(properties: &str) -> Result<Template, TemplateError> {
        Template::parse(&format!(
            "Resources:\n\
             \x20 Worker:\n\
             \x20   Type: AWS::Serverless::Function\n\
             \x20   Properties:\n\
             \x20     Events:\n\
             \x20       Changes: {{Type: DynamoDB, Properties: {properties}}}\n"
        ))
    }

    #[test]
    fn a_stream_event_without_filter_criteria_selects_everything() {
        for properties in ["{Stream: !GetAtt T.StreamArn}", "{FilterCriteria: {}}"] {
            let template = with_stream_event(properties).unwrap();
            let stream = template.table_stream().unwrap();
            assert_eq!(stream.function, "Worker");
            assert_eq!(stream.filters.patterns().count(), 0, "{properties}");
            assert!(
                stream
                    .filters
                    .selects(&serde_json::json!({"eventName": "INSERT"}))
            );
        }
    }

    #[test]
    fn a_pattern_lambda_would_refuse_stops_the_template_from_loading() {
        let error = with_stream_event(
            r#"{FilterCriteria: {Filters: [{Pattern: '{"eventName": ["INSERT"]}'}, {Pattern: '{"eventName": "MODIFY"}'}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "template: Worker.Events.Changes: FilterCriteria.Filters[1].Pattern: eventName: must be an object or an array"
        );
        for (properties, problem) in [
            (
                "{FilterCriteria: {Filters: [{Pattern: !Sub '{\"a\": [\"${X}\"]}'}]}}",
                "Filters[0].Pattern is not a literal string",
            ),
            (
                "{FilterCriteria: {Filters: !Ref Patterns}}",
                "Filters is not a literal list",
            ),
            (
                "{FilterCriteria: {Filters: [x]}}",
                "Filters[0] is not a mapping",
            ),
        ] {
            let error = with_stream_event(properties).unwrap_err().to_string();
            assert!(error.contains(problem), "{properties}: {error}");
        }
    }

    #[test]
    fn a_template_has_one_table_stream_or_says_so() {
        assert!(
            Template::parse("Resources: {}")
                .unwrap()
                .table_stream()
                .is_err()
        );
    }
}
