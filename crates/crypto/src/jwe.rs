//! JWE in compact serialisation (RFC 7516) as FIT-Connect uses it: the content-encryption key
//! is wrapped with `RSA-OAEP-256` (RFC 7518 § 4.3) under the destination's RSA key of at least
//! 4096 bits, the content is encrypted with `A256GCM` (RFC 7518 § 5.3), optionally after raw
//! DEFLATE compression (`"zip":"DEF"`, RFC 1951).
//!
//! * [`JweCompact::parse`] checks the structure and the protected header **without a key**,
//!   so a delivery service (which never holds private keys) can tell a sender precisely what
//!   is wrong at upload time. [`JweProblem`] names each defect.
//! * [`authentication_tag`] reads the fifth segment (FIT-Connect's accept event compares
//!   these strings) without looking at the ciphertext at all.
//! * [`decrypt`] and [`encrypt`] for subscribers and our own senders.
//!
//! Only `enc: A256GCM` is accepted: FIT-Connect prescribes it, every SDK sends it, and
//! A128GCM/A192GCM would only widen what a strict server lets through (aws-lc-rs has no
//! AES-192-GCM either).

use crate::Error;
use crate::jws::{b64url_uint, rsa_jwk_thumbprint};
use crate::rsa::{KeyPurpose, MIN_MODULUS_BYTES, RsaKeyWithCert};
use crate::util::fill_random;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use zeroize::Zeroizing;

/// The only key-management algorithm accepted and produced.
pub const JWE_ALG: &str = "RSA-OAEP-256";
/// The only content-encryption algorithm accepted and produced.
pub const JWE_ENC: &str = "A256GCM";
/// The only compression algorithm (`zip`) accepted and produced: raw DEFLATE.
pub const JWE_ZIP: &str = "DEF";

/// Longest protected-header segment accepted (base64url characters). SDK headers are about
/// 100 characters; this leaves room for long `kid`s and extra members.
const MAX_HEADER_B64: usize = 8 * 1024;
/// RSA moduli from 4096 (FIT-Connect's minimum) to 8192 bits (aws-lc's maximum).
const MIN_ENCRYPTED_KEY: usize = MIN_MODULUS_BYTES;
const MAX_ENCRYPTED_KEY: usize = 8192 / 8;
const CEK_LEN: usize = 32;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// base64url lengths (unpadded) of the fixed-size segments.
const IV_B64_LEN: usize = 16;
const TAG_B64_LEN: usize = 22;
/// Ciphertext is checked for valid base64url in chunks of this many characters (a multiple
/// of four), decoded into a stack buffer, so parsing never allocates for the ciphertext.
const CHECK_CHUNK: usize = 4096;
/// DEFLATE level for [`encrypt`] (zlib's default trade-off).
const DEFLATE_LEVEL: i32 = 6;

/// What is wrong with a JWE, detected by [`JweCompact::parse`] without any key. The
/// `Display` text is meant to be shown to the sender as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JweProblem {
    /// Not exactly five dot-separated segments.
    NotFiveSegments,
    /// The protected header segment is longer than this implementation accepts.
    HeaderTooLong,
    /// The protected header segment is not canonical unpadded base64url.
    HeaderNotBase64url,
    /// The decoded protected header is not JSON (or not UTF-8).
    HeaderNotJson,
    /// The protected header is JSON, but not an object.
    HeaderNotObject,
    /// The protected header names a member twice (RFC 7516 § 4: names must be unique).
    HeaderDuplicateMember,
    /// No `alg` in the protected header.
    AlgMissing,
    /// `alg` is not `RSA-OAEP-256`.
    AlgUnsupported,
    /// No `enc` in the protected header.
    EncMissing,
    /// `enc` is not `A256GCM`.
    EncUnsupported,
    /// `zip` is present but not `DEF`.
    ZipUnsupported,
    /// The header lists critical extensions (`crit`), none of which are implemented.
    CritUnsupported,
    /// The encrypted-key segment is not canonical unpadded base64url.
    EncryptedKeyNotBase64url,
    /// The encrypted key is not 512–1024 bytes (an RSA-4096 to RSA-8192 OAEP block).
    EncryptedKeyLength,
    /// The IV segment is not canonical unpadded base64url.
    IvNotBase64url,
    /// The IV is not 96 bits.
    IvLength,
    /// The ciphertext segment is not canonical unpadded base64url.
    CiphertextNotBase64url,
    /// The authentication-tag segment is not canonical unpadded base64url.
    TagNotBase64url,
    /// The authentication tag is not 128 bits.
    TagLength,
}

impl fmt::Display for JweProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JweProblem::NotFiveSegments => {
                "not five dot-separated segments (header.encryptedKey.iv.ciphertext.tag)"
            }
            JweProblem::HeaderTooLong => "protected header is longer than 8192 characters",
            JweProblem::HeaderNotBase64url => "protected header is not unpadded base64url",
            JweProblem::HeaderNotJson => "protected header is not JSON",
            JweProblem::HeaderNotObject => "protected header is not a JSON object",
            JweProblem::HeaderDuplicateMember => "protected header has a duplicate member name",
            JweProblem::AlgMissing => "protected header has no \"alg\"",
            JweProblem::AlgUnsupported => "\"alg\" must be \"RSA-OAEP-256\"",
            JweProblem::EncMissing => "protected header has no \"enc\"",
            JweProblem::EncUnsupported => "\"enc\" must be \"A256GCM\"",
            JweProblem::ZipUnsupported => "\"zip\" must be absent or \"DEF\"",
            JweProblem::CritUnsupported => "\"crit\" header extensions are not supported",
            JweProblem::EncryptedKeyNotBase64url => "encrypted key is not unpadded base64url",
            JweProblem::EncryptedKeyLength => {
                "encrypted key must be 512 to 1024 bytes (RSA key of 4096 to 8192 bits)"
            }
            JweProblem::IvNotBase64url => "IV is not unpadded base64url",
            JweProblem::IvLength => "IV must be 96 bits (16 base64url characters)",
            JweProblem::CiphertextNotBase64url => "ciphertext is not unpadded base64url",
            JweProblem::TagNotBase64url => "authentication tag is not unpadded base64url",
            JweProblem::TagLength => {
                "authentication tag must be 128 bits (22 base64url characters)"
            }
        })
    }
}

impl std::error::Error for JweProblem {}

fn malformed(problem: JweProblem) -> Error {
    Error::MalformedJwe(problem)
}

/// The protected header of an accepted JWE: `alg` is `RSA-OAEP-256`, `enc` is `A256GCM`,
/// `zip` is absent or `DEF`, there is no `crit`. Other members (`typ`, `cty`, `kid`, …) are
/// kept as sent, whatever their value: FIT-Connect SDKs put the JWK thumbprint into `kid`
/// rather than the destination's `encryptionKid`, so the caller decides what to check.
#[derive(Debug, Clone, PartialEq)]
pub struct JweHeader {
    members: Map<String, Value>,
}

impl JweHeader {
    /// Whether the plaintext was compressed with raw DEFLATE (`"zip":"DEF"`).
    #[must_use]
    pub fn is_deflated(&self) -> bool {
        self.members.contains_key("zip")
    }

    /// `cty` if it is a string (FIT-Connect's live service requires it on metadata and data).
    #[must_use]
    pub fn cty(&self) -> Option<&str> {
        self.str_member("cty")
    }

    /// `kid` if it is a string.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.str_member("kid")
    }

    /// `typ` if it is a string.
    #[must_use]
    pub fn typ(&self) -> Option<&str> {
        self.str_member("typ")
    }

    /// Any member, as sent.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    /// All members, as sent.
    #[must_use]
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    fn str_member(&self, name: &str) -> Option<&str> {
        self.members.get(name).and_then(Value::as_str)
    }

    /// Decodes and checks a protected-header segment.
    fn parse(segment: &str) -> Result<Self, Error> {
        if segment.len() > MAX_HEADER_B64 {
            return Err(malformed(JweProblem::HeaderTooLong));
        }
        let json = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| malformed(JweProblem::HeaderNotBase64url))?;
        let value: Value =
            serde_json::from_slice(&json).map_err(|_| malformed(JweProblem::HeaderNotJson))?;
        if !value.is_object() {
            return Err(malformed(JweProblem::HeaderNotObject));
        }
        // serde_json keeps the last of duplicate names silently; parse again, refusing them.
        let UniqueMembers(members) = serde_json::from_slice(&json)
            .map_err(|_| malformed(JweProblem::HeaderDuplicateMember))?;
        match members.get("alg") {
            None => return Err(malformed(JweProblem::AlgMissing)),
            Some(alg) if alg != JWE_ALG => return Err(malformed(JweProblem::AlgUnsupported)),
            Some(_) => {}
        }
        match members.get("enc") {
            None => return Err(malformed(JweProblem::EncMissing)),
            Some(enc) if enc != JWE_ENC => return Err(malformed(JweProblem::EncUnsupported)),
            Some(_) => {}
        }
        if let Some(zip) = members.get("zip")
            && zip != JWE_ZIP
        {
            return Err(malformed(JweProblem::ZipUnsupported));
        }
        if members.contains_key("crit") {
            return Err(malformed(JweProblem::CritUnsupported));
        }
        Ok(Self { members })
    }
}

/// A JSON object whose member names are unique (top level only).
struct UniqueMembers(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueMembers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with unique member names")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMembers, A::Error> {
                let mut members = Map::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if members.insert(name, value).is_some() {
                        return Err(A::Error::custom("duplicate member name"));
                    }
                }
                Ok(UniqueMembers(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A structurally valid FIT-Connect JWE in compact serialisation, borrowing the input: the
/// ciphertext is neither copied nor decoded until [`decrypt`].
///
/// The overall size is the caller's to bound (HTTP body limit); parsing is linear in it and
/// allocates only for the header and the encrypted key.
#[derive(Clone)]
pub struct JweCompact<'a> {
    header: JweHeader,
    header_b64: &'a str,
    encrypted_key: Vec<u8>,
    iv: [u8; IV_LEN],
    ciphertext_b64: &'a str,
    tag: [u8; TAG_LEN],
    tag_b64: &'a str,
}

impl<'a> JweCompact<'a> {
    /// Checks a compact JWE without decrypting it: five segments, each canonical unpadded
    /// base64url; a protected header that is a JSON object with unique names, `alg`
    /// `RSA-OAEP-256`, `enc` `A256GCM`, `zip` absent or `DEF`, no `crit`; an encrypted key of
    /// 512–1024 bytes, a 96-bit IV and a 128-bit tag. The ciphertext is validated as base64url
    /// in place (no copy).
    ///
    /// # Errors
    /// [`Error::MalformedJwe`] with the first [`JweProblem`] found, checking the segments in
    /// order.
    pub fn parse(compact: &'a str) -> Result<Self, Error> {
        let mut segments = compact.split('.');
        let (
            Some(header_b64),
            Some(key_b64),
            Some(iv_b64),
            Some(ciphertext_b64),
            Some(tag_b64),
            None,
        ) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        )
        else {
            return Err(malformed(JweProblem::NotFiveSegments));
        };

        let header = JweHeader::parse(header_b64)?;

        // Length first, so that a huge segment is not decoded just to be refused.
        if key_b64.len() > MAX_ENCRYPTED_KEY.div_ceil(3) * 4 {
            return Err(malformed(JweProblem::EncryptedKeyLength));
        }
        let encrypted_key = URL_SAFE_NO_PAD
            .decode(key_b64)
            .map_err(|_| malformed(JweProblem::EncryptedKeyNotBase64url))?;
        if !(MIN_ENCRYPTED_KEY..=MAX_ENCRYPTED_KEY).contains(&encrypted_key.len()) {
            return Err(malformed(JweProblem::EncryptedKeyLength));
        }

        let iv = decode_fixed::<IV_LEN>(
            iv_b64,
            IV_B64_LEN,
            JweProblem::IvLength,
            JweProblem::IvNotBase64url,
        )?;

        check_base64url(ciphertext_b64)
            .map_err(|()| malformed(JweProblem::CiphertextNotBase64url))?;

        let tag = decode_fixed::<TAG_LEN>(
            tag_b64,
            TAG_B64_LEN,
            JweProblem::TagLength,
            JweProblem::TagNotBase64url,
        )?;

        Ok(Self {
            header,
            header_b64,
            encrypted_key,
            iv,
            ciphertext_b64,
            tag,
            tag_b64,
        })
    }

    /// The checked protected header.
    #[must_use]
    pub fn header(&self) -> &JweHeader {
        &self.header
    }

    /// The protected header segment exactly as sent (it is the AAD of the encryption).
    #[must_use]
    pub fn protected_header_b64(&self) -> &'a str {
        self.header_b64
    }

    /// The decoded encrypted key (one RSA-OAEP block).
    #[must_use]
    pub fn encrypted_key(&self) -> &[u8] {
        &self.encrypted_key
    }

    /// The ciphertext segment exactly as sent (base64url, not decoded).
    #[must_use]
    pub fn ciphertext_b64(&self) -> &'a str {
        self.ciphertext_b64
    }

    /// Length of the decoded ciphertext in bytes; equals the (possibly compressed) plaintext
    /// length, since AES-GCM adds no padding.
    #[must_use]
    pub fn ciphertext_len(&self) -> usize {
        base64url_decoded_len(self.ciphertext_b64.len())
    }

    /// The authentication tag segment exactly as sent. FIT-Connect's `accept-submission`
    /// event lists these strings, and receivers compare them as strings.
    #[must_use]
    pub fn authentication_tag(&self) -> &'a str {
        self.tag_b64
    }
}

impl fmt::Debug for JweCompact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JweCompact")
            .field("header", &self.header)
            .field("encrypted_key_len", &self.encrypted_key.len())
            .field("ciphertext_len", &self.ciphertext_len())
            .field("authentication_tag", &self.tag_b64)
            .finish()
    }
}

/// The authentication tag (fifth segment, exactly as sent) of a compact JWE, checking only
/// what is needed to find it: at least five segments, and a tag that is 22 characters of
/// canonical base64url. Cost is independent of the ciphertext's size (the ciphertext is not
/// looked at), so this suits 30 MB attachments whose structure was checked on upload.
///
/// # Errors
/// [`Error::MalformedJwe`] ([`JweProblem::NotFiveSegments`], [`JweProblem::TagLength`] or
/// [`JweProblem::TagNotBase64url`]).
pub fn authentication_tag(compact: &str) -> Result<&str, Error> {
    let Some((front, tag_b64)) = compact.rsplit_once('.') else {
        return Err(malformed(JweProblem::NotFiveSegments));
    };
    // header.encryptedKey.iv.ciphertext: the first three separators lie within the bounded
    // header, key and IV segments, so this scan stops early.
    if front.splitn(4, '.').count() != 4 {
        return Err(malformed(JweProblem::NotFiveSegments));
    }
    decode_fixed::<TAG_LEN>(
        tag_b64,
        TAG_B64_LEN,
        JweProblem::TagLength,
        JweProblem::TagNotBase64url,
    )?;
    Ok(tag_b64)
}

/// Decodes a fixed-size segment, reporting a wrong length before bad characters.
fn decode_fixed<const N: usize>(
    segment: &str,
    b64_len: usize,
    wrong_length: JweProblem,
    not_base64url: JweProblem,
) -> Result<[u8; N], Error> {
    if segment.len() != b64_len {
        return Err(malformed(wrong_length));
    }
    let decoded = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| malformed(not_base64url))?;
    decoded.try_into().map_err(|_| malformed(wrong_length))
}

/// Validates canonical unpadded base64url by decoding it chunk by chunk into a stack buffer
/// (the `base64` crate's own rules: alphabet, no padding, no non-zero trailing bits).
fn check_base64url(s: &str) -> Result<(), ()> {
    let mut buf = [0u8; CHECK_CHUNK / 4 * 3];
    for chunk in s.as_bytes().chunks(CHECK_CHUNK) {
        URL_SAFE_NO_PAD
            .decode_slice(chunk, &mut buf)
            .map_err(|_| ())?;
    }
    Ok(())
}

/// Exact decoded length of canonical unpadded base64url of `len` characters.
fn base64url_decoded_len(len: usize) -> usize {
    len / 4 * 3 + (len % 4).saturating_sub(1)
}

/// The result of [`decrypt`]. `Debug` prints the header and the plaintext's length only.
pub struct Decrypted {
    /// The checked protected header.
    pub header: JweHeader,
    /// The plaintext, decompressed if the header says `"zip":"DEF"`; zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("header", &self.header)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

/// A destination's RSA public key for `RSA-OAEP-256` key wrapping: what a sender encrypts to.
pub struct RsaEncryptionKey {
    key: OaepPublicEncryptingKey,
    kid: Option<String>,
    thumbprint: String,
}

impl RsaEncryptionKey {
    /// Reads a public encryption JWK as FIT-Connect serves it. `kty` must be `RSA` and the
    /// modulus at least 4096 bits; `alg` (`RSA-OAEP-256`), `key_ops` (containing `wrapKey`)
    /// and `use` (`enc`) are optional but must fit when present. `x5c` is not evaluated
    /// (validating it against the administration PKI is the caller's business).
    ///
    /// # Errors
    /// [`Error::InvalidJwk`] naming the offending member.
    pub fn from_jwk(jwk: &Value) -> Result<Self, Error> {
        match jwk.get("kty") {
            Some(kty) if kty == "RSA" => {}
            _ => return Err(Error::InvalidJwk("\"kty\" is not \"RSA\"")),
        }
        if let Some(alg) = jwk.get("alg")
            && alg != JWE_ALG
        {
            return Err(Error::InvalidJwk("\"alg\" must be \"RSA-OAEP-256\""));
        }
        if let Some(ops) = jwk.get("key_ops") {
            let wraps = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op == "wrapKey"));
            if !wraps {
                return Err(Error::InvalidJwk(
                    "\"key_ops\" does not contain \"wrapKey\"",
                ));
            }
        }
        if let Some(u) = jwk.get("use")
            && u != "enc"
        {
            return Err(Error::InvalidJwk("\"use\" must be \"enc\""));
        }
        let n = jwk
            .get("n")
            .and_then(Value::as_str)
            .and_then(b64url_uint)
            .ok_or(Error::InvalidJwk("\"n\" missing or not base64url"))?;
        let e = jwk
            .get("e")
            .and_then(Value::as_str)
            .and_then(b64url_uint)
            .ok_or(Error::InvalidJwk("\"e\" missing or not base64url"))?;
        if n.len() < MIN_MODULUS_BYTES {
            return Err(Error::InvalidJwk("RSA modulus is shorter than 4096 bits"));
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(Error::InvalidJwk("\"kid\" is not a string")),
        };
        // Thumbprint over the canonical (leading-zero-free) encoding, as RFC 7638 requires.
        let thumbprint =
            rsa_jwk_thumbprint(&URL_SAFE_NO_PAD.encode(&n), &URL_SAFE_NO_PAD.encode(&e));
        let public: PublicEncryptingKey = PublicKeyComponents { n, e }
            .try_into()
            .map_err(|_| Error::InvalidJwk("\"n\" and \"e\" do not form a usable RSA key"))?;
        Self::from_public(public, kid, thumbprint)
    }

    fn from_public(
        public: PublicEncryptingKey,
        kid: Option<String>,
        thumbprint: String,
    ) -> Result<Self, Error> {
        let key = OaepPublicEncryptingKey::new(public)
            .map_err(|_| Error::InvalidJwk("\"n\" and \"e\" do not form a usable RSA key"))?;
        Ok(Self {
            key,
            kid,
            thumbprint,
        })
    }

    /// The JWK's `kid`, if it had one (for our own keys: the thumbprint).
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// RFC 7638 thumbprint of the key (what the Python SDKs put into the JWE's `kid`).
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

impl fmt::Debug for RsaEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaEncryptionKey")
            .field("kid", &self.kid)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// A destination's RSA-4096 decryption key (`RSA-OAEP-256`), with a self-signed certificate
/// for the `x5c` that FIT-Connect's JWK schema requires.
///
/// The published JWK ([`Self::public_jwk`]) carries `"use":"enc"` next to
/// `"key_ops":["wrapKey"]`: FIT-Connect's live encryption keys have both, jwcrypto (the
/// Python SDKs) accepts the pair because it is consistent, and clients whose JOSE library
/// dislikes it (node `jose`) strip both before import anyway. `kid` is the RFC 7638
/// thumbprint, as for [`crate::RsaSigningKey`].
pub struct RsaDecryptionKey {
    inner: RsaKeyWithCert,
    oaep: OaepPrivateDecryptingKey,
    public: RsaEncryptionKey,
}

impl RsaDecryptionKey {
    /// Generates a new RSA-4096 key and a self-signed certificate for it (CN = `common_name`,
    /// valid from one day ago for ten years, key usage keyEncipherment). Takes seconds.
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] or [`Error::CertificateGeneration`].
    pub fn generate(common_name: &str) -> Result<Self, Error> {
        Self::from_inner(RsaKeyWithCert::generate(KeyPurpose::Encrypt, common_name)?)
    }

    /// Loads a key stored with [`Self::pkcs8_der`] and [`Self::cert_der`].
    ///
    /// # Errors
    /// As [`crate::RsaSigningKey::from_der`].
    pub fn from_der(pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self, Error> {
        Self::from_inner(RsaKeyWithCert::from_der(
            KeyPurpose::Encrypt,
            pkcs8_der,
            cert_der,
        )?)
    }

    /// Loads a private JWK as written by [`Self::private_jwk`]. `alg`, `key_ops` and `use`
    /// may be absent, but if present must be `RSA-OAEP-256`, contain `unwrapKey`, and be
    /// `enc`; `x5c` must carry this key's certificate; `kid`, if present, must be the RFC 7638
    /// thumbprint.
    ///
    /// # Errors
    /// [`Error::InvalidPrivateJwk`], or the errors of [`Self::from_der`].
    pub fn from_private_jwk(jwk: &str) -> Result<Self, Error> {
        Self::from_inner(RsaKeyWithCert::from_private_jwk(KeyPurpose::Encrypt, jwk)?)
    }

    fn from_inner(inner: RsaKeyWithCert) -> Result<Self, Error> {
        let private = PrivateDecryptingKey::from_pkcs8(&inner.pkcs8_der())
            .map_err(|_| Error::InvalidPrivateKey("not an RSA private key in PKCS#8 DER"))?;
        let public = RsaEncryptionKey::from_public(
            private.public_key(),
            Some(inner.kid().to_owned()),
            inner.kid().to_owned(),
        )?;
        let oaep = OaepPrivateDecryptingKey::new(private)
            .map_err(|_| Error::InvalidPrivateKey("not usable for RSA-OAEP"))?;
        Ok(Self {
            inner,
            oaep,
            public,
        })
    }

    /// The private key as unencrypted PKCS#8 DER, for wrapping with a [`crate::Kek`].
    ///
    /// # Panics
    /// Only if aws-lc cannot serialise a key it has already validated (allocation failure).
    #[must_use]
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.inner.pkcs8_der()
    }

    /// The private key as a JWK for a key file (the demo's decryption key):
    /// `{"kty":"RSA","key_ops":["unwrapKey"],"alg":"RSA-OAEP-256","kid","n","e","d","p","q",
    /// "dp","dq","qi","x5c":[…]}` on one line. Zeroized on drop.
    ///
    /// # Panics
    /// Only if aws-lc's own PKCS#8 encoding does not parse (a bug).
    #[must_use]
    pub fn private_jwk(&self) -> Zeroizing<String> {
        self.inner.private_jwk()
    }

    /// The self-signed certificate (DER), as published in the JWK's `x5c`.
    #[must_use]
    pub fn cert_der(&self) -> &[u8] {
        self.inner.cert_der()
    }

    /// RFC 7638 thumbprint of the public key.
    #[must_use]
    pub fn kid(&self) -> &str {
        self.inner.kid()
    }

    /// The public key as FIT-Connect serves it: `{"kty":"RSA","key_ops":["wrapKey"],
    /// "alg":"RSA-OAEP-256","use":"enc","kid","n","e","x5c":[…]}`.
    #[must_use]
    pub fn public_jwk(&self) -> Value {
        self.inner.public_jwk()
    }

    /// The public half, for encrypting to this key.
    #[must_use]
    pub fn encryption_key(&self) -> &RsaEncryptionKey {
        &self.public
    }

    /// RSA-OAEP-256 unwrap of the content-encryption key. On any failure (wrong key, altered
    /// block, wrong length) a random key is returned instead, so that the caller fails later
    /// at the GCM tag in the same way and after the same work (RFC 7516 § 11.5).
    fn unwrap_cek(&self, encrypted_key: &[u8]) -> Zeroizing<[u8; CEK_LEN]> {
        let mut cek = Zeroizing::new([0u8; CEK_LEN]);
        fill_random(&mut cek[..]);
        let mut out = Zeroizing::new(vec![0u8; self.oaep.min_output_size()]);
        if let Ok(unwrapped) =
            self.oaep
                .decrypt(&OAEP_SHA256_MGF1SHA256, encrypted_key, &mut out, None)
            && unwrapped.len() == CEK_LEN
        {
            cek.copy_from_slice(unwrapped);
        }
        cek
    }
}

impl fmt::Debug for RsaDecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaDecryptionKey")
            .field("kid", &self.inner.kid())
            .finish_non_exhaustive()
    }
}

/// Decrypts a parsed JWE: RSA-OAEP (SHA-256, MGF1-SHA-256) unwraps the 256-bit
/// content-encryption key, AES-256-GCM opens the ciphertext with the protected-header segment
/// as AAD (RFC 7516 § 5.2), then raw DEFLATE is inflated if `zip` is `DEF`.
///
/// `max_plaintext` bounds the result in bytes, after decompression: a JWE whose ciphertext
/// alone is larger is refused before any cryptography, and inflation stops as soon as the
/// output would exceed it (decompression bombs).
///
/// # Errors
/// [`Error::JweDecryptionFailed`] for a wrong key or any alteration (one error for all, so
/// there is no oracle); [`Error::JwePlaintextTooLarge`]; [`Error::JweDecompressionFailed`] if
/// the authenticated data is not valid DEFLATE.
pub fn decrypt(
    key: &RsaDecryptionKey,
    jwe: &JweCompact<'_>,
    max_plaintext: usize,
) -> Result<Decrypted, Error> {
    let deflated = jwe.header.is_deflated();
    let ciphertext_len = jwe.ciphertext_len();
    // Raw DEFLATE can be slightly larger than its input (stored blocks: 5 bytes per 64 KiB);
    // allow generous slack for that, the output bound below is exact.
    let max_ciphertext = if deflated {
        max_plaintext.saturating_add(max_plaintext / 1024 + 1024)
    } else {
        max_plaintext
    };
    if ciphertext_len > max_ciphertext {
        return Err(Error::JwePlaintextTooLarge {
            limit: max_plaintext,
        });
    }
    if jwe.encrypted_key.len() != key.oaep.key_size_bytes() {
        return Err(Error::JweDecryptionFailed);
    }

    let cek = key.unwrap_cek(&jwe.encrypted_key);
    let aes = UnboundKey::new(&AES_256_GCM, &cek[..])
        .map(LessSafeKey::new)
        .map_err(|_| Error::JweDecryptionFailed)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
        jwe.ciphertext_b64.len(),
    )));
    URL_SAFE_NO_PAD
        .decode_vec(jwe.ciphertext_b64, &mut buf)
        .map_err(|_| malformed(JweProblem::CiphertextNotBase64url))?;
    aes.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(jwe.iv),
        Aad::from(jwe.header_b64.as_bytes()),
        &jwe.tag,
        &mut buf,
    )
    .map_err(|_| Error::JweDecryptionFailed)?;

    let plaintext = if deflated {
        inflate_bounded(&buf, max_plaintext)?
    } else {
        buf
    };
    Ok(Decrypted {
        header: jwe.header.clone(),
        plaintext,
    })
}

/// Encrypts `plaintext` for `key` as FIT-Connect expects: a fresh random 256-bit
/// content-encryption key wrapped with RSA-OAEP-256, a random 96-bit IV, AES-256-GCM.
///
/// The protected header is `{"alg":"RSA-OAEP-256","enc":"A256GCM"}` plus `cty` and `kid` when
/// given, and `"zip":"DEF"` when `zip` is set (then the plaintext is raw-DEFLATE compressed
/// first). FIT-Connect's live service requires `cty` on metadata and data
/// (`application/json`); for `kid`, send the destination's `encryptionKid` (jwcrypto-based
/// SDKs send the key's thumbprint, [`RsaEncryptionKey::thumbprint`]).
///
/// Note for `zip`: jwcrypto 1.1 (Debian 12) refuses to inflate more than 256 KiB of
/// compressed data, so receivers on it cannot read large compressed JWEs.
///
/// # Errors
/// [`Error::Encryption`] if aws-lc fails (not expected with a validated key).
pub fn encrypt(
    key: &RsaEncryptionKey,
    plaintext: &[u8],
    cty: Option<&str>,
    kid: Option<&str>,
    zip: bool,
) -> Result<String, Error> {
    let mut header = Map::new();
    header.insert("alg".into(), JWE_ALG.into());
    header.insert("enc".into(), JWE_ENC.into());
    if zip {
        header.insert("zip".into(), JWE_ZIP.into());
    }
    if let Some(cty) = cty {
        header.insert("cty".into(), cty.into());
    }
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    let header_b64 = URL_SAFE_NO_PAD.encode(Value::Object(header).to_string());

    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    fill_random(&mut cek[..]);
    let mut iv = [0u8; IV_LEN];
    fill_random(&mut iv);

    let mut encrypted_key = vec![0u8; key.key.ciphertext_size()];
    let encrypted_key = key
        .key
        .encrypt(&OAEP_SHA256_MGF1SHA256, &cek[..], &mut encrypted_key, None)
        .map_err(|_| Error::Encryption)?;

    let mut data = if zip {
        deflate(plaintext)?
    } else {
        Zeroizing::new(plaintext.to_vec())
    };
    let aes = UnboundKey::new(&AES_256_GCM, &cek[..])
        .map(LessSafeKey::new)
        .map_err(|_| Error::Encryption)?;
    let tag = aes
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut data,
        )
        .map_err(|_| Error::Encryption)?;

    let b64 = |n: usize| (n * 4).div_ceil(3);
    let mut out = String::with_capacity(
        header_b64.len() + b64(encrypted_key.len()) + b64(IV_LEN) + b64(data.len()) + 26,
    );
    out.push_str(&header_b64);
    for part in [&encrypted_key[..], &iv[..], &data[..], tag.as_ref()] {
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(part, &mut out);
    }
    Ok(out)
}

/// Raw DEFLATE (RFC 1951) into a zeroizing buffer. miniz_oxide's own window is not zeroized;
/// the caller holds the plaintext anyway.
fn deflate(input: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    use miniz_oxide::deflate::core::{
        CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
    };
    // window_bits 0: no zlib wrapper.
    let flags = create_comp_flags_from_zip_params(DEFLATE_LEVEL, 0, 0);
    let mut compressor = Box::new(CompressorOxide::new(flags));
    let mut out = Zeroizing::new(vec![0u8; input.len() / 2 + 256]);
    let mut rest = input;
    let mut pos = 0;
    loop {
        let (status, consumed, written) =
            compress(&mut compressor, rest, &mut out[pos..], TDEFLFlush::Finish);
        pos += written;
        rest = rest.get(consumed..).ok_or(Error::Encryption)?;
        match status {
            TDEFLStatus::Done => {
                out.truncate(pos);
                return Ok(out);
            }
            TDEFLStatus::Okay => {
                if out.len() - pos < 256 || (consumed == 0 && written == 0) {
                    let grown = out.len().saturating_mul(2);
                    grow_zeroizing(&mut out, grown);
                }
            }
            _ => return Err(Error::Encryption),
        }
    }
}

/// Inflates raw DEFLATE into a zeroizing buffer of at most `limit` bytes. The decompressor
/// writes straight into that buffer (no internal window holding plaintext), which grows by
/// doubling through [`grow_zeroizing`]. Data after the final block is refused.
fn inflate_bounded(input: &[u8], limit: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let too_large = Error::JwePlaintextTooLarge { limit };
    let initial = input.len().saturating_mul(3).clamp(1, limit.max(1));
    let mut out = Zeroizing::new(vec![0u8; initial]);
    let mut decompressor = Box::<DecompressorOxide>::default();
    let mut rest = input;
    let mut pos = 0;
    loop {
        let (status, consumed, written) = decompress(&mut decompressor, rest, &mut out, pos, flags);
        pos += written;
        rest = rest.get(consumed..).ok_or(Error::JweDecompressionFailed)?;
        match status {
            TINFLStatus::Done => {
                if !rest.is_empty() {
                    return Err(Error::JweDecompressionFailed);
                }
                if pos > limit {
                    return Err(too_large);
                }
                out.truncate(pos);
                return Ok(out);
            }
            TINFLStatus::HasMoreOutput => {
                if out.len() >= limit {
                    return Err(too_large);
                }
                let grown = out.len().saturating_mul(2).min(limit);
                grow_zeroizing(&mut out, grown);
            }
            _ => return Err(Error::JweDecompressionFailed),
        }
    }
}

/// Replaces `buf` by a zero-extended copy of length `new_len`; the old allocation is
/// zeroized when dropped (a plain `resize` could leave a copy in freed memory).
fn grow_zeroizing(buf: &mut Zeroizing<Vec<u8>>, new_len: usize) {
    let mut bigger = Zeroizing::new(vec![0u8; new_len]);
    bigger[..buf.len()].copy_from_slice(buf);
    *buf = bigger;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decoded_len_matches_base64() {
        for n in 0..200usize {
            let data = vec![7u8; n];
            let s = URL_SAFE_NO_PAD.encode(&data);
            assert_eq!(base64url_decoded_len(s.len()), n);
            assert!(check_base64url(&s).is_ok());
        }
    }

    #[test]
    fn check_base64url_spans_chunks() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let s = URL_SAFE_NO_PAD.encode(&data);
        assert!(s.len() > 4 * CHECK_CHUNK);
        assert!(check_base64url(&s).is_ok());
        for bad in [
            CHECK_CHUNK - 1,
            CHECK_CHUNK,
            3 * CHECK_CHUNK + 5,
            s.len() - 1,
        ] {
            let mut b = s.clone().into_bytes();
            b[bad] = b'=';
            assert!(check_base64url(std::str::from_utf8(&b).unwrap()).is_err());
        }
        // Non-canonical trailing bits in the last character.
        assert!(check_base64url("AB").is_err());
        assert!(check_base64url("AA").is_ok());
        // One leftover character can never be valid.
        assert!(check_base64url("AAAAA").is_err());
    }

    #[test]
    fn deflate_inflate_roundtrip_and_bounds() {
        for data in [
            Vec::new(),
            b"a".to_vec(),
            b"hello hello hello hello".repeat(1000),
            (0..300_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ] {
            let packed = deflate(&data).unwrap();
            let unpacked = inflate_bounded(&packed, data.len()).map(|v| v.to_vec());
            assert_eq!(unpacked.ok(), Some(data.clone()));
            if !data.is_empty() {
                assert!(matches!(
                    inflate_bounded(&packed, data.len() - 1),
                    Err(Error::JwePlaintextTooLarge { .. })
                ));
            }
            let mut trailing = packed.to_vec();
            trailing.push(0);
            assert!(matches!(
                inflate_bounded(&trailing, data.len() + 10),
                Err(Error::JweDecompressionFailed)
            ));
            if packed.len() > 1 {
                assert!(matches!(
                    inflate_bounded(&packed[..packed.len() - 1], data.len() + 10),
                    Err(Error::JweDecompressionFailed)
                ));
            }
        }
    }

    #[test]
    fn inflate_stops_a_bomb_early() {
        // 8 MiB of zeros compress to about 8 KiB (ratio ~1000:1).
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let bomb = deflate(&zeros).unwrap();
        drop(zeros);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert!(matches!(
            inflate_bounded(&bomb, 64 * 1024),
            Err(Error::JwePlaintextTooLarge { limit: 65_536 })
        ));
    }
}
