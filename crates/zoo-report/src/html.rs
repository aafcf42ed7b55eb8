//! The HTML rendering: one self-contained page (inline CSS, inline SVG charts, no scripts, no
//! external URLs), so it can be mailed, archived or opened offline and looks the same anywhere.

use std::fmt::Write as _;

use crate::charts::{self, Spec};
use crate::markdown::{column_label, source_text};
use crate::model::{BenchmarkSection, JudgeSection, Report, VoteSection};
use crate::text::{self, UniqueIds, html as esc, num, slug};

const CSS: &str = "\
body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",\"DejaVu Sans\",sans-serif;\
margin:24px;color:#1b1b1b;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.25em;margin:24px 0 4px}
.meta,.note{color:#555;margin:0 0 12px}
nav ul{margin:0 0 16px;padding-left:20px}
section{margin:0 0 32px}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:14px;margin:8px 0 16px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f3f3f3}
tbody th{font-weight:600;max-width:24em;overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.agg{font-weight:700}
.missing{color:#999}
tr.published{background:#fafafa}
.origin{font-size:12px;padding:0 6px;border:1px solid #bbb;border-radius:8px;white-space:nowrap}
.origin.measured{background:#e9e9e9}
td.prov{font-size:12px;color:#555;max-width:30em;overflow-wrap:anywhere}
.charts{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure.chart{margin:0;flex:none;border:1px solid #ddd;background:#fff}
figure.chart svg{display:block}
figcaption{font-size:13px;color:#555;padding:4px 8px}
";

/// Renders the whole report as one HTML page.
pub fn html(report: &Report) -> String {
    let specs = charts::section_specs(report);
    let mut ids = UniqueIds::default();
    let mut out = String::new();
    let title = if report.title.trim().is_empty() { "Evaluation report" } else { &report.title };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{t}</h1>\n\
         <p class=\"meta\">Generated at <time>{g}</time> by zoo {v}</p>\n</header>\n",
        t = esc(title),
        g = esc(&report.generated_at),
        v = esc(&report.zoo_version),
    );

    // Section ids first, so the table of contents can link to them.
    let bench_ids: Vec<String> =
        report.benchmarks.iter().map(|b| ids.make(&format!("bench-{}", slug(&b.name)))).collect();
    let judge_ids: Vec<String> = report.judges.iter().map(|j| ids.make(&format!("judge-{}", slug(&j.name)))).collect();
    let vote_ids: Vec<String> = report.votes.iter().map(|v| ids.make(&format!("votes-{}", slug(&v.title)))).collect();

    let toc: Vec<(String, String)> = report
        .benchmarks
        .iter()
        .zip(&bench_ids)
        .map(|(b, id)| (id.clone(), b.title.clone()))
        .chain(report.judges.iter().zip(&judge_ids).map(|(j, id)| (id.clone(), format!("Judge: {}", j.name))))
        .chain(report.votes.iter().zip(&vote_ids).map(|(v, id)| (id.clone(), format!("Votes: {}", v.title))))
        .collect();
    if toc.len() > 1 {
        out.push_str("<nav>\n<ul>\n");
        for (id, t) in &toc {
            let _ = writeln!(out, "<li><a href=\"#{}\">{}</a></li>", esc(id), esc(t));
        }
        out.push_str("</ul>\n</nav>\n");
    }

    out.push_str("<main>\n");
    let none: Vec<Spec> = Vec::new();
    for (i, (b, id)) in report.benchmarks.iter().zip(&bench_ids).enumerate() {
        benchmark(&mut out, b, id, specs.benchmarks.get(i).unwrap_or(&none));
    }
    for (i, (j, id)) in report.judges.iter().zip(&judge_ids).enumerate() {
        judge(&mut out, j, id, specs.judges.get(i).unwrap_or(&none));
    }
    for (i, (v, id)) in report.votes.iter().zip(&vote_ids).enumerate() {
        votes(&mut out, v, id, specs.votes.get(i).unwrap_or(&none));
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn num_cell(v: Option<f64>, extra_class: &str) -> String {
    let s = num(v);
    let missing = if s == text::MISSING { " missing" } else { "" };
    format!("<td class=\"num{extra_class}{missing}\">{s}</td>")
}

fn charts_html(out: &mut String, specs: &[Spec]) {
    let charts: Vec<_> = specs.iter().filter_map(|s| charts::render_svg(s).ok()).collect();
    if charts.is_empty() {
        return;
    }
    out.push_str("<div class=\"charts\">\n");
    for c in charts {
        // The figure has the chart's exact pixel size, so the layout never rescales a chart.
        // Inside HTML, <svg> is in the SVG namespace by itself: the xmlns URL is dropped, so the
        // page names no URL at all.
        let svg = c.svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1).replacen(
            "<svg ",
            &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(&c.title)),
            1,
        );
        let _ = write!(
            out,
            "<figure class=\"chart\" id=\"chart-{id}\" style=\"width:{w}px\">\n{svg}<figcaption>{t}</figcaption>\n</figure>\n",
            id = esc(&c.id),
            w = c.width,
            t = esc(&c.title),
        );
    }
    out.push_str("</div>\n");
}

fn benchmark(out: &mut String, b: &BenchmarkSection, id: &str, specs: &[Spec]) {
    let _ = write!(
        out,
        "<section class=\"benchmark\" id=\"{id}\">\n<h2>{t}</h2>\n<p class=\"note\">Metric: {m}, in percent. \
         Published numbers (from their sources; light bars) are listed beside zoo's measurements (solid bars).</p>\n",
        id = esc(id),
        t = esc(if b.title.trim().is_empty() { &b.name } else { &b.title }),
        m = esc(&b.metric),
    );
    if b.rows.is_empty() {
        out.push_str("<p class=\"note\">No results.</p>\n</section>\n");
        return;
    }
    out.push_str("<div class=\"table-wrap\"><table>\n<thead><tr><th>Model</th><th>Origin</th>");
    for c in &b.columns {
        let lang = c.lang.as_deref().map(|l| format!(" lang=\"{}\"", esc(l))).unwrap_or_default();
        let hint = match &c.lang {
            Some(l) => format!("column {}, language {}", c.key, l),
            None => format!("column {}", c.key),
        };
        let class = if c.aggregate { " class=\"agg\"" } else { "" };
        let _ = write!(out, "<th{class}{lang} title=\"{}\">{}</th>", esc(&hint), esc(column_label(c)));
    }
    out.push_str("<th>Source / provenance</th></tr></thead>\n<tbody>\n");
    for r in b.display_order().into_iter().filter_map(|i| b.rows.get(i)) {
        let src = source_text(r);
        let title = if src.is_empty() { String::new() } else { format!(" title=\"{}\"", esc(&src)) };
        let _ = write!(
            out,
            "<tr class=\"{o}\"><th scope=\"row\"{title}>{m}</th><td><span class=\"origin {o}\">{o}</span></td>",
            o = r.origin,
            m = esc(&r.model),
        );
        for c in &b.columns {
            out.push_str(&num_cell(r.value(&c.key), if c.aggregate { " agg" } else { "" }));
        }
        let _ = writeln!(out, "<td class=\"prov\">{}</td></tr>", esc(&src));
    }
    out.push_str("</tbody>\n</table></div>\n");
    charts_html(out, specs);
    out.push_str("</section>\n");
}

fn judge(out: &mut String, j: &JudgeSection, id: &str, specs: &[Spec]) {
    let _ = write!(
        out,
        "<section class=\"judge\" id=\"{id}\">\n<h2>Judge: {n}</h2>\n<p class=\"note\">Reference: {r}. \
         Ratio: score as a percent of the reference's.</p>\n",
        id = esc(id),
        n = esc(&j.name),
        r = esc(&j.reference),
    );
    if j.rows.is_empty() {
        out.push_str("<p class=\"note\">No results.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table>\n<thead><tr><th>Model</th><th>Ratio (%)</th><th>Win</th><th>Tie</th>\
         <th>Lose</th><th>Unparsable</th><th>Avg rank</th></tr></thead>\n<tbody>\n",
    );
    for r in &j.rows {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th>{}<td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>{}</tr>",
            esc(&r.model),
            num_cell(r.ratio, " agg"),
            r.count_text(0),
            r.count_text(1),
            r.count_text(2),
            r.count_text(3),
            num_cell(r.avg_rank, ""),
        );
    }
    out.push_str("</tbody>\n</table></div>\n");
    charts_html(out, specs);
    out.push_str("</section>\n");
}

fn votes(out: &mut String, v: &VoteSection, id: &str, specs: &[Spec]) {
    let _ = write!(out, "<section class=\"votes\" id=\"{}\">\n<h2>Votes: {}</h2>\n", esc(id), esc(&v.title));
    if v.rows.is_empty() {
        out.push_str("<p class=\"note\">No results.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table>\n<thead><tr><th>Model A</th><th>Model B</th><th>A wins</th>\
         <th>Ties</th><th>B wins</th></tr></thead>\n<tbody>\n",
    );
    for r in &v.rows {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><th scope=\"row\">{}</th><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.model_a),
            esc(&r.model_b),
            r.win,
            r.tie,
            r.lose,
        );
    }
    out.push_str("</tbody>\n</table></div>\n");
    charts_html(out, specs);
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn markup_in_names_is_escaped() {
        let mut r = fixtures::small();
        if let Some(row) = r.benchmarks.get_mut(0).and_then(|b| b.rows.get_mut(0)) {
            row.model = "<b>&\"x".into();
            row.source = Some("a \"quoted\" <source>".into());
        }
        let page = html(&r);
        assert!(page.contains("&lt;b&gt;&amp;&quot;x"), "escaped in the table");
        assert!(!page.contains("<b>"), "no raw markup anywhere, charts included");
        assert!(page.contains("title=\"a &quot;quoted&quot; &lt;source&gt;\""), "provenance in a title attribute");
    }

    #[test]
    fn the_page_is_self_contained_with_fixed_size_figures() {
        let r = fixtures::small();
        let page = html(&r);
        assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
        assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains(" src=") && !page.contains("<link"));
        for c in crate::svg_charts(&r) {
            assert!(
                page.contains(&format!("<figure class=\"chart\" id=\"chart-{}\" style=\"width:{}px\">", c.id, c.width))
            );
            assert!(page.contains(&format!("width=\"{}\" height=\"{}\"", c.width, c.height)));
        }
        assert!(page.contains("<span class=\"origin published\">published</span>"));
        assert!(page.contains("<span class=\"origin measured\">measured</span>"));
        assert!(page.contains("Generated at <time>now</time> by zoo 0.1.0"));
    }

    #[test]
    fn awkward_and_empty_reports_render() {
        let page = html(&fixtures::awkward());
        assert!(page.contains("No results."));
        assert!(!page.contains('\u{0}') && !page.contains("<b>"));
        let empty = html(&Report::default());
        assert!(empty.contains("<title>Evaluation report</title>") && !empty.contains("<figure"));
    }
}
