//! How records are judged: the rules of `Catalog::prepare`, one behaviour per test.

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::catalog::Catalog;
use crate::catalog::tests::city;
use crate::cloudevents::CloudEvent;
use crate::rejection::RejectionKind;

/// A submission of `payload` (kept for the rest of the test run: tests are short-lived).
fn submit<'a>(
    record_type: &'a str,
    payload: &[u8],
    attributes: &'a HashMap<String, String>,
) -> Submission<'a> {
    let payload: &'static Bytes = Box::leak(Box::new(Bytes::copy_from_slice(payload)));
    Submission {
        record_type,
        payload,
        key: None,
        attributes,
        traceparent: None,
        schema_version: 0,
        record_id: Uuid::from_u128(7),
        time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123),
        progress: None,
    }
}

fn header<'c>(copy: &'c KafkaRecord, name: &str) -> Option<&'c str> {
    copy.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const CITIZEN: &[u8] =
    br#"{"MaHoSo":"H29-0001", "LoaiDoiTuong":1, "SoDienThoai":"0901234567", "Email":"a@b.vn", "Big":12345678901234567890, "F":1.0}"#;

#[test]
fn a_valid_record_is_routed_keyed_and_redacted_per_copy() {
    let c = city();
    let none = HashMap::new();
    let p = c
        .prepare(
            c.client("q1").unwrap(),
            submit("dossier.sync", CITIZEN, &none),
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(p.unevaluable, vec![]);
    assert_eq!(p.copies.len(), 2);
    let (city_copy, national) = (&p.copies[0], &p.copies[1]);
    assert_eq!(
        (city_copy.topic.as_str(), national.topic.as_str()),
        ("city.records", "dvcqg.dossier")
    );
    assert_eq!(city_copy.key, "H29-0001");
    // Unredacted: the bytes as received. Redacted: exactly those fields gone, numbers untouched.
    assert_eq!(&*city_copy.value, CITIZEN);
    assert_eq!(
        std::str::from_utf8(&national.value).unwrap(),
        r#"{"MaHoSo":"H29-0001","LoaiDoiTuong":1,"Big":12345678901234567890,"F":1.0}"#
    );
    assert_eq!(
        header(national, "ce_id"),
        Some("00000000-0000-0000-0000-000000000007")
    );
    assert_eq!(header(national, "ce_source"), Some("q1"));
    assert_eq!(header(national, "ce_type"), Some("dossier.sync"));
    assert_eq!(header(national, "ce_specversion"), Some("1.0"));
    assert_eq!(
        header(national, "ce_time"),
        Some("2026-11-18T11:06:40.123Z")
    );
    assert_eq!(header(national, "content-type"), Some("application/json"));
    assert_eq!(
        header(national, "ce_dataschema"),
        Some("urn:mekong:schema:dossier.sync:1")
    );
    assert_eq!(header(national, "mekong_route"), Some("national"));
}

#[test]
fn a_condition_that_cannot_be_evaluated_does_not_match_and_is_reported() {
    let c = city();
    let none = HashMap::new();
    // LoaiDoiTuong 2 (a business): only the city route.
    let business = br#"{"MaHoSo":"H29-2","LoaiDoiTuong":2}"#;
    let p = c
        .prepare(
            c.client("q1").unwrap(),
            submit("dossier.sync", business, &none),
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(
        p.copies
            .iter()
            .map(|c| c.topic.as_str())
            .collect::<Vec<_>>(),
        ["city.records"]
    );
    assert_eq!(p.unevaluable, vec![]);

    // The condition's field is missing: evaluation fails, the route is skipped, and it is reported.
    let mut c2 = city();
    c2.record_types.get_mut("dossier.sync").unwrap().schemas =
        vec![crate::schema::Schema::compile(&serde_json::json!({})).unwrap()];
    let odd = br#"{"MaHoSo":"H29-3"}"#;
    let p = c2
        .prepare(
            c2.client("q1").unwrap(),
            submit("dossier.sync", odd, &none),
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(p.copies.len(), 1);
    assert_eq!(p.unevaluable.len(), 1);
    assert_eq!(p.unevaluable[0].route, "national");
}

#[test]
fn rejections_say_what_is_wrong() {
    let c = city();
    let q1 = c.client("q1").unwrap();
    let none = HashMap::new();
    let kind = |rt: &str, payload: &[u8], limits: Limits| {
        c.prepare(q1, submit(rt, payload, &none), &limits)
            .unwrap_err()
    };

    assert_eq!(
        kind("dossier.unknown", b"{}", Limits::default()).kind,
        RejectionKind::NotFound
    );
    assert_eq!(
        kind("payment.completed", b"{}", Limits::default()).kind,
        RejectionKind::PermissionDenied
    );
    let big = kind(
        "dossier.sync",
        CITIZEN,
        Limits {
            max_record_bytes: 10,
        },
    );
    assert_eq!(big.kind, RejectionKind::ResourceExhausted);
    let not_json = kind("dossier.sync", b"{\"MaHoSo\": ", Limits::default());
    assert_eq!(not_json.kind, RejectionKind::InvalidArgument);
    assert_eq!(not_json.violations[0].field, "");

    let bad = kind(
        "dossier.sync",
        br#"{"LoaiDoiTuong":"x","Email":"nope"}"#,
        Limits::default(),
    );
    assert_eq!(bad.kind, RejectionKind::SchemaViolation);
    let mut fields: Vec<_> = bad.violations.iter().map(|v| v.field.as_str()).collect();
    fields.sort();
    assert_eq!(fields, ["/Email", "/LoaiDoiTuong", "/MaHoSo"]);
}

#[test]
fn a_record_no_route_takes_is_refused_not_dropped() {
    let (docs, _) = crate::resource::parse_documents(
        "x",
        &crate::catalog::tests::CITY.replace(
            "types: [\"dossier.*\", \"payment.*\"]",
            "types: [\"payment.*\"]",
        ),
    );
    let c = Catalog::build(docs).unwrap();
    let none = HashMap::new();
    let mut s = submit("dossier.sync", br#"{"MaHoSo":"A","LoaiDoiTuong":2}"#, &none);
    s.key = Some("explicit");
    let r = c
        .prepare(c.client("q1").unwrap(), s, &Limits::default())
        .unwrap_err();
    assert_eq!(r.kind, RejectionKind::FailedPrecondition);
    assert!(r.message.contains("no route matches"), "{}", r.message);
}

#[test]
fn explicit_keys_attributes_and_traceparent() {
    let c = city();
    let attrs = HashMap::from([("district".to_string(), "q1".to_string())]);
    let mut s = submit("dossier.sync", CITIZEN, &attrs);
    s.key = Some("my-key");
    s.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let p = c
        .prepare(c.client("q1").unwrap(), s, &Limits::default())
        .unwrap();
    assert_eq!(p.copies[0].key, "my-key");
    assert_eq!(header(&p.copies[0], "ce_district"), Some("q1"));
    assert_eq!(header(&p.copies[0], "traceparent"), s.traceparent);

    for bad in [
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    ] {
        s.traceparent = Some(bad);
        let p = c
            .prepare(c.client("q1").unwrap(), s, &Limits::default())
            .unwrap();
        assert_eq!(
            header(&p.copies[0], "traceparent"),
            None,
            "{bad} is not passed on"
        );
    }

    let bad = HashMap::from([
        ("id".to_string(), "x".to_string()),
        ("Bad-Name".to_string(), "y".to_string()),
    ]);
    let r = c
        .prepare(
            c.client("q1").unwrap(),
            submit("dossier.sync", CITIZEN, &bad),
            &Limits::default(),
        )
        .unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArgument);
    assert_eq!(r.violations.len(), 2);
}

#[test]
fn headers_read_back_into_the_same_cloud_event() {
    let c = city();
    let attrs = HashMap::from([("district".to_string(), "q1".to_string())]);
    let p = c
        .prepare(
            c.client("q1").unwrap(),
            submit("dossier.sync", CITIZEN, &attrs),
            &Limits::default(),
        )
        .unwrap();
    let copy = &p.copies[0];
    let event =
        CloudEvent::from_headers(copy.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
    assert_eq!(event.id, "00000000-0000-0000-0000-000000000007");
    assert_eq!(
        (event.record_type.as_str(), event.source.as_str()),
        ("dossier.sync", "q1")
    );
    assert_eq!(event.time, "2026-11-18T11:06:40.123Z");
    assert_eq!(
        event.attributes.get("district").map(String::as_str),
        Some("q1")
    );
    assert_eq!(
        event.attributes.get("datacontenttype").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        event.attributes.get("specversion").map(String::as_str),
        Some("1.0")
    );
    assert!(
        !event.attributes.contains_key("mekong_route"),
        "Mekong's own headers are not attributes"
    );
}

#[test]
fn a_missing_key_field_is_a_violation_at_its_pointer() {
    let mut c = city();
    c.record_types.get_mut("dossier.sync").unwrap().schemas =
        vec![crate::schema::Schema::compile(&serde_json::json!({})).unwrap()];
    let none = HashMap::new();
    let r = c
        .prepare(
            c.client("q1").unwrap(),
            submit("dossier.sync", br#"{"LoaiDoiTuong":2}"#, &none),
            &Limits::default(),
        )
        .unwrap_err();
    assert_eq!(r.violations[0].field, "/MaHoSo");
}

#[test]
fn idempotent_record_ids_are_stable_and_per_client() {
    assert_eq!(record_id_for("q1", "k-1"), record_id_for("q1", "k-1"));
    assert_ne!(record_id_for("q1", "k-1"), record_id_for("q2", "k-1"));
    assert_ne!(record_id_for("q1", "k-1"), record_id_for("q1k", "-1"));
}

fn q1_prepare(
    c: &Catalog,
    record_type: &str,
    payload: &[u8],
    attributes: &HashMap<String, String>,
) -> Result<Prepared, crate::Rejection> {
    c.prepare(
        c.client("q1").unwrap(),
        submit(record_type, payload, attributes),
        &Limits::default(),
    )
}

#[test]
fn a_publisher_cannot_tell_unknown_types_from_forbidden_ones() {
    let c = city();
    let none = HashMap::new();
    // q1 may publish dossier.*: neither payment.completed (which exists) nor tax.filed (which
    // does not) is its business, and both answers are the same.
    let existing = q1_prepare(&c, "payment.completed", b"{}", &none).unwrap_err();
    let missing = q1_prepare(&c, "tax.filed", b"{}", &none).unwrap_err();
    assert_eq!(existing.kind, RejectionKind::PermissionDenied);
    assert_eq!(missing.kind, RejectionKind::PermissionDenied);
    assert_eq!(
        existing.message.replace("payment.completed", "T"),
        missing.message.replace("tax.filed", "T")
    );
    // Within its own patterns, an unknown type is NOT_FOUND.
    let own = q1_prepare(&c, "dossier.unknown", b"{}", &none).unwrap_err();
    assert_eq!(own.kind, RejectionKind::NotFound);
}

#[test]
fn a_repeated_member_is_refused_so_what_is_validated_is_what_is_written() {
    let c = city();
    let none = HashMap::new();
    let twice = br#"{"MaHoSo":"H1","LoaiDoiTuong":"x","LoaiDoiTuong":1}"#;
    let r = q1_prepare(&c, "dossier.sync", twice, &none).unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArgument);
    assert_eq!(r.violations[0].field, "/LoaiDoiTuong");
}

#[test]
fn numbers_beyond_a_double_are_refused() {
    let c = city();
    let none = HashMap::new();
    let r = q1_prepare(
        &c,
        "dossier.sync",
        br#"{"MaHoSo":"H1","LoaiDoiTuong":1e400}"#,
        &none,
    )
    .unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArgument);
    assert_eq!(r.violations[0].field, "/LoaiDoiTuong");
}

#[test]
fn attribute_values_are_short_printable_text() {
    let c = city();
    for (value, ok) in [
        ("Quận 1".to_string(), true),
        ("x".repeat(MAX_ATTRIBUTE_VALUE_BYTES), true),
        ("x".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 1), false),
        ("a\nb".to_string(), false),
        ("a\rb".to_string(), false),
        ("a\u{7f}".to_string(), false),
        ("a\u{85}".to_string(), false),
    ] {
        let attrs = HashMap::from([("district".to_string(), value.clone())]);
        let result = q1_prepare(&c, "dossier.sync", CITIZEN, &attrs);
        assert_eq!(result.is_ok(), ok, "{value:?}");
        if let Err(r) = result {
            assert_eq!(r.violations[0].field, "attributes.district");
        }
    }
}

#[test]
fn a_refusal_keeps_the_key_when_it_was_readable_and_not_oversized() {
    let c = city();
    let none = HashMap::new();
    let invalid = br#"{"MaHoSo":"H29-9","LoaiDoiTuong":"one"}"#;
    let r = q1_prepare(&c, "dossier.sync", invalid, &none).unwrap_err();
    assert_eq!(r.key.as_deref(), Some("H29-9"));

    let huge = format!(
        r#"{{"MaHoSo":"{}","LoaiDoiTuong":"one"}}"#,
        "K".repeat(MAX_KEY_BYTES + 1)
    );
    let r = q1_prepare(&c, "dossier.sync", huge.as_bytes(), &none).unwrap_err();
    assert_eq!(r.key, None, "an oversized key is not kept");
    let r = q1_prepare(&c, "dossier.sync", b"not json", &none).unwrap_err();
    assert_eq!(r.key, None);
}

#[test]
fn a_refusal_describes_at_most_ten_violations_and_says_how_many() {
    let (docs, errors) = crate::resource::parse_documents(
        "x",
        &crate::catalog::tests::CITY.replace(
            "    Email: {type: string, format: email}",
            "    Email: {type: string, format: email}\n    L: {type: array, items: {type: string}}",
        ),
    );
    assert!(errors.is_empty());
    let c = Catalog::build(docs).unwrap();
    let none = HashMap::new();
    let payload = format!(
        r#"{{"MaHoSo":"H1","LoaiDoiTuong":1,"L":{:?}}}"#,
        (0..500).collect::<Vec<_>>()
    );
    let r = q1_prepare(&c, "dossier.sync", payload.as_bytes(), &none).unwrap_err();
    assert_eq!(r.violations.len(), 10);
    assert!(
        r.message
            .contains("500 violations; the first 10 are listed"),
        "{}",
        r.message
    );
}

#[test]
fn a_long_record_type_name_is_shortened_in_messages() {
    let c = city();
    let none = HashMap::new();
    let name = format!("dossier.{}", "x".repeat(100_000));
    let r = q1_prepare(&c, &name, b"{}", &none).unwrap_err();
    assert!(r.message.len() < 300, "{}", r.message.len());
}

#[test]
fn progress_names_the_rule_at_work() {
    let c = city();
    let none = HashMap::new();
    let progress = Progress::default();
    assert_eq!(progress.stage(), Stage::Starting);
    let mut s = submit("dossier.sync", CITIZEN, &none);
    s.progress = Some(&progress);
    c.prepare(c.client("q1").unwrap(), s, &Limits::default())
        .unwrap();
    assert_eq!(progress.stage(), Stage::Copies);
    assert_eq!(
        Stage::Condition(1).describe(&c, "dossier.sync"),
        "the condition (`match.when`) of route `national`"
    );
    assert_eq!(
        Stage::Schema.describe(&c, "dossier.sync"),
        "the schema of record type `dossier.sync`"
    );
}

#[test]
fn a_key_is_printable_text() {
    let c = city();
    let none = HashMap::new();
    for (payload, explicit) in [
        (&br#"{"MaHoSo":"H1\u001b[31m","LoaiDoiTuong":1}"#[..], None),
        (CITIZEN, Some("a\nb")),
    ] {
        let mut s = submit("dossier.sync", payload, &none);
        s.key = explicit;
        let r = c
            .prepare(c.client("q1").unwrap(), s, &Limits::default())
            .unwrap_err();
        assert_eq!(r.kind, RejectionKind::InvalidArgument, "{r:?}");
        assert!(r.message.contains("printable"), "{r:?}");
        assert_eq!(r.key, None, "not kept for the audit trail either");
    }
}

#[test]
fn keys_and_attributes_are_taken_up_to_their_limits_and_refused_beyond() {
    let c = city();
    let none = HashMap::new();
    let with_key = |key: &str| format!(r#"{{"MaHoSo":"{key}","LoaiDoiTuong":1}}"#);
    let at_limit = "K".repeat(MAX_KEY_BYTES);
    let prepared = q1_prepare(&c, "dossier.sync", with_key(&at_limit).as_bytes(), &none)
        .expect("a key of exactly the limit");
    assert_eq!(prepared.key, at_limit);
    let beyond = "K".repeat(MAX_KEY_BYTES + 1);
    let r = q1_prepare(&c, "dossier.sync", with_key(&beyond).as_bytes(), &none).unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArgument);
    assert_eq!(r.violations[0].field, "/MaHoSo");
    assert!(
        r.violations[0]
            .description
            .contains(&MAX_KEY_BYTES.to_string())
    );

    let attributes = |n: usize| -> HashMap<String, String> {
        (0..n).map(|i| (format!("a{i}"), "v".to_string())).collect()
    };
    q1_prepare(&c, "dossier.sync", CITIZEN, &attributes(MAX_ATTRIBUTES))
        .expect("exactly the most attributes");
    let r = q1_prepare(&c, "dossier.sync", CITIZEN, &attributes(MAX_ATTRIBUTES + 1)).unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArgument);
    assert!(
        r.message.contains(&MAX_ATTRIBUTES.to_string()),
        "{}",
        r.message
    );
}
