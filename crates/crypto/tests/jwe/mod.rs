//! JWE (RSA-OAEP-256 + A256GCM, optional DEFLATE), the decryption key and private JWKs,
//! cross-checked against independent implementations: Python's jwcrypto (through
//! `jwcrypto_peer.py`, run with Debian's `/usr/bin/python3`) and the OpenSSL CLI.
//!
//! The jwcrypto tests skip with a message when `python3-jwcrypto` is missing, unless
//! `RATHAUS_TEST_REQUIRE_JWCRYPTO` or `CI` is set: then they fail.

use super::{b64u, openssl_ok, tmp_dir};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crypto::jwe::{self, authentication_tag};
use crypto::{
    Error, JweCompact, JweProblem, RsaDecryptionKey, RsaEncryptionKey, RsaSigningKey,
    rsa_jwk_thumbprint, testkey, verify_compact_ps512,
};
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

const PYTHON: &str = "/usr/bin/python3";
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jwe/jwcrypto_peer.py");
const MB: usize = 1024 * 1024;

fn dec_key() -> &'static RsaDecryptionKey {
    testkey::shared_decryption()
}

fn sig_key() -> &'static RsaSigningKey {
    testkey::shared()
}

/// A second decryption key, unrelated to [`dec_key`] (the signing fixture's key material).
fn other_dec_key() -> RsaDecryptionKey {
    RsaDecryptionKey::from_der(testkey::TEST_ONLY_PKCS8_DER, testkey::TEST_ONLY_CERT_DER).unwrap()
}

fn unb64u(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn segments(jwe: &str) -> Vec<String> {
    jwe.split('.').map(str::to_owned).collect()
}

fn problem(compact: &str) -> Option<JweProblem> {
    match JweCompact::parse(compact) {
        Err(Error::MalformedJwe(p)) => Some(p),
        Err(other) => panic!("expected MalformedJwe, got {other:?}"),
        Ok(_) => None,
    }
}

fn decrypt(jwe: &str, max: usize) -> Result<crypto::Decrypted, Error> {
    jwe::decrypt(dec_key(), &JweCompact::parse(jwe)?, max)
}

fn truthy_env(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether jwcrypto can be used. Missing jwcrypto fails the test when it is required (CI, or
/// `RATHAUS_TEST_REQUIRE_JWCRYPTO`), and otherwise skips it with a message written straight
/// to stderr (not `eprintln!`, which the test harness swallows for passing tests).
fn jwcrypto_available(test: &str) -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new(PYTHON)
            .args(["-c", "import jwcrypto"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !available {
        let required = truthy_env("CI") || truthy_env("RATHAUS_TEST_REQUIRE_JWCRYPTO");
        assert!(
            !required,
            "jwcrypto is required (CI or RATHAUS_TEST_REQUIRE_JWCRYPTO is set) but `{PYTHON} -c \
             'import jwcrypto'` fails: install it (Debian: apt-get install python3-jwcrypto)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {PYTHON} has no jwcrypto (Debian: apt-get install \
             python3-jwcrypto), so this interoperability check did not run"
        );
    }
    available
}

/// Runs one command of the jwcrypto peer; `Err(stderr)` if the peer refused.
fn peer_try(command: &str, request: &Value) -> Result<Value, String> {
    let mut child = Command::new(PYTHON)
        .arg(PEER)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
    let body = request.to_string();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn peer(command: &str, request: &Value) -> Value {
    peer_try(command, request).unwrap_or_else(|e| panic!("jwcrypto {command} failed: {e}"))
}

fn payloads() -> Vec<Vec<u8>> {
    vec![
        br#"{"$schema":"https://schema.fitko.de/fit-connect/metadata/1.2.0/metadata.schema.json","contentStructure":{"data":{"hash":{"type":"sha512","content":"00"}}}}"#.to_vec(),
        b"x".to_vec(),
        "Grüße aus dem Rathaus — äöüß".repeat(500).into_bytes(),
        // Incompressible, over 64 KiB (several DEFLATE blocks).
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Our own round trip, structure checks, tampering
// ---------------------------------------------------------------------------------------------

#[test]
fn jwe_roundtrip() {
    let key = dec_key();
    let enc = key.encryption_key();
    for zip in [false, true] {
        for plaintext in payloads().into_iter().chain([Vec::new()]) {
            let compact = jwe::encrypt(
                enc,
                &plaintext,
                Some("application/json"),
                Some(key.kid()),
                zip,
            )
            .unwrap();
            let parsed = JweCompact::parse(&compact).unwrap();
            assert_eq!(parsed.header().is_deflated(), zip);
            assert_eq!(parsed.header().cty(), Some("application/json"));
            assert_eq!(parsed.header().kid(), Some(key.kid()));
            assert_eq!(parsed.encrypted_key().len(), 512);
            assert_eq!(parsed.authentication_tag(), segments(&compact)[4]);
            let got = jwe::decrypt(key, &parsed, plaintext.len()).unwrap();
            assert_eq!(&got.plaintext[..], &plaintext[..]);
            assert_eq!(got.header, *parsed.header());
        }
    }
    // Minimal header when cty and kid are not given; fresh CEK and IV every time.
    let a = jwe::encrypt(enc, b"same", None, None, false).unwrap();
    let b = jwe::encrypt(enc, b"same", None, None, false).unwrap();
    assert_ne!(segments(&a)[1], segments(&b)[1]);
    assert_ne!(segments(&a)[2], segments(&b)[2]);
    let header: Value = serde_json::from_slice(&unb64u(&segments(&a)[0])).unwrap();
    assert_eq!(header, json!({"alg": "RSA-OAEP-256", "enc": "A256GCM"}));
    // FITKO's README: an empty-payload JWE for a 4096-bit key is at least 776 characters.
    let empty = jwe::encrypt(enc, b"", None, None, false).unwrap();
    assert!(empty.len() >= 776, "{}", empty.len());
}

#[test]
fn jwe_parse_names_each_problem() {
    let h = |json: &str| b64u(json.as_bytes());
    let ok_header = h(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#);
    let key = b64u(&[1u8; 512]);
    let iv = b64u(&[2u8; 12]);
    let ct = b64u(b"ciphertext");
    let tag = b64u(&[3u8; 16]);
    let jwe = |h: &str, k: &str, i: &str, c: &str, t: &str| format!("{h}.{k}.{i}.{c}.{t}");
    let with_header = |header: &str| jwe(header, &key, &iv, &ct, &tag);

    assert_eq!(problem(&with_header(&ok_header)), None);

    use JweProblem as P;
    let cases: Vec<(String, JweProblem)> = vec![
        (String::new(), P::NotFiveSegments),
        (format!("{ok_header}.{key}.{iv}.{ct}"), P::NotFiveSegments),
        (
            format!("{}.{tag}", with_header(&ok_header)),
            P::NotFiveSegments,
        ),
        (with_header("eyJ*"), P::HeaderNotBase64url),
        (
            with_header(&format!("{ok_header}==")),
            P::HeaderNotBase64url,
        ),
        (with_header(&"A".repeat(9000)), P::HeaderTooLong),
        (with_header(&h("not json")), P::HeaderNotJson),
        (with_header(""), P::HeaderNotJson),
        (with_header(&b64u(b"{\"alg\":\"\xff\"}")), P::HeaderNotJson),
        (with_header(&h("[1,2]")), P::HeaderNotObject),
        (
            with_header(&h(
                r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","alg":"RSA-OAEP-256"}"#,
            )),
            P::HeaderDuplicateMember,
        ),
        (with_header(&h(r#"{"enc":"A256GCM"}"#)), P::AlgMissing),
        (
            with_header(&h(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)),
            P::AlgUnsupported,
        ),
        (
            with_header(&h(r#"{"alg":"dir","enc":"A256GCM"}"#)),
            P::AlgUnsupported,
        ),
        (
            with_header(&h(r#"{"alg":5,"enc":"A256GCM"}"#)),
            P::AlgUnsupported,
        ),
        (with_header(&h(r#"{"alg":"RSA-OAEP-256"}"#)), P::EncMissing),
        (
            with_header(&h(r#"{"alg":"RSA-OAEP-256","enc":"A128GCM"}"#)),
            P::EncUnsupported,
        ),
        (
            with_header(&h(r#"{"alg":"RSA-OAEP-256","enc":"A256CBC-HS512"}"#)),
            P::EncUnsupported,
        ),
        (
            with_header(&h(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"GZIP"}"#)),
            P::ZipUnsupported,
        ),
        (
            with_header(&h(
                r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":["exp"],"exp":1}"#,
            )),
            P::CritUnsupported,
        ),
        (jwe(&ok_header, "", &iv, &ct, &tag), P::EncryptedKeyLength),
        (
            jwe(&ok_header, &b64u(&[1u8; 256]), &iv, &ct, &tag),
            P::EncryptedKeyLength,
        ),
        (
            jwe(&ok_header, &b64u(&[1u8; 1025]), &iv, &ct, &tag),
            P::EncryptedKeyLength,
        ),
        (
            jwe(&ok_header, &"A".repeat(100_000), &iv, &ct, &tag),
            P::EncryptedKeyLength,
        ),
        (
            jwe(&ok_header, &format!("{}+", &key[1..]), &iv, &ct, &tag),
            P::EncryptedKeyNotBase64url,
        ),
        (
            jwe(&ok_header, &key, &b64u(&[2u8; 11]), &ct, &tag),
            P::IvLength,
        ),
        (
            jwe(&ok_header, &key, &b64u(&[2u8; 16]), &ct, &tag),
            P::IvLength,
        ),
        (
            jwe(&ok_header, &key, "AAAAAAAAAAAAAAA/", &ct, &tag),
            P::IvNotBase64url,
        ),
        (
            jwe(&ok_header, &key, &iv, "Y2lwaGVy+GV4dA", &tag),
            P::CiphertextNotBase64url,
        ),
        (
            jwe(&ok_header, &key, &iv, "Y2lwaGVydGV4dA==", &tag),
            P::CiphertextNotBase64url,
        ),
        (
            jwe(&ok_header, &key, &iv, "Y2lwaGVydGV4dB", &tag),
            P::CiphertextNotBase64url,
        ),
        (
            jwe(&ok_header, &key, &iv, "A", &tag),
            P::CiphertextNotBase64url,
        ),
        (
            jwe(&ok_header, &key, &iv, &ct, &b64u(&[3u8; 15])),
            P::TagLength,
        ),
        (
            jwe(&ok_header, &key, &iv, &ct, &format!("{tag}==")),
            P::TagLength,
        ),
        // 22 characters whose last one carries non-zero unused bits.
        (
            jwe(&ok_header, &key, &iv, &ct, "AAAAAAAAAAAAAAAAAAAAAB"),
            P::TagNotBase64url,
        ),
    ];
    for (input, expected) in &cases {
        assert_eq!(
            problem(input),
            Some(*expected),
            "input {:?}",
            &input[..input.len().min(120)]
        );
    }

    // What the SDKs send is tolerated: typ JWE (fitconnect-client), the thumbprint as kid
    // (both Python SDKs), zip DEF, cty of any kind, extension members.
    for header in [
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF","cty":"application/json","kid":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs","typ":"JWE"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":42,"kid":null,"typ":["x"]}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","x-custom":{"a":1}}"#,
    ] {
        let compact = with_header(&h(header));
        let parsed = JweCompact::parse(&compact).unwrap();
        assert_eq!(parsed.authentication_tag(), tag);
        assert_eq!(parsed.ciphertext_len(), b"ciphertext".len());
    }
    let compact = with_header(&h(
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF","typ":"JWE","kid":"k"}"#,
    ));
    let parsed = JweCompact::parse(&compact).unwrap();
    assert!(parsed.header().is_deflated());
    assert_eq!(parsed.header().typ(), Some("JWE"));
    assert_eq!(parsed.header().kid(), Some("k"));
    assert_eq!(parsed.header().cty(), None);
}

#[test]
fn jwe_problems_read_well_and_echo_nothing() {
    let secret = "SECRET-a8f3e1";
    let header = b64u(format!(r#"{{"alg":"{secret}","enc":"A256GCM"}}"#).as_bytes());
    let compact = format!(
        "{header}.{}.{}.{}.{}",
        b64u(&[1u8; 512]),
        b64u(&[0u8; 12]),
        b64u(secret.as_bytes()),
        b64u(&[0u8; 16])
    );
    let err = JweCompact::parse(&compact).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed JWE: \"alg\" must be \"RSA-OAEP-256\""
    );
    let dbg = format!("{err:?}");
    assert!(!dbg.contains(secret), "{dbg}");
    assert_eq!(
        Error::MalformedJwe(JweProblem::NotFiveSegments).to_string(),
        "malformed JWE: not five dot-separated segments (header.encryptedKey.iv.ciphertext.tag)"
    );
}

/// Replaces segment `i` of a compact JWE by `f(decoded segment)`, re-encoded.
fn tamper(compact: &str, i: usize, f: impl Fn(&mut Vec<u8>)) -> String {
    let mut s = segments(compact);
    let mut bytes = unb64u(&s[i]);
    f(&mut bytes);
    s[i] = b64u(&bytes);
    s.join(".")
}

#[test]
fn jwe_tampering_refused_with_one_error() {
    let key = dec_key();
    let compact = jwe::encrypt(
        key.encryption_key(),
        b"Antrag auf Wohngeld",
        None,
        None,
        true,
    )
    .unwrap();
    assert_eq!(
        &decrypt(&compact, 1000).unwrap().plaintext[..],
        b"Antrag auf Wohngeld"
    );

    let flip_last = |b: &mut Vec<u8>| {
        let n = b.len() - 1;
        b[n] ^= 1;
    };
    let tampered = [
        // Header: still valid, but no longer the AAD the tag covers.
        tamper(&compact, 0, |b| {
            let mut v: Value = serde_json::from_slice(b).unwrap();
            v["kid"] = json!("someone-else");
            *b = v.to_string().into_bytes();
        }),
        tamper(&compact, 1, flip_last),
        tamper(&compact, 1, |b| b[0] ^= 0x80),
        tamper(&compact, 2, flip_last),
        tamper(&compact, 3, flip_last),
        tamper(&compact, 3, |b| {
            b.pop();
        }),
        tamper(&compact, 4, flip_last),
        tamper(&compact, 4, |b| b[0] ^= 1),
    ];
    for t in &tampered {
        assert!(
            matches!(decrypt(t, 1000), Err(Error::JweDecryptionFailed)),
            "{t}"
        );
    }
    // Same message for every cause: nothing to tell a padding or tag oracle.
    assert_eq!(
        Error::JweDecryptionFailed.to_string(),
        "JWE decryption failed: wrong key or altered JWE"
    );
    // The right JWE under another key fails the same way.
    let other = other_dec_key();
    let parsed = JweCompact::parse(&compact).unwrap();
    assert!(matches!(
        jwe::decrypt(&other, &parsed, 1000),
        Err(Error::JweDecryptionFailed)
    ));
}

#[test]
fn jwe_plaintext_limit_and_decompression_bombs() {
    let key = dec_key();
    let enc = key.encryption_key();
    let data = vec![b'a'; 100_000];
    let plain = jwe::encrypt(enc, &data, None, None, false).unwrap();
    let zipped = jwe::encrypt(enc, &data, None, None, true).unwrap();
    assert!(zipped.len() < plain.len() / 50);
    for compact in [&plain, &zipped] {
        assert_eq!(decrypt(compact, 100_000).unwrap().plaintext.len(), 100_000);
        assert!(matches!(
            decrypt(compact, 99_999),
            Err(Error::JwePlaintextTooLarge { limit: 99_999 })
        ));
    }
    // A bomb: 16 MiB of zeros in about 16 KiB; refused at the limit, not after inflating all.
    let zeros = vec![0u8; 16 * MB];
    let bomb = jwe::encrypt(enc, &zeros, None, None, true).unwrap();
    drop(zeros);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let t = Instant::now();
    assert!(matches!(
        decrypt(&bomb, MB),
        Err(Error::JwePlaintextTooLarge { limit: MB })
    ));
    eprintln!("bomb refused after {:?}", t.elapsed());
    // Ciphertext already larger than the limit: refused before any RSA work.
    assert!(matches!(
        decrypt(&plain, 10),
        Err(Error::JwePlaintextTooLarge { limit: 10 })
    ));
}

#[test]
fn jwe_zip_flag_without_deflate_data_is_refused_after_authentication() {
    // Authentic (we hold the key) but the payload is not DEFLATE: a distinct error is safe
    // because it is only reachable with a valid tag.
    let key = dec_key();
    let compact = jwe::encrypt(key.encryption_key(), b"", None, None, true).unwrap();
    assert!(decrypt(&compact, 10).unwrap().plaintext.is_empty());
    let hand_made = hand_made_jwe(
        key,
        br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#,
        b"\xff\xff not deflate",
    );
    assert!(matches!(
        decrypt(&hand_made, 1000),
        Err(Error::JweDecompressionFailed)
    ));
}

/// A JWE assembled without `crypto::jwe`: OpenSSL wraps a CEK we choose (RSA-OAEP, SHA-256,
/// MGF1-SHA-256), aws-lc's AES-256-GCM encrypts with the header segment as AAD.
fn hand_made_jwe(key: &RsaDecryptionKey, header: &[u8], content: &[u8]) -> String {
    let dir = tmp_dir("jwe-hand");
    let cert = dir.join("cert.der");
    std::fs::write(&cert, key.cert_der()).unwrap();
    let pubkey = dir.join("pub.pem");
    openssl_ok(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-pubkey",
        "-out",
        pubkey.to_str().unwrap(),
    ]);
    let cek = [0x42u8; 32];
    let cek_path = dir.join("cek.bin");
    std::fs::write(&cek_path, cek).unwrap();
    let wrapped = dir.join("wrapped.bin");
    openssl_ok(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        pubkey.to_str().unwrap(),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-in",
        cek_path.to_str().unwrap(),
        "-out",
        wrapped.to_str().unwrap(),
    ]);
    let header_b64 = b64u(header);
    let iv = [7u8; 12];
    let aes = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
    let mut data = content.to_vec();
    let tag = aes
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut data,
        )
        .unwrap();
    format!(
        "{header_b64}.{}.{}.{}.{}",
        b64u(&std::fs::read(&wrapped).unwrap()),
        b64u(&iv),
        b64u(&data),
        b64u(tag.as_ref())
    )
}

#[test]
fn openssl_wrapped_key_decrypts() {
    let key = dec_key();
    let compact = hand_made_jwe(
        key,
        br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"application/json"}"#,
        b"{\"ok\":true}",
    );
    let got = decrypt(&compact, 100).unwrap();
    assert_eq!(&got.plaintext[..], b"{\"ok\":true}");
    assert_eq!(got.header.cty(), Some("application/json"));
}

#[test]
fn openssl_unwraps_our_encrypted_key() {
    let key = dec_key();
    let plaintext = b"Bauantrag, Flurstueck 17/4";
    let compact = jwe::encrypt(key.encryption_key(), plaintext, None, None, false).unwrap();
    let s = segments(&compact);
    let dir = tmp_dir("jwe-unwrap");
    let der = dir.join("key.der");
    std::fs::write(&der, &*key.pkcs8_der()).unwrap();
    let wrapped = dir.join("wrapped.bin");
    std::fs::write(&wrapped, unb64u(&s[1])).unwrap();
    let cek_path = dir.join("cek.bin");
    openssl_ok(&[
        "pkeyutl",
        "-decrypt",
        "-keyform",
        "DER",
        "-inkey",
        der.to_str().unwrap(),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-in",
        wrapped.to_str().unwrap(),
        "-out",
        cek_path.to_str().unwrap(),
    ]);
    let cek = std::fs::read(&cek_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(cek.len(), 32, "A256GCM needs a 256-bit CEK");
    // Open the content with that CEK, following RFC 7516 § 5.2 by hand.
    let aes = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
    let mut data = unb64u(&s[3]);
    let iv: [u8; 12] = unb64u(&s[2]).try_into().unwrap();
    aes.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(iv),
        Aad::from(s[0].as_bytes()),
        &unb64u(&s[4]),
        &mut data,
    )
    .unwrap();
    assert_eq!(data, plaintext);
}

#[test]
fn authentication_tag_without_parsing_the_ciphertext() {
    let key = dec_key();
    let compact = jwe::encrypt(key.encryption_key(), &[9u8; 5000], None, None, false).unwrap();
    let tag = authentication_tag(&compact).unwrap();
    assert_eq!(tag, segments(&compact)[4]);
    assert_eq!(tag.len(), 22);
    assert_eq!(
        tag,
        JweCompact::parse(&compact).unwrap().authentication_tag()
    );
    // It borrows from the input: the exact string as sent.
    assert!(std::ptr::eq(
        tag.as_ptr(),
        compact[compact.len() - 22..].as_ptr()
    ));

    assert!(matches!(
        authentication_tag("a.b.c.d"),
        Err(Error::MalformedJwe(JweProblem::NotFiveSegments))
    ));
    assert!(matches!(
        authentication_tag("no dots at all"),
        Err(Error::MalformedJwe(JweProblem::NotFiveSegments))
    ));
    assert!(matches!(
        authentication_tag("a.b.c.d.AAAA"),
        Err(Error::MalformedJwe(JweProblem::TagLength))
    ));
    assert!(matches!(
        authentication_tag("a.b.c.d.AAAAAAAAAAAAAAAAAAAA+A"),
        Err(Error::MalformedJwe(JweProblem::TagNotBase64url))
    ));
}

#[test]
fn jwe_30_mb_attachment() {
    // Attachments reach 20-30 MB. Debug build: the timings printed here are for orientation
    // only; bench/pk-bound.sh measures release builds.
    let key = dec_key();
    let data: Vec<u8> = (0..30 * MB).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let compact = jwe::encrypt(key.encryption_key(), &data, None, None, false).unwrap();
    let t_enc = t.elapsed();
    let t = Instant::now();
    let tag = authentication_tag(&compact).unwrap();
    let t_tag = t.elapsed();
    let t = Instant::now();
    let parsed = JweCompact::parse(&compact).unwrap();
    let t_parse = t.elapsed();
    assert_eq!(parsed.authentication_tag(), tag);
    let t = Instant::now();
    let got = jwe::decrypt(key, &parsed, 30 * MB).unwrap();
    let t_dec = t.elapsed();
    assert!(got.plaintext[..] == data[..]);
    eprintln!(
        "30 MiB JWE ({} chars): encrypt {t_enc:?}, authentication_tag {t_tag:?}, parse \
         {t_parse:?}, decrypt {t_dec:?}",
        compact.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Keys: public JWK, private JWK, loading
// ---------------------------------------------------------------------------------------------

#[test]
fn decryption_key_public_jwk_shape() {
    let key = dec_key();
    let jwk = key.public_jwk();
    let obj = jwk.as_object().unwrap();
    let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["alg", "e", "key_ops", "kid", "kty", "n", "use", "x5c"]
    );
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["key_ops"], json!(["wrapKey"]));
    assert_eq!(jwk["alg"], "RSA-OAEP-256");
    assert_eq!(jwk["use"], "enc");
    assert_eq!(jwk["e"], "AQAB");
    // FIT-Connect: n at least 683 base64url characters (4096 bits).
    assert!(jwk["n"].as_str().unwrap().len() >= 683);
    assert_eq!(
        jwk["kid"],
        rsa_jwk_thumbprint(jwk["n"].as_str().unwrap(), "AQAB")
    );
    assert_eq!(jwk["kid"], key.kid());
    let cert = STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap();
    assert_eq!(cert, key.cert_der());
    // The certificate is for key encipherment, and certifies this key.
    let dir = tmp_dir("enc-cert");
    let path = dir.join("cert.der");
    std::fs::write(&path, &cert).unwrap();
    let text = openssl_ok(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        path.to_str().unwrap(),
        "-noout",
        "-ext",
        "keyUsage",
        "-modulus",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains("Key Encipherment"), "{text}");
    let modulus_hex = text
        .lines()
        .find_map(|l| l.strip_prefix("Modulus="))
        .unwrap()
        .to_ascii_lowercase();
    let n_hex: String = unb64u(jwk["n"].as_str().unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(modulus_hex, n_hex);

    // Our own public JWK is accepted for encryption.
    let enc = RsaEncryptionKey::from_jwk(&jwk).unwrap();
    assert_eq!(enc.kid(), Some(key.kid()));
    assert_eq!(enc.thumbprint(), key.kid());
}

#[test]
fn encryption_key_from_jwk_checks_members() {
    let good = dec_key().public_jwk();
    let with = |name: &str, value: Value| {
        let mut j = good.clone();
        j[name] = value;
        RsaEncryptionKey::from_jwk(&j)
    };
    let without = |name: &str| {
        let mut j = good.clone();
        j.as_object_mut().unwrap().remove(name);
        RsaEncryptionKey::from_jwk(&j)
    };
    // Optional members may be stripped (node jose users do that).
    for name in ["alg", "key_ops", "use", "kid", "x5c"] {
        assert!(without(name).is_ok(), "{name}");
    }
    let stripped = without("kid").unwrap();
    assert_eq!(stripped.kid(), None);
    assert_eq!(stripped.thumbprint(), dec_key().kid());
    for (name, value, msg) in [
        ("kty", json!("EC"), "\"kty\" is not \"RSA\""),
        ("alg", json!("RSA-OAEP"), "\"alg\" must be \"RSA-OAEP-256\""),
        ("alg", json!("PS512"), "\"alg\" must be \"RSA-OAEP-256\""),
        (
            "key_ops",
            json!(["verify"]),
            "\"key_ops\" does not contain \"wrapKey\"",
        ),
        (
            "key_ops",
            json!("wrapKey"),
            "\"key_ops\" does not contain \"wrapKey\"",
        ),
        ("use", json!("sig"), "\"use\" must be \"enc\""),
        ("n", json!("!!"), "\"n\" missing or not base64url"),
        ("e", json!(3), "\"e\" missing or not base64url"),
        ("kid", json!(7), "\"kid\" is not a string"),
    ] {
        match with(name, value) {
            Err(Error::InvalidJwk(m)) => assert_eq!(m, msg, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The signing key's JWK is a verification key, not an encryption key.
    assert!(RsaEncryptionKey::from_jwk(&sig_key().public_jwk()).is_err());
    // A 2048-bit key is refused (FIT-Connect requires 4096).
    let short = json!({"kty": "RSA", "n": b64u(&[0xc5; 256]), "e": "AQAB"});
    assert!(matches!(
        RsaEncryptionKey::from_jwk(&short),
        Err(Error::InvalidJwk("RSA modulus is shorter than 4096 bits"))
    ));
}

#[test]
fn private_jwks_roundtrip() {
    // Decryption key.
    let key = dec_key();
    let text = key.private_jwk();
    let jwk: Value = serde_json::from_str(&text).unwrap();
    let mut names: Vec<&str> = jwk
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "alg", "d", "dp", "dq", "e", "key_ops", "kid", "kty", "n", "p", "q", "qi", "x5c"
        ]
    );
    assert_eq!(jwk["key_ops"], json!(["unwrapKey"]));
    assert_eq!(jwk["alg"], "RSA-OAEP-256");
    assert_eq!(jwk["n"], key.public_jwk()["n"]);
    let back = RsaDecryptionKey::from_private_jwk(&text).unwrap();
    assert_eq!(back.kid(), key.kid());
    assert_eq!(back.cert_der(), key.cert_der());
    assert_eq!(*back.pkcs8_der(), *key.pkcs8_der());
    let compact = jwe::encrypt(key.encryption_key(), b"hi", None, None, false).unwrap();
    let parsed = JweCompact::parse(&compact).unwrap();
    assert_eq!(
        &jwe::decrypt(&back, &parsed, 2).unwrap().plaintext[..],
        b"hi"
    );

    // Signing key.
    let skey = sig_key();
    let stext = skey.private_jwk();
    let sjwk: Value = serde_json::from_str(&stext).unwrap();
    assert_eq!(sjwk["key_ops"], json!(["sign"]));
    assert_eq!(sjwk["alg"], "PS512");
    let sback = RsaSigningKey::from_private_jwk(&stext).unwrap();
    assert_eq!(sback.kid(), skey.kid());
    assert_eq!(*sback.pkcs8_der(), *skey.pkcs8_der());
    let jws = sback.sign_compact(None, b"x").unwrap();
    verify_compact_ps512(&skey.public_jwk(), &jws).unwrap();

    // Purpose mix-ups and damage are refused, naming the member and never echoing values.
    let d = jwk["d"].as_str().unwrap().to_owned();
    let edit = |base: &Value, f: &dyn Fn(&mut Value)| {
        let mut j = base.clone();
        f(&mut j);
        j.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            stext.to_string(),
            "\"alg\" must be \"RSA-OAEP-256\" for a decryption key",
        ),
        (
            edit(&jwk, &|j| j["key_ops"] = json!(["decrypt"])),
            "\"key_ops\" does not contain \"unwrapKey\"",
        ),
        (
            edit(&jwk, &|j| j["use"] = json!("sig")),
            "\"use\" must be \"enc\" for a decryption key",
        ),
        (
            edit(&jwk, &|j| j["kty"] = json!("EC")),
            "\"kty\" is not \"RSA\"",
        ),
        (
            edit(&jwk, &|j| {
                j.as_object_mut().unwrap().remove("x5c");
            }),
            "\"x5c\" with the key's certificate is required",
        ),
        (
            edit(&jwk, &|j| j["kid"] = json!("my-uuid-kid")),
            "\"kid\" is not the key's RFC 7638 thumbprint",
        ),
        (
            edit(&jwk, &|j| {
                j.as_object_mut().unwrap().remove("qi");
            }),
            "not a JSON object with string members kty, n, e, d, p, q, dp, dq, qi",
        ),
        (
            edit(&jwk, &|j| j["d"] = json!(format!("{}+", &d[1..]))),
            "\"d\" is not base64url",
        ),
        (
            edit(&jwk, &|j| j["dp"] = sjwk["dp"].clone()),
            "the RSA components are inconsistent or the key size is unsupported",
        ),
        (
            "not json".to_owned(),
            "not a JSON object with string members kty, n, e, d, p, q, dp, dq, qi",
        ),
    ];
    for (input, msg) in &cases {
        match RsaDecryptionKey::from_private_jwk(input) {
            Err(e @ Error::InvalidPrivateJwk(m)) => {
                assert_eq!(m, *msg);
                assert!(!e.to_string().contains(&d[..16]));
                assert!(!format!("{e:?}").contains(&d[..16]));
            }
            other => panic!("{msg}: {other:?}"),
        }
    }
    // The certificate of another key in x5c.
    let mismatched = edit(&jwk, &|j| j["x5c"] = sjwk["x5c"].clone());
    assert!(matches!(
        RsaDecryptionKey::from_private_jwk(&mismatched),
        Err(Error::CertificateKeyMismatch)
    ));
    // The decryption key's file is not a signing key.
    assert!(matches!(
        RsaSigningKey::from_private_jwk(&text),
        Err(Error::InvalidPrivateJwk(
            "\"alg\" must be \"PS512\" for a signing key"
        ))
    ));
    // alg/key_ops/use/kid may be absent.
    let minimal = edit(&jwk, &|j| {
        let o = j.as_object_mut().unwrap();
        for name in ["alg", "key_ops", "kid"] {
            o.remove(name);
        }
    });
    assert_eq!(
        RsaDecryptionKey::from_private_jwk(&minimal).unwrap().kid(),
        key.kid()
    );
}

#[test]
fn decryption_key_generate_and_der_roundtrip() {
    let key = RsaDecryptionKey::generate("Rathaus JWE test").unwrap();
    assert_eq!(key.kid().len(), 43);
    let back = RsaDecryptionKey::from_der(&key.pkcs8_der(), key.cert_der()).unwrap();
    assert_eq!(back.kid(), key.kid());
    let compact = jwe::encrypt(back.encryption_key(), b"neu", None, None, true).unwrap();
    let parsed = JweCompact::parse(&compact).unwrap();
    assert_eq!(
        &jwe::decrypt(&key, &parsed, 3).unwrap().plaintext[..],
        b"neu"
    );
    // A certificate for another key is refused.
    assert!(matches!(
        RsaDecryptionKey::from_der(&key.pkcs8_der(), dec_key().cert_der()),
        Err(Error::CertificateKeyMismatch)
    ));
}

#[test]
fn debug_output_has_no_key_material_or_plaintext() {
    let key = dec_key();
    let n = key.public_jwk()["n"].as_str().unwrap().to_owned();
    let d = serde_json::from_str::<Value>(&key.private_jwk()).unwrap()["d"]
        .as_str()
        .unwrap()
        .to_owned();
    for dbg in [format!("{key:?}"), format!("{:?}", key.encryption_key())] {
        assert!(dbg.contains(key.kid()), "{dbg}");
        assert!(!dbg.contains(&n[..20]) && !dbg.contains(&d[..20]), "{dbg}");
        assert!(dbg.len() < 200, "{dbg}");
    }
    let compact = jwe::encrypt(
        key.encryption_key(),
        b"Steuer-ID 12345678901",
        None,
        None,
        false,
    )
    .unwrap();
    let parsed = JweCompact::parse(&compact).unwrap();
    let dbg = format!("{parsed:?}");
    assert!(dbg.contains(parsed.authentication_tag()), "{dbg}");
    assert!(!dbg.contains(parsed.ciphertext_b64()), "{dbg}");
    let got = jwe::decrypt(key, &parsed, 100).unwrap();
    let dbg = format!("{got:?}");
    assert!(!dbg.contains("12345678901"), "{dbg}");
    assert!(dbg.contains("plaintext_len: 21"), "{dbg}");
}

// ---------------------------------------------------------------------------------------------
// Interoperability with jwcrypto
// ---------------------------------------------------------------------------------------------

#[test]
fn jwcrypto_encrypts_we_decrypt() {
    if !jwcrypto_available("jwcrypto_encrypts_we_decrypt") {
        return;
    }
    let key = dec_key();
    let jwk = key.public_jwk();
    // jwcrypto's own thumbprint of our JWK is our kid.
    assert_eq!(
        peer("thumbprint", &json!({"jwk": jwk}))["thumbprint"],
        key.kid()
    );
    // As the Python SDKs send it: kid = thumbprint, cty application/json, typ JWE.
    let cases: Vec<(bool, Vec<u8>)> = [false, true]
        .into_iter()
        .flat_map(|zip| payloads().into_iter().map(move |p| (zip, p)))
        .collect();
    let items: Vec<Value> = cases
        .iter()
        .map(|(zip, plaintext)| {
            json!({
                "plaintext": b64u(plaintext),
                "zip": zip,
                "kid": key.kid(),
                "cty": "application/json",
                "typ": "JWE",
            })
        })
        .collect();
    let out = peer("encrypt", &json!({"jwk": jwk, "items": items}));
    let jwes = out["jwes"].as_array().unwrap();
    assert_eq!(jwes.len(), cases.len());
    for ((zip, plaintext), compact) in cases.iter().zip(jwes) {
        let parsed = JweCompact::parse(compact.as_str().unwrap()).unwrap();
        assert_eq!(parsed.header().is_deflated(), *zip);
        assert_eq!(parsed.header().kid(), Some(key.kid()));
        assert_eq!(parsed.header().typ(), Some("JWE"));
        assert_eq!(parsed.header().cty(), Some("application/json"));
        let got = jwe::decrypt(key, &parsed, plaintext.len()).unwrap();
        assert!(got.plaintext[..] == plaintext[..], "zip={zip}");
    }
}

#[test]
fn we_encrypt_jwcrypto_decrypts() {
    if !jwcrypto_available("we_encrypt_jwcrypto_decrypts") {
        return;
    }
    let key = dec_key();
    let private: Value = serde_json::from_str(&key.private_jwk()).unwrap();
    let mut expected = Vec::new();
    let mut jwes = Vec::new();
    for zip in [false, true] {
        for plaintext in payloads() {
            jwes.push(
                jwe::encrypt(
                    key.encryption_key(),
                    &plaintext,
                    Some("application/json"),
                    Some(key.kid()),
                    zip,
                )
                .unwrap(),
            );
            let mut header = json!({
                "alg": "RSA-OAEP-256",
                "enc": "A256GCM",
                "cty": "application/json",
                "kid": key.kid(),
            });
            if zip {
                header["zip"] = json!("DEF");
            }
            expected.push((plaintext, header));
        }
    }
    let out = peer("decrypt", &json!({"jwk": private, "jwes": jwes}));
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), expected.len());
    for (result, (plaintext, header)) in results.iter().zip(&expected) {
        assert!(result.get("error").is_none(), "{result}");
        assert!(unb64u(result["plaintext"].as_str().unwrap()) == *plaintext);
        assert_eq!(result["header"], *header);
    }
}

#[test]
fn jwcrypto_verifies_our_security_event_token() {
    if !jwcrypto_available("jwcrypto_verifies_our_security_event_token") {
        return;
    }
    let key = sig_key();
    let claims = json!({
        "$schema": "https://schema.fitko.de/fit-connect/set-payload/1.2.0/set-payload.schema.json",
        "jti": "0b5e1d7c-3c57-4b6a-9d0b-0d1c1d7f3e55",
        "iss": "https://rathaus.example/fit-connect/",
        "iat": 1_764_000_000,
        "sub": "submission:F65FEAB2-4883-4DFF-85FB-169448545D9F",
        "txn": "case:F73D30C6-8894-4444-8687-00AE756FEA90",
        "events": {"https://schema.fitko.de/fit-connect/events/create-submission": {}},
    });
    let payload = claims.to_string();
    let set = key
        .sign_compact(Some("secevent+jwt"), payload.as_bytes())
        .unwrap();
    let out = peer("verify", &json!({"jwk": key.public_jwk(), "jws": set}));
    assert_eq!(
        out["header"],
        json!({"typ": "secevent+jwt", "alg": "PS512", "kid": key.kid()})
    );
    assert_eq!(unb64u(out["payload"].as_str().unwrap()), payload.as_bytes());
    // A signature from another key (the decryption fixture, relabelled for signing) does not
    // verify against ours.
    let mut other: Value = serde_json::from_str(&dec_key().private_jwk()).unwrap();
    other["alg"] = json!("PS512");
    other["key_ops"] = json!(["sign"]);
    let other = peer(
        "sign",
        &json!({"jwk": other, "payload": b64u(payload.as_bytes()), "header": {"alg": "PS512"}}),
    );
    assert!(
        peer_try(
            "verify",
            &json!({"jwk": key.public_jwk(), "jws": other["jws"]})
        )
        .is_err()
    );
    assert!(matches!(
        verify_compact_ps512(&key.public_jwk(), other["jws"].as_str().unwrap()),
        Err(Error::BadSignature)
    ));
}

#[test]
fn jwcrypto_signs_we_verify() {
    if !jwcrypto_available("jwcrypto_signs_we_verify") {
        return;
    }
    let key = sig_key();
    let private: Value = serde_json::from_str(&key.private_jwk()).unwrap();
    let payload =
        br#"{"events":{"https://schema.fitko.de/fit-connect/events/accept-submission":{}}}"#;
    let header = json!({"typ": "secevent+jwt", "alg": "PS512", "kid": key.kid()});
    // With our exported private JWK…
    let out = peer(
        "sign",
        &json!({"jwk": private, "payload": b64u(payload), "header": header}),
    );
    let jws = out["jws"].as_str().unwrap();
    let (got_header, got) = verify_compact_ps512(&key.public_jwk(), jws).unwrap();
    assert_eq!(got, payload);
    assert_eq!(got_header, header);
    // …and with a key jwcrypto made itself (its public JWK, as a peer would publish it;
    // 2048 bits, which verification accepts, because 4096-bit generation in Python takes
    // seconds).
    let out = peer(
        "sign",
        &json!({"jwk": null, "size": 2048, "payload": b64u(payload), "header": {"typ": "secevent+jwt", "alg": "PS512"}}),
    );
    let foreign = out["public_jwk"].clone();
    let jws = out["jws"].as_str().unwrap();
    let (got_header, got) = verify_compact_ps512(&foreign, jws).unwrap();
    assert_eq!(got, payload);
    assert_eq!(
        got_header["kid"],
        rsa_jwk_thumbprint(
            foreign["n"].as_str().unwrap(),
            foreign["e"].as_str().unwrap()
        )
    );
    // Not under our key.
    assert!(matches!(
        verify_compact_ps512(&key.public_jwk(), jws),
        Err(Error::BadSignature)
    ));
}

#[test]
fn jwcrypto_and_we_refuse_tampered_jwes() {
    if !jwcrypto_available("jwcrypto_and_we_refuse_tampered_jwes") {
        return;
    }
    let key = dec_key();
    let private: Value = serde_json::from_str(&key.private_jwk()).unwrap();
    let flip = |b: &mut Vec<u8>| b[0] ^= 1;

    // jwcrypto's JWE, altered: we refuse.
    let out = peer(
        "encrypt",
        &json!({"jwk": key.public_jwk(), "items": [{"plaintext": b64u(b"Gewerbeanmeldung"), "zip": true}]}),
    );
    let theirs = out["jwes"][0].as_str().unwrap().to_owned();
    assert_eq!(
        &decrypt(&theirs, 100).unwrap().plaintext[..],
        b"Gewerbeanmeldung"
    );
    let header_changed = tamper(&theirs, 0, |b| {
        let mut v: Value = serde_json::from_slice(b).unwrap();
        v["cty"] = json!("application/pdf");
        *b = v.to_string().into_bytes();
    });
    for t in [
        tamper(&theirs, 4, flip),
        tamper(&theirs, 3, flip),
        tamper(&theirs, 2, flip),
        tamper(&theirs, 1, flip),
        header_changed,
    ] {
        assert!(matches!(decrypt(&t, 100), Err(Error::JweDecryptionFailed)));
    }

    // Ours, altered in each segment: jwcrypto refuses all but the untouched one.
    let ours = jwe::encrypt(
        key.encryption_key(),
        b"Meldebescheinigung",
        None,
        None,
        false,
    )
    .unwrap();
    let mut jwes = vec![ours.clone()];
    jwes.extend((0..=4).map(|i| {
        if i == 0 {
            tamper(&ours, 0, |b| {
                let mut v: Value = serde_json::from_slice(b).unwrap();
                v["kid"] = json!("x");
                *b = v.to_string().into_bytes();
            })
        } else {
            tamper(&ours, i, flip)
        }
    }));
    let out = peer("decrypt", &json!({"jwk": private, "jwes": jwes}));
    let results = out["results"].as_array().unwrap();
    assert_eq!(
        unb64u(results[0]["plaintext"].as_str().unwrap()),
        b"Meldebescheinigung"
    );
    for (i, r) in results[1..].iter().enumerate() {
        assert!(r.get("error").is_some(), "segment {i}: {r}");
    }
}
