//! Secrets named by reference in adapter resources (`env:NAME`, `file:PATH`), read when an adapter
//! starts. The value never appears in a resource, a log line or the audit trail.

use std::fmt;
use std::io::Read;

use crate::policy::AdapterPolicy;

/// A secret's value; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The largest secret file read: a reference to `/dev/zero` must not fill the memory.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads the secret a reference names, within what the operator allows. A file's trailing newline
/// is not part of the secret.
pub fn resolve(reference: &str, policy: &AdapterPolicy) -> Result<Secret, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        policy.secret_variable(name)?;
        return std::env::var(name)
            .map(Secret)
            .map_err(|_| format!("environment variable `{name}` is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        let real = policy.secret_file(path)?;
        let mut text = String::new();
        std::fs::File::open(&real)
            .and_then(|f| f.take(MAX_SECRET_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| format!("cannot read secret file `{path}`: {e}"))?;
        if text.len() as u64 > MAX_SECRET_BYTES {
            return Err(format!(
                "secret file `{path}` is larger than {MAX_SECRET_BYTES} bytes"
            ));
        }
        return Ok(Secret(text.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Err(format!(
        "`{reference}` is not a secret reference (`env:NAME` or `file:PATH`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_without_the_trailing_newline_and_hides_values() {
        let dir = std::env::temp_dir().join(format!("mekong-secret-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("password");
        std::fs::write(&path, "hunter2\n").unwrap();
        let policy = AdapterPolicy {
            secrets_dirs: vec![dir.clone()],
            ..AdapterPolicy::default()
        };
        let secret = resolve(&format!("file:{}", path.display()), &policy).unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        std::fs::write(&path, vec![b'x'; 70_000]).unwrap();
        assert!(resolve(&format!("file:{}", path.display()), &policy).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(resolve("env:MEKONG_SECRET_SURELY_UNSET_VARIABLE", &policy).is_err());
        assert!(
            resolve("env:PATH", &policy)
                .unwrap_err()
                .contains("MEKONG_SECRET_")
        );
        assert!(resolve("hunter2", &policy).is_err());
    }
}
