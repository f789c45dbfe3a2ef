use super::*;
use crate::resource::parse_documents;

pub(crate) const CITY: &str = r#"
kind: RecordType
name: dossier.sync
key: /MaHoSo
schema:
  type: object
  required: [MaHoSo, LoaiDoiTuong]
  properties:
    MaHoSo: {type: string}
    LoaiDoiTuong: {type: integer}
    SoDienThoai: {type: string}
    Email: {type: string, format: email}
---
kind: RecordType
name: payment.completed
schema: {type: object}
---
kind: Route
name: city
match: {types: ["dossier.*", "payment.*"]}
to: [{topic: city.records}]
---
kind: Route
name: national
match: {types: [dossier.sync], sources: [q1], when: "data.LoaiDoiTuong == 1"}
to: [{topic: dvcqg.dossier, redact: [/SoDienThoai, /Email]}]
---
kind: Client
name: q1
roles: [publisher]
apiKeys: [{sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae}]
publish: ["dossier.*"]
---
kind: Client
name: reader
roles: [subscriber]
apiKeys: [{sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9}]
subscribe: [city.records]
"#;

pub(crate) fn city() -> Catalog {
    let (docs, errors) = parse_documents("city.yaml", CITY);
    assert_eq!(errors, vec![]);
    Catalog::build(docs).unwrap()
}

fn problems(extra: &str) -> Vec<String> {
    let (docs, errors) = parse_documents("x.yaml", &format!("{CITY}\n---\n{extra}"));
    assert_eq!(errors, vec![]);
    Catalog::build(docs)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn builds_the_city_catalog() {
    let c = city();
    assert_eq!(c.counts(), (2, 2, 2));
    assert_eq!(
        c.destination_topics().into_iter().collect::<Vec<_>>(),
        ["city.records", "dvcqg.dossier"]
    );
}

#[test]
fn authenticates_by_key_and_checks_publish_rights() {
    let c = city();
    let q1 = c.authenticate("foo").expect("foo is q1's key");
    assert_eq!(q1.name(), "q1");
    assert!(q1.may_publish("dossier.sync"));
    assert!(!q1.may_publish("payment.completed"));
    let reader = c.authenticate("bar").unwrap();
    assert!(
        !reader.may_publish("dossier.sync"),
        "a subscriber may not publish"
    );
    assert!(c.authenticate("baz").is_none());
}

#[test]
fn subscribers_read_only_their_topics_and_internal_topics_are_for_admins() {
    let c = city();
    let reader = c.client("reader").unwrap();
    assert!(reader.may_subscribe("city.records"));
    assert!(!reader.may_subscribe("dvcqg.dossier"));
    assert!(!reader.may_subscribe("_mekong.audit"));
    assert!(
        !c.client("q1").unwrap().may_subscribe("city.records"),
        "a publisher is no subscriber"
    );
}

#[test]
fn refuses_duplicates_bad_names_and_dangling_references() {
    let p = problems("kind: Route\nname: city\nmatch: {types: [x]}\nto: [{topic: t}]");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("duplicate name; first defined in x.yaml, document 3"),
        "{p:?}"
    );

    let p =
        problems("kind: Route\nname: Bad_Name\nmatch: {types: [dossier.sync]}\nto: [{topic: t}]");
    assert!(p[0].contains("field `name`"), "{p:?}");

    let p = problems(
        "kind: Route\nname: r2\nmatch: {types: [dosier.sync], sources: [nobody]}\nto: [{topic: t}]",
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("field `match.types[0]`: `dosier.sync` matches no known record type"),
        "{p:?}"
    );
    assert!(
        p[1].contains("field `match.sources[0]`: no client is named `nobody`"),
        "{p:?}"
    );
}

#[test]
fn refuses_bad_topics_pointers_cel_and_schemas() {
    let p = problems(
        "kind: Route\nname: r2\nmatch: {types: [dossier.sync], when: 'data.x =='}\nto: [{topic: 'bad topic', redact: [Email]}, {topic: _mekong.audit}]",
    );
    let text = p.join("\n");
    assert!(
        text.contains("field `match.when`: CEL does not parse"),
        "{text}"
    );
    assert!(text.contains("field `to[0].topic`"), "{text}");
    assert!(text.contains("field `to[0].redact[0]`"), "{text}");
    assert!(
        text.contains("field `to[1].topic`: topic `_mekong.audit` is internal"),
        "{text}"
    );

    let p = problems("kind: RecordType\nname: t2\nkey: MaHoSo\nschema: {type: strng}");
    assert!(p[0].contains("RecordType \"t2\"): field `key`"), "{p:?}");
    let p = problems("kind: RecordType\nname: t2\nschema: {type: strng}");
    assert!(
        p[0].contains("field `schema`: not a valid JSON Schema"),
        "{p:?}"
    );
}

#[test]
fn a_route_may_not_redact_the_field_a_copy_is_keyed_by() {
    let p = problems(
        "kind: Route\nname: r2\nmatch: {types: [\"dossier.*\"]}\nto: [{topic: t2, redact: [/SoDienThoai, /MaHoSo]}]",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("field `to[0].redact[1]`: `/MaHoSo` holds the partition key of record type `dossier.sync`"),
        "{p:?}"
    );
    // A pointer above the key covers it too.
    let (docs, errors) = parse_documents(
        "x.yaml",
        &CITY
            .replace("key: /MaHoSo", "key: /ChuHoSo/SoDinhDanh")
            .replace(
                "redact: [/SoDienThoai, /Email]",
                "redact: [/SoDienThoai, /ChuHoSo]",
            ),
    );
    assert_eq!(errors, vec![]);
    let e = Catalog::build(docs).unwrap_err().to_string();
    assert!(e.contains("`/ChuHoSo` holds the partition key"), "{e}");
}

#[test]
fn refuses_bad_clients() {
    let p =
        problems("kind: Client\nname: c2\nroles: []\napiKeys: [{sha256: xyz}]\npublish: [tax.*]");
    let text = p.join("\n");
    assert!(text.contains("field `roles`"), "{text}");
    assert!(text.contains("field `apiKeys[0].sha256`"), "{text}");
    assert!(
        text.contains("field `publish[0]`: `tax.*` matches no known record type"),
        "{text}"
    );

    let p = problems(
        "kind: Client\nname: c2\nroles: [publisher]\napiKeys: [{sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae}]",
    );
    assert!(p[0].contains("already used by client `q1`"), "{p:?}");
}

#[test]
fn a_deadline_tracks_keyed_types_read_whole_and_writes_where_no_route_does() {
    let deadline = |track: &str, from: &str, to: &str| {
        format!(
            "kind: Deadline\nname: due\ntrack: [{track}]\nfrom: {from}\ndue: /NgayHenTra\ndone: 'has(data.NgayKetThucXuLy)'\nto: {to}\n"
        )
    };
    let (docs, errors) = parse_documents(
        "x.yaml",
        &format!(
            "{CITY}\n---\n{}",
            deadline("dossier.sync", "city.records", "city.deadlines")
        ),
    );
    assert_eq!(errors, vec![]);
    let catalog = Catalog::build(docs).unwrap();
    assert_eq!(catalog.deadline("due").unwrap().spec.from, "city.records");

    let refused = problems(&deadline(
        "payment.completed",
        "dvcqg.dossier",
        "city.records",
    ));
    assert!(
        refused[0].contains("`payment.completed` has no `key`"),
        "{refused:?}"
    );
    assert!(
        refused[1].contains("routes write records to `city.records`"),
        "{refused:?}"
    );
    // The national copy is redacted: a deadline reading it would see part of each record.
    let refused = problems(&deadline("dossier.sync", "dvcqg.dossier", "city.deadlines"));
    assert!(
        refused[0].contains(
            "no route writes whole (unredacted) records of `dossier.sync` to `dvcqg.dossier`"
        ),
        "{refused:?}"
    );
    let refused = problems(&deadline("dossier.nothing", "city.records", "_mekong.x"));
    assert!(
        refused[0].contains("no record type is named `dossier.nothing`"),
        "{refused:?}"
    );
    assert!(refused[1].contains("to"), "{refused:?}");
}
