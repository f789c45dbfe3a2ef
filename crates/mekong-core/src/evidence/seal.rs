//! Sealing audit events: every writer of the audit trail (the gateway, the admin service, adapters,
//! replays) adds an HMAC-SHA256 of the event under the instance's audit key, so that the notary and
//! `mekong verify --log` can tell the hub's events from records anyone else wrote to the topic.
//! The sealed bytes are the event's leaf data: its CloudEvents id, a newline, its JSON.

use ring::hmac;
use sha2::{Digest, Sha256};

use super::Hash;
use super::merkle::leaf_hash;

/// The Kafka header that carries an event's seal: `<key id>:<hex HMAC>`.
pub const SEAL_HEADER: &str = "mekong_seal";

/// The bytes of an audit event that are sealed, and hashed as its Merkle leaf.
pub fn leaf_data(id: &str, value: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(id.len() + 1 + value.len());
    data.extend_from_slice(id.as_bytes());
    data.push(b'\n');
    data.extend_from_slice(value);
    data
}

/// An event's Merkle leaf hash.
pub fn event_leaf(id: &str, value: &[u8]) -> Hash {
    leaf_hash(&leaf_data(id, value))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an audit key is 64 or more hexadecimal digits (32 bytes or more), as `mekong notary keygen` writes it"
)]
pub struct AuditKeyError;

/// The secret the hub's instances seal audit events with. Every writer and every verifier of the
/// trail holds it; several may be held at once while it is rotated.
#[derive(Clone)]
pub struct AuditKey {
    id: String,
    key: hmac::Key,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a verifier makes of an event's seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealCheck {
    /// Sealed by the key with this id.
    Sealed(String),
    /// No seal header.
    Missing,
    /// A seal under a key the verifier does not hold.
    UnknownKey(String),
    /// A seal that does not match the event: changed, or forged.
    Broken,
}

impl AuditKey {
    /// The key from its file's text: hexadecimal digits, surrounding whitespace ignored.
    pub fn from_text(text: &[u8]) -> Result<AuditKey, AuditKeyError> {
        let text = std::str::from_utf8(text).map_err(|_| AuditKeyError)?.trim();
        let secret = hex::decode(text).map_err(|_| AuditKeyError)?;
        if secret.len() < 32 {
            return Err(AuditKeyError);
        }
        let mut id = Sha256::new();
        id.update(b"mekong audit key\n");
        id.update(&secret);
        Ok(AuditKey {
            id: hex::encode(&id.finalize()[..4]),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// A new key, as the text of its file.
    pub fn generate_text() -> String {
        let rng = ring::rand::SystemRandom::new();
        let secret: [u8; 32] = ring::rand::generate(&rng)
            .expect("the system's random numbers")
            .expose();
        format!("{}\n", hex::encode(secret))
    }

    /// The key's public name: 8 hex digits derived from it, written in every seal.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The seal of an event, the value of its [`SEAL_HEADER`].
    pub fn seal(&self, id: &str, value: &[u8]) -> String {
        let tag = hmac::sign(&self.key, &leaf_data(id, value));
        format!("{}:{}", self.id, hex::encode(tag.as_ref()))
    }

    /// Checks an event's seal against the keys held.
    pub fn check(keys: &[AuditKey], id: &str, value: &[u8], seal: Option<&[u8]>) -> SealCheck {
        let Some(seal) = seal else {
            return SealCheck::Missing;
        };
        let Some((key_id, tag)) = std::str::from_utf8(seal)
            .ok()
            .and_then(|s| s.split_once(':'))
        else {
            return SealCheck::Broken;
        };
        let Some(key) = keys.iter().find(|k| k.id == key_id) else {
            return SealCheck::UnknownKey(key_id.to_owned());
        };
        match hex::decode(tag) {
            Ok(tag) if hmac::verify(&key.key, &leaf_data(id, value), &tag).is_ok() => {
                SealCheck::Sealed(key.id.clone())
            }
            _ => SealCheck::Broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_holds_for_its_event_only() {
        let key = AuditKey::from_text(AuditKey::generate_text().as_bytes()).unwrap();
        let other = AuditKey::from_text(AuditKey::generate_text().as_bytes()).unwrap();
        let seal = key.seal("e1", b"{\"event\":\"record.accepted\"}");
        let keys = [other.clone(), key.clone()];
        let check = |id: &str, value: &[u8], seal: Option<&str>| {
            AuditKey::check(&keys, id, value, seal.map(str::as_bytes))
        };
        assert_eq!(
            check("e1", b"{\"event\":\"record.accepted\"}", Some(&seal)),
            SealCheck::Sealed(key.id().to_owned())
        );
        assert_eq!(
            check("e1", b"{\"event\":\"record.rejected\"}", Some(&seal)),
            SealCheck::Broken
        );
        assert_eq!(
            check("e2", b"{\"event\":\"record.accepted\"}", Some(&seal)),
            SealCheck::Broken
        );
        assert_eq!(check("e1", b"{}", None), SealCheck::Missing);
        assert_eq!(check("e1", b"{}", Some("abc")), SealCheck::Broken);
        assert_eq!(
            AuditKey::check(
                &[other],
                "e1",
                b"{\"event\":\"record.accepted\"}",
                Some(seal.as_bytes())
            ),
            SealCheck::UnknownKey(key.id().to_owned())
        );
        assert!(AuditKey::from_text(b"abcd").is_err());
        assert!(AuditKey::from_text(format!(" {}\n", "0".repeat(62)).as_bytes()).is_err());
        assert!(AuditKey::from_text(format!(" {}\n", "0".repeat(64)).as_bytes()).is_ok());
    }
}
