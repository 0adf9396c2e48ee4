//! Where sealed batches go: synchronous sinks.
//!
//! A sink receives each sealed batch as bytes: the batch's event lines
//! followed by its seal line, each ending in `\n`, exactly as they must
//! appear in the log. A sink never re-encodes them: the seal covers those
//! exact bytes. Sinks run on the runtime's writer thread, one batch at a
//! time, in seal order; they never run on a recording thread.
//!
//! | sink | writes to |
//! |---|---|
//! | [`FileSink`] | an append-only JSON-lines file, with rotation and an fsync policy |
//! | [`WriterSink`] | any `std::io::Write` (a socket, a pipe, a test double) |
//! | [`StdoutSink`] | standard output |
//! | [`TracingSink`] | one `tracing` event per audit event (target `auditring::audit`) |
//! | [`MemorySink`] | memory, for tests and inspection |
//! | [`Fanout`] | several sinks as one |
//!
//! What happens when a sink fails is the [`SinkPolicy`] it was added with.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::format::keys::{KeyId, PublicKey};
use crate::format::seal::ChainHead;
use crate::format::seal::{Orphans, Seal, SealReason};

mod fanout;
mod file;
mod memory;
mod stdout;
#[cfg(feature = "tracing-sink")]
mod tracing_sink;
mod writer_sink;

pub use fanout::Fanout;
pub use file::{FileSink, FileSinkBuilder, FsyncPolicy};
pub use memory::MemorySink;
pub use stdout::StdoutSink;
#[cfg(feature = "tracing-sink")]
pub use tracing_sink::TracingSink;
pub use writer_sink::WriterSink;

/// What the runtime does when a sink fails to write a batch.
///
/// # Examples
///
/// ```
/// use auditring::sink::SinkPolicy;
/// assert_eq!(SinkPolicy::default(), SinkPolicy::Required);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkPolicy {
    /// Fail closed: while the sink cannot write, the runtime refuses new
    /// events ([`RecordError::Unavailable`](crate::RecordError::Unavailable))
    /// and retries the failed batch with backoff (1 ms doubling to 1 s);
    /// accepted events are kept, and recording resumes when the sink
    /// recovers. The default: an audit log that silently loses events is
    /// not an audit log.
    #[default]
    Required,
    /// Availability first: count the failure, report it through `tracing`,
    /// sign the count into the next seal, and go on. The batch is lost for
    /// this sink only.
    BestEffort,
}

/// What a sink was doing when it failed.
///
/// # Examples
///
/// ```
/// use auditring::sink::SinkOperation;
/// assert_eq!(SinkOperation::Flush.to_string(), "flush");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkOperation {
    /// [`Sink::write_batch`].
    Write,
    /// [`Sink::flush`] (for a file: the sync).
    Flush,
}

impl std::fmt::Display for SinkOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SinkOperation::Write => "write",
            SinkOperation::Flush => "flush",
        })
    }
}

/// The last failure of a sink: which sink, what it was doing, the kind of
/// I/O error and its message. Kept by the runtime so that a failed
/// shutdown or flush can say what went wrong (see
/// [`Runtime::last_sink_error`](crate::Runtime::last_sink_error)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use auditring::sink::{FileSink, SinkOperation, SinkPolicy, MemorySink};
/// use auditring::{AuditPayload, Runtime, SigningKey};
///
/// # #[cfg(target_os = "linux")] {
/// // /dev/full fails every write with ENOSPC.
/// let runtime = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(MemorySink::new())
///     .sink_with(FileSink::open("/dev/full")?, SinkPolicy::BestEffort)
///     .build()?;
/// while runtime.stats().sink_errors == 0 {
///     std::thread::yield_now(); // the opening seal is being written
/// }
/// let failure = runtime.last_sink_error().expect("the sink failed");
/// assert_eq!((failure.sink.as_str(), failure.operation), ("file", SinkOperation::Write));
/// assert_eq!(failure.kind, std::io::ErrorKind::StorageFull);
/// assert!(failure.to_string().starts_with("sink 'file' write failed: No space left on device"));
/// # runtime.shutdown()?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkFailure {
    /// The sink's [name](Sink::name).
    pub sink: String,
    /// What the sink was doing.
    pub operation: SinkOperation,
    /// The kind of the I/O error (`Other` for a sink that panicked).
    pub kind: io::ErrorKind,
    /// The error's message.
    pub message: String,
}

impl SinkFailure {
    /// The failure of sink `sink` with `error`.
    pub(crate) fn new(sink: &str, operation: SinkOperation, error: &io::Error) -> Self {
        Self {
            sink: sink.to_owned(),
            operation,
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    /// A sink that panicked, with the panic's message when it has one.
    pub(crate) fn panicked(
        sink: &str,
        operation: SinkOperation,
        payload: &(dyn std::any::Any + Send),
    ) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        Self {
            sink: sink.to_owned(),
            operation,
            kind: io::ErrorKind::Other,
            message: match what {
                Some(what) => format!("the sink panicked: {what}"),
                None => "the sink panicked".to_owned(),
            },
        }
    }
}

impl std::fmt::Display for SinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sink '{}' {} failed: {} ({:?})",
            self.sink, self.operation, self.message, self.kind
        )
    }
}

impl std::error::Error for SinkFailure {}

/// Where an existing log left off: what a sink found at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogTail {
    /// Where the next run continues the chain.
    pub chain: ChainHead,
    /// The key that signed the last seal.
    pub key_id: KeyId,
    /// The reason of the last seal.
    pub last_reason: SealReason,
}

impl LogTail {
    /// The tail described by a log's last seal and what follows it (only
    /// meaningful when that seal is not a `close`).
    pub fn from_seal(seal: &Seal, orphans: Orphans) -> Self {
        let closed = seal.reason == SealReason::Close;
        Self {
            chain: ChainHead {
                prev: seal.hash(),
                next_seq: seal.seq_start.saturating_add(seal.count),
                previous_closed: closed,
                orphans: if closed { Orphans::NONE } else { orphans },
            },
            key_id: seal.key_id,
            last_reason: seal.reason,
        }
    }
}

/// How a sink that rotates files asks the signer for a rotation (see
/// [`Sink::attach`]). The signer then seals the open batch with a `rotate`
/// seal (the last line of the old file) and opens the next file with an
/// `open` seal of the same stream.
///
/// Two ways: [`request`](Self::request) a rotation at the next seal (for
/// age), or [`limit_size`](Self::limit_size) so that the signer itself
/// rotates before a batch would take the file past a size: a file then
/// never exceeds the limit by more than one batch.
///
/// # Examples
///
/// ```
/// use auditring::sink::RotationSignal;
/// let signal = RotationSignal::default();
/// signal.request();
/// assert!(signal.take());
/// assert!(!signal.take());
/// signal.limit_size(1 << 20, 4096);
/// assert_eq!(signal.size_limit(), Some((1 << 20, 4096)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct RotationSignal(Arc<RotationState>);

#[derive(Debug, Default)]
struct RotationState {
    requested: AtomicBool,
    /// The smallest size limit of the attached sinks; 0 for none.
    limit: AtomicU64,
    /// The largest current file length of those sinks.
    current: AtomicU64,
}

impl RotationSignal {
    /// Asks for a rotation at the next seal.
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::Release);
    }

    /// Whether a rotation was asked for; clears the request.
    pub fn take(&self) -> bool {
        self.0.requested.swap(false, Ordering::AcqRel)
    }

    /// Rotate before a file of `current` bytes would grow past `limit`
    /// bytes (with several sinks, the smallest limit applies). Set when the
    /// runtime is built, before it starts.
    pub fn limit_size(&self, limit: u64, current: u64) {
        let limit = limit.max(1);
        let _ = self
            .0
            .limit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(if old == 0 { limit } else { old.min(limit) })
            });
        self.0.current.fetch_max(current, Ordering::AcqRel);
    }

    /// The size limit and the current file length, if a sink set one.
    pub fn size_limit(&self) -> Option<(u64, u64)> {
        let limit = self.0.limit.load(Ordering::Acquire);
        (limit > 0).then(|| (limit, self.0.current.load(Ordering::Acquire)))
    }
}

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
/// Sinks are synchronous and run on the runtime's writer thread: a slow
/// sink slows sealing (the ring absorbs bursts; its full policy decides
/// beyond that), and never the recording threads. Errors are counted,
/// reported through `tracing`, signed into the next seal's `sink_errors`,
/// and handled by the sink's [`SinkPolicy`]; a panicking sink is caught and
/// treated as failed.
///
/// A sink that may be retried (policy `Required`) must leave its
/// destination as it was when `write_batch` fails, so that the retry does
/// not duplicate bytes: [`FileSink`] truncates back to its last complete
/// batch.
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

    /// Pushes buffered data to the destination and, for a durable
    /// destination, onto stable storage (a file syncs). Called at shutdown
    /// and by [`Runtime::flush`](crate::Runtime::flush).
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

    /// Where an existing log at this destination left off, read when the
    /// runtime is built, so the new run continues its chain. `None` for a
    /// new or non-persistent destination. `signer` is the runtime's public
    /// key: a sink continues only a log whose last seal it can verify (by
    /// this key, or one it was told to trust), and repairs nothing before.
    ///
    /// # Errors
    ///
    /// An existing log whose end cannot be read as an auditring log, or
    /// whose last seal does not verify.
    fn resume(&mut self, signer: &PublicKey) -> io::Result<Option<LogTail>> {
        let _ = signer;
        Ok(None)
    }

    /// Called once when the runtime is built, with the flag a sink that
    /// rotates files raises to ask for a rotation. Sinks that do not rotate
    /// ignore it.
    fn attach(&mut self, rotation: &RotationSignal) {
        let _ = rotation;
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

    fn resume(&mut self, signer: &PublicKey) -> io::Result<Option<LogTail>> {
        (**self).resume(signer)
    }

    fn attach(&mut self, rotation: &RotationSignal) {
        (**self).attach(rotation);
    }
}
