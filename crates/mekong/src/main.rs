//! `mekong`: the city's data-integration hub, as one binary. A thin shell over the library crates:
//! it reads flags and files, starts the backbone and serves.

mod resources;
mod serve;
mod tail;

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
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --kafka, an embedded development backbone is started.
    Serve(serve::ServeArgs),
    /// Check a directory of resources and exit: what `serve` would load, or every problem.
    Check {
        /// Directory of *.yaml / *.yml / *.json resource files.
        #[arg(default_value = "examples/hcmc")]
        resources: std::path::PathBuf,
    },
    /// Print the records of a topic as JSON lines, read through a gateway's SubscribeService.
    Tail(tail::TailArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEKONG_LOG")
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Tail(args) => return tail::run(args),
        Command::Check { resources } => resources::load(&resources).map(|catalog| {
            let (types, routes, clients) = catalog.counts();
            println!(
                "{}: OK ({types} record types, {routes} routes, {clients} clients)",
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
