use super::*;
use crate::catalog::tests::CITY;
use crate::resource::parse_documents;

const NOW: &str = "2026-11-28T10:00:00Z";

fn apply(state: &mut ResourceState, text: &str, expected: &[(&str, u64)]) -> Plan {
    let (documents, parse_errors) = parse_documents("change.yaml", text);
    let expected_versions = expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let plan = state.plan_apply(Proposal {
        documents,
        parse_errors,
        expected_versions: &expected_versions,
        actor: "admin",
        now: NOW,
    });
    if plan.verdict == Verdict::Accepted {
        let writes: Vec<_> = plan
            .writes()
            .map(|(k, v)| (k.clone(), v.cloned()))
            .collect();
        for (key, value) in writes {
            state.set(key, value);
        }
    }
    plan
}

fn outcomes(plan: &Plan) -> Vec<(String, &'static str)> {
    plan.changes
        .iter()
        .map(|c| (c.key.to_string(), c.outcome.as_str()))
        .collect()
}

fn city() -> ResourceState {
    let mut state = ResourceState::default();
    assert_eq!(apply(&mut state, CITY, &[]).verdict, Verdict::Accepted);
    state
}

#[test]
fn applying_creates_then_leaves_unchanged_then_updates_with_a_new_version() {
    let mut state = city();
    assert_eq!(state.len(), 6);
    let plan = apply(&mut state, CITY, &[]);
    assert_eq!(plan.verdict, Verdict::Accepted);
    assert!(outcomes(&plan).iter().all(|(_, o)| *o == "unchanged"));
    assert_eq!(
        plan.writes().count(),
        0,
        "unchanged resources are not rewritten"
    );

    let plan = apply(
        &mut state,
        "kind: Route\nname: city\nmatch: {types: [dossier.sync]}\nto: [{topic: city.records}]",
        &[("Route/city", 1)],
    );
    assert_eq!(outcomes(&plan), [("Route/city".into(), "updated")]);
    let stored = state.get(&Key::parse("Route/city").unwrap()).unwrap();
    assert_eq!((stored.version, stored.changed_by.as_str()), (2, "admin"));
}

#[test]
fn a_stale_expected_version_is_a_conflict_and_changes_nothing() {
    let mut state = city();
    let text = "kind: Route\nname: city\nmatch: {types: [dossier.sync]}\nto: [{topic: other}]";
    let plan = apply(&mut state, text, &[("Route/city", 7)]);
    assert_eq!(plan.verdict, Verdict::Conflict);
    assert!(
        plan.changes[0].problems[0].contains("expected version 7, but version 1 is stored"),
        "{:?}",
        plan.changes[0]
    );
    let plan = apply(&mut state, text, &[("Route/brand-new", 1)]);
    assert_eq!(
        plan.verdict,
        Verdict::Accepted,
        "expectations of resources not applied are ignored"
    );
}

#[test]
fn an_apply_is_all_or_nothing() {
    let mut state = city();
    let plan = apply(
        &mut state,
        "kind: RecordType\nname: land.parcel\nschema: {type: object}\n---\nkind: Route\nname: land\nmatch: {types: [lnd.parcel]}\nto: [{topic: land}]",
        &[],
    );
    assert_eq!(plan.verdict, Verdict::Invalid);
    assert_eq!(
        outcomes(&plan),
        [
            ("RecordType/land.parcel".into(), "created"),
            ("Route/land".into(), "rejected")
        ]
    );
    assert!(
        plan.problems[0]
            .to_string()
            .starts_with("change.yaml:5: document 2 (Route \"land\"): field `match.types[0]`"),
        "{}",
        plan.problems[0]
    );
    assert!(
        state
            .get(&Key::parse("RecordType/land.parcel").unwrap())
            .is_none()
    );
}

#[test]
fn schema_changes_add_versions_and_must_keep_compatibility() {
    let mut state = city();
    let v2 = CITY.split("---").next().unwrap().replace(
        "SoDienThoai: {type: string}",
        "SoDienThoai: {type: string}\n    GhiChu: {type: string}",
    );
    let plan = apply(&mut state, &v2, &[]);
    assert_eq!(plan.verdict, Verdict::Accepted, "{:?}", plan.problems);
    let stored = state
        .get(&Key::parse("RecordType/dossier.sync").unwrap())
        .unwrap();
    assert_eq!((stored.version, stored.schema_version()), (2, 2));
    let catalog = state.catalog().unwrap();
    assert_eq!(
        catalog
            .record_type("dossier.sync")
            .unwrap()
            .latest_version(),
        2
    );

    let breaking = v2.replace(
        "required: [MaHoSo, LoaiDoiTuong]",
        "required: [MaHoSo, LoaiDoiTuong, GhiChu]",
    );
    let plan = apply(&mut state, &breaking, &[]);
    assert_eq!(plan.verdict, Verdict::Invalid);
    assert_eq!(
        plan.changes[0].problems,
        [
            "field `schema`: incompatible with version 2 (compatibility `backward`): backward: `/GhiChu`: property made required"
        ]
    );
    let forced = format!("{breaking}\ncompatibility: none\n");
    assert_eq!(apply(&mut state, &forced, &[]).verdict, Verdict::Accepted);
    let stored = state
        .get(&Key::parse("RecordType/dossier.sync").unwrap())
        .unwrap();
    assert_eq!(stored.schema_version(), 3);

    // A description-only change is a new resource version but not a new schema version.
    let described = forced.replace("key: /MaHoSo", "key: /MaHoSo\ndescription: Ho so");
    apply(&mut state, &described, &[]);
    let stored = state
        .get(&Key::parse("RecordType/dossier.sync").unwrap())
        .unwrap();
    assert_eq!((stored.version, stored.schema_version()), (4, 3));
}

#[test]
fn deleting_a_referenced_resource_is_refused_with_the_referrers() {
    let state = city();
    let plan = state.plan_delete(&Key::parse("RecordType/payment.completed").unwrap(), None);
    assert_eq!(plan.verdict, Verdict::Conflict);
    let text = plan.changes[0].problems.join("\n");
    assert!(
        text.contains("still referred to by Route \"city\": field `match.types[1]`"),
        "{text}"
    );

    let plan = state.plan_delete(&Key::parse("Client/reader").unwrap(), None);
    assert_eq!(plan.verdict, Verdict::Accepted);
    assert_eq!(
        plan.writes().collect::<Vec<_>>(),
        [(&Key::parse("Client/reader").unwrap(), None)]
    );

    let plan = state.plan_delete(&Key::parse("Client/nobody").unwrap(), None);
    assert_eq!(plan.verdict, Verdict::NotFound);
    let plan = state.plan_delete(&Key::parse("Client/reader").unwrap(), Some(2));
    assert_eq!(plan.verdict, Verdict::Conflict);
}

#[test]
fn stored_resources_round_trip_through_json() {
    let state = city();
    for stored in state.list(None) {
        assert_eq!(&Stored::from_json(&stored.to_json()).unwrap(), stored);
    }
    assert_eq!(state.list(Some(Kind::Route)).count(), 2);
    assert!(Stored::from_json(b"{\"version\": 1}").is_err());
}
