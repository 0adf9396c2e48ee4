//! How a payload becomes the `payload` object of an event line: the
//! [`EncodeJson`] trait the signer calls, the [`JsonValue`] trait of each
//! field's value, and [`JsonObject`], which writes members and applies the
//! runtime's [redaction](crate::Redaction) rules while encoding.
//!
//! `#[derive(Payload)]` implements [`EncodeJson`] for a struct; write it by
//! hand with [`JsonObject`] for a payload the derive does not fit.

use crate::format::json;
use crate::format::redact::Redaction;
pub use crate::format::redact::Redactor;

/// A payload that can be written as the `payload` object of an event line.
///
/// The signer calls [`write_json`](EncodeJson::write_json) once per event,
/// with the runtime's [`Redactor`]: every field a redaction rule names must
/// come out removed, masked or replaced by its HMAC tag, as
/// [`JsonObject::field`] does. The output must be one JSON object without
/// newlines, and must not allocate beyond growing `out` (it runs on the
/// signer's hot loop).
///
/// `#[derive(Payload)]` implements it; by hand, [`JsonObject`] does the
/// punctuation, the escaping and the redaction.
///
/// # Examples
///
/// ```
/// use auditring::format::encode::{EncodeJson, JsonObject, Redactor};
/// use auditring::Redaction;
///
/// struct Login {
///     user: String,
///     attempts: u32,
/// }
///
/// impl EncodeJson for Login {
///     const REDACTABLE: &'static [&'static str] = &["user", "attempts"];
///
///     fn write_json(&self, out: &mut Vec<u8>, redactor: &Redactor) {
///         let mut object = JsonObject::new(out, redactor);
///         object.field("user", &self.user).field("attempts", &self.attempts);
///         object.finish();
///     }
/// }
///
/// let login = Login { user: "alice".into(), attempts: 3 };
/// let mut out = Vec::new();
/// login.write_json(&mut out, Redactor::none());
/// assert_eq!(out, br#"{"user":"alice","attempts":3}"#);
///
/// let mask = Redactor::new([("user".to_owned(), Redaction::Mask)], Vec::new());
/// out.clear();
/// login.write_json(&mut out, &mask);
/// assert_eq!(out, br#"{"user":"[redacted]","attempts":3}"#);
/// ```
pub trait EncodeJson {
    /// The top-level fields a redaction rule may name, which
    /// [`write_json`](EncodeJson::write_json) must redact as the rules say;
    /// the runtime refuses to start with a rule naming any other field, so
    /// a misspelt rule, or one an encoder would ignore, cannot leak what it
    /// meant to hide. None by default.
    const REDACTABLE: &'static [&'static str] = &[];

    /// Appends the value as one JSON object (no newline) to `out`, with
    /// `redactor`'s rules applied to its top-level fields.
    fn write_json(&self, out: &mut Vec<u8>, redactor: &Redactor);
}

/// A value that a payload field holds, written as one JSON value.
///
/// Implemented for strings ([`str`], [`String`],
/// [`InlineStr`](crate::InlineStr)), integers, `bool`, `Option` (`null`
/// for `None`), references, [`Decision`](crate::Decision) and
/// [`Truncated`](crate::Truncated); `#[derive(JsonValue)]` implements it
/// for an enum of unit variants.
///
/// # Examples
///
/// ```
/// use auditring::JsonValue;
///
/// #[derive(JsonValue)]
/// enum Outcome {
///     Success,
///     InvalidArgs,
///     #[payload(rename = "denied")]
///     CapDenied,
/// }
///
/// let mut out = Vec::new();
/// Outcome::InvalidArgs.write_json_value(&mut out);
/// assert_eq!(out, br#""invalid_args""#);
/// assert_eq!(Outcome::CapDenied.json_str(), Some("denied"));
/// ```
pub trait JsonValue {
    /// Appends the value as JSON to `out`.
    fn write_json_value(&self, out: &mut Vec<u8>);

    /// The text of the value if it is written as a JSON string, else
    /// `None`. An HMAC redaction tags this text (unescaped); a value that
    /// is not a string is tagged by its JSON text.
    fn json_str(&self) -> Option<&str> {
        None
    }
}

impl JsonValue for str {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        json::write_str(out, self);
    }

    #[inline]
    fn json_str(&self) -> Option<&str> {
        Some(self)
    }
}

impl JsonValue for String {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        json::write_str(out, self);
    }

    #[inline]
    fn json_str(&self) -> Option<&str> {
        Some(self)
    }
}

impl<T: JsonValue + ?Sized> JsonValue for &T {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        (**self).write_json_value(out);
    }

    #[inline]
    fn json_str(&self) -> Option<&str> {
        (**self).json_str()
    }
}

impl<T: JsonValue> JsonValue for Option<T> {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.write_json_value(out),
            None => out.extend_from_slice(b"null"),
        }
    }

    #[inline]
    fn json_str(&self) -> Option<&str> {
        self.as_ref().and_then(JsonValue::json_str)
    }
}

impl JsonValue for bool {
    #[inline]
    fn write_json_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

macro_rules! unsigned {
    ($($t:ty)*) => {$(
        impl JsonValue for $t {
            #[inline]
            fn write_json_value(&self, out: &mut Vec<u8>) {
                json::write_u64(out, *self as u64);
            }
        }
    )*};
}
unsigned!(u8 u16 u32 u64 usize);

macro_rules! signed {
    ($($t:ty)*) => {$(
        impl JsonValue for $t {
            #[inline]
            fn write_json_value(&self, out: &mut Vec<u8>) {
                json::write_i64(out, *self as i64);
            }
        }
    )*};
}
signed!(i8 i16 i32 i64 isize);

/// Writes one JSON object member by member, with the redaction rules
/// applied while encoding: a removed field and its comma are left out, a
/// masked one becomes `"[redacted]"`, an HMAC one
/// `"hmac-sha256:<64 hex digits>"`.
///
/// Names are escaped as JSON keys; members appear in the order written.
///
/// # Examples
///
/// ```
/// use auditring::Redaction;
/// use auditring::format::encode::{JsonObject, Redactor};
///
/// let remove = Redactor::new([("secret".to_owned(), Redaction::Remove)], Vec::new());
/// let mut out = Vec::new();
/// let mut object = JsonObject::new(&mut out, &remove);
/// object.field("secret", "hunter2").field("n", &1u8).field_unredacted("ok", &true);
/// object.finish();
/// assert_eq!(out, br#"{"n":1,"ok":true}"#);
/// ```
#[must_use = "call `finish` to close the object"]
#[derive(Debug)]
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    redactor: &'a Redactor,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens an object at the end of `out`.
    #[inline]
    pub fn new(out: &'a mut Vec<u8>, redactor: &'a Redactor) -> Self {
        out.push(b'{');
        Self {
            out,
            redactor,
            empty: true,
        }
    }

    #[inline]
    fn key(&mut self, name: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        json::write_str(self.out, name);
        self.out.push(b':');
    }

    /// Writes the member `name`, redacted if a rule names it.
    #[inline]
    pub fn field<V: JsonValue + ?Sized>(&mut self, name: &str, value: &V) -> &mut Self {
        match self.redactor.rule(name) {
            None => self.field_unredacted(name, value),
            Some(Redaction::Remove) => self,
            Some(Redaction::Mask) => {
                self.key(name);
                self.out.extend_from_slice(b"\"[redacted]\"");
                self
            }
            Some(Redaction::Hmac) => {
                self.key(name);
                let tag = match value.json_str() {
                    Some(text) => self.redactor.tag(text.as_bytes()),
                    None => {
                        // The JSON text of the value, written in place and
                        // taken back: no allocation.
                        let at = self.out.len();
                        value.write_json_value(self.out);
                        let tag = self.redactor.tag(&self.out[at..]);
                        self.out.truncate(at);
                        tag
                    }
                };
                self.out.extend_from_slice(b"\"hmac-sha256:");
                json::write_hex(self.out, &tag);
                self.out.push(b'"');
                self
            }
        }
    }

    /// Writes the member `name` as is, whatever the rules say (for fields
    /// a payload declares never redacted).
    #[inline]
    pub fn field_unredacted<V: JsonValue + ?Sized>(&mut self, name: &str, value: &V) -> &mut Self {
        self.key(name);
        value.write_json_value(self.out);
        self
    }

    /// Closes the object.
    #[inline]
    pub fn finish(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(rules: &[(&str, Redaction)]) -> Redactor {
        Redactor::new(
            rules.iter().map(|(f, r)| ((*f).to_owned(), *r)),
            b"key".to_vec(),
        )
    }

    fn object(r: &Redactor) -> String {
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out, r);
        o.field("user", "alice")
            .field("n", &3u64)
            .field("neg", &-7i32)
            .field("s", "a\"b,c}")
            .field("none", &None::<u8>)
            .field_unredacted("kept", "x");
        o.finish();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn no_rules_write_every_member() {
        assert_eq!(
            object(&redactor(&[])),
            r#"{"user":"alice","n":3,"neg":-7,"s":"a\"b,c}","none":null,"kept":"x"}"#
        );
    }

    #[test]
    fn rules_mask_remove_and_tag() {
        assert_eq!(
            object(&redactor(&[
                ("user", Redaction::Mask),
                ("s", Redaction::Remove)
            ])),
            r#"{"user":"[redacted]","n":3,"neg":-7,"none":null,"kept":"x"}"#
        );
        // Removing the first member leaves no leading comma.
        assert!(object(&redactor(&[("user", Redaction::Remove)])).starts_with(r#"{"n":3,"#));
        // A rule on an unredacted field has no effect there.
        assert!(object(&redactor(&[("kept", Redaction::Remove)])).ends_with(r#""kept":"x"}"#));
        let empty = Redactor::none();
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out, empty);
        o.field("a", "b");
        o.finish();
        let r = redactor(&[("a", Redaction::Remove)]);
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out, &r);
        o.field("a", "b");
        o.finish();
        assert_eq!(out, b"{}");
    }

    #[test]
    fn hmac_tags_strings_by_text_and_others_by_json() {
        let r = redactor(&[("user", Redaction::Hmac), ("n", Redaction::Hmac)]);
        let text = object(&r);
        let hex = |m: &[u8]| json::hex(&crate::format::redact::hmac_sha256(b"key", m));
        assert!(text.contains(&format!(r#""user":"hmac-sha256:{}""#, hex(b"alice"))));
        assert!(text.contains(&format!(r#""n":"hmac-sha256:{}""#, hex(b"3"))));
        assert!(!text.contains("alice"));
    }
}
