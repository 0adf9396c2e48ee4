//! The streaming checker: one pass over a log's lines with bounded memory
//! and constant work per byte, enforcing the seal grammar, the chain, seq
//! continuity, every batch's Merkle root and the orphan commitments.
//!
//! Event lines are never parsed as JSON: their `stream` and `seq` come from
//! the fixed line prefix and their exact bytes are hashed. Seal lines are
//! parsed and must be in canonical form; what a seal means is checked in
//! `seals.rs`.

use std::collections::BTreeMap;
use uuid::Uuid;

use serde::{Deserialize, Serialize};

use super::report::{Finding, FindingKind, Report, Severity};
use crate::format::checkpoint::Checkpoint;
use crate::format::event::{self, LineKind};
use crate::format::merkle::{Hash, MerkleBuilder};
use crate::format::seal::{Seal, SealReason};

use super::Verifier;

/// At most this many seq gaps are tracked inside one batch to tell a late
/// (reordered) event from an inserted one; beyond it the two lowest gaps
/// are merged. Each event costs O(log MAX_GAPS) whatever the input.
const MAX_GAPS: usize = 1024;

/// The last seal read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct LastSeal {
    pub(super) stream: Uuid,
    pub(super) index: u64,
    pub(super) reason: SealReason,
    /// Hash of its preimage.
    pub(super) hash: Hash,
    pub(super) dropped_total: u64,
}

/// Where the log stands between two lines.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Phase {
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
pub(super) struct Pending {
    pub(super) merkle: MerkleBuilder,
    pub(super) first_line: u64,
    pub(super) last_line: u64,
    pub(super) lowest_seq: Option<u64>,
    pub(super) highest_seq: Option<u64>,
    /// Seq ranges skipped inside this batch (start -> end, inclusive),
    /// still possibly late.
    pub(super) gaps: BTreeMap<u64, u64>,
    /// A structural problem already reported for this batch, so a root
    /// mismatch is explained.
    pub(super) disturbed: bool,
}

impl Pending {
    pub(super) fn count(&self) -> u64 {
        self.merkle.len()
    }

    pub(super) fn lines(&self) -> Option<(u64, u64)> {
        (self.count() > 0).then_some((self.first_line, self.last_line))
    }

    pub(super) fn seq_range(&self) -> Option<(u64, u64)> {
        Some((self.lowest_seq?, self.highest_seq?))
    }

    pub(super) fn reset(&mut self) {
        self.merkle.reset();
        self.first_line = 0;
        self.last_line = 0;
        self.lowest_seq = None;
        self.highest_seq = None;
        self.gaps.clear();
        self.disturbed = false;
    }

    /// Records a gap, merging the two lowest when too many are tracked.
    pub(super) fn add_gap(&mut self, from: u64, to: u64) {
        if self.gaps.len() >= MAX_GAPS
            && let Some((a, _)) = self.gaps.pop_first()
            && let Some((_, b)) = self.gaps.pop_first()
        {
            self.gaps.insert(a, b);
        }
        self.gaps.insert(from, to);
    }

    /// Removes `seq` from the gap that holds it; whether one did.
    pub(super) fn fill_gap(&mut self, seq: u64) -> bool {
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
pub(super) struct Anchor {
    pub(super) expected: Checkpoint,
    pub(super) found: bool,
    /// A seal with the anchored stream and index but another hash.
    pub(super) conflicting: Option<Hash>,
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
    pub(super) phase: Phase,
    /// The seq after the last sealed event (0 before any seal).
    pub(super) sealed_next: u64,
    /// The seq the next event should carry.
    pub(super) expected_seq: Option<u64>,
    pub(super) pending: Pending,
    /// Lines no seal may cover (before the first seal, after a `close` or
    /// a `rotate` seal), as one run of lines in the current file.
    pub(super) stray: Option<(u64, u64)>,
    pub(super) anchor: Option<Anchor>,
    /// The last seal whose signature verified under a trusted key.
    pub(super) verified_head: Option<Checkpoint>,
    /// Lines that ended in `\r` (a CRLF conversion).
    pub(super) crlf_lines: u64,
    /// Tamper findings counted when the current batch began.
    pub(super) batch_tamper_mark: u64,
    /// Lines of an earlier format version (`{"v":1,` or `{"v":2,`), which
    /// this verifier does not read, and the latest such version seen.
    #[serde(default)]
    earlier_version_lines: u64,
    #[serde(default)]
    earlier_version: u8,
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
            earlier_version_lines: 0,
            earlier_version: 0,
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
                if let Some(v) = event::earlier_version(head) {
                    self.st.earlier_version_lines += 1;
                    self.st.earlier_version = self.st.earlier_version.max(v);
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
                    c.stream,
                    crate::format::json::hex(&hash),
                    crate::format::json::hex(&c.hash)
                ),
                None => format!(
                    "the log does not contain the expected checkpoint, seal #{} of stream {} (next seq {}): its newest part (trailing runs or rotated files) was deleted, or files are missing",
                    c.seal, c.stream, c.next_seq
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
                let detail = if self.st.earlier_version_lines > 0 {
                    format!(
                        "no seal of format version {}: {} line(s) are of format version {}, written by an earlier auditring; verify them with that version's verifier",
                        crate::format::seal::FORMAT_VERSION,
                        self.st.earlier_version_lines,
                        self.st.earlier_version
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

    pub(super) fn find(
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
    pub(super) fn find_here(&mut self, kind: FindingKind, detail: String) {
        let line = self.st.line;
        self.find(kind, (line, line), None, None, detail);
    }

    /// Extends the previous finding if it is of the same kind and ends on
    /// the line before; otherwise adds a new one.
    pub(super) fn find_run(
        &mut self,
        kind: FindingKind,
        line: u64,
        detail: impl FnOnce() -> String,
    ) {
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
    pub(super) fn events_allowed(&self) -> bool {
        match &self.st.phase {
            Phase::Start => false,
            Phase::After(last) => !matches!(last.reason, SealReason::Close | SealReason::Rotate),
            Phase::Unreadable => true,
        }
    }

    pub(super) fn event(&mut self, header: Option<event::EventHeader>, leaf: Hash) {
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
    pub(super) fn close_stray(&mut self) {
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
    pub(super) fn seal_unreadable(&mut self) {
        self.close_stray();
        self.st.pending.reset();
        self.st.batch_tamper_mark = self.st.report.tamper;
        self.st.phase = Phase::Unreadable;
        self.st.expected_seq = None;
    }
}
