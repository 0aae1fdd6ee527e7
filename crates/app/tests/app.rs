//! The application services against real databases (SQLite and PostgreSQL).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use app::{App, RuleInput, Settings};
use domain::{Ars, AuthorityKind, Leistungsschluessel};
use store::testing::{TestDb, backends, fresh};

mod email;

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

// ---------------------------------------------------------------------------------------------
// Servicekonto use cases. Argon2id runs once per registration, login, password check or
// password change: the tests keep those few.

use app::{AppError, ClientInfo, LoginOutcome, SecondFactorOutcome};
use servicekonto::totp::{self, TotpSecret};

const PASSWORD: &str = "grüne Tanne am Weiher 42";
const NEW_PASSWORD: &str = "Kiefernzapfen im Oktober 77";

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("192.0.2.10".into()),
        user_agent: Some("Testbrowser/1.0".into()),
    }
}

/// The queued mails to `to` for `purpose`, newest first.
async fn mails(app: &App, to: &str, purpose: &str) -> Vec<store::OutboxMail> {
    app.outbox(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.recipient == to && m.purpose == purpose)
        .collect()
}

/// The token of the link in the newest mail to `to` for `purpose`.
async fn link_token(app: &App, to: &str, purpose: &str) -> String {
    let mail = mails(app, to, purpose)
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {purpose} mail to {to}"));
    let start = mail.body_text.find("?token=").expect("a link with a token") + 7;
    mail.body_text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Registers and verifies an account (one Argon2id hash).
async fn verified_account(app: &App, email: &str) {
    app.register(email, PASSWORD, "de", &client())
        .await
        .unwrap();
    let token = link_token(app, email, "verify").await;
    assert!(app.verify_email(&token, &client()).await.unwrap());
}

/// Logs in with a password only (one Argon2id verification).
async fn logged_in(app: &App, email: &str, password: &str) -> String {
    match app.login(email, password, &client()).await.unwrap() {
        LoginOutcome::LoggedIn { token } => token,
        other => panic!("expected a login, got {other:?}"),
    }
}

async fn partial_login(app: &App, email: &str) -> String {
    match app.login(email, PASSWORD, &client()).await.unwrap() {
        LoginOutcome::SecondFactor { token } => token,
        other => panic!("expected the second factor, got {other:?}"),
    }
}

fn unix_now() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn field_error(result: app::Result<impl std::fmt::Debug>) -> (&'static str, String) {
    match result {
        Err(AppError::InvalidField { field, message }) => (field, message),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test]
async fn registration_verification_and_login() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika.mustermann@example.org";

        // The address is normalised; the mail carries a link to confirm it.
        app.register(" Erika.Mustermann@Example.ORG ", PASSWORD, "de", &client())
            .await
            .unwrap();
        let verify = mails(&app, email, "verify").await;
        assert_eq!(verify.len(), 1);
        assert!(
            verify[0]
                .body_text
                .contains("https://rathaus.example/konto/bestaetigen?token="),
            "{}",
            verify[0].body_text
        );
        assert!(verify[0].subject.contains("bestätigen"));
        let token = link_token(&app, email, "verify").await;
        assert_eq!(token.len(), 43);

        // Before confirming, the right password only brings a new link.
        assert!(matches!(
            app.login(email, PASSWORD, &client()).await.unwrap(),
            LoginOutcome::Unverified
        ));
        assert_eq!(mails(&app, email, "verify").await.len(), 2);

        assert!(app.verify_email(&token, &client()).await.unwrap());
        assert!(
            !app.verify_email(&token, &client()).await.unwrap(),
            "a link works once"
        );
        assert!(!app.verify_email("nonsense", &client()).await.unwrap());

        let session_token = logged_in(&app, "ERIKA.mustermann@example.org", PASSWORD).await;
        let session = app.session(&session_token).await.unwrap().unwrap();
        assert_eq!(session.email, email);
        assert!(session.complete);
        assert!(!session.totp_enabled);
        assert_eq!(session.methods, [domain::AuthMethod::Password]);
        assert!(session.expires_at > session.idle_expires_at);
        assert!(
            app.session("x".repeat(43).as_str())
                .await
                .unwrap()
                .is_none()
        );
        let listed = app.list_sessions(&session).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].current);
        assert!(app.extend_session(&session).await.unwrap() <= session.expires_at);

        // Registering the address again: the same answer, a note to the owner instead.
        app.register(email, NEW_PASSWORD, "en", &client())
            .await
            .unwrap();
        assert_eq!(
            mails(&app, email, "verify").await.len(),
            2,
            "no new account"
        );
        assert_eq!(mails(&app, email, "account_exists").await.len(), 1);
        assert!(
            mails(&app, email, "account_exists").await[0]
                .body_text
                .contains("https://rathaus.example/konto/passwort-vergessen")
        );
        logged_in(&app, email, PASSWORD).await;

        // Wrong password and unknown address fail alike.
        assert!(matches!(
            app.login(email, NEW_PASSWORD, &client()).await.unwrap(),
            LoginOutcome::Failed
        ));
        assert!(matches!(
            app.login("max@example.org", PASSWORD, &client())
                .await
                .unwrap(),
            LoginOutcome::Failed
        ));
        assert!(matches!(
            app.login("not an address", PASSWORD, &client())
                .await
                .unwrap(),
            LoginOutcome::Failed
        ));

        app.logout(&session, &client()).await.unwrap();
        assert!(app.session(&session_token).await.unwrap().is_none());

        let kinds: Vec<String> = app
            .store()
            .security_events(&session.account_id, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        for kind in [
            "registered",
            "email_verified",
            "login",
            "login_failed",
            "logout",
        ] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
        }
    }
}

#[tokio::test]
async fn failed_logins_throttle_the_address_and_the_policy_names_the_field() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "max@example.org";

        // The password policy answers for the password field, before anything is hashed.
        for (password, code) in [
            ("kurz", "password_too_short"),
            ("passwort1234", "password_common"),
            ("max@example.org is mine", "password_contains_personal_data"),
        ] {
            assert_eq!(
                field_error(app.register(email, password, "de", &client()).await),
                ("password", code.to_owned()),
                "{password}"
            );
        }
        assert_eq!(
            field_error(app.register("no-address", PASSWORD, "de", &client()).await).0,
            "email"
        );
        assert!(app.outbox(10).await.unwrap().is_empty());

        app.register(email, PASSWORD, "de", &client())
            .await
            .unwrap();
        // Five failures are free; the sixth is answered, then the address waits.
        for attempt in 1..=6 {
            assert!(
                matches!(
                    app.login(email, "falsches Passwort 1", &client())
                        .await
                        .unwrap(),
                    LoginOutcome::Failed
                ),
                "attempt {attempt}"
            );
        }
        for password in ["falsches Passwort 1", PASSWORD] {
            match app.login(email, password, &client()).await.unwrap() {
                LoginOutcome::Throttled { retry_after_secs } => {
                    assert!((1..=2).contains(&retry_after_secs), "{retry_after_secs}");
                }
                other => panic!("expected to be throttled, got {other:?}"),
            }
        }
        // Another address from the same client is not affected by this one's block.
        assert!(matches!(
            app.login("erika@example.org", PASSWORD, &client())
                .await
                .unwrap(),
            LoginOutcome::Failed
        ));
    }
}

#[tokio::test]
async fn password_reset_and_change_end_other_sessions() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika@example.org";
        verified_account(&app, email).await;
        let old_session = logged_in(&app, email, PASSWORD).await;

        // Unknown address: the same answer, no mail.
        app.request_password_reset("max@example.org", &client())
            .await
            .unwrap();
        assert!(mails(&app, "max@example.org", "reset").await.is_empty());

        app.request_password_reset(email, &client()).await.unwrap();
        let token = link_token(&app, email, "reset").await;
        assert!(
            mails(&app, email, "reset").await[0]
                .body_text
                .contains("/konto/passwort-neu?token=")
        );
        assert!(app.reset_token_valid(&token).await.unwrap());
        assert!(!app.reset_token_valid("nonsense").await.unwrap());

        // A refused password does not use up the link.
        assert_eq!(
            field_error(app.reset_password(&token, "kurz", &client()).await).0,
            "password"
        );
        assert!(app.reset_token_valid(&token).await.unwrap());

        app.reset_password(&token, NEW_PASSWORD, &client())
            .await
            .unwrap();
        assert!(
            app.session(&old_session).await.unwrap().is_none(),
            "sessions end with a reset"
        );
        assert!(!app.reset_token_valid(&token).await.unwrap());
        assert!(matches!(
            app.reset_password(&token, "noch ein neues Passwort", &client())
                .await,
            Err(AppError::Invalid(_))
        ));
        assert_eq!(mails(&app, email, "security_notice").await.len(), 1);
        assert!(matches!(
            app.login(email, PASSWORD, &client()).await.unwrap(),
            LoginOutcome::Failed
        ));

        // Changing the password keeps this session and ends the others.
        let first = logged_in(&app, email, NEW_PASSWORD).await;
        let second = logged_in(&app, email, NEW_PASSWORD).await;
        let session = app.session(&second).await.unwrap().unwrap();
        assert_eq!(app.list_sessions(&session).await.unwrap().len(), 2);
        assert_eq!(
            field_error(
                app.change_password(&session, PASSWORD, "ein ganz anderes Passwort", &client())
                    .await
            ),
            ("current_password", "password_wrong".to_owned())
        );
        assert_eq!(
            field_error(
                app.change_password(&session, NEW_PASSWORD, "kurz", &client())
                    .await
            )
            .0,
            "password"
        );
        app.change_password(&session, NEW_PASSWORD, PASSWORD, &client())
            .await
            .unwrap();
        assert!(app.session(&first).await.unwrap().is_none());
        assert!(app.session(&second).await.unwrap().is_some());
        assert_eq!(mails(&app, email, "security_notice").await.len(), 2);

        // Sessions can be ended one by one, by their public id.
        let third = logged_in(&app, email, PASSWORD).await;
        let third_id = app.session(&third).await.unwrap().unwrap().public_id;
        assert!(
            app.revoke_session(&session, &third_id, &client())
                .await
                .unwrap()
        );
        assert!(
            !app.revoke_session(&session, &third_id, &client())
                .await
                .unwrap()
        );
        assert!(app.session(&third).await.unwrap().is_none());
    }
}

/// A six-digit code that is none of the codes the server accepts around now.
fn wrong_code(secret: &TotpSecret) -> String {
    let now = unix_now();
    let near: Vec<String> = (0..=4)
        .map(|i| totp::code_at(secret, now + i * 30 - 60))
        .collect();
    (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Turns TOTP on for the logged-in `session_token`; returns the secret and recovery codes.
async fn enable_totp(app: &App, session_token: &str) -> (TotpSecret, Vec<String>) {
    let session = app.session(session_token).await.unwrap().unwrap();
    let setup = app.totp_begin(&session);
    assert!(setup.otpauth_uri.starts_with("otpauth://totp/"));
    let secret = TotpSecret::from_base32(&setup.secret_base32).unwrap();
    // A wrong code or a forged setup is refused, and nothing is stored.
    assert_eq!(
        field_error(
            app.totp_confirm(&session, &setup.pending, &wrong_code(&secret), &client())
                .await
        )
        .0,
        "code"
    );
    let code = totp::code_at(&secret, unix_now());
    assert!(matches!(
        app.totp_confirm(&session, "AAAA", &code, &client()).await,
        Err(AppError::Invalid(_))
    ));
    assert!(
        !app.session(session_token)
            .await
            .unwrap()
            .unwrap()
            .totp_enabled
    );
    let codes = app
        .totp_confirm(&session, &setup.pending, &code, &client())
        .await
        .unwrap();
    assert_eq!(codes.len(), totp::RECOVERY_CODE_COUNT);
    assert!(
        app.session(session_token)
            .await
            .unwrap()
            .unwrap()
            .totp_enabled
    );
    (secret, codes)
}

#[tokio::test]
async fn totp_second_factor_refuses_replays_and_recovery_codes_work_once() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika@example.org";
        verified_account(&app, email).await;
        let first = logged_in(&app, email, PASSWORD).await;
        let (secret, recovery) = enable_totp(&app, &first).await;

        // The password alone now gives a partial session that can do nothing else.
        let partial = partial_login(&app, email).await;
        let pending = app.session(&partial).await.unwrap().unwrap();
        assert!(!pending.complete);
        assert_eq!(
            app.list_sessions(&pending).await.unwrap().len(),
            1,
            "only the full one"
        );
        assert!(matches!(
            app.login_second_factor(&partial, &wrong_code(&secret), &client())
                .await
                .unwrap(),
            SecondFactorOutcome::Failed
        ));
        // The next step's code: the one used to switch TOTP on is spent.
        let code = totp::code_at(&secret, unix_now() + 30);
        let full = match app
            .login_second_factor(&partial, &code, &client())
            .await
            .unwrap()
        {
            SecondFactorOutcome::LoggedIn { token } => token,
            other => panic!("expected a login, got {other:?}"),
        };
        assert_ne!(full, partial);
        assert!(
            app.session(&partial).await.unwrap().is_none(),
            "the partial token is dead"
        );
        let session = app.session(&full).await.unwrap().unwrap();
        assert!(session.complete);
        assert_eq!(
            session.methods,
            [domain::AuthMethod::Password, domain::AuthMethod::Totp]
        );
        assert!(session.expires_at - session.authenticated_at > time::Duration::hours(1));
        assert!(matches!(
            app.login_second_factor(&partial, &code, &client())
                .await
                .unwrap(),
            SecondFactorOutcome::Expired
        ));
        assert!(matches!(
            app.login_second_factor(&full, &code, &client())
                .await
                .unwrap(),
            SecondFactorOutcome::Expired,
        ));

        // The same code a second time: a replay.
        let partial = partial_login(&app, email).await;
        assert!(matches!(
            app.login_second_factor(&partial, &code, &client())
                .await
                .unwrap(),
            SecondFactorOutcome::Failed
        ));
        // A recovery code, typed sloppily, works instead, once.
        let sloppy = format!(" {} ", recovery[3].to_uppercase());
        let token = match app
            .login_second_factor(&partial, &sloppy, &client())
            .await
            .unwrap()
        {
            SecondFactorOutcome::LoggedIn { token } => token,
            other => panic!("expected a login, got {other:?}"),
        };
        assert_eq!(
            app.session(&token).await.unwrap().unwrap().methods,
            [
                domain::AuthMethod::Password,
                domain::AuthMethod::RecoveryCode
            ]
        );
        let partial = partial_login(&app, email).await;
        assert!(matches!(
            app.login_second_factor(&partial, &recovery[3], &client())
                .await
                .unwrap(),
            SecondFactorOutcome::Failed
        ));
        assert!(matches!(
            app.login_second_factor(&partial, &recovery[4], &client())
                .await
                .unwrap(),
            SecondFactorOutcome::LoggedIn { .. }
        ));
        let kinds: Vec<String> = app
            .security_events(&session)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        for kind in ["totp_enabled", "second_factor_failed", "recovery_code_used"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
        }

        // Switched off, the password is enough again.
        app.totp_disable(&session, &client()).await.unwrap();
        logged_in(&app, email, PASSWORD).await;
    }
}

#[tokio::test]
async fn a_known_password_does_not_reset_the_count_of_wrong_codes() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika@example.org";
        verified_account(&app, email).await;
        let first = logged_in(&app, email, PASSWORD).await;
        let (secret, _) = enable_totp(&app, &first).await;
        let wrong = wrong_code(&secret);
        // Someone with the password guesses codes, logging in again between guesses.
        for _ in 0..2 {
            let partial = partial_login(&app, email).await;
            for _ in 0..3 {
                assert!(matches!(
                    app.login_second_factor(&partial, &wrong, &client())
                        .await
                        .unwrap(),
                    SecondFactorOutcome::Failed
                ));
            }
        }
        assert!(matches!(
            app.login(email, PASSWORD, &client()).await.unwrap(),
            LoginOutcome::Throttled { .. }
        ));
    }
}

#[tokio::test]
async fn email_change_needs_the_link_sent_to_the_new_address() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika@example.org";
        let new_email = "erika.neu@example.org";
        verified_account(&app, email).await;
        let token = logged_in(&app, email, PASSWORD).await;
        let session = app.session(&token).await.unwrap().unwrap();

        assert_eq!(
            field_error(
                app.request_email_change(&session, "ERIKA@example.org", &client())
                    .await
            ),
            ("email", "email_unchanged".to_owned())
        );
        app.request_email_change(&session, "Erika.Neu@example.org", &client())
            .await
            .unwrap();
        let link = link_token(&app, new_email, "email_change").await;
        assert!(
            mails(&app, new_email, "email_change").await[0]
                .body_text
                .contains("/konto/email-bestaetigen?token=")
        );
        assert_eq!(
            app.session(&token).await.unwrap().unwrap().email,
            email,
            "nothing changes before the link is used"
        );
        assert!(
            !app.confirm_email_change("nonsense", &client())
                .await
                .unwrap()
        );
        // A verification link is no e-mail change link.
        assert!(
            !app.confirm_email_change(&link_token(&app, email, "verify").await, &client())
                .await
                .unwrap()
        );

        assert!(app.confirm_email_change(&link, &client()).await.unwrap());
        assert!(!app.confirm_email_change(&link, &client()).await.unwrap());
        assert_eq!(app.session(&token).await.unwrap().unwrap().email, new_email);
        assert_eq!(
            mails(&app, email, "security_notice").await.len(),
            1,
            "the old address is told"
        );
        assert!(app.store().account_by_email(email).await.unwrap().is_none());
        logged_in(&app, new_email, PASSWORD).await;

        // An address taken meanwhile: the link is refused with a conflict.
        let session = app.session(&token).await.unwrap().unwrap();
        app.request_email_change(&session, "max@example.org", &client())
            .await
            .unwrap();
        let link = link_token(&app, "max@example.org", "email_change").await;
        app.register("max@example.org", NEW_PASSWORD, "de", &client())
            .await
            .unwrap();
        assert!(matches!(
            app.confirm_email_change(&link, &client()).await,
            Err(AppError::Conflict(_))
        ));
        assert_eq!(app.session(&token).await.unwrap().unwrap().email, new_email);
    }
}

#[tokio::test]
async fn export_shows_the_data_and_deletion_needs_the_password() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika@example.org";
        verified_account(&app, email).await;
        let token = logged_in(&app, email, PASSWORD).await;
        let session = app.session(&token).await.unwrap().unwrap();

        let export = app.export_account(&session, &client()).await.unwrap();
        assert_eq!(export["format"], "rathaus-servicekonto-export/1");
        assert_eq!(export["account"]["email"], email);
        assert_eq!(
            export["account"]["postfach_ref"],
            session.postfach_ref.as_str()
        );
        assert_eq!(export["sessions"].as_array().unwrap().len(), 1);
        assert!(!export["security_events"].as_array().unwrap().is_empty());
        let text = export.to_string();
        let hash = app
            .store()
            .account_by_email(email)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        assert!(!text.contains("$argon2"), "{text}");
        assert!(!text.contains(&hash));

        assert_eq!(
            field_error(app.delete_account(&session, NEW_PASSWORD, &client()).await),
            ("password", "password_wrong".to_owned())
        );
        assert!(app.session(&token).await.unwrap().is_some());
        app.delete_account(&session, PASSWORD, &client())
            .await
            .unwrap();
        assert!(app.session(&token).await.unwrap().is_none());
        assert!(app.store().account_by_email(email).await.unwrap().is_none());
        assert!(
            app.store()
                .account_by_id(&session.account_id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            app.login(email, PASSWORD, &client()).await.unwrap(),
            LoginOutcome::Failed
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Passkeys, with webauthn-authenticator-rs' software passkey as the authenticator. It keeps no
// resident keys, so the test plays the browser's part of a discoverable login itself: it names
// the credential and hands over the user handle the authenticator would have stored.

use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

fn origin() -> Url {
    Url::parse("https://rathaus.example").unwrap()
}

/// Registers a passkey named `name` for the session; returns its credential id.
async fn add_passkey(
    app: &App,
    session: &app::Session,
    authenticator: &mut WebauthnAuthenticator<SoftPasskey>,
    name: &str,
) -> String {
    let challenge = app.passkey_registration_begin(session).await.unwrap();
    let options = &challenge.options["publicKey"];
    assert_eq!(options["rp"]["id"], "rathaus.example");
    assert_eq!(options["attestation"], "none");
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(selection["residentKey"], "required");
    let mut ccr: CreationChallengeResponse = serde_json::from_value(challenge.options).unwrap();
    // The software passkey cannot keep resident keys; the server does not insist on them.
    if let Some(s) = ccr.public_key.authenticator_selection.as_mut() {
        s.require_resident_key = false;
    }
    let credential = authenticator.do_registration(origin(), ccr).unwrap();
    let credential = serde_json::to_value(&credential).unwrap();
    // The state is bound to this session and this ceremony.
    assert!(matches!(
        app.passkey_registration_finish(session, &app.passkey_login_begin().unwrap().state, credential.clone(), name, &client())
            .await,
        Err(AppError::Invalid(m)) if m == "passkey_expired"
    ));
    let added = app
        .passkey_registration_finish(
            session,
            &challenge.state,
            credential.clone(),
            name,
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(added.name, name.trim());
    // The same credential cannot be registered twice.
    assert!(matches!(
        app.passkey_registration_finish(session, &challenge.state, credential, name, &client())
            .await,
        Err(AppError::Invalid(m)) if m == "passkey_exists"
    ));
    added.id
}

/// What a browser answers to a discoverable login with the passkey `credential_id` of the
/// account `account_id`.
fn discoverable_answer(
    authenticator: &mut WebauthnAuthenticator<SoftPasskey>,
    options: &serde_json::Value,
    credential_id: &str,
    account_id: &str,
) -> serde_json::Value {
    let mut options = options.clone();
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(
        options.get("mediation").is_none(),
        "a button starts a modal login"
    );
    options["publicKey"]["allowCredentials"] =
        serde_json::json!([{"type": "public-key", "id": credential_id}]);
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let assertion = authenticator.do_authentication(origin(), rcr).unwrap();
    let mut answer = serde_json::to_value(&assertion).unwrap();
    let user = uuid::Uuid::parse_str(account_id).unwrap();
    answer["response"]["userHandle"] = serde_json::Value::String(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        user.as_bytes(),
    ));
    answer
}

#[tokio::test]
async fn passkeys_register_log_in_without_password_and_serve_as_second_factor() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "pia@example.org";
        verified_account(&app, email).await;
        let token = logged_in(&app, email, PASSWORD).await;
        let session = app.session(&token).await.unwrap().unwrap();
        let mut authenticator = WebauthnAuthenticator::new(SoftPasskey::new(true));
        assert!(!app.has_passkeys(&session.account_id).await.unwrap());
        let id = add_passkey(&app, &session, &mut authenticator, "  Mein Laptop ").await;
        assert!(app.has_passkeys(&session.account_id).await.unwrap());
        let listed = app.list_passkeys(&session).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].name.as_str()),
            (id.as_str(), "Mein Laptop")
        );
        assert!(listed[0].last_used_at.is_none());

        // Passwordless login.
        let challenge = app.passkey_login_begin().unwrap();
        let answer = discoverable_answer(
            &mut authenticator,
            &challenge.options,
            &id,
            &session.account_id,
        );
        let new_token = match app
            .passkey_login_finish(&challenge.state, answer.clone(), &client())
            .await
            .unwrap()
        {
            app::PasskeyLoginOutcome::LoggedIn { token } => token,
            other => panic!("expected a login, got {other:?}"),
        };
        let s = app.session(&new_token).await.unwrap().unwrap();
        assert!(s.complete);
        assert_eq!(s.account_id, session.account_id);
        assert_eq!(s.methods, vec![domain::AuthMethod::Passkey]);
        assert_eq!(s.trust_level, domain::TrustLevel::Level1);
        assert!(
            app.list_passkeys(&session).await.unwrap()[0]
                .last_used_at
                .is_some()
        );
        // The same answer does not log in twice.
        assert!(matches!(
            app.passkey_login_finish(&challenge.state, answer, &client())
                .await
                .unwrap(),
            app::PasskeyLoginOutcome::Failed
        ));
        // A passkey presented for another account does not log in.
        let challenge = app.passkey_login_begin().unwrap();
        let other = uuid::Uuid::new_v4().to_string();
        let answer = discoverable_answer(&mut authenticator, &challenge.options, &id, &other);
        assert!(matches!(
            app.passkey_login_finish(&challenge.state, answer, &client())
                .await
                .unwrap(),
            app::PasskeyLoginOutcome::Failed
        ));

        // Second factor after the password (the account has TOTP, so the login asks).
        enable_totp(&app, &token).await;
        let partial_token = partial_login(&app, email).await;
        let partial = app.session(&partial_token).await.unwrap().unwrap();
        assert!(app.passkey_second_factor_begin(&s).await.unwrap().is_none());
        let challenge = app
            .passkey_second_factor_begin(&partial)
            .await
            .unwrap()
            .expect("the account has a passkey");
        let rcr: RequestChallengeResponse =
            serde_json::from_value(challenge.options.clone()).unwrap();
        let answer =
            serde_json::to_value(authenticator.do_authentication(origin(), rcr).unwrap()).unwrap();
        // A state of another ceremony is refused.
        assert!(matches!(
            app.passkey_second_factor_finish(&partial, &app.passkey_login_begin().unwrap().state, answer.clone(), &client())
                .await,
            Err(AppError::Invalid(m)) if m == "passkey_expired"
        ));
        let full = match app
            .passkey_second_factor_finish(&partial, &challenge.state, answer.clone(), &client())
            .await
            .unwrap()
        {
            SecondFactorOutcome::LoggedIn { token } => token,
            other => panic!("expected a login, got {other:?}"),
        };
        assert!(app.session(&partial_token).await.unwrap().is_none());
        let s = app.session(&full).await.unwrap().unwrap();
        assert!(s.complete);
        assert_eq!(
            s.methods,
            vec![domain::AuthMethod::Password, domain::AuthMethod::Passkey]
        );
        // The same answer does not count twice.
        assert!(matches!(
            app.passkey_second_factor_finish(&partial, &challenge.state, answer, &client())
                .await
                .unwrap(),
            SecondFactorOutcome::Failed
        ));

        // Rename and remove; then the passkey no longer logs in.
        assert!(
            app.rename_passkey(&s, &id, "Büro", &client())
                .await
                .unwrap()
        );
        assert_eq!(
            field_error(app.rename_passkey(&s, &id, " ", &client()).await),
            ("name", "passkey_name_missing".to_owned())
        );
        assert_eq!(app.list_passkeys(&s).await.unwrap()[0].name, "Büro");
        assert!(!app.remove_passkey(&s, "unknown", &client()).await.unwrap());
        assert!(app.remove_passkey(&s, &id, &client()).await.unwrap());
        assert!(app.list_passkeys(&s).await.unwrap().is_empty());
        let challenge = app.passkey_login_begin().unwrap();
        let answer = discoverable_answer(
            &mut authenticator,
            &challenge.options,
            &id,
            &session.account_id,
        );
        assert!(matches!(
            app.passkey_login_finish(&challenge.state, answer, &client())
                .await
                .unwrap(),
            app::PasskeyLoginOutcome::Failed
        ));

        let kinds: Vec<String> = app
            .security_events(&s)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{}:{}", e.kind, e.detail.unwrap_or_default()))
            .collect();
        for expected in [
            "passkey_added:Mein Laptop",
            "login:passkey",
            "login:password,passkey",
            "passkey_renamed:Büro",
            "passkey_removed:Büro",
        ] {
            assert!(
                kinds.iter().any(|k| k == expected),
                "{expected} missing in {kinds:?}"
            );
        }
        // Adding and removing a passkey are both announced by mail.
        assert_eq!(mails(&app, email, "security_notice").await.len(), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Organisation accounts, the profile for prefill, and consents.

use app::{InvitationState, OrgRole, ProfileInput, ValueStatus};

async fn session_of(app: &App, email: &str) -> app::Session {
    let token = logged_in(app, email, PASSWORD).await;
    app.session(&token).await.unwrap().unwrap()
}

fn invalid_code<T: std::fmt::Debug>(result: app::Result<T>) -> String {
    match result {
        Err(AppError::Invalid(code) | AppError::Conflict(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn event_kinds(app: &App, session: &app::Session) -> Vec<String> {
    app.security_events(session)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn organisations_invite_members_keep_an_owner_and_share_their_postfach() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        for email in [
            "inhaberin@example.org",
            "mitglied@example.org",
            "fremd@example.org",
        ] {
            verified_account(&app, email).await;
        }
        let alice = session_of(&app, "inhaberin@example.org").await;
        let bob = session_of(&app, "mitglied@example.org").await;
        let carol = session_of(&app, "fremd@example.org").await;

        assert_eq!(
            field_error(app.create_organisation(&alice, "  ", &client()).await),
            ("name", "org_name_missing".to_owned())
        );
        let org = app
            .create_organisation(&alice, "  Bäckerei Müller GmbH ", &client())
            .await
            .unwrap();
        assert_eq!(org.name, "Bäckerei Müller GmbH");
        assert_eq!(org.postfach_ref.len(), 32);
        assert_ne!(org.postfach_ref, alice.postfach_ref);
        let mine = app.organisations(&alice).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].role, OrgRole::Owner);
        assert!(mine[0].postfach_access, "the founder may use the Postfach");
        // To anyone else the organisation does not exist.
        assert!(app.organisations(&bob).await.unwrap().is_empty());
        assert!(matches!(
            app.organisation_view(&bob, &org.id).await,
            Err(AppError::NotFound(_))
        ));
        assert!(app.membership(&bob, &org.id).await.unwrap().is_none());

        // Invitation by e-mail: the link arrives through the outbox.
        app.invite_member(
            &alice,
            &org.id,
            "Mitglied@Example.org",
            OrgRole::Member,
            false,
            &client(),
        )
        .await
        .unwrap();
        let sent = mails(&app, "mitglied@example.org", "org_invitation").await;
        let invitation_mail = &sent[0];
        assert!(
            invitation_mail.subject.contains("Bäckerei Müller GmbH"),
            "{}",
            invitation_mail.subject
        );
        assert!(
            invitation_mail
                .body_text
                .contains("https://rathaus.example/konto/einladung?token=")
        );
        let token = link_token(&app, "mitglied@example.org", "org_invitation").await;
        let info = app.invitation_info(&token).await.unwrap().unwrap();
        assert_eq!(info.state, InvitationState::Open);
        assert_eq!(info.email, "mitglied@example.org");
        assert_eq!(info.organisation.id, org.id);
        let view = app.organisation_view(&alice, &org.id).await.unwrap();
        assert_eq!(view.invitations.len(), 1);

        // Only the invited address can accept, once.
        assert_eq!(
            invalid_code(app.accept_invitation(&carol, &token, &client()).await),
            "invitation_wrong_email"
        );
        assert_eq!(
            invalid_code(app.accept_invitation(&bob, "nonsense", &client()).await),
            "invitation_invalid"
        );
        let joined = app
            .accept_invitation(&bob, &token, &client())
            .await
            .unwrap();
        assert_eq!(joined.id, org.id);
        assert_eq!(
            invalid_code(app.accept_invitation(&bob, &token, &client()).await),
            "invitation_used"
        );
        assert_eq!(
            app.invitation_info(&token).await.unwrap().unwrap().state,
            InvitationState::Accepted
        );
        let view = app.organisation_view(&alice, &org.id).await.unwrap();
        assert_eq!(view.members.len(), 2);
        assert!(view.invitations.is_empty());
        let bob_view = app.organisation_view(&bob, &org.id).await.unwrap();
        assert_eq!(bob_view.me.role, OrgRole::Member);
        assert!(
            bob_view.invitations.is_empty(),
            "members see no invitations"
        );
        assert_eq!(
            field_error(
                app.invite_member(
                    &alice,
                    &org.id,
                    "mitglied@example.org",
                    OrgRole::Member,
                    false,
                    &client()
                )
                .await
            ),
            ("email", "already_member".to_owned())
        );

        // An expired invitation is refused.
        let (expired, expired_hash) = servicekonto::token::new_token();
        let now = time::OffsetDateTime::now_utc();
        db.store()
            .insert_invitation(
                &store::NewInvitation {
                    token_hash: &expired_hash,
                    organisation_id: &org.id,
                    email: "fremd@example.org",
                    role: "member",
                    postfach_access: true,
                    invited_by: Some(&alice.account_id),
                    expires_at: now - time::Duration::hours(1),
                },
                now - time::Duration::days(8),
            )
            .await
            .unwrap();
        assert_eq!(
            invalid_code(app.accept_invitation(&carol, &expired, &client()).await),
            "invitation_expired"
        );
        assert!(app.organisations(&carol).await.unwrap().is_empty());

        // Members change nothing; the Postfach needs the permission.
        assert_eq!(
            invalid_code(
                app.invite_member(
                    &bob,
                    &org.id,
                    "fremd@example.org",
                    OrgRole::Owner,
                    true,
                    &client()
                )
                .await
            ),
            "owner_required"
        );
        assert_eq!(
            invalid_code(
                app.update_member(
                    &bob,
                    &org.id,
                    &bob.account_id,
                    OrgRole::Owner,
                    true,
                    &client()
                )
                .await
            ),
            "owner_required"
        );
        let refs = |v: Vec<(String, String)>| v.into_iter().map(|(r, _)| r).collect::<Vec<_>>();
        assert_eq!(
            refs(app.postfach_refs_for(&bob).await.unwrap()),
            [bob.postfach_ref.as_str()]
        );
        assert_eq!(
            app.postfach_refs_for(&alice).await.unwrap(),
            [
                (alice.postfach_ref.clone(), alice.email.clone()),
                (org.postfach_ref.clone(), org.name.clone())
            ]
        );
        app.update_member(
            &alice,
            &org.id,
            &bob.account_id,
            OrgRole::Member,
            true,
            &client(),
        )
        .await
        .unwrap();
        assert_eq!(
            refs(app.postfach_refs_for(&bob).await.unwrap()),
            [bob.postfach_ref.clone(), org.postfach_ref.clone()]
        );

        // Never the last owner.
        for refused in [
            app.update_member(
                &alice,
                &org.id,
                &alice.account_id,
                OrgRole::Member,
                true,
                &client(),
            )
            .await,
            app.remove_member(&alice, &org.id, &alice.account_id, &client())
                .await,
            app.leave_organisation(&alice, &org.id, &client()).await,
        ] {
            assert_eq!(invalid_code(refused), "last_owner");
        }
        app.update_member(
            &alice,
            &org.id,
            &bob.account_id,
            OrgRole::Owner,
            true,
            &client(),
        )
        .await
        .unwrap();
        app.leave_organisation(&alice, &org.id, &client())
            .await
            .unwrap();
        assert!(app.organisations(&alice).await.unwrap().is_empty());
        assert!(matches!(
            app.organisation_view(&alice, &org.id).await,
            Err(AppError::NotFound(_))
        ));
        assert_eq!(
            invalid_code(app.leave_organisation(&bob, &org.id, &client()).await),
            "last_owner"
        );
        assert_eq!(
            refs(app.postfach_refs_for(&alice).await.unwrap()),
            [alice.postfach_ref.as_str()]
        );

        // The new owner invites, withdraws, invites again and removes.
        app.invite_member(
            &bob,
            &org.id,
            "fremd@example.org",
            OrgRole::Member,
            false,
            &client(),
        )
        .await
        .unwrap();
        let first = link_token(&app, "fremd@example.org", "org_invitation").await;
        let open = app
            .organisation_view(&bob, &org.id)
            .await
            .unwrap()
            .invitations;
        assert_eq!(open.len(), 1);
        assert!(
            app.withdraw_invitation(&bob, &org.id, &open[0].id, &client())
                .await
                .unwrap()
        );
        assert_eq!(
            invalid_code(app.accept_invitation(&carol, &first, &client()).await),
            "invitation_invalid"
        );
        app.invite_member(
            &bob,
            &org.id,
            "fremd@example.org",
            OrgRole::Member,
            false,
            &client(),
        )
        .await
        .unwrap();
        let second = link_token(&app, "fremd@example.org", "org_invitation").await;
        app.accept_invitation(&carol, &second, &client())
            .await
            .unwrap();
        assert!(app.membership(&carol, &org.id).await.unwrap().is_some());
        app.remove_member(&bob, &org.id, &carol.account_id, &client())
            .await
            .unwrap();
        assert!(app.membership(&carol, &org.id).await.unwrap().is_none());
        assert!(matches!(
            app.remove_member(&bob, &org.id, &carol.account_id, &client())
                .await,
            Err(AppError::NotFound(_))
        ));

        let alice_events = event_kinds(&app, &alice).await;
        for kind in [
            "organisation_created",
            "member_invited",
            "member_changed",
            "member_left",
            "invitation_accepted",
        ] {
            assert!(
                alice_events.iter().any(|k| k == kind),
                "{kind}: {alice_events:?}"
            );
        }
        let carol_events = event_kinds(&app, &carol).await;
        assert!(carol_events.iter().any(|k| k == "member_joined"));
        assert!(carol_events.iter().any(|k| k == "member_removed"));
        let bob_events = event_kinds(&app, &bob).await;
        assert!(bob_events.iter().any(|k| k == "member_removed"));
        assert!(bob_events.iter().any(|k| k == "invitation_withdrawn"));

        // The export names the memberships.
        let export = app.export_account(&bob, &client()).await.unwrap();
        let orgs = export["organisations"].as_array().unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0]["organisation"]["name"], "Bäckerei Müller GmbH");
        assert_eq!(orgs[0]["role"], "owner");
        assert_eq!(orgs[0]["postfach_access"], true);
    }
}

fn erika() -> ProfileInput {
    ProfileInput {
        given_name: " Erika ".into(),
        family_name: "Mustermann".into(),
        birth_day: "12".into(),
        birth_month: "08".into(),
        birth_year: "1964".into(),
        street_address: "Heidestraße 17".into(),
        postal_code: "51147".into(),
        locality: "Köln".into(),
        country: String::new(),
        phone_number: "+49 221 1234567".into(),
    }
}

#[test]
fn the_profile_form_is_checked_field_by_field() {
    let today = time::macros::date!(2030 - 03 - 04);
    let values = erika().validate(today).unwrap();
    assert_eq!(values["given_name"], "Erika");
    assert_eq!(values["birthdate"], "1964-08-12");
    assert!(!values.contains_key("country"));
    assert!(ProfileInput::default().validate(today).unwrap().is_empty());

    let codes = |input: ProfileInput| -> Vec<(&'static str, &'static str)> {
        input
            .validate(today)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    };
    let mut bad = erika();
    bad.birth_day = "31".into();
    bad.birth_month = "2".into();
    bad.postal_code = "1234".into();
    bad.phone_number = "call me".into();
    bad.given_name = "x".repeat(101);
    assert_eq!(
        codes(bad),
        [
            ("given_name", "profile_too_long"),
            ("birth_day", "profile_birthdate_invalid"),
            ("postal_code", "profile_postcode_de"),
            ("phone_number", "profile_phone_invalid"),
        ]
    );
    let mut partial = ProfileInput {
        birth_day: "1".into(),
        birth_year: "1990".into(),
        postal_code: "30159".into(),
        ..Default::default()
    };
    assert_eq!(
        codes(partial.clone()),
        [
            ("birth_day", "profile_birthdate_month_missing"),
            ("street_address", "profile_street_missing"),
            ("locality", "profile_city_missing"),
        ]
    );
    partial.birth_month = "4".into();
    partial.birth_year = "2031".into();
    partial.street_address = "Am Markt 1".into();
    partial.locality = "Hannover".into();
    assert_eq!(
        codes(partial.clone()),
        [("birth_day", "profile_birthdate_future")]
    );
    partial.birth_year = "90".into();
    assert_eq!(
        codes(partial.clone()),
        [("birth_day", "profile_birthdate_year_four_digits")]
    );
    // Abroad, a postcode is not five digits.
    partial.birth_year = "1990".into();
    partial.country = "Nederland".into();
    partial.postal_code = "1012 AB".into();
    assert!(partial.validate(today).is_ok());
    partial.country = "Deutschland".into();
    assert_eq!(codes(partial), [("postal_code", "profile_postcode_de")]);
}

#[tokio::test]
async fn the_profile_is_wrapped_and_services_prefill_only_with_consent() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let email = "erika@example.org";
        verified_account(&app, email).await;
        let session = session_of(&app, email).await;
        let id = session.account_id.clone();
        assert!(app.profile(&id).await.unwrap().attributes.is_empty());

        let changed = app
            .update_profile(&session, &erika(), &client())
            .await
            .unwrap();
        assert_eq!(changed.len(), 7, "{changed:?}");
        let profile = app.profile(&id).await.unwrap();
        assert_eq!(profile.value("given_name"), "Erika");
        assert_eq!(profile.value("birthdate"), "1964-08-12");
        assert_eq!(
            profile.get("family_name").unwrap().status,
            ValueStatus::SelfDeclared
        );
        let form = ProfileInput::from_profile(&profile);
        assert_eq!(
            (form.birth_day.as_str(), form.birth_month.as_str()),
            ("12", "8")
        );
        // Stored wrapped: none of it readable in the database.
        let stored = db.store().profile(&id).await.unwrap().unwrap();
        for plain in ["Mustermann", "1964-08-12", "Heidestra", "given_name"] {
            assert!(
                !stored
                    .wrapped
                    .windows(plain.len())
                    .any(|w| w == plain.as_bytes()),
                "{plain} in the stored profile"
            );
        }
        let mut bad = erika();
        bad.postal_code = "5114".into();
        assert_eq!(
            field_error(app.update_profile(&session, &bad, &client()).await),
            ("postal_code", "profile_postcode_de".to_owned())
        );

        // A verified value stays verified while unchanged and loses it when changed.
        app.set_verified_attributes(
            &id,
            &[("family_name", "Mustermann"), ("birthdate", "1964-08-12")],
            "eID",
        )
        .await
        .unwrap();
        assert!(
            app.update_profile(&session, &erika(), &client())
                .await
                .unwrap()
                .is_empty()
        );
        let profile = app.profile(&id).await.unwrap();
        assert_eq!(
            profile.get("family_name").unwrap().status,
            ValueStatus::Verified
        );
        let mut married = erika();
        married.family_name = "Gabler".into();
        married.phone_number = String::new();
        let changed = app
            .update_profile(&session, &married, &client())
            .await
            .unwrap();
        assert_eq!(changed, ["family_name", "phone_number"]);
        let profile = app.profile(&id).await.unwrap();
        let family = profile.get("family_name").unwrap();
        assert_eq!(
            (family.value.as_str(), family.status),
            ("Gabler", ValueStatus::SelfDeclared)
        );
        assert!(family.verified_by.is_none());
        assert_eq!(
            profile.get("birthdate").unwrap().verified_by.as_deref(),
            Some("eID")
        );
        assert!(profile.get("phone_number").is_none());

        // Prefill: nothing without consent, only the consented scopes with it.
        assert!(
            app.prefill(&id, "wohngeld", &["profile"])
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            app.grant_consent(
                &id,
                "wohngeld",
                "Wohngeld online",
                &["profile", "shoe_size"]
            )
            .await,
            Err(AppError::Invalid(_))
        ));
        app.grant_consent(&id, "wohngeld", "Wohngeld online", &["openid", "profile"])
            .await
            .unwrap();
        let data = app
            .prefill(&id, "wohngeld", &["profile", "address", "email"])
            .await
            .unwrap()
            .unwrap();
        let mut keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["birthdate", "family_name", "given_name"]);
        assert_eq!(data["birthdate"]["value"], "1964-08-12");
        assert_eq!(data["birthdate"]["status"], "verified");
        assert_eq!(data["birthdate"]["verified_by"], "eID");
        assert_eq!(data["given_name"]["status"], "self_declared");
        assert_eq!(
            app.prefill(&id, "wohngeld", &["address"])
                .await
                .unwrap()
                .unwrap(),
            serde_json::json!({})
        );
        // Another service has no consent; a new grant replaces the scopes.
        assert!(
            app.prefill(&id, "other", &["profile"])
                .await
                .unwrap()
                .is_none()
        );
        app.grant_consent(&id, "wohngeld", "Wohngeld online", &["address", "email"])
            .await
            .unwrap();
        let data = app
            .prefill(&id, "wohngeld", &["profile", "address", "email"])
            .await
            .unwrap()
            .unwrap();
        assert!(data.get("given_name").is_none());
        assert_eq!(data["postal_code"]["value"], "51147");
        assert_eq!(data["email"]["value"], email);
        let consents = app.consents(&id).await.unwrap();
        assert_eq!(consents.len(), 1);
        assert_eq!(consents[0].client_name, "Wohngeld online");
        assert_eq!(consents[0].scopes, ["address", "email"]);

        // The export holds the profile (readable), the consents and the memberships.
        let export = app.export_account(&session, &client()).await.unwrap();
        assert_eq!(export["profile"]["family_name"]["value"], "Gabler");
        assert_eq!(export["profile"]["birthdate"]["verified_by"], "eID");
        assert_eq!(export["consents"][0]["client_id"], "wohngeld");
        assert_eq!(export["organisations"], serde_json::json!([]));

        assert!(app.revoke_consent(&id, "wohngeld").await.unwrap());
        assert!(!app.revoke_consent(&id, "wohngeld").await.unwrap());
        assert!(
            app.prefill(&id, "wohngeld", &["address"])
                .await
                .unwrap()
                .is_none()
        );
        assert!(app.consents(&id).await.unwrap().is_empty());
        let events = event_kinds(&app, &session).await;
        for kind in [
            "profile_changed",
            "profile_verified",
            "consent_granted",
            "profile_shared",
            "consent_revoked",
        ] {
            assert!(events.iter().any(|k| k == kind), "{kind}: {events:?}");
        }
    }
}

#[tokio::test]
async fn the_demo_seed_is_idempotent_and_the_last_owner_hands_over_before_leaving() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let db = fresh(backend).await;
        let app = open(&db).await;
        let demo = app
            .seed_demo_accounts("demo-secret-0123456789abcdefghijklmnopq")
            .await
            .unwrap();
        let again = app
            .seed_demo_accounts("demo-secret-0123456789abcdefghijklmnopq")
            .await
            .unwrap();
        assert_eq!(
            demo.postfach_api.citizen_postfach_ref,
            again.postfach_api.citizen_postfach_ref
        );
        assert_eq!(
            demo.organisation.postfach_ref,
            again.organisation.postfach_ref
        );
        let (messages, _) = db
            .store()
            .postfach_counts(&demo.postfach_api.citizen_postfach_ref)
            .await
            .unwrap();
        assert_eq!(messages, 2, "seeded once");
        // Every delivery step is in the journal: three placed messages (two to Anna, one
        // to her organisation).
        let mut seeded = db
            .store()
            .postfach_inbox(&demo.postfach_api.citizen_postfach_ref, 10, 0)
            .await
            .unwrap();
        seeded.extend(
            db.store()
                .postfach_inbox(&demo.organisation.postfach_ref, 10, 0)
                .await
                .unwrap(),
        );
        let mut steps = Vec::new();
        for m in &seeded {
            steps.extend(db.store().postfach_log(&m.id).await.unwrap());
            for r in db.store().postfach_replies(&m.id).await.unwrap() {
                steps.extend(db.store().postfach_log(&r.id).await.unwrap());
            }
        }
        let mut events: Vec<&str> = steps.iter().map(|e| e.event.as_str()).collect();
        events.sort_unstable();
        assert_eq!(events, ["placed", "placed", "placed"]);
        for m in &seeded {
            let salt = m
                .content_salt
                .as_deref()
                .expect("a salt for the content digest");
            let files = db.store().postfach_attachments(&m.id).await.unwrap();
            let digest = store::postfach_content_digest(&m.id, salt, &m.subject, &m.body, &files);
            let placed = db.store().postfach_log(&m.id).await.unwrap();
            let entry = journal::Entry::from_canonical(placed[0].entry.as_bytes()).unwrap();
            assert_eq!(
                entry.digests["content"], digest,
                "the journal commits to the content"
            );
            assert!(
                !placed[0].entry.contains(&m.subject),
                "no personal data in clear"
            );
        }

        let anna_token = logged_in(&app, &demo.citizen.username, &demo.citizen.password).await;
        let anna = app.session(&anna_token).await.unwrap().unwrap();
        assert_eq!(
            field_error(
                app.delete_account(&anna, &demo.citizen.password, &client())
                    .await
            ),
            ("password", "last_owner_of_organisation".to_owned())
        );
        let jonas_token = logged_in(&app, &demo.citizen2.username, &demo.citizen2.password).await;
        let jonas = app.session(&jonas_token).await.unwrap().unwrap();
        app.delete_account(&jonas, &demo.citizen2.password, &client())
            .await
            .unwrap();
        // Now Anna is the organisation's only member: it goes with her account, while the
        // authorities' delivery records stay verifiable.
        app.delete_account(&anna, &demo.citizen.password, &client())
            .await
            .unwrap();
        assert!(
            db.store()
                .organisation_by_postfach_ref(&demo.organisation.postfach_ref)
                .await
                .unwrap()
                .is_none()
        );
        // The delivery records outlive the accounts: the journal keeps every step.
        let mut after = 0;
        for m in &seeded {
            after += db.store().postfach_log(&m.id).await.unwrap().len();
        }
        assert!(after >= 2, "the placed steps are still in the journal");
        app.journal_sequence_once().await.unwrap();
        let logged = db.store().postfach_log(&seeded[0].id).await.unwrap();
        assert!(
            logged.iter().all(|e| e.journal_index.is_some()),
            "sequenced: {logged:?}"
        );
        assert_eq!(
            logged[0].leaf_hash,
            journal::leaf_hash(logged[0].entry.as_bytes()).to_hex()
        );
    }
}

#[tokio::test]
async fn zustelldienst_deadlines_and_key_rotation() {
    use app::zustelldienst::{DestinationSetup, SCOPE_SEND};
    use serde_json::json;
    for backend in backends() {
        let db = fresh(backend).await;
        let app = open(&db).await;
        let (dest, keys) = app
            .zd_setup_destination(DestinationSetup {
                authority_ars: Some("032575403".into()),
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
        assert!(
            keys.is_none(),
            "the platform keeps the keys of its own destinations"
        );
        let sender = app::ApiClient {
            client_id: "sender-1".into(),
            name: "Onlinedienst".into(),
            authority_ars: None,
            scopes: vec![SCOPE_SEND.into()],
        };
        let created = app
            .zd_create_submission(
                &sender,
                zustelldienst::ApiVersion::V1,
                &json!({
                "destinationId": dest, "announcedAttachments": [],
                "serviceType": {"identifier": "urn:de:fim:leika:leistung:99115005104000"}}),
            )
            .await
            .unwrap();
        let sid = created["submissionId"].as_str().unwrap().to_owned();
        let doc = app
            .zd_destination(None, zustelldienst::ApiVersion::V1, &dest)
            .await
            .unwrap();
        let old_kid = doc["encryptionKid"].as_str().unwrap().to_owned();
        let jwk = app.zd_key(&dest, &old_kid).await.unwrap();
        let meta = crypto::jwe::encrypt(
            &crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap(),
            b"{}",
            Some("application/json"),
            None,
            false,
        )
        .unwrap();
        app.zd_submit(
            &sender,
            zustelldienst::ApiVersion::V1,
            &sid,
            &json!({"encryptedMetadata": meta}),
        )
        .await
        .unwrap();

        // Rotation: a new encryption key is published, the old one still decrypts.
        let new_kid = app.zd_rotate_encryption_key(&dest).await.unwrap();
        assert_ne!(new_kid, old_kid);
        let doc = app
            .zd_destination(None, zustelldienst::ApiVersion::V1, &dest)
            .await
            .unwrap();
        assert_eq!(doc["encryptionKid"], new_kid.as_str());
        let old = app
            .zd_decryption_key(&dest, &old_kid)
            .await
            .unwrap()
            .unwrap();
        let plain =
            crypto::jwe::decrypt(&old, &crypto::JweCompact::parse(&meta).unwrap(), 1024).unwrap();
        assert_eq!(&plain.plaintext[..], b"{}");

        let now = time::OffsetDateTime::now_utc();
        assert_eq!(app.zd_deadlines(now).await.unwrap(), (0, 0, 0));
        // After three days the contact hears about it, once.
        assert_eq!(
            app.zd_deadlines(now + time::Duration::days(4))
                .await
                .unwrap(),
            (1, 0, 0)
        );
        assert_eq!(
            app.zd_deadlines(now + time::Duration::days(5))
                .await
                .unwrap(),
            (0, 0, 0)
        );
        assert_eq!(
            mails(&app, "kontakt@nenndorf.example", "zd_unfetched")
                .await
                .len(),
            1
        );
        // After fourteen days it is rejected by the service, with a signed event.
        assert_eq!(
            app.zd_deadlines(now + time::Duration::days(15))
                .await
                .unwrap(),
            (0, 1, 0)
        );
        let s = app.store().submission(&sid).await.unwrap().unwrap();
        assert_eq!(s.status, "rejected");
        let (events, _) = app.store().submission_events(&sid, 10, 0).await.unwrap();
        assert_eq!(events.last().unwrap().event, "reject-submission");
        assert!(app.sign_pending(100).await.unwrap() >= 1);
        // After the retention period the content goes; the event log stays.
        assert_eq!(
            app.zd_deadlines(now + time::Duration::days(15 + 31))
                .await
                .unwrap(),
            (0, 0, 1)
        );
        let s = app.store().submission(&sid).await.unwrap().unwrap();
        assert!(s.encrypted_metadata.is_none() && s.content_deleted_at.is_some());
        assert_eq!(
            app.store().submission_events(&sid, 10, 0).await.unwrap().1,
            3
        );

        // A large attachment lives in a file; a file no row names (a crash between writing
        // it and committing the row) is swept an hour later, the other stays.
        let aid = "3f6b8f64-9c4e-4a4e-9d0b-2f1f6c8e1a01";
        let created = app
            .zd_create_submission(
                &sender,
                zustelldienst::ApiVersion::V1,
                &json!({"destinationId": dest, "announcedAttachments": [aid],
                    "serviceType": {"identifier": "urn:de:fim:leika:leistung:99115005104000"}}),
            )
            .await
            .unwrap();
        let sid2 = created["submissionId"].as_str().unwrap().to_owned();
        let key = crypto::RsaEncryptionKey::from_jwk(&app.zd_key(&dest, &new_kid).await.unwrap())
            .unwrap();
        let big = crypto::jwe::encrypt(&key, &vec![7u8; 400 * 1024], None, None, false).unwrap();
        app.zd_upload_attachment(&sender, &sid2, aid, big.as_bytes())
            .await
            .unwrap();
        let kept = app.store().submission_blob_keys(&sid2).await.unwrap();
        assert_eq!(kept.len(), 1, "stored as a file");
        let orphan = format!("zd/{sid2}/{aid}/never-committed");
        app.blobs().put(&orphan, b"left by a crash").await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        assert_eq!(
            app.zd_sweep_orphan_blobs(now).await.unwrap(),
            0,
            "too young"
        );
        assert_eq!(
            app.zd_sweep_orphan_blobs(now + time::Duration::hours(2))
                .await
                .unwrap(),
            1
        );
        assert!(app.blobs().get(&orphan).await.is_err());
        assert!(app.blobs().get(&kept[0]).await.is_ok());
    }
}
