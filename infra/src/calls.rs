//! The AWS calls each function makes, as IAM would judge them: which
//! function (which execution role) asked for which action on which
//! resource, and, where the gateway was serving a route, for which route.
//!
//! Locally every function shares one emulator that allows everything, so a
//! permission the template forgot is found only on AWS. Each function
//! therefore gets its own SDK configuration ([`CallRecorder::sdk_config`]):
//! its own credentials (an access key naming the function, so that what it
//! presigns is attributed to it as well) and an HTTP client that notes
//! every request before sending it on. The request is read after signing,
//! as the service reads it, and translated into IAM's terms here
//! ([`authorizations`]): DynamoDB's transactions and batches become the
//! per-item actions IAM checks, S3's REST calls their object or bucket
//! actions, SES v2's send its identity, `@connections` its
//! `execute-api:ManageConnections` ARN. A request this module cannot name
//! is recorded as [`UNMAPPED`], which the IAM check refuses, so that no call
//! goes unjudged.
//!
//! With `AWS_CALL_LOG_DIR` set (as `make test` sets it), every call is also
//! appended as a JSON line to a file of this process in that directory;
//! `infra/python/iam_check.py` evaluates them against the policies SAM's
//! transform expands from template.yaml. The scale work reads the same
//! records, per route.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    fs::{File, OpenOptions},
    io::Write,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aws_config::SdkConfig;
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use aws_smithy_runtime_api::client::{
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::HttpRequest,
    runtime_components::RuntimeComponents,
};
use serde::Serialize;
use serde_json::Value;

/// The action recorded for a request this module cannot translate.
pub const UNMAPPED: &str = "UNMAPPED";

/// The account moto gives every access key it does not know.
pub const LOCAL_ACCOUNT: &str = "123456789012";

/// The API id the local WebSocket API stands for in ARNs.
pub const LOCAL_WEBSOCKET_API: &str = "local-websocket-api";

/// What the gateway is serving while a function runs: the route (e.g.
/// `POST /auth/login` or `$connect`) and which invocation of it.
#[derive(Debug, Clone)]
struct Serving {
    route: String,
    invocation: u64,
}

tokio::task_local! {
    static SERVING: Serving;
}

/// Runs `work` (a function's invocation) as serving `route`: the calls it
/// makes from its own task are recorded with that route and a number of
/// this invocation, unique in the process, so that the calls of one
/// request can be told from another's ([`round_trips`]).
pub async fn serving<F: Future>(route: String, work: F) -> F::Output {
    static INVOCATIONS: AtomicU64 = AtomicU64::new(0);
    let invocation = INVOCATIONS.fetch_add(1, Ordering::Relaxed);
    SERVING.scope(Serving { route, invocation }, work).await
}

/// When a call went out and came back, from a process-wide start.
fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// How many sequential round trips `calls` took: the longest chain of
/// calls each sent only after the one before had answered. Calls sent
/// together (their spans overlap) count once, as a client waiting for
/// them feels it. A call still out counts as ending now.
pub fn round_trips(calls: &[&Call]) -> usize {
    let mut spans: Vec<(Duration, Duration)> = calls
        .iter()
        .map(|call| {
            let finished = call
                .finished
                .lock()
                .expect("finished")
                .unwrap_or_else(since_start);
            (call.started, finished)
        })
        .collect();
    spans.sort();
    // depth[i]: the longest chain ending with call i.
    let mut depth: Vec<usize> = Vec::with_capacity(spans.len());
    for (i, (started, _)) in spans.iter().enumerate() {
        let before = (0..i)
            .filter(|&j| spans[j].1 <= *started)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

/// What the template's references stand for in one deployment (one test's
/// own table, bucket and sender), so that the check resolves the policies
/// for the deployment the calls were made in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deployment {
    pub region: String,
    pub table: String,
    pub bucket: String,
    /// The REST and WebSocket APIs' stage (`Stage` of the template).
    pub stage: String,
    /// Template parameters the policies use (`EmailFrom`).
    pub parameters: BTreeMap<String, String>,
}

/// One authorization IAM makes for a call; a call may need several (a
/// transaction, one per item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
    /// Condition keys the request sets (`ses:FromAddress`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, String>,
    /// For [`UNMAPPED`]: what the request was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Authorization {
    fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: resource.into(),
            conditions: BTreeMap::new(),
            detail: None,
        }
    }

    fn unmapped(detail: String) -> Self {
        Self {
            action: UNMAPPED.to_owned(),
            resource: "*".to_owned(),
            conditions: BTreeMap::new(),
            detail: Some(detail),
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// The template's logical id of the function whose role made it.
    pub function: String,
    /// The operation as the SDK named it on the wire (`DynamoDB_20120810.Query`,
    /// `PUT s3`), for counting round trips.
    pub operation: String,
    pub route: Option<String>,
    /// Which invocation of the route made it (see [`serving`]).
    pub invocation: Option<u64>,
    pub authorizations: Vec<Authorization>,
    pub deployment: Arc<Deployment>,
    /// When it was sent and when its answer came back ([`round_trips`]).
    #[serde(skip)]
    pub started: Duration,
    #[serde(skip)]
    pub finished: Arc<Mutex<Option<Duration>>>,
}

/// Records the calls of the functions of one deployment.
pub struct CallRecorder {
    deployment: Arc<Deployment>,
    calls: Mutex<Vec<Call>>,
    /// Whether its calls also go to `AWS_CALL_LOG_DIR`: those of a real
    /// deployment's functions do, a unit test's made-up ones must not,
    /// since the IAM check would judge them.
    logged: bool,
}

impl fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRecorder")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

/// The function (logical id) and recorder an access key belongs to; weak,
/// so that a finished test's recorder and its calls are freed.
type Signer = (String, Weak<CallRecorder>);

/// Which function and deployment signed with an access key: how a
/// presigned URL, used by someone else, is traced back to its signer.
fn signers() -> &'static Mutex<HashMap<String, Signer>> {
    static SIGNERS: OnceLock<Mutex<HashMap<String, Signer>>> = OnceLock::new();
    SIGNERS.get_or_init(Default::default)
}

/// This process's log file under `AWS_CALL_LOG_DIR`, if that is set.
fn log_file() -> Option<&'static Mutex<File>> {
    static LOG: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = PathBuf::from(std::env::var_os("AWS_CALL_LOG_DIR")?);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("AWS_CALL_LOG_DIR {}: {err}", dir.display()));
        let program = std::env::current_exe()
            .ok()
            .and_then(|path| {
                path.file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "process".to_owned());
        let path = dir.join(format!("{program}-{}.jsonl", std::process::id()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|err| panic!("AWS_CALL_LOG_DIR {}: {err}", path.display()));
        Some(Mutex::new(file))
    })
    .as_ref()
}

impl CallRecorder {
    /// A recorder that keeps its calls in memory only.
    pub fn new(deployment: Deployment) -> Arc<Self> {
        Arc::new(Self {
            deployment: Arc::new(deployment),
            calls: Mutex::default(),
            logged: false,
        })
    }

    /// A recorder whose calls also go to the log under `AWS_CALL_LOG_DIR`
    /// (when set), for the IAM check: the one a deployment's functions get.
    pub fn logged(deployment: Deployment) -> Arc<Self> {
        Arc::new(Self {
            deployment: Arc::new(deployment),
            calls: Mutex::default(),
            logged: true,
        })
    }

    /// `base` as the function `function` gets it: its own credentials, and
    /// every request recorded before it is sent.
    pub fn sdk_config(self: &Arc<Self>, base: &SdkConfig, function: &str) -> SdkConfig {
        let inner = base
            .http_client()
            .expect("the SDK configuration has an HTTP client");
        let access_key = format!("LOCAL{}{}", function, ulid::Ulid::new());
        signers().lock().expect("signers").insert(
            access_key.clone(),
            (function.to_owned(), Arc::downgrade(self)),
        );
        base.to_builder()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                access_key, "local", None, None, "recorder",
            )))
            .http_client(SharedHttpClient::new(RecordingClient {
                inner,
                function: function.to_owned(),
                recorder: Arc::clone(self),
            }))
            .build()
    }

    /// Every call recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    fn record(&self, call: Call) {
        if let Some(file) = log_file().filter(|_| self.logged) {
            let mut line = serde_json::to_string(&call).expect("a call serialises");
            line.push('\n');
            file.lock()
                .expect("call log")
                .write_all(line.as_bytes())
                .expect("writing the call log");
        }
        self.calls.lock().expect("calls").push(call);
    }

    /// Records the use of a presigned URL (by a client, not a function):
    /// S3 authorizes it as the request of whoever signed it. A URL that no
    /// recorded function signed (one a test forged) records nothing.
    pub fn record_presigned(method: &str, url: &str) {
        let query = url.split_once('?').map_or("", |(_, query)| query);
        let Some(access_key) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "X-Amz-Credential")
            .and_then(|(_, credential)| credential.split('/').next().map(str::to_owned))
        else {
            return;
        };
        let Some((function, recorder)) = signers()
            .lock()
            .expect("signers")
            .get(&access_key)
            .and_then(|(function, recorder)| Some((function.clone(), recorder.upgrade()?)))
        else {
            return;
        };
        let request = Request {
            method,
            uri: url,
            target: None,
            body: None,
            service: "s3",
        };
        // A client's use, at no function's request: no span to time.
        let now = since_start();
        recorder.record(Call {
            function,
            operation: request.operation(),
            route: None,
            invocation: None,
            authorizations: authorizations(&request, &recorder.deployment),
            deployment: Arc::clone(&recorder.deployment),
            started: now,
            finished: Arc::new(Mutex::new(Some(now))),
        });
    }
}

#[derive(Debug)]
struct RecordingClient {
    inner: SharedHttpClient,
    function: String,
    recorder: Arc<CallRecorder>,
}

impl HttpClient for RecordingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            function: self.function.clone(),
            recorder: Arc::clone(&self.recorder),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    function: String,
    recorder: Arc<CallRecorder>,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let service = signing_service(request.headers().get("authorization"));
        let body = request
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok());
        let seen = Request {
            method: request.method(),
            uri: request.uri(),
            target: request.headers().get("x-amz-target"),
            body: body.as_ref(),
            service: service.as_deref().unwrap_or(""),
        };
        let serving = SERVING.try_with(Clone::clone).ok();
        let finished = Arc::new(Mutex::new(None));
        let call = Call {
            function: self.function.clone(),
            operation: seen.operation(),
            route: serving.as_ref().map(|s| s.route.clone()),
            invocation: serving.map(|s| s.invocation),
            authorizations: authorizations(&seen, &self.recorder.deployment),
            deployment: Arc::clone(&self.recorder.deployment),
            started: since_start(),
            finished: Arc::clone(&finished),
        };
        let listing = missing_object_needs(&call);
        self.recorder.record(call);
        let response = self.inner.call(request);
        let recorder = Arc::clone(&self.recorder);
        HttpConnectorFuture::new(async move {
            let response = response.await;
            *finished.lock().expect("finished") = Some(since_start());
            let response = response?;
            if let Some(listing) = listing
                && response.status().as_u16() == 404
            {
                recorder.record(listing);
            }
            Ok(response)
        })
    }
}

/// S3 answers a read of a missing object with 404 only to a caller that
/// may list the bucket, and with 403 to anyone else: code that relies on
/// the 404 (an upload not yet sent) needs `s3:ListBucket`, so a 404 is
/// recorded as that authorization too.
fn missing_object_needs(call: &Call) -> Option<Call> {
    let [read] = call.authorizations.as_slice() else {
        return None;
    };
    if read.action != "s3:GetObject" {
        return None;
    }
    let bucket = read.resource.split('/').next()?;
    Some(Call {
        operation: format!("{} (404)", call.operation),
        authorizations: vec![Authorization::new("s3:ListBucket", bucket)],
        ..call.clone()
    })
}

/// The service a SigV4 `Authorization` header was signed for: the fourth
/// part of its credential scope (`AKID/date/region/service/aws4_request`).
fn signing_service(authorization: Option<&str>) -> Option<String> {
    let credential = authorization?
        .split([' ', ','])
        .find_map(|part| part.strip_prefix("Credential="))?;
    credential.split('/').nth(3).map(str::to_owned)
}

/// A request as far as IAM cares.
struct Request<'a> {
    method: &'a str,
    uri: &'a str,
    target: Option<&'a str>,
    body: Option<&'a Value>,
    service: &'a str,
}

impl Request<'_> {
    fn path(&self) -> &str {
        let after_scheme = self
            .uri
            .split_once("://")
            .map_or(self.uri, |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map_or("/", |start| &after_scheme[start..]);
        path.split_once('?').map_or(path, |(path, _)| path)
    }

    fn query(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map_or("", |(_, query)| query);
        form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    fn operation(&self) -> String {
        match self.target {
            Some(target) => target.to_owned(),
            None => format!("{} {}", self.method, self.service),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} {} ({} {:?})",
            self.method,
            self.uri,
            self.service,
            self.target.unwrap_or("")
        )
    }
}

/// The authorizations IAM makes for `request` in `deployment`.
fn authorizations(request: &Request, deployment: &Deployment) -> Vec<Authorization> {
    let mapped = match request.service {
        "dynamodb" => dynamodb(request, deployment),
        "s3" => s3(request),
        "ses" => ses(request, deployment),
        "execute-api" => execute_api(request, deployment),
        _ => None,
    };
    mapped.unwrap_or_else(|| vec![Authorization::unmapped(request.describe())])
}

fn table_arn(deployment: &Deployment, table: &str) -> String {
    format!(
        "arn:aws:dynamodb:{}:{LOCAL_ACCOUNT}:table/{table}",
        deployment.region
    )
}

/// DynamoDB and DynamoDB Streams (both signed as `dynamodb`): the action is
/// the operation, except for transactions, which IAM checks item by item.
fn dynamodb(request: &Request, deployment: &Deployment) -> Option<Vec<Authorization>> {
    let (prefix, operation) = request.target?.split_once('.')?;
    let body = request.body?;
    let on_table = |action: &str, table: &str| {
        Authorization::new(format!("dynamodb:{action}"), table_arn(deployment, table))
    };
    if prefix.starts_with("DynamoDBStreams") {
        let stream = match operation {
            "ListStreams" => "*".to_owned(),
            // Real iterators are opaque; moto's begin with the stream ARN.
            "GetRecords" => body["ShardIterator"]
                .as_str()?
                .split('|')
                .next()?
                .to_owned(),
            _ => body["StreamArn"].as_str()?.to_owned(),
        };
        return Some(vec![Authorization::new(
            format!("dynamodb:{operation}"),
            stream,
        )]);
    }
    match operation {
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()?
            .iter()
            .map(|item| {
                let (kind, detail) = item.as_object()?.iter().next()?;
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    _ => return None,
                };
                Some(on_table(action, detail["TableName"].as_str()?))
            })
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => Some(
            body["RequestItems"]
                .as_object()?
                .keys()
                .map(|table| on_table(operation, table))
                .collect(),
        ),
        _ => {
            let table = body["TableName"].as_str()?;
            let mut resource = table_arn(deployment, table);
            if let Some(index) = body["IndexName"].as_str() {
                resource = format!("{resource}/index/{index}");
            }
            Some(vec![Authorization::new(
                format!("dynamodb:{operation}"),
                resource,
            )])
        }
    }
}

/// S3's REST API, path-style (`/bucket/key`), as IAM names it: a HEAD of an
/// object is `s3:GetObject`, a HEAD or listing of the bucket
/// `s3:ListBucket`.
fn s3(request: &Request) -> Option<Vec<Authorization>> {
    let path = request.path().trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return None;
    }
    let subresources: Vec<String> = request
        .query()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with("X-Amz-") && !name.starts_with("x-id"))
        .collect();
    let action = if key.is_empty() {
        match (request.method, subresources.as_slice()) {
            ("HEAD", []) => "ListBucket",
            ("GET", rest)
                if rest
                    .iter()
                    .all(|name| LIST_PARAMETERS.contains(&name.as_str())) =>
            {
                "ListBucket"
            }
            _ => return None,
        }
    } else {
        if !subresources.is_empty() {
            return None;
        }
        match request.method {
            "GET" | "HEAD" => "GetObject",
            "PUT" => "PutObject",
            "DELETE" => "DeleteObject",
            _ => return None,
        }
    };
    let decoded_key: String = percent_decode(key);
    let resource = if key.is_empty() {
        format!("arn:aws:s3:::{bucket}")
    } else {
        format!("arn:aws:s3:::{bucket}/{decoded_key}")
    };
    Some(vec![Authorization::new(format!("s3:{action}"), resource)])
}

/// The query parameters of a ListObjectsV2, which are not subresources.
const LIST_PARAMETERS: [&str; 7] = [
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "encoding-type",
];

fn percent_decode(text: &str) -> String {
    // form_urlencoded would also turn `+` into a space, which a path keeps.
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok();
        match (
            bytes[index],
            hex().and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SES v2's send: authorized on the sender's identity, with the sender as
/// the `ses:FromAddress` condition key.
fn ses(request: &Request, deployment: &Deployment) -> Option<Vec<Authorization>> {
    if request.method != "POST" || request.path() != "/v2/email/outbound-emails" {
        return None;
    }
    let from = request.body?["FromEmailAddress"].as_str()?;
    let mut authorization = Authorization::new(
        "ses:SendEmail",
        format!(
            "arn:aws:ses:{}:{LOCAL_ACCOUNT}:identity/{from}",
            deployment.region
        ),
    );
    authorization
        .conditions
        .insert("ses:FromAddress".to_owned(), from.to_owned());
    Some(vec![authorization])
}

/// The `@connections` management API: `/{stage}/@connections/{id}`.
fn execute_api(request: &Request, deployment: &Deployment) -> Option<Vec<Authorization>> {
    let mut parts = request.path().trim_start_matches('/').splitn(3, '/');
    let (stage, connections, id) = (parts.next()?, parts.next()?, parts.next()?);
    if connections != "@connections" || id.is_empty() {
        return None;
    }
    Some(vec![Authorization::new(
        "execute-api:ManageConnections",
        format!(
            "arn:aws:execute-api:{}:{LOCAL_ACCOUNT}:{LOCAL_WEBSOCKET_API}/{stage}/{}/@connections/{}",
            deployment.region,
            request.method,
            percent_decode(id)
        ),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use serde_json::json;

    fn deployment() -> Deployment {
        Deployment {
            region: "us-east-1".to_owned(),
            table: "t".to_owned(),
            bucket: "b".to_owned(),
            stage: "local".to_owned(),
            parameters: BTreeMap::new(),
        }
    }

    fn judge(
        method: &str,
        uri: &str,
        service: &str,
        target: Option<&str>,
        body: Option<Value>,
    ) -> Vec<(String, String)> {
        let request = Request {
            method,
            uri,
            target,
            body: body.as_ref(),
            service,
        };
        authorizations(&request, &deployment())
            .into_iter()
            .map(|authorization| (authorization.action, authorization.resource))
            .collect()
    }

    /// A DynamoDB (or Streams) JSON request: what matters is its target
    /// and body.
    fn judge_dynamodb(target: &str, body: Value) -> Vec<(String, String)> {
        judge("POST", "http://h/", "dynamodb", Some(target), Some(body))
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(action, resource)| ((*action).to_owned(), (*resource).to_owned()))
            .collect()
    }

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/t";

    #[test]
    fn a_query_on_an_index_is_authorized_on_the_index() {
        let body = json!({"TableName": "t", "IndexName": "gsi1"});
        assert_eq!(
            judge_dynamodb("DynamoDB_20120810.Query", body),
            pairs(&[("dynamodb:Query", &format!("{TABLE}/index/gsi1"))])
        );
        let body = json!({"TableName": "t"});
        assert_eq!(
            judge_dynamodb("DynamoDB_20120810.GetItem", body),
            pairs(&[("dynamodb:GetItem", TABLE)])
        );
    }

    #[test]
    fn a_transaction_is_authorized_item_by_item() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t"}},
            {"Update": {"TableName": "t"}},
            {"Delete": {"TableName": "t"}},
            {"ConditionCheck": {"TableName": "u"}},
        ]});
        let other = "arn:aws:dynamodb:us-east-1:123456789012:table/u";
        assert_eq!(
            judge_dynamodb("DynamoDB_20120810.TransactWriteItems", body),
            pairs(&[
                ("dynamodb:PutItem", TABLE),
                ("dynamodb:UpdateItem", TABLE),
                ("dynamodb:DeleteItem", TABLE),
                ("dynamodb:ConditionCheckItem", other),
            ])
        );
        let body = json!({"TransactItems": [{"Get": {"TableName": "t"}}]});
        assert_eq!(
            judge_dynamodb("DynamoDB_20120810.TransactGetItems", body),
            pairs(&[("dynamodb:GetItem", TABLE)])
        );
    }

    #[test]
    fn a_batch_is_authorized_per_table() {
        let body = json!({"RequestItems": {"t": {}}});
        assert_eq!(
            judge_dynamodb("DynamoDB_20120810.BatchWriteItem", body),
            pairs(&[("dynamodb:BatchWriteItem", TABLE)])
        );
    }

    #[test]
    fn stream_reads_are_authorized_on_the_stream() {
        let stream = format!("{TABLE}/stream/2026");
        let body = json!({"StreamArn": stream});
        assert_eq!(
            judge_dynamodb("DynamoDBStreams_20120810.DescribeStream", body),
            pairs(&[("dynamodb:DescribeStream", &stream)])
        );
        let body = json!({"ShardIterator": format!("{stream}|1|opaque")});
        assert_eq!(
            judge_dynamodb("DynamoDBStreams_20120810.GetRecords", body),
            pairs(&[("dynamodb:GetRecords", &stream)])
        );
        // Listing names no stream yet: IAM checks it on every resource.
        let body = json!({"TableName": "t"});
        assert_eq!(
            judge_dynamodb("DynamoDBStreams_20120810.ListStreams", body),
            pairs(&[("dynamodb:ListStreams", "*")])
        );
    }

    #[test]
    fn s3_requests_are_named_as_iam_names_them() {
        let object = "arn:aws:s3:::b/uploads/a b+c";
        for (method, action) in [
            ("GET", "s3:GetObject"),
            ("HEAD", "s3:GetObject"),
            ("PUT", "s3:PutObject"),
            ("DELETE", "s3:DeleteObject"),
        ] {
            assert_eq!(
                judge(
                    method,
                    "http://h/b/uploads/a%20b+c?x-id=GetObject",
                    "s3",
                    None,
                    None
                ),
                pairs(&[(action, object)]),
                "{method}"
            );
        }
        assert_eq!(
            judge("HEAD", "http://h/b", "s3", None, None),
            pairs(&[("s3:ListBucket", "arn:aws:s3:::b")])
        );
        assert_eq!(
            judge("GET", "http://h/b?list-type=2&prefix=x", "s3", None, None),
            pairs(&[("s3:ListBucket", "arn:aws:s3:::b")])
        );
        let presigned =
            "http://h/b/uploads/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=K%2F1";
        assert_eq!(
            judge("PUT", presigned, "s3", None, None),
            pairs(&[("s3:PutObject", "arn:aws:s3:::b/uploads/k")])
        );
    }

    #[test]
    fn what_cannot_be_named_is_recorded_as_unmapped() {
        for (method, uri, service) in [
            ("GET", "http://h/b/key?tagging", "s3"),
            // A bucket's subresource is no listing (GetBucketAcl).
            ("GET", "http://h/b?acl", "s3"),
            ("POST", "http://h/b?delete", "s3"),
            ("GET", "http://h/", "s3"),
            ("POST", "http://h/v2/email/identities", "ses"),
            ("POST", "http://h/local/elsewhere/x", "execute-api"),
            ("POST", "http://h/", "sqs"),
        ] {
            let judged = judge(method, uri, service, None, None);
            assert_eq!(judged.len(), 1, "{uri}");
            assert_eq!(judged[0].0, UNMAPPED, "{method} {uri}");
        }
    }

    #[test]
    fn an_unmapped_call_says_what_the_request_was() {
        let request = Request {
            method: "GET",
            uri: "http://h/b/key?tagging",
            target: None,
            body: None,
            service: "s3",
        };
        assert_eq!(
            authorizations(&request, &deployment()),
            [Authorization::unmapped(
                r#"GET http://h/b/key?tagging (s3 "")"#.to_owned()
            )]
        );
    }

    #[test]
    fn a_send_is_authorized_on_the_senders_identity_with_its_condition() {
        let request = Request {
            method: "POST",
            uri: "http://h/v2/email/outbound-emails",
            target: None,
            body: Some(&json!({"FromEmailAddress": "a@b.test"})),
            service: "ses",
        };
        let judged = authorizations(&request, &deployment());
        assert_eq!(judged.len(), 1);
        assert_eq!(judged[0].action, "ses:SendEmail");
        assert_eq!(
            judged[0].resource,
            "arn:aws:ses:us-east-1:123456789012:identity/a@b.test"
        );
        assert_eq!(judged[0].conditions["ses:FromAddress"], "a@b.test");
        // A bulk send has a sender too, but is `ses:SendBulkEmail`, which
        // this module does not name.
        let bulk = Request {
            uri: "http://h/v2/email/outbound-bulk-emails",
            ..request
        };
        let judged = authorizations(&bulk, &deployment());
        assert_eq!(judged.len(), 1);
        assert_eq!(judged[0].action, UNMAPPED);
    }

    #[test]
    fn a_management_call_is_authorized_on_its_connection() {
        assert_eq!(
            judge(
                "DELETE",
                "http://h/local/@connections/abc%3D",
                "execute-api",
                None,
                None
            ),
            pairs(&[(
                "execute-api:ManageConnections",
                "arn:aws:execute-api:us-east-1:123456789012:local-websocket-api/local/DELETE/@connections/abc="
            )])
        );
    }

    /// A call spanning `from` to `to` milliseconds.
    fn spanning(from: u64, to: u64) -> Call {
        Call {
            function: "F".to_owned(),
            operation: "DynamoDB_20120810.GetItem".to_owned(),
            route: None,
            invocation: Some(1),
            authorizations: Vec::new(),
            deployment: Arc::new(deployment()),
            started: Duration::from_millis(from),
            finished: Arc::new(Mutex::new(Some(Duration::from_millis(to)))),
        }
    }

    #[test]
    fn calls_sent_together_are_one_round_trip_and_calls_in_turn_add_up() {
        let count = |spans: &[(u64, u64)]| {
            let calls: Vec<Call> = spans.iter().map(|(a, b)| spanning(*a, *b)).collect();
            round_trips(&calls.iter().collect::<Vec<_>>())
        };
        assert_eq!(count(&[]), 0);
        assert_eq!(count(&[(0, 5)]), 1);
        // Three at once, then one after the slowest: 2.
        assert_eq!(count(&[(0, 5), (1, 9), (2, 3), (9, 12)]), 2);
        // One after the quickest only, while the others are out: still 2.
        assert_eq!(count(&[(0, 5), (0, 20), (6, 10)]), 2);
        // A chain: 3, whatever the order they are given in.
        assert_eq!(count(&[(20, 30), (0, 10), (10, 20)]), 3);
        // Overlapping by a moment: one round trip.
        assert_eq!(count(&[(0, 10), (9, 19)]), 1);
    }

    #[test]
    fn a_missing_object_is_a_404_only_to_whoever_may_list_the_bucket() {
        let call = |action: &str, resource: &str| Call {
            function: "F".to_owned(),
            operation: "HEAD s3".to_owned(),
            route: None,
            invocation: None,
            authorizations: vec![Authorization::new(action, resource)],
            deployment: Arc::new(deployment()),
            started: Duration::ZERO,
            finished: Arc::default(),
        };
        let listing = missing_object_needs(&call("s3:GetObject", "arn:aws:s3:::b/uploads/k"))
            .expect("a read of an object");
        assert_eq!(
            listing.authorizations,
            vec![Authorization::new("s3:ListBucket", "arn:aws:s3:::b")]
        );
        assert_eq!(listing.operation, "HEAD s3 (404)");
        assert!(missing_object_needs(&call("s3:PutObject", "arn:aws:s3:::b/k")).is_none());
    }

    /// Stands for the emulator behind the recorder: answers every request
    /// with `status` and an empty JSON body.
    #[derive(Debug)]
    struct Answer(u16);

    impl HttpClient for Answer {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(Answer(self.0))
        }
    }

    impl HttpConnector for Answer {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let status = self.0.try_into().expect("an HTTP status");
            HttpConnectorFuture::ready(Ok(HttpResponse::new(
                status,
                aws_sdk_s3::primitives::SdkBody::from("{}"),
            )))
        }
    }

    /// The SDK configuration `function` gets from a recorder in front of an
    /// emulator answering `status`.
    fn function_config(recorder: &Arc<CallRecorder>, function: &str, status: u16) -> SdkConfig {
        let base = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://h")
            .http_client(SharedHttpClient::new(Answer(status)))
            .build();
        recorder.sdk_config(&base, function)
    }

    fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(true)
                .build(),
        )
    }

    #[tokio::test]
    async fn a_functions_request_is_recorded_as_its_roles_with_the_route() {
        let recorder = CallRecorder::new(deployment());
        let config = function_config(&recorder, "UsersFunction", 200);
        let client = aws_sdk_dynamodb::Client::new(&config);
        serving(
            "PUT /users/me".to_owned(),
            client
                .put_item()
                .table_name("t")
                .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
                .send(),
        )
        .await
        .expect("the emulator's answer");
        // Outside the gateway's route (a stream's batch, a script): no route.
        client
            .get_item()
            .table_name("t")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .send()
            .await
            .expect("the emulator's answer");
        let calls = recorder.calls();
        let seen: Vec<_> = calls
            .iter()
            .map(|call| {
                (
                    call.function.as_str(),
                    call.operation.as_str(),
                    call.route.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "UsersFunction",
                    "DynamoDB_20120810.PutItem",
                    Some("PUT /users/me")
                ),
                ("UsersFunction", "DynamoDB_20120810.GetItem", None),
            ]
        );
        // Read from the signed request: the service from its signature, the
        // table from its body.
        assert_eq!(
            calls[0].authorizations,
            [Authorization::new("dynamodb:PutItem", TABLE)]
        );
        assert_eq!(*calls[0].deployment, deployment());
    }

    #[tokio::test]
    async fn a_read_answered_404_is_recorded_as_needing_the_listing_too() {
        let recorder = CallRecorder::new(deployment());
        let client = s3_client(&function_config(&recorder, "UploadsFunction", 404));
        let missing = client.head_object().bucket("b").key("uploads/k").send();
        assert!(missing.await.is_err(), "a 404 is an error");
        let authorizations: Vec<_> = recorder
            .calls()
            .into_iter()
            .map(|call| (call.operation, call.authorizations))
            .collect();
        assert_eq!(
            authorizations,
            [
                (
                    "HEAD s3".to_owned(),
                    vec![Authorization::new(
                        "s3:GetObject",
                        "arn:aws:s3:::b/uploads/k"
                    )]
                ),
                (
                    "HEAD s3 (404)".to_owned(),
                    vec![Authorization::new("s3:ListBucket", "arn:aws:s3:::b")]
                ),
            ]
        );
        // A read that finds its object needs no more than `s3:GetObject`.
        let recorder = CallRecorder::new(deployment());
        let client = s3_client(&function_config(&recorder, "UploadsFunction", 200));
        client
            .head_object()
            .bucket("b")
            .key("uploads/k")
            .send()
            .await
            .expect("the emulator's answer");
        assert_eq!(recorder.calls().len(), 1);
    }

    #[tokio::test]
    async fn a_presigned_url_is_recorded_as_its_signers_request_when_used() {
        let recorder = CallRecorder::new(deployment());
        let client = s3_client(&function_config(&recorder, "UploadsFunction", 200));
        let presigned = client
            .put_object()
            .bucket("b")
            .key("uploads/k")
            .presigned(
                aws_sdk_s3::presigning::PresigningConfig::expires_in(
                    std::time::Duration::from_secs(60),
                )
                .expect("a presigning configuration"),
            )
            .await
            .expect("a presigned request");
        assert!(recorder.calls().is_empty(), "signing is no request");
        CallRecorder::record_presigned("PUT", presigned.uri());
        let calls = recorder.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function, "UploadsFunction");
        assert_eq!(calls[0].operation, "PUT s3");
        assert_eq!(calls[0].route, None);
        assert_eq!(
            calls[0].authorizations,
            [Authorization::new(
                "s3:PutObject",
                "arn:aws:s3:::b/uploads/k"
            )]
        );
        // A URL no recorded function signed (a forged one, or one without a
        // signature) is no call of any function.
        CallRecorder::record_presigned(
            "PUT",
            "http://h/b/uploads/k?X-Amz-Credential=LOCALForged%2F20261202%2Fus-east-1%2Fs3%2Faws4_request",
        );
        CallRecorder::record_presigned("PUT", "http://h/b/uploads/k");
        assert_eq!(recorder.calls().len(), 1);
    }

    #[test]
    fn a_recorder_shows_its_deployment_not_its_calls() {
        let recorder = CallRecorder::new(deployment());
        assert_eq!(
            format!("{recorder:?}"),
            format!("CallRecorder {{ deployment: {:?}, .. }}", deployment())
        );
    }

    /// Run only by the test below, in a process of its own.
    #[test]
    #[ignore = "run by with_aws_call_log_dir_each_call_is_also_a_json_line_of_the_process"]
    fn one_call_of_a_process() {
        let call = Call {
            function: "F".to_owned(),
            operation: "HEAD s3".to_owned(),
            route: Some("GET /uploads/{id}".to_owned()),
            invocation: Some(1),
            authorizations: vec![Authorization::new("s3:GetObject", "arn:aws:s3:::b/k")],
            deployment: Arc::new(deployment()),
            started: Duration::ZERO,
            finished: Arc::default(),
        };
        // An unlogged recorder's calls stay out of the log: only the one
        // logged call may be found there.
        CallRecorder::new(deployment()).record(call.clone());
        CallRecorder::logged(deployment()).record(call);
    }

    #[test]
    fn with_aws_call_log_dir_each_call_is_also_a_json_line_of_the_process() {
        // The log is opened once a process, from the environment it started
        // with: the call is made by a run of this test binary of its own.
        let dir = std::env::temp_dir().join(format!("infra-call-log-{}", std::process::id()));
        let status = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "calls::tests::one_call_of_a_process",
                "--ignored",
            ])
            .env("AWS_CALL_LOG_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("running the test binary");
        assert!(status.success());
        let lines: Vec<Value> = std::fs::read_dir(&dir)
            .expect("the log directory")
            .flat_map(|entry| {
                let text =
                    std::fs::read_to_string(entry.expect("a log file").path()).expect("a log file");
                text.lines()
                    .map(|line| serde_json::from_str(line).expect("a JSON line"))
                    .collect::<Vec<_>>()
            })
            .collect();
        std::fs::remove_dir_all(&dir).expect("removing the log directory");
        assert_eq!(
            lines,
            [json!({
                "function": "F",
                "operation": "HEAD s3",
                "route": "GET /uploads/{id}",
                "invocation": 1,
                "authorizations": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"}],
                "deployment": {
                    "region": "us-east-1",
                    "table": "t",
                    "bucket": "b",
                    "stage": "local",
                    "parameters": {},
                },
            })]
        );
    }

    #[test]
    fn the_service_comes_from_the_signature_scope() {
        assert_eq!(
            signing_service(Some(
                "AWS4-HMAC-SHA256 Credential=AK/20261202/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=x"
            ))
            .as_deref(),
            Some("execute-api")
        );
        assert_eq!(signing_service(None), None);
        assert_eq!(signing_service(Some("Bearer x")), None);
    }
}
