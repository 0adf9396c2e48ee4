//! An append-only JSON-lines file with rotation, an fsync policy, one
//! writer per log, and a careful continuation of an existing log: nothing
//! is changed before the file is known to be a log signed by a trusted key.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Batch, LogTail, RotationSignal, Sink};
use crate::format::keys::PublicKey;
use crate::format::logfile::{
    FoundSeal, SCAN_LIMIT, complete_length, last_seal, orphans_after, rotated_files, rotated_path,
};
use crate::format::seal::{Orphans, SealReason};

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
/// | [`rotate_bytes`](FileSinkBuilder::rotate_bytes) | none | rotate before a batch would take the file past this size (a file exceeds it by at most one batch) |
/// | [`rotate_age`](FileSinkBuilder::rotate_age) | none | rotate once the file is this old (checked at each write) |
/// | [`trust_key`](FileSinkBuilder::trust_key) | the runtime's key only | other keys whose seals an existing log may end with (key rotation) |
/// | [`follow_symlinks`](FileSinkBuilder::follow_symlinks) | `false` | open a path that is a symbolic link |
/// | [`refuse_loose_permissions`](FileSinkBuilder::refuse_loose_permissions) | `false` (warn) | refuse a log readable or writable by group or others |
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
    trusted: Vec<PublicKey>,
    follow_symlinks: bool,
    refuse_loose_permissions: bool,
}

impl FileSinkBuilder {
    /// The fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Rotates the file before a batch would take it past this many bytes:
    /// the signer ends the file with that batch, so a file exceeds the
    /// limit by at most one batch (also when a restart continues a file).
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

    /// Also continues an existing log whose last seal is signed by this
    /// key (after a key rotation). By default only a log signed by the
    /// runtime's own key is continued.
    pub fn trust_key(mut self, key: PublicKey) -> Self {
        self.trusted.push(key);
        self
    }

    /// Opens the path even if it is a symbolic link. By default a link is
    /// refused: it could point at a file the log's writer does not own.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Refuses to open a log that group or others may read or write,
    /// instead of warning (through `tracing`).
    pub fn refuse_loose_permissions(mut self, refuse: bool) -> Self {
        self.refuse_loose_permissions = refuse;
        self
    }

    /// Opens (or creates, with mode 0600) the log, takes its writer lock,
    /// and reads where an existing log ends. Nothing in the file changes
    /// here: a torn last line is cut off only when the runtime continues
    /// the log ([`Sink::resume`]) and the last seal verified.
    ///
    /// # Errors
    ///
    /// The path is a symbolic link (unless allowed) or not a regular file;
    /// the file cannot be opened (the message names the path and what to
    /// check); another writer holds the log (with its pid where the system
    /// tells); the file is not empty and not an auditring log; its
    /// permissions are loose and [`refuse_loose_permissions`] is set.
    ///
    /// [`refuse_loose_permissions`]: Self::refuse_loose_permissions
    pub fn open(self) -> io::Result<FileSink> {
        let file = open_log(&self.path, self.follow_symlinks)?;
        lock_exclusive(&file, &self.path)?;
        check_permissions(&file, &self.path, self.refuse_loose_permissions)?;
        let len = file.metadata()?.len();
        let mut sink = FileSink {
            identity: identity(&file.metadata()?),
            file,
            len,
            opened_at: Instant::now(),
            last_sync: Instant::now(),
            fsync: self.fsync,
            rotate_bytes: self.rotate_bytes,
            rotate_age: self.rotate_age,
            rotation: None,
            next_rotation: next_rotation_number(&self.path)?,
            found: None,
            trusted: self.trusted,
            follow_symlinks: self.follow_symlinks,
            path: self.path,
        };
        sink.found = sink.find_end()?;
        Ok(sink)
    }
}

/// Where an existing log ends, as read at open.
#[derive(Debug)]
struct Found {
    last: FoundSeal,
    /// The file the seal is in, when it is not the active file (an
    /// interrupted rotation).
    in_rotated: Option<PathBuf>,
    /// Bytes of the active file up to its last newline.
    complete: u64,
}

/// Appends every batch to a JSON-lines file with one `write` per batch.
///
/// - One writer per log: the active file is locked (`flock`, exclusive)
///   for the sink's life; a second writer is refused, naming the holder.
/// - A path that is a symbolic link is refused (unless allowed); a new file
///   is created with mode 0600 (the log may hold personal data), and a log
///   readable by group or others is reported.
/// - An existing log is continued only from a last seal that verifies
///   under the runtime's key (or a trusted one); a file that is not a log
///   is never changed.
/// - Before each batch the open file is checked against the path: a log
///   deleted, replaced or truncated under the writer is a sink error.
/// - Durability follows the [`FsyncPolicy`].
/// - Rotation (by size and by age) renames the full file to
///   `<path>.<n>` (n = 1, 2, ...; oldest first) and starts a new `<path>`.
///   The old file ends with a `rotate` seal and the new one starts with an
///   `open` seal of the same stream, so the chain runs across files:
///   `auditring verify <path>` finds and orders them.
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
/// // One writer per log.
/// assert!(FileSink::open(dir.join("audit.jsonl")).is_err());
/// # drop(sink);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    /// Device and inode of the open file.
    identity: (u64, u64),
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
    found: Option<Found>,
    trusted: Vec<PublicKey>,
    follow_symlinks: bool,
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
            trusted: Vec::new(),
            follow_symlinks: false,
            refuse_loose_permissions: false,
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

    /// Reads where the existing log ends, changing nothing.
    fn find_end(&mut self) -> io::Result<Option<Found>> {
        let in_file = |path: &Path, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: {e}; the file was not changed: verify it (auditring verify) and move it aside, or choose another path",
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
            return Ok(last_seal(&mut file, complete)
                .map_err(|e| in_file(&newest, e))?
                .map(|last| Found {
                    last,
                    in_rotated: Some(newest),
                    complete: 0,
                }));
        }
        let complete = complete_length(&mut self.file, self.len)?;
        match last_seal(&mut self.file, complete).map_err(|e| in_file(&self.path, e))? {
            Some(last) => Ok(Some(Found {
                last,
                in_rotated: None,
                complete,
            })),
            None if let Some(v) = earlier_version(&mut self.file)? => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is a log of format version {v}, written by an earlier auditring: this version writes format {} and does not continue it; the file was not changed: move it aside (verify it with the earlier version) and start a new log",
                    self.path.display(),
                    crate::format::seal::FORMAT_VERSION,
                ),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not an auditring log (no seal in its last {} MiB); the file was not changed: move it aside or choose another path",
                    self.path.display(),
                    SCAN_LIMIT >> 20
                ),
            )),
        }
    }

    /// Checks the last seal found at open against the keys this log may
    /// be continued with, then (and only then) cuts a torn last line.
    fn continue_log(&mut self, signer: &PublicKey) -> io::Result<Option<LogTail>> {
        let Some(found) = self.found.take() else {
            return Ok(None);
        };
        let seal = &found.last.seal;
        let file = found.in_rotated.as_deref().unwrap_or(&self.path);
        let refuse = |why: String| {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}; the file was not changed", file.display()),
            ))
        };
        let key = std::iter::once(signer)
            .chain(&self.trusted)
            .find(|k| k.key_id() == seal.key_id);
        let Some(key) = key else {
            return refuse(format!(
                "its last seal is signed by key {}, not by this runtime's key {}: continue it with the same key, trust the old key (FileSinkBuilder::trust_key) after a key rotation, or choose another path",
                seal.key_id,
                signer.key_id()
            ));
        };
        if !key.verify(&seal.preimage(), &found.last.signature) {
            return refuse(format!(
                "its last seal (#{} of stream {}) does not verify under key {}: it is forged or damaged; verify the log (auditring verify) and move it aside",
                seal.index, seal.stream, seal.key_id
            ));
        }
        if seal
            .seq_start
            .checked_add(seal.count)
            .is_none_or(|next| next > u64::MAX / 2)
        {
            return refuse(format!(
                "its last seal claims seq numbers up to {} {}, beyond what a log reaches: verify the log and move it aside",
                seal.seq_start, seal.count
            ));
        }
        let orphans = if found.in_rotated.is_some() {
            Orphans::NONE
        } else {
            let orphans = orphans_after(&mut self.file, found.last.end, self.len)?;
            if found.complete < self.len {
                tracing::warn!(
                    target: "auditring",
                    path = %self.path.display(),
                    torn_bytes = self.len - found.complete,
                    "cutting off a torn last line (a write interrupted by a crash); it was never sealed, and the recovered seal records its length"
                );
                self.file.set_len(found.complete)?;
                self.len = found.complete;
            }
            orphans
        };
        if let (Some(limit), Some(signal)) = (self.rotate_bytes, &self.rotation) {
            signal.limit_size(limit, self.len);
        }
        Ok(Some(LogTail::from_seal(seal, orphans)))
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The open file is still the log at the path, as this writer left it.
    fn check_unchanged(&self) -> io::Result<()> {
        let changed = |why: String| {
            Err(io::Error::other(format!(
                "audit log {} {why}: the log must have one writer and no other hands; restore it, then restart the runtime",
                self.path.display()
            )))
        };
        let open = self.file.metadata()?;
        if link_count(&open) == 0 {
            return changed("was deleted while in use".into());
        }
        let at_path = if self.follow_symlinks {
            std::fs::metadata(&self.path)
        } else {
            std::fs::symlink_metadata(&self.path)
        };
        match at_path {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return changed("was removed or renamed while in use".into());
            }
            Err(e) => return Err(e),
            Ok(at_path) if identity(&at_path) != self.identity => {
                return changed("was replaced by another file while in use".into());
            }
            Ok(_) => {}
        }
        if open.is_file() && open.len() != self.len {
            return changed(format!(
                "is {} bytes, but this writer wrote {}: it was truncated or written by another process",
                open.len(),
                self.len
            ));
        }
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
            .and_then(|()| open_log(&self.path, self.follow_symlinks))
            .and_then(|file| {
                lock_exclusive(&file, &self.path)?;
                self.identity = identity(&file.metadata()?);
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
        self.rotate_age
            .is_some_and(|max| self.opened_at.elapsed() >= max)
    }
}

impl Sink for FileSink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        self.check_unchanged()?;
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
        } else if self.wants_rotation()
            && let Some(signal) = &self.rotation
        {
            signal.request();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn name(&self) -> &str {
        "file"
    }

    fn resume(&mut self, signer: &PublicKey) -> io::Result<Option<LogTail>> {
        self.continue_log(signer)
    }

    fn attach(&mut self, rotation: &RotationSignal) {
        if self.rotate_bytes.is_some() || self.rotate_age.is_some() {
            self.rotation = Some(rotation.clone());
        }
        if let Some(limit) = self.rotate_bytes {
            rotation.limit_size(limit, self.len);
        }
    }
}

/// Opens the log for appending (creating it with mode 0600), refusing a
/// symbolic link unless allowed, and anything but a regular file.
fn open_log(path: &Path, follow_symlinks: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        if !follow_symlinks {
            options.custom_flags(libc::O_NOFOLLOW);
        }
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "audit log {} is a symbolic link: a log is never opened through a link (it could point at a file the writer does not own); give the real path, or allow links with FileSinkBuilder::follow_symlinks",
                    path.display()
                ),
            );
        }
        io::Error::new(
            e.kind(),
            format!(
                "cannot open audit log {} for appending: {e} (check that the directory exists and is writable)",
                path.display()
            ),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = file.metadata()?.file_type();
        if kind.is_fifo() || kind.is_socket() || kind.is_block_device() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "audit log {} is not a regular file (a pipe, socket or block device): give the path of a file",
                    path.display()
                ),
            ));
        }
    }
    Ok(file)
}

/// Takes the log's writer lock (an exclusive `flock`), or says who holds
/// it. Only regular files are locked (a device such as `/dev/full` is no
/// log to share).
fn lock_exclusive(file: &File, path: &Path) -> io::Result<()> {
    if !file.metadata()?.is_file() {
        return Ok(());
    }
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = lock_holder(file)
                .map(|pid| format!(" (by pid {pid})"))
                .unwrap_or_default();
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "audit log {} is in use by another writer{holder}: a log has one writer; stop the other one, or give this one another path",
                    path.display()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io::Error::new(
            e.kind(),
            format!("cannot lock audit log {}: {e}", path.display()),
        )),
    }
}

/// The pid holding a `flock` on this file, from `/proc/locks` (Linux).
fn lock_holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let (_, inode) = identity(&meta);
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, id) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        let node: u64 = id.rsplit(':').next()?.parse().ok()?;
        (*kind == "FLOCK" && node == inode).then(|| pid.parse().ok())?
    })
}

/// Reports (or refuses) a log that group or others may read or write.
fn check_permissions(file: &File, path: &Path, refuse: bool) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let what = format!(
                "audit log {} has mode {mode:03o}: group or others may read or change it; chmod 600 it",
                path.display()
            );
            if refuse {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, what));
            }
            tracing::warn!(target: "auditring", path = %path.display(), mode = format!("{mode:03o}"), "{what}");
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path, refuse);
    Ok(())
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

fn link_count(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.nlink()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        1
    }
}

/// Whether the file starts with `prefix`.
/// The format version of the file's first line when an earlier auditring
/// wrote it.
fn earlier_version(file: &mut File) -> io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut head = [0u8; 8];
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(crate::format::event::earlier_version(&head[..n]))
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
