//! The seal half of the checker: a seal's signature, its place in the
//! seal grammar and the chain, the run it starts or continues, the orphans
//! a `recovered` seal commits to, and the batch it seals.

use sha2::{Digest, Sha256};

use super::check::{Checker, LastSeal, Phase};
use super::report::FindingKind;
use crate::format::checkpoint::Checkpoint;
use crate::format::keys::is_low_s;
use crate::format::merkle::Hash;
use crate::format::seal::{GENESIS, Orphans, Seal, SealReason};

impl Checker<'_> {
    /// A readable seal line; returns whether its signature verified under
    /// a trusted key.
    pub(super) fn seal(&mut self, seal: &Seal, sig: &[u8; 64]) -> bool {
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
                    seal.index, seal.stream, last.stream
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
                    seal.stream
                )
            } else {
                format!(
                    "a new run starts (stream {}) after the previous run ended without a close seal (crash)",
                    seal.stream
                )
            };
            self.find_here(FindingKind::Restart, detail);
            if seal.stream == last.stream {
                self.find_here(
                    FindingKind::SealOrder,
                    format!(
                        "a new run reuses stream {}: every run has a stream of its own",
                        seal.stream
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
