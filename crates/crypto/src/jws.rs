use crate::Error;
use crate::rsa::{KeyPurpose, RsaKeyWithCert};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PSS_2048_8192_SHA512, RSA_PSS_SHA512, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Upper bound for echoing an attacker-chosen `alg` value into an error message.
const MAX_ECHOED_ALG: usize = 32;

/// RSA-4096 key used for PS512 signatures (FIT-Connect destinationSignature, routing JWKS,
/// Security Event Tokens), with a self-signed X.509 certificate because FIT-Connect's JWK
/// schema requires `x5c`.
///
/// The certificate carries no trust of its own (it is self-signed); it exists only so that the
/// published JWK passes FIT-Connect's schema validation. It is always checked to certify this
/// very key, so `x5c` and `n`/`e` can never disagree.
pub struct RsaSigningKey {
    inner: RsaKeyWithCert,
}

impl RsaSigningKey {
    /// Generates a new RSA-4096 key and a self-signed certificate for it (CN = `common_name`,
    /// valid from one day ago for ten years, signed sha256WithRSAEncryption, key usage
    /// digitalSignature).
    ///
    /// This takes seconds (RSA-4096 prime search); do it once at provisioning time and store
    /// the result via [`Self::pkcs8_der`] (wrapped with a [`crate::Kek`]) and [`Self::cert_der`].
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] or [`Error::CertificateGeneration`].
    pub fn generate(common_name: &str) -> Result<Self, Error> {
        RsaKeyWithCert::generate(KeyPurpose::Sign, common_name).map(|inner| Self { inner })
    }

    /// Loads a key stored with [`Self::pkcs8_der`] and [`Self::cert_der`].
    ///
    /// # Errors
    /// [`Error::InvalidPrivateKey`] if the key is not RSA PKCS#8 of at least 4096 bits,
    /// [`Error::InvalidCertificate`] if the certificate does not parse or holds no RSA key,
    /// [`Error::CertificateKeyMismatch`] if it certifies a different key.
    pub fn from_der(pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self, Error> {
        RsaKeyWithCert::from_der(KeyPurpose::Sign, pkcs8_der, cert_der).map(|inner| Self { inner })
    }

    /// Loads a private JWK as written by [`Self::private_jwk`] (for example a demo's or a
    /// test's key file). `alg`, `key_ops` and `use` may be absent, but if present must be
    /// `PS512`, contain `sign`, and be `sig`; `x5c` must carry this key's certificate; `kid`,
    /// if present, must be the RFC 7638 thumbprint (the only `kid` this type publishes).
    ///
    /// # Errors
    /// [`Error::InvalidPrivateJwk`], or the errors of [`Self::from_der`] for the key and
    /// certificate.
    pub fn from_private_jwk(jwk: &str) -> Result<Self, Error> {
        RsaKeyWithCert::from_private_jwk(KeyPurpose::Sign, jwk).map(|inner| Self { inner })
    }

    /// The private key as unencrypted PKCS#8 DER, for wrapping with a [`crate::Kek`] before it
    /// is stored. Zeroized on drop.
    ///
    /// # Panics
    /// Only if aws-lc cannot serialise a key it has already validated (allocation failure).
    #[must_use]
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.inner.pkcs8_der()
    }

    /// The private key as a JWK for a key file: `{"kty":"RSA","key_ops":["sign"],
    /// "alg":"PS512","kid","n","e","d","p","q","dp","dq","qi","x5c":[…]}` on one line.
    /// Zeroized on drop; treat it like [`Self::pkcs8_der`].
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

    /// RFC 7638 thumbprint of the public key; FIT-Connect matches signatures to JWKS entries
    /// by `kid`, and a thumbprint makes the `kid` stable and derivable from the key alone.
    #[must_use]
    pub fn kid(&self) -> &str {
        self.inner.kid()
    }

    /// The public key as a FIT-Connect signature-verification JWK (`key_ops: ["verify"]`,
    /// `alg: PS512`, `use: sig`, `x5c` with the self-signed certificate).
    #[must_use]
    pub fn public_jwk(&self) -> Value {
        self.inner.public_jwk()
    }

    /// Produces a compact JWS (RFC 7515) with RSASSA-PSS/SHA-512, salt length 64, as RFC 7518
    /// prescribes for `PS512`. The header carries `kid` so verifiers can pick the key from a JWKS.
    ///
    /// # Errors
    /// [`Error::Signing`] if aws-lc fails to sign.
    pub fn sign_compact(&self, typ: Option<&str>, payload: &[u8]) -> Result<String, Error> {
        let mut header = json!({ "alg": "PS512", "kid": self.inner.kid() });
        if let Some(typ) = typ {
            header["typ"] = Value::String(typ.to_owned());
        }
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let key = &self.inner.key;
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(
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
            .field("kid", &self.inner.kid())
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
pub(crate) fn jwk_component(jwk: &Value, name: &str, err: Error) -> Result<Vec<u8>, Error> {
    jwk.get(name)
        .and_then(Value::as_str)
        .and_then(b64url_uint)
        .ok_or(err)
}

/// Decodes a base64url big-endian unsigned integer without leading zero octets; `None` if it
/// is not canonical unpadded base64url or is zero.
pub(crate) fn b64url_uint(s: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let first_nonzero = bytes.iter().position(|&b| b != 0)?;
    Some(bytes[first_nonzero..].to_vec())
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
