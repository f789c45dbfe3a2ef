//! What the operator lets adapters reach, since whoever may apply an Adapter resource otherwise
//! decides which files of the host are read and where their contents are sent: `file:` secrets
//! only below the directories the operator names, `env:` secrets only from variables with the
//! operator's prefix, and endpoints only at public addresses, unless the operator allows a network
//! (a city's systems often live on private ones). Names are checked where they are resolved, at
//! every connection, so a name that later resolves elsewhere (DNS rebinding) is caught too.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The prefix of environment variables adapters may read secrets from, unless the operator says.
pub const DEFAULT_SECRETS_ENV_PREFIX: &str = "MEKONG_SECRET_";

/// What adapters may read and reach.
#[derive(Debug, Clone)]
pub struct AdapterPolicy {
    /// Directories below which `file:` secrets may be read (none: no `file:` secrets).
    pub secrets_dirs: Vec<PathBuf>,
    /// The prefix every `env:` secret's variable name must have.
    pub secrets_env_prefix: String,
    /// Networks adapters may send to although they are not public (loopback, private, link-local).
    pub allowed_networks: Vec<IpNet>,
}

impl Default for AdapterPolicy {
    fn default() -> Self {
        AdapterPolicy {
            secrets_dirs: Vec::new(),
            secrets_env_prefix: DEFAULT_SECRETS_ENV_PREFIX.into(),
            allowed_networks: Vec::new(),
        }
    }
}

impl AdapterPolicy {
    /// Whether an adapter may connect to `ip`.
    pub fn may_reach(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if !is_internal(ip) || self.allowed_networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(format!(
            "{ip} is a loopback, private, link-local or reserved address; adapters reach it only \
             when the operator allows its network (--adapter-allow-network)"
        ))
    }

    /// The file a `file:` secret may be read from: one below a secrets directory, after symbolic
    /// links and `..` are resolved.
    pub fn secret_file(&self, path: &str) -> Result<PathBuf, String> {
        if self.secrets_dirs.is_empty() {
            return Err(format!(
                "`file:{path}`: file secrets are read only below a directory the operator names \
                 (--secrets-dir), and none is named"
            ));
        }
        let real = Path::new(path)
            .canonicalize()
            .map_err(|e| format!("cannot read secret file `{path}`: {e}"))?;
        let allowed = self
            .secrets_dirs
            .iter()
            .filter_map(|dir| dir.canonicalize().ok())
            .any(|dir| real.starts_with(dir));
        if allowed {
            Ok(real)
        } else {
            Err(format!(
                "`file:{path}` is not below a secrets directory (--secrets-dir {})",
                self.secrets_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// Whether an `env:` secret may be read from `name`.
    pub fn secret_variable(&self, name: &str) -> Result<(), String> {
        if name.starts_with(&self.secrets_env_prefix) && name.len() > self.secrets_env_prefix.len()
        {
            Ok(())
        } else {
            Err(format!(
                "`env:{name}`: adapters read secrets only from variables named {}* \
                 (--secrets-env-prefix)",
                self.secrets_env_prefix
            ))
        }
    }

    /// Checks a URL's host, when it is an address: names are checked as they are resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.may_reach(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.may_reach(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err("the URL has no host".into()),
        }
    }
}

/// Loopback, private, shared (CGNAT), link-local, unspecified, documentation, benchmarking,
/// multicast and reserved addresses: everything that is not plainly on the Internet.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// A resolver that gives reqwest only the addresses the policy allows.
pub(crate) struct Resolver(pub Arc<AdapterPolicy>);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.may_reach(a.ip()) {
                    Ok(()) => true,
                    Err(reason) => {
                        refused.get_or_insert(reason);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = refused.unwrap_or_else(|| "it has no address".into());
                return Err(format!("`{host}` may not be reached: {reason}").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_unless_a_network_is_allowed() {
        let policy = AdapterPolicy::default();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(
                policy.may_reach(internal.parse().unwrap()).is_err(),
                "{internal}"
            );
        }
        for public in ["203.113.131.1", "8.8.8.8", "2402:800::1"] {
            assert!(
                policy.may_reach(public.parse().unwrap()).is_ok(),
                "{public}"
            );
        }
        let allowing = AdapterPolicy {
            allowed_networks: vec![
                "10.20.0.0/16".parse().unwrap(),
                "127.0.0.1/32".parse().unwrap(),
            ],
            ..AdapterPolicy::default()
        };
        assert!(allowing.may_reach("10.20.3.4".parse().unwrap()).is_ok());
        assert!(allowing.may_reach("10.21.3.4".parse().unwrap()).is_err());
        assert!(allowing.may_reach("127.0.0.1".parse().unwrap()).is_ok());
        assert!(allowing.may_reach("127.0.0.2".parse().unwrap()).is_err());
    }

    #[test]
    fn env_secrets_need_the_prefix() {
        let policy = AdapterPolicy::default();
        assert!(policy.secret_variable("MEKONG_SECRET_PORTAL").is_ok());
        assert!(policy.secret_variable("MEKONG_SECRET_").is_err());
        assert!(policy.secret_variable("HOME").is_err());
        assert!(policy.secret_variable("AWS_SECRET_ACCESS_KEY").is_err());
    }

    #[test]
    fn file_secrets_only_below_the_named_directories() {
        let base = std::env::temp_dir().join(format!("mekong-policy-{}", uuid::Uuid::now_v7()));
        let dir = base.join("secrets");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "t").unwrap();
        std::fs::write(base.join("outside"), "o").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), dir.join("link")).unwrap();
        let none = AdapterPolicy::default();
        assert!(
            none.secret_file(dir.join("token").to_str().unwrap())
                .is_err()
        );
        let policy = AdapterPolicy {
            secrets_dirs: vec![dir.clone()],
            ..AdapterPolicy::default()
        };
        assert!(
            policy
                .secret_file(dir.join("token").to_str().unwrap())
                .is_ok()
        );
        for escape in [
            "/etc/hostname".to_string(),
            format!("{}/../outside", dir.display()),
            dir.join("link").display().to_string(),
        ] {
            assert!(policy.secret_file(&escape).is_err(), "{escape}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
