//! `auditring stats`: latency percentiles and counts per action and
//! decision, computed from a log in the same streaming pass that verifies
//! it; the runtime's stage histograms (`.hgrm` files); plots of all of
//! them, and the differences between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auditring::PublicKey;
use auditring::format::line::Line;
use auditring::stats::percentile_distribution;
use auditring::verify::{Status, Verifier};
use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::terminal_safe::escape;

/// The payload fields the statistics read.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    action: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    decision: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    enforcement_latency_us: Option<u64>,
    #[serde(default)]
    dispatch_status: Option<u64>,
    #[serde(default)]
    dispatch_latency_us: Option<u64>,
}

/// Histograms of one (action, decision) pair.
pub struct Row {
    pub enforcement: Histogram<u64>,
    pub dispatch: Histogram<u64>,
}

impl Default for Row {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Self {
            enforcement: h(),
            dispatch: h(),
        }
    }
}

pub struct LogStats {
    pub rows: BTreeMap<(String, String), Row>,
    pub unreadable: u64,
    pub status: Option<Status>,
    pub report: auditring::verify::Report,
}

/// One event's figures, held until its batch is known to verify.
struct Sample {
    key: (String, String),
    enforcement: Option<u64>,
    dispatch: Option<u64>,
}

impl Sample {
    fn of(head: &[u8]) -> Option<Self> {
        let Ok(Line::Event(event)) = auditring::format::line::read(head) else {
            return None;
        };
        let p: Payload<'_> = serde_json::from_str(event.payload).ok()?;
        Some(Self {
            key: (
                p.action.map(|a| a.into_owned()).unwrap_or_default(),
                p.decision.map(|d| d.into_owned()).unwrap_or_default(),
            ),
            enforcement: p.enforcement_latency_us,
            dispatch: p
                .dispatch_latency_us
                .filter(|_| p.dispatch_status.unwrap_or(0) != 0),
        })
    }

    fn add_to(self, rows: &mut BTreeMap<(String, String), Row>) {
        let row = rows.entry(self.key).or_default();
        if let Some(us) = self.enforcement {
            row.enforcement.saturating_record(us.max(1));
        }
        if let Some(us) = self.dispatch {
            row.dispatch.saturating_record(us.max(1));
        }
    }
}

/// Reads the log once: verification (when keys are given) and statistics.
/// With keys, an event counts only once the seal of its batch verified:
/// unsealed, forged or altered lines never reach the statistics.
pub fn compute(
    files: Vec<(PathBuf, std::fs::File)>,
    keys: Vec<PublicKey>,
) -> Result<LogStats, String> {
    use std::cell::RefCell;

    let verified = !keys.is_empty();
    let verifier = Verifier::new(keys);
    let rows: RefCell<BTreeMap<(String, String), Row>> = RefCell::new(BTreeMap::new());
    let batch: RefCell<Vec<Sample>> = RefCell::new(Vec::new());
    let unreadable = RefCell::new(0u64);
    let report = {
        let mut run = verifier.start();
        run.on_event(|head: &[u8]| match Sample::of(head) {
            Some(sample) if verified => batch.borrow_mut().push(sample),
            Some(sample) => sample.add_to(&mut rows.borrow_mut()),
            None => *unreadable.borrow_mut() += 1,
        });
        run.on_batch(|ok| {
            let mut rows = rows.borrow_mut();
            for sample in batch.borrow_mut().drain(..) {
                if ok {
                    sample.add_to(&mut rows);
                }
            }
        });
        run.feed_opened(files, &mut |_| {})
            .map_err(|e| e.to_string())?;
        run.finish()
    };
    Ok(LogStats {
        rows: rows.into_inner(),
        unreadable: unreadable.into_inner(),
        status: verified.then(|| report.status()),
        report,
    })
}

/// The percentile table.
pub fn print_table(stats: &LogStats) {
    println!(
        "{:<24} {:<8} {:>10} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
        "action",
        "decision",
        "events",
        "enf p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "disp p50",
        "p99",
        "max"
    );
    let mut total = 0;
    for ((action, decision), row) in &stats.rows {
        let e = &row.enforcement;
        let d = &row.dispatch;
        let q = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                "-".to_owned()
            } else {
                h.value_at_quantile(q).to_string()
            }
        };
        total += e.len();
        println!(
            "{:<24} {:<8} {:>10} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
            truncate(&escape(action), 24),
            truncate(&escape(decision), 8),
            e.len(),
            q(e, 0.5),
            q(e, 0.9),
            q(e, 0.99),
            q(e, 0.999),
            q(e, 1.0),
            q(d, 0.5),
            q(d, 0.99),
            q(d, 1.0)
        );
    }
    println!(
        "latencies in microseconds; {total} events with a latency in {} (action, decision) pairs",
        stats.rows.len()
    );
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// A path cut from the left, keeping its end (the part that tells files
/// apart).
fn truncate_left(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_owned()
    } else {
        ['…']
            .into_iter()
            .chain(s.chars().skip(count - n + 1))
            .collect()
    }
}

/// The HdrHistogram percentile distribution of every pair's enforcement
/// latency.
pub fn print_distributions(stats: &LogStats) {
    for ((action, decision), row) in &stats.rows {
        println!(
            "# enforcement_latency_us action={} decision={}",
            escape(action),
            escape(decision)
        );
        print!("{}", percentile_distribution(&row.enforcement, 1.0));
        println!();
    }
}

/// `auditring stats`: every input (logs and `.hgrm` files), tables, the
/// comparison of runs when there are several, and the plot.
pub fn run(
    keys: &[PathBuf],
    plot: Option<&Path>,
    distribution: bool,
    files: &[PathBuf],
) -> Result<u8, String> {
    use crate::runs::{self, Content};

    let keys = crate::load_keys(keys)?;
    let verified = !keys.is_empty();
    let inputs = runs::load(files, &keys)?;
    // A tampered log shows nothing, and nor does anything compared with it.
    for input in &inputs {
        if let Content::Log(stats) = &input.content
            && stats.status == Some(Status::Tampered)
        {
            eprintln!(
                "auditring: the log {} is TAMPERED ({} finding(s)): no statistics shown; run `auditring verify` for details",
                escape(&input.label),
                stats.report.tamper
            );
            return Ok(Status::Tampered.exit_code() as u8);
        }
    }
    for input in &inputs {
        if let Content::Log(stats) = &input.content
            && stats.report.events == 0
        {
            return Err(format!(
                "no auditring event in {}: not an auditring log (check the path)",
                input
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let several = inputs.len() > 1;
    let mut code = 0u8;
    for input in &inputs {
        let Content::Log(stats) = &input.content else {
            continue;
        };
        if several {
            println!("== {} ==", escape(&input.label));
        }
        print_table(stats);
        if distribution {
            print_distributions(stats);
        }
        if stats.unreadable > 0 {
            println!(
                "{} event line(s) could not be read and are not counted",
                stats.unreadable
            );
        }
        code = code.max(print_verdict(stats));
        if several {
            println!();
        }
    }
    let series = runs::series(&inputs);
    print_stages(&series);
    print_differences(&series);
    if let Some(path) = plot {
        let title = plot_title(&inputs, runs::is_comparison(&series));
        let panels = runs::panels(&series);
        std::fs::write(path, crate::plot::svg(&panels, &title))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("plot: {}", path.display());
    }
    if !verified && inputs.iter().any(|i| matches!(i.content, Content::Log(_))) {
        println!("not verified: pass --key PUBLIC.pem to check the log while reading it");
    }
    // Incomplete (3) outranks intact (0); tampered returned above.
    Ok(code)
}

/// The verdict line of a verified log; its exit code.
fn print_verdict(stats: &LogStats) -> u8 {
    match stats.status {
        None => 0,
        Some(Status::Intact) => {
            println!("log verified: intact");
            0
        }
        Some(status) => {
            println!(
                "WARNING: the log is {} ({} tamper and {} incompleteness finding(s)): run `auditring verify` for details; these statistics may not be trustworthy",
                if status == Status::Tampered {
                    "TAMPERED"
                } else {
                    "INCOMPLETE"
                },
                stats.report.tamper,
                stats.report.incomplete
            );
            status.exit_code() as u8
        }
    }
}

/// The `.hgrm` inputs' percentiles.
fn print_stages(series: &[crate::runs::Series]) {
    use crate::runs::{Quantity, format_us};
    let stages: Vec<_> = series
        .iter()
        .filter(|s| s.quantity == Quantity::Stage)
        .collect();
    if stages.is_empty() {
        return;
    }
    println!(
        "{:<40} {:>10} | {:>9} {:>9} {:>9} {:>9} {:>9}",
        "histogram file", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for s in stages {
        let [p50, p90, p99, p999, max] = s.summary.map(format_us);
        println!(
            "{:<40} {:>10} | {p50:>9} {p90:>9} {p99:>9} {p999:>9} {max:>9}",
            truncate_left(&escape(&s.input), 40),
            s.count
        );
    }
    println!();
}

/// The comparison of runs: each input against the first.
fn print_differences(series: &[crate::runs::Series]) {
    use crate::runs::{differences, format_change, format_us};
    let diffs = differences(series);
    if diffs.is_empty() {
        return;
    }
    println!("comparison (change from the first input):");
    for (title, rows) in diffs {
        println!("{}", escape(&title));
        println!(
            "  {:<36} {:>9} | {:>17} {:>17} {:>17} {:>17}",
            "input", "count", "p50", "p99", "p99.9", "max"
        );
        for row in rows {
            let s = row.series;
            let cell = |k: usize| {
                let change = format_change(row.change[k]);
                if change.is_empty() {
                    format_us(s.summary[k])
                } else {
                    format!("{} {change}", format_us(s.summary[k]))
                }
            };
            println!(
                "  {:<36} {:>9} | {:>17} {:>17} {:>17} {:>17}",
                truncate_left(&escape(&s.input), 36),
                s.count,
                cell(0),
                cell(2),
                cell(3),
                cell(4)
            );
        }
    }
    println!();
}

/// The plot's title: the logs (compared: "A vs B") and how many `.hgrm`
/// files, cut to fit.
fn plot_title(inputs: &[crate::runs::Input], compare: bool) -> String {
    use crate::runs::Content;
    let logs: Vec<&str> = inputs
        .iter()
        .filter(|i| matches!(i.content, Content::Log(_)))
        .map(|i| i.label.as_str())
        .collect();
    let hgrm = inputs.len() - logs.len();
    let mut title = if logs.is_empty() {
        String::from("latency")
    } else if compare {
        format!("latency: {}", logs.join(" vs "))
    } else {
        format!("latency: {}", logs.join(", "))
    };
    if hgrm > 0 {
        let sep = if logs.is_empty() { ": " } else { " and " };
        title += &format!("{sep}{hgrm} histogram file(s)");
    }
    truncate(&title, 110)
}
