//! The floor of `make bench`: the smallest `lambda_runtime` function, with
//! the same tokio runtime and release profile as the real ones, so that
//! their cold start can be read as a multiple of what any Rust function
//! costs. No telemetry, no configuration, no SDK.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello", "echo": event.payload}))
    }))
    .await
}
