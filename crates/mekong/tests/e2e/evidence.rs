//! The evidence of the audit trail, end to end, on a broker of the test's own (its `_mekong.audit`
//! holds only what this test's hubs sealed): records published, delivered, dead-lettered and
//! replayed are proven and verified offline; changed bundles, copies and keys are refused; a hub
//! SIGKILLed under load leaves every OK'd record provable; forged and changed events, untrusted
//! checkpoints and deleted records written with plain Kafka clients are each named by
//! `mekong verify --log`; a notary that cannot sign is not ready.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_tests::process::Process;
use mekong_tests::targets::{Reply, Target};
use mekong_tests::tsa::Tsa;
use mekong_tests::{PrivateBroker, authed, citizen_dossier, record, unique};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::delivery::{admin, mekong, resources_with_hook, start};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `mekong proof ID -o FILE`, again until the bundle holds every event named in `events`.
async fn prove(listen: &str, record_id: &str, file: &Path, events: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A notary taking over from a SIGKILLed one waits for its session to time out (10 s).
        let (code, _, err) = admin(
            listen,
            &["proof", record_id, "-o", path(file), "--wait", "60s"],
        );
        assert_eq!(code, 0, "{err}");
        let bundle: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let names: Vec<String> = bundle["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let event: Value = serde_json::from_str(e["event"].as_str().unwrap()).unwrap();
                event["event"].as_str().unwrap().to_owned()
            })
            .collect();
        if events.iter().all(|e| names.iter().any(|n| n == e)) {
            return bundle;
        }
        assert!(
            Instant::now() < deadline,
            "{names:?} lacks one of {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn publish(listen: &str, ma_ho_so: &str) -> String {
    let mut client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    client
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier(ma_ho_so)),
        ))
        .await
        .unwrap()
        .into_inner()
        .record_id
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Writes a record with a plain producer, as anyone with access to the topic could; its offset.
async fn write(
    producer: &FutureProducer,
    topic: &str,
    value: &[u8],
    headers: &[(&str, &[u8])],
) -> i64 {
    let headers = headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(*value),
        })
    });
    producer
        .send(
            FutureRecord::<str, [u8]>::to(topic)
                .key("forged")
                .payload(value)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
        .offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_is_provable_offline_and_every_change_to_the_trail_is_named() {
    let broker = PrivateBroker::start_with(&[("MEKONG_KAFKA_AUTO_CREATE_TOPICS", "false")]);
    let bootstrap = broker.bootstrap.clone();
    let s = unique();
    let work = std::env::temp_dir().join(format!("mekong-evidence-{s}"));
    let (keys, stranger, rotated) = (
        work.join("keys"),
        work.join("stranger"),
        work.join("rotated"),
    );
    for dir in [&keys, &stranger, &rotated] {
        let (code, out, err) = mekong(&["notary", "keygen", path(dir)]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("wrote "), "{out}");
    }
    let (code, _, err) = mekong(&["notary", "keygen", path(&keys)]);
    assert_eq!(code, 2);
    assert!(err.contains("signing.key exists: not overwritten"), "{err}");
    let trust = keys.join("signing.pub");
    let audit_key = format!("file:{}", keys.join("audit.key").display());
    let signing_key = format!("file:{}", keys.join("signing.key").display());

    let tsa = Tsa::start().await;
    let hook = Target::webhook().await;
    let refused = format!("DL-{s}");
    hook.script(&refused, [Reply::Status(422, None)]);
    let resources = resources_with_hook(&s, &hook, "bearerToken", "");
    let lineage = work.join("lineage");
    let serve: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--resources",
        path(&resources),
        "--kafka",
        &bootstrap,
        "--lineage-dir",
        path(&lineage),
        "--audit-key",
        &audit_key,
        "--signing-key",
        &signing_key,
        "--checkpoint-interval",
        "300ms",
        "--tsa-url",
        &tsa.url,
    ]
    .map(str::to_owned)
    .to_vec();
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let (hub, listen) = start(&serve, "listening on ");

    // A record delivered, and one dead-lettered then replayed.
    let delivered = publish(&listen, &format!("OK-{s}")).await;
    let dead = publish(&listen, &refused).await;
    let adapter = format!("hook-{s}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !admin(&listen, &["dlq", "list", &adapter]).1.contains(&dead) {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    hook.script(&refused, [Reply::Status(200, None)]);
    let (code, _, err) = admin(&listen, &["dlq", "replay", &adapter, "--all"]);
    assert_eq!(code, 0, "{err}");

    // Each proven offline: its events, the copy it was accepted with, and nothing else.
    let bundle_file = work.join("delivered.json");
    let bundle = prove(
        &listen,
        &delivered,
        &bundle_file,
        &["record.accepted", "record.placed", "delivery.delivered"],
    )
    .await;
    assert_eq!(bundle["format"], "mekong-proof/1");
    let (code, out, err) = mekong(&["verify", path(&bundle_file), "--trust", path(&trust)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("record {delivered}: 3 event(s) proven")),
        "{out}"
    );
    assert!(
        out.contains("checkpoint carries a time stamp (not checked: no --tsa-ca)"),
        "{out}"
    );
    // Its checkpoint is anchored in time by the authority, and by no other.
    let (code, out, err) = mekong(&[
        "verify",
        path(&bundle_file),
        "--trust",
        path(&trust),
        "--tsa-ca",
        path(&tsa.ca),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("checkpoint time-stamped at 20") && out.contains(" by CN=Mekong test TSA"),
        "{out}"
    );
    let other_tsa = Tsa::start().await;
    let (code, _, err) = mekong(&[
        "verify",
        path(&bundle_file),
        "--trust",
        path(&trust),
        "--tsa-ca",
        path(&other_tsa.ca),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the checkpoint's time stamp does not verify: the signing certificate `CN=Mekong test TSA` is not trusted"),
        "{err}"
    );
    let copy = mekong_tests::read_records(
        &bootstrap,
        &format!("t-city-{s}"),
        2,
        Duration::from_secs(30),
    )
    .await
    .into_iter()
    .find(|m| mekong_tests::header(m, "ce_id").as_deref() == Some(delivered.as_str()))
    .expect("the delivered record's copy");
    let copy_file = work.join("copy.json");
    std::fs::write(&copy_file, copy.payload().unwrap()).unwrap();
    let (code, out, err) = mekong(&[
        "verify",
        path(&bundle_file),
        "--trust",
        path(&trust),
        "--copy",
        path(&copy_file),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("the accepted copy for t-city-{s} (routes city)")),
        "{out}"
    );
    let mut changed_copy = copy.payload().unwrap().to_vec();
    changed_copy[10] ^= 1;
    std::fs::write(&copy_file, changed_copy).unwrap();
    let (code, out, _) = mekong(&[
        "verify",
        path(&bundle_file),
        "--trust",
        path(&trust),
        "--copy",
        path(&copy_file),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("NOT a copy the record was accepted with"),
        "{out}"
    );

    let dead_file = work.join("dead.json");
    prove(
        &listen,
        &dead,
        &dead_file,
        &[
            "record.accepted",
            "delivery.dead_lettered",
            "delivery.replayed",
            "delivery.delivered",
        ],
    )
    .await;
    let (code, out, err) = mekong(&["verify", path(&dead_file), "--trust", path(&trust)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("delivery.dead_lettered") && out.contains("delivery.replayed"),
        "{out}"
    );

    // A bundle with one byte changed, a proof for another record, an untrusted key.
    let tampered = |edit: &dyn Fn(&mut Value)| {
        let mut b = bundle.clone();
        edit(&mut b);
        let file = work.join("tampered.json");
        std::fs::write(&file, serde_json::to_vec(&b).unwrap()).unwrap();
        let (code, _, err) = mekong(&["verify", path(&file), "--trust", path(&trust)]);
        assert_eq!(code, 1, "{err}");
        err
    };
    let err = tampered(&|b| {
        let event = b["events"][0]["event"]
            .as_str()
            .unwrap()
            .replacen("\"q1\"", "\"q2\"", 1);
        b["events"][0]["event"] = event.into();
    });
    assert!(
        err.contains("event 0 (audit offset") && err.contains("not in the signed tree"),
        "{err}"
    );
    let err = tampered(&|b| b["recordId"] = dead.clone().into());
    assert!(
        err.contains(&format!("about record {delivered}, not {dead}")),
        "{err}"
    );
    let (code, _, err) = mekong(&[
        "verify",
        path(&bundle_file),
        "--trust",
        path(&stranger.join("signing.pub")),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("signed by no trusted key (signatures by mekong-notary+"),
        "{err}"
    );

    // The notary's state is watched.
    let metrics = hub.metrics.clone().unwrap();
    let scrape = reqwest::get(format!("{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("mekong_notary_checkpoint_age_seconds "),
        "{scrape}"
    );
    assert!(scrape.contains("mekong_notary_forged_events 0"), "{scrape}");
    let ready = reqwest::get(format!("{metrics}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // SIGKILL under load: every record answered OK has its accepted event, and is provable.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut publishers = Vec::new();
    for p in 0..4 {
        let (listen, answered, s) = (listen.clone(), Arc::clone(&answered), s.clone());
        publishers.push(tokio::spawn(async move {
            let Ok(mut client) = IngestServiceClient::connect(format!("http://{listen}")).await
            else {
                return;
            };
            for n in 0.. {
                let request = authed(
                    "q1-key",
                    record("dossier.sync", &citizen_dossier(&format!("K{p}-{n}-{s}"))),
                );
                match client.publish(request).await {
                    Ok(r) => answered.lock().unwrap().push(r.into_inner().record_id),
                    Err(_) => return,
                }
            }
        }));
    }
    while answered.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(hub);
    for p in publishers {
        let _ = p.await;
    }
    let answered = answered.lock().unwrap().clone();
    let (hub, listen) = start(&serve, "listening on ");
    // A second notary with the same key competes for the partition: one signs, never both.
    let mut notary_args = vec![
        "notary",
        "run",
        "--kafka",
        &bootstrap,
        "--audit-key",
        &audit_key,
        "--signing-key",
        &signing_key,
        "--checkpoint-interval",
        "300ms",
        "--metrics-listen",
        "127.0.0.1:0",
        "--tsa-url",
        &tsa.url,
    ];
    let second = Process::start(env!("CARGO_BIN_EXE_mekong"), &notary_args, "metrics on ");
    let accepted: HashSet<String> = mekong_tests::audit_events(&bootstrap, answered.len(), |e| {
        e["event"] == "record.accepted" && answered.iter().any(|id| e["recordId"] == id.as_str())
    })
    .await
    .into_iter()
    .map(|e| e["recordId"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(
        accepted.len(),
        answered.len(),
        "every OK'd record has its accepted event"
    );
    for id in [answered.first().unwrap(), answered.last().unwrap()] {
        let file = work.join("crash.json");
        prove(&listen, id, &file, &["record.accepted"]).await;
        let (code, out, err) = mekong(&["verify", path(&file), "--trust", path(&trust)]);
        assert_eq!(code, 0, "{out}{err}");
    }

    // The whole trail holds, across the restart and the two notaries, every checkpoint stamped.
    let verify_log = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--log",
            "--kafka",
            &bootstrap,
            "--trust",
            path(&trust),
            "--audit-key",
            &audit_key,
        ];
        args.extend(extra);
        mekong(&args)
    };
    let tsa_ca = ["--tsa-ca", path(&tsa.ca)];
    let (code, out, err) = verify_log(&tsa_ca);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("no findings\n"), "{out}");
    assert!(tsa.stamped() > 0);

    // The authority down: checkpoints go on unstamped, and verify names them.
    tsa.set_down(true);
    publish(&listen, &format!("UNSTAMPED-{s}")).await;
    let unstamped = "the time-stamping authority did not stamp the checkpoint";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(hub.log() + &second.log()).contains(unstamped) {
        assert!(Instant::now() < deadline, "{}", hub.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tsa.set_down(false);
    let (code, out, _) = verify_log(&tsa_ca);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": its time stamp: no time stamp"), "{out}");

    // Forged and changed events and an untrusted checkpoint, written with a plain producer.
    let kafka = producer(&bootstrap);
    let real = mekong_tests::audit_event_records(&bootstrap, 1, |e| {
        e["event"] == "record.accepted" && e["recordId"] == delivered.as_str()
    })
    .await
    .remove(0);
    let real_value = String::from_utf8(real.payload().unwrap().to_vec()).unwrap();
    let seal = mekong_tests::header(&real, "mekong_seal").unwrap();
    let forged_value = real_value.replacen("\"q1\"", "\"intruder\"", 1);
    let forged = write(
        &kafka,
        "_mekong.audit",
        forged_value.as_bytes(),
        &[("ce_id", b"f-1")],
    )
    .await;
    let id = mekong_tests::header(&real, "ce_id").unwrap();
    let changed = write(
        &kafka,
        "_mekong.audit",
        forged_value.as_bytes(),
        &[("ce_id", id.as_bytes()), ("mekong_seal", seal.as_bytes())],
    )
    .await;
    let checkpoint = {
        let last = first_checkpoint(&bootstrap).await;
        // A checkpoint signed by another key.
        let note = last["note"].as_str().unwrap();
        let (body, _) = note.split_once("\n\n").unwrap();
        let other = std::fs::read(stranger.join("signing.key")).unwrap();
        let key = mekong_core::evidence::SigningKey::from_pem("mekong-notary", &other).unwrap();
        let mut record = last.clone();
        record["note"] = key.sign_note(&format!("{body}\n")).into();
        write(
            &kafka,
            "_mekong.checkpoints",
            &serde_json::to_vec(&record).unwrap(),
            &[],
        )
        .await
    };
    let (code, out, _) = verify_log(&[]);
    assert_eq!(code, 1, "{out}");
    for finding in [
        format!("FINDING: audit offset {forged}: forged: not sealed by the hub"),
        format!("FINDING: audit offset {changed}: changed or forged: its seal does not match it"),
        format!(
            "FINDING: checkpoint offset {checkpoint}: signed by a key not trusted (mekong-notary+"
        ),
    ] {
        assert!(out.contains(&finding), "{finding} in\n{out}");
    }
    assert_eq!(out.matches("FINDING").count(), 3, "{out}");
    // The notaries left both events out of the tree and count them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut forged_seen = 0.0;
        for m in [
            hub.metrics.clone().unwrap(),
            second.metrics.clone().unwrap(),
        ] {
            let scrape = reqwest::get(format!("{m}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            forged_seen += scrape
                .lines()
                .find_map(|l| l.strip_prefix("mekong_notary_forged_events "))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_default();
        }
        if forged_seen >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "forged events counted: {forged_seen}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Records deleted from the start of the audit topic (DeleteRecords).
    let admin_client: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let mut cut = rdkafka::TopicPartitionList::new();
    cut.add_partition_offset("_mekong.audit", 0, rdkafka::Offset::Offset(3))
        .unwrap();
    admin_client
        .delete_records(&cut, &AdminOptions::new())
        .await
        .unwrap();
    let (code, out, _) = verify_log(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("events from audit offset 0 to 2 were removed (the trail now starts at 3)"),
        "{out}"
    );

    // A notary whose key signed none of the checkpoints, and that trusts none of them, does not
    // start a tree of its own: it is not ready.
    drop(second);
    drop(hub);
    let other_key = format!("file:{}", rotated.join("signing.key").display());
    notary_args[7] = &other_key;
    notary_args.extend(["--checkpoint-max-age", "1s"]);
    let lone = Process::start(env!("CARGO_BIN_EXE_mekong"), &notary_args, "metrics on ");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = reqwest::get(format!("{}/readyz", lone.metrics.as_deref().unwrap()))
            .await
            .unwrap();
        let (status, text) = (ready.status(), ready.text().await.unwrap());
        if status == 503 && text.contains("signed by no trusted key") {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {text}\n{}", lone.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(lone);
    drop(broker);
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&resources);
}

/// The first record on `_mekong.checkpoints`.
async fn first_checkpoint(bootstrap: &str) -> Value {
    let records =
        mekong_tests::read_records(bootstrap, "_mekong.checkpoints", 1, Duration::from_secs(30))
            .await;
    serde_json::from_slice(records[0].payload().unwrap()).unwrap()
}

#[test]
fn a_signing_key_that_cannot_be_read_stops_the_start_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("mekong-badkey-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_, _, _) = mekong(&["notary", "keygen", path(&dir)]);
    let audit = format!("file:{}", dir.join("audit.key").display());
    let start = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        args.extend(extra);
        mekong(&args)
    };
    let missing = format!("file:{}", dir.join("missing.key").display());
    let (code, _, err) = start(&["--audit-key", &audit, "--signing-key", &missing]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--signing-key: cannot read") && err.contains("missing.key"),
        "{err}"
    );
    let public = format!("file:{}", dir.join("signing.pub").display());
    let (code, _, err) = start(&["--audit-key", &audit, "--signing-key", &public]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--signing-key: not a PEM PKCS#8 private key"),
        "{err}"
    );
    let signing = format!("file:{}", dir.join("signing.key").display());
    let (code, _, err) = start(&["--signing-key", &signing]);
    assert_eq!(code, 2);
    assert!(err.contains("--signing-key needs --audit-key"), "{err}");
    let (code, _, err) = start(&["--audit-key", &public]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--audit-key: an audit key is 64 or more hexadecimal digits"),
        "{err}"
    );
    let (code, _, err) = start(&["--audit-key", path(&dir.join("audit.key"))]);
    assert_eq!(code, 2);
    assert!(
        err.contains("name the secret as file:PATH or env:NAME"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
