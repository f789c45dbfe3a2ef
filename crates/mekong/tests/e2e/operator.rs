//! The operator's commands as the operator guide writes them, against two `mekong serve` processes
//! on the real broker that share one resource store: get, diff, apply (dry run and for real),
//! delete, test-record, their exit codes and messages; the second instance follows; the state
//! survives a restart.

use std::path::Path;
use std::process::{Command, Output};

use mekong_tests::process::Process;
use std::time::{Duration, Instant};

fn mekong() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mekong"));
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    command
        .env_remove("MEKONG_SERVER")
        .env_remove("MEKONG_TOKEN");
    command
}

fn kafka() -> String {
    mekong_tests::kafka_bootstrap()
}

fn serve(store_topic: &str, resources: Option<&str>) -> Process {
    let kafka = kafka();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--kafka",
        &kafka,
        "--resources-topic",
        store_topic,
        "--topic-replication",
        "1",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    if let Some(dir) = resources {
        args.extend(["--resources", dir]);
    }
    Process::serve(env!("CARGO_BIN_EXE_mekong"), &args)
}

/// Runs `mekong ARGS --server <hub> --token admin-demo-key`.
fn admin(hub: &Process, args: &[&str]) -> Output {
    mekong()
        .args(args)
        .args(["--server", &hub.grpc, "--token", "admin-demo-key"])
        .output()
        .unwrap()
}

fn text(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_operator_commands_work_against_two_instances_sharing_one_store() {
    let store = format!(
        "_mekong.resources.cli-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let a = serve(&store, Some("examples/hcmc"));
    let b = serve(&store, None);
    // Without --tls-cert the hub says, once, that it serves plaintext.
    assert_eq!(
        a.log().matches("the gateway serves plaintext").count(),
        1,
        "{}",
        a.log()
    );
    let work = tempdir();

    // get: a table of the kind, and one resource as YAML that can be applied again.
    let (code, out, err) = text(&admin(&b, &["get", "routes"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("KIND"), "{out}");
    assert!(out.contains("dossier-to-city"), "{out}");
    let (code, yaml, err) = text(&admin(&a, &["get", "route", "payment-to-city"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        yaml.starts_with("# Route/payment-to-city: version 1"),
        "{yaml}"
    );
    let edited = yaml.replace("hcmc.payment.v1", "hcmc.payment.v2");
    assert_ne!(edited, yaml);
    let file = work.join("payment-route.yaml");
    std::fs::write(&file, &edited).unwrap();
    let file = file.to_str().unwrap();

    // diff: what apply would change; exit 1 when there are differences.
    let (code, out, err) = text(&admin(&a, &["diff", "-f", file]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("-- topic: hcmc.payment.v1"), "{out}");
    assert!(out.contains("+- topic: hcmc.payment.v2"), "{out}");

    // apply --dry-run changes nothing; apply does, on A; B follows.
    let (code, out, _) = text(&admin(&a, &["apply", "-f", file, "--dry-run"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("Route/payment-to-city updated (version 2)"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    let (code, out, err) = text(&admin(&a, &["apply", "-f", file]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Route/payment-to-city updated (version 2)\n");
    let (code, out, _) = text(&admin(&a, &["diff", "-f", file]));
    assert_eq!((code, out.as_str()), (0, "no differences\n"));
    let started = Instant::now();
    loop {
        let (_, json, _) = text(&admin(
            &b,
            &["get", "route", "payment-to-city", "-o", "json"],
        ));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        if value["version"] == 2 {
            assert_eq!(value["spec"]["to"][0]["topic"], "hcmc.payment.v2");
            assert_eq!(value["changedBy"], "platform-admin");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B did not follow: {json}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A refused apply names file, line, document and field, and exits 1.
    let bad = work.join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: Route\nname: land\nmatch: {types: [land.parcel]}\nto: [{topic: hcmc.land.v1}]\n",
    )
    .unwrap();
    let (code, _, err) = text(&admin(&a, &["apply", "-f", bad.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.yaml:1: document 1 (Route \"land\"): field `match.types[0]`: `land.parcel` matches no known record type"),
        "{err}"
    );

    // delete: refused while referred to; done otherwise.
    let (code, _, err) = text(&admin(&a, &["delete", "recordtype", "payment.completed"]));
    assert_eq!(code, 1);
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");
    assert!(
        err.contains("still referred to by Route \"payment-to-city\""),
        "{err}"
    );
    let (code, out, err) = text(&admin(
        &b,
        &["delete", "route", "business-dossiers-to-registry"],
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Route/business-dossiers-to-registry deleted (was version 1)\n"
    );

    // test-record: accepted with its routes and copies (exit 0), or rejected with why (exit 1).
    let (code, out, err) = text(&admin(
        &a,
        &[
            "test-record",
            "--type",
            "dossier.sync",
            "--as",
            "q1-one-stop",
            "examples/hcmc/samples/dossier-sync.json",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("accepted: `dossier.sync` from `q1-one-stop`"),
        "{out}"
    );
    assert!(out.contains("matched      dossier-to-city"), "{out}");
    assert!(out.contains("copy to hcmc.dossier.v1"), "{out}");
    let (code, out, _) = text(&admin(
        &a,
        &[
            "test-record",
            "--type",
            "dossier.sync",
            "--as",
            "q1-one-stop",
            "examples/hcmc/samples/dossier-sync-invalid.json",
        ],
    ));
    assert_eq!(code, 1);
    assert!(out.starts_with("rejected: INVALID_ARGUMENT"), "{out}");

    // trace: these instances keep no lineage index (no --lineage-dir), and say where to ask.
    let (code, _, err) = text(&admin(&a, &["trace", "any-record-id"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("FAILED_PRECONDITION")
            && err.contains(
                "this instance keeps no lineage index: ask one started with --lineage-dir"
            ),
        "{err}"
    );

    // Wrong key: refused (1); no hub at the address: unreachable (3).
    let output = mekong()
        .args(["get", "routes", "--server", &a.grpc, "--token", "nope"])
        .output()
        .unwrap();
    let (code, _, err) = text(&output);
    assert_eq!(code, 1);
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    let output = mekong()
        .args(["get", "routes", "--server", "127.0.0.1:1", "--token", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));

    // Restart: a fresh instance without --resources serves what the store holds.
    drop(a);
    drop(b);
    let c = serve(&store, None);
    let (code, out, err) = text(&admin(&c, &["get", "routes"]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("business-dossiers-to-registry"), "{out}");
    let payment = out.lines().find(|l| l.contains("payment-to-city")).unwrap();
    assert!(payment.contains("      2 "), "{payment}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mekong-operator-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
