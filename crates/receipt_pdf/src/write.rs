//! Writes a laid-out receipt with krilla, under the PDF/A-2a and PDF/UA-1 validators.

use krilla::Document;
use krilla::SerializeSettings;
use krilla::color::luma;
use krilla::configure::{Accessibility, Archival, ConfigurationBuilder, Validators};
use krilla::destination::XyzDestination;
use krilla::error::KrillaError;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::{DateTime, Metadata};
use krilla::outline::{Outline, OutlineNode};
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::surface::Surface;
use krilla::tagging::{Artifact, ArtifactType, ContentTag, Identifier, SpanTag, TagGroup, TagTree};

use crate::fonts::Fonts;
use crate::layout::{Laid, MARGIN_X, Mark, Node, Op, OutlineEntry, PAGE_HEIGHT, PAGE_WIDTH};
use crate::{Error, PROFILES, ReceiptDocument};

/// Shown as the creating application in the document information and XMP metadata.
const CREATOR: &str = "Rathaus ePoststelle";

pub(crate) fn write(laid: Laid, doc: &ReceiptDocument, fonts: &Fonts) -> Result<Vec<u8>, Error> {
    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_A)
        .with_accessibility_validator(Accessibility::UA1)
        .finish()
        .map_err(|e| Error::Pdf(format!("{PROFILES} cannot be combined: {e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        enable_tagging: true,
        compress_content_streams: true,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    let page_settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
        .ok_or_else(|| Error::Pdf("invalid page size".into()))?;

    let mut ids: Vec<Option<Identifier>> = (0..laid.leaves).map(|_| None).collect();
    for ops in &laid.pages {
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        for op in ops {
            draw(&mut surface, op, fonts, &mut ids)?;
        }
        surface.finish();
        page.finish();
    }

    let texts = doc.language.texts();
    let mut tree = TagTree::new().with_lang(Some(texts.lang_tag.to_owned()));
    for node in laid.tree {
        if let Some(node) = tag_node(node, &mut ids)? {
            tree.push(node);
        }
    }
    if ids.iter().any(Option::is_some) {
        return Err(Error::Pdf("content outside the structure tree".into()));
    }
    document.set_tag_tree(tree);
    document.set_outline(outline(&laid.outline));
    document.set_metadata(
        Metadata::new()
            .title(laid.title)
            .language(texts.lang_tag.to_owned())
            .creator(CREATOR.to_owned())
            .creation_date(pdf_date(doc.issued_at)),
    );
    document.finish().map_err(krilla_error)
}

fn draw(
    surface: &mut Surface<'_>,
    op: &Op,
    fonts: &Fonts,
    ids: &mut [Option<Identifier>],
) -> Result<(), Error> {
    match op {
        Op::Text {
            x,
            baseline,
            style,
            text,
            mark,
        } => {
            let face = fonts.face(style.face);
            let glyphs = face.glyphs(text);
            let tag = match mark {
                Mark::Content(_) => ContentTag::Span(SpanTag::empty()),
                Mark::Artifact(kind) => ContentTag::Artifact(Artifact::with_kind(*kind)),
            };
            let id = surface.start_tagged(tag);
            surface.draw_glyphs(
                Point::from_xy(*x, *baseline),
                &glyphs,
                face.font.clone(),
                text,
                style.size,
                false,
            );
            surface.end_tagged();
            if let Mark::Content(leaf) = mark {
                let slot = ids
                    .get_mut(*leaf)
                    .ok_or_else(|| Error::Pdf(format!("leaf {leaf} out of range")))?;
                *slot = Some(id);
            }
        }
        Op::Rule {
            x1,
            x2,
            y,
            width,
            lightness,
        } => {
            let mut path = PathBuilder::new();
            path.move_to(*x1, *y);
            path.line_to(*x2, *y);
            let Some(path) = path.finish() else {
                return Ok(());
            };
            surface.start_tagged(ContentTag::Artifact(Artifact::with_kind(
                ArtifactType::Layout,
            )));
            surface.set_fill(None);
            surface.set_stroke(Some(Stroke {
                paint: luma::Color::new(*lightness).into(),
                width: *width,
                ..Stroke::default()
            }));
            surface.draw_path(&path);
            // Text is drawn with the default (black) fill and no stroke.
            surface.set_stroke(None);
            surface.end_tagged();
        }
    }
    Ok(())
}

/// Replaces leaf numbers by the identifiers krilla handed out while drawing. Each identifier
/// is used exactly once, as krilla requires.
fn tag_node(
    node: Node,
    ids: &mut [Option<Identifier>],
) -> Result<Option<krilla::tagging::Node>, Error> {
    match node {
        Node::Leaf(leaf) => {
            let id = ids
                .get_mut(leaf)
                .and_then(Option::take)
                .ok_or_else(|| Error::Pdf(format!("leaf {leaf} not drawn or used twice")))?;
            Ok(Some(id.into()))
        }
        Node::Group(tag, children) => {
            let mut group = TagGroup::new(tag);
            for child in children {
                if let Some(child) = tag_node(child, ids)? {
                    group.push(child);
                }
            }
            // krilla drops empty groups itself; skipping them here keeps the tree tidy.
            Ok((!group.children.is_empty()).then_some(group.into()))
        }
    }
}

/// H1 at the top, the H2 sections beneath it, each jumping to its heading.
fn outline(entries: &[OutlineEntry]) -> Outline {
    let mut outline = Outline::new();
    let node = |e: &OutlineEntry| {
        OutlineNode::new(
            e.title.clone(),
            XyzDestination::new(e.page, Point::from_xy(MARGIN_X, e.y)),
        )
    };
    let mut top: Option<OutlineNode> = None;
    for entry in entries {
        match (&mut top, entry.level) {
            (Some(parent), level) if level > 1 => parent.push_child(node(entry)),
            _ => {
                if let Some(done) = top.take() {
                    outline.push_child(done);
                }
                top = Some(node(entry).with_open(true));
            }
        }
    }
    if let Some(done) = top {
        outline.push_child(done);
    }
    outline
}

fn pdf_date(at: time::OffsetDateTime) -> DateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let year = u16::try_from(utc.year().clamp(0, 9999)).unwrap_or(0);
    DateTime::new(year)
        .month(u8::from(utc.month()))
        .day(utc.day())
        .hour(utc.hour())
        .minute(utc.minute())
        .second(utc.second())
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

fn krilla_error(error: KrillaError) -> Error {
    match error {
        KrillaError::Validation(errors) => Error::Validation(
            errors
                .iter()
                .map(|(e, validators)| {
                    format!("{e:?} (forbidden by {})", validator_names(*validators))
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => Error::Pdf(other.to_string()),
    }
}

fn validator_names(validators: Validators) -> String {
    let mut names = Vec::new();
    if let Some(a) = validators.archival() {
        names.push(a.as_str());
    }
    if let Some(ua) = validators.accessibility() {
        names.push(ua.as_str());
    }
    names.join(", ")
}
