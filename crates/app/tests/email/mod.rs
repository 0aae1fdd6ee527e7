//! The ePoststelle's e-mail channel through the real pipeline: a received message becomes a
//! submission, the ePoststelle (with the test clamd) decides, the sender gets the answer.

use std::sync::Arc;

use app::App;
use app::email_intake::{EMAIL_SERVICE, MailEnvelope};
use serde_json::json;

pub(crate) fn clamd() -> Option<scanner::Clamd> {
    match std::env::var("RATHAUS_TEST_CLAMD_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(u) => Some(scanner::Clamd::new(
            scanner::ClamdUrl::parse(&u).unwrap(),
            scanner::Timeouts::default(),
        )),
        None if std::env::var("RATHAUS_TEST_REQUIRE_CLAMD").as_deref() == Ok("1") => {
            panic!("RATHAUS_TEST_REQUIRE_CLAMD=1 but RATHAUS_TEST_CLAMD_URL is not set")
        }
        None => {
            eprintln!("note: skipping the e-mail channel test: no RATHAUS_TEST_CLAMD_URL");
            None
        }
    }
}

/// An authority's ePoststelle (platform-held destination) offering the e-mail service.
pub(crate) async fn epoststelle(app: &App, ars: &str) -> String {
    let (dest, _) = app
        .zd_setup_destination(app::zustelldienst::DestinationSetup {
            authority_ars: Some(ars.into()),
            services: vec![zustelldienst::ServiceOffer {
                identifier: "urn:de:fim:leika:leistung:99115005104000".into(),
                submission_schemas: vec![zustelldienst::destination::SubmissionSchema {
                    schema_uri: "https://schema.example/s.json".into(),
                    mime_type: "application/json".into(),
                }],
                regions: vec!["DE03257".into()],
            }],
            contact: json!({"legalName": "SG Nenndorf", "address": "A", "phone": "1", "email": "kontakt@nenndorf.example"}),
            held_by_platform: true,
            clients: vec![],
        })
        .await
        .unwrap();
    assert_eq!(app.ensure_email_channel().await.unwrap(), 1);
    assert_eq!(app.ensure_email_channel().await.unwrap(), 0, "idempotent");
    dest
}

pub(crate) fn envelope(from: &str, to: &str) -> MailEnvelope {
    MailEnvelope {
        client_ip: "192.0.2.10".parse().unwrap(),
        helo: "mx.buerger.example".into(),
        mail_from: from.into(),
        rcpt_to: vec![to.into()],
        tls: false,
    }
}

pub(crate) fn message(
    subject: &str,
    extra_headers: &str,
    attachment: (&str, &str, &[u8]),
) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(attachment.2);
    format!(
        "Received: from mx.buerger.example ([192.0.2.10])\r\n\tby rathaus.example with ESMTP id X; Fri, 4 Dec 2026 10:00:00 +0000\r\n\
         From: Erika Mustermann <erika@buerger.example>\r\nTo: poststelle+032575403@rathaus.example\r\n\
         Subject: {subject}\r\nMessage-ID: <{subject}@buerger.example>\r\nMIME-Version: 1.0\r\n{extra_headers}\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSehr geehrte Damen und Herren, anbei mein Antrag. Grüße\r\n\
         --b\r\nContent-Type: {}\r\nContent-Disposition: attachment; filename=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n",
        attachment.1, attachment.0
    )
    .into_bytes()
}

pub(crate) async fn settle(app: &Arc<App>, scanner: &scanner::Clamd) {
    for _ in 0..50 {
        app.poststelle_round(Some(scanner)).await.unwrap();
        app.answer_emails_once(time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        let pending = app
            .store()
            .email_message_states()
            .await
            .unwrap()
            .into_iter()
            .any(|(s, n)| s == "pending" && n > 0);
        if !pending {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("e-mails still waiting for their answer");
}

#[tokio::test]
async fn email_becomes_a_checked_submission_and_the_sender_is_answered() {
    let Some(scanner) = clamd() else { return };
    for backend in store::testing::backends() {
        eprintln!("-- on {backend:?}");
        let db = store::testing::fresh(backend).await;
        let app = crate::open(&db).await;
        let dest = epoststelle(&app, "032575403").await;
        let to = app.email_address_of("032575403");
        assert_eq!(to, "poststelle+032575403@rathaus.example");
        assert_eq!(app.email_recipient(&to).await.unwrap(), dest);
        assert_eq!(
            app.email_recipient("POSTSTELLE+032575403@Rathaus.Example")
                .await
                .unwrap(),
            dest
        );
        for bad in [
            "poststelle+031010000@rathaus.example",
            "info@rathaus.example",
            "poststelle+032575403@elsewhere.example",
            "poststelle+12x@rathaus.example",
        ] {
            let e = app.email_recipient(bad).await.unwrap_err();
            assert!(
                matches!(e, app::AppError::InvalidField { .. }),
                "{bad}: {e:?}"
            );
        }

        // 1. A message with a PDF: accepted, filed with its parts, answered.
        let pdf: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
        let raw = message(
            "Antrag",
            "",
            ("Bescheinigung Müller.pdf", "application/pdf", pdf),
        );
        let env = envelope("erika@buerger.example", &to);
        let ids = app.receive_email(&env, raw.clone()).await.unwrap();
        assert_eq!(ids.len(), 1);
        let s = app.store().submission(&ids[0]).await.unwrap().unwrap();
        assert_eq!(s.service_identifier, EMAIL_SERVICE);
        assert_eq!(s.destination_id, dest);
        assert_eq!(s.status, "submitted");

        // Sent again (the client lost our 250): recognised, not submitted twice, even with
        // a different trace header.
        let again_raw = {
            let text = String::from_utf8_lossy(&raw).into_owned();
            let body_start = text.find("From: ").unwrap();
            format!("Received: from other ([192.0.2.11]) by rathaus.example;\r\n Fri, 4 Dec 2026 10:00:05 +0000\r\n{}", &text[body_start..]).into_bytes()
        };
        assert_eq!(app.receive_email(&env, again_raw).await.unwrap(), ids);

        settle(&app, &scanner).await;
        let r = app
            .store()
            .poststelle_receipt(&ids[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.decision, "accepted", "{}", r.claims);
        let case = app.store().poststelle_case(&ids[0]).await.unwrap().unwrap();
        let mut names: Vec<String> = case
            .attachments
            .iter()
            .filter_map(|a| a.filename.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["Bescheinigung Müller.pdf", "original.eml"]);
        let eml = case
            .attachments
            .iter()
            .find(|a| a.filename.as_deref() == Some("original.eml"))
            .unwrap();
        assert_eq!(eml.mime_type, "message/rfc822");
        assert_eq!(eml.size as usize, raw.len(), "the original is kept whole");
        let report: serde_json::Value = serde_json::from_str(&case.check_report).unwrap();
        assert_eq!(report["dataValidation"]["valid"], true, "{report}");

        let answers = crate::mails(&app, "erika@buerger.example", "email_answer").await;
        assert_eq!(answers.len(), 1, "exactly one answer");
        let a = &answers[0];
        assert_eq!(a.subject, "Eingangsbestätigung: Antrag");
        assert!(a.body_text.contains("angenommen"), "{}", a.body_text);
        assert!(
            a.body_text
                .contains("Bescheinigung Müller.pdf (application/pdf"),
            "{}",
            a.body_text
        );
        assert!(
            a.body_text.contains("Virenprüfung: ohne Befund"),
            "{}",
            a.body_text
        );
        assert!(a.body_text.contains(&case.case_id), "{}", a.body_text);
        assert!(
            a.body_text
                .contains("DKIM: die Nachricht ist nicht DKIM-signiert"),
            "{}",
            a.body_text
        );

        // 2. An infected attachment: not accepted, counts as not received, the sender told why.
        let eicar = [
            r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR",
            "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
        ]
        .concat();
        let raw = message(
            "Rechnung",
            "",
            ("rechnung.com", "application/octet-stream", eicar.as_bytes()),
        );
        let ids = app.receive_email(&env, raw).await.unwrap();
        settle(&app, &scanner).await;
        let r = app
            .store()
            .poststelle_receipt(&ids[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.decision, "rejected");
        assert!(
            app.store()
                .poststelle_case(&ids[0])
                .await
                .unwrap()
                .is_none(),
            "not filed"
        );
        let answers = crate::mails(&app, "erika@buerger.example", "email_answer").await;
        let notice = answers
            .iter()
            .find(|m| m.subject == "Nicht angenommen: Rechnung")
            .unwrap();
        assert!(
            notice.body_text.contains("gilt als nicht zugegangen"),
            "{}",
            notice.body_text
        );
        assert!(
            notice.body_text.contains("„rechnung.com“"),
            "{}",
            notice.body_text
        );

        // 3. Machines get no answer (RFC 3834); the message is still taken.
        let raw = message(
            "Abwesenheit",
            "Auto-Submitted: auto-replied\r\n",
            ("a.txt", "text/plain", b"x"),
        );
        let ids = app.receive_email(&env, raw).await.unwrap();
        let bounce = message("Unzustellbar", "", ("b.txt", "text/plain", b"y"));
        let ids2 = app.receive_email(&envelope("", &to), bounce).await.unwrap();
        settle(&app, &scanner).await;
        assert_eq!(
            app.store()
                .poststelle_receipt(&ids[0])
                .await
                .unwrap()
                .unwrap()
                .decision,
            "accepted"
        );
        assert_eq!(
            app.store()
                .poststelle_receipt(&ids2[0])
                .await
                .unwrap()
                .unwrap()
                .decision,
            "accepted"
        );
        let answers = crate::mails(&app, "erika@buerger.example", "email_answer").await;
        assert_eq!(
            answers.len(),
            2,
            "no answer to the auto-reply: {:?}",
            answers.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        let states = app.store().email_message_states().await.unwrap();
        assert!(states.contains(&("suppressed".to_owned(), 2)), "{states:?}");
    }
}
