//! The storage contract: every test runs against SQLite and, where configured, PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use domain::{Ars, AuthorityKind, Leistungsschluessel, ResponsibleLevel};
use store::testing::{backends, fresh};
use store::{Backend, StoreError};
use verzeichnis::{Rule, RuleTarget, gebiete};

const GEBIETE: &[u8] = include_bytes!("../../../data/niedersachsen-gebiete-2017.csv");
const LEIKA: &[u8] = include_bytes!("../../../data/leika-sample.csv");

fn ars(s: &str) -> Ars {
    Ars::parse(s).unwrap()
}

fn key(s: &str) -> Leistungsschluessel {
    Leistungsschluessel::parse(s).unwrap()
}

async fn each_backend<F, Fut>(test: F)
where
    F: Fn(store::testing::TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        test(fresh(backend).await).await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_ready() {
    each_backend(|db| async move {
        assert!(
            db.store().migrate().await.unwrap().is_empty(),
            "second run applies nothing"
        );
        db.store().check_ready().await.unwrap();
        assert_eq!(db.store().generation().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn area_import_is_idempotent_and_keeps_history() {
    each_backend(|db| async move {
        let s = db.store();
        let rows = gebiete::parse(GEBIETE).unwrap();
        assert_eq!(rows.len(), 470);
        let plan = gebiete::plan(&[], &rows, &HashMap::new());
        let summary = s
            .apply_area_import(&plan, "gebiete.csv", "x")
            .await
            .unwrap();
        assert_eq!(summary.inserted, 470);
        assert_eq!(summary.destinations_created, 470);
        let stored = s.load_authorities().await.unwrap();
        assert_eq!(stored.len(), 470);
        let g1 = s.generation().await.unwrap();

        let again = gebiete::plan(&stored, &rows, &HashMap::new());
        assert!(again.is_empty());
        s.apply_area_import(&again, "gebiete.csv", "x")
            .await
            .unwrap();
        assert_eq!(
            s.generation().await.unwrap(),
            g1,
            "nothing changed, nothing bumped"
        );

        // A merger: Samtgemeinde Nenndorf leaves, its successor is the Landkreis (for the test).
        let fewer: Vec<_> = rows
            .iter()
            .filter(|r| r.ars != ars("032575403"))
            .cloned()
            .collect();
        let succ = HashMap::from([(ars("032575403"), ars("03257"))]);
        let merged = gebiete::plan(&stored, &fewer, &succ);
        let summary = s
            .apply_area_import(&merged, "newer.csv", "y")
            .await
            .unwrap();
        assert_eq!(summary.deactivated, 1);
        let nenndorf = s.authority(&ars("032575403")).await.unwrap().unwrap();
        assert!(!nenndorf.active);
        assert_eq!(nenndorf.successor, Some(ars("03257")));
        let history = s.authority_history(&ars("032575403")).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].2, "deactivate");
        assert!(history[1].3.as_deref().unwrap().contains("\"active\":true"));
    })
    .await;
}

#[tokio::test]
async fn services_rules_and_destinations() {
    each_backend(|db| async move {
        let s = db.store();
        let rows = gebiete::parse(GEBIETE).unwrap();
        s.apply_area_import(&gebiete::plan(&[], &rows, &HashMap::new()), "g", "x")
            .await
            .unwrap();
        let services = verzeichnis::catalogue::parse(LEIKA).unwrap();
        assert_eq!(
            s.upsert_services(&services, false).await.unwrap(),
            (services.len(), 0)
        );
        assert_eq!(s.upsert_services(&services, false).await.unwrap(), (0, 0));
        assert_eq!(s.load_services().await.unwrap().len(), services.len());

        let level = Rule {
            id: uuid::Uuid::new_v4(),
            service: key("99115005104000"),
            area: ars("03"),
            target: RuleTarget::Level(ResponsibleLevel::Gemeindeverband),
            note: Some("Meldewesen".into()),
        };
        let explicit = Rule {
            id: uuid::Uuid::new_v4(),
            service: key("99102013002000"),
            area: ars("032410001"),
            target: RuleTarget::Authority(ars("032410001")),
            note: None,
        };
        assert_eq!(
            s.insert_rules(&[level.clone(), explicit.clone()], "test", false)
                .await
                .unwrap(),
            2
        );
        let dup = Rule {
            id: uuid::Uuid::new_v4(),
            ..level.clone()
        };
        let err = s
            .insert_rules(std::slice::from_ref(&dup), "test", false)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // Nothing of a failed batch is kept.
        assert_eq!(s.rule_count().await.unwrap(), 2);
        assert_eq!(
            s.insert_rules(&[dup], "test", true).await.unwrap(),
            0,
            "same target: no change"
        );

        let unknown_target = Rule {
            id: uuid::Uuid::new_v4(),
            service: key("99115005104000"),
            area: ars("03257"),
            target: RuleTarget::Authority(ars("099999999")),
            note: None,
        };
        assert!(matches!(
            s.insert_rules(&[unknown_target], "t", false)
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        let loaded = s.load_rules().await.unwrap();
        assert_eq!(loaded.len(), 2);
        assert!(loaded.contains(&level) && loaded.contains(&explicit));
        assert_eq!(
            s.delete_rule(explicit.id, "test").await.unwrap(),
            Some(explicit.clone())
        );
        assert_eq!(s.delete_rule(explicit.id, "test").await.unwrap(), None);

        let dests = s.load_destinations().await.unwrap();
        assert_eq!(dests.len(), 470);
        let nenndorf = ars("032575403");
        let signed = verzeichnis::SignedScope {
            signature: "a.b.c".into(),
            claims_hash: "h".into(),
        };
        s.save_signatures(&[(nenndorf.clone(), "115".into(), Some(signed.clone()))])
            .await
            .unwrap();
        let find = |d: Vec<verzeichnis::DestinationRecord>| {
            d.into_iter().find(|d| d.authority == nenndorf).unwrap()
        };
        let d = find(s.load_destinations().await.unwrap());
        assert_eq!(d.signatures.get("115"), Some(&signed));
        assert_eq!(d.id, domain::DestinationId::for_authority(&nenndorf));
        s.save_signatures(&[(nenndorf.clone(), "115".into(), None)])
            .await
            .unwrap();
        assert!(
            find(s.load_destinations().await.unwrap())
                .signatures
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn details_legal_pages_feedback_keys() {
    each_backend(|db| async move {
        let s = db.store();
        let rows = gebiete::parse(GEBIETE).unwrap();
        s.apply_area_import(&gebiete::plan(&[], &rows, &HashMap::new()), "g", "x")
            .await
            .unwrap();
        let a = ars("032575403");
        let mut details = verzeichnis::AuthorityDetails {
            demo: true,
            ..Default::default()
        };
        details.opening_hours.push("Mo 8–12".into());
        s.update_authority_details(&a, &details, "admin")
            .await
            .unwrap();
        assert_eq!(s.authority(&a).await.unwrap().unwrap().details, details);
        assert!(matches!(
            s.update_authority_details(&ars("099999999"), &details, "admin")
                .await,
            Err(StoreError::NotFound(_))
        ));

        s.set_legal_page(&a, "impressum", "de", "Demo", true, true)
            .await
            .unwrap();
        s.set_legal_page(&a, "impressum", "de", "Overwritten?", true, true)
            .await
            .unwrap();
        assert_eq!(
            s.legal_page(&a, "impressum", "de")
                .await
                .unwrap()
                .unwrap()
                .content,
            "Demo"
        );
        s.set_legal_page(&a, "impressum", "de", "Echt", false, false)
            .await
            .unwrap();
        let page = s.legal_page(&a, "impressum", "de").await.unwrap().unwrap();
        assert_eq!((page.content.as_str(), page.demo), ("Echt", false));

        let id = s
            .add_feedback(&a, Some("Erika"), None, "Kontrast zu gering", Some("/x"))
            .await
            .unwrap();
        let list = s.list_feedback(Some(&a), 10, 0).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, id);
        assert_eq!(s.list_feedback(None, 10, 0).await.unwrap().len(), 1);
        assert!(
            s.add_feedback(&ars("099999999"), None, None, "x", None)
                .await
                .is_err()
        );

        let key = store::StoredKey {
            kid: "k1".into(),
            wrapped_pkcs8: vec![1, 2, 3],
            cert_der: vec![4, 5],
        };
        s.insert_signing_key("routing", &key).await.unwrap();
        let keys = s.signing_keys("routing").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].wrapped_pkcs8, vec![1, 2, 3]);
        assert!(s.signing_keys("other").await.unwrap().is_empty());
        s.meta_set("x", "1").await.unwrap();
        s.meta_set("x", "2").await.unwrap();
        assert_eq!(s.meta_get("x").await.unwrap().as_deref(), Some("2"));
        let _ = AuthorityKind::Land;
        let _ = Backend::Sqlite;
    })
    .await;
}
