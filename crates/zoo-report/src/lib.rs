//! Evaluation reports for the LLM Zoo models, rendered from a plain data model ([`Report`]):
//! Markdown tables ([`markdown()`]), SVG charts ([`svg_charts`]), one self-contained HTML page
//! ([`html()`]) and chart files in SVG or PNG ([`write_plots`]).
//!
//! Published numbers (from papers) and zoo's own measurements sit side by side everywhere: in
//! tables as adjacent rows with an origin column, in charts as light (published) and solid
//! (measured) bars of the model's colour. The renderers never panic: missing, NaN or infinite
//! values show as `–` and are not drawn, and sections with nothing to draw get no chart.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod charts;
#[cfg(test)]
mod fixtures;
mod font;
mod html;
mod markdown;
mod model;
mod plots;
mod text;

pub use charts::{Chart, Histogram, PALETTE, VOTE_COLORS, light, svg_charts, try_svg_charts};
pub use html::html;
pub use markdown::markdown;
pub use model::{BenchmarkSection, Column, JudgeRow, JudgeSection, Origin, Report, ResultRow, VoteRow, VoteSection};
pub use plots::{PlotFormat, write_histogram, write_plots};
pub use text::wrap;

/// What can go wrong while rendering or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded font's bytes did not parse (a build problem, not an input problem).
    #[error("the embedded chart font (DejaVu Sans) could not be loaded")]
    Font,
    /// Plotters refused to draw a chart.
    #[error("drawing chart {chart}: {message}")]
    Draw { chart: String, message: String },
    #[error("encoding chart {chart} as PNG: {source}")]
    Png {
        chart: String,
        #[source]
        source: png::EncodingError,
    },
    #[error("writing a chart file: {0}")]
    Write(#[from] zoo_atomic_write::Error),
    #[error("unknown plot format {0:?} (expected svg or png)")]
    UnknownFormat(String),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
