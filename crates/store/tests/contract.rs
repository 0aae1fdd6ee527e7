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

// ---------------------------------------------------------------------------------------------
// Servicekonto: accounts, tokens, sessions, second factors, throttling, outbox

use store::{NewAccount, NewMail, SessionRecord};
use time::{Duration, OffsetDateTime};

/// A fixed moment, so that every expiry in these tests is exact.
const T0: OffsetDateTime = time::macros::datetime!(2030-03-04 12:00:00 UTC);

fn account<'a>(id: &'a str, email: &'a str, postfach_ref: &'a str) -> NewAccount<'a> {
    NewAccount {
        id,
        email,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        lang: "de",
        postfach_ref,
    }
}

/// A full session of `account_id` created at `now`: 30 minutes idle, 12 hours at most.
fn session_at(account_id: &str, public_id: &str, now: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        public_id: public_id.into(),
        account_id: account_id.into(),
        stage: "active".into(),
        trust_level: 1,
        auth_methods: "pwd".into(),
        created_at: store::ts(now),
        authenticated_at: store::ts(now),
        last_seen_at: store::ts(now),
        idle_expires_at: store::ts(now + Duration::minutes(30)),
        expires_at: store::ts(now + Duration::hours(12)),
        ip: Some("192.0.2.1".into()),
        user_agent: Some("Testbrowser/1.0".into()),
    }
}

#[tokio::test]
async fn accounts_are_unique_by_email_and_found_by_every_key() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        let dup = s
            .create_account(&account("a2", "erika@example.org", "ref-2"), T0)
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        assert!(s.account_by_id("a2").await.unwrap().is_none());

        let a = s
            .account_by_email("erika@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.id.as_str(), a.postfach_ref.as_str()), ("a1", "ref-1"));
        assert_eq!(a.lang, "de");
        assert_eq!(a.created_at, store::ts(T0));
        assert!(a.email_verified_at.is_none());
        assert!(a.password_hash.is_some());
        assert!(a.totp_secret.is_none() && a.totp_last_step.is_none());
        assert_eq!(
            s.account_by_id("a1").await.unwrap().unwrap().email,
            "erika@example.org"
        );
        assert_eq!(
            s.account_by_postfach_ref("ref-1")
                .await
                .unwrap()
                .unwrap()
                .id,
            "a1"
        );
        assert!(
            s.account_by_email("max@example.org")
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.account_by_postfach_ref("ref-2").await.unwrap().is_none());

        // Verification keeps the first moment; a changed address is taken as verified.
        s.set_email_verified("a1", T0 + Duration::minutes(1))
            .await
            .unwrap();
        s.set_email_verified("a1", T0 + Duration::minutes(2))
            .await
            .unwrap();
        let a = s.account_by_id("a1").await.unwrap().unwrap();
        assert_eq!(
            a.email_verified_at,
            Some(store::ts(T0 + Duration::minutes(1)))
        );
        s.create_account(&account("a2", "max@example.org", "ref-2"), T0)
            .await
            .unwrap();
        assert!(matches!(
            s.set_email("a2", "erika@example.org", T0).await,
            Err(StoreError::Conflict(_))
        ));
        s.set_email("a2", "max.neu@example.org", T0 + Duration::hours(1))
            .await
            .unwrap();
        let b = s
            .account_by_email("max.neu@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.id, "a2");
        assert_eq!(
            b.email_verified_at,
            Some(store::ts(T0 + Duration::hours(1)))
        );
        assert!(
            s.account_by_email("max@example.org")
                .await
                .unwrap()
                .is_none()
        );

        s.set_password_hash("a2", "new-hash", T0).await.unwrap();
        s.set_lang("a2", "en").await.unwrap();
        let b = s.account_by_id("a2").await.unwrap().unwrap();
        assert_eq!(b.password_hash.as_deref(), Some("new-hash"));
        assert_eq!(b.lang, "en");
    })
    .await;
}

#[tokio::test]
async fn account_tokens_are_used_once_for_their_purpose_before_they_expire() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        let expires = T0 + Duration::hours(1);
        s.insert_account_token("h-verify", "a1", "verify", None, expires, T0)
            .await
            .unwrap();
        s.insert_account_token(
            "h-change",
            "a1",
            "email_change",
            Some("neu@example.org"),
            expires,
            T0,
        )
        .await
        .unwrap();
        s.insert_account_token("h-old", "a1", "reset", None, expires, T0)
            .await
            .unwrap();
        assert!(
            s.insert_account_token("h-x", "nobody", "verify", None, expires, T0)
                .await
                .is_err(),
            "a token needs its account"
        );

        assert!(
            s.account_token_valid("h-verify", "verify", T0)
                .await
                .unwrap()
        );
        assert!(
            !s.account_token_valid("h-verify", "reset", T0)
                .await
                .unwrap()
        );
        assert!(
            !s.account_token_valid("h-unknown", "verify", T0)
                .await
                .unwrap()
        );
        assert_eq!(
            s.account_token_owner("h-verify").await.unwrap().as_deref(),
            Some("a1")
        );
        assert!(s.account_token_owner("h-unknown").await.unwrap().is_none());

        // Wrong purpose: refused, and not used up by the attempt.
        assert!(
            s.consume_account_token("h-verify", "reset", T0)
                .await
                .unwrap()
                .is_none()
        );
        let used = s
            .consume_account_token("h-verify", "verify", T0 + Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(used, Some(("a1".to_owned(), None)));
        assert!(
            s.consume_account_token("h-verify", "verify", T0 + Duration::minutes(5))
                .await
                .unwrap()
                .is_none(),
            "used once only"
        );
        assert!(
            !s.account_token_valid("h-verify", "verify", T0)
                .await
                .unwrap()
        );
        // A used token still names its owner (the reset form needs it before using it).
        assert_eq!(
            s.account_token_owner("h-verify").await.unwrap().as_deref(),
            Some("a1")
        );

        assert_eq!(
            s.consume_account_token("h-change", "email_change", T0)
                .await
                .unwrap(),
            Some(("a1".to_owned(), Some("neu@example.org".to_owned())))
        );

        // Expired: at the expiry moment and after it.
        assert!(
            !s.account_token_valid("h-old", "reset", expires)
                .await
                .unwrap()
        );
        assert!(
            s.consume_account_token("h-old", "reset", expires)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.consume_account_token("h-old", "reset", expires + Duration::days(1))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.consume_account_token("h-old", "reset", expires - Duration::seconds(1))
                .await
                .unwrap()
                .is_some(),
            "just before expiry it still works"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_consumption_is_atomic() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        s.insert_account_token("h", "a1", "reset", None, T0 + Duration::hours(1), T0)
            .await
            .unwrap();
        let tries = (0..8).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.consume_account_token("h", "reset", T0).await })
        });
        let mut won = 0;
        for t in tries {
            if t.await.unwrap().unwrap().is_some() {
                won += 1;
            }
        }
        assert_eq!(won, 1);
    })
    .await;
}

#[tokio::test]
async fn sessions_expire_rotate_and_are_revoked() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        s.create_account(&account("a2", "max@example.org", "ref-2"), T0)
            .await
            .unwrap();
        s.create_session("tok-1", &session_at("a1", "p1", T0))
            .await
            .unwrap();
        assert!(
            s.create_session("tok-1", &session_at("a1", "p-other", T0))
                .await
                .is_err(),
            "a token hash is unique"
        );

        let live = s.session("tok-1", T0).await.unwrap().unwrap();
        assert_eq!(live.public_id, "p1");
        assert_eq!(live.account_id, "a1");
        assert_eq!(live.stage, "active");
        assert_eq!(live.trust_level, 1);
        assert_eq!(live.auth_methods, "pwd");
        assert_eq!(live.ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(live.user_agent.as_deref(), Some("Testbrowser/1.0"));
        assert!(s.session("tok-unknown", T0).await.unwrap().is_none());

        // Idle expiry: dead at the idle deadline; activity before it moves the deadline.
        assert!(
            s.session("tok-1", T0 + Duration::minutes(30))
                .await
                .unwrap()
                .is_none()
        );
        s.touch_session(
            "tok-1",
            T0 + Duration::minutes(20),
            T0 + Duration::minutes(50),
        )
        .await
        .unwrap();
        let touched = s
            .session("tok-1", T0 + Duration::minutes(40))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(touched.last_seen_at, store::ts(T0 + Duration::minutes(20)));
        assert_eq!(
            touched.idle_expires_at,
            store::ts(T0 + Duration::minutes(50))
        );
        // A session that has ended stays ended: touching it afterwards does not revive it.
        s.touch_session("tok-1", T0 + Duration::hours(1), T0 + Duration::hours(2))
            .await
            .unwrap();
        assert!(
            s.session("tok-1", T0 + Duration::minutes(70))
                .await
                .unwrap()
                .is_none()
        );

        // Absolute expiry: however active, the session ends after 12 hours.
        let t = T0 + Duration::hours(11) + Duration::minutes(50);
        s.create_session("tok-2", &session_at("a1", "p2", T0))
            .await
            .unwrap();
        s.touch_session("tok-2", T0, t + Duration::minutes(30))
            .await
            .unwrap();
        assert!(s.session("tok-2", t).await.unwrap().is_some());
        assert!(
            s.session("tok-2", T0 + Duration::hours(12))
                .await
                .unwrap()
                .is_none()
        );

        // Rotation: the old token is dead, the new one carries the new state.
        s.create_session("tok-3", &session_at("a1", "p3", T0))
            .await
            .unwrap();
        let t1 = T0 + Duration::minutes(1);
        assert!(
            s.rotate_session(
                "tok-3",
                "tok-3b",
                "active",
                2,
                "pwd,totp",
                t1,
                t1 + Duration::minutes(30)
            )
            .await
            .unwrap()
        );
        assert!(s.session("tok-3", t1).await.unwrap().is_none());
        let rotated = s.session("tok-3b", t1).await.unwrap().unwrap();
        assert_eq!(rotated.public_id, "p3", "the same session, a new token");
        assert_eq!(rotated.trust_level, 2);
        assert_eq!(rotated.auth_methods, "pwd,totp");
        assert_eq!(rotated.authenticated_at, store::ts(t1));
        assert_eq!(rotated.last_seen_at, store::ts(t1));
        assert_eq!(rotated.created_at, store::ts(T0));
        assert!(
            !s.rotate_session("tok-3", "tok-3c", "active", 2, "pwd", t1, t1)
                .await
                .unwrap(),
            "the old token cannot be rotated again"
        );
        s.set_session_expiry("tok-3b", T0 + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(
            s.session("tok-3b", t1).await.unwrap().unwrap().expires_at,
            store::ts(T0 + Duration::days(1))
        );
        // An ended session cannot be rotated back to life.
        let late = T0 + Duration::hours(3);
        assert!(
            !s.rotate_session("tok-3b", "tok-3d", "active", 2, "pwd", late, late)
                .await
                .unwrap()
        );
        assert!(s.session("tok-3d", late).await.unwrap().is_none());

        // Listing: live sessions of the account only, most recently used first.
        s.create_session("tok-4", &session_at("a1", "p4", t1 + Duration::minutes(5)))
            .await
            .unwrap();
        s.create_session("tok-5", &session_at("a2", "p5", t1))
            .await
            .unwrap();
        let t2 = t1 + Duration::minutes(10);
        let listed: Vec<String> = s
            .list_sessions("a1", t2)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.public_id)
            .collect();
        // p1 was last seen at +20 min, p4 at +6, p3 at +1, p2 at +0; p5 is another account's.
        assert_eq!(listed, ["p1", "p4", "p3", "p2"]);

        // Revocation by public id: only the account's own, only once.
        assert!(!s.revoke_session("a2", "p4", t2).await.unwrap());
        assert!(s.revoke_session("a1", "p4", t2).await.unwrap());
        assert!(!s.revoke_session("a1", "p4", t2).await.unwrap());
        assert!(s.session("tok-4", t2).await.unwrap().is_none());
        assert!(
            !s.rotate_session("tok-4", "tok-4b", "active", 1, "pwd", t2, t2)
                .await
                .unwrap(),
            "a revoked session cannot be rotated"
        );

        // Revoking the others keeps the named one and leaves other accounts alone.
        s.create_session("tok-6", &session_at("a1", "p6", t2))
            .await
            .unwrap();
        s.create_session("tok-7", &session_at("a1", "p7", t2))
            .await
            .unwrap();
        assert_eq!(
            s.revoke_other_sessions("a1", Some("p6"), t2).await.unwrap(),
            4,
            "p1, p2, p3 and p7"
        );
        let listed: Vec<String> = s
            .list_sessions("a1", t2)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.public_id)
            .collect();
        assert_eq!(listed, ["p6"]);
        assert!(s.session("tok-5", t2).await.unwrap().is_some());
        s.revoke_session_by_token("tok-6", t2).await.unwrap();
        assert!(s.session("tok-6", t2).await.unwrap().is_none());
        s.create_session("tok-8", &session_at("a2", "p8", t2))
            .await
            .unwrap();
        assert_eq!(s.revoke_other_sessions("a2", None, t2).await.unwrap(), 2);
        assert!(s.list_sessions("a2", t2).await.unwrap().is_empty());

        // Ended sessions are purged a day after they ended.
        assert_eq!(s.purge_sessions(t2).await.unwrap(), 0);
        assert_eq!(s.purge_sessions(T0 + Duration::days(3)).await.unwrap(), 8);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totp_steps_and_recovery_codes_are_used_once() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        assert!(
            !s.use_totp_step("a1", 100).await.unwrap(),
            "no TOTP, no step"
        );
        let codes = ["c1".to_owned(), "c2".to_owned(), "c3".to_owned()];
        s.set_totp("a1", Some(&[1, 2, 3]), &codes, T0)
            .await
            .unwrap();
        let a = s.account_by_id("a1").await.unwrap().unwrap();
        assert_eq!(a.totp_secret.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(s.unused_recovery_codes("a1").await.unwrap(), 3);

        assert!(s.use_totp_step("a1", 100).await.unwrap());
        assert!(!s.use_totp_step("a1", 100).await.unwrap(), "same step");
        assert!(!s.use_totp_step("a1", 99).await.unwrap(), "earlier step");
        assert!(s.use_totp_step("a1", 101).await.unwrap());
        assert_eq!(
            s.account_by_id("a1").await.unwrap().unwrap().totp_last_step,
            Some(101)
        );
        assert!(
            !s.use_totp_step("nobody", 200).await.unwrap(),
            "unknown account"
        );

        // Two nodes checking the same code at once: exactly one accepts it.
        let tries = (0..8).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_totp_step("a1", 102).await })
        });
        let mut accepted = 0;
        for t in tries {
            if t.await.unwrap().unwrap() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1);

        assert!(s.use_recovery_code("a1", "c2", T0).await.unwrap());
        assert!(!s.use_recovery_code("a1", "c2", T0).await.unwrap(), "once");
        assert!(!s.use_recovery_code("a1", "c9", T0).await.unwrap());
        assert_eq!(s.unused_recovery_codes("a1").await.unwrap(), 2);

        // Setting TOTP again replaces the codes (and forgets the last step of the old secret).
        let new_codes = ["n1".to_owned(), "n2".to_owned()];
        s.set_totp("a1", Some(&[9, 9]), &new_codes, T0)
            .await
            .unwrap();
        assert_eq!(s.unused_recovery_codes("a1").await.unwrap(), 2);
        assert!(!s.use_recovery_code("a1", "c1", T0).await.unwrap());
        assert!(s.use_recovery_code("a1", "n1", T0).await.unwrap());
        let a = s.account_by_id("a1").await.unwrap().unwrap();
        assert_eq!(a.totp_secret.as_deref(), Some(&[9u8, 9][..]));
        assert_eq!(a.totp_last_step, None);
        assert!(s.use_totp_step("a1", 50).await.unwrap());

        // Turning it off removes secret and codes.
        s.set_totp("a1", None, &[], T0).await.unwrap();
        let a = s.account_by_id("a1").await.unwrap().unwrap();
        assert!(a.totp_secret.is_none() && a.totp_last_step.is_none());
        assert_eq!(s.unused_recovery_codes("a1").await.unwrap(), 0);
        assert!(!s.use_recovery_code("a1", "n2", T0).await.unwrap());
        assert!(!s.use_totp_step("a1", 500).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_throttle_counts_blocks_and_forgets() {
    each_backend(|db| async move {
        let s = db.store();
        let forget = Duration::hours(24);
        // Two free failures, then one more minute per failure.
        let block = |n: u32| {
            if n <= 2 {
                Duration::ZERO
            } else {
                Duration::minutes(i64::from(n - 2))
            }
        };
        assert!(
            s.throttle_blocked_until(&["k"], T0)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(s.throttle_failure("k", T0, forget, block).await.unwrap(), 1);
        let t = T0 + Duration::seconds(10);
        assert_eq!(s.throttle_failure("k", t, forget, block).await.unwrap(), 2);
        assert!(
            s.throttle_blocked_until(&["k"], t).await.unwrap().is_none(),
            "free failures block nothing"
        );
        assert_eq!(s.throttle_failure("k", t, forget, block).await.unwrap(), 3);
        let until = store::ts(t + Duration::minutes(1));
        assert_eq!(
            s.throttle_blocked_until(&["k"], t).await.unwrap(),
            Some(until.clone())
        );
        assert_eq!(
            s.throttle_blocked_until(&["unknown", "k"], t + Duration::seconds(59))
                .await
                .unwrap(),
            Some(until.clone())
        );
        assert!(
            s.throttle_blocked_until(&["k"], t + Duration::minutes(1))
                .await
                .unwrap()
                .is_none(),
            "the block ends"
        );

        // Of several keys, the latest block counts.
        for _ in 0..4 {
            s.throttle_failure("ip", t, forget, block).await.unwrap();
        }
        assert_eq!(
            s.throttle_blocked_until(&["k", "ip"], t).await.unwrap(),
            Some(store::ts(t + Duration::minutes(2)))
        );
        assert_eq!(
            s.throttle_blocked_until(&["ip", "k"], t).await.unwrap(),
            Some(store::ts(t + Duration::minutes(2)))
        );

        // Failures older than `forget_after` start over; so does a cleared key.
        let later = t + Duration::hours(24) + Duration::seconds(1);
        assert_eq!(
            s.throttle_failure("k", later, forget, block).await.unwrap(),
            1
        );
        assert_eq!(
            s.throttle_failure("k", later, forget, block).await.unwrap(),
            2
        );
        s.throttle_clear("k").await.unwrap();
        assert_eq!(
            s.throttle_failure("k", later, forget, block).await.unwrap(),
            1
        );
        assert_eq!(
            s.throttle_failure("ip", t + Duration::hours(23), forget, block)
                .await
                .unwrap(),
            5,
            "within the window the count goes on"
        );

        // Failures on several nodes at once are all counted.
        let tries: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.throttle_failure("busy", T0, Duration::hours(24), |_| Duration::ZERO)
                        .await
                })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tries {
            seen.push(t.await.unwrap().unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=16).collect::<Vec<u32>>());
    })
    .await;
}

#[tokio::test]
async fn deleting_an_account_removes_what_hangs_on_it() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        s.create_account(&account("a2", "max@example.org", "ref-2"), T0)
            .await
            .unwrap();
        for id in ["a1", "a2"] {
            s.create_session(
                &format!("tok-{id}"),
                &session_at(id, &format!("p-{id}"), T0),
            )
            .await
            .unwrap();
            s.insert_account_token(
                &format!("h-{id}"),
                id,
                "verify",
                None,
                T0 + Duration::hours(1),
                T0,
            )
            .await
            .unwrap();
            s.set_totp(id, Some(&[1]), &["code".to_owned()], T0)
                .await
                .unwrap();
            s.add_security_event(Some(id), "login", Some("192.0.2.1"), None, Some("pwd"), T0)
                .await
                .unwrap();
        }
        s.add_security_event(
            Some("a1"),
            "logout",
            None,
            Some("UA"),
            None,
            T0 + Duration::seconds(1),
        )
        .await
        .unwrap();
        let events = s.security_events("a1", 10).await.unwrap();
        assert_eq!(
            events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["logout", "login"],
            "newest first"
        );
        assert_eq!(events[1].ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(events[1].detail.as_deref(), Some("pwd"));
        assert_eq!(events[0].user_agent.as_deref(), Some("UA"));
        assert_eq!(s.security_events("a1", 1).await.unwrap().len(), 1);
        // An event without an account (e.g. "account deleted") is allowed.
        s.add_security_event(None, "account_deleted", None, None, Some("x"), T0)
            .await
            .unwrap();

        s.delete_account("a1").await.unwrap();
        assert!(s.account_by_id("a1").await.unwrap().is_none());
        assert!(
            s.account_by_email("erika@example.org")
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.session("tok-a1", T0).await.unwrap().is_none());
        assert!(s.list_sessions("a1", T0).await.unwrap().is_empty());
        assert!(s.account_token_owner("h-a1").await.unwrap().is_none());
        assert!(s.security_events("a1", 10).await.unwrap().is_empty());
        assert_eq!(s.unused_recovery_codes("a1").await.unwrap(), 0);
        assert!(matches!(
            s.delete_account("a1").await,
            Err(StoreError::NotFound(_))
        ));
        // The address is free again; the other account is untouched.
        s.create_account(&account("a3", "erika@example.org", "ref-3"), T0)
            .await
            .unwrap();
        assert!(s.session("tok-a2", T0).await.unwrap().is_some());
        assert_eq!(
            s.account_token_owner("h-a2").await.unwrap().as_deref(),
            Some("a2")
        );
        assert_eq!(s.security_events("a2", 10).await.unwrap().len(), 1);
        assert_eq!(s.unused_recovery_codes("a2").await.unwrap(), 1);
    })
    .await;
}

fn mail<'a>(recipient: &'a str, purpose: &'a str) -> NewMail<'a> {
    NewMail {
        recipient,
        subject: "Bitte bestätigen Sie Ihre E-Mail-Adresse",
        body_text: "Grüße aus dem Rathaus: https://rathaus.example/konto/bestaetigen?token=x",
        purpose,
    }
}

async fn mail_by_id(s: &store::Store, id: &str) -> store::OutboxMail {
    s.list_mails(1000)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap()
}

#[tokio::test]
async fn outbox_leases_mails_and_records_outcomes() {
    each_backend(|db| async move {
        let s = db.store();
        let lease = Duration::minutes(2);
        let m1 = s
            .enqueue_mail(&mail("erika@example.org", "verify"), T0)
            .await
            .unwrap();
        let m2 = s
            .enqueue_mail(&mail("max@example.org", "reset"), T0 + Duration::seconds(1))
            .await
            .unwrap();
        assert!(
            s.claim_mail(T0 - Duration::seconds(1), lease)
                .await
                .unwrap()
                .is_none(),
            "not due before it was queued"
        );

        let t = T0 + Duration::seconds(2);
        let first = s.claim_mail(t, lease).await.unwrap().unwrap();
        assert_eq!(first.id, m1, "oldest first");
        assert_eq!((first.status.as_str(), first.attempts), ("pending", 1));
        assert_eq!(first.recipient, "erika@example.org");
        assert_eq!(first.subject, "Bitte bestätigen Sie Ihre E-Mail-Adresse");
        assert!(first.body_text.contains("Grüße"));
        assert_eq!(first.purpose, "verify");
        assert_eq!(first.created_at, store::ts(T0));
        let second = s.claim_mail(t, lease).await.unwrap().unwrap();
        assert_eq!(second.id, m2);
        assert!(
            s.claim_mail(t + Duration::minutes(1), lease)
                .await
                .unwrap()
                .is_none(),
            "both are leased"
        );
        // The worker holding m1 died: after the lease, m1 is claimed again.
        let again = s
            .claim_mail(t + lease + Duration::seconds(1), lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.id.as_str(), again.attempts), (m1.as_str(), 2));

        let sent_at = t + Duration::minutes(3);
        s.mail_sent(&m1, sent_at, false).await.unwrap();
        let m = mail_by_id(s, &m1).await;
        assert_eq!(m.status, "sent");
        assert_eq!(m.sent_at, Some(store::ts(sent_at)));
        assert_eq!(m.body_text, "", "the one-time link is gone");
        assert_eq!(m.subject, "Bitte bestätigen Sie Ihre E-Mail-Adresse");
        assert!(m.last_error.is_none());
        s.mail_sent(&m2, sent_at, true).await.unwrap();
        assert!(mail_by_id(s, &m2).await.body_text.contains("Grüße"));
        assert!(
            s.claim_mail(t + Duration::hours(1), lease)
                .await
                .unwrap()
                .is_none(),
            "sent mails are never claimed"
        );

        // Failure: retried at the given time, then given up.
        let m3 = s
            .enqueue_mail(&mail("x@example.org", "verify"), T0)
            .await
            .unwrap();
        let c = s.claim_mail(t, lease).await.unwrap().unwrap();
        assert_eq!(c.id, m3);
        let long_error = "421 Service not available ".repeat(100);
        s.mail_failed(&m3, &long_error, Some(t + Duration::minutes(10)))
            .await
            .unwrap();
        let m = mail_by_id(s, &m3).await;
        assert_eq!((m.status.as_str(), m.attempts), ("pending", 1));
        assert_eq!(m.last_error.as_deref().map(str::len), Some(1000));
        assert!(
            s.claim_mail(t + Duration::minutes(9), lease)
                .await
                .unwrap()
                .is_none(),
            "not before the retry time, although the lease was released"
        );
        let c = s
            .claim_mail(t + Duration::minutes(10), lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.id.as_str(), c.attempts), (m3.as_str(), 2));
        assert!(c.last_error.is_some());
        s.mail_failed(&m3, "550 no such user", None).await.unwrap();
        let m = mail_by_id(s, &m3).await;
        assert_eq!(m.status, "failed");
        assert_eq!(m.last_error.as_deref(), Some("550 no such user"));
        assert!(
            s.claim_mail(t + Duration::days(1), lease)
                .await
                .unwrap()
                .is_none(),
            "given up"
        );

        // Rate-limit counting: per recipient and purpose, strictly after `since`.
        assert_eq!(
            s.count_mails_since("erika@example.org", "verify", T0 - Duration::seconds(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.count_mails_since("erika@example.org", "verify", T0)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.count_mails_since("erika@example.org", "reset", T0 - Duration::hours(1))
                .await
                .unwrap(),
            0
        );
        s.enqueue_mail(
            &mail("erika@example.org", "verify"),
            T0 + Duration::minutes(1),
        )
        .await
        .unwrap();
        assert_eq!(
            s.count_mails_since("erika@example.org", "verify", T0 - Duration::hours(1))
                .await
                .unwrap(),
            2
        );
        let listed = s.list_mails(2).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].created_at, store::ts(T0 + Duration::minutes(1)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_claim_different_mails() {
    each_backend(|db| async move {
        let s = db.store();
        // Open the connections first, so that the workers below really run side by side.
        let warm: Vec<_> = (0..6)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.count_mails_since("x", "y", T0).await })
            })
            .collect();
        for w in warm {
            w.await.unwrap().unwrap();
        }
        for round in 0..5 {
            let now = T0 + Duration::hours(round);
            let mut ids = Vec::new();
            for _ in 0..6 {
                ids.push(
                    s.enqueue_mail(&mail("erika@example.org", "verify"), now)
                        .await
                        .unwrap(),
                );
            }
            let workers: Vec<_> = (0..6)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        s.claim_mail(now + Duration::seconds(1), Duration::minutes(2))
                            .await
                    })
                })
                .collect();
            let mut claimed = Vec::new();
            for w in workers {
                let m = w.await.unwrap().unwrap();
                claimed.push(m.expect("every worker gets a mail while mails are due").id);
            }
            claimed.sort();
            ids.sort();
            assert_eq!(claimed, ids, "each mail exactly once");
            for id in &ids {
                s.mail_sent(id, now, false).await.unwrap();
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Organisations, invitations, the wrapped profile and consents

fn org(id: &str, name: &str, postfach_ref: &str) -> store::OrganisationRecord {
    store::OrganisationRecord {
        id: id.into(),
        name: name.into(),
        postfach_ref: postfach_ref.into(),
        created_at: store::ts(T0),
    }
}

fn invitation<'a>(
    token_hash: &'a str,
    organisation_id: &'a str,
    email: &'a str,
    expires_at: OffsetDateTime,
) -> store::NewInvitation<'a> {
    store::NewInvitation {
        token_hash,
        organisation_id,
        email,
        role: "member",
        postfach_access: true,
        invited_by: Some("a1"),
        expires_at,
    }
}

#[tokio::test]
async fn organisations_keep_an_owner_and_invitations_are_used_once() {
    each_backend(|db| async move {
        let s = db.store();
        for (id, email, r) in [
            ("a1", "erika@example.org", "ref-1"),
            ("a2", "max@example.org", "ref-2"),
            ("a3", "lena@example.org", "ref-3"),
        ] {
            s.create_account(&account(id, email, r), T0).await.unwrap();
        }
        s.create_organisation(&org("o1", "Bäckerei Müller", "org-ref-1"), "a1")
            .await
            .unwrap();
        assert!(matches!(
            s.create_organisation(&org("o2", "Doppelt", "org-ref-1"), "a1")
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(s.organisation("o2").await.unwrap().is_none(), "rolled back");
        assert_eq!(
            s.organisation_by_postfach_ref("org-ref-1")
                .await
                .unwrap()
                .unwrap()
                .name,
            "Bäckerei Müller"
        );
        let m = s.memberships("a1").await.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].role.as_str(), m[0].postfach_access), ("owner", true));
        assert!(s.memberships("a2").await.unwrap().is_empty());

        // Accepted once, only by the invited address, only before it expires.
        s.insert_invitation(
            &invitation("inv-1", "o1", "max@example.org", T0 + Duration::days(7)),
            T0,
        )
        .await
        .unwrap();
        s.insert_invitation(
            &invitation(
                "inv-old",
                "o1",
                "lena@example.org",
                T0 - Duration::seconds(1),
            ),
            T0 - Duration::days(7),
        )
        .await
        .unwrap();
        assert!(matches!(
            s.insert_invitation(&invitation("inv-x", "nope", "x@example.org", T0), T0)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let open = s.open_invitations("o1", T0).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].token_hash, "inv-1");
        assert!(
            s.accept_invitation("inv-1", "a3", "lena@example.org", T0)
                .await
                .unwrap()
                .is_none(),
            "another address"
        );
        assert!(
            s.accept_invitation("inv-old", "a3", "lena@example.org", T0)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        assert_eq!(
            s.accept_invitation("inv-1", "a2", "max@example.org", T0)
                .await
                .unwrap()
                .as_deref(),
            Some("o1")
        );
        assert!(
            s.accept_invitation("inv-1", "a2", "max@example.org", T0)
                .await
                .unwrap()
                .is_none(),
            "used"
        );
        let inv = s.invitation("inv-1").await.unwrap().unwrap();
        assert_eq!(inv.accepted_at, Some(store::ts(T0)));
        assert!(s.open_invitations("o1", T0).await.unwrap().is_empty());
        let member = s.organisation_member("o1", "a2").await.unwrap().unwrap();
        assert_eq!(member.email, "max@example.org");
        assert_eq!(
            (member.role.as_str(), member.postfach_access),
            ("member", true)
        );
        // A second invitation for a member is refused on acceptance and stays unused.
        s.insert_invitation(
            &invitation("inv-2", "o1", "max@example.org", T0 + Duration::days(7)),
            T0,
        )
        .await
        .unwrap();
        assert!(matches!(
            s.accept_invitation("inv-2", "a2", "max@example.org", T0)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            s.invitation("inv-2")
                .await
                .unwrap()
                .unwrap()
                .accepted_at
                .is_none()
        );
        assert!(s.delete_invitation("o1", "inv-2").await.unwrap());
        assert!(!s.delete_invitation("o1", "inv-2").await.unwrap());
        assert!(
            !s.delete_invitation("o1", "inv-1").await.unwrap(),
            "accepted stays"
        );

        // Owners first, then by address.
        let members = s.organisation_members("o1").await.unwrap();
        let emails: Vec<&str> = members.iter().map(|m| m.email.as_str()).collect();
        assert_eq!(emails, ["erika@example.org", "max@example.org"]);
        assert_eq!(
            s.organisation_postfach_refs("a2").await.unwrap(),
            [("org-ref-1".to_owned(), "Bäckerei Müller".to_owned())]
        );
        s.update_member("o1", "a2", "member", false).await.unwrap();
        assert!(s.organisation_postfach_refs("a2").await.unwrap().is_empty());

        // Never the last owner.
        let last = |r: store::Result<()>| {
            assert!(
                matches!(&r, Err(StoreError::Conflict(c)) if c == store::LAST_OWNER),
                "{r:?}"
            );
        };
        last(s.update_member("o1", "a1", "member", true).await);
        last(s.remove_member("o1", "a1").await);
        assert!(matches!(
            s.remove_member("o1", "a3").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.update_member("nope", "a1", "owner", true).await,
            Err(StoreError::NotFound(_))
        ));
        s.update_member("o1", "a2", "owner", true).await.unwrap();
        s.update_member("o1", "a1", "member", true).await.unwrap();
        last(s.remove_member("o1", "a2").await);
        s.remove_member("o1", "a1").await.unwrap();
        assert!(s.memberships("a1").await.unwrap().is_empty());

        // Two owners demoting each other at once: one of them stays owner.
        s.update_member("o1", "a2", "owner", true).await.unwrap();
        s.insert_invitation(
            &invitation("inv-3", "o1", "lena@example.org", T0 + Duration::days(7)),
            T0,
        )
        .await
        .unwrap();
        s.accept_invitation("inv-3", "a3", "lena@example.org", T0)
            .await
            .unwrap()
            .unwrap();
        s.update_member("o1", "a3", "owner", false).await.unwrap();
        let (x, y) = tokio::join!(
            s.update_member("o1", "a2", "member", false),
            s.update_member("o1", "a3", "member", false)
        );
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        let owners = s
            .organisation_members("o1")
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == "owner")
            .count();
        assert_eq!(owners, 1);

        // Deleting an account takes its memberships with it.
        s.delete_account("a3").await.unwrap();
        assert_eq!(s.organisation_members("o1").await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn profiles_are_replaced_and_consents_listed_and_revoked() {
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        assert!(s.profile("a1").await.unwrap().is_none());
        s.put_profile("a1", &[1, 2, 3, 0, 255], T0).await.unwrap();
        s.put_profile("a1", &[9, 8, 7], T0 + Duration::minutes(1))
            .await
            .unwrap();
        let p = s.profile("a1").await.unwrap().unwrap();
        assert_eq!(p.wrapped, [9, 8, 7]);
        assert_eq!(p.updated_at, store::ts(T0 + Duration::minutes(1)));
        assert!(matches!(
            s.put_profile("nobody", &[1], T0).await,
            Err(StoreError::Conflict(_))
        ));

        let consent = |client: &str, name: &str, scopes: &str| store::ConsentRecord {
            client_id: client.into(),
            client_name: name.into(),
            scopes: scopes.into(),
            granted_at: store::ts(T0),
        };
        s.put_consent("a1", &consent("c2", "Wohngeld", "profile"))
            .await
            .unwrap();
        s.put_consent("a1", &consent("c1", "Anwohnerparken", "address"))
            .await
            .unwrap();
        s.put_consent("a1", &consent("c2", "Wohngeld online", "profile address"))
            .await
            .unwrap();
        let list = s.consents("a1").await.unwrap();
        let names: Vec<(&str, &str)> = list
            .iter()
            .map(|c| (c.client_name.as_str(), c.scopes.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("Anwohnerparken", "address"),
                ("Wohngeld online", "profile address")
            ]
        );
        assert_eq!(
            s.consent("a1", "c1").await.unwrap().unwrap().client_name,
            "Anwohnerparken"
        );
        let gone = s.delete_consent("a1", "c1").await.unwrap().unwrap();
        assert_eq!(gone.client_name, "Anwohnerparken");
        assert!(s.delete_consent("a1", "c1").await.unwrap().is_none());
        assert!(s.consent("a1", "c1").await.unwrap().is_none());

        s.delete_account("a1").await.unwrap();
        assert!(s.profile("a1").await.unwrap().is_none());
        assert!(s.consents("a1").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn oidc_codes_refresh_tokens_keys_and_logout_notices() {
    use store::{OidcKeyRecord, RefreshRecord};
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        // A sign-in's refresh family: revoking it ends the family's access tokens too.
        let rt = |hash: &str, family: &str| RefreshRecord {
            token_hash: hash.into(),
            family_id: family.into(),
            client_id: "c1".into(),
            account_id: "a1".into(),
            session_id: Some("sid-1".into()),
            grant_data: "{}".into(),
            expires_at: T0 + Duration::days(30),
        };
        s.insert_refresh_token(&rt("r1", "fam"), T0).await.unwrap();
        s.insert_refresh_token(&rt("r2", "fam"), T0).await.unwrap();
        assert!(!s.access_token_revoked("j0", Some("fam")).await.unwrap());
        assert_eq!(s.revoke_refresh_family("fam", T0).await.unwrap(), 2);
        assert!(s.access_token_revoked("j0", Some("fam")).await.unwrap());
        assert!(!s.access_token_revoked("j0", None).await.unwrap());
        let (used, _) = s.refresh_token("r2").await.unwrap().unwrap();
        assert!(used, "a revoked token counts as used");
        s.insert_refresh_token(&rt("r3", "f2"), T0).await.unwrap();
        assert_eq!(s.revoke_refresh_of_session("sid-1", T0).await.unwrap(), 1);

        // Revoked access tokens and client-assertion replay.
        let exp = T0 + Duration::minutes(10);
        assert!(!s.access_token_revoked("j1", None).await.unwrap());
        s.revoke_jti("j1", &store::ts(exp)).await.unwrap();
        s.revoke_jti("j1", &store::ts(exp)).await.unwrap();
        assert!(s.access_token_revoked("j1", None).await.unwrap());
        assert!(s.claim_assertion("c1\nx", exp).await.unwrap());
        assert!(!s.claim_assertion("c1\nx", exp).await.unwrap());

        // Keys: rotation retires the current key of that algorithm, which stays published
        // until it expires.
        let k = |kid: &str, alg: &str| OidcKeyRecord {
            kid: kid.into(),
            alg: alg.into(),
            wrapped: vec![1, 2, 3],
            public_jwk: "{}".into(),
            created_at: store::ts(T0),
            retired_at: None,
            expires_at: None,
        };
        s.insert_oidc_key(&k("k1", "ES256")).await.unwrap();
        s.insert_oidc_key(&k("k2", "RS256")).await.unwrap();
        s.rotate_oidc_key(
            &OidcKeyRecord {
                created_at: store::ts(T0 + Duration::seconds(1)),
                ..k("k3", "ES256")
            },
            T0,
            T0 + Duration::hours(1),
        )
        .await
        .unwrap();
        let keys = s.oidc_keys(T0).await.unwrap();
        assert_eq!(
            keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            ["k3", "k1", "k2"]
        );
        assert!(keys[1].retired_at.is_some() && keys[0].retired_at.is_none());
        assert_eq!(keys[0].wrapped, [1, 2, 3]);
        let later = s.oidc_keys(T0 + Duration::hours(2)).await.unwrap();
        assert_eq!(
            later.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            ["k3", "k2"]
        );

        // Services of a session; back-channel notices are leased and finished.
        for _ in 0..2 {
            let issue = store::TokenIssue {
                session_client: Some(("sid-1".into(), "c1".into(), "sub-1".into())),
                ..store::TokenIssue::default()
            };
            s.issue_tokens(issue, T0).await.unwrap();
        }
        assert_eq!(
            s.session_clients("sid-1").await.unwrap(),
            [("c1".to_owned(), "sub-1".to_owned())]
        );
        s.enqueue_logout_notice("n1", "c1", "https://rp/bc", "tok", T0)
            .await
            .unwrap();
        let lease = Duration::minutes(2);
        let got = s.lease_logout_notices(T0, lease, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            s.lease_logout_notices(T0, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        s.finish_logout_notice("n1", T0, Some("HTTP 500"), Some(T0 + Duration::seconds(30)))
            .await
            .unwrap();
        let again = s
            .lease_logout_notices(T0 + Duration::seconds(31), lease, 10)
            .await
            .unwrap();
        assert_eq!(again[0].attempts, 1);
        s.finish_logout_notice("n1", T0, None, None).await.unwrap();
        assert!(
            s.lease_logout_notices(T0 + Duration::days(1), lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.purge_oauth(T0 + Duration::days(60)).await.unwrap() >= 3);
    })
    .await;
}

#[tokio::test]
async fn token_issuance_records_single_use_atomically() {
    use store::{CodeUse, IssueOutcome, RefreshRecord, TokenIssue};
    each_backend(|db| async move {
        let s = db.store();
        s.create_account(&account("a1", "erika@example.org", "ref-1"), T0)
            .await
            .unwrap();
        let refresh = |hash: &str| RefreshRecord {
            token_hash: hash.into(),
            family_id: "fam".into(),
            client_id: "c1".into(),
            account_id: "a1".into(),
            session_id: Some("sid".into()),
            grant_data: "{}".into(),
            expires_at: T0 + Duration::days(1),
        };
        let code = CodeUse {
            code_hash: "code-1".into(),
            client_id: "c1".into(),
            expires_at: T0 + Duration::minutes(1),
            family: Some("fam".into()),
            jti: "j1".into(),
            jti_exp: T0 + Duration::minutes(10),
        };
        let first = TokenIssue {
            code: Some(code.clone()),
            new_refresh: Some(refresh("r1")),
            session_client: Some(("sid".into(), "c1".into(), "sub".into())),
            event: Some((
                "a1".into(),
                "data_released".into(),
                "Dienst (openid)".into(),
            )),
            ..TokenIssue::default()
        };
        assert_eq!(
            s.issue_tokens(first, T0).await.unwrap(),
            IssueOutcome::Issued
        );
        assert_eq!(s.session_clients("sid").await.unwrap().len(), 1);
        assert_eq!(
            s.refresh_token("r1").await.unwrap().map(|(used, _)| used),
            Some(false)
        );
        // The same code again writes nothing and names what it issued.
        let again = TokenIssue {
            code: Some(code),
            new_refresh: Some(refresh("r-other")),
            ..TokenIssue::default()
        };
        assert_eq!(
            s.issue_tokens(again, T0).await.unwrap(),
            IssueOutcome::Reused {
                family: Some("fam".into()),
                jti: Some("j1".into()),
                jti_exp: Some(store::ts(T0 + Duration::minutes(10)))
            }
        );
        assert!(s.refresh_token("r-other").await.unwrap().is_none());
        // Rotation: r1 is used once; a second use is reuse; an unknown token is invalid.
        let rotate = |used: &str, new: &str| TokenIssue {
            refresh_used: Some((used.into(), "c1".into())),
            new_refresh: Some(refresh(new)),
            ..TokenIssue::default()
        };
        assert_eq!(
            s.issue_tokens(rotate("r1", "r2"), T0).await.unwrap(),
            IssueOutcome::Issued
        );
        assert!(matches!(
            s.issue_tokens(rotate("r1", "r3"), T0).await.unwrap(),
            IssueOutcome::Reused { family: Some(ref f), .. } if f == "fam"
        ));
        assert_eq!(
            s.issue_tokens(rotate("nope", "r4"), T0).await.unwrap(),
            IssueOutcome::Invalid
        );
        // A failing issuance (unknown account) writes none of its parts.
        let broken = TokenIssue {
            code: Some(CodeUse {
                code_hash: "code-2".into(),
                ..CodeUse {
                    code_hash: String::new(),
                    client_id: "c1".into(),
                    expires_at: T0 + Duration::minutes(1),
                    family: None,
                    jti: "j2".into(),
                    jti_exp: T0 + Duration::minutes(10),
                }
            }),
            new_refresh: Some(RefreshRecord {
                account_id: "nobody".into(),
                ..refresh("r5")
            }),
            ..TokenIssue::default()
        };
        assert!(s.issue_tokens(broken, T0).await.is_err());
        let retry = TokenIssue {
            code: Some(CodeUse {
                code_hash: "code-2".into(),
                client_id: "c1".into(),
                expires_at: T0 + Duration::minutes(1),
                family: None,
                jti: "j3".into(),
                jti_exp: T0 + Duration::minutes(10),
            }),
            ..TokenIssue::default()
        };
        assert_eq!(
            s.issue_tokens(retry, T0).await.unwrap(),
            IssueOutcome::Issued,
            "the code was not spent by the failure"
        );
    })
    .await;
}

#[path = "contract/journal.rs"]
mod journal_contract;

#[path = "contract/poststelle.rs"]
mod poststelle_contract;
