//! JWS signing keys of the OpenID provider (ES256, RS256) and verification of the JWTs
//! clients send us (`private_key_jwt` client assertions, `id_token_hint`).
//!
//! FIT-Connect's PS512 keys live in [`crate::RsaSigningKey`]; these are separate because
//! OpenID relying parties expect the common algorithms, and ES256 is an order of magnitude
//! cheaper to sign with than RSA-4096.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED,
    EcdsaKeyPair, KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::Error;

/// The algorithms the OpenID provider signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlg {
    Es256,
    Rs256,
}

impl JwtAlg {
    pub const ALL: [JwtAlg; 2] = [JwtAlg::Es256, JwtAlg::Rs256];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlg::Es256 => "ES256",
            JwtAlg::Rs256 => "RS256",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(JwtAlg::Es256),
            "RS256" => Some(JwtAlg::Rs256),
            _ => None,
        }
    }

    /// Half of the hash the algorithm signs with, as `at_hash`/`c_hash` need (OIDC Core
    /// § 3.1.3.6): both algorithms use SHA-256.
    #[must_use]
    pub fn left_half_hash(self, value: &str) -> String {
        let d = digest::digest(&digest::SHA256, value.as_bytes());
        URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
    }
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A signing key of the OpenID provider with its RFC 7638 thumbprint as `kid`.
pub struct JwtSigningKey {
    alg: JwtAlg,
    inner: Inner,
    kid: String,
    public_jwk: Value,
}

impl std::fmt::Debug for JwtSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtSigningKey {
    /// A new key: P-256 for ES256, RSA-2048 for RS256 (what relying parties expect; the
    /// key lives only until the next rotation).
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] if aws-lc fails.
    pub fn generate(alg: JwtAlg) -> Result<Self, Error> {
        let der = match alg {
            JwtAlg::Es256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| Error::KeyGeneration)?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            JwtAlg::Rs256 => {
                let key =
                    RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| Error::KeyGeneration)?;
                let der: Pkcs8V1Der<'static> = key.as_der().map_err(|_| Error::KeyGeneration)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
        };
        Self::from_pkcs8(alg, &der)
    }

    /// Loads a key stored with [`Self::pkcs8_der`].
    ///
    /// # Errors
    /// [`Error::InvalidPrivateKey`] if the DER is not a key of the algorithm.
    pub fn from_pkcs8(alg: JwtAlg, der: &[u8]) -> Result<Self, Error> {
        let (inner, jwk) = match alg {
            JwtAlg::Es256 => {
                let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| Error::InvalidPrivateKey("not a P-256 key in PKCS#8 DER"))?;
                let point = key.public_key().as_ref();
                // Uncompressed SEC1 point: 0x04 || x || y.
                let (x, y) = point[1..].split_at(32);
                let jwk = json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                });
                (Inner::Ec(key), jwk)
            }
            JwtAlg::Rs256 => {
                let key = RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| Error::InvalidPrivateKey("not an RSA key in PKCS#8 DER"))?;
                if key.public_modulus_len() < 256 {
                    return Err(Error::InvalidPrivateKey(
                        "RSA modulus is shorter than 2048 bits",
                    ));
                }
                let public = key.public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                });
                (Inner::Rsa(key), jwk)
            }
        };
        let kid = jwk_thumbprint(&jwk)?;
        let mut public_jwk = jwk;
        public_jwk["kid"] = Value::from(kid.clone());
        public_jwk["use"] = Value::from("sig");
        public_jwk["alg"] = Value::from(alg.as_str());
        Ok(Self {
            alg,
            inner,
            kid,
            public_jwk,
        })
    }

    /// The private key as PKCS#8 DER, for wrapping under a [`crate::Kek`].
    ///
    /// # Panics
    /// Only if aws-lc cannot serialise a key it has already loaded.
    #[must_use]
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        match &self.inner {
            Inner::Ec(k) => {
                let doc = k
                    .to_pkcs8v1()
                    .expect("serialising a loaded EC key cannot fail");
                Zeroizing::new(doc.as_ref().to_vec())
            }
            Inner::Rsa(k) => {
                let der: Pkcs8V1Der<'static> = k
                    .as_der()
                    .expect("serialising a loaded RSA key cannot fail");
                Zeroizing::new(der.as_ref().to_vec())
            }
        }
    }

    #[must_use]
    pub fn alg(&self) -> JwtAlg {
        self.alg
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK with `kid`, `use: sig` and `alg`.
    #[must_use]
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A compact JWS of `claims` with header `{"alg", "kid", "typ"}`.
    ///
    /// # Errors
    /// [`Error::Signing`] if aws-lc refuses.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, Error> {
        let header = json!({"alg": self.alg.as_str(), "kid": self.kid, "typ": typ});
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match &self.inner {
            Inner::Ec(k) => k
                .sign(&rng, out.as_bytes())
                .map_err(|_| Error::Signing)?
                .as_ref()
                .to_vec(),
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, out.as_bytes(), &mut sig)
                    .map_err(|_| Error::Signing)?;
                sig
            }
        };
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(out)
    }
}

/// RFC 7638 thumbprint of an RSA or EC public JWK.
///
/// # Errors
/// [`Error::InvalidJwk`] for other key types or missing members.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, Error> {
    let s = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or(Error::InvalidJwk("a required JWK member is missing"))
    };
    // serde_json's default map sorts keys, which is the order RFC 7638 requires.
    let canonical = match s("kty")? {
        "RSA" => json!({"e": s("e")?, "kty": "RSA", "n": s("n")?}),
        "EC" => json!({"crv": s("crv")?, "kty": "EC", "x": s("x")?, "y": s("y")?}),
        _ => return Err(Error::InvalidJwk("only RSA and EC keys are supported")),
    };
    let d = digest::digest(&digest::SHA256, canonical.to_string().as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(d.as_ref()))
}

/// A JWT whose signature verified: its header and claims.
#[derive(Debug, Clone)]
pub struct VerifiedJwt {
    pub header: Value,
    pub claims: Value,
}

/// Splits a compact JWS without verifying it, for reading `kid`/`alg` to pick the key.
///
/// # Errors
/// [`Error::MalformedJws`].
pub fn jwt_header(token: &str) -> Result<Value, Error> {
    let header_b64 = token
        .split('.')
        .next()
        .ok_or(Error::MalformedJws("not three dot-separated parts"))?;
    decode_json(header_b64, "header")
}

fn decode_json(part: &str, what: &'static str) -> Result<Value, Error> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::MalformedJws(what))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| Error::MalformedJws(what))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(Error::MalformedJws(what))
    }
}

/// Verifies a compact JWS under one public JWK (RSA: RS256/384/512, PS256/384/512; EC:
/// ES256 on P-256, ES384 on P-384). `none` and HMAC algorithms are refused, and the JWK's
/// own `alg`, if present, must match the header's.
///
/// # Errors
/// [`Error::MalformedJws`], [`Error::UnsupportedAlgorithm`], [`Error::InvalidJwk`],
/// [`Error::BadSignature`].
pub fn verify_jwt(jwk: &Value, token: &str) -> Result<VerifiedJwt, Error> {
    if token.len() > 64 * 1024 {
        return Err(Error::MalformedJws("longer than 64 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::MalformedJws("not three dot-separated parts"));
    };
    let header = decode_json(h, "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if let Some(jwk_alg) = jwk.get("alg").and_then(Value::as_str)
        && jwk_alg != alg
    {
        return Err(Error::UnsupportedAlgorithm(alg.chars().take(32).collect()));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::MalformedJws("signature is not base64url"))?;
    let b64 = |name: &str| -> Result<Vec<u8>, Error> {
        let v = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(Error::InvalidJwk("a required JWK member is missing"))?;
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|_| Error::InvalidJwk("a JWK member is not base64url"))
    };
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let ok = match (kty, alg) {
        ("RSA", "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512") => {
            let algorithm: &'static aws_lc_rs::signature::RsaParameters = match alg {
                "RS256" => &RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &RSA_PSS_2048_8192_SHA256,
                "PS384" => &RSA_PSS_2048_8192_SHA384,
                _ => &RSA_PSS_2048_8192_SHA512,
            };
            let (n, e) = (b64("n")?, b64("e")?);
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(algorithm, signed, &sig)
                .is_ok()
        }
        ("EC", "ES256" | "ES384") => {
            let (want_crv, len, algorithm): (&str, usize, &'static dyn VerificationAlgorithm) =
                if alg == "ES256" {
                    ("P-256", 32, &ECDSA_P256_SHA256_FIXED)
                } else {
                    ("P-384", 48, &ECDSA_P384_SHA384_FIXED)
                };
            if jwk.get("crv").and_then(Value::as_str) != Some(want_crv) {
                return Err(Error::InvalidJwk("curve does not match the algorithm"));
            }
            let (x, y) = (b64("x")?, b64("y")?);
            if x.len() != len || y.len() != len {
                return Err(Error::InvalidJwk("EC coordinates have the wrong length"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(algorithm, &point)
                .verify(signed, &sig)
                .is_ok()
        }
        _ => return Err(Error::UnsupportedAlgorithm(alg.chars().take(32).collect())),
    };
    if !ok {
        return Err(Error::BadSignature);
    }
    Ok(VerifiedJwt {
        header,
        claims: decode_json(p, "payload")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_and_rs256_sign_and_verify_round_trip() {
        for alg in JwtAlg::ALL {
            let key = JwtSigningKey::generate(alg).expect("key");
            let token = key.sign("JWT", &json!({"sub": "x"})).expect("sign");
            let v = verify_jwt(key.public_jwk(), &token).expect("verifies");
            assert_eq!(v.claims["sub"], "x");
            assert_eq!(v.header["kid"], key.kid());
            let again = JwtSigningKey::from_pkcs8(alg, &key.pkcs8_der()).expect("reload");
            assert_eq!(again.kid(), key.kid());
            // A flipped payload does not verify.
            let mut parts: Vec<&str> = token.split('.').collect();
            let other = URL_SAFE_NO_PAD.encode(r#"{"sub":"y"}"#);
            parts[1] = &other;
            assert!(matches!(
                verify_jwt(key.public_jwk(), &parts.join(".")),
                Err(Error::BadSignature)
            ));
        }
    }

    #[test]
    fn none_and_hmac_are_refused() {
        let key = JwtSigningKey::generate(JwtAlg::Es256).expect("key");
        let mut jwk = key.public_jwk().clone();
        jwk.as_object_mut().expect("object").remove("alg");
        for alg in ["none", "HS256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let token = format!("{h}.{}.", URL_SAFE_NO_PAD.encode("{}"));
            assert!(matches!(
                verify_jwt(&jwk, &token),
                Err(Error::UnsupportedAlgorithm(_))
            ));
        }
    }
}
