use crate::Error;
use crate::util::fill_random;
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKey as RsaPublicKey};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA512, RSA_PSS_SHA512, RsaKeyPair,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// FIT-Connect requires RSA keys of at least 4096 bits.
const MIN_MODULUS_BYTES: usize = 4096 / 8;
/// Validity back-dating, so that a peer whose clock is slightly behind still accepts the
/// certificate right after key generation.
const BACKDATE: time::Duration = time::Duration::days(1);
/// Ten years (including leap days); the key is rotated long before then, and FIT-Connect
/// does not evaluate the certificate chain of a self-signed `x5c` anyway.
const VALIDITY: time::Duration = time::Duration::days(10 * 365 + 3);
/// Upper bound for echoing an attacker-chosen `alg` value into an error message.
const MAX_ECHOED_ALG: usize = 32;

/// RSA-4096 key used for PS512 signatures (FIT-Connect destinationSignature, routing JWKS),
/// with a self-signed X.509 certificate because FIT-Connect's JWK schema requires `x5c`.
///
/// The certificate carries no trust of its own (it is self-signed); it exists only so that the
/// published JWK passes FIT-Connect's schema validation. It is always checked to certify this
/// very key, so `x5c` and `n`/`e` can never disagree.
pub struct RsaSigningKey {
    key: RsaKeyPair,
    cert_der: Vec<u8>,
    n_b64: String,
    e_b64: String,
    kid: String,
}

impl RsaSigningKey {
    /// Generates a new RSA-4096 key and a self-signed certificate for it (CN = `common_name`,
    /// valid from one day ago for ten years, signed sha256WithRSAEncryption).
    ///
    /// This takes seconds (RSA-4096 prime search); do it once at provisioning time and store
    /// the result via [`Self::pkcs8_der`] (wrapped with a [`crate::Kek`]) and [`Self::cert_der`].
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] or [`Error::CertificateGeneration`].
    pub fn generate(common_name: &str) -> Result<Self, Error> {
        let key = RsaKeyPair::generate(KeySize::Rsa4096).map_err(|_| Error::KeyGeneration)?;
        let cert_der = self_signed_cert(&key, common_name)?;
        Self::from_parts(key, cert_der)
    }

    /// Loads a key stored with [`Self::pkcs8_der`] and [`Self::cert_der`].
    ///
    /// # Errors
    /// [`Error::InvalidPrivateKey`] if the key is not RSA PKCS#8 of at least 4096 bits,
    /// [`Error::InvalidCertificate`] if the certificate does not parse or holds no RSA key,
    /// [`Error::CertificateKeyMismatch`] if it certifies a different key.
    pub fn from_der(pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self, Error> {
        let key = RsaKeyPair::from_pkcs8(pkcs8_der)
            .map_err(|_| Error::InvalidPrivateKey("not an RSA private key in PKCS#8 DER"))?;
        Self::from_parts(key, cert_der.to_vec())
    }

    fn from_parts(key: RsaKeyPair, cert_der: Vec<u8>) -> Result<Self, Error> {
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
            key,
            cert_der,
            n_b64,
            e_b64,
            kid,
        })
    }

    /// The private key as unencrypted PKCS#8 DER, for wrapping with a [`crate::Kek`] before it
    /// is stored. Zeroized on drop.
    ///
    /// # Panics
    /// Only if aws-lc cannot serialise a key it has already validated (allocation failure).
    #[must_use]
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let der: Pkcs8V1Der<'static> = self
            .key
            .as_der()
            .expect("serialising a loaded RSA key to PKCS#8 cannot fail");
        Zeroizing::new(der.as_ref().to_vec())
    }

    /// The self-signed certificate (DER), as published in the JWK's `x5c`.
    #[must_use]
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// RFC 7638 thumbprint of the public key; FIT-Connect matches signatures to JWKS entries
    /// by `kid`, and a thumbprint makes the `kid` stable and derivable from the key alone.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a FIT-Connect signature-verification JWK (`key_ops: ["verify"]`,
    /// `alg: PS512`, `x5c` with the self-signed certificate).
    #[must_use]
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "key_ops": ["verify"],
            "alg": "PS512",
            "use": "sig",
            "kid": self.kid,
            "n": self.n_b64,
            "e": self.e_b64,
            "x5c": [STANDARD.encode(&self.cert_der)],
        })
    }

    /// Produces a compact JWS (RFC 7515) with RSASSA-PSS/SHA-512, salt length 64, as RFC 7518
    /// prescribes for `PS512`. The header carries `kid` so verifiers can pick the key from a JWKS.
    ///
    /// # Errors
    /// [`Error::Signing`] if aws-lc fails to sign.
    pub fn sign_compact(&self, typ: Option<&str>, payload: &[u8]) -> Result<String, Error> {
        let mut header = json!({ "alg": "PS512", "kid": self.kid });
        if let Some(typ) = typ {
            header["typ"] = Value::String(typ.to_owned());
        }
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA512,
                &SystemRandom::new(),
                out.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::Signing)?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }
}

impl std::fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Verifies a compact PS512 JWS against a public RSA JWK (only n/e used); returns (protected
/// header JSON, payload bytes).
///
/// Deliberately narrow: the algorithm is fixed to PS512 (never taken from the key or trusted
/// from the header, which rules out algorithm-confusion attacks), headers with `crit` are
/// rejected because we implement no extensions, and base64url must be canonical and
/// unpadded. Key sizes of 2048 to 8192 bits are accepted; choosing the right key (for example
/// by `kid`) is the caller's job.
///
/// # Errors
/// [`Error::InvalidJwk`], [`Error::MalformedJws`], [`Error::UnsupportedAlgorithm`] or
/// [`Error::BadSignature`].
pub fn verify_compact_ps512(jwk: &Value, jws: &str) -> Result<(Value, Vec<u8>), Error> {
    if let Some(kty) = jwk.get("kty")
        && kty != "RSA"
    {
        return Err(Error::InvalidJwk("\"kty\" is not \"RSA\""));
    }
    let n = jwk_component(
        jwk,
        "n",
        Error::InvalidJwk("\"n\" missing or not base64url"),
    )?;
    let e = jwk_component(
        jwk,
        "e",
        Error::InvalidJwk("\"e\" missing or not base64url"),
    )?;

    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::MalformedJws("expected three dot-separated parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| Error::MalformedJws("header is not base64url"))?;
    let header: Value = serde_json::from_slice(&header_bytes)
        .map_err(|_| Error::MalformedJws("header is not JSON"))?;
    let Some(header_obj) = header.as_object() else {
        return Err(Error::MalformedJws("header is not a JSON object"));
    };
    match header_obj.get("alg") {
        Some(Value::String(alg)) if alg == "PS512" => {}
        Some(Value::String(alg)) => {
            return Err(Error::UnsupportedAlgorithm(
                alg.chars().take(MAX_ECHOED_ALG).collect(),
            ));
        }
        Some(_) => return Err(Error::MalformedJws("\"alg\" is not a string")),
        None => return Err(Error::MalformedJws("header has no \"alg\"")),
    }
    if header_obj.contains_key("crit") {
        return Err(Error::MalformedJws(
            "\"crit\" header extensions are not supported",
        ));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| Error::MalformedJws("payload is not base64url"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| Error::MalformedJws("signature is not base64url"))?;

    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = &jws.as_bytes()[..signing_input_len];
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&RSA_PSS_2048_8192_SHA512, signing_input, &sig)
        .map_err(|_| Error::BadSignature)?;
    Ok((header, payload))
}

/// RFC 7638 JWK thumbprint of an RSA key: SHA-256 over the canonical JSON
/// `{"e":..,"kty":"RSA","n":..}`, base64url without padding.
#[must_use]
pub fn rsa_jwk_thumbprint(n_b64url: &str, e_b64url: &str) -> String {
    // Members in lexicographic order, no whitespace; `Value`'s Display escapes as JSON requires.
    let canonical = format!(
        "{{\"e\":{},\"kty\":\"RSA\",\"n\":{}}}",
        Value::from(e_b64url),
        Value::from(n_b64url)
    );
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

/// Decodes a JWK big-integer member. RFC 7518 forbids leading zero octets, but some producers
/// emit them; they do not change the value, so they are stripped rather than rejected.
fn jwk_component(jwk: &Value, name: &str, err: Error) -> Result<Vec<u8>, Error> {
    let Some(s) = jwk.get(name).and_then(Value::as_str) else {
        return Err(err);
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(s) else {
        return Err(err);
    };
    let first_nonzero = bytes.iter().position(|&b| b != 0).ok_or(err)?;
    Ok(bytes[first_nonzero..].to_vec())
}

fn self_signed_cert(key: &RsaKeyPair, common_name: &str) -> Result<Vec<u8>, Error> {
    let cert_err = |e: rcgen::Error| Error::CertificateGeneration(e.to_string());
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = params.not_before + VALIDITY;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_escapes_json() {
        // Not a valid key, but the function must never build invalid JSON.
        let a = rsa_jwk_thumbprint("a\"b", "AQAB");
        assert_eq!(a.len(), 43);
        assert_ne!(a, rsa_jwk_thumbprint("ab", "AQAB"));
    }

    #[test]
    fn jwk_component_strips_leading_zeros() {
        let jwk = json!({ "n": URL_SAFE_NO_PAD.encode([0u8, 0, 5, 6]) });
        let v = jwk_component(&jwk, "n", Error::InvalidJwk("x")).ok();
        assert_eq!(v, Some(vec![5, 6]));
        let zero = json!({ "n": URL_SAFE_NO_PAD.encode([0u8]) });
        assert!(jwk_component(&zero, "n", Error::InvalidJwk("x")).is_err());
    }
}
