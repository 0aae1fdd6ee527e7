//! The Routing API's answer model (FIT-Connect Routing API 2.0, schema `route`).

use serde::Serialize;

use crate::model::{Address, Authority, DestinationRecord, Service};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route<'a> {
    pub destination_id: String,
    pub destination_signature: &'a str,
    pub destination_name: String,
    pub destination_short_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_logo: Option<&'a str>,
    pub contact_persons: Vec<ContactPerson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<WireAddress<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_address: Option<WireAddress<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy_policy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imprint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accessibility_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_form_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub further_information: Option<Described>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_documents: Option<Described>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<Described>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Described>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_duration: Option<Duration<'a>>,
    pub origin: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ContactPerson<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fax: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAddress<'a> {
    pub street: &'a str,
    pub house_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional: Option<&'a str>,
    pub zip: &'a str,
    pub city: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Described {
    pub description: Texts,
}

#[derive(Debug, Serialize)]
pub struct Texts {
    pub de: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duration<'a> {
    pub min_duration: u32,
    pub max_duration: u32,
    pub unit: &'a str,
}

fn wire(a: &Address) -> WireAddress<'_> {
    WireAddress {
        street: &a.street,
        house_number: &a.house_number,
        additional: a.additional.as_deref(),
        zip: &a.zip,
        city: &a.city,
    }
}

fn described(text: Option<&str>) -> Option<Described> {
    text.filter(|t| !t.is_empty()).map(|t| Described {
        description: Texts {
            de: html_paragraphs(t),
        },
    })
}

/// The wire format allows HTML in descriptions: wrap escaped text in paragraphs.
fn html_paragraphs(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        out.push_str("<p>");
        for c in para.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
        out.push_str("</p>");
    }
    out
}

/// Only `https://` URLs fit the schema's pattern; local installations on plain HTTP leave
/// the link fields out rather than send values a strict client would reject.
fn https(url: Option<String>) -> Option<String> {
    url.filter(|u| u.starts_with("https://"))
}

/// Builds the route of `authority` for `service`. `full_name` names the authority with its
/// hierarchy ("Samtgemeinde Nenndorf, Landkreis Schaumburg"); `base_url` is this server's
/// public URL, for links to the legal pages it hosts for authorities without their own.
pub fn route<'a>(
    authority: &'a Authority,
    full_name: String,
    service: Option<&'a Service>,
    destination: &'a DestinationRecord,
    signature: &'a str,
    base_url: &str,
) -> Route<'a> {
    let d = &authority.details;
    let mut contacts: Vec<ContactPerson<'a>> = d
        .contacts
        .iter()
        .map(|c| ContactPerson {
            name: &c.name,
            tel: c.tel.as_deref(),
            fax: c.fax.as_deref(),
            email: c.email.as_deref(),
        })
        .collect();
    if contacts.is_empty() {
        // The schema wants at least one contact; the authority itself is the fallback.
        contacts.push(ContactPerson {
            name: &authority.name,
            tel: None,
            fax: None,
            email: None,
        });
    }
    let hosted = |page: &str| format!("{base_url}/behoerden/{}/{page}", authority.ars);
    let sd = service.map(|s| &s.details);
    let docs = sd
        .filter(|s| !s.required_documents.is_empty())
        .map(|s| s.required_documents.join("\n\n"));
    Route {
        destination_id: destination.id.to_string(),
        destination_signature: signature,
        destination_name: full_name,
        destination_short_name: authority.display_name(),
        destination_logo: d
            .links
            .logo
            .as_deref()
            .filter(|u| u.starts_with("https://")),
        contact_persons: contacts,
        address: d.address.as_ref().map(wire),
        postal_address: d.postal_address.as_ref().map(wire),
        privacy_policy_url: https(
            d.links
                .privacy_policy
                .clone()
                .or_else(|| Some(hosted("datenschutz"))),
        ),
        imprint_url: https(
            d.links
                .imprint
                .clone()
                .or_else(|| Some(hosted("impressum"))),
        ),
        accessibility_url: https(
            d.links
                .accessibility
                .clone()
                .or_else(|| Some(hosted("barrierefreiheit"))),
        ),
        contact_form_url: d
            .links
            .contact_form
            .as_deref()
            .filter(|u| u.starts_with("https://")),
        further_information: described(sd.and_then(|s| s.description.as_deref())),
        required_documents: described(docs.as_deref()),
        legal_basis: described(sd.and_then(|s| s.legal_basis.as_deref())),
        deadline: described(sd.and_then(|s| s.deadline.as_deref())),
        processing_duration: sd
            .and_then(|s| s.processing_time.as_ref())
            .map(|p| Duration {
                min_duration: p.min,
                max_duration: p.max,
                unit: &p.unit,
            }),
        origin: "Rathaus",
    }
}

/// Pre-serialised pieces of route answers, built once per directory snapshot so that the
/// Routing API only concatenates bytes: the authority's part, the service's part and the
/// signature are each fixed for a snapshot.
#[derive(Debug, Default)]
pub struct RouteFragments {
    authority: std::collections::HashMap<domain::Ars, String>,
    service: std::collections::HashMap<domain::Leistungsschluessel, String>,
}

/// The members of a JSON object, without its braces.
fn members(value: serde_json::Value) -> String {
    let text = value.to_string();
    text.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or("")
        .to_owned()
}

impl RouteFragments {
    pub fn build(dir: &crate::Directory, base_url: &str) -> Self {
        let mut out = RouteFragments::default();
        for a in dir.authorities() {
            let Some(dest) = dir.destination(&a.ars) else {
                continue;
            };
            let r = route(a, dir.full_name(a), None, dest, "", base_url);
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("destinationSignature");
            }
            out.authority.insert(a.ars.clone(), members(v));
        }
        for s in dir.services() {
            let d = &s.details;
            let docs =
                (!d.required_documents.is_empty()).then(|| d.required_documents.join("\n\n"));
            let v = serde_json::json!({
                "furtherInformation": described(d.description.as_deref()),
                "requiredDocuments": described(docs.as_deref()),
                "legalBasis": described(d.legal_basis.as_deref()),
                "deadline": described(d.deadline.as_deref()),
                "processingDuration": d.processing_time.as_ref().map(|p| Duration { min_duration: p.min, max_duration: p.max, unit: &p.unit }),
            });
            let mut v = v;
            if let Some(o) = v.as_object_mut() {
                o.retain(|_, x| !x.is_null());
            }
            out.service.insert(s.key.clone(), members(v));
        }
        out
    }

    /// Appends the route of `authority` for `service`, signed by `signature`, as JSON.
    /// False if the authority is unknown to this snapshot.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        authority: &domain::Ars,
        service: &domain::Leistungsschluessel,
        signature: &str,
    ) -> bool {
        let Some(a) = self.authority.get(authority) else {
            return false;
        };
        out.extend_from_slice(b"{\"destinationSignature\":\"");
        // A compact JWS is base64url and dots only: nothing to escape.
        out.extend_from_slice(signature.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(a.as_bytes());
        if let Some(s) = self.service.get(service).filter(|s| !s.is_empty()) {
            out.push(b',');
            out.extend_from_slice(s.as_bytes());
        }
        out.push(b'}');
        true
    }
}
