//! Deadlines tracked from the stream, on the real broker, with due times a few seconds ahead: each
//! event once (overdue, extended, met, completed late, invalid), the open ones listed by
//! `ListOverdue` and counted by unit; the store rebuilt from the changelog after its directory is
//! deleted; and trackers as real processes (`mekong deadlines run`) sharing the partitions, one
//! SIGKILLed before the due time and another just after it, every overdue event written once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mekong_proto::v1 as pb;
use mekong_tests::process::Process;
use mekong_tests::{
    TestHub, authed, header, kafka_bootstrap, read_records, record, standard_resources, unique,
};
use rdkafka::message::{Message, OwnedMessage};
use serde_json::{Value, json};

fn resources(s: &str) -> String {
    format!(
        "{}\n---\nkind: Deadline\nname: due-{s}\ntrack: [dossier.sync]\nfrom: t-city-{s}\ndue: /NgayHenTra\ndone: 'has(data.NgayKetThucXuLy)'\nunit: /DonViXuLy\nto: t-deadlines-{s}\n",
        standard_resources(s)
    )
}

fn now_ms() -> i64 {
    (mekong_deadlines::wall_clock())()
}

fn dossier(key: &str, due: Value, done: bool) -> Vec<u8> {
    let mut d = json!({
        "MaHoSo": key,
        "LoaiDoiTuong": 2,
        "NgayTiepNhan": "20261201080000",
        "NgayHenTra": due,
        "DonViXuLy": "Q1",
    });
    if done {
        d["NgayKetThucXuLy"] = json!("20261201090000");
    }
    serde_json::to_vec(&d).unwrap()
}

/// Due `in_ms` from now, in RFC 3339.
fn due_in(in_ms: i64) -> Value {
    json!(mekong_core::times::utc_text(now_ms() + in_ms))
}

async fn publish(hub: &TestHub, payloads: Vec<Vec<u8>>) {
    let mut client = hub.client().await;
    for payload in payloads {
        client
            .publish(authed("q1-key", record("dossier.sync", &payload)))
            .await
            .expect("published");
    }
}

/// The events as (key, type) with their JSON, checking each one's CloudEvents headers against it.
fn events(messages: &[OwnedMessage]) -> Vec<(String, String, Value)> {
    messages
        .iter()
        .map(|m| {
            let event: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let key = event["key"].as_str().unwrap().to_owned();
            let kind = event["type"].as_str().unwrap().to_owned();
            assert_eq!(header(m, "ce_type").as_deref(), Some(kind.as_str()));
            assert_eq!(header(m, "ce_id").as_deref(), event["id"].as_str());
            assert_eq!(header(m, "ce_subject").as_deref(), Some(key.as_str()));
            assert_eq!(m.key(), Some(key.as_bytes()), "keyed like the dossier");
            (key, kind, event)
        })
        .collect()
}

/// How many committed records `topic` holds (transaction markers take offsets too: they are not
/// counted), read until nothing more comes for 3 s.
async fn committed(kafka: &str, topic: &str) -> usize {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", format!("test-{}", unique()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    // The first record waits for the group's assignment too.
    let mut n = 0;
    let mut wait = Duration::from_secs(20);
    while let Ok(Ok(_)) = tokio::time::timeout(wait, consumer.recv()).await {
        n += 1;
        wait = Duration::from_secs(3);
    }
    n
}

/// A metric's value on a metrics listener (0 when the series is not there).
async fn metric(addr: &str, series: &str) -> i64 {
    let addr = addr.trim_start_matches("http://");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i64)
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < until, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn settings(dir: &std::path::Path) -> mekong_deadlines::TrackerSettings {
    mekong_deadlines::TrackerSettings {
        dir: Some(dir.to_owned()),
        session_timeout: Duration::from_secs(6),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_moment_is_told_once_and_the_store_is_rebuilt_from_the_changelog() {
    let s = unique();
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.deadlines-{s}");
    let dir = std::env::temp_dir().join(format!("mekong-deadlines-test-{s}"));
    let hub = TestHub::start_deadlines(&kafka, &store, Some(&resources(&s)), settings(&dir)).await;
    let metrics = hub.metrics.expect("a metrics listener").to_string();
    let partitions = format!("mekong_deadline_partitions{{deadline=\"due-{s}\"}}");
    wait_for(
        "the tracker owns the 3 partitions",
        Duration::from_secs(30),
        async || metric(&metrics, &partitions).await == 3,
    )
    .await;

    let a_due = due_in(4_000);
    publish(
        &hub,
        vec![
            dossier("A", a_due.clone(), false),
            dossier("B", due_in(3_000), false),
            // B's due time moves a minute on: its first due time passes unnoticed.
            dossier("B", due_in(60_000), false),
            dossier("C", due_in(60_000), false),
            dossier("C", due_in(60_000), true),
            // Opened already late: overdue at once; then done, late.
            dossier("D", due_in(-10_000), false),
            dossier("D", due_in(-10_000), true),
            dossier("E", json!("20261341163000"), false),
        ],
    )
    .await;
    let to = format!("t-deadlines-{s}");
    let got = events(&read_records(&kafka, &to, 6, Duration::from_secs(30)).await);
    let kinds: HashSet<(String, String)> =
        got.iter().map(|(k, t, _)| (k.clone(), t.clone())).collect();
    let expected: HashSet<(String, String)> = [
        ("A", "deadline.overdue"),
        ("B", "deadline.extended"),
        ("C", "deadline.met"),
        ("D", "deadline.overdue"),
        ("D", "deadline.completed-late"),
        ("E", "deadline.invalid"),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_owned(), t.to_owned()))
    .collect();
    assert_eq!(kinds, expected);
    let late = got
        .iter()
        .find(|(k, t, _)| k == "D" && t == "deadline.completed-late")
        .unwrap();
    assert!(late.2["lateBySeconds"].as_i64().unwrap() >= 9, "{}", late.2);
    assert_eq!(late.2["unit"], "Q1");
    // B's first due time passed: nothing more is told.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(committed(&kafka, &to).await, 6, "each event once");

    let listed = hub
        .admin()
        .await
        .list_overdue(authed(
            "admin-key",
            pb::ListOverdueRequest {
                deadline: format!("due-{s}"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = listed.overdue.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["A"], "only A is open and late");
    assert_eq!(listed.overdue[0].unit, "Q1");
    let refused = hub
        .admin()
        .await
        .list_overdue(authed("q1-key", pb::ListOverdueRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let open = format!("mekong_deadlines_open{{deadline=\"due-{s}\",unit=\"Q1\"}}");
    let overdue = format!("mekong_deadlines_overdue{{deadline=\"due-{s}\",unit=\"Q1\"}}");
    assert_eq!(metric(&metrics, &open).await, 2, "A and B are open");
    assert_eq!(metric(&metrics, &overdue).await, 1);

    // The store is lost; a new hub rebuilds it from the changelog.
    hub.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = std::env::temp_dir().join(format!("mekong-deadlines-test-{s}-again"));
    let hub = TestHub::start_deadlines(&kafka, &store, None, settings(&dir)).await;
    let metrics = hub.metrics.expect("a metrics listener").to_string();
    wait_for(
        "the new tracker rebuilt A and B",
        Duration::from_secs(40),
        async || metric(&metrics, &open).await == 2 && metric(&metrics, &overdue).await == 1,
    )
    .await;
    publish(&hub, vec![dossier("A", a_due, true)]).await;
    let got = events(&read_records(&kafka, &to, 7, Duration::from_secs(30)).await);
    let a: Vec<&str> = got
        .iter()
        .filter(|(k, _, _)| k == "A")
        .map(|(_, t, _)| t.as_str())
        .collect();
    // A was known overdue from the changelog (not told again); its end is late.
    assert_eq!(a, ["deadline.overdue", "deadline.completed-late"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(committed(&kafka, &to).await, 7);
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tracker(kafka: &str, store: &str) -> Process {
    Process::start(
        env!("CARGO_BIN_EXE_mekong"),
        &[
            "deadlines",
            "run",
            "--kafka",
            kafka,
            "--resources-topic",
            store,
            "--metrics-listen",
            "127.0.0.1:0",
            "--deadlines-session-timeout",
            "6s",
        ],
        "deadlines tracked: ",
    )
}

/// Overdue events per key, on `to`, once `n` have arrived.
async fn overdue_counts(kafka: &str, to: &str, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (key, kind, _) in events(&read_records(kafka, to, n, Duration::from_secs(60)).await) {
        assert_eq!(kind, "deadline.overdue");
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_trackers_neither_lose_nor_repeat_an_overdue_moment() {
    let s = unique();
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.deadlines-{s}");
    // The gateway alone; the trackers are processes of their own.
    let hub = TestHub::start_on_store(
        &kafka,
        &store,
        Some(&resources(&s)),
        Default::default(),
        Default::default(),
    )
    .await;
    let first = tracker(&kafka, &store);
    let second = tracker(&kafka, &store);
    let partitions = format!("mekong_deadline_partitions{{deadline=\"due-{s}\"}}");
    let (m1, m2) = (
        first.metrics.clone().unwrap(),
        second.metrics.clone().unwrap(),
    );
    wait_for(
        "two trackers share the 3 partitions",
        Duration::from_secs(40),
        async || {
            let (a, b) = (
                metric(&m1, &partitions).await,
                metric(&m2, &partitions).await,
            );
            a > 0 && b > 0 && a + b == 3
        },
    )
    .await;
    let to = format!("t-deadlines-{s}");
    let batch = |prefix: &str, due: i64| -> Vec<Vec<u8>> {
        let due = json!(mekong_core::times::utc_text(due));
        (0..12)
            .map(|i| dossier(&format!("{prefix}{i}"), due.clone(), false))
            .collect()
    };

    // Both alive: each partition's dossiers are told by its owner, once.
    publish(&hub, batch("both-", now_ms() + 3_000)).await;
    let counts = overdue_counts(&kafka, &to, 12).await;
    assert_eq!(counts.len(), 12);

    // One killed before its dossiers are due: the other takes its partitions and tells them.
    publish(&hub, batch("before-", now_ms() + 6_000)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(first); // SIGKILL
    let counts = overdue_counts(&kafka, &to, 24).await;
    assert_eq!(counts.len(), 24);

    // The survivor (now owning all three) killed just after the due time, perhaps mid-transaction;
    // a third takes over from the changelog.
    let due = now_ms() + 4_000;
    publish(&hub, batch("after-", due)).await;
    tokio::time::sleep(Duration::from_millis((due - now_ms() + 150).max(0) as u64)).await;
    drop(second);
    let third = tracker(&kafka, &store);
    let m3 = third.metrics.clone().unwrap();
    let until = Instant::now() + Duration::from_secs(40);
    while metric(&m3, &partitions).await != 3 {
        assert!(
            Instant::now() < until,
            "the third tracker takes every partition within 40 s:\n{}",
            third.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counts = overdue_counts(&kafka, &to, 36).await;
    assert_eq!(counts.len(), 36, "{counts:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        committed(&kafka, &to).await,
        36,
        "every overdue moment once"
    );
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let overdue = format!("mekong_deadlines_overdue{{deadline=\"due-{s}\",unit=\"Q1\"}}");
    assert_eq!(metric(&m3, &overdue).await, 36, "rebuilt and counted");
    drop(third);
    hub.shutdown().await;
}
