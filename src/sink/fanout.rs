//! Several sinks as one.

use std::io;

use super::{Batch, LogTail, RotationSignal, Sink};
use crate::format::keys::PublicKey;

/// Writes every batch to each of its sinks, in order, as one sink: one
/// policy for the group. Every sink is tried; the first error is returned.
/// (A runtime with several sinks of its own gives each its own policy.)
///
/// # Examples
///
/// ```
/// use auditring::sink::{Fanout, MemorySink, StdoutSink};
///
/// let both = Fanout::new().with(MemorySink::new()).with(StdoutSink::new());
/// assert_eq!(both.len(), 2);
/// ```
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|s| s.name()))
            .finish()
    }
}

impl Fanout {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn with(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Number of sinks.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether there is no sink.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl Sink for Fanout {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        let mut first_error = None;
        for sink in &mut self.sinks {
            if let Err(e) = sink.write_batch(batch) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut first_error = None;
        for sink in &mut self.sinks {
            if let Err(e) = sink.flush() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn name(&self) -> &str {
        "fanout"
    }

    fn attach(&mut self, rotation: &RotationSignal) {
        for sink in &mut self.sinks {
            sink.attach(rotation);
        }
    }

    /// The first member's tail: the members are expected to hold the same
    /// log.
    fn resume(&mut self, signer: &PublicKey) -> io::Result<Option<LogTail>> {
        let mut first = None;
        for sink in &mut self.sinks {
            let tail = sink.resume(signer)?;
            if first.is_none() {
                first = tail;
            }
        }
        Ok(first)
    }
}
