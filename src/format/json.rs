//! A lean JSON writer for log lines: string escaping, integers, hex and
//! RFC 3339 timestamps, appended to a reused buffer without allocating
//! once the buffer has grown.

/// Characters that must be escaped in a JSON string: `"`, `\` and the
/// control characters below 0x20. Everything else (including all UTF-8
/// bytes >= 0x80) is copied as is.
#[inline(always)]
fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string. Control characters other than
/// `\n`, `\r`, `\t`, `\b` and `\f` are written as `\u00XX`.
#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_utf8(out, s.as_bytes());
}

/// As [`write_str`], for bytes the caller knows to be UTF-8.
#[inline]
pub(crate) fn write_utf8(out: &mut Vec<u8>, utf8: &[u8]) {
    out.push(b'"');
    write_str_body(out, utf8);
    out.push(b'"');
}

/// Bytes tested at once by [`write_str_body`] and [`write_padded_str_body`].
pub(crate) const CHUNK: usize = 16;

/// For each byte of `chunk`, `0xff` if it needs escaping, else 0. Written
/// byte-wise without branches, so that the compiler turns it into three
/// vector compares (SSE2 on x86-64), with no `unsafe`.
#[inline(always)]
fn escape_hits(chunk: &[u8; CHUNK]) -> [u8; CHUNK] {
    let mut hits = [0u8; CHUNK];
    for (hit, &b) in hits.iter_mut().zip(chunk) {
        *hit = 0u8.wrapping_sub(u8::from(needs_escape(b)));
    }
    hits
}

/// Whether any byte of `hits` is set (one vector compare and one mask
/// test).
#[inline(always)]
fn any_hit(hits: &[u8; CHUNK]) -> bool {
    hits.iter().fold(false, |any, &hit| any | (hit != 0))
}

/// Whether any byte of `chunk` needs escaping.
#[inline(always)]
fn chunk_needs_escape(chunk: &[u8; CHUNK]) -> bool {
    any_hit(&escape_hits(chunk))
}

/// Whether any byte of the word needs escaping (a SWAR test of eight
/// bytes; false positives only after a true one, which the byte scan
/// sorts out).
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
    (below(w, 0x20)
        | below(w ^ (ONES * u64::from(b'"')), 1)
        | below(w ^ (ONES * u64::from(b'\\')), 1))
        != 0
}

/// Appends the escaped body of a string (no quotes).
///
/// Tests sixteen bytes at a time, the last chunk overlapping the one
/// before (eight at a time, overlapping, for strings of 8 to 15 bytes),
/// and copies runs that need no escaping in one piece; only a chunk holding
/// a byte to escape is scanned byte by byte. Most audit strings contain
/// nothing to escape.
#[inline]
pub(crate) fn write_str_body(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    let mut start = 0;
    if len >= CHUNK {
        let mut chunks = bytes.chunks_exact(CHUNK);
        for (n, chunk) in chunks.by_ref().enumerate() {
            let chunk: &[u8; CHUNK] = chunk.try_into().expect("a whole chunk");
            if chunk_needs_escape(chunk) {
                start = escape_chunk(out, bytes, start, n * CHUNK, chunk);
            }
        }
        let rest = chunks.remainder().len();
        if rest > 0 {
            // The last sixteen bytes: those before `len - rest` were
            // tested (and escaped) already.
            let last: &[u8; CHUNK] = bytes[len - CHUNK..].try_into().expect("a whole chunk");
            if chunk_needs_escape(last) {
                start = escape_chunk(out, bytes, start, len - rest, &bytes[len - rest..]);
            }
        }
    } else if len >= 8 {
        let word =
            |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
        if word_needs_escape(word(0)) || word_needs_escape(word(len - 8)) {
            start = escape_chunk(out, bytes, 0, 0, bytes);
        }
    } else if bytes.iter().any(|&b| needs_escape(b)) {
        start = escape_chunk(out, bytes, 0, 0, bytes);
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Sixteen `0xff` bytes, then sixteen zeros: the sixteen bytes of it from
/// `CHUNK - n` keep the first `n` bytes of a chunk.
const PREFIX: [u8; 2 * CHUNK] = {
    let mut window = [0u8; 2 * CHUNK];
    let mut i = 0;
    while i < CHUNK {
        window[i] = 0xff;
        i += 1;
    }
    window
};

/// Appends the escaped body (no quotes) of the string `padded[..len]`,
/// where `padded` is a buffer whose length is a multiple of sixteen, at
/// least `len` (an inline string's array).
///
/// Each sixteen-byte chunk holding part of the string is tested and copied
/// whole, straight from `padded`: the last one with the bytes past `len`
/// masked off the test, and its copy cut back to `len` at once, so those
/// bytes reach only `out`'s spare capacity, never its contents. No byte is
/// handled alone and no copy has a length known only at run time. A string
/// with a byte to escape (rare in audit events) is then written again by
/// [`write_str_body`].
#[inline(always)]
pub(crate) fn write_padded_str_body(out: &mut Vec<u8>, padded: &[u8], len: usize) {
    debug_assert!(len <= padded.len() && padded.len().is_multiple_of(CHUNK));
    let base = out.len();
    let mut hits = [0u8; CHUNK];
    let mut chunks = padded.chunks_exact(CHUNK);
    for chunk in chunks.by_ref().take(len / CHUNK) {
        let chunk: &[u8; CHUNK] = chunk.try_into().expect("a whole chunk");
        for (hit, found) in hits.iter_mut().zip(escape_hits(chunk)) {
            *hit |= found;
        }
        out.extend_from_slice(chunk);
    }
    let rest = len % CHUNK;
    if rest > 0
        && let Some(chunk) = chunks.next()
    {
        let chunk: &[u8; CHUNK] = chunk.try_into().expect("a whole chunk");
        let keep = &PREFIX[CHUNK - rest..2 * CHUNK - rest];
        for ((hit, found), &k) in hits.iter_mut().zip(escape_hits(chunk)).zip(keep) {
            *hit |= found & k;
        }
        out.extend_from_slice(chunk);
        out.truncate(base + len);
    }
    if any_hit(&hits) {
        rewrite_escaped(out, base, &padded[..len]);
    }
}

/// Replaces everything after `base` in `out` by the escaped body of
/// `bytes`: the rare string that holds a byte to escape.
#[cold]
#[inline(never)]
fn rewrite_escaped(out: &mut Vec<u8>, base: usize, bytes: &[u8]) {
    out.truncate(base);
    write_str_body(out, bytes);
}

/// Escapes the bytes of `chunk` (at `at` in `bytes`) that need it, after
/// copying the pending run `bytes[start..]` up to each; returns where the
/// next pending run starts.
#[inline(never)]
fn escape_chunk(
    out: &mut Vec<u8>,
    bytes: &[u8],
    mut start: usize,
    at: usize,
    chunk: &[u8],
) -> usize {
    for (k, &b) in chunk.iter().enumerate() {
        if needs_escape(b) {
            let j = at + k;
            out.extend_from_slice(&bytes[start..j]);
            write_escape(out, b);
            start = j + 1;
        }
    }
    start
}

/// Appends the JSON escape sequence of one byte that needs escaping.
#[cold]
fn write_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

/// Appends an unsigned integer in decimal.
#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// Appends a signed integer in decimal.
#[inline]
pub(crate) fn write_i64(out: &mut Vec<u8>, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// Appends bytes as lower-case hex.
pub(crate) fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Lower-case hex of `bytes` as a `String`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    write_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes exactly `N` bytes from lower-case hex; `None` for any other
/// length, an upper-case digit or a non-hex character.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(s[2 * i])? << 4) | digit(s[2 * i + 1])?;
    }
    Some(out)
}

/// Length of an RFC 3339 timestamp written by [`write_rfc3339`].
pub(crate) const RFC3339_LEN: usize = 30;

/// Appends Unix-epoch nanoseconds as a UTC RFC 3339 timestamp with nine
/// fractional digits: `2026-11-26T08:27:41.123456789Z` (always 30 bytes
/// for years up to 9999).
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, unix_nanos: u64) {
    let secs = unix_nanos / 1_000_000_000;
    let nanos = (unix_nanos % 1_000_000_000) as u32;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let (h, m, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let mut buf = [0u8; RFC3339_LEN];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year.clamp(0, 9999) as u64, 4);
    put(5, u64::from(month), 2);
    put(8, u64::from(day), 2);
    put(11, h, 2);
    put(14, m, 2);
    put(17, s, 2);
    put(20, u64::from(nanos), 9);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[29] = b'Z';
    out.extend_from_slice(&buf);
}

/// Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses a timestamp written by [`write_rfc3339`] back to Unix-epoch
/// nanoseconds; `None` unless it has exactly that shape.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != RFC3339_LEN
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[29] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        b[from..to].iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, m, sec, nanos) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 29)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    if days < 0 {
        return None;
    }
    let secs = days as u64 * 86_400 + h * 3600 + m * 60 + sec;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Day count since 1970-01-01 of a Gregorian date (inverse of
/// [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escaping_matches_serde_json() {
        for s in [
            "",
            "plain",
            "quote\" backslash\\ slash/",
            "nl\n cr\r tab\t bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f}",
            "日本語 🦀 é",
            "a long run of plain text with one \" quote in the middle of it all",
            "exactly8\\12345678\u{1}abcdefgh\n",
        ] {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn escapes_at_every_position_of_whole_and_partial_chunks() {
        for len in 0..=3 * CHUNK + 1 {
            for at in 0..len {
                for c in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é'] {
                    let mut s: String =
                        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP"[..len].to_owned();
                    s.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
                    assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

    /// The body `write_padded_str_body` writes for `s`, with `fill` in the
    /// buffer past the string (and `out` not empty before).
    fn padded_body(s: &str, fill: u8) -> String {
        let mut padded = vec![fill; s.len().next_multiple_of(CHUNK) + CHUNK];
        padded[..s.len()].copy_from_slice(s.as_bytes());
        let mut out = b"before".to_vec();
        write_padded_str_body(&mut out, &padded, s.len());
        assert_eq!(&out[..6], b"before");
        String::from_utf8(out[6..].to_vec()).unwrap()
    }

    #[test]
    fn padded_bodies_match_serde_json_whatever_follows_the_string() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP";
        for len in 0..=3 * CHUNK + 1 {
            for fill in [0, b'"', b'\\', b'\n', b'a', 0xff] {
                let plain = &text[..len];
                assert_eq!(
                    format!("\"{}\"", padded_body(plain, fill)),
                    serde_json::to_string(plain).unwrap(),
                    "{plain:?} {fill}"
                );
                for at in 0..len {
                    for c in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é'] {
                        let mut s = plain.to_owned();
                        s.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
                        assert_eq!(
                            format!("\"{}\"", padded_body(&s, fill)),
                            serde_json::to_string(&s).unwrap(),
                            "{s:?} {fill}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_non_canonical() {
        let mut out = Vec::new();
        write_hex(&mut out, &[0x00, 0xab, 0xff]);
        assert_eq!(out, b"00abff");
        assert_eq!(unhex::<3>("00abff"), Some([0x00, 0xab, 0xff]));
        assert_eq!(unhex::<3>("00ABFF"), None);
        assert_eq!(unhex::<3>("00abf"), None);
        assert_eq!(unhex::<2>("zz00"), None);
    }

    proptest::proptest! {
        #[test]
        fn escaping_matches_serde_json_for_any_string(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            proptest::prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn padded_escaping_matches_serde_json_for_any_string(
            s in "\\PC*|[\\x00-\\x7f]{0,40}",
            fill in proptest::num::u8::ANY,
        ) {
            proptest::prop_assert_eq!(
                format!("\"{}\"", padded_body(&s, fill)),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    #[test]
    fn rfc3339_known_values_and_round_trip() {
        let mut out = Vec::new();
        write_rfc3339(&mut out, 0);
        assert_eq!(out, b"1970-01-01T00:00:00.000000000Z");
        out.clear();
        // 2000-02-29T12:34:56.000000789Z: a leap day.
        let t = 951_827_696_000_000_789;
        write_rfc3339(&mut out, t);
        assert_eq!(out, b"2000-02-29T12:34:56.000000789Z");
        assert_eq!(parse_rfc3339(std::str::from_utf8(&out).unwrap()), Some(t));
        for t in [1u64, 1_795_681_444_028_597_435, 4_102_444_799_999_999_999] {
            out.clear();
            write_rfc3339(&mut out, t);
            assert_eq!(out.len(), RFC3339_LEN);
            assert_eq!(parse_rfc3339(std::str::from_utf8(&out).unwrap()), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00.000000000Z"), None);
        assert_eq!(parse_rfc3339("2026-11-26T08:27:41.12345678Z"), None);
    }
}
