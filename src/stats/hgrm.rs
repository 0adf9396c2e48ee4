//! HdrHistogram's percentile-distribution text (`.hgrm`): written from a
//! histogram and read back.
//!
//! The format is the one HdrHistogram's `outputPercentileDistribution`
//! prints and its plotters read: a header, one row per reporting step
//! (`Value Percentile TotalCount 1/(1-Percentile)`, the last row without
//! the last column), and a footer of `#[Mean ...]`, `#[Max ...]` and
//! `#[Buckets ...]` lines. Values may be scaled (the runtime's stage files
//! are in microseconds with three decimals, so nanosecond stages keep
//! their resolution).
//!
//! # Examples
//!
//! ```
//! use auditring::stats::hgrm::Distribution;
//! use hdrhistogram::Histogram;
//!
//! let mut h = Histogram::<u64>::new(3).unwrap();
//! for v in 1..=1000u64 {
//!     h.record(v).unwrap();
//! }
//! let text = Distribution::of(&h, 1.0).to_text();
//! let back = Distribution::parse(&text)?;
//! assert_eq!(back.count, 1000);
//! assert_eq!(back.value_at_percentile(0.5), h.value_at_quantile(0.5) as f64);
//! assert_eq!(back.max, 1000.0);
//! assert_eq!(back.to_text(), text);
//! # Ok::<(), auditring::stats::hgrm::ParseError>(())
//! ```

use std::fmt::{self, Write as _};

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::stats::Stage;

/// The file a stage's histogram is written to in the directory given to
/// [`RuntimeBuilder::stage_histograms`](crate::RuntimeBuilder::stage_histograms):
/// `<stage>.hgrm` (`queue_wait.hgrm`, `encode_hash.hgrm`, `sign.hgrm`,
/// `sink_write.hgrm`, `capture_to_sealed.hgrm`), values in microseconds.
pub fn stage_file(dir: &Path, stage: Stage) -> PathBuf {
    dir.join(format!("{}.hgrm", stage.as_str()))
}

/// The runtime's counters ([`RuntimeStats`](crate::RuntimeStats) as JSON),
/// written beside the stage files.
pub const COUNTERS_FILE: &str = "counters.json";

/// The header line of the format.
pub const HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

/// One reporting step: the value reached at a percentile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// The value (in the file's unit).
    pub value: f64,
    /// The percentile as a fraction (0.99 for 99 %).
    pub percentile: f64,
    /// Values recorded at or below `value`.
    pub total_count: u64,
}

/// A percentile distribution: the rows and the footer's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Distribution {
    /// Rows in increasing percentile.
    pub rows: Vec<Row>,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Largest value.
    pub max: f64,
    /// Values recorded.
    pub count: u64,
    /// The histogram's bucket count (footer information only).
    pub buckets: u64,
    /// The histogram's distinct values (footer information only).
    pub sub_buckets: u64,
}

/// Why a text is not a percentile distribution; names the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} (expected HdrHistogram's percentile distribution: `Value Percentile TotalCount 1/(1-Percentile)` rows and a `#[Mean ...]` footer)",
            self.line, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

impl Distribution {
    /// The distribution of a histogram, values divided by `scale` (1000.0
    /// turns nanoseconds into microseconds), with five reporting steps
    /// per halving of the remaining percentile, as HdrHistogram prints it.
    pub fn of(h: &Histogram<u64>, scale: f64) -> Self {
        let mut rows = Vec::new();
        let mut count = 0u64;
        for v in h.iter_quantiles(5) {
            count += v.count_since_last_iteration();
            rows.push(Row {
                value: v.value_iterated_to() as f64 / scale,
                percentile: v.quantile_iterated_to(),
                total_count: count,
            });
        }
        Self {
            rows,
            mean: h.mean() / scale,
            stdev: h.stdev() / scale,
            max: h.max() as f64 / scale,
            count: h.len(),
            buckets: u64::from(h.buckets()),
            sub_buckets: h.distinct_values() as u64,
        }
    }

    /// The value at percentile `q` (a fraction): the first row whose
    /// total count covers `q` of the values, so exact for every value that
    /// has its own row (the median, the maximum, the top of a body before
    /// a tail) and otherwise an upper bound within one reporting step;
    /// `max` for `q` of 1, 0 when nothing was recorded.
    pub fn value_at_percentile(&self, q: f64) -> f64 {
        if q >= 1.0 {
            return self.max;
        }
        let target = ((q.max(0.0) * self.count as f64).ceil() as u64).max(1);
        self.rows
            .iter()
            .find(|r| r.total_count >= target)
            .or(self.rows.last())
            .map_or(0.0, |r| r.value)
    }

    /// The text, byte for byte as HdrHistogram prints it (three decimals).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(64 * (self.rows.len() + 6));
        out.push_str(HEADER);
        out.push_str("\n\n");
        for r in &self.rows {
            let (value, q, count) = (r.value, r.percentile, r.total_count);
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {count:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {count:10}");
            }
        }
        let _ = writeln!(
            out,
            "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
            self.mean, self.stdev
        );
        let _ = writeln!(
            out,
            "#[Max     = {:12.3}, Total count    = {:12}]",
            self.max, self.count
        );
        let _ = writeln!(
            out,
            "#[Buckets = {:12}, SubBuckets     = {:12}]",
            self.buckets, self.sub_buckets
        );
        out
    }

    /// Reads the text. Blank lines and `#` lines other than the footer are
    /// skipped; a row's fourth column is not needed (it follows from the
    /// second). Accepts what HdrHistogram's Java, C and Rust tools print.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] naming the first line that is neither a row nor
    /// the footer, a text without the header or without rows, or rows out
    /// of order.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut d = Distribution {
            rows: Vec::new(),
            mean: 0.0,
            stdev: 0.0,
            max: 0.0,
            count: 0,
            buckets: 0,
            sub_buckets: 0,
        };
        let mut header = false;
        let mut footer = false;
        for (i, line) in text.lines().enumerate() {
            let err = |reason| ParseError {
                line: i + 1,
                reason,
            };
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if !header {
                if t.starts_with("Value") && t.contains("Percentile") {
                    header = true;
                    continue;
                }
                return Err(err("no `Value Percentile TotalCount` header"));
            }
            if let Some(rest) = t.strip_prefix("#[") {
                let rest = rest.trim_end_matches(']');
                for field in rest.split(',') {
                    let Some((name, value)) = field.split_once('=') else {
                        return Err(err("a footer field without `=`"));
                    };
                    let value = value.trim();
                    let number = || value.parse::<f64>().map_err(|_| err("a footer number"));
                    match name.trim() {
                        "Mean" => d.mean = number()?,
                        "StdDeviation" => d.stdev = number()?,
                        "Max" => {
                            d.max = number()?;
                            footer = true;
                        }
                        "Total count" => {
                            d.count = value.parse().map_err(|_| err("a footer count"))?;
                        }
                        "Buckets" => d.buckets = value.parse().unwrap_or(0),
                        "SubBuckets" => d.sub_buckets = value.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                continue;
            }
            if t.starts_with('#') {
                continue;
            }
            if footer {
                return Err(err("a row after the footer"));
            }
            let mut cols = t.split_whitespace();
            let mut col = |reason| cols.next().ok_or_else(|| err(reason));
            let value: f64 = col("a row without a value")?
                .parse()
                .map_err(|_| err("a value that is not a number"))?;
            let percentile: f64 = col("a row without a percentile")?
                .parse()
                .map_err(|_| err("a percentile that is not a number"))?;
            let total_count: u64 = col("a row without a total count")?
                .parse()
                .map_err(|_| err("a total count that is not a whole number"))?;
            if !(0.0..=1.0).contains(&percentile) || !value.is_finite() || value < 0.0 {
                return Err(err("a percentile outside 0..1 or a negative value"));
            }
            if let Some(prev) = d.rows.last()
                && (percentile < prev.percentile
                    || value < prev.value
                    || total_count < prev.total_count)
            {
                return Err(err("rows out of order"));
            }
            d.rows.push(Row {
                value,
                percentile,
                total_count,
            });
        }
        if !header {
            return Err(ParseError {
                line: 1,
                reason: "empty: no `Value Percentile TotalCount` header",
            });
        }
        if d.rows.is_empty() && d.count > 0 {
            return Err(ParseError {
                line: text.lines().count(),
                reason: "no rows",
            });
        }
        if !footer {
            d.max = d.rows.last().map_or(0.0, |r| r.value);
        }
        if d.count == 0 {
            d.count = d.rows.last().map_or(0, |r| r.total_count);
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_text_round_trips_with_the_in_process_percentiles() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        // A body near 300 ns and a tail to 2 ms, in nanoseconds.
        for i in 0..100_000u64 {
            let v = 250 + (i * 7919) % 100 + if i % 1000 == 0 { 2_000_000 } else { 0 };
            h.record(v).unwrap();
        }
        let d = Distribution::of(&h, 1000.0);
        let text = d.to_text();
        let back = Distribution::parse(&text).unwrap();
        assert_eq!(back.to_text(), text);
        assert_eq!(back.count, h.len());
        let us = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
        assert_eq!(back.value_at_percentile(0.5), us(h.value_at_quantile(0.5)));
        assert_eq!(back.value_at_percentile(1.0), us(h.max()));
        for q in [0.9, 0.99, 0.999] {
            let exact = h.value_at_quantile(q) as f64 / 1000.0;
            let read = back.value_at_percentile(q);
            assert!(
                read >= exact - 0.0005 && read <= exact * 1.01 + 0.001,
                "q {q}: {read} vs {exact}"
            );
        }
    }

    #[test]
    fn bad_text_names_its_line() {
        assert_eq!(Distribution::parse("").unwrap_err().line, 1);
        let e = Distribution::parse(&format!("{HEADER}\n\n  12.0 0.5 x\n")).unwrap_err();
        assert_eq!((e.line, e.reason.contains("total count")), (3, true));
        let e = Distribution::parse(&format!("{HEADER}\n 5.0 0.5 10 2.0\n 4.0 0.6 11 2.5\n"))
            .unwrap_err();
        assert_eq!(e.reason, "rows out of order");
        assert!(Distribution::parse("hello\nworld").is_err());
    }

    #[test]
    fn an_empty_histogram_is_a_valid_file() {
        let h = Histogram::<u64>::new(3).unwrap();
        let back = Distribution::parse(&Distribution::of(&h, 1.0).to_text()).unwrap();
        assert_eq!((back.count, back.value_at_percentile(0.99)), (0, 0.0));
    }
}
