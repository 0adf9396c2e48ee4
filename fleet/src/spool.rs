//! The local log as the shipper's spool: complete, sealed batches read
//! from a [`FileSink`](auditring::sink::FileSink)'s files in chain order,
//! following rotation, made durable (`fdatasync`) before they are handed
//! out.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use auditring::format::seal::Seal;
use serde::{Deserialize, Serialize};

/// How much is read from a file at a time.
const READ_CHUNK: usize = 4 << 20;

/// A file's identity: device and inode, which a rename (rotation) keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where the spool stands: the file and the byte after the last batch
/// handed out, and that batch's seal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file.
    pub file: FileId,
    /// The byte after the batch's seal line.
    pub offset: u64,
    /// The stream (UUID) of the batch's seal, empty before any batch.
    pub stream: String,
    /// The index of the batch's seal.
    pub seal: u64,
}

/// One sealed batch: its event lines and its seal line, the exact bytes of
/// the log.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The lines, each with its `\n`; the last one is the seal line.
    pub bytes: Vec<u8>,
    /// The seal that closes the batch.
    pub seal: Seal,
    /// Where the spool stands after this batch.
    pub end: Position,
}

impl Batch {
    /// The seal's stream as a UUID string.
    pub fn stream(&self) -> String {
        self.seal.stream.to_string()
    }
}

/// The file being read.
struct Current {
    id: FileId,
    file: File,
    /// File offset of `data[0]`.
    data_offset: u64,
    /// Bytes read; `data[..head]` were handed out already.
    data: Vec<u8>,
    /// Start of what was not handed out yet.
    head: usize,
    /// `data[head..scanned]` holds only complete event lines.
    scanned: usize,
    /// Bytes of the file made durable so far.
    synced: u64,
}

/// Reads complete sealed batches from the files of one log, in order.
///
/// # Examples
///
/// ```
/// use auditring::sink::FileSink;
/// use auditring::{AuditPayload, Runtime, SigningKey};
/// use auditring_nats::Spool;
///
/// # let dir = std::env::temp_dir().join(format!("auditring-nats-spool-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("audit.jsonl");
/// let runtime = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(FileSink::open(&path)?)
///     .build()?;
/// runtime.shutdown()?;
/// let mut spool = Spool::new(&path);
/// let open = spool.next_batch()?.expect("the open seal");
/// assert_eq!(open.seal.index, 0);
/// let close = spool.next_batch()?.expect("the close seal");
/// assert_eq!(close.seal.index, 1);
/// assert!(spool.next_batch()?.is_none());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Spool {
    path: PathBuf,
    current: Option<Current>,
    /// Whether to `fdatasync` before handing out a batch.
    sync: bool,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("position", &self.position())
            .finish()
    }
}

impl Spool {
    /// A spool over the log whose active file is `path`, positioned at the
    /// start of its oldest file.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            current: None,
            sync: true,
        }
    }

    /// Whether batches are made durable (`fdatasync`) before they are
    /// handed out (default on: only what survives a crash of the gateway
    /// may be shipped).
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The active file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files of the log, in chain order, with their identities.
    ///
    /// # Errors
    ///
    /// The directory cannot be listed or a file cannot be read.
    pub fn files(&self) -> io::Result<Vec<(PathBuf, FileId, u64)>> {
        let mut out = Vec::new();
        for path in auditring::verify::log_files(&self.path)? {
            match std::fs::metadata(&path) {
                Ok(meta) => out.push((path, FileId::of(&meta), meta.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The byte after the last batch handed out (`None` before the first
    /// file is opened).
    pub fn position(&self) -> Option<(FileId, u64)> {
        self.current
            .as_ref()
            .map(|c| (c.id, c.data_offset + c.head as u64))
    }

    /// Bytes of the log after the current position (what is not shipped
    /// yet), and the bytes of the whole spool.
    ///
    /// # Errors
    ///
    /// As [`files`](Self::files).
    pub fn backlog(&self) -> io::Result<(u64, u64)> {
        let files = self.files()?;
        let total = files.iter().map(|f| f.2).sum();
        let Some((id, offset)) = self.position() else {
            return Ok((total, total));
        };
        let mut behind = 0;
        let mut after = false;
        for (_, fid, len) in &files {
            if after {
                behind += len;
            } else if *fid == id {
                behind += len.saturating_sub(offset);
                after = true;
            }
        }
        if !after {
            behind = total;
        }
        Ok((behind, total))
    }

    /// Moves to `offset` in the file `id` (from a saved cursor).
    ///
    /// # Errors
    ///
    /// `NotFound` when no file of the log has that identity any more.
    pub fn seek(&mut self, id: FileId, offset: u64) -> io::Result<()> {
        for (path, fid, _) in self.files()? {
            if fid == id {
                let file = File::open(&path)?;
                self.current = Some(Current {
                    id,
                    file,
                    data_offset: offset,
                    data: Vec::new(),
                    head: 0,
                    scanned: 0,
                    synced: 0,
                });
                return Ok(());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no file of the log has the cursor's identity",
        ))
    }

    /// Moves to the start of the oldest file.
    pub fn rewind(&mut self) {
        self.current = None;
    }

    /// Moves right after the seal `index` of `stream`, searching the files
    /// from the oldest; returns whether it was found (otherwise the
    /// position is unchanged).
    ///
    /// # Errors
    ///
    /// A file cannot be read.
    pub fn seek_after_seal(&mut self, stream: &str, index: u64) -> io::Result<bool> {
        let saved = self.current.take();
        let mut probe = Spool {
            path: self.path.clone(),
            current: None,
            sync: false,
        };
        while let Some(batch) = probe.next_batch()? {
            if batch.seal.index == index && batch.stream() == stream {
                self.seek(batch.end.file, batch.end.offset)?;
                return Ok(true);
            }
        }
        self.current = saved;
        Ok(false)
    }

    /// The next complete sealed batch, or `None` when the log holds no
    /// complete batch after the position yet.
    ///
    /// # Errors
    ///
    /// A file cannot be read or synced.
    pub fn next_batch(&mut self) -> io::Result<Option<Batch>> {
        loop {
            if self.current.is_none() && !self.open_next(None)? {
                return Ok(None);
            }
            let cur = self.current.as_mut().expect("opened");
            if let Some(batch) = take_batch(cur, self.sync)? {
                return Ok(Some(batch));
            }
            // No complete batch buffered: read more of the file.
            compact(cur);
            if read_more(cur)? > 0 {
                continue;
            }
            // At the end of the file: is it still the active one?
            let active = std::fs::metadata(&self.path).ok().map(|m| FileId::of(&m));
            if active == Some(cur.id) {
                return Ok(None);
            }
            // Rotated (or deleted): read it to its very end once more, then
            // move on to the file after it.
            if read_more(cur)? > 0 {
                continue;
            }
            if cur.data.len() > cur.head {
                tracing::warn!(
                    target: "auditring_nats",
                    bytes = cur.data.len() - cur.head,
                    "a rotated file ends with lines no seal covers; they are not shipped"
                );
            }
            let id = cur.id;
            if !self.open_next(Some(id))? {
                return Ok(None);
            }
        }
    }

    /// Opens the file after `after` in chain order (the oldest file when
    /// `None`); returns whether there was one.
    fn open_next(&mut self, after: Option<FileId>) -> io::Result<bool> {
        let files = self.files()?;
        let next = match after {
            None => files.first(),
            Some(id) => match files.iter().position(|f| f.1 == id) {
                Some(i) => files.get(i + 1),
                // Our file is gone (retention deleted it): continue with
                // the oldest file left that is not older... the active
                // chain order starts at the first remaining file.
                None => files.first(),
            },
        };
        let Some((path, id, _)) = next else {
            return Ok(false);
        };
        if Some(*id) == after {
            return Ok(false);
        }
        let file = File::open(path)?;
        self.current = Some(Current {
            id: *id,
            file,
            data_offset: 0,
            data: Vec::new(),
            head: 0,
            scanned: 0,
            synced: 0,
        });
        Ok(true)
    }
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Drops the bytes handed out from the front of the buffer (once per read,
/// not once per batch).
/// Appends up to [`READ_CHUNK`] more bytes of the current file to its
/// buffer; returns how many (0 at the end of the file).
fn read_more(cur: &mut Current) -> io::Result<usize> {
    let start = cur.data.len();
    cur.data.resize(start + READ_CHUNK, 0);
    let n = read_at(
        &cur.file,
        &mut cur.data[start..],
        cur.data_offset + start as u64,
    )?;
    cur.data.truncate(start + n);
    Ok(n)
}

fn compact(cur: &mut Current) {
    if cur.head > 0 {
        cur.data.drain(..cur.head);
        cur.data_offset += cur.head as u64;
        cur.scanned -= cur.head;
        cur.head = 0;
    }
}

/// Takes the first complete batch out of `cur.data`, if there is one.
fn take_batch(cur: &mut Current, sync: bool) -> io::Result<Option<Batch>> {
    let mut at = cur.scanned.max(cur.head);
    while let Some(nl) = memchr_nl(&cur.data[at..]) {
        let line = &cur.data[at..at + nl];
        let end = at + nl + 1;
        if auditring::format::line::starts_as_seal(line) {
            let seal = match Seal::parse_line(line) {
                Ok((seal, _)) => seal,
                Err(e) => {
                    // Ship it anyway: the collector's verifier names it.
                    tracing::warn!(target: "auditring_nats", error = %e, "an unreadable seal line in the spool");
                    at = end;
                    continue;
                }
            };
            let end_offset = cur.data_offset + end as u64;
            if sync && cur.synced < end_offset {
                cur.file.sync_data()?;
                cur.synced = cur.data_offset + cur.data.len() as u64;
            }
            let bytes = cur.data[cur.head..end].to_vec();
            cur.head = end;
            cur.scanned = end;
            let stream = seal.stream.to_string();
            let index = seal.index;
            return Ok(Some(Batch {
                bytes,
                seal,
                end: Position {
                    file: cur.id,
                    offset: end_offset,
                    stream,
                    seal: index,
                },
            }));
        }
        at = end;
    }
    cur.scanned = at;
    Ok(None)
}

/// The seal on the last line of `bytes` (which end with a `\n`), if that
/// line is one.
pub(crate) fn last_line_seal(bytes: &[u8]) -> Option<Seal> {
    let body = bytes.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Seal::parse_line(&body[start..]).ok().map(|(s, _)| s)
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}
