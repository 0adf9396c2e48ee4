//! The streaming checker: one pass over a log's lines with bounded memory
//! and constant work per byte, enforcing the seal grammar, the chain, seq
//! continuity, every batch's Merkle root and the orphan commitments.
//!
//! Event lines are never parsed as JSON: their `stream` and `seq` come from
//! the fixed line prefix and their exact bytes are hashed. Seal lines are
//! parsed and must be in canonical form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::report::{Finding, FindingKind, Report, Severity};
use crate::checkpoint::Checkpoint;
use crate::event::{self, LineKind, uuid_string};
use crate::keys::is_low_s;
use crate::merkle::{Hash, MerkleBuilder};
use crate::seal::{GENESIS, Orphans, Seal, SealReason};

use super::Verifier;

/// At most this many seq gaps are tracked inside one batch to tell a late
/// (reordered) event from an inserted one; beyond it the two lowest gaps
/// are merged. Each event costs O(log MAX_GAPS) whatever the input.
const MAX_GAPS: usize = 1024;

/// The last seal read.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LastSeal {
    stream: [u8; 16],
    index: u64,
    reason: SealReason,
    /// Hash of its preimage.
    hash: Hash,
    dropped_total: u64,
}

/// Where the log stands between two lines.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Phase {
    /// No seal read yet: nothing may come before the first seal.
    Start,
    /// After a seal: `open`, `recovered`, `size`, `timer`, `rotate` or `close`.
    After(LastSeal),
    /// After a seal line that could not be read: the next seal is taken as
    /// it is (resynchronisation), its link to the unreadable one unchecked.
    Unreadable,
}

/// Events read since the last seal.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Pending {
    merkle: MerkleBuilder,
    first_line: u64,
    last_line: u64,
    lowest_seq: Option<u64>,
    highest_seq: Option<u64>,
    /// Seq ranges skipped inside this batch (start -> end, inclusive),
    /// still possibly late.
    gaps: BTreeMap<u64, u64>,
    /// A structural problem already reported for this batch, so a root
    /// mismatch is explained.
    disturbed: bool,
}

impl Pending {
    fn count(&self) -> u64 {
        self.merkle.len()
    }

    fn lines(&self) -> Option<(u64, u64)> {
        (self.count() > 0).then_some((self.first_line, self.last_line))
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

    /// Records a gap, merging the two lowest when too many are tracked.
    fn add_gap(&mut self, from: u64, to: u64) {
        if self.gaps.len() >= MAX_GAPS
            && let Some((a, _)) = self.gaps.pop_first()
            && let Some((_, b)) = self.gaps.pop_first()
        {
            self.gaps.insert(a, b);
        }
        self.gaps.insert(from, to);
    }

    /// Removes `seq` from the gap that holds it; whether one did.
    fn fill_gap(&mut self, seq: u64) -> bool {
        let Some((&a, &b)) = self.gaps.range(..=seq).next_back() else {
            return false;
        };
        if seq > b {
            return false;
        }
        self.gaps.remove(&a);
        if a < seq {
            self.gaps.insert(a, seq - 1);
        }
        if seq < b {
            self.gaps.insert(seq + 1, b);
        }
        true
    }
}

/// The expected checkpoint and whether the log has reached it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Anchor {
    expected: Checkpoint,
    found: bool,
    /// A seal with the anchored stream and index but another hash.
    conflicting: Option<Hash>,
}

/// Everything the checker knows after a prefix of the log: what an
/// incremental verification saves and resumes from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct CheckState {
    pub(super) report: Report,
    /// The file being read, as named to the checker.
    pub(super) file: String,
    /// Complete lines read from it.
    pub(super) line: u64,
    phase: Phase,
    /// The seq after the last sealed event (0 before any seal).
    sealed_next: u64,
    /// The seq the next event should carry.
    expected_seq: Option<u64>,
    pending: Pending,
    /// Lines no seal may cover (before the first seal, after a `close` or
    /// a `rotate` seal), as one run of lines in the current file.
    stray: Option<(u64, u64)>,
    anchor: Option<Anchor>,
    /// The last seal whose signature verified under a trusted key.
    verified_head: Option<Checkpoint>,
    /// Lines that ended in `\r` (a CRLF conversion).
    crlf_lines: u64,
    /// Tamper findings counted when the current batch began.
    batch_tamper_mark: u64,
    /// Lines of format version 1 (`{"v":1,`), which this verifier does
    /// not read.
    #[serde(default)]
    version_1_lines: u64,
}

impl CheckState {
    pub(super) fn new(expect: Option<Checkpoint>) -> Self {
        Self {
            report: Report::default(),
            file: String::new(),
            line: 0,
            phase: Phase::Start,
            sealed_next: 0,
            expected_seq: None,
            pending: Pending::default(),
            stray: None,
            anchor: expect.map(|expected| Anchor {
                expected,
                found: false,
                conflicting: None,
            }),
            verified_head: None,
            crlf_lines: 0,
            batch_tamper_mark: 0,
            version_1_lines: 0,
        }
    }

    pub(super) fn verified_head(&self) -> Option<Checkpoint> {
        self.verified_head
    }

    /// Replaces the expected checkpoint (a resumed pass checks its own).
    pub(super) fn set_expectation(&mut self, expect: Option<Checkpoint>) {
        let keep = self.anchor.take().filter(|a| Some(a.expected) == expect);
        let head = self.verified_head;
        self.anchor = keep.or_else(|| {
            expect.map(|expected| Anchor {
                expected,
                found: head == Some(expected),
                conflicting: None,
            })
        });
    }
}

/// Applies lines to a [`CheckState`].
pub(super) struct Checker<'a> {
    pub(super) verifier: &'a Verifier,
    pub(super) st: &'a mut CheckState,
}

impl Checker<'_> {
    /// Starts a new file: line numbers restart, stray runs end.
    pub(super) fn begin_file(&mut self, name: &str) {
        self.close_stray();
        self.st.file = name.to_owned();
        self.st.line = 0;
    }

    /// One complete line: `head` is its first bytes (up to the verifier's
    /// head length), `len` its full length without the newline, `leaf` its
    /// leaf hash. For a seal line, returns whether the batch it ends
    /// verified: a valid signature by a trusted key and no tamper finding
    /// since the previous seal.
    pub(super) fn line(&mut self, head: &[u8], len: u64, leaf: Hash) -> Option<bool> {
        self.st.line += 1;
        self.st.report.lines = self.st.report.lines.saturating_add(1);
        if head.last() == Some(&b'\r') && len as usize == head.len() {
            self.st.crlf_lines += 1;
        }
        match event::classify(head) {
            LineKind::Seal => {
                self.st.report.seals = self.st.report.seals.saturating_add(1);
                if len as usize > head.len() {
                    self.find_here(
                        FindingKind::Malformed,
                        format!("seal line of {len} bytes is far longer than any seal"),
                    );
                    self.seal_unreadable();
                    return Some(false);
                }
                match Seal::parse_line(head) {
                    Ok((seal, sig)) => {
                        let valid = self.seal(&seal, &sig);
                        let clean = self.st.report.tamper == self.st.batch_tamper_mark;
                        self.st.batch_tamper_mark = self.st.report.tamper;
                        Some(valid && clean)
                    }
                    Err(e) => {
                        let crlf = if head.last() == Some(&b'\r') {
                            " (the line ends in \\r: the file was converted to CRLF line endings; auditring logs end lines with \\n only)"
                        } else {
                            ""
                        };
                        self.find_here(
                            FindingKind::Malformed,
                            format!("damaged seal line: {e}{crlf}"),
                        );
                        self.seal_unreadable();
                        Some(false)
                    }
                }
            }
            LineKind::Event(header) => {
                self.st.report.events = self.st.report.events.saturating_add(1);
                self.event(Some(header), leaf);
                None
            }
            LineKind::Unknown => {
                if head.starts_with(br#"{"v":1,"kind":""#) {
                    self.st.version_1_lines += 1;
                }
                let line = self.st.line;
                self.find_run(FindingKind::Malformed, line, || {
                    "line is neither an auditring event nor a seal".into()
                });
                self.event(None, leaf);
                None
            }
        }
    }

    /// A partial line (no newline) at the end of a file that is followed by
    /// another file: a crash never leaves one there.
    pub(super) fn torn_inside(&mut self, len: u64) {
        let line = self.st.line + 1;
        self.find(
            FindingKind::Malformed,
            (line, line),
            None,
            None,
            format!(
                "the file's last line ({len} bytes) has no newline, but the log continues in the next file: a crash leaves a partial line only at the very end of a log, so this file was cut or altered"
            ),
        );
    }

    /// A resumed file no longer holds what was verified of it.
    pub(super) fn file_rewritten(&mut self, detail: String) {
        let line = self.st.line;
        self.find(FindingKind::Truncated, (line, line), None, None, detail);
    }

    /// Ends the verification: what the end of the log means.
    pub(super) fn finish(&mut self, torn: Option<u64>) {
        self.close_stray();
        if let Some(count) = (self.st.pending.count() > 0).then(|| self.st.pending.count()) {
            let lines = (self.st.pending.first_line, self.st.pending.last_line);
            let seq = self.st.pending.seq_range();
            self.find(
                FindingKind::UnsealedTail,
                lines,
                seq,
                Some(count),
                format!("{count} line(s) after the last seal are not sealed: the writer stopped (crash or truncation) before sealing them"),
            );
        }
        if let Some(len) = torn {
            let line = self.st.line + 1;
            self.find(
                FindingKind::TornLine,
                (line, line),
                None,
                None,
                format!("the last line ({len} bytes) has no newline: a write torn by a crash (or a cut); it is not part of the log"),
            );
        }
        if let Some(anchor) = self.st.anchor.clone()
            && !anchor.found
        {
            let c = anchor.expected;
            let detail = match anchor.conflicting {
                Some(hash) => format!(
                    "the log's seal #{} of stream {} has hash {}, not the expected checkpoint's {}: the log was rewritten from that seal on",
                    c.seal,
                    uuid_string(&c.stream),
                    crate::json::hex(&hash),
                    crate::json::hex(&c.hash)
                ),
                None => format!(
                    "the log does not contain the expected checkpoint, seal #{} of stream {} (next seq {}): its newest part (trailing runs or rotated files) was deleted, or files are missing",
                    c.seal,
                    uuid_string(&c.stream),
                    c.next_seq
                ),
            };
            let line = self.st.line;
            self.find(
                FindingKind::Truncated,
                (line, line),
                Some((c.next_seq.saturating_sub(1), c.next_seq.saturating_sub(1))),
                None,
                detail,
            );
        }
        match &self.st.phase {
            Phase::Start => {
                let line = self.st.line;
                let detail = if self.st.version_1_lines > 0 {
                    format!(
                        "no seal of format version 2: {} line(s) are of format version 1, written by an earlier auditring; verify them with that version's verifier",
                        self.st.version_1_lines
                    )
                } else if self.st.crlf_lines > 0 {
                    format!(
                        "no readable seal: {} line(s) end in CRLF (\\r\\n), so the file was converted to Windows line endings; convert it back (dos2unix) and verify again",
                        self.st.crlf_lines
                    )
                } else {
                    "no seal found: this is not an auditring log, or it is empty".into()
                };
                self.find(FindingKind::Empty, (line.min(1), line), None, None, detail);
            }
            Phase::After(last) if last.reason == SealReason::Close => {}
            Phase::After(last) => {
                let detail = format!(
                    "the log ends without a close seal (last seal is #{} '{}'): its writer crashed or is still running, or the log was truncated",
                    last.index, last.reason
                );
                self.find_here(FindingKind::MissingClose, detail);
            }
            Phase::Unreadable => {
                self.find_here(
                    FindingKind::MissingClose,
                    "the log ends on an unreadable seal: whether it closed cannot be told".into(),
                );
            }
        }
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
        let report = &mut self.st.report;
        match severity {
            Severity::Tamper => report.tamper = report.tamper.saturating_add(1),
            Severity::Incomplete => report.incomplete = report.incomplete.saturating_add(1),
            Severity::Info => {}
        }
        if report.findings.len() >= self.verifier.max_findings {
            report.findings_not_kept = report.findings_not_kept.saturating_add(1);
            return;
        }
        report.findings.push(Finding {
            kind,
            severity,
            file: self.st.file.clone(),
            lines,
            seq,
            count,
            detail,
        });
    }

    /// A finding about the current line alone, with no seq range.
    fn find_here(&mut self, kind: FindingKind, detail: String) {
        let line = self.st.line;
        self.find(kind, (line, line), None, None, detail);
    }

    /// Extends the previous finding if it is of the same kind and ends on
    /// the line before; otherwise adds a new one.
    fn find_run(&mut self, kind: FindingKind, line: u64, detail: impl FnOnce() -> String) {
        let file = &self.st.file;
        if let Some(last) = self.st.report.findings.last_mut()
            && last.kind == kind
            && &last.file == file
            && last.lines.1 + 1 == line
        {
            last.lines.1 = line;
            last.count = Some(last.count.unwrap_or(1).saturating_add(1));
            return;
        }
        self.find(kind, (line, line), None, Some(1), detail());
    }

    /// Whether event lines may stand here (inside a run, or after an
    /// unreadable seal).
    fn events_allowed(&self) -> bool {
        match &self.st.phase {
            Phase::Start => false,
            Phase::After(last) => !matches!(last.reason, SealReason::Close | SealReason::Rotate),
            Phase::Unreadable => true,
        }
    }

    fn event(&mut self, header: Option<event::EventHeader>, leaf: Hash) {
        let line = self.st.line;
        if !self.events_allowed() {
            let run = self.st.stray.get_or_insert((line, line));
            run.1 = line;
            return;
        }
        let p = &mut self.st.pending;
        if p.count() == 0 {
            p.first_line = line;
        }
        p.last_line = line;
        p.merkle.push(leaf);
        let Some(header) = header else {
            // Assume the unreadable line took the next seq, so one damaged
            // line does not also read as a gap.
            if let Some(e) = self.st.expected_seq.as_mut() {
                *e = e.saturating_add(1);
            }
            p.disturbed = true;
            return;
        };
        if let Phase::After(last) = &self.st.phase
            && header.stream != last.stream
        {
            let detail = format!(
                "event of stream {} inside stream {}",
                uuid_string(&header.stream),
                uuid_string(&last.stream)
            );
            self.st.pending.disturbed = true;
            self.find(
                FindingKind::Inserted,
                (line, line),
                Some((header.seq, header.seq)),
                Some(1),
                detail,
            );
            return;
        }
        let seq = header.seq;
        let p = &mut self.st.pending;
        p.lowest_seq = Some(p.lowest_seq.map_or(seq, |s| s.min(seq)));
        p.highest_seq = Some(p.highest_seq.map_or(seq, |s| s.max(seq)));
        let expected = *self.st.expected_seq.get_or_insert(seq);
        if seq == expected {
            self.st.expected_seq = Some(seq.saturating_add(1));
        } else if seq > expected {
            p.add_gap(expected, seq - 1);
            self.st.expected_seq = Some(seq.saturating_add(1));
        } else if p.fill_gap(seq) {
            p.disturbed = true;
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
            p.disturbed = true;
            self.find(
                FindingKind::Inserted,
                (line, line),
                Some((seq, seq)),
                Some(1),
                format!("event seq {seq} appears again, or out of place (expected seq {expected})"),
            );
        }
    }

    /// Reports the current run of lines that no seal may cover.
    fn close_stray(&mut self) {
        let Some((a, b)) = self.st.stray.take() else {
            return;
        };
        let detail = match &self.st.phase {
            Phase::Start => "line(s) before the first seal of the log: no seal covers them",
            Phase::After(last) if last.reason == SealReason::Rotate => {
                "line(s) after a rotate seal: the next file of a stream starts with its open seal, and no seal covers these"
            }
            _ => "line(s) after a close seal and before the next open seal: no seal covers them",
        };
        self.find(
            FindingKind::Inserted,
            (a, b),
            None,
            Some(b - a + 1),
            detail.into(),
        );
    }

    /// A seal line that could not be read: its batch cannot be checked, and
    /// the chain cannot be followed through it; the next seal resynchronises.
    fn seal_unreadable(&mut self) {
        self.close_stray();
        self.st.pending.reset();
        self.st.batch_tamper_mark = self.st.report.tamper;
        self.st.phase = Phase::Unreadable;
        self.st.expected_seq = None;
    }

    /// A readable seal line; returns whether its signature verified under
    /// a trusted key.
    fn seal(&mut self, seal: &Seal, sig: &[u8; 64]) -> bool {
        self.close_stray();
        let preimage = seal.preimage();
        let valid = match self.verifier.keys.get(&seal.key_id) {
            None => {
                self.find_here(FindingKind::UnknownKey, format!(
                    "seal #{} is signed by key {}, which is not trusted (pass its public key with --key if it is yours)",
                    seal.index, seal.key_id
                ));
                false
            }
            Some(_) if !is_low_s(sig) => {
                self.find_here(FindingKind::BadSignature, format!(
                    "seal #{} has a non-canonical (high-s) signature: auditring signs with low s only, so the signature was rewritten",
                    seal.index
                ));
                false
            }
            Some(key) if !key.verify(&preimage, sig) => {
                self.find_here(
                    FindingKind::BadSignature,
                    format!(
                        "seal #{} has an invalid signature: the seal line was altered",
                        seal.index
                    ),
                );
                false
            }
            Some(_) => true,
        };
        let hash: Hash = Sha256::digest(preimage).into();
        if seal.reason != SealReason::Recovered && seal.orphans != Orphans::NONE {
            self.find_here(
                FindingKind::Malformed,
                format!(
                    "seal #{} ('{}') commits to orphans: only a recovered seal may",
                    seal.index, seal.reason
                ),
            );
        }

        let phase = std::mem::replace(&mut self.st.phase, Phase::Start);
        let starts_run = match &phase {
            Phase::Start => self.first_seal(seal),
            Phase::Unreadable => {
                // Resynchronise on this seal: its link to the unreadable
                // one cannot be checked, its own batch still can.
                if !seal.reason.starts_stream() || seal.count > 0 {
                    self.check_batch(seal, false);
                }
                false
            }
            Phase::After(last) => self.next_seal(last, seal),
        };
        if starts_run {
            self.start_run(&phase, seal);
        }

        self.account(seal);
        self.st.phase = Phase::After(LastSeal {
            stream: seal.stream,
            index: seal.index,
            reason: seal.reason,
            hash,
            dropped_total: seal.dropped_total,
        });
        self.st.sealed_next = match seal.seq_start.checked_add(seal.count) {
            Some(next) => next,
            None => {
                self.find_here(
                    FindingKind::Malformed,
                    format!("seal #{}'s seq range overflows", seal.index),
                );
                u64::MAX
            }
        };
        self.st.expected_seq = Some(self.st.sealed_next);
        self.st.pending.reset();

        if valid {
            let checkpoint = Checkpoint {
                stream: seal.stream,
                seal: seal.index,
                next_seq: self.st.sealed_next,
                hash,
                key_id: seal.key_id,
            };
            self.st.verified_head = Some(checkpoint);
            if let Some(anchor) = self.st.anchor.as_mut() {
                let c = anchor.expected;
                if c.stream == seal.stream && c.seal == seal.index {
                    if c.hash == hash {
                        anchor.found = true;
                    } else {
                        anchor.conflicting = Some(hash);
                    }
                }
            }
        }
        valid
    }

    /// The first seal of the log. Returns whether it starts a run.
    fn first_seal(&mut self, seal: &Seal) -> bool {
        match seal.reason {
            SealReason::Open if seal.prev == GENESIS => true,
            SealReason::Open | SealReason::Recovered => {
                self.find_here(
                    FindingKind::BrokenChain,
                    format!(
                        "the first seal ('{}' #{}) does not start the log (its prev is not the genesis value): earlier files or seals are missing; pass every file of the log, oldest first",
                        seal.reason, seal.index
                    ),
                );
                self.adopt_batch(seal);
                false
            }
            _ => {
                self.find_here(
                    FindingKind::BrokenChain,
                    format!(
                        "seal #{} ('{}') comes before any opening seal: the start of the log is missing",
                        seal.index, seal.reason
                    ),
                );
                self.adopt_batch(seal);
                false
            }
        }
    }

    /// A seal that continues from `last`, by the grammar. Returns whether
    /// it starts a new run.
    fn next_seal(&mut self, last: &LastSeal, seal: &Seal) -> bool {
        use SealReason::*;
        let forbidden = |this: &mut Self, why: &str| {
            this.find_here(
                FindingKind::SealOrder,
                format!(
                    "a '{}' seal (#{}) follows '{}' seal #{}: {why}",
                    seal.reason, seal.index, last.reason, last.index
                ),
            );
        };
        match (last.reason, seal.reason) {
            // A clean shutdown: only a new run may follow.
            (Close, Open) => true,
            (Close, Recovered) => {
                forbidden(
                    self,
                    "a recovered seal continues a run that did not close, and this one closed",
                );
                true
            }
            (Close, _) => {
                forbidden(
                    self,
                    "after a close seal only the open seal of a new run may follow",
                );
                self.continue_stream(last, seal);
                false
            }
            // A file ended: its stream continues in the next file, unless
            // the writer crashed between the two files.
            (Rotate, Open) if seal.stream == last.stream => {
                self.continue_stream(last, seal);
                if seal.count != 0 {
                    self.find_here(
                        FindingKind::Malformed,
                        format!(
                            "open seal #{} seals {} event(s): an open seal seals none",
                            seal.index, seal.count
                        ),
                    );
                }
                false
            }
            (Rotate, Recovered) => true,
            (Rotate, Open) => {
                forbidden(
                    self,
                    "after a rotate seal the next file starts with an open seal of the same stream",
                );
                true
            }
            (Rotate, _) => {
                forbidden(
                    self,
                    "after a rotate seal the next file starts with an open seal of the same stream",
                );
                self.continue_stream(last, seal);
                false
            }
            // Inside a run.
            (_, Recovered) => true,
            (_, Open) => {
                forbidden(
                    self,
                    "the run before it did not close, so a new run must start with a recovered seal (an open seal hides the crash)",
                );
                true
            }
            (_, _) => {
                self.continue_stream(last, seal);
                false
            }
        }
    }

    /// Checks a seal that continues `last`'s stream: stream, index, link,
    /// drop counts, and the batch it seals.
    fn continue_stream(&mut self, last: &LastSeal, seal: &Seal) {
        let line = self.st.line;
        if seal.stream != last.stream {
            self.find_here(
                FindingKind::BrokenChain,
                format!(
                    "seal #{} belongs to stream {}, not to the open stream {}",
                    seal.index,
                    uuid_string(&seal.stream),
                    uuid_string(&last.stream)
                ),
            );
        } else if seal.index > last.index.saturating_add(1) {
            let missing = seal.index - last.index - 1;
            self.st.pending.disturbed = true;
            self.find(
                FindingKind::MissingSeals,
                (line, line),
                None,
                Some(missing),
                format!(
                    "{missing} sealed batch(es) are missing: seals #{}..#{} were removed",
                    last.index + 1,
                    seal.index - 1
                ),
            );
        } else if seal.index != last.index.saturating_add(1) {
            self.find_here(
                FindingKind::BrokenChain,
                format!(
                    "seal #{} follows seal #{}: seals repeated or out of order",
                    seal.index, last.index
                ),
            );
        } else if last.hash != seal.prev {
            self.find_here(
                FindingKind::BrokenChain,
                format!(
                    "seal #{} does not link to seal #{}: a seal was replaced",
                    seal.index, last.index
                ),
            );
        } else if last.dropped_total.checked_add(seal.dropped) != Some(seal.dropped_total) {
            self.find_here(
                FindingKind::Malformed,
                format!("seal #{}'s drop counts do not add up", seal.index),
            );
        }
        self.check_batch(seal, true);
    }

    /// Takes a seal whose place in the chain cannot be checked, but whose
    /// batch can.
    fn adopt_batch(&mut self, seal: &Seal) {
        if seal.count > 0 || self.st.pending.count() > 0 {
            self.check_batch(seal, false);
        }
    }

    /// A seal that starts a run (`open` of a new stream, or `recovered`),
    /// after `phase`.
    fn start_run(&mut self, phase: &Phase, seal: &Seal) {
        let line = self.st.line;
        self.st.report.streams = self.st.report.streams.saturating_add(1);
        let last = match phase {
            Phase::After(last) => Some(last),
            _ => None,
        };
        if let Some(last) = last {
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
            if seal.stream == last.stream {
                self.find_here(
                    FindingKind::SealOrder,
                    format!(
                        "a new run reuses stream {}: every run has a stream of its own",
                        uuid_string(&seal.stream)
                    ),
                );
            }
            if last.hash != seal.prev {
                self.find_here(FindingKind::BrokenChain, "the opening seal does not link to the seal before it: seals between them were removed or replaced".into());
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
        if seal.dropped_total != seal.dropped {
            self.find_here(
                FindingKind::Malformed,
                format!(
                    "opening seal #{}'s drop counts do not add up (a run's first seal has dropped_total = dropped)",
                    seal.index
                ),
            );
        }
        self.check_orphans(seal);
        let next = self.st.sealed_next;
        if seal.seq_start > next {
            self.find(
                FindingKind::Missing,
                (line, line),
                Some((next, seal.seq_start - 1)),
                Some(seal.seq_start - next),
                if last.is_some() {
                    format!(
                        "the new run starts at seq {} but the seals before it end at seq {}",
                        seal.seq_start, next
                    )
                } else {
                    format!(
                        "the log starts at genesis but its first seq is {}",
                        seal.seq_start
                    )
                },
            );
        } else if seal.seq_start < next {
            self.find(
                FindingKind::Inserted,
                (line, line),
                Some((seal.seq_start, next - 1)),
                Some(next - seal.seq_start),
                format!(
                    "the new run starts at seq {}, reusing seq numbers already sealed (up to {})",
                    seal.seq_start,
                    next - 1
                ),
            );
        }
    }

    /// The lines pending when a run starts are the previous run's orphans:
    /// they must be exactly what a `recovered` seal committed to (and an
    /// `open` seal commits to none).
    fn check_orphans(&mut self, seal: &Seal) {
        let count = self.st.pending.count();
        let lines = self
            .st
            .pending
            .lines()
            .unwrap_or((self.st.line, self.st.line));
        let seq = self.st.pending.seq_range();
        let committed = seal.orphans;
        if seal.reason == SealReason::Recovered {
            let root = self.st.pending.merkle.root();
            if count != committed.count || root != committed.root {
                let detail = if count == committed.count {
                    format!(
                        "the {count} line(s) after the last seal of the crashed run differ from what recovered seal #{} committed to: they were changed",
                        seal.index
                    )
                } else {
                    format!(
                        "recovered seal #{} committed to {} line(s) after the last seal of the crashed run, but {count} are there: orphaned lines were {}",
                        seal.index,
                        committed.count,
                        if count < committed.count {
                            "deleted"
                        } else {
                            "added"
                        }
                    )
                };
                self.find(FindingKind::Orphans, lines, seq, Some(count), detail);
            }
            if committed.torn > 0 {
                let line = self.st.line;
                self.find(
                    FindingKind::TornLine,
                    (line, line),
                    None,
                    None,
                    format!(
                        "recovered seal #{} records a partial last line of {} byte(s), cut off when the log was continued (a write torn by the crash)",
                        seal.index, committed.torn
                    ),
                );
            }
        }
        if count > 0 {
            self.find(
                FindingKind::UnsealedTail,
                lines,
                seq,
                Some(count),
                format!("{count} line(s) of the previous run were never sealed (the run crashed before sealing them)"),
            );
        }
    }

    /// Counts what a seal reports.
    fn account(&mut self, seal: &Seal) {
        let line = self.st.line;
        let report = &mut self.st.report;
        report.sealed_events = report.sealed_events.saturating_add(seal.count);
        report.dropped = report.dropped.saturating_add(seal.dropped);
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
    }

    /// Compares the events read since the last seal with what the seal
    /// says it covers. With `linked`, the seal's `seq_start` must also
    /// continue the seals before it.
    fn check_batch(&mut self, seal: &Seal, linked: bool) {
        let line = self.st.line;
        let count = self.st.pending.count();
        let lines = self.st.pending.lines().unwrap_or((line, line));
        let sealed_range = (seal.count > 0).then(|| {
            (
                seal.seq_start,
                seal.seq_start.saturating_add(seal.count - 1),
            )
        });
        let mut structural = self.st.pending.disturbed;

        // Seqs between the previous seal and this one that never showed up
        // (whole batches removed, or the start of this batch).
        let next = self.st.sealed_next;
        if linked && seal.seq_start > next {
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
        } else if linked && seal.seq_start < next {
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
        // Gaps inside the batch (those below its start were reported above).
        let gaps = std::mem::take(&mut self.st.pending.gaps);
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
        if let (Some((lo, hi)), Some((s_lo, s_hi))) = (self.st.pending.seq_range(), sealed_range) {
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
        if !structural && count > 0 && self.st.pending.merkle.root() != seal.root {
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
