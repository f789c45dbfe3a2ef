//! Measuring: latencies and rates in a window, CPU of the processes under test from /proc, and the
//! closed loop that keeps N requests in flight.

use crate::payload::NEXT;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What one scenario measured.
#[derive(Default)]
pub(crate) struct Stats {
    /// Latencies (µs) of the records completed in the measured window.
    pub(crate) latencies: Vec<u32>,
    /// Errors over the whole scenario (warm-up and drain included), by message.
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) window: Duration,
    pub(crate) cpu: CpuUse,
}

impl Stats {
    pub(crate) fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    pub(crate) fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.window.as_secs_f64()
    }
    pub(crate) fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) from: Instant,
    pub(crate) to: Instant,
}

impl Window {
    pub(crate) fn starting_after(warmup: Duration, duration: Duration) -> Window {
        let from = Instant::now() + warmup;
        Window {
            from,
            to: from + duration,
        }
    }
    pub(crate) fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

/// CPU time (in cores) used during the measured window by the processes watched.
#[derive(Default, Clone, Copy)]
pub(crate) struct CpuUse {
    pub(crate) gateway: Option<f64>,
    pub(crate) broker: Option<f64>,
    pub(crate) bench: Option<f64>,
}

#[derive(Clone, Copy)]
pub(crate) struct Watched {
    pub(crate) gateway: Option<u32>,
    pub(crate) broker: Option<u32>,
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Samples CPU time at the start and the end of the window.
pub(crate) fn watch_cpu(watched: Watched, window: Window) -> tokio::task::JoinHandle<CpuUse> {
    tokio::spawn(async move {
        let pids = [watched.gateway, watched.broker, Some(std::process::id())];
        tokio::time::sleep_until(window.from.into()).await;
        let before: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(cpu_ticks)).collect();
        tokio::time::sleep_until(window.to.into()).await;
        let secs = (window.to - window.from).as_secs_f64();
        let used: Vec<Option<f64>> = pids
            .iter()
            .zip(before)
            .map(|(p, b)| Some((p.and_then(cpu_ticks)?.saturating_sub(b?)) as f64 / 100.0 / secs))
            .collect();
        CpuUse {
            gateway: used[0],
            broker: used[1],
            bench: used[2],
        }
    })
}

/// Runs `workers` closed loops, each issuing one operation after the other, for the warm-up plus
/// the measured window. Operations completed inside the window count.
pub(crate) async fn closed_loop<F, Fut>(
    workers: usize,
    warmup: Duration,
    duration: Duration,
    watched: Watched,
    op: F,
) -> Stats
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let window = Window::starting_after(warmup, duration);
    let cpu = watch_cpu(watched, window);
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            while Instant::now() < window.to {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let result = op(n).await;
                let t1 = Instant::now();
                match result {
                    Ok(()) if window.contains(t1) => stats
                        .latencies
                        .push((t1 - t0).as_micros().min(u32::MAX as u128) as u32),
                    Ok(()) => {}
                    Err(e) => *stats.errors.entry(e).or_default() += 1,
                }
            }
            stats
        }));
    }
    let mut total = join_stats(tasks, "worker").await;
    total.window = duration;
    total.cpu = cpu.await.unwrap_or_default();
    total
}

/// The merged statistics of finished tasks; a task that panicked counts as an error.
pub(crate) async fn join_stats(tasks: Vec<tokio::task::JoinHandle<Stats>>, what: &str) -> Stats {
    let mut total = Stats::default();
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(stats),
            Err(e) => {
                *total
                    .errors
                    .entry(format!("{what} failed: {e}"))
                    .or_default() += 1
            }
        }
    }
    total
}
