//! The deployment files under deploy/ cannot be run here (no container registry, no cluster), so
//! they are checked: every YAML parses; Kubernetes objects are well-formed and agree with each other
//! (selectors and labels, probe and container ports, Strimzi topics); the Dockerfile's final stage
//! runs as non-root and copies from a stage that exists; the systemd unit has its sections; and every
//! `mekong` command line in them uses flags the binary accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every flag (`--name`) of `mekong ARGS...` is one the binary's help for that command lists.
fn assert_flags_exist(args: &[String], file: &str) {
    let command: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with('-'))
        .collect();
    let help = Command::new(env!("CARGO_BIN_EXE_mekong"))
        .args(&command)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{file}: `mekong {}` is no command",
        command.join(" ")
    );
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let flag = flag.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{file}: `mekong {}` has no flag {flag}",
            command.join(" ")
        );
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn kubernetes_manifests_are_well_formed_and_agree_with_each_other() {
    let dir = deploy("kubernetes");
    let kustomization = &documents(&dir.join("kustomization.yaml"))[0];
    let mut objects = Vec::new();
    for file in strings(&kustomization["resources"]) {
        let path = dir.join(&file);
        assert!(path.exists(), "kustomization lists a missing {file}");
        objects.extend(documents(&path).into_iter().map(|o| (file.clone(), o)));
    }
    let listed: Vec<String> = strings(&kustomization["resources"]);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                listed.contains(&name),
                "{name} is not in kustomization.yaml"
            );
        }
    }

    let deployments: Vec<&Value> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["kind"] == "Deployment")
        .collect();
    assert_eq!(deployments.len(), 2, "the gateway and the adapters");
    for (file, object) in &objects {
        for field in ["apiVersion", "kind"] {
            assert!(
                object[field].is_string(),
                "{file}: an object without {field}"
            );
        }
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{file}: `{name}` is not a valid Kubernetes name"
        );
        match object["kind"].as_str().unwrap() {
            "Deployment" => {
                let spec = &object["spec"];
                let labels = &spec["template"]["metadata"]["labels"];
                assert!(
                    labels_match(&spec["selector"]["matchLabels"], labels),
                    "{file}: {name}'s selector does not select its pods"
                );
                let pod = &spec["template"]["spec"];
                assert_eq!(
                    pod["securityContext"]["runAsNonRoot"], true,
                    "{file}: {name} runs as root"
                );
                for container in pod["containers"].as_array().unwrap() {
                    let args = strings(&container["args"]);
                    assert_flags_exist(&args, file);
                    let ports: Vec<i64> = container["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["containerPort"].as_i64())
                        .collect();
                    // A probe's port, by number or by the name of a container port.
                    let port_of = |port: &Value| -> Option<i64> {
                        port.as_i64().or_else(|| {
                            container["ports"]
                                .as_array()?
                                .iter()
                                .find(|p| p["name"] == *port)?["containerPort"]
                                .as_i64()
                        })
                    };
                    // The port a flag makes the process listen on, if it listens beyond loopback
                    // (the kubelet probes the pod's address).
                    let listening = |flag: &str| -> Option<i64> {
                        let at = args.iter().position(|a| a == flag)?;
                        let addr = args.get(at + 1)?;
                        let (host, port) = addr.rsplit_once(':')?;
                        (host != "127.0.0.1" && host != "localhost")
                            .then(|| port.parse().ok())
                            .flatten()
                    };
                    for (probe, http_path) in
                        [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]
                    {
                        let spec = &container[probe];
                        assert!(spec.is_object(), "{file}: {name} has no {probe}");
                        if spec["grpc"].is_object() {
                            let port = port_of(&spec["grpc"]["port"]);
                            assert!(
                                port.is_some_and(|p| ports.contains(&p)),
                                "{file}: {probe} on a port not exposed"
                            );
                            assert_eq!(
                                port,
                                listening("--listen"),
                                "{file}: {probe} probes gRPC where the hub does not listen"
                            );
                        } else {
                            let get = &spec["httpGet"];
                            assert_eq!(
                                get["path"], http_path,
                                "{file}: {name}'s {probe} asks the wrong path"
                            );
                            let port = port_of(&get["port"]);
                            assert!(
                                port.is_some_and(|p| ports.contains(&p)),
                                "{file}: {probe} on a port not exposed"
                            );
                            assert_eq!(
                                port,
                                listening("--metrics-listen"),
                                "{file}: {probe} probes {http_path} where the hub does not serve it \
                                 (--metrics-listen must be on that port, beyond loopback)"
                            );
                        }
                    }
                    if args.first().map(String::as_str) == Some("serve") {
                        assert!(
                            container["readinessProbe"].is_object(),
                            "{file}: the gateway needs a readiness probe"
                        );
                        let listen = args
                            .iter()
                            .position(|a| a == "--listen")
                            .map(|i| &args[i + 1]);
                        let port: i64 = listen
                            .and_then(|l| l.rsplit(':').next()?.parse().ok())
                            .unwrap();
                        assert!(
                            ports.contains(&port),
                            "{file}: listens on {port}, exposes {ports:?}"
                        );
                    }
                    let security = &container["securityContext"];
                    assert_eq!(security["allowPrivilegeEscalation"], false, "{file}");
                    assert_eq!(security["readOnlyRootFilesystem"], true, "{file}");
                }
            }
            "Service" | "PodDisruptionBudget" => {
                let selector = match object["kind"].as_str() {
                    Some("Service") => &object["spec"]["selector"],
                    _ => &object["spec"]["selector"]["matchLabels"],
                };
                assert!(
                    deployments.iter().any(|d| labels_match(
                        selector,
                        &d["spec"]["template"]["metadata"]["labels"]
                    )),
                    "{file}: {name} selects no pods"
                );
            }
            "KafkaTopic" => {
                assert!(
                    object["metadata"]["labels"]["strimzi.io/cluster"].is_string(),
                    "{file}: {name} names no Strimzi cluster"
                );
                let spec = &object["spec"];
                let topic = spec["topicName"].as_str().unwrap();
                mekong_core::check_topic_name(topic)
                    .or_else(|e| {
                        if topic.starts_with(mekong_core::INTERNAL_TOPIC_PREFIX) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .unwrap_or_else(|e| panic!("{file}: {topic}: {e}"));
                assert!(spec["partitions"].as_i64().unwrap() >= 1);
                assert!(spec["replicas"].as_i64().unwrap() >= 1);
                for (key, value) in spec["config"].as_object().into_iter().flatten() {
                    assert!(
                        value.is_string(),
                        "{file}: {topic}: config {key} must be a string"
                    );
                }
            }
            "Namespace" | "ConfigMap" => {}
            other => panic!("{file}: unexpected kind {other}"),
        }
    }
    let resources = objects
        .iter()
        .find(|(_, o)| o["spec"]["topicName"] == "_mekong.resources")
        .expect("the resource store's topic is declared");
    assert_eq!(
        resources.1["spec"]["partitions"], 1,
        "the store has one partition"
    );
    assert_eq!(resources.1["spec"]["config"]["cleanup.policy"], "compact");
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_non_root_in_another() {
    let text = std::fs::read_to_string(deploy("docker/Dockerfile")).unwrap();
    let mut stages = Vec::new();
    let mut user = None;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("FROM") => {
                assert!(
                    words[1].contains(':'),
                    "base images are pinned by tag: {line}"
                );
                stages.push(words.get(3).map(|s| s.to_string()));
                user = None;
            }
            Some("COPY") => {
                if let Some(from) = words.iter().find_map(|w| w.strip_prefix("--from=")) {
                    assert!(
                        stages.iter().flatten().any(|s| s == from),
                        "COPY --from={from}: no such stage"
                    );
                }
            }
            Some("USER") => user = Some(words[1].to_string()),
            Some("ENTRYPOINT") | Some("CMD") => {
                let json: Vec<String> = serde_json::from_str(line[words[0].len()..].trim())
                    .unwrap_or_else(|e| panic!("{line}: exec form expected: {e}"));
                if words[0] == "CMD" {
                    assert_flags_exist(&json, "Dockerfile");
                }
            }
            _ => {}
        }
    }
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    let user = user.expect("the final stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "USER {user}"
    );
}

#[test]
fn the_compose_file_and_the_systemd_unit_use_real_flags() {
    let compose = &documents(&deploy("compose.yaml"))[0];
    let mekong = &compose["services"]["mekong"];
    let dockerfile = mekong["build"]["dockerfile"].as_str().unwrap();
    assert!(
        deploy("..").join(dockerfile).exists(),
        "compose builds from {dockerfile}, which does not exist"
    );
    assert_flags_exist(&strings(&mekong["command"]), "compose.yaml");
    assert!(
        compose["services"]["kafka"]["image"]
            .as_str()
            .unwrap()
            .contains("kafka")
    );

    let unit = std::fs::read_to_string(deploy("systemd/mekong.service")).unwrap();
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(unit.contains(section), "the unit has no {section}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .filter(|a| !a.starts_with('$'))
        .map(str::to_owned)
        .collect();
    assert_flags_exist(&args, "mekong.service");
    // systemd's own check, where the machine has it: the unit pointed at the binary just built.
    let copy = std::env::temp_dir().join(format!("mekong-{}.service", std::process::id()));
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/mekong", env!("CARGO_BIN_EXE_mekong")),
    )
    .unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => {
            let complaints = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !complaints.contains(copy.to_str().unwrap()),
                "systemd-analyze verify: {complaints}"
            );
        }
        Err(_) => mekong_tests::skip(
            "deployment: systemd-analyze verify",
            "systemd-analyze is not installed; the unit's syntax was not verified by systemd",
        ),
    }
    let _ = std::fs::remove_file(&copy);
}
