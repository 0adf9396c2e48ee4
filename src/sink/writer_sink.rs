//! A sink over any `std::io::Write`.

use std::io::{self, Write};

use super::{Batch, Sink};

/// Writes every batch to a `std::io::Write` (a socket, a pipe, a buffer, a
/// test double) with one `write_all`, and flushes it after each batch.
///
/// # Examples
///
/// ```
/// use auditring::sink::WriterSink;
///
/// let sink = WriterSink::new("pipe", Vec::<u8>::new());
/// assert!(sink.get_ref().is_empty());
/// ```
#[derive(Debug)]
pub struct WriterSink<W> {
    name: String,
    writer: W,
}

impl<W: Write + Send> WriterSink<W> {
    /// A sink named `name` (for diagnostics) over `writer`.
    pub fn new(name: impl Into<String>, writer: W) -> Self {
        Self {
            name: name.into(),
            writer,
        }
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.writer
    }

    /// The writer, mutably.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.writer
    }
}

impl<W: Write + Send> Sink for WriterSink<W> {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        self.writer.write_all(batch.bytes())?;
        self.writer.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn name(&self) -> &str {
        &self.name
    }
}
