//! Every fixed text of the receipt, one table per language.
//!
//! A new language (Leichte Sprache is planned) is one more `Texts` constant and one more
//! [`Language`] variant; the layout never contains a literal string.

use crate::Language;

/// The fixed texts and number conventions of one language.
pub(crate) struct Texts {
    /// BCP 47 / RFC 3066 tag written as the document language (`/Lang`, XMP `dc:language`).
    pub lang_tag: &'static str,
    /// Used when the caller passes an empty title.
    pub default_title: &'static str,
    pub accepted: &'static str,
    pub rejected: &'static str,
    pub reasons_heading: &'static str,
    pub facts_heading: &'static str,
    pub parts_heading: &'static str,
    pub no_parts: &'static str,
    pub col_name: &'static str,
    pub col_type: &'static str,
    pub col_size: &'static str,
    pub col_scan: &'static str,
    pub col_validation: &'static str,
    pub col_hash: &'static str,
    pub parts_summary: &'static str,
    pub journal_heading: &'static str,
    pub journal_intro: &'static str,
    pub journal_leaf_index: &'static str,
    pub journal_tree_size: &'static str,
    pub journal_root_hash: &'static str,
    pub journal_timestamp: &'static str,
    pub journal_key_id: &'static str,
    pub journal_proof: &'static str,
    pub journal_proof_empty: &'static str,
    pub seal_heading: &'static str,
    pub verify_heading: &'static str,
    /// "Seite {page} von {pages}" — `{page}` and `{pages}` are replaced.
    pub page_of: &'static str,
    /// Unit after an exact byte count (plural, and the singular for 1).
    pub bytes: &'static str,
    pub byte: &'static str,
    pub decimal_separator: char,
    pub thousands_separator: char,
    /// Text drawn for an empty value, so that no table cell is empty.
    pub empty_value: &'static str,
}

const DE: Texts = Texts {
    lang_tag: "de-DE",
    default_title: "Eingangsbestätigung",
    accepted: "Ergebnis: Ihre Einreichung ist eingegangen und wurde angenommen.",
    rejected: "Ergebnis: Ihre Einreichung ist eingegangen, wurde aber abgelehnt.",
    reasons_heading: "Gründe für die Ablehnung",
    facts_heading: "Angaben zur Einreichung",
    parts_heading: "Eingereichte Dateien",
    no_parts: "Die Einreichung enthielt keine Dateien.",
    col_name: "Datei",
    col_type: "Typ",
    col_size: "Größe",
    col_scan: "Virenprüfung",
    col_validation: "Formatprüfung",
    col_hash: "SHA-512 (hexadezimal)",
    parts_summary: "Je eingereichte Datei: Name, Medientyp, Größe, Ergebnis der Virenprüfung, \
                    Ergebnis der Formatprüfung und SHA-512-Prüfsumme.",
    journal_heading: "Nachweis im Eingangsjournal",
    journal_intro: "Der Eingang ist in einem fälschungssicheren Journal (Merkle-Baum) \
                    verzeichnet. Mit den folgenden Angaben lässt sich prüfen, dass dieser \
                    Eintrag im signierten Journalstand enthalten ist.",
    journal_leaf_index: "Position im Journal (Blattindex)",
    journal_tree_size: "Einträge im Journalstand",
    journal_root_hash: "Wurzel-Hash (Base64)",
    journal_timestamp: "Zeitpunkt des Journalstands",
    journal_key_id: "Schlüssel-ID der Signatur",
    journal_proof: "Prüfpfad (Inklusionsnachweis, Base64), von unten nach oben:",
    journal_proof_empty: "Der Prüfpfad ist leer: Dieser Eintrag ist der einzige im Journalstand.",
    seal_heading: "Elektronisches Siegel",
    verify_heading: "Prüfung durch Dritte",
    page_of: "Seite {page} von {pages}",
    bytes: "Byte",
    byte: "Byte",
    decimal_separator: ',',
    thousands_separator: '.',
    empty_value: "–",
};

const EN: Texts = Texts {
    lang_tag: "en-GB",
    default_title: "Acknowledgement of receipt",
    accepted: "Result: your submission has been received and accepted.",
    rejected: "Result: your submission has been received but rejected.",
    reasons_heading: "Reasons for the rejection",
    facts_heading: "Details of the submission",
    parts_heading: "Submitted files",
    no_parts: "The submission contained no files.",
    col_name: "File",
    col_type: "Type",
    col_size: "Size",
    col_scan: "Virus scan",
    col_validation: "Format check",
    col_hash: "SHA-512 (hexadecimal)",
    parts_summary: "For each submitted file: name, media type, size, virus scan result, \
                    format check result and SHA-512 checksum.",
    journal_heading: "Proof in the receipt journal",
    journal_intro: "The receipt is recorded in a tamper-evident journal (Merkle tree). The \
                    following data prove that this entry is contained in the signed state \
                    of the journal.",
    journal_leaf_index: "Position in the journal (leaf index)",
    journal_tree_size: "Entries in the journal state",
    journal_root_hash: "Root hash (Base64)",
    journal_timestamp: "Time of the journal state",
    journal_key_id: "Signature key ID",
    journal_proof: "Audit path (inclusion proof, Base64), from the leaf upwards:",
    journal_proof_empty: "The audit path is empty: this entry is the only one in the journal state.",
    seal_heading: "Electronic seal",
    verify_heading: "Verification by third parties",
    page_of: "Page {page} of {pages}",
    bytes: "bytes",
    byte: "byte",
    decimal_separator: '.',
    thousands_separator: ',',
    empty_value: "–",
};

impl Language {
    pub(crate) fn texts(self) -> &'static Texts {
        match self {
            Language::De => &DE,
            Language::En => &EN,
        }
    }
}

impl Texts {
    pub(crate) fn page_of(&self, page: usize, pages: usize) -> String {
        self.page_of
            .replace("{page}", &page.to_string())
            .replace("{pages}", &pages.to_string())
    }

    /// An integer with thousands separators: `1.234.567` (de), `1,234,567` (en).
    pub(crate) fn integer(&self, n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(self.thousands_separator);
            }
            out.push(c);
        }
        out
    }

    /// A size for people: decimal (SI) units with one decimal, followed on a second line by
    /// the exact byte count when it differs from the short form.
    pub(crate) fn size(&self, bytes: u64) -> String {
        const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
        if bytes == 1 {
            return format!("1 {}", self.byte);
        }
        if bytes < 1000 {
            return format!("{} {}", bytes, self.bytes);
        }
        // Integer arithmetic (tenths of a unit, rounded half up): no float formatting quirks.
        // The unit grows while the rounded figure would reach 1000 ("1000,0 kB" → "1,0 MB").
        let tenths_in = |scale: u128| (u128::from(bytes) * 10 + scale / 2) / scale;
        let mut unit = 0;
        let mut scale: u128 = 1000;
        while unit + 1 < UNITS.len() && tenths_in(scale) >= 10_000 {
            scale *= 1000;
            unit += 1;
        }
        let tenths = tenths_in(scale);
        let short = format!(
            "{}{}{} {}",
            tenths / 10,
            self.decimal_separator,
            tenths % 10,
            UNITS[unit]
        );
        format!("{short}\n{} {}", self.integer(bytes), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_sizes() {
        assert_eq!(DE.integer(0), "0");
        assert_eq!(DE.integer(999), "999");
        assert_eq!(DE.integer(1000), "1.000");
        assert_eq!(EN.integer(1_234_567), "1,234,567");
        assert_eq!(DE.size(512), "512 Byte");
        assert_eq!(EN.size(1), "1 byte");
        assert_eq!(EN.size(0), "0 bytes");
        assert_eq!(DE.size(1_234_567), "1,2 MB\n1.234.567 Byte");
        assert_eq!(EN.size(999_999), "1.0 MB\n999,999 bytes");
        assert_eq!(EN.size(1000), "1.0 kB\n1,000 bytes");
        assert!(DE.size(u64::MAX).starts_with("18446,7 PB"));
        assert_eq!(DE.size(999_949), "999,9 kB\n999.949 Byte");
        assert_eq!(DE.page_of(2, 3), "Seite 2 von 3");
    }
}
