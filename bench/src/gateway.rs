//! The process under test: `mekong serve` (or the bare tonic server) started, watched and stopped.

use crate::Args;

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};

pub(crate) struct GatewayProcess {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) addr: String,
}

/// Starts `mekong serve` on the bench's broker with the bench's resources.
pub(crate) async fn start_gateway(args: &Args) -> anyhow::Result<GatewayProcess> {
    let mut command = tokio::process::Command::new(&args.gateway);
    command
        .args([
            "serve",
            "--kafka",
            &args.kafka,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--topic-replication",
            "1",
        ])
        .arg("--resources")
        .arg(&args.resources)
        .args(["--topic-partitions", &args.partitions.to_string()])
        .args(
            args.gateway_kafka_options
                .iter()
                .flat_map(|kv| ["--kafka-option", kv.as_str()]),
        )
        .envs(args.gateway_env.iter().filter_map(|kv| kv.split_once('=')));
    if let Some(dir) = &args.evidence_dir {
        command
            .arg("--audit-key")
            .arg(format!("file:{}", dir.join("audit.key").display()))
            .arg("--signing-key")
            .arg(format!("file:{}", dir.join("signing.key").display()));
    }
    start(command, args, "the gateway").await
}

/// Starts the bare tonic server, answering with as many placements as the gateway would.
pub(crate) async fn start_bare(args: &Args) -> anyhow::Result<GatewayProcess> {
    let mut command = tokio::process::Command::new(&args.bare);
    command.args(["--copies", &args.topics.len().to_string()]);
    start(command, args, "the bare tonic server").await
}

/// Runs a server process and waits for its `listening on ADDR` line.
async fn start(
    mut command: tokio::process::Command,
    args: &Args,
    what: &str,
) -> anyhow::Result<GatewayProcess> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    match &args.gateway_log {
        Some(path) => command.stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => command.stderr(Stdio::inherit()),
    };
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let pid = child
        .id()
        .with_context(|| format!("{what} exited at once"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await? {
            progress!("{what}: {line}");
            if let Some(addr) = line.strip_prefix("listening on ") {
                return Ok(addr.trim().to_owned());
            }
        }
        bail!("{what} exited before listening (see its log)")
    })
    .await
    .with_context(|| format!("{what} did not start listening within 90 s"))??;
    // Keep draining its stdout.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(GatewayProcess { child, pid, addr })
}

/// Peak resident set size (VmHWM) of a process, in MB.
pub(crate) fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub(crate) async fn stop_gateway(mut gateway: GatewayProcess) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &gateway.pid.to_string()])
        .status();
    match tokio::time::timeout(Duration::from_secs(20), gateway.child.wait()).await {
        Ok(Ok(status)) => progress!("gateway exited: {status}"),
        _ => {
            progress!("gateway did not exit after SIGTERM within 20 s: killing it");
            let _ = gateway.child.kill().await;
        }
    }
}
