//! Standard output.

use std::io::{self, Write};

use super::{Batch, Sink};

/// Writes every batch to standard output, holding the lock for the whole
/// batch so that lines of other writers never interleave with it.
///
/// # Examples
///
/// ```
/// use auditring::sink::StdoutSink;
/// let _sink = StdoutSink::new();
/// ```
#[derive(Debug, Default)]
pub struct StdoutSink {
    _private: (),
}

impl StdoutSink {
    /// A sink writing to standard output.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for StdoutSink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(batch.bytes())?;
        out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }

    fn name(&self) -> &str {
        "stdout"
    }
}
