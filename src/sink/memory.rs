//! An in-memory sink for tests and inspection.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Batch, Sink};

/// Keeps every written byte in memory. Clones share the same buffer, so
/// keep one clone to inspect what the runtime wrote.
///
/// # Examples
///
/// ```
/// use auditring::sink::MemorySink;
///
/// let sink = MemorySink::new();
/// let view = sink.clone();
/// assert!(view.bytes().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// Everything written so far, as lines without newlines.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.lock())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Sink for MemorySink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        self.lock().extend_from_slice(batch.bytes());
        Ok(())
    }

    fn name(&self) -> &str {
        "memory"
    }
}
