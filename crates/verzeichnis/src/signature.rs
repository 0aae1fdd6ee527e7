//! The claims of a destination signature (FIT-Connect `destinationSignature`): which
//! services and areas a destination receives for, signed by the platform so that a sender
//! can check an answer of the Routing API did not come from elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use domain::{Ars, DestinationId, Leistungsschluessel};
use serde_json::{Value, json};

/// The content to sign, without `iat`/`jti`, so that an unchanged content can be recognised
/// by its hash and is not signed again.
pub fn claims(
    destination: DestinationId,
    issuer: &str,
    submission_host: &str,
    pairs: &BTreeSet<(Leistungsschluessel, Ars)>,
) -> Value {
    // Areas with the same set of services share one entry, as in XZuFi.
    let mut by_area: BTreeMap<&Ars, BTreeSet<&Leistungsschluessel>> = BTreeMap::new();
    for (svc, area) in pairs {
        by_area.entry(area).or_default().insert(svc);
    }
    let mut by_services: BTreeMap<Vec<&Leistungsschluessel>, Vec<&Ars>> = BTreeMap::new();
    for (area, svcs) in by_area {
        by_services
            .entry(svcs.into_iter().collect())
            .or_default()
            .push(area);
    }
    let services: Vec<Value> = by_services
        .into_iter()
        .map(|(svcs, areas)| {
            json!({
                "gebietIDs": areas.iter().map(|a| a.urn()).collect::<Vec<_>>(),
                "leistungIDs": svcs.iter().map(|s| s.urn()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "submissionHost": submission_host,
        "iss": issuer,
        "services": services,
        "destinationId": destination.to_string(),
    })
}
