//! Value types of the Rathaus domain.
//!
//! Everything here is parsed once at the edge and trusted afterwards: an [`Ars`] is always a
//! well-formed Amtlicher Regionalschlüssel, a [`Leistungsschluessel`] always has 14 digits.
//! This crate does no I/O and knows neither HTTP nor SQL.

mod authority;
mod keys;
pub mod postfach;
mod trust;

pub use authority::{AuthorityKind, ResponsibleLevel};
pub use keys::{Ags, Ars, ArsLevel, DestinationId, Leistungsschluessel, ParseError};
pub use trust::{AuthMethod, InvalidTrustLevel, TrustLevel, UnknownAuthMethod};
