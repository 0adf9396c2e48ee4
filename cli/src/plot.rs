//! A latency percentile plot as SVG: one curve per (action, decision), the
//! percentile on a logarithmic "nines" axis (50 %, 90 %, 99 %, 99.9 %, ...)
//! as HdrHistogram plots do, latency on a logarithmic axis.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::stats::LogStats;
use crate::terminal_safe;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const MAX_NINES: f64 = 5.0; // up to 99.999 %
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Text for the SVG: control characters shown escaped (XML forbids most of
/// them, and a viewer should not get them either), markup characters as
/// entities.
fn escape(s: &str) -> String {
    terminal_safe::escape(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// x position of a quantile: log10(1 / (1 - q)) "nines".
fn x_of(q: f64) -> f64 {
    let nines = (-(1.0 - q).max(1e-9).log10()).clamp(0.0, MAX_NINES);
    LEFT + nines / MAX_NINES * (WIDTH - LEFT - RIGHT)
}

/// The SVG document.
pub fn svg(stats: &LogStats, title: &str) -> String {
    let curves: Vec<(String, &Histogram<u64>)> = stats
        .rows
        .iter()
        .filter(|(_, r)| !r.enforcement.is_empty())
        .map(|((a, d), r)| (format!("{a} / {d}"), &r.enforcement))
        .collect();
    let max = curves
        .iter()
        .map(|(_, h)| h.max())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let (lo, hi) = (0.0, max.log10().ceil().max(1.0));
    let y_of = |v: f64| {
        let l = v.max(1.0).log10();
        HEIGHT - BOTTOM - (l - lo) / (hi - lo) * (HEIGHT - TOP - BOTTOM)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        (WIDTH - RIGHT + LEFT) / 2.0,
        escape(title)
    );
    // Axes and grid.
    for (nines, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let x = LEFT + nines / MAX_NINES * (WIDTH - LEFT - RIGHT);
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 18.0
        );
    }
    let mut decade = lo as i32;
    while f64::from(decade) <= hi {
        let v = 10f64.powi(decade);
        let y = y_of(v);
        let label = if v >= 1e6 {
            format!("{}s", v / 1e6)
        } else if v >= 1e3 {
            format!("{}ms", v / 1e3)
        } else {
            format!("{v}µs")
        };
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
        decade += 1;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (WIDTH - RIGHT + LEFT) / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" transform="rotate(-90 18 {})" text-anchor="middle">enforcement latency</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    // Curves and legend.
    for (i, (name, h)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = String::new();
        for v in h.iter_quantiles(10) {
            let q = v.quantile_iterated_to();
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                x_of(q),
                y_of(v.value_iterated_to() as f64)
            );
        }
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.trim_end()
        );
        let ly = TOP + 16.0 + i as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{} ({})</text>"#,
            WIDTH - RIGHT + 12.0,
            WIDTH - RIGHT + 32.0,
            WIDTH - RIGHT + 38.0,
            ly + 4.0,
            escape(name),
            h.len()
        );
    }
    out.push_str("</svg>\n");
    out
}
