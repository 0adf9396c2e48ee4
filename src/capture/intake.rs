//! The intake flag: whether the capture takes new events. Shared by the
//! recorders (which read it on every record), the capture that builds them
//! and the writer (which raises it while a required sink fails).

/// Whether the capture takes new events. A runtime whose required sink
/// cannot write refuses events (fails closed) until the sink recovers.
#[derive(Debug, Default)]
pub(crate) struct Intake {
    /// Set while events are refused. Read on every record (a read-mostly
    /// line, written only when a required sink fails or recovers).
    refusing: std::sync::atomic::AtomicBool,
    /// Events refused so far.
    refused: std::sync::atomic::AtomicU64,
}

impl Intake {
    #[inline(always)]
    pub(crate) fn is_refusing(&self) -> bool {
        self.refusing.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_refusing(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn count_refused(&self) {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}
