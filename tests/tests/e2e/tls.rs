//! TLS on the gateway, end to end against the real broker, with certificates made by the test
//! (`mekong_tests::pki`): who each certificate identifies, what every service answers to every
//! kind of credential, and certificates and revocation lists changed under a running hub.

use std::time::{Duration, Instant};

use mekong_gateway::tls::{ClientAuth, TlsSettings};
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_proto::v1::subscribe_service_client::SubscribeServiceClient;
use mekong_proto::v1::{ConsumeRequest, GetRequest, consume_request};
use mekong_tests::pki::{ClientCert, Issued, Pki, replace, served_certificate};
use mekong_tests::subscriber::subscription;
use mekong_tests::*;
use std::error::Error as _;
use tonic::transport::Channel;

/// The standard resources and three clients known by their certificates: a district's one-stop
/// system (by its SPIFFE id, and by subject for the test's revoked, expired and misused ones), a
/// reader pinned by fingerprint, and a console that needs a key and a certificate.
fn resources(s: &str, reader: &Issued) -> String {
    format!(
        r#"{standard}
---
kind: Client
name: motcua-q1
roles: [publisher]
publish: ["dossier.*"]
certificates:
  - uri: spiffe://hcmc.gov.vn/district/q1/one-stop
  - subject: {{CN: revoked-q1}}
  - subject: {{CN: expired-q1}}
  - dns: wrong-usage.q1.hcmc.gov.vn
---
kind: Client
name: reader-by-pin
roles: [subscriber]
subscribe: ["t-city-{s}"]
certificates: [{{sha256: "{pin}"}}]
---
kind: Client
name: console
roles: [admin]
apiKeys: [{{sha256: "{console}"}}]
certificates: [{{subject: {{CN: ops-console, O: HCMC}}}}]
authentication: both
"#,
        standard = standard_resources(s),
        pin = reader.sha256,
        console = hex::encode(mekong_core::hash_api_key("console-key").0),
    )
}

/// The PKI of one test: its CA, the hub's certificate, and the clients' certificates.
struct Certificates {
    pki: Pki,
    hub: Issued,
    q1: Issued,
    stranger: Issued,
    revoked: Issued,
    expired: Issued,
    wrong_usage: Issued,
    reader: Issued,
    console: Issued,
}

fn certificates() -> Certificates {
    let pki = Pki::new("tls");
    let client = |spec| pki.client(spec);
    Certificates {
        hub: pki.server("hub"),
        q1: client(ClientCert {
            name: "q1",
            uris: &["spiffe://hcmc.gov.vn/district/q1/one-stop"],
            ..Default::default()
        }),
        stranger: client(ClientCert {
            name: "stranger",
            organization: Some("Nowhere"),
            ..Default::default()
        }),
        revoked: client(ClientCert {
            name: "revoked-q1",
            ..Default::default()
        }),
        expired: client(ClientCert {
            name: "expired-q1",
            expired: true,
            ..Default::default()
        }),
        wrong_usage: client(ClientCert {
            name: "wrong-usage",
            dns: &["wrong-usage.q1.hcmc.gov.vn"],
            server_only: true,
            ..Default::default()
        }),
        reader: client(ClientCert {
            name: "reader-by-pin",
            ..Default::default()
        }),
        console: client(ClientCert {
            name: "ops-console",
            organization: Some("HCMC"),
            ..Default::default()
        }),
        pki,
    }
}

fn settings(c: &Certificates, crl: std::path::PathBuf) -> TlsSettings {
    TlsSettings {
        certificate: c.hub.cert.clone(),
        key: c.hub.key.clone(),
        client_cas: vec![c.pki.ca()],
        client_auth: ClientAuth::Optional,
        crls: vec![crl],
        reload_every: Duration::from_millis(200),
    }
}

/// A hub over TLS with this test's certificates (the revoked one on its revocation list).
async fn tls_hub() -> (TestHub, Certificates, String) {
    let s = unique();
    let c = certificates();
    let crl = c.pki.crl(&[&c.revoked]);
    let hub = TestHub::start_tls(
        &kafka_bootstrap(),
        &resources(&s, &c.reader),
        settings(&c, crl),
    )
    .await;
    (hub, c, s)
}

/// A kind of credentials: what it is, the certificate and key presented, and what Publish,
/// Consume and Get answer.
type Case<'a> = (&'a str, Option<&'a Issued>, Option<&'a str>, [&'a str; 3]);

/// What one call ended in: `OK`, a gRPC code, or `refused` when TLS would not carry it.
fn outcome<T>(result: Result<T, tonic::Status>) -> String {
    match result {
        Ok(_) => "OK".into(),
        // The handshake failed: a TLS 1.3 client learns it at its first call, as a transport
        // error, or as a call cut short when its connection is closed under it.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled
            ) || (status.code() == tonic::Code::Unknown
                && status.message() == "transport error") =>
        {
            "refused".into()
        }
        Err(status) => format!("{:?}", status.code()),
    }
}

fn with_key<T>(key: Option<&str>, message: T) -> tonic::Request<T> {
    match key {
        Some(key) => authed(key, message),
        None => tonic::Request::new(message),
    }
}

/// Publish, Consume and Get over one connection presenting `certificate` and `key`.
async fn three_calls(
    hub: &TestHub,
    c: &Certificates,
    certificate: Option<&Issued>,
    key: Option<&str>,
    s: &str,
) -> [String; 3] {
    let channel: Channel = match hub.tls_channel(&c.pki, certificate).await {
        Ok(channel) => channel,
        Err(_) => return ["refused".into(), "refused".into(), "refused".into()],
    };
    let publish = IngestServiceClient::new(channel.clone())
        .publish(with_key(
            key,
            record("dossier.sync", &citizen_dossier(&format!("TLS-{s}"))),
        ))
        .await;
    let (requests, inbound) = tokio::sync::mpsc::channel(1);
    requests
        .send(ConsumeRequest {
            request: Some(consume_request::Request::Subscribe(subscription(
                &format!("t-city-{s}"),
                &format!("tls-{s}"),
            ))),
        })
        .await
        .unwrap();
    let consume = SubscribeServiceClient::new(channel.clone())
        .consume(with_key(
            key,
            tokio_stream::wrappers::ReceiverStream::new(inbound),
        ))
        .await;
    let get = AdminServiceClient::new(channel)
        .get(with_key(
            key,
            GetRequest {
                kind: "RecordType".into(),
                name: "dossier.sync".into(),
            },
        ))
        .await;
    let message = |r: &Result<_, tonic::Status>| r.as_ref().err().map(|e| e.message().to_owned());
    if let Some(m) = message(&publish) {
        eprintln!("publish with {certificate:?} / {key:?}: {m}");
    }
    [outcome(publish), outcome(consume), outcome(get)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_every_kind_of_credential_as_its_client_allows() {
    let (hub, c, s) = tls_hub().await;
    let cases: [Case; 12] = [
        ("no credentials", None, None, ["Unauthenticated"; 3]),
        ("a wrong key", None, Some("nope"), ["Unauthenticated"; 3]),
        (
            "an unbound certificate",
            Some(&c.stranger),
            None,
            ["Unauthenticated"; 3],
        ),
        (
            "a revoked certificate",
            Some(&c.revoked),
            None,
            ["refused"; 3],
        ),
        (
            "an expired certificate",
            Some(&c.expired),
            None,
            ["refused"; 3],
        ),
        (
            "a certificate for servers",
            Some(&c.wrong_usage),
            None,
            ["refused"; 3],
        ),
        // Another client's certificate identifies that client, with its rights.
        (
            "the reader's certificate",
            Some(&c.reader),
            None,
            ["PermissionDenied", "OK", "PermissionDenied"],
        ),
        (
            "one client's key, another's certificate",
            Some(&c.reader),
            Some("q1-key"),
            ["Unauthenticated"; 3],
        ),
        (
            "`both` with the key only",
            None,
            Some("console-key"),
            ["Unauthenticated"; 3],
        ),
        (
            "`both` with the certificate only",
            Some(&c.console),
            None,
            ["Unauthenticated"; 3],
        ),
        (
            "the district's certificate",
            Some(&c.q1),
            None,
            ["OK", "PermissionDenied", "PermissionDenied"],
        ),
        (
            "the console's key and certificate",
            Some(&c.console),
            Some("console-key"),
            ["PermissionDenied", "PermissionDenied", "OK"],
        ),
    ];
    for (what, certificate, key, expected) in cases {
        let got = three_calls(&hub, &c, certificate, key, &s).await;
        assert_eq!(got, expected, "{what}: Publish, Consume, Get");
    }
    // A key still works over TLS for a client that has one (authentication: any).
    let channel = hub.tls_channel(&c.pki, None).await.unwrap();
    IngestServiceClient::new(channel)
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier("TLS-KEY")),
        ))
        .await
        .expect("a key over TLS");

    // What a refusal says: the unbound certificate by its subject, a missing second factor.
    let refusal = async |certificate: Option<&Issued>, key: Option<&str>| {
        let channel = hub.tls_channel(&c.pki, certificate).await.unwrap();
        IngestServiceClient::new(channel)
            .publish(with_key(key, record("dossier.sync", b"{}")))
            .await
            .unwrap_err()
            .message()
            .to_owned()
    };
    let unbound = refusal(Some(&c.stranger), None).await;
    assert!(
        unbound.contains("`CN=stranger, O=Nowhere`") && unbound.contains(&c.stranger.sha256),
        "{unbound}"
    );
    let half = refusal(None, Some("console-key")).await;
    assert_eq!(
        half,
        "client `console` must also present its certificate (authentication: both)"
    );

    // The audit trail says how each caller authenticated: the district by its certificate, the
    // console's change by its key and its certificate.
    let channel = hub.tls_channel(&c.pki, Some(&c.q1)).await.unwrap();
    let published = IngestServiceClient::new(channel)
        .publish(tonic::Request::new(record(
            "dossier.sync",
            &citizen_dossier(&format!("AUD-{s}")),
        )))
        .await
        .unwrap()
        .into_inner();
    let channel = hub.tls_channel(&c.pki, Some(&c.console)).await.unwrap();
    AdminServiceClient::new(channel)
        .apply(authed(
            "console-key",
            mekong_proto::v1::ApplyRequest {
                sources: vec![mekong_proto::v1::SourceText {
                    name: "tax.yaml".into(),
                    text: format!(
                        "kind: RecordType\nname: tax.audit-{s}\nschema: {{type: object}}\n"
                    ),
                }],
                ..Default::default()
            },
        ))
        .await
        .expect("the console applies a change");
    let record_id = published.record_id.clone();
    let accepted = audit_events(&hub.bootstrap, 1, |e| {
        e["event"] == "record.accepted" && e["recordId"] == record_id.as_str()
    })
    .await;
    assert_eq!(
        accepted[0]["authenticated"],
        serde_json::json!({
            "by": "certificate",
            "certificateSha256": c.q1.sha256,
            "certificateSubject": "CN=q1",
        })
    );
    let name = format!("tax.audit-{s}");
    let changed = audit_events(&hub.bootstrap, 1, |e| {
        e["event"] == "resource.changed" && e["name"] == name.as_str()
    })
    .await;
    let by = &changed[0]["authenticated"];
    assert_eq!(
        (&changed[0]["actor"], &by["by"], &by["certificateSubject"]),
        (
            &"console".into(),
            &"both".into(),
            &"CN=ops-console, O=HCMC".into()
        ),
        "{by}"
    );
    assert_eq!(
        by["keyId"],
        hex::encode(&mekong_core::hash_api_key("console-key").0[..8])
    );

    // Plaintext to the TLS port fails at once, as does TLS to a plaintext hub.
    let started = Instant::now();
    let plaintext = Channel::from_shared(format!("http://{}", hub.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        // The connection is cut: how the client words it depends on where its bytes were.
        let status = IngestServiceClient::new(channel)
            .publish(authed("q1-key", record("dossier.sync", b"{}")))
            .await
            .unwrap_err();
        assert!(
            status.source().is_some() && !status.metadata().contains_key("grpc-status"),
            "not a transport failure: {status:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (plain, _) = TestHub::start().await;
    let started = Instant::now();
    assert!(plain.tls_channel(&c.pki, None).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_revocation_lists_change_under_a_running_hub() {
    let s = unique();
    let c = certificates();
    let crl = c.pki.crl(&[]);
    // The hub serves the files at fixed paths, which the test rewrites as a CA would.
    let serving = TlsSettings {
        certificate: c.pki.dir.join("serving.pem"),
        key: c.pki.dir.join("serving.key"),
        ..settings(&c, crl)
    };
    replace(&serving.certificate, &c.hub.cert_pem());
    replace(&serving.key, &c.hub.key_pem());
    let hub = TestHub::start_tls(
        &kafka_bootstrap(),
        &resources(&s, &c.reader),
        serving.clone(),
    )
    .await;
    assert_eq!(
        served_certificate(hub.addr, &c.pki).await,
        Ok(c.hub.sha256.clone())
    );
    let open = hub.tls_channel(&c.pki, Some(&c.q1)).await.unwrap();
    let mut publisher = IngestServiceClient::new(open);
    let mut publish = async |n: usize| {
        publisher
            .publish(tonic::Request::new(record(
                "dossier.sync",
                &citizen_dossier(&format!("ROT-{n}-{s}")),
            )))
            .await
    };
    publish(0)
        .await
        .expect("published with the district's certificate");

    // Rotated: new connections get the new certificate; the open one goes on.
    let rotated = c.pki.server("hub-rotated");
    replace(&serving.key, &rotated.key_pem());
    replace(&serving.certificate, &rotated.cert_pem());
    eventually("the rotated certificate is served", || async {
        served_certificate(hub.addr, &c.pki).await == Ok(rotated.sha256.clone())
    })
    .await;
    publish(1).await.expect("the open connection still serves");

    // A broken file is not taken: the last good certificate stays.
    replace(&serving.key, "not a key\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        served_certificate(hub.addr, &c.pki).await,
        Ok(rotated.sha256.clone())
    );
    replace(&serving.key, &rotated.key_pem());

    // Revoked: the district's certificate no longer completes a handshake ...
    c.pki.crl(&[&c.q1]);
    eventually("the revoked certificate is refused", || async {
        let Ok(channel) = hub.tls_channel(&c.pki, Some(&c.q1)).await else {
            return true;
        };
        let result = IngestServiceClient::new(channel)
            .publish(tonic::Request::new(record(
                "dossier.sync",
                &citizen_dossier("REV"),
            )))
            .await;
        outcome(result) == "refused"
    })
    .await;
    // And the connection it had open is closed at once.
    let mut cut = false;
    for n in 2..100 {
        if publish(n).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cut,
        "the revoked certificate's open connection still serves"
    );
    // Others are not affected.
    let channel = hub.tls_channel(&c.pki, Some(&c.console)).await.unwrap();
    AdminServiceClient::new(channel)
        .get(authed(
            "console-key",
            GetRequest {
                kind: "RecordType".into(),
                name: "dossier.sync".into(),
            },
        ))
        .await
        .expect("the console after the new list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_auth_required_a_key_alone_does_not_open_a_connection() {
    let s = unique();
    let c = certificates();
    let crl = c.pki.crl(&[]);
    let hub = TestHub::start_tls(
        &kafka_bootstrap(),
        &resources(&s, &c.reader),
        TlsSettings {
            client_auth: ClientAuth::Required,
            ..settings(&c, crl)
        },
    )
    .await;
    assert_eq!(
        three_calls(&hub, &c, None, Some("q1-key"), &s).await,
        ["refused"; 3],
        "a key without a certificate"
    );
    assert_eq!(
        three_calls(&hub, &c, Some(&c.q1), None, &s).await,
        ["OK", "PermissionDenied", "PermissionDenied"],
        "the district's certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_is_behind_the_same_tls_and_knows_clients_by_their_certificates() {
    let (hub, c, _) = tls_hub().await;
    let url = format!(
        "https://localhost:{}/v1/records/dossier.sync",
        hub.addr.port()
    );
    let ca = reqwest::Certificate::from_pem(c.pki.ca_pem().as_bytes()).unwrap();
    let client = |identity: Option<&Issued>, http2: bool| {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone())
            .resolve("localhost", hub.addr);
        if let Some(issued) = identity {
            let pem = format!("{}{}", issued.cert_pem(), issued.key_pem());
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        if !http2 {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    };
    let post = |client: reqwest::Client, key: Option<&'static str>| {
        let url = url.clone();
        async move {
            let mut request = client
                .post(url)
                .header("content-type", "application/json")
                .body(citizen_dossier("H29-TLS-HTTP"));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.expect("an answer over TLS");
            let version = response.version();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, version, body)
        }
    };
    // The district's certificate alone is enough, over HTTP/1.1 and HTTP/2 (ALPN offers both).
    for http2 in [false, true] {
        let (status, version, body) = post(client(Some(&c.q1), http2), None).await;
        assert_eq!(status, 201, "{body}");
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(version, expected);
    }
    // A key over TLS without a certificate; none at all; a stranger's; the reader's (no right).
    assert_eq!(post(client(None, false), Some("q1-key")).await.0, 201);
    let (status, _, body) = post(client(None, false), None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    assert_eq!(post(client(Some(&c.stranger), false), None).await.0, 401);
    let (status, _, body) = post(client(Some(&c.reader), false), None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    // A revoked certificate does not get a connection at all.
    let revoked = client(Some(&c.revoked), false)
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await;
    assert!(revoked.is_err(), "{revoked:?}");
    hub.shutdown().await;
}
