//! The runtime: a capture ring plus the signer thread that turns captured
//! events into a signed log.

use core::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::capture::recorder::Recorder;
use crate::capture::{Capture, RecorderError};
use crate::format::encode::EncodeJson;
use crate::format::seal::ChainHead;
use crate::payload::{AuditPayload, Payload};
use crate::pipeline::flush::{FlushError, FlushHandle, FlushReport};
use crate::pipeline::report::{
    RuntimeStats, ShutdownError, ShutdownReport, StageLatency, StatsSnapshot, runtime_stats,
};
use crate::pipeline::shared::{Pipeline, lock};
use crate::pipeline::signer::SignerOutcome;
use crate::pipeline::stage_files::StageFiles;
use crate::sink::SinkFailure;
use crate::stats::{LatencySource, Stage};

/// A handle to a running audit pipeline: hands out recorders, reads its
/// counters and histograms, and flushes it.
///
/// Cheap to clone, `Send` and `Sync`: share it in an `Arc` or clone it
/// into every worker thread, and call [`recorder`](Runtime::recorder)
/// there. The pipeline's shutdown belongs to the [`RuntimeGuard`] that
/// [`RuntimeBuilder::build`](crate::RuntimeBuilder::build) returns (it dereferences to this handle);
/// once the guard has shut the pipeline down, a handle's `recorder` fails
/// with [`RecorderError::Closed`] and its statistics stay readable.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Decision, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// let log = MemorySink::new();
/// let guard = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(log.clone())
///     .build()?;
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let runtime = guard.runtime(); // a handle for the worker
///         std::thread::spawn(move || {
///             let mut recorder = runtime.recorder().unwrap();
///             recorder
///                 .record(|e| {
///                     e.set_action("tool.call");
///                     e.decision = Decision::Allow;
///                 })
///                 .unwrap();
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// let report = guard.shutdown()?;
/// assert_eq!((report.accepted, report.sealed), (2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime<T: Payload + EncodeJson + LatencySource = AuditPayload> {
    pub(crate) capture: Capture<T>,
    /// Also holds the pipeline's shared state.
    pub(crate) flush: FlushHandle,
}

impl<T: Payload + EncodeJson + LatencySource> Clone for Runtime<T> {
    fn clone(&self) -> Self {
        Self {
            capture: self.capture.clone(),
            flush: self.flush.clone(),
        }
    }
}

impl<T: Payload + EncodeJson + LatencySource> Runtime<T> {
    fn pipeline(&self) -> &Pipeline {
        &self.flush.pipeline
    }

    /// A recorder for the calling thread (see [`Capture::recorder`]).
    ///
    /// # Errors
    ///
    /// [`RecorderError::NoFreeLane`] when `max_producers` recorders are
    /// alive; [`RecorderError::Closed`] after shutdown.
    pub fn recorder(&self) -> Result<Recorder<T>, RecorderError> {
        self.capture.recorder()
    }

    /// The capture handle: cheap to clone and share with the code that
    /// creates worker threads.
    pub fn capture(&self) -> &Capture<T> {
        &self.capture
    }

    /// Counters so far.
    pub fn stats(&self) -> RuntimeStats {
        runtime_stats(&self.capture, self.pipeline())
    }

    /// Counters and latency percentiles: every pipeline stage and the
    /// gateway's own latencies per (action, decision). The pipeline's
    /// threads publish their histograms every 20 ms, at every flush and
    /// at shutdown, so a snapshot may miss the last few milliseconds.
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
    /// let mut r = runtime.recorder()?;
    /// r.record(|e| { e.set_action("read"); e.enforcement_latency_us = 7; })?;
    /// runtime.flush(Duration::from_secs(5))?;
    /// let snapshot = runtime.stats_snapshot();
    /// assert_eq!(snapshot.counters.accepted, 1);
    /// assert_eq!(snapshot.payload[0].enforcement_us.max, 7);
    /// # drop(r);
    /// # runtime.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let counters = self.stats();
        let hists = lock(&self.pipeline().stats);
        StatsSnapshot {
            counters,
            stages: Stage::ALL
                .iter()
                .map(|&stage| StageLatency {
                    stage,
                    unit: stage.unit(),
                    latency: hists.stage(stage).percentiles(),
                })
                .collect(),
            payload: hists.payload_latencies(),
        }
    }

    /// A stage's histogram in the HdrHistogram percentile-distribution text
    /// format (values in the stage's unit).
    pub fn percentile_distribution(&self, stage: Stage) -> String {
        crate::stats::percentile_distribution(
            lock(&self.pipeline().stats).stage(stage).histogram(),
            1.0,
        )
    }

    /// The enforcement (or, with `dispatch`, dispatch) latency histogram of
    /// one (action, decision) pair in the percentile-distribution format,
    /// in µs; `None` if the pair was never seen.
    pub fn payload_percentile_distribution(
        &self,
        action: &str,
        decision: &str,
        dispatch: bool,
    ) -> Option<String> {
        let hists = lock(&self.pipeline().stats);
        hists
            .payload_hist(action, decision, dispatch)
            .map(|h| crate::stats::percentile_distribution(h.histogram(), 1.0))
    }

    /// The last sink failure so far (write, flush, or a panic), if any:
    /// the sink's name, the I/O error kind and its message. Failures are
    /// also counted in [`RuntimeStats::sink_errors`], reported through
    /// `tracing` and signed into the next seal.
    pub fn last_sink_error(&self) -> Option<SinkFailure> {
        self.pipeline().last_error()
    }

    /// Seals every event accepted so far and waits, at most `timeout`,
    /// until the sinks have written and flushed it (a file sink syncs);
    /// recording goes on meanwhile. Call it where the host may end
    /// without [`shutdown`](RuntimeGuard::shutdown): before
    /// `std::process::exit`, in a signal handler's thread, in a panic hook
    /// (see [`FlushHandle::flush_on_panic`]). See [`FlushHandle::flush`].
    ///
    /// # Errors
    ///
    /// [`FlushError::TimedOut`] with the last sink error,
    /// [`FlushError::Sink`] if a required sink could not flush,
    /// [`FlushError::Stopped`] if the signer thread is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::MemorySink;
    /// use auditring::verify::{FindingKind, Verifier};
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let key = SigningKey::generate();
    /// let log = MemorySink::new();
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(key.clone())
    ///     .sink(log.clone())
    ///     .max_delay(Duration::from_secs(3600)) // no timer seal would come soon
    ///     .build()?;
    /// let mut recorder = runtime.recorder()?;
    /// for _ in 0..10 {
    ///     recorder.record(|e| { e.set_action("tool.call"); })?;
    /// }
    /// runtime.flush(Duration::from_secs(5))?;
    /// // Everything recorded is sealed and written; only the close seal is
    /// // missing, as it would be if the process exited now.
    /// let report = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    /// assert_eq!((report.sealed_events, report.tamper), (10, 0));
    /// assert!(report.has(FindingKind::MissingClose));
    /// # drop(recorder);
    /// # runtime.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self, timeout: Duration) -> Result<FlushReport, FlushError> {
        self.flush.flush(timeout)
    }

    /// A cloneable handle that only flushes this runtime, for a panic hook
    /// or a signal handler's thread.
    pub fn flush_handle(&self) -> FlushHandle {
        self.flush.clone()
    }
}

impl<T: Payload + EncodeJson + LatencySource> fmt::Debug for Runtime<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Owns a running pipeline's shutdown: [`shutdown`](RuntimeGuard::shutdown)
/// drains every accepted event, writes the close seal and flushes the
/// sinks. Dropping the guard does the same (bounded by the shutdown
/// timeout) and logs a failure through `tracing`; call `shutdown` to get
/// the report. Keep it, in `main` or the gateway's top-level state, for as
/// long as events are recorded.
///
/// The guard dereferences to its [`Runtime`] handle, so
/// `guard.recorder()` and `guard.stats()` work on it directly;
/// [`runtime`](RuntimeGuard::runtime) gives a handle of its own to share.
///
/// # Exit without shutdown
///
/// A process that ends without `shutdown` or drop (`std::process::exit`,
/// which runs no destructors, a panic under `panic = "abort"`, a guard
/// kept in a `static`) loses every accepted event that was not yet sealed
/// and written: the open batch (up to `max_batch` events, up to
/// `max_delay` old), the events still in the ring, and up to two sealed
/// batches waiting for the sinks. Nothing in the log records their loss,
/// and the log has no close seal (the verifier reports it incomplete).
/// Call [`flush`](Runtime::flush) on such an exit path first, and install
/// [`FlushHandle::flush_on_panic`] for panics:
///
/// ```no_run
/// use std::time::Duration;
/// use auditring::{AuditPayload, Runtime};
///
/// fn exit_audited(runtime: &Runtime<AuditPayload>, code: i32) -> ! {
///     if let Err(e) = runtime.flush(Duration::from_secs(2)) {
///         eprintln!("the audit log was not flushed: {e}");
///     }
///     std::process::exit(code)
/// }
/// ```
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Decision, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// let log = MemorySink::new();
/// let guard = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(log.clone())
///     .max_delay(std::time::Duration::from_secs(3600)) // no timer seal
///     .build()?;
/// let mut recorder = guard.recorder()?;
/// recorder.record(|e| {
///     e.set_action("tool.call");
///     e.decision = Decision::Allow;
/// })?;
/// let report = guard.shutdown()?;
/// assert_eq!((report.accepted, report.sealed), (1, 1));
/// assert_eq!(log.lines().len(), 3); // open seal, event, close seal
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping the guard at once would shut the pipeline down before any
/// event is recorded, so it is `#[must_use]`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use auditring::{AuditPayload, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(MemorySink::new())
///     .build()
///     .unwrap();
/// ```
#[must_use = "dropping the guard shuts the audit pipeline down: keep it while events are recorded"]
pub struct RuntimeGuard<T: Payload + EncodeJson + LatencySource = AuditPayload> {
    pub(crate) runtime: Runtime<T>,
    pub(crate) signer: Option<JoinHandle<()>>,
    pub(crate) outcome: mpsc::Receiver<SignerOutcome>,
    pub(crate) shutdown_timeout: Duration,
    /// Written once more, then stopped, after the signer has finished.
    pub(crate) stage_files: Option<StageFiles>,
}

impl<T: Payload + EncodeJson + LatencySource> RuntimeGuard<T> {
    /// A handle of its own to the running pipeline, to share with worker
    /// threads.
    pub fn runtime(&self) -> Runtime<T> {
        self.runtime.clone()
    }

    /// Stops accepting events, drains every accepted event into sealed
    /// batches, writes the close seal, flushes the sinks and joins the
    /// signer thread, waiting at most the shutdown timeout.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::TimedOut`] if draining takes longer than the
    /// timeout; [`ShutdownError::SignerDied`] if the signer thread died.
    pub fn shutdown(mut self) -> Result<ShutdownReport, ShutdownError> {
        self.stop_signer()
    }

    fn stop_signer(&mut self) -> Result<ShutdownReport, ShutdownError> {
        let result = self.stop_signer_thread();
        if let Some(files) = self.stage_files.take() {
            files.finish();
        }
        result
    }

    fn stop_signer_thread(&mut self) -> Result<ShutdownReport, ShutdownError> {
        let pipeline = self.runtime.pipeline();
        let Some(handle) = self.signer.take() else {
            return Err(ShutdownError::SignerDied {
                last_sink_error: pipeline.last_error(),
            });
        };
        // Release: everything this thread did before the shutdown request
        // is visible to the signer once it sees the flag.
        pipeline.stop.store(true, Ordering::Release);
        handle.thread().unpark();
        match self.outcome.recv_timeout(self.shutdown_timeout) {
            Ok(outcome) => {
                let _ = handle.join();
                let capture = self.runtime.capture.stats();
                Ok(ShutdownReport {
                    stream: outcome.stream,
                    accepted: capture.accepted,
                    refused: capture.refused,
                    sealed: outcome.sealed_events,
                    dropped: outcome.dropped,
                    seals: outcome.seals,
                    sink_errors: outcome.sink_errors,
                    chain_head: ChainHead {
                        prev: outcome.last_seal_hash,
                        next_seq: outcome.next_seq,
                        previous_closed: true,
                        orphans: crate::format::seal::Orphans::NONE,
                    },
                    checkpoint: outcome.checkpoint,
                    seal_latency_us: outcome.seal_latency_us,
                    last_sink_error: pipeline.last_error(),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The failure that held the drain up, taken before the
                // writer is released below: it would go on to fail its
                // final flush too, and that failure would hide this one.
                let last_sink_error = pipeline.last_error();
                // Stop retrying failed required sinks: nobody waits for them.
                pipeline.abandon.store(true, Ordering::Release);
                Err(ShutdownError::TimedOut {
                    timeout: self.shutdown_timeout,
                    last_sink_error,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ShutdownError::SignerDied {
                last_sink_error: pipeline.last_error(),
            }),
        }
    }
}

impl<T: Payload + EncodeJson + LatencySource> std::ops::Deref for RuntimeGuard<T> {
    type Target = Runtime<T>;

    fn deref(&self) -> &Runtime<T> {
        &self.runtime
    }
}

impl<T: Payload + EncodeJson + LatencySource> Drop for RuntimeGuard<T> {
    fn drop(&mut self) {
        if self.signer.is_some()
            && let Err(e) = self.stop_signer()
        {
            tracing::error!(target: "auditring", error = %e, "audit runtime shutdown on drop failed");
        }
    }
}

impl<T: Payload + EncodeJson + LatencySource> fmt::Debug for RuntimeGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeGuard")
            .field("runtime", &self.runtime)
            .field("running", &self.signer.is_some())
            .finish()
    }
}

/// The runtime handle can be shared between threads (cloned, `&Runtime`
/// or an `Arc`), so that every worker takes its own recorder; the guard can
/// move to the thread that will shut the pipeline down.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    const fn movable<T: Send>() {}
    shareable::<Runtime<AuditPayload>>();
    movable::<RuntimeGuard<AuditPayload>>();
    shareable::<FlushHandle>();
};
