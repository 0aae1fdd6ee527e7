//! What a client registration says beyond id, name and secret: how the client signs in
//! users (web) or calls APIs (api), where answers may go, and how its users are named.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A relying party: signs citizens in through the authorization code flow.
    Web,
    /// An API client: client credentials only (Postfach senders, FIT-Connect senders and
    /// subscribers).
    #[default]
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectType {
    /// One `sub` per account, the same at every service.
    #[default]
    Public,
    /// One `sub` per account and sector (OIDC Core § 8.1): services of different sectors
    /// cannot link their users by `sub`, as with BundID.
    Pairwise,
}

/// The registration data stored with a client (as JSON).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClientConfig {
    #[serde(default)]
    pub kind: ClientKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// `ES256` (default) or `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_alg: Option<String>,
    #[serde(default)]
    pub subject_type: SubjectType,
    /// The sector of pairwise subjects; default: the host of the first redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_identifier: Option<String>,
    /// Public keys for `private_key_jwt` client authentication (a JWK set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// FIT-Connect destinations an API client sends to or subscribes to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
}

const MAX_URIS: usize = 20;
const MAX_URI_LEN: usize = 2000;

impl ClientConfig {
    /// Checks the registration; the message says what to fix.
    ///
    /// # Errors
    /// A message naming the offending value.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind == ClientKind::Web && self.redirect_uris.is_empty() {
            return Err("a web client needs at least one redirect URI (--redirect-uri)".into());
        }
        if self.redirect_uris.len() > MAX_URIS || self.post_logout_redirect_uris.len() > MAX_URIS {
            return Err(format!("at most {MAX_URIS} redirect URIs per client"));
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
            .chain(&self.frontchannel_logout_uri)
            .chain(&self.backchannel_logout_uri)
        {
            check_uri(uri)?;
        }
        if let Some(alg) = &self.id_token_alg
            && crypto::JwtAlg::parse(alg).is_none()
        {
            return Err(format!("id token algorithm {alg:?}: use ES256 or RS256"));
        }
        if let Some(jwks) = &self.jwks {
            let keys = jwks
                .get("keys")
                .and_then(Value::as_array)
                .ok_or("jwks must be a JWK set: {\"keys\": [ … ]}".to_owned())?;
            if keys.is_empty() || keys.len() > 10 {
                return Err("jwks must hold 1 to 10 keys".into());
            }
            for k in keys {
                if k.get("d").is_some() || k.get("p").is_some() {
                    return Err("jwks holds a private key: register only the public part".into());
                }
                crypto::jwk_thumbprint(k).map_err(|e| format!("jwks: {e}"))?;
            }
        }
        Ok(())
    }

    #[must_use]
    pub fn id_token_alg(&self) -> crypto::JwtAlg {
        self.id_token_alg
            .as_deref()
            .and_then(crypto::JwtAlg::parse)
            .unwrap_or(crypto::JwtAlg::Es256)
    }

    /// The sector pairwise subjects are computed for.
    #[must_use]
    pub fn sector(&self) -> String {
        if let Some(s) = &self.sector_identifier {
            return s.clone();
        }
        self.redirect_uris
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Exact, case-sensitive comparison (OIDC Core § 3.1.2.1, RFC 9700 § 4.1.3).
    #[must_use]
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }
}

fn check_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI_LEN {
        return Err(format!("URI longer than {MAX_URI_LEN} characters"));
    }
    let url = url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URL: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri:?} must not contain a fragment (#…)"));
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{uri:?}: use https (plain http only for 127.0.0.1/localhost)"
        )),
        // Native apps use private-use schemes (RFC 8252 § 7.1).
        s if s.contains('.') => Ok(()),
        _ => Err(format!(
            "{uri:?}: use https, http on loopback, or a reverse-domain private scheme"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_checked() {
        let mut c = ClientConfig {
            kind: ClientKind::Web,
            ..ClientConfig::default()
        };
        assert!(c.validate().is_err());
        c.redirect_uris = vec!["http://127.0.0.1:8765/callback".into()];
        assert!(c.validate().is_ok());
        c.redirect_uris = vec!["http://rp.example/cb".into()];
        assert!(c.validate().expect_err("http").contains("https"));
        c.redirect_uris = vec!["https://rp.example/cb#x".into()];
        assert!(c.validate().expect_err("fragment").contains("fragment"));
        c.redirect_uris = vec!["de.example.app:/cb".into()];
        assert!(c.validate().is_ok());
        assert_eq!(c.sector(), "");
        c.redirect_uris = vec!["https://rp.example/cb".into()];
        assert_eq!(c.sector(), "rp.example");
        // Unsigned or HMAC ID tokens are never offered.
        for alg in ["none", "HS256", "es256"] {
            c.id_token_alg = Some(alg.into());
            assert!(c.validate().is_err(), "{alg}");
        }
        c.id_token_alg = Some("RS256".into());
        assert!(c.validate().is_ok());
        assert!(c.has_redirect_uri("https://rp.example/cb"));
        assert!(!c.has_redirect_uri("https://rp.example/cb/"));
        assert!(!c.has_redirect_uri("https://RP.example/cb"));
    }
}
