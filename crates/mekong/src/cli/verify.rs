//! `mekong verify`: a proof bundle checked offline (no hub, no Kafka), or with `--log` the whole
//! audit trail read from Kafka and checked against every checkpoint.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mekong_core::AUDIT_TOPIC;
use mekong_core::cloudevents as ce;
use mekong_core::evidence::{Bundle, PublicKey, SEAL_HEADER, Trail, certificates_from_pem};
use mekong_kafka::{Backbone, read_checkpoints, read_page};

use super::Failure;
use super::evidence::{AuditKeyArgs, read_public_keys};
use super::kafka::KafkaArgs;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The bundle `mekong proof` wrote.
    #[arg(required_unless_present = "log", conflicts_with = "log")]
    bundle: Option<PathBuf>,
    /// A notary's public key (SubjectPublicKeyInfo PEM, `signing.pub`); repeatable, for rotation.
    #[arg(long, value_name = "KEY.pub", required = true)]
    trust: Vec<PathBuf>,
    /// A copy's bytes (as found on a topic, at the portal, in a dead letter): say whether it is one
    /// the record was accepted with.
    #[arg(long, value_name = "FILE", conflicts_with = "log")]
    copy: Vec<PathBuf>,
    /// Check the whole audit trail on Kafka instead (needs --kafka and --audit-key).
    #[arg(long)]
    log: bool,
    /// Certificates (PEM) of the time-stamping authorities trusted, or of their CAs (repeatable):
    /// checkpoints must then carry a valid RFC 3161 time stamp.
    #[arg(long, value_name = "FILE")]
    tsa_ca: Vec<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    audit: AuditKeyArgs,
}

pub fn verify(args: VerifyArgs) -> Result<u8, Failure> {
    let trusted = read_public_keys(&args.trust, "--trust")?;
    let mut tsa = Vec::new();
    for path in &args.tsa_ca {
        let pem = std::fs::read(path)
            .map_err(|e| Failure::usage(format!("--tsa-ca {}: {e}", path.display())))?;
        let certificates = certificates_from_pem(&pem);
        if certificates.is_empty() {
            return Err(Failure::usage(format!(
                "--tsa-ca {}: no PEM certificate in it",
                path.display()
            )));
        }
        tsa.extend(certificates);
    }
    let tsa = (!args.tsa_ca.is_empty()).then_some(tsa);
    if args.log {
        return verify_log(&args, &trusted, tsa.as_deref());
    }
    let path = args
        .bundle
        .as_ref()
        .expect("clap requires a bundle without --log");
    let text = std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let bundle: Bundle = serde_json::from_slice(&text)
        .map_err(|e| Failure::other(format!("{}: not a proof bundle: {e}", path.display())))?;
    let verified = bundle
        .verify(&trusted)
        .map_err(|e| Failure::other(format!("{}: does not verify: {e}", path.display())))?;
    println!(
        "record {}: {} event(s) proven in the signed tree of {} events (checkpoint `{}`, key {})",
        bundle.record_id,
        verified.events.len(),
        verified.checkpoint.size,
        verified.checkpoint.origin,
        verified.signer.fingerprint()
    );
    for event in &verified.events {
        println!("  {:<24}  {}", event.time(), event.name());
    }
    match (&tsa, &bundle.timestamp) {
        (Some(tsa), _) => {
            let stamp = bundle.verify_timestamp(tsa).map_err(|e| {
                Failure::other(format!(
                    "{}: the checkpoint's time stamp does not verify: {e}",
                    path.display()
                ))
            })?;
            println!(
                "checkpoint time-stamped at {} by {}",
                stamp.time, stamp.authority
            );
        }
        (None, Some(_)) => println!("checkpoint carries a time stamp (not checked: no --tsa-ca)"),
        (None, None) => {}
    }
    let mut code = Failure::OK;
    for copy in &args.copy {
        let bytes = std::fs::read(copy)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", copy.display())))?;
        match verified.matching_copy(&bytes) {
            Some(placed) => println!(
                "{}: the accepted copy for {} (routes {})",
                copy.display(),
                placed.topic,
                placed.routes.join(",")
            ),
            None => {
                println!(
                    "{}: NOT a copy the record was accepted with",
                    copy.display()
                );
                code = Failure::REFUSED;
            }
        }
    }
    Ok(code)
}

/// Reads audit partition 0 and the checkpoints from Kafka and checks them (blocking).
fn verify_log(
    args: &VerifyArgs,
    trusted: &[PublicKey],
    tsa: Option<&[Vec<u8>]>,
) -> Result<u8, Failure> {
    if args.kafka.kafka.is_none() {
        return Err(Failure::usage("verify --log needs --kafka".into()));
    }
    let Some(audit_key) = args.audit.key()? else {
        return Err(Failure::usage(
            "verify --log needs --audit-key: it tells the hub's events from forged ones".into(),
        ));
    };
    let mekong_hub::BackboneConfig::External { bootstrap, options } =
        super::kafka::resolve_secrets(args.kafka.backbone())?
    else {
        unreachable!("--kafka is given");
    };
    let backbone = Backbone::external(bootstrap, options);
    let unreachable =
        |e: mekong_kafka::KafkaError| Failure::unreachable(format!("reading Kafka: {e}"));
    let keys = [audit_key];
    let mut trail = Trail::new(&keys, 0);
    let mut next = 0;
    loop {
        let page = read_page(
            &backbone,
            AUDIT_TOPIC,
            next,
            10_000,
            Duration::from_secs(60),
        )
        .map_err(unreachable)?;
        for event in &page.letters {
            let seal = event
                .headers
                .iter()
                .find(|(k, _)| k == SEAL_HEADER)
                .map(|(_, v)| v.as_slice());
            let id = event.header(ce::ID).unwrap_or_default();
            trail.event(event.offset, &id, &event.payload, seal);
        }
        match page.next {
            Some(n) => next = n,
            None => break,
        }
    }
    let checkpoints = read_checkpoints(&backbone, 0).map_err(unreachable)?;
    let report = trail.finish(&checkpoints, trusted, tsa);
    for finding in &report.findings {
        println!("FINDING: {finding}");
    }
    match &report.intact {
        Some(c) => println!(
            "{} audit events, {} sealed; {} checkpoints; the signed tree of {} events (to audit offset {}) holds; {} sealed events since",
            report.events, report.sealed, report.checkpoints, c.size, c.next_offset, report.since
        ),
        None => println!(
            "{} audit events, {} sealed; {} checkpoints; no checkpoint verified against the trail",
            report.events, report.sealed, report.checkpoints
        ),
    }
    if report.findings.is_empty() {
        println!("no findings");
        Ok(Failure::OK)
    } else {
        println!("{} finding(s)", report.findings.len());
        Ok(Failure::REFUSED)
    }
}
