//! The admin plane against the real broker: resources changed through the AdminService on one
//! instance are enforced by another within seconds and survive restarts; schema versions and their
//! compatibility; optimistic concurrency (within and across instances); every refusal changes
//! nothing and says why; every change is audited; records can be tried out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mekong_gateway::GatewayConfig;
use mekong_kafka::ProducerSettings;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use mekong_proto::v1::{
    ApplyRequest, DeleteRequest, GetRequest, ListRequest, SourceText, TestRecordRequest,
};
use mekong_tests::{
    TestHub, authed, citizen_dossier, header, kafka_bootstrap, read_records, record,
    standard_resources, unique,
};
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

const ADMIN: &str = "admin-key";

/// Two hubs on one resource store: the first seeds it with the standard resources.
async fn two_hubs() -> (TestHub, TestHub, String, String) {
    let suffix = unique();
    let store = format!("_mekong.resources.test-{suffix}");
    let bootstrap = kafka_bootstrap();
    let yaml = standard_resources(&suffix);
    let a = hub_on(&bootstrap, &store, Some(&yaml)).await;
    let b = hub_on(&bootstrap, &store, None).await;
    (a, b, suffix, store)
}

async fn hub_on(bootstrap: &str, store: &str, yaml: Option<&str>) -> TestHub {
    TestHub::start_on_store(
        bootstrap,
        store,
        yaml,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await
}

fn apply_request(text: &str) -> ApplyRequest {
    ApplyRequest {
        sources: vec![SourceText {
            name: "change.yaml".into(),
            text: text.into(),
        }],
        ..Default::default()
    }
}

async fn apply(
    admin: &mut AdminServiceClient<Channel>,
    request: ApplyRequest,
) -> Result<mekong_proto::v1::ApplyResponse, tonic::Status> {
    admin
        .apply(authed(ADMIN, request))
        .await
        .map(|r| r.into_inner())
}

fn tax_route(suffix: &str) -> String {
    format!(
        "kind: Route\nname: tax\nmatch: {{types: [tax.filed]}}\nto: [{{topic: t-tax-{suffix}}}]\n"
    )
}

/// Publishes until `accept` holds for the outcome, or fails after `within`.
async fn eventually<F: Fn(&Result<(), tonic::Status>) -> bool>(
    hub: &TestHub,
    request: impl Fn() -> mekong_proto::v1::PublishRequest,
    accept: F,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let mut client = hub.client().await;
    loop {
        let outcome = client
            .publish(authed("q1-key", request()))
            .await
            .map(|_| ());
        if accept(&outcome) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not within {within:?}; last outcome: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_change_applied_on_one_instance_is_enforced_by_the_other_and_survives_restarts() {
    let (a, b, suffix, store) = two_hubs().await;
    let tax = || record("tax.filed", br#"{"MaSoThue":"0301234567"}"#);

    // Before: no route takes tax.filed, on either instance.
    let before = b.client().await.publish(authed("q1-key", tax())).await;
    assert_eq!(before.unwrap_err().code(), Code::FailedPrecondition);

    let response = apply(&mut a.admin().await, apply_request(&tax_route(&suffix)))
        .await
        .expect("apply");
    assert!(response.applied);
    assert_eq!(response.results[0].outcome, "created");
    assert_eq!(response.results[0].version, 1);

    // Read-your-writes: the instance that took the change serves it as soon as Apply answers.
    let mut on_a = a.client().await;
    on_a.publish(authed("q1-key", tax()))
        .await
        .expect("the applying instance routes tax.filed at once");
    // The other instance follows within seconds.
    let took = eventually(&b, tax, Result::is_ok, Duration::from_secs(10)).await;
    eprintln!("the other instance enforced the new route after {took:?}");

    // Delete on B; A stops routing tax.filed.
    let mut admin_b = b.admin().await;
    admin_b
        .delete(authed(
            ADMIN,
            DeleteRequest {
                kind: "route".into(),
                name: "tax".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("delete");
    eventually(
        &a,
        tax,
        |o| {
            o.as_ref()
                .is_err_and(|s| s.code() == Code::FailedPrecondition)
        },
        Duration::from_secs(10),
    )
    .await;
    apply(&mut admin_b, apply_request(&tax_route(&suffix)))
        .await
        .expect("apply again");

    // Restart both: the state is read back from Kafka, with its versions.
    a.shutdown().await;
    b.shutdown().await;
    let bootstrap = kafka_bootstrap();
    let c = hub_on(&bootstrap, &store, None).await;
    let d = hub_on(&bootstrap, &store, None).await;
    let route = c
        .admin()
        .await
        .get(authed(
            ADMIN,
            GetRequest {
                kind: "Route".into(),
                name: "tax".into(),
            },
        ))
        .await
        .expect("the route survived")
        .into_inner();
    assert_eq!(
        route.version, 1,
        "recreated after its delete: version 1 again"
    );
    assert_eq!(route.changed_by, "ops");
    for hub in [&c, &d] {
        hub.client()
            .await
            .publish(authed("q1-key", tax()))
            .await
            .expect("both restarted instances route tax.filed");
    }
    let listed = d
        .admin()
        .await
        .list(authed(ADMIN, ListRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.resources.len(),
        10,
        "the standard resources and the tax route"
    );
}

/// Replicas of each partition of `topic`, or `None` when the topic does not exist.
fn topic_layout(bootstrap: &str, topic: &str) -> Option<Vec<usize>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let found = metadata.topics().first()?;
    if found.error().is_some() || found.partitions().is_empty() {
        return None;
    }
    Some(
        found
            .partitions()
            .iter()
            .map(|p| p.replicas().len())
            .collect(),
    )
}

// The test broker does not create topics by itself (deploy/test.sh), so a topic found here was
// created by the hub, with the partitions and replication the hub was told to use (3 and 1).
#[tokio::test]
async fn destination_topics_are_created_at_start_and_at_apply_as_configured() {
    let (hub, s) = TestHub::start().await;
    for topic in [format!("t-city-{s}"), format!("t-national-{s}")] {
        assert_eq!(
            topic_layout(&hub.bootstrap, &topic),
            Some(vec![1, 1, 1]),
            "{topic} created at start with 3 partitions of 1 replica"
        );
    }
    let tax = format!("t-tax-{s}");
    assert_eq!(topic_layout(&hub.bootstrap, &tax), None, "not there before");
    let response = apply(&mut hub.admin().await, apply_request(&tax_route(&s)))
        .await
        .expect("apply");
    assert!(response.applied);
    // Created before Apply answers: a publisher told "applied" can publish at once.
    assert_eq!(topic_layout(&hub.bootstrap, &tax), Some(vec![1, 1, 1]));
    hub.client()
        .await
        .publish(authed(
            "q1-key",
            record("tax.filed", br#"{"MaSoThue":"0301234567"}"#),
        ))
        .await
        .expect("routed to the new topic");
}

// DeleteRequest.expected_version: the version last read, or 0 for no check; dry_run deletes
// nothing and says what would be deleted.
#[tokio::test]
async fn a_delete_checks_the_version_it_was_given_and_a_dry_run_deletes_nothing() {
    let (hub, s) = TestHub::start().await;
    let mut admin = hub.admin().await;
    apply(&mut admin, apply_request(&tax_route(&s)))
        .await
        .expect("apply");
    let delete = |expected_version: u64, dry_run: bool| DeleteRequest {
        kind: "route".into(),
        name: "tax".into(),
        expected_version,
        dry_run,
    };
    let still_there = |admin: &mut AdminServiceClient<Channel>| {
        let mut admin = admin.clone();
        async move {
            admin
                .get(authed(
                    ADMIN,
                    GetRequest {
                        kind: "Route".into(),
                        name: "tax".into(),
                    },
                ))
                .await
                .is_ok()
        }
    };

    let stale = admin.delete(authed(ADMIN, delete(7, false))).await;
    assert_eq!(stale.unwrap_err().code(), Code::FailedPrecondition);
    assert!(
        still_there(&mut admin).await,
        "a stale version deletes nothing"
    );

    let dry = admin
        .delete(authed(ADMIN, delete(1, true)))
        .await
        .expect("a dry run")
        .into_inner();
    assert_eq!((dry.version, dry.applied), (1, false));
    assert!(still_there(&mut admin).await, "a dry run deletes nothing");

    let done = admin
        .delete(authed(ADMIN, delete(0, false)))
        .await
        .expect("0: no version check")
        .into_inner();
    assert_eq!((done.version, done.applied), (1, true));
    assert!(!still_there(&mut admin).await, "deleted");
}

#[tokio::test]
async fn concurrent_changes_on_two_instances_with_the_same_expected_version_let_one_win() {
    let (a, b, suffix, _) = two_hubs().await;
    let mut admin_a = a.admin().await;
    let mut admin_b = b.admin().await;
    for round in 0..3 {
        let version = round + 1;
        let change = |topic: &str| {
            let mut request = apply_request(&format!(
                "kind: Route\nname: payments\nmatch: {{types: [\"payment.*\"]}}\nto: [{{topic: {topic}-{round}-{suffix}}}]\n"
            ));
            request
                .expected_versions
                .insert("Route/payments".into(), version);
            request
        };
        let (one, two) = tokio::join!(
            apply(&mut admin_a, change("t-pay-a")),
            apply(&mut admin_b, change("t-pay-b"))
        );
        let won = [&one, &two].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: exactly one wins: {one:?} / {two:?}");
        let lost = [one, two].into_iter().find_map(Result::err).unwrap();
        assert!(
            matches!(lost.code(), Code::FailedPrecondition | Code::Aborted),
            "the loser learns it lost: {lost:?}"
        );
        let stored = admin_a
            .get(authed(
                ADMIN,
                GetRequest {
                    kind: "Route".into(),
                    name: "payments".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stored.version, version + 1, "one change per round");
    }
}

#[tokio::test]
async fn schema_changes_add_versions_that_publishers_may_pin() {
    let (hub, suffix) = TestHub::start().await;
    let mut admin = hub.admin().await;
    let get_type = || {
        authed(
            ADMIN,
            GetRequest {
                kind: "RecordType".into(),
                name: "dossier.sync".into(),
            },
        )
    };
    let v1 = admin.get(get_type()).await.unwrap().into_inner();
    assert_eq!((v1.version, v1.schema_version), (1, 1));
    let mut schema: Value = serde_json::from_str(&v1.schemas[0]).unwrap();

    // Compatible (backward): a new optional field.
    schema["properties"]["GhiChu"] = serde_json::json!({"type": "string"});
    let doc = |schema: &Value, extra: &str| {
        format!(
            "{{\"kind\": \"RecordType\", \"name\": \"dossier.sync\", \"key\": \"/MaHoSo\", \"schema\": {schema}{extra}}}"
        )
    };
    let response = apply(&mut admin, apply_request(&doc(&schema, "")))
        .await
        .expect("a new optional field is backward compatible");
    assert_eq!(
        (
            response.results[0].version,
            response.results[0].schema_version
        ),
        (2, 2)
    );

    // Incompatible: making it required would refuse records publishers send today.
    let mut breaking = schema.clone();
    breaking["required"]
        .as_array_mut()
        .unwrap()
        .push("GhiChu".into());
    let refused = apply(&mut admin, apply_request(&doc(&breaking, "")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("incompatible with version 2 (compatibility `backward`): backward: `/GhiChu`: property made required"),
        "{}",
        refused.message()
    );

    // With compatibility `none` the same change is taken as version 3 ...
    apply(
        &mut admin,
        apply_request(&doc(&breaking, ", \"compatibility\": \"none\"")),
    )
    .await
    .expect("compatibility none accepts it");
    let mut client = hub.client().await;
    let dossier = citizen_dossier(&format!("PIN-{suffix}"));
    let latest = client
        .publish(authed("q1-key", record("dossier.sync", &dossier)))
        .await
        .unwrap_err();
    assert_eq!(latest.code(), Code::InvalidArgument);
    assert!(
        latest.message().contains("version 3"),
        "{}",
        latest.message()
    );

    // ... and a publisher that has not caught up pins version 2, which still validates.
    let mut pinned = record("dossier.sync", &dossier);
    pinned.schema_version = 2;
    let placed = client
        .publish(authed("q1-key", pinned))
        .await
        .expect("the pinned version validates")
        .into_inner();
    let city = format!("t-city-{suffix}");
    let landed = read_records(&hub.bootstrap, &city, 1, Duration::from_secs(20)).await;
    assert_eq!(placed.placements[0].topic, city);
    assert_eq!(
        header(&landed[0], "ce_dataschema").as_deref(),
        Some("urn:mekong:schema:dossier.sync:2")
    );

    // A pin is held to its own version: `GhiChu` as a number is nothing to version 1, which does
    // not know the field, and a violation of version 2, which says it is a string.
    let odd: Value = serde_json::from_slice(&dossier).unwrap();
    let mut odd = odd;
    odd["GhiChu"] = 5.into();
    let odd = serde_json::to_vec(&odd).unwrap();
    let mut old = record("dossier.sync", &odd);
    old.schema_version = 1;
    client
        .publish(authed("q1-key", old))
        .await
        .expect("version 1 does not know the field");
    let mut strict = record("dossier.sync", &odd);
    strict.schema_version = 2;
    let refused = client.publish(authed("q1-key", strict)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("`dossier.sync`, version 2 (1 violation)"),
        "{}",
        refused.message()
    );
    let details = tonic_types::StatusExt::get_details_bad_request(&refused).expect("violations");
    assert_eq!(details.field_violations[0].field, "/GhiChu");

    let mut unknown = record("dossier.sync", &dossier);
    unknown.schema_version = 9;
    let status = client.publish(authed("q1-key", unknown)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("no schema version 9; versions 1 to 3 exist"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn every_refusal_changes_nothing_and_says_what_to_fix() {
    let (hub, suffix) = TestHub::start().await;
    let mut admin = hub.admin().await;
    let before = admin
        .list(authed(ADMIN, ListRequest::default()))
        .await
        .unwrap()
        .into_inner();

    let refusals: [(&str, &str, Code, &str); 7] = [
        (
            "invalid YAML",
            "kind: Route\nname: r\nmatch: {types: [dossier.sync]\nto: []\n",
            Code::InvalidArgument,
            "change.yaml:4: document 1: not valid YAML/JSON",
        ),
        (
            "unknown kind",
            "kind: Widget\nname: w\n",
            Code::InvalidArgument,
            "field `kind`: unknown kind `Widget`",
        ),
        (
            "unknown field",
            "kind: Route\nname: r\nmatch: {types: [dossier.sync], whn: x}\nto: [{topic: t}]\n",
            Code::InvalidArgument,
            "field `match.whn`: unknown field `whn`",
        ),
        (
            "schema that does not compile",
            "kind: RecordType\nname: land.parcel\nschema: {type: strng}\n",
            Code::InvalidArgument,
            "(RecordType \"land.parcel\"): field `schema`: not a valid JSON Schema",
        ),
        (
            "CEL that does not parse",
            "kind: Route\nname: r\nmatch: {types: [dossier.sync], when: 'data.x =='}\nto: [{topic: t}]\n",
            Code::InvalidArgument,
            "field `match.when`: CEL does not parse",
        ),
        (
            "route to a type that does not exist",
            "kind: Route\nname: r\nmatch: {types: [land.parcel]}\nto: [{topic: t}]\n",
            Code::InvalidArgument,
            "field `match.types[0]`: `land.parcel` matches no known record type",
        ),
        (
            "all or nothing: a valid type with an invalid route",
            "kind: RecordType\nname: land.parcel\nschema: {type: object}\n---\nkind: Route\nname: r\nmatch: {types: [land.parcel], sources: [nobody]}\nto: [{topic: t}]\n",
            Code::InvalidArgument,
            "change.yaml:5: document 2 (Route \"r\"): field `match.sources[0]`: no client is named `nobody`",
        ),
    ];
    for (what, text, code, says) in refusals {
        let status = apply(&mut admin, apply_request(text)).await.unwrap_err();
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(
            status.message().contains(says),
            "{what}: expected `{says}` in:\n{}",
            status.message()
        );
        assert!(
            status.message().starts_with("rejected, nothing changed"),
            "{what}"
        );
    }

    // A version conflict.
    let mut stale = apply_request(&tax_route(&suffix).replace("name: tax", "name: city"));
    stale.expected_versions.insert("Route/city".into(), 7);
    let status = apply(&mut admin, stale).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("expected version 7, but version 1 is stored (changed by `test-harness`"),
        "{}",
        status.message()
    );

    // A delete of something still referred to, naming the referrers.
    let status = admin
        .delete(authed(
            ADMIN,
            DeleteRequest {
                kind: "RecordType".into(),
                name: "dossier.sync".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    for referrer in ["Route \"city\"", "Route \"national\"", "Client \"q1\""] {
        assert!(
            status
                .message()
                .contains(&format!("still referred to by {referrer}")),
            "{referrer} in {}",
            status.message()
        );
    }
    let status = admin
        .delete(authed(
            ADMIN,
            DeleteRequest {
                kind: "Route".into(),
                name: "nope".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Callers without the admin role, or without credentials.
    let status = admin
        .apply(authed("q1-key", apply_request(&tax_route(&suffix))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("lacks the admin role"));
    let status = admin
        .list(tonic::Request::new(ListRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = admin
        .get(authed(
            ADMIN,
            GetRequest {
                kind: "Widget".into(),
                name: "x".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let after = admin
        .list(authed(ADMIN, ListRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before, "the store is untouched");
}

/// Audit events about resources whose name ends with `suffix`, in order.
async fn audit_events(bootstrap: &str, suffix: &str, expected: usize) -> Vec<Value> {
    mekong_tests::audit_events(bootstrap, expected, |e| {
        e["name"].as_str().is_some_and(|n| n.ends_with(suffix))
    })
    .await
}

#[tokio::test]
async fn accepted_and_rejected_changes_are_audited_with_actor_versions_and_digests() {
    let (hub, suffix) = TestHub::start().await;
    let mut admin = hub.admin().await;
    let name = format!("land.parcel.{suffix}");
    let create = format!("kind: RecordType\nname: {name}\nschema: {{type: object}}\n");
    apply(&mut admin, apply_request(&create)).await.unwrap();
    let update =
        format!("kind: RecordType\nname: {name}\nschema: {{type: object, required: [SoThua]}}\n");
    apply(&mut admin, apply_request(&update)).await.unwrap_err();
    admin
        .delete(authed(
            ADMIN,
            DeleteRequest {
                kind: "RecordType".into(),
                name: name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();

    let events = audit_events(&hub.bootstrap, &suffix, 3).await;
    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("apply", "created", "ops"),
            ("apply", "rejected", "ops"),
            ("delete", "deleted", "ops")
        ]
    );
    let (created, rejected, deleted) = (&events[0], &events[1], &events[2]);
    assert_eq!(created["newVersion"], 1);
    assert!(created["oldSha256"].is_null());
    assert_eq!(created["newSha256"].as_str().unwrap().len(), 64);
    assert_eq!(rejected["event"], "resource.rejected");
    assert_eq!(
        (&rejected["oldVersion"], &rejected["newVersion"]),
        (&1.into(), &2.into())
    );
    assert!(
        rejected["problems"][0]
            .as_str()
            .unwrap()
            .contains("property made required"),
        "{rejected}"
    );
    assert_eq!(
        deleted["oldSha256"], created["newSha256"],
        "the deleted side is the created one"
    );
    assert!(deleted["newVersion"].is_null());
}

#[tokio::test]
async fn test_record_shows_validation_routing_and_each_copy_without_writing() {
    let (hub, suffix) = TestHub::start().await;
    let mut admin = hub.admin().await;
    let test = |payload: Vec<u8>, client: &str| {
        authed(
            ADMIN,
            TestRecordRequest {
                client: client.into(),
                record_type: "dossier.sync".into(),
                payload,
                ..Default::default()
            },
        )
    };
    let report = admin
        .test_record(test(citizen_dossier("TR-1"), "q1"))
        .await
        .unwrap()
        .into_inner();
    assert!(report.accepted, "{report:?}");
    let routes: HashMap<_, _> = report
        .routes
        .iter()
        .map(|r| (r.route.as_str(), (r.matched, r.reason.as_str())))
        .collect();
    assert_eq!(routes["city"], (true, ""));
    assert_eq!(routes["national"], (true, ""));
    assert_eq!(
        routes["payments"],
        (false, "the record type is not in match.types")
    );
    let national = report
        .copies
        .iter()
        .find(|c| c.topic == format!("t-national-{suffix}"))
        .unwrap();
    let copy: Value = serde_json::from_slice(&national.payload).unwrap();
    assert!(copy.get("SoDienThoai").is_none(), "shown after redaction");
    assert_eq!(national.headers["ce_type"], "dossier.sync");
    assert_eq!(national.key, "TR-1");

    let business = br#"{"MaHoSo":"TR-2","LoaiDoiTuong":2,"NgayTiepNhan":"20261128083000"}"#;
    let report = admin
        .test_record(test(business.to_vec(), "q1"))
        .await
        .unwrap()
        .into_inner();
    let national = report
        .routes
        .iter()
        .find(|r| r.route == "national")
        .unwrap();
    assert_eq!(national.reason, "match.when is false for this record");

    let report = admin
        .test_record(test(br#"{"MaHoSo":""}"#.to_vec(), "q1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!report.accepted);
    assert_eq!(report.rejection_code, "INVALID_ARGUMENT");
    let fields: Vec<&str> = report.violations.iter().map(|v| v.field.as_str()).collect();
    assert!(fields.contains(&"/LoaiDoiTuong"), "{fields:?}");

    let report = admin
        .test_record(test(citizen_dossier("TR-3"), "reader"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.rejection_code, "PERMISSION_DENIED");

    assert_eq!(
        mekong_tests::count_records(&hub.bootstrap, &format!("t-city-{suffix}")),
        0,
        "nothing was written"
    );
}
