//! Redaction of sensitive payload fields on the signer thread, while
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

/// The redaction rules of a runtime, applied by each payload's encoder
/// while it writes (see [`JsonObject`](crate::format::encode::JsonObject)): a redacted
/// value is never written anywhere, not even to a scratch buffer.
///
/// The runtime builds one from its [`redact`](crate::RuntimeBuilder::redact)
/// and [`redaction_key`](crate::RuntimeBuilder::redaction_key) settings;
/// build one directly to test an [`EncodeJson`](crate::format::encode::EncodeJson)
/// implementation. The key is wiped from memory when the redactor is
/// dropped.
///
/// # Examples
///
/// ```
/// use auditring::format::encode::{EncodeJson, Redactor};
/// use auditring::{AuditPayload, Redaction};
///
/// let mut e = AuditPayload::default();
/// e.set_session_id("secret");
/// let rules = Redactor::new([("session_id".to_owned(), Redaction::Mask)], Vec::new());
/// let mut out = Vec::new();
/// e.write_json(&mut out, &rules);
/// assert!(out.starts_with(br#"{"session_id":"[redacted]","token_id":"#));
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    rules: Vec<(String, Redaction)>,
    /// Wiped from memory on drop.
    key: Vec<u8>,
}

static NONE: Redactor = Redactor {
    rules: Vec::new(),
    key: Vec::new(),
};

impl Drop for Redactor {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
    }
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
    /// Rules naming top-level fields, and the secret of the HMAC rules.
    /// When two rules name one field, the first applies.
    pub fn new(
        rules: impl IntoIterator<Item = (String, Redaction)>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            rules: rules.into_iter().collect(),
            key: key.into(),
        }
    }

    /// No rules: every field is written as is.
    pub fn none() -> &'static Redactor {
        &NONE
    }

    /// Whether there are no rules (encoders take their fast path).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule for a field, if any.
    #[inline]
    pub(crate) fn rule(&self, field: &str) -> Option<Redaction> {
        self.rules
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, r)| *r)
    }

    /// The HMAC tag of a redacted value.
    pub(crate) fn tag(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn first_rule_for_a_field_applies() {
        let r = Redactor::new(
            [
                ("a".to_owned(), Redaction::Mask),
                ("a".to_owned(), Redaction::Remove),
            ],
            Vec::new(),
        );
        assert_eq!(r.rule("a"), Some(Redaction::Mask));
        assert_eq!(r.rule("b"), None);
        assert!(Redactor::none().is_empty());
        assert!(
            format!("{r:?}").contains("<secret>"),
            "the key is never printed"
        );
    }
}
