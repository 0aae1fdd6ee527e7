//! Languages of the pages: German (default), English, Leichte Sprache. Texts live in
//! `i18n/*.json`; a text missing in Leichte Sprache falls back to German.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::HeaderMap;

// One file per area and language, so that areas can be translated (and reviewed) apart.
const DE: &[&str] = &[
    include_str!("../i18n/de.json"),
    include_str!("../i18n/postfach.de.json"),
    include_str!("../i18n/organisations.de.json"),
    include_str!("../i18n/profile.de.json"),
    include_str!("../i18n/passkeys.de.json"),
    include_str!("../i18n/oidc.de.json"),
    include_str!("../i18n/admin.de.json"),
];
const EN: &[&str] = &[
    include_str!("../i18n/en.json"),
    include_str!("../i18n/postfach.en.json"),
    include_str!("../i18n/organisations.en.json"),
    include_str!("../i18n/profile.en.json"),
    include_str!("../i18n/passkeys.en.json"),
    include_str!("../i18n/oidc.en.json"),
    include_str!("../i18n/admin.en.json"),
];
const LS: &[&str] = &[
    include_str!("../i18n/ls.json"),
    include_str!("../i18n/postfach.ls.json"),
    include_str!("../i18n/organisations.ls.json"),
    include_str!("../i18n/profile.ls.json"),
    include_str!("../i18n/passkeys.ls.json"),
    include_str!("../i18n/oidc.ls.json"),
    include_str!("../i18n/admin.ls.json"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    De,
    En,
    Ls,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::De, Lang::En, Lang::Ls];

    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
            Lang::Ls => "ls",
        }
    }

    /// The `lang` attribute: Leichte Sprache is German.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            _ => "de",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            "ls" | "de-ls" | "leichte-sprache" => Some(Lang::Ls),
            _ => None,
        }
    }

    /// `?lang=` wins, then the `lang` cookie, then the browser's first preference.
    pub fn negotiate(query_lang: Option<&str>, headers: &HeaderMap) -> Lang {
        if let Some(l) = query_lang.and_then(Lang::parse) {
            return l;
        }
        let cookie = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("lang="))
            .and_then(Lang::parse);
        if let Some(l) = cookie {
            return l;
        }
        let accept = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        for part in accept.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("de") {
                return Lang::De;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::De
    }

    pub fn texts(self) -> &'static BTreeMap<String, String> {
        static TEXTS: OnceLock<[BTreeMap<String, String>; 3]> = OnceLock::new();
        let all = TEXTS.get_or_init(|| {
            let parse = |s: &str| -> BTreeMap<String, String> {
                serde_json::from_str(s).unwrap_or_default()
            };
            let load = |files: &[&str]| -> BTreeMap<String, String> {
                let mut all = BTreeMap::new();
                for f in files {
                    all.extend(parse(f));
                }
                all
            };
            let de = load(DE);
            let en = load(EN);
            // Leichte Sprache falls back to standard German where a text has no easy version.
            let mut ls = de.clone();
            ls.extend(load(LS));
            [de, en, ls]
        });
        &all[self as usize]
    }

    pub fn t(self, key: &str) -> &'static str {
        self.texts().get(key).map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_german_key() {
        let de = Lang::De.texts();
        for lang in [Lang::En, Lang::Ls] {
            for key in de.keys() {
                assert!(
                    lang.texts().contains_key(key),
                    "{key} missing in {}",
                    lang.code()
                );
            }
        }
        assert!(de.len() > 50);
    }

    #[test]
    fn negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::negotiate(None, &h), Lang::De);
        h.insert(
            "accept-language",
            "en-GB,en;q=0.9".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(Lang::negotiate(None, &h), Lang::En);
        h.insert(
            "cookie",
            "a=b; lang=ls".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(Lang::negotiate(None, &h), Lang::Ls);
        assert_eq!(Lang::negotiate(Some("de"), &h), Lang::De);
        assert_eq!(Lang::negotiate(Some("xx"), &h), Lang::Ls);
    }
}
