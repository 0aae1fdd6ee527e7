//! The directory of authorities (the tenants), the service catalogue, the responsibility
//! rules and the Zuständigkeitsfinder that answers "which authority is responsible for this
//! service at this place".
//!
//! Everything here is pure: importers turn CSV text into plans, the [`Directory`] snapshot
//! answers lookups from memory. Persistence is the `store` crate's job, orchestration `app`'s.

pub mod catalogue;
pub mod directory;
pub mod gebiete;
pub mod model;
pub mod routing;
pub mod search;
pub mod signature;

pub use directory::{Directory, Place, Resolution, RouteQuery};
pub use model::*;
