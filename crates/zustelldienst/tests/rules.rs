#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::json;
use zustelldienst::event::{
    AuthenticationTags, SetCheck, check_accept_tags, check_subscriber_claims,
};
use zustelldienst::submission::{ApiVersion, CreateSubmission, Limits, SubmitSubmission};
use zustelldienst::{Action, SubmissionStatus};

const ACTIONS: [Action; 7] = [
    Action::UploadAttachment,
    Action::Submit,
    Action::Fetch,
    Action::Accept,
    Action::Reject,
    Action::Expire,
    Action::Delete,
];

proptest! {
    /// Whatever sequence of requests arrives, the state only moves forward along the
    /// documented graph: once decided, never undecided; deleted is terminal; nothing is
    /// decided without having been submitted.
    #[test]
    fn state_machine_only_moves_forward(seq in proptest::collection::vec(0usize..7, 0..40)) {
        let mut s = SubmissionStatus::Incomplete;
        let mut submitted = false;
        for i in seq {
            let a = ACTIONS[i];
            match s.after(a) {
                Some(next) => {
                    if s.is_final() { prop_assert!(next == SubmissionStatus::Deleted); }
                    if matches!(next, SubmissionStatus::Accepted | SubmissionStatus::Rejected) {
                        prop_assert!(submitted);
                    }
                    if next == SubmissionStatus::Submitted { submitted = true; }
                    prop_assert!(s != SubmissionStatus::Deleted);
                    s = next;
                }
                None => {
                    // refused: the state stays
                }
            }
        }
    }

    #[test]
    fn status_names_round_trip(i in 0usize..6) {
        let all = [SubmissionStatus::Incomplete, SubmissionStatus::Submitted, SubmissionStatus::Forwarded,
                   SubmissionStatus::Accepted, SubmissionStatus::Rejected, SubmissionStatus::Deleted];
        prop_assert_eq!(SubmissionStatus::parse(all[i].as_str()), Some(all[i]));
    }
}

#[test]
fn accept_after_reject_is_refused() {
    let s = SubmissionStatus::Submitted.after(Action::Reject).unwrap();
    assert_eq!(s.after(Action::Accept), None);
    assert_eq!(SubmissionStatus::Incomplete.after(Action::Accept), None);
    assert_eq!(
        SubmissionStatus::Submitted.after(Action::UploadAttachment),
        None
    );
}

#[test]
fn create_submission_v1_and_v2_and_duplicates() {
    let a = "6f2c4b51-1111-4f6b-9c3e-2a1b3c4d5e6f";
    let body = json!({"destinationId": "6F2C4B51-2222-4F6B-9C3E-2A1B3C4D5E6F",
        "announcedAttachments": [a, a.to_uppercase(), a],
        "serviceType": {"name": "", "identifier": "urn:de:fim:leika:leistung:99115005104000"}});
    let c = CreateSubmission::parse(ApiVersion::V1, &body, &Limits::default()).unwrap();
    assert_eq!(c.announced_attachments, vec![a.to_string()]);
    assert_eq!(c.destination_id, "6f2c4b51-2222-4f6b-9c3e-2a1b3c4d5e6f");
    let err = CreateSubmission::parse(ApiVersion::V2, &body, &Limits::default()).unwrap_err();
    assert!(err.detail.contains("publicService"), "{err}");
    let v2 = json!({"destinationId": "6f2c4b51-2222-4f6b-9c3e-2a1b3c4d5e6f", "announcedAttachments": [],
        "publicService": {"identifier": "urn:de:fim:leika:leistung:99115005104000"}, "region": "DE03257"});
    let c = CreateSubmission::parse(ApiVersion::V2, &v2, &Limits::default()).unwrap();
    assert_eq!(c.region.as_deref(), Some("DE03257"));
    let bad = json!({"destinationId": "x", "serviceType": {"identifier": "urn:x:y"}});
    assert!(
        CreateSubmission::parse(ApiVersion::V1, &bad, &Limits::default())
            .unwrap_err()
            .detail
            .contains("UUID")
    );
}

#[test]
fn submit_requires_data_in_v2_only() {
    let b = json!({"encryptedMetadata": "a.b.c.d.e"});
    assert!(SubmitSubmission::parse(ApiVersion::V1, &b, &Limits::default()).is_ok());
    assert!(SubmitSubmission::parse(ApiVersion::V2, &b, &Limits::default()).is_err());
}

#[test]
fn subscriber_set_checks() {
    let dest = "6f2c4b51-2222-4f6b-9c3e-2a1b3c4d5e6f";
    let case = "6f2c4b51-3333-4f6b-9c3e-2a1b3c4d5e6f";
    let sub = "6f2c4b51-4444-4f6b-9c3e-2a1b3c4d5e6f";
    let check = SetCheck {
        destination_id: dest,
        case_id: case,
    };
    let base = |events: serde_json::Value, schema: bool| {
        let mut c = json!({"jti": "6f2c4b51-5555-4f6b-9c3e-2a1b3c4d5e6f", "iss": dest, "iat": 1, "sub": format!("submission:{sub}"),
            "txn": format!("case:{case}"), "events": events});
        if schema {
            c["$schema"] = json!(zustelldienst::event::SET_SCHEMA);
        }
        c
    };
    // Legacy accept: no $schema, no tags.
    let e = check_subscriber_claims(
        &base(
            json!({"https://schema.fitko.de/fit-connect/events/accept-submission": {}}),
            false,
        ),
        &check,
    )
    .unwrap();
    assert!(e.legacy_without_tags);
    // With $schema, tags are required.
    assert!(
        check_subscriber_claims(
            &base(
                json!({"https://schema.fitko.de/fit-connect/events/accept-submission": {}}),
                true
            ),
            &check
        )
        .is_err()
    );
    // Wrong iss.
    let mut c = base(
        json!({"https://schema.fitko.de/fit-connect/events/accept-submission": {}}),
        false,
    );
    c["iss"] = json!("someone");
    assert!(
        check_subscriber_claims(&c, &check)
            .unwrap_err()
            .detail
            .contains("iss")
    );
    // Two events.
    assert!(check_subscriber_claims(&base(json!({"https://schema.fitko.de/fit-connect/events/accept-submission": {}, "https://schema.fitko.de/fit-connect/events/reject-submission": {}}), false), &check).is_err());
    // Old schema version 0.x refused.
    let mut c = base(
        json!({"https://schema.fitko.de/fit-connect/events/reject-submission": {"problems": [{"type": "t", "title": "x"}]}}),
        true,
    );
    c["$schema"] =
        json!("https://schema.fitko.de/fit-connect/set-payload/0.9.0/set-payload.schema.json");
    assert!(check_subscriber_claims(&c, &check).is_err());
    // Tags must match exactly.
    let stored = AuthenticationTags {
        metadata: "m".into(),
        data: Some("d".into()),
        attachments: [("a1".to_string(), "t1".to_string())].into(),
    };
    assert!(check_accept_tags(&json!({"authenticationTags": {"metadata": "m", "data": "d", "attachments": {"a1": "t1"}}}), &stored).is_ok());
    assert!(check_accept_tags(&json!({"authenticationTags": {"metadata": "m", "data": "d", "attachments": {"a1": "tX"}}}), &stored).is_err());
    assert!(
        check_accept_tags(
            &json!({"authenticationTags": {"metadata": "m", "data": "d"}}),
            &stored
        )
        .is_err()
    );
    assert!(
        check_accept_tags(
            &json!({"authenticationTags": {"metadata": "m", "attachments": {"a1": "t1"}}}),
            &stored
        )
        .is_err()
    );
}
