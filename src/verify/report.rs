//! What verification found: findings, their severity, the verdict and the
//! report, apart from the checker that produces them.

use core::fmt;

use serde::{Deserialize, Serialize};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A seal whose reason may not follow the seal before it (the seal
    /// grammar of `docs/FORMAT.md`, section 6.2).
    SealOrder,
    /// Orphaned lines (after the last seal of a run that did not close)
    /// that differ from what the `recovered` seal committed to.
    Orphans,
    /// The log does not contain the seal an expected checkpoint names:
    /// its newest part was deleted or rewritten.
    Truncated,
    /// A last line without its newline (a write torn by a crash), or a
    /// partial line a recovering writer cut off.
    TornLine,
}

impl FindingKind {
    /// The severity of this kind of finding.
    pub fn severity(self) -> Severity {
        use FindingKind::*;
        match self {
            Modified | Missing | MissingSeals | Inserted | Reordered | BadSignature
            | UnknownKey | BrokenChain | Malformed | SealOrder | Orphans | Truncated => {
                Severity::Tamper
            }
            UnsealedTail | MissingClose | Loss | Empty | TornLine => Severity::Incomplete,
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
            SealOrder => "seal_order",
            Orphans => "orphans",
            Truncated => "truncated",
            TornLine => "torn_line",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem (or notable fact) found in a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Every finding kind, in the order `docs/FORMAT.md` lists them.
pub const ALL_KINDS: [FindingKind; 19] = {
    use FindingKind::*;
    [
        Modified,
        Missing,
        MissingSeals,
        Inserted,
        Reordered,
        BadSignature,
        UnknownKey,
        BrokenChain,
        Malformed,
        SealOrder,
        Orphans,
        Truncated,
        UnsealedTail,
        MissingClose,
        Loss,
        Empty,
        TornLine,
        SinkErrors,
        Restart,
    ]
};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_kinds_lists_each_kind_once() {
        for (i, kind) in ALL_KINDS.iter().enumerate() {
            assert_eq!(ALL_KINDS.iter().position(|k| k == kind), Some(i));
        }
    }
}
