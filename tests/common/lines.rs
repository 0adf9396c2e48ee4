//! A log as a list of lines and back, for tests that cut, move and
//! replace lines.

/// The log's non-empty lines, without their newlines.
pub fn lines(log: &[u8]) -> Vec<Vec<u8>> {
    log.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The lines joined into a log, each ended by a newline.
pub fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}
