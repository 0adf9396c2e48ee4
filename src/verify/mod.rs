//! The verifier: checks a log (one or more files, in order) against the
//! seals it contains and the trusted public keys, in one streaming pass
//! with bounded memory and linear time, and names every problem with its
//! lines and seq range.
//!
//! - [`Verifier`] holds the trusted keys (and optionally an expected
//!   [`Checkpoint`]); [`Verifier::verify_files`] and
//!   [`Verifier::verify_bytes`] give a [`Report`].
//! - [`Verification`] is a pass in progress: feed files, save its
//!   [`VerifierState`], and [resume](Verifier::resume) later so that an
//!   appended log costs only its new bytes.
//! - [`log_files`] finds every file of a log from its active path, in
//!   chain order.
//!
//! The rules are those of `docs/FORMAT.md`, section 6.

use core::fmt;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::checkpoint::Checkpoint;
use crate::format::keys::{KeyId, PublicKey};
use crate::format::merkle::Hash;

mod check;
mod report;
mod seals;

use check::{CheckState, Checker};
pub use report::{ALL_KINDS, Finding, FindingKind, Report, Severity, Status};

pub use crate::format::logfile::{log_files, log_files_opened};

/// How much of a line the verifier keeps to classify it; the rest is only
/// hashed. Seal lines are far shorter.
const HEAD_LEN: usize = 4096;

/// Complete lines hashed side by side at a time.
const WHOLE_LINES: usize = 64;

/// An error that stops verification (not a finding about the log).
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// A file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A saved state does not continue any of the given files.
    Resume(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            VerifyError::Resume(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerifyError::Io { source, .. } => Some(source),
            VerifyError::Resume(_) => None,
        }
    }
}

/// Verifies logs against a set of trusted public keys.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
/// use auditring::verify::{Status, Verifier};
///
/// let key = SigningKey::generate();
/// let log = MemorySink::new();
/// let runtime = Runtime::<AuditPayload>::builder()
///     .signing_key(key.clone())
///     .sink(log.clone())
///     .build()?;
/// runtime.recorder()?.record(|e| { e.set_action("read"); })?;
/// runtime.shutdown()?;
///
/// let report = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
/// assert_eq!(report.status(), Status::Intact);
/// assert_eq!(report.events, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    keys: HashMap<KeyId, PublicKey>,
    max_findings: usize,
    expect: Option<Checkpoint>,
}

impl Verifier {
    /// A verifier trusting these keys.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.key_id(), k)).collect(),
            max_findings: 10_000,
            expect: None,
        }
    }

    /// Keeps at most this many findings in the report (the rest are
    /// counted). Default 10,000.
    pub fn with_max_findings(mut self, n: usize) -> Self {
        self.max_findings = n;
        self
    }

    /// Requires the log to contain this checkpoint's seal, with its hash:
    /// otherwise the report has a [`FindingKind::Truncated`] finding (the
    /// log's newest part was deleted or rewritten).
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::sink::MemorySink;
    /// use auditring::verify::{FindingKind, Status, Verifier};
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let key = SigningKey::generate();
    /// let log = MemorySink::new();
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(key.clone()).sink(log.clone()).build()?;
    /// let first_run_end = log.bytes().len();
    /// let head = runtime.shutdown()?.checkpoint;
    ///
    /// let verifier = Verifier::new([key.public_key()]).expect_checkpoint(head);
    /// assert_eq!(verifier.verify_bytes(&log.bytes()).status(), Status::Intact);
    /// // Cut the close seal: the anchor is gone.
    /// let cut = verifier.verify_bytes(&log.bytes()[..first_run_end]);
    /// assert!(cut.has(FindingKind::Truncated));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expect_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.expect = Some(checkpoint);
        self
    }

    /// Verifies an in-memory log.
    pub fn verify_bytes(&self, log: &[u8]) -> Report {
        let mut run = self.start();
        run.feed("<memory>", log, &mut |_| {})
            .expect("reading from memory cannot fail");
        run.finish()
    }

    /// Verifies the files of one log, in order (rotated files oldest
    /// first; [`log_files`] finds them). `progress` is called with the
    /// bytes read so far.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Io`] if a file cannot be opened or read.
    pub fn verify_files(
        &self,
        paths: &[impl AsRef<Path>],
        mut progress: impl FnMut(u64),
    ) -> Result<Report, VerifyError> {
        let mut run = self.start();
        run.feed_files(paths, &mut progress)?;
        Ok(run.finish())
    }

    /// Starts a verification from the beginning of a log: feed files in
    /// order, then finish.
    pub fn start(&self) -> Verification<'_> {
        Verification {
            verifier: self,
            st: CheckState::new(self.expect),
            cursor: Cursor::default(),
            resume: None,
            torn: None,
            in_new_file: false,
            on_event: None,
            on_batch: None,
        }
    }

    /// Continues a verification from a saved state (see
    /// [`Verification::state`]): feeding it the same log, with bytes
    /// appended or files added, reads only what is new and ends with the
    /// verdict a full pass would give.
    ///
    /// The expected checkpoint, if any, is this verifier's, not the
    /// state's.
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::verify::{Status, Verifier, VerifierState};
    /// # use auditring::{AuditPayload, Runtime, SigningKey};
    /// # use auditring::sink::FileSink;
    /// # let dir = std::env::temp_dir().join(format!("auditring-doc-resume-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let path = dir.join("audit.jsonl");
    /// # let key = SigningKey::generate();
    /// # let runtime = Runtime::<AuditPayload>::builder().signing_key(key.clone()).sink(FileSink::open(&path)?).build()?;
    /// # runtime.shutdown()?;
    /// let verifier = Verifier::new([key.public_key()]);
    /// let mut pass = verifier.start();
    /// pass.feed_files(&[&path], &mut |_| {})?;
    /// let saved = pass.state().to_json();
    /// // ... later, after the log grew:
    /// # let runtime = Runtime::<AuditPayload>::builder().signing_key(key.clone()).sink(FileSink::open(&path)?).build()?;
    /// # runtime.shutdown()?;
    /// let mut pass = verifier.resume(VerifierState::from_json(&saved)?);
    /// pass.feed_files(&[&path], &mut |_| {})?;
    /// assert_eq!(pass.finish().status(), Status::Intact);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(&self, state: VerifierState) -> Verification<'_> {
        let mut st = state.check;
        st.set_expectation(self.expect);
        Verification {
            verifier: self,
            st,
            cursor: Cursor::default(),
            resume: Some(state.cursor),
            torn: None,
            in_new_file: false,
            on_event: None,
            on_batch: None,
        }
    }
}

/// Where a pass stands: the last file it read a complete line from, and
/// how far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Leaf hash of that file's first line: identifies the file across
    /// renames (rotation). `None` before any complete line.
    first_line: Option<Hash>,
    /// Bytes of the file consumed, up to a line end.
    offset: u64,
    /// Where the last complete line starts and its leaf hash, to tell on
    /// resume that the file still holds what was verified.
    last_line: Option<(u64, Hash)>,
    /// Bytes of the file up to the end of its last seal line.
    sealed: u64,
    /// Complete lines read from the file.
    line: u64,
}

/// The saved state of a verification in progress, at the end of its last
/// complete line: serializable (JSON), and resumed by [`Verifier::resume`].
///
/// It holds the findings so far, the chain head, the open batch's Merkle
/// state (O(log n) hashes) and where the pass stands in its file: its size
/// is bounded by the kept findings, not by the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifierState {
    format: String,
    check: CheckState,
    cursor: Cursor,
}

/// The `format` of a saved state.
const STATE_FORMAT: &str = "auditring.verifier-state.2";

impl VerifierState {
    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a verifier state always serializes")
    }

    /// Reads the JSON form.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Resume`] if the text is not a saved state of this
    /// format.
    pub fn from_json(text: &str) -> Result<Self, VerifyError> {
        let state: Self = serde_json::from_str(text)
            .map_err(|e| VerifyError::Resume(format!("not a saved verifier state: {e}")))?;
        if state.format != STATE_FORMAT {
            return Err(VerifyError::Resume(format!(
                "a saved verifier state of format {:?}, not {STATE_FORMAT:?}: verify from the start",
                state.format
            )));
        }
        Ok(state)
    }

    /// The last seal reached whose signature verified: the checkpoint to
    /// keep.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.check.verified_head()
    }

    /// The report so far (without the end-of-log findings).
    pub fn report(&self) -> Report {
        self.check.report.clone()
    }

    /// How many of `files` (a log's files in chain order, as
    /// [`log_files_opened`] gives them) come before the file this state
    /// stands in, the one a resumed pass continues (recognised by its first
    /// line, whatever its name after rotation). Those are verified and no
    /// longer needed to resume: what a retention policy may delete. `None`
    /// if the state's file is not among them.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Io`] if a file cannot be read.
    pub fn verified_before(
        &self,
        files: &mut [(PathBuf, File)],
    ) -> Result<Option<usize>, VerifyError> {
        let Some(key) = self.cursor.first_line else {
            return Ok(None);
        };
        for (i, (path, file)) in files.iter_mut().enumerate() {
            if first_line_leaf(path, file)? == Some(key) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

/// A callback on every event line.
type EventHook<'v> = Box<dyn FnMut(&[u8]) + 'v>;
/// A callback at the end of every batch.
type BatchHook<'v> = Box<dyn FnMut(bool) + 'v>;

/// A verification in progress; see [`Verifier::start`].
pub struct Verification<'v> {
    verifier: &'v Verifier,
    st: CheckState,
    cursor: Cursor,
    /// Where a resumed pass picks up, until it has found its file.
    resume: Option<Cursor>,
    /// A partial line at the end of the last file fed: its length.
    torn: Option<u64>,
    /// The last file fed has no complete line yet: the cursor still stands
    /// in the file before it.
    in_new_file: bool,
    on_event: Option<EventHook<'v>>,
    on_batch: Option<BatchHook<'v>>,
}

impl fmt::Debug for Verification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verification")
            .field("file", &self.st.file)
            .field("line", &self.st.line)
            .field("offset", &self.cursor.offset)
            .finish_non_exhaustive()
    }
}

impl<'v> Verification<'v> {
    /// Calls `f` with every event line (its first 4 KiB) as it is read, so
    /// a tool can compute over the log in the same streaming pass that
    /// verifies it. What an event line says is only trustworthy once its
    /// batch verified: see [`on_batch`](Self::on_batch).
    pub fn on_event(&mut self, f: impl FnMut(&[u8]) + 'v) {
        self.on_event = Some(Box::new(f));
    }

    /// Calls `f` at every seal line with whether the batch it ends (the
    /// event lines since the previous seal) verified: a valid signature by
    /// a trusted key and no tamper finding since the previous seal.
    pub fn on_batch(&mut self, f: impl FnMut(bool) + 'v) {
        self.on_batch = Some(Box::new(f));
    }

    /// Reads the files of one log, in order. A resumed pass skips the
    /// files its state already covers and continues its file where it
    /// stopped. Every file is opened before any is read, so a file renamed
    /// meanwhile (rotation) is still read whole; [`log_files_opened`] also
    /// makes the listing itself safe against a rotation.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Io`] if a file cannot be read; [`VerifyError::Resume`]
    /// if a resumed pass finds none of the files its state continues.
    pub fn feed_files(
        &mut self,
        paths: &[impl AsRef<Path>],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), VerifyError> {
        let files = paths
            .iter()
            .map(|p| {
                let path = p.as_ref().to_owned();
                File::open(&path)
                    .map(|f| (path.clone(), f))
                    .map_err(|source| VerifyError::Io { path, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.feed_opened(files, progress)
    }

    /// [`feed_files`](Self::feed_files) on files already opened, in order.
    ///
    /// # Errors
    ///
    /// As [`feed_files`](Self::feed_files).
    pub fn feed_opened(
        &mut self,
        mut files: Vec<(PathBuf, File)>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), VerifyError> {
        let mut from = 0;
        if let Some(resume) = self.resume.take()
            && let Some(key) = resume.first_line
        {
            let mut found = None;
            for (i, (path, file)) in files.iter_mut().enumerate() {
                if first_line_leaf(path, file)? == Some(key) {
                    found = Some(i);
                    break;
                }
            }
            let index = found.ok_or_else(|| {
                    VerifyError::Resume(format!(
                        "the saved state continues a file (first line hash {}) that is not among the files given: pass the same log's files (its active path finds them all), or verify from the start",
                        crate::format::json::hex(&key)
                    ))
                })?;
            from = index + 1;
            let (path, file) = &mut files[index];
            self.continue_file(path, file, resume, progress)?;
        }
        for (path, file) in files.into_iter().skip(from) {
            let io_err = |source| VerifyError::Io {
                path: path.clone(),
                source,
            };
            let mut file = file;
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            let reader = BufReader::with_capacity(1 << 20, file);
            self.feed(&path.display().to_string(), reader, progress)
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Continues a file from a saved cursor.
    fn continue_file(
        &mut self,
        path: &Path,
        file: &mut File,
        resume: Cursor,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), VerifyError> {
        let io_err = |source| VerifyError::Io {
            path: path.to_owned(),
            source,
        };
        let len = file.metadata().map_err(io_err)?.len();
        let offset = resume.offset;
        self.st.file = path.display().to_string();
        self.st.line = resume.line;
        self.cursor = resume;
        if len < offset {
            Checker {
                verifier: self.verifier,
                st: &mut self.st,
            }
            .file_rewritten(format!(
                "the file is {len} bytes, shorter than the {offset} bytes already verified: it was cut or replaced"
            ));
            return Ok(());
        }
        if let Some((start, leaf)) = self.cursor.last_line {
            let mut line = vec![0u8; (offset - start) as usize];
            file.seek(SeekFrom::Start(start)).map_err(io_err)?;
            file.read_exact(&mut line).map_err(io_err)?;
            if line.pop() != Some(b'\n') || crate::format::merkle::leaf_hash(&line) != leaf {
                Checker {
                    verifier: self.verifier,
                    st: &mut self.st,
                }
                .file_rewritten(format!(
                    "the line verified last (at byte {start}) is no longer there: the file was rewritten or replaced"
                ));
                return Ok(());
            }
        }
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let reader = BufReader::with_capacity(1 << 20, &mut *file);
        self.read(reader, progress).map_err(io_err)
    }

    /// Reads one file of the log from its start.
    ///
    /// # Errors
    ///
    /// Any I/O error from `reader`.
    pub fn feed(
        &mut self,
        name: &str,
        reader: impl BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        if let Some(len) = self.torn.take() {
            Checker {
                verifier: self.verifier,
                st: &mut self.st,
            }
            .torn_inside(len);
        }
        self.in_new_file = true;
        Checker {
            verifier: self.verifier,
            st: &mut self.st,
        }
        .begin_file(name);
        self.read(reader, progress)
    }

    fn read(&mut self, mut reader: impl BufRead, progress: &mut dyn FnMut(u64)) -> io::Result<()> {
        let mut head: Vec<u8> = Vec::with_capacity(HEAD_LEN);
        let mut hasher = Sha256::new();
        let mut line_len = 0u64;
        let mut in_line = false;
        let mut since_progress = 0u64;
        loop {
            let buf = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            if !in_line {
                // Whole lines in the buffer: hashed side by side.
                let consumed = self.whole_lines(buf);
                if consumed > 0 {
                    reader.consume(consumed);
                    since_progress += consumed as u64;
                    if since_progress >= 1 << 22 {
                        progress(self.st.report.bytes);
                        since_progress = 0;
                    }
                    continue;
                }
            }
            let (chunk, ends_line) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            if !in_line {
                hasher.update([0x00]);
                in_line = true;
            }
            hasher.update(chunk);
            let keep = HEAD_LEN.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..keep]);
            line_len += chunk.len() as u64;
            let consumed = chunk.len() + usize::from(ends_line);
            reader.consume(consumed);
            self.st.report.bytes = self.st.report.bytes.saturating_add(consumed as u64);
            since_progress += consumed as u64;
            if since_progress >= 1 << 22 {
                progress(self.st.report.bytes);
                since_progress = 0;
            }
            if ends_line {
                let leaf: Hash = std::mem::take(&mut hasher).finalize().into();
                self.complete_line(&head, line_len, leaf);
                head.clear();
                line_len = 0;
                in_line = false;
            }
        }
        if in_line {
            // A partial last line: part of the log only if it is followed
            // by nothing (a torn write), which `finish` decides. Its bytes
            // stay unconsumed in the saved state.
            self.st.report.bytes = self.st.report.bytes.saturating_sub(line_len);
            self.torn = Some(line_len);
        }
        progress(self.st.report.bytes);
        Ok(())
    }

    /// Checks the complete lines at the start of `buf` (up to
    /// [`WHOLE_LINES`]), their leaves hashed side by side; returns the
    /// bytes they take (newlines included), 0 when `buf` holds no complete
    /// line.
    fn whole_lines(&mut self, buf: &[u8]) -> usize {
        let mut lines: [&[u8]; WHOLE_LINES] = [&[]; WHOLE_LINES];
        let mut n = 0;
        let mut at = 0;
        for end in memchr::memchr_iter(b'\n', buf) {
            lines[n] = &buf[at..end];
            n += 1;
            at = end + 1;
            if n == WHOLE_LINES {
                break;
            }
        }
        let mut leaves = [[0u8; 32]; WHOLE_LINES];
        crate::format::merkle::leaf_hashes(&lines[..n], &mut leaves[..n]);
        for (line, leaf) in lines[..n].iter().zip(leaves) {
            self.st.report.bytes = self.st.report.bytes.saturating_add(line.len() as u64 + 1);
            self.complete_line(&line[..line.len().min(HEAD_LEN)], line.len() as u64, leaf);
        }
        at
    }

    fn complete_line(&mut self, head: &[u8], len: u64, leaf: Hash) {
        if std::mem::take(&mut self.in_new_file) {
            // The cursor moves to this file with its first complete line.
            self.cursor = Cursor {
                first_line: Some(leaf),
                ..Cursor::default()
            };
        }
        let start = self.cursor.offset;
        self.cursor.offset = start + len + 1;
        self.cursor.last_line = Some((start, leaf));
        self.cursor.line += 1;
        if matches!(
            crate::format::event::classify(head),
            crate::format::event::LineKind::Event(_)
        ) && let Some(f) = self.on_event.as_mut()
        {
            f(head);
        }
        let ended = Checker {
            verifier: self.verifier,
            st: &mut self.st,
        }
        .line(head, len, leaf);
        if ended.is_some() {
            self.cursor.sealed = self.cursor.offset;
        }
        if let (Some(verified), Some(f)) = (ended, self.on_batch.as_mut()) {
            f(verified);
        }
    }

    /// The state after the last complete line read: save it (JSON) and
    /// [resume](Verifier::resume) when the log has grown.
    pub fn state(&self) -> VerifierState {
        VerifierState {
            format: STATE_FORMAT.into(),
            check: self.st.clone(),
            cursor: self.cursor.clone(),
        }
    }

    /// How many bytes of the file read last end with its last seal line:
    /// what follows is not sealed (yet).
    pub fn sealed_offset(&self) -> u64 {
        self.cursor.sealed
    }

    /// The last seal reached whose signature verified.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.st.verified_head()
    }

    /// The report as if the log ended here, leaving the pass open.
    pub fn report(&self) -> Report {
        let mut st = self.st.clone();
        Checker {
            verifier: self.verifier,
            st: &mut st,
        }
        .finish(self.torn);
        st.report
    }

    /// Ends the verification and returns the report.
    pub fn finish(mut self) -> Report {
        Checker {
            verifier: self.verifier,
            st: &mut self.st,
        }
        .finish(self.torn);
        self.st.report
    }
}

/// The leaf hash of a file's first line, if it has a complete one.
fn first_line_leaf(path: &Path, file: &mut File) -> Result<Option<Hash>, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut reader = BufReader::new(&mut *file);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(io_err)?;
    if line.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Some(crate::format::merkle::leaf_hash(&line)))
}

/// Reads everything from a reader into a report (for `Read` sources that
/// are not files).
///
/// # Errors
///
/// Any I/O error from `reader`.
pub fn verify_reader(verifier: &Verifier, name: &str, reader: impl Read) -> io::Result<Report> {
    let mut run = verifier.start();
    run.feed(name, BufReader::with_capacity(1 << 20, reader), &mut |_| {})?;
    Ok(run.finish())
}
