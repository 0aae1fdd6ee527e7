//! The application services against real databases (SQLite and PostgreSQL).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use app::{App, RuleInput, Settings};
use domain::{Ars, AuthorityKind, Leistungsschluessel};
use store::testing::{TestDb, backends, fresh};

fn ars(s: &str) -> Ars {
    Ars::parse(s).unwrap()
}
fn key(s: &str) -> Leistungsschluessel {
    Leistungsschluessel::parse(s).unwrap()
}

async fn open(db: &TestDb) -> Arc<App> {
    let kek = crypto::Kek::generate();
    app::install_routing_key(db.store(), &kek, crypto::testkey::shared())
        .await
        .unwrap();
    App::open(
        db.store().clone(),
        kek,
        Settings::new("https://rathaus.example"),
    )
    .await
    .unwrap()
}

fn responsible(app: &App, service: &str, area: &str) -> Vec<String> {
    let dir = app.directory();
    dir.resolve(&key(service), &ars(area))
        .iter()
        .map(|r| r.authority.ars.to_string())
        .collect()
}

#[tokio::test]
async fn demo_directory_answers_the_finder_questions() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        app.seed_demo().await.unwrap();
        let dir = app.directory();
        assert_eq!(
            dir.authorities()
                .filter(|a| a.kind != AuthorityKind::Mitgliedsgemeinde)
                .count(),
            470
        );
        assert_eq!(dir.services().len(), 493);
        drop(dir);

        // Wohnsitz Anmeldung: the Samtgemeinde for its member, the city for Hannover.
        assert_eq!(
            responsible(&app, "99115005104000", "032575403006"),
            ["032575403"]
        );
        assert_eq!(
            responsible(&app, "99115005104000", "032410001001"),
            ["032410001"]
        );
        // A member municipality the directory does not list resolves by its prefix.
        assert_eq!(
            responsible(&app, "99115005104000", "032575403004"),
            ["032575403"]
        );
        // Kreisfreie Stadt: its own Gemeindeverband.
        assert_eq!(
            responsible(&app, "99115005104000", "031010000000"),
            ["03101"]
        );
        // Adoption (Jugendamt): the Landkreis, except in Göttingen and Hannover.
        assert_eq!(
            responsible(&app, "99013001024000", "031590016016"),
            ["031590016"]
        );
        assert_eq!(
            responsible(&app, "99013001024000", "032410001001"),
            ["032410001"]
        );
        assert_eq!(
            responsible(&app, "99013001024000", "032575403006"),
            ["03257"]
        );
        // A gemeindefreies Gebiet has no administration: the Landkreis acts.
        assert_eq!(
            responsible(&app, "99115005104000", "031519501000"),
            ["03151"]
        );
        // A coarse area: every responsible authority inside, Hannover's exception included.
        let region = responsible(&app, "99013001024000", "03241");
        assert_eq!(region, ["03241", "032410001"]);
        let kreis = responsible(&app, "99115005104000", "03257");
        assert!(
            kreis.len() > 5 && kreis.iter().all(|a| a.starts_with("03257")),
            "{kreis:?}"
        );
        // Unrouted service or unknown area: nobody.
        assert!(responsible(&app, "99008003001000", "032575403006").is_empty());
        assert!(responsible(&app, "99115005104000", "091620000000").is_empty());

        // Every destination with a responsibility has a signature naming it.
        let dir = app.directory();
        let dest = dir.destination(&ars("032575403")).unwrap();
        let signed = dest.signatures.get("115").expect("Meldewesen signature");
        let jwks: serde_json::Value = serde_json::from_slice(&app.jwks_json()).unwrap();
        let (header, payload) =
            crypto::verify_compact_ps512(&jwks["keys"][0], &signed.signature).unwrap();
        assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["destinationId"], dest.id.to_string());
        assert_eq!(claims["iss"], "https://rathaus.example");
        assert_eq!(claims["submissionHost"], "rathaus.example");
        let text = claims["services"].to_string();
        assert!(
            text.contains("urn:de:fim:leika:leistung:99115005104000"),
            "{text}"
        );
        assert!(
            text.contains("urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:032575403")
        );
        assert!(
            !text.contains("99013"),
            "other groups are signed separately"
        );
        drop(dir);

        // Seeding again changes nothing and signs nothing.
        let generation = db.store().generation().await.unwrap();
        app.seed_demo().await.unwrap();
        assert_eq!(db.store().generation().await.unwrap(), generation);
        // Also when the check runs in full rather than trusting the seed marker.
        db.store()
            .meta_set("demo_directory_seed", "stale")
            .await
            .unwrap();
        app.seed_demo().await.unwrap();
        assert_eq!(db.store().generation().await.unwrap(), generation);
    }
}

#[tokio::test]
async fn rules_validate_and_resign_only_what_changed() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        app.import_areas(app::bundled::GEBIETE, "g.csv", None)
            .await
            .unwrap();
        app.import_services(app::bundled::LEIKA).await.unwrap();

        let input =
            |service: &str, area: &str, authority: Option<&str>, level: Option<&str>| RuleInput {
                service: service.into(),
                area: area.into(),
                authority: authority.map(Into::into),
                level: level.map(Into::into),
                note: None,
            };
        let bad = [
            (input("123", "03", None, Some("kreis")), "service"),
            (
                input("99999999999999", "03", None, Some("kreis")),
                "service",
            ),
            (input("99115005104000", "0325", None, Some("kreis")), "area"),
            (
                input("99115005104000", "03", Some("099999999"), None),
                "authority",
            ),
            (input("99115005104000", "03", None, Some("bund")), "level"),
        ];
        for (rule, field) in bad {
            match app.add_rules(&[rule], "t", false).await {
                Err(app::AppError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
        assert!(matches!(
            app.add_rules(
                &[input("99115005104000", "03", Some("03257"), Some("kreis"))],
                "t",
                false
            )
            .await,
            Err(app::AppError::Invalid(_))
        ));

        let added = app
            .add_rules(
                &[input("99115005104000", "03257", Some("032570000000"), None)],
                "t",
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            responsible(&app, "99115005104000", "032575403006"),
            ["03257"]
        );
        let sig = app
            .directory()
            .destination(&ars("03257"))
            .unwrap()
            .signatures["115"]
            .clone();
        // A rule elsewhere leaves this signature alone.
        app.add_rules(
            &[input(
                "99115005104000",
                "03241",
                None,
                Some("gemeindeverband"),
            )],
            "t",
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            app.directory()
                .destination(&ars("03257"))
                .unwrap()
                .signatures["115"],
            sig
        );
        assert!(
            app.directory()
                .destination(&ars("032410001"))
                .unwrap()
                .signatures
                .contains_key("115")
        );
        // Deleting the rule removes what it signed.
        app.delete_rule(added[0].id, "t").await.unwrap();
        assert!(
            app.directory()
                .destination(&ars("03257"))
                .unwrap()
                .signatures
                .is_empty()
        );
        assert!(responsible(&app, "99115005104000", "032575403006").is_empty());
        assert!(matches!(
            app.delete_rule(added[0].id, "t").await,
            Err(app::AppError::NotFound(_))
        ));

        // CSV import, all or nothing.
        let csv = "leistungsschluessel,gebiet_ars,zustaendig_ars,ebene\n99115005104000,03257,,gemeindeverband\n99115005070000,03257,03257,\n";
        assert_eq!(
            app.import_rules_csv(csv.as_bytes(), "t", false)
                .await
                .unwrap(),
            2
        );
        let broken = "leistungsschluessel,gebiet_ars,zustaendig_ars,ebene\n99115005011000,03257,,kreis\n99115005011000,3,,kreis\n";
        let err = app
            .import_rules_csv(broken.as_bytes(), "t", false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("rule 2"), "{err}");
        assert!(
            responsible(&app, "99115005011000", "03257").is_empty(),
            "nothing of a broken batch"
        );
    }
}

#[tokio::test]
async fn a_node_with_another_key_encryption_key_refuses_to_start() {
    for backend in backends() {
        let db = fresh(backend).await;
        let a = open(&db).await;
        let kek = crypto::Kek::generate();
        // The second node has a different key-encryption key: it must refuse, clearly.
        let err = App::open(
            db.store().clone(),
            kek,
            Settings::new("https://rathaus.example"),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("RATHAUS_KEY_ENCRYPTION_KEY"),
            "{err}"
        );
        a.import_areas(app::bundled::GEBIETE, "g.csv", None)
            .await
            .unwrap();
        assert_eq!(a.directory().authority_count(), 470);
    }
}
