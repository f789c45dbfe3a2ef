//! The report: the machine, and rows as Markdown tables.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::Args;
use crate::consume::{ConsumeRow, consume_report};
use crate::measure::Stats;
use crate::publish::Workload;

pub(crate) fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let (_, rdkafka) = rdkafka::util::get_rdkafka_version();
    vec![
        ("CPU".into(), format!("{model}, nproc {nproc}")),
        ("RAM".into(), format!("{:.1} GiB", mem_kb / 1024.0 / 1024.0)),
        ("Kernel".into(), format!("Linux {kernel}")),
        ("Kafka".into(), "KAFKA".into()),
        ("librdkafka".into(), rdkafka),
        (
            "Load average at the end (1/5/15 min; other work on the machine skews results)".into(),
            load,
        ),
    ]
}

pub(crate) fn fmt_cores(v: Option<f64>) -> String {
    v.map(|c| format!("{c:.2}")).unwrap_or_else(|| "–".into())
}

pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) in_flight: String,
    pub(crate) stats: Stats,
}

/// The Markdown report of a run, and how many requests failed in all.
pub(crate) fn markdown(
    args: &Args,
    work: &Workload,
    rows: &mut [Row],
    consume_rows: &[ConsumeRow],
    rss: Option<f64>,
) -> (String, u64) {
    let base = rows
        .iter()
        .find(|r| r.name.starts_with("Baseline"))
        .map(|r| r.stats.rate())
        .unwrap_or(f64::NAN);
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let day = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    line(format!(
        "### Gateway throughput and latency ({})",
        &day[..10]
    ));
    line(String::new());
    line(format!(
        "Workload: `{}` records of {} bytes (sample `{}`, `{}` distinct per record), {} Kafka writes per record \
         ({}; the copy to {} without {}). Topics of {} partitions, replication 1; producer acks=all, \
         enable.idempotence=true, linger.ms=5. Each scenario: {} s warm-up, then {} s measured. Latency per record: \
         from sending to the answer (baseline: until every copy's delivery is acknowledged). CPU: cores used during \
         the measured window; broker, gateway and load generator share the machine.",
        args.record_type,
        work.full.len(),
        args.sample.display(),
        args.key_pointer,
        args.topics.len(),
        args.topics
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.redacted_topics
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.redact
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.partitions,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64(),
    ));
    line(String::new());
    line(format!(
        "The baseline is a raw rdkafka `FutureProducer` with the gateway's settings sending the same payloads, keys and \
         CloudEvents headers: {} Kafka records per benchmark record (one per topic, the redacted bytes to the redacted \
         topic), every delivery awaited; no gRPC, no validation.",
        args.topics.len()
    ));
    line(String::new());
    line("| Scenario | In flight | Records/s | Kafka writes/s | p50 (ms) | p99 (ms) | Errors | vs baseline | CPU gateway / broker / bench (cores) | Gateway CPU per record (µs) |".into());
    line("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|".into());
    let mut errors_total = 0;
    let mut ratios = HashMap::new();
    for row in rows.iter_mut() {
        let rate = row.stats.rate();
        let ratio = rate / base;
        ratios.insert(
            (row.name.starts_with("PublishStream"), row.in_flight.clone()),
            ratio,
        );
        errors_total += row.stats.error_count();
        let cpu = row.stats.cpu;
        let (p50, p99) = (row.stats.percentile(50.0), row.stats.percentile(99.0));
        line(format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.2} | {} / {} / {} | {} |",
            row.name,
            row.in_flight,
            rate,
            rate * args.topics.len() as f64,
            p50,
            p99,
            row.stats.error_count(),
            ratio,
            if row.name.starts_with("Baseline") {
                "–".into()
            } else {
                fmt_cores(cpu.gateway)
            },
            fmt_cores(cpu.broker),
            fmt_cores(cpu.bench),
            match (row.name.starts_with("Baseline"), cpu.gateway, cpu.bench) {
                (true, _, Some(b)) => format!("– (producer process: {:.0})", b * 1e6 / rate),
                (false, Some(g), _) => format!("{:.0}", g * 1e6 / rate),
                _ => "–".into(),
            },
        ));
    }
    line(String::new());
    let consume_ratio = consume_report(args, consume_rows, &mut line);
    errors_total += consume_rows
        .iter()
        .map(|r| r.stats.error_count())
        .sum::<u64>();
    let rss_text = rss
        .map(|r| format!("{r:.1} MB"))
        .unwrap_or_else(|| "unknown".into());
    line(format!(
        "Gateway peak RSS (VmHWM, whole run): **{rss_text}**"
    ));
    line(String::new());

    let rate_of = |prefix: &str, in_flight: Option<&str>| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix) && in_flight.is_none_or(|n| r.in_flight == n))
            .map(|r| r.stats.rate())
    };
    let cpu_per_record = |prefix: &str, in_flight: Option<&str>| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix) && in_flight.is_none_or(|n| r.in_flight == n))
            .and_then(|r| Some(r.stats.cpu.gateway? * 1e6 / r.stats.rate()))
    };
    let stream_ratio = rate_of("PublishStream", None).map_or(f64::NAN, |r| r / base);
    let unary_256 = rate_of("Publish (", Some("256"));
    let bare_256 = rate_of("Bare tonic (no work): Publish (", Some("256"));
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    line("| Target | Measured | Met |".into());
    line("|---|--:|:-:|".into());
    if stream_ratio.is_finite() {
        line(format!(
            "| PublishStream ≥ 0.7 × raw producer baseline | {stream_ratio:.2} × | {} |",
            met(stream_ratio >= 0.7)
        ));
    }
    if let (Some(gateway), Some(bare)) = (unary_256, bare_256) {
        let r = gateway / bare;
        line(format!(
            "| Publish @ 256 in flight ≥ 0.5 × bare tonic | {r:.2} × | {} |",
            met(r >= 0.5)
        ));
    }
    for (what, prefix, limit) in [
        ("unary Publish", "Publish (", 100.0),
        ("PublishStream", "PublishStream", 40.0),
    ] {
        let worst = rows
            .iter()
            .filter(|r| r.name.starts_with(prefix))
            .filter_map(|r| cpu_per_record(prefix, Some(&r.in_flight)))
            .fold(f64::NAN, f64::max);
        if worst.is_finite() {
            line(format!(
                "| Gateway CPU per {what} record ≤ {limit:.0} µs (worst scenario) | {worst:.0} µs | {} |",
                met(worst <= limit)
            ));
        }
    }
    // The HTTP API against unary Publish at the same number in flight: the cost of JSON answers,
    // problem documents and HTTP/1.1 over the same path.
    if let Some(http) = rows.iter().find(|r| r.name.starts_with("HTTP POST")) {
        let unary = rate_of("Publish (", Some(&http.in_flight));
        let cpu = cpu_per_record("HTTP POST", None);
        if let (Some(unary), Some(cpu)) = (unary, cpu) {
            line(format!(
                "| HTTP POST @ {n} in flight ≥ 0.5 × unary Publish @ {n} (CPU per record: {cpu:.0} µs) | {r:.2} × | {} |",
                met(http.stats.rate() / unary >= 0.5),
                n = http.in_flight,
                r = http.stats.rate() / unary,
            ));
        }
    }
    if consume_ratio.is_finite() {
        line(format!(
            "| Consume ≥ 0.5 × raw consumer | {consume_ratio:.2} × | {} |",
            met(consume_ratio >= 0.5)
        ));
    }
    if let Some(r) = rss {
        line(format!(
            "| Gateway peak RSS < 200 MB | {r:.1} MB | {} |",
            met(r < 200.0)
        ));
    }
    line(format!(
        "| Errors = 0 | {errors_total} | {} |",
        met(errors_total == 0)
    ));
    line(String::new());
    line("Machine:".into());
    line(String::new());
    for (k, v) in machine() {
        let v = if v == "KAFKA" {
            format!(
                "Apache Kafka {} (single-node KRaft on loopback, 512 MB heap)",
                args.kafka_version
            )
        } else {
            v
        };
        line(format!("- {k}: {v}"));
    }
    line(String::new());
    line("Command: `deploy/bench.sh`".into());
    (out, errors_total)
}
