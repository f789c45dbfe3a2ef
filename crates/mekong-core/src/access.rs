//! Credentials and roles. API keys are never stored, only their SHA-256 digests; a presented key is
//! hashed and compared against every known digest in constant time, so neither the comparison nor
//! the position of the match tells an attacker anything.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May publish records of the types in its `publish` list.
    Publisher,
    /// May read the topics in its `subscribe` list.
    Subscriber,
    /// May manage resources.
    Admin,
}

/// The SHA-256 digest of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    /// Parses a digest written as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<ApiKeyHash, String> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut digest)
            .map_err(|_| "expected the SHA-256 digest of the key as 64 hex digits".to_string())?;
        Ok(ApiKeyHash(digest))
    }
}

/// Hashes an API key as presented by a caller.
pub fn hash_api_key(key: &str) -> ApiKeyHash {
    ApiKeyHash(Sha256::digest(key.as_bytes()).into())
}

/// Finds the owner of a key among `(owner, digest)` pairs, looking at every pair whatever matches.
pub(crate) fn find_key_owner<'a, T>(
    entries: impl IntoIterator<Item = (&'a ApiKeyHash, T)>,
    key: &str,
) -> Option<T> {
    find_digest_owner(entries, &hash_api_key(key))
}

/// Finds the owner of a presented key's digest, in constant time as [`find_key_owner`].
pub(crate) fn find_digest_owner<'a, T>(
    entries: impl IntoIterator<Item = (&'a ApiKeyHash, T)>,
    presented: &ApiKeyHash,
) -> Option<T> {
    let mut found = None;
    for (digest, owner) in entries {
        if bool::from(digest.0.ct_eq(&presented.0)) && found.is_none() {
            found = Some(owner);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_owner_of_a_known_key_only() {
        let a = hash_api_key("key-a");
        let b = hash_api_key("key-b");
        let entries = [(&a, "client-a"), (&b, "client-b")];
        assert_eq!(find_key_owner(entries, "key-b"), Some("client-b"));
        assert_eq!(find_key_owner(entries, "key-c"), None);
        assert_eq!(find_key_owner(entries, ""), None);
    }

    #[test]
    fn digest_from_hex() {
        let known = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"; // sha256("foo")
        assert_eq!(ApiKeyHash::from_hex(known).unwrap(), hash_api_key("foo"));
        assert!(ApiKeyHash::from_hex("abc").is_err());
        assert!(ApiKeyHash::from_hex(&"z".repeat(64)).is_err());
    }
}
