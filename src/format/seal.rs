//! Seals: the signed records that close each batch and chain the log.
//!
//! A seal commits to a batch's events through their Merkle root, to the
//! previous seal through the hash of its preimage, and to the loss the ring
//! counted since the previous seal. The signature covers a fixed-layout
//! binary preimage (see [`Seal::preimage`] and `docs/FORMAT.md`), never a
//! JSON rendering, and the chain links on the preimage's hash, not on the
//! (malleable) signature bytes.

use core::fmt;
use uuid::Uuid;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::event::SEAL_PREFIX;
use crate::format::json::{self, RFC3339_LEN};
use crate::format::keys::{KeyId, SigningKey};
use crate::format::merkle::{EMPTY_ROOT, Hash};

/// Version of the log format, written in every seal line's `v` field.
pub const FORMAT_VERSION: u64 = 3;

/// The first 16 bytes of every seal preimage.
pub const PREIMAGE_TAG: &[u8; 16] = b"auditring.seal.3";

/// Length of a seal preimage in bytes.
pub const PREIMAGE_LEN: usize =
    16 + 16 + 8 + 1 + 8 + 8 + 32 + 32 + 8 + 8 + 8 + 8 + 32 + 8 + RFC3339_LEN + 32;

/// The `prev` of the very first seal of a log: 32 zero bytes.
pub const GENESIS: Hash = [0; 32];

/// What a run that continues a crashed log found after that log's last
/// seal, committed to by its `recovered` seal: the complete lines nothing
/// sealed (the orphans) and the partial line cut off.
///
/// Deleting, changing or adding an orphan line after recovery breaks the
/// commitment, so orphans stay "authentic but incomplete" and cannot be
/// removed unnoticed.
///
/// # Examples
///
/// ```
/// use auditring::format::seal::Orphans;
/// assert_eq!(Orphans::NONE.count, 0);
/// assert_eq!(Orphans::NONE.root, auditring::format::merkle::empty_root());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orphans {
    /// Complete lines after the last seal.
    pub count: u64,
    /// RFC 6962 Merkle root of those lines, hashed like a batch's events.
    pub root: Hash,
    /// Length in bytes of the partial last line (no newline) that the
    /// recovering writer cut off; 0 if there was none.
    pub torn: u64,
}

impl Orphans {
    /// Nothing found: the value on every seal but `recovered`.
    pub const NONE: Orphans = Orphans {
        count: 0,
        root: EMPTY_ROOT,
        torn: 0,
    };
}

impl Default for Orphans {
    fn default() -> Self {
        Self::NONE
    }
}

/// Where a new run continues a log: the last seal's hash and the next
/// sequence number.
///
/// # Examples
///
/// ```
/// use auditring::format::seal::ChainHead;
/// let fresh = ChainHead::genesis();
/// assert_eq!(fresh.next_seq, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Hash of the last seal's preimage ([`GENESIS`] for a new log).
    pub prev: Hash,
    /// The `seq` the next event gets.
    pub next_seq: u64,
    /// Whether the previous run ended with a close seal. A run that
    /// continues an unclosed log opens with reason `recovered`.
    pub previous_closed: bool,
    /// What the log holds after its last seal, when the previous run did
    /// not close: the `recovered` seal commits to it.
    pub orphans: Orphans,
}

impl ChainHead {
    /// The head of a new, empty log.
    pub fn genesis() -> Self {
        Self {
            prev: GENESIS,
            next_seq: 0,
            previous_closed: true,
            orphans: Orphans::NONE,
        }
    }
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::genesis()
    }
}

/// Why a seal was written.
///
/// # Examples
///
/// ```
/// use auditring::format::seal::SealReason;
/// assert_eq!(SealReason::Timer.as_str(), "timer");
/// assert_eq!(SealReason::from_name("close"), Some(SealReason::Close));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SealReason {
    /// Starts a run (a stream). Seals no events.
    Open,
    /// The batch reached `max_batch` events.
    Size,
    /// The batch's oldest event reached `max_delay`.
    Timer,
    /// Ends a clean shutdown; seals the last events.
    Close,
    /// Ends a file before rotation; seals its last events.
    Rotate,
    /// Starts a run that continues a log whose previous run did not close.
    Recovered,
    /// Seals no events: written when the run has been idle (no seal) for
    /// the runtime's heartbeat interval, a signed proof that the gateway
    /// is alive and its chain is not stalled.
    Heartbeat,
}

impl SealReason {
    /// The code used in the preimage.
    pub const fn code(self) -> u8 {
        match self {
            SealReason::Open => 0,
            SealReason::Size => 1,
            SealReason::Timer => 2,
            SealReason::Close => 3,
            SealReason::Rotate => 4,
            SealReason::Recovered => 5,
            SealReason::Heartbeat => 6,
        }
    }

    /// The name used in the seal line.
    pub const fn as_str(self) -> &'static str {
        match self {
            SealReason::Open => "open",
            SealReason::Size => "size",
            SealReason::Timer => "timer",
            SealReason::Close => "close",
            SealReason::Rotate => "rotate",
            SealReason::Recovered => "recovered",
            SealReason::Heartbeat => "heartbeat",
        }
    }

    /// The reason with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            SealReason::Open,
            SealReason::Size,
            SealReason::Timer,
            SealReason::Close,
            SealReason::Rotate,
            SealReason::Recovered,
            SealReason::Heartbeat,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }

    /// Whether this reason starts a stream.
    pub const fn starts_stream(self) -> bool {
        matches!(self, SealReason::Open | SealReason::Recovered)
    }
}

impl fmt::Display for SealReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed content of one seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    /// The stream (run) id: a UUID v7, raw bytes.
    pub stream: Uuid,
    /// Index of this seal within its stream; the opening seal is 0.
    pub index: u64,
    /// Why the seal was written.
    pub reason: SealReason,
    /// `seq` of the first sealed event (the next `seq` when `count` is 0).
    pub seq_start: u64,
    /// Number of sealed events: they carry `seq_start .. seq_start + count`.
    pub count: u64,
    /// RFC 6962 Merkle root of the sealed events' lines.
    pub root: Hash,
    /// Hash of the previous seal's preimage ([`GENESIS`] for the first).
    pub prev: Hash,
    /// Events the ring dropped since the previous seal of this stream.
    pub dropped: u64,
    /// Events the ring dropped since this stream opened.
    pub dropped_total: u64,
    /// Sink write failures since the previous seal of this stream.
    pub sink_errors: u64,
    /// What a `recovered` seal found after the last seal of the run it
    /// continues; [`Orphans::NONE`] on every other seal.
    pub orphans: Orphans,
    /// When the seal was made, Unix-epoch nanoseconds.
    pub unix_nanos: u64,
    /// Id of the key that signs the seal.
    pub key_id: KeyId,
}

impl Seal {
    /// The exact bytes that are signed and hashed. All integers are
    /// big-endian:
    ///
    /// | bytes | field |
    /// |---|---|
    /// | 16 | ASCII `auditring.seal.3` |
    /// | 16 | stream UUID |
    /// | 8 | index |
    /// | 1 | reason code |
    /// | 8 | seq_start |
    /// | 8 | count |
    /// | 32 | root |
    /// | 32 | prev |
    /// | 8 | dropped |
    /// | 8 | dropped_total |
    /// | 8 | sink_errors |
    /// | 8 | orphans: complete event lines after the continued run's last seal |
    /// | 32 | orphan_root: their Merkle root |
    /// | 8 | torn: bytes of the partial line the recovering writer cut off |
    /// | 30 | ASCII RFC 3339 timestamp, exactly as in the line's `ts` |
    /// | 32 | key id |
    pub fn preimage(&self) -> [u8; PREIMAGE_LEN] {
        let mut ts = Vec::with_capacity(RFC3339_LEN);
        json::write_rfc3339(&mut ts, self.unix_nanos);
        let mut out = [0u8; PREIMAGE_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(PREIMAGE_TAG);
        put(self.stream.as_bytes());
        put(&self.index.to_be_bytes());
        put(&[self.reason.code()]);
        put(&self.seq_start.to_be_bytes());
        put(&self.count.to_be_bytes());
        put(&self.root);
        put(&self.prev);
        put(&self.dropped.to_be_bytes());
        put(&self.dropped_total.to_be_bytes());
        put(&self.sink_errors.to_be_bytes());
        put(&self.orphans.count.to_be_bytes());
        put(&self.orphans.root);
        put(&self.orphans.torn.to_be_bytes());
        put(&ts);
        put(&self.key_id.0);
        debug_assert_eq!(at, PREIMAGE_LEN);
        out
    }

    /// SHA-256 of the preimage: what the next seal's `prev` holds.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.preimage()).into()
    }

    /// Signs the seal with `key`: ECDSA P-256 with SHA-256 over its
    /// [preimage](Seal::preimage), deterministic (RFC 6979); the signature
    /// as `r || s`, always in low-s form (`s <= n / 2`).
    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.preimage())
    }

    /// The seal line for this seal and signature, without its newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::{SigningKey, Uuid};
    /// use auditring::format::seal::{Seal, SealReason, GENESIS};
    ///
    /// let key = SigningKey::generate();
    /// let seal = Seal {
    ///     stream: Uuid::from_bytes([1; 16]), index: 0, reason: SealReason::Open, seq_start: 0, count: 0,
    ///     root: auditring::format::merkle::empty_root(), prev: GENESIS, dropped: 0,
    ///     dropped_total: 0, sink_errors: 0, orphans: auditring::format::seal::Orphans::NONE, unix_nanos: 0,
    ///     key_id: key.key_id(),
    /// };
    /// let line = seal.to_line(&seal.sign(&key));
    /// assert_eq!(Seal::parse_line(&line).unwrap().0, seal);
    /// ```
    pub fn to_line(&self, signature: &[u8; 64]) -> Vec<u8> {
        let mut out = Vec::with_capacity(700);
        self.write_line(signature, &mut out);
        out.pop();
        out
    }

    /// Appends the seal line (with its newline) to `out`.
    pub(crate) fn write_line(&self, signature: &[u8; 64], out: &mut Vec<u8>) {
        out.extend_from_slice(SEAL_PREFIX);
        out.extend_from_slice(br#""stream":""#);
        crate::format::event::write_uuid(out, &self.stream);
        out.extend_from_slice(br#"","seal":"#);
        json::write_u64(out, self.index);
        out.extend_from_slice(br#","reason":""#);
        out.extend_from_slice(self.reason.as_str().as_bytes());
        out.extend_from_slice(br#"","seq_start":"#);
        json::write_u64(out, self.seq_start);
        out.extend_from_slice(br#","count":"#);
        json::write_u64(out, self.count);
        out.extend_from_slice(br#","root":""#);
        json::write_hex(out, &self.root);
        out.extend_from_slice(br#"","prev":""#);
        json::write_hex(out, &self.prev);
        out.extend_from_slice(br#"","dropped":"#);
        json::write_u64(out, self.dropped);
        out.extend_from_slice(br#","dropped_total":"#);
        json::write_u64(out, self.dropped_total);
        out.extend_from_slice(br#","sink_errors":"#);
        json::write_u64(out, self.sink_errors);
        out.extend_from_slice(br#","orphans":"#);
        json::write_u64(out, self.orphans.count);
        out.extend_from_slice(br#","orphan_root":""#);
        json::write_hex(out, &self.orphans.root);
        out.extend_from_slice(br#"","torn":"#);
        json::write_u64(out, self.orphans.torn);
        out.extend_from_slice(br#","ts":""#);
        json::write_rfc3339(out, self.unix_nanos);
        out.extend_from_slice(br#"","key_id":""#);
        json::write_hex(out, &self.key_id.0);
        out.extend_from_slice(br#"","sig":""#);
        json::write_hex(out, signature);
        out.extend_from_slice(b"\"}\n");
    }

    /// Parses a seal line (without its newline). The line must be exactly
    /// what [`to_line`](Seal::to_line) writes for its fields: any
    /// other spelling (spaces, key order, upper-case hex, extra fields) is
    /// refused, so no byte of a seal line can change unnoticed.
    ///
    /// # Errors
    ///
    /// A [`SealLineError`] saying what is wrong.
    pub fn parse_line(line: &[u8]) -> Result<(Seal, [u8; 64]), SealLineError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw<'a> {
            v: u64,
            kind: &'a str,
            stream: &'a str,
            seal: u64,
            reason: &'a str,
            seq_start: u64,
            count: u64,
            root: &'a str,
            prev: &'a str,
            dropped: u64,
            dropped_total: u64,
            sink_errors: u64,
            orphans: u64,
            orphan_root: &'a str,
            torn: u64,
            ts: &'a str,
            key_id: &'a str,
            sig: &'a str,
        }
        let raw: Raw<'_> = serde_json::from_slice(line)
            .map_err(|e| SealLineError(format!("not a seal line: {e}")))?;
        if raw.v != FORMAT_VERSION {
            return Err(SealLineError(format!(
                "unsupported format version {}",
                raw.v
            )));
        }
        if raw.kind != "seal" {
            return Err(SealLineError(format!(
                "kind is {:?}, not \"seal\"",
                raw.kind
            )));
        }
        let bad = |field: &str| SealLineError(format!("field {field:?} is malformed"));
        let seal = Seal {
            stream: crate::format::event::parse_uuid(raw.stream).ok_or_else(|| bad("stream"))?,
            index: raw.seal,
            reason: SealReason::from_name(raw.reason).ok_or_else(|| bad("reason"))?,
            seq_start: raw.seq_start,
            count: raw.count,
            root: json::unhex(raw.root).ok_or_else(|| bad("root"))?,
            prev: json::unhex(raw.prev).ok_or_else(|| bad("prev"))?,
            dropped: raw.dropped,
            dropped_total: raw.dropped_total,
            sink_errors: raw.sink_errors,
            orphans: Orphans {
                count: raw.orphans,
                root: json::unhex(raw.orphan_root).ok_or_else(|| bad("orphan_root"))?,
                torn: raw.torn,
            },
            unix_nanos: json::parse_rfc3339(raw.ts).ok_or_else(|| bad("ts"))?,
            key_id: KeyId(json::unhex(raw.key_id).ok_or_else(|| bad("key_id"))?),
        };
        let sig = json::unhex::<64>(raw.sig).ok_or_else(|| bad("sig"))?;
        let mut canonical = Vec::with_capacity(line.len() + 1);
        seal.write_line(&sig, &mut canonical);
        if canonical[..canonical.len() - 1] != *line {
            return Err(SealLineError(
                "not in canonical form (spacing, field order or number spelling differs)".into(),
            ));
        }
        Ok((seal, sig))
    }
}

/// A line that claims to be a seal but cannot be read as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealLineError(pub String);

impl fmt::Display for SealLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SealLineError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Seal {
        Seal {
            stream: Uuid::from_bytes([7; 16]),
            index: 3,
            reason: SealReason::Size,
            seq_start: 1024,
            count: 512,
            root: [1; 32],
            prev: [2; 32],
            dropped: 4,
            dropped_total: 9,
            sink_errors: 1,
            orphans: Orphans {
                count: 5,
                root: [4; 32],
                torn: 17,
            },
            unix_nanos: 1_795_681_444_028_597_435,
            key_id: KeyId([3; 32]),
        }
    }

    #[test]
    fn preimage_layout_is_fixed() {
        let p = sample().preimage();
        assert_eq!(p.len(), 255);
        assert_eq!(&p[..16], b"auditring.seal.3");
        assert_eq!(&p[16..32], &[7; 16]);
        assert_eq!(&p[32..40], &3u64.to_be_bytes());
        assert_eq!(p[40], 1);
        assert_eq!(&p[41..49], &1024u64.to_be_bytes());
        assert_eq!(&p[137..145], &1u64.to_be_bytes());
        assert_eq!(&p[145..153], &5u64.to_be_bytes());
        assert_eq!(&p[153..185], &[4; 32]);
        assert_eq!(&p[185..193], &17u64.to_be_bytes());
        assert_eq!(&p[193..223], b"2026-11-26T08:24:04.028597435Z");
        assert_eq!(&p[223..], &[3; 32]);
    }

    #[test]
    fn line_round_trips_and_every_field_is_bound() {
        let seal = sample();
        let mut line = Vec::new();
        seal.write_line(&[0xab; 64], &mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        let (parsed, sig) = Seal::parse_line(body).unwrap();
        assert_eq!(parsed, seal);
        assert_eq!(sig, [0xab; 64]);
        // Changing any field changes the hash.
        let mut other = seal.clone();
        other.dropped += 1;
        assert_ne!(other.hash(), seal.hash());
    }

    #[test]
    fn non_canonical_spellings_are_refused() {
        let mut line = Vec::new();
        sample().write_line(&[0xab; 64], &mut line);
        let body = String::from_utf8(line[..line.len() - 1].to_vec()).unwrap();
        for variant in [
            body.replacen(r#""seal":3"#, r#""seal": 3"#, 1),
            body.replacen("abab", "ABAB", 1),
            body.replacen(r#"{"v":3,"#, r#"{"v":3,"extra":0,"#, 1),
            body.replacen(r#""reason":"size""#, r#""reason":"bogus""#, 1),
            body.replacen(r#""v":3"#, r#""v":2"#, 1),
            body.replacen(r#"{"v":3,"kind":"seal","#, r#"{"kind":"seal","v":3,"#, 1),
            body.replacen(r#""torn":17"#, r#""torn":017"#, 1),
            body.replacen("2026-11-26", "2026-02-30", 1),
        ] {
            assert_ne!(variant, body);
            assert!(Seal::parse_line(variant.as_bytes()).is_err(), "{variant}");
        }
        assert!(Seal::parse_line(b"not json").is_err());
        assert!(Seal::parse_line(b"{}").is_err());
    }
}
