//! The HTML report: results table, ROC curves, SHAP summaries, the privacy-utility curve and
//! similar-user examples, with hand-written inline SVG (no JavaScript, no external assets).

use std::fmt::Write as _;

use crate::metrics::thin;

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
    /// SHAP output space ("log-odds" or "probability").
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

const COLORS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// Line chart with axes in `[x0, x1] x [y0, y1]` (optionally log x).
struct Chart {
    w: f64,
    h: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_x: bool,
    svg: String,
}

impl Chart {
    const L: f64 = 55.0;
    const B: f64 = 40.0;
    const T: f64 = 15.0;
    const R: f64 = 150.0;

    fn new(
        w: f64,
        h: f64,
        (x0, x1): (f64, f64),
        (y0, y1): (f64, f64),
        log_x: bool,
        xlabel: &str,
        ylabel: &str,
    ) -> Self {
        let mut c = Chart { w, h, x0, x1, y0, y1, log_x, svg: String::new() };
        let _ = write!(
            c.svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
        );
        let (pw, ph) = (w - Self::L - Self::R, h - Self::T - Self::B);
        let _ = write!(
            c.svg,
            r##"<rect x="{}" y="{}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##,
            Self::L,
            Self::T
        );
        for k in 0..=4 {
            let fy = k as f64 / 4.0;
            let yv = y0 + fy * (y1 - y0);
            let py = c.py(yv);
            let _ = write!(
                c.svg,
                r##"<line x1="{}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{yv:.2}</text>"##,
                Self::L,
                Self::L + pw,
                Self::L - 4.0,
                py + 4.0
            );
            let xv = if log_x {
                (x0.ln() + fy * (x1.ln() - x0.ln())).exp()
            } else {
                x0 + fy * (x1 - x0)
            };
            let px = c.px(xv);
            let _ = write!(
                c.svg,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                Self::T + ph + 14.0,
                trim_num(xv)
            );
        }
        let _ = write!(
            c.svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            Self::L + pw / 2.0,
            h - 6.0,
            esc(xlabel)
        );
        let _ = write!(
            c.svg,
            r#"<text x="12" y="{:.1}" text-anchor="middle" transform="rotate(-90 12 {:.1})">{}</text>"#,
            Self::T + ph / 2.0,
            Self::T + ph / 2.0,
            esc(ylabel)
        );
        c
    }

    fn px(&self, x: f64) -> f64 {
        let pw = self.w - Self::L - Self::R;
        let f = if self.log_x {
            (x.ln() - self.x0.ln()) / (self.x1.ln() - self.x0.ln())
        } else {
            (x - self.x0) / (self.x1 - self.x0)
        };
        Self::L + f.clamp(0.0, 1.0) * pw
    }

    fn py(&self, y: f64) -> f64 {
        let ph = self.h - Self::T - Self::B;
        let f = (y - self.y0) / (self.y1 - self.y0);
        Self::T + (1.0 - f.clamp(0.0, 1.0)) * ph
    }

    fn line(&mut self, pts: &[(f64, f64)], color: &str, dashed: bool, markers: bool) {
        let path: Vec<String> =
            pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y))).collect();
        let dash = if dashed { r#" stroke-dasharray="5,4""# } else { "" };
        let _ = write!(
            self.svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{}"/>"#,
            path.join(" ")
        );
        if markers {
            for &(x, y) in pts {
                let _ = write!(
                    self.svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                    self.px(x),
                    self.py(y)
                );
            }
        }
    }

    fn legend(&mut self, i: usize, label: &str, color: &str, dashed: bool) {
        let x = self.w - Self::R + 10.0;
        let y = Self::T + 10.0 + 16.0 * i as f64;
        let dash = if dashed { r#" stroke-dasharray="5,4""# } else { "" };
        let _ = write!(
            self.svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            x + 18.0,
            x + 22.0,
            y + 4.0,
            esc(label)
        );
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>");
        self.svg
    }
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// ROC curves of all models in one chart.
pub fn roc_svg(models: &[ModelRow]) -> String {
    let mut c = Chart::new(
        640.0,
        420.0,
        (0.0, 1.0),
        (0.0, 1.0),
        false,
        "false positive rate",
        "true positive rate",
    );
    c.line(&[(0.0, 0.0), (1.0, 1.0)], "#bbb", true, false);
    for (i, m) in models.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        c.line(&thin(&m.roc, 300), color, m.epsilon.is_some(), false);
        c.legend(i, &format!("{} ({:.3})", m.name, m.roc_auc), color, m.epsilon.is_some());
    }
    c.finish()
}

/// Horizontal bars of mean |SHAP| for one model.
pub fn shap_svg(m: &ModelRow, top: usize) -> String {
    let items: Vec<&(String, f64)> = m.importance.iter().take(top).collect();
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-12);
    let (w, row_h, label_w) = (460.0, 18.0, 150.0);
    let h = 10.0 + row_h * items.len() as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    for (k, (name, v)) in items.iter().enumerate() {
        let y = 5.0 + row_h * k as f64;
        let bw = (w - label_w - 70.0) * v / max;
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="#1f77b4"/><text x="{:.1}" y="{:.1}">{v:.4}</text>"##,
            label_w - 5.0,
            y + 12.0,
            esc(name),
            row_h - 4.0,
            label_w + bw + 4.0,
            y + 12.0
        );
    }
    s.push_str("</svg>");
    s
}

/// AUC against epsilon (log scale) per private family, with the non-private AUC dashed.
pub fn curve_svg(points: &[CurvePoint], reference: &[(String, f64)]) -> String {
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
    let mut c = Chart::new(
        640.0,
        380.0,
        (emin, emax),
        (lo, hi),
        true,
        "epsilon (log scale)",
        "test ROC AUC",
    );
    let mut series: Vec<String> = points.iter().map(|p| p.series.clone()).collect();
    series.dedup();
    series.sort();
    series.dedup();
    let mut legend = 0;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts: Vec<(f64, f64)> =
            points.iter().filter(|p| &p.series == s).map(|p| (p.epsilon, p.roc_auc)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        c.line(&pts, color, false, true);
        c.legend(legend, s, color, false);
        legend += 1;
        let plain = s.trim_start_matches("dp_");
        if let Some((_, auc)) = reference.iter().find(|r| r.0 == plain) {
            c.line(&[(emin, *auc), (emax, *auc)], color, true, false);
            c.legend(legend, &format!("{plain} (non-private)"), color, true);
            legend += 1;
        }
    }
    c.finish()
}

/// Renders the whole report.
pub fn render(r: &Report) -> String {
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
        h.push_str(&roc_svg(&r.models));
        h.push_str("<h2>SHAP: mean |SHAP| per feature (top 12)</h2><div class=\"grid\">");
        for m in &r.models {
            if m.importance.is_empty() {
                continue;
            }
            let _ = write!(
                h,
                "<div class=\"card\"><b>{}</b> <small>({})</small><br>{}</div>",
                esc(&m.name),
                esc(&m.shap_space),
                shap_svg(m, 12)
            );
        }
        h.push_str("</div>");
    }
    if !r.curve.is_empty() {
        h.push_str("<h2>Privacy-utility curve</h2><p>Test ROC AUC of the private models at each epsilon; dashed lines are the non-private models. Every point is a separate private training run charged to the budget.</p>");
        h.push_str(&curve_svg(&r.curve, &r.curve_reference));
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
    h
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

    #[test]
    fn report_contains_every_section_and_escapes_text() {
        let r = Report {
            title: "t".into(),
            facts: vec![("rows".into(), "10".into())],
            models: vec![row("gbdt", None), row("dp_gbdt", Some(1.0))],
            curve: vec![
                CurvePoint { series: "dp_gbdt".into(), epsilon: 0.5, roc_auc: 0.7 },
                CurvePoint { series: "dp_gbdt".into(), epsilon: 2.0, roc_auc: 0.78 },
            ],
            curve_reference: vec![("gbdt".into(), 0.8)],
            similar: vec![("u1".into(), vec![("u2".into(), 0.7)])],
        };
        let html = render(&r);
        for needle in [
            "ROC curves",
            "SHAP",
            "Privacy-utility curve",
            "Similar users",
            "u2 (0.70)",
            "state &lt;x&gt;",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(!html.contains("state <x>"));
        assert!(html.contains("gbdt (non-private)"));
    }
}
