//! Renders receipts and reads them back with independent tools: `pdftotext` and `pdfinfo`
//! from Debian's `poppler-utils` (CI installs it; a missing tool fails the test with the
//! package to install).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use receipt_pdf::{
    Error, Fact, JournalProof, Language, Outcome, ReceiptDocument, ReceiptPart, render,
};

const HASH_A: &str = "3f1e9c0b7a5d2e8f4c6b1a0d9e8f7c6b5a4d3e2f1c0b9a8d7e6f5c4b3a2d1e0f\
                      9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";
const HASH_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
                      fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const HASH_C: &str = "cafebabedeadbeef00112233445566778899aabbccddeeffcafebabedeadbeef\
                      00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ROOT: &str =
    "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vg==";
const PROOF_1: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
const PROOF_2: &str =
    "/+7dzLuqmYh3ZlVEMyIRAP/u3cy7qpmId2ZVRDMiEQD/7t3Mu6qZiHdmVUQzIhEA/+7dzLuqmYh3ZlVEMyIRAA==";

fn part(name: &str, media_type: &str, size: u64, hash: &str) -> ReceiptPart {
    ReceiptPart {
        name: name.into(),
        media_type: media_type.into(),
        size,
        sha512_hex: hash.into(),
        scan_result: "ohne Befund".into(),
        validation_result: "gültig (PDF/A-2b)".into(),
    }
}

fn german_accepted() -> ReceiptDocument {
    ReceiptDocument {
        language: Language::De,
        title: "Eingangsbestätigung".into(),
        issued_at: time::macros::datetime!(2025-03-14 09:30:12 +01:00),
        outcome: Outcome::Accepted,
        facts: vec![
            Fact::new(
                "Absender",
                "Jürgen Müller-Lüdenscheidt, Straße des 17. Juni 1, 35390 Gießen",
            ),
            Fact::new(
                "Leistung",
                "Anmeldung einer Wohnung (Leistungsschlüssel 99115005001000)",
            ),
            Fact::new("Behörde", "Stadt Gießen – Bürgeramt"),
            Fact::new("Eingegangen am", "14.03.2025, 09:30:12 Uhr"),
            Fact::new("Vorgangsnummer", "5f0c2a9e-0d1b-4c44-9a53-2b1d7e8a9c10"),
        ],
        parts: vec![
            part(
                "Antrag_Wohnungsanmeldung.pdf",
                "application/pdf",
                48_213,
                HASH_A,
            ),
            part(
                "Wohnungsgeberbestätigung – Größe ß.pdf",
                "application/pdf",
                1_234_567,
                HASH_B,
            ),
            part(
                "Personalausweis-Rückseite-eingescannt-mit-sehr-langem-Dateinamen-der-umbrechen-muss.jpeg",
                "image/jpeg",
                3_456_789_012,
                HASH_C,
            ),
        ],
        journal: Some(JournalProof {
            leaf_index: 1_234_566,
            tree_size: 1_234_567,
            root_hash: ROOT.into(),
            tree_head_time: "14.03.2025, 09:30:15 Uhr".into(),
            key_id: "epost-2025-01".into(),
            audit_path: vec![PROOF_1.into(), PROOF_2.into()],
        }),
        signature_note: "Diese Bestätigung ist elektronisch gesiegelt; die JSON-Fassung trägt die \
                         Signatur (kid epost-2025-01)."
            .into(),
        verify_hint: "Den signierten Journalstand finden Sie unter \
                      https://rathaus.example/epoststelle/journal/tree-head?size=1234567 — dort \
                      lässt sich der Prüfpfad nachrechnen."
            .into(),
    }
}

fn english_rejected() -> ReceiptDocument {
    ReceiptDocument {
        language: Language::En,
        title: "Acknowledgement of receipt".into(),
        issued_at: time::macros::datetime!(2025-03-14 08:30:12 UTC),
        outcome: Outcome::Rejected {
            reasons: vec![
                "The file „Scan.tiff“ is not in an accepted format (allowed: PDF, JPEG, PNG)."
                    .into(),
                "The file Anlage.pdf contains malware (Eicar-Test-Signature) and was quarantined."
                    .into(),
            ],
        },
        facts: vec![
            Fact::new("Sender", "Jürgen Müller"),
            Fact::new("Service", "Registration of a flat"),
            Fact::new("Authority", "Stadt Gießen – Bürgeramt"),
            Fact::new("Received on", "14 March 2025, 09:30:12 CET"),
            Fact::new("Case number", "7d4e1c2b-9f3a-4b5c-8d6e-0a1b2c3d4e5f"),
        ],
        parts: vec![
            part("Scan.tiff", "image/tiff", 999, HASH_A),
            part("Anlage.pdf", "application/pdf", 1, HASH_B),
        ],
        journal: None,
        signature_note:
            "This acknowledgement is sealed electronically; the JSON version carries the signature."
                .into(),
        verify_hint: String::new(),
    }
}

fn many_parts(n: usize) -> ReceiptDocument {
    let mut doc = german_accepted();
    doc.parts = (0..n)
        .map(|i| {
            let hash = format!("{i:04x}").repeat(32);
            part(
                &format!("Anlage-{i:03}-Übersicht.pdf"),
                "application/pdf",
                1000 * i as u64 + 7,
                &hash,
            )
        })
        .collect();
    doc
}

/// Runs a poppler tool; a missing tool fails with the package to install.
fn poppler(tool: &str, args: &[&str], pdf: &Path) -> String {
    let output = Command::new(tool)
        .args(args)
        .arg(pdf)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| {
            panic!("`{tool}` could not be run ({e}): install the Debian package poppler-utils")
        });
    assert!(
        output.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // `pdfinfo -struct` prints UTF-16 heading titles as raw bytes.
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Rendered {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl Rendered {
    fn new(doc: &ReceiptDocument) -> Rendered {
        let bytes = render(doc).expect("render");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("receipt.pdf");
        std::fs::write(&path, &bytes).expect("write pdf");
        if let Ok(keep) = std::env::var("RECEIPT_PDF_KEEP") {
            std::fs::write(format!("{keep}-{}.pdf", doc.parts.len()), &bytes).expect("keep pdf");
        }
        Rendered {
            _dir: dir,
            path,
            bytes,
        }
    }

    fn text(&self) -> String {
        poppler("pdftotext", &["-enc", "UTF-8"], &self.path)
    }

    /// The text of the structure tree in its (logical) order, from `pdfinfo -struct-text`:
    /// the lines of one structure element joined as they are in the text layer (a line that
    /// ended at a space keeps it; a hash broken between characters joins seamlessly),
    /// elements separated by newlines.
    fn logical_text(&self) -> String {
        let structure = poppler("pdfinfo", &["-struct-text"], &self.path);
        let mut out = String::new();
        let mut indent = usize::MAX;
        for line in structure.lines() {
            let trimmed = line.trim_start();
            let Some(text) = trimmed.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
                indent = usize::MAX;
                continue;
            };
            let this = line.len() - trimmed.len();
            if this != indent {
                out.push('\n');
                indent = this;
            }
            out.push_str(text);
        }
        out
    }

    fn info(&self) -> String {
        poppler("pdfinfo", &[], &self.path)
    }

    fn info_field(&self, field: &str) -> String {
        let info = self.info();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("pdfinfo has no {field}: {info}"))
    }
}

fn without_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The value appears in `pdftotext`'s output, allowing line breaks at any point (a wrapped
/// hash or file name). `pdftotext` also drops a hyphen at the end of a line as if it were
/// hyphenation, so hyphens are ignored too; [`Rendered::logical_text`] checks them exactly.
fn assert_contains_wrapped(text: &str, value: &str) {
    let normalise = |s: &str| -> String { without_whitespace(s).replace('-', "") };
    assert!(
        normalise(text).contains(&normalise(value)),
        "{value:?} not in extracted text:\n{text}"
    );
}

fn assert_contains(text: &str, value: &str) {
    assert!(
        text.contains(value),
        "{value:?} not in extracted text:\n{text}"
    );
}

fn assert_archival_and_accessible(pdf: &Rendered, title: &str, lang: &str) {
    assert_eq!(pdf.info_field("Tagged"), "yes");
    assert_eq!(pdf.info_field("Title"), title);
    assert_eq!(pdf.info_field("PDF version"), "1.7");
    assert_eq!(pdf.info_field("Page size"), "595.276 x 841.89 pts (A4)");
    let meta = poppler("pdfinfo", &["-meta"], &pdf.path);
    for claim in [
        "<pdfaid:part>2</pdfaid:part>",
        "<pdfaid:conformance>A</pdfaid:conformance>",
        "<pdfuaid:part>1</pdfuaid:part>",
    ] {
        assert!(meta.contains(claim), "{claim} not in XMP:\n{meta}");
    }
    assert!(meta.contains(lang), "{lang} not in XMP:\n{meta}");
    // Catalog: language and "show the title, not the file name" (PDF/UA).
    let raw = String::from_utf8_lossy(&pdf.bytes);
    assert!(
        raw.contains(&format!("/Lang({lang})")),
        "no /Lang ({lang}) in the catalog"
    );
    assert!(raw.contains("/DisplayDocTitle true"), "no DisplayDocTitle");
    // Every font embedded, subset and mapped to Unicode (emb, sub, uni).
    let fonts = poppler("pdffonts", &[], &pdf.path);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for row in rows {
        assert!(
            row.contains(" yes yes yes "),
            "font not embedded/subset/mapped: {row}"
        );
    }
}

#[test]
fn german_accepted_receipt_reads_back() {
    let doc = german_accepted();
    let pdf = Rendered::new(&doc);
    assert_archival_and_accessible(&pdf, "Eingangsbestätigung", "de-DE");
    assert_eq!(pdf.info_field("Pages"), "1");

    let text = pdf.text();
    assert_contains(&text, "Eingangsbestätigung");
    assert_contains(
        &text,
        "Ihre Einreichung ist eingegangen und wurde angenommen.",
    );
    for fact in &doc.facts {
        assert_contains(&text, &fact.label);
        assert_contains_wrapped(&text, &fact.value);
    }
    assert_contains(&text, "Jürgen Müller-Lüdenscheidt");
    assert_contains(&text, "Gießen");
    for part in &doc.parts {
        assert_contains_wrapped(&text, &part.name);
        assert_contains_wrapped(&text, &part.sha512_hex);
    }
    // The structure tree's text has every wrapped value exactly, in reading order.
    let logical = pdf.logical_text();
    for part in &doc.parts {
        assert_contains(&logical, &part.name);
        assert_contains(&logical, &part.sha512_hex);
    }
    for fact in &doc.facts {
        assert_contains(&logical, &format!("{}\n{}\n", fact.label, fact.value));
    }
    for value in [
        ROOT,
        PROOF_1,
        PROOF_2,
        &doc.verify_hint,
        &doc.signature_note,
    ] {
        assert_contains(&logical, value);
    }
    assert_contains(&text, "Wohnungsgeberbestäti");
    assert_contains(&text, "48,2 kB");
    assert_contains(&logical, "1,2 MB 1.234.567 Byte");
    assert_contains(&text, "3,5 GB");
    assert_contains(&logical, "gültig (PDF/A-2b)");
    assert_contains(&text, "1.234.567");
    assert_contains_wrapped(&text, ROOT);
    assert_contains_wrapped(&text, PROOF_1);
    assert_contains_wrapped(&text, PROOF_2);
    assert_contains(&text, "epost-2025-01");
    assert_contains(&text, "Diese Bestätigung ist elektronisch gesiegelt");
    assert_contains_wrapped(
        &text,
        "https://rathaus.example/epoststelle/journal/tree-head?size=1234567",
    );
    assert!(
        !text.contains("Seite 1 von"),
        "a single page has no page number"
    );
    // No replacement characters: every character of these inputs is in the fonts.
    assert!(!text.contains('\u{FFFD}'));
}

#[test]
fn german_structure_is_tagged_in_reading_order() {
    let pdf = Rendered::new(&german_accepted());
    let structure = poppler("pdfinfo", &["-struct-text"], &pdf.path);
    for tag in [
        "Document", "H1", "H2", "P", "Sect", "Table", "THead", "TBody", "TR", "TH", "TD", "L",
        "LI", "Lbl", "LBody",
    ] {
        assert!(
            structure.contains(tag),
            "{tag} missing in structure:\n{structure}"
        );
    }
    // Headings in reading order.
    let order = [
        "Eingangsbestätigung",
        "Angaben zur Einreichung",
        "Eingereichte Dateien",
        "Nachweis im Eingangsjournal",
        "Elektronisches Siegel",
        "Prüfung durch Dritte",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|h| {
            structure
                .find(h)
                .unwrap_or_else(|| panic!("{h} not in structure:\n{structure}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "headings out of order:\n{structure}"
    );
}

#[test]
fn english_rejected_receipt_lists_reasons() {
    let doc = english_rejected();
    let pdf = Rendered::new(&doc);
    assert_archival_and_accessible(&pdf, "Acknowledgement of receipt", "en-GB");
    let text = pdf.text();
    assert_contains(
        &text,
        "Result: your submission has been received but rejected.",
    );
    assert_contains(&text, "Reasons for the rejection");
    assert_contains(&text, "„Scan.tiff“ is not in an accepted format");
    assert_contains(&text, "contains malware (Eicar-Test-Signature)");
    assert_contains(&text, "Jürgen Müller");
    assert_contains(&text, "999 bytes");
    assert_contains(&text, "1 byte");
    for part in &doc.parts {
        assert_contains_wrapped(&text, &part.sha512_hex);
    }
    assert!(
        !text.contains("Proof in the receipt journal"),
        "no journal given"
    );
    assert!(
        !text.contains("Verification by third parties"),
        "empty hint is left out"
    );

    let structure = poppler("pdfinfo", &["-struct"], &pdf.path);
    assert!(structure.contains("LI"), "reasons are a list:\n{structure}");
}

#[test]
fn hundred_parts_continue_over_numbered_pages() {
    let doc = many_parts(100);
    let pdf = Rendered::new(&doc);
    assert_archival_and_accessible(&pdf, "Eingangsbestätigung", "de-DE");
    let pages: usize = pdf.info_field("Pages").parse().expect("page count");
    assert!(pages > 3, "100 parts on {pages} pages");
    let text = pdf.text();
    for part in &doc.parts {
        assert_contains_wrapped(&text, &part.name);
        assert_contains_wrapped(&text, &part.sha512_hex);
    }
    assert_contains(&text, &format!("Seite 1 von {pages}"));
    assert_contains(&text, &format!("Seite {pages} von {pages}"));
    // The header row is drawn again on every page the table continues on, but only as an
    // artifact: the structure has one header row and one row per part. (`pdfinfo -struct`
    // rather than `-struct-text`, which takes poppler over ten seconds on this file.)
    assert!(text.matches("SHA-512 (hexadezimal)").count() >= pages - 1);
    let structure = poppler("pdfinfo", &["-struct"], &pdf.path);
    assert_eq!(structure.matches("THead").count(), 1, "{structure}");
    let rows = structure.lines().filter(|l| l.trim() == "TR").count();
    assert_eq!(
        rows,
        doc.facts.len() + 1 + doc.parts.len() + 5,
        "{structure}"
    );
}

#[test]
fn long_unbroken_and_odd_text_stays_on_the_page() {
    let mut doc = german_accepted();
    let unbroken = "x".repeat(3000);
    let long_name = format!("{}.pdf", "Überlangerdateiname".repeat(30));
    doc.facts
        .push(Fact::new("Ohne Leerzeichen", unbroken.clone()));
    doc.facts.push(Fact::new(
        "Steuerzeichen",
        "a\tb\u{0}c\u{7}d\r\ne\u{E000}f\u{200B}g",
    ));
    doc.facts
        .push(Fact::new("Fremde Schriften", "😀 中文 שלום Ελληνικά"));
    doc.facts.push(Fact::new("Leer", ""));
    doc.parts.push(part(
        &long_name,
        &"application/".repeat(40),
        u64::MAX,
        &"f".repeat(4000),
    ));
    let pdf = Rendered::new(&doc);
    assert_archival_and_accessible(&pdf, "Eingangsbestätigung", "de-DE");
    let text = pdf.text();
    assert_contains_wrapped(&text, &unbroken);
    assert_contains_wrapped(&text, &long_name);
    let logical = pdf.logical_text();
    assert_contains(&logical, &unbroken);
    assert_contains(&logical, &long_name);
    assert_contains(&logical, &"f".repeat(4000));
    assert_contains(&logical, &"application/".repeat(40));
    assert_contains(&logical, "a b\u{FFFD}c\u{FFFD}d e\u{FFFD}fg");
    // Characters missing from the fonts keep their text (drawn as a replacement glyph).
    assert_contains(&text, "Ελληνικά");
    assert_contains(&text, "中文");

    // Every word box lies within the page, inside the margins (20 mm = 56.7 pt).
    let boxes = poppler("pdftotext", &["-bbox"], &pdf.path);
    let mut words = 0;
    for line in boxes.lines().filter(|l| l.contains("<word ")) {
        words += 1;
        let attr = |name: &str| -> f32 {
            let start = line.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
            let end = start + line[start..].find('"').expect("quote");
            line[start..end].parse().expect("number")
        };
        assert!(attr("xMin") >= 56.0, "{line}");
        assert!(attr("xMax") <= 595.276 - 56.0, "{line}");
        assert!(attr("yMax") <= 841.89, "{line}");
    }
    assert!(words > 100);
}

#[test]
fn empty_receipt_still_renders() {
    let doc = ReceiptDocument {
        language: Language::En,
        title: "  ".into(),
        issued_at: time::OffsetDateTime::UNIX_EPOCH,
        outcome: Outcome::Rejected { reasons: vec![] },
        facts: vec![],
        parts: vec![],
        journal: Some(JournalProof {
            leaf_index: 0,
            tree_size: 1,
            root_hash: String::new(),
            tree_head_time: String::new(),
            key_id: String::new(),
            audit_path: vec![],
        }),
        signature_note: String::new(),
        verify_hint: String::new(),
    };
    let pdf = Rendered::new(&doc);
    assert_archival_and_accessible(&pdf, "Acknowledgement of receipt", "en-GB");
    let text = pdf.text();
    assert_contains(&text, "The submission contained no files.");
    assert_contains(&text, "The audit path is empty");
}

#[test]
fn validation_failure_is_an_error_not_a_pdf() {
    // PDF/A-2 limits strings to 32 767 bytes; the title is written as one string.
    let mut doc = german_accepted();
    doc.title = "Eingangsbestätigung ".repeat(2000);
    match render(&doc) {
        Err(Error::Validation(message)) => {
            assert!(message.contains("TooLongString"), "{message}");
            assert!(message.contains("PDF/A-2a"), "{message}");
        }
        Err(other) => panic!("expected a validation error, got {other}"),
        Ok(_) => panic!("a PDF/A-invalid document was written"),
    }
}

#[test]
fn rendering_is_deterministic() {
    let doc = german_accepted();
    let first = render(&doc).expect("render");
    assert_eq!(first, render(&doc).expect("render"));
    let mut later = doc.clone();
    later.issued_at += time::Duration::SECOND;
    assert_ne!(first, render(&later).expect("render"));
}

/// Prints the time per render and the size of a typical receipt (`--nocapture`; meaningful
/// with `--release`).
#[test]
fn typical_receipt_timing_and_size() {
    let doc = german_accepted();
    let pdf = render(&doc).expect("warm-up");
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        render(&doc).expect("render");
    }
    let per_render = start.elapsed() / rounds;
    let hundred = many_parts(100);
    let start = Instant::now();
    let big = render(&hundred).expect("render");
    let hundred_time = start.elapsed();
    eprintln!(
        "typical receipt: {per_render:?} per render, {} bytes; 100 parts: {hundred_time:?}, {} bytes",
        pdf.len(),
        big.len()
    );
    assert!(
        pdf.len() < 200_000,
        "typical receipt is {} bytes",
        pdf.len()
    );
}
