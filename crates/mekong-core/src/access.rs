//! Credentials and roles. API keys are never stored, only their SHA-256 digests; a presented key is
//! hashed and its digest looked up. Only digests are ever compared, so how long a lookup takes
//! tells an attacker nothing about a key (finding a key from its digest's first bytes is as hard
//! as inverting SHA-256).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// May look at everything in the console (payloads excepted) and change nothing.
    Auditor,
}

/// The SHA-256 digest of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_hex() {
        let known = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"; // sha256("foo")
        assert_eq!(ApiKeyHash::from_hex(known).unwrap(), hash_api_key("foo"));
        assert!(ApiKeyHash::from_hex("abc").is_err());
        assert!(ApiKeyHash::from_hex(&"z".repeat(64)).is_err());
    }
}
