use domain::{Ars, AuthorityKind, DestinationId, Leistungsschluessel, ResponsibleLevel};
use serde::{Deserialize, Serialize};

/// A Behörde in the directory, keyed by its significant ARS (5 digits for a Landkreis, 9 for a
/// Samtgemeinde or Einheitsgemeinde, 12 for a member municipality).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authority {
    pub ars: Ars,
    pub kind: AuthorityKind,
    /// The name as the Gemeindeverzeichnis writes it, e.g. "Braunschweig, Stadt".
    pub name: String,
    pub seat: Option<String>,
    pub parent: Option<Ars>,
    pub active: bool,
    /// Where a merged or dissolved authority's responsibilities went.
    pub successor: Option<Ars>,
    pub details: AuthorityDetails,
}

impl Authority {
    /// The name a citizen recognises, e.g. "Samtgemeinde Nenndorf", "Stadt Braunschweig".
    pub fn display_name(&self) -> String {
        display_name(self.kind, &self.name)
    }

    pub fn destination_id(&self) -> DestinationId {
        DestinationId::for_authority(&self.ars)
    }

    /// The 12-digit key of the place this authority *is*, where it is one (an Einheitsgemeinde
    /// or kreisfreie Stadt): Destatis numbers a verbandsfreie Gemeinde's Gemeindeverband as
    /// "0" + its Gemeinde code, so Hannover 032410001 is the place 032410001001.
    pub fn place_ars(&self) -> Option<Ars> {
        let s = self.ars.as_str();
        match (self.kind, s.len()) {
            (AuthorityKind::Mitgliedsgemeinde, 12) => Some(self.ars.clone()),
            (AuthorityKind::Einheitsgemeinde, 9) if s.as_bytes()[5] == b'0' => {
                Ars::parse(&format!("{}{}", s, &s[6..9])).ok()
            }
            (AuthorityKind::KreisfreieStadt, 5) => Ars::parse(&format!("{s}0000000")).ok(),
            _ => None,
        }
    }
}

pub fn display_name(kind: AuthorityKind, name: &str) -> String {
    // "Braunschweig, Stadt" → "Stadt Braunschweig"; "Hannover, Landeshauptstadt" → "Landeshauptstadt Hannover"
    let turned = match name.split_once(", ") {
        Some((place, title)) if !title.contains("gemfr") => format!("{title} {place}"),
        _ => name.to_owned(),
    };
    match kind {
        AuthorityKind::Land => format!("Land {turned}"),
        AuthorityKind::Landkreis if !turned.starts_with("Landkreis") => {
            format!("Landkreis {turned}")
        }
        AuthorityKind::Samtgemeinde if !turned.starts_with("Samtgemeinde") => {
            format!("Samtgemeinde {turned}")
        }
        AuthorityKind::Einheitsgemeinde | AuthorityKind::Mitgliedsgemeinde
            if !name.contains(", ") =>
        {
            format!("Gemeinde {turned}")
        }
        _ => turned,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorityDetails {
    pub address: Option<Address>,
    pub postal_address: Option<Address>,
    pub postcodes: Vec<String>,
    pub contacts: Vec<Contact>,
    /// One line per rule, e.g. "Mo–Fr 08:00–12:00".
    pub opening_hours: Vec<String>,
    pub links: WebLinks,
    /// Filled in by `serve --demo`, not from an official source: pages and APIs say so.
    pub demo: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub street: String,
    pub house_number: String,
    pub additional: Option<String>,
    pub zip: String,
    pub city: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    pub name: String,
    pub tel: Option<String>,
    pub fax: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebLinks {
    pub homepage: Option<String>,
    pub imprint: Option<String>,
    pub privacy_policy: Option<String>,
    pub accessibility: Option<String>,
    pub contact_form: Option<String>,
    pub logo: Option<String>,
}

/// A Leistung of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub key: Leistungsschluessel,
    pub name: String,
    /// FIM Typisierung (1 = Bund … 4/5 = Land/Kommune), as text because the catalogue writes "2/3".
    pub typisierung: String,
    pub details: ServiceDetails,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceDetails {
    pub description: Option<String>,
    pub required_documents: Vec<String>,
    pub fees: Option<String>,
    pub processing_time: Option<ProcessingDuration>,
    pub legal_basis: Option<String>,
    pub deadline: Option<String>,
    pub demo: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessingDuration {
    pub min: u32,
    pub max: u32,
    /// One of FIT-Connect's units: year, month, week, day, workday, hour, minute, second.
    pub unit: String,
}

/// A responsibility rule: for `service` in `area` (and everything inside it, unless a more
/// specific rule says otherwise) the `target` is responsible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: uuid::Uuid,
    pub service: Leistungsschluessel,
    pub area: Ars,
    pub target: RuleTarget,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTarget {
    /// This very authority.
    Authority(Ars),
    /// The authority of that level which contains the place asked about.
    Level(ResponsibleLevel),
}

/// The signed addressing information of a destination, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationRecord {
    pub id: DestinationId,
    pub authority: Ars,
    pub status: String,
    /// Per Leistungsgruppe (e.g. "115"): the compact JWS over the destination's services of
    /// that group and their areas (FIT-Connect destinationSignature), and the SHA-256 of the
    /// claims it signed, so that only what changed is signed again.
    pub signatures: std::collections::BTreeMap<String, SignedScope>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedScope {
    pub signature: String,
    pub claims_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_read_naturally() {
        assert_eq!(
            display_name(AuthorityKind::KreisfreieStadt, "Braunschweig, Stadt"),
            "Stadt Braunschweig"
        );
        assert_eq!(
            display_name(AuthorityKind::Samtgemeinde, "Nenndorf"),
            "Samtgemeinde Nenndorf"
        );
        assert_eq!(
            display_name(AuthorityKind::Landkreis, "Göttingen"),
            "Landkreis Göttingen"
        );
        assert_eq!(
            display_name(AuthorityKind::Region, "Region Hannover"),
            "Region Hannover"
        );
        assert_eq!(
            display_name(
                AuthorityKind::Einheitsgemeinde,
                "Hannover, Landeshauptstadt"
            ),
            "Landeshauptstadt Hannover"
        );
        assert_eq!(
            display_name(AuthorityKind::Einheitsgemeinde, "Wedemark"),
            "Gemeinde Wedemark"
        );
        assert_eq!(
            display_name(AuthorityKind::GemeindefreiesGebiet, "Giebel, gemfr. Gebiet"),
            "Giebel, gemfr. Gebiet"
        );
    }
}
