//! The PDF Eingangsbestätigung (acknowledgement of receipt) of the ePoststelle.
//!
//! The ePoststelle confirms every submission with a signed JSON receipt and a PDF with the
//! same content. This crate renders the PDF from a plain view model, [`ReceiptDocument`],
//! which the caller fills; it knows nothing of other Rathaus crates.
//!
//! # What the PDF is
//!
//! - **Archival and accessible, checked by the writer.** [`render`] writes PDF 1.7 declared
//!   as **PDF/A-2a** (ISO 19005-2, level A) and **PDF/UA-1** (ISO 14289-1), and has
//!   [krilla](https://docs.rs/krilla)'s validators for exactly these two profiles
//!   ([`PROFILES`]) check the document while it is written: anything krilla can detect as a
//!   violation (missing title or language, untagged content, a `.notdef` glyph, a character
//!   without Unicode mapping, a font whose licence forbids embedding, a string over PDF/A's
//!   32 767-byte limit, …) makes `render` return [`Error::Validation`] instead of a PDF.
//!   The semantic parts that no writer can check (sensible tags, reading order) are this
//!   crate's job: see `layout.rs`.
//! - **Tagged.** Title (displayed as the window title) and language (`de-DE`, `en-GB`) are
//!   set; the structure tree has H1 (title), H2 per section, paragraphs, a list of
//!   rejection reasons, tables with header cells (row headers for the label/value tables,
//!   column headers for the files), and an ordered list for the journal's audit path. The
//!   structure order is the reading order; page numbers, rules and repeated table headers
//!   are artifacts. An outline (bookmarks) mirrors the headings.
//! - **Real text only**, in embedded, subset fonts bundled with the crate (Liberation Sans
//!   and Liberation Mono 2.1.5, SIL Open Font License 1.1, see `fonts/LICENSE`); nothing
//!   is fetched at run time. Long values — SHA-512 hashes, Base64 proof hashes, file names,
//!   URLs — wrap inside their column without adding or losing a character, so they stay on
//!   the page and copy back exactly (with line breaks where they wrapped).
//! - **Deterministic**: the same [`ReceiptDocument`] gives the same bytes. The only date in
//!   the file is [`ReceiptDocument::issued_at`] (PDF/A requires a creation date); document
//!   IDs are hashes of the content.
//!
//! # Example
//!
//! ```
//! use receipt_pdf::{Fact, Language, Outcome, ReceiptDocument, ReceiptPart, render};
//!
//! let receipt = ReceiptDocument {
//!     language: Language::De,
//!     title: "Eingangsbestätigung".into(),
//!     issued_at: time::macros::datetime!(2025-03-14 09:30:00 UTC),
//!     outcome: Outcome::Accepted,
//!     facts: vec![Fact::new("Vorgangsnummer", "5f0c2a9e-0d1b-4c44-9a53-2b1d7e8a9c10")],
//!     parts: vec![ReceiptPart {
//!         name: "Antrag.pdf".into(),
//!         media_type: "application/pdf".into(),
//!         size: 48_213,
//!         sha512_hex: "ab".repeat(64),
//!         scan_result: "ohne Befund".into(),
//!         validation_result: "gültig".into(),
//!     }],
//!     journal: None,
//!     signature_note: "Diese Bestätigung ist elektronisch gesiegelt.".into(),
//!     verify_hint: String::new(),
//! };
//! let pdf = render(&receipt)?;
//! assert!(pdf.starts_with(b"%PDF-1.7"));
//! # Ok::<(), receipt_pdf::Error>(())
//! ```

mod fonts;
mod layout;
mod texts;
mod write;

/// The standards [`render`] declares and krilla validates: PDF/A-2a and PDF/UA-1.
pub const PROFILES: &str = "PDF/A-2a, PDF/UA-1";

/// The language of the receipt's fixed texts and of the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    /// German (`de-DE`).
    De,
    /// English (`en-GB`).
    En,
}

/// Whether the submission was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Received but rejected; each reason becomes an item of a list.
    Rejected {
        reasons: Vec<String>,
    },
}

/// One label/value row of the facts table (Sender, Leistung, Behörde, Eingegangen am,
/// Vorgangsnummer, …). Both are shown as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

impl Fact {
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Fact {
        Fact {
            label: label.into(),
            value: value.into(),
        }
    }
}

/// One submitted file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptPart {
    /// File name as submitted.
    pub name: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Size in bytes; shown human-readable plus the exact count.
    pub size: u64,
    /// SHA-512 of the content, lowercase hex (128 characters); shown wrapped in 4 × 32.
    pub sha512_hex: String,
    /// Result of the virus scan, e.g. "ohne Befund".
    pub scan_result: String,
    /// Result of the format validation, e.g. "gültig (PDF/A-2b)".
    pub validation_result: String,
}

/// Where the receipt stands in the append-only receipt journal (a Merkle tree), and the
/// inclusion proof against a signed tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalProof {
    /// Index of this receipt's leaf.
    pub leaf_index: u64,
    /// Number of leaves of the signed tree head.
    pub tree_size: u64,
    /// Root hash of that tree head, Base64.
    pub root_hash: String,
    /// Time of the tree head, already formatted for the reader (e.g. "14.03.2025, 09:30 Uhr").
    pub tree_head_time: String,
    /// Key ID (`kid`) of the key that signed the tree head.
    pub key_id: String,
    /// The audit path from the leaf upwards, Base64 hashes.
    pub audit_path: Vec<String>,
}

/// Everything the PDF shows. Plain data; the caller formats dates and chooses labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptDocument {
    pub language: Language,
    /// Document title: the H1 and the title a viewer displays. Empty: the language's default
    /// ("Eingangsbestätigung" / "Acknowledgement of receipt").
    pub title: String,
    /// When the receipt was issued: the PDF's creation and modification date (PDF/A requires
    /// one). Written in UTC. Fixed by the caller, so rendering is deterministic.
    pub issued_at: time::OffsetDateTime,
    pub outcome: Outcome,
    /// Label/value rows, in this order.
    pub facts: Vec<Fact>,
    /// The submitted files, in this order.
    pub parts: Vec<ReceiptPart>,
    pub journal: Option<JournalProof>,
    /// E.g. "Diese Bestätigung ist elektronisch gesiegelt; die JSON-Fassung trägt die
    /// Signatur (kid …)." Empty: the section is left out. A blank line separates paragraphs.
    pub signature_note: String,
    /// How a third party verifies the receipt (URL of the tree head etc.). Empty: left out.
    pub verify_hint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bundled font could not be read (a build defect, not an input problem).
    #[error("bundled font unusable: {0}")]
    Font(String),
    /// krilla's PDF/A-2a or PDF/UA-1 validator rejected the document; the PDF was not written.
    #[error("the receipt would violate {PROFILES}: {0}")]
    Validation(String),
    /// Any other failure of the PDF writer.
    #[error("PDF generation failed: {0}")]
    Pdf(String),
}

/// Renders the receipt as a tagged PDF/A-2a and PDF/UA-1 document (A4).
///
/// Any text is accepted: characters the fonts lack are drawn as a replacement glyph while
/// the text layer keeps the original, control characters become U+FFFD, and long values
/// wrap and continue over as many pages as needed. Errors are [`Error::Validation`] when
/// krilla's validators refuse the result (e.g. a title over 32 767 bytes), never a panic.
pub fn render(doc: &ReceiptDocument) -> Result<Vec<u8>, Error> {
    let fonts = fonts::fonts()?;
    let laid = layout::lay_out(doc, fonts);
    write::write(laid, doc, fonts)
}
