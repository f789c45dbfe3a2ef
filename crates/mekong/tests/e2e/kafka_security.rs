//! The hub on a Kafka it reaches over SASL_SSL only (SCRAM-SHA-512 over TLS): a private broker
//! with such a listener (`deploy/kafka/kafka.sh`), and `mekong serve` publishing, serving a
//! subscription and delivering to a webhook through it, its password read from a file and never
//! printed; a wrong password stops the start.

use std::time::Duration;

use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_tests::pki::Pki;
use mekong_tests::process::Process;
use mekong_tests::subscriber::{Consumer, subscription};
use mekong_tests::targets::Target;
use mekong_tests::{PrivateBroker, authed, citizen_dossier, record, standard_resources, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_and_deliver_over_sasl_ssl_with_the_password_from_a_file() {
    let s = unique();
    let pki = Pki::new("kafka");
    let broker_cert = pki.server("broker");
    let keystore = pki.dir.join("broker-keystore.pem");
    std::fs::write(
        &keystore,
        format!("{}{}", broker_cert.key_pem(), broker_cert.cert_pem()),
    )
    .unwrap();
    let password = format!("pw-{s}");
    let users = format!("mekong={password}");
    let broker = PrivateBroker::start_with(&[
        ("MEKONG_KAFKA_SASL_SSL", keystore.to_str().unwrap()),
        ("MEKONG_KAFKA_SCRAM_USERS", &users),
        ("MEKONG_KAFKA_AUTO_CREATE_TOPICS", "false"),
    ]);
    let secure = broker.sasl_ssl_bootstrap().expect("a SASL_SSL listener");

    let hook = Target::webhook().await;
    let dir = std::env::temp_dir().join(format!("mekong-sasl-{s}"));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("hook-token");
    std::fs::write(&token, "t0ken\n").unwrap();
    std::fs::write(
        dir.join("resources.yaml"),
        format!(
            "{}\n---\nkind: Adapter\nname: hook-{s}\ntype: webhook\nfrom: [\"t-city-{s}\"]\nendpoint: \"{}\"\nauth: {{bearerToken: \"file:{}\"}}\n",
            standard_resources(&s),
            hook.url("/hook"),
            token.display()
        ),
    )
    .unwrap();
    let secret = |text: &str| {
        let file = dir.join(format!("kafka-password-{}", unique()));
        std::fs::write(&file, format!("{text}\n")).unwrap();
        format!("sasl.password=file:{}", file.display())
    };
    let ca = format!("ssl.ca.location={}", pki.ca().display());
    let serve_args = |password_option: &str| -> Vec<String> {
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--kafka",
            &secure,
            "--kafka-option",
            "security.protocol=SASL_SSL",
            "--kafka-option",
            "sasl.mechanisms=SCRAM-SHA-512",
            "--kafka-option",
            "sasl.username=mekong",
            "--kafka-option",
            password_option,
            "--kafka-option",
            &ca,
            "--topic-replication",
            "1",
            "--resources",
            dir.to_str().unwrap(),
            "--secrets-dir",
            dir.to_str().unwrap(),
            "--adapter-allow-network",
            "127.0.0.0/8",
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // A wrong password: the start fails as Kafka being out of reach, and says nothing of it.
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_mekong"))
        .args(serve_args(&secret("not-the-password")))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&wrong.stdout),
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert_eq!(wrong.status.code(), Some(3), "{said}");
    assert!(!said.contains("not-the-password"), "{said}");

    let args = serve_args(&secret(&password));
    let hub = Process::serve(
        env!("CARGO_BIN_EXE_mekong"),
        &args.iter().map(String::as_str).collect::<Vec<_>>()[1..],
    );
    let record_id = IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap()
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier(&format!("SASL-{s}"))),
        ))
        .await
        .expect("published over SASL_SSL")
        .into_inner()
        .record_id;
    let mut reader = Consumer::open_at(
        &hub.grpc,
        "reader-key",
        subscription(&format!("t-city-{s}"), &format!("sasl-{s}")),
    )
    .await
    .unwrap();
    let read = reader
        .next(Duration::from_secs(60))
        .await
        .expect("read back over SASL_SSL");
    assert_eq!(read.record_id, record_id);
    hook.wait_for("delivered from SASL_SSL", Duration::from_secs(60), |r| {
        r.iter()
            .any(|x| x.header("ce-id").as_deref() == Some(record_id.as_str()))
    })
    .await;
    assert!(!hub.log().contains(&password), "the password in the log");
    drop(reader);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
