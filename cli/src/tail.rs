//! `auditring tail`: prints a log's records readably, and with `--follow`
//! keeps printing new ones as they are written (across rotations).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use auditring::PublicKey;
use auditring::format::line::Line;
use auditring::verify::{Status, Verifier};
use serde::Deserialize;

use crate::terminal_safe::escape;

#[derive(Deserialize, Default)]
struct Payload<'a> {
    #[serde(borrow, default)]
    action: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    resource: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    decision: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    deny_reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    agent_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    enforcement_latency_us: Option<u64>,
}

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// One record as a readable line. Every piece of text from the log goes
/// through [`escape`]: a log's fields must not drive the terminal.
fn render(line: &[u8], style: &Style) -> String {
    match auditring::format::line::read(line) {
        Ok(Line::Event(e)) => {
            let ts = auditring::format::event::rfc3339(e.ts);
            let p: Payload<'_> = serde_json::from_str(e.payload).unwrap_or_default();
            if p.action.is_none() && p.decision.is_none() {
                return format!("{ts} #{:<8} {}", e.seq, escape(e.payload));
            }
            let decision = escape(p.decision.as_deref().unwrap_or("?"));
            let painted = match &*decision {
                "allow" => style.paint("32", &format!("{decision:<5}")),
                "deny" => style.paint("31", &format!("{decision:<5}")),
                _ => style.paint("33", &format!("{decision:<5}")),
            };
            let mut out = format!(
                "{ts} #{:<8} {painted} {:<14} {:<16} {:>6}µs  {}",
                e.seq,
                escape(p.action.as_deref().unwrap_or("")),
                escape(p.agent_id.as_deref().unwrap_or("")),
                p.enforcement_latency_us.unwrap_or(0),
                escape(p.resource.as_deref().unwrap_or(""))
            );
            if let Some(reason) = p.deny_reason.as_deref().filter(|r| !r.is_empty()) {
                out.push_str(&format!("  ({})", escape(reason)));
            }
            out
        }
        Ok(Line::Seal(seal, _)) => {
            let (count, start) = (seal.count, seal.seq_start);
            let range = if count > 0 {
                format!(" seq {}..{}", start, start + count - 1)
            } else {
                String::new()
            };
            let dropped = if seal.dropped > 0 {
                style.paint("31", &format!(", {} dropped", seal.dropped))
            } else {
                String::new()
            };
            style.paint(
                "2",
                &format!(
                    "──── seal #{} {}: {count} events{range}{dropped}",
                    seal.index, seal.reason
                ),
            )
        }
        _ => style.paint(
            "33",
            &format!("(not a record) {}", escape(&String::from_utf8_lossy(line))),
        ),
    }
}

/// Prints the last `lines` records of `path`, then follows it if asked.
/// With `keys`, the log (with its rotated files) is verified first: a
/// tampered log prints nothing (exit 1), and only sealed lines are shown.
pub fn run(path: &Path, lines: usize, follow: bool, keys: Vec<PublicKey>) -> Result<u8, String> {
    let style = Style {
        color: io::stdout().is_terminal(),
    };
    let open = |p: &Path| File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let mut verdict = 0;
    let mut sealed_end = None;
    if !keys.is_empty() {
        if follow {
            return Err(
                "--follow with --key is not supported: verify with `auditring verify`, then follow without --key"
                    .into(),
            );
        }
        let files = auditring::verify::log_files_opened(path)
            .map_err(|e| format!("cannot list the files of {}: {e}", path.display()))?;
        let verifier = Verifier::new(keys);
        let mut pass = verifier.start();
        pass.feed_opened(files, &mut |_| {})
            .map_err(|e| e.to_string())?;
        sealed_end = Some(pass.sealed_offset());
        let report = pass.finish();
        match report.status() {
            Status::Tampered => {
                eprintln!(
                    "auditring: the log is TAMPERED ({} finding(s)): nothing shown; run `auditring verify` for details",
                    report.tamper
                );
                return Ok(1);
            }
            Status::Incomplete => verdict = 3,
            Status::Intact => {}
        }
    }
    let mut file = open(path)?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(|e| e.to_string())?;
    if let Some(end) = sealed_end {
        let unsealed = text.get(end as usize..).map_or(0, |rest| {
            rest.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        });
        if unsealed > 0 {
            eprintln!(
                "auditring: {unsealed} line(s) after the last seal are not sealed and not shown"
            );
        }
        text.truncate(end as usize);
    }
    let mut offset = text.len() as u64;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut partial = text[complete..].to_vec();
    let all: Vec<&[u8]> = text[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = io::stdout().lock();
    for line in &all[all.len().saturating_sub(lines)..] {
        let _ = writeln!(out, "{}", render(line, &style));
    }
    let _ = out.flush();
    if !follow {
        return Ok(verdict);
    }
    drop(out);
    let identity = |f: &File| {
        f.metadata().ok().map(|m| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                m.ino()
            }
            #[cfg(not(unix))]
            {
                m.len()
            }
        })
    };
    let mut current = identity(&file);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            std::thread::sleep(Duration::from_millis(200));
            // Rotated (a new file at the path) or truncated: start over.
            if let Ok(fresh) = File::open(path) {
                let len = fresh.metadata().map(|m| m.len()).unwrap_or(0);
                if identity(&fresh) != current || len < offset {
                    file = fresh;
                    current = identity(&file);
                    offset = 0;
                    partial.clear();
                    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
                }
            }
            continue;
        }
        offset += n as u64;
        partial.extend_from_slice(&buf[..n]);
        let mut out = io::stdout().lock();
        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            if line.len() > 1
                && writeln!(out, "{}", render(&line[..line.len() - 1], &style)).is_err()
            {
                return Ok(0); // the reader went away (e.g. `| head`)
            }
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_seals_render() {
        use auditring::format::seal::{Orphans, Seal, SealReason};
        use auditring::{AuditPayload, Decision, SigningKey};
        let style = Style { color: false };
        let mut p = AuditPayload::default();
        p.set_action("http.get")
            .set_agent_id("a7")
            .set_resource("https://x")
            .set_deny_reason("nope");
        p.decision = Decision::Deny;
        p.enforcement_latency_us = 12;
        let event = auditring::format::event::event_line(
            7,
            &auditring::Uuid::from_bytes([2; 16]),
            1_700_000_000_000_000_001,
            &p,
        );
        let text = render(&event, &style);
        assert!(text.contains("#7"), "{text}");
        assert!(text.starts_with("2023-11-14T22:13:20.000000001Z"), "{text}");
        assert!(text.contains("deny"));
        assert!(text.contains("12µs"));
        assert!(text.contains("(nope)"));
        let key = SigningKey::generate();
        let seal = Seal {
            stream: auditring::Uuid::from_bytes([1; 16]),
            index: 3,
            reason: SealReason::Size,
            seq_start: 8,
            count: 4,
            root: [0; 32],
            prev: [0; 32],
            dropped: 2,
            dropped_total: 2,
            sink_errors: 0,
            orphans: Orphans::NONE,
            unix_nanos: 0,
            key_id: key.key_id(),
        };
        let text = render(&seal.to_line(&seal.sign(&key)), &style);
        assert!(
            text.contains("seal #3 size: 4 events seq 8..11, 2 dropped"),
            "{text}"
        );
        assert!(render(b"garbage", &style).contains("not a record"));
    }
}
