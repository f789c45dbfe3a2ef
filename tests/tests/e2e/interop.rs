//! Interoperability: a record published through the gateway is read by a non-Rust Kafka client
//! (confluent-kafka, Python) and parsed by the CloudEvents Python SDK (`cloudevents.v1.kafka`,
//! binary content mode) into the same id, type, source, attributes and data.
//!
//! Runs tests/python/read_cloudevent.py with the Python of the environment ./deploy/test.sh makes
//! (`MEKONG_TEST_PYTHON`, packages pinned in tests/python/requirements.txt).

use std::collections::HashMap;
use std::process::Command;

use mekong_proto::v1::PublishResponse;
use mekong_tests::*;
use serde_json::Value;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// What read_cloudevent.py made of the record at `topic`'s placement in `response`.
fn read_with_python(
    python: &str,
    bootstrap: &str,
    response: &PublishResponse,
    topic: &str,
) -> Value {
    let placement = response
        .placements
        .iter()
        .find(|p| p.topic == topic)
        .unwrap_or_else(|| panic!("no placement on {topic}: {:?}", response.placements));
    let script = repo_root().join("tests/python/read_cloudevent.py");
    // Blocking is fine here: the record is already written and the script reads Kafka, not the hub.
    let out = Command::new(python)
        .arg(&script)
        .args([
            bootstrap,
            topic,
            &placement.partition.to_string(),
            &placement.offset.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {python} {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "read_cloudevent.py failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("read_cloudevent.py printed no JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn the_cloudevents_python_sdk_reads_what_the_gateway_wrote() {
    let python = test_python();
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let payload = citizen_dossier("H29-PY-0001");
    let mut request = record("dossier.sync", &payload);
    request.attributes = HashMap::from([("district".into(), "q1".into())]);
    let mut request = authed("q1-key", request);
    request
        .metadata_mut()
        .insert("traceparent", TRACEPARENT.parse().unwrap());
    let response = client
        .publish(request)
        .await
        .expect("published")
        .into_inner();

    // The unredacted copy.
    let city = read_with_python(&python, &hub.bootstrap, &response, &format!("t-city-{s}"));
    assert_eq!(city["id"], response.record_id.as_str(), "{city}");
    assert_eq!(city["type"], "dossier.sync");
    assert_eq!(city["source"], "q1");
    assert_eq!(city["specversion"], "1.0");
    assert_eq!(city["datacontenttype"], "application/json");
    assert_eq!(city["dataschema"], "urn:mekong:schema:dossier.sync:1");
    assert_eq!(city["extensions"]["district"], "q1", "{city}");
    assert_eq!(city["key"], "H29-PY-0001");
    // The SDK invents a time when ce_time is missing: check it took the gateway's.
    let time = city["time"].as_str().expect("a time");
    assert!(time.ends_with('Z'), "{time}");
    assert_eq!(city["headers"]["ce_time"], time);
    // traceparent is no CloudEvents attribute; it reaches the client as a plain header.
    assert_eq!(city["headers"]["traceparent"], TRACEPARENT);

    // The data: Python's json.loads of the value, printed back by json.dumps, against the payload
    // as serde_json reads it. The workspace's serde_json has `arbitrary_precision`, so numbers
    // compare by their text: the big integer must come back exact (Python ints are unbounded)
    // and 1.0 must stay the float 1.0, not become the integer 1. Object key order is not compared.
    let sent: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(city["data"], sent);
    assert_eq!(city["data"]["SoTien"].to_string(), "12345678901234567890");
    assert_eq!(city["data"]["TyLe"].to_string(), "1.0");
    assert_eq!(city["data"]["ChuHoSo"], "Nguyễn Văn An");

    // The redacted copy: the same event, without the personal data.
    let national = read_with_python(
        &python,
        &hub.bootstrap,
        &response,
        &format!("t-national-{s}"),
    );
    assert_eq!(national["id"], response.record_id.as_str());
    assert_eq!(national["type"], "dossier.sync");
    assert_eq!(national["source"], "q1");
    assert_eq!(national["extensions"]["district"], "q1");
    let data = national["data"].as_object().expect("an object");
    assert!(!data.contains_key("SoDienThoai"), "{national}");
    assert!(!data.contains_key("Email"), "{national}");
    assert!(
        !data["NguoiNop"]
            .as_object()
            .unwrap()
            .contains_key("SoDienThoai"),
        "{national}"
    );
    assert_eq!(data["MaHoSo"], "H29-PY-0001");
    assert_eq!(data["SoTien"].to_string(), "12345678901234567890");

    hub.shutdown().await;
}
