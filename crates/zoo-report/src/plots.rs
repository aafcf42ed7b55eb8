//! Chart files: one file per chart, `<chart-id>.svg` or `<chart-id>.png`, each written atomically.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::charts::{Histogram, all_specs, histogram_spec, render_png, render_svg};
use crate::model::Report;
use crate::{Error, Result};

/// The file format of [`write_plots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlotFormat {
    /// Vector; text is drawn by the viewer, so any script in names shows.
    Svg,
    /// Bitmap at the chart's pixel size; text drawn with the embedded DejaVu Sans, which has no
    /// CJK glyphs (such characters show as boxes).
    Png,
}

impl PlotFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            PlotFormat::Svg => "svg",
            PlotFormat::Png => "png",
        }
    }
}

impl FromStr for PlotFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "svg" => Ok(PlotFormat::Svg),
            "png" => Ok(PlotFormat::Png),
            _ => Err(Error::UnknownFormat(s.to_string())),
        }
    }
}

/// Writes every chart of the report into `dir` (created if needed) as `<chart-id>.<ext>`, and
/// returns the paths in report order. Each file is replaced whole or not at all; files of other
/// charts already in `dir` are left alone.
pub fn write_plots(report: &Report, dir: &Path, format: PlotFormat) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for spec in all_specs(report) {
        let bytes = match format {
            PlotFormat::Svg => render_svg(&spec)?.svg.into_bytes(),
            PlotFormat::Png => render_png(&spec)?,
        };
        let path = dir.join(format!("{}.{}", spec.id, format.extension()));
        zoo_atomic_write::write(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

impl PlotFormat {
    /// The format a file name asks for: `.svg` or `.png`.
    pub fn from_path(path: &Path) -> Result<PlotFormat> {
        path.extension().and_then(|e| e.to_str()).unwrap_or("").parse()
    }
}

/// Writes one histogram to `path`, SVG or PNG by the file's extension, atomically. A histogram
/// with no counts writes an empty chart frame rather than nothing, so the file always exists.
pub fn write_histogram(h: &Histogram, path: &Path) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    let mut h = h.clone();
    if h.bins.is_empty() {
        h.bins.push(("none".to_string(), 0));
    }
    let spec =
        histogram_spec(&h).ok_or_else(|| Error::Draw { chart: h.title.clone(), message: "nothing to draw".into() })?;
    let bytes = match format {
        PlotFormat::Svg => render_svg(&spec)?.svg.into_bytes(),
        PlotFormat::Png => render_png(&spec)?,
    };
    zoo_atomic_write::write(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn png_files_are_valid_pngs_of_the_chart_size_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("plots");
        let report = fixtures::small();
        let paths = write_plots(&report, &out, PlotFormat::Png).unwrap();
        let charts = crate::svg_charts(&report);
        assert_eq!(paths.len(), charts.len());
        for (path, chart) in paths.iter().zip(&charts) {
            assert_eq!(path, &out.join(format!("{}.png", chart.id)));
            let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
            let mut reader = dec.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), (chart.width, chart.height));
            assert_eq!(info.color_type, png::ColorType::Rgb);
            let px: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
            assert!(px.len() > 20, "{}: {} distinct colours", chart.id, px.len());
            // Text is drawn (anti-aliased greys) and so are the bars (a palette colour).
            let (r, g, b) = if chart.id.starts_with("votes-") { crate::VOTE_COLORS[0] } else { crate::PALETTE[0] };
            assert!(px.contains(&[r, g, b][..]), "{}: no bar colour", chart.id);
        }
        // Atomic writes leave no temp files behind.
        let names: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| n.ends_with(".png") && !zoo_atomic_write::is_temp_name(n)), "{names:?}");
    }

    #[test]
    fn svg_files_are_svg_documents() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_plots(&fixtures::awkward(), dir.path(), PlotFormat::Svg).unwrap();
        assert!(!paths.is_empty());
        for p in &paths {
            assert_eq!(p.extension().and_then(|e| e.to_str()), Some("svg"));
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", p.display());
            assert_eq!(text.matches("<svg").count(), 1);
            assert_eq!(text.matches("<text").count(), text.matches("</text>").count());
        }
    }

    #[test]
    fn an_empty_report_writes_nothing_and_formats_parse() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_plots(&Report::default(), dir.path(), PlotFormat::Png).unwrap().is_empty());
        assert_eq!("SVG".parse::<PlotFormat>().unwrap(), PlotFormat::Svg);
        assert_eq!(" png".parse::<PlotFormat>().unwrap(), PlotFormat::Png);
        assert!(matches!("jpeg".parse::<PlotFormat>(), Err(Error::UnknownFormat(_))));
    }

    #[test]
    fn an_unwritable_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let err = write_plots(&fixtures::small(), &file, PlotFormat::Svg).unwrap_err();
        assert!(matches!(err, Error::Write(_)), "{err}");
    }
}
