//! Secrets named by reference in adapter resources (`env:NAME`, `file:PATH`), read when an adapter
//! starts. The value never appears in a resource, a log line or the audit trail.

use std::fmt;

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

/// Reads the secret a reference names. A file's trailing newline is not part of the secret.
pub fn resolve(reference: &str) -> Result<Secret, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name)
            .map(Secret)
            .map_err(|_| format!("environment variable `{name}` is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|e| format!("cannot read secret file `{path}`: {e}"));
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
        let path = std::env::temp_dir().join(format!("mekong-secret-{}", std::process::id()));
        std::fs::write(&path, "hunter2\n").unwrap();
        let secret = resolve(&format!("file:{}", path.display())).unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        std::fs::remove_file(&path).unwrap();
        assert!(resolve("env:MEKONG_SURELY_UNSET_VARIABLE").is_err());
        assert!(resolve("hunter2").is_err());
    }
}
