//! The client against a real clamd: the throwaway one of `scripts/clamd-throwaway`, whose
//! database knows the EICAR test string (signatures `Rathaus.Test.EICAR-*`).
//!
//! `RATHAUS_TEST_CLAMD_URL` names it (scripts/test sets it); without it these tests are
//! skipped with a note, unless `RATHAUS_TEST_REQUIRE_CLAMD=1` (as in CI), which makes a
//! missing clamd a failure. `RATHAUS_TEST_CLAMD_TCP_URL` (optional, `CLAMD_THROWAWAY_TCP=1`)
//! adds the same checks over TCP.

use std::time::{Duration, Instant};

use scanner::{Clamd, ClamdUrl, Error, Timeouts, Verdict};
use tokio::io::AsyncReadExt;

/// The throwaway clamd's StreamMaxLength (64M in scripts/clamd-throwaway).
const STREAM_MAX: u64 = 64 * 1024 * 1024;

fn clamd_from(var: &str) -> Option<Clamd> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => {
            let url = ClamdUrl::parse(&url).unwrap_or_else(|e| panic!("{var}: {e}"));
            Some(Clamd::new(url, Timeouts::default()))
        }
        _ => None,
    }
}

/// The clamd under test, or None (test skipped) when none is configured.
fn clamd() -> Option<Clamd> {
    let clamd = clamd_from("RATHAUS_TEST_CLAMD_URL");
    if clamd.is_none() {
        if std::env::var("RATHAUS_TEST_REQUIRE_CLAMD").is_ok_and(|v| v == "1") {
            panic!("RATHAUS_TEST_REQUIRE_CLAMD=1 but RATHAUS_TEST_CLAMD_URL is not set");
        }
        eprintln!(
            "note: skipped: RATHAUS_TEST_CLAMD_URL is not set (scripts/clamd-throwaway start)"
        );
    }
    clamd
}

/// The 68-byte EICAR anti-virus test file, put together here so that no file of the
/// repository contains it.
fn eicar() -> Vec<u8> {
    let first = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$";
    let second = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    let eicar = format!("{first}{second}").into_bytes();
    assert_eq!(eicar.len(), 68);
    eicar
}

/// Deterministic bytes that match nothing.
fn harmless(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// Overwrite the first bytes with something new, so that clamd's cache of clean verdicts
/// (by hash, kept across test runs while the daemon lives) never answers for it.
fn make_unique(data: &mut [u8]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        .to_le_bytes();
    let n = nanos.len().min(data.len());
    data[..n].copy_from_slice(&nanos[..n]);
}

fn assert_eicar_found(verdict: &Verdict) {
    match verdict {
        Verdict::Infected { signature } => assert!(
            signature.starts_with("Rathaus.Test.EICAR"),
            "unexpected signature {signature}"
        ),
        Verdict::Clean => panic!("EICAR was not found"),
    }
}

/// Standard base64 (RFC 4648), for wrapping EICAR in a mail attachment.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn ping_and_version() {
    let Some(clamd) = clamd() else { return };
    clamd.ping().await.expect("PING");
    let version = clamd.version().await.expect("VERSION");
    assert!(version.starts_with("ClamAV "), "{version}");
}

#[tokio::test]
async fn clean_file_is_clean() {
    let Some(clamd) = clamd() else { return };
    let mut text = b"Antrag auf Erteilung einer Baugenehmigung\n".repeat(200);
    text.extend(harmless(10_000));
    assert_eq!(clamd.scan_bytes(&text).await.expect("scan"), Verdict::Clean);
    assert_eq!(clamd.scan_bytes(b"").await.expect("scan"), Verdict::Clean);
}

#[tokio::test]
async fn eicar_is_infected() {
    let Some(clamd) = clamd() else { return };
    let verdict = clamd.scan_bytes(&eicar()).await.expect("scan");
    assert_eicar_found(&verdict);
}

#[tokio::test]
async fn eicar_inside_a_larger_file_is_infected() {
    let Some(clamd) = clamd() else { return };
    // Across a chunk boundary of the client (64 KiB) on purpose.
    let mut data = harmless(64 * 1024 - 30);
    data.extend(eicar());
    data.extend(harmless(1024 * 1024));
    let verdict = clamd.scan_bytes(&data).await.expect("scan");
    assert_eicar_found(&verdict);
}

#[tokio::test]
async fn eicar_as_base64_mail_attachment_is_infected() {
    // The raw EICAR bytes appear nowhere in this mail: clamd must decode the attachment.
    let Some(clamd) = clamd() else { return };
    let mail = format!(
        "From: buerger@example.org\r\nTo: poststelle@example.org\r\nSubject: Antrag\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnbei der Antrag.\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"antrag.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"antrag.com\"\r\n\r\n{}\r\n--b1--\r\n",
        base64(&eicar())
    );
    assert!(!mail.contains("EICAR-STANDARD"));
    let verdict = clamd.scan_bytes(mail.as_bytes()).await.expect("scan");
    assert_eicar_found(&verdict);
}

#[tokio::test]
async fn file_above_stream_max_length_is_too_large() {
    let Some(clamd) = clamd() else { return };
    let over = tokio::io::repeat(b'a').take(STREAM_MAX + 1024 * 1024);
    let err = clamd.scan_stream(over).await.expect_err("too large");
    assert!(matches!(err, Error::TooLarge), "{err:?}");
    // Exactly at the limit is still scanned.
    let at = tokio::io::repeat(b'a').take(STREAM_MAX);
    assert_eq!(
        clamd.scan_stream(at).await.expect("at the limit"),
        Verdict::Clean
    );
}

#[tokio::test]
async fn thirty_megabytes_fit_the_default_timeouts() {
    let Some(clamd) = clamd() else { return };
    let mut data = harmless(30 * 1024 * 1024);
    make_unique(&mut data);
    let started = Instant::now();
    assert_eq!(clamd.scan_bytes(&data).await.expect("scan"), Verdict::Clean);
    eprintln!("30 MB clean: {:?}", started.elapsed());
    let at = data.len() - 1000;
    data[at..at + 68].copy_from_slice(&eicar());
    let started = Instant::now();
    assert_eicar_found(&clamd.scan_bytes(&data).await.expect("scan"));
    eprintln!("30 MB with EICAR near the end: {:?}", started.elapsed());
}

#[tokio::test]
async fn unreachable_socket_is_unreachable() {
    // Needs no clamd: a socket path where nothing listens.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = ClamdUrl::Unix(dir.path().join("clamd.sock"));
    let clamd = Clamd::new(url, Timeouts::default());
    let err = clamd.scan_bytes(&eicar()).await.expect_err("unreachable");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let err = clamd.ping().await.expect_err("unreachable");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_scans_are_all_answered() {
    let Some(clamd) = clamd() else { return };
    let started = Instant::now();
    let scans: Vec<_> = (0..50)
        .map(|i| {
            let clamd = clamd.clone();
            tokio::spawn(async move {
                let mut data = harmless(100_000 + i * 1000);
                let infected = i % 5 == 0;
                if infected {
                    data[i * 100..i * 100 + 68].copy_from_slice(&eicar());
                }
                (infected, clamd.scan_bytes(&data).await)
            })
        })
        .collect();
    for scan in scans {
        let (infected, verdict) = scan.await.expect("join");
        let verdict = verdict.expect("scan");
        if infected {
            assert_eicar_found(&verdict);
        } else {
            assert_eq!(verdict, Verdict::Clean);
        }
    }
    eprintln!("50 concurrent scans of ~100 KB: {:?}", started.elapsed());
}

#[tokio::test]
async fn timings() {
    let Some(clamd) = clamd() else { return };
    for (label, len) in [("10 KB", 10 * 1024), ("10 MB", 10 * 1024 * 1024)] {
        let mut data = harmless(len);
        let mut best = Duration::MAX;
        for _ in 0..5 {
            make_unique(&mut data);
            let started = Instant::now();
            assert_eq!(clamd.scan_bytes(&data).await.expect("scan"), Verdict::Clean);
            best = best.min(started.elapsed());
        }
        eprintln!("scan {label}: best of 5 {best:?}");
    }
    let started = Instant::now();
    for _ in 0..100 {
        clamd.ping().await.expect("ping");
    }
    eprintln!(
        "PING (connect + command + reply): {:?} each",
        started.elapsed() / 100
    );
}

#[tokio::test]
async fn over_tcp_too() {
    let Some(clamd) = clamd_from("RATHAUS_TEST_CLAMD_TCP_URL") else {
        eprintln!("note: skipped: RATHAUS_TEST_CLAMD_TCP_URL is not set (CLAMD_THROWAWAY_TCP=1)");
        return;
    };
    clamd.ping().await.expect("PING");
    assert_eq!(
        clamd.scan_bytes(&harmless(200_000)).await.expect("scan"),
        Verdict::Clean
    );
    let mut data = harmless(200_000);
    data.extend(eicar());
    assert_eicar_found(&clamd.scan_bytes(&data).await.expect("scan"));
    let over = tokio::io::repeat(b'a').take(STREAM_MAX + 1024 * 1024);
    let err = clamd.scan_stream(over).await.expect_err("too large");
    assert!(matches!(err, Error::TooLarge), "{err:?}");
}
