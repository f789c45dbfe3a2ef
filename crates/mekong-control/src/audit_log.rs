//! The audit trail as operators read it: what people did (resource changes, pauses, replays,
//! console sessions), newest first, a window of the trail at a time, filtered. Record and
//! delivery events (the lineage of each record) are left to `trace`.

use std::sync::Arc;
use std::time::Duration;

use mekong_core::{AUDIT_TOPIC, AuditEvent};
use mekong_kafka::{Backbone, offsets, read_page};

use crate::ControlError;

const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Events read per window, and at most.
pub const DEFAULT_WINDOW: usize = 500;
pub const MAX_WINDOW: usize = 5000;

/// Which events to show; every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The client that acted (or signed in).
    pub actor: Option<String>,
    /// `resource`, `replay` or `session`.
    pub kind: Option<String>,
    /// Part of the `Kind/name` of the resource changed (or the adapter of a replay).
    pub resource: Option<String>,
    /// RFC 3339 bounds, inclusive.
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One event and where it is in the trail.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub offset: i64,
    pub event: AuditEvent,
}

/// A window of the trail: its matching events newest first, and where the older window ends.
#[derive(Debug, Clone, Default)]
pub struct AuditWindow {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to read the window before this one; `None` at the trail's start.
    pub older: Option<i64>,
}

/// The `window` events before offset `before` (default: the end of the trail), filtered.
pub async fn audit_window(
    backbone: &Arc<Backbone>,
    before: Option<i64>,
    window: usize,
    filter: &AuditFilter,
) -> Result<AuditWindow, ControlError> {
    read_window(backbone, before, window, |event| matches(event, filter)).await
}

/// The deliveries of `adapter` (delivered, retried, dead-lettered, replayed) among the trail's
/// last `window` events, newest first: its recent outcomes and errors.
pub async fn deliveries(
    backbone: &Arc<Backbone>,
    adapter: &str,
    window: usize,
) -> Result<Vec<AuditEntry>, ControlError> {
    let wanted = |event: &AuditEvent| match event {
        AuditEvent::Delivered(e)
        | AuditEvent::Retried(e)
        | AuditEvent::DeadLettered(e)
        | AuditEvent::Replayed(e) => e.adapter == adapter,
        _ => false,
    };
    Ok(read_window(backbone, None, window, wanted).await?.entries)
}

async fn read_window(
    backbone: &Arc<Backbone>,
    before: Option<i64>,
    window: usize,
    wanted: impl Fn(&AuditEvent) -> bool,
) -> Result<AuditWindow, ControlError> {
    let window = match window {
        0 => DEFAULT_WINDOW,
        n => n.min(MAX_WINDOW),
    };
    let backbone = Arc::clone(backbone);
    let page = tokio::task::spawn_blocking(move || {
        let Some((low, high)) = offsets(&backbone, AUDIT_TOPIC, READ_TIMEOUT)? else {
            return Ok((0, None));
        };
        let end = before.map_or(high, |b| b.clamp(low, high));
        let start = end.saturating_sub(window as i64).max(low);
        let page = read_page(
            &backbone,
            AUDIT_TOPIC,
            start,
            (end - start) as usize,
            READ_TIMEOUT,
        )?;
        Ok::<_, mekong_kafka::KafkaError>((start.max(low), Some((low, end, page))))
    })
    .await
    .map_err(|e| ControlError::internal("reading the audit trail stopped", e))?
    .map_err(|e| ControlError::unavailable("cannot read the audit trail from Kafka", e))?;
    let (start, Some((low, end, page))) = page else {
        return Ok(AuditWindow::default());
    };
    let mut entries: Vec<AuditEntry> = page
        .letters
        .into_iter()
        .filter(|record| record.offset < end)
        .filter_map(|record| {
            let event = AuditEvent::from_json(&record.payload).ok()?;
            Some(AuditEntry {
                offset: record.offset,
                event,
            })
        })
        .filter(|entry| wanted(&entry.event))
        .collect();
    entries.reverse();
    Ok(AuditWindow {
        entries,
        older: (start > low).then_some(start),
    })
}

/// Whether an event is one people made that `filter` keeps.
pub fn matches(event: &AuditEvent, filter: &AuditFilter) -> bool {
    let (kind, actor, resource) = match event {
        AuditEvent::ResourceChanged(e) | AuditEvent::ResourceRejected(e) => (
            "resource",
            e.actor.clone(),
            format!("{}/{}", e.kind, e.name),
        ),
        AuditEvent::Replayed(e) => (
            "replay",
            e.actor.clone().unwrap_or_default(),
            format!("Adapter/{}", e.adapter),
        ),
        AuditEvent::ConsoleSession(e) => ("session", e.client.clone(), String::new()),
        _ => return false,
    };
    let time = event.time();
    filter.kind.as_deref().is_none_or(|k| k == kind)
        && filter.actor.as_deref().is_none_or(|a| a == actor)
        && filter
            .resource
            .as_deref()
            .is_none_or(|r| resource.contains(r))
        && filter.since.as_deref().is_none_or(|s| time >= s)
        && filter.until.as_deref().is_none_or(|u| time <= u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mekong_core::{ResourceEvent, SessionEvent};

    fn change(actor: &str, name: &str, time: &str) -> AuditEvent {
        AuditEvent::ResourceChanged(ResourceEvent {
            time: time.into(),
            actor: actor.into(),
            authenticated: None,
            action: "apply".into(),
            outcome: "updated".into(),
            kind: "Route".into(),
            name: name.into(),
            old_version: Some(1),
            new_version: Some(2),
            old_sha256: None,
            new_sha256: None,
            problems: Vec::new(),
        })
    }

    #[test]
    fn filters_pick_by_actor_kind_resource_and_time() {
        let event = change("ops", "dossier-to-city", "2026-12-02T10:00:00Z");
        assert!(matches(&event, &AuditFilter::default()));
        let f = |actor: Option<&str>,
                 kind: Option<&str>,
                 resource: Option<&str>,
                 since: Option<&str>| AuditFilter {
            actor: actor.map(str::to_owned),
            kind: kind.map(str::to_owned),
            resource: resource.map(str::to_owned),
            since: since.map(str::to_owned),
            until: None,
        };
        assert!(matches(
            &event,
            &f(Some("ops"), Some("resource"), Some("Route/dossier"), None)
        ));
        assert!(!matches(&event, &f(Some("q1"), None, None, None)));
        assert!(!matches(&event, &f(None, Some("session"), None, None)));
        assert!(!matches(&event, &f(None, None, Some("Client/"), None)));
        assert!(!matches(
            &event,
            &f(None, None, None, Some("2026-12-03T00:00:00Z"))
        ));
        let session = AuditEvent::ConsoleSession(SessionEvent {
            time: "2026-12-02T10:00:00Z".into(),
            client: "ops".into(),
            outcome: "signed_in".into(),
            role: Some("admin".into()),
            address: "10.0.0.1".into(),
            reason: None,
            subject: None,
            authenticated: None,
        });
        assert!(matches(
            &session,
            &f(Some("ops"), Some("session"), None, None)
        ));
    }
}
