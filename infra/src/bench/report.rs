//! Turns measurements into the tables of docs/PERFORMANCE.md: latency and
//! size per function against the targets, and cost per million requests.
//!
//! Prices are us-east-1 list prices (arm64 Lambda, DynamoDB on-demand, API
//! Gateway), written here so the arithmetic can be checked; AWS changes them
//! rarely, and the table says which were used.

use std::{collections::BTreeMap, fmt::Write, time::Duration};

use super::Measured;

/// Lambda arm64, per GB-second.
pub const LAMBDA_GB_SECOND_USD: f64 = 0.000_013_333_4;
/// Lambda, per million requests.
pub const LAMBDA_REQUESTS_USD: f64 = 0.20;
/// DynamoDB on-demand, per million read request units.
pub const DYNAMODB_READ_USD: f64 = 0.125;
/// DynamoDB on-demand, per million write request units.
pub const DYNAMODB_WRITE_USD: f64 = 0.625;
/// API Gateway REST API, per million requests (first 333 million).
pub const REST_API_USD: f64 = 3.50;
/// API Gateway WebSocket API, per million messages (first billion).
pub const WS_MESSAGE_USD: f64 = 1.00;
/// What one AWS call is assumed to take in-region (DynamoDB answers in
/// single-digit milliseconds); the emulator's own times are not used, as
/// moto on this machine is far slower than DynamoDB.
pub const ASSUMED_AWS_CALL_MS: f64 = 4.0;

/// Targets of the ship issue.
pub const MAX_ZIP_BYTES: u64 = 4 * 1024 * 1024;
pub const MAX_INIT_RATIO: f64 = 2.0;
pub const MAX_PEAK_RSS_KIB: u64 = 32 * 1024;
pub const MAX_WARM_P99_MS: f64 = 2.0;

/// One function's row: its measurements, sizes and configured memory.
pub struct Row {
    pub measured: Measured,
    /// Zip bytes of the benchmarked (host) build.
    pub host_zip: Option<u64>,
    /// Zip bytes of `make build`'s arm64 bootstrap.
    pub arm64_zip: Option<u64>,
    /// MemorySize in template.yaml (the floor has none; 128).
    pub memory_mb: u64,
    /// Whether API Gateway REST or WebSocket fronts it, for the cost table.
    pub front: Front,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    None,
    Rest,
    WebSocket,
}

/// The value at `quantile` (0..=1) of `values`, nearest rank.
pub fn percentile(values: &[Duration], quantile: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Function-only durations: total minus the emulator's busy time.
fn own(pairs: &[(Duration, Duration)]) -> Vec<Duration> {
    pairs
        .iter()
        .map(|(total, emulator)| total.saturating_sub(*emulator))
        .collect()
}

fn totals(pairs: &[(Duration, Duration)]) -> Vec<Duration> {
    pairs.iter().map(|(total, _)| *total).collect()
}

const READS: &[&str] = &[
    "GetItem",
    "Query",
    "BatchGetItem",
    "Scan",
    "TransactGetItems",
];
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];

/// (reads, writes, other AWS calls, @connections posts) per invocation.
fn call_mix(calls: &BTreeMap<String, f64>) -> (f64, f64, f64, f64) {
    let (mut reads, mut writes, mut other, mut pushes) = (0.0, 0.0, 0.0, 0.0);
    for (operation, n) in calls {
        let action = operation.split_once('.').map(|(_, a)| a).unwrap_or("");
        if operation == "@connections.POST" {
            pushes += n;
        } else if READS.contains(&action) {
            reads += n;
        } else if WRITES.contains(&action) {
            writes += n;
        } else {
            other += n;
        }
    }
    (reads, writes, other, pushes)
}

/// What the tables show of one function, computed once.
struct Stats {
    init: Duration,
    /// Init over the floor's; NaN (and so never a pass) without a floor.
    init_ratio: f64,
    own_p50_ms: f64,
    own_p99_ms: f64,
}

impl Stats {
    fn of(measured: &Measured, floor: Duration) -> Self {
        let init = percentile(&measured.init, 0.5);
        let own_warm = own(&measured.warm);
        Self {
            init,
            init_ratio: if floor.is_zero() {
                f64::NAN
            } else {
                init.as_secs_f64() / floor.as_secs_f64()
            },
            own_p50_ms: ms(percentile(&own_warm, 0.5)),
            own_p99_ms: ms(percentile(&own_warm, 0.99)),
        }
    }
}

fn pass(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// The whole report, in Markdown.
pub fn markdown(rows: &[Row], machine: &str, warm_invocations: usize) -> String {
    let floor = rows
        .iter()
        .find(|r| r.measured.function == "hello")
        .map(|r| percentile(&r.measured.init, 0.5))
        .unwrap_or(Duration::ZERO);
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {machine}\n");
    let _ = writeln!(
        out,
        "Init and first invocation: median of {} cold starts. Warm: {warm_invocations} \
         invocations of one process. \"own\" is the function's time without the emulator's \
         (measured by the proxy in front of it).\n",
        rows.first().map(|r| r.measured.init.len()).unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "| function | route | zip arm64 (MiB) | zip host (MiB) | init (ms) | init / floor | first total (ms) | first own (ms) | warm p50 own (ms) | warm p99 own (ms) | warm p99 total (ms) | CPU / warm call (ms) | peak RSS (MiB) |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let stats: Vec<Stats> = rows.iter().map(|r| Stats::of(&r.measured, floor)).collect();
    let size = |zip: Option<u64>| {
        zip.map(|z| format!("{:.2}", mib(z)))
            .unwrap_or_else(|| "–".into())
    };
    for (row, stats) in rows.iter().zip(&stats) {
        let m = &row.measured;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.2} | {:.3} | {:.1} |",
            m.function,
            m.route,
            size(row.arm64_zip),
            size(row.host_zip),
            ms(stats.init),
            stats.init_ratio,
            ms(percentile(&totals(&m.first), 0.5)),
            ms(percentile(&own(&m.first), 0.5)),
            stats.own_p50_ms,
            stats.own_p99_ms,
            ms(percentile(&totals(&m.warm), 0.99)),
            ms(m.cpu_per_invocation),
            m.peak_rss_kib as f64 / 1024.0,
        );
    }
    // The floor is the yardstick, not a function under test.
    let functions = || {
        rows.iter()
            .zip(&stats)
            .filter(|(r, _)| r.measured.function != "hello")
    };

    let _ = writeln!(out, "\n### Against the targets\n");
    let _ = writeln!(
        out,
        "| function | zip ≤ 4 MiB | init ≤ {MAX_INIT_RATIO}× floor | peak RSS ≤ 32 MiB | warm p99 own ≤ {MAX_WARM_P99_MS} ms |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (row, stats) in functions() {
        let m = &row.measured;
        let (ratio, p99) = (stats.init_ratio, stats.own_p99_ms);
        let _ = writeln!(
            out,
            "| {} | {} | {} ({ratio:.2}×) | {} ({:.1}) | {} ({p99:.3}) |",
            m.function,
            row.arm64_zip
                .or(row.host_zip)
                .map(|z| format!("{} ({:.2})", pass(z <= MAX_ZIP_BYTES), mib(z)))
                .unwrap_or_else(|| "not built".into()),
            pass(ratio <= MAX_INIT_RATIO),
            pass(m.peak_rss_kib <= MAX_PEAK_RSS_KIB),
            m.peak_rss_kib as f64 / 1024.0,
            pass(p99 <= MAX_WARM_P99_MS),
        );
    }

    let _ = writeln!(
        out,
        "\n### Cost per million requests (USD, us-east-1 list prices)\n"
    );
    let _ = writeln!(
        out,
        "Billed duration = the function's own p50 + {ASSUMED_AWS_CALL_MS} ms per round trip it \
         waits for (assumed in-region latency; calls in flight together count once), rounded \
         up to the next ms. One read or write request unit per DynamoDB call, an \
         approximation (docs/PERFORMANCE.md). Calls and round trips counted by the proxy over \
         the warm invocations.\n"
    );
    let _ = writeln!(
        out,
        "| function | memory (MB) | AWS calls / request (reads, writes, other, pushes) | round trips / request | billed ms | Lambda | DynamoDB | API Gateway | total |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (row, stats) in functions() {
        let m = &row.measured;
        let (reads, writes, other, pushes) = call_mix(&m.calls_per_invocation);
        let calls = reads + writes + other + pushes;
        let round_trips = m.round_trips_per_invocation;
        let billed_ms = (stats.own_p50_ms + round_trips * ASSUMED_AWS_CALL_MS).ceil();
        let lambda = LAMBDA_REQUESTS_USD
            + billed_ms / 1000.0 * (row.memory_mb as f64 / 1024.0) * LAMBDA_GB_SECOND_USD * 1e6;
        let dynamodb = reads * DYNAMODB_READ_USD + writes * DYNAMODB_WRITE_USD;
        let gateway = match row.front {
            Front::Rest => REST_API_USD,
            Front::WebSocket => WS_MESSAGE_USD * (1.0 + pushes),
            Front::None => WS_MESSAGE_USD * pushes,
        };
        let _ = writeln!(
            out,
            "| {} | {} | {calls:.1} ({reads:.1}, {writes:.1}, {other:.1}, {pushes:.1}) | {round_trips:.1} | {billed_ms:.0} | {lambda:.2} | {dynamodb:.2} | {gateway:.2} | {:.2} |",
            m.function,
            row.memory_mb,
            lambda + dynamodb + gateway,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(percentile(&values, 0.5), d(50));
        assert_eq!(percentile(&values, 0.99), d(99));
        assert_eq!(percentile(&values, 1.0), d(100));
        assert_eq!(percentile(&[d(7)], 0.99), d(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn calls_are_split_into_reads_writes_and_pushes() {
        let calls = BTreeMap::from([
            ("DynamoDB.GetItem".to_owned(), 2.0),
            ("DynamoDB.Query".to_owned(), 1.0),
            ("DynamoDB.UpdateItem".to_owned(), 1.0),
            ("S3.HEAD".to_owned(), 1.0),
            ("@connections.POST".to_owned(), 1.0),
        ]);
        assert_eq!(call_mix(&calls), (3.0, 1.0, 1.0, 1.0));
    }

    #[test]
    fn the_report_compares_with_the_floor_and_prices_the_calls() {
        let measured = |function: &str, init: u64, own: u64| Measured {
            function: function.into(),
            route: "GET /x".into(),
            init: vec![d(init)],
            first: vec![(d(10), d(5))],
            warm: vec![(d(own + 3), d(3)); 10],
            peak_rss_kib: 10 * 1024,
            calls_per_invocation: BTreeMap::from([("DynamoDB.GetItem".to_owned(), 2.0)]),
            // Two calls made together: one round trip.
            round_trips_per_invocation: 1.0,
            cpu_per_invocation: d(1),
        };
        let rows = vec![
            Row {
                measured: measured("hello", 2, 0),
                host_zip: Some(1),
                arm64_zip: None,
                memory_mb: 128,
                front: Front::None,
            },
            Row {
                measured: measured("posts", 5, 1),
                host_zip: Some(1),
                arm64_zip: Some(5 * 1024 * 1024),
                memory_mb: 1024,
                front: Front::Rest,
            },
        ];
        let report = markdown(&rows, "test", 10);
        assert!(report.contains("| posts | GET /x | 5.00 |"), "{report}");
        assert!(report.contains("2.50"), "init ratio 5/2: {report}");
        assert!(report.contains("**no** (5.00)"), "zip over 4 MiB: {report}");
        // 1 ms own + 4 ms for the one round trip = 5 ms at 1 GB:
        // 0.2 + 5e-3 * 13.3334 = 0.27; two reads 0.25; REST 3.50.
        assert!(
            report.contains("| 1.0 | 5 | 0.27 | 0.25 | 3.50 | 4.02 |"),
            "{report}"
        );
    }
}
