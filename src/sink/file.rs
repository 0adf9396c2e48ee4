//! An append-only JSON-lines file with rotation, an fsync policy and
//! recovery of an existing log's chain.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Batch, LogTail, RotationSignal, Sink};
use crate::logfile::{
    SCAN_LIMIT, complete_length, last_seal, orphans_after, rotated_files, rotated_path,
};
use crate::seal::{Orphans, SealReason};

/// When a [`FileSink`] asks the operating system to put written data on
/// stable storage (`fdatasync`).
///
/// What survives what:
///
/// | policy | process crash (kill -9, panic) | power loss or kernel crash |
/// |---|---|---|
/// | `Never` | every written batch | what the kernel flushed on its own (typically up to ~30 s lost) |
/// | `EveryBatch` | every written batch | every batch whose write returned |
/// | `Interval(d)` | every written batch | all but at most the last `d` of batches |
///
/// A batch is written as one `write` of its event lines and seal line;
/// `EveryBatch` syncs before the runtime counts it as written.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use auditring::sink::FsyncPolicy;
/// assert_eq!(FsyncPolicy::default(), FsyncPolicy::Interval(Duration::from_secs(1)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Never sync explicitly (the kernel writes back on its own schedule);
    /// rotation and shutdown still sync.
    Never,
    /// Sync after every batch.
    EveryBatch,
    /// Sync after a batch when the last sync is older than this.
    Interval(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

/// Configures a [`FileSink`].
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`fsync`](FileSinkBuilder::fsync) | `Interval(1 s)` | durability (see [`FsyncPolicy`]) |
/// | [`rotate_bytes`](FileSinkBuilder::rotate_bytes) | none | rotate once the file reaches this size |
/// | [`rotate_age`](FileSinkBuilder::rotate_age) | none | rotate once the file is this old (checked at each write) |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use auditring::sink::{FileSink, FsyncPolicy};
///
/// # let dir = std::env::temp_dir().join(format!("auditring-doc-fb-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let sink = FileSink::builder(dir.join("audit.jsonl"))
///     .fsync(FsyncPolicy::EveryBatch)
///     .rotate_bytes(256 << 20)
///     .rotate_age(Duration::from_secs(24 * 3600))
///     .open()?;
/// # drop(sink);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct FileSinkBuilder {
    path: PathBuf,
    fsync: FsyncPolicy,
    rotate_bytes: Option<u64>,
    rotate_age: Option<Duration>,
}

impl FileSinkBuilder {
    /// The fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Rotates the file once it holds at least this many bytes.
    pub fn rotate_bytes(mut self, bytes: u64) -> Self {
        self.rotate_bytes = Some(bytes);
        self
    }

    /// Rotates the file once it is at least this old (checked at each
    /// write: an idle log is not rotated until its next batch).
    pub fn rotate_age(mut self, age: Duration) -> Self {
        self.rotate_age = Some(age);
        self
    }

    /// Opens (or creates, with mode 0600) the log, and reads where an
    /// existing log left off so the runtime continues its chain. A last
    /// line torn by a crash (no newline) is cut off: it was never sealed
    /// and cannot be read.
    ///
    /// # Errors
    ///
    /// The file cannot be opened (the message names the path and what to
    /// check), or it exists but does not end like an auditring log.
    pub fn open(self) -> io::Result<FileSink> {
        let file = open_append(&self.path)?;
        let next_rotation = next_rotation_number(&self.path)?;
        let mut sink = FileSink {
            len: 0,
            file,
            opened_at: Instant::now(),
            last_sync: Instant::now(),
            fsync: self.fsync,
            rotate_bytes: self.rotate_bytes,
            rotate_age: self.rotate_age,
            rotation: None,
            next_rotation,
            tail: None,
            path: self.path,
        };
        sink.len = sink.file.metadata()?.len();
        sink.tail = sink.recover()?;
        Ok(sink)
    }
}

/// Appends every batch to a JSON-lines file with one `write` per batch.
///
/// - New files are created with mode 0600: the log may hold personal data.
/// - Durability follows the [`FsyncPolicy`].
/// - Rotation (by size and by age) renames the full file to
///   `<path>.<n>` (n = 1, 2, ...; oldest first) and starts a new `<path>`.
///   The old file ends with a `rotate` seal and the new one starts with an
///   `open` seal of the same stream, so the chain runs across files: verify
///   them oldest first, `<path>.1 <path>.2 ... <path>`.
/// - On open, the last seal of an existing log (or of its newest rotated
///   file) gives the runtime the chain head to continue from.
/// - A failed write is undone (the file is truncated back to its last
///   complete batch), so a retry never duplicates bytes.
///
/// # Examples
///
/// ```
/// use auditring::sink::FileSink;
///
/// let dir = std::env::temp_dir().join(format!("auditring-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let sink = FileSink::open(dir.join("audit.jsonl"))?;
/// assert!(sink.path().ends_with("audit.jsonl"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    /// Bytes of complete batches in the current file.
    len: u64,
    opened_at: Instant,
    last_sync: Instant,
    fsync: FsyncPolicy,
    rotate_bytes: Option<u64>,
    rotate_age: Option<Duration>,
    rotation: Option<RotationSignal>,
    /// Suffix of the next rotated file.
    next_rotation: u64,
    tail: Option<LogTail>,
}

impl FileSink {
    /// Opens `path` with the defaults of [`FileSinkBuilder`].
    ///
    /// # Errors
    ///
    /// As [`FileSinkBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::builder(path).open()
    }

    /// A builder for a sink writing to `path`.
    pub fn builder(path: impl AsRef<Path>) -> FileSinkBuilder {
        FileSinkBuilder {
            path: path.as_ref().to_owned(),
            fsync: FsyncPolicy::default(),
            rotate_bytes: None,
            rotate_age: None,
        }
    }

    /// The active file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rotated files of this log, oldest first (not including the
    /// active file).
    ///
    /// # Errors
    ///
    /// The directory cannot be listed.
    pub fn rotated_files(&self) -> io::Result<Vec<PathBuf>> {
        Ok(rotated_files(&self.path)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Reads where the existing log ends: its last seal, and what follows
    /// it (orphaned lines of a run that crashed, committed to by the next
    /// run's `recovered` seal). A torn last line is cut off: it was never
    /// sealed and cannot be read; its length is committed to as well.
    fn recover(&mut self) -> io::Result<Option<LogTail>> {
        let damaged = |path: &Path, e: io::Error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {e}: verify the log (auditring verify) and move it aside",
                    path.display()
                ),
            )
        };
        if self.len == 0 {
            // A rotation may have been interrupted after the rename: the
            // newest rotated file holds the end of the chain.
            let Some((_, newest)) = rotated_files(&self.path)?.pop() else {
                return Ok(None);
            };
            let mut file = File::open(&newest)?;
            let len = file.metadata()?.len();
            let complete = complete_length(&mut file, len)?;
            return match last_seal(&mut file, complete).map_err(|e| damaged(&newest, e))? {
                Some((seal, _)) => Ok(Some(LogTail::from_seal(&seal, Orphans::NONE))),
                None => Ok(None),
            };
        }
        let complete = complete_length(&mut self.file, self.len)?;
        let Some((seal, after)) =
            last_seal(&mut self.file, complete).map_err(|e| damaged(&self.path, e))?
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not an auditring log (no seal in its last {} MiB): move it aside or choose another path",
                    self.path.display(),
                    SCAN_LIMIT >> 20
                ),
            ));
        };
        let orphans = orphans_after(&mut self.file, after, self.len)?;
        if complete < self.len {
            tracing::warn!(
                target: "auditring",
                path = %self.path.display(),
                torn_bytes = self.len - complete,
                "cutting off a torn last line (a write interrupted by a crash); it was never sealed, and the recovered seal records its length"
            );
            self.file.set_len(complete)?;
            self.len = complete;
        }
        Ok(Some(LogTail::from_seal(&seal, orphans)))
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Renames the full file to `<path>.<n>` and starts a new one. A
    /// failure leaves the log in the current file (the chain stays valid:
    /// the open seal that follows the rotate seal lands in the same file).
    fn rotate(&mut self) {
        let rotated = rotated_path(&self.path, self.next_rotation);
        let result = self
            .file
            .sync_all()
            .and_then(|()| std::fs::rename(&self.path, &rotated))
            .and_then(|()| open_append(&self.path))
            .and_then(|file| {
                self.file = file;
                sync_dir(&self.path)
            });
        match result {
            Ok(()) => {
                self.next_rotation += 1;
                self.len = 0;
                self.opened_at = Instant::now();
                self.last_sync = Instant::now();
            }
            Err(e) => tracing::error!(
                target: "auditring",
                path = %self.path.display(),
                error = %e,
                "audit log rotation failed; the log continues in the current file"
            ),
        }
    }

    fn wants_rotation(&self) -> bool {
        self.rotate_bytes.is_some_and(|max| self.len >= max)
            || self
                .rotate_age
                .is_some_and(|max| self.opened_at.elapsed() >= max)
    }
}

impl Sink for FileSink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        let before = self.len;
        let written = self
            .file
            .write_all(batch.bytes())
            .and_then(|()| match self.fsync {
                FsyncPolicy::EveryBatch => self.sync(),
                FsyncPolicy::Interval(d) if self.last_sync.elapsed() >= d => self.sync(),
                _ => Ok(()),
            });
        if let Err(e) = written {
            // Undo a partial write so that a retry starts from a clean end.
            let _ = self.file.set_len(before);
            return Err(e);
        }
        self.len += batch.bytes().len() as u64;
        if batch.seal().reason == SealReason::Rotate {
            self.rotate();
        } else if self.wants_rotation() {
            if let Some(signal) = &self.rotation {
                signal.request();
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn name(&self) -> &str {
        "file"
    }

    fn resume(&mut self) -> io::Result<Option<LogTail>> {
        Ok(self.tail.take())
    }

    fn attach(&mut self, rotation: &RotationSignal) {
        if self.rotate_bytes.is_some() || self.rotate_age.is_some() {
            self.rotation = Some(rotation.clone());
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot open audit log {} for appending: {e} (check that the directory exists and is writable)",
                path.display()
            ),
        )
    })
}

fn next_rotation_number(path: &Path) -> io::Result<u64> {
    Ok(rotated_files(path)?.last().map_or(1, |(n, _)| n + 1))
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}
