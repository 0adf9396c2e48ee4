//! Flushing a running pipeline: sealing and writing everything accepted so
//! far without shutting down, for a host that may leave through
//! `std::process::exit` or a panic.
//!
//! A caller takes a ticket (`requested`), wakes the signer and waits. The
//! signer checks `requested` on every loop iteration; when it is ahead of
//! what it has served, the signer drains every event accepted before it
//! looked, seals the open batch (reason `timer`) and queues a flush marker
//! behind the sealed batches. The writer thread writes the batches ahead
//! of the marker, flushes every sink (a file sink syncs) and marks the
//! ticket done, waking the waiting callers.

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::pipeline::shared::{Pipeline, lock};
use crate::sink::SinkFailure;

/// Flush requests and their completion, shared by the callers, the signer
/// and the writer.
#[derive(Debug, Default)]
pub(crate) struct FlushShared {
    /// Tickets handed out so far. Incremented by a caller with `AcqRel`
    /// after its events were recorded; loaded by the signer with `Acquire`,
    /// so that every event the caller saw accepted is visible in the ring
    /// when the signer serves the ticket.
    requested: AtomicU64,
    state: std::sync::Mutex<FlushState>,
    /// Signalled when `state` changes.
    changed: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Every ticket up to this one is written and flushed.
    flushed: u64,
    /// Flush failures of required sinks so far.
    failures: u64,
    /// The signer has stopped: no further ticket will be served.
    stopped: bool,
}

impl FlushShared {
    /// The latest ticket asked for (signer side).
    pub(crate) fn requested(&self) -> u64 {
        // Acquire: pairs with the caller's `fetch_add`, so the caller's
        // recorded events are visible to the signer's following drain.
        self.requested.load(Ordering::Acquire)
    }

    /// The writer has written everything queued before `ticket`'s marker
    /// and flushed the sinks; `required_failures` required sinks failed to
    /// flush.
    pub(crate) fn complete(&self, ticket: u64, required_failures: u64) {
        let mut state = lock(&self.state);
        state.flushed = state.flushed.max(ticket);
        state.failures += required_failures;
        drop(state);
        self.changed.notify_all();
    }

    /// The signer is gone (shut down, or died): waiting callers give up.
    pub(crate) fn stop(&self) {
        lock(&self.state).stopped = true;
        self.changed.notify_all();
    }
}

/// Marks the flush state stopped when the signer thread ends, normally or
/// by a panic.
pub(crate) struct StopOnDrop(pub(crate) Arc<Pipeline>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.flush.stop();
    }
}

/// What a completed [`flush`](FlushHandle::flush) found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Events sealed and written so far (at least every event accepted
    /// before the flush).
    pub sealed: u64,
    /// Seals written so far, including the opening seal.
    pub seals: u64,
    /// Sink write or flush failures so far.
    pub sink_errors: u64,
    /// The last sink failure of the run, if any (a best-effort sink's
    /// failure does not fail a flush).
    pub last_sink_error: Option<SinkFailure>,
}

/// Why a [`flush`](FlushHandle::flush) did not complete. Each variant
/// says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The events were not written and flushed within the timeout: a
    /// required sink that cannot write, or a slow sink. They stay queued
    /// and are written when the sink recovers.
    TimedOut {
        /// The timeout that passed.
        timeout: Duration,
        /// The last sink failure, if a sink failed.
        last_sink_error: Option<SinkFailure>,
    },
    /// A required sink wrote the events but could not flush them (for a
    /// file: `fsync` failed, so they may not be on stable storage).
    Sink(SinkFailure),
    /// The runtime stopped (it was shut down, or its signer thread died)
    /// before the flush completed; the shutdown's result says what was
    /// written.
    Stopped,
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::TimedOut {
                timeout,
                last_sink_error,
            } => {
                write!(
                    f,
                    "the audit pipeline did not write and flush the accepted events within {timeout:?}"
                )?;
                match last_sink_error {
                    Some(e) => write!(f, "; last sink error: {e}; fix the sink")?,
                    None => f.write_str(" (a slow sink?)")?,
                }
                f.write_str(", or give the flush more time")
            }
            FlushError::Sink(e) => write!(
                f,
                "a required audit sink could not flush the written events ({e}): they may not be on stable storage; fix the sink"
            ),
            FlushError::Stopped => f.write_str(
                "the audit runtime stopped before the flush completed (it was shut down, or its signer thread died): see the shutdown's result",
            ),
        }
    }
}

impl std::error::Error for FlushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FlushError::Sink(e) => Some(e),
            _ => None,
        }
    }
}

/// A cloneable handle that flushes a running [`Runtime`](crate::Runtime)
/// from anywhere: the host's exit path, a signal-handling thread, a panic
/// hook ([`flush_on_panic`](FlushHandle::flush_on_panic)). Get one with
/// [`Runtime::flush_handle`](crate::Runtime::flush_handle).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use auditring::sink::MemorySink;
/// use auditring::{AuditPayload, Runtime, SigningKey};
///
/// let runtime = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(MemorySink::new())
///     .build()?;
/// let flusher = runtime.flush_handle();
/// let mut recorder = runtime.recorder()?;
/// recorder.record(|e| { e.set_action("tool.call"); })?;
/// let report = std::thread::spawn(move || flusher.flush(Duration::from_secs(5)))
///     .join()
///     .unwrap()?;
/// assert_eq!(report.sealed, 1);
/// # drop(recorder);
/// # runtime.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FlushHandle {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) signer: std::thread::Thread,
}

impl FlushHandle {
    /// Seals every event accepted so far (the open batch gets a `timer`
    /// seal), and waits at most `timeout` until the sinks have written
    /// and flushed it (a file sink syncs, whatever its fsync policy).
    /// Recording goes on meanwhile; events accepted after the call may or
    /// may not be included.
    ///
    /// The log stays open: it has no close seal until
    /// [`shutdown`](crate::RuntimeGuard::shutdown), so a verifier reports a
    /// flushed log of a process that then exits as incomplete
    /// (`missing_close`), with every flushed event sealed.
    ///
    /// # Errors
    ///
    /// [`FlushError::TimedOut`] (with the last sink error) if the sinks did
    /// not finish in time, [`FlushError::Sink`] if a required sink could
    /// not flush, [`FlushError::Stopped`] if the runtime stopped first.
    pub fn flush(&self, timeout: Duration) -> Result<FlushReport, FlushError> {
        let shared = &self.pipeline.flush;
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&shared.state);
        if state.stopped {
            return Err(FlushError::Stopped);
        }
        let failures_before = state.failures;
        // AcqRel: the Release half publishes this thread's recorded events
        // to the signer (see `FlushShared::requested`).
        let ticket = shared.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.signer.unpark();
        while state.flushed < ticket {
            if state.stopped {
                return Err(FlushError::Stopped);
            }
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                // A timeout too far to represent: wait a day at a time.
                None => Duration::from_secs(86_400),
            };
            if deadline.is_some() && wait.is_zero() {
                return Err(FlushError::TimedOut {
                    timeout,
                    last_sink_error: self.pipeline.last_error(),
                });
            }
            state = shared
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let failed = state.failures > failures_before;
        drop(state);
        let last_sink_error = self.pipeline.last_error();
        if let (true, Some(e)) = (failed, &last_sink_error) {
            return Err(FlushError::Sink(e.clone()));
        }
        Ok(FlushReport {
            sealed: self.pipeline.sealed_events.load(Ordering::Relaxed),
            seals: self.pipeline.seals.load(Ordering::Relaxed),
            sink_errors: self.pipeline.sink_errors.load(Ordering::Acquire),
            last_sink_error,
        })
    }

    /// Installs a panic hook that flushes the pipeline (bounded by
    /// `timeout`) before running the hook that was installed before it, so
    /// that a panic which ends the process (`panic = "abort"`, a panic in
    /// `main`, or a host that exits on panic) does not lose the events
    /// accepted before it. Panics on the runtime's own threads skip the
    /// flush (they cannot serve it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::MemorySink;
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(MemorySink::new())
    ///     .build()?;
    /// runtime.flush_handle().flush_on_panic(Duration::from_secs(2));
    /// # let _ = std::panic::take_hook();
    /// # runtime.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush_on_panic(&self, timeout: Duration) {
        let handle = self.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let own_thread = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("auditring-"));
            if !own_thread && let Err(e) = handle.flush(timeout) {
                eprintln!("auditring: flushing the audit log on panic failed: {e}");
            }
            previous(info);
        }));
    }
}

impl fmt::Debug for FlushHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushHandle")
            .field("signer", &self.signer.name())
            .finish_non_exhaustive()
    }
}
