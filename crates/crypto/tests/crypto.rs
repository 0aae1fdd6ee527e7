//! Integration tests for the `crypto` crate, including cross-checks against the OpenSSL
//! command-line tool so that our JWS/JWK output is verified by an independent implementation.
//! One test binary: further areas are modules (`jwe/`: JWE, decryption keys, private JWKs,
//! interoperability with Python's jwcrypto).
#![allow(clippy::unwrap_used)]

mod jwe;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crypto::{
    Error, Kek, RsaSigningKey, constant_time_eq, random_token, rsa_jwk_thumbprint, sha256_hex,
    verify_compact_ps512,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

const CN: &str = "Rathaus crypto test";

/// RSA-4096 generation takes a second or more; do it once per test binary.
fn key() -> &'static RsaSigningKey {
    static KEY: OnceLock<RsaSigningKey> = OnceLock::new();
    KEY.get_or_init(|| RsaSigningKey::generate(CN).unwrap())
}

fn b64u(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// A fresh directory for one test's files.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crypto-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `openssl`; a missing binary fails the test loudly instead of skipping it, because the
/// independent cross-check is the point of these tests.
fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the `openssl` command-line tool is required for the cross-implementation tests \
             but could not be run ({e}); install it (Debian: `apt-get install openssl`)"
            )
        })
}

fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn parts(jws: &str) -> Vec<&str> {
    jws.split('.').collect()
}

// ---------------------------------------------------------------------------------------------
// JWS sign / verify
// ---------------------------------------------------------------------------------------------

#[test]
fn sign_verify_roundtrip() {
    let key = key();
    let jwk = key.public_jwk();
    let payload = br#"{"hello":"Welt","umlaut":"\u00e4"}"#;

    let jws = key.sign_compact(Some("JOSE"), payload).unwrap();
    let (header, got) = verify_compact_ps512(&jwk, &jws).unwrap();
    assert_eq!(got, payload);
    assert_eq!(
        header,
        json!({"alg": "PS512", "kid": key.kid(), "typ": "JOSE"})
    );

    let jws = key.sign_compact(None, b"").unwrap();
    let (header, got) = verify_compact_ps512(&jwk, &jws).unwrap();
    assert!(got.is_empty());
    assert_eq!(header, json!({"alg": "PS512", "kid": key.kid()}));

    // PSS is randomised: signing twice gives different signatures, both valid.
    let a = key.sign_compact(None, b"x").unwrap();
    let b = key.sign_compact(None, b"x").unwrap();
    assert_ne!(a, b);
    // 4096-bit signature = 512 bytes = 683 base64url chars.
    assert_eq!(parts(&a)[2].len(), 683);
}

#[test]
fn verify_uses_only_n_and_e() {
    let key = key();
    let full = key.public_jwk();
    let minimal = json!({"n": full["n"], "e": full["e"]});
    let jws = key.sign_compact(None, b"payload").unwrap();
    verify_compact_ps512(&minimal, &jws).unwrap();
}

#[test]
fn tampered_payload_rejected() {
    let key = key();
    let jws = key.sign_compact(None, b"amount=10").unwrap();
    let p = parts(&jws);
    let forged = format!("{}.{}.{}", p[0], b64u(b"amount=99"), p[2]);
    assert!(matches!(
        verify_compact_ps512(&key.public_jwk(), &forged),
        Err(Error::BadSignature)
    ));
}

#[test]
fn tampered_signature_rejected() {
    let key = key();
    let jws = key.sign_compact(None, b"data").unwrap();
    let p = parts(&jws);
    let mut sig = URL_SAFE_NO_PAD.decode(p[2]).unwrap();
    sig[100] ^= 0x01;
    let forged = format!("{}.{}.{}", p[0], p[1], b64u(&sig));
    assert!(matches!(
        verify_compact_ps512(&key.public_jwk(), &forged),
        Err(Error::BadSignature)
    ));

    // Truncated signature.
    let forged = format!("{}.{}.{}", p[0], p[1], b64u(&sig[..256]));
    assert!(verify_compact_ps512(&key.public_jwk(), &forged).is_err());

    // Empty signature.
    let forged = format!("{}.{}.", p[0], p[1]);
    assert!(verify_compact_ps512(&key.public_jwk(), &forged).is_err());
}

#[test]
fn tampered_header_rejected() {
    let key = key();
    let jws = key.sign_compact(Some("a"), b"data").unwrap();
    let p = parts(&jws);
    let header = json!({"alg": "PS512", "kid": key.kid(), "typ": "b"});
    let forged = format!("{}.{}.{}", b64u(header.to_string().as_bytes()), p[1], p[2]);
    assert!(matches!(
        verify_compact_ps512(&key.public_jwk(), &forged),
        Err(Error::BadSignature)
    ));
}

#[test]
fn wrong_alg_rejected() {
    let key = key();
    let jwk = key.public_jwk();
    let jws = key.sign_compact(None, b"data").unwrap();
    let p = parts(&jws);
    for alg in ["RS512", "PS256", "none", "HS512", "ps512"] {
        let header = json!({"alg": alg, "kid": key.kid()});
        let forged = format!("{}.{}.{}", b64u(header.to_string().as_bytes()), p[1], p[2]);
        match verify_compact_ps512(&jwk, &forged) {
            Err(Error::UnsupportedAlgorithm(got)) => assert_eq!(got, alg),
            other => panic!("alg {alg}: expected UnsupportedAlgorithm, got {other:?}"),
        }
        let unsigned = format!("{}.{}.", b64u(header.to_string().as_bytes()), p[1]);
        assert!(matches!(
            verify_compact_ps512(&jwk, &unsigned),
            Err(Error::UnsupportedAlgorithm(_))
        ));
    }
    // Missing or non-string alg.
    for header in [json!({"kid": key.kid()}), json!({"alg": 512})] {
        let forged = format!("{}.{}.{}", b64u(header.to_string().as_bytes()), p[1], p[2]);
        assert!(matches!(
            verify_compact_ps512(&jwk, &forged),
            Err(Error::MalformedJws(_))
        ));
    }
    // A huge alg value is not echoed in full.
    let long = "X".repeat(10_000);
    let header = json!({ "alg": long });
    let forged = format!("{}.{}.{}", b64u(header.to_string().as_bytes()), p[1], p[2]);
    let msg = verify_compact_ps512(&jwk, &forged).unwrap_err().to_string();
    assert!(msg.len() < 200, "{msg}");
}

#[test]
fn crit_header_rejected() {
    // Even a correctly signed JWS is rejected if it demands extensions we do not implement.
    let key = key();
    let header = json!({"alg": "PS512", "crit": ["b64"], "b64": false});
    let h = b64u(header.to_string().as_bytes());
    let p = parts(&key.sign_compact(None, b"x").unwrap())[2].to_owned();
    let forged = format!("{h}.{}.{p}", b64u(b"x"));
    assert!(matches!(
        verify_compact_ps512(&key.public_jwk(), &forged),
        Err(Error::MalformedJws(_))
    ));
}

#[test]
fn malformed_jws_rejected() {
    let key = key();
    let jwk = key.public_jwk();
    let jws = key.sign_compact(None, b"data").unwrap();
    let p = parts(&jws);
    let cases = [
        String::new(),
        "a.b".to_owned(),
        format!("{jws}.extra"),
        format!("{}=.{}.{}", p[0], p[1], p[2]), // padding
        format!("{}.{}.{}=", p[0], p[1], p[2]), // padding
        format!("{}.{}+.{}", p[0], p[1], p[2]), // standard alphabet
        format!("{}.{}.{}", b64u(b"not json"), p[1], p[2]),
        format!("{}.{}.{}", b64u(b"[1,2]"), p[1], p[2]),
    ];
    for case in &cases {
        assert!(
            matches!(
                verify_compact_ps512(&jwk, case),
                Err(Error::MalformedJws(_))
            ),
            "accepted or wrong error for {case:?}"
        );
    }
}

#[test]
fn other_key_rejected() {
    let jws = key().sign_compact(None, b"data").unwrap();
    let other = crypto::testkey::shared().public_jwk();
    assert!(matches!(
        verify_compact_ps512(&other, &jws),
        Err(Error::BadSignature)
    ));
}

#[test]
fn bad_jwk_rejected() {
    let jws = key().sign_compact(None, b"data").unwrap();
    let full = key().public_jwk();
    let cases = [
        json!({}),
        json!({"n": full["n"]}),
        json!({"e": "AQAB"}),
        json!({"n": full["n"], "e": 65537}),
        json!({"n": "!!", "e": "AQAB"}),
        json!({"n": "", "e": "AQAB"}),
        json!({"kty": "EC", "n": full["n"], "e": "AQAB"}),
    ];
    for jwk in &cases {
        assert!(
            matches!(verify_compact_ps512(jwk, &jws), Err(Error::InvalidJwk(_))),
            "{jwk}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// JWK shape and thumbprint
// ---------------------------------------------------------------------------------------------

#[test]
fn public_jwk_shape() {
    let key = key();
    let jwk = key.public_jwk();
    let obj = jwk.as_object().unwrap();
    let mut members: Vec<&str> = obj.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["alg", "e", "key_ops", "kid", "kty", "n", "use", "x5c"]
    );
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "PS512");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["key_ops"], json!(["verify"]));
    assert_eq!(jwk["e"], "AQAB");
    assert_eq!(jwk["kid"], key.kid());
    assert_eq!(key.kid().len(), 43);

    let n = jwk["n"].as_str().unwrap();
    assert!(n.len() >= 683, "n too short: {}", n.len());
    let n_bytes = URL_SAFE_NO_PAD.decode(n).unwrap();
    assert_eq!(n_bytes.len(), 512);
    assert_ne!(n_bytes[0], 0, "n must not carry a leading zero byte");

    let x5c = jwk["x5c"].as_array().unwrap();
    assert_eq!(x5c.len(), 1);
    let cert = STANDARD.decode(x5c[0].as_str().unwrap()).unwrap();
    assert_eq!(cert, key.cert_der());

    assert_eq!(key.kid(), rsa_jwk_thumbprint(n, jwk["e"].as_str().unwrap()));
}

#[test]
fn rfc7638_example_thumbprint() {
    // RFC 7638, section 3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    assert_eq!(
        rsa_jwk_thumbprint(n, "AQAB"),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn debug_prints_only_kid() {
    let key = key();
    let dbg = format!("{key:?}");
    assert!(dbg.contains(key.kid()), "{dbg}");
    let n = key.public_jwk()["n"].as_str().unwrap().to_owned();
    assert!(!dbg.contains(&n[..20]), "{dbg}");
    assert!(dbg.len() < 100, "{dbg}");
}

// ---------------------------------------------------------------------------------------------
// Independent verification with OpenSSL
// ---------------------------------------------------------------------------------------------

#[test]
fn openssl_verifies_signature() {
    let key = key();
    let dir = tmp_dir("dgst");
    let jwk = key.public_jwk();
    let cert = STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap();
    let cert_path = dir.join("cert.der");
    std::fs::write(&cert_path, cert).unwrap();
    let pub_pem = dir.join("pub.pem");
    let cert_s = cert_path.to_str().unwrap();
    let pub_s = pub_pem.to_str().unwrap();
    openssl_ok(&[
        "x509", "-inform", "DER", "-in", cert_s, "-pubkey", "-noout", "-out", pub_s,
    ]);

    let jws = key
        .sign_compact(Some("JOSE"), b"{\"destination\":\"x\"}")
        .unwrap();
    let (signing_input, sig_b64) = jws.rsplit_once('.').unwrap();
    let input_path = dir.join("input");
    let sig_path = dir.join("sig.bin");
    std::fs::write(&input_path, signing_input).unwrap();
    std::fs::write(&sig_path, URL_SAFE_NO_PAD.decode(sig_b64).unwrap()).unwrap();
    let (input_s, sig_s) = (input_path.to_str().unwrap(), sig_path.to_str().unwrap());
    let dgst = |input: &str| {
        openssl(&[
            "dgst",
            "-sha512",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:64",
            "-verify",
            pub_s,
            "-signature",
            sig_s,
            input,
        ])
    };
    let out = dgst(input_s);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "openssl rejected our PS512 signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Negative control: OpenSSL must reject the same signature over different input.
    let other = dir.join("other");
    std::fs::write(&other, format!("{signing_input}x")).unwrap();
    assert!(!dgst(other.to_str().unwrap()).status.success());
}

#[test]
fn openssl_parses_certificate() {
    let key = key();
    let dir = tmp_dir("x509");
    let cert_path = dir.join("cert.der");
    std::fs::write(&cert_path, key.cert_der()).unwrap();
    let cert_s = cert_path.to_str().unwrap();

    let text = openssl_ok(&["x509", "-inform", "DER", "-in", cert_s, "-noout", "-text"]);
    assert!(
        text.contains("Public Key Algorithm: rsaEncryption"),
        "{text}"
    );
    assert!(text.contains("Public-Key: (4096 bit)"), "{text}");
    assert!(text.contains(&format!("Subject: CN = {CN}")), "{text}");
    assert!(text.contains(&format!("Issuer: CN = {CN}")), "{text}");
    assert!(text.contains("Exponent: 65537"), "{text}");

    // The modulus OpenSSL reads from the certificate is the JWK's `n`.
    let modulus = openssl_ok(&[
        "x509", "-inform", "DER", "-in", cert_s, "-noout", "-modulus",
    ]);
    let modulus = modulus.trim().strip_prefix("Modulus=").unwrap();
    let n = URL_SAFE_NO_PAD
        .decode(key.public_jwk()["n"].as_str().unwrap())
        .unwrap();
    let n_hex: String = n.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(modulus, n_hex);

    // Validity: starts about a day ago, lasts about ten years.
    let dates = openssl_ok(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        cert_s,
        "-noout",
        "-checkend",
        "0",
    ]);
    assert!(dates.contains("will not expire"), "{dates}");
    let in_9y = (9 * 365 * 24 * 3600).to_string();
    openssl_ok(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        cert_s,
        "-noout",
        "-checkend",
        &in_9y,
    ]);
    let in_11y = (11 * 365 * 24 * 3600).to_string();
    assert!(
        !openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            cert_s,
            "-noout",
            "-checkend",
            &in_11y,
        ])
        .status
        .success()
    );

    // The self-signature verifies with the certificate's own key.
    let pem_path = dir.join("cert.pem");
    let pem_s = pem_path.to_str().unwrap();
    openssl_ok(&["x509", "-inform", "DER", "-in", cert_s, "-out", pem_s]);
    let pub_path = dir.join("pub.pem");
    let pub_s = pub_path.to_str().unwrap();
    openssl_ok(&["x509", "-in", pem_s, "-pubkey", "-noout", "-out", pub_s]);
    let tbs_check = openssl_ok(&[
        "x509", "-in", pem_s, "-noout", "-subject", "-ext", "keyUsage",
    ]);
    assert!(tbs_check.contains("Digital Signature"), "{tbs_check}");
    let verify = openssl(&["verify", "-partial_chain", "-CAfile", pem_s, pem_s]);
    let verify_out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && verify_out.contains("OK"),
        "{verify_out}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn openssl_thumbprint_matches() {
    let key = key();
    let jwk = key.public_jwk();
    let dir = tmp_dir("thumb");
    // RFC 7638 canonical form written out by hand: required members only, sorted, no spaces.
    let canonical = format!(
        "{{\"e\":\"{}\",\"kty\":\"RSA\",\"n\":\"{}\"}}",
        jwk["e"].as_str().unwrap(),
        jwk["n"].as_str().unwrap()
    );
    let path = dir.join("canonical.json");
    std::fs::write(&path, &canonical).unwrap();
    let out_path = dir.join("digest.bin");
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-binary",
        "-out",
        out_path.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    let digest = std::fs::read(&out_path).unwrap();
    assert_eq!(digest.len(), 32);
    assert_eq!(key.kid(), b64u(&digest));
}

// ---------------------------------------------------------------------------------------------
// Loading stored keys
// ---------------------------------------------------------------------------------------------

#[test]
fn from_der_roundtrip() {
    let key = key();
    let loaded = RsaSigningKey::from_der(&key.pkcs8_der(), key.cert_der()).unwrap();
    assert_eq!(loaded.kid(), key.kid());
    assert_eq!(loaded.public_jwk(), key.public_jwk());
    // A signature from the loaded key verifies under the original JWK.
    let jws = loaded.sign_compact(None, b"x").unwrap();
    verify_compact_ps512(&key.public_jwk(), &jws).unwrap();
}

#[test]
fn from_der_rejects_mismatched_cert() {
    let key = key();
    let other = crypto::testkey::shared();
    assert_ne!(key.kid(), other.kid());
    assert!(matches!(
        RsaSigningKey::from_der(&key.pkcs8_der(), other.cert_der()),
        Err(Error::CertificateKeyMismatch)
    ));
}

#[test]
fn from_der_rejects_garbage() {
    let key = key();
    assert!(matches!(
        RsaSigningKey::from_der(b"not a key", key.cert_der()),
        Err(Error::InvalidPrivateKey(_))
    ));
    assert!(matches!(
        RsaSigningKey::from_der(&key.pkcs8_der(), b"not a cert"),
        Err(Error::InvalidCertificate(_))
    ));
    let mut trailing = key.cert_der().to_vec();
    trailing.push(0);
    assert!(matches!(
        RsaSigningKey::from_der(&key.pkcs8_der(), &trailing),
        Err(Error::InvalidCertificate(_))
    ));
}

#[test]
fn from_der_rejects_small_key() {
    use aws_lc_rs::encoding::AsDer as _;
    let small = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = small.as_der().unwrap();
    assert!(matches!(
        RsaSigningKey::from_der(der.as_ref(), key().cert_der()),
        Err(Error::InvalidPrivateKey(_))
    ));
}

#[test]
fn test_key_fixture_loads() {
    let a = crypto::testkey::shared();
    let b = crypto::testkey::shared();
    assert!(std::ptr::eq(a, b));
    assert_eq!(a.kid().len(), 43);
    let jws = a.sign_compact(None, b"fixture").unwrap();
    let (_, payload) = verify_compact_ps512(&a.public_jwk(), &jws).unwrap();
    assert_eq!(payload, b"fixture");
}

// ---------------------------------------------------------------------------------------------
// Kek
// ---------------------------------------------------------------------------------------------

#[test]
fn kek_roundtrip() {
    let kek = Kek::generate();
    let secret = key().pkcs8_der();
    let wrapped = kek.wrap(b"destination-key:1", &secret);
    assert_eq!(wrapped.len(), 1 + 12 + secret.len() + 16);
    assert_eq!(wrapped[0], 1);
    let unwrapped = kek.unwrap(b"destination-key:1", &wrapped).unwrap();
    assert_eq!(&*unwrapped, &*secret);
    // Random nonces: wrapping twice differs.
    assert_ne!(kek.wrap(b"a", b"same"), kek.wrap(b"a", b"same"));
}

#[test]
fn kek_wrong_aad_fails() {
    let kek = Kek::generate();
    let wrapped = kek.wrap(b"destination-key:1", b"secret");
    assert!(matches!(
        kek.unwrap(b"destination-key:2", &wrapped),
        Err(Error::UnwrapFailed)
    ));
    assert!(matches!(
        kek.unwrap(b"", &wrapped),
        Err(Error::UnwrapFailed)
    ));
}

#[test]
fn kek_tampering_fails() {
    let kek = Kek::generate();
    let wrapped = kek.wrap(b"aad", b"secret value");
    for i in 1..wrapped.len() {
        let mut t = wrapped.clone();
        t[i] ^= 0x80;
        assert!(
            matches!(kek.unwrap(b"aad", &t), Err(Error::UnwrapFailed)),
            "byte {i}"
        );
    }
    let mut t = wrapped.clone();
    t[0] = 2;
    assert!(matches!(
        kek.unwrap(b"aad", &t),
        Err(Error::MalformedWrapped(_))
    ));
    assert!(matches!(
        kek.unwrap(b"aad", &wrapped[..wrapped.len() - 1]),
        Err(Error::UnwrapFailed)
    ));
    assert!(matches!(
        kek.unwrap(b"aad", &wrapped[..20]),
        Err(Error::MalformedWrapped(_))
    ));
    assert!(matches!(
        kek.unwrap(b"aad", &[]),
        Err(Error::MalformedWrapped(_))
    ));
}

#[test]
fn kek_wrong_key_fails() {
    let wrapped = Kek::generate().wrap(b"aad", b"secret");
    assert!(matches!(
        Kek::generate().unwrap(b"aad", &wrapped),
        Err(Error::UnwrapFailed)
    ));
}

#[test]
fn kek_base64_roundtrip_and_alphabets() {
    let kek = Kek::generate();
    let b64 = kek.to_base64();
    assert_eq!(b64.len(), 44);
    let wrapped = kek.wrap(b"aad", b"secret");

    let raw = STANDARD.decode(b64.as_bytes()).unwrap();
    let forms = [
        b64.to_string(),
        b64.trim_end_matches('=').to_owned(),
        URL_SAFE_NO_PAD.encode(&raw),
        base64::engine::general_purpose::URL_SAFE.encode(&raw),
        format!("  {}\n", *b64),
    ];
    for form in &forms {
        let loaded = Kek::from_base64(form).unwrap();
        assert_eq!(&*loaded.unwrap(b"aad", &wrapped).unwrap(), b"secret");
        assert_eq!(*loaded.to_base64(), *b64);
    }
}

#[test]
fn kek_from_base64_errors_are_clear() {
    let cases: [(&str, &str); 5] = [
        ("", "empty"),
        ("   ", "empty"),
        ("not base64 at all!", "base64"),
        (&STANDARD.encode([7u8; 16]), "32 bytes"),
        (&STANDARD.encode([7u8; 33]), "32 bytes"),
    ];
    for (input, expected) in cases {
        let err = Kek::from_base64(input).unwrap_err();
        assert!(matches!(err, Error::InvalidKek(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(expected), "{input:?}: {msg}");
        assert!(msg.starts_with("invalid key-encryption key"), "{msg}");
        if input.trim().len() > 3 {
            assert!(!msg.contains(input.trim()), "error echoes input: {msg}");
        }
    }
}

#[test]
fn kek_debug_is_opaque() {
    assert_eq!(format!("{:?}", Kek::generate()), "Kek(..)");
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

#[test]
fn helpers() {
    let t = random_token(16);
    assert_eq!(t.len(), 22);
    assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 16);
    assert!(constant_time_eq(t.as_bytes(), t.clone().as_bytes()));
    assert!(!constant_time_eq(b"a", b"ab"));
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
