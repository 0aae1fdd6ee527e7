//! How sure we are of who is on the other end: the trust level of an identity and the methods
//! that proved it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A STORK QAA level (Quality Authentication Assurance), the scale BundID and the
/// Servicekonten of the Länder use for the `acr` of a login.
///
/// The levels are ordered: `Level1 < Level2 < Level3 < Level4`, and [`TrustLevel::meets`]
/// answers "is this login good enough for a service that requires that level?".
///
/// | level    | BundID `acr`          | eIDAS LoA (`eidas_name`)     | typical proof                     |
/// |----------|-----------------------|------------------------------|-----------------------------------|
/// | `Level1` | `STORK-QAA-Level-1`   | —                            | user name and password            |
/// | `Level2` | `STORK-QAA-Level-2`   | low (niedrig)                | —                                 |
/// | `Level3` | `STORK-QAA-Level-3`   | substantial (substanziell)   | ELSTER certificate                |
/// | `Level4` | `STORK-QAA-Level-4`   | high (hoch)                  | Online-Ausweis (eID), EU eID high |
///
/// **Mapping of eIDAS levels:** we map eIDAS `low` → `Level2`, `substantial` → `Level3`,
/// `high` → `Level4`, the correspondence STORK and the eIDAS implementing regulation
/// (EU) 2015/1502 were built on. `Level1` (self-registration without any identity check) has no
/// eIDAS counterpart.
///
/// **Serialised** (serde) as the integer 1…4, the same number as [`TrustLevel::as_u8`], so a
/// stored or transmitted level stays compact and sorts correctly; other integers are refused
/// when deserialising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum TrustLevel {
    Level1,
    Level2,
    Level3,
    Level4,
}

impl TrustLevel {
    /// All levels, lowest first.
    pub const ALL: [TrustLevel; 4] = [
        TrustLevel::Level1,
        TrustLevel::Level2,
        TrustLevel::Level3,
        TrustLevel::Level4,
    ];

    /// The level's number, 1…4.
    pub fn as_u8(self) -> u8 {
        match self {
            TrustLevel::Level1 => 1,
            TrustLevel::Level2 => 2,
            TrustLevel::Level3 => 3,
            TrustLevel::Level4 => 4,
        }
    }

    /// The level with number `n`; `None` unless `n` is 1…4.
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            1 => Some(TrustLevel::Level1),
            2 => Some(TrustLevel::Level2),
            3 => Some(TrustLevel::Level3),
            4 => Some(TrustLevel::Level4),
            _ => None,
        }
    }

    /// The `acr` value BundID uses for this level, `STORK-QAA-Level-1` … `STORK-QAA-Level-4`.
    pub fn stork_uri(self) -> &'static str {
        match self {
            TrustLevel::Level1 => "STORK-QAA-Level-1",
            TrustLevel::Level2 => "STORK-QAA-Level-2",
            TrustLevel::Level3 => "STORK-QAA-Level-3",
            TrustLevel::Level4 => "STORK-QAA-Level-4",
        }
    }

    /// The eIDAS level-of-assurance URI, `None` for `Level1`.
    pub fn eidas_uri(self) -> Option<&'static str> {
        match self {
            TrustLevel::Level1 => None,
            TrustLevel::Level2 => Some("http://eidas.europa.eu/LoA/low"),
            TrustLevel::Level3 => Some("http://eidas.europa.eu/LoA/substantial"),
            TrustLevel::Level4 => Some("http://eidas.europa.eu/LoA/high"),
        }
    }

    /// Parses an `acr` value: the STORK names ([`TrustLevel::stork_uri`]) or the eIDAS URIs
    /// `http://eidas.europa.eu/LoA/low|substantial|high` (see the mapping on [`TrustLevel`]).
    /// Exact match after trimming surrounding white space; anything else is `None`.
    pub fn from_acr(acr: &str) -> Option<Self> {
        let acr = acr.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.stork_uri() == acr || l.eidas_uri() == Some(acr))
    }

    /// The German name of the eIDAS level (`niedrig`, `substanziell`, `hoch`) as used in
    /// German legal texts and the OZG; `None` for `Level1`.
    pub fn eidas_name(self) -> Option<&'static str> {
        match self {
            TrustLevel::Level1 => None,
            TrustLevel::Level2 => Some("niedrig"),
            TrustLevel::Level3 => Some("substanziell"),
            TrustLevel::Level4 => Some("hoch"),
        }
    }

    /// Whether a login at this level is good enough where `required` is demanded.
    pub fn meets(self, required: TrustLevel) -> bool {
        self >= required
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.stork_uri())
    }
}

impl From<TrustLevel> for u8 {
    fn from(level: TrustLevel) -> u8 {
        level.as_u8()
    }
}

impl TryFrom<u8> for TrustLevel {
    type Error = InvalidTrustLevel;
    fn try_from(n: u8) -> Result<Self, InvalidTrustLevel> {
        TrustLevel::from_u8(n).ok_or(InvalidTrustLevel(n))
    }
}

/// A number that is not a trust level (only 1…4 are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a trust level is 1, 2, 3 or 4; got {0}")]
pub struct InvalidTrustLevel(pub u8);

/// How a person proved who they are in one login step; a login records every method it used.
///
/// [`AuthMethod::as_str`] gives stable lower-case names for storage and logs;
/// [`AuthMethod::amr`] the value for an OpenID Connect `amr` claim (RFC 8176):
///
/// | method         | `as_str`        | `amr`  | why                                                    |
/// |----------------|-----------------|--------|--------------------------------------------------------|
/// | `Password`     | `password`      | `pwd`  | RFC 8176 password                                      |
/// | `Totp`         | `totp`          | `otp`  | RFC 8176 one-time password (RFC 6238)                  |
/// | `RecoveryCode` | `recovery_code` | `otp`  | a single-use code; RFC 8176 has no look-up-secret value |
/// | `Passkey`      | `passkey`       | `pop`  | key possession; synced passkeys are not hardware-bound, so neither `hwk` nor `swk` can be promised |
/// | `EmailLink`    | `email_link`    | `otp`  | a single-use secret sent by e-mail; RFC 8176 has no e-mail value |
/// | `Federated`    | `federated`     | `fed`  | another identity provider (e.g. BundID) vouched; not registered in RFC 8176 but the value in common use — pass the upstream `amr` on where it is known |
///
/// Several values being `otp` is deliberate: relying parties only need to know the kind of
/// proof; our own records keep the precise method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Password,
    Totp,
    RecoveryCode,
    Passkey,
    EmailLink,
    Federated,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 6] = [
        AuthMethod::Password,
        AuthMethod::Totp,
        AuthMethod::RecoveryCode,
        AuthMethod::Passkey,
        AuthMethod::EmailLink,
        AuthMethod::Federated,
    ];

    /// Stable lower-case name (also the serde form); never change one once stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Totp => "totp",
            AuthMethod::RecoveryCode => "recovery_code",
            AuthMethod::Passkey => "passkey",
            AuthMethod::EmailLink => "email_link",
            AuthMethod::Federated => "federated",
        }
    }

    /// The RFC 8176 `amr` value; see the table on [`AuthMethod`].
    pub fn amr(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Totp | AuthMethod::RecoveryCode | AuthMethod::EmailLink => "otp",
            AuthMethod::Passkey => "pop",
            AuthMethod::Federated => "fed",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthMethod {
    type Err = UnknownAuthMethod;
    /// Accepts exactly the names [`AuthMethod::as_str`] produces.
    fn from_str(s: &str) -> Result<Self, UnknownAuthMethod> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownAuthMethod(s.to_owned()))
    }
}

/// A name that is not one of [`AuthMethod::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown authentication method {0:?}")]
pub struct UnknownAuthMethod(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer, U8Deserializer};

    #[test]
    fn levels_are_ordered_and_meet_lower_requirements() {
        assert!(TrustLevel::Level1 < TrustLevel::Level4);
        assert!(TrustLevel::Level3.meets(TrustLevel::Level3));
        assert!(TrustLevel::Level4.meets(TrustLevel::Level2));
        assert!(!TrustLevel::Level2.meets(TrustLevel::Level3));
        assert!(TrustLevel::Level1.meets(TrustLevel::Level1));
    }

    #[test]
    fn numbers_round_trip() {
        for l in TrustLevel::ALL {
            assert_eq!(TrustLevel::from_u8(l.as_u8()), Some(l));
            assert_eq!(u8::from(l), l.as_u8());
        }
        assert_eq!(TrustLevel::from_u8(0), None);
        assert_eq!(TrustLevel::from_u8(5), None);
        assert_eq!(TrustLevel::try_from(7), Err(InvalidTrustLevel(7)));
    }

    #[test]
    fn acr_values() {
        assert_eq!(TrustLevel::Level3.stork_uri(), "STORK-QAA-Level-3");
        for l in TrustLevel::ALL {
            assert_eq!(TrustLevel::from_acr(l.stork_uri()), Some(l));
            if let Some(uri) = l.eidas_uri() {
                assert_eq!(TrustLevel::from_acr(uri), Some(l));
            }
        }
        assert_eq!(
            TrustLevel::from_acr("http://eidas.europa.eu/LoA/low"),
            Some(TrustLevel::Level2)
        );
        assert_eq!(
            TrustLevel::from_acr("http://eidas.europa.eu/LoA/substantial"),
            Some(TrustLevel::Level3)
        );
        assert_eq!(
            TrustLevel::from_acr(" http://eidas.europa.eu/LoA/high "),
            Some(TrustLevel::Level4)
        );
        assert_eq!(TrustLevel::from_acr("STORK-QAA-Level-5"), None);
        assert_eq!(TrustLevel::from_acr("stork-qaa-level-1"), None);
        assert_eq!(TrustLevel::from_acr(""), None);
    }

    #[test]
    fn eidas_names() {
        assert_eq!(TrustLevel::Level1.eidas_name(), None);
        assert_eq!(TrustLevel::Level2.eidas_name(), Some("niedrig"));
        assert_eq!(TrustLevel::Level3.eidas_name(), Some("substanziell"));
        assert_eq!(TrustLevel::Level4.eidas_name(), Some("hoch"));
    }

    #[test]
    fn deserialises_from_integers_only_in_range() {
        let d: U8Deserializer<DeError> = 3u8.into_deserializer();
        assert_eq!(TrustLevel::deserialize(d), Ok(TrustLevel::Level3));
        let d: U8Deserializer<DeError> = 9u8.into_deserializer();
        assert!(TrustLevel::deserialize(d).is_err());
    }

    #[test]
    fn auth_method_names_round_trip() {
        for m in AuthMethod::ALL {
            assert_eq!(m.as_str().parse::<AuthMethod>(), Ok(m));
            let d: StrDeserializer<DeError> = m.as_str().into_deserializer();
            assert_eq!(AuthMethod::deserialize(d), Ok(m));
        }
        assert_eq!(
            "Password".parse::<AuthMethod>(),
            Err(UnknownAuthMethod("Password".into()))
        );
    }

    #[test]
    fn amr_values() {
        assert_eq!(AuthMethod::Password.amr(), "pwd");
        assert_eq!(AuthMethod::Totp.amr(), "otp");
        assert_eq!(AuthMethod::RecoveryCode.amr(), "otp");
        assert_eq!(AuthMethod::Passkey.amr(), "pop");
        assert_eq!(AuthMethod::EmailLink.amr(), "otp");
        assert_eq!(AuthMethod::Federated.amr(), "fed");
    }
}
