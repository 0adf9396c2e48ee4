//! Text from a log, made safe to show on a terminal.
//!
//! A log's payload fields are written by whoever the gateway audits: an
//! agent that controls `action` or `resource` could otherwise send escape
//! sequences to the auditor's terminal (clear lines, rewrite the screen,
//! set the window title, reorder text with bidirectional overrides). Every
//! human-readable output of the command passes log text through
//! [`escape`]; JSON output stays exact.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: C0 controls (including
/// ESC, BEL, CR, LF and tab), DEL, C1 controls (U+0080..U+009F, CSI among
/// them), bidirectional overrides, embeddings, isolates and marks, and the
/// Unicode line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with every unsafe character shown escaped: `\n`, `\r` and `\t`
/// for those three, `\x1b` for other ASCII controls and DEL, `\u{202e}`
/// for the others. Borrows when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn controls_and_overrides_are_shown_escaped() {
        assert_eq!(escape("db.query"), "db.query");
        assert!(matches!(escape("plain ü ✓"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(escape("\x1b[2Kx\x07"), "\\x1b[2Kx\\x07");
        assert_eq!(escape("a\r\nb\tc"), "a\\r\\nb\\tc");
        assert_eq!(escape("\x00\x7f"), "\\x00\\x7f");
        assert_eq!(escape("\u{9b}2J\u{85}"), "\\u{9b}2J\\u{85}");
        assert_eq!(
            escape("\u{202e}exe.txt\u{2066}"),
            "\\u{202e}exe.txt\\u{2066}"
        );
        assert_eq!(escape("\u{2028}\u{200f}"), "\\u{2028}\\u{200f}");
        // Printable neighbours stay as they are.
        assert_eq!(escape("\u{a0}\u{201c}\u{2070}"), "\u{a0}\u{201c}\u{2070}");
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let out = escape(c.encode_utf8(&mut [0; 4])).into_owned();
            assert!(
                out.chars().all(|o| !o.is_control()
                    && !matches!(o, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
                "{c:?} -> {out:?}"
            );
        }
    }
}
