//! Times as the city's systems write them, read and written in one place: RFC 3339 with `Z` or an
//! offset, and the national portal's `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh (UTC+7 all year, no
//! daylight saving since 1975). Milliseconds since the epoch in between.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Asia/Ho_Chi_Minh's offset from UTC, in seconds.
pub const HO_CHI_MINH_OFFSET_SECS: i64 = 7 * 3600;

/// An RFC 3339 time with its zone (`Z` or `±HH:MM`, fractions of a second allowed), in
/// milliseconds since the epoch. A time without a zone is `None`: it means nothing definite.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let (local, offset) = split_zone(text.trim())?;
    Some(naive_ms(local)? - offset * 1000)
}

/// A date-time without a zone (`2026-11-28T02:00:00`, `2026-11-28 02:00:00`), read as UTC.
pub fn naive_ms(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh, in milliseconds since the epoch.
pub fn portal_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.len() != 14 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    );
    Some(naive_ms(&iso)? - HO_CHI_MINH_OFFSET_SECS * 1000)
}

/// Milliseconds since the epoch as `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh.
pub fn portal_text(ms: i64) -> Option<String> {
    let local = local(ms)?;
    Some(
        humantime::format_rfc3339_seconds(local)
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect(),
    )
}

/// Milliseconds since the epoch as people in the city read it: `2026-12-02 09:00:00 +07`.
pub fn display(ms: i64) -> Option<String> {
    let local = humantime::format_rfc3339_seconds(local(ms)?).to_string();
    Some(format!(
        "{} +07",
        local.trim_end_matches('Z').replace('T', " ")
    ))
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-12-02T02:00:00Z`); before 1970 is 1970.
pub fn utc_text(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The wall-clock instant whose UTC reading is Ho Chi Minh City's local time at `ms`.
fn local(ms: i64) -> Option<SystemTime> {
    let shifted = ms.checked_add(HO_CHI_MINH_OFFSET_SECS * 1000)?;
    Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(shifted).ok()?))
}

/// Splits `...Z` or `...±HH:MM` into the local part and the offset in seconds.
fn split_zone(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((local, 0));
    }
    let at = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..at)?, text.get(at..)?);
    let bytes = offset.as_bytes();
    if local.len() < 19 || !matches!(bytes[0], b'+' | b'-') || bytes[3] != b':' {
        return None;
    }
    let hours: i64 = offset[1..3].parse().ok()?;
    let minutes: i64 = offset[4..6].parse().ok()?;
    let sign = if bytes[0] == b'-' { -1 } else { 1 };
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_reads_the_same_instant() {
        let utc = rfc3339_ms("2026-11-28T01:30:00Z").unwrap();
        assert_eq!(rfc3339_ms("2026-11-28T08:30:00+07:00"), Some(utc));
        assert_eq!(rfc3339_ms("2026-11-27T20:30:00-05:00"), Some(utc));
        assert_eq!(portal_ms("20261128083000"), Some(utc));
        assert_eq!(naive_ms("2026-11-28 01:30:00"), Some(utc));
        assert_eq!(rfc3339_ms("2026-11-28T01:30:00.250Z"), Some(utc + 250));
        assert_eq!(rfc3339_ms("2026-11-28T01:30:00"), None, "no zone");
        assert_eq!(portal_ms("20260230083000"), None, "no 30 February");
        assert_eq!(portal_text(utc).as_deref(), Some("20261128083000"));
        assert_eq!(display(utc).as_deref(), Some("2026-11-28 08:30:00 +07"));
        assert_eq!(utc_text(utc), "2026-11-28T01:30:00Z");
    }
}
