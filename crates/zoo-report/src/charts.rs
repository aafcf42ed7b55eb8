//! Charts: every section becomes a `Spec` (categories on x, one bar series per model or
//! outcome), drawn by plotters on its SVG backend (for the page and `.svg` files) or its bitmap
//! backend (`.png` files), so both formats show the same picture.
//!
//! Robustness rules, since reports come from files a person may have edited: a value that is
//! NaN, infinite or beyond ±1e12 is not drawn (it shows as missing in tables); a chart with
//! nothing to draw is skipped; names are cut to fit their box (the full text is in the tables);
//! the y range always holds 0 and is at least 1 wide, which keeps plotters' tick search finite.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::Error;
use crate::font::{self, FAMILY};
use crate::model::{BenchmarkSection, JudgeSection, Origin, Report, VoteSection};
use crate::text::{self, UniqueIds, slug, truncate};

/// One rendered chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// File- and id-safe name, unique within a report: `[a-z0-9-]+`.
    pub id: String,
    pub title: String,
    /// Size in pixels (the SVG's `width`/`height`, the PNG's dimensions).
    pub width: u32,
    pub height: u32,
    /// A complete `<svg …>…</svg>` document.
    pub svg: String,
}

/// Model colours (RGB), given in order of first appearance; the overall and judge charts use
/// the first. All strongly coloured (no greys), so that bars stand apart from the black/grey
/// text, axes and grid, and so do their light (published) variants, see [`light`].
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (166, 86, 40),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (0, 128, 128),
];

/// Vote outcome colours (RGB): model A wins, tie, model B wins.
pub const VOTE_COLORS: [(u8, u8, u8); 3] = [(44, 160, 44), (240, 180, 0), (214, 39, 40)];

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

/// The reference line of judge charts.
const REFERENCE: RGBColor = RGBColor(90, 90, 90);
/// Width of the legend panel right of the plot.
const LEGEND_W: u32 = 250;
const MIN_W: u32 = 720;
const MAX_W: u32 = 1600;
const MIN_H: u32 = 440;
const MAX_H: u32 = 1200;
const LEGEND_ROW: u32 = 20;
/// Values beyond this are not drawn: nothing real is that large, and huge ranges break tick math.
const LIMIT: f64 = 1e12;

/// How a bar is filled: measured results solid, published ones light with a solid outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Solid,
    Light,
}

/// The fill of a published bar: the model's colour, 40 % towards white.
pub fn light((r, g, b): (u8, u8, u8)) -> (u8, u8, u8) {
    let mix = |v: u8| (f64::from(v) * 0.6 + 255.0 * 0.4).round().clamp(0.0, 255.0) as u8;
    (mix(r), mix(g), mix(b))
}

#[derive(Debug, Clone)]
struct Series {
    label: String,
    /// Kept whole when the label is cut for the legend (` (published)` must survive).
    suffix: String,
    color: (u8, u8, u8),
    fill: Fill,
    /// One per category; `None` draws no bar.
    values: Vec<Option<f64>>,
}

/// What a chart shows, before drawing.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub id: String,
    pub title: String,
    x_desc: String,
    y_desc: String,
    categories: Vec<String>,
    series: Vec<Series>,
    stacked: bool,
    /// The y axis reaches at least this high (100 for percents, so bars compare with the whole).
    y_top_at_least: f64,
    /// A horizontal line drawn across the plot (100 % of the reference in judge charts).
    reference_line: Option<(f64, String)>,
    pub width: u32,
    pub height: u32,
}

/// The charts of each section, in report order; ids are unique across the report.
#[derive(Debug, Default)]
pub(crate) struct SectionSpecs {
    pub benchmarks: Vec<Vec<Spec>>,
    pub judges: Vec<Vec<Spec>>,
    pub votes: Vec<Vec<Spec>>,
}

fn plottable(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && v.abs() <= LIMIT)
}

fn percent_label(metric: &str) -> String {
    let m = text::one_line(metric);
    let m = m.trim();
    if m.is_empty() { "value (%)".to_string() } else { format!("{m} (%)") }
}

impl Spec {
    // One argument per field the caller decides; a builder would be longer than the calls.
    #[allow(clippy::too_many_arguments)]
    fn new(
        ids: &mut UniqueIds,
        id: &str,
        title: String,
        x_desc: &str,
        y_desc: String,
        categories: Vec<String>,
        series: Vec<Series>,
        stacked: bool,
        y_top_at_least: f64,
    ) -> Option<Spec> {
        // Nothing to draw: no categories, or not one drawable value.
        let any = series.iter().any(|s| s.values.iter().any(|v| plottable(*v).is_some()));
        if categories.is_empty() || !any {
            return None;
        }
        let n = categories.len() as u32;
        let bars = if stacked { n } else { n.saturating_mul(series.len().max(1) as u32) };
        let plot_w = bars.saturating_mul(14).saturating_add(n.saturating_mul(24)).saturating_add(110);
        let width = plot_w.saturating_add(LEGEND_W).clamp(MIN_W, MAX_W);
        let legend_h = (series.len() as u32).saturating_mul(LEGEND_ROW).saturating_add(100);
        let height = legend_h.clamp(MIN_H, MAX_H);
        Some(Spec {
            id: ids.make(id),
            title,
            x_desc: x_desc.to_string(),
            y_desc,
            categories,
            series,
            stacked,
            y_top_at_least,
            reference_line: None,
            width,
            height,
        })
    }

    /// The y range: holds 0 and every drawn bar, at least 1 wide, a little headroom.
    fn y_range(&self) -> (f64, f64) {
        let mut lo = 0.0f64;
        let mut hi = 0.0f64;
        if self.stacked {
            for i in 0..self.categories.len() {
                let sum: f64 = self
                    .series
                    .iter()
                    .filter_map(|s| plottable(s.values.get(i).copied().flatten()))
                    .map(|v| v.max(0.0))
                    .sum();
                hi = hi.max(sum);
            }
        } else {
            for v in self.series.iter().flat_map(|s| s.values.iter()).filter_map(|v| plottable(*v)) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        let span = (hi - lo).max(1.0);
        if hi > 0.0 && hi < self.y_top_at_least {
            hi = self.y_top_at_least;
        } else if hi > 0.0 {
            hi += span * 0.08;
        }
        if lo < 0.0 {
            lo -= span * 0.08;
        }
        if hi - lo < 1.0 {
            hi = lo + 1.0;
        }
        (lo, hi)
    }
}

fn model_colors<'a>(models: impl Iterator<Item = &'a str>) -> std::collections::HashMap<&'a str, (u8, u8, u8)> {
    let mut map = std::collections::HashMap::new();
    for m in models {
        let next = PALETTE.get(map.len() % PALETTE.len()).copied().unwrap_or(PALETTE[0]);
        map.entry(m).or_insert(next);
    }
    map
}

fn benchmark_specs(ids: &mut UniqueIds, b: &BenchmarkSection) -> Vec<Spec> {
    let order = b.display_order();
    let rows: Vec<_> = order.iter().filter_map(|&i| b.rows.get(i)).collect();
    let colors = model_colors(rows.iter().map(|r| r.model.as_str()));
    let base = slug(if b.name.trim().is_empty() { &b.title } else { &b.name });
    let title = text::one_line(if b.title.trim().is_empty() { &b.name } else { &b.title });
    let y_desc = percent_label(&b.metric);
    let mut out = Vec::new();

    // Per-column chart: x = each language (or other non-aggregate) column, a bar per row.
    let cols: Vec<_> = b.columns.iter().filter(|c| !c.aggregate).collect();
    let all_langs = !cols.is_empty() && cols.iter().all(|c| c.lang.is_some());
    let series = rows
        .iter()
        .map(|r| Series {
            label: text::one_line(&r.model),
            suffix: format!(" ({})", r.origin),
            color: colors.get(r.model.as_str()).copied().unwrap_or(PALETTE[0]),
            fill: if r.origin == Origin::Measured { Fill::Solid } else { Fill::Light },
            values: cols.iter().map(|c| r.value(&c.key)).collect(),
        })
        .collect();
    let (what, x_desc) = if all_langs { ("language", "language") } else { ("column", "column") };
    out.extend(Spec::new(
        ids,
        &format!("bench-{base}-by-{what}"),
        format!("{title}: {} by {what}", text::one_line(&b.metric)),
        x_desc,
        y_desc.clone(),
        cols.iter().map(|c| text::one_line(crate::markdown::column_label(c))).collect(),
        series,
        false,
        100.0,
    ));

    // Overall comparison: x = model, published beside measured, one chart per aggregate column.
    let aggs: Vec<_> = b.columns.iter().filter(|c| c.aggregate).collect();
    let mut models: Vec<&str> = Vec::new();
    for r in &rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    for c in &aggs {
        let first = |m: &str, o: Origin| {
            rows.iter().filter(|r| r.model == m && r.origin == o).find_map(|r| plottable(r.value(&c.key)))
        };
        let series: Vec<Series> = [Origin::Published, Origin::Measured]
            .into_iter()
            .map(|o| Series {
                label: o.to_string(),
                suffix: String::new(),
                color: PALETTE[0],
                fill: if o == Origin::Measured { Fill::Solid } else { Fill::Light },
                values: models.iter().map(|m| first(m, o)).collect(),
            })
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect();
        let id = if aggs.len() == 1 {
            format!("bench-{base}-overall")
        } else {
            format!("bench-{base}-overall-{}", slug(&c.key))
        };
        let label = text::one_line(crate::markdown::column_label(c));
        out.extend(Spec::new(
            ids,
            &id,
            format!("{title}: {label} per model"),
            "model",
            y_desc.clone(),
            models.iter().map(|m| text::one_line(m)).collect(),
            series,
            false,
            100.0,
        ));
    }
    out
}

fn judge_specs(ids: &mut UniqueIds, j: &JudgeSection) -> Vec<Spec> {
    let reference = text::one_line(&j.reference);
    let series = vec![Series {
        label: format!("ratio to {reference}"),
        suffix: String::new(),
        color: PALETTE[0],
        fill: Fill::Solid,
        values: j.rows.iter().map(|r| r.ratio).collect(),
    }];
    let spec = Spec::new(
        ids,
        &format!("judge-{}", slug(&j.name)),
        format!("Judge: {}", text::one_line(&j.name)),
        "model",
        format!("% of {reference}"),
        j.rows.iter().map(|r| text::one_line(&r.model)).collect(),
        series,
        false,
        // Headroom above the reference line, so it does not sit on the frame.
        110.0,
    );
    let line = (100.0, format!("{reference} = 100 %"));
    spec.map(|s| Spec { reference_line: Some(line), ..s }).into_iter().collect()
}

fn vote_specs(ids: &mut UniqueIds, v: &VoteSection) -> Vec<Spec> {
    let outcome = |label: &str, color, pick: fn(&crate::model::VoteRow) -> u32| Series {
        label: label.to_string(),
        suffix: String::new(),
        color,
        fill: Fill::Solid,
        values: v.rows.iter().map(|r| Some(f64::from(pick(r)))).collect(),
    };
    let series = vec![
        outcome("model A wins", VOTE_COLORS[0], |r| r.win),
        outcome("tie", VOTE_COLORS[1], |r| r.tie),
        outcome("model B wins", VOTE_COLORS[2], |r| r.lose),
    ];
    Spec::new(
        ids,
        &format!("votes-{}", slug(&v.title)),
        format!("Votes: {}", text::one_line(&v.title)),
        "model A vs model B",
        "votes".to_string(),
        v.rows.iter().map(|r| format!("{} vs {}", text::one_line(&r.model_a), text::one_line(&r.model_b))).collect(),
        series,
        true,
        0.0,
    )
    .into_iter()
    .collect()
}

pub(crate) fn section_specs(report: &Report) -> SectionSpecs {
    let mut ids = UniqueIds::default();
    SectionSpecs {
        benchmarks: report.benchmarks.iter().map(|b| benchmark_specs(&mut ids, b)).collect(),
        judges: report.judges.iter().map(|j| judge_specs(&mut ids, j)).collect(),
        votes: report.votes.iter().map(|v| vote_specs(&mut ids, v)).collect(),
    }
}

pub(crate) fn all_specs(report: &Report) -> Vec<Spec> {
    let s = section_specs(report);
    s.benchmarks.into_iter().chain(s.judges).chain(s.votes).flatten().collect()
}

fn draw_err<E: std::fmt::Debug>(chart: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Draw { chart: chart.to_string(), message: format!("{e:?}") }
}

/// The x label at position `x`: the category whose centre it is, cut to `max` columns.
fn label_at(categories: &[String], x: f64, max: usize) -> String {
    let i = x.round();
    if i < 0.0 || !i.is_finite() {
        return String::new();
    }
    categories.get(i as usize).map(|c| truncate(c, max)).unwrap_or_default()
}

/// The x axis: categories centred at 0, 1, … n-1, one tick (and label) at each centre.
/// (Plotters' `with_key_points` would do, but it loses the f64 label formatter.)
struct CategoryAxis {
    n: usize,
    inner: RangedCoordf64,
}

impl CategoryAxis {
    fn new(n: usize) -> Self {
        CategoryAxis { n, inner: (-0.5..(n as f64 - 0.5)).into() }
    }
}

impl Ranged for CategoryAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Light points would draw grid lines between categories: none.
        if hint.weight().allow_light_points() { Vec::new() } else { (0..self.n).map(|i| i as f64).collect() }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for CategoryAxis {
    // Only a fallback: charts set their own label formatter.
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

fn bar_styles(s: &Series) -> (ShapeStyle, Option<ShapeStyle>) {
    match s.fill {
        Fill::Solid => (rgb(s.color).filled(), None),
        Fill::Light => (rgb(light(s.color)).filled(), Some(rgb(s.color).stroke_width(1))),
    }
}

fn draw<DB: DrawingBackend>(spec: &Spec, root: &DrawingArea<DB, Shift>) -> Result<(), Error> {
    let e = || draw_err(&spec.id);
    root.fill(&WHITE).map_err(e())?;
    // The title spans the whole chart (legend included); at 20 px a column is about 10 px.
    let title_cols = (spec.width as usize / 10).max(8);
    let body = root.titled(&truncate(&spec.title, title_cols), (FAMILY, 22)).map_err(e())?;
    let (plot, legend) = body.split_horizontally(spec.width.saturating_sub(LEGEND_W));
    let n = spec.categories.len().max(1);
    let (lo, hi) = spec.y_range();
    let plot_w = spec.width.saturating_sub(LEGEND_W) as usize;
    // Each category gets about (plot_w - y labels) / n pixels; at 15 px a column is about 7 px.
    let label_cols = ((plot_w.saturating_sub(90)) / n / 7).max(3);

    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(72)
        .build_cartesian_2d(CategoryAxis::new(n), lo..hi)
        .map_err(e())?;

    let cats = &spec.categories;
    let x_fmt = |x: &f64| label_at(cats, *x, label_cols);
    let y_fmt = |y: &f64| {
        let s = format!("{y:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_desc(truncate(&spec.x_desc, 60))
        .y_desc(truncate(&spec.y_desc, 40))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(e())?;

    let k = spec.series.len().max(1) as f64;
    let group = 0.8;
    let bw = group / k;
    let mut base = vec![0.0f64; n];
    for (j, s) in spec.series.iter().enumerate() {
        let (fill, outline) = bar_styles(s);
        let mut rects = Vec::new();
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = plottable(*v) else { continue };
            let (x0, x1, y0, y1) = if spec.stacked {
                let v = v.max(0.0);
                let b = base.get(i).copied().unwrap_or(0.0);
                if let Some(slot) = base.get_mut(i) {
                    *slot = b + v;
                }
                (i as f64 - 0.3, i as f64 + 0.3, b, b + v)
            } else {
                let x0 = i as f64 - group / 2.0 + j as f64 * bw;
                // A small gap keeps neighbouring bars apart.
                (x0 + bw * 0.06, x0 + bw * 0.94, 0.0, v)
            };
            rects.push([(x0, y0), (x1, y1)]);
        }
        chart.draw_series(rects.iter().map(|r| Rectangle::new(*r, fill))).map_err(e())?;
        if let Some(o) = outline {
            chart.draw_series(rects.iter().map(|r| Rectangle::new(*r, o))).map_err(e())?;
        }
    }

    let reference = spec.reference_line.as_ref().filter(|(y, _)| (lo..=hi).contains(y));
    if let Some((y, _)) = reference {
        let line = PathElement::new(vec![(-0.5, *y), (n as f64 - 0.5, *y)], REFERENCE.stroke_width(2));
        chart.draw_series(std::iter::once(line)).map_err(e())?;
    }

    // The legend is drawn by hand in its own panel, so it never covers bars however many
    // series or however long their names are.
    let rows_fit = (spec.height.saturating_sub(90) / LEGEND_ROW).max(1) as usize;
    let shown = if spec.series.len() > rows_fit { rows_fit.saturating_sub(1) } else { spec.series.len() };
    let label_font = (FAMILY, 15).into_font();
    let text_cols = ((LEGEND_W as usize).saturating_sub(40) / 7).max(8);
    legend.draw(&Text::new("Legend", (8, 14), (FAMILY, 16).into_font())).map_err(e())?;
    for (row, s) in spec.series.iter().take(shown).enumerate() {
        let y = 38 + row as i32 * LEGEND_ROW as i32;
        let (fill, outline) = bar_styles(s);
        legend.draw(&Rectangle::new([(8, y), (22, y + 14)], fill)).map_err(e())?;
        if let Some(o) = outline {
            legend.draw(&Rectangle::new([(8, y), (22, y + 14)], o)).map_err(e())?;
        }
        let label = truncate(&s.label, text_cols.saturating_sub(text::width(&s.suffix)).max(4)) + &s.suffix;
        legend.draw(&Text::new(label, (28, y), label_font.clone())).map_err(e())?;
    }
    let mut next_row = shown;
    if let Some((_, label)) = reference {
        let y = 38 + next_row as i32 * LEGEND_ROW as i32;
        legend.draw(&PathElement::new(vec![(8, y + 7), (22, y + 7)], REFERENCE.stroke_width(2))).map_err(e())?;
        legend.draw(&Text::new(truncate(label, text_cols), (28, y), label_font.clone())).map_err(e())?;
        next_row += 1;
    }
    if shown < spec.series.len() {
        let y = 38 + next_row as i32 * LEGEND_ROW as i32;
        let more = format!("… and {} more", spec.series.len() - shown);
        legend.draw(&Text::new(more, (8, y), label_font)).map_err(e())?;
    }
    root.present().map_err(e())?;
    Ok(())
}

/// One bar chart of counts (a histogram: `zoo data stats --plot`): one bar per bin, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub title: String,
    /// What the bins measure (`tokens per record`).
    pub x_desc: String,
    /// What the bars count (`records`).
    pub y_desc: String,
    /// Bin label and count, in axis order.
    pub bins: Vec<(String, u64)>,
}

pub(crate) fn histogram_spec(h: &Histogram) -> Option<Spec> {
    let series = vec![Series {
        label: h.y_desc.clone(),
        suffix: String::new(),
        color: PALETTE[0],
        fill: Fill::Solid,
        values: h.bins.iter().map(|(_, n)| Some(*n as f64)).collect(),
    }];
    let categories = h.bins.iter().map(|(label, _)| text::one_line(label)).collect();
    let id = slug(&h.title);
    Spec::new(
        &mut UniqueIds::default(),
        &id,
        text::one_line(&h.title),
        &h.x_desc,
        h.y_desc.clone(),
        categories,
        series,
        false,
        0.0,
    )
}

/// Draws a chart as an SVG document.
pub(crate) fn render_svg(spec: &Spec) -> Result<Chart, Error> {
    font::ensure()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (spec.width, spec.height)).into_drawing_area();
        draw(spec, &root)?;
    }
    Ok(Chart { id: spec.id.clone(), title: spec.title.clone(), width: spec.width, height: spec.height, svg })
}

/// Draws a chart as a PNG file's bytes (RGB, 8 bits).
pub(crate) fn render_png(spec: &Spec) -> Result<Vec<u8>, Error> {
    font::ensure()?;
    let (w, h) = (spec.width, spec.height);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(spec, &root)?;
    }
    let mut out = Vec::new();
    let png_err = |source| Error::Png { chart: spec.id.clone(), source };
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(png_err)?;
    writer.write_image_data(&rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(out)
}

/// Every chart of the report as SVG, in report order (benchmarks, judges, votes). Sections with
/// nothing to draw have no chart. Fails only if the embedded font cannot be loaded.
pub fn try_svg_charts(report: &Report) -> Result<Vec<Chart>, Error> {
    all_specs(report).iter().map(render_svg).collect()
}

/// Every chart of the report as SVG (see [`try_svg_charts`]); a chart that fails to draw is
/// left out rather than failing the report.
pub fn svg_charts(report: &Report) -> Vec<Chart> {
    all_specs(report).iter().filter_map(|s| render_svg(s).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn an_empty_report_has_no_charts() {
        assert!(svg_charts(&Report::default()).is_empty());
        assert!(try_svg_charts(&Report::default()).unwrap().is_empty());
    }

    #[test]
    fn the_small_report_has_one_chart_per_view() {
        let ids: Vec<String> = svg_charts(&fixtures::small()).into_iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            ["bench-xmedbench-by-language", "bench-xmedbench-overall", "judge-llmzoo-order", "votes-human"]
        );
    }

    #[test]
    fn awkward_input_draws_what_can_be_drawn_and_never_panics() {
        let r = fixtures::awkward();
        let charts = try_svg_charts(&r).unwrap();
        let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
        // Sections with nothing drawable have no chart.
        for skipped in ["empty", "no-columns", "no-rows", "all-nan"] {
            assert!(!ids.iter().any(|id| id.contains(skipped)), "{skipped} in {ids:?}");
        }
        assert!(!ids.contains(&"judge-none") && !ids.contains(&"judge-nan") && !ids.contains(&"votes-none"));
        for kept in ["bench-single-by-language", "bench-single-by-language-2", "bench-zeros-by-language", "votes-zeros"]
        {
            assert!(ids.contains(&kept), "{kept} missing from {ids:?}");
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "ids are unique");
        for c in &charts {
            assert!(c.id.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'), "{}", c.id);
            assert!(c.svg.starts_with("<svg"), "{}", c.id);
            assert!((MIN_W..=MAX_W).contains(&c.width) && (MIN_H..=MAX_H).contains(&c.height));
            // No raw markup or control characters from names reach the SVG.
            assert!(!c.svg.contains("<b>") && !c.svg.contains('\u{0}') && !c.svg.contains('\u{1b}'), "{}", c.id);
        }
        // Chinese text reaches the SVG as text, for the viewer to draw.
        assert!(charts.iter().any(|c| c.svg.contains("华佗")));
        // Every chart draws as PNG too.
        for spec in all_specs(&r) {
            let png = render_png(&spec).unwrap();
            assert!(png.starts_with(b"\x89PNG"));
        }
    }

    #[test]
    fn y_ranges_are_finite_hold_zero_and_are_at_least_one_wide() {
        for spec in all_specs(&fixtures::awkward()) {
            let (lo, hi) = spec.y_range();
            assert!(
                lo.is_finite() && hi.is_finite() && lo <= 0.0 && hi >= 0.0 && hi - lo >= 1.0,
                "{}: {lo}..{hi}",
                spec.id
            );
        }
    }

    #[test]
    fn many_series_widen_the_chart_and_cut_the_legend() {
        let spec = all_specs(&fixtures::awkward()).into_iter().find(|s| s.id == "bench-many-by-language").unwrap();
        assert_eq!((spec.width, spec.height), (MAX_W, MAX_H));
        let chart = render_svg(&spec).unwrap();
        assert!(chart.svg.contains("… and "), "legend says how many were left out");
    }

    #[test]
    fn published_bars_are_light_with_an_outline() {
        let svg = &svg_charts(&fixtures::small())[0].svg;
        let (r, g, b) = light(PALETTE[0]);
        assert!(svg.contains(&format!("#{r:02X}{g:02X}{b:02X}")), "light fill present");
        assert!(svg.contains("Apollo-7B (published)") && svg.contains("Apollo-7B (measured)"));
        assert!(svg.contains("accuracy (%)") && svg.contains("language"), "axis labels");
        // A long name is cut before its origin, which stays readable.
        let r = fixtures::awkward();
        let svg = &svg_charts(&r).into_iter().find(|c| c.id.starts_with("bench-b-evil")).unwrap().svg;
        assert!(svg.contains("xxxx… (published)") && svg.contains("xxxx… (measured)"), "{svg}");
    }
}
