//! DKIM and S/MIME checks against signatures made by independent implementations: dkimpy
//! (Debian's python3-dkim) and the OpenSSL command line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mail_check::{Authenticator, Dns, Limits, parse};

const MESSAGE: &str = "From: Erika Mustermann <erika@buerger.example>\r\nTo: poststelle+032575403@rathaus.example\r\nSubject: Antrag auf Einsicht\r\nDate: Fri, 04 Dec 2026 10:00:00 +0100\r\nMessage-ID: <abc@buerger.example>\r\n\r\nSehr geehrte Damen und Herren,\r\nbitte gewaehren Sie Einsicht.\r\n";

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (private key PEM path, DNS TXT value of the public key)
fn dkim_key(dir: &Path) -> (std::path::PathBuf, String) {
    let key = dir.join("dkim.pem");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key));
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key));
    let b64 = run(Command::new("openssl").args(["base64", "-A"]).stdin(
        std::fs::File::open({
            let p = dir.join("pub.der");
            std::fs::write(&p, der).unwrap_or_else(|e| panic!("{e}"));
            p
        })
        .unwrap_or_else(|e| panic!("{e}")),
    ));
    (
        key,
        format!("v=DKIM1; k=rsa; p={}", String::from_utf8_lossy(&b64).trim()),
    )
}

fn dkimpy_sign(key: &Path, message: &[u8], dir: &Path) -> Vec<u8> {
    let msg = dir.join("msg.eml");
    std::fs::write(&msg, message).unwrap_or_else(|e| panic!("{e}"));
    let script = "import dkim,sys\nmsg=open(sys.argv[1],'rb').read()\nkey=open(sys.argv[2],'rb').read()\nsig=dkim.sign(msg,b'sel1',b'buerger.example',key,include_headers=[b'from',b'to',b'subject',b'date',b'message-id'])\nsys.stdout.buffer.write(sig+msg)\n";
    run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&msg)
        .arg(key))
}

fn authenticator(txt: &str) -> Authenticator {
    Authenticator::new(
        Dns::Off,
        &[("sel1._domainkey.buerger.example".into(), txt.into())],
        "rathaus.example",
        Duration::from_secs(2),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn dkim_signature_of_dkimpy_verifies_and_tampering_fails() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (key, txt) = dkim_key(dir.path());
    let signed = dkimpy_sign(&key, MESSAGE.as_bytes(), dir.path());
    let auth = authenticator(&txt);
    let ip = "192.0.2.1".parse().unwrap_or_else(|_| unreachable!());
    let r = auth
        .check(&signed, ip, "mx.buerger.example", "erika@buerger.example")
        .await;
    assert_eq!(r.dkim.len(), 1, "{r:?}");
    assert_eq!(r.dkim[0].result, "pass", "{r:?}");
    assert_eq!(r.dkim[0].domain.as_deref(), Some("buerger.example"));
    assert_eq!(r.dkim[0].selector.as_deref(), Some("sel1"));
    assert_eq!(r.spf.result, "not-checked");

    // Our own trace header on top does not break it; a changed body does.
    let mut traced = b"Received: from mx.buerger.example ([192.0.2.1]) by rathaus.example;\r\n Fri, 4 Dec 2026 10:00:01 +0100\r\n".to_vec();
    traced.extend_from_slice(&signed);
    assert_eq!(
        auth.check(&traced, ip, "h", "e@buerger.example").await.dkim[0].result,
        "pass"
    );
    let tampered = String::from_utf8_lossy(&signed)
        .replace("Einsicht.", "Einsicht!")
        .into_bytes();
    assert_eq!(
        auth.check(&tampered, ip, "h", "e@buerger.example")
            .await
            .dkim[0]
            .result,
        "fail"
    );

    // A key that is not in the table with DNS off: a temporary error, never a drop.
    let other = authenticator(
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB",
    );
    let signed_other = String::from_utf8_lossy(&signed)
        .replace("d=buerger.example", "d=anders.example")
        .into_bytes();
    let r = other.check(&signed_other, ip, "h", "").await;
    assert!(
        ["temperror", "permerror", "fail"].contains(&r.dkim[0].result.as_str()),
        "{r:?}"
    );

    // Unsigned: no DKIM entries.
    assert!(
        auth.check(MESSAGE.as_bytes(), ip, "h", "")
            .await
            .dkim
            .is_empty()
    );
}

#[test]
fn smime_signature_of_openssl_verifies_and_tampering_fails() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Erika Mustermann/emailAddress=erika@buerger.example",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let content = dir.path().join("content.txt");
    std::fs::write(
        &content,
        "Content-Type: text/plain; charset=utf-8\r\n\r\nIch beantrage Einsicht.\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let signed = run(Command::new("openssl")
        .args([
            "smime",
            "-sign",
            "-crlfeol",
            "-from",
            "erika@buerger.example",
            "-to",
            "poststelle@rathaus.example",
            "-subject",
            "Signiert",
            "-in",
        ])
        .arg(&content)
        .arg("-signer")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key));
    let m = parse(&signed, &Limits::default());
    let sig = m
        .signature
        .clone()
        .unwrap_or_else(|| panic!("no signature found"));
    assert_eq!(sig.result, "valid", "{sig:?}");
    assert!(
        sig.signer
            .as_deref()
            .is_some_and(|s| s.contains("Erika Mustermann")),
        "{sig:?}"
    );
    // The signature travels on as a file of its own.
    assert!(
        m.attachments
            .iter()
            .any(|a| a.mime_type.contains("pkcs7-signature")),
        "{:?}",
        m.attachments
    );

    let tampered = String::from_utf8_lossy(&signed)
        .replace("Ich beantrage", "Ich verlange")
        .into_bytes();
    let t = parse(&tampered, &Limits::default())
        .signature
        .unwrap_or_else(|| panic!("no signature"));
    assert_eq!(t.result, "invalid", "{t:?}");

    // Opaque signing (-nodetach) verifies too.
    let opaque = run(Command::new("openssl")
        .args(["smime", "-sign", "-nodetach", "-in"])
        .arg(&content)
        .arg("-signer")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key));
    let o = parse(&opaque, &Limits::default())
        .signature
        .unwrap_or_else(|| panic!("no signature"));
    assert_eq!(o.result, "valid", "{o:?}");
}

#[test]
fn pgp_signature_is_recognised_not_claimed() {
    let raw = b"From: a@example.org\r\nContent-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhallo\r\n--x\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\niQEz\r\n-----END PGP SIGNATURE-----\r\n--x--\r\n";
    let m = parse(raw, &Limits::default());
    let s = m.signature.unwrap_or_else(|| panic!("no signature"));
    assert_eq!(s.result, "not-verifiable");
    assert_eq!(serde_json::to_value(s.kind).unwrap_or_default(), "openpgp");
}
