//! The chart font: DejaVu Sans, embedded, registered with plotters once per process.
//!
//! Plotters' `ab_glyph` text support knows only registered fonts, and it measures text with them
//! for SVG too (to lay out labels), so every renderer calls [`ensure`] first. Embedding the font
//! keeps PNG output the same on every machine, with or without system fonts. DejaVu Sans has no
//! CJK glyphs: Chinese text in PNG charts shows as empty boxes (SVG text is drawn by the viewer
//! with its own fonts, so SVG and HTML charts show it). Licence: `assets/LICENSE-DejaVu`.

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::Error;

/// The family name charts ask for; the embedded font is registered under it.
pub const FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font (once); an error only if the embedded bytes do not parse.
pub fn ensure() -> Result<(), Error> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok { Ok(()) } else { Err(Error::Font) }
}
