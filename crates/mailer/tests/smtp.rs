//! The mail worker against a real SMTP server: aiosmtpd (Debian's `python3-aiosmtpd`) in a
//! child process, storing what it receives in a Maildir, which the test then reads back.
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailer::{Mailer, MailerConfig};
use store::testing::fresh;
use store::{Backend, NewMail, OutboxMail, Store};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// A Python that has aiosmtpd: `RATHAUS_TEST_PYTHON` if set, else Debian's `/usr/bin/python3`
/// (where `python3-aiosmtpd` installs it; a `python3` earlier on the PATH, such as pyenv's,
/// may not have it), else `python3`.
fn python() -> String {
    let candidates = std::env::var("RATHAUS_TEST_PYTHON")
        .ok()
        .into_iter()
        .chain(["/usr/bin/python3".to_owned(), "python3".to_owned()]);
    for python in candidates {
        let has_aiosmtpd = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if has_aiosmtpd {
            return python;
        }
    }
    panic!(
        "no python3 with aiosmtpd found: install it with `apt-get install -y python3-aiosmtpd` \
         (scripts/test does), or name an interpreter in RATHAUS_TEST_PYTHON"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SMTP server process. Dropping it kills the process, also when the test panics.
struct SmtpServer {
    child: Option<Child>,
    port: u16,
}

impl SmtpServer {
    /// Starts aiosmtpd with its Maildir handler on a free port and waits until it listens.
    fn start(python: &str, maildir: &Path) -> SmtpServer {
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut server = SmtpServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("aiosmtpd ended before it listened: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mail worker's task, aborted when dropped.
struct Worker(tokio::task::JoinHandle<()>);

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn outbox_mail(store: &Store, id: &str) -> OutboxMail {
    store
        .list_mails(100)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap()
}

/// Waits (at most 30 s) until `done` holds for the mail with this id; returns it then.
async fn wait_for(store: &Store, id: &str, done: impl Fn(&OutboxMail) -> bool) -> OutboxMail {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mail = outbox_mail(store, id).await;
        if done(&mail) {
            return mail;
        }
        assert!(Instant::now() < deadline, "mail {id} stuck: {mail:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The messages in the Maildir, parsed by Python's `email` package (an independent MIME
/// parser: it undoes the header and transfer encodings), plus each file's raw text.
fn read_maildir(python: &str, maildir: &Path) -> Vec<serde_json::Value> {
    const SCRIPT: &str = r#"
import json, os, sys
from email import policy
from email.parser import BytesParser
out = []
for sub in ("new", "cur"):
    d = os.path.join(sys.argv[1], sub)
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            raw = f.read()
        m = BytesParser(policy=policy.default).parsebytes(raw)
        out.append({
            "subject": str(m["Subject"]),
            "from": str(m["From"]),
            "to": str(m["To"]),
            "envelope_to": str(m["X-RcptTo"]),
            "auto_submitted": str(m["Auto-Submitted"]),
            "content_type": m.get_content_type(),
            "charset": m.get_content_charset(),
            "body": m.get_content(),
            "raw": raw.decode("ascii", "replace"),
        })
print(json.dumps(out))
"#;
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(maildir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

const VERIFY_BODY: &str = "Guten Tag,\n\nbitte bestätigen Sie Ihre Adresse: \
     https://rathaus.test/konto/bestaetigen?token=abc\n\nGrüße aus Bückeburg";
const NOTICE_BODY: &str = "Ihr Passwort wurde geändert. Waren Sie das nicht? Melden Sie sich.";

#[tokio::test]
async fn sends_the_outbox_over_smtp_and_retries_while_the_relay_is_down() {
    let python = python();
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("maildir");
    let mut server = SmtpServer::start(&python, &maildir);

    let db = fresh(Backend::Sqlite).await;
    let store = db.store().clone();
    let wake = Arc::new(Notify::new());
    let mailer = Mailer::new(
        store.clone(),
        &MailerConfig {
            // Plain SMTP: the test relay offers no TLS (see `MailerConfig::smtp_url`).
            smtp_url: format!("smtp://127.0.0.1:{}", server.port),
            from: "Rathaus <noreply@rathaus.test>".into(),
            keep_sent_bodies: false,
            dkim: None,
        },
        wake.clone(),
    )
    .unwrap();
    let worker = Worker(tokio::spawn(mailer.run()));

    let now = OffsetDateTime::now_utc();
    let verify = store
        .enqueue_mail(
            &NewMail {
                recipient: "erika@example.org",
                subject: "Bitte bestätigen Sie Ihre E-Mail-Adresse",
                body_text: VERIFY_BODY,
                purpose: "verify",
            },
            now,
        )
        .await
        .unwrap();
    let notice = store
        .enqueue_mail(
            &NewMail {
                recipient: "max@example.org",
                subject: "Sicherheitshinweis: Passwort geändert",
                body_text: NOTICE_BODY,
                purpose: "security_notice",
            },
            now,
        )
        .await
        .unwrap();
    wake.notify_one();

    for id in [&verify, &notice] {
        let mail = wait_for(&store, id, |m| m.status != "pending").await;
        assert_eq!(mail.status, "sent", "{mail:?}");
        assert!(mail.sent_at.is_some());
        assert_eq!(mail.attempts, 1);
        assert!(mail.last_error.is_none());
        assert_eq!(
            mail.body_text, "",
            "the body (with its link) is dropped once sent"
        );
    }

    let received = read_maildir(&python, &maildir);
    assert_eq!(received.len(), 2, "{received:#?}");
    let find = |to: &str| {
        received
            .iter()
            .find(|m| m["to"] == to)
            .unwrap_or_else(|| panic!("no mail to {to} in {received:#?}"))
    };
    for (to, subject, body) in [
        (
            "erika@example.org",
            "Bitte bestätigen Sie Ihre E-Mail-Adresse",
            VERIFY_BODY,
        ),
        (
            "max@example.org",
            "Sicherheitshinweis: Passwort geändert",
            NOTICE_BODY,
        ),
    ] {
        let m = find(to);
        assert_eq!(m["subject"], subject);
        assert_eq!(m["from"], "Rathaus <noreply@rathaus.test>");
        assert_eq!(m["envelope_to"], to);
        assert_eq!(m["auto_submitted"], "auto-generated");
        assert_eq!(m["content_type"], "text/plain");
        assert_eq!(m["charset"], "utf-8");
        let text = m["body"].as_str().unwrap().replace("\r\n", "\n");
        assert_eq!(text.trim_end(), body, "umlauts and line breaks intact");
        let raw = m["raw"].as_str().unwrap();
        assert!(
            raw.lines().any(|l| l == "Auto-Submitted: auto-generated"),
            "{raw}"
        );
    }

    // The relay goes away: the next mail stays in the outbox, with the error, for later.
    server.stop();
    let later = store
        .enqueue_mail(
            &NewMail {
                recipient: "erika@example.org",
                subject: "Noch eine Nachricht",
                body_text: "Schöne Grüße",
                purpose: "verify",
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    wake.notify_one();
    let mail = wait_for(&store, &later, |m| m.last_error.is_some()).await;
    drop(worker);
    assert_eq!(mail.status, "pending", "{mail:?}");
    assert_eq!(mail.attempts, 1);
    assert_eq!(mail.body_text, "Schöne Grüße", "kept until it is sent");
    assert!(mail.sent_at.is_none());
    // The retry is scheduled a minute later, not now.
    let now = OffsetDateTime::now_utc();
    let lease = time::Duration::minutes(2);
    assert!(store.claim_mail(now, lease).await.unwrap().is_none());
    let retried = store
        .claim_mail(now + time::Duration::seconds(61), lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((retried.id.as_str(), retried.attempts), (later.as_str(), 2));
    assert_eq!(
        read_maildir(&python, &maildir).len(),
        2,
        "nothing more arrived"
    );
}

/// An RSA key from the OpenSSL command line (independent of the code under test): (PKCS#8
/// PEM private key, base64 DER public key for the DNS record).
fn openssl_rsa_key(dir: &Path) -> (String, String) {
    let key = dir.join("dkim.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(public.status.success());
    use base64::Engine;
    (
        std::fs::read_to_string(&key).unwrap(),
        base64::engine::general_purpose::STANDARD.encode(&public.stdout),
    )
}

/// dkimpy's verdict on a message, with `public_key` as the DNS record of every selector.
fn dkimpy_verifies(python: &str, message: &[u8], public_key: &str) -> bool {
    const SCRIPT: &str = r#"
import sys, dkim
raw = sys.stdin.buffer.read()
# Maildir files may have bare LF line ends; SMTP had CRLF.
raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
record = ("v=DKIM1; k=rsa; p=" + sys.argv[1]).encode()
ok = dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)
print("PASS" if ok else "FAIL")
"#;
    use std::io::Write;
    let mut child = Command::new(python)
        .args(["-c", SCRIPT, public_key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy failed (is python3-dkim installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "PASS"
}

#[test]
fn dkim_signatures_verify_with_dkimpy_and_break_on_tampering() {
    let python = python();
    let tmp = tempfile::tempdir().unwrap();
    let (pem, public) = openssl_rsa_key(tmp.path());
    let signer = mailer::DkimSigner::from_pem(&pem, "rathaus.test", "mail2026").unwrap();
    let message = b"From: Rathaus <noreply@rathaus.test>\r\nTo: erika@example.org\r\nSubject: =?utf-8?q?Best=C3=A4tigung?=\r\n =?utf-8?q?_folded?=\r\nDate: Wed, 25 Nov 2026 08:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGuten  Tag, \t\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n\r\n\r\n";
    let signed = signer.sign(message, 1_795_000_000).unwrap();
    assert!(signed.starts_with(
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=rathaus.test; s=mail2026;"
    ));
    assert!(dkimpy_verifies(&python, &signed, &public));
    let mut tampered = signed.clone();
    let at = tampered.windows(5).position(|w| w == b"Guten").unwrap();
    tampered[at] = b'B';
    assert!(!dkimpy_verifies(&python, &tampered, &public));
    // Whitespace changes are what relaxed canonicalisation forgives.
    let respaced = String::from_utf8_lossy(&signed).replace("Guten  Tag", "Guten Tag");
    assert!(dkimpy_verifies(&python, respaced.as_bytes(), &public));
    assert!(mailer::DkimSigner::from_pem("not a key", "rathaus.test", "s").is_err());
}

#[tokio::test]
async fn mails_leave_dkim_signed_and_verify_after_smtp() {
    let python = python();
    let tmp = tempfile::tempdir().unwrap();
    let (pem, public) = openssl_rsa_key(tmp.path());
    let maildir = tmp.path().join("maildir");
    let server = SmtpServer::start(&python, &maildir);
    let db = fresh(Backend::Sqlite).await;
    let store = db.store().clone();
    let wake = Arc::new(Notify::new());
    let mailer = Mailer::new(
        store.clone(),
        &MailerConfig {
            smtp_url: format!("smtp://127.0.0.1:{}", server.port),
            from: "Rathaus <noreply@rathaus.test>".into(),
            keep_sent_bodies: true,
            dkim: Some(Arc::new(
                mailer::DkimSigner::from_pem(&pem, "rathaus.test", "mail2026").unwrap(),
            )),
        },
        wake.clone(),
    )
    .unwrap();
    let _worker = Worker(tokio::spawn(mailer.run()));
    let id = store
        .enqueue_mail(
            &NewMail {
                recipient: "erika@example.org",
                subject: "Neue Nachricht in Ihrem Postfach – Bückeburg",
                body_text: ".Punkt am Zeilenanfang\nZeile mit Leerzeichen am Ende   \n\nGrüße",
                purpose: "postfach_notice",
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    wake.notify_one();
    let mail = wait_for(&store, &id, |m| m.status != "pending").await;
    assert_eq!(mail.status, "sent", "{mail:?}");
    let received = read_maildir(&python, &maildir);
    assert_eq!(received.len(), 1);
    let raw = received[0]["raw"].as_str().unwrap();
    assert!(raw.contains("DKIM-Signature:"), "{raw}");
    // Read the file bytes again (the JSON copy replaced non-ASCII).
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(maildir.join(sub)).unwrap() {
            files.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    assert!(dkimpy_verifies(&python, &files[0], &public));
}
