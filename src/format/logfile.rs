//! The files of one log on disk: rotated files beside the active one,
//! finding a file's first and last seal, and ordering files by their chain.
//!
//! Used by [`FileSink`](crate::sink::FileSink) to continue a log and by the
//! verifier and the command line to find every file of a log.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::format::event::SEAL_PREFIX;
use crate::format::merkle::{Hash, MerkleBuilder, leaf_hash};
use crate::format::seal::{GENESIS, Orphans, Seal};

/// How far back the last seal of a file is looked for.
pub(crate) const SCAN_LIMIT: u64 = 64 << 20;

/// `<path>.<n>`: the n-th rotated file of the log at `path`.
pub(crate) fn rotated_path(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// `<path>.<n>` files next to `path`, with their `n`, by increasing `n`.
pub(crate) fn rotated_files(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(n) = name
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((n, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// Every file of the log whose active file is `active`, in chain order:
/// each file's first seal links (`prev`) to the last seal of the file
/// before it. Files that link to no other file keep the order of their
/// rotation numbers, so a missing file shows up where it is missing; the
/// active file comes last unless the chain says otherwise.
///
/// # Errors
///
/// As [`log_files_opened`].
pub fn log_files(active: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(log_files_opened(active)?
        .into_iter()
        .map(|(path, _)| path)
        .collect())
}

/// [`log_files`], opened. The files are opened first and ordered by what
/// the open handles hold; if a rotation renamed the active file between
/// listing and opening (a newer rotated file appeared), it starts over.
/// Reading the returned handles then sees every byte of the log as
/// listed, even if the writer rotates again meanwhile.
///
/// # Errors
///
/// The directory cannot be listed or a file cannot be read, or the log
/// kept rotating under the listing (`ErrorKind::Interrupted`).
pub fn log_files_opened(active: &Path) -> io::Result<Vec<(PathBuf, File)>> {
    for _ in 0..100 {
        let rotated = rotated_files(active)?;
        let newest = rotated.last().map(|(n, _)| *n);
        let mut files = Vec::with_capacity(rotated.len() + 1);
        let mut vanished = false;
        for (_, path) in rotated {
            match File::open(&path) {
                Ok(file) => files.push((path, file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => vanished = true,
                Err(e) => return Err(e),
            }
        }
        match File::open(active) {
            Ok(file) => files.push((active.to_owned(), file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && files.is_empty() => {
                return Err(e);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let rotated_meanwhile = rotated_files(active)?.last().map(|(n, _)| *n) != newest;
        if vanished || rotated_meanwhile {
            continue;
        }
        return order_by_chain(files);
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        format!(
            "the files of {} kept rotating while they were listed",
            active.display()
        ),
    ))
}

/// Orders opened files by their chain (see [`log_files`]).
fn order_by_chain(mut files: Vec<(PathBuf, File)>) -> io::Result<Vec<(PathBuf, File)>> {
    if files.len() < 2 {
        return Ok(files);
    }
    // (first seal's prev, last seal's hash) per file. A file that cannot
    // be read as a log links to nothing: it keeps its place by number, and
    // the verifier says what is wrong with it.
    let mut ends: Vec<(Option<Hash>, Option<Hash>)> = Vec::with_capacity(files.len());
    for (_, file) in &mut files {
        let len = file.metadata()?.len();
        let first = first_seal(file).ok().flatten().map(|s| s.prev);
        let complete = complete_length(file, len)?;
        let last = last_seal(file, complete)
            .ok()
            .flatten()
            .map(|found| found.seal.hash());
        ends.push((first, last));
    }
    let by_last: HashMap<Hash, usize> = ends
        .iter()
        .enumerate()
        .filter_map(|(i, (_, last))| last.map(|h| (h, i)))
        .collect();
    let successor: HashMap<usize, usize> = ends
        .iter()
        .enumerate()
        .filter_map(|(i, (first, _))| {
            let prev = (*first)?;
            if prev == GENESIS {
                return None;
            }
            by_last.get(&prev).filter(|&&p| p != i).map(|&p| (p, i))
        })
        .collect();
    let mut has_predecessor = vec![false; files.len()];
    for &s in successor.values() {
        has_predecessor[s] = true;
    }
    let mut order = Vec::with_capacity(files.len());
    let mut placed = vec![false; files.len()];
    for start in 0..files.len() {
        if has_predecessor[start] || placed[start] {
            continue;
        }
        let mut at = Some(start);
        while let Some(i) = at {
            if placed[i] {
                break;
            }
            placed[i] = true;
            order.push(i);
            at = successor.get(&i).copied();
        }
    }
    // Files on a cycle (only a crafted chain makes one) keep their order.
    order.extend((0..files.len()).filter(|&i| !placed[i]));
    let mut slots: Vec<Option<(PathBuf, File)>> = files.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i].take().expect("each file is placed once"))
        .collect())
}

/// The first line of a file, if it is a readable seal.
fn first_seal(file: &mut File) -> io::Result<Option<Seal>> {
    file.seek(SeekFrom::Start(0))?;
    let mut line = Vec::new();
    BufReader::new(file.take(4096)).read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Seal::parse_line(&line).ok().map(|(s, _)| s))
}

/// The length of the file up to and including its last newline.
pub(crate) fn complete_length(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// A seal found in a file.
#[derive(Clone, Debug)]
pub(crate) struct FoundSeal {
    pub(crate) seal: Seal,
    pub(crate) signature: [u8; 64],
    /// The offset just past the seal line's newline.
    pub(crate) end: u64,
}

/// The last seal line among the first `len` bytes of a file, scanning
/// backwards at most [`SCAN_LIMIT`] bytes. A damaged last seal is an error
/// that says what is wrong with it.
pub(crate) fn last_seal(file: &mut File, len: u64) -> io::Result<Option<FoundSeal>> {
    const CHUNK: u64 = 64 << 10;
    /// Longer lines cannot be seals; only their length matters.
    const MAX_SEAL: usize = 4096;
    let mut end = len;
    // The line whose start is not read yet: its bytes so far, where it
    // ends (the offset of its newline, or `len`), and whether it is
    // already too long to be a seal.
    let mut line: Vec<u8> = Vec::new();
    let mut line_end = len;
    let mut too_long = false;
    let mut buf = Vec::new();
    while end > 0 && len - end < SCAN_LIMIT {
        let start = end.saturating_sub(CHUNK);
        buf.clear();
        buf.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        let mut piece_end = buf.len();
        loop {
            let newline = memchr::memrchr(b'\n', &buf[..piece_end]);
            let piece = &buf[newline.map_or(0, |i| i + 1)..piece_end];
            if !too_long {
                if line.len() + piece.len() > MAX_SEAL {
                    too_long = true;
                    line.clear();
                } else {
                    line.splice(0..0, piece.iter().copied());
                }
            }
            if newline.is_none() && start > 0 {
                // The line starts in an earlier chunk.
                break;
            }
            if !too_long && line.starts_with(SEAL_PREFIX) {
                return parse_found(&line, line_end, len).map(Some);
            }
            let Some(nl) = newline else {
                return Ok(None);
            };
            line.clear();
            too_long = false;
            line_end = start + nl as u64;
            piece_end = nl;
        }
        end = start;
    }
    Ok(None)
}

fn parse_found(line: &[u8], line_end: u64, len: u64) -> io::Result<FoundSeal> {
    // The offset just past the line's newline (a last line without one is
    // not complete, and callers pass only complete lengths).
    let end = (line_end + 1).min(len);
    Seal::parse_line(line)
        .map(|(seal, signature)| FoundSeal {
            seal,
            signature,
            end,
        })
        .map_err(|e| {
            let what = if line.last() == Some(&b'\r') {
                "its lines end in CRLF (\\r\\n): the file was converted to Windows line endings; convert it back (dos2unix) before continuing it".to_owned()
            } else {
                format!("its last seal is damaged ({e})")
            };
            io::Error::new(io::ErrorKind::InvalidData, what)
        })
}

/// What lies after the last seal of a file: the complete lines (their
/// count and Merkle root, as a `recovered` seal commits to them) and the
/// length of a partial last line.
pub(crate) fn orphans_after(file: &mut File, from: u64, len: u64) -> io::Result<Orphans> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::new(file.take(len - from));
    let mut merkle = MerkleBuilder::default();
    let mut line = Vec::new();
    let mut torn = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            merkle.push(leaf_hash(&line));
        } else {
            torn = line.len() as u64;
        }
    }
    Ok(Orphans {
        count: merkle.len(),
        root: merkle.root(),
        torn,
    })
}
