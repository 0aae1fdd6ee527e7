//! The whole log as one file, and its offline verification.
//!
//! JSON Lines, `\n`-terminated (the last newline may be missing):
//!
//! ```text
//! {"format":"rathaus-journal-export-v1","publicKeys":[{"keyId":…,"algorithm":"Ed25519","publicKey":…}],"treeHead":{…}}
//! {"index":0,"entry":{…canonical entry…}}
//! {"index":1,"entry":{…}}
//! ```
//!
//! Each entry line is written byte for byte as `{"index":` + the index in decimal +
//! `,"entry":` + the entry's canonical bytes + `}`. The entry is embedded as an object, not
//! a string, so its canonical bytes are the line minus that fixed frame — recoverable
//! exactly, with no unescaping; a generic JSON reader sees an ordinary object, and RFC 8785
//! (JCS) applied to it gives the same bytes back (see [`crate::entry`]). The verifier
//! insists on exactly this frame.

use std::io::{BufRead, Write};

use crate::hash::{Hash, leaf_hash};
use crate::sth::{PublicKeyInfo, SignedTreeHead, key_id, verify_tree_head};
use crate::tree::Frontier;

pub const EXPORT_FORMAT: &str = "rathaus-journal-export-v1";

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportHeader {
    pub format: String,
    pub public_keys: Vec<PublicKeyInfo>,
    pub tree_head: SignedTreeHead,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("the tree head's key {0} is not among the public keys of the export")]
    KeyMissing(String),
    #[error("the tree head covers {expected} entries, but {written} were written")]
    Count { expected: u64, written: u64 },
}

/// Writes an export: the header, then each entry in index order, then [`finish`](Self::finish).
pub struct ExportWriter<W: Write> {
    out: W,
    next: u64,
    size: u64,
}

impl<W: Write> ExportWriter<W> {
    pub fn new(
        mut out: W,
        public_keys: &[PublicKeyInfo],
        tree_head: &SignedTreeHead,
    ) -> Result<ExportWriter<W>, ExportError> {
        if !public_keys.iter().any(|k| k.key_id == tree_head.key_id) {
            return Err(ExportError::KeyMissing(tree_head.key_id.clone()));
        }
        let header = ExportHeader {
            format: EXPORT_FORMAT.into(),
            public_keys: public_keys.to_vec(),
            tree_head: tree_head.clone(),
        };
        serde_json::to_writer(&mut out, &header).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        Ok(ExportWriter {
            out,
            next: 0,
            size: tree_head.tree_size,
        })
    }

    /// The next entry, as stored (its canonical bytes).
    pub fn entry(&mut self, canonical: &[u8]) -> Result<(), ExportError> {
        if self.next >= self.size {
            return Err(ExportError::Count {
                expected: self.size,
                written: self.next + 1,
            });
        }
        write!(self.out, "{{\"index\":{},\"entry\":", self.next)?;
        self.out.write_all(canonical)?;
        self.out.write_all(b"}\n")?;
        self.next += 1;
        Ok(())
    }

    /// Flushes and hands the writer back; fails if entries are missing.
    pub fn finish(mut self) -> Result<W, ExportError> {
        if self.next != self.size {
            return Err(ExportError::Count {
                expected: self.size,
                written: self.next,
            });
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The head whose root the entries reproduce and whose signature is valid.
    pub tree_head: SignedTreeHead,
    /// The key that signed it. With [`verify_export`] it comes from the file itself, so
    /// compare its id with the key you trust.
    pub key: PublicKeyInfo,
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("the export ends after {entries} entries, but its tree head covers {tree_size}")]
    Truncated { entries: u64, tree_size: u64 },
    #[error("the entries give the root {computed}, but the signed tree head says {signed}")]
    RootMismatch { computed: Hash, signed: Hash },
}

fn line_error(line: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Line {
        line,
        reason: reason.into(),
    }
}

/// Verifies an export against the keys it carries: every line well-formed, indices
/// contiguous from 0, every entry canonical, the root recomputed from all leaves equal to
/// the signed tree head's, and the signature valid. Streams; memory stays constant.
pub fn verify_export(reader: impl BufRead) -> Result<VerifyReport, VerifyError> {
    verify(reader, None)
}

/// As [`verify_export`], but the tree head must be signed by one of `trusted`; keys in
/// the file are ignored.
pub fn verify_export_with_keys(
    reader: impl BufRead,
    trusted: &[PublicKeyInfo],
) -> Result<VerifyReport, VerifyError> {
    verify(reader, Some(trusted))
}

/// Splits an entry line into its index and the entry's canonical bytes.
fn parse_entry_line(line: &[u8]) -> Result<(u64, &[u8]), &'static str> {
    const BAD_FRAME: &str = "not of the form {\"index\":N,\"entry\":{…}}";
    let rest = line.strip_prefix(b"{\"index\":").ok_or(BAD_FRAME)?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && rest[0] == b'0') {
        return Err("the index is not a plain decimal number");
    }
    let index = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("the index is not a plain decimal number")?;
    let entry = rest[digits..]
        .strip_prefix(b",\"entry\":")
        .and_then(|r| r.strip_suffix(b"}"))
        .ok_or(BAD_FRAME)?;
    Ok((index, entry))
}

fn verify(
    mut reader: impl BufRead,
    trusted: Option<&[PublicKeyInfo]>,
) -> Result<VerifyReport, VerifyError> {
    let mut buf = Vec::with_capacity(1024);
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Err(line_error(1, "the export is empty"));
    }
    let header: ExportHeader = serde_json::from_slice(strip_newline(&buf))
        .map_err(|e| line_error(1, format!("not an export header: {e}")))?;
    if header.format != EXPORT_FORMAT {
        return Err(line_error(
            1,
            format!("format {:?}, expected {EXPORT_FORMAT:?}", header.format),
        ));
    }
    let sth = header.tree_head;
    let keys = trusted.unwrap_or(&header.public_keys);
    let key = keys
        .iter()
        .find(|k| k.key_id == sth.key_id)
        .ok_or_else(|| {
            line_error(
                1,
                format!(
                    "the tree head is signed with key {}, which is not {}",
                    sth.key_id,
                    if trusted.is_some() {
                        "trusted"
                    } else {
                        "among the export's public keys"
                    }
                ),
            )
        })?
        .clone();
    if key.algorithm != "Ed25519" || key_id(&key.public_key) != key.key_id {
        return Err(line_error(
            1,
            format!("public key {} is not an Ed25519 key of that id", key.key_id),
        ));
    }
    if !verify_tree_head(&key.public_key, &sth) {
        return Err(line_error(1, "the tree head's signature is invalid"));
    }

    let mut frontier = Frontier::new();
    let mut scratch = Vec::with_capacity(1024);
    let mut line_no = 1u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let expected = frontier.size();
        let (index, canonical) =
            parse_entry_line(strip_newline(&buf)).map_err(|r| line_error(line_no, r))?;
        if index != expected {
            return Err(line_error(
                line_no,
                format!("index {index}, expected {expected} (entries missing or out of order)"),
            ));
        }
        if index >= sth.tree_size {
            return Err(line_error(
                line_no,
                format!(
                    "entry {index} is beyond the tree head, which covers {} entries",
                    sth.tree_size
                ),
            ));
        }
        crate::entry::check_canonical(canonical, &mut scratch)
            .map_err(|e| line_error(line_no, format!("entry {index}: {e}")))?;
        frontier.append_with(leaf_hash(canonical), |_| {});
    }
    if frontier.size() != sth.tree_size {
        return Err(VerifyError::Truncated {
            entries: frontier.size(),
            tree_size: sth.tree_size,
        });
    }
    let computed = frontier.root();
    if computed != sth.root_hash {
        return Err(VerifyError::RootMismatch {
            computed,
            signed: sth.root_hash,
        });
    }
    Ok(VerifyReport {
        entries: frontier.size(),
        tree_head: sth,
        key,
    })
}

fn strip_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::entry::{Entry, Kind};
    use crate::sth::{TreeHead, TreeHeadSigner};

    fn entry(i: u64) -> Entry {
        Entry {
            at: 1_767_225_600_000 + i as i64,
            detail: i.is_multiple_of(3).then(|| "clean".to_string()),
            digests: BTreeMap::from([("metadata".into(), format!("{:0128x}", i))]),
            kind: Kind::ALL[i as usize % Kind::ALL.len()],
            subject: format!("submission:{i:08}"),
            tenant: "031510000000".into(),
        }
    }

    fn signer() -> TreeHeadSigner {
        TreeHeadSigner::from_pkcs8(&TreeHeadSigner::generate_pkcs8().unwrap()).unwrap()
    }

    fn export(n: u64, signer: &TreeHeadSigner) -> Vec<u8> {
        let entries: Vec<Vec<u8>> = (0..n)
            .map(|i| entry(i).canonical_bytes().unwrap())
            .collect();
        let mut f = Frontier::new();
        for e in &entries {
            f.append(leaf_hash(e));
        }
        let sth = signer.sign(&TreeHead {
            size: n,
            root: f.root(),
            timestamp_ms: 1_767_225_700_000,
        });
        let mut w = ExportWriter::new(Vec::new(), &[signer.public_key_info()], &sth).unwrap();
        for e in &entries {
            w.entry(e).unwrap();
        }
        w.finish().unwrap()
    }

    fn lines(bytes: &[u8]) -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn join(lines: &[String]) -> Vec<u8> {
        let mut s = lines.join("\n");
        s.push('\n');
        s.into_bytes()
    }

    fn error_of(bytes: &[u8]) -> String {
        verify_export(bytes).unwrap_err().to_string()
    }

    #[test]
    fn round_trip() {
        let s = signer();
        for n in [0, 1, 2, 3, 7, 8, 100] {
            let bytes = export(n, &s);
            let report = verify_export(&bytes[..]).unwrap();
            assert_eq!(report.entries, n);
            assert_eq!(report.key.key_id, s.key_id());
            assert_eq!(report.tree_head.tree_size, n);
            let trusted = verify_export_with_keys(&bytes[..], &[s.public_key_info()]).unwrap();
            assert_eq!(trusted, report);
            // Without the final newline too.
            verify_export(&bytes[..bytes.len() - 1]).unwrap();
        }
        let l = lines(&export(2, &s));
        assert!(l[0].starts_with(r#"{"format":"rathaus-journal-export-v1","publicKeys":[{"#));
        assert_eq!(
            l[1],
            format!(
                "{{\"index\":0,\"entry\":{}}}",
                entry(0).canonical_json().unwrap()
            )
        );
        // A generic JSON reader sees an object whose canonical form is the entry.
        let v: serde_json::Value = serde_json::from_str(&l[2]).unwrap();
        let e: Entry = serde_json::from_value(v["entry"].clone()).unwrap();
        assert_eq!(e, entry(1));
    }

    #[test]
    fn tampering_is_found_and_located() {
        let s = signer();
        let good = lines(&export(10, &s));

        let mut changed = good.clone();
        changed[4] = changed[4].replace("submission:00000003", "submission:00000099");
        assert!(matches!(
            verify_export(&join(&changed)[..]),
            Err(VerifyError::RootMismatch { .. })
        ));

        let mut dropped = good.clone();
        dropped.remove(5);
        assert!(error_of(&join(&dropped)).starts_with("line 6: index 5, expected 4"));

        let mut dropped_last = good.clone();
        dropped_last.pop();
        assert!(matches!(
            verify_export(&join(&dropped_last)[..]),
            Err(VerifyError::Truncated {
                entries: 9,
                tree_size: 10
            })
        ));

        let mut extra = good.clone();
        extra.push(format!(
            "{{\"index\":10,\"entry\":{}}}",
            entry(10).canonical_json().unwrap()
        ));
        assert!(error_of(&join(&extra)).starts_with("line 12: entry 10 is beyond"));

        let mut swapped = good.clone();
        swapped.swap(2, 3);
        assert!(error_of(&join(&swapped)).starts_with("line 3: index 2, expected 1"));

        let mut spaced = good.clone();
        spaced[3] = spaced[3].replace(",\"kind\"", ", \"kind\"");
        assert!(error_of(&join(&spaced)).starts_with("line 4: entry 2: entry is not in canonical"));

        let mut framed = good.clone();
        framed[3] = framed[3].replace("{\"index\":2,", "{\"index\": 2,");
        assert!(error_of(&join(&framed)).starts_with("line 4: the index"));

        let mut zero = good.clone();
        zero[3] = zero[3].replace("{\"index\":2,", "{\"index\":02,");
        assert!(error_of(&join(&zero)).starts_with("line 4: the index"));

        let mut blank = good.clone();
        blank.insert(3, String::new());
        assert!(error_of(&join(&blank)).starts_with("line 4: not of the form"));

        // A head signed by another key, which the file then names as its own.
        let other = signer();
        let mut header: ExportHeader = serde_json::from_str(&good[0]).unwrap();
        let forged = other.sign(&header.tree_head.head());
        header.tree_head = forged;
        header.public_keys = vec![s.public_key_info()];
        let mut wrong_sig = good.clone();
        wrong_sig[0] = serde_json::to_string(&header).unwrap();
        assert!(
            error_of(&join(&wrong_sig)).starts_with("line 1: the tree head is signed with key")
        );

        // The signature of the right key over another size.
        let mut header: ExportHeader = serde_json::from_str(&good[0]).unwrap();
        header.tree_head.tree_size = 9;
        let mut resized = good.clone();
        resized[0] = serde_json::to_string(&header).unwrap();
        assert_eq!(
            error_of(&join(&resized)),
            "line 1: the tree head's signature is invalid"
        );

        // Signed correctly, but by a key the verifier does not trust.
        let mut header: ExportHeader = serde_json::from_str(&good[0]).unwrap();
        header.tree_head = other.sign(&header.tree_head.head());
        header.public_keys = vec![other.public_key_info()];
        let mut self_signed = good.clone();
        self_signed[0] = serde_json::to_string(&header).unwrap();
        verify_export(&join(&self_signed)[..]).unwrap();
        let err =
            verify_export_with_keys(&join(&self_signed)[..], &[s.public_key_info()]).unwrap_err();
        assert!(err.to_string().contains("which is not trusted"), "{err}");

        assert!(error_of(b"").starts_with("line 1: the export is empty"));
        assert!(error_of(b"{\"format\":\"x\"}\n").starts_with("line 1: not an export header"));
    }

    #[test]
    fn writer_counts_entries() {
        let s = signer();
        let sth = s.sign(&TreeHead {
            size: 1,
            root: leaf_hash(b"x"),
            timestamp_ms: 0,
        });
        assert!(matches!(
            ExportWriter::new(Vec::new(), &[], &sth),
            Err(ExportError::KeyMissing(_))
        ));
        let w = ExportWriter::new(Vec::new(), &[s.public_key_info()], &sth).unwrap();
        assert!(matches!(
            w.finish(),
            Err(ExportError::Count {
                expected: 1,
                written: 0
            })
        ));
        let mut w = ExportWriter::new(Vec::new(), &[s.public_key_info()], &sth).unwrap();
        w.entry(b"{}").unwrap();
        assert!(w.entry(b"{}").is_err());
    }
}
