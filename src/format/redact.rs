//! Redaction of sensitive payload fields on the signer thread, before
//! encoding: what the seal covers is exactly what was written, and a
//! redacted value never reaches any sink.

use core::fmt;

use sha2::Sha256;

/// What replaces a sensitive field's value.
///
/// # Examples
///
/// ```
/// use auditring::Redaction;
/// assert_eq!(Redaction::Mask.to_string(), "mask");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Redaction {
    /// The field is left out of the payload.
    Remove,
    /// The value becomes the string `"[redacted]"`.
    Mask,
    /// The value becomes `"hmac-sha256:<hex>"`, the HMAC-SHA256 (keyed with
    /// the runtime's redaction key) of the value: of its UTF-8 text for a
    /// string, of its JSON text otherwise. Equal values give equal tags, so
    /// events still correlate, and without the key the value cannot be
    /// recovered or confirmed by guessing.
    Hmac,
}

impl fmt::Display for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Redaction::Remove => "remove",
            Redaction::Mask => "mask",
            Redaction::Hmac => "hmac",
        })
    }
}

/// HMAC-SHA256 (RFC 2104), from the `hmac` crate.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The redaction rules of a runtime.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    rules: Vec<(String, Redaction)>,
    /// Wiped from memory when the redactor is dropped.
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .field("key", &"<secret>")
            .finish()
    }
}

impl Redactor {
    pub(crate) fn new(rules: Vec<(String, Redaction)>, key: zeroize::Zeroizing<Vec<u8>>) -> Self {
        Self { rules, key }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn rule(&self, key: &[u8]) -> Option<Redaction> {
        self.rules
            .iter()
            .find(|(field, _)| field.as_bytes() == key)
            .map(|(_, r)| *r)
    }

    /// Appends `object` (one JSON object, compact or not) to `out` with the
    /// rules applied to its top-level fields. Input that is not an object is
    /// copied unchanged: payload encoders always produce objects.
    pub(crate) fn apply(&self, object: &[u8], out: &mut Vec<u8>) {
        let Some(members) = top_level_members(object) else {
            out.extend_from_slice(object);
            return;
        };
        out.push(b'{');
        let mut first = true;
        for (key, value) in members {
            let raw_key = &object[key.clone()];
            let rule = self.rule(&raw_key[1..raw_key.len() - 1]);
            if rule == Some(Redaction::Remove) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(raw_key);
            out.push(b':');
            let value = &object[value];
            match rule {
                None | Some(Redaction::Remove) => out.extend_from_slice(value),
                Some(Redaction::Mask) => out.extend_from_slice(b"\"[redacted]\""),
                Some(Redaction::Hmac) => {
                    let text = serde_json::from_slice::<String>(value).map(String::into_bytes);
                    let tag = hmac_sha256(&self.key, text.as_deref().unwrap_or(value));
                    out.extend_from_slice(b"\"hmac-sha256:");
                    crate::format::json::write_hex(out, &tag);
                    out.push(b'"');
                }
            }
        }
        out.push(b'}');
    }
}

/// The byte ranges of each top-level member's key (with its quotes) and
/// value, or `None` if `json` is not one well-formed object.
fn top_level_members(json: &[u8]) -> Option<Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>> {
    let ws = |i: &mut usize| {
        while json.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    // The end (exclusive) of the string starting at `i`.
    let string_end = |mut i: usize| -> Option<usize> {
        i += 1;
        loop {
            match *json.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    };
    // The end (exclusive) of the value starting at `i`.
    let value_end = |mut i: usize| -> Option<usize> {
        match *json.get(i)? {
            b'"' => string_end(i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *json.get(i)? {
                        b'"' => {
                            i = string_end(i)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(i + 1);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {
                while !matches!(*json.get(i)?, b',' | b'}' | b']') && !json[i].is_ascii_whitespace()
                {
                    i += 1;
                }
                Some(i)
            }
        }
    };
    let mut i = 0;
    ws(&mut i);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut members = Vec::new();
    ws(&mut i);
    if json.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        ws(&mut i);
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key = i..string_end(i)?;
        i = key.end;
        ws(&mut i);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let value = i..value_end(i)?;
        i = value.end;
        members.push((key, value));
        ws(&mut i);
        match json.get(i)? {
            b',' => i += 1,
            b'}' => return Some(members),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(rules: &[(&str, Redaction)], json: &str) -> String {
        let r = Redactor::new(
            rules.iter().map(|(f, r)| ((*f).to_owned(), *r)).collect(),
            zeroize::Zeroizing::new(b"key".to_vec()),
        );
        let mut out = Vec::new();
        r.apply(json.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hmac_matches_rfc_4231_case_1() {
        let tag = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            crate::format::json::hex(&tag),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_6_a_key_longer_than_a_block() {
        let tag = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            crate::format::json::hex(&tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn rules_apply_to_top_level_fields_only() {
        let json =
            r#"{"user":"alice","nested":{"user":"bob","n":[1,{"x":"}"}]},"n":3,"s":"a\"b,c}"}"#;
        assert_eq!(
            redact(&[("user", Redaction::Mask)], json),
            r#"{"user":"[redacted]","nested":{"user":"bob","n":[1,{"x":"}"}]},"n":3,"s":"a\"b,c}"}"#
        );
        assert_eq!(
            redact(
                &[("nested", Redaction::Remove), ("s", Redaction::Remove)],
                json
            ),
            r#"{"user":"alice","n":3}"#
        );
        assert_eq!(
            redact(&[("user", Redaction::Remove)], r#"{"user":1}"#),
            "{}"
        );
        assert_eq!(redact(&[], json), json);
    }

    #[test]
    fn hmac_tags_correlate_and_hide() {
        let a = redact(&[("user", Redaction::Hmac)], r#"{"user":"alice","n":1}"#);
        let b = redact(&[("user", Redaction::Hmac)], r#"{"user":"alice","n":2}"#);
        let c = redact(&[("user", Redaction::Hmac)], r#"{"user":"mallory","n":1}"#);
        let tag = |s: &str| s[..s.find(",\"n\"").unwrap()].to_owned();
        assert_eq!(tag(&a), tag(&b));
        assert_ne!(tag(&a), tag(&c));
        assert!(!a.contains("alice"));
        let expected = crate::format::json::hex(&hmac_sha256(b"key", b"alice"));
        assert!(a.contains(&format!("hmac-sha256:{expected}")));
    }

    #[test]
    fn not_an_object_is_copied() {
        assert_eq!(redact(&[("a", Redaction::Mask)], "[1,2]"), "[1,2]");
        assert_eq!(redact(&[("a", Redaction::Mask)], r#"{"a":"#), r#"{"a":"#);
    }
}
