//! Delivery as operators run it, with real processes on the real broker delivering to a real local
//! HTTP server: an adapter process killed (SIGKILL) in the middle of delivering and started again
//! delivers every record (none lost; a record delivered twice carries the same `Idempotency-Key`);
//! dead letters listed and replayed with `mekong dlq`; `mekong trace` following a record to its
//! delivery, and a rejected one by its key, from a lineage index that resumes after a restart and
//! rebuilds itself when deleted.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use mekong_proto::v1::PublishBatchRequest;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_tests::process::Process;
use mekong_tests::targets::{Reply, Target};
use mekong_tests::{authed, citizen_dossier, kafka_bootstrap, record, standard_resources, unique};

const RECORDS: usize = 300;

/// Starts the binary and waits for the stdout line starting with `ready`; returns the rest of it.
pub(crate) fn start(args: &[&str], ready: &str) -> (Process, String) {
    // The local targets listen on loopback, and the secret files are in the temporary directory:
    // the operator allows both.
    let runs_adapters = args.first() == Some(&"serve") || args.starts_with(&["adapters", "run"]);
    let secrets = std::env::temp_dir();
    let mut all = args.to_vec();
    if runs_adapters {
        all.extend([
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--adapter-allow-network",
            "127.0.0.0/8",
        ]);
    }
    let process = Process::start(env!("CARGO_BIN_EXE_mekong"), &all, ready);
    let rest = process.printed(ready).unwrap_or_default().to_owned();
    (process, rest)
}

/// A directory holding the standard resources and a webhook adapter `hook-<s>` from `t-city-<s>` to
/// `hook`, authenticated by `auth` (`hmacSecret` or `bearerToken`) read from a file beside them, with
/// `extra` adapter fields.
pub(crate) fn resources_with_hook(
    s: &str,
    hook: &Target,
    auth: &str,
    extra: &str,
) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mekong-hook-{s}"));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let resources = format!(
        "{}\n---\nkind: Adapter\nname: hook-{s}\ntype: webhook\nfrom: [\"t-city-{s}\"]\nendpoint: \"{}\"\n{extra}auth: {{{auth}: \"file:{}\"}}\n",
        standard_resources(s),
        hook.url("/hook"),
        secret.display()
    );
    std::fs::write(dir.join("resources.yaml"), resources).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_killed_mid_delivery_and_restarted_delivers_every_record() {
    let hook = Target::webhook().await;
    // Slow enough that the kill lands in the middle of the work.
    hook.set_latency(Duration::from_millis(20));
    let s = unique();
    let dir = resources_with_hook(&s, &hook, "hmacSecret", "concurrency: 4\n");
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.delivery-{s}");
    let common = [
        "--kafka",
        &kafka,
        "--resources-topic",
        &store,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let resources_dir = dir.to_str().unwrap();
    let (_gateway, listen) = start(
        &[
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-adapters",
                "--resources",
                resources_dir,
            ],
            &common[..],
        ]
        .concat(),
        "listening on ",
    );

    let mut client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for chunk in 0..RECORDS / 100 {
        let records = (0..100)
            .map(|i| {
                record(
                    "dossier.sync",
                    &citizen_dossier(&format!("K{}-{s}", chunk * 100 + i)),
                )
            })
            .collect();
        let answer = client
            .publish_batch(authed("q1-key", PublishBatchRequest { records }))
            .await
            .unwrap()
            .into_inner();
        for result in answer.results {
            match result.outcome {
                Some(mekong_proto::v1::publish_result::Outcome::Published(ok)) => {
                    ids.insert(ok.record_id);
                }
                other => panic!("not published: {other:?}"),
            }
        }
    }
    assert_eq!(ids.len(), RECORDS);

    let adapters_args = [&["adapters", "run"][..], &common[..]].concat();
    let (adapters, _) = start(&adapters_args, "adapters running: ");
    hook.wait_for("a first part delivered", Duration::from_secs(60), |r| {
        r.len() >= 60
    })
    .await;
    drop(adapters); // SIGKILL: no goodbye, no final commit
    let at_kill = hook.received().len();
    assert!(
        at_kill < RECORDS,
        "killed before the end ({at_kill} delivered)"
    );

    let (_adapters, _) = start(&adapters_args, "adapters running: ");
    let received = hook
        .wait_for(
            "every record after the restart",
            Duration::from_secs(120),
            |r| {
                let seen: HashSet<String> = r.iter().filter_map(|x| x.header("ce-id")).collect();
                ids.iter().all(|id| seen.contains(id))
            },
        )
        .await;
    let mut times: HashMap<String, usize> = HashMap::new();
    for request in &received {
        let id = request.header("ce-id").unwrap();
        assert_eq!(
            request.header("idempotency-key"),
            Some(id.clone()),
            "a redelivery is recognisable by its key"
        );
        *times.entry(id).or_default() += 1;
    }
    let twice = times.values().filter(|n| **n > 1).count();
    eprintln!(
        "{RECORDS} records: {at_kill} delivered before the kill, {} requests in all, {twice} delivered more than once",
        received.len()
    );
    assert!(
        received.len() > at_kill,
        "the restarted process delivered the rest"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `mekong ARGS --server <listen> --token admin-key` and returns (exit code, stdout, stderr).
pub(crate) fn admin(listen: &str, args: &[&str]) -> (i32, String, String) {
    mekong(&[args, &["--server", listen, "--token", "admin-key"]].concat())
}

/// Runs `mekong ARGS`, none of its settings taken from the environment, and returns (exit code,
/// stdout, stderr).
pub(crate) fn mekong(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mekong"))
        .args(args)
        .env_remove("MEKONG_SERVER")
        .env_remove("MEKONG_TOKEN")
        .env_remove("MEKONG_KAFKA")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_with_the_cli() {
    let hook = Target::webhook().await;
    let s = unique();
    let refused = format!("DL-{s}");
    hook.script(&refused, [mekong_tests::targets::Reply::Status(422, None)]);
    let dir = resources_with_hook(&s, &hook, "bearerToken", "");
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.dlq-{s}");
    let (hub, listen) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--resources",
            dir.to_str().unwrap(),
            "--kafka",
            &kafka,
            "--resources-topic",
            &store,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        "listening on ",
    );
    let mut client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    let record_id = client
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier(&refused)),
        ))
        .await
        .unwrap()
        .into_inner()
        .record_id;

    let adapter = format!("hook-{s}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let (code, out, err) = admin(&listen, &["dlq", "list", &adapter]);
        assert_eq!(code, 0, "{err}");
        if out.contains(&record_id) {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let line = listed.lines().find(|l| l.contains(&record_id)).unwrap();
    assert!(line.contains("dossier.sync"), "{line}");
    assert!(line.contains("422"), "{line}");
    assert!(line.contains(" no "), "not replayed yet: {line}");
    assert!(line.contains("HTTP 422"), "{line}");

    let (code, out, err) = admin(&listen, &["dlq", "replay", &adapter, "--all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("replayed {record_id}\n1 dead letter(s) of `{adapter}` sent again\n")
    );
    hook.wait_for("the replayed record", Duration::from_secs(60), |r| {
        r.iter().any(|x| x.reply == "Ok")
    })
    .await;
    let (_, out, _) = admin(&listen, &["dlq", "list", &adapter]);
    let line = out.lines().find(|l| l.contains(&record_id)).unwrap();
    assert!(line.contains(" yes "), "shown as replayed: {line}");

    // The outcomes are counted too.
    let scrape = reqwest::get(format!("{}/metrics", hub.metrics.as_deref().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (outcome, n) in [("dead_lettered", 1), ("delivered", 1)] {
        let series = format!(
            "mekong_delivery_attempts_total{{adapter=\"{adapter}\",outcome=\"{outcome}\"}} {n}"
        );
        assert!(scrape.contains(&series), "{series} in\n{scrape}");
    }
    let series = format!("mekong_dead_letters_total{{adapter=\"{adapter}\"}} 1");
    assert!(scrape.contains(&series), "{series} in\n{scrape}");

    // Consumer lag, measured every 5 s: nothing left to read on the adapter's topic.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = reqwest::get(format!("{}/metrics", hub.metrics.as_deref().unwrap()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lags: Vec<&str> = scrape
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "mekong_adapter_lag_records{{adapter=\"{adapter}\",topic=\"t-city-{s}\""
                ))
            })
            .collect();
        // Partitions the group has no position on yet report no lag.
        if !lags.is_empty() && lags.iter().all(|l| l.ends_with(" 0")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no lag of 0 reported: {lags:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let (code, _, err) = admin(
        &listen,
        &["dlq", "replay", &adapter, "--record", "no-such-record"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("NOT_FOUND"), "{err}");
    let (code, _, err) = admin(&listen, &["dlq", "list", "no-such-adapter"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("there is no adapter `no-such-adapter`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_follows_a_record_to_its_delivery_and_a_rejected_one_and_the_index_rebuilds() {
    let hook = Target::webhook().await;
    let s = unique();
    let dir = resources_with_hook(&s, &hook, "bearerToken", "");
    let index = dir.join("lineage");
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.trace-{s}");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--resources",
        dir.to_str().unwrap(),
        "--kafka",
        &kafka,
        "--resources-topic",
        &store,
        "--lineage-dir",
        index.to_str().unwrap(),
    ];
    let (hub, listen) = start(&args, "listening on ");
    let mut client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    let delivered_key = format!("T1-{s}");
    let record_id = client
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier(&delivered_key)),
        ))
        .await
        .unwrap()
        .into_inner()
        .record_id;
    let refused_key = format!("T2-{s}");
    let refused = format!(r#"{{"MaHoSo":"{refused_key}","LoaiDoiTuong":7}}"#);
    assert!(
        client
            .publish(authed("q1-key", record("dossier.sync", refused.as_bytes())))
            .await
            .is_err()
    );

    // The whole path, in order: accepted and routed, then delivered.
    let trace = |listen: String, what: Vec<String>| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let args: Vec<&str> = what.iter().map(String::as_str).collect();
            let (code, out, err) = admin(&listen, &args);
            let done = out.contains("delivery.delivered") && out.contains("record.placed");
            if code == 0 && done || out.contains("record.rejected") {
                return out;
            }
            assert!(std::time::Instant::now() < deadline, "{out}{err}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let out = trace(listen.clone(), vec!["trace".into(), record_id.clone()]).await;
    let events: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    // `record.placed` follows `record.accepted`; the delivery may come before it.
    let mut without_placed = events.clone();
    without_placed.retain(|e| *e != "record.placed");
    assert_eq!(
        without_placed,
        ["record.accepted", "delivery.delivered"],
        "{out}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == "record.placed").count(),
        1,
        "{out}"
    );
    assert!(
        events.iter().position(|e| *e == "record.placed") > Some(0),
        "{out}"
    );
    assert!(
        out.contains(&format!("key {delivered_key}, schema version 1")),
        "{out}"
    );
    assert!(out.contains(&format!("t-city-{s} [")), "{out}");
    assert!(
        out.contains(&format!("adapter hook-{s}, attempt 1")),
        "{out}"
    );

    // A refused record is found by its key, with why.
    let out = trace(
        listen.clone(),
        vec!["trace".into(), "--key".into(), refused_key.clone()],
    )
    .await;
    assert!(out.contains("record.rejected"), "{out}");
    assert!(out.contains("invalid_argument"), "{out}");
    assert!(out.contains("/LoaiDoiTuong"), "{out}");

    // Restarted on the same directory, the index resumes where it stopped: what it holds is
    // answered, and it follows what is written from then on.
    const EMPTY: &str = "lineage index empty: reading the audit trail from its start";
    assert!(hub.log().contains(EMPTY), "{}", hub.log());
    drop(hub);
    let (hub, listen) = start(&args, "listening on ");
    assert!(!hub.log().contains(EMPTY), "{}", hub.log());
    let again = trace(listen.clone(), vec!["trace".into(), record_id.clone()]).await;
    assert!(again.contains("delivery.delivered"), "{again}");
    let mut client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    let later = client
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier(&format!("T3-{s}"))),
        ))
        .await
        .unwrap()
        .into_inner()
        .record_id;
    let out = trace(listen.clone(), vec!["trace".into(), later]).await;
    assert!(out.contains("record.accepted"), "{out}");

    // The index is only an index: deleted, it is read again from the audit trail.
    drop(hub);
    std::fs::remove_dir_all(&index).unwrap();
    let (hub, listen) = start(&args, "listening on ");
    assert!(hub.log().contains(EMPTY), "{}", hub.log());
    let again = trace(listen.clone(), vec!["trace".into(), record_id.clone()]).await;
    assert!(
        again.contains("record.accepted") && again.contains("delivery.delivered"),
        "{again}"
    );
    let (code, _, err) = admin(&listen, &["trace", "no-such-record"]);
    assert_eq!(code, 1);
    assert!(err.contains("NOT_FOUND"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of one series in the hub's `/metrics`, if it is there.
async fn metric(hub: &Process, series: &str) -> Option<f64> {
    let url = format!("{}/metrics", hub.metrics.as_deref().expect("metrics"));
    let scrape = reqwest::get(url).await.ok()?.text().await.ok()?;
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `series` has `want` (`None`: is gone) or fails after `within`.
async fn wait_metric(hub: &Process, series: &str, want: Option<f64>, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let now = metric(hub, series).await;
        if now == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} is {now:?}, not {want:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_whose_buffer_stays_full_pauses_and_resumes_losing_nothing() {
    let hook = Target::webhook().await;
    let s = unique();
    // One lane (one key) held up by a target that asks for 20 s: the engine buffers up to 256
    // records (concurrency 1), then stops taking more, and pauses after 10 s of that.
    let key = format!("BP-{s}");
    hook.script(&key, [Reply::Status(503, Some(20))]);
    let dir = resources_with_hook(&s, &hook, "bearerToken", "concurrency: 1\n");
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.pause-{s}");
    let (hub, listen) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--kafka",
            &kafka,
            "--topic-replication",
            "1",
            "--resources-topic",
            &store,
            "--resources",
            dir.to_str().unwrap(),
        ],
        "listening on ",
    );
    const N: usize = 300;
    let records = (0..N)
        .map(|_| record("dossier.sync", &citizen_dossier(&key)))
        .collect();
    let answer = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap()
        .publish_batch(authed("q1-key", PublishBatchRequest { records }))
        .await
        .unwrap()
        .into_inner();
    // A batch's records are written concurrently: their order is their offsets' order.
    let mut published = Vec::new();
    let mut partition = None;
    for result in answer.results {
        match result.outcome {
            Some(mekong_proto::v1::publish_result::Outcome::Published(ok)) => {
                let city = ok
                    .placements
                    .iter()
                    .find(|p| p.topic.starts_with("t-city-"))
                    .expect("a city copy");
                partition = Some(city.partition);
                published.push((city.offset, ok.record_id));
            }
            other => panic!("not published: {other:?}"),
        }
    }
    published.sort();
    let published: Vec<String> = published.into_iter().map(|(_, id)| id).collect();
    let adapter = format!("hook-{s}");
    let paused = format!(r#"mekong_adapter_paused{{adapter="{adapter}"}}"#);
    wait_metric(&hub, &paused, Some(1.0), Duration::from_secs(40)).await;
    assert!(
        hub.log().contains("adapter paused fetching"),
        "{}",
        hub.log()
    );

    // The target takes records again after its Retry-After: every record once, in order.
    let received = hook
        .wait_for("every record", Duration::from_secs(90), |r| {
            r.iter().filter(|x| x.reply == "Ok").count() >= N
        })
        .await;
    let delivered: Vec<String> = received
        .iter()
        .filter(|r| r.reply == "Ok")
        .filter_map(|r| r.header("ce-id"))
        .collect();
    assert_eq!(
        delivered, published,
        "each record once, in the order published"
    );
    wait_metric(&hub, &paused, Some(0.0), Duration::from_secs(10)).await;
    for (outcome, count) in [("delivered", N), ("retried", 1)] {
        let series =
            format!(r#"mekong_delivery_attempts_total{{adapter="{adapter}",outcome="{outcome}"}}"#);
        assert_eq!(metric(&hub, &series).await, Some(count as f64), "{series}");
    }
    let requests =
        format!(r#"mekong_delivery_request_duration_seconds_count{{adapter="{adapter}"}}"#);
    assert_eq!(metric(&hub, &requests).await, Some((N + 1) as f64));
    // Its lag, reported every 5 s, comes down to nothing once the deliveries are committed.
    let lag = format!(
        r#"mekong_adapter_lag_records{{adapter="{adapter}",topic="t-city-{s}",partition="{}"}}"#,
        partition.expect("records were published")
    );
    wait_metric(&hub, &lag, Some(0.0), Duration::from_secs(30)).await;

    // Removed at runtime: the adapter stops, and its gauges go with it.
    let (code, out, err) = admin(&listen, &["delete", "adapter", &adapter]);
    assert_eq!(code, 0, "{out}{err}");
    wait_metric(&hub, &paused, None, Duration::from_secs(20)).await;
    assert_eq!(metric(&hub, &lag).await, None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_paused_by_an_admin_delivers_nothing_on_any_instance_until_resumed() {
    let hook = Target::webhook().await;
    let s = unique();
    let dir = resources_with_hook(&s, &hook, "bearerToken", "");
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.pause-{s}");
    let common = [
        "--kafka",
        &kafka,
        "--resources-topic",
        &store,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let serve = [
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--resources",
            dir.to_str().unwrap(),
        ],
        &common[..],
    ]
    .concat();
    let (gateway, listen) = start(&serve, "listening on ");
    // A second instance runs the same adapter: the pause reaches it through the resource store.
    let (adapters, _) = start(
        &[&["adapters", "run"][..], &common[..]].concat(),
        "adapters running: ",
    );
    let adapter = format!("hook-{s}");
    let client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    let publish = |key: String| {
        let mut client = client.clone();
        async move {
            client
                .publish(authed(
                    "q1-key",
                    record("dossier.sync", &citizen_dossier(&key)),
                ))
                .await
                .unwrap();
        }
    };
    publish(format!("BEFORE-{s}")).await;
    hook.wait_for("delivered before the pause", Duration::from_secs(60), |r| {
        r.iter().any(|x| x.key == format!("BEFORE-{s}"))
    })
    .await;

    let (code, out, err) = admin(&listen, &["adapters", "pause", &adapter]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("adapter {adapter} paused (version 2)\n"));
    let (code, out, _) = admin(&listen, &["adapters", "pause", &adapter]);
    assert_eq!(
        (code, out),
        (0, format!("adapter {adapter} was already paused\n"))
    );
    for process in [&gateway, &adapters] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !process.log().contains("adapter paused by an administrator") {
            assert!(std::time::Instant::now() < deadline, "{}", process.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for n in 0..5 {
        publish(format!("DURING-{n}-{s}")).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = |r: &[mekong_tests::targets::Received]| {
        r.iter().filter(|x| x.key.starts_with("DURING-")).count()
    };
    assert_eq!(
        during(&hook.received()),
        0,
        "nothing delivered while paused"
    );
    let (_, yaml, _) = admin(&listen, &["get", "adapter", &adapter, "-o", "yaml"]);
    assert!(yaml.contains("paused: true"), "{yaml}");
    let events = mekong_tests::audit_events(&kafka, 1, |e| {
        e["event"] == "resource.changed" && e["name"] == adapter.as_str() && e["action"] == "pause"
    })
    .await;
    assert_eq!(events[0]["actor"], "ops");
    assert_eq!(
        (
            events[0]["oldVersion"].as_u64(),
            events[0]["newVersion"].as_u64()
        ),
        (Some(1), Some(2))
    );

    let (code, out, err) = admin(&listen, &["adapters", "resume", &adapter]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("adapter {adapter} resumed (version 3)\n"));
    hook.wait_for("what waited, delivered", Duration::from_secs(60), |r| {
        during(r) == 5
    })
    .await;
    let (code, _, err) = admin(&listen, &["adapters", "pause", "no-such-adapter"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("there is no adapter `no-such-adapter`"),
        "{err}"
    );
    drop(adapters);
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
}
