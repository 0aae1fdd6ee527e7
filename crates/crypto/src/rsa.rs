//! RSA-4096 key material shared by [`crate::RsaSigningKey`] (PS512) and
//! [`crate::RsaDecryptionKey`] (RSA-OAEP-256): the self-signed certificate FIT-Connect's JWK
//! schema requires in `x5c`, the public JWK members, and private-JWK export and import.

use crate::Error;
use crate::jws::{b64url_uint, rsa_jwk_thumbprint};
use crate::util::fill_random;
use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPairComponents, KeySize, PublicKey as RsaPublicKey, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// FIT-Connect requires RSA keys of at least 4096 bits.
pub(crate) const MIN_MODULUS_BYTES: usize = 4096 / 8;
/// Validity back-dating, so that a peer whose clock is slightly behind still accepts the
/// certificate right after key generation.
const BACKDATE: time::Duration = time::Duration::days(1);
/// Ten years (including leap days); the key is rotated long before then, and FIT-Connect
/// does not evaluate the certificate chain of a self-signed `x5c` anyway.
const VALIDITY: time::Duration = time::Duration::days(10 * 365 + 3);

/// What a key is for; fixes its JWK `alg`, `key_ops`, `use` and the certificate's key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyPurpose {
    /// PS512 signatures (`key_ops` `verify` / `sign`).
    Sign,
    /// RSA-OAEP-256 key wrapping (`key_ops` `wrapKey` / `unwrapKey`).
    Encrypt,
}

impl KeyPurpose {
    pub(crate) fn alg(self) -> &'static str {
        match self {
            KeyPurpose::Sign => "PS512",
            KeyPurpose::Encrypt => "RSA-OAEP-256",
        }
    }

    fn public_op(self) -> &'static str {
        match self {
            KeyPurpose::Sign => "verify",
            KeyPurpose::Encrypt => "wrapKey",
        }
    }

    fn private_op(self) -> &'static str {
        match self {
            KeyPurpose::Sign => "sign",
            KeyPurpose::Encrypt => "unwrapKey",
        }
    }

    fn jwk_use(self) -> &'static str {
        match self {
            KeyPurpose::Sign => "sig",
            KeyPurpose::Encrypt => "enc",
        }
    }

    fn cert_key_usage(self) -> rcgen::KeyUsagePurpose {
        match self {
            KeyPurpose::Sign => rcgen::KeyUsagePurpose::DigitalSignature,
            KeyPurpose::Encrypt => rcgen::KeyUsagePurpose::KeyEncipherment,
        }
    }
}

/// An RSA key of at least 4096 bits with a self-signed certificate that is checked to certify
/// this very key, so `x5c` and `n`/`e` can never disagree.
pub(crate) struct RsaKeyWithCert {
    purpose: KeyPurpose,
    pub(crate) key: RsaKeyPair,
    cert_der: Vec<u8>,
    n_b64: String,
    e_b64: String,
    kid: String,
}

impl RsaKeyWithCert {
    /// A fresh RSA-4096 key and a self-signed certificate for it (CN = `common_name`, valid
    /// from one day ago for ten years, signed sha256WithRSAEncryption).
    pub(crate) fn generate(purpose: KeyPurpose, common_name: &str) -> Result<Self, Error> {
        let key = RsaKeyPair::generate(KeySize::Rsa4096).map_err(|_| Error::KeyGeneration)?;
        let cert_der = self_signed_cert(&key, common_name, purpose)?;
        Self::from_parts(purpose, key, cert_der)
    }

    pub(crate) fn from_der(
        purpose: KeyPurpose,
        pkcs8_der: &[u8],
        cert_der: &[u8],
    ) -> Result<Self, Error> {
        let key = RsaKeyPair::from_pkcs8(pkcs8_der)
            .map_err(|_| Error::InvalidPrivateKey("not an RSA private key in PKCS#8 DER"))?;
        Self::from_parts(purpose, key, cert_der.to_vec())
    }

    fn from_parts(purpose: KeyPurpose, key: RsaKeyPair, cert_der: Vec<u8>) -> Result<Self, Error> {
        if key.public_modulus_len() < MIN_MODULUS_BYTES {
            return Err(Error::InvalidPrivateKey(
                "RSA modulus is shorter than 4096 bits",
            ));
        }
        let (rest, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|_| Error::InvalidCertificate("not a DER-encoded X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(Error::InvalidCertificate(
                "trailing data after the certificate",
            ));
        }
        // Re-encode through aws-lc so that equivalent encodings of the same key compare equal.
        let cert_key = RsaPublicKey::from_der(cert.public_key().raw)
            .map_err(|_| Error::InvalidCertificate("the certified key is not an RSA key"))?;
        if cert_key.as_ref() != key.public_key().as_ref() {
            return Err(Error::CertificateKeyMismatch);
        }
        let public = key.public_key();
        let n_b64 = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e_b64 = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = rsa_jwk_thumbprint(&n_b64, &e_b64);
        Ok(Self {
            purpose,
            key,
            cert_der,
            n_b64,
            e_b64,
            kid,
        })
    }

    /// Unencrypted PKCS#8 DER, zeroized on drop.
    pub(crate) fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let der: Pkcs8V1Der<'static> = self
            .key
            .as_der()
            .expect("serialising a loaded RSA key to PKCS#8 cannot fail");
        Zeroizing::new(der.as_ref().to_vec())
    }

    pub(crate) fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK: `kty`, `key_ops` (one operation), `alg`, `use`, `kid`, `n`, `e`, `x5c`.
    pub(crate) fn public_jwk(&self) -> Value {
        let p = self.purpose;
        json!({
            "kty": "RSA",
            "key_ops": [p.public_op()],
            "alg": p.alg(),
            "use": p.jwk_use(),
            "kid": self.kid,
            "n": self.n_b64,
            "e": self.e_b64,
            "x5c": [STANDARD.encode(&self.cert_der)],
        })
    }

    /// The private JWK (RFC 7518 § 6.3.2, two primes) as one line of JSON, with the private
    /// operation as the only `key_ops` entry and the certificate in `x5c`.
    ///
    /// Written by hand into a buffer sized up front, so that no reallocation leaves copies of
    /// the private components on the heap; every value is base64 and needs no JSON escaping.
    pub(crate) fn private_jwk(&self) -> Zeroizing<String> {
        let pkcs8 = self.pkcs8_der();
        let components = private_components(&pkcs8)
            .expect("aws-lc's own PKCS#8 encoding of an RSA key parses as RFC 8017");
        let cert_b64 = STANDARD.encode(&self.cert_der);
        let b64_len = |bytes: &[u8]| bytes.len().div_ceil(3) * 4;
        let capacity = 256
            + self.kid.len()
            + self.n_b64.len()
            + self.e_b64.len()
            + cert_b64.len()
            + components.iter().map(|(_, v)| b64_len(v)).sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        let p = self.purpose;
        for piece in [
            "{\"kty\":\"RSA\",\"key_ops\":[\"",
            p.private_op(),
            "\"],\"alg\":\"",
            p.alg(),
            "\",\"kid\":\"",
            &self.kid,
            "\",\"n\":\"",
            &self.n_b64,
            "\",\"e\":\"",
            &self.e_b64,
            "\"",
        ] {
            out.push_str(piece);
        }
        for (name, value) in components {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":\"");
            URL_SAFE_NO_PAD.encode_string(value, &mut out);
            out.push('"');
        }
        out.push_str(",\"x5c\":[\"");
        out.push_str(&cert_b64);
        out.push_str("\"]}");
        debug_assert!(out.len() <= capacity, "private JWK buffer was reallocated");
        out
    }

    /// Loads a private JWK as written by [`Self::private_jwk`].
    ///
    /// `kty` must be `RSA`; `alg`, `key_ops` and `use` may be absent but must fit the purpose
    /// when present; `x5c` must hold the certificate (first entry) of this very key; `kid`, if
    /// present, must be the RFC 7638 thumbprint, because that is the `kid` this crate
    /// publishes (a file whose `kid` silently changed on loading would be a trap).
    pub(crate) fn from_private_jwk(purpose: KeyPurpose, jwk: &str) -> Result<Self, Error> {
        let parsed: PrivateJwk = serde_json::from_str(jwk).map_err(|_| {
            Error::InvalidPrivateJwk(
                "not a JSON object with string members kty, n, e, d, p, q, dp, dq, qi",
            )
        })?;
        if parsed.kty != "RSA" {
            return Err(Error::InvalidPrivateJwk("\"kty\" is not \"RSA\""));
        }
        if let Some(alg) = &parsed.alg
            && alg != purpose.alg()
        {
            return Err(Error::InvalidPrivateJwk(match purpose {
                KeyPurpose::Sign => "\"alg\" must be \"PS512\" for a signing key",
                KeyPurpose::Encrypt => "\"alg\" must be \"RSA-OAEP-256\" for a decryption key",
            }));
        }
        if let Some(ops) = &parsed.key_ops
            && !ops.iter().any(|op| op == purpose.private_op())
        {
            return Err(Error::InvalidPrivateJwk(match purpose {
                KeyPurpose::Sign => "\"key_ops\" does not contain \"sign\"",
                KeyPurpose::Encrypt => "\"key_ops\" does not contain \"unwrapKey\"",
            }));
        }
        if let Some(u) = &parsed.jwk_use
            && u != purpose.jwk_use()
        {
            return Err(Error::InvalidPrivateJwk(match purpose {
                KeyPurpose::Sign => "\"use\" must be \"sig\" for a signing key",
                KeyPurpose::Encrypt => "\"use\" must be \"enc\" for a decryption key",
            }));
        }
        let Some(cert_b64) = parsed.x5c.as_ref().and_then(|c| c.first()) else {
            return Err(Error::InvalidPrivateJwk(
                "\"x5c\" with the key's certificate is required",
            ));
        };
        let cert_der = STANDARD
            .decode(cert_b64)
            .map_err(|_| Error::InvalidPrivateJwk("\"x5c\" entry is not standard base64"))?;

        let n = b64url_uint(&parsed.n).ok_or(Error::InvalidPrivateJwk("\"n\" is not base64url"))?;
        let e = b64url_uint(&parsed.e).ok_or(Error::InvalidPrivateJwk("\"e\" is not base64url"))?;
        let private = |value: &Zeroizing<String>, err: &'static str| {
            URL_SAFE_NO_PAD
                .decode(value.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| Error::InvalidPrivateJwk(err))
        };
        let d = private(&parsed.d, "\"d\" is not base64url")?;
        let p = private(&parsed.p, "\"p\" is not base64url")?;
        let q = private(&parsed.q, "\"q\" is not base64url")?;
        let dp = private(&parsed.dp, "\"dp\" is not base64url")?;
        let dq = private(&parsed.dq, "\"dq\" is not base64url")?;
        let qi = private(&parsed.qi, "\"qi\" is not base64url")?;
        let key = RsaKeyPair::from_components(&KeyPairComponents {
            public_key: PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            },
            d: d.as_slice(),
            p: p.as_slice(),
            q: q.as_slice(),
            dP: dp.as_slice(),
            dQ: dq.as_slice(),
            qInv: qi.as_slice(),
        })
        .map_err(|_| {
            Error::InvalidPrivateJwk(
                "the RSA components are inconsistent or the key size is unsupported",
            )
        })?;
        let loaded = Self::from_parts(purpose, key, cert_der)?;
        if let Some(kid) = &parsed.kid
            && *kid != loaded.kid
        {
            return Err(Error::InvalidPrivateJwk(
                "\"kid\" is not the key's RFC 7638 thumbprint",
            ));
        }
        Ok(loaded)
    }
}

/// The members of a private RSA JWK this crate reads; other members are ignored. The private
/// components are zeroized when dropped.
#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default, rename = "use")]
    jwk_use: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    n: String,
    e: String,
    d: Zeroizing<String>,
    p: Zeroizing<String>,
    q: Zeroizing<String>,
    dp: Zeroizing<String>,
    dq: Zeroizing<String>,
    qi: Zeroizing<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
}

/// The private components (`d`, `p`, `q`, `dp`, `dq`, `qi`, in JWK order and naming) of an RSA
/// key in PKCS#8 DER. aws-lc-rs does not expose them, so the DER is read with RustCrypto's
/// `pkcs8`/`pkcs1` parsers (parsing only; the slices borrow from `pkcs8_der`).
fn private_components(pkcs8_der: &[u8]) -> Option<[(&'static str, &[u8]); 6]> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).ok()?;
    if info.algorithm.oid != pkcs1::ALGORITHM_OID {
        return None;
    }
    let rsa = pkcs1::RsaPrivateKey::try_from(info.private_key).ok()?;
    if rsa.other_prime_infos.is_some() {
        return None;
    }
    Some([
        ("d", rsa.private_exponent.as_bytes()),
        ("p", rsa.prime1.as_bytes()),
        ("q", rsa.prime2.as_bytes()),
        ("dp", rsa.exponent1.as_bytes()),
        ("dq", rsa.exponent2.as_bytes()),
        ("qi", rsa.coefficient.as_bytes()),
    ])
}

fn self_signed_cert(
    key: &RsaKeyPair,
    common_name: &str,
    purpose: KeyPurpose,
) -> Result<Vec<u8>, Error> {
    let cert_err = |e: rcgen::Error| Error::CertificateGeneration(e.to_string());
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = params.not_before + VALIDITY;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![purpose.cert_key_usage()];
    // A random positive serial: rcgen's default derives it from the key, which would repeat
    // if a certificate for the same key were ever re-issued.
    let mut serial = [0u8; 16];
    fill_random(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
    let cert = params.self_signed(&RcgenSigner { key }).map_err(cert_err)?;
    Ok(cert.der().to_vec())
}

/// Lets rcgen sign with the aws-lc key directly, so the private key is never copied into
/// rcgen's own key type.
struct RcgenSigner<'a> {
    key: &'a RsaKeyPair,
}

impl rcgen::PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        // PKCS#1 RSAPublicKey, which rcgen wraps into the SubjectPublicKeyInfo.
        self.key.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        Ok(sig)
    }
}
