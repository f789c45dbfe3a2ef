//! Anchoring checkpoints in time: RFC 3161 time-stamp requests for a checkpoint's signed note, and
//! the check of the token a time-stamping authority answers with (a CMS SignedData over a TSTInfo):
//! the TSTInfo's message imprint is the note's SHA-256, the signed attributes' message digest is
//! the TSTInfo's, the signature verifies with the TSA's certificate, and that certificate is a
//! trusted one or issued by one, for time stamping, valid at the time stamped.

use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("no time stamp")]
    Missing,
    #[error("not DER: {0}")]
    Malformed(&'static str),
    #[error("the time-stamping authority refused (PKIStatus {0})")]
    Refused(u8),
    #[error("the token stamps another message")]
    OtherMessage,
    #[error("the token's signed digest does not match its content: changed")]
    Changed,
    #[error("no certificate in the token verifies its signature")]
    BadSignature,
    #[error(
        "the signing certificate `{0}` is not trusted (not given with --tsa-ca, nor issued by one that is)"
    )]
    Untrusted(String),
    #[error(
        "the signing certificate `{0}` is not for time stamping, or not valid at the time stamped"
    )]
    NotForTimestamping(String),
    #[error("unsupported algorithm {0}")]
    Unsupported(String),
}

use TimestampError::Malformed;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The time stamped, as the TSA wrote it (GeneralizedTime, e.g. `20261202113233Z`).
    pub time: String,
    /// The same, in seconds since the Unix epoch.
    pub unix: i64,
    /// The subject of the TSA's certificate.
    pub authority: String,
}

const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const TST_INFO: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];
const MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// The DER TimeStampReq for `message` (SHA-256 imprint, the TSA's certificate asked for).
pub fn timestamp_request(message: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(message);
    let algorithm = tlv(0x30, &[tlv(0x06, SHA256), vec![0x05, 0x00]].concat());
    let imprint = tlv(0x30, &[algorithm, tlv(0x04, &digest)].concat());
    tlv(
        0x30,
        &[tlv(0x02, &[1]), imprint, vec![0x01, 0x01, 0xff]].concat(),
    )
}

/// The token (a CMS ContentInfo) out of a TSA's TimeStampResp, when it granted the request.
pub fn token_from_response(response: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let (body, _) = expect(response, 0x30, "a TimeStampResp")?;
    let (status_info, rest) = expect(body, 0x30, "its PKIStatusInfo")?;
    let (status, _) = expect(status_info, 0x02, "its status")?;
    let status = *status.last().ok_or(Malformed("an empty status"))?;
    if status > 1 {
        return Err(TimestampError::Refused(status));
    }
    let (_, _, whole, _) = read(rest)?;
    Ok(whole.to_vec())
}

/// Checks a token against the message it should stamp and the trusted certificates (DER).
pub fn verify_token(
    token: &[u8],
    message: &[u8],
    trusted: &[Vec<u8>],
) -> Result<Stamp, TimestampError> {
    let (content_info, _) = expect(token, 0x30, "a ContentInfo")?;
    let (oid, rest) = expect(content_info, 0x06, "its content type")?;
    if oid != SIGNED_DATA {
        return Err(Malformed("not a CMS SignedData"));
    }
    let (explicit, _) = expect(rest, 0xa0, "its content")?;
    let (signed_data, _) = expect(explicit, 0x30, "a SignedData")?;
    let (_, rest) = expect(signed_data, 0x02, "its version")?;
    let (_, rest) = expect(rest, 0x31, "its digest algorithms")?;
    let (encapsulated, mut rest) = expect(rest, 0x30, "its encapsulated content")?;
    let (oid, inner) = expect(encapsulated, 0x06, "its content type")?;
    if oid != TST_INFO {
        return Err(Malformed("not a TSTInfo"));
    }
    let (explicit, _) = expect(inner, 0xa0, "the TSTInfo")?;
    let (tst_info, _) = expect(explicit, 0x04, "the TSTInfo's octets")?;
    let mut certificates = Vec::new();
    let (tag, _, _, _) = read(rest)?;
    if tag == 0xa0 {
        let (mut certs, after) = expect(rest, 0xa0, "its certificates")?;
        while !certs.is_empty() {
            let (_, _, whole, next) = read(certs)?;
            certificates.push(whole);
            certs = next;
        }
        rest = after;
    }
    let (tag, _, _, after) = read(rest)?;
    if tag == 0xa1 {
        rest = after; // revocation data: not used
    }
    let (signer_infos, _) = expect(rest, 0x31, "its signer infos")?;
    let (signer_info, _) = expect(signer_infos, 0x30, "a SignerInfo")?;
    let (_, rest) = expect(signer_info, 0x02, "its version")?;
    let (_, _, _, rest) = read(rest)?; // sid: the certificates are tried instead
    let (digest_algorithm, rest) = expect(rest, 0x30, "its digest algorithm")?;
    let (digest_oid, _) = expect(digest_algorithm, 0x06, "its digest algorithm")?;
    let (attributes, _, signed_attributes, rest) = read(rest)?;
    if attributes != 0xa0 {
        return Err(Malformed("a SignerInfo without signed attributes"));
    }
    let (_, rest) = expect(rest, 0x30, "its signature algorithm")?;
    let (signature, _) = expect(rest, 0x04, "its signature")?;

    // The signed attributes bind the TSTInfo by its digest.
    let digest = hash(digest_oid, tst_info)?;
    if attribute(signed_attributes, MESSAGE_DIGEST)? != digest {
        return Err(TimestampError::Changed);
    }
    // They are signed as a SET, not with their implicit tag.
    let mut signed = signed_attributes.to_vec();
    signed[0] = 0x31;

    // The TSTInfo stamps this message.
    let (tst, _) = expect(tst_info, 0x30, "a TSTInfo")?;
    let (_, rest) = expect(tst, 0x02, "its version")?;
    let (_, rest) = expect(rest, 0x06, "its policy")?;
    let (imprint, rest) = expect(rest, 0x30, "its message imprint")?;
    let (algorithm, hashed) = expect(imprint, 0x30, "its hash algorithm")?;
    let (imprint_oid, _) = expect(algorithm, 0x06, "its hash algorithm")?;
    let (hashed, _) = expect(hashed, 0x04, "its hashed message")?;
    if hash(imprint_oid, message)? != hashed {
        return Err(TimestampError::OtherMessage);
    }
    let (_, rest) = expect(rest, 0x02, "its serial number")?;
    let (time, _) = expect(rest, 0x18, "its time")?;
    let time = std::str::from_utf8(time).map_err(|_| Malformed("a time that is not text"))?;
    let unix = generalized_time(time).ok_or(Malformed("a time that is not GeneralizedTime"))?;

    // The signer: a certificate of the token whose key verifies the signature.
    let signer = certificates
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| (*der, c)))
        .find(|(_, cert)| verifies(cert, digest_oid, &signed, signature).unwrap_or(false))
        .ok_or(TimestampError::BadSignature)?;
    let (signer_der, signer) = signer;
    let subject = signer.subject().to_string();
    let for_timestamping = signer
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.time_stamping);
    let validity = signer.validity();
    let valid = validity.not_before.timestamp() <= unix && unix <= validity.not_after.timestamp();
    if !for_timestamping || !valid {
        return Err(TimestampError::NotForTimestamping(subject));
    }
    let trusted_directly = trusted.iter().any(|t| t.as_slice() == signer_der);
    let issued_by_trusted = trusted.iter().any(|t| {
        X509Certificate::from_der(t).is_ok_and(|(_, ca)| {
            ca.subject() == signer.issuer()
                && signer.verify_signature(Some(ca.public_key())).is_ok()
        })
    });
    if !trusted_directly && !issued_by_trusted {
        return Err(TimestampError::Untrusted(subject));
    }
    Ok(Stamp {
        time: time.to_owned(),
        unix,
        authority: subject,
    })
}

/// The certificates (DER) of a PEM text, for trusting a TSA.
pub fn certificates_from_pem(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

/// Whether the certificate's key verifies `signature` over `signed` with the digest named.
fn verifies(
    cert: &X509Certificate<'_>,
    digest: &[u8],
    signed: &[u8],
    signature: &[u8],
) -> Result<bool, TimestampError> {
    use ring::signature as sig;
    let key = cert.public_key();
    let bits = &key.subject_public_key.data;
    let algorithm: &dyn sig::VerificationAlgorithm = match key.algorithm.algorithm.as_bytes() {
        RSA => match digest {
            SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            _ => return Err(TimestampError::Unsupported("digest for RSA".into())),
        },
        EC => {
            let curve = key
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_default();
            match (curve.as_slice(), digest) {
                (P256, SHA256) => &sig::ECDSA_P256_SHA256_ASN1,
                (P256, SHA384) => &sig::ECDSA_P256_SHA384_ASN1,
                (P384, SHA256) => &sig::ECDSA_P384_SHA256_ASN1,
                (P384, SHA384) => &sig::ECDSA_P384_SHA384_ASN1,
                _ => {
                    return Err(TimestampError::Unsupported(
                        "curve or digest for ECDSA".into(),
                    ));
                }
            }
        }
        _ => return Err(TimestampError::Unsupported("signature key type".into())),
    };
    Ok(sig::UnparsedPublicKey::new(algorithm, bits.as_ref())
        .verify(signed, signature)
        .is_ok())
}

fn hash(oid: &[u8], data: &[u8]) -> Result<Vec<u8>, TimestampError> {
    Ok(match oid {
        SHA256 => Sha256::digest(data).to_vec(),
        SHA384 => Sha384::digest(data).to_vec(),
        SHA512 => Sha512::digest(data).to_vec(),
        _ => return Err(TimestampError::Unsupported("digest algorithm".into())),
    })
}

/// The value of the signed attribute `oid` (an OCTET STRING).
fn attribute<'a>(signed_attributes: &'a [u8], oid: &[u8]) -> Result<&'a [u8], TimestampError> {
    let (_, mut attributes, _, _) = read(signed_attributes)?;
    while !attributes.is_empty() {
        let (attribute, next) = expect(attributes, 0x30, "an attribute")?;
        let (id, values) = expect(attribute, 0x06, "its type")?;
        if id == oid {
            let (values, _) = expect(values, 0x31, "its values")?;
            return expect(values, 0x04, "its value").map(|(v, _)| v);
        }
        attributes = next;
    }
    Err(Malformed("no message digest among the signed attributes"))
}

/// `YYYYMMDDHHMMSS[.fff]Z` as seconds since the Unix epoch.
fn generalized_time(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let whole = text.split('.').next()?;
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |range: std::ops::Range<usize>| whole[range].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(8..10)?, n(10..12)?, n(12..14)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// One TLV: its tag, its content, the whole of it, and what follows.
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn read(input: &[u8]) -> Result<Tlv<'_>, TimestampError> {
    let (&tag, rest) = input.split_first().ok_or(Malformed("the input ended"))?;
    let (&first, rest) = rest.split_first().ok_or(Malformed("the input ended"))?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let octets = (first & 0x7f) as usize;
        if octets == 0 || octets > 4 || rest.len() < octets {
            return Err(Malformed("a length"));
        }
        let length = rest[..octets]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | b as usize);
        (length, &rest[octets..])
    };
    if rest.len() < length {
        return Err(Malformed("a length past the end"));
    }
    let header = input.len() - rest.len();
    Ok((
        tag,
        &rest[..length],
        &input[..header + length],
        &rest[length..],
    ))
}

fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), TimestampError> {
    match read(input)? {
        (t, content, _, rest) if t == tag => Ok((content, rest)),
        _ => Err(Malformed(what)),
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    /// A token `openssl ts -reply` made (an RSA TSA certificate issued by an EC P-256 CA) for
    /// `hello note\n`, and that CA.
    const TOKEN: &str = include_str!("testdata/token.b64");
    const CA: &str = include_str!("testdata/ca.pem");
    const OTHER_CA: &str = include_str!("testdata/other-ca.pem");

    fn token() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(TOKEN.trim())
            .unwrap()
    }

    fn ca(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn an_openssl_token_verifies_for_its_message_and_trusted_ca_only() {
        let stamp = verify_token(&token(), b"hello note\n", &[ca(CA)]).unwrap();
        assert_eq!(stamp.authority, "CN=Test TSA");
        assert_eq!(stamp.time, "20261202113233Z");
        assert_eq!(stamp.unix, 1_796_211_153);
        assert_eq!(
            verify_token(&token(), b"hello note!\n", &[ca(CA)]),
            Err(TimestampError::OtherMessage)
        );
        assert_eq!(
            verify_token(&token(), b"hello note\n", &[ca(OTHER_CA)]),
            Err(TimestampError::Untrusted("CN=Test TSA".into()))
        );
        // One byte of the TSTInfo's time changed: its digest no longer matches.
        let mut changed = token();
        let at = changed
            .windows(15)
            .position(|w| w == b"20261202113233Z")
            .unwrap();
        changed[at + 13] = b'4';
        assert_eq!(
            verify_token(&changed, b"hello note\n", &[ca(CA)]),
            Err(TimestampError::Changed)
        );
        assert!(verify_token(&token()[..100], b"hello note\n", &[ca(CA)]).is_err());
    }

    #[test]
    fn a_request_is_the_der_openssl_makes() {
        // `openssl ts -query -data note.txt -sha256 -cert -no_nonce`, the note `hello note\n`.
        let openssl = "30390201013031300d060960864801650304020105000420d91206229a02\
                       2a13e022fa8deb06ab418e18c4a37861e6d0556ad9a74de855850101ff";
        let openssl: String = openssl.split_whitespace().collect();
        assert_eq!(hex::encode(timestamp_request(b"hello note\n")), openssl);
        assert_eq!(generalized_time("19700101000000Z"), Some(0));
        assert_eq!(generalized_time("20000301000000.5Z"), Some(951_868_800));
    }
}
