//! The evidence of the audit trail (docs/evidence.md): the flags that seal events and run a notary
//! (`serve`, `adapters run`, `notary run`), `mekong notary keygen` and `mekong proof`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use mekong_core::evidence::{AuditKey, PublicKey, SigningKey};
use mekong_hub::{EvidenceConfig, HubConfig, LineageConfig, NotaryConfig, TopicDefaults};
use mekong_kafka::NotarySettings;
use mekong_proto::v1 as pb;
use tracing::info;

use super::Failure;
use super::kafka::{KafkaArgs, read_secret};
use super::remote::{Remote, admin_client, refused};

/// The key every audit event this instance writes is sealed with.
#[derive(Args, Debug, Clone, Default)]
pub struct AuditKeyArgs {
    /// The audit key (`file:PATH` or `env:NAME`; 64 hex digits, as `mekong notary keygen` writes
    /// `audit.key`). Every instance that writes the audit trail (serve, adapters run) and every
    /// notary needs the same one: events it does not seal are left out of the tree as forged.
    #[arg(long, value_name = "file:PATH")]
    pub audit_key: Option<String>,
}

impl AuditKeyArgs {
    pub fn key(&self) -> Result<Option<AuditKey>, Failure> {
        self.audit_key
            .as_deref()
            .map(|reference| {
                let text = read_secret(reference)
                    .map_err(|e| Failure::usage(format!("--audit-key: {e}")))?;
                AuditKey::from_text(&text).map_err(|e| Failure::usage(format!("--audit-key: {e}")))
            })
            .transpose()
    }
}

/// The notary's flags.
#[derive(Args, Debug, Clone)]
pub struct NotaryArgs {
    /// Run a notary with this Ed25519 signing key (`file:PATH` or `env:NAME`; PKCS#8 PEM): it signs
    /// checkpoints of the audit trail to _mekong.checkpoints. Needs --audit-key.
    #[arg(long, value_name = "file:PATH")]
    pub signing_key: Option<String>,
    /// The name in the checkpoints' signature lines (no spaces or `+`).
    #[arg(long, default_value = "mekong-notary")]
    pub signing_key_name: String,
    /// A checkpoint once this many events wait for one ...
    #[arg(long, default_value_t = NotarySettings::default().every)]
    pub checkpoint_every: u64,
    /// ... or once the oldest has waited this long.
    #[arg(long, default_value = "10s")]
    pub checkpoint_interval: humantime::Duration,
    /// /readyz fails when events have waited this long for a checkpoint.
    #[arg(long, default_value = "5m")]
    pub checkpoint_max_age: humantime::Duration,
    /// The checkpoints' origin line is this, then `/<audit partition>`: name the city's hub.
    #[arg(long, default_value_t = NotarySettings::default().log)]
    pub checkpoint_origin: String,
    /// Public key of an earlier notary key (rotation; repeatable): its checkpoints are resumed from.
    #[arg(long, value_name = "KEY.pub")]
    pub previous_key: Vec<PathBuf>,
    /// An RFC 3161 time-stamping authority (HTTP): each checkpoint is stamped there and its token
    /// kept with it, for `verify --tsa-ca`.
    #[arg(long, value_name = "URL")]
    pub tsa_url: Option<String>,
}

impl NotaryArgs {
    /// The evidence settings: the audit key, and a notary when a signing key is given.
    pub fn evidence(&self, audit: &AuditKeyArgs) -> Result<EvidenceConfig, Failure> {
        let audit_key = audit.key()?;
        let notary = match &self.signing_key {
            None => None,
            Some(reference) => {
                if audit_key.is_none() {
                    return Err(Failure::usage(
                        "--signing-key needs --audit-key: the notary signs only the events the hub sealed".into(),
                    ));
                }
                let usage = |e: String| Failure::usage(format!("--signing-key: {e}"));
                let pem = read_secret(reference).map_err(usage)?;
                let key = SigningKey::from_pem(&self.signing_key_name, &pem)
                    .map_err(|e| usage(e.to_string()))?;
                if self.checkpoint_every == 0 {
                    return Err(Failure::usage(
                        "--checkpoint-every must be at least 1".into(),
                    ));
                }
                Some(NotaryConfig {
                    key: Arc::new(key),
                    settings: NotarySettings {
                        every: self.checkpoint_every,
                        interval: self.checkpoint_interval.into(),
                        log: self.checkpoint_origin.clone(),
                        previous_keys: read_public_keys(&self.previous_key, "--previous-key")?,
                        stamper: None,
                    },
                    max_age: self.checkpoint_max_age.into(),
                    tsa_url: self.tsa_url.clone(),
                })
            }
        };
        Ok(EvidenceConfig { audit_key, notary })
    }
}

/// Public keys from PEM files, for the flag `flag`.
pub fn read_public_keys(paths: &[PathBuf], flag: &str) -> Result<Vec<PublicKey>, Failure> {
    paths
        .iter()
        .map(|path| {
            let usage = |e: String| Failure::usage(format!("{flag} {}: {e}", path.display()));
            let pem = std::fs::read(path).map_err(|e| usage(e.to_string()))?;
            PublicKey::from_pem(&pem).map_err(|e| usage(e.to_string()))
        })
        .collect()
}

#[derive(Subcommand, Debug)]
pub enum NotaryCommand {
    /// Write a new notary key pair and audit key into DIR: signing.key (PKCS#8 PEM), signing.pub
    /// (the SubjectPublicKeyInfo PEM that `verify --trust` takes) and audit.key. Existing files are
    /// not overwritten.
    Keygen { dir: PathBuf },
    /// Run a notary alone, apart from any gateway.
    Run(Box<NotaryRunArgs>),
}

#[derive(Args, Debug)]
pub struct NotaryRunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    audit: AuditKeyArgs,
    #[command(flatten)]
    notary: NotaryArgs,
    /// Address of the HTTP endpoint with /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9466")]
    metrics_listen: SocketAddr,
}

pub fn notary(command: NotaryCommand) -> Result<u8, Failure> {
    match command {
        NotaryCommand::Keygen { dir } => keygen(&dir),
        NotaryCommand::Run(args) => run(*args),
    }
}

fn keygen(dir: &Path) -> Result<u8, Failure> {
    let private = SigningKey::generate_pem();
    let public = SigningKey::from_pem("mekong-notary", private.as_bytes())
        .expect("a key just made reads back")
        .public()
        .to_pem();
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
    for name in ["signing.key", "signing.pub", "audit.key"] {
        if dir.join(name).exists() {
            return Err(Failure::usage(format!(
                "{} exists: not overwritten",
                dir.join(name).display()
            )));
        }
    }
    write_new(&dir.join("signing.key"), &private, 0o600)?;
    write_new(&dir.join("signing.pub"), &public, 0o644)?;
    write_new(&dir.join("audit.key"), &AuditKey::generate_text(), 0o600)?;
    println!(
        "wrote {0}/signing.key, {0}/signing.pub and {0}/audit.key",
        dir.display()
    );
    Ok(Failure::OK)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))
}

fn run(args: NotaryRunArgs) -> Result<u8, Failure> {
    if args.notary.signing_key.is_none() {
        return Err(Failure::usage(
            "mekong notary run needs --signing-key".into(),
        ));
    }
    if args.kafka.kafka.is_none() {
        return Err(Failure::usage("mekong notary run needs --kafka".into()));
    }
    let config = HubConfig {
        backbone: super::kafka::resolve_secrets(args.kafka.backbone())?,
        store: args.kafka.store(),
        topics: TopicDefaults {
            replication: args.kafka.topic_replication,
            ..TopicDefaults::default()
        },
        metrics: Some(args.metrics_listen),
        lineage: LineageConfig::None,
        evidence: args.notary.evidence(&args.audit)?,
        ..HubConfig::default()
    };
    super::block_on_multi_thread(async move {
        let hub = config.start().await.map_err(Failure::hub)?;
        if let Some(metrics) = hub.metrics_addr() {
            println!("metrics on http://{metrics}");
        }
        info!("notary running");
        hub.run_until(super::shutdown_signal())
            .await
            .map_err(Failure::hub)?;
        Ok(Failure::OK)
    })
}

#[derive(Args, Debug)]
pub struct ProofArgs {
    /// The record id (as Publish answered it).
    record_id: String,
    /// Where to write the bundle (default: standard output).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// How long to wait for a checkpoint that covers the record's events.
    #[arg(long, default_value = "30s")]
    wait: humantime::Duration,
    #[command(flatten)]
    remote: Remote,
}

/// `mekong proof RECORD_ID -o bundle.json`.
pub async fn proof(args: ProofArgs) -> Result<u8, Failure> {
    let mut client = admin_client(&args.remote).await?;
    let deadline = Instant::now() + Duration::from(args.wait);
    let answer = loop {
        match client
            .proof(pb::ProofRequest {
                record_id: args.record_id.clone(),
            })
            .await
        {
            Ok(answer) => break answer.into_inner(),
            Err(status)
                if status.code() == tonic::Code::Unavailable && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(status) => return Err(refused(status)),
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, &answer.bundle)
            .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))?,
        None => println!("{}", answer.bundle),
    }
    if answer.uncovered > 0 {
        eprintln!(
            "{} later event(s) of the record are not yet covered by a checkpoint; prove again later for them",
            answer.uncovered
        );
    }
    Ok(Failure::OK)
}
