//! Fixed-size audit payloads: the slot-reuse trait of the capture ring,
//! inline strings that never allocate, truncation marks, and the built-in
//! execution-event payload.
//!
//! A payload plays three parts, each its own trait: [`Payload`] (slot
//! reuse, all the ring needs), [`EncodeJson`](crate::EncodeJson) (its JSON
//! object in the log, in `format`) and
//! [`LatencySource`](crate::stats::LatencySource) (the gateway latencies it
//! reports, in `stats`). `#[derive(Payload)]` writes the first two from one
//! list of fields.

use core::fmt;
use core::marker::PhantomData;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::format::encode::JsonValue;
use crate::format::json;

/// A type that can travel through the capture ring.
///
/// The ring preallocates every slot with `Default::default()` and reuses it
/// for every event. A recorder fills its own staged copy, reset with
/// [`clear`](Payload::clear) so no field of a previous event can leak into
/// the next one, and copies it into the slot with `clone_from`. Keep both
/// cheap (reset lengths, copy only the bytes in use): they run on the hot
/// path.
///
/// That is all the ring needs. A [`Runtime`](crate::Runtime) also writes
/// each payload into the log ([`EncodeJson`](crate::EncodeJson)) and asks
/// it for latencies ([`LatencySource`](crate::stats::LatencySource)).
///
/// # Deriving
///
/// `#[derive(Payload)]` on a struct with named fields of [`InlineStr`]s,
/// integers, `bool`s, enums and other [`JsonValue`]s generates:
///
/// - `Payload::clear` (each inline string's length reset, every other
///   field set to its `Default`), and `Clone` whose `clone_from` copies
///   only the bytes in use of each inline string (so do not also derive
///   `Clone`);
/// - for each `InlineStr` field `name`, an accessor `name(&self) -> &str`
///   (with the field's doc comment) and a setter `set_name(&mut self,
///   &str) -> &mut Self` that cuts an over-long value at a UTF-8 boundary
///   and marks the field in the payload's one `Truncated<Self>` field,
///   which such a payload must have (and an accessor for that field);
/// - [`EncodeJson`](crate::EncodeJson): the fields in declaration order as
///   one JSON object, escaped exactly as the log's writer escapes, constant
///   fragments (`,"action":"`) precomputed, no allocation, and every field
///   open to the runtime's [redaction](crate::Redaction) rules, applied
///   while encoding;
/// - [`StringFields`], the names behind `Truncated<Self>`.
///
/// Field attributes: `#[payload(rename = "key")]` (the JSON key, also the
/// name redaction rules and truncation marks use), `#[payload(skip)]` (not
/// written; still cleared and copied), `#[payload(no_redact)]` (never
/// redacted: a runtime with a rule naming it refuses to start). The
/// container attribute `#[payload(serialize)]` also implements
/// `serde::Serialize` with the same object (without redaction).
///
/// # Examples
///
/// ```
/// use auditring::format::encode::Redactor;
/// use auditring::{EncodeJson, InlineStr, Payload, Truncated};
///
/// #[derive(Default, Debug, Payload)]
/// struct Login {
///     /// Who tried to log in.
///     user: InlineStr<8>,
///     ok: bool,
///     #[payload(rename = "tries")]
///     attempts: u32,
///     truncated: Truncated<Login>,
/// }
///
/// let mut login = Login::default();
/// login.set_user("alice-in-wonderland");
/// login.ok = true;
/// assert_eq!(login.user(), "alice-in");
/// assert!(login.truncated().contains("user"));
///
/// let mut out = Vec::new();
/// login.write_json(&mut out, Redactor::none());
/// assert_eq!(out, br#"{"user":"alice-in","ok":true,"tries":0,"truncated":["user"]}"#);
///
/// login.clear();
/// assert_eq!(login.user(), "");
/// assert!(login.truncated().is_empty());
/// ```
///
/// The derive refuses, at compile time, a payload whose cuts would go
/// unrecorded (inline strings but no `Truncated<Self>` field):
///
/// ```compile_fail
/// #[derive(Default, auditring::Payload)]
/// struct Silent {
///     user: auditring::InlineStr<8>,
/// }
/// ```
///
/// marks that name another payload's fields (`Truncated` alone is
/// `Truncated<AuditPayload>`):
///
/// ```compile_fail
/// #[derive(Default, auditring::Payload)]
/// struct Wrong {
///     user: auditring::InlineStr<8>,
///     truncated: auditring::Truncated,
/// }
/// ```
///
/// two fields written under one JSON key:
///
/// ```compile_fail
/// #[derive(Default, auditring::Payload)]
/// struct Twice {
///     user: u32,
///     #[payload(rename = "user")]
///     uid: u32,
/// }
/// ```
///
/// and an unknown attribute:
///
/// ```compile_fail
/// #[derive(Default, auditring::Payload)]
/// struct Typo {
///     #[payload(no_redcat)]
///     n: u32,
/// }
/// ```
///
/// each of which compiles once fixed:
///
/// ```
/// #[derive(Default, auditring::Payload)]
/// struct Fine {
///     user: auditring::InlineStr<8>,
///     #[payload(rename = "uid", no_redact)]
///     n: u32,
///     truncated: auditring::Truncated<Fine>,
/// }
/// ```
pub trait Payload: Default + Clone + Send + 'static {
    /// Resets the value to an empty event, as `Default` would, without
    /// touching more memory than needed.
    fn clear(&mut self);
}

/// The inline string fields of a payload, in the order of their
/// truncation bits: what a [`Truncated<Self>`](Truncated) names.
/// `#[derive(Payload)]` implements it.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, StringFields};
///
/// assert_eq!(AuditPayload::NAMES[0], "session_id");
/// ```
pub trait StringFields {
    /// The JSON keys of the inline string fields (at most 64).
    const NAMES: &'static [&'static str];
}

/// A string of at most `N` bytes stored inline, with no heap allocation.
///
/// [`set`](InlineStr::set) copies only the bytes of the new value, and cuts
/// an over-long value at the last UTF-8 character boundary that fits,
/// reporting the cut so the event can carry a truncation marker. `N` must be
/// at most 65,535.
///
/// # Examples
///
/// ```
/// use auditring::InlineStr;
///
/// let mut s = InlineStr::<4>::new();
/// assert!(!s.set("abc"));
/// assert_eq!(s, "abc");
/// // "é" is two bytes: it does not fit after "abc", so it is cut whole.
/// assert!(s.set("abcé"));
/// assert_eq!(s, "abc");
/// ```
#[derive(Clone, Copy)]
// The length before the bytes (declaration order): reading a string, its
// length and then its bytes, goes forward through memory, and so does
// reading a payload's strings one after another. Left to the compiler, the
// length came after the bytes, at the far end of the array, so each string
// was first read at its far end; the derived encoder then took twice as
// long over payloads streamed from memory (`benches/encode.rs`).
#[repr(C)]
pub struct InlineStr<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    /// The capacity in bytes.
    pub const CAPACITY: usize = {
        assert!(N <= u16::MAX as usize, "InlineStr capacity must fit in u16");
        N
    };

    /// An empty string.
    pub const fn new() -> Self {
        let _ = Self::CAPACITY;
        Self {
            len: 0,
            bytes: [0; N],
        }
    }

    /// Replaces the contents with `value`, cut at a UTF-8 character boundary
    /// if it is longer than `N` bytes. Returns `true` if it was cut.
    #[inline]
    pub fn set(&mut self, value: &str) -> bool {
        let mut end = value.len().min(N);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes[..end].copy_from_slice(&value.as_bytes()[..end]);
        self.len = end as u16;
        end < value.len()
    }

    /// Empties the string.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The contents.
    #[inline]
    pub fn as_str(&self) -> &str {
        // `set` only ever stores a prefix of a `&str` that ends on a char
        // boundary, so this cannot fail; an empty string is the safe answer
        // should that invariant ever break.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The contents as bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `other` into `self`, touching only the bytes in use.
    #[inline]
    pub fn copy_from(&mut self, other: &Self) {
        let n = other.len();
        self.bytes[..n].copy_from_slice(&other.bytes[..n]);
        self.len = other.len;
    }

    /// Appends the contents escaped as the body of a JSON string, without
    /// the quotes (derived encoders write the quotes with the key).
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::InlineStr;
    ///
    /// let mut s = InlineStr::<8>::new();
    /// s.set("a\"b\n");
    /// let mut out = Vec::new();
    /// s.write_json_body(&mut out);
    /// assert_eq!(out, br#"a\"b\n"#);
    /// ```
    #[inline(always)]
    pub fn write_json_body(&self, out: &mut Vec<u8>) {
        // `InlineStr` holds UTF-8 by construction: escape its bytes
        // directly.
        if Self::CHUNKED {
            json::write_padded_str_body(out, &self.bytes, self.len());
        } else {
            json::write_str_body(out, self.as_bytes());
        }
    }

    /// Whether the capacity is a whole number of sixteen-byte chunks: the
    /// string is then tested and copied chunk by chunk straight from the
    /// array (the bytes past the length are read, but never tested for
    /// escapes nor left in the output).
    const CHUNKED: bool = N.is_multiple_of(json::CHUNK);
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq for InlineStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for InlineStr<N> {}

impl<const N: usize> PartialEq<str> for InlineStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> PartialEq<&str> for InlineStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Serialize for InlineStr<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<const N: usize> JsonValue for InlineStr<N> {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        self.write_json_body(out);
        out.push(b'"');
    }

    #[inline]
    fn json_str(&self) -> Option<&str> {
        Some(self.as_str())
    }
}

/// Which inline string fields of a `P` were cut to fit; written as the list
/// of their names (`[]` when none), so a cut is never silent.
///
/// A derived payload's setters keep it up to date: a cut marks the field,
/// a later value that fits clears the mark.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, capacity};
///
/// let mut e = AuditPayload::default();
/// e.set_resource(&"r".repeat(capacity::RESOURCE + 1)).set_action("ok");
/// assert!(e.truncated().contains("resource"));
/// assert_eq!(e.truncated().names().collect::<Vec<_>>(), ["resource"]);
/// ```
pub struct Truncated<P = AuditPayload> {
    bits: u64,
    payload: PhantomData<fn() -> P>,
}

impl<P> Truncated<P> {
    /// No field cut.
    pub const fn new() -> Self {
        Self {
            bits: 0,
            payload: PhantomData,
        }
    }

    /// Whether no field was cut.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// Marks (or, with `cut == false`, unmarks) the string field at
    /// `index` in [`StringFields::NAMES`]; derived setters call it.
    #[inline(always)]
    pub fn mark(&mut self, index: usize, cut: bool) {
        debug_assert!(index < 64);
        let bit = 1u64 << (index & 63);
        self.bits = (self.bits & !bit) | if cut { bit } else { 0 };
    }

    /// Clears every mark.
    #[inline]
    pub fn clear(&mut self) {
        self.bits = 0;
    }
}

impl<P: StringFields> Truncated<P> {
    /// Whether the named field was cut.
    pub fn contains(self, field: &str) -> bool {
        self.names().any(|name| name == field)
    }

    /// Names of the cut fields, in field order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        P::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i < 64 && self.bits & (1 << i) != 0)
            .map(|(_, name)| *name)
    }

    /// The names of the cut fields as a JSON list (the rarer case, kept
    /// out of line).
    #[inline(never)]
    fn write_names(self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(out, name);
        }
        out.push(b']');
    }
}

impl<P> Clone for Truncated<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for Truncated<P> {}

impl<P> Default for Truncated<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> PartialEq for Truncated<P> {
    fn eq(&self, other: &Self) -> bool {
        self.bits == other.bits
    }
}

impl<P> Eq for Truncated<P> {}

impl<P> core::hash::Hash for Truncated<P> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.bits.hash(state);
    }
}

impl<P: StringFields> fmt::Debug for Truncated<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl<P: StringFields> Serialize for Truncated<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for name in self.names() {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

impl<P: StringFields> JsonValue for Truncated<P> {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        if self.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            self.write_names(out);
        }
    }
}

/// The outcome of an enforcement decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The action was allowed.
    #[default]
    Allow,
    /// The action was denied by policy.
    Deny,
    /// Evaluation was aborted (error, timeout, missing context).
    Abort,
}

impl Decision {
    /// The lower-case name used in the log: `allow`, `deny` or `abort`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Abort => "abort",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JsonValue for Decision {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        // One constant copy per variant: no copy of a length known only at
        // run time.
        match self {
            Decision::Allow => out.extend_from_slice(b"\"allow\""),
            Decision::Deny => out.extend_from_slice(b"\"deny\""),
            Decision::Abort => out.extend_from_slice(b"\"abort\""),
        }
    }

    #[inline]
    fn json_str(&self) -> Option<&str> {
        Some(self.as_str())
    }
}

/// Capacities, in bytes, of the string fields of [`AuditPayload`].
/// Longer values are cut at a UTF-8 boundary and marked truncated.
pub mod capacity {
    /// Capacity of `session_id`.
    pub const SESSION_ID: usize = 64;
    /// Capacity of `token_id`.
    pub const TOKEN_ID: usize = 64;
    /// Capacity of `agent_id`.
    pub const AGENT_ID: usize = 64;
    /// Capacity of `action`.
    pub const ACTION: usize = 64;
    /// Capacity of `resource`.
    pub const RESOURCE: usize = 512;
    /// Capacity of `deny_reason`.
    pub const DENY_REASON: usize = 256;
    /// Capacity of `context_hash`.
    pub const CONTEXT_HASH: usize = 96;
    /// Capacity of `bundle_version`.
    pub const BUNDLE_VERSION: usize = 64;
    /// Capacity of `sandbox_id`.
    pub const SANDBOX_ID: usize = 64;
}

/// The built-in audit payload: one enforcement decision of a gateway (an
/// execution event).
///
/// Every string field is stored inline with a fixed capacity (see
/// [`capacity`]): filling a payload never allocates. A value that does not
/// fit is cut at a UTF-8 boundary and the field is listed in
/// [`truncated`](AuditPayload::truncated), which is part of the log line, so
/// a cut is never silent.
///
/// Numeric fields are public; string fields go through setters so that the
/// truncation marker stays correct. The JSON projection is stable and
/// complete: every field, always, in declaration order; absent values are
/// empty strings or zero; `truncated` is always a list (`[]` when nothing
/// was cut), so consumers never special-case a missing key.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Decision};
///
/// let mut e = AuditPayload::default();
/// e.set_session_id("sess-42")
///     .set_action("http.get")
///     .set_resource("https://api.example.com/v1/orders");
/// e.decision = Decision::Deny;
/// e.set_deny_reason("egress to api.example.com not in allowlist");
/// e.enforcement_latency_us = 12;
/// assert!(e.truncated().is_empty());
///
/// let json = serde_json::to_string(&e).unwrap();
/// assert!(json.starts_with(r#"{"session_id":"sess-42","#));
/// ```
#[derive(Default, Debug, PartialEq, Eq, auditring_derive::Payload)]
#[payload(serialize)]
pub struct AuditPayload {
    /// The session that produced the event.
    session_id: InlineStr<{ capacity::SESSION_ID }>,
    /// The capability token evaluated.
    token_id: InlineStr<{ capacity::TOKEN_ID }>,
    /// The agent that initiated the action.
    agent_id: InlineStr<{ capacity::AGENT_ID }>,
    /// The canonical action class (e.g. `http.get`, `llm.inference`).
    action: InlineStr<{ capacity::ACTION }>,
    /// The target resource (URL, table, tool name).
    resource: InlineStr<{ capacity::RESOURCE }>,
    /// The enforcement outcome.
    pub decision: Decision,
    /// Why the action was denied or aborted; empty on allow.
    deny_reason: InlineStr<{ capacity::DENY_REASON }>,
    /// Time spent in the enforcement pipeline, in microseconds.
    pub enforcement_latency_us: u64,
    /// Integrity hash of the evaluation context (e.g. `sha256:` + 64 hex
    /// digits).
    context_hash: InlineStr<{ capacity::CONTEXT_HASH }>,
    /// The policy bundle version active at decision time.
    bundle_version: InlineStr<{ capacity::BUNDLE_VERSION }>,
    /// Status code returned by the dispatched call (e.g. HTTP); 0 when the
    /// call was never dispatched.
    pub dispatch_status: u16,
    /// Latency of the dispatched call, in microseconds; 0 when never
    /// dispatched.
    pub dispatch_latency_us: u64,
    /// Size of the dispatched call's response body, in bytes; 0 when never
    /// dispatched.
    pub response_size: u64,
    /// The run or sandbox the event belongs to.
    sandbox_id: InlineStr<{ capacity::SANDBOX_ID }>,
    truncated: Truncated<AuditPayload>,
}

impl crate::stats::LatencySource for AuditPayload {
    fn latency_sample(&self) -> Option<crate::stats::LatencySample<'_>> {
        Some(crate::stats::LatencySample {
            action: self.action.as_str(),
            decision: self.decision.as_str(),
            enforcement_us: self.enforcement_latency_us,
            dispatch_us: (self.dispatch_status != 0).then_some(self.dispatch_latency_us),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::format::encode::EncodeJson;
    use crate::format::redact::Redactor;

    fn encode(e: &AuditPayload) -> String {
        let mut out = Vec::new();
        e.write_json(&mut out, Redactor::none());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn empty_and_exact_fit() {
        let mut s = InlineStr::<3>::new();
        assert!(!s.set(""));
        assert!(s.is_empty());
        assert!(!s.set("abc"));
        assert_eq!(s.as_str(), "abc");
        assert!(s.set("abcd"));
        assert_eq!(s.as_str(), "abc");
    }

    #[test]
    fn multibyte_cut_at_boundary() {
        // "日" is 3 bytes; 5 bytes hold one, not two.
        let mut s = InlineStr::<5>::new();
        assert!(s.set("日本"));
        assert_eq!(s.as_str(), "日");
        // A 4-byte emoji straddling the limit is dropped whole.
        let mut s = InlineStr::<6>::new();
        assert!(s.set("ab🦀cd"));
        assert_eq!(s.as_str(), "ab🦀");
        assert!(s.set("abc🦀"));
        assert_eq!(s.as_str(), "abc");
    }

    #[test]
    fn zero_capacity_holds_nothing_and_says_so() {
        let mut s = InlineStr::<0>::new();
        assert!(!s.set(""));
        assert!(s.set("x"));
        assert_eq!(s.as_str(), "");
    }

    #[test]
    fn truncation_is_marked_and_cleared_per_field() {
        let mut e = AuditPayload::default();
        let long = "r".repeat(capacity::RESOURCE + 10);
        e.set_resource(&long).set_action("ok");
        assert_eq!(e.resource().len(), capacity::RESOURCE);
        assert!(e.truncated().contains("resource"));
        assert!(!e.truncated().contains("action"));
        assert_eq!(e.truncated().names().collect::<Vec<_>>(), ["resource"]);
        e.set_resource("short");
        assert!(
            e.truncated().is_empty(),
            "a later fitting value clears the mark"
        );
        e.set_session_id(&"s".repeat(100));
        e.clear();
        assert!(e.truncated().is_empty());
        assert_eq!(e.session_id(), "");
    }

    #[test]
    fn clone_from_copies_only_what_is_set() {
        let mut a = AuditPayload::default();
        a.set_session_id("s1").set_resource("/x");
        a.decision = Decision::Abort;
        a.response_size = 9;
        let mut b = AuditPayload::default();
        b.set_session_id("old-session-longer").set_token_id("t");
        b.clone_from(&a);
        assert_eq!(a, b);
        assert_eq!(b.token_id(), "");
        assert_eq!(b.session_id(), "s1");
    }

    #[test]
    fn json_projection_is_stable_and_complete() {
        let mut e = AuditPayload::default();
        e.set_session_id("s\"1")
            .set_token_id("tok")
            .set_agent_id("agent")
            .set_action("http.get")
            .set_resource("https://x/y")
            .set_deny_reason("")
            .set_context_hash("sha256:00")
            .set_bundle_version("v3")
            .set_sandbox_id("sb");
        e.set_agent_id(&"a".repeat(capacity::AGENT_ID + 1));
        e.decision = Decision::Deny;
        e.enforcement_latency_us = 5;
        e.dispatch_status = 403;
        e.dispatch_latency_us = 7;
        e.response_size = 11;
        let json = serde_json::to_string(&e).unwrap();
        let agent = "a".repeat(capacity::AGENT_ID);
        let expected = format!(
            concat!(
                r#"{{"session_id":"s\"1","token_id":"tok","agent_id":"{}","action":"http.get","#,
                r#""resource":"https://x/y","decision":"deny","deny_reason":"","#,
                r#""enforcement_latency_us":5,"context_hash":"sha256:00","bundle_version":"v3","#,
                r#""dispatch_status":403,"dispatch_latency_us":7,"response_size":11,"#,
                r#""sandbox_id":"sb","truncated":["agent_id"]}}"#
            ),
            agent
        );
        assert_eq!(json, expected);
        assert_eq!(encode(&e), expected, "derived encoder");
    }

    #[test]
    fn a_shorter_value_hides_what_the_longer_one_left_behind() {
        // The bytes past a string's length still hold the earlier value
        // (quotes, control characters, a cut character): none of them may
        // reach the output.
        let mut e = AuditPayload::default();
        e.set_session_id(&"\"\u{0}\\\n".repeat(20))
            .set_resource(&"é\"".repeat(200))
            .set_context_hash("sha256:\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}");
        encode(&e);
        for len in 0..=40 {
            let clean = &"0123456789abcdef0123456789abcdef01234567"[..len];
            e.set_session_id(clean)
                .set_resource(clean)
                .set_context_hash(clean);
            assert_eq!(encode(&e), serde_json::to_string(&e).unwrap(), "{len}");
            assert!(!encode(&e).contains('\\'), "{len}");
        }
    }

    #[test]
    fn derived_encoder_matches_serde_on_hostile_strings() {
        let mut e = AuditPayload::default();
        e.set_session_id("\u{0}\n\"\\\u{1f}")
            .set_resource("日本🦀")
            .set_deny_reason(&"\u{7}".repeat(300));
        e.set_token_id(&"é".repeat(40));
        assert_eq!(encode(&e), serde_json::to_string(&e).unwrap());
    }
}
