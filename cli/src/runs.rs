//! The inputs of `stats` and `report`: logs (verified on the way when keys
//! are given) and HdrHistogram percentile-distribution files (`.hgrm`, the
//! runtime's stage histograms); the latency series they hold, the panels
//! a plot shows them in, and how runs compare.
//!
//! Each path given is one input, except that a log's rotated files
//! (`audit.jsonl.2 audit.jsonl.1 audit.jsonl`) given together are one
//! log; a single log path brings its rotated files itself.

use std::path::{Path, PathBuf};

use auditring::PublicKey;
use auditring::stats::hgrm::Distribution;
use hdrhistogram::Histogram;

use crate::stats::LogStats;

/// What an input holds.
pub enum Content {
    /// A log's statistics (and its verification).
    Log(LogStats),
    /// One histogram read from a `.hgrm` file (values in µs).
    Hgrm(Distribution),
}

/// One input: a log or a `.hgrm` file.
pub struct Input {
    /// The path as given (a log's active file), shown as its label.
    pub label: String,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// What it holds.
    pub content: Content,
}

/// Whether the file starts as a percentile distribution does.
fn is_hgrm(path: &Path) -> Result<bool, String> {
    use std::io::Read as _;
    if path.extension().is_some_and(|e| e == "hgrm") {
        return Ok(true);
    }
    let mut head = [0u8; 128];
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let n = file
        .read(&mut head)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&head[..n]);
    Ok(text.trim_start().starts_with("Value"))
}

/// `audit.jsonl.3` -> `audit.jsonl`: the log a rotated file belongs to.
fn log_base(path: &Path) -> PathBuf {
    let s = path.as_os_str().to_string_lossy();
    match s.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            PathBuf::from(base)
        }
        _ => path.to_path_buf(),
    }
}

/// Reads every input; logs are verified with `keys` (when given).
pub fn load(paths: &[PathBuf], keys: &[PublicKey]) -> Result<Vec<Input>, String> {
    // Group: `.hgrm` files alone, a log's files (same base) together, in
    // the order first given.
    let mut groups: Vec<(PathBuf, bool, Vec<PathBuf>)> = Vec::new();
    for path in paths {
        if is_hgrm(path)? {
            groups.push((path.clone(), true, vec![path.clone()]));
            continue;
        }
        let base = log_base(path);
        match groups.iter_mut().find(|(b, hgrm, _)| !hgrm && *b == base) {
            Some((_, _, files)) => files.push(path.clone()),
            None => groups.push((base, false, vec![path.clone()])),
        }
    }
    let mut inputs = Vec::with_capacity(groups.len());
    for (base, hgrm, files) in groups {
        if hgrm {
            let path = &files[0];
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let d = Distribution::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            inputs.push(Input {
                label: path.display().to_string(),
                files,
                content: Content::Hgrm(d),
            });
            continue;
        }
        let opened = crate::log_files(&files)?;
        let read: Vec<PathBuf> = opened.iter().map(|(p, _)| p.clone()).collect();
        let stats = crate::stats::compute(opened, keys.to_vec())?;
        let label = if files.len() == 1 {
            files[0].display().to_string()
        } else {
            base.display().to_string()
        };
        inputs.push(Input {
            label,
            files: read,
            content: Content::Log(stats),
        });
    }
    Ok(inputs)
}

/// What a series measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quantity {
    /// The gateway's enforcement latency, per action and decision.
    Enforcement,
    /// The dispatched call's latency, per action and decision.
    Dispatch,
    /// A pipeline stage (a `.hgrm` file).
    Stage,
}

impl Quantity {
    /// The plot title of its panel.
    pub fn title(self) -> &'static str {
        match self {
            Quantity::Enforcement => "enforcement latency by action / decision",
            Quantity::Dispatch => "dispatch latency by action / decision",
            Quantity::Stage => "pipeline stages",
        }
    }

    /// Short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Enforcement => "enforcement",
            Quantity::Dispatch => "dispatch",
            Quantity::Stage => "stage",
        }
    }
}

/// One latency distribution to plot and tabulate; values in µs.
pub struct Series {
    /// The input it comes from.
    pub input: String,
    /// What it measures.
    pub quantity: Quantity,
    /// `action / decision`, or the stage (the `.hgrm` file's name).
    pub name: String,
    /// Values recorded.
    pub count: u64,
    /// (percentile as a fraction, value) points, increasing.
    pub points: Vec<(f64, f64)>,
    /// p50, p90, p99, p99.9 and max.
    pub summary: [f64; 5],
}

/// The percentiles a summary holds, as fractions (1.0 is the max).
pub const SUMMARY_AT: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

impl Series {
    fn of_histogram(input: &str, quantity: Quantity, name: String, h: &Histogram<u64>) -> Self {
        let d = Distribution::of(h, 1.0);
        Self {
            input: input.to_owned(),
            quantity,
            name,
            count: h.len(),
            points: d.rows.iter().map(|r| (r.percentile, r.value)).collect(),
            summary: SUMMARY_AT.map(|q| h.value_at_quantile(q) as f64),
        }
    }

    fn of_distribution(input: &str, name: String, d: &Distribution) -> Self {
        Self {
            input: input.to_owned(),
            quantity: Quantity::Stage,
            name,
            count: d.count,
            points: d.rows.iter().map(|r| (r.percentile, r.value)).collect(),
            summary: SUMMARY_AT.map(|q| d.value_at_percentile(q)),
        }
    }
}

/// Every non-empty series of the inputs, in input order.
pub fn series(inputs: &[Input]) -> Vec<Series> {
    let mut out = Vec::new();
    for input in inputs {
        match &input.content {
            Content::Log(stats) => {
                for quantity in [Quantity::Enforcement, Quantity::Dispatch] {
                    for ((action, decision), row) in &stats.rows {
                        let h = if quantity == Quantity::Enforcement {
                            &row.enforcement
                        } else {
                            &row.dispatch
                        };
                        if !h.is_empty() {
                            let name = format!("{action} / {decision}");
                            out.push(Series::of_histogram(&input.label, quantity, name, h));
                        }
                    }
                }
            }
            Content::Hgrm(d) => {
                let name = Path::new(&input.label)
                    .file_stem()
                    .map_or_else(|| input.label.clone(), |s| s.to_string_lossy().into_owned());
                out.push(Series::of_distribution(&input.label, name, d));
            }
        }
    }
    // Stages in pipeline order; otherwise as given.
    out.sort_by_key(|s| (s.quantity, stage_rank(&s.name)));
    out
}

/// A stage's place in the pipeline (unknown files last).
fn stage_rank(name: &str) -> usize {
    const ORDER: [&str; 6] = [
        "record",
        "queue_wait",
        "encode_hash",
        "sign",
        "sink_write",
        "capture_to_sealed",
    ];
    ORDER.iter().position(|s| *s == name).unwrap_or(ORDER.len())
}

/// One plot panel: a title and its curves (label, series).
pub struct Panel<'a> {
    /// The panel's title.
    pub title: String,
    /// Its curves, each with its legend label.
    pub curves: Vec<(String, &'a Series)>,
}

/// Whether the series compare runs: some quantity of the same name comes
/// from two inputs or more.
pub fn is_comparison(series: &[Series]) -> bool {
    series.iter().enumerate().any(|(i, a)| {
        series[..i]
            .iter()
            .any(|b| b.quantity == a.quantity && b.name == a.name && b.input != a.input)
    })
}

/// The panels: for one run, one panel per quantity with a curve per
/// action / decision (or stage); when runs are compared, one panel per
/// action / decision (or stage) with a curve per input, labelled by file.
pub fn panels(series: &[Series]) -> Vec<Panel<'_>> {
    let mut panels: Vec<(Quantity, String, Panel<'_>)> = Vec::new();
    let compare = is_comparison(series);
    let common = common_dir(series.iter().map(|s| s.input.as_str()));
    for s in series {
        let (key, title, label) = if compare {
            (
                s.name.clone(),
                format!("{}: {}", s.quantity.as_str(), s.name),
                s.input[common..].to_owned(),
            )
        } else {
            (String::new(), s.quantity.title().to_owned(), s.name.clone())
        };
        match panels
            .iter_mut()
            .find(|(q, k, _)| *q == s.quantity && *k == key)
        {
            Some((_, _, panel)) => panel.curves.push((label, s)),
            None => panels.push((
                s.quantity,
                key,
                Panel {
                    title,
                    curves: vec![(label, s)],
                },
            )),
        }
    }
    panels.sort_by_key(|(q, _, _)| *q);
    panels.into_iter().map(|(_, _, p)| p).collect()
}

/// The length of the directory prefix all labels share (up to and
/// including a `/`), so that legends show what tells the runs apart.
fn common_dir<'a>(mut labels: impl Iterator<Item = &'a str>) -> usize {
    let Some(first) = labels.next() else {
        return 0;
    };
    let mut len = first.len();
    for label in labels {
        len = first
            .bytes()
            .zip(label.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    first[..len].rfind('/').map_or(0, |i| i + 1)
}

/// One row of a comparison: a series and its change from the first
/// input's at each percentile of [`SUMMARY_AT`].
pub struct Difference<'a> {
    /// The series.
    pub series: &'a Series,
    /// Relative change from the baseline (`None` for the baseline itself
    /// or a zero baseline value).
    pub change: [Option<f64>; 5],
}

/// The comparisons: for every quantity and name that two inputs or more
/// have, their rows, the first input's being the baseline.
pub fn differences(series: &[Series]) -> Vec<(String, Vec<Difference<'_>>)> {
    let mut out: Vec<(String, Vec<Difference<'_>>)> = Vec::new();
    for panel in panels(series) {
        if panel.curves.len() < 2 || !is_comparison(series) {
            continue;
        }
        let base = panel.curves[0].1;
        let rows = panel
            .curves
            .iter()
            .enumerate()
            .map(|(i, (_, s))| Difference {
                series: s,
                change: std::array::from_fn(|k| {
                    (i > 0 && base.summary[k] > 0.0).then(|| s.summary[k] / base.summary[k] - 1.0)
                }),
            })
            .collect();
        out.push((panel.title, rows));
    }
    out
}

/// A latency in µs, in the unit that reads best: `850ns`, `12.3µs`,
/// `4.56ms`, `1.23s`.
pub fn format_us(us: f64) -> String {
    if us <= 0.0 {
        "0".to_owned()
    } else if us < 1.0 {
        format!("{:.0}ns", us * 1000.0)
    } else if us < 1000.0 {
        trim(format!("{us:.1}"), "µs")
    } else if us < 1_000_000.0 {
        trim(format!("{:.2}", us / 1000.0), "ms")
    } else {
        trim(format!("{:.2}", us / 1e6), "s")
    }
}

fn trim(mut number: String, unit: &str) -> String {
    if number.contains('.') {
        while number.ends_with('0') {
            number.pop();
        }
        if number.ends_with('.') {
            number.pop();
        }
    }
    number + unit
}

/// A relative change: `+12.5%`, `-3.0%`, `=`.
pub fn format_change(change: Option<f64>) -> String {
    match change {
        None => String::new(),
        Some(c) if c.abs() < 0.0005 => "=".to_owned(),
        Some(c) => format!("{:+.1}%", c * 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(input: &str, quantity: Quantity, name: &str, scale: f64) -> Series {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record((v as f64 * scale) as u64).unwrap();
        }
        Series::of_histogram(input, quantity, name.to_owned(), &h)
    }

    #[test]
    fn one_run_has_a_panel_per_quantity_and_runs_compare_per_name() {
        let one = [
            series("a.jsonl", Quantity::Enforcement, "get / allow", 1.0),
            series("a.jsonl", Quantity::Enforcement, "get / deny", 1.0),
            series("sign.hgrm", Quantity::Stage, "sign", 1.0),
        ];
        let p = panels(&one);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].curves.len(), 2);
        assert!(differences(&one).is_empty());

        let two = [
            series("a.jsonl", Quantity::Enforcement, "get / allow", 1.0),
            series("a.jsonl", Quantity::Enforcement, "get / deny", 1.0),
            series("b.jsonl", Quantity::Enforcement, "get / allow", 2.0),
            series("b.jsonl", Quantity::Enforcement, "get / deny", 1.0),
            series("c.jsonl", Quantity::Enforcement, "get / allow", 1.0),
        ];
        let p = panels(&two);
        assert_eq!(p.len(), 2);
        let labels: Vec<&str> = p[0].curves.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["a.jsonl", "b.jsonl", "c.jsonl"],
            "one series per input"
        );
        let d = differences(&two);
        assert_eq!(d.len(), 2);
        let allow = &d[0].1;
        assert_eq!(allow[0].change, [None; 5], "the baseline");
        let doubled = allow[1].change[0].unwrap();
        assert!((doubled - 1.0).abs() < 0.01, "{doubled}");
        assert_eq!(format_change(allow[2].change[4]), "=");
    }

    #[test]
    fn latencies_read_in_their_unit() {
        assert_eq!(format_us(0.25), "250ns");
        assert_eq!(format_us(12.0), "12µs");
        assert_eq!(format_us(12.34), "12.3µs");
        assert_eq!(format_us(4560.0), "4.56ms");
        assert_eq!(format_us(1_500_000.0), "1.5s");
        assert_eq!(format_change(Some(0.125)), "+12.5%");
    }

    #[test]
    fn rotated_files_belong_to_their_log() {
        assert_eq!(
            log_base(Path::new("d/audit.jsonl.12")),
            Path::new("d/audit.jsonl")
        );
        assert_eq!(
            log_base(Path::new("d/audit.jsonl")),
            Path::new("d/audit.jsonl")
        );
        assert_eq!(log_base(Path::new("d/v1.2/x")), Path::new("d/v1.2/x"));
    }
}
