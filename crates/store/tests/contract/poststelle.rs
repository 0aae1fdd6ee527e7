//! The ePoststelle's storage: leases on the work, deferral with reasons, receipts and filed
//! cases — on every backend.

use store::{
    DestinationKeyRecord, DestinationRecord, FiledAttachment, FiledCase, NewEvent, NewSubmission,
    ReceiptRecord, StoreError, SubmitParts,
};
use time::{Duration, OffsetDateTime};

use super::each_backend;

fn event(sub: &str, name: &str) -> NewEvent {
    NewEvent {
        jti: uuid::Uuid::new_v4().to_string(),
        case_id: format!("case-{sub}"),
        submission_id: sub.into(),
        event: name.into(),
        issuer: "service".into(),
        iat: 1,
        claims: "{}".into(),
        token: None,
    }
}

async fn submitted(s: &store::Store, dest: &str, sub: &str, now: OffsetDateTime) {
    s.create_submission(
        NewSubmission {
            id: sub.into(),
            case_id: format!("case-{sub}"),
            destination_id: dest.into(),
            sender_client_id: "sender".into(),
            api_version: "v1".into(),
            service_identifier: "urn:de:fim:leika:leistung:99115005104000".into(),
            service_name: String::new(),
            region: None,
            announced: "[]".into(),
            callback_url: None,
            callback_secret: None,
        },
        event(sub, "create-submission"),
        now,
    )
    .await
    .unwrap();
    let sub2 = sub.to_owned();
    let r = s
        .submit_submission(sub, "sender", now, move |_, _| {
            (
                SubmitParts {
                    encrypted_metadata: "m".into(),
                    encrypted_data: None,
                    tags: "{}".into(),
                },
                event(&sub2, "submit-submission"),
                None,
            )
        })
        .await
        .unwrap();
    assert!(matches!(r, store::Guarded::Done(_)));
}

fn receipt(sub: &str, decision: &str) -> ReceiptRecord {
    ReceiptRecord {
        submission_id: sub.into(),
        case_id: format!("case-{sub}"),
        destination_id: "held".into(),
        sender_client_id: "sender".into(),
        decision: decision.into(),
        claims: "{\"decision\":1}".into(),
        jws: "a.b.c".into(),
        set_jti: uuid::Uuid::new_v4().to_string(),
        set_iat: 7,
        set_claims: "{}".into(),
        set_token: "x.y.z".into(),
        check_report: "{}".into(),
        journal_proof: None,
        created_at: String::new(),
        postfach_ref: None,
        postfach_outcome: None,
    }
}

#[tokio::test]
async fn poststelle_work_is_leased_once_deferred_and_filed() {
    each_backend(|db| async move {
        let s = db.store();
        let now = OffsetDateTime::now_utc();
        for (id, held) in [("held", true), ("external", false)] {
            s.create_destination(
                DestinationRecord {
                    id: id.into(),
                    held_by_platform: held,
                    authority_ars: Some("032570000000".into()),
                    status: "active".into(),
                    doc: "{}".into(),
                    callback_secret: None,
                },
                vec![DestinationKeyRecord {
                    destination_id: id.into(),
                    kid: "k1".into(),
                    key_use: "encryption".into(),
                    public_jwk: "{}".into(),
                    wrapped_private: Some(vec![1, 2, 3]),
                    created_at: String::new(),
                    retired_at: None,
                }],
                Vec::new(),
                now,
            )
            .await
            .unwrap();
        }
        submitted(s, "held", "s1", now).await;
        submitted(s, "held", "s2", now + Duration::seconds(1)).await;
        submitted(s, "external", "s3", now).await;
        // Only submissions at destinations the platform holds.
        assert_eq!(s.poststelle_due(now, 10).await.unwrap(), ["s1", "s2"]);

        // Two nodes race for the lease: one wins.
        let lease = Duration::seconds(60);
        let (a, b) = tokio::join!(
            s.poststelle_claim("s1", now, lease),
            s.poststelle_claim("s1", now, lease)
        );
        assert!(
            a.unwrap().is_some() ^ b.unwrap().is_some(),
            "exactly one claim wins"
        );
        assert_eq!(s.poststelle_due(now, 10).await.unwrap(), ["s2"]);
        // After the lease ran out, it is due again (a crashed node).
        let later = now + Duration::seconds(61);
        assert_eq!(s.poststelle_due(later, 10).await.unwrap(), ["s1", "s2"]);
        assert_eq!(
            s.poststelle_claim("s1", later, lease).await.unwrap(),
            Some(2)
        );

        // Deferred with a reason: not due until then, and counted by reason.
        s.poststelle_defer(
            "s1",
            "scanner-unavailable",
            later + Duration::seconds(30),
            later,
        )
        .await
        .unwrap();
        assert_eq!(s.poststelle_due(later, 10).await.unwrap(), ["s2"]);
        assert!(
            s.poststelle_claim("s1", later, lease)
                .await
                .unwrap()
                .is_none()
        );
        let pending = s.poststelle_pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].reason.as_deref(), Some("scanner-unavailable"));
        assert_eq!(pending[0].count, 1);
        let after = later + Duration::seconds(31);
        assert!(
            s.poststelle_due(after, 10)
                .await
                .unwrap()
                .contains(&"s1".to_owned())
        );
        assert_eq!(
            s.poststelle_claim("s1", after, lease).await.unwrap(),
            Some(3)
        );

        // Filing: receipt and case in one go; a second receipt is a conflict.
        let case = FiledCase {
            submission_id: "s1".into(),
            authority_ars: Some("032570000000".into()),
            destination_id: "held".into(),
            case_id: "case-s1".into(),
            service_identifier: "urn:de:fim:leika:leistung:99115005104000".into(),
            service_name: String::new(),
            received_at: "2026-01-01T00:00:00Z".into(),
            decided_at: "2026-01-01T00:00:01Z".into(),
            metadata: "{\"contentStructure\":{}}".into(),
            data_wrapped: Some(vec![9; 40]),
            data_sha512: Some("ab".repeat(64)),
            check_report: "{\"ok\":true}".into(),
            attachments: vec![FiledAttachment {
                attachment_id: "a1".into(),
                filename: Some("Antrag.pdf".into()),
                mime_type: "application/pdf".into(),
                size: 3,
                sha512: "cd".repeat(64),
                content_wrapped: vec![0, 255, 7],
            }],
        };
        s.poststelle_file(receipt("s1", "accepted"), Some(case), after)
            .await
            .unwrap();
        assert!(matches!(
            s.poststelle_file(receipt("s1", "accepted"), None, after)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let r = s.poststelle_receipt("s1").await.unwrap().unwrap();
        assert_eq!((r.decision.as_str(), r.set_iat), ("accepted", 7));
        assert!(r.journal_proof.is_none());
        assert!(
            s.poststelle_set_journal_proof("s1", "{\"leaf\":1}")
                .await
                .unwrap()
        );
        assert_eq!(
            s.poststelle_receipt("s1")
                .await
                .unwrap()
                .unwrap()
                .journal_proof
                .as_deref(),
            Some("{\"leaf\":1}")
        );
        let c = s.poststelle_case("s1").await.unwrap().unwrap();
        assert_eq!(c.data_wrapped.as_deref(), Some(&[9u8; 40][..]));
        assert_eq!(c.attachments.len(), 1);
        assert_eq!(c.attachments[0].content_wrapped, [0, 255, 7]);
        assert_eq!(c.attachments[0].filename.as_deref(), Some("Antrag.pdf"));
        assert_eq!(
            s.poststelle_cases("032570000000", 10).await.unwrap(),
            [(
                "s1".to_owned(),
                "case-s1".to_owned(),
                "2026-01-01T00:00:00Z".to_owned()
            )]
        );
        s.poststelle_done("s1").await.unwrap();

        // A rejected submission has a receipt but no case; withdrawing removes both.
        s.poststelle_file(receipt("s2", "rejected"), None, after)
            .await
            .unwrap();
        assert!(s.poststelle_case("s2").await.unwrap().is_none());
        s.poststelle_withdraw("s1").await.unwrap();
        assert!(s.poststelle_receipt("s1").await.unwrap().is_none());
        assert!(s.poststelle_case("s1").await.unwrap().is_none());
        assert!(s.poststelle_receipt("s2").await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn data_schemas_keep_their_body_once_registered() {
    each_backend(|db| async move {
        let s = db.store();
        let now = OffsetDateTime::now_utc();
        let uri = "https://schemas.example/wohnsitz/1.0.json";
        let r = s
            .data_schema_register(uri, "application/schema+json", "{}", "h1", now)
            .await
            .unwrap();
        assert_eq!(r, store::SchemaRegistration::Registered);
        let r = s
            .data_schema_register(uri, "application/schema+json", "{}", "h1", now)
            .await
            .unwrap();
        assert_eq!(r, store::SchemaRegistration::Unchanged);
        let r = s
            .data_schema_register(uri, "application/schema+json", "{\"type\":1}", "h2", now)
            .await
            .unwrap();
        assert_eq!(r, store::SchemaRegistration::Different);
        let got = s.data_schema(uri).await.unwrap().unwrap();
        assert_eq!((got.body.as_str(), got.sha512.as_str()), ("{}", "h1"));
        assert!(s.data_schema("https://other").await.unwrap().is_none());
        let all = s.data_schemas().await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].body.is_empty(), "the list leaves the bodies out");
    })
    .await;
}
