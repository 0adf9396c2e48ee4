//! Where sealed batches go: synchronous sinks, called on the signer thread.
//!
//! A sink receives each sealed batch as bytes: the batch's event lines
//! followed by its seal line, each ending in `\n`, exactly as they must
//! appear in the log. A sink never re-encodes them: the seal covers those
//! exact bytes.

use std::io;

use crate::seal::Seal;

mod file;
mod memory;

pub use file::FileSink;
pub use memory::MemorySink;

/// One sealed batch, borrowed for the duration of a
/// [`Sink::write_batch`] call.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    bytes: &'a [u8],
    seal_offset: usize,
    seal: &'a Seal,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(bytes: &'a [u8], seal_offset: usize, seal: &'a Seal) -> Self {
        debug_assert!(seal_offset <= bytes.len());
        Self {
            bytes,
            seal_offset,
            seal,
        }
    }

    /// Every line of the batch (events, then the seal), newline-terminated:
    /// what a log file appends.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The event lines only, newline-terminated.
    pub fn event_lines(&self) -> &'a [u8] {
        &self.bytes[..self.seal_offset]
    }

    /// The seal line, newline-terminated.
    pub fn seal_line(&self) -> &'a [u8] {
        &self.bytes[self.seal_offset..]
    }

    /// The seal's content.
    pub fn seal(&self) -> &'a Seal {
        self.seal
    }

    /// Number of events in the batch.
    pub fn events(&self) -> u64 {
        self.seal.count
    }

    /// The lines of the batch without their newlines, events first.
    pub fn lines(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        bytes
            .strip_suffix(b"\n")
            .unwrap_or(bytes)
            .split(|&b| b == b'\n')
            .filter(move |_| !bytes.is_empty())
    }
}

/// A destination for sealed batches.
///
/// Sinks are synchronous and run on the signer thread: a slow sink slows
/// sealing (the ring absorbs bursts; its full policy decides beyond that),
/// and never the recording threads. Errors are counted, reported through
/// `tracing`, and signed into the next seal's `sink_errors`; a panicking
/// sink is caught and treated as failed.
///
/// # Examples
///
/// A sink that counts bytes:
///
/// ```
/// use auditring::sink::{Batch, Sink};
///
/// #[derive(Default)]
/// struct Counting(u64);
///
/// impl Sink for Counting {
///     fn write_batch(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
///         self.0 += batch.bytes().len() as u64;
///         Ok(())
///     }
/// }
/// ```
pub trait Sink: Send {
    /// Writes one sealed batch.
    ///
    /// # Errors
    ///
    /// Any I/O error; the batch counts as not written by this sink.
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()>;

    /// Pushes buffered data to the destination (called at shutdown).
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// A short name for diagnostics.
    fn name(&self) -> &str {
        "sink"
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        (**self).write_batch(batch)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}
