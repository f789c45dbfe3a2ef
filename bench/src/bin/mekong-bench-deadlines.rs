//! `mekong-bench-deadlines`: what the deadline tracker's parts cost (the whole tracker on Kafka is
//! `mekong-bench-tracker`'s). Two measures, each beside a baseline in the same process:
//!
//! - the store: N open deadlines written in batches (state and timer index, two tables), the peak
//!   RSS with N open (measured before the baseline runs), the size on disk, a scan of the due ones;
//!   against the same bytes written to one plain redb table with the same page cache;
//! - the rules: `Deadline::on_record` on a dossier record (parse the due time, evaluate the CEL
//!   `done` condition), against parsing the record's JSON alone.

use std::time::Instant;

use clap::Parser;
use mekong_core::deadline::{Deadline, DeadlineSpec, Open, Tracked};
use mekong_deadlines::store::DeadlineStore;
use redb::TableDefinition;

#[derive(Parser)]
struct Args {
    /// Open deadlines to hold.
    #[arg(long, default_value_t = 1_000_000)]
    open: usize,
    /// Keys per write.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Records through the rules.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
}

const BASELINE: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("baseline");

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn size_mb(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(f64::NAN, |m| m.len() as f64 / 1024.0 / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("mekong-bench-deadlines-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let day = 86_400_000i64;
    let open = |n: usize| Open {
        key: format!("H29.1-2026-{n:07}"),
        due_ms: 1_798_000_000_000 + (n as i64 % 30) * day,
        unit: Some(format!("UBND Phường {}", n % 312)),
        opened_by: format!("0193f1c2-7d4e-7a10-8000-{n:012}"),
        extended_by: None,
        warned: false,
        overdue: false,
    };

    let path = dir.join("deadlines.redb");
    let store = DeadlineStore::open(&path)?;
    let started = Instant::now();
    for chunk in (0..args.open).collect::<Vec<_>>().chunks(args.batch) {
        let states: Vec<Open> = chunk.iter().map(|&n| open(n)).collect();
        let changes: Vec<_> = states
            .iter()
            .map(|s| (s.key.as_str(), Some((s, Some(s.due_ms)))))
            .collect();
        store.apply(0, &changes)?;
    }
    let rate = args.open as f64 / started.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    let started = Instant::now();
    let due = store.due(&[0], 1_798_000_000_000, 100_000)?;
    let scan_ms = started.elapsed().as_secs_f64() * 1000.0;

    // The baseline: the same JSON values, one table, no index.
    let baseline_path = dir.join("baseline.redb");
    let db = redb::Database::builder()
        .set_cache_size(64 * 1024 * 1024)
        .create(&baseline_path)?;
    let started = Instant::now();
    for chunk in (0..args.open).collect::<Vec<_>>().chunks(args.batch) {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(BASELINE)?;
            for &n in chunk {
                let state = open(n);
                let json = serde_json::to_vec(&state)?;
                table.insert((0u32, state.key.as_str()), json.as_slice())?;
            }
        }
        txn.commit()?;
    }
    let baseline = args.open as f64 / started.elapsed().as_secs_f64();
    drop(db);

    // The rules, against parsing alone.
    let deadline = Deadline::compile(DeadlineSpec {
        name: "dossier-result-due".into(),
        description: String::new(),
        track: vec!["dossier.sync".into()],
        from: "hcmc.dossier.v1".into(),
        due: "/NgayHenTra".into(),
        done: "has(data.NgayKetThucXuLy) || data.TrangThaiHoSo in [4, 5]".into(),
        unit: Some("/DonViXuLy".into()),
        warn_before: Some("24h".into()),
        to: "hcmc.dossier.deadlines.v1".into(),
    })
    .map_err(|(field, problem)| anyhow::anyhow!("{field}: {problem}"))?;
    let sample = std::fs::read("examples/hcmc/samples/dossier-sync.json")?;
    let started = Instant::now();
    let mut parsed = 0usize;
    for _ in 0..args.records {
        let value: serde_json::Value = serde_json::from_slice(&sample)?;
        parsed += usize::from(value.is_object());
    }
    let parse_rate = args.records as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut steps = 0usize;
    for _ in 0..args.records {
        let value: serde_json::Value = serde_json::from_slice(&sample)?;
        let record = Tracked {
            record_id: "r",
            record_type: "dossier.sync",
            source: "q1",
            key: "H29",
            data: &value,
        };
        steps += deadline.on_record(None, &record, 0).events.len() + 1;
    }
    let rules_rate = args.records as f64 / started.elapsed().as_secs_f64();
    assert!(parsed == args.records && steps >= args.records);

    println!(
        "### Deadline tracker parts ({})",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    println!();
    println!("| Measure | Value | Baseline | Ratio |");
    println!("|---|--:|--:|--:|");
    println!(
        "| open deadlines written (state + timer index), per second, batches of {} | {rate:.0} | {baseline:.0} (one table, same bytes) | {:.2} × |",
        args.batch,
        rate / baseline
    );
    println!("| peak RSS with {} open | {rss:.1} MB | | |", args.open);
    println!(
        "| store on disk | {:.1} MB | {:.1} MB | |",
        size_mb(&path),
        size_mb(&baseline_path)
    );
    println!("| due scan: {} found | {scan_ms:.0} ms | | |", due.len());
    println!(
        "| records through the rules (parse + due + CEL done), per second | {rules_rate:.0} | {parse_rate:.0} (parse alone) | {:.2} × |",
        rules_rate / parse_rate
    );
    println!(
        "| CPU per record in the rules, beyond parsing | {:.1} µs | | |",
        (1e6 / rules_rate - 1e6 / parse_rate).max(0.0)
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
