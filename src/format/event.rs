//! Event lines and their ids.
//!
//! An event line is, byte for byte:
//!
//! ```text
//! {"seq":<n>,"id":"<uuid v7>","ts":<unix ns>,"payload":<payload json>}
//! ```
//!
//! The stream an event belongs to, and the format version, are named by the
//! seal lines around it (`docs/FORMAT.md`, section 2).

use uuid::Uuid;

use crate::format::encode::EncodeJson;
use crate::format::json;
use crate::format::redact::Redactor;

/// Appends a UUID in its lower-case hyphenated form (36 bytes).
#[inline]
pub(crate) fn write_uuid(out: &mut Vec<u8>, id: &Uuid) {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
}

/// Parses a UUID in the one form the log writes: lower-case hyphenated.
pub(crate) fn parse_uuid(s: &str) -> Option<Uuid> {
    let b = s.as_bytes();
    let canonical = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        });
    if canonical {
        Uuid::try_parse(s).ok()
    } else {
        None
    }
}

/// A small, fast generator (SplitMix64) for the random bits of ids. Ids
/// need uniqueness, not secrecy; it is seeded from the operating system.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn seeded() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            // No OS randomness: fall back to the clock and address-space
            // layout, still distinct per run.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = (t ^ (&seed as *const _ as u64)).to_le_bytes();
        }
        Self(u64::from_le_bytes(seed))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Generates UUID v7 ids (RFC 9562) that increase strictly within a stream,
/// even when capture times repeat or step backwards.
///
/// The 74 bits after the 48-bit millisecond timestamp hold a counter that
/// starts at a random value (top bit clear) each new millisecond and is
/// incremented for each further id in the same millisecond (RFC 9562 §6.2,
/// method 2).
#[derive(Debug)]
pub(crate) struct IdGenerator {
    rng: SplitMix,
    last_ms: u64,
    counter: u128,
}

const COUNTER_BITS: u32 = 74;

impl IdGenerator {
    pub(crate) fn new() -> Self {
        Self {
            rng: SplitMix::seeded(),
            last_ms: 0,
            counter: 0,
        }
    }

    fn reseed(&mut self) {
        let r = (u128::from(self.rng.next()) << 64) | u128::from(self.rng.next());
        self.counter = r & ((1 << (COUNTER_BITS - 1)) - 1);
    }

    /// The next id for an event captured at `unix_nanos`.
    pub(crate) fn next(&mut self, unix_nanos: u64) -> Uuid {
        let ms = (unix_nanos / 1_000_000).min((1 << 48) - 1);
        if ms > self.last_ms {
            self.last_ms = ms;
            self.reseed();
        } else {
            self.counter += 1;
            if self.counter >> COUNTER_BITS != 0 {
                self.last_ms += 1;
                self.reseed();
            }
        }
        let ms = self.last_ms;
        let rand_a = (self.counter >> 62) as u16 & 0x0fff;
        let rand_b = (self.counter as u64) & ((1 << 62) - 1);
        let mut id = [0u8; 16];
        id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        id[6..8].copy_from_slice(&(0x7000 | rand_a).to_be_bytes());
        id[8..].copy_from_slice(&((0b10 << 62) | rand_b).to_be_bytes());
        Uuid::from_bytes(id)
    }
}

/// Appends one event line (with its newline) and returns the range of
/// `out` holding the line without the newline (the bytes that are hashed).
pub(crate) fn write_event_line<T: EncodeJson + ?Sized>(
    out: &mut Vec<u8>,
    redactor: &Redactor,
    seq: u64,
    id: &Uuid,
    unix_nanos: u64,
    payload: &T,
) -> core::ops::Range<usize> {
    let start = out.len();
    out.extend_from_slice(EVENT_PREFIX);
    json::write_u64(out, seq);
    out.extend_from_slice(br#","id":""#);
    write_uuid(out, id);
    out.extend_from_slice(br#"","ts":"#);
    json::write_u64(out, unix_nanos);
    out.extend_from_slice(br#","payload":"#);
    payload.write_json(out, redactor);
    out.push(b'}');
    let end = out.len();
    out.push(b'\n');
    start..end
}

/// The exact bytes of one event line, without its newline: what the log
/// holds and what the leaf hash covers. For tools and for checking other
/// implementations of the format (see `docs/FORMAT.md`).
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Uuid};
/// use auditring::format::event::event_line;
///
/// let line = event_line(7, &Uuid::max(), 1_700_000_000_000_000_000, &AuditPayload::default());
/// assert!(line.starts_with(br#"{"seq":7,"id":"ffffffff-ffff-ffff-ffff-ffffffffffff","ts":1700000000000000000,"payload":{"#));
/// ```
pub fn event_line<T: EncodeJson + ?Sized>(
    seq: u64,
    id: &Uuid,
    unix_nanos: u64,
    payload: &T,
) -> Vec<u8> {
    let mut out = Vec::new();
    let range = write_event_line(&mut out, Redactor::none(), seq, id, unix_nanos, payload);
    out.truncate(range.end);
    out
}

/// An event's `ts` (nanoseconds since the Unix epoch, UTC) in the RFC 3339
/// form seal lines use, for people: `2024-11-26T10:00:00.001000000Z`.
///
/// # Examples
///
/// ```
/// use auditring::format::event::rfc3339;
///
/// assert_eq!(rfc3339(1_700_000_000_000_000_001), "2023-11-14T22:13:20.000000001Z");
/// ```
pub fn rfc3339(unix_nanos: u64) -> String {
    let mut out = Vec::with_capacity(json::RFC3339_LEN);
    json::write_rfc3339(&mut out, unix_nanos);
    String::from_utf8(out).expect("RFC 3339 text is ASCII")
}

/// What the verifier needs from an event line: its seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventHeader {
    pub(crate) seq: u64,
}

/// How every event line starts (format version 3).
pub(crate) const EVENT_PREFIX: &[u8] = br#"{"seq":"#;
/// How every seal line starts (format version 3).
pub(crate) const SEAL_PREFIX: &[u8] = br#"{"v":3,"kind":"seal","#;

/// The format version of a line written by an earlier auditring (`1` or
/// `2`: both begin `{"v":<version>,`), which this version does not read.
pub(crate) fn earlier_version(line: &[u8]) -> Option<u8> {
    match line.get(..6)? {
        br#"{"v":1"# | br#"{"v":2"# if line.get(6) == Some(&b',') => Some(line[5] - b'0'),
        _ => None,
    }
}

/// How a line presents itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Starts like an event line; header parsed.
    Event(EventHeader),
    /// Starts like a seal line.
    Seal,
    /// Neither.
    Unknown,
}

/// Classifies a line from its first bytes (at most the first 128 are
/// needed), parsing an event's seq without a JSON parser.
pub(crate) fn classify(head: &[u8]) -> LineKind {
    if head.starts_with(SEAL_PREFIX) {
        return LineKind::Seal;
    }
    let Some(rest) = head.strip_prefix(EVENT_PREFIX) else {
        return LineKind::Unknown;
    };
    let parse = || -> Option<EventHeader> {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 20 || rest.get(digits) != Some(&b',') {
            return None;
        }
        if digits > 1 && rest[0] == b'0' {
            return None;
        }
        let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        Some(EventHeader { seq })
    };
    parse().map_or(LineKind::Unknown, LineKind::Event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::AuditPayload;

    #[test]
    fn uuid_text_round_trips() {
        let id = Uuid::from_bytes(core::array::from_fn(|i| (i * 17) as u8));
        let s = id.to_string();
        let mut written = Vec::new();
        write_uuid(&mut written, &id);
        assert_eq!(written, s.as_bytes());
        assert_eq!(s, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(parse_uuid(&s), Some(id));
        assert_eq!(parse_uuid("00112233445566778899aabbccddeeff"), None);
        assert_eq!(parse_uuid("00112233-4455-6677-8899-AABBCCDDEEFF"), None);
    }

    #[test]
    fn ids_are_v7_and_strictly_increasing() {
        let mut ids = IdGenerator::new();
        let base = 1_795_681_444_028_597_435u64;
        // Same millisecond, then a step backwards, then forwards.
        let times = [base, base, base + 10, base - 5_000_000, base + 2_000_000];
        let generated: Vec<Uuid> = times.iter().map(|&t| ids.next(t)).collect();
        for id in &generated {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        assert!(generated.windows(2).all(|w| w[0] < w[1]));
        let (secs, nanos) = generated[0]
            .get_timestamp()
            .expect("a v7 id has a timestamp")
            .to_unix();
        assert_eq!(
            secs * 1_000 + u64::from(nanos) / 1_000_000,
            base / 1_000_000
        );
    }

    #[test]
    fn event_line_layout_and_header_parse() {
        let mut p = AuditPayload::default();
        p.set_action("x");
        let mut out = b"previous\n".to_vec();
        let range = write_event_line(
            &mut out,
            Redactor::none(),
            42,
            &Uuid::from_bytes([2; 16]),
            1_700_000_000_123_456_789,
            &p,
        );
        let line = &out[range.clone()];
        assert_eq!(out[range.end], b'\n');
        let text = std::str::from_utf8(line).unwrap();
        assert!(text.starts_with(
            r#"{"seq":42,"id":"02020202-0202-0202-0202-020202020202","ts":1700000000123456789,"payload":{"session_id":"","#
        ));
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["payload"]["action"], "x");
        assert_eq!(v["ts"], 1_700_000_000_123_456_789u64);
        assert_eq!(classify(line), LineKind::Event(EventHeader { seq: 42 }));
        assert_eq!(
            classify(br#"{"v":3,"kind":"seal","stream":"#),
            LineKind::Seal
        );
        assert_eq!(classify(b"garbage"), LineKind::Unknown);
        let leading_zero = text.replacen(r#""seq":42"#, r#""seq":042"#, 1);
        assert_eq!(classify(leading_zero.as_bytes()), LineKind::Unknown);
        for bad in [
            r#"{"seq":,"#,
            r#"{"seq":4x,"#,
            r#"{"seq":-4,"#,
            r#"{"seq":123456789012345678901,"#,
        ] {
            assert_eq!(classify(bad.as_bytes()), LineKind::Unknown, "{bad}");
        }
        // u64::MAX has 20 digits and is a valid seq; one more is not.
        assert_eq!(
            classify(br#"{"seq":18446744073709551615,"#),
            LineKind::Event(EventHeader { seq: u64::MAX })
        );
        assert_eq!(
            classify(br#"{"seq":18446744073709551616,"#),
            LineKind::Unknown
        );
    }

    #[test]
    fn lines_of_earlier_versions_are_recognised() {
        assert_eq!(earlier_version(br#"{"v":1,"kind":"event""#), Some(1));
        assert_eq!(earlier_version(br#"{"v":2,"kind":"seal""#), Some(2));
        assert_eq!(earlier_version(br#"{"v":3,"kind":"seal""#), None);
        assert_eq!(earlier_version(br#"{"v":21,"#), None);
        assert_eq!(earlier_version(br#"{"seq":1,"#), None);
        assert_eq!(earlier_version(b""), None);
    }
}
