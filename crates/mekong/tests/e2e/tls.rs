//! `mekong serve` over TLS as an operator runs it: bad certificate files stop the start naming the
//! file, the CLI talks to it with `--tls-ca`, `--tls-cert` and `--tls-key`, and a certificate
//! rotated on disk is served after SIGHUP without a restart.

use std::process::Command;
use std::time::{Duration, Instant};

use mekong_tests::pki::{ClientCert, Pki, replace, served_certificate};
use mekong_tests::process::Process;
use mekong_tests::{kafka_bootstrap, standard_resources, unique};

/// Standard resources and an admin console that must present its key and its certificate.
fn resources(s: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mekong-tls-{s}"));
    std::fs::create_dir_all(&dir).unwrap();
    let console = format!(
        "kind: Client\nname: console\nroles: [admin]\napiKeys: [{{sha256: {}}}]\ncertificates: [{{subject: {{CN: ops-console}}}}]\nauthentication: both\n",
        hex::encode(mekong_core::hash_api_key("console-key").0)
    );
    std::fs::write(
        dir.join("resources.yaml"),
        format!("{}\n---\n{console}", standard_resources(s)),
    )
    .unwrap();
    dir
}

fn mekong(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mekong"))
        .args(args)
        .env_remove("MEKONG_SERVER")
        .env_remove("MEKONG_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_rotate_on_sighup_and_call_it_with_a_certificate() {
    let s = unique();
    let pki = Pki::new("serve");
    let hub_cert = pki.server("hub");
    let console = pki.client(ClientCert {
        name: "ops-console",
        ..Default::default()
    });
    let dir = resources(&s);
    let kafka = kafka_bootstrap();
    let store = format!("_mekong.resources.tls-{s}");
    let serving = (pki.dir.join("serving.pem"), pki.dir.join("serving.key"));
    replace(&serving.0, &hub_cert.cert_pem());
    replace(&serving.1, &hub_cert.key_pem());
    let (cert, key, ca) = (
        serving.0.to_str().unwrap().to_owned(),
        serving.1.to_str().unwrap().to_owned(),
        pki.ca().to_str().unwrap().to_owned(),
    );
    let args = |cert: &str, key: &str| -> Vec<String> {
        [
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
            "--no-adapters",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--client-ca",
            &ca,
            "--metrics-tls-cert",
            cert,
            "--metrics-tls-key",
            key,
            // Only SIGHUP makes it read the files again within this test.
            "--tls-reload-interval",
            "1h",
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // Bad files stop the start, naming the file and the problem.
    let missing = pki.dir.join("missing.pem");
    let (code, _, err) = mekong(
        &args(missing.to_str().unwrap(), &key)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{}", missing.display())), "{err}");
    let (code, _, err) = mekong(
        &args(&cert, console.key.to_str().unwrap())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot serve with this key"), "{err}");

    let hub = Process::serve(
        env!("CARGO_BIN_EXE_mekong"),
        &args(&cert, &key)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()[1..],
    );
    assert!(!hub.log().contains("serves plaintext"), "{}", hub.log());
    let addr: std::net::SocketAddr = hub.grpc.parse().unwrap();
    // The health endpoint is served over TLS too, to HTTP/1.1 clients such as probes.
    let metrics = hub.metrics.clone().expect("the metrics address");
    assert!(metrics.starts_with("https://"), "{metrics}");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let health = https
        .get(format!("{metrics}/healthz"))
        .send()
        .await
        .expect("healthz over TLS");
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let plain = metrics.replace("https://", "http://");
    assert!(
        reqwest::get(format!("{plain}/healthz")).await.is_err(),
        "plaintext is not served on a TLS port"
    );
    let server = format!("https://{addr}");

    // The CLI with the console's key and certificate; with only one of them it is refused.
    let (cert_file, key_file) = (
        console.cert.to_str().unwrap(),
        console.key.to_str().unwrap(),
    );
    let tls = [
        "--server",
        &server,
        "--tls-ca",
        &ca,
        "--tls-cert",
        cert_file,
        "--tls-key",
        key_file,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        ["get", "routes"]
            .iter()
            .chain(&tls)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| mekong(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out, err) = run(with(&["--token", "console-key"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("KIND"), "{out}");
    // `get clients` shows how each client may authenticate.
    let mut clients = with(&["--token", "console-key"]);
    clients[1] = "clients".into();
    let (code, out, err) = run(clients);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains(" console "))
        .unwrap_or_default();
    assert!(
        line.ends_with("both: 1 key; subject CN=ops-console"),
        "{out}"
    );
    let (code, _, err) = run(with(&[]));
    assert_eq!(code, 1);
    assert!(
        err.contains("client `console` must also present its API key"),
        "{err}"
    );
    // The hub's certificate is from the city's CA, not one the system trusts.
    let (code, _, err) = mekong(&["get", "routes", "--server", &server, "--token", "admin-key"]);
    assert_eq!(code, 3, "{err}");

    // Rotated on disk and SIGHUP: new connections get the new certificate at once.
    let rotated = pki.server("hub-rotated");
    replace(&serving.1, &rotated.key_pem());
    replace(&serving.0, &rotated.cert_pem());
    assert_eq!(
        served_certificate(addr, &pki).await,
        Ok(hub_cert.sha256.clone())
    );
    let sent = Command::new("kill")
        .args(["-HUP", &hub.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(addr, &pki).await != Ok(rotated.sha256.clone()) {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not load the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _, err) = run(with(&["--token", "console-key"]));
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
