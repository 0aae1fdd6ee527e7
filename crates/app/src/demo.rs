//! `serve --demo`: the bundled directory and catalogue, plus demo values for everything the
//! reference data lacks. Every demo value is marked (`demo: true`) and shown as such; none
//! pretends to be official. Seeding is idempotent and never overwrites what an
//! administrator changed.

use std::collections::HashSet;

use domain::{Ars, AuthorityKind, Leistungsschluessel, ResponsibleLevel};
use verzeichnis::{
    Address, Authority, AuthorityDetails, Contact, ProcessingDuration, Rule, RuleTarget, Service,
    ServiceDetails,
};

use crate::{App, Result, bundled};

/// The places demo.json names for testers.
pub const AREAS: [(&str, &str); 3] = [
    ("bad_nenndorf", "032575403006"),
    ("hannover", "032410001001"),
    ("goettingen", "031590016016"),
];

/// Hannover and Göttingen carry out tasks of a Kreis themselves (NKomVG § 16 and the
/// Göttingen-Gesetz): rules for Kreis tasks get an exception for them.
const KREIS_LIKE_CITIES: [&str; 2] = ["032410001", "031590016"];

/// Real postcodes of the places the demo names; other places get a demo postcode.
const KNOWN_POSTCODES: [(&str, &str); 11] = [
    ("032410001", "30159"),
    ("031590016", "37073"),
    ("032575403", "31542"),
    ("032575403006", "31542"),
    ("03101", "38100"),
    ("03102", "38226"),
    ("03103", "38440"),
    ("03401", "27749"),
    ("03402", "26721"),
    ("03403", "26122"),
    ("03404", "49074"),
];

/// Member municipalities the Gemeindeverzeichnis does not list but the demo names.
const MEMBERS: [(&str, &str); 1] = [("032575403006", "Bad Nenndorf, Stadt")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Local,
    Kreis,
    /// A Kreis task that Hannover and Göttingen do themselves.
    KreisOrCity,
}

/// Which catalogue services the demo routes, and to whom.
fn demo_routing(key: &Leistungsschluessel) -> Option<Who> {
    let k = key.as_str();
    match k.get(2..5)? {
        "115" | "085" => Some(Who::Local),
        // The federal Berechtigungszertifikat is not a municipal service.
        "008" if !k.starts_with("99008003") => Some(Who::Local),
        "102" if k.starts_with("99102013") => Some(Who::Local),
        "050" if k.starts_with("99050012") => Some(match &k[8..11] {
            "163" | "186" => Who::Kreis,
            _ => Who::Local,
        }),
        "050"
            if ["99050004", "99050013", "99050021", "99050023"]
                .iter()
                .any(|p| k.starts_with(p)) =>
        {
            Some(Who::KreisOrCity)
        }
        "013" => Some(Who::KreisOrCity),
        _ => None,
    }
}

fn ars(s: &str) -> Ars {
    // Only called with the constants above.
    Ars::parse(s).unwrap_or_else(|_| unreachable!("constant ARS {s}"))
}

fn slug(name: &str) -> String {
    let folded = verzeichnis::search::fold(name);
    folded
        .split_whitespace()
        .filter(|w| *w != "stadt" && *w != "landeshauptstadt")
        .collect::<Vec<_>>()
        .join("-")
}

fn demo_details(a: &Authority) -> AuthorityDetails {
    let place = a
        .seat
        .clone()
        .unwrap_or_else(|| a.name.split(", ").next().unwrap_or(&a.name).to_owned());
    let known = KNOWN_POSTCODES
        .iter()
        .find(|(k, _)| *k == a.ars.as_str())
        .map(|(_, p)| (*p).to_owned());
    // A made-up code in Lower Saxony's range, stable per authority, for the rest.
    let zip = known.unwrap_or_else(|| {
        let n: u32 = a
            .ars
            .as_str()
            .bytes()
            .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        format!("{}", 26000 + n % 23000)
    });
    let (street, house) = match a.kind {
        AuthorityKind::Landkreis | AuthorityKind::Region => ("Am Kreishaus", "1"),
        AuthorityKind::Land => ("Platz der Göttinger Sieben", "1"),
        _ => ("Rathausplatz", "1"),
    };
    let domain = format!("{}.rathaus-demo.invalid", slug(&a.display_name()));
    let office = match a.kind {
        AuthorityKind::Landkreis | AuthorityKind::Region | AuthorityKind::Land => "Servicezentrum",
        _ => "Bürgerbüro",
    };
    AuthorityDetails {
        address: Some(Address {
            street: street.into(),
            house_number: house.into(),
            additional: None,
            zip: zip.clone(),
            city: place.clone(),
        }),
        postal_address: Some(Address {
            street: "Postfach".into(),
            house_number: "10 01".into(),
            additional: None,
            zip: zip.clone(),
            city: place,
        }),
        postcodes: vec![zip],
        contacts: vec![Contact {
            name: format!("{office} (Demo)"),
            tel: Some("+49 000 0000-0".into()),
            fax: None,
            email: Some(format!("{}@{domain}", slug(office))),
        }],
        opening_hours: vec![
            "Mo, Di, Fr 08:00–12:00".into(),
            "Do 14:00–18:00 (Demo)".into(),
        ],
        links: Default::default(),
        demo: true,
    }
}

fn demo_service_details(s: &Service) -> ServiceDetails {
    let (legal, docs, fees, min, max, unit) = match s.key.group() {
        "115" => (
            "Bundesmeldegesetz (BMG); Niedersächsisches Ausführungsgesetz zum BMG",
            vec!["Personalausweis oder Reisepass", "Wohnungsgeberbestätigung"],
            "gebührenfrei",
            1,
            1,
            "day",
        ),
        "008" => (
            "Personalausweisgesetz (PAuswG); Personalausweisverordnung (PAuswV)",
            vec!["bisheriger Ausweis", "biometrisches Lichtbild"],
            "37,00 € (unter 24 Jahren 22,80 €)",
            3,
            4,
            "week",
        ),
        "085" => (
            "Passgesetz (PassG); Passverordnung (PassV)",
            vec![
                "bisheriger Pass oder Personalausweis",
                "biometrisches Lichtbild",
            ],
            "70,00 € (unter 24 Jahren 37,50 €)",
            3,
            6,
            "week",
        ),
        "050" => (
            "Gewerbeordnung (GewO)",
            vec![
                "Personalausweis",
                "bei Erlaubnissen: Führungszeugnis, Auskunft aus dem Gewerbezentralregister",
            ],
            "20,00 € bis 40,00 €",
            1,
            10,
            "workday",
        ),
        "102" => (
            "Hundesteuersatzung der Gemeinde; Niedersächsisches Kommunalabgabengesetz (NKAG)",
            vec!["Angaben zum Hund (Rasse, Alter, Chipnummer)"],
            "gebührenfrei",
            1,
            2,
            "week",
        ),
        "013" => (
            "Bürgerliches Gesetzbuch (BGB); Sozialgesetzbuch Achtes Buch (SGB VIII)",
            vec!["Personalausweis", "Geburtsurkunde des Kindes"],
            "gebührenfrei",
            1,
            4,
            "week",
        ),
        _ => ("", vec![], "", 1, 4, "week"),
    };
    ServiceDetails {
        description: Some(format!(
            "{}: Beschreibung der Leistung (Demo-Text, keine amtliche Leistungsbeschreibung).",
            s.name
        )),
        required_documents: docs.into_iter().map(str::to_owned).collect(),
        fees: Some(fees.to_owned()).filter(|f| !f.is_empty()),
        processing_time: Some(ProcessingDuration {
            min,
            max,
            unit: unit.into(),
        }),
        legal_basis: Some(legal.to_owned()).filter(|l| !l.is_empty()),
        deadline: None,
        demo: true,
    }
}

fn legal_texts(a: &Authority, lang: &str) -> [(&'static str, String); 3] {
    let name = a.display_name();
    let d = demo_details(a);
    let addr = d
        .address
        .as_ref()
        .map(|x| format!("{} {}, {} {}", x.street, x.house_number, x.zip, x.city))
        .unwrap_or_default();
    let mail = d
        .contacts
        .first()
        .and_then(|c| c.email.clone())
        .unwrap_or_default();
    if lang == "en" {
        [
            (
                "impressum",
                format!(
                    "DEMO CONTENT – not an official statement.\n\n{name}\n{addr}\nE-mail: {mail}\n\n{name} is a public-law corporation, represented by its chief administrative officer."
                ),
            ),
            (
                "datenschutz",
                format!(
                    "DEMO CONTENT – not an official statement.\n\nController: {name}, {addr}.\n\nThis service processes the data you enter only to find the responsible authority; it stores no personal data for that. Messages sent through the accessibility feedback form are stored so that {name} can answer them and are deleted after the matter is closed."
                ),
            ),
            (
                "barrierefreiheit",
                format!(
                    "DEMO CONTENT – not an official statement.\n\n{name} strives to make its online services accessible in accordance with the Lower Saxony accessibility rules (NBGG) and BITV 2.0.\n\nState of compatibility: these pages are designed to meet WCAG 2.1 level AA; they are tested automatically with axe-core.\n\nFeedback: if you notice barriers, please tell us with the form below or by e-mail to {mail}."
                ),
            ),
        ]
    } else {
        [
            (
                "impressum",
                format!(
                    "DEMO-INHALT – keine amtliche Angabe.\n\n{name}\n{addr}\nE-Mail: {mail}\n\n{name} ist eine Körperschaft des öffentlichen Rechts. Sie wird vertreten durch die Hauptverwaltungsbeamtin oder den Hauptverwaltungsbeamten."
                ),
            ),
            (
                "datenschutz",
                format!(
                    "DEMO-INHALT – keine amtliche Angabe.\n\nVerantwortlich: {name}, {addr}.\n\nDieser Dienst verarbeitet Ihre Eingaben nur, um die zuständige Stelle zu finden; dafür speichert er keine personenbezogenen Daten. Nachrichten aus dem Feedback-Formular zur Barrierefreiheit werden gespeichert, damit {name} sie beantworten kann, und nach Abschluss gelöscht."
                ),
            ),
            (
                "barrierefreiheit",
                format!(
                    "DEMO-INHALT – keine amtliche Angabe.\n\n{name} ist bemüht, ihre Online-Angebote im Einklang mit dem Niedersächsischen Behindertengleichstellungsgesetz (NBGG) und der BITV 2.0 barrierefrei zugänglich zu machen.\n\nStand der Vereinbarkeit: Diese Seiten sind so gestaltet, dass sie WCAG 2.1 Stufe AA erfüllen; sie werden automatisch mit axe-core geprüft.\n\nFeedback: Wenn Ihnen Barrieren auffallen, teilen Sie uns das bitte mit dem Formular unten oder per E-Mail an {mail} mit."
                ),
            ),
        ]
    }
}

/// Bump when the directory part of the demo seed changes, so existing data dirs get it.
const DEMO_DIRECTORY_SEED_VERSION: u32 = 1;
const DEMO_DIRECTORY_SEED_KEY: &str = "demo_directory_seed";

impl App {
    /// Seeds the demo. Safe to run at every start.
    pub async fn seed_demo(&self) -> Result<()> {
        self.seed_demo_directory().await
    }

    /// The directory part of the demo: areas, catalogue, details, legal pages and rules.
    ///
    /// Skipped when this seed version already ran and the directory has not changed since:
    /// checking every row again would load the whole directory a second time at each start,
    /// and the allocator would keep that memory for the life of the process.
    async fn seed_demo_directory(&self) -> Result<()> {
        let store = &self.store;
        let marker = format!(
            "{DEMO_DIRECTORY_SEED_VERSION}:{}",
            store.generation().await?
        );
        if store.meta_get(DEMO_DIRECTORY_SEED_KEY).await?.as_deref() == Some(marker.as_str()) {
            return Ok(());
        }
        if store.load_authorities().await?.is_empty() {
            let rows = verzeichnis::gebiete::parse(bundled::GEBIETE)?;
            let plan = verzeichnis::gebiete::plan(&[], &rows, &Default::default());
            store
                .apply_area_import(
                    &plan,
                    "bundled:niedersachsen-gebiete-2017.csv",
                    &crypto::sha256_hex(bundled::GEBIETE),
                )
                .await?;
        }
        if store.load_services().await?.is_empty() {
            store
                .upsert_services(&verzeichnis::catalogue::parse(bundled::LEIKA)?, false)
                .await?;
        }
        for (member, name) in MEMBERS {
            let ars = ars(member);
            let parent = ars.prefix(domain::ArsLevel::Gemeindeverband);
            let parent_known = match &parent {
                Some(p) => store.authority(p).await?.is_some(),
                None => false,
            };
            if parent_known && store.authority(&ars).await?.is_none() {
                store
                    .insert_authority(
                        &Authority {
                            ars,
                            kind: AuthorityKind::Mitgliedsgemeinde,
                            name: name.into(),
                            seat: None,
                            parent,
                            active: true,
                            successor: None,
                            details: AuthorityDetails::default(),
                        },
                        "demo",
                    )
                    .await?;
            }
        }

        let authorities = store.load_authorities().await?;
        let details: Vec<(Ars, AuthorityDetails)> = authorities
            .iter()
            .filter(|a| a.details == AuthorityDetails::default())
            .map(|a| (a.ars.clone(), demo_details(a)))
            .collect();
        store
            .update_authority_details_many(&details, "demo")
            .await?;

        let mut pages = Vec::new();
        for a in authorities.iter().filter(|a| a.active) {
            for lang in ["de", "en"] {
                for (kind, text) in legal_texts(a, lang) {
                    pages.push((a.ars.clone(), kind, lang, text));
                }
            }
        }
        store.set_legal_pages_if_missing(&pages, true).await?;

        let services = store.load_services().await?;
        let routed: Vec<(&Service, Who)> = services
            .iter()
            .filter_map(|s| demo_routing(&s.key).map(|w| (s, w)))
            .collect();
        let described: Vec<Service> = routed
            .iter()
            .filter(|(s, _)| s.details == ServiceDetails::default())
            .map(|(s, _)| Service {
                details: demo_service_details(s),
                ..(*s).clone()
            })
            .collect();
        store.upsert_services(&described, true).await?;

        let existing: HashSet<(String, String)> = store
            .load_rules()
            .await?
            .into_iter()
            .map(|r| (r.service.to_string(), r.area.to_string()))
            .collect();
        let land = ars("03");
        let mut rules = Vec::new();
        let mut push =
            |service: &Leistungsschluessel, area: Ars, target: RuleTarget, note: &str| {
                if !existing.contains(&(service.to_string(), area.to_string())) {
                    rules.push(Rule {
                        id: uuid::Uuid::new_v4(),
                        service: service.clone(),
                        area,
                        target,
                        note: Some(note.into()),
                    });
                }
            };
        for (s, who) in &routed {
            match who {
                Who::Local => push(
                    &s.key,
                    land.clone(),
                    RuleTarget::Level(ResponsibleLevel::Gemeindeverband),
                    "Demo: Gemeinde/Samtgemeinde",
                ),
                Who::Kreis => push(
                    &s.key,
                    land.clone(),
                    RuleTarget::Level(ResponsibleLevel::Kreis),
                    "Demo: Landkreis/kreisfreie Stadt",
                ),
                Who::KreisOrCity => {
                    push(
                        &s.key,
                        land.clone(),
                        RuleTarget::Level(ResponsibleLevel::Kreis),
                        "Demo: Landkreis/kreisfreie Stadt",
                    );
                    for city in KREIS_LIKE_CITIES {
                        push(
                            &s.key,
                            ars(city),
                            RuleTarget::Authority(ars(city)),
                            "Demo: Stadt mit Sonderstatus",
                        );
                    }
                }
            }
        }
        store.insert_rules(&rules, "demo", false).await?;
        self.after_change().await?;
        let marker = format!(
            "{DEMO_DIRECTORY_SEED_VERSION}:{}",
            store.generation().await?
        );
        store.meta_set(DEMO_DIRECTORY_SEED_KEY, &marker).await?;
        Ok(())
    }
}

/// The demo's people and the Postfach API client, for demo.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoAccounts {
    pub citizen: DemoLogin,
    pub citizen2: DemoLogin,
    pub organisation: DemoOrganisation,
    pub postfach_api: DemoPostfachApi,
    /// The OpenID issuer (the public URL).
    pub issuer: String,
    pub oidc_client: DemoOidcClient,
}

/// A web client (online service) registered with the demo's OpenID provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoOidcClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoLogin {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoOrganisation {
    pub name: String,
    pub postfach_ref: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoPostfachApi {
    pub client_id: String,
    pub client_secret: String,
    pub token_url: String,
    pub citizen_postfach_ref: String,
    pub messages_url: String,
    /// The `fink` reply channel of FIT-Connect naming the citizen's Postfach.
    pub fink_reply_channel: serde_json::Value,
}

// Demo passwords: long, not common, without the names in them (the policy checks that).
const DEMO_CITIZEN: (&str, &str) = (
    "anna.schmidt@demo.rathaus.invalid",
    "Fahrrad Sonnenblume Hafen 7",
);
const DEMO_CITIZEN2: (&str, &str) = (
    "jonas.becker@demo.rathaus.invalid",
    "Leuchtturm Kaffeetasse Wald 3",
);
const DEMO_ORGANISATION: &str = "Bäckerei Schmidt GmbH (Demo)";
const DEMO_CLIENT_ID: &str = "demo-postfach-samtgemeinde-nenndorf";
/// Samtgemeinde Nenndorf, which the demo's Postfach client speaks for.
const DEMO_CLIENT_ARS: &str = "032575403";
const DEMO_OIDC_CLIENT_ID: &str = "demo-onlinedienst";
const DEMO_OIDC_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";
const DEMO_OIDC_POST_LOGOUT_URI: &str = "http://127.0.0.1:8765/logged-out";

/// A small, valid PDF with one line of text, for the demo's attachments.
fn demo_pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 14 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

impl App {
    async fn demo_account(&self, email: &str, password: &str) -> Result<store::AccountRecord> {
        if let Some(a) = self.store.account_by_email(email).await? {
            return Ok(a);
        }
        let hash = self
            .hasher
            .hash(password.to_owned())
            .await
            .map_err(|e| crate::AppError::Internal(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = time::OffsetDateTime::now_utc();
        self.store
            .create_account(
                &store::NewAccount {
                    id: &id,
                    email,
                    password_hash: &hash,
                    lang: "de",
                    postfach_ref: &uuid::Uuid::new_v4().simple().to_string(),
                },
                now,
            )
            .await?;
        self.store.set_email_verified(&id, now).await?;
        self.store
            .account_by_id(&id)
            .await?
            .ok_or_else(|| crate::AppError::Internal("demo account vanished".into()))
    }

    /// The demo's citizens, organisation, Postfach client and messages. Idempotent: what
    /// exists is kept; `client_secret` (kept by the caller across restarts) is (re)set.
    pub async fn seed_demo_accounts(&self, client_secret: &str) -> Result<DemoAccounts> {
        let anna = self.demo_account(DEMO_CITIZEN.0, DEMO_CITIZEN.1).await?;
        let jonas = self.demo_account(DEMO_CITIZEN2.0, DEMO_CITIZEN2.1).await?;
        let now = time::OffsetDateTime::now_utc();

        let org = match self.store.memberships(&anna.id).await?.into_iter().next() {
            Some(m) => m.organisation,
            None => {
                let org = store::OrganisationRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: DEMO_ORGANISATION.into(),
                    postfach_ref: uuid::Uuid::new_v4().simple().to_string(),
                    created_at: store::ts(now),
                };
                self.store.create_organisation(&org, &anna.id).await?;
                let (token, hash) = servicekonto::token::new_token();
                let _ = token;
                self.store
                    .insert_invitation(
                        &store::NewInvitation {
                            token_hash: &hash,
                            organisation_id: &org.id,
                            email: &jonas.email,
                            role: "member",
                            postfach_access: true,
                            invited_by: Some(&anna.id),
                            expires_at: now + time::Duration::days(1),
                        },
                        now,
                    )
                    .await?;
                self.store
                    .accept_invitation(&hash, &jonas.id, &jonas.email, now)
                    .await?;
                org
            }
        };

        self.ensure_demo_client(
            DEMO_CLIENT_ID,
            "Samtgemeinde Nenndorf (Demo-Fachverfahren)",
            Some(DEMO_CLIENT_ARS),
            crate::oauth::SCOPE_POSTFACH_DELIVER,
            &oidc::ClientConfig::default(),
            client_secret,
        )
        .await?;
        // The demo online service's secret follows from the kept secret, so it survives
        // restarts without a second file.
        let oidc_secret =
            crypto::sha256_hex(format!("{client_secret}\noidc-demo-client").as_bytes());
        self.ensure_demo_client(
            DEMO_OIDC_CLIENT_ID,
            "Demo-Onlinedienst Wohnsitzanmeldung",
            None,
            "",
            &oidc::ClientConfig {
                kind: oidc::ClientKind::Web,
                redirect_uris: vec![DEMO_OIDC_REDIRECT_URI.into()],
                post_logout_redirect_uris: vec![DEMO_OIDC_POST_LOGOUT_URI.into()],
                ..oidc::ClientConfig::default()
            },
            &oidc_secret,
        )
        .await?;

        if self.store.postfach_counts(&anna.postfach_ref).await?.0 == 0 {
            self.seed_demo_messages(&anna.postfach_ref, &org.postfach_ref)
                .await?;
        }

        let base = &self.settings.public_url;
        Ok(DemoAccounts {
            citizen: DemoLogin {
                username: DEMO_CITIZEN.0.into(),
                password: DEMO_CITIZEN.1.into(),
            },
            citizen2: DemoLogin {
                username: DEMO_CITIZEN2.0.into(),
                password: DEMO_CITIZEN2.1.into(),
            },
            organisation: DemoOrganisation {
                name: org.name,
                postfach_ref: org.postfach_ref,
                members: vec![anna.email.clone(), jonas.email.clone()],
            },
            issuer: base.clone(),
            oidc_client: DemoOidcClient {
                client_id: DEMO_OIDC_CLIENT_ID.into(),
                client_secret: oidc_secret,
                redirect_uri: DEMO_OIDC_REDIRECT_URI.into(),
                post_logout_redirect_uri: DEMO_OIDC_POST_LOGOUT_URI.into(),
            },
            postfach_api: DemoPostfachApi {
                client_id: DEMO_CLIENT_ID.into(),
                client_secret: client_secret.into(),
                token_url: format!("{base}/oauth/token"),
                citizen_postfach_ref: anna.postfach_ref.clone(),
                messages_url: format!("{base}/api/postfach/v1/messages"),
                fink_reply_channel: serde_json::json!({
                    "fink": {"finkPostfachRef": anna.postfach_ref, "host": format!("{base}/")}
                }),
            },
        })
    }

    /// Creates a demo client or brings its secret and registration up to date.
    async fn ensure_demo_client(
        &self,
        client_id: &str,
        name: &str,
        ars: Option<&str>,
        scopes: &str,
        config: &oidc::ClientConfig,
        secret: &str,
    ) -> Result<()> {
        let digest = self.secret_digest(secret);
        match self.store.oauth_client(client_id).await? {
            Some(c) if c.secret_hash == digest => {}
            Some(_) => {
                self.store
                    .set_oauth_client_secret(client_id, &digest)
                    .await?
            }
            None => {
                self.store
                    .create_oauth_client(
                        &store::OAuthClient {
                            client_id: client_id.into(),
                            secret_hash: digest,
                            name: name.into(),
                            authority_ars: ars.map(Into::into),
                            scopes: scopes.into(),
                            active: true,
                            created_at: String::new(),
                            config: serde_json::to_string(config)
                                .map_err(|e| crate::AppError::Internal(e.to_string()))?,
                        },
                        time::OffsetDateTime::now_utc(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn seed_demo_messages(&self, citizen_ref: &str, org_ref: &str) -> Result<()> {
        let client = crate::oauth::ApiClient {
            client_id: DEMO_CLIENT_ID.into(),
            name: "Samtgemeinde Nenndorf".into(),
            authority_ars: Some(DEMO_CLIENT_ARS.into()),
            scopes: vec![crate::oauth::SCOPE_POSTFACH_DELIVER.into()],
        };
        let mut files = Vec::new();
        for (name, media_type, data) in [
            ("Hundesteuerbescheid-2027.pdf", "application/pdf", demo_pdf("DEMO - Hundesteuerbescheid 2027")),
            ("Zahlungshinweise.txt", "text/plain", "DEMO-INHALT\n\nBitte überweisen Sie 96,00 EUR bis zum 15.02.2027.\nKassenzeichen: DEMO-4711\n".as_bytes().to_vec()),
        ] {
            let (id, key) = self.new_attachment_key();
            let info = self
                .blobs
                .put(&key, &data)
                .await
                .map_err(|e| crate::AppError::Internal(e.to_string()))?;
            files.push(crate::StoredAttachment {
                id,
                filename: name.into(),
                media_type: media_type.into(),
                size: info.size,
                sha256: info.sha256,
                blob_key: key,
            });
        }
        let level1 = domain::TrustLevel::Level1;
        self.deliver_postfach_message(
            &client,
            &crate::NewMessage {
                recipient: citizen_ref.into(),
                subject: "Bescheid über die Hundesteuer 2027 (Demo)".into(),
                body: "Sehr geehrte Frau Schmidt,\n\nanbei erhalten Sie den Bescheid über die Hundesteuer für das Jahr 2027 (DEMO-INHALT, keine amtliche Mitteilung).\n\nSie können auf diese Nachricht antworten, zum Beispiel um eine Lastschrift zu erteilen.\n\nMit freundlichen Grüßen\nIhre Samtgemeinde Nenndorf".into(),
                min_trust_level: level1,
                reply_allowed: true,
            },
            &files,
        )
        .await?;
        self.deliver_postfach_message(
            &client,
            &crate::NewMessage {
                recipient: citizen_ref.into(),
                subject: "Auskunft aus dem Melderegister (Demo)".into(),
                body: "Sehr geehrte Frau Schmidt,\n\ndiese Nachricht enthält Ihre Meldedaten und ist deshalb nur mit Vertrauensniveau 3 (substanziell) lesbar. DEMO-INHALT.".into(),
                min_trust_level: domain::TrustLevel::Level3,
                reply_allowed: false,
            },
            &[],
        )
        .await?;
        self.deliver_postfach_message(
            &client,
            &crate::NewMessage {
                recipient: org_ref.into(),
                subject: "Gewerbeanmeldung: Eingangsbestätigung (Demo)".into(),
                body: "Sehr geehrte Damen und Herren,\n\nIhre Gewerbeanmeldung ist bei uns eingegangen. DEMO-INHALT.".into(),
                min_trust_level: level1,
                reply_allowed: true,
            },
            &[],
        )
        .await?;
        Ok(())
    }
}

/// The demo's FIT-Connect setup, as demo.json shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoFitConnect {
    pub token_url: String,
    pub submission_api_v1: String,
    pub submission_api_v2: String,
    pub sender: DemoClientSecret,
    pub subscriber: DemoClientSecret,
    /// An external-subscriber destination; its private keys are in the two files.
    pub destination_id: String,
    pub service_identifier: String,
    pub decryption_jwk_file: String,
    pub signing_jwk_file: String,
    /// The platform-held destination of Samtgemeinde Nenndorf (its ePoststelle).
    pub epoststelle_destination_id: String,
    /// A registered Fachdaten schema both destinations accept: data naming it is validated
    /// by the ePoststelle.
    pub data_schema_uri: String,
    /// Private JWKs of a destination created in this run, for the caller to write to the
    /// two files (they exist nowhere else).
    #[serde(skip)]
    pub new_private_jwks: Option<(String, String)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

const DEMO_FC_SENDER_ID: &str = "demo-fit-connect-sender";
const DEMO_FC_SUBSCRIBER_ID: &str = "demo-fit-connect-subscriber";
const DEMO_FC_SERVICE: &str = "urn:de:fim:leika:leistung:99115005104000";

impl App {
    /// Seeds the demo's FIT-Connect clients and destinations (once; later runs find them).
    /// `key_files`: where the external destination's private keys are (to be) written.
    pub async fn seed_demo_fit_connect(
        &self,
        client_secret: &str,
        key_files: (&str, &str),
    ) -> Result<DemoFitConnect> {
        let derive =
            |label: &str| crypto::sha256_hex(format!("{client_secret}\n{label}").as_bytes());
        let (sender_secret, subscriber_secret) = (derive("fc-sender"), derive("fc-subscriber"));
        self.ensure_demo_client(
            DEMO_FC_SENDER_ID,
            "Demo-Onlinedienst (FIT-Connect-Sender)",
            None,
            crate::zustelldienst::SCOPE_SEND,
            &oidc::ClientConfig::default(),
            &sender_secret,
        )
        .await?;
        self.ensure_demo_client(
            DEMO_FC_SUBSCRIBER_ID,
            "Demo-Fachverfahren (FIT-Connect-Subscriber)",
            Some(DEMO_CLIENT_ARS),
            &format!(
                "{} {}",
                crate::zustelldienst::SCOPE_SUBSCRIBE,
                crate::zustelldienst::SCOPE_MANAGE
            ),
            &oidc::ClientConfig::default(),
            &subscriber_secret,
        )
        .await?;
        let demo_schema = self
            .register_data_schema(crate::bundled::DEMO_WOHNSITZ_SCHEMA)
            .await?;
        let offer = |region: &str| zustelldienst::ServiceOffer {
            identifier: DEMO_FC_SERVICE.into(),
            submission_schemas: vec![
                zustelldienst::destination::SubmissionSchema {
                    schema_uri: "https://schema.fitko.de/fim/s00000096_1.0.schema.json".into(),
                    mime_type: "application/json".into(),
                },
                zustelldienst::destination::SubmissionSchema {
                    schema_uri: demo_schema.uri.clone(),
                    mime_type: "application/json".into(),
                },
            ],
            regions: vec![region.into()],
        };
        let contact = serde_json::json!({
            "legalName": "Samtgemeinde Nenndorf",
            "address": "Rodenberger Allee 13, 31542 Bad Nenndorf",
            "phone": "+49 5723 704-0",
            "email": "poststelle@nenndorf.example",
        });
        let mut new_private_jwks = None;
        let external = match self.store.meta_get("demo.fc.destination").await? {
            Some(id) if self.store.destination(&id).await?.is_some() => id,
            _ => {
                let (id, keys) = self
                    .zd_setup_destination(crate::zustelldienst::DestinationSetup {
                        authority_ars: Some(DEMO_CLIENT_ARS.into()),
                        services: vec![offer("DE03257")],
                        contact: contact.clone(),
                        held_by_platform: false,
                        clients: vec![DEMO_FC_SUBSCRIBER_ID.into()],
                    })
                    .await?;
                if let Some(k) = keys {
                    new_private_jwks = Some((
                        k.encryption.private_jwk().to_string(),
                        k.signing.private_jwk().to_string(),
                    ));
                }
                self.store.meta_set("demo.fc.destination", &id).await?;
                id
            }
        };
        let epoststelle = match self.store.meta_get("demo.fc.epoststelle").await? {
            Some(id) if self.store.destination(&id).await?.is_some() => id,
            _ => {
                let (id, _) = self
                    .zd_setup_destination(crate::zustelldienst::DestinationSetup {
                        authority_ars: Some(DEMO_CLIENT_ARS.into()),
                        services: vec![offer("DE03257")],
                        contact,
                        held_by_platform: true,
                        clients: Vec::new(),
                    })
                    .await?;
                self.store.meta_set("demo.fc.epoststelle", &id).await?;
                id
            }
        };
        let base = &self.settings.public_url;
        Ok(DemoFitConnect {
            token_url: format!("{base}/oauth/token"),
            submission_api_v1: format!("{base}/submission-api/v1"),
            submission_api_v2: format!("{base}/submission-api/v2"),
            sender: DemoClientSecret {
                client_id: DEMO_FC_SENDER_ID.into(),
                client_secret: sender_secret,
            },
            subscriber: DemoClientSecret {
                client_id: DEMO_FC_SUBSCRIBER_ID.into(),
                client_secret: subscriber_secret,
            },
            destination_id: external,
            service_identifier: DEMO_FC_SERVICE.into(),
            decryption_jwk_file: key_files.0.into(),
            signing_jwk_file: key_files.1.into(),
            epoststelle_destination_id: epoststelle,
            data_schema_uri: demo_schema.uri,
            new_private_jwks,
        })
    }
}
