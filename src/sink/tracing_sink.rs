//! One `tracing` event per audit event.

use std::io;

use super::{Batch, Sink};

/// Emits one `tracing` event per audit event and per seal, at level INFO
/// with target `auditring::audit`, so an existing tracing pipeline sees
/// the audit trail with no extra setup.
///
/// Event fields: `kind = "event"`, `stream` (the batch's, from its seal),
/// `seq`, `id`, `ts` (nanoseconds since the Unix epoch), and `payload` (the
/// payload's JSON, as written in the log). Seal fields:
/// `kind = "seal"`, `stream`, `seal`, `reason`, `seq_start`, `count`,
/// `dropped`, `sink_errors`, `key_id`.
///
/// The signed log is the record of truth: a tracing subscriber may format,
/// filter or sample what it receives.
///
/// # Examples
///
/// ```
/// use auditring::sink::TracingSink;
/// let _sink = TracingSink::new();
/// ```
#[derive(Debug, Default)]
pub struct TracingSink {
    _private: (),
}

impl TracingSink {
    /// A sink emitting `tracing` events.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for TracingSink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        let seal = batch.seal();
        for line in batch
            .event_lines()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let Ok(crate::format::line::Line::Event(e)) = crate::format::line::read(line) else {
                return Err(io::Error::other(
                    "an event line of the batch cannot be read",
                ));
            };
            tracing::info!(
                target: "auditring::audit",
                kind = "event",
                stream = %seal.stream,
                seq = e.seq,
                id = %e.id,
                ts = e.ts,
                payload = e.payload,
            );
        }
        tracing::info!(
            target: "auditring::audit",
            kind = "seal",
            stream = %seal.stream,
            seal = seal.index,
            reason = seal.reason.as_str(),
            seq_start = seal.seq_start,
            count = seal.count,
            dropped = seal.dropped,
            sink_errors = seal.sink_errors,
            key_id = %seal.key_id,
        );
        Ok(())
    }

    fn name(&self) -> &str {
        "tracing"
    }
}
