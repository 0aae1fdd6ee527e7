use serde::{Deserialize, Serialize};

/// The legal kind of an authority (Behörde) in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorityKind {
    Land,
    Landkreis,
    Region,
    KreisfreieStadt,
    Einheitsgemeinde,
    Samtgemeinde,
    Mitgliedsgemeinde,
    GemeindefreiesGebiet,
}

impl AuthorityKind {
    pub const ALL: [AuthorityKind; 8] = [
        AuthorityKind::Land,
        AuthorityKind::Landkreis,
        AuthorityKind::Region,
        AuthorityKind::KreisfreieStadt,
        AuthorityKind::Einheitsgemeinde,
        AuthorityKind::Samtgemeinde,
        AuthorityKind::Mitgliedsgemeinde,
        AuthorityKind::GemeindefreiesGebiet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthorityKind::Land => "land",
            AuthorityKind::Landkreis => "landkreis",
            AuthorityKind::Region => "region",
            AuthorityKind::KreisfreieStadt => "kreisfreie-stadt",
            AuthorityKind::Einheitsgemeinde => "einheitsgemeinde",
            AuthorityKind::Samtgemeinde => "samtgemeinde",
            AuthorityKind::Mitgliedsgemeinde => "mitgliedsgemeinde",
            AuthorityKind::GemeindefreiesGebiet => "gemeindefreies-gebiet",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// German display name, as used in the Routing API's area `type`.
    pub fn label_de(self) -> &'static str {
        match self {
            AuthorityKind::Land => "Land",
            AuthorityKind::Landkreis => "Landkreis",
            AuthorityKind::Region => "Region",
            AuthorityKind::KreisfreieStadt => "Kreisfreie Stadt",
            AuthorityKind::Einheitsgemeinde => "Einheitsgemeinde",
            AuthorityKind::Samtgemeinde => "Samtgemeinde",
            AuthorityKind::Mitgliedsgemeinde => "Mitgliedsgemeinde",
            AuthorityKind::GemeindefreiesGebiet => "Gemeindefreies Gebiet",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            AuthorityKind::Land => "State",
            AuthorityKind::Landkreis => "District",
            AuthorityKind::Region => "Region",
            AuthorityKind::KreisfreieStadt => "District-free city",
            AuthorityKind::Einheitsgemeinde => "Municipality",
            AuthorityKind::Samtgemeinde => "Joint municipality (Samtgemeinde)",
            AuthorityKind::Mitgliedsgemeinde => "Member municipality",
            AuthorityKind::GemeindefreiesGebiet => "Unincorporated area",
        }
    }

    /// Whether the authority itself provides citizen services. A gemeindefreies Gebiet has no
    /// administration of its own (the Landkreis acts for it), and a Mitgliedsgemeinde leaves
    /// most services to its Samtgemeinde.
    pub fn administers(self) -> bool {
        !matches!(
            self,
            AuthorityKind::GemeindefreiesGebiet | AuthorityKind::Mitgliedsgemeinde
        )
    }
}

/// The level a responsibility rule delegates to: "the authority of this level that contains
/// the place", so that one rule covers all of Lower Saxony instead of one rule per authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponsibleLevel {
    /// Einheitsgemeinde, Samtgemeinde or kreisfreie Stadt (the local authority).
    Gemeindeverband,
    /// Landkreis, Region or kreisfreie Stadt.
    Kreis,
    Land,
}

impl ResponsibleLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponsibleLevel::Gemeindeverband => "gemeindeverband",
            ResponsibleLevel::Kreis => "kreis",
            ResponsibleLevel::Land => "land",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "gemeindeverband" => Some(ResponsibleLevel::Gemeindeverband),
            "kreis" => Some(ResponsibleLevel::Kreis),
            "land" => Some(ResponsibleLevel::Land),
            _ => None,
        }
    }
}
