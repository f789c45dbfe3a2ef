//! `mekong`: the city's data-integration hub, as one binary. A thin shell over the library crates:
//! it reads flags (`cli`), sets up logging and tracing, and runs the command.

mod cli;
mod examples;
mod telemetry;

use clap::Parser;

// Every record allocates and frees a parsed payload, headers and buffers across threads; mimalloc
// spends markedly less CPU on that than glibc's allocator (measured in the benchmark harness).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mekong",
    version,
    about = "Mekong: the city's data-integration hub on Apache Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
    /// Log lines on stderr as text or as JSON objects (one per line, for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "MEKONG_LOG_FORMAT"
    )]
    log_format: telemetry::LogFormat,
    /// Export spans to this OpenTelemetry collector (OTLP over HTTP, JSON), e.g.
    /// http://otel-collector:4318.
    #[arg(long, global = true, env = "MEKONG_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let traces = match telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: --otlp-endpoint: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let code = cli::run(cli.command, traces.is_some());
    if let Some(traces) = traces {
        // Sends the spans still waiting in the batch.
        let _ = traces.shutdown();
    }
    code
}
