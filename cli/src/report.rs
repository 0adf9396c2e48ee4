//! `auditring report`: one self-contained HTML page (inline CSS and SVG,
//! nothing fetched, no script) with each log's verification verdict and
//! findings, its counts, the latency tables and plots per action and
//! decision, and the pipeline's stage histograms.
//!
//! The log is attacker-controlled input: every text taken from it (and
//! every path) is escaped by [`plot::escape`], and the page forbids
//! scripts and fetches with a Content-Security-Policy besides. A tampered
//! log gets its verdict and findings only: no statistics, as `stats
//! --key` shows none; a log's statistics count only events whose seal
//! verified.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use auditring::stats::Stage;
use auditring::stats::hgrm::{COUNTERS_FILE, stage_file};
use auditring::verify::{Report, Severity, Status};
use hdrhistogram::Histogram;

use crate::plot::{self, escape};
use crate::runs::{self, Content, Input, format_change, format_us};
use crate::stats::LogStats;

/// Findings listed per log at most (the rest are counted).
const MAX_FINDINGS_SHOWN: usize = 200;

const STYLE: &str = r#"
body { font-family: sans-serif; margin: 24px auto; max-width: 1040px; color: #222; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 16px; }
.sub { color: #666; margin-top: 0; }
.verdict { padding: 14px 18px; border-radius: 6px; margin: 14px 0; border: 2px solid; }
.verdict h2 { margin: 0 0 4px 0; border: none; font-size: 22px; }
.intact { background: #e8f6ea; border-color: #2e7d32; }
.intact h2 { color: #2e7d32; }
.incomplete { background: #fff6e0; border-color: #c77700; }
.incomplete h2 { color: #a05f00; }
.tampered { background: #fde8e8; border-color: #c62828; }
.tampered h2 { color: #c62828; font-size: 28px; }
.unverified { background: #eee; border-color: #888; }
table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 13px; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
td.detail { text-align: left; max-width: 560px; overflow-wrap: anywhere; }
tr.tamper td { color: #b71c1c; }
tr.incomplete td { color: #8a5200; }
.note { color: #666; font-size: 13px; }
svg { display: block; margin: 10px 0; }
code { background: #f3f3f3; padding: 0 3px; }
"#;

/// Writes the report; the exit status is the worst verdict (1 tampered,
/// 3 incomplete, 0 intact), as `verify` gives.
pub fn run(keys: &[PathBuf], out: &Path, files: &[PathBuf]) -> Result<u8, String> {
    let keys = crate::load_keys(keys)?;
    let mut inputs = runs::load(files, &keys)?;
    let given_hgrm = inputs.iter().any(|i| matches!(i.content, Content::Hgrm(_)));
    // The stage files the runtime wrote beside each intact or incomplete
    // log, unless some were given.
    let mut counters = Vec::new();
    let mut found = Vec::new();
    for input in &inputs {
        let Content::Log(stats) = &input.content else {
            continue;
        };
        let dir = input
            .files
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if stats.status == Some(Status::Tampered) {
            counters.push(None);
            continue;
        }
        counters.push(read_counters(&dir.join(COUNTERS_FILE)));
        if !given_hgrm {
            found.extend(
                std::iter::once(dir.join("record.hgrm"))
                    .chain(Stage::ALL.iter().map(|&s| stage_file(&dir, s)))
                    .filter(|p| p.is_file()),
            );
        }
    }
    if !found.is_empty() {
        inputs.extend(runs::load(&found, &keys)?);
    }
    let html = render(&inputs, &counters);
    std::fs::write(out, html).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let mut code = 0;
    for input in &inputs {
        if let Content::Log(stats) = &input.content {
            let status = stats.report.status();
            println!(
                "{}: {}",
                crate::terminal_safe::escape(&input.label),
                verdict_word(status)
            );
            code = match (code, status.exit_code() as u8) {
                (1, _) | (_, 1) => 1,
                (a, b) => a.max(b),
            };
        }
    }
    println!("report: {}", out.display());
    Ok(code)
}

/// The runtime's counters, as written beside its stage files.
#[derive(serde::Deserialize)]
struct Counters {
    accepted: u64,
    dropped: u64,
    refused: u64,
    sealed: u64,
    sink_errors: u64,
}

fn read_counters(path: &Path) -> Option<(PathBuf, Counters)> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text)
        .ok()
        .map(|c| (path.to_path_buf(), c))
}

fn verdict_word(status: Status) -> &'static str {
    match status {
        Status::Intact => "INTACT",
        Status::Incomplete => "INCOMPLETE",
        Status::Tampered => "TAMPERED",
    }
}

/// The page.
fn render(inputs: &[Input], counters: &[Option<(PathBuf, Counters)>]) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Defence in depth: even a markup that escaped escaping could run no
    // script and fetch nothing.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    out.push_str("<title>auditring report</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<h1>auditring report</h1>\n");
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} input(s); written by auditring {}</p>",
        inputs.len(),
        env!("CARGO_PKG_VERSION")
    );
    let logs: Vec<(&Input, &LogStats)> = inputs
        .iter()
        .filter_map(|i| match &i.content {
            Content::Log(s) => Some((i, s)),
            Content::Hgrm(_) => None,
        })
        .collect();
    for (n, (input, stats)) in logs.iter().enumerate() {
        log_section(
            &mut out,
            input,
            stats,
            counters.get(n).and_then(Option::as_ref),
        );
    }
    // Plots and comparisons of what may be shown: no tampered log.
    let series: Vec<runs::Series> = runs::series(inputs)
        .into_iter()
        .filter(|s| {
            !logs
                .iter()
                .any(|(i, st)| i.label == s.input && st.report.status() == Status::Tampered)
        })
        .collect();
    let stages: Vec<&runs::Series> = series
        .iter()
        .filter(|s| s.quantity == runs::Quantity::Stage)
        .collect();
    if !stages.is_empty() {
        out.push_str("<h2>Pipeline stages</h2>\n");
        out.push_str("<p class=\"note\">From the runtime's <code>.hgrm</code> files (HdrHistogram percentile distributions, microseconds). They are not signed: they say what the runtime measured, the log does not prove them.</p>\n");
        out.push_str("<table class=\"stages\"><tr><th class=\"text\">file</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
        for s in &stages {
            let _ = write!(
                out,
                "<tr><td class=\"text\">{}</td><td>{}</td>",
                escape(&s.input),
                s.count
            );
            for v in s.summary {
                let _ = write!(out, "<td>{}</td>", escape(&format_us(v)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    let diffs = runs::differences(&series);
    if !diffs.is_empty() {
        out.push_str("<h2>Comparison</h2>\n<p class=\"note\">Each input against the first; the change is relative.</p>\n");
        for (title, rows) in diffs {
            let _ = writeln!(out, "<h3>{}</h3>", escape(&title));
            out.push_str("<table class=\"comparison\"><tr><th class=\"text\">input</th><th>count</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
            for row in rows {
                let s = row.series;
                let _ = write!(
                    out,
                    "<tr><td class=\"text\">{}</td><td>{}</td>",
                    escape(&s.input),
                    s.count
                );
                for k in [0, 2, 3, 4] {
                    let change = format_change(row.change[k]);
                    let _ = write!(
                        out,
                        "<td>{} {}</td>",
                        escape(&format_us(s.summary[k])),
                        escape(&change)
                    );
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table>\n");
        }
    }
    let panels = runs::panels(&series);
    if !panels.is_empty() {
        out.push_str("<h2>Latency plots</h2>\n<p class=\"note\">Percentile on a log axis to 99.999 %, latency on a log axis; the legend gives each curve's count.</p>\n");
        for panel in &panels {
            out.push_str(&plot::panel_svg(panel));
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn log_section(
    out: &mut String,
    input: &Input,
    stats: &LogStats,
    counters: Option<&(PathBuf, Counters)>,
) {
    let report = &stats.report;
    let status = report.status();
    let (class, headline) = match (stats.status, status) {
        (None, _) => ("unverified", "NOT VERIFIED"),
        (_, Status::Intact) => ("intact", "INTACT"),
        (_, Status::Incomplete) => ("incomplete", "INCOMPLETE"),
        (_, Status::Tampered) => ("tampered", "TAMPERED"),
    };
    let _ = writeln!(out, "<h2>Log {}</h2>", escape(&input.label));
    let _ = writeln!(
        out,
        "<div class=\"verdict {class}\" id=\"verdict\"><h2>{headline}</h2><p>{}</p></div>",
        match status {
            Status::Tampered => format!(
                "The log shows tampering: {} tamper finding(s). No statistics are shown; nothing in it can be trusted.",
                report.tamper
            ),
            Status::Incomplete => format!(
                "Authentic but incomplete: {} incompleteness finding(s) (loss, an unsealed tail, no close seal). Statistics count only events whose seal verified.",
                report.incomplete
            ),
            Status::Intact => {
                "Every event sealed, every seal verified and chained, closed cleanly.".to_owned()
            }
        }
    );
    let files: Vec<String> = input
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "<p class=\"note\">Files: {}</p>",
        escape(&files.join(", "))
    );
    counts(out, report, counters);
    findings(out, report);
    if status == Status::Tampered {
        return;
    }
    pairs(out, stats);
}

fn counts(out: &mut String, report: &Report, counters: Option<&(PathBuf, Counters)>) {
    let sink_errors: u64 = report
        .of_kind(auditring::verify::FindingKind::SinkErrors)
        .filter_map(|f| f.count)
        .sum();
    out.push_str("<table class=\"counts\"><tr><th class=\"text\">from the log (signed)</th><th>count</th></tr>\n");
    for (name, value) in [
        ("events read", report.events),
        ("events the seals account for", report.sealed_events),
        ("dropped (signed loss)", report.dropped),
        ("sink errors (signed)", sink_errors),
        ("seals", report.seals),
        ("runs", report.streams),
    ] {
        let _ = writeln!(
            out,
            "<tr><td class=\"text\">{name}</td><td>{value}</td></tr>"
        );
    }
    if let Some((path, c)) = counters {
        let _ = writeln!(
            out,
            "<tr><th class=\"text\">from the runtime ({}, not signed)</th><th></th></tr>",
            escape(&path.display().to_string())
        );
        for (name, value) in [
            ("accepted", c.accepted),
            ("sealed", c.sealed),
            ("dropped", c.dropped),
            ("refused", c.refused),
            ("sink errors", c.sink_errors),
        ] {
            let _ = writeln!(
                out,
                "<tr><td class=\"text\">{name}</td><td>{value}</td></tr>"
            );
        }
    }
    out.push_str("</table>\n");
}

fn findings(out: &mut String, report: &Report) {
    if report.findings.is_empty() {
        out.push_str("<p>No findings.</p>\n");
        return;
    }
    // Open when the log is tampered; a long list of signed losses is
    // folded so the tables stay in view.
    let _ = writeln!(
        out,
        "<details class=\"findings\"{}><summary><strong>Findings ({} tamper, {} incomplete, {} in all)</strong></summary>",
        if report.tamper > 0 || report.findings.len() <= 10 {
            " open"
        } else {
            ""
        },
        report.tamper,
        report.incomplete,
        report.findings.len() as u64 + report.findings_not_kept
    );
    out.push_str("<table class=\"findings\"><tr><th class=\"text\">severity</th><th class=\"text\">kind</th><th class=\"text\">where</th><th class=\"text\">seq</th><th class=\"text\">detail</th></tr>\n");
    // Tampering first: it is what a reader must not miss.
    let mut kept: Vec<_> = report.findings.iter().collect();
    kept.sort_by_key(|f| match f.severity {
        Severity::Tamper => 0,
        Severity::Incomplete => 1,
        Severity::Info => 2,
    });
    for f in kept.iter().take(MAX_FINDINGS_SHOWN) {
        let (class, severity) = match f.severity {
            Severity::Tamper => ("tamper", "TAMPER"),
            Severity::Incomplete => ("incomplete", "INCOMPLETE"),
            Severity::Info => ("info", "info"),
        };
        let lines = if f.lines.0 == f.lines.1 {
            f.lines.0.to_string()
        } else {
            format!("{}-{}", f.lines.0, f.lines.1)
        };
        let seq = f.seq.map_or_else(String::new, |(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        });
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td class=\"text\">{severity}</td><td class=\"text\">{}</td><td class=\"text\">{}:{lines}</td><td class=\"text\">{seq}</td><td class=\"detail\">{}</td></tr>",
            f.kind.as_str(),
            escape(&f.file),
            escape(&f.detail)
        );
    }
    out.push_str("</table>\n</details>\n");
    let more = kept.len().saturating_sub(MAX_FINDINGS_SHOWN) as u64 + report.findings_not_kept;
    if more > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">... and {more} more finding(s): run <code>auditring verify</code>.</p>"
        );
    }
}

fn pairs(out: &mut String, stats: &LogStats) {
    out.push_str("<h3>Latency per action and decision</h3>\n");
    out.push_str("<table class=\"pairs\"><tr><th class=\"text\">action</th><th class=\"text\">decision</th><th>events</th><th>enforce p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>dispatched</th><th>dispatch p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    let q = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            "-".to_owned()
        } else {
            escape(&format_us(h.value_at_quantile(q) as f64))
        }
    };
    for ((action, decision), row) in &stats.rows {
        let (e, d) = (&row.enforcement, &row.dispatch);
        let _ = writeln!(
            out,
            "<tr class=\"pair\"><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(action),
            escape(decision),
            e.len(),
            q(e, 0.5),
            q(e, 0.9),
            q(e, 0.99),
            q(e, 0.999),
            q(e, 1.0),
            d.len(),
            q(d, 0.5),
            q(d, 0.99),
            q(d, 0.999),
            q(d, 1.0)
        );
    }
    out.push_str("</table>\n");
    if stats.unreadable > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} event line(s) could not be read and are not counted.</p>",
            stats.unreadable
        );
    }
}
