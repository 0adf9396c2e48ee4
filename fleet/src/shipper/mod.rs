//! The shipper: a low-priority thread that publishes every sealed batch of
//! the local log to JetStream, one message per batch, exactly as written.
//!
//! `ship` holds the worker's state and its course: `start` connects and
//! positions the spool against what the server holds, `publish` sends the
//! batches and takes the acknowledgements, `cursor` saves where it stands,
//! and `housekeeping` sends liveness messages, applies retention and
//! checks the disk.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use hdrhistogram::Histogram;

mod config;
mod cursor;
mod housekeeping;
mod publish;
mod shared;
mod ship;
mod start;

pub use config::{ShipError, ShipMetrics, ShipperConfig};

use shared::{Shared, snapshot};
use ship::Ship;

/// A running shipper: its own thread, stopped by [`stop`](Shipper::stop)
/// or on drop.
///
/// # Examples
///
/// See the [crate documentation](crate).
#[must_use = "a shipper stops when dropped"]
pub struct Shipper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), ShipError>>>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper").finish_non_exhaustive()
    }
}

impl Shipper {
    /// Starts shipping on a thread of its own (`auditring-ship`).
    ///
    /// # Errors
    ///
    /// [`ShipError::Config`] for an impossible configuration;
    /// [`ShipError::Io`] if the thread cannot start. The server need not
    /// be up: the shipper connects and retries in the background.
    pub fn spawn(config: ShipperConfig) -> Result<Shipper, ShipError> {
        config.id().check().map_err(ShipError::Config)?;
        config.connection.check().map_err(ShipError::Config)?;
        let shared = Arc::new(Shared::default());
        *shared.ack_us.lock() = Histogram::new(3).ok();
        *shared.lag_ms.lock() = Histogram::new(3).ok();
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("auditring-ship".into())
            .spawn(move || run(config, inner))?;
        Ok(Shipper {
            shared,
            thread: Some(thread),
        })
    }

    /// The metrics now.
    pub fn metrics(&self) -> ShipMetrics {
        snapshot(&self.shared)
    }

    /// Batches acknowledged so far.
    pub fn acked_batches(&self) -> u64 {
        self.shared.acked_batches.load(Ordering::Relaxed)
    }

    /// Whether the thread has ended (it only ends on stop or on a batch
    /// that can never be stored).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops: ships what the spool holds for at most the stop timeout,
    /// saves the cursor, and returns the final metrics.
    ///
    /// # Errors
    ///
    /// The error that ended the thread, if any.
    pub fn stop(mut self) -> Result<ShipMetrics, ShipError> {
        self.shared.stop.store(true, Ordering::Release);
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(ShipError::Panicked)),
            None => Ok(()),
        };
        result.map(|()| snapshot(&self.shared))
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The shipper's thread.
fn run(config: ShipperConfig, shared: Arc<Shared>) -> Result<(), ShipError> {
    lower_priority(config.nice);
    if let Some(core) = config.core
        && let Err(e) = auditring::capture::affinity::pin_current_thread(core)
    {
        tracing::warn!(target: "auditring_nats", core, error = %e, "cannot pin the shipper");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(Ship::new(config, Arc::clone(&shared)).run());
    if let Err(e) = &result {
        shared.metrics.lock().last_error = Some(e.to_string());
    }
    result
}

/// Lowers this thread's priority.
fn lower_priority(nice: i32) {
    // SAFETY: gettid and setpriority take no pointers; on Linux
    // PRIO_PROCESS with a thread id changes that thread only.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        tracing::warn!(target: "auditring_nats", nice, error = %io::Error::last_os_error(), "cannot lower the shipper's priority");
    }
}
