//! `mekong dev-certs DIR`: a throwaway CA, a certificate for a hub on this machine (`localhost`,
//! `127.0.0.1`, `::1`) and one client certificate per client of the city's examples (CN = the
//! client's name), so that mutual TLS can be tried in one more command. For development only: the
//! CA's key lies beside its certificate.

use std::path::{Path, PathBuf};

use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use super::Failure;

#[derive(Args, Debug)]
pub struct DevCertsArgs {
    /// Where the files go (created if missing; existing files are not overwritten).
    dir: PathBuf,
}

/// The names of the example clients, from the resources built into the binary.
fn example_clients() -> Vec<String> {
    let mut names = Vec::new();
    for (name, text) in crate::examples::sources() {
        let (documents, _) = mekong_core::parse_documents(&name, &text);
        for document in documents {
            if let mekong_core::Resource::Client(client) = document.resource {
                names.push(client.name);
            }
        }
    }
    names
}

pub fn run(args: DevCertsArgs) -> Result<u8, Failure> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Failure {
        exit: Failure::REFUSED,
        message: format!("{what}: {e}"),
    };
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| failed(&format!("cannot create {}", args.dir.display()), &e))?;
    let clients = example_clients();
    let mut files = vec!["ca.pem", "ca.key", "hub.pem", "hub.key"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    for client in &clients {
        files.push(format!("{client}.pem"));
        files.push(format!("{client}.key"));
    }
    if let Some(existing) = files.iter().find(|f| args.dir.join(f).exists()) {
        return Err(Failure::usage(format!(
            "{} exists; dev-certs does not overwrite: use an empty directory",
            args.dir.join(existing).display()
        )));
    }
    let sign = |e: rcgen::Error| failed("cannot make a certificate", &e);

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(sign)?;
    ca.distinguished_name
        .push(DnType::CommonName, "Mekong development CA (do not trust)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(sign)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key).map_err(sign)?;
    let write = |name: &str, text: &str| {
        let path = args.dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| failed(&format!("cannot write {}", path.display()), &e))?;
        restrict(&path, name.ends_with(".key"));
        Ok::<(), Failure>(())
    };
    write("ca.pem", &issuer.pem())?;
    write("ca.key", &ca_key_pem)?;

    let leaf = |name: &str, cn: &str, usage: ExtendedKeyUsagePurpose, sans: Vec<SanType>| {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(sign)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(sign)?;
        let cert = params.signed_by(&key, &issuer).map_err(sign)?;
        write(&format!("{name}.pem"), &cert.pem())?;
        write(&format!("{name}.key"), &key.serialize_pem())
    };
    leaf(
        "hub",
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        vec![
            SanType::DnsName("localhost".try_into().map_err(sign)?),
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
        ],
    )?;
    for client in &clients {
        leaf(
            client,
            client,
            ExtendedKeyUsagePurpose::ClientAuth,
            Vec::new(),
        )?;
    }
    print_next_steps(&args.dir, &clients);
    Ok(Failure::OK)
}

/// Keys readable by their owner only.
fn restrict(path: &Path, key: bool) {
    #[cfg(unix)]
    if key {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = (path, key);
}

fn print_next_steps(dir: &Path, clients: &[String]) {
    let d = dir.display();
    println!(
        "wrote a development CA, a hub certificate and {} client certificates to {d}",
        clients.len()
    );
    println!("serve with mutual TLS:");
    println!("  mekong serve --tls-cert {d}/hub.pem --tls-key {d}/hub.key --client-ca {d}/ca.pem");
    println!("call it:");
    println!(
        "  mekong get routes --server https://127.0.0.1:50051 --tls-ca {d}/ca.pem --tls-cert {d}/platform-admin.pem --tls-key {d}/platform-admin.key --token admin-demo-key"
    );
    println!(
        "a client is known by its certificate once its Client binds it, e.g. (examples/hcmc/clients.yaml):"
    );
    println!("  certificates: [{{subject: {{CN: q1-one-stop}}}}]");
}
