//! The one state the runtime handle, the signer thread and the writer
//! thread share: counters, the published histograms, the intake flag,
//! the stop and abandon requests, the last sink failure and flushing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::capture::intake::Intake;
use crate::format::checkpoint::Checkpoint;
use crate::pipeline::flush::FlushShared;
use crate::sink::SinkFailure;
use crate::stats::Histograms;

/// Shared by the runtime's handles (through an `Arc`), the signer and the
/// writer. Nothing here is touched per event: counters per batch, locks
/// per batch at most.
#[derive(Debug)]
pub(crate) struct Pipeline {
    /// Events sealed and written by every sink (or given up on).
    pub(crate) sealed_events: AtomicU64,
    /// Seals written.
    pub(crate) seals: AtomicU64,
    /// Sink failures so far.
    pub(crate) sink_errors: AtomicU64,
    /// The checkpoint of the last seal written to the sinks.
    pub(crate) written_head: Mutex<Option<Checkpoint>>,
    /// The histograms readers see. The signer and the writer record into
    /// their own and publish into these now and then (see
    /// [`Histograms::absorb`]): recording never waits for a reader.
    pub(crate) stats: Mutex<Histograms>,
    /// Whether the ring accepts events (off while a required sink fails).
    pub(crate) intake: Arc<Intake>,
    /// Set by shutdown: drain, close and stop.
    pub(crate) stop: AtomicBool,
    /// Set when shutdown gave up waiting: stop retrying failed sinks.
    pub(crate) abandon: AtomicBool,
    /// The last sink failure, for error messages (written on failures only).
    pub(crate) last_error: Mutex<Option<SinkFailure>>,
    /// Flush requests and their completion.
    pub(crate) flush: FlushShared,
}

impl Pipeline {
    pub(crate) fn new(intake: Arc<Intake>) -> Self {
        Self {
            sealed_events: AtomicU64::new(0),
            seals: AtomicU64::new(0),
            sink_errors: AtomicU64::new(0),
            written_head: Mutex::new(None),
            stats: Mutex::new(Histograms::default()),
            intake,
            stop: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            last_error: Mutex::new(None),
            flush: FlushShared::default(),
        }
    }

    /// Keeps a sink failure as the last one, then counts it: whoever sees
    /// the count grow finds the failure already stored.
    pub(crate) fn failed(&self, failure: SinkFailure) {
        *lock(&self.last_error) = Some(failure);
        // Release: pairs with an Acquire load of the count, so the stored
        // failure is visible to whoever sees the new count.
        self.sink_errors.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn last_error(&self) -> Option<SinkFailure> {
        lock(&self.last_error).clone()
    }

    /// Adds what `local` recorded to the published histograms and empties
    /// `local`.
    pub(crate) fn publish(&self, local: &mut Histograms) {
        if !local.is_empty() {
            lock(&self.stats).absorb(local);
        }
    }
}

/// Locks a mutex whatever a panicking holder left: every value behind
/// these locks is valid at every point a panic could leave it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
