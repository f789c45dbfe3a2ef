use super::*;
use crate::access::hash_api_key;
use crate::resource::parse_documents;

fn build(yaml: &str) -> Result<Catalog, crate::CatalogError> {
    let (docs, errors) = parse_documents("clients.yaml", yaml);
    assert!(errors.is_empty(), "{errors:?}");
    Catalog::build(docs)
}

fn client(name: &str, extra: &str) -> String {
    format!(
        "kind: Client\nname: {name}\nroles: [publisher]\napiKeys: [{{sha256: {}}}]\n{extra}\n",
        hex::encode(hash_api_key(&format!("{name}-key")).0)
    )
}

fn clients(parts: &[String]) -> Catalog {
    build(&parts.join("---\n")).unwrap_or_else(|e| panic!("{e}"))
}

fn certificate(cn: &str, dns: &[&str], uris: &[&str]) -> PeerCertificate {
    PeerCertificate {
        sha256: [7; 32],
        subject: vec![("CN".into(), cn.into()), ("O".into(), "UBND Quan 1".into())],
        dns: dns.iter().map(|d| d.to_string()).collect(),
        uris: uris.iter().map(|u| u.to_string()).collect(),
    }
}

fn who(
    catalog: &Catalog,
    key: Option<&str>,
    certificate: Option<&PeerCertificate>,
) -> Result<(String, String), Unauthenticated> {
    let key = key.map(hash_api_key);
    catalog
        .authenticate_call(Presented {
            key: key.as_ref(),
            certificate,
        })
        .map(|(client, by)| (client.name().to_owned(), by.by))
}

#[test]
fn any_one_binding_identifies_its_client() {
    let catalog = clients(&[client(
        "q1",
        "certificates:\n  - uri: spiffe://hcmc.gov.vn/district/q1/one-stop\n  - dns: MotCua.Q1.hcmc.gov.vn\n  - subject: {CN: motcua-q1, O: UBND Quan 1}\n  - sha256: \"0707070707070707070707070707070707070707070707070707070707070707\"",
    )]);
    let by_uri = certificate("x", &[], &["spiffe://hcmc.gov.vn/district/q1/one-stop"]);
    let by_dns = PeerCertificate {
        sha256: [1; 32],
        ..certificate("x", &["motcua.q1.hcmc.gov.vn"], &[])
    };
    let by_subject = PeerCertificate {
        sha256: [1; 32],
        ..certificate("motcua-q1", &[], &[])
    };
    let by_pin = certificate("x", &[], &[]);
    for c in [&by_uri, &by_dns, &by_subject, &by_pin] {
        assert_eq!(
            who(&catalog, None, Some(c)),
            Ok(("q1".into(), "certificate".into())),
            "{c:?}"
        );
    }
    // Nothing matches: the subject wants O too, the URI is another district's.
    let stranger = PeerCertificate {
        sha256: [1; 32],
        subject: vec![("CN".into(), "motcua-q1".into())],
        dns: vec!["q1.hcmc.gov.vn".into()],
        uris: vec!["spiffe://hcmc.gov.vn/district/q3/one-stop".into()],
    };
    let refused = who(&catalog, None, Some(&stranger)).unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "the client certificate `CN=motcua-q1` (sha256 {}) is trusted but no client binds it; ask the hub's administrators to add it to your Client's `certificates`",
            hex::encode([1u8; 32])
        )
    );
}

#[test]
fn keys_certificates_and_the_authentication_rule() {
    let catalog = clients(&[
        client("any", "certificates: [{dns: any.example.vn}]"),
        client(
            "cert-only",
            "certificates: [{dns: cert.example.vn}]\nauthentication: certificate",
        ),
        client(
            "key-only",
            "certificates: [{dns: key.example.vn}]\nauthentication: key",
        ),
        client(
            "both",
            "certificates: [{dns: both.example.vn}]\nauthentication: both",
        ),
    ]);
    let cert = |name: &str| PeerCertificate {
        dns: vec![format!("{name}.example.vn")],
        ..PeerCertificate::default()
    };
    let ok = |client: &str, by: &str| Ok((client.to_owned(), by.to_owned()));
    let missing = |client: &str, what: &'static str, rule| {
        Err(Unauthenticated::Missing {
            client: client.into(),
            rule,
            missing: what,
        })
    };
    assert_eq!(who(&catalog, Some("any-key"), None), ok("any", "key"));
    assert_eq!(
        who(&catalog, None, Some(&cert("any"))),
        ok("any", "certificate")
    );
    assert_eq!(
        who(&catalog, Some("any-key"), Some(&cert("any"))),
        ok("any", "both")
    );
    assert_eq!(
        who(&catalog, Some("cert-only-key"), None),
        missing("cert-only", "certificate", Authentication::Certificate)
    );
    assert_eq!(
        who(&catalog, None, Some(&cert("cert"))),
        ok("cert-only", "certificate")
    );
    assert_eq!(
        who(&catalog, None, Some(&cert("key"))),
        missing("key-only", "API key", Authentication::Key)
    );
    assert_eq!(
        who(&catalog, Some("both-key"), None),
        missing("both", "certificate", Authentication::Both)
    );
    assert_eq!(
        who(&catalog, None, Some(&cert("both"))),
        missing("both", "API key", Authentication::Both)
    );
    assert_eq!(
        who(&catalog, Some("both-key"), Some(&cert("both"))),
        ok("both", "both")
    );
    // One client's key with another's certificate: neither.
    assert_eq!(
        who(&catalog, Some("any-key"), Some(&cert("both"))),
        Err(Unauthenticated::DifferentClients {
            key: "any".into(),
            certificate: "both".into()
        })
    );
    // A wrong key is refused whatever certificate comes with it.
    assert_eq!(
        who(&catalog, Some("nope"), Some(&cert("any"))),
        Err(Unauthenticated::UnknownKey)
    );
    // A trusted certificate nobody binds is passed over when a key identifies the caller.
    assert_eq!(
        who(&catalog, Some("any-key"), Some(&cert("nobody"))),
        ok("any", "key")
    );
    assert_eq!(
        who(&catalog, None, None),
        Err(Unauthenticated::NoCredentials)
    );
}

#[test]
fn what_the_audit_trail_records_names_the_key_and_the_certificate() {
    let catalog = clients(&[client("q1", "certificates: [{dns: q1.example.vn}]")]);
    let key = hash_api_key("q1-key");
    let cert = PeerCertificate {
        dns: vec!["q1.example.vn".into()],
        ..certificate("motcua-q1", &[], &[])
    };
    let (_, by) = catalog
        .authenticate_call(Presented {
            key: Some(&key),
            certificate: Some(&cert),
        })
        .unwrap();
    assert_eq!(
        by,
        AuthenticatedBy {
            by: "both".into(),
            key_id: Some(hex::encode(&key.0[..8])),
            certificate_sha256: Some(hex::encode([7u8; 32])),
            certificate_subject: Some("CN=motcua-q1, O=UBND Quan 1".into()),
        }
    );
    let (_, by) = catalog
        .authenticate_call(Presented {
            key: Some(&key),
            certificate: None,
        })
        .unwrap();
    assert_eq!((by.certificate_sha256, by.key_id.is_some()), (None, true));
}

#[test]
fn a_certificate_that_could_be_two_clients_is_refused_at_apply_or_at_the_call() {
    let refused = |parts: &[String]| build(&parts.join("---\n")).unwrap_err().to_string();
    for (a, b) in [
        (
            "certificates: [{uri: 'spiffe://x/y'}]",
            "certificates: [{uri: 'spiffe://x/y'}]",
        ),
        (
            "certificates: [{dns: Q1.example.vn}]",
            "certificates: [{dns: q1.example.vn.}]",
        ),
        (
            "certificates: [{subject: {CN: motcua}}]",
            "certificates: [{subject: {CN: motcua, O: UBND}}]",
        ),
        (
            "certificates: [{sha256: \"0707070707070707070707070707070707070707070707070707070707070707\"}]",
            "certificates: [{sha256: \"07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07\"}]",
        ),
    ] {
        let message = refused(&[client("a", a), client("b", b)]);
        assert!(
            message.contains("client `b` and client `a` claim overlapping certificate bindings"),
            "{message}"
        );
        assert!(message.contains("certificates[0]"), "{message}");
    }
    // Subjects that differ on an attribute both name cannot be one certificate.
    clients(&[
        client("a", "certificates: [{subject: {CN: motcua, O: UBND Q1}}]"),
        client("b", "certificates: [{subject: {CN: motcua, O: UBND Q3}}]"),
    ]);
    // Bindings of different kinds cannot be judged before a certificate comes: such a certificate
    // identifies nobody.
    let catalog = clients(&[
        client("a", "certificates: [{uri: 'spiffe://hcmc/a'}]"),
        client("b", "certificates: [{dns: b.example.vn}]"),
    ]);
    let both = certificate("x", &["b.example.vn"], &["spiffe://hcmc/a"]);
    assert_eq!(
        who(&catalog, None, Some(&both)),
        Err(Unauthenticated::AmbiguousCertificate {
            subject: "CN=x, O=UBND Quan 1".into(),
            clients: vec!["a".into(), "b".into()]
        })
    );
}

#[test]
fn bindings_and_rules_are_checked_at_apply() {
    let problems = |extra: &str| build(&client("q1", extra)).unwrap_err().to_string();
    for (extra, says) in [
        (
            "certificates: [{uri: 'not a uri'}]",
            "certificates[0]`: `not a uri` is not a URI",
        ),
        (
            "certificates: [{dns: '*.q1.example.vn'}]",
            "is not a DNS name",
        ),
        (
            "certificates: [{subject: {CN: x, EMAIL: y}}]",
            "unknown subject attribute `EMAIL`",
        ),
        (
            "certificates: [{subject: {}}]",
            "name at least one subject attribute",
        ),
        ("certificates: [{sha256: abc}]", "64 hex digits"),
        (
            "certificates: [{dns: a.vn}, {dns: A.vn}]",
            "certificates[1]`: listed twice",
        ),
        ("authentication: certificate", "`certificates` binds none"),
    ] {
        let message = problems(extra);
        assert!(message.contains(says), "{extra}: `{says}` in {message}");
    }
    let no_key = "kind: Client\nname: k\nroles: [publisher]\ncertificates: [{dns: k.vn}]\nauthentication: both\n";
    let message = build(no_key).unwrap_err().to_string();
    assert!(message.contains("`apiKeys` lists none"), "{message}");
}
