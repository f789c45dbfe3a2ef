//! `mekong`: the city's data-integration hub, as one binary. A thin shell over the library crates:
//! it reads flags and files, starts the backbone and serves.

mod adapters;
mod admin;
mod limits;
mod observe;
mod remote;
mod resources;
mod serve;
mod tail;
mod telemetry;

use clap::{Parser, Subcommand};

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
    command: Command,
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

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --kafka, an embedded development backbone is started.
    Serve(Box<serve::ServeArgs>),
    /// Check a directory of resources and exit: what `serve` would load, or every problem.
    Check {
        /// Directory of *.yaml / *.yml / *.json resource files.
        #[arg(default_value = "examples/hcmc")]
        resources: std::path::PathBuf,
    },
    /// Print the records of a topic as JSON lines, read through a gateway's SubscribeService.
    Tail(tail::TailArgs),
    /// Create or update resources on a running hub (all or nothing).
    Apply(admin::ApplyArgs),
    /// Show what `apply` would change, as a diff against the stored resources.
    Diff(admin::DiffArgs),
    /// Show stored resources: a table, or YAML to edit and apply again.
    Get(admin::GetArgs),
    /// Delete a resource; refused while other resources refer to it.
    Delete(admin::DeleteArgs),
    /// Run a record through access, validation and routing as a client would publish it.
    TestRecord(admin::TestRecordArgs),
    /// Where a record is and what happened to it, from the audit trail: by id or by key.
    Trace(admin::TraceArgs),
    /// Dead letters of an adapter: list them, replay them.
    #[command(subcommand)]
    Dlq(admin::DlqCommand),
    /// The delivery adapters, apart from the gateway.
    #[command(subcommand)]
    Adapters(adapters::AdaptersCommand),
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
    let code = run(cli.command);
    if let Some(traces) = traces {
        // Sends the spans still waiting in the batch.
        let _ = traces.shutdown();
    }
    code
}

fn run(command: Command) -> std::process::ExitCode {
    let result = match command {
        Command::Serve(args) => serve::run(*args),
        Command::Adapters(command) => adapters::run(command),
        Command::Tail(args) => return tail::run(args),
        Command::Apply(args) => return admin::run(|| admin::apply(args)),
        Command::Diff(args) => return admin::run(|| admin::diff(args)),
        Command::Get(args) => return admin::run(|| admin::get(args)),
        Command::Delete(args) => return admin::run(|| admin::delete(args)),
        Command::TestRecord(args) => return admin::run(|| admin::test_record(args)),
        Command::Dlq(command) => return admin::run(|| admin::dlq(command)),
        Command::Trace(args) => return admin::run(|| admin::trace(args)),
        Command::Check { resources } => resources::load(&resources).map(|catalog| {
            let (types, routes, clients) = catalog.counts();
            let adapters = catalog.adapters().count();
            println!(
                "{}: OK ({types} record types, {routes} routes, {clients} clients, {adapters} adapters)",
                resources.display()
            );
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
