//! What a runtime reports: its counters, a snapshot of its histograms,
//! and what a shutdown did or why it did not complete.

use core::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use uuid::Uuid;

use crate::capture::Capture;
use crate::format::seal::ChainHead;
use crate::payload::Payload;
use crate::pipeline::shared::{Pipeline, lock};
use crate::sink::SinkFailure;
use crate::stats::{PayloadLatency, Percentiles, Stage};

pub(crate) fn runtime_stats<T: Payload>(capture: &Capture<T>, pipeline: &Pipeline) -> RuntimeStats {
    let ring = capture.stats();
    RuntimeStats {
        accepted: ring.accepted,
        dropped: ring.dropped,
        refused: ring.refused,
        sealed: pipeline.sealed_events.load(Ordering::Relaxed),
        seals: pipeline.seals.load(Ordering::Relaxed),
        sink_errors: pipeline.sink_errors.load(Ordering::Acquire),
        checkpoint: *lock(&pipeline.written_head),
    }
}

/// Counters of a running runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Events accepted by the ring.
    pub accepted: u64,
    /// Events dropped by the ring (full lanes).
    pub dropped: u64,
    /// Events refused while a required sink could not write.
    pub refused: u64,
    /// Events sealed and handed to the sinks.
    pub sealed: u64,
    /// Seals written (including the opening seal).
    pub seals: u64,
    /// Sink write failures.
    pub sink_errors: u64,
    /// The checkpoint of the last seal written to the sinks: keep it
    /// elsewhere to detect a later truncation of the log.
    pub checkpoint: Option<crate::format::checkpoint::Checkpoint>,
}

/// One pipeline stage's latency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageLatency {
    /// The stage.
    pub stage: Stage,
    /// Unit of the values (`ns` or `us`).
    pub unit: &'static str,
    /// Its percentiles.
    pub latency: Percentiles,
}

/// A snapshot of a runtime's counters and histograms.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Counters.
    pub counters: RuntimeStats,
    /// Every pipeline stage, in order.
    pub stages: Vec<StageLatency>,
    /// Gateway latencies per (action, decision), sorted.
    pub payload: Vec<PayloadLatency>,
}

/// What a clean shutdown did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The stream (run) id.
    pub stream: Uuid,
    /// Events accepted by the ring.
    pub accepted: u64,
    /// Events sealed and handed to the sinks (equals `accepted`).
    pub sealed: u64,
    /// Events dropped by the ring under its full policy (signed as loss).
    pub dropped: u64,
    /// Events refused while a required sink could not write.
    pub refused: u64,
    /// Seals written, including the opening and closing seals.
    pub seals: u64,
    /// Sink write or flush failures.
    pub sink_errors: u64,
    /// Where a later run continues this log.
    pub chain_head: ChainHead,
    /// The checkpoint of the close seal: keep it elsewhere (another host,
    /// a ticket, a collector) and pass it to `auditring verify --expect`
    /// to detect a later deletion of this run or of anything before it.
    pub checkpoint: crate::format::checkpoint::Checkpoint,
    /// Capture-to-sealed-and-written latency of every event, microseconds.
    pub seal_latency_us: Histogram<u64>,
    /// The last sink failure of the run (a best-effort sink's failures do
    /// not fail a shutdown), if any.
    pub last_sink_error: Option<SinkFailure>,
}

/// Why a shutdown did not complete. Each variant carries the last sink
/// failure, which is usually the cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The signer did not finish draining within the timeout. A required
    /// sink that is still failing is no longer retried; accepted events not
    /// yet written may be lost.
    TimedOut {
        /// The shutdown timeout that passed.
        timeout: Duration,
        /// The last sink failure (for example `StorageFull`, "No space left
        /// on device"), if a sink failed.
        last_sink_error: Option<SinkFailure>,
    },
    /// The signer thread died.
    SignerDied {
        /// The last sink failure, if a sink failed.
        last_sink_error: Option<SinkFailure>,
    },
}

impl ShutdownError {
    /// The last sink failure before the shutdown failed, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::FileSink;
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// # #[cfg(target_os = "linux")] {
    /// // /dev/full fails every write with ENOSPC.
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(FileSink::open("/dev/full")?)
    ///     .shutdown_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let err = runtime.shutdown().unwrap_err();
    /// let failure = err.last_sink_error().expect("the sink failed");
    /// assert_eq!(failure.kind, std::io::ErrorKind::StorageFull);
    /// assert!(err.to_string().contains("No space left on device"));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_sink_error(&self) -> Option<&SinkFailure> {
        match self {
            ShutdownError::TimedOut {
                last_sink_error, ..
            }
            | ShutdownError::SignerDied { last_sink_error } => last_sink_error.as_ref(),
        }
    }
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownError::TimedOut {
                timeout,
                last_sink_error: Some(e),
            } => write!(
                f,
                "the audit pipeline did not finish draining within {timeout:?}; last sink error: {e}: accepted events not yet written may be lost; fix the sink (or raise `shutdown_timeout` if it is only slow)"
            ),
            ShutdownError::TimedOut {
                timeout,
                last_sink_error: None,
            } => write!(
                f,
                "the audit pipeline did not finish draining within {timeout:?} (no sink reported an error: a slow sink?): accepted events not yet written may be lost; raise `shutdown_timeout` or speed up the sink"
            ),
            ShutdownError::SignerDied { last_sink_error } => {
                f.write_str(
                    "the audit signer thread died: events after its last seal were not written",
                )?;
                if let Some(e) = last_sink_error {
                    write!(f, " (last sink error: {e})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ShutdownError {}
