//! The proof of one record (`mekong proof`), and its offline check (`mekong verify`): the record's
//! audit events with their inclusion proofs, and the signed checkpoint that covers them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::{Frontier, Hash, verify_inclusion};
use super::note::{Checkpoint, NoteError, PublicKey};
use super::seal::event_leaf;
use crate::audit::{AuditEvent, PlacedCopy};

/// The value of [`Bundle::format`].
pub const BUNDLE_FORMAT: &str = "mekong-proof/1";

/// A proof bundle, as `bundle.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub format: String,
    pub record_id: String,
    /// The signed checkpoint (C2SP signed note) every event is proven against.
    pub checkpoint: String,
    /// The checkpoint's RFC 3161 time-stamp token (base64 DER), when the notary has a TSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub events: Vec<ProvenEvent>,
}

/// One audit event of the record and its place in the tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenEvent {
    pub partition: i32,
    pub offset: i64,
    pub leaf_index: u64,
    /// The event's CloudEvents id (`ce_id`).
    pub id: String,
    /// The event's JSON, exactly as written to the audit topic.
    pub event: String,
    /// The audit path, base64 hashes from the leaf up.
    pub inclusion: Vec<String>,
}

/// What a bundle proves.
#[derive(Debug, Clone)]
pub struct Verified {
    pub checkpoint: Checkpoint,
    pub signer: PublicKey,
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a proof bundle of format `{BUNDLE_FORMAT}`")]
    Format,
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("the bundle holds no event")]
    Empty,
    #[error("event {index} (audit offset {offset}): {problem}")]
    Event {
        index: usize,
        offset: i64,
        problem: String,
    },
}

/// The origin of the checkpoints of one audit partition.
pub fn origin(log: &str, partition: i32) -> String {
    format!("{log}/{partition}")
}

impl Bundle {
    /// Checks the checkpoint's signature against the trusted keys, then each event: that it is
    /// about this record, and that its inclusion proof leads to the checkpoint's tree head.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<Verified, BundleError> {
        if self.format != BUNDLE_FORMAT {
            return Err(BundleError::Format);
        }
        let (checkpoint, signer) = Checkpoint::open(&self.checkpoint, trusted)?;
        if self.events.is_empty() {
            return Err(BundleError::Empty);
        }
        let mut events = Vec::with_capacity(self.events.len());
        for (index, proven) in self.events.iter().enumerate() {
            let problem = |problem: String| BundleError::Event {
                index,
                offset: proven.offset,
                problem,
            };
            if !checkpoint
                .origin
                .ends_with(&format!("/{}", proven.partition))
            {
                return Err(problem(format!(
                    "of audit partition {}, but the checkpoint is of `{}`",
                    proven.partition, checkpoint.origin
                )));
            }
            let event = AuditEvent::from_json(proven.event.as_bytes())
                .map_err(|e| problem(format!("not an audit event: {e}")))?;
            if event.record_id() != Some(self.record_id.as_str()) {
                return Err(problem(format!(
                    "about record {}, not {}",
                    event.record_id().unwrap_or("(none)"),
                    self.record_id
                )));
            }
            let path: Vec<Hash> = proven
                .inclusion
                .iter()
                .map(|h| B64.decode(h).ok().and_then(|h| Hash::try_from(h).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| problem("an inclusion hash is not 32 bytes of base64".into()))?;
            let leaf = event_leaf(&proven.id, proven.event.as_bytes());
            if !verify_inclusion(
                proven.leaf_index,
                checkpoint.size,
                &leaf,
                &path,
                &checkpoint.root,
            ) {
                return Err(problem(format!(
                    "not in the signed tree of {} events: the event or its proof was changed",
                    checkpoint.size
                )));
            }
            events.push(event);
        }
        Ok(Verified {
            checkpoint,
            signer,
            events,
        })
    }
}

impl Bundle {
    /// Checks the checkpoint's time stamp against the TSA certificates trusted (DER).
    pub fn verify_timestamp(
        &self,
        trusted: &[Vec<u8>],
    ) -> Result<super::timestamp::Stamp, super::timestamp::TimestampError> {
        let token = self
            .timestamp
            .as_deref()
            .and_then(|t| B64.decode(t).ok())
            .ok_or(super::timestamp::TimestampError::Missing)?;
        super::timestamp::verify_token(&token, self.checkpoint.as_bytes(), trusted)
    }
}

impl Verified {
    /// The copies the record was accepted with (from its `record.accepted` event).
    pub fn accepted_copies(&self) -> Option<&[PlacedCopy]> {
        self.events.iter().find_map(|e| match e {
            AuditEvent::RecordAccepted(r) => Some(r.copies.as_slice()),
            _ => None,
        })
    }

    /// The accepted copy these bytes are, if any: same SHA-256 as one the record was accepted with.
    pub fn matching_copy(&self, bytes: &[u8]) -> Option<&PlacedCopy> {
        let digest = hex::encode(Sha256::digest(bytes));
        self.accepted_copies()?
            .iter()
            .find(|c| c.sha256.as_deref() == Some(digest.as_str()))
    }
}

/// A checkpoint as the notary writes it to `_mekong.checkpoints`: the signed note, and the peaks of
/// its tree, from which the next notary resumes without reading the trail again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointRecord {
    pub partition: i32,
    pub note: String,
    /// The heads of the tree's perfect subtrees, largest first (base64).
    pub peaks: Vec<String>,
    /// The note's RFC 3161 time-stamp token (base64 DER), when the notary has a TSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl CheckpointRecord {
    pub fn new(partition: i32, note: String, frontier: &Frontier) -> CheckpointRecord {
        CheckpointRecord {
            partition,
            note,
            peaks: frontier.peaks().iter().map(|p| B64.encode(p)).collect(),
            timestamp: None,
        }
    }

    /// The time-stamp token's DER, if it has one (and it is base64).
    pub fn timestamp_token(&self) -> Option<Vec<u8>> {
        B64.decode(self.timestamp.as_deref()?).ok()
    }

    /// The tree the checkpoint signs, ready to grow; `None` when the peaks do not make its head.
    pub fn frontier(&self, checkpoint: &Checkpoint) -> Option<Frontier> {
        let peaks = self
            .peaks
            .iter()
            .map(|p| B64.decode(p).ok().and_then(|p| Hash::try_from(p).ok()))
            .collect::<Option<Vec<_>>>()?;
        Frontier::from_parts(checkpoint.size, peaks).filter(|f| f.root() == checkpoint.root)
    }
}

/// Base64 of a hash, as bundles and checkpoints write them.
pub fn encode_hash(hash: &Hash) -> String {
    B64.encode(hash)
}

/// Base64 of bytes (a time-stamp token), as bundles and checkpoints write them.
pub fn encode_bytes(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::RecordEvent;
    use crate::evidence::merkle::inclusion_proof;
    use crate::evidence::note::SigningKey;

    fn accepted(record_id: &str, copy: &[u8]) -> String {
        String::from_utf8(
            AuditEvent::RecordAccepted(RecordEvent {
                time: "t".into(),
                record_id: record_id.into(),
                record_type: "dossier.sync".into(),
                source: "q1".into(),
                authenticated: None,
                key: "H1".into(),
                schema_version: Some(1),
                copies: vec![PlacedCopy {
                    topic: "hcmc.dossier.v1".into(),
                    partition: -1,
                    offset: -1,
                    routes: vec!["all".into()],
                    sha256: Some(hex::encode(Sha256::digest(copy))),
                }],
                reason: None,
                message: None,
                violations: vec![],
            })
            .to_json(),
        )
        .unwrap()
    }

    /// A tree of three events, the middle one about `r2`, and the bundle of `r2`.
    fn bundle(key: &SigningKey) -> Bundle {
        let events = [
            accepted("r1", b"a"),
            accepted("r2", b"{\"x\":1}"),
            accepted("r3", b"c"),
        ];
        let leaves: Vec<Hash> = events
            .iter()
            .enumerate()
            .map(|(i, e)| event_leaf(&format!("id{i}"), e.as_bytes()))
            .collect();
        let mut frontier = Frontier::default();
        leaves.iter().for_each(|l| frontier.push(*l));
        let checkpoint = Checkpoint {
            origin: origin("mekong/_mekong.audit", 0),
            size: 3,
            root: frontier.root(),
            first_offset: 0,
            next_offset: 3,
        };
        Bundle {
            format: BUNDLE_FORMAT.into(),
            record_id: "r2".into(),
            checkpoint: checkpoint.sign(key),
            timestamp: None,
            events: vec![ProvenEvent {
                partition: 0,
                offset: 1,
                leaf_index: 1,
                id: "id1".into(),
                event: events[1].clone(),
                inclusion: inclusion_proof(1, &leaves)
                    .iter()
                    .map(encode_hash)
                    .collect(),
            }],
        }
    }

    #[test]
    fn a_bundle_verifies_and_tells_its_accepted_copy() {
        let key = SigningKey::from_pem("n", SigningKey::generate_pem().as_bytes()).unwrap();
        let verified = bundle(&key).verify(&[key.public()]).unwrap();
        assert_eq!(verified.checkpoint.size, 3);
        assert_eq!(
            verified.matching_copy(b"{\"x\":1}").unwrap().topic,
            "hcmc.dossier.v1"
        );
        assert!(verified.matching_copy(b"{\"x\":2}").is_none());
    }

    #[test]
    fn a_changed_bundle_says_what_is_wrong() {
        let key = SigningKey::from_pem("n", SigningKey::generate_pem().as_bytes()).unwrap();
        let trusted = [key.public()];
        let problem = |b: Bundle| b.verify(&trusted).unwrap_err().to_string();

        let mut changed = bundle(&key);
        changed.events[0].event = changed.events[0].event.replace("q1", "q2");
        assert!(problem(changed).contains("not in the signed tree of 3 events"));

        let mut other = bundle(&key);
        other.record_id = "r1".into();
        assert!(problem(other).contains("about record r2, not r1"));

        let mut moved = bundle(&key);
        moved.events[0].leaf_index = 2;
        assert!(problem(moved).contains("not in the signed tree"));

        let stranger = SigningKey::from_pem("n", SigningKey::generate_pem().as_bytes()).unwrap();
        assert!(matches!(
            bundle(&stranger).verify(&trusted),
            Err(BundleError::Checkpoint(NoteError::Untrusted(_)))
        ));
    }
}
