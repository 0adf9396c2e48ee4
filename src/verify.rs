//! The verifier: checks a log (one or more files, in order) against the
//! seals it contains and the trusted public keys, in one streaming pass
//! with constant memory, and names every problem with its lines and seq
//! range.
//!
//! Event lines are never parsed as JSON: the verifier reads their `stream`
//! and `seq` from the fixed line prefix and hashes their exact bytes. Seal
//! lines are parsed and must be in canonical form.

use core::fmt;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::event::{self, LineKind, uuid_string};
use crate::keys::{KeyId, PublicKey};
use crate::merkle::{Hash, MerkleBuilder};
use crate::seal::{GENESIS, Seal, SealReason};

/// How much of a line the verifier keeps to classify it; the rest is only
/// hashed. Seal lines are far shorter.
const HEAD_LEN: usize = 4096;

/// At most this many seq gaps are tracked inside one batch to tell a late
/// (reordered) event from an inserted one; beyond it gaps are merged.
const MAX_GAPS: usize = 1024;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, not a problem (a restart).
    Info,
    /// The log is authentic as far as it goes, but not complete: signed
    /// loss, an unsealed tail after a crash, a missing close seal.
    Incomplete,
    /// Evidence that the log was altered (or signed by an unknown key).
    Tamper,
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// Events whose bytes do not match their seal's Merkle root.
    Modified,
    /// Events (seq numbers) that are absent.
    Missing,
    /// Whole sealed batches that are absent (a gap in seal indices).
    MissingSeals,
    /// Lines that no seal accounts for: extra, duplicated or foreign events.
    Inserted,
    /// Events present but out of order.
    Reordered,
    /// A seal whose signature does not verify.
    BadSignature,
    /// A seal signed by a key that is not trusted.
    UnknownKey,
    /// A seal that does not link to the previous seal.
    BrokenChain,
    /// A line that is neither an event nor a seal, or a damaged seal.
    Malformed,
    /// Events after the last seal of a run that ended without sealing them
    /// (a crash, or a truncated file).
    UnsealedTail,
    /// The log ends without a close seal: truncated, crashed or still
    /// being written.
    MissingClose,
    /// Events the recorder dropped under backpressure, as signed in a seal.
    Loss,
    /// Sink write failures, as signed in a seal.
    SinkErrors,
    /// A new run starts (clean, or after a crash).
    Restart,
    /// The input holds no seal at all.
    Empty,
}

impl FindingKind {
    /// The severity of this kind of finding.
    pub fn severity(self) -> Severity {
        use FindingKind::*;
        match self {
            Modified | Missing | MissingSeals | Inserted | Reordered | BadSignature
            | UnknownKey | BrokenChain | Malformed => Severity::Tamper,
            UnsealedTail | MissingClose | Loss | Empty => Severity::Incomplete,
            SinkErrors | Restart => Severity::Info,
        }
    }

    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        use FindingKind::*;
        match self {
            Modified => "modified",
            Missing => "missing",
            MissingSeals => "missing_seals",
            Inserted => "inserted",
            Reordered => "reordered",
            BadSignature => "bad_signature",
            UnknownKey => "unknown_key",
            BrokenChain => "broken_chain",
            Malformed => "malformed",
            UnsealedTail => "unsealed_tail",
            MissingClose => "missing_close",
            Loss => "loss",
            SinkErrors => "sink_errors",
            Restart => "restart",
            Empty => "empty",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem (or notable fact) found in a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is.
    pub kind: FindingKind,
    /// How serious it is.
    pub severity: Severity,
    /// The file it is in (as given to the verifier).
    pub file: String,
    /// First and last line (1-based, inclusive) it concerns.
    pub lines: (u64, u64),
    /// First and last seq (inclusive) it concerns, when known.
    pub seq: Option<(u64, u64)>,
    /// Number of events or seals concerned, when meaningful.
    pub count: Option<u64>,
    /// A sentence saying what was found.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Info => "info",
            Severity::Incomplete => "INCOMPLETE",
            Severity::Tamper => "TAMPER",
        };
        write!(
            f,
            "{severity:<10} {:<14} {}:",
            self.kind.as_str(),
            self.file
        )?;
        if self.lines.0 == self.lines.1 {
            write!(f, "{}", self.lines.0)?;
        } else {
            write!(f, "{}-{}", self.lines.0, self.lines.1)?;
        }
        if let Some((a, b)) = self.seq {
            if a == b {
                write!(f, " seq {a}")?;
            } else {
                write!(f, " seq {a}-{b}")?;
            }
        }
        write!(f, ": {}", self.detail)
    }
}

/// The overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every event sealed, every seal valid and chained, closed cleanly.
    Intact,
    /// Authentic but incomplete (loss, unsealed tail, no close seal).
    Incomplete,
    /// Evidence of tampering.
    Tampered,
}

impl Status {
    /// The process exit code `auditring verify` uses: 0 intact, 1
    /// tampered, 3 incomplete (2 is for usage and I/O errors).
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Intact => 0,
            Status::Tampered => 1,
            Status::Incomplete => 3,
        }
    }
}

/// The result of verifying a log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Findings in the order found (at most `max_findings` are kept).
    pub findings: Vec<Finding>,
    /// Findings found beyond `max_findings` (counted, not kept).
    pub findings_not_kept: u64,
    /// Findings per severity, including those not kept.
    pub tamper: u64,
    /// See `tamper`.
    pub incomplete: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Event lines read.
    pub events: u64,
    /// Seal lines read.
    pub seals: u64,
    /// Runs (streams) opened.
    pub streams: u64,
    /// Events the signed seals account for as sealed.
    pub sealed_events: u64,
    /// Events the seals report as dropped by the recorder.
    pub dropped: u64,
}

impl Report {
    /// The verdict.
    pub fn status(&self) -> Status {
        if self.tamper > 0 {
            Status::Tampered
        } else if self.incomplete > 0 {
            Status::Incomplete
        } else {
            Status::Intact
        }
    }

    /// Whether any kept finding is of this kind.
    pub fn has(&self, kind: FindingKind) -> bool {
        self.findings.iter().any(|f| f.kind == kind)
    }

    /// The kept findings of this kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }
}

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
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerifyError::Io { source, .. } => Some(source),
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
}

impl Verifier {
    /// A verifier trusting these keys.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.key_id(), k)).collect(),
            max_findings: 10_000,
        }
    }

    /// Keeps at most this many findings in the report (the rest are
    /// counted). Default 10,000.
    pub fn with_max_findings(mut self, n: usize) -> Self {
        self.max_findings = n;
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
    /// first). `progress` is called with the bytes read so far.
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
        for path in paths {
            let path = path.as_ref();
            let io_err = |source| VerifyError::Io {
                path: path.to_owned(),
                source,
            };
            let file = File::open(path).map_err(io_err)?;
            let reader = BufReader::with_capacity(1 << 20, file);
            run.feed(&path.display().to_string(), reader, &mut progress)
                .map_err(io_err)?;
        }
        Ok(run.finish())
    }

    /// Starts an incremental verification: feed files in order, then
    /// finish.
    pub fn start(&self) -> Verification<'_> {
        Verification {
            verifier: self,
            report: Report::default(),
            file: String::new(),
            line: 0,
            stream: None,
            last_seal: None,
            sealed_next: None,
            expected_seq: None,
            pending: Pending::default(),
            after_close: None,
            on_event: None,
        }
    }
}

/// The last seal seen.
#[derive(Clone, Debug)]
struct LastSeal {
    /// Hash of its preimage; `None` if it could not be read.
    hash: Option<Hash>,
    index: u64,
    reason: SealReason,
    dropped_total: u64,
}

/// Events read since the last seal.
#[derive(Debug, Default)]
struct Pending {
    merkle: MerkleBuilder,
    first_line: u64,
    last_line: u64,
    lowest_seq: Option<u64>,
    highest_seq: Option<u64>,
    /// Seq ranges skipped inside this batch, still possibly late.
    gaps: Vec<(u64, u64)>,
    /// A structural problem already reported for this batch, so a root
    /// mismatch is explained.
    disturbed: bool,
}

impl Pending {
    fn count(&self) -> u64 {
        self.merkle.len()
    }

    fn seq_range(&self) -> Option<(u64, u64)> {
        Some((self.lowest_seq?, self.highest_seq?))
    }

    fn reset(&mut self) {
        self.merkle.reset();
        self.first_line = 0;
        self.last_line = 0;
        self.lowest_seq = None;
        self.highest_seq = None;
        self.gaps.clear();
        self.disturbed = false;
    }
}

/// A callback on every event line.
type EventHook<'v> = Box<dyn FnMut(&[u8]) + 'v>;

/// A verification in progress; see [`Verifier::start`].
pub struct Verification<'v> {
    verifier: &'v Verifier,
    report: Report,
    file: String,
    line: u64,
    /// The open stream, if any.
    stream: Option<[u8; 16]>,
    last_seal: Option<LastSeal>,
    /// The seq after the last sealed event.
    sealed_next: Option<u64>,
    /// The seq the next event should carry.
    expected_seq: Option<u64>,
    pending: Pending,
    /// Lines after a close seal and before the next open seal.
    after_close: Option<(u64, u64)>,
    /// Called with the first bytes (up to 4 KiB) of every event line.
    on_event: Option<EventHook<'v>>,
}

impl<'v> Verification<'v> {
    /// Calls `f` with every event line (its first 4 KiB) as it is read, so
    /// a tool can compute over the log in the same streaming pass that
    /// verifies it.
    pub fn on_event(&mut self, f: impl FnMut(&[u8]) + 'v) {
        self.on_event = Some(Box::new(f));
    }

    /// Reads one file of the log.
    ///
    /// # Errors
    ///
    /// Any I/O error from `reader`.
    pub fn feed(
        &mut self,
        name: &str,
        mut reader: impl BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        self.file = name.to_owned();
        self.line = 0;
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
            self.report.bytes += consumed as u64;
            since_progress += consumed as u64;
            if since_progress >= 1 << 22 {
                progress(self.report.bytes);
                since_progress = 0;
            }
            if ends_line {
                let leaf: Hash = std::mem::take(&mut hasher).finalize().into();
                self.line(&head, line_len, leaf);
                head.clear();
                line_len = 0;
                in_line = false;
            }
        }
        if in_line {
            // A last line without its newline: a write torn by a crash (or
            // a truncation). If it does not even start like a record, it
            // joins the unsealed tail rather than counting as tampering.
            let leaf: Hash = hasher.finalize().into();
            if event::classify(&head) == LineKind::Unknown {
                self.line += 1;
                self.report.lines += 1;
                self.event(None, leaf);
            } else {
                self.line(&head, line_len, leaf);
            }
        }
        progress(self.report.bytes);
        Ok(())
    }

    /// Ends the verification and returns the report.
    pub fn finish(mut self) -> Report {
        self.close_after_close_run();
        if self.pending.count() > 0 {
            let (first, last) = (self.pending.first_line, self.pending.last_line);
            let count = self.pending.count();
            let seq = self.pending.seq_range();
            self.find(
                FindingKind::UnsealedTail,
                (first, last),
                seq,
                Some(count),
                format!("{count} event line(s) after the last seal are not sealed: the writer stopped (crash or truncation) before sealing them"),
            );
        }
        match &self.last_seal {
            None => {
                let lines = (self.line.min(1), self.line);
                self.find(
                    FindingKind::Empty,
                    lines,
                    None,
                    None,
                    "no seal found: this is not an auditring log, or it is empty".into(),
                );
            }
            Some(last) if last.reason != SealReason::Close => {
                let detail = format!(
                    "the log ends without a close seal (last seal is #{} '{}'): it was truncated, or its writer crashed or is still running",
                    last.index, last.reason
                );
                self.find_here(FindingKind::MissingClose, detail);
            }
            Some(_) => {}
        }
        self.report
    }

    fn find(
        &mut self,
        kind: FindingKind,
        lines: (u64, u64),
        seq: Option<(u64, u64)>,
        count: Option<u64>,
        detail: String,
    ) {
        let severity = kind.severity();
        match severity {
            Severity::Tamper => self.report.tamper += 1,
            Severity::Incomplete => self.report.incomplete += 1,
            Severity::Info => {}
        }
        if self.report.findings.len() >= self.verifier.max_findings {
            self.report.findings_not_kept += 1;
            return;
        }
        self.report.findings.push(Finding {
            kind,
            severity,
            file: self.file.clone(),
            lines,
            seq,
            count,
            detail,
        });
    }

    /// A finding about the current line alone, with no seq range.
    fn find_here(&mut self, kind: FindingKind, detail: String) {
        let line = self.line;
        self.find(kind, (line, line), None, None, detail);
    }

    /// Extends the previous finding if it is of the same kind and ends on
    /// the line before; otherwise adds a new one.
    fn find_run(&mut self, kind: FindingKind, line: u64, detail: impl FnOnce() -> String) {
        if let Some(last) = self.report.findings.last_mut() {
            if last.kind == kind && last.file == self.file && last.lines.1 + 1 == line {
                last.lines.1 = line;
                last.count = Some(last.count.unwrap_or(1) + 1);
                return;
            }
        }
        self.find(kind, (line, line), None, Some(1), detail());
    }

    fn line(&mut self, head: &[u8], len: u64, leaf: Hash) {
        self.line += 1;
        self.report.lines += 1;
        let line = self.line;
        match event::classify(head) {
            LineKind::Seal => {
                self.report.seals += 1;
                if len as usize > head.len() {
                    self.find_here(
                        FindingKind::Malformed,
                        format!("seal line of {len} bytes is far longer than any seal"),
                    );
                    self.seal_unreadable();
                    return;
                }
                match Seal::parse_line(head) {
                    Ok((seal, sig)) => self.seal(seal, &sig),
                    Err(e) => {
                        self.find_here(FindingKind::Malformed, format!("damaged seal line: {e}"));
                        self.seal_unreadable();
                    }
                }
            }
            LineKind::Event(header) => {
                self.report.events += 1;
                if let Some(f) = self.on_event.as_mut() {
                    f(head);
                }
                self.event(Some(header), leaf);
            }
            LineKind::Unknown => {
                self.find_run(FindingKind::Malformed, line, || {
                    "line is neither an auditring event nor a seal".into()
                });
                self.event(None, leaf);
            }
        }
    }

    fn event(&mut self, header: Option<event::EventHeader>, leaf: Hash) {
        let line = self.line;
        if self.stream.is_none() && self.last_seal.is_some() {
            // After a close seal: nothing may follow until the next open.
            let run = self.after_close.get_or_insert((line, line));
            run.1 = line;
            return;
        }
        let p = &mut self.pending;
        if p.count() == 0 {
            p.first_line = line;
        }
        p.last_line = line;
        p.merkle.push(leaf);
        let Some(header) = header else {
            // Assume the unreadable line took the next seq, so one damaged
            // line does not also read as a gap.
            if let Some(e) = self.expected_seq.as_mut() {
                *e += 1;
            }
            self.pending.disturbed = true;
            return;
        };
        if let Some(stream) = self.stream {
            if header.stream != stream {
                self.pending.disturbed = true;
                let detail = format!(
                    "event of stream {} inside stream {}",
                    uuid_string(&header.stream),
                    uuid_string(&stream)
                );
                self.find(
                    FindingKind::Inserted,
                    (line, line),
                    Some((header.seq, header.seq)),
                    Some(1),
                    detail,
                );
                return;
            }
        }
        let seq = header.seq;
        let p = &mut self.pending;
        p.lowest_seq = Some(p.lowest_seq.map_or(seq, |s| s.min(seq)));
        p.highest_seq = Some(p.highest_seq.map_or(seq, |s| s.max(seq)));
        let expected = *self.expected_seq.get_or_insert(seq);
        if seq == expected {
            self.expected_seq = Some(seq + 1);
        } else if seq > expected {
            let p = &mut self.pending;
            if p.gaps.len() >= MAX_GAPS {
                let (a, _) = p.gaps.remove(0);
                p.gaps[0].0 = a;
            }
            p.gaps.push((expected, seq - 1));
            self.expected_seq = Some(seq + 1);
        } else if let Some(i) = self
            .pending
            .gaps
            .iter()
            .position(|&(a, b)| a <= seq && seq <= b)
        {
            let (a, b) = self.pending.gaps.remove(i);
            if a < seq {
                self.pending.gaps.push((a, seq - 1));
            }
            if seq < b {
                self.pending.gaps.push((seq + 1, b));
            }
            self.pending.disturbed = true;
            self.find(
                FindingKind::Reordered,
                (line, line),
                Some((seq, seq)),
                Some(1),
                format!(
                    "event seq {seq} comes after seq {} (events out of order)",
                    expected - 1
                ),
            );
        } else {
            self.pending.disturbed = true;
            self.find(
                FindingKind::Inserted,
                (line, line),
                Some((seq, seq)),
                Some(1),
                format!("event seq {seq} appears again, or out of place (expected seq {expected})"),
            );
        }
    }

    fn close_after_close_run(&mut self) {
        if let Some((a, b)) = self.after_close.take() {
            self.find(
                FindingKind::Inserted,
                (a, b),
                None,
                Some(b - a + 1),
                "line(s) after a close seal and before the next open seal: no seal covers them"
                    .into(),
            );
        }
    }

    /// A seal line that could not be read: its batch cannot be checked, and
    /// the chain cannot be followed through it.
    fn seal_unreadable(&mut self) {
        self.pending.reset();
        if let Some(last) = self.last_seal.as_mut() {
            last.hash = None;
            last.index += 1;
        }
        self.sealed_next = None;
        self.expected_seq = None;
    }

    fn seal(&mut self, seal: Seal, sig: &[u8; 64]) {
        let line = self.line;
        let preimage = seal.preimage();
        match self.verifier.keys.get(&seal.key_id) {
            None => self.find_here(FindingKind::UnknownKey, format!(
                    "seal #{} is signed by key {}, which is not trusted (pass its public key with --key if it is yours)",
                    seal.index, seal.key_id
                ),
            ),
            Some(key) => {
                if !key.verify(&preimage, sig) {
                    self.find_here(FindingKind::BadSignature, format!("seal #{} has an invalid signature: the seal line was altered", seal.index),
                    );
                }
            }
        }
        let hash: Hash = Sha256::digest(preimage).into();
        if seal.reason.starts_stream() {
            self.open_stream(&seal);
        } else {
            self.close_batch(&seal);
        }
        self.report.dropped += seal.dropped;
        if seal.dropped > 0 {
            self.find(
                FindingKind::Loss,
                (line, line),
                None,
                Some(seal.dropped),
                format!(
                    "seal #{} records {} event(s) dropped by the recorder under backpressure ({} in this run)",
                    seal.index, seal.dropped, seal.dropped_total
                ),
            );
        }
        if seal.sink_errors > 0 {
            self.find(
                FindingKind::SinkErrors,
                (line, line),
                None,
                Some(seal.sink_errors),
                format!(
                    "seal #{} records {} sink write failure(s) before it",
                    seal.index, seal.sink_errors
                ),
            );
        }
        self.last_seal = Some(LastSeal {
            hash: Some(hash),
            index: seal.index,
            reason: seal.reason,
            dropped_total: seal.dropped_total,
        });
        if seal.reason == SealReason::Close {
            self.stream = None;
        }
    }

    /// An `open` seal right after a `rotate` seal of the same stream
    /// starts the next file of that stream.
    fn continues_after_rotation(&self, seal: &Seal) -> bool {
        seal.reason == SealReason::Open
            && self.stream == Some(seal.stream)
            && self
                .last_seal
                .as_ref()
                .is_some_and(|l| l.reason == SealReason::Rotate)
    }

    fn open_stream(&mut self, seal: &Seal) {
        if self.continues_after_rotation(seal) {
            // Checked like a batch seal that seals nothing.
            self.close_batch(seal);
            return;
        }
        let line = self.line;
        self.close_after_close_run();
        self.report.streams += 1;
        if self.pending.count() > 0 {
            let count = self.pending.count();
            let lines = (self.pending.first_line, self.pending.last_line);
            let seq = self.pending.seq_range();
            self.find(
                FindingKind::UnsealedTail,
                lines,
                seq,
                Some(count),
                format!("{count} event line(s) of the previous run were never sealed (the run crashed before sealing them)"),
            );
        }
        match self.last_seal.clone() {
            None => {
                if seal.prev != GENESIS {
                    self.find_here(FindingKind::BrokenChain, "the first seal does not start the log (its prev is not the genesis value): earlier files or seals are missing; pass every file of the log, oldest first".into(),
                    );
                }
            }
            Some(last) => {
                let detail = if last.reason == SealReason::Close {
                    format!(
                        "a new run starts (stream {}) after a clean shutdown",
                        uuid_string(&seal.stream)
                    )
                } else {
                    format!(
                        "a new run starts (stream {}) after the previous run ended without a close seal (crash)",
                        uuid_string(&seal.stream)
                    )
                };
                self.find_here(FindingKind::Restart, detail);
                if let Some(prev) = last.hash {
                    if prev != seal.prev {
                        self.find_here(FindingKind::BrokenChain, "the opening seal does not link to the previous seal: seals between them were removed or replaced".into(),
                        );
                    }
                }
            }
        }
        if seal.index != 0 || seal.count != 0 {
            self.find_here(
                FindingKind::Malformed,
                format!(
                    "an opening seal must have index 0 and seal no events (has index {}, count {})",
                    seal.index, seal.count
                ),
            );
        }
        if let Some(next) = self.sealed_next {
            if seal.seq_start > next {
                self.find(
                    FindingKind::Missing,
                    (line, line),
                    Some((next, seal.seq_start - 1)),
                    Some(seal.seq_start - next),
                    format!(
                        "the new run starts at seq {} but the previous run sealed up to seq {}",
                        seal.seq_start,
                        next - 1
                    ),
                );
            } else if seal.seq_start < next {
                self.find(
                    FindingKind::Inserted,
                    (line, line),
                    Some((seal.seq_start, next - 1)),
                    Some(next - seal.seq_start),
                    format!("the new run starts at seq {}, reusing seq numbers already sealed (up to {})", seal.seq_start, next - 1),
                );
            }
        } else if self.last_seal.is_none() && seal.prev == GENESIS && seal.seq_start != 0 {
            self.find(
                FindingKind::Missing,
                (line, line),
                Some((0, seal.seq_start - 1)),
                Some(seal.seq_start),
                format!(
                    "the log starts at genesis but its first seq is {}",
                    seal.seq_start
                ),
            );
        }
        self.stream = Some(seal.stream);
        self.sealed_next = Some(seal.seq_start);
        self.expected_seq = Some(seal.seq_start);
        self.pending.reset();
    }

    fn close_batch(&mut self, seal: &Seal) {
        let line = self.line;
        self.close_after_close_run();
        // The seal's place in the chain.
        match (&self.last_seal, self.stream) {
            (None, _) => {
                self.find_here(
                    FindingKind::BrokenChain,
                    format!(
                        "seal #{} comes before any opening seal: the start of the log is missing",
                        seal.index
                    ),
                );
            }
            (Some(_), None) => {
                self.find_here(
                    FindingKind::BrokenChain,
                    format!(
                        "seal #{} follows a close seal without a new opening seal",
                        seal.index
                    ),
                );
            }
            (Some(last), Some(stream)) => {
                let (last_index, last_hash, last_dropped) =
                    (last.index, last.hash, last.dropped_total);
                if seal.stream != stream {
                    self.find_here(
                        FindingKind::BrokenChain,
                        format!(
                            "seal #{} belongs to stream {}, not to the open stream",
                            seal.index,
                            uuid_string(&seal.stream)
                        ),
                    );
                } else if seal.index > last_index + 1 {
                    let missing = seal.index - last_index - 1;
                    self.pending.disturbed = true;
                    self.find(
                        FindingKind::MissingSeals,
                        (line, line),
                        None,
                        Some(missing),
                        format!(
                            "{missing} sealed batch(es) are missing: seals #{}..#{} were removed",
                            last_index + 1,
                            seal.index - 1
                        ),
                    );
                } else if seal.index != last_index + 1 {
                    self.find_here(
                        FindingKind::BrokenChain,
                        format!(
                            "seal #{} follows seal #{last_index}: seals repeated or out of order",
                            seal.index
                        ),
                    );
                } else if last_hash.is_some_and(|h| h != seal.prev) {
                    self.find_here(
                        FindingKind::BrokenChain,
                        format!(
                            "seal #{} does not link to seal #{last_index}: a seal was replaced",
                            seal.index
                        ),
                    );
                } else if seal.dropped_total != last_dropped + seal.dropped {
                    self.find_here(
                        FindingKind::Malformed,
                        format!("seal #{}'s drop counts do not add up", seal.index),
                    );
                }
            }
        }
        self.check_batch(seal);
        self.report.sealed_events += seal.count;
        self.sealed_next = Some(seal.seq_start + seal.count);
        self.expected_seq = self.sealed_next;
        self.pending.reset();
    }

    /// Compares the events read since the last seal with what the seal
    /// says it covers.
    fn check_batch(&mut self, seal: &Seal) {
        let line = self.line;
        let count = self.pending.count();
        let lines = if count > 0 {
            (self.pending.first_line, self.pending.last_line)
        } else {
            (line, line)
        };
        let sealed_range =
            (seal.count > 0).then(|| (seal.seq_start, seal.seq_start + seal.count - 1));
        let mut structural = self.pending.disturbed;

        // Seqs between the previous seal and this one that never showed up
        // (whole batches removed, or the start of this batch).
        if let Some(next) = self.sealed_next {
            if seal.seq_start > next {
                structural = true;
                self.find(
                    FindingKind::Missing,
                    lines,
                    Some((next, seal.seq_start - 1)),
                    Some(seal.seq_start - next),
                    format!(
                        "seq {}..{} are missing before seal #{}",
                        next,
                        seal.seq_start - 1,
                        seal.index
                    ),
                );
            } else if seal.seq_start < next {
                structural = true;
                self.find(
                    FindingKind::Inserted,
                    lines,
                    Some((seal.seq_start, next - 1)),
                    Some(next - seal.seq_start),
                    format!(
                        "seal #{} covers seq numbers already sealed before it",
                        seal.index
                    ),
                );
            }
        }
        // Gaps inside the batch (those below its start were reported above).
        let gaps = std::mem::take(&mut self.pending.gaps);
        for (a, b) in gaps {
            let a = a.max(seal.seq_start);
            if a > b {
                continue;
            }
            structural = true;
            self.find(
                FindingKind::Missing,
                lines,
                Some((a, b)),
                Some(b - a + 1),
                format!(
                    "event(s) seq {a}..{b} were removed from the batch sealed by seal #{}",
                    seal.index
                ),
            );
        }
        if let (Some((lo, hi)), Some((s_lo, s_hi))) = (self.pending.seq_range(), sealed_range) {
            if hi > s_hi {
                structural = true;
                self.find(
                    FindingKind::Inserted,
                    lines,
                    Some((s_hi + 1, hi)),
                    None,
                    format!(
                        "events with seq above {s_hi} are not covered by seal #{}",
                        seal.index
                    ),
                );
            }
            if hi < s_hi {
                structural = true;
                self.find(
                    FindingKind::Missing,
                    lines,
                    Some((hi + 1, s_hi)),
                    Some(s_hi - hi),
                    format!(
                        "the last event(s) of the batch sealed by seal #{} were removed",
                        seal.index
                    ),
                );
            }
            if lo < s_lo && !structural {
                structural = true;
                self.find(
                    FindingKind::Inserted,
                    lines,
                    Some((lo, s_lo - 1)),
                    None,
                    format!(
                        "events with seq below {s_lo} are not covered by seal #{}",
                        seal.index
                    ),
                );
            }
        }
        if count != seal.count && !structural {
            structural = true;
            let kind = if count > seal.count {
                FindingKind::Inserted
            } else {
                FindingKind::Missing
            };
            self.find(
                kind,
                lines,
                sealed_range,
                Some(count.abs_diff(seal.count)),
                format!(
                    "seal #{} covers {} event(s) but {count} line(s) precede it",
                    seal.index, seal.count
                ),
            );
        }
        if !structural && count > 0 && self.pending.merkle.root() != seal.root {
            self.find(
                FindingKind::Modified,
                lines,
                sealed_range,
                Some(count),
                format!(
                    "the bytes of one or more of these {count} event(s) differ from what seal #{} signed",
                    seal.index
                ),
            );
        }
    }
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
