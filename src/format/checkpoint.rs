//! Checkpoints: the small fact, kept outside the log, that makes deleting
//! the log's newest part detectable.
//!
//! Nothing inside a log can prove that nothing came after its last seal:
//! whoever can write the file can cut it right after any seal, or delete
//! the newest rotated files, and what remains verifies. A checkpoint names
//! one seal (stream, index, preimage hash) and the seq that follows it.
//! Kept elsewhere (another host, a ticket, the fleet collector), it lets a
//! verifier demand that the log still contains that seal, unchanged.

use core::fmt;
use uuid::Uuid;

use serde::{Deserialize, Serialize};

use crate::format::event::parse_uuid;
use crate::format::json;
use crate::format::keys::KeyId;
use crate::format::merkle::Hash;
use crate::format::seal::Seal;

/// A seal a log must contain: what `auditring head` prints and
/// `auditring verify --expect` checks.
///
/// Its JSON form is one object on one line:
///
/// ```text
/// {"stream":"<uuid>","seal":<n>,"next_seq":<n>,"hash":"<64 hex>","key_id":"<64 hex>"}
/// ```
///
/// # Examples
///
/// ```
/// use auditring::Checkpoint;
///
/// let text = r#"{"stream":"01936b2a-5f00-7c3a-8d4e-2b1f0a9c7e15","seal":1,"next_seq":2,"hash":"dae3d0308712969e8d02be596eff7977f7b23039e51eeb2d63af58245c836ce1","key_id":"2ccc9e07ae14b04a61d81de1703f440e7e89c6da45d1782ee5902f2933f6fdb0"}"#;
/// let checkpoint = Checkpoint::from_json(text)?;
/// assert_eq!(checkpoint.seal, 1);
/// assert_eq!(checkpoint.to_json(), text);
/// # Ok::<(), auditring::CheckpointError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The stream (run) of the seal.
    pub stream: Uuid,
    /// The seal's index within its stream.
    pub seal: u64,
    /// The seq of the first event after the seal.
    pub next_seq: u64,
    /// SHA-256 of the seal's preimage.
    pub hash: Hash,
    /// The key that signed the seal.
    pub key_id: KeyId,
}

impl Checkpoint {
    /// The checkpoint of a seal.
    pub fn of_seal(seal: &Seal) -> Self {
        Self {
            stream: seal.stream,
            seal: seal.index,
            next_seq: seal.seq_start.saturating_add(seal.count),
            hash: seal.hash(),
            key_id: seal.key_id,
        }
    }

    /// The one-line JSON form (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Raw {
            stream: self.stream.to_string(),
            seal: self.seal,
            next_seq: self.next_seq,
            hash: json::hex(&self.hash),
            key_id: json::hex(&self.key_id.0),
        })
        .expect("a checkpoint always serializes")
    }

    /// Reads the JSON form (surrounding white space allowed).
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] naming what is wrong.
    pub fn from_json(text: &str) -> Result<Self, CheckpointError> {
        let raw: Raw = serde_json::from_str(text.trim())
            .map_err(|e| CheckpointError(format!("not a checkpoint: {e}")))?;
        let bad = |field: &str, what: &str| CheckpointError(format!("field {field:?}: {what}"));
        Ok(Self {
            stream: parse_uuid(&raw.stream)
                .ok_or_else(|| bad("stream", "not a lower-case hyphenated UUID"))?,
            seal: raw.seal,
            next_seq: raw.next_seq,
            hash: json::unhex(&raw.hash)
                .ok_or_else(|| bad("hash", "not 64 lower-case hex digits"))?,
            key_id: KeyId(
                json::unhex(&raw.key_id)
                    .ok_or_else(|| bad("key_id", "not 64 lower-case hex digits"))?,
            ),
        })
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checkpoint({})", self.to_json())
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seal #{} of stream {} (next seq {})",
            self.seal, self.stream, self.next_seq
        )
    }
}

impl Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Raw {
            stream: self.stream.to_string(),
            seal: self.seal,
            next_seq: self.next_seq,
            hash: json::hex(&self.hash),
            key_id: json::hex(&self.key_id.0),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(deserializer)?;
        let text = serde_json::to_string(&raw).map_err(serde::de::Error::custom)?;
        Checkpoint::from_json(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    stream: String,
    seal: u64,
    next_seq: u64,
    hash: String,
    key_id: String,
}

/// A checkpoint that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointError(String);

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckpointError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_refuses_damage() {
        let c = Checkpoint {
            stream: Uuid::from_bytes([9; 16]),
            seal: 7,
            next_seq: 4096,
            hash: [0xab; 32],
            key_id: KeyId([0x01; 32]),
        };
        let text = c.to_json();
        assert_eq!(Checkpoint::from_json(&text).unwrap(), c);
        assert_eq!(Checkpoint::from_json(&format!("  {text}\n")).unwrap(), c);
        let via_serde: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(via_serde, c);
        for bad in [
            text.replace("abab", "ABAB"),
            text.replace(r#""seal":7"#, r#""seal":-7"#),
            text.replace(r#""next_seq""#, r#""next""#),
            text.replace('}', r#","extra":1}"#),
            String::new(),
        ] {
            assert!(Checkpoint::from_json(&bad).is_err(), "{bad}");
        }
    }
}
