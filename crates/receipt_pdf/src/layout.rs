//! Page layout: turns a [`ReceiptDocument`] into positioned text lines and rules per page,
//! plus the logical structure (tag tree) that refers to those lines.
//!
//! Layout is separate from PDF writing so that the number of pages is known before the
//! first page is written ("Seite 1 von 3"), and so that every line of content is placed
//! exactly once, in reading order, as a leaf of the structure tree.
//!
//! Coordinates are PDF points with the origin at the top left of the page, y growing down.

use std::num::NonZeroU16;

use krilla::tagging::{ArtifactType, ListNumbering, TableHeaderScope, Tag, TagKind};

use crate::fonts::{FaceId, Fonts, Style, clean, wrap};
use crate::texts::Texts;
use crate::{Outcome, ReceiptDocument};

/// A4 in points.
pub(crate) const PAGE_WIDTH: f32 = 595.276;
pub(crate) const PAGE_HEIGHT: f32 = 841.89;
/// 20 mm.
pub(crate) const MARGIN_X: f32 = 56.693;
const TOP: f32 = 56.693;
/// Content ends above this line; the footer sits below it.
const BOTTOM: f32 = PAGE_HEIGHT - 62.0;
const FOOTER_TOP: f32 = PAGE_HEIGHT - 46.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;

const TITLE: Style = Style {
    face: FaceId::Bold,
    size: 18.0,
};
const TITLE_LINE: f32 = 23.0;
const HEADING: Style = Style {
    face: FaceId::Bold,
    size: 12.5,
};
const HEADING_LINE: f32 = 16.0;
const BODY: Style = Style {
    face: FaceId::Regular,
    size: 10.0,
};
const BODY_LINE: f32 = 13.5;
const OUTCOME: Style = Style {
    face: FaceId::Bold,
    size: 11.0,
};
const OUTCOME_LINE: f32 = 15.0;
const FOOTER: Style = Style {
    face: FaceId::Regular,
    size: 8.5,
};

const DEF_LABEL: Style = Style {
    face: FaceId::Bold,
    size: 9.0,
};
const DEF_VALUE: Style = Style {
    face: FaceId::Regular,
    size: 9.0,
};
const DEF_MONO: Style = Style {
    face: FaceId::Mono,
    size: 8.5,
};
const DEF_LINE: f32 = 12.0;
const DEF_LABEL_WIDTH: f32 = 165.0;

const PARTS_HEAD: Style = Style {
    face: FaceId::Bold,
    size: 7.5,
};
const PARTS_TEXT: Style = Style {
    face: FaceId::Regular,
    size: 8.0,
};
const PARTS_HASH: Style = Style {
    face: FaceId::Mono,
    size: 7.5,
};
const PARTS_LINE: f32 = 10.0;
/// Characters of the SHA-512 hex per line: 128 = 4 × 32.
const HASH_CHARS_PER_LINE: usize = 32;
/// Type, size, virus scan; the name takes what the hash and format columns leave.
const PARTS_TYPE_WIDTH: f32 = 58.0;
const PARTS_SIZE_WIDTH: f32 = 60.0;
const PARTS_SCAN_WIDTH: f32 = 57.0;
const PARTS_FORMAT_WIDTH: f32 = 63.0;

const PROOF: Style = Style {
    face: FaceId::Mono,
    size: 8.5,
};
const PROOF_LINE: f32 = 11.5;

const CELL_PAD_X: f32 = 4.0;
const CELL_PAD_Y: f32 = 3.0;
const SECTION_GAP: f32 = 14.0;
const PARAGRAPH_GAP: f32 = 6.0;

/// How a drawn line belongs to the document.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mark {
    /// Real content: leaf number `n` of the structure tree.
    Content(usize),
    /// Not part of the logical content (page numbers, repeated table headers, rules).
    Artifact(ArtifactType),
}

#[derive(Debug)]
pub(crate) enum Op {
    /// One line of text; `baseline` is the y of its baseline.
    Text {
        x: f32,
        baseline: f32,
        style: Style,
        text: String,
        mark: Mark,
    },
    /// A horizontal rule (always an artifact).
    Rule {
        x1: f32,
        x2: f32,
        y: f32,
        width: f32,
        lightness: u8,
    },
}

/// The logical structure, referring to content leaves by number.
#[derive(Debug)]
pub(crate) enum Node {
    Group(TagKind, Vec<Node>),
    Leaf(usize),
}

#[derive(Debug)]
pub(crate) struct OutlineEntry {
    pub title: String,
    pub level: u8,
    pub page: usize,
    pub y: f32,
}

#[derive(Debug)]
pub(crate) struct Laid {
    pub pages: Vec<Vec<Op>>,
    pub tree: Vec<Node>,
    pub outline: Vec<OutlineEntry>,
    pub leaves: usize,
    pub title: String,
}

pub(crate) fn lay_out(doc: &ReceiptDocument, fonts: &Fonts) -> Laid {
    let texts = doc.language.texts();
    let mut b = Builder {
        fonts,
        pages: vec![Vec::new()],
        y: TOP,
        leaves: 0,
        outline: Vec::new(),
    };
    let mut tree = Vec::new();

    let title = clean(doc.title.trim());
    let title = if title.trim().is_empty() {
        texts.default_title.to_owned()
    } else {
        title
    };
    tree.push(b.heading(1, &title, TITLE, TITLE_LINE));
    b.y += 4.0;

    let outcome_text = match &doc.outcome {
        Outcome::Accepted => texts.accepted,
        Outcome::Rejected { .. } => texts.rejected,
    };
    let outcome = b.paragraph(OUTCOME, outcome_text, MARGIN_X, CONTENT_WIDTH, OUTCOME_LINE);
    tree.push(Node::Group(Tag::P.into(), outcome));

    if let Outcome::Rejected { reasons } = &doc.outcome {
        let reasons: Vec<String> = reasons
            .iter()
            .map(|r| clean(r.trim()))
            .filter(|r| !r.is_empty())
            .collect();
        if !reasons.is_empty() {
            let mut section = vec![b.section_heading(texts.reasons_heading)];
            let items = reasons
                .into_iter()
                .map(|r| ("•".to_owned(), r, BODY))
                .collect();
            section.push(b.list(ListNumbering::Disc, items, BODY_LINE));
            tree.push(Node::Group(Tag::Section.into(), section));
        }
    }

    if !doc.facts.is_empty() {
        let mut section = vec![b.section_heading(texts.facts_heading)];
        let rows = doc
            .facts
            .iter()
            .map(|f| definition_row(texts, &f.label, &f.value, DEF_VALUE))
            .collect();
        section.push(b.table(
            &[DEF_LABEL_WIDTH, CONTENT_WIDTH - DEF_LABEL_WIDTH],
            None,
            rows,
            DEF_LINE,
            None,
        ));
        tree.push(Node::Group(Tag::Section.into(), section));
    }

    let mut section = vec![b.section_heading(texts.parts_heading)];
    if doc.parts.is_empty() {
        let p = b.paragraph(BODY, texts.no_parts, MARGIN_X, CONTENT_WIDTH, BODY_LINE);
        section.push(Node::Group(Tag::P.into(), p));
    } else {
        section.push(b.parts_table(doc, texts));
    }
    tree.push(Node::Group(Tag::Section.into(), section));

    if let Some(journal) = &doc.journal {
        let mut section = vec![b.section_heading(texts.journal_heading)];
        let intro = b.paragraph(
            BODY,
            texts.journal_intro,
            MARGIN_X,
            CONTENT_WIDTH,
            BODY_LINE,
        );
        section.push(Node::Group(Tag::P.into(), intro));
        b.y += PARAGRAPH_GAP;
        let rows = vec![
            definition_row(
                texts,
                texts.journal_leaf_index,
                &texts.integer(journal.leaf_index),
                DEF_VALUE,
            ),
            definition_row(
                texts,
                texts.journal_tree_size,
                &texts.integer(journal.tree_size),
                DEF_VALUE,
            ),
            definition_row(
                texts,
                texts.journal_timestamp,
                &journal.tree_head_time,
                DEF_VALUE,
            ),
            definition_row(texts, texts.journal_root_hash, &journal.root_hash, DEF_MONO),
            definition_row(texts, texts.journal_key_id, &journal.key_id, DEF_MONO),
        ];
        section.push(b.table(
            &[DEF_LABEL_WIDTH, CONTENT_WIDTH - DEF_LABEL_WIDTH],
            None,
            rows,
            DEF_LINE,
            None,
        ));
        b.y += PARAGRAPH_GAP;
        let hashes: Vec<String> = journal.audit_path.iter().map(|h| clean(h.trim())).collect();
        if hashes.is_empty() {
            let p = b.paragraph(
                BODY,
                texts.journal_proof_empty,
                MARGIN_X,
                CONTENT_WIDTH,
                BODY_LINE,
            );
            section.push(Node::Group(Tag::P.into(), p));
        } else {
            b.keep_lines(BODY_LINE + 2.0 * PROOF_LINE);
            let p = b.paragraph(
                BODY,
                texts.journal_proof,
                MARGIN_X,
                CONTENT_WIDTH,
                BODY_LINE,
            );
            section.push(Node::Group(Tag::P.into(), p));
            b.y += 2.0;
            let items = hashes
                .into_iter()
                .enumerate()
                .map(|(i, h)| (format!("{}.", i + 1), h, PROOF))
                .collect();
            section.push(b.list(ListNumbering::Decimal, items, PROOF_LINE));
        }
        tree.push(Node::Group(Tag::Section.into(), section));
    }

    for (heading, text) in [
        (texts.seal_heading, &doc.signature_note),
        (texts.verify_heading, &doc.verify_hint),
    ] {
        let text = clean(text.trim());
        if text.trim().is_empty() {
            continue;
        }
        let mut section = vec![b.section_heading(heading)];
        for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
            let p = b.paragraph(BODY, paragraph.trim(), MARGIN_X, CONTENT_WIDTH, BODY_LINE);
            section.push(Node::Group(Tag::P.into(), p));
            b.y += PARAGRAPH_GAP;
        }
        tree.push(Node::Group(Tag::Section.into(), section));
    }

    b.page_numbers(texts);
    Laid {
        pages: b.pages,
        tree,
        outline: b.outline,
        leaves: b.leaves,
        title,
    }
}

/// A label/value row: the label is a row header.
fn definition_row(texts: &Texts, label: &str, value: &str, value_style: Style) -> Vec<Cell> {
    vec![
        Cell::new(
            label,
            DEF_LABEL,
            CellKind::Header(TableHeaderScope::Row),
            texts,
        ),
        Cell::new(value, value_style, CellKind::Data, texts),
    ]
}

#[derive(Clone, Copy)]
enum CellKind {
    Header(TableHeaderScope),
    Data,
}

struct Cell {
    text: String,
    style: Style,
    kind: CellKind,
}

impl Cell {
    fn new(text: &str, style: Style, kind: CellKind, texts: &Texts) -> Cell {
        let text = clean(text.trim());
        let text = if text.trim().is_empty() {
            texts.empty_value.to_owned()
        } else {
            text
        };
        Cell { text, style, kind }
    }

    fn tag(&self) -> TagKind {
        match self.kind {
            CellKind::Header(scope) => Tag::TH(scope).into(),
            CellKind::Data => Tag::TD.into(),
        }
    }
}

struct Builder<'f> {
    fonts: &'f Fonts,
    pages: Vec<Vec<Op>>,
    /// Top of the next line box on the current page.
    y: f32,
    leaves: usize,
    outline: Vec<OutlineEntry>,
}

impl Builder<'_> {
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    fn page_index(&self) -> usize {
        self.pages.len().saturating_sub(1)
    }

    fn at_top(&self) -> bool {
        self.y <= TOP + 0.5
    }

    fn push(&mut self, op: Op) {
        match self.pages.last_mut() {
            Some(page) => page.push(op),
            None => self.pages.push(vec![op]),
        }
    }

    /// Starts a new page unless `height` more points fit on this one.
    fn keep_lines(&mut self, height: f32) {
        if self.y + height > BOTTOM && !self.at_top() {
            self.new_page();
        }
    }

    /// Draws one line of text in the line box starting at `top`; returns its leaf.
    fn line(
        &mut self,
        x: f32,
        top: f32,
        line_height: f32,
        style: Style,
        text: &str,
        content: bool,
    ) -> Option<Node> {
        if text.is_empty() {
            return None;
        }
        let face = self.fonts.face(style.face);
        let ink = (face.ascent + face.descent) * style.size;
        let baseline = top + (line_height - ink) / 2.0 + face.ascent * style.size;
        let (mark, node) = if content {
            let leaf = self.leaves;
            self.leaves += 1;
            (Mark::Content(leaf), Some(Node::Leaf(leaf)))
        } else {
            (Mark::Artifact(ArtifactType::PaginationOther), None)
        };
        self.push(Op::Text {
            x,
            baseline,
            style,
            text: text.to_owned(),
            mark,
        });
        node
    }

    /// Wrapped text at `x`, breaking pages between lines; returns the leaves.
    fn paragraph(
        &mut self,
        style: Style,
        text: &str,
        x: f32,
        width: f32,
        line_height: f32,
    ) -> Vec<Node> {
        let text = clean(text);
        let lines = wrap(self.fonts.face(style.face), style.size, &text, width);
        let mut leaves = Vec::new();
        for line in lines {
            if self.y + line_height > BOTTOM && !self.at_top() {
                self.new_page();
            }
            leaves.extend(self.line(x, self.y, line_height, style, &line, true));
            self.y += line_height;
        }
        leaves
    }

    fn heading(&mut self, level: u16, text: &str, style: Style, line_height: f32) -> Node {
        let lines = wrap(self.fonts.face(style.face), style.size, text, CONTENT_WIDTH);
        // Keep the heading with at least three lines of what follows.
        let height = lines.len() as f32 * line_height + 3.0 * BODY_LINE;
        if height < BOTTOM - TOP {
            self.keep_lines(height);
        }
        self.outline.push(OutlineEntry {
            title: text.to_owned(),
            level: u8::try_from(level).unwrap_or(u8::MAX),
            page: self.page_index(),
            y: self.y,
        });
        let leaves = self.paragraph(style, text, MARGIN_X, CONTENT_WIDTH, line_height);
        let level = NonZeroU16::new(level).unwrap_or(NonZeroU16::MIN);
        Node::Group(Tag::Hn(level, Some(text.to_owned())).into(), leaves)
    }

    fn section_heading(&mut self, text: &str) -> Node {
        if !self.at_top() {
            self.y += SECTION_GAP;
        }
        let node = self.heading(2, text, HEADING, HEADING_LINE);
        self.y += 3.0;
        node
    }

    /// A list; each item is (label, text, style of the text).
    fn list(
        &mut self,
        numbering: ListNumbering,
        items: Vec<(String, String, Style)>,
        line_height: f32,
    ) -> Node {
        let label_width = items
            .iter()
            .map(|(label, _, _)| self.fonts.face(BODY.face).width(label, BODY.size))
            .fold(0.0_f32, f32::max)
            + 6.0;
        let indent = MARGIN_X + 8.0;
        let body_x = indent + label_width;
        let body_width = MARGIN_X + CONTENT_WIDTH - body_x;
        let mut list = Vec::new();
        for (label, text, style) in items {
            let lines = wrap(self.fonts.face(style.face), style.size, &text, body_width);
            let mut label_leaf = None;
            let mut body = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                if self.y + line_height > BOTTOM && !self.at_top() {
                    self.new_page();
                }
                if i == 0 {
                    label_leaf = self.line(indent, self.y, line_height, BODY, &label, true);
                }
                body.extend(self.line(body_x, self.y, line_height, style, line, true));
                self.y += line_height;
            }
            self.y += 2.0;
            let mut item = Vec::new();
            if let Some(leaf) = label_leaf {
                item.push(Node::Group(Tag::Lbl.into(), vec![leaf]));
            }
            item.push(Node::Group(Tag::LBody.into(), body));
            list.push(Node::Group(Tag::LI.into(), item));
        }
        Node::Group(Tag::L(numbering).into(), list)
    }

    fn parts_table(&mut self, doc: &ReceiptDocument, texts: &Texts) -> Node {
        let mono = self.fonts.face(PARTS_HASH.face);
        let hash_width =
            mono.width(&"0".repeat(HASH_CHARS_PER_LINE), PARTS_HASH.size) + 2.0 * CELL_PAD_X + 0.05;
        let name_width = CONTENT_WIDTH
            - hash_width
            - PARTS_TYPE_WIDTH
            - PARTS_SIZE_WIDTH
            - PARTS_SCAN_WIDTH
            - PARTS_FORMAT_WIDTH;
        let widths = [
            name_width,
            PARTS_TYPE_WIDTH,
            PARTS_SIZE_WIDTH,
            PARTS_SCAN_WIDTH,
            PARTS_FORMAT_WIDTH,
            hash_width,
        ];
        let column = CellKind::Header(TableHeaderScope::Column);
        let head = [
            texts.col_name,
            texts.col_type,
            texts.col_size,
            texts.col_scan,
            texts.col_validation,
            texts.col_hash,
        ]
        .iter()
        .map(|t| Cell::new(t, PARTS_HEAD, column, texts))
        .collect();
        let rows = doc
            .parts
            .iter()
            .map(|p| {
                vec![
                    Cell::new(&p.name, PARTS_TEXT, CellKind::Data, texts),
                    Cell::new(&p.media_type, PARTS_TEXT, CellKind::Data, texts),
                    Cell::new(&texts.size(p.size), PARTS_TEXT, CellKind::Data, texts),
                    Cell::new(&p.scan_result, PARTS_TEXT, CellKind::Data, texts),
                    Cell::new(&p.validation_result, PARTS_TEXT, CellKind::Data, texts),
                    Cell::new(&p.sha512_hex, PARTS_HASH, CellKind::Data, texts),
                ]
            })
            .collect();
        self.table(
            &widths,
            Some(head),
            rows,
            PARTS_LINE,
            Some(texts.parts_summary),
        )
    }

    /// A table with an optional header row (repeated as an artifact on every page the table
    /// continues on). Rows move to the next page whole when they fit there; a row taller than
    /// a page is split between lines.
    fn table(
        &mut self,
        widths: &[f32],
        head: Option<Vec<Cell>>,
        rows: Vec<Vec<Cell>>,
        line_height: f32,
        summary: Option<&str>,
    ) -> Node {
        let wrapped = |b: &Self, cells: &[Cell]| -> Vec<Vec<String>> {
            cells
                .iter()
                .zip(widths)
                .map(|(c, w)| {
                    wrap(
                        b.fonts.face(c.style.face),
                        c.style.size,
                        &c.text,
                        w - 2.0 * CELL_PAD_X,
                    )
                })
                .collect()
        };
        let rows_of = |lines: &[Vec<String>]| lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let head = head.map(|cells| {
            let lines = wrapped(self, &cells);
            (cells, lines)
        });
        let head_height = head.as_ref().map_or(0.0, |(_, lines)| {
            2.0 * CELL_PAD_Y + rows_of(lines) as f32 * line_height
        });
        let right = MARGIN_X + widths.iter().sum::<f32>();

        // Header plus the first lines of the first row, or a new page.
        let first = rows
            .first()
            .map_or(1, |cells| rows_of(&wrapped(self, cells)).min(3));
        self.keep_lines(head_height + 2.0 * CELL_PAD_Y + first as f32 * line_height);

        let mut table = Vec::new();
        if let Some((cells, lines)) = &head {
            self.rule(MARGIN_X, right, 0.8, 60);
            let leaves = self.row_slice(widths, cells, lines, 0, usize::MAX, line_height, true);
            let ths = cells
                .iter()
                .zip(leaves)
                .map(|(c, l)| Node::Group(c.tag(), l))
                .collect();
            let tr = Node::Group(Tag::TR.into(), ths);
            table.push(Node::Group(Tag::THead.into(), vec![tr]));
            self.rule(MARGIN_X, right, 0.8, 60);
        } else {
            self.rule(MARGIN_X, right, 0.5, 150);
        }

        let mut body = Vec::new();
        for cells in &rows {
            let lines = wrapped(self, cells);
            let total = rows_of(&lines);
            let mut cell_nodes: Vec<Vec<Node>> = cells.iter().map(|_| Vec::new()).collect();
            let mut start = 0;
            let mut fresh = false;
            while start < total {
                let available = BOTTOM - self.y - 2.0 * CELL_PAD_Y;
                let fit = (available / line_height).floor().max(0.0) as usize;
                let remaining = total - start;
                let capacity = ((BOTTOM - TOP - head_height - 2.0 * CELL_PAD_Y) / line_height)
                    .floor()
                    .max(1.0) as usize;
                let take = if remaining <= fit {
                    remaining
                } else if fresh || (remaining > capacity && fit >= 2) {
                    // Split: this page takes what fits (at least one line on a fresh page).
                    fit.max(1)
                } else {
                    self.continue_table(widths, head.as_ref(), line_height, right);
                    fresh = true;
                    continue;
                };
                let slice = self.row_slice(
                    widths,
                    cells,
                    &lines,
                    start,
                    start + take,
                    line_height,
                    true,
                );
                for (acc, leaves) in cell_nodes.iter_mut().zip(slice) {
                    acc.extend(leaves);
                }
                self.rule(MARGIN_X, right, 0.4, 170);
                start += take;
                if start < total {
                    self.continue_table(widths, head.as_ref(), line_height, right);
                    fresh = true;
                }
            }
            let tr = cells
                .iter()
                .zip(cell_nodes)
                .map(|(c, nodes)| Node::Group(c.tag(), nodes))
                .collect();
            body.push(Node::Group(Tag::TR.into(), tr));
        }
        if head.is_some() {
            table.push(Node::Group(Tag::TBody.into(), body));
        } else {
            table.extend(body);
        }
        let tag = Tag::Table.with_summary(summary.map(str::to_owned));
        Node::Group(tag.into(), table)
    }

    /// New page for a table that goes on: the header row again, as an artifact.
    fn continue_table(
        &mut self,
        widths: &[f32],
        head: Option<&(Vec<Cell>, Vec<Vec<String>>)>,
        line_height: f32,
        right: f32,
    ) {
        self.new_page();
        if let Some((cells, lines)) = head {
            self.rule(MARGIN_X, right, 0.8, 60);
            self.row_slice(widths, cells, lines, 0, usize::MAX, line_height, false);
            self.rule(MARGIN_X, right, 0.8, 60);
        } else {
            self.rule(MARGIN_X, right, 0.5, 150);
        }
    }

    /// Draws lines `from..to` of every cell of a row at the current position, moves down,
    /// and returns the leaves of each cell (none when drawn as an artifact).
    #[allow(clippy::too_many_arguments)]
    fn row_slice(
        &mut self,
        widths: &[f32],
        cells: &[Cell],
        lines: &[Vec<String>],
        from: usize,
        to: usize,
        line_height: f32,
        content: bool,
    ) -> Vec<Vec<Node>> {
        let top = self.y + CELL_PAD_Y;
        let mut x = MARGIN_X;
        let mut out = Vec::with_capacity(cells.len());
        let mut max_lines = 0;
        for ((cell, cell_lines), width) in cells.iter().zip(lines).zip(widths) {
            let end = to.min(cell_lines.len());
            let mut leaves = Vec::new();
            for (i, line) in cell_lines.iter().enumerate().take(end).skip(from) {
                let line_top = top + (i - from) as f32 * line_height;
                leaves.extend(self.line(
                    x + CELL_PAD_X,
                    line_top,
                    line_height,
                    cell.style,
                    line,
                    content,
                ));
            }
            max_lines = max_lines.max(end.saturating_sub(from));
            out.push(leaves);
            x += width;
        }
        self.y = top + max_lines.max(1) as f32 * line_height + CELL_PAD_Y;
        out
    }

    fn rule(&mut self, x1: f32, x2: f32, width: f32, lightness: u8) {
        let y = self.y;
        self.push(Op::Rule {
            x1,
            x2,
            y,
            width,
            lightness,
        });
    }

    /// "Seite i von n" in the footer of every page, when there is more than one.
    fn page_numbers(&mut self, texts: &Texts) {
        let pages = self.pages.len();
        if pages < 2 {
            return;
        }
        let face = self.fonts.face(FOOTER.face);
        for (i, page) in self.pages.iter_mut().enumerate() {
            let text = texts.page_of(i + 1, pages);
            let x = MARGIN_X + CONTENT_WIDTH - face.width(&text, FOOTER.size);
            let baseline = FOOTER_TOP + face.ascent * FOOTER.size;
            page.push(Op::Text {
                x,
                baseline,
                style: FOOTER,
                text,
                mark: Mark::Artifact(ArtifactType::Footer),
            });
        }
    }
}
