//! `make bench`: runs every function's bootstrap (and the hello-world floor)
//! against a mock Lambda Runtime API with the emulator behind it, and prints
//! the tables of docs/PERFORMANCE.md.
//!
//! Usage: `bench <dir of host bootstraps> [--arm64 <cargo-lambda dir>]
//! [--out <file>] [--warm <n>] [--cold <n>] [--only <f,g>]`, with `AWS_ENDPOINT_URL` naming
//! a provisioned emulator and the functions' configuration in the
//! environment (infra/scripts/bench.sh sets both up).

use std::path::PathBuf;

use infra::{
    bench::{
        Bench, BenchConfig,
        report::{self, Front, Row},
        zip_size,
    },
    template::Template,
};

struct Args {
    binaries: PathBuf,
    arm64: Option<PathBuf>,
    out: Option<PathBuf>,
    warm: usize,
    cold: usize,
    /// Only these functions (the floor always runs).
    only: Option<Vec<String>>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        binaries: PathBuf::new(),
        arm64: None,
        out: None,
        warm: 1000,
        // Init varies by ±0.5 ms from one start to the next on a shared
        // machine; a cold start costs about 50 ms, so take a wide median.
        cold: 21,
        only: None,
    };
    let mut positional = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--arm64" => parsed.arm64 = Some(value("--arm64")?.into()),
            "--out" => parsed.out = Some(value("--out")?.into()),
            "--warm" => {
                parsed.warm = value("--warm")?
                    .parse()
                    .map_err(|e| format!("--warm: {e}"))?
            }
            "--cold" => {
                parsed.cold = value("--cold")?
                    .parse()
                    .map_err(|e| format!("--cold: {e}"))?
            }
            "--only" => {
                parsed.only = Some(value("--only")?.split(',').map(str::to_owned).collect())
            }
            other if !other.starts_with("--") && positional.is_none() => {
                positional = Some(PathBuf::from(other))
            }
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    parsed.binaries = positional.ok_or(
        "usage: bench <dir of bootstraps> [--arm64 DIR] [--out FILE] [--warm N] [--cold N] [--only f,g]",
    )?;
    Ok(parsed)
}

/// CPU, cores and OS of this machine, for the report's heading.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{} ({}), {cores} cores, {}, run {}",
        cpu,
        std::env::consts::ARCH,
        std::env::consts::OS,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let emulator = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL must name a provisioned emulator")?;
    let table_name = platform::config::StorageConfig::table_name(&platform::config::ProcessEnv)?;
    let template = Template::load("template.yaml")?;

    let bench = Bench::start(BenchConfig {
        binaries: args.binaries.clone(),
        emulator,
        logs: args.binaries.join("bench-logs"),
        table_name,
        warm_invocations: args.warm,
        cold_starts: args.cold,
    })
    .await?;
    eprintln!("bench: building the fixture through the bootstraps");
    let fixture = bench.fixture().await?;

    let mut rows = Vec::new();
    for invocation in fixture.invocations() {
        let function = invocation.function;
        if function != "hello"
            && let Some(only) = &args.only
            && !only.iter().any(|f| f == function)
        {
            continue;
        }
        eprintln!("bench: {function} ({})", invocation.route);
        let measured = bench.measure(&invocation).await?;
        let logical_id = template.function_built_from(function);
        let front = match logical_id {
            Some(id) if template.routes.iter().any(|r| r.function == id) => Front::Rest,
            Some("WebSocketFunction") => Front::WebSocket,
            _ => Front::None,
        };
        rows.push(Row {
            measured,
            host_zip: zip_size(&bench.binary(function)).ok(),
            arm64_zip: args
                .arm64
                .as_ref()
                .and_then(|dir| zip_size(&dir.join(function).join("bootstrap")).ok()),
            memory_mb: logical_id.map(|id| template.memory_of(id)).unwrap_or(128),
            front,
        });
    }

    let markdown = report::markdown(&rows, &machine(), args.warm);
    println!("{markdown}");
    if let Some(out) = args.out {
        std::fs::write(&out, &markdown)?;
        eprintln!("bench: written to {}", out.display());
    }
    Ok(())
}
