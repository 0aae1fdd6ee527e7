//! What the journal records: one event about one subject, as references and digests only.
//!
//! The journal is public to auditors and can never be changed, so it must never hold
//! personal data in clear. The field rules enforce what they can: subjects, tenants and
//! details are short strings from a small ASCII alphabet (no spaces, no `@`, so neither
//! names nor e-mail addresses fit), and digests are hex.
//!
//! **Canonical form.** An entry's leaf is hashed over its canonical bytes: compact JSON with
//! the members in alphabetical order (`at`, `detail` when present, `digests`, `kind`,
//! `subject`, `tenant`), digest names in byte order. Because every string is restricted to
//! printable ASCII without `"` or `\`, nothing is ever escaped, and these bytes are exactly
//! what RFC 8785 (JCS) produces for the same object — an auditor can recompute them with any
//! JCS implementation.

use std::collections::BTreeMap;

/// What happened. Closed on purpose: a verifier must know every kind it accepts. To add
/// one, add a variant here (its JSON name is the snake_case of the variant name) and to
/// [`Kind::ALL`]; old entries stay valid because no existing name changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    Received,
    Scanned,
    Accepted,
    Rejected,
    Forwarded,
    Fetched,
    Deleted,
    PostfachPlaced,
    PostfachNotified,
    PostfachOpened,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Received,
        Kind::Scanned,
        Kind::Accepted,
        Kind::Rejected,
        Kind::Forwarded,
        Kind::Fetched,
        Kind::Deleted,
        Kind::PostfachPlaced,
        Kind::PostfachNotified,
        Kind::PostfachOpened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Received => "received",
            Kind::Scanned => "scanned",
            Kind::Accepted => "accepted",
            Kind::Rejected => "rejected",
            Kind::Forwarded => "forwarded",
            Kind::Fetched => "fetched",
            Kind::Deleted => "deleted",
            Kind::PostfachPlaced => "postfach_placed",
            Kind::PostfachNotified => "postfach_notified",
            Kind::PostfachOpened => "postfach_opened",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One journal entry. The serde field order below is the canonical order — keep it
/// alphabetical when adding fields (new optional fields must be skipped when absent, so
/// that the bytes of existing entries do not change).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// When it happened, Unix milliseconds (given by the caller).
    pub at: i64,
    /// A short machine word, e.g. a scan verdict `clean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Name → lowercase hex digest, e.g. `metadata` → SHA-512 of the metadata document.
    pub digests: BTreeMap<String, String>,
    pub kind: Kind,
    /// What it is about: `submission:<uuid>`, `postfach:<uuid>`, …
    pub subject: String,
    /// Whose it is: an authority's ARS or a destination id.
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry field {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("entry is not JSON of the expected shape: {0}")]
    Json(String),
    #[error("entry is not in canonical form")]
    NotCanonical,
}

const MAX_SUBJECT: usize = 200;
const MAX_TENANT: usize = 100;
const MAX_DETAIL: usize = 64;
const MAX_DIGESTS: usize = 64;
const MAX_DIGEST_NAME: usize = 32;

fn reference_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'_' | b'-' | b'/')
}

fn check(
    field: &'static str,
    value: &str,
    max: usize,
    allowed: fn(u8) -> bool,
) -> Result<(), EntryError> {
    if value.is_empty() {
        return Err(EntryError::Invalid {
            field,
            reason: "empty",
        });
    }
    if value.len() > max {
        return Err(EntryError::Invalid {
            field,
            reason: "too long",
        });
    }
    if !value.bytes().all(allowed) {
        return Err(EntryError::Invalid {
            field,
            reason: "characters outside the allowed set",
        });
    }
    Ok(())
}

fn validate_parts<'a>(
    at: i64,
    detail: Option<&str>,
    digests: impl Iterator<Item = (&'a str, &'a str)>,
    digest_count: usize,
    subject: &str,
    tenant: &str,
) -> Result<(), EntryError> {
    if at < 0 {
        return Err(EntryError::Invalid {
            field: "at",
            reason: "before 1970",
        });
    }
    check("subject", subject, MAX_SUBJECT, reference_char)?;
    check("tenant", tenant, MAX_TENANT, reference_char)?;
    if let Some(d) = detail {
        check("detail", d, MAX_DETAIL, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'_' | b'-')
        })?;
    }
    if digest_count > MAX_DIGESTS {
        return Err(EntryError::Invalid {
            field: "digests",
            reason: "too many",
        });
    }
    for (name, value) in digests {
        check("digests", name, MAX_DIGEST_NAME, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })?;
        // At least 128 bits, at most SHA-512; lowercase so the bytes are canonical.
        if value.len() < 32 || value.len() > 128 || value.len() % 2 != 0 {
            return Err(EntryError::Invalid {
                field: "digests",
                reason: "a digest must be 32 to 128 hex digits",
            });
        }
        if !value
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(EntryError::Invalid {
                field: "digests",
                reason: "a digest must be lowercase hex",
            });
        }
    }
    Ok(())
}

/// [`Entry`] borrowing from the bytes it was parsed from: checking a canonical entry then
/// allocates nothing per string. Canonical strings never contain escapes, so borrowing
/// only fails for input that is not canonical anyway. Same field order as [`Entry`].
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRef<'a> {
    at: i64,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(borrow)]
    digests: BTreeMap<&'a str, &'a str>,
    kind: Kind,
    subject: &'a str,
    tenant: &'a str,
}

/// Checks that `bytes` are an entry's canonical form, re-encoding into `scratch`.
pub(crate) fn check_canonical(bytes: &[u8], scratch: &mut Vec<u8>) -> Result<(), EntryError> {
    let Ok(e) = serde_json::from_slice::<EntryRef<'_>>(bytes) else {
        // The owned parse says precisely what is wrong (or that escapes were used).
        return Entry::from_canonical(bytes).map(|_| ());
    };
    validate_parts(
        e.at,
        e.detail,
        e.digests.iter().map(|(k, v)| (*k, *v)),
        e.digests.len(),
        e.subject,
        e.tenant,
    )?;
    scratch.clear();
    serde_json::to_writer(&mut *scratch, &e).map_err(|err| EntryError::Json(err.to_string()))?;
    if scratch.as_slice() != bytes {
        return Err(EntryError::NotCanonical);
    }
    Ok(())
}

impl Entry {
    /// Checks that `bytes` are an entry's canonical form without building the entry
    /// (faster than [`from_canonical`](Self::from_canonical) when only the check matters).
    pub fn check_canonical(bytes: &[u8]) -> Result<(), EntryError> {
        check_canonical(bytes, &mut Vec::with_capacity(bytes.len()))
    }

    /// Checks the field rules (see the module documentation).
    pub fn validate(&self) -> Result<(), EntryError> {
        validate_parts(
            self.at,
            self.detail.as_deref(),
            self.digests.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            self.digests.len(),
            &self.subject,
            &self.tenant,
        )
    }

    /// The bytes that are hashed into the leaf (see the module documentation).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        serde_json::to_vec(self).map_err(|e| EntryError::Json(e.to_string()))
    }

    /// [`canonical_bytes`](Self::canonical_bytes) as text (it is always ASCII).
    pub fn canonical_json(&self) -> Result<String, EntryError> {
        self.validate()?;
        serde_json::to_string(self).map_err(|e| EntryError::Json(e.to_string()))
    }

    /// Parses canonical bytes, and refuses anything else: the same entry with other
    /// whitespace, member order or escapes would hash differently, so it is not the entry.
    pub fn from_canonical(bytes: &[u8]) -> Result<Entry, EntryError> {
        let entry: Entry =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
        if entry.canonical_bytes()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// The RFC 9162 leaf hash of the canonical bytes.
    pub fn leaf_hash(&self) -> Result<crate::Hash, EntryError> {
        Ok(crate::leaf_hash(&self.canonical_bytes()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Entry {
        Entry {
            at: 1_767_225_600_000,
            detail: Some("clean".into()),
            digests: BTreeMap::from([
                ("metadata".into(), "ab".repeat(64)),
                ("attachment.1".into(), "cd".repeat(32)),
            ]),
            kind: Kind::Scanned,
            subject: "submission:6f9619ff-8b86-d011-b42d-00cf4fc964ff".into(),
            tenant: "031510000000".into(),
        }
    }

    #[test]
    fn canonical_form_is_sorted_compact_json() {
        let bytes = sample().canonical_json().unwrap();
        assert_eq!(
            bytes,
            format!(
                r#"{{"at":1767225600000,"detail":"clean","digests":{{"attachment.1":"{}","metadata":"{}"}},"kind":"scanned","subject":"submission:6f9619ff-8b86-d011-b42d-00cf4fc964ff","tenant":"031510000000"}}"#,
                "cd".repeat(32),
                "ab".repeat(64)
            )
        );
        let back = Entry::from_canonical(bytes.as_bytes()).unwrap();
        assert_eq!(back, sample());
        let no_detail = Entry {
            detail: None,
            ..sample()
        };
        assert!(!no_detail.canonical_json().unwrap().contains("detail"));
    }

    #[test]
    fn other_encodings_of_the_same_entry_are_refused() {
        let canonical = sample().canonical_json().unwrap();
        let spaced = canonical.replace(",\"kind\"", ", \"kind\"");
        assert_eq!(
            Entry::from_canonical(spaced.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let null_detail = Entry {
            detail: None,
            ..sample()
        }
        .canonical_json()
        .unwrap()
        .replace(
            "{\"at\":1767225600000,",
            "{\"at\":1767225600000,\"detail\":null,",
        );
        assert_eq!(
            Entry::from_canonical(null_detail.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let reordered =
            r#"{"kind":"scanned","at":1767225600000,"digests":{},"subject":"s:1","tenant":"t"}"#;
        assert_eq!(
            Entry::from_canonical(reordered.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let escaped = canonical.replace("clean", "cl\\u0065an");
        assert_eq!(
            Entry::from_canonical(escaped.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let extra = canonical.replacen('{', "{\"x\":1,", 1);
        assert!(matches!(
            Entry::from_canonical(extra.as_bytes()),
            Err(EntryError::Json(_))
        ));
        let unknown_kind = canonical.replace("scanned", "teleported");
        assert!(matches!(
            Entry::from_canonical(unknown_kind.as_bytes()),
            Err(EntryError::Json(_))
        ));
        let trailing = format!("{canonical} ");
        assert!(Entry::from_canonical(trailing.as_bytes()).is_err());

        // The borrowing check agrees with the owned parse on every case.
        Entry::check_canonical(canonical.as_bytes()).unwrap();
        for bad in [
            &spaced,
            &null_detail,
            reordered,
            &escaped,
            &extra,
            &unknown_kind,
            &trailing,
        ] {
            assert_eq!(
                Entry::check_canonical(bad.as_bytes()).is_err(),
                Entry::from_canonical(bad.as_bytes()).is_err(),
                "{bad}"
            );
            assert!(Entry::check_canonical(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            Entry::check_canonical(escaped.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let invalid = canonical.replace("031510000000", "Max Mustermann");
        assert!(matches!(
            Entry::check_canonical(invalid.as_bytes()),
            Err(EntryError::Invalid {
                field: "tenant",
                ..
            })
        ));
    }

    #[test]
    fn personal_data_does_not_fit() {
        let bad = [
            Entry {
                subject: "max.mustermann@example.org".into(),
                ..sample()
            },
            Entry {
                subject: "Max Mustermann".into(),
                ..sample()
            },
            Entry {
                tenant: String::new(),
                ..sample()
            },
            Entry {
                detail: Some("Virus \"found\"".into()),
                ..sample()
            },
            Entry {
                digests: BTreeMap::from([("metadata".into(), "AB".repeat(32))]),
                ..sample()
            },
            Entry {
                digests: BTreeMap::from([("metadata".into(), "ab".repeat(8))]),
                ..sample()
            },
            Entry {
                digests: BTreeMap::from([("Name".into(), "ab".repeat(32))]),
                ..sample()
            },
            Entry {
                subject: "x".repeat(201),
                ..sample()
            },
            Entry { at: -1, ..sample() },
        ];
        for e in bad {
            assert!(e.canonical_bytes().is_err(), "{e:?}");
        }
    }

    #[test]
    fn kinds_have_stable_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
            assert_eq!(
                serde_json::to_string(k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(Kind::parse("postfach_opened"), Some(Kind::PostfachOpened));
    }
}
