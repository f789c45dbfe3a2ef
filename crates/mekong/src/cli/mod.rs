//! The commands of `mekong`, one file each: flags parsed here, the work done by the libraries.
//!
//! One exit code policy for every command: 0 done; 1 refused or failed (the hub or the input said
//! no; for `diff`: there are differences; for `test-record`: the record would be rejected); 2 a
//! usage error (flags, files named on the command line); 3 the hub or its Kafka cannot be reached.

pub mod adapters;
pub mod apply;
pub mod check;
pub mod console;
pub mod deadlines;
pub mod delete;
pub mod dev_certs;
pub mod diff;
pub mod dlq;
pub mod evidence;
pub mod get;
pub mod kafka;
pub mod limits;
pub mod remote;
pub mod render;
pub mod resources;
pub mod serve;
pub mod tail;
pub mod test_record;
pub mod tls;
pub mod trace;
pub mod verify;

use std::process::ExitCode;

use clap::Subcommand;
use mekong_hub::HubError;

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway. Without --kafka, an embedded development backbone is started.
    Serve(Box<serve::ServeArgs>),
    /// Check resources and exit: what `serve` would load, or every problem. Without DIR, the
    /// city's examples built into the binary.
    Check {
        /// Directory of *.yaml / *.yml / *.json resource files.
        resources: Option<std::path::PathBuf>,
    },
    /// Print the records of a topic as JSON lines, read through a gateway's SubscribeService.
    Tail(tail::TailArgs),
    /// Create or update resources on a running hub (all or nothing).
    Apply(apply::ApplyArgs),
    /// Show what `apply` would change, as a diff against the stored resources.
    Diff(diff::DiffArgs),
    /// Show stored resources: a table, or YAML to edit and apply again.
    Get(get::GetArgs),
    /// Delete a resource; refused while other resources refer to it.
    Delete(delete::DeleteArgs),
    /// Run a record through access, validation and routing as a client would publish it.
    TestRecord(test_record::TestRecordArgs),
    /// Where a record is and what happened to it, from the audit trail: by id or by key.
    Trace(trace::TraceArgs),
    /// Dead letters of an adapter: list them, replay them.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// The delivery adapters, apart from the gateway.
    #[command(subcommand)]
    Adapters(adapters::AdaptersCommand),
    /// The deadline trackers, apart from the gateway.
    #[command(subcommand)]
    Deadlines(deadlines::DeadlinesCommand),
    /// Open deadlines past their due time (dossiers late now), longest overdue first.
    Overdue(deadlines::OverdueArgs),
    /// The notary that signs checkpoints of the audit trail: make its keys, or run it alone.
    #[command(subcommand)]
    Notary(evidence::NotaryCommand),
    /// The proof of a record (its audit events, their inclusion proofs and the signed checkpoint),
    /// as a JSON bundle that `mekong verify` checks offline.
    Proof(evidence::ProofArgs),
    /// Check a proof bundle offline against trusted notary keys; or, with --log, the whole audit
    /// trail on Kafka against every checkpoint. Exit 1 on any finding.
    Verify(Box<verify::VerifyArgs>),
    /// Write a throwaway CA, a hub certificate and one client certificate per example client, to
    /// try mutual TLS on a developer's machine.
    DevCerts(dev_certs::DevCertsArgs),
}

/// Runs a command and says how it ended.
/// Runs a command; `exporting_spans` when spans go to an OpenTelemetry collector.
pub fn run(command: Command, exporting_spans: bool) -> ExitCode {
    let result = match command {
        Command::Serve(args) => serve::run(*args, exporting_spans),
        Command::Adapters(command) => adapters::run(command),
        Command::Deadlines(command) => deadlines::run(command),
        Command::Overdue(args) => block_on(deadlines::overdue(args)),
        Command::Check { resources } => check::run(resources),
        Command::Tail(args) => block_on(tail::run(args)),
        Command::Apply(args) => block_on(apply::apply(args)),
        Command::Diff(args) => block_on(diff::diff(args)),
        Command::Get(args) => block_on(get::get(args)),
        Command::Delete(args) => block_on(delete::delete(args)),
        Command::TestRecord(args) => block_on(test_record::test_record(args)),
        Command::Dlq(command) => block_on(dlq::dlq(command)),
        Command::Trace(args) => block_on(trace::trace(args)),
        Command::DevCerts(args) => dev_certs::run(args),
        Command::Notary(command) => evidence::notary(command),
        Command::Proof(args) => block_on(evidence::proof(args)),
        Command::Verify(args) => verify::verify(*args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

/// Why a command failed: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: u8,
    pub message: String,
}

impl Failure {
    pub const OK: u8 = 0;
    pub const REFUSED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;

    pub fn usage(message: String) -> Failure {
        Failure {
            exit: Failure::USAGE,
            message,
        }
    }

    pub fn other(message: String) -> Failure {
        Failure {
            exit: Failure::REFUSED,
            message,
        }
    }

    pub fn refused_with(message: String) -> Failure {
        Failure::other(message)
    }

    /// The hub or its Kafka cannot be reached.
    pub fn unreachable(message: String) -> Failure {
        Failure {
            exit: Failure::UNREACHABLE,
            message,
        }
    }

    /// A hub that did not start or stop cleanly: Kafka out of reach is exit 3, the rest 1.
    pub fn hub(e: HubError) -> Failure {
        let message = error_chain(&e);
        if e.is_unreachable() {
            Failure::unreachable(message)
        } else {
            Failure::other(message)
        }
    }
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs a client command on a small runtime.
fn block_on(command: impl Future<Output = Result<u8, Failure>>) -> Result<u8, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::other(format!("cannot start the runtime: {e}")))?
        .block_on(command)
}

/// Runs a serving command on a runtime with a worker per core.
fn block_on_multi_thread(
    command: impl Future<Output = Result<u8, Failure>>,
) -> Result<u8, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::other(format!("cannot start the runtime: {e}")))?
        .block_on(command)
}

/// SIGTERM (Kubernetes, systemd) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
