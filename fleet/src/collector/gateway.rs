//! One gateway's chain at the collector: duplicates dropped, parts
//! joined, order restored, the incremental verifier fed, and what must be
//! made durable before the messages are acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditring::Checkpoint;
use auditring::format::merkle::Hash;
use auditring::format::seal::Seal;
use auditring::verify::{Verifier, VerifierState};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::persist::{self, GatewayJob};
use crate::GatewayId;

/// Batches held back waiting for an earlier one, at most.
const REORDER_LIMIT: usize = 64;
/// How long a batch is held back waiting for an earlier one.
const REORDER_WAIT: Duration = Duration::from_secs(2);
/// Streams remembered per gateway to drop late duplicates of.
const FINISHED_STREAMS: usize = 64;

/// What a gateway's collector state saves beside its archive.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Saved {
    pub(super) verifier: Option<VerifierState>,
    archive_len: u64,
    head: Option<Head>,
    finished: VecDeque<String>,
    pub(super) batches: u64,
    pub(super) events: u64,
    pub(super) duplicates: u64,
    pub(super) truncations: Vec<String>,
    pub(super) last_seal_unix_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Head {
    stream: String,
    seal: u64,
    hash: Hash,
}

/// A gateway's state at the collector.
pub(super) struct Gateway {
    pub(super) id: GatewayId,
    pub(super) dir: PathBuf,
    verifier: Verifier,
    pub(super) saved: Saved,
    archive: File,
    write: Vec<u8>,
    parts: Option<(String, u64, Vec<Bytes>)>,
    held: BTreeMap<(String, u64), (Bytes, Instant)>,
    pub(super) last_batch: Option<Instant>,
    pub(super) heartbeat: Option<(Instant, serde_json::Value)>,
    pub(super) dirty: bool,
}

impl Gateway {
    /// Opens the gateway's archive and its saved state (under
    /// `<archive>/<partition>/<gateway>/`).
    pub(super) fn open(id: &GatewayId, archive: &Path, verifier: Verifier) -> io::Result<Self> {
        let dir = persist::gateway_dir(archive, id);
        std::fs::create_dir_all(&dir)?;
        let saved: Saved = match std::fs::read_to_string(dir.join(persist::STATE)) {
            Ok(t) => serde_json::from_str(&t).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(e),
        };
        let archive = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(dir.join(persist::ARCHIVE))?;
        // Bytes written after the last saved state were never acknowledged:
        // their messages come again.
        if archive.metadata()?.len() > saved.archive_len {
            archive.set_len(saved.archive_len)?;
        }
        Ok(Self {
            id: id.clone(),
            dir,
            verifier,
            saved,
            archive,
            write: Vec::new(),
            parts: None,
            held: BTreeMap::new(),
            last_batch: None,
            heartbeat: None,
            dirty: false,
        })
    }

    /// One message: a whole batch or a part of one.
    pub(super) fn message(
        &mut self,
        stream: String,
        seal: u64,
        part: u32,
        parts: u32,
        payload: Bytes,
    ) {
        if self.is_duplicate(&stream, seal) {
            self.saved.duplicates += 1;
            return;
        }
        if parts <= 1 {
            self.batch(stream, seal, payload);
            return;
        }
        let same = matches!(&self.parts, Some((s, k, _)) if *s == stream && *k == seal);
        if !same {
            self.parts = Some((stream.clone(), seal, Vec::new()));
        }
        let (_, _, got) = self.parts.as_mut().expect("set");
        if part as usize == got.len() {
            got.push(payload);
        } else if (part as usize) < got.len() {
            self.saved.duplicates += 1;
            return;
        } else {
            // A part is missing: wait for the batch to come again whole.
            self.parts = None;
            return;
        }
        if got.len() == parts as usize {
            let (_, _, got) = self.parts.take().expect("set");
            let mut whole = Vec::with_capacity(got.iter().map(Bytes::len).sum());
            for p in got {
                whole.extend_from_slice(&p);
            }
            self.batch(stream, seal, Bytes::from(whole));
        }
    }

    fn is_duplicate(&self, stream: &str, seal: u64) -> bool {
        match &self.saved.head {
            Some(h) if h.stream == stream => seal <= h.seal,
            _ => self.saved.finished.iter().any(|s| s == stream),
        }
    }

    /// A whole batch, in order or held back until its predecessor comes.
    fn batch(&mut self, stream: String, seal: u64, bytes: Bytes) {
        let ahead = matches!(&self.saved.head, Some(h) if h.stream == stream && seal > h.seal + 1);
        if ahead {
            self.held.insert((stream, seal), (bytes, Instant::now()));
            if self.held.len() > REORDER_LIMIT {
                self.release_held(true);
            }
            return;
        }
        self.verify(&stream, seal, &bytes);
        self.release_held(false);
    }

    /// Feeds held batches that now follow the head; with `force`, the
    /// oldest held ones whatever their place (the verifier names the gap).
    pub(super) fn release_held(&mut self, force: bool) {
        loop {
            let next = self
                .saved
                .head
                .as_ref()
                .map(|h| (h.stream.clone(), h.seal + 1));
            let key = match next.and_then(|k| self.held.contains_key(&k).then_some(k)) {
                Some(k) => k,
                None if force
                    || self
                        .held
                        .values()
                        .next()
                        .is_some_and(|(_, at)| at.elapsed() >= REORDER_WAIT) =>
                {
                    match self.held.keys().next() {
                        Some(k) => k.clone(),
                        None => return,
                    }
                }
                None => return,
            };
            let (bytes, _) = self.held.remove(&key).expect("present");
            self.verify(&key.0, key.1, &bytes);
            if !force && self.held.is_empty() {
                return;
            }
        }
    }

    fn verify(&mut self, stream: &str, seal_index: u64, bytes: &[u8]) {
        let seal = last_line(bytes).and_then(|l| Seal::parse_line(l).ok().map(|(s, _)| s));
        if let (Some(seal), Some(head)) = (&seal, &self.saved.head)
            && seal.reason.starts_stream()
            && seal.prev != head.hash
        {
            let why = format!(
                "a new run (stream {stream}) does not continue seal {}:{} that was verified here: the gateway's log no longer holds it (its trailing run or files were deleted)",
                head.stream, head.seal
            );
            tracing::error!(target: "auditring_nats", gateway = %self.id, "{why}");
            self.saved.truncations.push(why);
        }
        let name = format!("{} {stream}:{seal_index}", self.id);
        let mut pass = match self.saved.verifier.take() {
            Some(state) => self.verifier.resume(state),
            None => self.verifier.start(),
        };
        // Reading from memory cannot fail.
        let _ = pass.feed(&name, bytes, &mut |_| {});
        self.saved.verifier = Some(pass.state());
        self.write.extend_from_slice(bytes);
        self.saved.batches += 1;
        if let Some(seal) = &seal {
            self.saved.events += seal.count;
            self.saved.last_seal_unix_ns = seal.unix_nanos;
            if let Some(head) = &self.saved.head
                && head.stream != stream
            {
                self.saved.finished.push_back(head.stream.clone());
                if self.saved.finished.len() > FINISHED_STREAMS {
                    self.saved.finished.pop_front();
                }
            }
            self.saved.head = Some(Head {
                stream: stream.into(),
                seal: seal_index,
                hash: Checkpoint::of_seal(seal).hash,
            });
        }
        self.last_batch = Some(Instant::now());
        self.dirty = true;
    }

    /// What must be made durable before this poll's messages are
    /// acknowledged: the archive bytes and the state after them.
    pub(super) fn take_job(&mut self) -> io::Result<Option<GatewayJob>> {
        if !self.dirty {
            return Ok(None);
        }
        let offset = self.saved.archive_len;
        let bytes = std::mem::take(&mut self.write);
        self.saved.archive_len += bytes.len() as u64;
        let state = serde_json::to_string(&self.saved).map_err(io::Error::other)?;
        self.dirty = false;
        Ok(Some(GatewayJob {
            archive: self.archive.try_clone()?,
            offset,
            bytes,
            state,
            checkpoint: self.checkpoint().map(|c| c.to_json() + "\n"),
            dir: self.dir.clone(),
        }))
    }

    /// The last verified seal.
    pub(super) fn checkpoint(&self) -> Option<Checkpoint> {
        self.saved
            .verifier
            .as_ref()
            .and_then(VerifierState::checkpoint)
    }
}

fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Some(&body[start..])
}
