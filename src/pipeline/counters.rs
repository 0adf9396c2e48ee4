//! Counters the pipeline's threads publish while they run, read by the
//! runtime's statistics and by a flush waiting for its batches.

use std::sync::atomic::AtomicU64;

/// Counters the signer publishes while it runs.
#[derive(Debug, Default)]
pub(crate) struct SignerCounters {
    pub(crate) sealed_events: AtomicU64,
    pub(crate) seals: AtomicU64,
    pub(crate) sink_errors: AtomicU64,
    /// The checkpoint of the last seal written to the sinks.
    pub(crate) written_head: parking_lot::Mutex<Option<crate::format::checkpoint::Checkpoint>>,
}
