//! Fixed-size audit payloads: inline strings that never allocate, and the
//! built-in execution-event payload.

use core::fmt;

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// A type that can travel through the capture ring and into the log.
///
/// The ring preallocates every slot with `Default::default()` and reuses it
/// for every event. A recorder fills its own staged copy, reset with
/// [`clear`](Payload::clear) so no field of a previous event can leak into
/// the next one, and copies it into the slot with `clone_from`. Keep both
/// cheap (reset lengths, copy only the bytes in use): they run on the hot
/// path.
///
/// The signer writes each payload as the `payload` object of an event line
/// with [`write_json`](Payload::write_json), which by default uses the
/// type's `Serialize` implementation through `serde_json`. Override it with
/// a hand-written encoder when encoding cost matters (the built-in
/// [`AuditPayload`] does); the output must be one JSON object without
/// newlines.
///
/// # Examples
///
/// ```
/// use auditring::{InlineStr, Payload};
///
/// #[derive(Default, Clone, serde::Serialize)]
/// struct Login {
///     user: InlineStr<32>,
///     ok: bool,
/// }
///
/// impl Payload for Login {
///     fn clear(&mut self) {
///         self.user.clear();
///         self.ok = false;
///     }
/// }
///
/// let mut login = Login::default();
/// login.user.set("alice");
/// let mut out = Vec::new();
/// login.write_json(&mut out);
/// assert_eq!(out, br#"{"user":"alice","ok":false}"#);
/// ```
pub trait Payload: Default + Clone + Send + Serialize + 'static {
    /// Resets the value to an empty event, as `Default` would, without
    /// touching more memory than needed.
    fn clear(&mut self);

    /// The gateway latencies this event reports, for the runtime's
    /// per-(action, decision) histograms. `None` (the default) keeps the
    /// payload out of them.
    fn latency_sample(&self) -> Option<crate::stats::LatencySample<'_>> {
        None
    }

    /// Appends the payload as one JSON object (no newline) to `out`.
    fn write_json(&self, out: &mut Vec<u8>) {
        if serde_json::to_writer(&mut *out, self).is_err() {
            // A `Serialize` implementation refused the value (e.g. a map
            // with non-string keys); the event still needs a valid line.
            out.extend_from_slice(br#"{"unserializable":true}"#);
        }
    }
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

/// Generates, from one list, the string fields of [`AuditPayload`]: the
/// capacity constants, the accessors, the truncation bits and the field
/// names in log order.
macro_rules! string_fields {
    ($( $bit:literal $field:ident $setter:ident $cap:ident = $n:literal, $doc:literal; )*) => {
        /// Capacities, in bytes, of the string fields of [`AuditPayload`].
        /// Longer values are cut at a UTF-8 boundary and marked truncated.
        pub mod capacity {
            $(
                #[doc = concat!("Capacity of `", stringify!($field), "`: ", $doc)]
                pub const $cap: usize = $n;
            )*
        }

        /// Which string fields of an [`AuditPayload`] were cut to fit.
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct Truncated(u16);

        impl Truncated {
            /// Every string field, in log order, with its bit.
            const FIELDS: &'static [(u16, &'static str)] = &[
                $( (1 << $bit, stringify!($field)), )*
            ];

            /// Whether no field was cut.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Whether the named field was cut.
            pub fn contains(self, field: &str) -> bool {
                Self::FIELDS.iter().any(|(bit, name)| *name == field && self.0 & bit != 0)
            }

            /// Names of the cut fields, in log order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::FIELDS
                    .iter()
                    .filter(move |(bit, _)| self.0 & bit != 0)
                    .map(|(_, name)| *name)
            }

            #[inline(always)]
            fn mark(&mut self, bit: u16, cut: bool) {
                self.0 = (self.0 & !bit) | if cut { bit } else { 0 };
            }
        }

        impl AuditPayload {
            $(
                #[doc = concat!("The `", stringify!($field), "` field: ", $doc)]
                #[inline]
                pub fn $field(&self) -> &str {
                    self.$field.as_str()
                }

                #[doc = concat!("Sets `", stringify!($field), "`; a value over ",
                    stringify!($n), " bytes is cut at a UTF-8 boundary and marked truncated.")]
                #[inline]
                pub fn $setter(&mut self, value: &str) -> &mut Self {
                    let cut = self.$field.set(value);
                    self.truncated.mark(1 << $bit, cut);
                    self
                }
            )*

            fn clear_strings(&mut self) {
                $( self.$field.clear(); )*
            }

            fn copy_strings(&mut self, source: &Self) {
                $( self.$field.copy_from(&source.$field); )*
            }
        }
    };
}

string_fields! {
    0 session_id set_session_id SESSION_ID = 64, "the session that produced the event.";
    1 token_id set_token_id TOKEN_ID = 64, "the capability token evaluated.";
    2 agent_id set_agent_id AGENT_ID = 64, "the agent that initiated the action.";
    3 action set_action ACTION = 64, "the canonical action class (e.g. `http.get`, `llm.inference`).";
    4 resource set_resource RESOURCE = 512, "the target resource (URL, table, tool name).";
    5 deny_reason set_deny_reason DENY_REASON = 256, "why the action was denied or aborted; empty on allow.";
    6 context_hash set_context_hash CONTEXT_HASH = 96, "integrity hash of the evaluation context (e.g. `sha256:` + 64 hex digits).";
    7 bundle_version set_bundle_version BUNDLE_VERSION = 64, "the policy bundle version active at decision time.";
    8 sandbox_id set_sandbox_id SANDBOX_ID = 64, "the run or sandbox the event belongs to.";
}

impl fmt::Debug for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Serialize for Truncated {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for name in self.names() {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
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
/// truncation marker stays correct.
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
#[derive(Default)]
pub struct AuditPayload {
    session_id: InlineStr<{ capacity::SESSION_ID }>,
    token_id: InlineStr<{ capacity::TOKEN_ID }>,
    agent_id: InlineStr<{ capacity::AGENT_ID }>,
    action: InlineStr<{ capacity::ACTION }>,
    resource: InlineStr<{ capacity::RESOURCE }>,
    /// The enforcement outcome.
    pub decision: Decision,
    deny_reason: InlineStr<{ capacity::DENY_REASON }>,
    /// Time spent in the enforcement pipeline, in microseconds.
    pub enforcement_latency_us: u64,
    context_hash: InlineStr<{ capacity::CONTEXT_HASH }>,
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
    sandbox_id: InlineStr<{ capacity::SANDBOX_ID }>,
    truncated: Truncated,
}

impl AuditPayload {
    /// Which string fields were cut to fit their capacity.
    #[inline]
    pub fn truncated(&self) -> Truncated {
        self.truncated
    }
}

impl Payload for AuditPayload {
    fn latency_sample(&self) -> Option<crate::stats::LatencySample<'_>> {
        Some(crate::stats::LatencySample {
            action: self.action.as_str(),
            decision: self.decision.as_str(),
            enforcement_us: self.enforcement_latency_us,
            dispatch_us: (self.dispatch_status != 0).then_some(self.dispatch_latency_us),
        })
    }

    /// Hand-written encoder producing exactly the `Serialize` projection,
    /// several times faster than going through `serde_json`.
    fn write_json(&self, out: &mut Vec<u8>) {
        use crate::format::json::{write_str, write_u64, write_utf8};
        // `InlineStr` holds UTF-8 by construction: write its bytes directly.
        let field = |out: &mut Vec<u8>, key: &[u8], value: &[u8]| {
            out.extend_from_slice(key);
            write_utf8(out, value);
        };
        field(out, br#"{"session_id":"#, self.session_id.as_bytes());
        field(out, br#","token_id":"#, self.token_id.as_bytes());
        field(out, br#","agent_id":"#, self.agent_id.as_bytes());
        field(out, br#","action":"#, self.action.as_bytes());
        field(out, br#","resource":"#, self.resource.as_bytes());
        out.extend_from_slice(br#","decision":""#);
        out.extend_from_slice(self.decision.as_str().as_bytes());
        out.push(b'"');
        field(out, br#","deny_reason":"#, self.deny_reason.as_bytes());
        out.extend_from_slice(br#","enforcement_latency_us":"#);
        write_u64(out, self.enforcement_latency_us);
        field(out, br#","context_hash":"#, self.context_hash.as_bytes());
        field(
            out,
            br#","bundle_version":"#,
            self.bundle_version.as_bytes(),
        );
        out.extend_from_slice(br#","dispatch_status":"#);
        write_u64(out, u64::from(self.dispatch_status));
        out.extend_from_slice(br#","dispatch_latency_us":"#);
        write_u64(out, self.dispatch_latency_us);
        out.extend_from_slice(br#","response_size":"#);
        write_u64(out, self.response_size);
        field(out, br#","sandbox_id":"#, self.sandbox_id.as_bytes());
        out.extend_from_slice(br#","truncated":["#);
        for (i, name) in self.truncated.names().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, name);
        }
        out.extend_from_slice(b"]}");
    }

    #[inline]
    fn clear(&mut self) {
        self.clear_strings();
        self.decision = Decision::Allow;
        self.enforcement_latency_us = 0;
        self.dispatch_status = 0;
        self.dispatch_latency_us = 0;
        self.response_size = 0;
        self.truncated = Truncated::default();
    }
}

impl Clone for AuditPayload {
    fn clone(&self) -> Self {
        let mut copy = Self::default();
        copy.clone_from(self);
        copy
    }

    /// Copies only the bytes in use, not the full inline capacity: this is
    /// what `Recorder::record_copy` runs on the hot path.
    #[inline]
    fn clone_from(&mut self, source: &Self) {
        self.copy_strings(source);
        self.decision = source.decision;
        self.enforcement_latency_us = source.enforcement_latency_us;
        self.dispatch_status = source.dispatch_status;
        self.dispatch_latency_us = source.dispatch_latency_us;
        self.response_size = source.response_size;
        self.truncated = source.truncated;
    }
}

impl PartialEq for AuditPayload {
    fn eq(&self, other: &Self) -> bool {
        self.session_id == other.session_id
            && self.token_id == other.token_id
            && self.agent_id == other.agent_id
            && self.action == other.action
            && self.resource == other.resource
            && self.decision == other.decision
            && self.deny_reason == other.deny_reason
            && self.enforcement_latency_us == other.enforcement_latency_us
            && self.context_hash == other.context_hash
            && self.bundle_version == other.bundle_version
            && self.dispatch_status == other.dispatch_status
            && self.dispatch_latency_us == other.dispatch_latency_us
            && self.response_size == other.response_size
            && self.sandbox_id == other.sandbox_id
            && self.truncated == other.truncated
    }
}

impl Eq for AuditPayload {}

impl fmt::Debug for AuditPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditPayload")
            .field("session_id", &self.session_id)
            .field("token_id", &self.token_id)
            .field("agent_id", &self.agent_id)
            .field("action", &self.action)
            .field("resource", &self.resource)
            .field("decision", &self.decision)
            .field("deny_reason", &self.deny_reason)
            .field("enforcement_latency_us", &self.enforcement_latency_us)
            .field("context_hash", &self.context_hash)
            .field("bundle_version", &self.bundle_version)
            .field("dispatch_status", &self.dispatch_status)
            .field("dispatch_latency_us", &self.dispatch_latency_us)
            .field("response_size", &self.response_size)
            .field("sandbox_id", &self.sandbox_id)
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// The stable JSON projection: every field, always, in this order. Absent
/// values are empty strings or zero; `truncated` is always a list (`[]` when
/// nothing was cut), so consumers never special-case a missing key.
impl Serialize for AuditPayload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("AuditPayload", 15)?;
        s.serialize_field("session_id", &self.session_id)?;
        s.serialize_field("token_id", &self.token_id)?;
        s.serialize_field("agent_id", &self.agent_id)?;
        s.serialize_field("action", &self.action)?;
        s.serialize_field("resource", &self.resource)?;
        s.serialize_field("decision", &self.decision)?;
        s.serialize_field("deny_reason", &self.deny_reason)?;
        s.serialize_field("enforcement_latency_us", &self.enforcement_latency_us)?;
        s.serialize_field("context_hash", &self.context_hash)?;
        s.serialize_field("bundle_version", &self.bundle_version)?;
        s.serialize_field("dispatch_status", &self.dispatch_status)?;
        s.serialize_field("dispatch_latency_us", &self.dispatch_latency_us)?;
        s.serialize_field("response_size", &self.response_size)?;
        s.serialize_field("sandbox_id", &self.sandbox_id)?;
        s.serialize_field("truncated", &self.truncated)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut hand = Vec::new();
        e.write_json(&mut hand);
        assert_eq!(
            String::from_utf8(hand).unwrap(),
            expected,
            "hand-written encoder"
        );
    }

    #[test]
    fn hand_written_encoder_matches_serde_on_hostile_strings() {
        let mut e = AuditPayload::default();
        e.set_session_id("\u{0}\n\"\\\u{1f}")
            .set_resource("日本🦀")
            .set_deny_reason(&"\u{7}".repeat(300));
        e.set_token_id(&"é".repeat(40));
        let mut hand = Vec::new();
        e.write_json(&mut hand);
        assert_eq!(
            String::from_utf8(hand).unwrap(),
            serde_json::to_string(&e).unwrap()
        );
    }
}
