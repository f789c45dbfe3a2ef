//! The administrators' console in a real browser: Debian's chromium driven by Selenium
//! (tests/python/console_test.py, with the Python of ./deploy/test.sh), against a hub on the real
//! broker. What the browser cannot see is checked here: the audit trail of the sign-ins and of
//! the adapter paused and resumed, made as the person's client.

use std::time::Duration;

use mekong_console::ConsoleConfig;
use mekong_tests::*;

/// The standard resources, an admin and an auditor of this test's own, an adapter to pause, and a record type whose description
/// tries to run a script.
fn resources(s: &str, endpoint: &str) -> String {
    format!(
        r#"{standard}
---
kind: Client
name: admin-{s}
roles: [admin]
apiKeys: [{{sha256: "{admin}"}}]
---
kind: Client
name: inspector
roles: [auditor]
apiKeys: [{{sha256: "{auditor}"}}]
---
kind: RecordType
name: dossier.xss
description: '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> xss'
schema: {{type: object}}
---
kind: Adapter
name: portal-{s}
type: webhook
from: ["t-city-{s}"]
endpoint: "{endpoint}"
auth: {{hmacSecret: "{secret}"}}
"#,
        standard = standard_resources(s),
        auditor = hex::encode(mekong_core::hash_api_key("auditor-key").0),
        admin = hex::encode(mekong_core::hash_api_key(&format!("admin-{s}-key")).0),
        secret = secret_file("portal-secret", "shared-secret"),
        endpoint = endpoint,
    )
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The browser's binaries, which ./deploy/test.sh installs from Debian's packages.
fn browser_env() -> [(&'static str, String); 2] {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            refuse(&format!(
                "{name} is not set: run ./deploy/test.sh, which installs chromium and chromium-driver"
            ))
        })
    };
    [
        ("MEKONG_TEST_CHROMIUM", var("MEKONG_TEST_CHROMIUM")),
        ("MEKONG_TEST_CHROMEDRIVER", var("MEKONG_TEST_CHROMEDRIVER")),
    ]
}

/// Runs one scenario of console_test.py against `hub`; its screenshots go to
/// target/console-screenshots/SCENARIO.
async fn run_browser(scenario: &str, hub: &TestHub, s: &str) {
    let console = format!(
        "http://{}/console",
        hub.metrics.expect("a metrics listener")
    );
    let shots = repo_root()
        .join("target/console-screenshots")
        .join(scenario);
    let script = repo_root().join("tests/python/console_test.py");
    let out = tokio::process::Command::new(test_python())
        .arg(&script)
        .args([scenario, &console, &hub.url(""), &shots.to_string_lossy()])
        .envs(browser_env())
        .env("MEKONG_TEST_ADAPTER", format!("portal-{s}"))
        .env("MEKONG_TEST_ADMIN", format!("admin-{s}"))
        .env("MEKONG_TEST_DOSSIER", format!("H29-CONSOLE-{s}"))
        .env("MEKONG_TEST_ADMIN_KEY", format!("admin-{s}-key"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "console_test.py {scenario} failed ({}):\nstdout: {}\nstderr: {}\n(screenshots in {})",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        shots.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_and_an_auditor_use_the_console_in_a_browser() {
    let s = unique();
    // The portal's sandbox refuses the first delivery of the browser's dossier for good (a dead
    // letter), and takes it when it is replayed.
    let target = mekong_tests::targets::Target::webhook().await;
    target.script(
        &format!("H29-CONSOLE-{s}"),
        [mekong_tests::targets::Reply::Status(400, None)],
    );
    let hub = TestHub::start_console(
        &kafka_bootstrap(),
        &resources(&s, &target.url("/hook")),
        ConsoleConfig {
            free_failures: 3,
            ..ConsoleConfig::default()
        },
    )
    .await;
    let started = now();
    run_browser("main", &hub, &s).await;

    // The replayed dead letter reached the target: refused once, then taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let replies: Vec<String> = target
            .received()
            .into_iter()
            .filter(|r| r.key == format!("H29-CONSOLE-{s}"))
            .map(|r| r.reply)
            .collect();
        if replies.len() >= 2 {
            assert!(replies[0].contains("400"), "{replies:?}");
            assert!(!replies[1].contains("400"), "{replies:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{replies:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replayed = audit_events(&hub.bootstrap, 1, |e| {
        e["event"] == "delivery.replayed" && e["adapter"] == format!("portal-{s}").as_str()
    })
    .await;
    assert_eq!(replayed[0]["actor"], format!("admin-{s}").as_str());

    // Revealing a copy's personal data is on the audit trail, naming the record.
    let revealed = audit_events(&hub.bootstrap, 1, |e| {
        e["event"] == "console.session"
            && e["outcome"] == "revealed"
            && e["client"] == format!("admin-{s}").as_str()
    })
    .await;
    assert!(
        revealed[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("t-city-")),
        "{revealed:?}"
    );

    // The pause and the resume are audited as changes of the admin's own client, as the CLI's.
    let changes = audit_events(&hub.bootstrap, 2, |e| {
        e["event"] == "resource.changed"
            && e["name"] == format!("portal-{s}").as_str()
            && e["action"] != "apply"
    })
    .await;
    let actions: Vec<&str> = changes
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["pause", "resume"], "{changes:?}");
    let admin = format!("admin-{s}");
    assert!(
        changes.iter().all(|e| e["actor"] == admin.as_str()),
        "{changes:?}"
    );
    assert_eq!(changes[0]["authenticated"]["by"], "key");
    assert!(
        changes[0]["authenticated"]["keyId"].is_string(),
        "{changes:?}"
    );
    // Every sign-in, refused or not, the reveal and the sign-out, with where they came from.
    let sessions = audit_events(&hub.bootstrap, 6, |e| {
        e["event"] == "console.session"
            && e["address"] == "127.0.0.1"
            && e["time"].as_str().is_some_and(|t| t >= started.as_str())
            && (e["client"] == admin.as_str()
                || e["client"] == "inspector"
                || e["outcome"] == "refused")
    })
    .await;
    let outcomes: Vec<(&str, &str)> = sessions
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap(),
                e["client"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(outcomes.contains(&("refused", "")), "{outcomes:?}");
    assert!(outcomes.contains(&("refused", "q1")), "{outcomes:?}");
    assert!(
        outcomes.contains(&("signed_in", admin.as_str())),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("signed_out", admin.as_str())),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("signed_in", "inspector")),
        "{outcomes:?}"
    );

    guessing_is_slowed(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_sends_the_person_to_sign_in_and_back() {
    let s = unique();
    let short = ConsoleConfig {
        session_ttl: Duration::from_secs(2),
        ..ConsoleConfig::default()
    };
    let hub = TestHub::start_console(
        &kafka_bootstrap(),
        &resources(&s, "http://127.0.0.1:9/nowhere"),
        short,
    )
    .await;
    run_browser("expiry", &hub, &s).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_dossiers_are_counted_by_unit_and_listed_in_the_browser() {
    let s = unique();
    let yaml = format!(
        "{}\n---\nkind: Deadline\nname: due-{s}\ntrack: [dossier.sync]\nfrom: t-city-{s}\ndue: /NgayHenTra\ndone: 'has(data.NgayKetThucXuLy)'\nunit: /DonViXuLy\nto: t-deadlines-{s}\n",
        resources(&s, "http://127.0.0.1:9/nowhere")
    );
    let hub = TestHub::start_console_deadlines(
        &kafka_bootstrap(),
        &yaml,
        ConsoleConfig::default(),
        mekong_deadlines::TrackerSettings::default(),
    )
    .await;
    run_browser("deadlines", &hub, &s).await;
    hub.shutdown().await;
}

/// Wrong keys from one address: three are heard, then each further attempt waits, even with the
/// right key (the address is slowed, not the key).
async fn guessing_is_slowed(hub: &TestHub) {
    let url = format!("http://{}/console/sign-in", hub.metrics.unwrap());
    let http = reqwest::Client::new();
    let attempt = |key: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(url)
                .form(&[("key", key), ("next", "/console")])
                .send()
                .await
                .unwrap()
        }
    };
    // The browser's wrong keys counted; a success forgave them. Three more are free here.
    for _ in 0..3 {
        assert_eq!(attempt("guess").await.status(), 401);
    }
    assert_eq!(
        attempt("guess").await.status(),
        401,
        "the fourth is heard, and slows"
    );
    let slowed = attempt("guess").await;
    assert_eq!(slowed.status(), 429);
    assert!(slowed.headers().contains_key("retry-after"));
    assert_eq!(attempt("admin-key").await.status(), 429);
}
