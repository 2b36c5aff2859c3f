//! The HTML report: results table, ROC curves, SHAP summaries, the privacy-utility curve and
//! similar-user examples. The charts are drawn by `plotters` into inline SVG strings (no
//! JavaScript, no external assets); each SVG carries its chart's title.

use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::evaluation::thin;

/// One model's row in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Registry name.
    pub name: String,
    /// Registered version, if registered.
    pub version: Option<i64>,
    /// Epsilon spent (`None` = non-private).
    pub epsilon: Option<f64>,
    /// Delta spent.
    pub delta: Option<f64>,
    /// Test ROC AUC.
    pub roc_auc: f64,
    /// Test accuracy.
    pub accuracy: f64,
    /// Test F1.
    pub f1: f64,
    /// Test log loss.
    pub log_loss: f64,
    /// Training seconds.
    pub train_seconds: f64,
    /// ROC curve points.
    pub roc: Vec<(f64, f64)>,
    /// Top features by mean |SHAP|.
    pub importance: Vec<(String, f64)>,
    /// How SHAP was computed and in which output space (e.g. "TreeSHAP, log-odds").
    pub shap_space: String,
}

/// One point of the privacy-utility curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Model family name (e.g. "dp_mlp").
    pub series: String,
    /// Epsilon.
    pub epsilon: f64,
    /// Test ROC AUC.
    pub roc_auc: f64,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Title line.
    pub title: String,
    /// Facts about the run (data, split, budget), shown as a list.
    pub facts: Vec<(String, String)>,
    /// Models.
    pub models: Vec<ModelRow>,
    /// Privacy-utility curve points.
    pub curve: Vec<CurvePoint>,
    /// Non-private reference AUC per family for the curve (drawn as dashed lines).
    pub curve_reference: Vec<(String, f64)>,
    /// Similar users: (user, [(other, similarity)]).
    pub similar: Vec<(String, Vec<(String, f64)>)>,
}

/// Series colours (the matplotlib "tab10" order).
const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

const FONT: &str = "sans-serif";

/// Title of the ROC chart.
pub const ROC_TITLE: &str = "ROC curves (test set)";
/// Title of the privacy-utility chart.
pub const CURVE_TITLE: &str = "Privacy-utility curve";

/// Title of one model's SHAP chart.
pub fn shap_title(m: &ModelRow) -> String {
    format!("{}: mean |SHAP| ({})", m.name, m.shap_space)
}

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the {chart} chart: {message}")]
pub struct ChartError {
    /// Which chart.
    pub chart: &'static str,
    /// What the drawing backend said.
    pub message: String,
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws one chart of `size` pixels into an SVG string.
fn svg(
    chart: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> Result<String, ChartError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
            .map_err(|e| ChartError { chart, message: e.to_string() })?;
    }
    Ok(buf)
}

/// The series legend of a line chart, lower right.
fn legend<'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'a>, CT>) -> DrawResult {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(0x99, 0x99, 0x99))
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

/// ROC curves of all models in one chart: false positive rate against true positive rate, the
/// chance diagonal dashed grey, private models dashed, the legend giving each model's AUC.
pub fn roc_svg(models: &[ModelRow]) -> Result<String, ChartError> {
    svg("ROC", (640, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(ROC_TITLE, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .x_labels(6)
            .y_labels(6)
            .max_light_lines(0)
            .x_label_formatter(&|v| trim_num(*v))
            .y_label_formatter(&|v| trim_num(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        let grey = RGBColor(0xbb, 0xbb, 0xbb).stroke_width(1);
        chart.draw_series(DashedLineSeries::new([(0.0, 0.0), (1.0, 1.0)], 5, 4, grey))?;
        for (i, m) in models.iter().enumerate() {
            let style = COLORS[i % COLORS.len()].stroke_width(2);
            let label = format!("{} ({:.3})", m.name, m.roc_auc);
            let pts = thin(&m.roc, 300);
            if m.epsilon.is_some() {
                chart.draw_series(DashedLineSeries::new(pts, 6, 4, style))?.label(label).legend(
                    move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 18, y)], 5, 3, style),
                );
            } else {
                chart
                    .draw_series(LineSeries::new(pts, style))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
        legend(&mut chart)
    })
}

/// Horizontal bars of mean |SHAP| for one model's `top` features, largest at the top, each
/// bar labelled with its value.
pub fn shap_svg(m: &ModelRow, top: usize) -> Result<String, ChartError> {
    let items: Vec<&(String, f64)> = m.importance.iter().take(top).collect();
    let n = items.len().max(1);
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-12);
    let height = 70 + 18 * n as u32;
    // Segment `n - 1 - k` holds the k-th largest feature, so the largest is drawn at the top.
    let name_of = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(j) if *j < n => {
            items.get(n - 1 - j).map(|i| i.0.clone()).unwrap_or_default()
        }
        _ => String::new(),
    };
    let title = shap_title(m);
    svg("SHAP", (460, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, (FONT, 15))
            .margin(6)
            .x_label_area_size(35)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..max * 1.3, (0..n).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            // Not `max_light_lines(0)`: plotters' integer key-point search overflows on a
            // limit of 0 for the segmented axis.
            .x_max_light_lines(0)
            .y_labels(n)
            .y_label_formatter(&name_of)
            .x_labels(4)
            .x_label_formatter(&|v| format!("{v:.3}"))
            .x_desc("mean |SHAP|")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()?;
        chart.draw_series(
            Histogram::horizontal(&chart)
                .style(COLORS[0].filled())
                .margin(3)
                .data(items.iter().enumerate().map(|(k, (_, v))| (n - 1 - k, *v))),
        )?;
        let label_style =
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series(items.iter().enumerate().map(|(k, (_, v))| {
            EmptyElement::at((*v, SegmentValue::CenterOf(n - 1 - k)))
                + Text::new(format!("{v:.4}"), (4, 0), label_style.clone())
        }))?;
        Ok(())
    })
}

/// AUC against epsilon (log scale) per private family, with markers at the trained epsilons,
/// and the non-private family's AUC as a dashed line of the same colour.
pub fn curve_svg(points: &[CurvePoint], reference: &[(String, f64)]) -> Result<String, ChartError> {
    let eps: Vec<f64> = points.iter().map(|p| p.epsilon).collect();
    let (emin, emax) = (
        eps.iter().copied().fold(f64::INFINITY, f64::min),
        eps.iter().copied().fold(0.0, f64::max),
    );
    let aucs: Vec<f64> =
        points.iter().map(|p| p.roc_auc).chain(reference.iter().map(|r| r.1)).collect();
    let lo = (aucs.iter().copied().fold(1.0, f64::min) - 0.02).max(0.0);
    let hi = (aucs.iter().copied().fold(0.0, f64::max) + 0.02).min(1.0);
    let (emin, emax) = if emin < emax { (emin, emax) } else { (emin / 2.0, emin * 2.0) };
    // Five ticks evenly spaced in log epsilon; a little room beyond the end markers.
    let ticks: Vec<f64> =
        (0..5).map(|k| (emin.ln() + k as f64 / 4.0 * (emax.ln() - emin.ln())).exp()).collect();
    let pad = (emax / emin).powf(0.03);
    let mut series: Vec<String> = points.iter().map(|p| p.series.clone()).collect();
    series.sort();
    series.dedup();
    svg("privacy-utility", (640, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(CURVE_TITLE, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (emin / pad..emax * pad).log_scale().with_key_points(ticks.clone()),
                lo..hi,
            )?;
        chart
            .configure_mesh()
            .x_desc("epsilon (log scale)")
            .y_desc("test ROC AUC")
            .max_light_lines(0)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| trim_num(*v))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            let mut pts: Vec<(f64, f64)> =
                points.iter().filter(|p| &p.series == s).map(|p| (p.epsilon, p.roc_auc)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(pts.clone(), style))?
                .label(s.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            let plain = s.trim_start_matches("dp_");
            if let Some((_, auc)) = reference.iter().find(|r| r.0 == plain) {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(emin / pad, *auc), (emax * pad, *auc)],
                        6,
                        4,
                        style,
                    ))?
                    .label(format!("{plain} (non-private)"))
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 18, y)], 5, 3, style)
                    });
            }
        }
        legend(&mut chart)
    })
}

/// Renders the whole report.
pub fn render(r: &Report) -> Result<String, ChartError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}td:first-child{{text-align:left}}.grid{{display:flex;flex-wrap:wrap;gap:1em}}.card{{border:1px solid #ddd;padding:.5em}}</style></head><body>",
        esc(&r.title)
    );
    let _ = write!(h, "<h1>{}</h1><ul>", esc(&r.title));
    for (k, v) in &r.facts {
        let _ = write!(h, "<li><b>{}</b>: {}</li>", esc(k), esc(v));
    }
    h.push_str("</ul><h2>Models (test set)</h2><table><tr><th>model</th><th>version</th><th>epsilon</th><th>delta</th><th>ROC AUC</th><th>accuracy</th><th>F1</th><th>log loss</th><th>train s</th></tr>");
    for m in &r.models {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.1}</td></tr>",
            esc(&m.name),
            m.version.map_or("-".into(), |v| v.to_string()),
            fmt_opt(m.epsilon, 3),
            m.delta.map_or("-".into(), |d| format!("{d:e}")),
            m.roc_auc,
            m.accuracy,
            m.f1,
            m.log_loss,
            m.train_seconds
        );
    }
    h.push_str("</table>");
    if !r.models.is_empty() {
        h.push_str("<h2>ROC curves</h2><p>Dashed: differentially private models.</p>");
        h.push_str(&roc_svg(&r.models)?);
        h.push_str("<h2>SHAP: mean |SHAP| per feature (top 12)</h2><div class=\"grid\">");
        for m in &r.models {
            if m.importance.is_empty() {
                continue;
            }
            let _ = write!(h, "<div class=\"card\">{}</div>", shap_svg(m, 12)?);
        }
        h.push_str("</div>");
    }
    if !r.curve.is_empty() {
        h.push_str("<h2>Privacy-utility curve</h2><p>Test ROC AUC of the private models at each epsilon; dashed lines are the non-private models. Every point is a separate private training run charged to the budget.</p>");
        h.push_str(&curve_svg(&r.curve, &r.curve_reference)?);
        h.push_str("<table><tr><th>model</th><th>epsilon</th><th>ROC AUC</th></tr>");
        for p in &r.curve {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td></tr>",
                esc(&p.series),
                trim_num(p.epsilon),
                p.roc_auc
            );
        }
        h.push_str("</table>");
    }
    if !r.similar.is_empty() {
        h.push_str("<h2>Similar users (MinHash LSH)</h2><table><tr><th>user</th><th>most similar users (estimated Jaccard)</th></tr>");
        for (u, sims) in &r.similar {
            let list: Vec<String> =
                sims.iter().map(|(o, s)| format!("{} ({s:.2})", esc(o))).collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(u),
                list.join(", ")
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, eps: Option<f64>) -> ModelRow {
        ModelRow {
            name: name.into(),
            version: Some(1),
            epsilon: eps,
            delta: eps.map(|_| 1e-5),
            roc_auc: 0.8,
            accuracy: 0.7,
            f1: 0.6,
            log_loss: 0.5,
            train_seconds: 1.0,
            roc: vec![(0.0, 0.0), (0.2, 0.6), (1.0, 1.0)],
            importance: vec![("clicks".into(), 0.2), ("state <x>".into(), 0.1)],
            shap_space: "probability".into(),
        }
    }

    /// The `<svg>...</svg>` elements of a page, in order.
    fn svgs(html: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find("<svg") {
            let end = rest[start..].find("</svg>").map(|e| start + e + 6).unwrap();
            out.push(&rest[start..end]);
            rest = &rest[end..];
        }
        out
    }

    fn report() -> Report {
        Report {
            title: "t".into(),
            facts: vec![("rows".into(), "10".into())],
            models: vec![
                row("gbdt", None),
                row("dp_gbdt", Some(1.0)),
                row("logistic_regression", None),
            ],
            curve: vec![
                CurvePoint { series: "dp_gbdt".into(), epsilon: 0.5, roc_auc: 0.7 },
                CurvePoint { series: "dp_gbdt".into(), epsilon: 2.0, roc_auc: 0.78 },
            ],
            curve_reference: vec![("gbdt".into(), 0.8), ("logistic_regression".into(), 0.79)],
            similar: vec![("u1".into(), vec![("u2".into(), 0.7)])],
        }
    }

    #[test]
    fn report_contains_every_section_and_escapes_text() {
        let html = render(&report()).unwrap();
        for needle in [
            "ROC curves",
            "SHAP",
            "Privacy-utility curve",
            "Similar users",
            "u2 (0.70)",
            "state &lt;x&gt;",
            "logistic_regression",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert!(!html.contains("state <x>"));
    }

    #[test]
    fn every_chart_is_an_svg_with_its_title_axes_and_series() {
        let r = report();
        let html = render(&r).unwrap();
        let charts = svgs(&html);
        // ROC, one SHAP chart per model, the privacy-utility curve.
        assert_eq!(charts.len(), 1 + r.models.len() + 1, "{} charts", charts.len());
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());

        let roc = charts[0];
        assert!(roc.contains(ROC_TITLE));
        for s in ["false positive rate", "true positive rate"] {
            assert!(roc.contains(s), "ROC chart lacks axis label {s}");
        }
        for m in &r.models {
            let legend = format!("{} ({:.3})", m.name, m.roc_auc);
            assert!(roc.contains(&legend), "ROC chart lacks series {legend}");
        }
        // Solid series: one polyline for the curve and one for its legend sample; the private
        // model's curve is dashed, so many short ones.
        let strokes = |svg: &str, c: RGBColor| {
            svg.matches(&format!("stroke=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2)).count()
        };
        assert_eq!(strokes(roc, COLORS[0]), 2, "gbdt");
        assert!(strokes(roc, COLORS[1]) > 4, "dp_gbdt is dashed");
        assert_eq!(strokes(roc, COLORS[2]), 2, "logistic_regression");

        for (m, chart) in r.models.iter().zip(&charts[1..]) {
            assert!(chart.contains(&shap_title(m)), "{}", m.name);
            assert!(chart.contains("mean |SHAP|"));
            assert!(chart.contains("clicks") && chart.contains("state &lt;x&gt;"));
            // One bar per feature, labelled with its value.
            assert!(chart.contains("0.2000") && chart.contains("0.1000"));
            assert_eq!(
                chart.matches("<rect").count() - 1,
                m.importance.len(),
                "bars (+ background)"
            );
        }

        let curve = charts[charts.len() - 1];
        assert!(curve.contains(CURVE_TITLE));
        for s in ["epsilon (log scale)", "test ROC AUC", "dp_gbdt", "gbdt (non-private)"] {
            assert!(curve.contains(s), "curve chart lacks {s}");
        }
        // Only private families get a reference line.
        assert!(!curve.contains("logistic_regression"));
        // Markers at the two trained epsilons.
        assert_eq!(curve.matches("<circle").count(), 2);
    }
}
