//! Import of the Destatis Gemeindeverzeichnis (columns `ebene,ars,name,typ,sitz`) and the
//! plan that brings a stored directory up to date with a newer edition.

use std::collections::{BTreeMap, HashMap};

use domain::{Ars, AuthorityKind};

use crate::model::{Authority, AuthorityDetails};

/// Largest Gemeindeverzeichnis we accept; Germany has about 11,000 Gemeinden.
pub const MAX_ROWS: usize = 50_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("the file has no header line with the columns {0}")]
    Header(&'static str),
    #[error("the file has more than {MAX_ROWS} rows")]
    TooLarge,
    #[error("line {line}: could not read CSV: {message}")]
    Csv { line: u64, message: String },
}

/// One authority as the Gemeindeverzeichnis describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct GebietRow {
    pub ars: Ars,
    pub kind: AuthorityKind,
    pub name: String,
    pub seat: Option<String>,
    pub parent: Option<Ars>,
}

const COLUMNS: &str = "ebene,ars,name,typ,sitz";

/// Parses the file and merges the rows that name the same authority (a kreisfreie Stadt is
/// listed as a Kreis and again as its own Gemeindeverband).
pub fn parse(csv_text: &[u8]) -> Result<Vec<GebietRow>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(csv_text);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Csv {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(c_ebene), Some(c_ars), Some(c_name), Some(c_typ), Some(c_sitz)) = (
        col("ebene"),
        col("ars"),
        col("name"),
        col("typ"),
        col("sitz"),
    ) else {
        return Err(ImportError::Header(COLUMNS));
    };
    let mut by_ars: BTreeMap<Ars, GebietRow> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        if i >= MAX_ROWS {
            return Err(ImportError::TooLarge);
        }
        let record = record.map_err(|e| ImportError::Csv {
            line,
            message: e.to_string(),
        })?;
        let field = |c: usize| record.get(c).unwrap_or("").trim();
        let row_err = |message: String| ImportError::Row { line, message };
        let padded = Ars::parse(field(c_ars)).map_err(|e| row_err(e.to_string()))?;
        if padded.as_str().len() != 12 {
            return Err(row_err(format!(
                "the ARS must have 12 digits, got {padded}"
            )));
        }
        let ars = padded.significant();
        let name = field(c_name).to_owned();
        if name.is_empty() {
            return Err(row_err("the name is empty".into()));
        }
        let kind = match (field(c_ebene), field(c_typ)) {
            ("land", _) => AuthorityKind::Land,
            ("kreis", "kreisfreie-stadt") => AuthorityKind::KreisfreieStadt,
            ("kreis", _) if name.starts_with("Region ") => AuthorityKind::Region,
            ("kreis", "landkreis" | "kreis") => AuthorityKind::Landkreis,
            ("gemeindeverband", "samtgemeinde") => AuthorityKind::Samtgemeinde,
            ("gemeindeverband", _) if ars.as_str().len() == 5 => AuthorityKind::KreisfreieStadt,
            // Destatis numbers gemeindefreie Gebiete 9xxx in the Gemeindeverband part.
            ("gemeindeverband", _) if ars.as_str().as_bytes()[5] == b'9' => {
                AuthorityKind::GemeindefreiesGebiet
            }
            ("gemeindeverband", "verbandsfreie-gemeinde" | "") => AuthorityKind::Einheitsgemeinde,
            ("gemeinde", _) => AuthorityKind::Mitgliedsgemeinde,
            (e, t) => return Err(row_err(format!("unknown level/type {e:?}/{t:?}"))),
        };
        let parent = parent_of(&ars, kind);
        let seat = Some(field(c_sitz))
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let row = GebietRow {
            ars: ars.clone(),
            kind,
            name,
            seat,
            parent,
        };
        match by_ars.get_mut(&ars) {
            // The Kreis row of a kreisfreie Stadt wins; its Gemeindeverband row adds nothing.
            Some(existing) if existing.kind == AuthorityKind::KreisfreieStadt => {
                if existing.seat.is_none() {
                    existing.seat = row.seat;
                }
            }
            Some(_) => return Err(row_err(format!("the ARS {} appears twice", padded))),
            None => {
                by_ars.insert(ars, row);
            }
        }
    }
    Ok(by_ars.into_values().collect())
}

/// The authority one level up: Mitgliedsgemeinde → Samtgemeinde → Kreis → Land.
pub fn parent_of(ars: &Ars, kind: AuthorityKind) -> Option<Ars> {
    use domain::ArsLevel;
    match kind {
        AuthorityKind::Land => None,
        AuthorityKind::Landkreis | AuthorityKind::Region | AuthorityKind::KreisfreieStadt => {
            ars.prefix(ArsLevel::Land)
        }
        AuthorityKind::Mitgliedsgemeinde => ars.prefix(ArsLevel::Gemeindeverband),
        _ => ars.prefix(ArsLevel::Kreis),
    }
}

/// What an import changes, decided before anything is written.
#[derive(Debug, Default, PartialEq)]
pub struct ImportPlan {
    pub insert: Vec<Authority>,
    /// (before, after)
    pub update: Vec<(Authority, Authority)>,
    /// (before, after): active authorities missing from the new edition.
    pub deactivate: Vec<(Authority, Authority)>,
    pub unchanged: usize,
}

impl ImportPlan {
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.update.is_empty() && self.deactivate.is_empty()
    }
}

/// Compares a new edition with the stored authorities.
///
/// `successors` maps the ARS of an authority that disappears to the one that took over (a
/// merger); Destatis publishes such changes separately from the Gemeindeverzeichnis.
/// Authorities the file does not cover at all (other Länder, member municipalities added by
/// hand) are left alone: only those whose Land the file describes can be deactivated.
pub fn plan(
    existing: &[Authority],
    rows: &[GebietRow],
    successors: &HashMap<Ars, Ars>,
) -> ImportPlan {
    let mut plan = ImportPlan::default();
    let stored: HashMap<&Ars, &Authority> = existing.iter().map(|a| (&a.ars, a)).collect();
    let lands: Vec<&str> = rows.iter().map(|r| &r.ars.as_str()[..2]).collect();
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        seen.insert(&row.ars);
        match stored.get(&row.ars) {
            None => plan.insert.push(Authority {
                ars: row.ars.clone(),
                kind: row.kind,
                name: row.name.clone(),
                seat: row.seat.clone(),
                parent: row.parent.clone(),
                active: true,
                successor: None,
                details: AuthorityDetails::default(),
            }),
            Some(before) => {
                let mut after = (*before).clone();
                after.kind = row.kind;
                after.name = row.name.clone();
                after.seat = row.seat.clone();
                after.parent = row.parent.clone();
                after.active = true;
                after.successor = None;
                if after == **before {
                    plan.unchanged += 1;
                } else {
                    plan.update.push(((*before).clone(), after));
                }
            }
        }
    }
    for before in existing {
        let covered = lands.contains(&&before.ars.as_str()[..2]);
        let from_gemeindeverzeichnis = before.kind != AuthorityKind::Mitgliedsgemeinde;
        if before.active && covered && from_gemeindeverzeichnis && !seen.contains(&before.ars) {
            let mut after = before.clone();
            after.active = false;
            after.successor = successors.get(&before.ars).cloned();
            plan.deactivate.push((before.clone(), after));
        }
    }
    plan
}

/// Reads a successor map with the columns `ars,nachfolger_ars`.
pub fn parse_successors(csv_text: &[u8]) -> Result<HashMap<Ars, Ars>, ImportError> {
    let mut reader = csv::Reader::from_reader(csv_text);
    let mut map = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| ImportError::Csv {
            line,
            message: e.to_string(),
        })?;
        let parse = |c: usize| {
            Ars::parse(record.get(c).unwrap_or(""))
                .map(|a| a.significant())
                .map_err(|e| ImportError::Row {
                    line,
                    message: e.to_string(),
                })
        };
        map.insert(parse(0)?, parse(1)?);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "ebene,ars,name,typ,sitz
land,030000000000,Niedersachsen,,Hannover
kreis,031010000000,\"Braunschweig, Stadt\",kreisfreie-stadt,Braunschweig
kreis,032410000000,Region Hannover,landkreis,Hannover
kreis,032570000000,Schaumburg,landkreis,Stadthagen
gemeindeverband,031010000000,\"Braunschweig, Stadt\",verbandsfreie-gemeinde,
gemeindeverband,032410001000,\"Hannover, Landeshauptstadt\",verbandsfreie-gemeinde,
gemeindeverband,032575403000,Nenndorf,samtgemeinde,Bad Nenndorf
gemeindeverband,031519501000,\"Giebel, gemfr. Gebiet\",verbandsfreie-gemeinde,
";

    fn a(s: &str) -> Ars {
        Ars::parse(s).expect("valid ARS")
    }

    #[test]
    fn parses_and_merges_kreisfreie_staedte() {
        let rows = parse(SAMPLE.as_bytes()).expect("parses");
        assert_eq!(rows.len(), 7);
        let get = |s: &str| rows.iter().find(|r| r.ars == a(s)).expect("present");
        assert_eq!(get("03").kind, AuthorityKind::Land);
        assert_eq!(get("03101").kind, AuthorityKind::KreisfreieStadt);
        assert_eq!(get("03101").seat.as_deref(), Some("Braunschweig"));
        assert_eq!(get("03241").kind, AuthorityKind::Region);
        assert_eq!(get("032575403").kind, AuthorityKind::Samtgemeinde);
        assert_eq!(get("032575403").parent, Some(a("03257")));
        assert_eq!(get("031519501").kind, AuthorityKind::GemeindefreiesGebiet);
        assert_eq!(get("032410001").kind, AuthorityKind::Einheitsgemeinde);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let bad = "ebene,ars,name,typ,sitz\nland,0300,Niedersachsen,,Hannover\n";
        let err = parse(bad.as_bytes()).expect_err("rejects");
        assert!(matches!(err, ImportError::Row { line: 2, .. }), "{err:?}");
        assert_eq!(
            parse(b"a,b\n1,2\n").expect_err("no header"),
            ImportError::Header(COLUMNS)
        );
    }

    #[test]
    fn plan_is_idempotent_and_tracks_mergers() {
        let rows = parse(SAMPLE.as_bytes()).expect("parses");
        let first = plan(&[], &rows, &HashMap::new());
        assert_eq!(first.insert.len(), 7);
        let stored = first.insert.clone();
        let again = plan(&stored, &rows, &HashMap::new());
        assert!(again.is_empty());
        assert_eq!(again.unchanged, 7);

        // A newer edition: Nenndorf merged into a new Einheitsgemeinde, Schaumburg renamed.
        let newer = SAMPLE
            .replace(
                "gemeindeverband,032575403000,Nenndorf,samtgemeinde,Bad Nenndorf\n",
                "gemeindeverband,032570042000,Bad Nenndorf,verbandsfreie-gemeinde,\n",
            )
            .replace("Schaumburg,landkreis", "Schaumburg-Neu,landkreis");
        let rows2 = parse(newer.as_bytes()).expect("parses");
        let successors = HashMap::from([(a("032575403"), a("032570042"))]);
        let p = plan(&stored, &rows2, &successors);
        assert_eq!(p.insert.len(), 1);
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1.name, "Schaumburg-Neu");
        assert_eq!(p.deactivate.len(), 1);
        assert_eq!(p.deactivate[0].1.successor, Some(a("032570042")));
        assert!(!p.deactivate[0].1.active);
    }
}
