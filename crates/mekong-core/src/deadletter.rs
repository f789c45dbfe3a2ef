//! Dead letters on the wire: the topics (`_mekong.dlq.<adapter>`, `_mekong.replay.<adapter>`), the
//! `mekong_dlq_*` headers a dead letter carries besides the original record's, written by the
//! delivery engine and read by operators' tools with this one code, and the header that marks a
//! replayed record.

use crate::cloudevents::ID;

/// Headers a dead letter carries besides the original record's.
pub const HEADER_PREFIX: &str = "mekong_dlq_";
/// On a replayed record: the offset of the dead letter it replays.
pub const REPLAY_OF: &str = "mekong_replay_of";

const ADAPTER: &str = "mekong_dlq_adapter";
const ATTEMPTS: &str = "mekong_dlq_attempts";
const STATUS: &str = "mekong_dlq_status";
const ERROR: &str = "mekong_dlq_error";
const SOURCE: &str = "mekong_dlq_source";
const TIME: &str = "mekong_dlq_time";

/// The name of an adapter's dead-letter topic.
pub fn dead_letter_topic(adapter: &str) -> String {
    format!("_mekong.dlq.{adapter}")
}

/// The topic replayed dead letters are written to; the adapter reads it besides its `from` topics.
pub fn replay_topic(adapter: &str) -> String {
    format!("_mekong.replay.{adapter}")
}

/// Why a record became a dead letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterInfo {
    pub adapter: String,
    /// Attempts made.
    pub attempts: u32,
    /// The target's last HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: String,
    /// Where the adapter read the record: `topic/partition/offset`.
    pub source: String,
    /// When it was dead-lettered (RFC 3339).
    pub time: String,
}

impl DeadLetterInfo {
    /// The headers to add to the original record's.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            (ADAPTER.into(), self.adapter.clone()),
            (ATTEMPTS.into(), self.attempts.to_string()),
            (
                STATUS.into(),
                self.status.map_or_else(String::new, |s| s.to_string()),
            ),
            (ERROR.into(), self.error.clone()),
            (SOURCE.into(), self.source.clone()),
            (TIME.into(), self.time.clone()),
        ]
    }

    /// Reads them back from a dead letter's headers; missing ones are left empty.
    pub fn from_headers<'h>(headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> Self {
        let mut info = DeadLetterInfo::default();
        for (name, value) in headers {
            let text = || String::from_utf8_lossy(value).into_owned();
            match name {
                ADAPTER => info.adapter = text(),
                ATTEMPTS => info.attempts = text().parse().unwrap_or(0),
                STATUS => info.status = text().parse().ok(),
                ERROR => info.error = text(),
                SOURCE => info.source = text(),
                TIME => info.time = text(),
                _ => {}
            }
        }
        info
    }

    /// Whether a header is one of these (left out when the record is replayed, with the replay
    /// marker).
    pub fn is_own_header(name: &str) -> bool {
        name.starts_with(HEADER_PREFIX) || name == REPLAY_OF
    }
}

/// The record id (`ce_id`) among a record's headers.
pub fn record_id<'h>(headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> Option<String> {
    headers
        .into_iter()
        .find(|(name, _)| *name == ID)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_headers_read_back_as_written() {
        let info = DeadLetterInfo {
            adapter: "portal".into(),
            attempts: 3,
            status: Some(422),
            error: "HTTP 422: bad".into(),
            source: "t/1/9".into(),
            time: "2026-12-01T00:00:00.000Z".into(),
        };
        let headers = info.headers();
        assert!(
            headers
                .iter()
                .all(|(k, _)| DeadLetterInfo::is_own_header(k))
        );
        let read =
            DeadLetterInfo::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
        assert_eq!(read, info);
        let unanswered = DeadLetterInfo {
            status: None,
            ..info
        };
        let headers = unanswered.headers();
        assert_eq!(
            DeadLetterInfo::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))
                .status,
            None
        );
        assert!(!DeadLetterInfo::is_own_header("ce_id"));
        assert!(DeadLetterInfo::is_own_header(REPLAY_OF));
    }
}
