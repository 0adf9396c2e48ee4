//! Latency statistics of one log: per (action, decision) histograms of the
//! enforcement and dispatch latencies, read in the same streaming pass
//! that verifies the log, so that only events whose seal verified count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use auditring::PublicKey;
use auditring::format::line::Line;
use auditring::verify::{Status, Verifier};
use hdrhistogram::Histogram;
use serde::Deserialize;

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
