//! The binary as an operator meets it: bad resource files stop it at start with errors that say
//! where and what; with no flags it serves the city's examples on an embedded backbone that any
//! Kafka client can read.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mekong_tests::process::Process;

fn mekong() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mekong"));
    // Resource paths like examples/hcmc are relative to the repository root.
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    command
}

/// A directory holding the given files, removed afterwards.
struct Files(PathBuf);

impl Files {
    fn new(files: &[(&str, &str)]) -> Files {
        let dir = std::env::temp_dir().join(format!(
            "mekong-cli-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Files(dir)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Runs `mekong serve` on resources that must be refused; returns its stderr.
fn refused(files: &[(&str, &str)]) -> String {
    let dir = Files::new(files);
    let out = mekong()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--resources",
        ])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "serve must not start on invalid resources"
    );
    String::from_utf8(out.stderr).unwrap()
}

const TYPE: &str = "kind: RecordType\nname: dossier.sync\nkey: /MaHoSo\nschema: {type: object}\n";

#[test]
fn invalid_resources_stop_the_server_naming_file_document_field_and_problem() {
    let err = refused(&[("a.yaml", &format!("{TYPE}---\nkind: Gizmo\nname: g\n"))]);
    assert!(
        err.contains("a.yaml:6: document 2: field `kind`: unknown kind `Gizmo`"),
        "{err}"
    );

    let err = refused(&[
        ("types.yaml", TYPE),
        (
            "routes.yml",
            "kind: Route\nname: r\nmatch: {types: [dossier.sync], when: 'data.x =='}\nto: [{topic: 'not a topic'}]\n",
        ),
    ]);
    assert!(
        err.contains(
            "routes.yml:1: document 1 (Route \"r\"): field `match.when`: CEL does not parse"
        ),
        "{err}"
    );
    assert!(
        err.contains("routes.yml:1: document 1 (Route \"r\"): field `to[0].topic`"),
        "{err}"
    );

    let err = refused(&[(
        "t.json",
        r#"{"kind": "RecordType", "name": "x", "key": "MaHoSo", "schema": {"type": "nope"}}"#,
    )]);
    assert!(
        err.contains("t.json:1: document 1 (RecordType \"x\"): field `key`"),
        "{err}"
    );
    assert!(
        err.contains("field `schema`: not a valid JSON Schema"),
        "{err}"
    );

    let err = refused(&[("a.yaml", TYPE), ("b.yaml", TYPE)]);
    assert!(err.contains("b.yaml:1: document 1 (RecordType \"dossier.sync\"): field `name`: RecordType/dossier.sync appears twice; first in"), "{err}");

    let err = refused(&[(
        "a.yaml",
        &format!(
            "{TYPE}---\nkind: Route\nname: r\nmatch: {{types: [payment.*]}}\nto: [{{topic: t}}]\n"
        ),
    )]);
    assert!(
        err.contains("field `match.types[0]`: `payment.*` matches no known record type"),
        "{err}"
    );

    let err = refused(&[(
        "a.yaml",
        "kind: Client\nname: c\nroles: [publisher]\nunknown: 1\n",
    )]);
    assert!(
        err.contains("a.yaml:1: document 1: field `unknown`"),
        "{err}"
    );

    let err = refused(&[("a.yaml", "kind: [\n")]);
    assert!(err.contains("document 1: not valid YAML/JSON"), "{err}");

    let err = refused(&[("readme.txt", "not a resource")]);
    assert!(err.contains("no *.yaml, *.yml or *.json files"), "{err}");
}

#[test]
fn the_city_examples_are_valid() {
    for (dir, counts) in [
        (
            "examples/hcmc",
            "(3 record types, 5 routes, 4 clients, 0 adapters)",
        ),
        (
            "examples/hcmc/adapters",
            "(0 record types, 0 routes, 0 clients, 2 adapters)",
        ),
    ] {
        let out = mekong().args(["check", dir]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{dir}: OK {counts}\n")
        );
    }
}

/// A running `mekong tail`, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_no_flags_it_serves_the_examples_on_an_embedded_backbone_any_kafka_client_can_read() {
    let served = Process::start(
        env!("CARGO_BIN_EXE_mekong"),
        &[
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        "listening on ",
    );
    let bootstrap = served
        .printed("kafka bootstrap: ")
        .expect("serve prints the embedded backbone's address")
        .to_owned();
    let listen = served.grpc.clone();

    use mekong_proto::v1::{PublishRequest, ingest_service_client::IngestServiceClient};
    let mut client = IngestServiceClient::connect(format!("http://{listen}"))
        .await
        .unwrap();
    let payload = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hcmc/samples/dossier-sync.json"),
    )
    .unwrap();
    let mut request = tonic::Request::new(PublishRequest {
        record_type: "dossier.sync".into(),
        payload: payload.clone().into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer q1-demo-key".parse().unwrap());
    let response = client
        .publish(request)
        .await
        .expect("published on the embedded backbone")
        .into_inner();
    assert!(
        response
            .placements
            .iter()
            .any(|p| p.topic == "hcmc.dossier.v1"),
        "{response:?}"
    );

    // Any Kafka client reads it from the printed address: here a plain consumer (no group; the
    // mock cluster's first group join is slow) assigned to the partition the record went to.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "cli-test")
        .create()
        .unwrap();
    let placement = response
        .placements
        .iter()
        .find(|p| p.topic == "hcmc.dossier.v1")
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(
            &placement.topic,
            placement.partition,
            rdkafka::Offset::Offset(placement.offset),
        )
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let message = consumer
        .poll(Duration::from_secs(30))
        .expect("a record within 30 s")
        .unwrap();
    assert_eq!(message.payload(), Some(&payload[..]));
    drop(message);
    // `mekong tail` reads it back through the gateway's SubscribeService, as a JSON line.
    let mut tail = mekong()
        .args([
            "tail",
            "hcmc.dossier.v1",
            "--token",
            "dw-demo-key",
            "--server",
            &listen,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let tailed = Killed(tail);
    let (sender, first_line) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(lines.next()));
    let line = first_line
        .recv_timeout(Duration::from_secs(60))
        .expect("tail prints a line within 60 s")
        .unwrap()
        .unwrap();
    drop(tailed);
    let printed: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(printed["record_id"], response.record_id.as_str(), "{line}");
    assert_eq!(printed["record_type"], "dossier.sync", "{line}");
    let sent: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(printed["data"], sent, "{line}");

    // The examples' README says what each sample gives, placements in order: checked here, after
    // `tail` read the first record (these would come before it on some partitions).
    readme_samples_publish_as_documented(&mut client).await;

    // Close the consumer while the backbone is still there, or closing waits for it in vain.
    drop(consumer);
    let log = served.log();
    drop(served);
    // With --log-format json every log line is a JSON object.
    let warning = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("NOT durable"))
        });
    let warning = warning.unwrap_or_else(|| {
        panic!("the embedded backbone warns, as JSON, that it is not durable:\n{log}")
    });
    assert_eq!(warning["level"], "WARN");
}

/// Publishes every sample of examples/hcmc/README.md's table with the key it names and compares the
/// answer with the table: the topics in the order given, or the refusal and its message as the
/// README quotes it.
async fn readme_samples_publish_as_documented(
    client: &mut mekong_proto::v1::ingest_service_client::IngestServiceClient<
        tonic::transport::Channel,
    >,
) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hcmc");
    let readme = std::fs::read_to_string(examples.join("README.md")).unwrap();
    let quoted = |cell: &str| cell.split('`').nth(1).unwrap_or_default().to_owned();
    let message = readme
        .lines()
        .find_map(|l| l.trim().strip_prefix("Message: "))
        .expect("the README quotes a refusal");
    let mut rows = 0;
    for line in readme
        .lines()
        .filter(|l| l.starts_with("| `samples/") && !l.contains('*'))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (file, record_type, key, expected) = (
            quoted(cells[1]),
            quoted(cells[2]),
            quoted(cells[3]),
            cells[4],
        );
        let mut request = tonic::Request::new(mekong_proto::v1::PublishRequest {
            record_type,
            payload: std::fs::read(examples.join(&file)).unwrap().into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        let answer = client.publish(request).await;
        if let Some(topics) = expected.strip_prefix("OK: ") {
            let want: Vec<String> = topics.split(", ").map(quoted).collect();
            let got: Vec<String> = answer
                .unwrap_or_else(|e| panic!("{file}: {e:?}"))
                .into_inner()
                .placements
                .into_iter()
                .map(|p| p.topic)
                .collect();
            assert_eq!(got, want, "{file}");
        } else {
            assert!(expected.starts_with("INVALID_ARGUMENT"), "{line}");
            let status = answer.expect_err(&file);
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{file}");
            assert_eq!(status.message(), message, "{file}");
        }
        rows += 1;
    }
    assert_eq!(rows, 8, "the README's table of samples");
}

#[test]
fn dev_certs_let_the_embedded_hub_serve_mutual_tls() {
    let dir = std::env::temp_dir().join(format!("mekong-dev-certs-{}", rand_suffix()));
    let d = dir.to_str().unwrap().to_owned();
    let out = mekong().args(["dev-certs", &d]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for client in [
        "q1-one-stop",
        "binh-thanh-one-stop",
        "city-data-warehouse",
        "platform-admin",
    ] {
        assert!(dir.join(format!("{client}.pem")).exists(), "{client}");
    }
    // Never over files that are there.
    let again = mekong().args(["dev-certs", &d]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("does not overwrite"));

    let file = |name: &str| format!("{d}/{name}");
    let served = Process::serve(
        env!("CARGO_BIN_EXE_mekong"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &file("hub.pem"),
            "--tls-key",
            &file("hub.key"),
            "--client-ca",
            &file("ca.pem"),
        ],
    );
    let server = format!("https://{}", served.grpc);
    let call = |extra: &[&str]| {
        let out = mekong()
            .args(["get", "routes", "--server", &server])
            .args(extra)
            .env_remove("MEKONG_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ca, cert, key) = (
        file("ca.pem"),
        file("platform-admin.pem"),
        file("platform-admin.key"),
    );
    let (code, err) = call(&[
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--token",
        "admin-demo-key",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // The examples bind no certificates yet: one alone is trusted, and named, but nobody's.
    let (q1_cert, q1_key) = (file("q1-one-stop.pem"), file("q1-one-stop.key"));
    let (code, err) = call(&[
        "--tls-ca",
        &ca,
        "--tls-cert",
        &q1_cert,
        "--tls-key",
        &q1_key,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`CN=q1-one-stop`") && err.contains("no client binds it"),
        "{err}"
    );
    // The development CA is no system root.
    let (code, err) = call(&["--token", "admin-demo-key"]);
    assert_eq!(code, Some(3), "{err}");
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}
