//! Deadlines, decided from a dossier's own records: when it is due, whether it is done, and the
//! moments worth telling (due soon, overdue, met, completed late, extended, a due time that cannot
//! be read). Pure: the tracker that reads the stream, keeps the state and writes the events
//! (`mekong-deadlines`) gives each step the record and the time; nothing here reads a clock.
//!
//! The `Deadline` resource compiles to a [`Deadline`] in the catalog; the tracker
//! (`mekong-deadlines`) runs it over the stream.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::condition::Condition;
use crate::redact::JsonPointer;

/// What a `Deadline` resource says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeadlineSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Record types whose records belong to the deadline of their key.
    pub track: Vec<String>,
    /// The topic the tracker reads them from: one a route writes full (unredacted) copies of the
    /// tracked types to, so each record is seen once and whole.
    pub from: String,
    /// JSON pointer to the due time: `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh, or RFC 3339.
    pub due: String,
    /// CEL over `data`: this record finishes the deadline.
    pub done: String,
    /// JSON pointer to who holds the dossier, for reporting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A `deadline.due-soon` event this long before the due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before: Option<String>,
    /// The topic of the deadline events.
    pub to: String,
}

/// A deadline, compiled.
#[derive(Debug)]
pub struct Deadline {
    pub spec: DeadlineSpec,
    due: JsonPointer,
    done: Condition,
    unit: Option<JsonPointer>,
    warn_before: Option<Duration>,
}

impl Deadline {
    /// Compiles a spec; the field and the problem when it cannot be.
    pub fn compile(spec: DeadlineSpec) -> Result<Deadline, (String, String)> {
        if spec.track.is_empty() {
            return Err(("track".into(), "names no record type".into()));
        }
        let pointer = |field: &str, text: &str| {
            JsonPointer::parse(text).map_err(|e| (field.to_owned(), e.to_string()))
        };
        let due = pointer("due", &spec.due)?;
        let unit = spec
            .unit
            .as_deref()
            .map(|u| pointer("unit", u))
            .transpose()?;
        let done = Condition::compile(&spec.done).map_err(|e| ("done".to_owned(), e))?;
        let warn_before = spec
            .warn_before
            .as_deref()
            .map(|w| {
                humantime::parse_duration(w).map_err(|e| ("warnBefore".to_owned(), e.to_string()))
            })
            .transpose()?;
        Ok(Deadline {
            spec,
            due,
            done,
            unit,
            warn_before,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether records of this type belong to the deadline.
    pub fn tracks(&self, record_type: &str) -> bool {
        self.spec.track.iter().any(|t| t == record_type)
    }

    /// A record of a tracked type, arrived at `now_ms`: the state of its key's deadline after it,
    /// and the events it makes. `open` is the state before (none when nothing is open).
    pub fn on_record(&self, open: Option<&Open>, record: &Tracked<'_>, now_ms: i64) -> Step {
        let mut events = Vec::new();
        let unit = self
            .unit
            .as_ref()
            .and_then(|u| u.get(record.data))
            .and_then(text_of)
            .or_else(|| open.and_then(|o| o.unit.clone()));
        let due = match self.due.get(record.data) {
            None => None,
            Some(value) => match text_of(value).as_deref().and_then(parse_due) {
                Some(ms) => Some(ms),
                None => {
                    events.push(self.event(
                        EventKind::Invalid,
                        record.key,
                        open.map_or(0, |o| o.due_ms),
                        unit.clone(),
                        |e| {
                            e.record_id = Some(record.record_id.to_owned());
                            e.problem = Some(format!(
                                "the due time at {} is not yyyyMMddHHmmss (Asia/Ho_Chi_Minh) or RFC 3339",
                                self.spec.due
                            ));
                        },
                    ));
                    None
                }
            },
        };
        // A condition that cannot be evaluated (a field missing) does not finish the deadline.
        let done = self
            .done
            .evaluate(record.data, record.record_type, record.source)
            .unwrap_or(false);
        let mut state = match (open, due) {
            (Some(o), Some(due_ms)) if due_ms != o.due_ms => {
                events.push(self.event(
                    EventKind::Extended,
                    record.key,
                    due_ms,
                    unit.clone(),
                    |e| {
                        e.record_id = Some(record.record_id.to_owned());
                        e.previous_due = Some(rfc3339(o.due_ms));
                    },
                ));
                Open {
                    due_ms,
                    unit: unit.clone(),
                    extended_by: Some(record.record_id.to_owned()),
                    warned: false,
                    overdue: false,
                    ..o.clone()
                }
            }
            (Some(o), _) => Open {
                unit: unit.clone(),
                ..o.clone()
            },
            (None, Some(due_ms)) => Open {
                key: record.key.to_owned(),
                due_ms,
                unit: unit.clone(),
                opened_by: record.record_id.to_owned(),
                extended_by: None,
                warned: false,
                overdue: false,
            },
            // Nothing open, and no due time to open one with.
            (None, None) => {
                return Step { open: None, events };
            }
        };
        if done {
            let kind = if now_ms <= state.due_ms {
                EventKind::Met
            } else {
                EventKind::CompletedLate
            };
            events.push(self.event(kind, record.key, state.due_ms, unit, |e| {
                e.record_id = Some(record.record_id.to_owned());
                e.opened_by = Some(state.opened_by.clone());
                if kind == EventKind::CompletedLate {
                    e.late_by_seconds = Some((now_ms - state.due_ms) / 1000);
                }
            }));
            return Step { open: None, events };
        }
        // Opened (or moved) into the past: overdue at once.
        let timed = self.on_time(&state, now_ms);
        events.extend(timed.events);
        state = timed.open.unwrap_or(state);
        Step {
            open: Some(state),
            events,
        }
    }

    /// Time passed: what an open deadline makes known at `now_ms` (due soon, overdue), each once.
    pub fn on_time(&self, open: &Open, now_ms: i64) -> Step {
        let mut next = open.clone();
        let mut events = Vec::new();
        if !next.warned
            && let Some(warn) = self.warn_before
            && now_ms >= next.due_ms - warn.as_millis() as i64
            && now_ms < next.due_ms
        {
            next.warned = true;
            events.push(self.event(
                EventKind::DueSoon,
                &open.key,
                open.due_ms,
                open.unit.clone(),
                |e| {
                    e.opened_by = Some(open.opened_by.clone());
                },
            ));
        }
        if !next.overdue && now_ms >= next.due_ms {
            next.overdue = true;
            next.warned = true;
            events.push(self.event(
                EventKind::Overdue,
                &open.key,
                open.due_ms,
                open.unit.clone(),
                |e| {
                    e.opened_by = Some(open.opened_by.clone());
                    e.extended_by = open.extended_by.clone();
                },
            ));
        }
        Step {
            open: Some(next),
            events,
        }
    }

    /// When `open` next needs `on_time`: the warning, then the due time; `None` once overdue.
    pub fn next_wake(&self, open: &Open) -> Option<i64> {
        if open.overdue {
            return None;
        }
        match self.warn_before {
            Some(warn) if !open.warned => Some(open.due_ms - warn.as_millis() as i64),
            _ => Some(open.due_ms),
        }
    }

    fn event(
        &self,
        kind: EventKind,
        key: &str,
        due_ms: i64,
        unit: Option<String>,
        fill: impl FnOnce(&mut DeadlineEvent),
    ) -> DeadlineEvent {
        let mut event = DeadlineEvent {
            id: event_id(&self.spec.name, key, due_ms, kind).to_string(),
            kind,
            deadline: self.spec.name.clone(),
            key: key.to_owned(),
            unit,
            due: rfc3339(due_ms),
            previous_due: None,
            record_id: None,
            opened_by: None,
            extended_by: None,
            late_by_seconds: None,
            problem: None,
        };
        fill(&mut event);
        event
    }
}

/// One record, as a deadline reads it.
#[derive(Debug, Clone, Copy)]
pub struct Tracked<'a> {
    pub record_id: &'a str,
    pub record_type: &'a str,
    pub source: &'a str,
    /// The record's key (the record type's key, e.g. MaHoSo): whose deadline it is.
    pub key: &'a str,
    pub data: &'a Value,
}

/// An open deadline: what the tracker keeps per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    pub key: String,
    /// The due time, in milliseconds since the epoch.
    pub due_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub opened_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_by: Option<String>,
    /// `deadline.due-soon` was told.
    pub warned: bool,
    /// `deadline.overdue` was told.
    pub overdue: bool,
}

/// The state after a step, and what it makes known.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The key's deadline after the step; `None` when it is closed (or none was opened).
    pub open: Option<Open>,
    pub events: Vec<DeadlineEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "deadline.due-soon")]
    DueSoon,
    #[serde(rename = "deadline.overdue")]
    Overdue,
    #[serde(rename = "deadline.met")]
    Met,
    #[serde(rename = "deadline.completed-late")]
    CompletedLate,
    #[serde(rename = "deadline.extended")]
    Extended,
    #[serde(rename = "deadline.invalid")]
    Invalid,
}

impl EventKind {
    /// The CloudEvents type of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DueSoon => "deadline.due-soon",
            EventKind::Overdue => "deadline.overdue",
            EventKind::Met => "deadline.met",
            EventKind::CompletedLate => "deadline.completed-late",
            EventKind::Extended => "deadline.extended",
            EventKind::Invalid => "deadline.invalid",
        }
    }
}

/// A deadline event, as its CloudEvent's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadlineEvent {
    /// Deterministic: the same (deadline, key, due time, kind) always has the same id, so a
    /// tracker that tells it again after a crash is recognised. The event's CloudEvents `id`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub deadline: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// RFC 3339, UTC.
    pub due: String,
    /// For `deadline.extended`: the due time before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_due: Option<String>,
    /// The record that made the event (extended, met, completed late, invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_by_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The compacted changelog of a deadline's open state: one record per key (the [`Open`] as JSON,
/// a tombstone once closed), in the partition of the source record that changed it.
pub fn changelog_topic(deadline: &str) -> String {
    format!("_mekong.deadlines.{deadline}")
}

/// The consumer group of a deadline's trackers.
pub fn tracker_group(deadline: &str) -> String {
    format!("mekong.deadlines.{deadline}")
}

/// The transactional id of the tracker of one source partition: whoever takes the partition
/// fences the one that had it.
pub fn tracker_transactional_id(deadline: &str, partition: i32) -> String {
    format!("mekong.deadlines.{deadline}.{partition}")
}

impl DeadlineEvent {
    /// The event's CloudEvents `source`.
    pub fn source(&self) -> String {
        format!("mekong/deadlines/{}", self.deadline)
    }

    /// Its Kafka headers (binary content mode; the data is the event as JSON).
    pub fn headers(&self, time: std::time::SystemTime) -> Vec<(String, String)> {
        crate::cloudevents::event_headers(
            &self.id,
            &self.source(),
            self.kind.as_str(),
            &self.key,
            time,
        )
    }
}

const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6d656b6f_6e67_4465_8164_6c696e650001);

/// The id of the event of `kind` for (deadline, key, due time).
pub fn event_id(deadline: &str, key: &str, due_ms: i64, kind: EventKind) -> Uuid {
    let name = format!("{deadline}\n{key}\n{due_ms}\n{}", kind.as_str());
    Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes())
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A due time in milliseconds since the epoch: `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh (the national
/// portal's format), or RFC 3339 with its zone.
pub fn parse_due(text: &str) -> Option<i64> {
    crate::times::portal_ms(text).or_else(|| crate::times::rfc3339_ms(text))
}

fn rfc3339(ms: i64) -> String {
    crate::times::utc_text(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deadline() -> Deadline {
        Deadline::compile(DeadlineSpec {
            name: "dossier-result-due".into(),
            description: String::new(),
            track: vec!["dossier.sync".into(), "dossier.progress".into()],
            from: "hcmc.dossier.v1".into(),
            due: "/NgayHenTra".into(),
            done: "has(data.NgayKetThucXuLy) || data.TrangThaiHoSo in [4, 5]".into(),
            unit: Some("/DonViXuLy".into()),
            warn_before: Some("24h".into()),
            to: "hcmc.dossier.deadlines.v1".into(),
        })
        .unwrap()
    }

    const HOUR: i64 = 3_600_000;

    fn at(text: &str) -> i64 {
        parse_due(text).unwrap()
    }

    fn record<'a>(id: &'a str, data: &'a Value) -> Tracked<'a> {
        Tracked {
            record_id: id,
            record_type: "dossier.sync",
            source: "q1",
            key: "H29-1",
            data,
        }
    }

    fn kinds(step: &Step) -> Vec<EventKind> {
        step.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn due_times_are_read_in_the_city_and_in_rfc_3339() {
        // 2026-12-02 09:00 in Ho Chi Minh City is 02:00 UTC.
        assert_eq!(at("20261202090000"), at("2026-12-02T02:00:00Z"));
        assert_eq!(at("2026-12-02T09:00:00+07:00"), at("2026-12-02T02:00:00Z"));
        assert_eq!(
            at("2026-12-02T02:00:00.250Z") - at("2026-12-02T02:00:00Z"),
            250
        );
        assert_eq!(at("1970-01-01T00:00:00Z"), 0);
        assert_eq!(
            at("2024-02-29T00:00:00Z") + 86_400_000,
            at("2024-03-01T00:00:00Z")
        );
        for wrong in [
            "20261302090000",
            "20260230090000",
            "2026-12-02",
            "yesterday",
            "2026-12-02T02:00:00",
            "2026-12-02T25:00:00Z",
        ] {
            assert_eq!(parse_due(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn met_before_the_due_time_and_late_after_it() {
        let d = deadline();
        let opened =
            json!({"MaHoSo": "H29-1", "NgayHenTra": "20261210170000", "DonViXuLy": "UBND Q1"});
        let step = d.on_record(None, &record("r1", &opened), at("2026-12-02T02:00:00Z"));
        assert!(step.events.is_empty(), "{:?}", step.events);
        let open = step.open.unwrap();
        assert_eq!(open.unit.as_deref(), Some("UBND Q1"));
        let finished = json!({"MaHoSo": "H29-1", "NgayKetThucXuLy": "20261209100000"});
        let met = d.on_record(
            Some(&open),
            &record("r2", &finished),
            at("2026-12-09T03:00:00Z"),
        );
        assert_eq!(kinds(&met), [EventKind::Met]);
        assert_eq!(met.open, None, "closed");
        assert_eq!(
            met.events[0].unit.as_deref(),
            Some("UBND Q1"),
            "the unit of the open deadline"
        );
        let late = d.on_record(
            Some(&open),
            &record("r2", &finished),
            open.due_ms + 2 * HOUR,
        );
        assert_eq!(kinds(&late), [EventKind::CompletedLate]);
        assert_eq!(late.events[0].late_by_seconds, Some(7200));
        // A status that closes the dossier counts as done too.
        let status = json!({"MaHoSo": "H29-1", "TrangThaiHoSo": 4});
        assert_eq!(
            kinds(&d.on_record(Some(&open), &record("r3", &status), 0)),
            [EventKind::Met]
        );
    }

    #[test]
    fn due_soon_then_overdue_each_once() {
        let d = deadline();
        let data = json!({"NgayHenTra": "2026-12-10T10:00:00Z"});
        let open = d.on_record(None, &record("r1", &data), 0).open.unwrap();
        let due = open.due_ms;
        assert_eq!(d.next_wake(&open), Some(due - 24 * HOUR));
        assert!(d.on_time(&open, due - 25 * HOUR).events.is_empty());
        let warned = d.on_time(&open, due - 23 * HOUR);
        assert_eq!(kinds(&warned), [EventKind::DueSoon]);
        let warned = warned.open.unwrap();
        assert!(d.on_time(&warned, due - HOUR).events.is_empty(), "once");
        assert_eq!(d.next_wake(&warned), Some(due));
        let overdue = d.on_time(&warned, due);
        assert_eq!(kinds(&overdue), [EventKind::Overdue]);
        let overdue = overdue.open.unwrap();
        assert!(d.on_time(&overdue, due + HOUR).events.is_empty(), "once");
        assert_eq!(d.next_wake(&overdue), None);
    }

    #[test]
    fn a_first_record_already_past_its_due_time_is_overdue_at_once() {
        let d = deadline();
        let data = json!({"NgayHenTra": "20261201080000"});
        let step = d.on_record(None, &record("r1", &data), at("2026-12-02T00:00:00Z"));
        assert_eq!(
            kinds(&step),
            [EventKind::Overdue],
            "no due-soon for a past due time"
        );
        assert!(step.open.unwrap().overdue);
    }

    #[test]
    fn an_extension_reschedules_and_says_so() {
        let d = deadline();
        let first = json!({"NgayHenTra": "20261210170000"});
        let open = d.on_record(None, &record("r1", &first), 0).open.unwrap();
        let overdue = d.on_time(&open, open.due_ms + HOUR).open.unwrap();
        let later = json!({"NgayHenTra": "20261220170000"});
        let step = d.on_record(
            Some(&overdue),
            &record("r2", &later),
            open.due_ms + 2 * HOUR,
        );
        assert_eq!(kinds(&step), [EventKind::Extended]);
        assert_eq!(
            step.events[0].previous_due.as_deref(),
            Some("2026-12-10T10:00:00Z")
        );
        let extended = step.open.unwrap();
        assert_eq!(extended.due_ms, at("20261220170000"));
        assert!(
            !extended.overdue && !extended.warned,
            "the new due time is told again"
        );
        assert_eq!(extended.extended_by.as_deref(), Some("r2"));
        // A record without a due time (a progress step) leaves it as it is.
        let progress = json!({"NguoiXuLy": "A"});
        let same = d.on_record(Some(&extended), &record("r3", &progress), 0);
        assert!(same.events.is_empty());
        assert_eq!(same.open.as_ref().map(|o| o.due_ms), Some(extended.due_ms));
    }

    #[test]
    fn a_due_time_that_cannot_be_read_is_told_not_dropped() {
        let d = deadline();
        let data = json!({"NgayHenTra": "10/12/2026"});
        let step = d.on_record(None, &record("r1", &data), 0);
        assert_eq!(kinds(&step), [EventKind::Invalid]);
        assert!(
            step.events[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("/NgayHenTra")
        );
        assert_eq!(step.open, None);
    }

    #[test]
    fn event_ids_are_the_same_for_the_same_moment_and_differ_otherwise() {
        let a = event_id("d", "H1", 1000, EventKind::Overdue);
        assert_eq!(a, event_id("d", "H1", 1000, EventKind::Overdue));
        assert_ne!(a, event_id("d", "H1", 2000, EventKind::Overdue));
        assert_ne!(a, event_id("d", "H1", 1000, EventKind::Met));
        assert_ne!(a, event_id("d", "H2", 1000, EventKind::Overdue));
        let event = deadline().on_time(
            &Open {
                key: "H1".into(),
                due_ms: 1000,
                unit: None,
                opened_by: "r1".into(),
                extended_by: None,
                warned: false,
                overdue: false,
            },
            5000,
        );
        let json = serde_json::to_value(&event.events[0]).unwrap();
        assert_eq!(json["type"], "deadline.overdue");
        assert_eq!(json["openedBy"], "r1");
    }

    #[test]
    fn specs_that_cannot_work_are_refused_by_field() {
        let base = deadline().spec;
        let refuse = |spec: DeadlineSpec| Deadline::compile(spec).unwrap_err().0;
        assert_eq!(
            refuse(DeadlineSpec {
                track: vec![],
                ..base.clone()
            }),
            "track"
        );
        assert_eq!(
            refuse(DeadlineSpec {
                due: "NgayHenTra".into(),
                ..base.clone()
            }),
            "due"
        );
        assert_eq!(
            refuse(DeadlineSpec {
                done: "data.(".into(),
                ..base.clone()
            }),
            "done"
        );
        assert_eq!(
            refuse(DeadlineSpec {
                warn_before: Some("soon".into()),
                ..base
            }),
            "warnBefore"
        );
    }
}
