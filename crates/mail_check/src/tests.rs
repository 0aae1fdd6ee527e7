use crate::parse::test_safe_filename;
use crate::{Limits, parse};

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

#[test]
fn plain_message() {
    let m = parse(
        &crlf(
            "From: Erika Mustermann <erika@example.org>\nTo: poststelle@rathaus.example\nSubject: Antrag\nMessage-ID: <1@example.org>\nDate: Fri, 04 Dec 2026 10:00:00 +0100\n\nHallo,\nanbei nichts.\n",
        ),
        &Limits::default(),
    );
    assert_eq!(m.subject.as_deref(), Some("Antrag"));
    assert_eq!(m.from[0].address, "erika@example.org");
    assert_eq!(m.from[0].name.as_deref(), Some("Erika Mustermann"));
    assert_eq!(m.message_id.as_deref(), Some("1@example.org"));
    assert!(
        m.text
            .as_deref()
            .is_some_and(|t| t.contains("anbei nichts"))
    );
    assert!(m.attachments.is_empty());
    assert!(m.automated.is_none());
    assert!(m.problems.is_empty(), "{:?}", m.problems);
}

#[test]
fn attachments_with_encoded_names_and_nested_parts() {
    let raw = crlf(concat!(
        "From: a@example.org\nSubject: =?utf-8?q?Geb=C3=BChren?=\nMIME-Version: 1.0\n",
        "Content-Type: multipart/mixed; boundary=\"b1\"\n\n",
        "--b1\nContent-Type: multipart/alternative; boundary=\"b2\"\n\n",
        "--b2\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße\n",
        "--b2\nContent-Type: text/html; charset=utf-8\n\n<p>Grüße</p>\n--b2--\n",
        "--b1\nContent-Type: application/pdf\nContent-Disposition: attachment; filename*=utf-8''Bescheinigung%20M%C3%BCller.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n",
        "--b1\nContent-Type: image/png; name=\"../../etc/passwd\"\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n",
        "--b1\nContent-Type: message/rfc822\n\nFrom: b@example.org\nSubject: inner\n\nbody\n",
        "--b1--\n"
    ));
    let m = parse(&raw, &Limits::default());
    assert_eq!(m.subject.as_deref(), Some("Gebühren"));
    assert_eq!(m.text.as_deref().map(str::trim), Some("Grüße"));
    assert!(m.html.as_deref().is_some_and(|h| h.contains("<p>")));
    let names: Vec<_> = m
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.mime_type.as_str()))
        .collect();
    assert_eq!(names[0], ("Bescheinigung Müller.pdf", "application/pdf"));
    assert_eq!(m.attachments[0].content, b"%PDF-1.4\n");
    assert_eq!(names[1], ("passwd", "image/png"));
    assert_eq!(names[2].1, "message/rfc822");
    assert!(names[2].0.ends_with(".eml"));
}

#[test]
fn machines_get_no_answer() {
    for (h, want) in [
        ("Auto-Submitted: auto-replied", "Auto-Submitted"),
        ("Precedence: bulk", "Precedence"),
        ("List-Id: <liste.example.org>", "mailing list"),
        ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
    ] {
        let m = parse(
            &crlf(&format!("From: a@example.org\n{h}\n\nx\n")),
            &Limits::default(),
        );
        assert!(
            m.automated.as_deref().is_some_and(|r| r.contains(want)),
            "{h}: {:?}",
            m.automated
        );
    }
    let m = parse(
        &crlf("From: a@example.org\nAuto-Submitted: no\n\nx\n"),
        &Limits::default(),
    );
    assert!(m.automated.is_none());
    let m = parse(
        &crlf(
            "From: MAILER-DAEMON@example.org\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n\nfailed\n--x--\n",
        ),
        &Limits::default(),
    );
    assert!(m.automated.is_some());
}

#[test]
fn broken_input_never_panics_and_is_reported() {
    for raw in [
        &b""[..],
        b"\r\n\r\n",
        b"garbage without header",
        b"From: \xff\xfe\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
        b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n",
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
    ] {
        let _ = parse(raw, &Limits::default());
    }
    let m = parse(b"", &Limits::default());
    assert!(!m.problems.is_empty());
}

#[test]
fn attachment_count_is_bounded() {
    let mut s = String::from("From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n");
    for i in 0..12 {
        s.push_str(&format!("--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=f{i}.txt\n\n{i}\n"));
    }
    s.push_str("--b--\n");
    let limits = Limits {
        max_attachments: 5,
        ..Limits::default()
    };
    let m = parse(&crlf(&s), &limits);
    assert_eq!(m.attachments.len(), 5);
    assert!(
        m.problems.iter().any(|p| p.contains("12 attachments")),
        "{:?}",
        m.problems
    );
}

#[test]
fn file_names_are_made_safe() {
    assert_eq!(test_safe_filename("C:\\Users\\x\\Antrag.pdf"), "Antrag.pdf");
    assert_eq!(test_safe_filename("..hidden"), "hidden");
    assert_eq!(test_safe_filename("a\u{0}b<c>.txt"), "a_b_c_.txt");
    let long = format!("{}.pdf", "x".repeat(400));
    let safe = test_safe_filename(&long);
    assert_eq!(safe.chars().count(), 200);
    assert!(safe.ends_with(".pdf"));
}
