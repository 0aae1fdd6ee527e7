//! The OpenID provider's protocol rules, without I/O: client registrations, validation of
//! authorization requests (OIDC Core 1.0 § 3.1.2, RFC 6749 § 4.1, PKCE RFC 7636), scopes and
//! their claims, and how answers go back to the relying party (RFC 9207 `iss`).
//!
//! `app::oidc` runs the flows (sessions, consent, codes, tokens) on top of these rules; `web`
//! speaks HTTP. Keeping the rules here lets them be tested exhaustively and cheaply.

mod authorize;
mod client;

pub use authorize::{AuthorizationRequest, ErrorTarget, Prompt, RequestError, verify_pkce};
pub use client::{ClientConfig, ClientKind, SubjectType};

/// The scopes the provider knows, with the claims each one releases (OIDC Core § 5.4, plus
/// ours: `trust_level` releases the login's trust level as a claim, `organisation` the
/// organisation the person acts for).
pub const SCOPES: [(&str, &[&str]); 8] = [
    ("openid", &["sub"]),
    ("profile", &["given_name", "family_name", "birthdate"]),
    ("email", &["email", "email_verified"]),
    ("address", &["address"]),
    ("phone", &["phone_number"]),
    ("offline_access", &[]),
    ("trust_level", &["trust_level", "eidas_level"]),
    ("organisation", &["organisation"]),
];

/// The scopes a web client may ask for unless its registration narrows them.
pub fn is_known_scope(scope: &str) -> bool {
    SCOPES.iter().any(|(s, _)| *s == scope)
}

/// The claims released by a scope (empty for unknown scopes).
pub fn claims_of(scope: &str) -> &'static [&'static str] {
    SCOPES
        .iter()
        .find(|(s, _)| *s == scope)
        .map_or(&[][..], |(_, c)| *c)
}

/// `uri` with `params` appended to its query (a registered redirect URI may already have
/// one; OIDC Core § 3.1.2.1 keeps it). `None` if `uri` is not an absolute URL.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

/// `scheme://host[:port]` of a URL, for a Content-Security-Policy source. `None` if it
/// is not an absolute http(s) URL.
pub fn origin_of(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}
