//! The check of a whole audit partition against its checkpoints (`mekong verify --log`): events are
//! fed in offset order (only their leaf hashes are kept), then every checkpoint is checked against
//! the leaves and against the one before it. Each finding names the offsets it is about.

use std::collections::HashMap;

use super::bundle::CheckpointRecord;
use super::merkle::{Hash, consistency_proof, root, verify_consistency};
use super::note::{Checkpoint, NoteError, PublicKey};
use super::seal::{AuditKey, SealCheck, event_leaf};
use super::timestamp::{TimestampError, verify_token};

/// The events of one audit partition, read in offset order.
pub struct Trail<'k> {
    keys: &'k [AuditKey],
    partition: i32,
    /// The first offset read: where the partition now starts.
    start: Option<i64>,
    events: u64,
    leaves: Vec<(i64, Hash)>,
    ids: HashMap<String, i64>,
    findings: Vec<String>,
}

/// What the check found.
#[derive(Debug)]
pub struct TrailReport {
    pub events: u64,
    pub sealed: usize,
    pub checkpoints: usize,
    /// The latest checkpoint the events were found to make, if any.
    pub intact: Option<Checkpoint>,
    /// Sealed events after it.
    pub since: usize,
    pub findings: Vec<String>,
}

impl<'k> Trail<'k> {
    pub fn new(keys: &'k [AuditKey], partition: i32) -> Trail<'k> {
        Trail {
            keys,
            partition,
            start: None,
            events: 0,
            leaves: Vec::new(),
            ids: HashMap::new(),
            findings: Vec::new(),
        }
    }

    /// The partition's start offset when it holds no event (its low watermark).
    pub fn starts_at(&mut self, offset: i64) {
        self.start.get_or_insert(offset);
    }

    /// The next event, in offset order.
    pub fn event(&mut self, offset: i64, id: &str, value: &[u8], seal: Option<&[u8]>) {
        self.start.get_or_insert(offset);
        self.events += 1;
        match AuditKey::check(self.keys, id, value, seal) {
            SealCheck::Sealed(_) => {
                if let Some(first) = self.ids.insert(id.to_owned(), offset) {
                    self.findings.push(format!(
                        "audit offset {offset}: a second copy of the event at offset {first} (id {id})"
                    ));
                }
                self.leaves.push((offset, event_leaf(id, value)));
            }
            SealCheck::Missing => self.findings.push(format!(
                "audit offset {offset}: forged: not sealed by the hub"
            )),
            SealCheck::UnknownKey(k) => self.findings.push(format!(
                "audit offset {offset}: forged: sealed with an audit key not held ({k})"
            )),
            SealCheck::Broken => self.findings.push(format!(
                "audit offset {offset}: changed or forged: its seal does not match it"
            )),
        }
    }

    /// Checks the checkpoint records (offset on the checkpoint topic, JSON), in the order written;
    /// with `tsa`, each must carry a time stamp by an authority those certificates (DER) trust.
    pub fn finish(
        mut self,
        checkpoints: &[(i64, Vec<u8>)],
        trusted: &[PublicKey],
        tsa: Option<&[Vec<u8>]>,
    ) -> TrailReport {
        let mut signed: Vec<(i64, Checkpoint)> = Vec::new();
        for (at, json) in checkpoints {
            let Ok(record) = serde_json::from_slice::<CheckpointRecord>(json) else {
                self.findings
                    .push(format!("checkpoint offset {at}: not a checkpoint record"));
                continue;
            };
            if record.partition != self.partition {
                continue;
            }
            match Checkpoint::open(&record.note, trusted) {
                Ok((checkpoint, _)) => {
                    if let Some(tsa) = tsa {
                        let stamped = record
                            .timestamp_token()
                            .ok_or(TimestampError::Missing)
                            .and_then(|token| verify_token(&token, record.note.as_bytes(), tsa));
                        if let Err(e) = stamped {
                            self.findings
                                .push(format!("checkpoint offset {at}: its time stamp: {e}"));
                        }
                    }
                    signed.push((*at, checkpoint))
                }
                Err(NoteError::Untrusted(by)) => self.findings.push(format!(
                    "checkpoint offset {at}: signed by a key not trusted ({by})"
                )),
                Err(e) => self.findings.push(format!("checkpoint offset {at}: {e}")),
            }
        }
        let hashes: Vec<Hash> = self.leaves.iter().map(|(_, h)| *h).collect();
        let mut by_size: HashMap<u64, (i64, Hash)> = HashMap::new();
        let mut previous: Option<&(i64, Checkpoint)> = None;
        let mut intact = None;
        for entry in &signed {
            let (at, checkpoint) = entry;
            if let Some((other, head)) = by_size.insert(checkpoint.size, (*at, checkpoint.root))
                && head != checkpoint.root
            {
                self.findings.push(format!(
                    "checkpoint offsets {other} and {at}: two different trees of {} events",
                    checkpoint.size
                ));
            }
            let first = checkpoint.first_offset;
            if let Some(start) = self.start.filter(|s| *s > first) {
                self.findings.push(format!(
                    "checkpoint offset {at} (tree of {}): events from audit offset {first} to {} were removed (the trail now starts at {start})",
                    checkpoint.size,
                    start - 1
                ));
                previous = Some(entry);
                continue;
            }
            let from = self.leaves.partition_point(|(o, _)| *o < first);
            let to = self
                .leaves
                .partition_point(|(o, _)| *o < checkpoint.next_offset);
            let covered = (to - from) as u64;
            let range = format!(
                "audit offsets {}..{}",
                previous.map_or(first, |(_, p)| p.next_offset),
                checkpoint.next_offset
            );
            if covered != checkpoint.size {
                self.findings.push(format!(
                    "checkpoint offset {at}: signs {} events up to audit offset {}, the trail holds {covered}: events {} in {range}",
                    checkpoint.size,
                    checkpoint.next_offset,
                    if covered < checkpoint.size { "removed" } else { "inserted" }
                ));
            } else if root(&hashes[from..to]) != checkpoint.root {
                self.findings.push(format!(
                    "checkpoint offset {at}: the events do not make its signed tree head: events changed, inserted or reordered in {range}"
                ));
            } else {
                intact = Some(checkpoint.clone());
            }
            if let Some((previous_at, p)) = previous {
                let tree = &hashes[from..];
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
                    self.findings.push(format!(
                        "checkpoint offset {at} is not consistent with checkpoint offset {previous_at} (trees of {} and {} events)",
                        p.size, checkpoint.size
                    ));
                }
            }
            previous = Some(entry);
        }
        let since = self
            .leaves
            .iter()
            .filter(|(o, _)| {
                intact
                    .as_ref()
                    .is_none_or(|c: &Checkpoint| *o >= c.next_offset)
            })
            .count();
        TrailReport {
            events: self.events,
            sealed: self.leaves.len(),
            checkpoints: signed.len(),
            intact,
            since,
            findings: self.findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::merkle::Frontier;
    use crate::evidence::note::SigningKey;

    /// (offset, id, value, seal)
    type Event = (i64, String, Vec<u8>, Option<Vec<u8>>);

    struct Log {
        audit: AuditKey,
        notary: SigningKey,
        events: Vec<Event>,
        checkpoints: Vec<(i64, Vec<u8>)>,
    }

    impl Log {
        fn new() -> Log {
            Log {
                audit: AuditKey::from_text(AuditKey::generate_text().as_bytes()).unwrap(),
                notary: SigningKey::from_pem("n", SigningKey::generate_pem().as_bytes()).unwrap(),
                events: Vec::new(),
                checkpoints: Vec::new(),
            }
        }

        fn append(&mut self, n: usize) {
            for _ in 0..n {
                let offset = self.events.len() as i64;
                let (id, value) = (
                    format!("e{offset}"),
                    format!("{{\"n\":{offset}}}").into_bytes(),
                );
                let seal = self.audit.seal(&id, &value).into_bytes();
                self.events.push((offset, id, value, Some(seal)));
            }
        }

        /// A checkpoint of every event so far, as the notary makes it.
        fn checkpoint(&mut self) {
            let mut frontier = Frontier::default();
            for (_, id, value, _) in &self.events {
                frontier.push(event_leaf(id, value));
            }
            let checkpoint = Checkpoint {
                origin: "mekong/_mekong.audit/0".into(),
                size: frontier.size(),
                root: frontier.root(),
                first_offset: 0,
                next_offset: self.events.len() as i64,
            };
            let record = CheckpointRecord::new(0, checkpoint.sign(&self.notary), &frontier);
            let at = self.checkpoints.len() as i64;
            self.checkpoints
                .push((at, serde_json::to_vec(&record).unwrap()));
        }

        fn check(&self) -> TrailReport {
            let keys = [self.audit.clone()];
            let mut trail = Trail::new(&keys, 0);
            for (offset, id, value, seal) in &self.events {
                trail.event(*offset, id, value, seal.as_deref());
            }
            trail.finish(&self.checkpoints, &[self.notary.public()], None)
        }
    }

    fn log() -> Log {
        let mut log = Log::new();
        log.append(5);
        log.checkpoint();
        log.append(3);
        log.checkpoint();
        log
    }

    #[test]
    fn an_untouched_trail_has_no_finding() {
        let report = log().check();
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!((report.sealed, report.checkpoints, report.since), (8, 2, 0));
        assert_eq!(report.intact.unwrap().size, 8);
    }

    #[test]
    fn changed_removed_inserted_reordered_and_forged_events_are_named() {
        let finding = |log: Log| log.check().findings.join("\n");

        let mut changed = log();
        changed.events[2].2 = b"{\"n\":99}".to_vec();
        assert!(finding(changed).contains("audit offset 2: changed or forged"));

        let mut removed = log();
        removed.events.remove(6);
        assert!(finding(removed).contains("events removed in audit offsets 5..8"));

        // Re-sealed by someone holding the audit key and inserted before a checkpoint.
        let mut inserted = log();
        let (id, value) = ("x".to_string(), b"{}".to_vec());
        let seal = inserted.audit.seal(&id, &value).into_bytes();
        inserted.events.insert(1, (0, id, value, Some(seal)));
        for (i, e) in inserted.events.iter_mut().enumerate() {
            e.0 = i as i64;
        }
        let text = finding(inserted);
        assert!(
            text.contains("checkpoint offset 0: the events do not make its signed tree head"),
            "{text}"
        );

        let mut reordered = log();
        reordered.events.swap(1, 2);
        for (i, e) in reordered.events.iter_mut().enumerate() {
            e.0 = i as i64;
        }
        let text = finding(reordered);
        assert!(
            text.contains("events changed, inserted or reordered in audit offsets 0..5"),
            "{text}"
        );

        let mut forged = log();
        forged.events.push((8, "f".into(), b"{}".to_vec(), None));
        assert!(finding(forged).contains("audit offset 8: forged: not sealed by the hub"));

        let mut deleted = log();
        deleted.events.drain(..3);
        assert!(finding(deleted).contains("events from audit offset 0 to 2 were removed"));
    }

    #[test]
    fn checkpoints_signed_by_others_or_out_of_line_are_named() {
        let mut log = log();
        let stranger = SigningKey::from_pem("n", SigningKey::generate_pem().as_bytes()).unwrap();
        let real = std::mem::replace(&mut log.notary, stranger);
        log.checkpoint();
        log.notary = real;
        assert!(
            log.check()
                .findings
                .join("\n")
                .contains("checkpoint offset 2: signed by a key not trusted (n+")
        );

        // A second tree of 5 events, validly signed: not an extension of the one before.
        let mut log = self::log();
        let mut other = Log::new();
        other.notary = std::mem::replace(
            &mut log.notary,
            SigningKey::from_pem("n", SigningKey::generate_pem().as_bytes()).unwrap(),
        );
        other.audit = log.audit.clone();
        other.append(5);
        other.events[0].1 = "other".into();
        other.checkpoint();
        log.notary = other.notary;
        log.checkpoints.push((2, other.checkpoints[0].1.clone()));
        let text = log.check().findings.join("\n");
        assert!(
            text.contains("checkpoint offsets 0 and 2: two different trees of 5 events"),
            "{text}"
        );
        assert!(
            text.contains("checkpoint offset 2 is not consistent with checkpoint offset 1"),
            "{text}"
        );
    }
}
