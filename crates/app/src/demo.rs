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
