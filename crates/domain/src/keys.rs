use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a key did not parse. The message is meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "an ARS (Amtlicher Regionalschlüssel) has 2, 3, 5, 9 or 12 digits, e.g. 032575403006; got {0:?}"
    )]
    Ars(String),
    #[error(
        "an AGS (Amtlicher Gemeindeschlüssel) has 2, 3, 5 or 8 digits, e.g. 03241001; got {0:?}"
    )]
    Ags(String),
    #[error(
        "a Leistungsschlüssel has 14 digits and starts with 99, e.g. 99115005104000; got {0:?}"
    )]
    Leistungsschluessel(String),
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The level an ARS prefix addresses, by its number of significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArsLevel {
    Land,
    Regierungsbezirk,
    Kreis,
    Gemeindeverband,
    Gemeinde,
}

impl ArsLevel {
    pub const fn digits(self) -> usize {
        match self {
            ArsLevel::Land => 2,
            ArsLevel::Regierungsbezirk => 3,
            ArsLevel::Kreis => 5,
            ArsLevel::Gemeindeverband => 9,
            ArsLevel::Gemeinde => 12,
        }
    }

    fn from_digits(n: usize) -> Option<Self> {
        Some(match n {
            2 => ArsLevel::Land,
            3 => ArsLevel::Regierungsbezirk,
            5 => ArsLevel::Kreis,
            9 => ArsLevel::Gemeindeverband,
            12 => ArsLevel::Gemeinde,
            _ => return None,
        })
    }

    /// From the most specific to the least specific level.
    pub const SPECIFIC_FIRST: [ArsLevel; 5] = [
        ArsLevel::Gemeinde,
        ArsLevel::Gemeindeverband,
        ArsLevel::Kreis,
        ArsLevel::Regierungsbezirk,
        ArsLevel::Land,
    ];
}

/// An Amtlicher Regionalschlüssel or one of its prefixes (2, 3, 5, 9 or 12 digits).
///
/// The directory stores areas under their *significant* prefix: a Landkreis under 5 digits,
/// a Samtgemeinde under 9, a place under 12. Twelve-digit keys with trailing zeros, as
/// Destatis writes them for higher levels, are shortened by [`Ars::significant`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ars(String);

impl Ars {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if all_digits(s) && ArsLevel::from_digits(s.len()).is_some() {
            Ok(Ars(s.to_owned()))
        } else {
            Err(ParseError::Ars(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> ArsLevel {
        ArsLevel::from_digits(self.0.len()).unwrap_or(ArsLevel::Gemeinde)
    }

    /// The prefix at `level`, if this key is at least that specific.
    pub fn prefix(&self, level: ArsLevel) -> Option<Ars> {
        (self.0.len() >= level.digits()).then(|| Ars(self.0[..level.digits()].to_owned()))
    }

    /// This key and every shorter prefix, most specific first.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> + '_ {
        ArsLevel::SPECIFIC_FIRST
            .into_iter()
            .filter(|l| l.digits() <= self.0.len())
            .map(|l| &self.0[..l.digits()])
    }

    /// Whether `other` lies inside the area this key addresses.
    pub fn contains(&self, other: &Ars) -> bool {
        other.0.starts_with(&self.0)
    }

    /// The 12-digit form with trailing zeros, as Destatis publishes it.
    pub fn padded(&self) -> String {
        format!("{:0<12}", self.0)
    }

    /// Drops trailing all-zero parts: `031010000000` (Braunschweig) → `031010000000` stays a
    /// place only if its Gemeinde part is non-zero; `032575403000` → `032575403`.
    pub fn significant(&self) -> Ars {
        let s = self.0.as_str();
        let mut keep = s.len();
        for level in ArsLevel::SPECIFIC_FIRST.into_iter().skip(1) {
            let cut = level.digits();
            if cut < keep && s[cut..keep].bytes().all(|b| b == b'0') {
                keep = cut;
            } else {
                break;
            }
        }
        Ars(s[..keep].to_owned())
    }

    /// The AGS of a 12-digit place key (Land, RB, Kreis + Gemeinde digits).
    pub fn ags(&self) -> Option<Ags> {
        (self.0.len() == 12).then(|| Ags(format!("{}{}", &self.0[..5], &self.0[9..])))
    }

    /// The FIT-Connect / XZuFi area URN.
    pub fn urn(&self) -> String {
        format!(
            "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:{}",
            self.0
        )
    }
}

impl fmt::Display for Ars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Ars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ars({})", self.0)
    }
}
impl TryFrom<String> for Ars {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Ars::parse(&s)
    }
}
impl From<Ars> for String {
    fn from(a: Ars) -> String {
        a.0
    }
}

/// An Amtlicher Gemeindeschlüssel (8 digits) or a prefix of it (2, 3, 5 digits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ags(String);

impl Ags {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if all_digits(s) && matches!(s.len(), 2 | 3 | 5 | 8) {
            Ok(Ags(s.to_owned()))
        } else {
            Err(ParseError::Ags(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Prefixes up to the Kreis are the same in AGS and ARS.
    pub fn as_ars_prefix(&self) -> Option<Ars> {
        (self.0.len() <= 5).then(|| Ars(self.0.clone()))
    }
}
impl fmt::Display for Ags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Ags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ags({})", self.0)
    }
}
impl TryFrom<String> for Ags {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Ags::parse(&s)
    }
}
impl From<Ags> for String {
    fn from(a: Ags) -> String {
        a.0
    }
}

/// A Leistungsschlüssel (LeiKa/FIM service key): `99` + group, object, Verrichtung, detail.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Leistungsschluessel(String);

impl Leistungsschluessel {
    pub const URN_PREFIX: &'static str = "urn:de:fim:leika:leistung:";

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let s = s.strip_prefix(Self::URN_PREFIX).unwrap_or(s);
        if s.len() == 14 && all_digits(s) && s.starts_with("99") {
            Ok(Leistungsschluessel(s.to_owned()))
        } else {
            Err(ParseError::Leistungsschluessel(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn urn(&self) -> String {
        format!("{}{}", Self::URN_PREFIX, self.0)
    }
    /// The three-digit Leistungsgruppe, e.g. `115` Meldewesen.
    pub fn group(&self) -> &str {
        &self.0[2..5]
    }
}
impl fmt::Display for Leistungsschluessel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Leistungsschluessel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Leistungsschluessel({})", self.0)
    }
}
impl TryFrom<String> for Leistungsschluessel {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Leistungsschluessel::parse(&s)
    }
}
impl From<Leistungsschluessel> for String {
    fn from(k: Leistungsschluessel) -> String {
        k.0
    }
}

/// The id of a FIT-Connect destination (Zustellpunkt).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DestinationId(pub uuid::Uuid);

impl DestinationId {
    /// Destinations created for directory entries get a name-based id, so that a fresh install
    /// of the same Gemeindeverzeichnis gives every authority the same destination id.
    pub fn for_authority(ars: &Ars) -> Self {
        const NAMESPACE: uuid::Uuid =
            uuid::Uuid::from_u128(0x6f2c_1d7e_8a1b_4c59_9e0f_5b7a_2d3c_4e10);
        DestinationId(uuid::Uuid::new_v5(
            &NAMESPACE,
            format!("rathaus:destination:{ars}").as_bytes(),
        ))
    }
}
impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ars_parses_only_known_lengths() {
        for ok in ["03", "031", "03257", "032575403", "032575403006"] {
            assert!(Ars::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0",
            "0325",
            "03257540300",
            "0325754030061",
            "03257a",
            "03 257",
        ] {
            assert!(Ars::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn significant_prefix_drops_zero_parts() {
        let s = |a: &str| Ars::parse(a).map(|a| a.significant().to_string());
        assert_eq!(s("030000000000"), Ok("03".into()));
        assert_eq!(s("031010000000"), Ok("03101".into()));
        assert_eq!(s("032575403000"), Ok("032575403".into()));
        assert_eq!(s("032410001001"), Ok("032410001001".into()));
        assert_eq!(s("032410001000"), Ok("032410001".into()));
    }

    #[test]
    fn prefixes_most_specific_first() {
        let a = Ars::parse("032575403006").expect("valid");
        let p: Vec<_> = a.prefixes().collect();
        assert_eq!(p, ["032575403006", "032575403", "03257", "032", "03"]);
        assert_eq!(a.ags().map(|g| g.to_string()), Some("03257006".into()));
    }

    #[test]
    fn leistungsschluessel_accepts_urn() {
        let k = Leistungsschluessel::parse("urn:de:fim:leika:leistung:99115005104000").expect("ok");
        assert_eq!(k.as_str(), "99115005104000");
        assert_eq!(k.group(), "115");
        assert!(Leistungsschluessel::parse("12115005104000").is_err());
        assert!(Leistungsschluessel::parse("9911500510400").is_err());
    }

    #[test]
    fn destination_ids_are_stable() {
        let a = Ars::parse("032575403").expect("ok");
        assert_eq!(
            DestinationId::for_authority(&a),
            DestinationId::for_authority(&a)
        );
    }
}
