//! Latency percentile plots as SVG, drawn as HdrHistogram plots them: the
//! percentile on a logarithmic "nines" axis (0 %, 90 %, 99 %, ... 99.999 %),
//! the latency on a logarithmic axis with its unit at every tick, a legend
//! with each curve's count. One panel per quantity (or, when runs are
//! compared, per action / decision and stage); a document stacks them.
//!
//! Every text from a log passes through [`escape`]: markup characters
//! become entities and control characters are shown escaped, so a hostile
//! action name can neither break out of the SVG (or of the HTML page it is
//! inlined in) nor reach a viewer as a control character.

use std::fmt::Write as _;

use crate::runs::{Panel, format_us};
use crate::terminal_safe;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 330.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 56.0;
const PLOT_HEIGHT: f64 = 340.0;
const LEGEND_LINE: f64 = 17.0;
const MAX_NINES: f64 = 5.0; // up to 99.999 %
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];
/// After the colours run out, the next curves are dashed.
const DASHES: [&str; 3] = ["", "6 3", "2 2"];
/// Legend labels longer than this are cut (the tables show them whole).
const LEGEND_CHARS: usize = 36;

/// Text for SVG or HTML: control characters shown escaped (XML forbids
/// most of them, and a viewer should not get them either), markup
/// characters and both quotes as entities.
pub fn escape(s: &str) -> String {
    let safe = terminal_safe::escape(s);
    let mut out = String::with_capacity(safe.len() + 8);
    for c in safe.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// x position of a percentile: log10(1 / (1 - q)) "nines".
fn x_of(q: f64) -> f64 {
    let nines = (-(1.0 - q).max(1e-9).log10()).clamp(0.0, MAX_NINES);
    LEFT + nines / MAX_NINES * (WIDTH - LEFT - RIGHT)
}

/// The panel's height: the plot, or the legend if that is taller.
fn height(panel: &Panel<'_>) -> f64 {
    let legend = TOP + 10.0 + LEGEND_LINE * panel.curves.len() as f64 + 10.0;
    (TOP + PLOT_HEIGHT + BOTTOM).max(legend)
}

/// One panel as a standalone `<svg>` element (for inlining in HTML).
pub fn panel_svg(panel: &Panel<'_>) -> String {
    let h = height(panel);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" font-family="sans-serif" font-size="12" role="img">"#
    );
    draw(&mut out, panel);
    out.push_str("</svg>\n");
    out
}

/// A document of every panel, one below the other, under a title.
pub fn svg(panels: &[Panel<'_>], title: &str) -> String {
    let heights: Vec<f64> = panels.iter().map(height).collect();
    let total = 40.0 + heights.iter().sum::<f64>();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" viewBox="0 0 {WIDTH} {total}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="26" font-size="17" font-weight="bold" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let mut y = 40.0;
    for (panel, h) in panels.iter().zip(heights) {
        let _ = writeln!(
            out,
            r#"<svg x="0" y="{y}" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}">"#
        );
        draw(&mut out, panel);
        out.push_str("</svg>\n");
        y += h;
    }
    out.push_str("</svg>\n");
    out
}

fn draw(out: &mut String, panel: &Panel<'_>) {
    let plot_right = WIDTH - RIGHT;
    let plot_bottom = TOP + PLOT_HEIGHT;
    let values = panel
        .curves
        .iter()
        .flat_map(|(_, s)| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0);
    let (min, max) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (min, max) = if max <= 0.0 { (1.0, 10.0) } else { (min, max) };
    let lo = min.log10().floor();
    let hi = max.log10().ceil().max(lo + 1.0);
    let y_of = |v: f64| {
        let l = v.max(10f64.powf(lo)).log10();
        plot_bottom - (l - lo) / (hi - lo) * PLOT_HEIGHT
    };
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
        (plot_right + LEFT) / 2.0,
        escape(&panel.title)
    );
    // Percentile grid, in nines.
    for (nines, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let x = LEFT + nines / MAX_NINES * (plot_right - LEFT);
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{plot_bottom}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"##,
            plot_bottom + 16.0
        );
    }
    // Latency grid: every decade, with its unit.
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{plot_right}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            escape(&format_us(10f64.powf(decade)))
        );
        decade += 1.0;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{PLOT_HEIGHT}" fill="none" stroke="#333"/>"##,
        plot_right - LEFT
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile (log scale of 1/(1-p))</text>"#,
        (plot_right + LEFT) / 2.0,
        plot_bottom + 36.0
    );
    let mid = TOP + PLOT_HEIGHT / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="16" y="{mid}" transform="rotate(-90 16 {mid})" text-anchor="middle">latency (log scale; ns, µs, ms, s)</text>"#
    );
    // Curves and legend.
    for (i, (label, series)) in panel.curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let dash = DASHES[(i / COLORS.len()) % DASHES.len()];
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let mut points = String::new();
        for &(q, v) in &series.points {
            let _ = write!(points, "{:.1},{:.1} ", x_of(q), y_of(v));
        }
        let s = &series.summary;
        let _ = writeln!(
            out,
            r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"><title>{}: p50 {}, p99 {}, p99.9 {}, max {} ({} values)</title></polyline>"#,
            points.trim_end(),
            escape(label),
            format_us(s[0]),
            format_us(s[2]),
            format_us(s[3]),
            format_us(s[4]),
            series.count
        );
        let ly = TOP + 10.0 + i as f64 * LEGEND_LINE;
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"{dash}/><text x="{}" y="{}">{} (n={})</text>"#,
            plot_right + 12.0,
            plot_right + 32.0,
            plot_right + 38.0,
            ly + 4.0,
            escape(&cut(label, LEGEND_CHARS)),
            series.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_leave_its_element() {
        let e = escape("</svg><script>alert(1)</script>\"onload='x'&\x1b[2J\u{202e}");
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"'));
        assert!(!e.contains('\'') && !e.contains('\x1b') && !e.contains('\u{202e}'));
        assert!(e.contains("&lt;/svg&gt;") && e.contains("\\x1b[2J"));
    }
}
