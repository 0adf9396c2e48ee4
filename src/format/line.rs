//! The one reader of log lines: every part of auditring that reads a line
//! back (the verifier, `FileSink`'s continuation, the tracing sink, and the
//! command's `tail` and `stats`) reads it through here, so they cannot
//! disagree about the format.
//!
//! An event line is recognised by its fixed prefix (its seq, read without
//! a JSON parser, as the verifier does); its other fields are read from the
//! line, the payload borrowed. A seal line must be in canonical form
//! ([`Seal::parse_line`]).

use core::fmt;
use uuid::Uuid;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::format::event::{self, LineKind};
use crate::format::seal::{Seal, SealLineError};

/// One line of a log, read.
///
/// # Examples
///
/// ```
/// use auditring::format::line::{Line, read};
/// use auditring::{AuditPayload, Uuid};
/// use auditring::format::event::event_line;
///
/// let mut payload = AuditPayload::default();
/// payload.set_action("http.get");
/// let bytes = event_line(7, &Uuid::max(), 0, &payload);
/// let Ok(Line::Event(event)) = read(&bytes) else { panic!("an event line") };
/// assert_eq!(event.seq, 7);
/// assert!(event.payload.starts_with(r#"{"session_id":"#));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Line<'a> {
    /// An event line.
    Event(EventLine<'a>),
    /// A seal line, with its signature (`r || s`).
    Seal(Box<Seal>, [u8; 64]),
}

/// The fields of an event line. The stream it belongs to is the stream of
/// the seals around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventLine<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Its UUID v7.
    pub id: Uuid,
    /// Its capture time, nanoseconds since the Unix epoch (UTC).
    pub ts: u64,
    /// Its payload: the JSON object exactly as written.
    pub payload: &'a str,
}

/// A line that is not a readable event or seal line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// Neither an event nor a seal line of this format version.
    Unknown,
    /// Starts like an event line, but its fields cannot be read.
    Event(String),
    /// Starts like a seal line, but is not one in canonical form.
    Seal(SealLineError),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Unknown => f.write_str("neither an auditring event nor a seal line"),
            LineError::Event(e) => write!(f, "damaged event line: {e}"),
            LineError::Seal(e) => write!(f, "damaged seal line: {e}"),
        }
    }
}

impl std::error::Error for LineError {}

/// Reads one line (without its newline).
///
/// # Errors
///
/// [`LineError`] saying what the line is not.
pub fn read(line: &[u8]) -> Result<Line<'_>, LineError> {
    match event::classify(line) {
        LineKind::Seal => Seal::parse_line(line)
            .map(|(seal, sig)| Line::Seal(Box::new(seal), sig))
            .map_err(LineError::Seal),
        LineKind::Event(header) => {
            #[derive(Deserialize)]
            struct Fields<'a> {
                id: &'a str,
                ts: u64,
                #[serde(borrow)]
                payload: &'a RawValue,
            }
            let fields: Fields<'_> =
                serde_json::from_slice(line).map_err(|e| LineError::Event(e.to_string()))?;
            let id = event::parse_uuid(fields.id).ok_or_else(|| {
                LineError::Event(format!(
                    "the id {:?} is not a lower-case hyphenated UUID",
                    fields.id
                ))
            })?;
            Ok(Line::Event(EventLine {
                seq: header.seq,
                id,
                ts: fields.ts,
                payload: fields.payload.get(),
            }))
        }
        LineKind::Unknown => Err(LineError::Unknown),
    }
}

/// Whether `line` starts as a seal line of this format version does. Only
/// the first bytes are looked at: [`read`] tells whether it is one.
///
/// # Examples
///
/// ```
/// use auditring::format::line::starts_as_seal;
///
/// assert!(starts_as_seal(br#"{"v":3,"kind":"seal","stream":"#));
/// assert!(!starts_as_seal(br#"{"seq":0,"id":"#));
/// ```
pub fn starts_as_seal(line: &[u8]) -> bool {
    line.starts_with(event::SEAL_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::AuditPayload;

    #[test]
    fn events_seals_and_others_are_told_apart() {
        let mut p = AuditPayload::default();
        p.set_action("x");
        let line = crate::format::event::event_line(
            42,
            &Uuid::from_bytes([0xab; 16]),
            1_700_000_000_000_000_001,
            &p,
        );
        match read(&line) {
            Ok(Line::Event(e)) => {
                assert_eq!(e.seq, 42);
                assert_eq!(e.id, Uuid::from_bytes([0xab; 16]));
                assert_eq!(e.ts, 1_700_000_000_000_000_001);
                assert!(e.payload.contains(r#""action":"x""#));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read(b"hello").unwrap_err(), LineError::Unknown);
        assert!(matches!(
            read(br#"{"v":3,"kind":"seal","stream":"x"}"#),
            Err(LineError::Seal(_))
        ));
        // A line of an earlier format version is neither.
        assert_eq!(
            read(br#"{"v":2,"kind":"event","stream":"x","seq":1,"#).unwrap_err(),
            LineError::Unknown
        );
        // A timestamp that is not an unsigned integer is a damaged line.
        let text = String::from_utf8(line.clone()).unwrap();
        for ts in [r#""ts":"1700000000000000001""#, r#""ts":-1"#, r#""ts":1.5"#] {
            let changed = text.replace(r#""ts":1700000000000000001"#, ts);
            assert!(
                matches!(read(changed.as_bytes()), Err(LineError::Event(_))),
                "{ts}"
            );
        }
        let mut broken = line.clone();
        broken.truncate(line.len() - 5);
        assert!(matches!(read(&broken), Err(LineError::Event(_))));
        // An id in another spelling than the log's one form is refused.
        let text = String::from_utf8(line).unwrap();
        let id = Uuid::from_bytes([0xab; 16]).to_string();
        for other in [id.to_uppercase(), id.replace('-', ""), format!("{{{id}}}")] {
            let changed = text.replace(&id, &other);
            assert!(
                matches!(read(changed.as_bytes()), Err(LineError::Event(_))),
                "{other}"
            );
        }
    }
}
