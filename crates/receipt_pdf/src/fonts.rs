//! The bundled fonts, their metrics and a shaping-free text measurer and line breaker.
//!
//! The receipt is Latin-script text (German and English, file names, hashes, URLs), so each
//! character is mapped to one glyph through the font's `cmap` and advanced by its `hmtx`
//! width — no shaping engine, no ligatures (which also keeps copied text exact). Kerning is
//! not applied. Characters the font lacks are drawn with the font's replacement glyph
//! (U+FFFD, else `?`) while the text layer keeps the original character, so extraction and
//! screen readers still get the real text and no `.notdef` glyph (forbidden by PDF/A) is
//! ever emitted.
//!
//! Fonts: Liberation Sans Regular and Bold, Liberation Mono Regular, version 2.1.5 as shipped
//! by Debian's `fonts-liberation2`, unmodified, under the SIL Open Font License 1.1
//! (`fonts/LICENSE`). Only the glyphs used are embedded in a PDF (krilla subsets them).

use std::ops::Range;
use std::sync::LazyLock;

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

static SANS_REGULAR: &[u8] = include_bytes!("../fonts/LiberationSans-Regular.ttf");
static SANS_BOLD: &[u8] = include_bytes!("../fonts/LiberationSans-Bold.ttf");
static MONO_REGULAR: &[u8] = include_bytes!("../fonts/LiberationMono-Regular.ttf");

/// Parsed once per process: krilla hashes the whole font file when a `Font` is created.
static FONTS: LazyLock<Result<Fonts, String>> = LazyLock::new(Fonts::load);

pub(crate) fn fonts() -> Result<&'static Fonts, crate::Error> {
    FONTS.as_ref().map_err(|e| crate::Error::Font(e.clone()))
}

/// Which of the bundled faces a run of text uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaceId {
    Regular,
    Bold,
    Mono,
}

/// A face and a size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Style {
    pub face: FaceId,
    pub size: f32,
}

pub(crate) struct Fonts {
    regular: Face,
    bold: Face,
    mono: Face,
}

impl Fonts {
    fn load() -> Result<Fonts, String> {
        Ok(Fonts {
            regular: Face::load("Liberation Sans", SANS_REGULAR)?,
            bold: Face::load("Liberation Sans Bold", SANS_BOLD)?,
            mono: Face::load("Liberation Mono", MONO_REGULAR)?,
        })
    }

    pub(crate) fn face(&self, id: FaceId) -> &Face {
        match id {
            FaceId::Regular => &self.regular,
            FaceId::Bold => &self.bold,
            FaceId::Mono => &self.mono,
        }
    }
}

pub(crate) struct Face {
    pub font: Font,
    charmap: skrifa::charmap::Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
    /// Ascender, as a fraction of the font size.
    pub ascent: f32,
    /// Descender (positive), as a fraction of the font size.
    pub descent: f32,
    fallback: u32,
}

impl Face {
    fn load(name: &str, data: &'static [u8]) -> Result<Face, String> {
        let font_ref = FontRef::new(data).map_err(|e| format!("{name}: {e}"))?;
        let font = Font::new(data.into(), 0).ok_or_else(|| format!("{name}: unreadable"))?;
        let metrics = font_ref.metrics(Size::unscaled(), LocationRef::default());
        let units_per_em = f32::from(metrics.units_per_em);
        if units_per_em <= 0.0 {
            return Err(format!("{name}: no units per em"));
        }
        let charmap = font_ref.charmap();
        let fallback = ['\u{FFFD}', '?']
            .into_iter()
            .filter_map(|c| charmap.map(c))
            .map(|g| g.to_u32())
            .find(|&g| g != 0)
            .ok_or_else(|| format!("{name}: has neither U+FFFD nor '?'"))?;
        Ok(Face {
            font,
            charmap,
            metrics: font_ref.glyph_metrics(Size::unscaled(), LocationRef::default()),
            units_per_em,
            ascent: metrics.ascent / units_per_em,
            descent: -metrics.descent / units_per_em,
            fallback,
        })
    }

    /// The glyph for a character (the replacement glyph if the font has none) and its advance
    /// in em.
    fn glyph(&self, c: char) -> (u32, f32) {
        let gid = match self.charmap.map(c) {
            Some(g) if g.to_u32() != 0 => g.to_u32(),
            _ => self.fallback,
        };
        let advance = self
            .metrics
            .advance_width(skrifa::GlyphId::new(gid))
            .unwrap_or(0.0);
        (gid, advance / self.units_per_em)
    }

    /// Width of `text` at `size` points.
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.glyph(c).1).sum::<f32>() * size
    }

    /// One glyph per character, with the byte range of that character as its text.
    pub(crate) fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let (gid, advance) = self.glyph(c);
                let range: Range<usize> = i..i + c.len_utf8();
                KrillaGlyph::new(GlyphId::new(gid), advance, 0.0, 0.0, 0.0, range, None)
            })
            .collect()
    }
}

/// Makes caller text drawable: line breaks normalised to `\n`, tabs to spaces, other control
/// characters and private-use characters (both forbidden in the text layer by PDF/A) to
/// U+FFFD, and invisible format characters removed.
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{AD}' => {}
            c if c.is_control() => out.push('\u{FFFD}'),
            '\u{E000}'..='\u{F8FF}'
            | '\u{F0000}'..='\u{FFFFD}'
            | '\u{100000}'..='\u{10FFFD}'
            | '\u{FFFE}'
            | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Characters after which a word that is too long for its line may be broken.
fn is_soft_break(c: char) -> bool {
    matches!(
        c,
        '-' | '/' | '\\' | '_' | '.' | ',' | ';' | ':' | '@' | '?' | '&' | '=' | '+' | '|' | '#'
    )
}

/// Splits a word after each soft break character — except a `.` or `,` between digits, so
/// that "3.456.789.012" stays whole.
fn soft_segments(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut chars = rest.char_indices().peekable();
        let mut previous = None;
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let in_number = matches!(c, '.' | ',')
                && previous.is_some_and(|p: char| p.is_ascii_digit())
                && next.is_some_and(|n| n.is_ascii_digit());
            if is_soft_break(c) && !in_number {
                end = i + c.len_utf8();
                break;
            }
            previous = Some(c);
        }
        let (segment, tail) = rest.split_at(end);
        rest = tail;
        Some(segment)
    })
}

/// Combining marks stay with the character before them.
fn is_combining(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

const EPSILON: f32 = 0.01;

/// Breaks `text` (already [`clean`]ed) into lines no wider than `width` points.
///
/// Lines break at spaces (a line keeps its trailing space, so that the text layer has the
/// word boundary); a word wider than the line breaks after punctuation such as `/`, `-`, `.`
/// and, failing that, between any two characters — which is how hashes are wrapped, with no
/// character added or lost. `\n` is a hard break (the line before it gets a trailing space);
/// an empty hard line yields an empty line.
/// Never returns an empty vector.
pub(crate) fn wrap(face: &Face, size: f32, text: &str, width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for (i, hard) in text.split('\n').enumerate() {
        // A hard break keeps the words apart in the text layer: the line before it ends
        // with a space, like a line that wrapped at a space.
        if i > 0
            && let Some(last) = lines
                .last_mut()
                .filter(|l| !l.is_empty() && !l.ends_with(' '))
        {
            last.push(' ');
        }
        let mut line = String::new();
        let mut line_width = 0.0; // including trailing spaces
        for word in hard.split_inclusive(' ') {
            let trimmed = word.trim_end_matches(' ');
            let word_width = face.width(trimmed, size);
            if !line.is_empty() && line_width + word_width > width + EPSILON {
                lines.push(std::mem::take(&mut line));
                line_width = 0.0;
            }
            if line.is_empty() && word_width > width + EPSILON {
                let mut pieces = break_word(face, size, trimmed, width);
                // The last piece starts the line the following words continue.
                line = pieces.pop().unwrap_or_default();
                lines.extend(pieces);
                line.push_str(&word[trimmed.len()..]);
                line_width = face.width(&line, size);
            } else {
                line.push_str(word);
                line_width += face.width(word, size);
            }
        }
        lines.push(line);
    }
    lines
}

/// Breaks one word wider than `width`: greedily at soft break points, and a segment that is
/// still too wide between characters.
fn break_word(face: &Face, size: f32, word: &str, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0.0;
    for segment in soft_segments(word) {
        let segment_width = face.width(segment, size);
        if line_width + segment_width <= width + EPSILON {
            line.push_str(segment);
            line_width += segment_width;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line_width = 0.0;
        }
        if segment_width <= width + EPSILON {
            line.push_str(segment);
            line_width = segment_width;
            continue;
        }
        for c in segment.chars() {
            let w = face.width(c.encode_utf8(&mut [0; 4]), size);
            if !line.is_empty() && line_width + w > width + EPSILON && !is_combining(c) {
                lines.push(std::mem::take(&mut line));
                line_width = 0.0;
            }
            line.push(c);
            line_width += w;
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fonts() -> &'static Fonts {
        match FONTS.as_ref() {
            Ok(f) => f,
            Err(e) => panic!("fonts: {e}"),
        }
    }

    #[test]
    fn umlauts_have_glyphs() {
        let face = fonts().face(FaceId::Regular);
        for c in "äöüÄÖÜß€–„“".chars() {
            assert_ne!(face.glyph(c).0, face.fallback, "{c}");
        }
        assert_eq!(face.glyph('\u{1F600}').0, face.fallback);
    }

    #[test]
    fn wraps_at_spaces_and_keeps_every_character() {
        let face = fonts().face(FaceId::Regular);
        let text = "Die Einreichung ist bei der Behörde eingegangen und wurde geprüft.";
        let lines = wrap(face, 10.0, text, 120.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), text);
        for l in &lines {
            assert!(face.width(l.trim_end(), 10.0) <= 120.0 + EPSILON, "{l}");
        }
    }

    #[test]
    fn breaks_hashes_between_characters() {
        let face = fonts().face(FaceId::Mono);
        let hash = "ab".repeat(64);
        let width = face.width(&"0".repeat(32), 7.5);
        let lines = wrap(face, 7.5, &hash, width);
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.len() == 32));
        assert_eq!(lines.concat(), hash);
    }

    #[test]
    fn breaks_long_names_after_punctuation() {
        let face = fonts().face(FaceId::Regular);
        let name = "Bauantrag-Grundstueck-Flurstueck-4711-Anlage-Lageplan-final.pdf";
        let lines = wrap(face, 9.0, name, 80.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), name);
        assert!(lines[0].ends_with('-'), "{lines:?}");
    }

    #[test]
    fn numbers_do_not_break_at_their_separators() {
        let segments: Vec<&str> = soft_segments("3.456.789,5-Datei.v2.pdf").collect();
        assert_eq!(segments, ["3.456.789,5-", "Datei.", "v2.", "pdf"]);
    }

    #[test]
    fn hard_breaks_and_empty_text() {
        let face = fonts().face(FaceId::Regular);
        assert_eq!(wrap(face, 10.0, "", 100.0), vec![String::new()]);
        assert_eq!(wrap(face, 10.0, "a\n\nb", 100.0), vec!["a ", "", "b"]);
        // A width smaller than one character still terminates, one character per line.
        assert_eq!(wrap(face, 10.0, "abc", 0.0), vec!["a", "b", "c"]);
    }

    #[test]
    fn clean_removes_what_pdf_a_forbids() {
        assert_eq!(
            clean("a\r\nb\rc\td\u{0}e\u{E000}f\u{200B}g"),
            "a\nb\nc d\u{FFFD}e\u{FFFD}fg"
        );
    }
}
