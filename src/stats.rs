//! Latency histograms: the gateway's own latencies (from the payloads) and
//! every stage of the audit pipeline, kept off the hot path.
//!
//! The signer and writer threads record into HDR histograms (3 significant
//! digits) behind one lock that they take once per drained batch; a
//! snapshot ([`Runtime::stats_snapshot`](crate::Runtime::stats_snapshot))
//! takes the same lock. A value above a histogram's range is recorded at
//! the top of the range and counted as saturated: never a panic, never a
//! silent loss.

use hdrhistogram::Histogram;
use serde::Serialize;

pub mod hgrm;

/// Highest value the histograms hold (in their unit): one hour in µs.
const HIGHEST: u64 = 3_600_000_000;

/// At most this many (action, decision) pairs get their own histograms;
/// the rest share the `(other)` row.
pub const MAX_PAYLOAD_KEYS: usize = 256;

/// One sample of the gateway's own latencies, taken from a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySample<'a> {
    /// The action (histograms are kept per action and decision).
    pub action: &'a str,
    /// The decision.
    pub decision: &'a str,
    /// Time spent enforcing, in µs.
    pub enforcement_us: u64,
    /// Time spent in the dispatched call, in µs (`None` if not dispatched).
    pub dispatch_us: Option<u64>,
}

/// A payload that reports the gateway's own latencies, for the runtime's
/// per-(action, decision) histograms
/// ([`StatsSnapshot`](crate::StatsSnapshot)'s payload rows).
///
/// The signer asks each event once, after draining it. A payload with no
/// latencies to report implements it with the default method: `impl
/// LatencySource for MyPayload {}`.
///
/// # Examples
///
/// ```
/// use auditring::stats::{LatencySample, LatencySource};
///
/// struct ToolCall {
///     tool: &'static str,
///     ok: bool,
///     took_us: u64,
/// }
///
/// impl LatencySource for ToolCall {
///     fn latency_sample(&self) -> Option<LatencySample<'_>> {
///         Some(LatencySample {
///             action: self.tool,
///             decision: if self.ok { "success" } else { "failure" },
///             enforcement_us: self.took_us,
///             dispatch_us: None,
///         })
///     }
/// }
///
/// let call = ToolCall { tool: "search", ok: true, took_us: 40 };
/// assert_eq!(call.latency_sample().unwrap().decision, "success");
/// ```
pub trait LatencySource {
    /// The latencies this event reports; `None` (the default) keeps it out
    /// of the histograms.
    fn latency_sample(&self) -> Option<LatencySample<'_>> {
        None
    }
}

/// Summary of one histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Smallest value.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value (capped at the histogram's range).
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Values above the histogram's range, recorded at its top.
    pub saturated: u64,
}

/// A histogram that saturates instead of failing.
#[derive(Clone, Debug)]
pub(crate) struct Hist {
    h: Histogram<u64>,
    saturated: u64,
    /// A pipeline thread's histogram (see [`Histograms::buffered`]): values
    /// recorded since the last publish, up to the capacity reserved at
    /// construction, kept out of `h` until published. Publishing records
    /// each into the shared histogram, where adding `h` would cost a pass
    /// over all its counts (some 23,000) and another to reset them, for a
    /// few hundred values. Values past the capacity go to `h`.
    recent: Vec<u64>,
}

impl Default for Hist {
    fn default() -> Self {
        Self::buffered(0)
    }
}

impl Hist {
    /// A histogram that keeps up to `capacity` values aside until
    /// published.
    fn buffered(capacity: usize) -> Self {
        Self {
            h: Histogram::new_with_bounds(1, HIGHEST, 3).expect("valid histogram bounds"),
            saturated: 0,
            recent: Vec::with_capacity(capacity),
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, value: u64) {
        let v = if value > HIGHEST {
            self.saturated += 1;
            HIGHEST
        } else {
            value.max(1)
        };
        if self.recent.len() < self.recent.capacity() {
            self.recent.push(v);
        } else {
            self.h.saturating_record(v);
        }
    }

    fn is_empty(&self) -> bool {
        self.h.is_empty() && self.recent.is_empty()
    }

    pub(crate) fn percentiles(&self) -> Percentiles {
        debug_assert!(self.recent.is_empty(), "read a published histogram");
        let h = &self.h;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            saturated: self.saturated,
        }
    }

    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        debug_assert!(self.recent.is_empty(), "read a published histogram");
        &self.h
    }

    /// Adds `other`'s values to these and empties `other`.
    fn absorb(&mut self, other: &mut Hist) {
        for &v in &other.recent {
            self.h.saturating_record(v);
        }
        other.recent.clear();
        if !other.h.is_empty() {
            // Both have the same bounds, so adding cannot fail.
            let _ = self.h.add(&other.h);
            other.h.reset();
        }
        self.saturated += other.saturated;
        other.saturated = 0;
    }
}

/// The stages of the pipeline that are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Capture to drain by the signer, per event (ns).
    QueueWait,
    /// Encoding and hashing, per event (ns, a batch's time over its events).
    EncodeHash,
    /// Signing one seal (µs).
    Sign,
    /// Writing one batch to every sink (µs).
    SinkWrite,
    /// Capture to sealed and written by every sink, per event (µs).
    Sealed,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::QueueWait,
        Stage::EncodeHash,
        Stage::Sign,
        Stage::SinkWrite,
        Stage::Sealed,
    ];

    /// The stage's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::QueueWait => "queue_wait",
            Stage::EncodeHash => "encode_hash",
            Stage::Sign => "sign",
            Stage::SinkWrite => "sink_write",
            Stage::Sealed => "capture_to_sealed",
        }
    }

    /// The unit of its values.
    pub fn unit(self) -> &'static str {
        match self {
            Stage::QueueWait | Stage::EncodeHash => "ns",
            Stage::Sign | Stage::SinkWrite | Stage::Sealed => "us",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The gateway latencies of one (action, decision) pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PayloadLatency {
    /// The action, or `(other)` past [`MAX_PAYLOAD_KEYS`] pairs.
    pub action: String,
    /// The decision.
    pub decision: String,
    /// Enforcement latency, µs.
    pub enforcement_us: Percentiles,
    /// Dispatch latency of dispatched calls, µs.
    pub dispatch_us: Percentiles,
}

#[derive(Default)]
struct PayloadHists {
    enforcement: Hist,
    dispatch: Hist,
}

/// Most `(other)` pairs kept past [`MAX_PAYLOAD_KEYS`] (one per decision);
/// beyond them every pair is counted as `(other)`, `(other)`.
const MAX_OTHER_KEYS: usize = 16;

/// Slots of the pair table: a power of two, more than twice the most
/// pairs it holds.
const PAIR_SLOTS: usize = 1024;

/// The (action, decision) pairs and their histograms. Finding a pair
/// allocates nothing and, when it repeats the previous event's pair (the
/// common case), hashes nothing either; a new pair allocates once. Its
/// size is bounded whatever the payloads say.
#[derive(Default)]
struct PairTable {
    /// Open addressing: 1 + the index into `entries`; 0 is an empty slot.
    slots: Vec<u16>,
    entries: Vec<PairEntry>,
    /// The pair used last.
    last: usize,
    /// Values each new pair's histograms keep aside until published.
    buffered: usize,
}

struct PairEntry {
    action: String,
    decision: String,
    hists: PayloadHists,
}

impl PairTable {
    /// FNV-1a over the action, a separator and the decision: cheap, and
    /// the table's bound keeps probing bounded whatever the keys.
    fn hash(action: &str, decision: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in action
            .as_bytes()
            .iter()
            .chain(&[0xff])
            .chain(decision.as_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h as usize & (PAIR_SLOTS - 1)
    }

    fn find(&mut self, action: &str, decision: &str) -> Option<usize> {
        let same = |e: &PairEntry| e.action == action && e.decision == decision;
        if self.entries.get(self.last).is_some_and(same) {
            return Some(self.last);
        }
        if self.slots.is_empty() {
            return None;
        }
        let mut at = Self::hash(action, decision);
        loop {
            let slot = usize::from(self.slots[at]);
            if slot == 0 {
                return None;
            }
            if same(&self.entries[slot - 1]) {
                self.last = slot - 1;
                return Some(slot - 1);
            }
            at = (at + 1) & (PAIR_SLOTS - 1);
        }
    }

    fn insert(&mut self, action: &str, decision: &str) -> usize {
        if self.slots.is_empty() {
            self.slots = vec![0; PAIR_SLOTS];
        }
        let index = self.entries.len();
        self.entries.push(PairEntry {
            action: action.to_owned(),
            decision: decision.to_owned(),
            hists: PayloadHists {
                enforcement: Hist::buffered(self.buffered),
                dispatch: Hist::buffered(self.buffered),
            },
        });
        let mut at = Self::hash(action, decision);
        while self.slots[at] != 0 {
            at = (at + 1) & (PAIR_SLOTS - 1);
        }
        self.slots[at] = u16::try_from(index + 1).expect("the table holds at most 272 pairs");
        self.last = index;
        index
    }

    /// The histograms of a pair, added if there is room; past
    /// [`MAX_PAYLOAD_KEYS`] pairs, new actions count as `(other)`.
    fn entry(&mut self, action: &str, decision: &str) -> &mut PayloadHists {
        let index = match self.find(action, decision) {
            Some(i) => i,
            None if self.entries.len() < MAX_PAYLOAD_KEYS => self.insert(action, decision),
            None => match self.find("(other)", decision) {
                Some(i) => i,
                None if self.entries.len() < MAX_PAYLOAD_KEYS + MAX_OTHER_KEYS => {
                    self.insert("(other)", decision)
                }
                None => match self.find("(other)", "(other)") {
                    Some(i) => i,
                    None => self.insert("(other)", "(other)"),
                },
            },
        };
        &mut self.entries[index].hists
    }
}

/// All histograms of a runtime.
#[derive(Default)]
pub(crate) struct Histograms {
    stages: [Hist; 5],
    payload: PairTable,
}

impl std::fmt::Debug for Histograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histograms")
            .field("pairs", &self.payload.entries.len())
            .finish_non_exhaustive()
    }
}

impl Histograms {
    /// A pipeline thread's own histograms: values wait in a fixed buffer
    /// per histogram (allocated here, and once per new pair) until
    /// [`absorb`](Self::absorb)ed into the shared ones, which then costs
    /// one record per value instead of a pass over every count.
    pub(crate) fn buffered() -> Self {
        /// Per stage: a batch's per-event values.
        const STAGE: usize = 4096;
        /// Per (action, decision) pair and latency.
        const PAIR: usize = 256;
        Self {
            stages: std::array::from_fn(|_| Hist::buffered(STAGE)),
            payload: PairTable {
                buffered: PAIR,
                ..PairTable::default()
            },
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, stage: Stage, value: u64) {
        self.stages[stage.index()].record(value);
    }

    pub(crate) fn record_payload(&mut self, sample: LatencySample<'_>) {
        let entry = self.payload.entry(sample.action, sample.decision);
        entry.enforcement.record(sample.enforcement_us);
        if let Some(d) = sample.dispatch_us {
            entry.dispatch.record(d);
        }
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.stages.iter().all(Hist::is_empty)
            && self
                .payload
                .entries
                .iter()
                .all(|e| e.hists.enforcement.is_empty() && e.hists.dispatch.is_empty())
    }

    /// Adds what `other` recorded to these histograms and empties `other`
    /// (its pairs stay known, so recording into it again allocates
    /// nothing). Costs a pass over each histogram that holds values: the
    /// pipeline's threads call it every few milliseconds, not per event.
    pub(crate) fn absorb(&mut self, other: &mut Histograms) {
        for (mine, theirs) in self.stages.iter_mut().zip(&mut other.stages) {
            mine.absorb(theirs);
        }
        for entry in &mut other.payload.entries {
            if entry.hists.enforcement.is_empty() && entry.hists.dispatch.is_empty() {
                continue;
            }
            let mine = self.payload.entry(&entry.action, &entry.decision);
            mine.enforcement.absorb(&mut entry.hists.enforcement);
            mine.dispatch.absorb(&mut entry.hists.dispatch);
        }
    }

    pub(crate) fn stage(&self, stage: Stage) -> &Hist {
        &self.stages[stage.index()]
    }

    pub(crate) fn payload_latencies(&self) -> Vec<PayloadLatency> {
        let mut rows: Vec<PayloadLatency> = self
            .payload
            .entries
            .iter()
            .map(|e| PayloadLatency {
                action: e.action.clone(),
                decision: e.decision.clone(),
                enforcement_us: e.hists.enforcement.percentiles(),
                dispatch_us: e.hists.dispatch.percentiles(),
            })
            .collect();
        rows.sort_by(|a, b| (&a.action, &a.decision).cmp(&(&b.action, &b.decision)));
        rows
    }

    /// The payload histograms of one pair, for export.
    pub(crate) fn payload_hist(
        &self,
        action: &str,
        decision: &str,
        dispatch: bool,
    ) -> Option<&Hist> {
        self.payload
            .entries
            .iter()
            .find(|e| e.action == action && e.decision == decision)
            .map(|e| {
                if dispatch {
                    &e.hists.dispatch
                } else {
                    &e.hists.enforcement
                }
            })
    }
}

/// The HdrHistogram "percentile distribution" text of a histogram (the
/// format `HistogramLogProcessor` and the online plotters read), values
/// divided by `scale`.
///
/// # Examples
///
/// ```
/// use hdrhistogram::Histogram;
///
/// let mut h = Histogram::<u64>::new(3).unwrap();
/// for v in 1..=100u64 {
///     h.record(v).unwrap();
/// }
/// let text = auditring::stats::percentile_distribution(&h, 1.0);
/// assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
/// assert!(text.contains("#[Max     =      100.000, Total count    =          100]"));
/// ```
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    hgrm::Distribution::of(h, scale).to_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_saturate_and_are_counted() {
        let mut h = Hist::default();
        h.record(0);
        h.record(5);
        h.record(u64::MAX);
        let p = h.percentiles();
        assert_eq!(p.count, 3);
        assert_eq!(p.saturated, 1);
        assert_eq!(p.min, 1, "zero is recorded as the lowest value");
        assert!(p.max >= HIGHEST, "{}", p.max);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Hist::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 10_000);
        let close = |a: u64, b: u64| a.abs_diff(b) * 1000 <= b; // 3 significant digits
        assert!(close(p.p50, 5_000), "{}", p.p50);
        assert!(close(p.p99, 9_900), "{}", p.p99);
        assert!(close(p.p999, 9_990), "{}", p.p999);
        assert!(close(p.max, 10_000));
    }

    #[test]
    fn payload_keys_are_bounded() {
        let mut all = Histograms::default();
        for i in 0..(MAX_PAYLOAD_KEYS + 50) {
            let action = format!("action-{i}");
            all.record_payload(LatencySample {
                action: &action,
                decision: "allow",
                enforcement_us: 3,
                dispatch_us: None,
            });
        }
        let rows = all.payload_latencies();
        assert_eq!(rows.len(), MAX_PAYLOAD_KEYS + 1);
        let other = rows.iter().find(|r| r.action == "(other)").unwrap();
        assert_eq!(other.enforcement_us.count, 50);
        assert_eq!(other.dispatch_us.count, 0);
        // Known pairs still count as themselves, in any order.
        for i in [7, 0, 255, 7] {
            let action = format!("action-{i}");
            all.record_payload(LatencySample {
                action: &action,
                decision: "allow",
                enforcement_us: 3,
                dispatch_us: Some(9),
            });
        }
        let rows = all.payload_latencies();
        let seven = rows.iter().find(|r| r.action == "action-7").unwrap();
        assert_eq!(
            (seven.enforcement_us.count, seven.dispatch_us.count),
            (3, 2)
        );
        // Crafted decisions cannot grow the table past its bound.
        for i in 0..1_000 {
            let decision = format!("decision-{i}");
            all.record_payload(LatencySample {
                action: "new",
                decision: &decision,
                enforcement_us: 1,
                dispatch_us: None,
            });
        }
        let rows = all.payload_latencies();
        assert_eq!(rows.len(), MAX_PAYLOAD_KEYS + MAX_OTHER_KEYS + 1);
        let overflow = rows
            .iter()
            .find(|r| r.action == "(other)" && r.decision == "(other)")
            .unwrap();
        assert_eq!(
            overflow.enforcement_us.count,
            1_000 - (MAX_OTHER_KEYS as u64 - 1)
        );
    }

    #[test]
    fn the_pair_table_finds_every_pair_it_holds() {
        let mut table = PairTable::default();
        let pairs: Vec<(String, String)> = (0..MAX_PAYLOAD_KEYS)
            .map(|i| (format!("a{}", i % 37), format!("d{}", i / 37)))
            .collect();
        for (a, d) in &pairs {
            table.entry(a, d).enforcement.record(1);
        }
        assert_eq!(table.entries.len(), pairs.len());
        for (i, (a, d)) in pairs.iter().enumerate().rev() {
            assert_eq!(table.find(a, d), Some(i));
        }
        assert_eq!(table.find("a0", "nope"), None);
    }
}
