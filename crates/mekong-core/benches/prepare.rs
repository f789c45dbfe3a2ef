//! `Catalog::prepare`, the gateway's hot path, measured alone (no network, no Kafka): the city's
//! dossier sample routed as the examples route it — a copy as received and a redacted copy, one
//! route with a CEL condition — and variants that isolate each part's cost.
//!
//! Run: `cargo bench -p mekong-core --bench prepare`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::SystemTime;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use mekong_core::{Catalog, Limits, Submission, parse_documents};

const SCHEMA: &str = r#"
kind: RecordType
name: dossier.sync
key: /MaHoSo
schema:
  type: object
  required: [MaHoSo, LoaiDoiTuong, NgayTiepNhan]
  properties:
    MaHoSo: {type: string, minLength: 1}
    LoaiDoiTuong: {type: integer, enum: [1, 2]}
    NgayTiepNhan: {type: string, pattern: "^[0-9]{14}$"}
    Email: {type: string, format: email}
    SoDienThoai: {type: string}
---
kind: Client
name: q1
roles: [publisher]
apiKeys: [{sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae}]
publish: ["dossier.*"]
"#;

/// The resources with `routes` appended.
fn catalog(routes: &str) -> Catalog {
    let (docs, errors) = parse_documents("bench.yaml", &format!("{SCHEMA}---\n{routes}"));
    assert!(errors.is_empty(), "{errors:?}");
    Catalog::build(docs).expect("the bench catalog builds")
}

fn sample() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/hcmc/samples/dossier-sync.json"
    );
    Bytes::from(std::fs::read(path).expect("the sample exists"))
}

fn bench(c: &mut Criterion) {
    let payload = sample();
    let attributes = HashMap::new();
    let cases = [
        (
            "plain: one copy as received",
            "kind: Route\nname: city\nmatch: {types: [dossier.sync]}\nto: [{topic: city}]\n",
        ),
        (
            "redacted: one copy without two fields",
            "kind: Route\nname: national\nmatch: {types: [dossier.sync]}\nto: [{topic: national, redact: [/SoDienThoai, /Email]}]\n",
        ),
        (
            "cel: one copy behind a condition",
            "kind: Route\nname: citizens\nmatch: {types: [dossier.sync], when: 'data.LoaiDoiTuong == 1'}\nto: [{topic: city}]\n",
        ),
        (
            "city: as the examples (copy, redacted copy behind a condition)",
            "kind: Route\nname: city\nmatch: {types: [dossier.sync]}\nto: [{topic: city}]\n---\nkind: Route\nname: national\nmatch: {types: [dossier.sync], when: 'data.LoaiDoiTuong == 1'}\nto: [{topic: national, redact: [/SoDienThoai, /Email]}]\n",
        ),
    ];
    let mut group = c.benchmark_group("Catalog::prepare");
    for (name, routes) in cases {
        let catalog = catalog(routes);
        let client = catalog.client("q1").expect("the client");
        let limits = Limits::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                let submission = Submission {
                    record_type: "dossier.sync",
                    payload: &payload,
                    key: None,
                    attributes: &attributes,
                    traceparent: None,
                    schema_version: 0,
                    record_id: uuid::Uuid::nil(),
                    time: SystemTime::UNIX_EPOCH,
                    progress: None,
                };
                black_box(catalog.prepare(client, black_box(submission), &limits))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
