//! Import of the Leistungskatalog (columns `leistungsschluessel,bezeichnung,typisierung`).

use domain::Leistungsschluessel;

use crate::gebiete::ImportError;
use crate::model::{Service, ServiceDetails};

pub const MAX_ROWS: usize = 100_000;

pub fn parse(csv_text: &[u8]) -> Result<Vec<Service>, ImportError> {
    let mut reader = csv::Reader::from_reader(csv_text);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Csv {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(c_key), Some(c_name)) = (col("leistungsschluessel"), col("bezeichnung")) else {
        return Err(ImportError::Header(
            "leistungsschluessel,bezeichnung[,typisierung]",
        ));
    };
    let c_typ = col("typisierung");
    let mut out: Vec<Service> = Vec::new();
    let mut seen = std::collections::HashSet::new();
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
        let key = Leistungsschluessel::parse(field(c_key)).map_err(|e| ImportError::Row {
            line,
            message: e.to_string(),
        })?;
        let name = field(c_name).to_owned();
        if name.is_empty() {
            return Err(ImportError::Row {
                line,
                message: "the name (bezeichnung) is empty".into(),
            });
        }
        // The published catalogue repeats a few keys; the first naming wins.
        if !seen.insert(key.clone()) {
            continue;
        }
        out.push(Service {
            key,
            name,
            typisierung: c_typ.map(|c| field(c).to_owned()).unwrap_or_default(),
            details: ServiceDetails::default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_keys_and_names() {
        let text = "leistungsschluessel,bezeichnung,typisierung\n99115005104000,Wohnsitz Anmeldung,2/3\n99115005104000,dup,2/3\n";
        let s = super::parse(text.as_bytes()).expect("parses");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "Wohnsitz Anmeldung");
        let bad = "leistungsschluessel,bezeichnung\n12,x\n";
        assert!(super::parse(bad.as_bytes()).is_err());
    }
}
