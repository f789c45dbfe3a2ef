//! Signed checkpoints in the C2SP formats: a `tlog-checkpoint` body (origin, tree size, base64 tree
//! head, extension lines) inside a `signed-note`, signed with Ed25519. The key id in each signature
//! is the note format's: the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
//!
//! Keys are PEM: a PKCS#8 private key (`signing.key`) and a SubjectPublicKeyInfo public key
//! (`signing.pub`), as `mekong notary keygen` and `openssl genpkey -algorithm ed25519` write them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest, Sha256};

use super::Hash;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the key's 32 bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The note format's signature type for Ed25519.
const ED25519_TYPE: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM PKCS#8 private key (-----BEGIN PRIVATE KEY-----)")]
    NotPkcs8,
    #[error("not an Ed25519 private key")]
    NotEd25519,
    #[error("not a PEM Ed25519 public key (-----BEGIN PUBLIC KEY-----, SubjectPublicKeyInfo)")]
    NotPublicKey,
    #[error("the key name `{0}` is not a note key name (no spaces, `+` or newlines)")]
    BadName(String),
}

/// An Ed25519 public key a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let der =
            SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| KeyError::NotPublicKey)?;
        let der: &[u8] = der.as_ref();
        match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(key) if key.len() == 32 => Ok(PublicKey(key.try_into().expect("32 bytes"))),
            _ => Err(KeyError::NotPublicKey),
        }
    }

    /// The SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem("PUBLIC KEY", &der)
    }

    /// The note key id of this key under `name`.
    pub fn key_id(&self, name: &str) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update(b"\n");
        h.update([ED25519_TYPE]);
        h.update(self.0);
        h.finalize()[..4].try_into().expect("4 bytes")
    }

    /// Hex of the first 8 bytes of SHA-256 of the key: how logs and reports name it.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// The notary's Ed25519 signing key, with the name its signatures carry.
pub struct SigningKey {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("public", &self.public().fingerprint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A PKCS#8 PEM Ed25519 key (v1 as OpenSSL writes it, or v2 with the public key).
    pub fn from_pem(name: &str, pem: &[u8]) -> Result<SigningKey, KeyError> {
        check_name(name)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPkcs8)?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|_| KeyError::NotEd25519)?;
        Ok(SigningKey {
            name: name.to_owned(),
            pair,
        })
    }

    /// A new key, as its PKCS#8 PEM: version 1, the seed alone, as OpenSSL writes and reads it
    /// (OpenSSL does not read the version 2 documents ring makes).
    pub fn generate_pem() -> String {
        let rng = ring::rand::SystemRandom::new();
        let seed: [u8; 32] = ring::rand::generate(&rng)
            .expect("the system's random numbers")
            .expose();
        let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        pem("PRIVATE KEY", &der)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(
            self.pair
                .public_key()
                .as_ref()
                .try_into()
                .expect("Ed25519 public keys are 32 bytes"),
        )
    }

    /// Signs a note's text (which ends with a newline): the text followed by its signature line.
    pub fn sign_note(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let mut blob = self.public().key_id(&self.name).to_vec();
        blob.extend_from_slice(self.pair.sign(text.as_bytes()).as_ref());
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        )
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '+') {
        return Err(KeyError::BadName(name.to_owned()));
    }
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A tree head as a checkpoint says it: the log it is of, its size and head, and (extension lines
/// `from N` and `offset N`) the audit offsets where its first leaf was read and that follows its
/// last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Where the tree's first leaf was read: the audit partition's start when the notary began.
    pub first_offset: i64,
    /// The offset of the first audit record after the last leaf.
    pub next_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(&'static str),
    #[error("signed by no trusted key (signatures by {0})")]
    Untrusted(String),
    #[error("the signature by `{0}` does not verify: the note was changed or forged")]
    BadSignature(String),
    #[error("not a checkpoint: {0}")]
    NotCheckpoint(&'static str),
}

impl Checkpoint {
    /// The checkpoint's body, the text that is signed.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\nfrom {}\noffset {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            self.first_offset,
            self.next_offset
        )
    }

    pub fn sign(&self, key: &SigningKey) -> String {
        key.sign_note(&self.text())
    }

    /// Reads a signed checkpoint and checks it is signed by one of `trusted`; answers the
    /// checkpoint and the fingerprint of the key that signed it.
    pub fn open(note: &str, trusted: &[PublicKey]) -> Result<(Checkpoint, PublicKey), NoteError> {
        let (text, signatures) = note
            .split_once("\n\n")
            .map(|(t, s)| (format!("{t}\n"), s))
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let mut names = Vec::new();
        for line in signatures.lines() {
            let rest = line
                .strip_prefix(SIGNATURE_PREFIX)
                .ok_or(NoteError::Malformed(
                    "a signature line does not start with `— `",
                ))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line has no signature"))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if blob.len() != 4 + 64 {
                // Not an Ed25519 signature (another type, or truncated): not ours to check.
                names.push(name.to_owned());
                continue;
            }
            let (id, signature) = blob.split_at(4);
            for key in trusted {
                if key.key_id(name) == id {
                    if !key.verifies(text.as_bytes(), signature) {
                        return Err(NoteError::BadSignature(name.to_owned()));
                    }
                    return Ok((Checkpoint::parse(&text)?, key.clone()));
                }
            }
            names.push(format!("{name}+{}", hex::encode(id)));
        }
        Err(NoteError::Untrusted(if names.is_empty() {
            "nobody".into()
        } else {
            names.join(", ")
        }))
    }

    /// Reads a signed checkpoint without checking its signatures: for the hub's own use (which
    /// checkpoint to prove against); verifiers use [`Checkpoint::open`].
    pub fn read_unverified(note: &str) -> Result<Checkpoint, NoteError> {
        let (text, _) = note
            .split_once("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        Checkpoint::parse(&format!("{text}\n"))
    }

    fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::NotCheckpoint("no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(NoteError::NotCheckpoint("no tree size"))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(NoteError::NotCheckpoint("no base64 tree head of 32 bytes"))?;
        let extensions: Vec<&str> = lines.collect();
        let extension = |name: &str| {
            extensions
                .iter()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        };
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            first_offset: extension("from")
                .ok_or(NoteError::NotCheckpoint("no `from` extension line"))?,
            next_offset: extension("offset")
                .ok_or(NoteError::NotCheckpoint("no `offset` extension line"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SigningKey {
        SigningKey::from_pem(name, SigningKey::generate_pem().as_bytes()).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "mekong/_mekong.audit/0".into(),
            size: 12,
            root: [7; 32],
            first_offset: 0,
            next_offset: 40,
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_no_other() {
        let (notary, other) = (key("hcmc-notary"), key("hcmc-notary"));
        let note = checkpoint().sign(&notary);
        assert!(note.starts_with("mekong/_mekong.audit/0\n12\n"));
        assert!(note.contains("\n\n\u{2014} hcmc-notary "));
        let trusted = [other.public(), notary.public()];
        assert_eq!(
            Checkpoint::open(&note, &trusted).unwrap(),
            (checkpoint(), notary.public())
        );
        assert!(matches!(
            Checkpoint::open(&note, &[other.public()]),
            Err(NoteError::Untrusted(names)) if names.starts_with("hcmc-notary+")
        ));
        let changed = note.replacen("\n12\n", "\n13\n", 1);
        assert_eq!(
            Checkpoint::open(&changed, &trusted),
            Err(NoteError::BadSignature("hcmc-notary".into()))
        );
    }

    #[test]
    fn public_keys_read_back_from_their_pem() {
        let notary = key("n");
        let pem = notary.public().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(
            PublicKey::from_pem(pem.as_bytes()).unwrap(),
            notary.public()
        );
        assert_eq!(
            PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::NotPublicKey)
        );
        assert_eq!(
            SigningKey::from_pem("n", pem.as_bytes()).unwrap_err(),
            KeyError::NotPkcs8
        );
        assert!(matches!(
            SigningKey::from_pem("a b", b""),
            Err(KeyError::BadName(_))
        ));
    }

    /// A key as `openssl genpkey -algorithm ed25519` writes it (PKCS#8 v1, no public key), and its
    /// `openssl pkey -pubout`.
    #[test]
    fn openssl_keys_work_the_same() {
        let private = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let public = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let key = SigningKey::from_pem("n", private).unwrap();
        assert_eq!(key.public(), PublicKey::from_pem(public).unwrap());
    }
}
