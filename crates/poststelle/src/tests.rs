#![allow(clippy::unwrap_used)]

use super::*;

const ATT: &str = "0b7e5a8e-7f0e-4c61-9f53-7e4b1e0a6c11";

fn metadata(data_hash: Option<&str>, attachments: &[(&str, &str)]) -> Value {
    let mut cs = json!({
        "attachments": attachments.iter().map(|(id, h)| json!({
            "attachmentId": id, "purpose": "attachment", "mimeType": "application/pdf",
            "filename": "Antrag.pdf", "hash": {"type": "sha512", "content": h}})).collect::<Vec<_>>(),
    });
    if let Some(h) = data_hash {
        cs["data"] = json!({"hash": {"type": "sha512", "content": h},
            "submissionSchema": {"schemaUri": "https://schema.fitko.de/fim/s00000096_1.0.schema.json", "mimeType": "application/json"}});
    }
    json!({"contentStructure": cs,
        "publicServiceType": {"identifier": "urn:de:fim:leika:leistung:99115005104000"}})
}

#[test]
fn sha512_matches_the_known_answer() {
    // FIPS 180-2 example "abc".
    assert_eq!(
        sha512_hex(b"abc"),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
}

#[test]
fn valid_metadata_passes_the_schema() {
    let m = metadata(Some(&sha512_hex(b"{}")), &[(ATT, &sha512_hex(b"pdf"))]);
    let c = check_metadata(m.to_string().as_bytes());
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.metadata.unwrap(), m);
}

#[test]
fn broken_json_is_a_syntax_violation() {
    let c = check_metadata(b"{\"contentStructure\": ");
    assert_eq!(c.problems.len(), 1);
    assert_eq!(c.problems[0].reason, Reason::SyntaxViolation);
    assert_eq!(c.problems[0].instance, "metadata");
    assert!(c.metadata.is_none());
}

#[test]
fn schema_violations_name_the_path_but_not_the_value() {
    let mut m = metadata(None, &[(ATT, "NOT-A-HASH-personal-data")]);
    m["contentStructure"]["attachments"][0]["purpose"] = json!("bribe");
    let c = check_metadata(m.to_string().as_bytes());
    assert_eq!(c.problems.len(), 1);
    let p = &c.problems[0];
    assert_eq!(p.reason, Reason::SchemaViolation);
    assert_eq!(
        p.to_json()["type"],
        "https://schema.fitko.de/fit-connect/events/problems/schema-violation"
    );
    assert!(
        p.detail
            .contains("/contentStructure/attachments/0/hash/content"),
        "{}",
        p.detail
    );
    assert!(
        p.detail.contains("/contentStructure/attachments/0/purpose"),
        "{}",
        p.detail
    );
    assert!(!p.detail.contains("personal-data"), "{}", p.detail);
    assert!(!p.detail.contains("bribe"), "{}", p.detail);
    // Without contentStructure at all.
    let c = check_metadata(br#"{"publicServiceType": {}}"#);
    assert_eq!(c.problems[0].reason, Reason::SchemaViolation);
}

#[test]
fn matching_hashes_give_no_problems() {
    let data = br#"{"name":"Erika"}"#;
    let pdf = b"%PDF-1.7 hello";
    let m = metadata(Some(&sha512_hex(data)), &[(ATT, &sha512_hex(pdf))]);
    let atts = BTreeMap::from([(ATT.to_owned(), PartDigest::of(pdf))]);
    let d = PartDigest::of(data);
    let (parts, problems) = check_content(&m, Some((&d, Some(data))), &atts);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.hash_ok));
    assert_eq!(parts[1].filename.as_deref(), Some("Antrag.pdf"));
    assert_eq!(Decision::from_problems(problems), Decision::Accept);
}

#[test]
fn hash_mismatches_are_reported_per_part() {
    let data = br#"{"name":"Erika"}"#;
    let m = metadata(Some(&"0".repeat(128)), &[(ATT, &"a".repeat(128))]);
    let atts = BTreeMap::from([(ATT.to_owned(), PartDigest::of(b"x"))]);
    let d = PartDigest::of(data);
    let (_, problems) = check_content(&m, Some((&d, Some(data))), &atts);
    let got: Vec<(Reason, &str)> = problems
        .iter()
        .map(|p| (p.reason, p.instance.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Reason::HashMismatch, "data"),
            (Reason::HashMismatch, &*attachment_instance(ATT)),
        ]
    );
}

#[test]
fn attachment_lists_are_compared_both_ways() {
    let other = "1b7e5a8e-7f0e-4c61-9f53-7e4b1e0a6c22";
    let m = metadata(None, &[(ATT, &sha512_hex(b"a"))]);
    let atts = BTreeMap::from([(other.to_owned(), PartDigest::of(b"b"))]);
    let (_, problems) = check_content(&m, None, &atts);
    let reasons: Vec<Reason> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        [Reason::MissingAttachment, Reason::AttachmentsMismatch]
    );
    assert_eq!(problems[0].instance, attachment_instance(ATT));
    assert_eq!(problems[1].instance, attachment_instance(other));
}

#[test]
fn missing_data_and_broken_json_data() {
    let m = metadata(Some(&sha512_hex(b"{")), &[]);
    let (_, problems) = check_content(&m, None, &BTreeMap::new());
    assert_eq!(problems[0].reason, Reason::MissingData);
    let d = PartDigest::of(b"{");
    let (_, problems) = check_content(&m, Some((&d, Some(b"{"))), &BTreeMap::new());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason, Reason::SyntaxViolation);
    assert_eq!(problems[0].instance, "data");
}

#[test]
fn malware_rejects_and_the_decision_carries_problems() {
    let verdicts = BTreeMap::from([
        ("data".to_owned(), ScanVerdict::Clean),
        (
            attachment_instance(ATT),
            ScanVerdict::Infected {
                signature: "Eicar-Signature".into(),
            },
        ),
    ]);
    let problems = scan_problems(&verdicts);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason, Reason::MalwareDetected);
    let decision = Decision::from_problems(problems);
    let tags = zustelldienst::event::AuthenticationTags {
        metadata: "m".into(),
        data: None,
        attachments: BTreeMap::new(),
    };
    let claims = decision_set_claims("j", 1, "dest", "sub", "case", &decision, &tags);
    let payload = &claims["events"]["https://schema.fitko.de/fit-connect/events/reject-submission"];
    assert_eq!(
        payload["problems"][0]["type"],
        "https://schema.fitko.de/fit-connect/events/problems/malware-detected"
    );
    assert_eq!(payload["problems"][0]["instance"], attachment_instance(ATT));
    assert_eq!(claims["iss"], "dest");
    let accept = decision_set_claims("j", 1, "d", "s", "c", &Decision::Accept, &tags);
    assert_eq!(
        accept["events"]["https://schema.fitko.de/fit-connect/events/accept-submission"]["authenticationTags"]
            ["metadata"],
        "m"
    );
}

#[test]
fn report_and_receipt_name_hashes_scans_and_decision() {
    let checks = Checks {
        metadata_sha512: Some(sha512_hex(b"m")),
        schema: METADATA_SCHEMA_ID,
        schema_errors: Vec::new(),
        data_validation: DataValidation::NoData,
        parts: vec![PartReport {
            instance: attachment_instance(ATT),
            filename: Some("Antrag.pdf".into()),
            mime_type: Some("application/pdf".into()),
            size: 3,
            sha512: sha512_hex(b"pdf"),
            expected_sha512: Some(sha512_hex(b"pdf")),
            hash_ok: true,
        }],
        scans: BTreeMap::from([(attachment_instance(ATT), ScanVerdict::Clean)]),
        scanner_version: Some("ClamAV 1.4.3".into()),
        decision: Decision::Accept,
    };
    let report = check_report(&checks, "2026-01-01T00:00:00Z");
    assert_eq!(report["parts"][0]["scan"], "clean");
    assert_eq!(report["scanner"]["engine"], "ClamAV 1.4.3");
    assert_eq!(report["metadata"]["validation"]["valid"], true);
    let subject = ReceiptSubject {
        issuer: "https://example.org/submission-api".into(),
        sender_client_id: "c".into(),
        service_identifier: "urn:x:y".into(),
        service_name: String::new(),
        authority_ars: Some("032570000000".into()),
        destination_id: "d".into(),
        submission_id: "s".into(),
        case_id: "k".into(),
        received_at: "2026-01-01T00:00:00Z".into(),
        decided_at: "2026-01-01T00:00:01Z".into(),
    };
    let r = receipt_claims(&subject, &checks);
    assert_eq!(r["decision"]["result"], "accepted");
    assert_eq!(r["parts"][0]["filename"], "Antrag.pdf");
    assert!(r["journal"].is_null());
}

#[test]
fn the_metadata_must_name_the_submissions_service() {
    let m = metadata(None, &[]);
    assert_eq!(
        check_service(&m, "urn:de:fim:leika:leistung:99115005104000"),
        None
    );
    let p = check_service(&m, "urn:de:fim:leika:leistung:99000000000000").unwrap();
    assert_eq!(p.reason, Reason::ServiceMismatch);
    assert_eq!(p.instance, "metadata");
    // Absent in the metadata (it is optional): nothing to compare.
    assert_eq!(
        check_service(&json!({"contentStructure": {"attachments": []}}), "urn:x:y"),
        None
    );
}

const DATA_SCHEMA: &str = "https://schemas.example/wohnsitz/1.0.json";

fn metadata_with_schema(uri: &str, mime: &str) -> serde_json::Value {
    serde_json::json!({"contentStructure": {"data": {"submissionSchema": {"schemaUri": uri, "mimeType": mime}}}})
}

#[test]
fn the_data_schema_must_be_one_the_destination_accepts() {
    let accepted = vec![(DATA_SCHEMA.to_owned(), "application/json".to_owned())];
    assert_eq!(
        check_schema_accepted(
            &metadata_with_schema(DATA_SCHEMA, "application/json"),
            &accepted
        ),
        None
    );
    let p = check_schema_accepted(
        &metadata_with_schema("https://other/2.0.json", "application/json"),
        &accepted,
    )
    .unwrap();
    assert_eq!(
        p.reason.type_uri(),
        "https://schema.fitko.de/fit-connect/events/problems/unsupported-schema"
    );
    assert!(
        p.detail.contains(DATA_SCHEMA),
        "names what is accepted: {}",
        p.detail
    );
    assert!(
        check_schema_accepted(
            &metadata_with_schema(DATA_SCHEMA, "application/xml"),
            &accepted
        )
        .is_some(),
        "the media type is part of the schema"
    );
    assert_eq!(
        check_schema_accepted(&serde_json::json!({"contentStructure": {}}), &accepted),
        None
    );
}

#[test]
fn data_is_validated_against_a_registered_schema_without_echoing_values() {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["familienname", "geburtsdatum"],
        "properties": {
            "familienname": {"type": "string", "maxLength": 5},
            "geburtsdatum": {"type": "string", "format": "date"}
        },
        "additionalProperties": false
    });
    let validator = compile_schema(&schema).unwrap();
    let known = || {
        Some(KnownSchema {
            sha512: "abc",
            validator: &validator,
        })
    };
    let meta = metadata_with_schema(DATA_SCHEMA, "application/json");

    let (v, p) = check_data(
        &meta,
        br#"{"familienname":"Meyer","geburtsdatum":"1990-02-03"}"#,
        known(),
    );
    assert_eq!(p, None);
    assert_eq!(v.to_json()["valid"], true);
    assert_eq!(v.to_json()["schemaSha512"], "abc");

    let (v, p) = check_data(
        &meta,
        br#"{"familienname":"Mustermann","geburtsdatum":"31.12.1990","x":1}"#,
        known(),
    );
    let p = p.unwrap();
    assert_eq!(p.reason, Reason::SchemaViolation);
    assert_eq!(p.instance, "data");
    assert!(p.detail.contains("/familienname"), "{}", p.detail);
    assert!(
        !p.detail.contains("Mustermann") && !p.detail.contains("31.12.1990"),
        "no values: {}",
        p.detail
    );
    assert_eq!(v.to_json()["valid"], false);

    let (v, p) = check_data(&meta, b"{}", None);
    assert_eq!(p, None, "an unknown schema is no reason to reject");
    assert_eq!(v.to_json()["valid"], serde_json::Value::Null);
    let (v, p) = check_data(
        &metadata_with_schema(DATA_SCHEMA, "application/xml"),
        b"<a/>",
        known(),
    );
    assert_eq!(p, None);
    assert!(v.to_json()["note"].as_str().unwrap().contains("XML"));
}

#[test]
fn schemas_that_cannot_be_used_are_refused_with_the_reason() {
    assert!(compile_schema(&serde_json::json!("string")).is_err());
    assert!(compile_schema(&serde_json::json!({"type": "no-such-type"})).is_err());
    let e = compile_schema(&serde_json::json!({"$ref": "https://elsewhere.example/s.json"}))
        .unwrap_err();
    assert!(!e.is_empty());
}
