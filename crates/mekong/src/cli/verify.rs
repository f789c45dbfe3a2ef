//! `mekong verify`: a proof bundle checked offline (no hub, no Kafka), or with `--log` the whole
//! audit trail read from Kafka and checked against every checkpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mekong_core::AUDIT_TOPIC;
use mekong_core::cloudevents as ce;
use mekong_core::evidence::{
    AuditKey, Bundle, Checkpoint, CheckpointRecord, Hash, NoteError, SEAL_HEADER, SealCheck,
    consistency_proof, event_leaf, root, verify_consistency,
};
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
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    audit: AuditKeyArgs,
}

pub fn verify(args: VerifyArgs) -> Result<u8, Failure> {
    let trusted = read_public_keys(&args.trust, "--trust")?;
    if args.log {
        return verify_log(&args, &trusted);
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

/// What `--log` found wrong, by audit or checkpoint offset.
struct Findings(Vec<String>);

impl Findings {
    fn add(&mut self, finding: String) {
        println!("FINDING: {finding}");
        self.0.push(finding);
    }
}

fn verify_log(
    args: &VerifyArgs,
    trusted: &[mekong_core::evidence::PublicKey],
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
    let mut findings = Findings(Vec::new());

    // The checkpoints of audit partition 0, in the order they were written.
    let mut checkpoints: Vec<(i64, Checkpoint)> = Vec::new();
    for (offset, json) in read_checkpoints(&backbone, 0).map_err(unreachable)? {
        let record: CheckpointRecord = match serde_json::from_slice(&json) {
            Ok(r) => r,
            Err(_) => {
                findings.add(format!(
                    "checkpoint offset {offset}: not a checkpoint record"
                ));
                continue;
            }
        };
        match Checkpoint::open(&record.note, trusted) {
            Ok((checkpoint, _)) if record.partition == 0 => checkpoints.push((offset, checkpoint)),
            Ok(_) => {}
            Err(NoteError::Untrusted(by)) => findings.add(format!(
                "checkpoint offset {offset}: signed by a key not trusted ({by})"
            )),
            Err(e) => findings.add(format!("checkpoint offset {offset}: {e}")),
        }
    }

    // The audit trail: every event sealed by the hub is a leaf, in offset order.
    let mut leaves: Vec<(i64, Hash)> = Vec::new();
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut low = None;
    let mut events = 0u64;
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
            low.get_or_insert(event.offset);
            events += 1;
            let id = event.header(ce::ID).unwrap_or_default();
            let seal = event
                .headers
                .iter()
                .find(|(k, _)| k == SEAL_HEADER)
                .map(|(_, v)| v.as_slice());
            match AuditKey::check(std::slice::from_ref(&audit_key), &id, &event.payload, seal) {
                SealCheck::Sealed(_) => {
                    if let Some(first) = ids.insert(id.clone(), event.offset) {
                        findings.add(format!(
                            "audit offset {}: a second copy of the event at offset {first} (id {id})",
                            event.offset
                        ));
                    }
                    leaves.push((event.offset, event_leaf(&id, &event.payload)));
                }
                SealCheck::Missing => findings.add(format!(
                    "audit offset {}: forged: not sealed by the hub",
                    event.offset
                )),
                SealCheck::UnknownKey(k) => findings.add(format!(
                    "audit offset {}: forged: sealed with an audit key not held ({k})",
                    event.offset
                )),
                SealCheck::Broken => findings.add(format!(
                    "audit offset {}: changed or forged: its seal does not match it",
                    event.offset
                )),
            }
        }
        match page.next {
            Some(n) => next = n,
            None => break,
        }
    }

    // Each checkpoint against the events, and against the one before it.
    let hashes: Vec<Hash> = leaves.iter().map(|(_, h)| *h).collect();
    let mut previous: Option<&(i64, Checkpoint)> = None;
    let mut intact = None;
    for entry in &checkpoints {
        let (at, checkpoint) = entry;
        let first = checkpoint.first_offset;
        if let Some(low) = low.filter(|low| *low > first) {
            findings.add(format!(
                "checkpoint offset {at} (tree of {}): events from audit offset {first} to {} were removed (the trail now starts at {low})",
                checkpoint.size,
                low - 1
            ));
            previous = Some(entry);
            continue;
        }
        let covered = leaves
            .iter()
            .filter(|(o, _)| *o >= first && *o < checkpoint.next_offset)
            .count() as u64;
        let range = format!(
            "audit offsets {}..{}",
            previous.map_or(first, |(_, p)| p.next_offset),
            checkpoint.next_offset
        );
        let start = leaves
            .iter()
            .position(|(o, _)| *o >= first)
            .unwrap_or(leaves.len());
        if covered != checkpoint.size {
            findings.add(format!(
                "checkpoint offset {at}: signs {} events up to audit offset {}, the trail holds {covered}: {} in {range}",
                checkpoint.size,
                checkpoint.next_offset,
                if covered < checkpoint.size { "events removed" } else { "events inserted" }
            ));
        } else if root(&hashes[start..start + covered as usize]) != checkpoint.root {
            findings.add(format!(
                "checkpoint offset {at}: the events do not make its signed tree head: events changed or reordered in {range}"
            ));
        } else {
            intact = Some(checkpoint);
        }
        if let Some((previous_at, p)) = previous {
            let tree = &hashes[start..];
            let consistent = p.size <= checkpoint.size
                && checkpoint.size as usize <= tree.len()
                && verify_consistency(
                    p.size,
                    checkpoint.size,
                    &p.root,
                    &checkpoint.root,
                    &consistency_proof(p.size as usize, &tree[..checkpoint.size as usize]),
                );
            if !consistent {
                findings.add(format!(
                    "checkpoint offset {at} is not consistent with checkpoint offset {previous_at} (tree of {} then {})",
                    p.size, checkpoint.size
                ));
            }
        }
        previous = Some(entry);
    }
    let after = leaves
        .iter()
        .filter(|(o, _)| intact.is_none_or(|c| *o >= c.next_offset))
        .count();
    match intact {
        Some(c) => println!(
            "{events} audit events, {} sealed; {} checkpoints; the signed tree of {} events (to audit offset {}) holds; {after} sealed events since",
            leaves.len(),
            checkpoints.len(),
            c.size,
            c.next_offset
        ),
        None => println!(
            "{events} audit events, {} sealed; {} checkpoints; no checkpoint verified against the trail",
            leaves.len(),
            checkpoints.len()
        ),
    }
    if findings.0.is_empty() {
        println!("no findings");
        Ok(Failure::OK)
    } else {
        println!("{} finding(s)", findings.0.len());
        Ok(Failure::REFUSED)
    }
}
