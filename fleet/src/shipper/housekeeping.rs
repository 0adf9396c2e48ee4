//! Housekeeping, every heartbeat interval: the liveness message, spool
//! retention below this gateway's verified watermark, and the disk check.

use std::path::Path;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;

use super::shared::snapshot;
use super::ship::{Ship, now_nanos};
use crate::spool::{FileId, last_line_seal};

impl Ship {
    /// The watermark stream, for retention (`None`, with the error
    /// recorded, when it cannot be opened).
    pub(super) async fn watermarks(
        &self,
        js: &async_nats::jetstream::Context,
    ) -> Option<async_nats::jetstream::stream::Stream> {
        crate::watermark_stream(js, self.config.stream.replicas)
            .await
            .map_err(|e| self.error(e))
            .ok()
    }

    /// Liveness message, watermark retention and the disk check.
    pub(super) async fn housekeeping(
        &mut self,
        client: &async_nats::Client,
        bucket: Option<&async_nats::jetstream::stream::Stream>,
    ) {
        self.publish_lag(false);
        let free = free_bytes(&self.config.log);
        let alert = free.is_some_and(|f| f < self.config.disk_alert_free_bytes);
        {
            let mut m = self.shared.metrics.lock();
            if alert && !m.disk_alert {
                tracing::error!(target: "auditring_nats", gateway = %self.id, free = ?free, "the spool's disk is nearly full: when it fills, the Required file sink fails closed and the gateway refuses events");
            }
            m.disk_alert = alert;
        }
        if let Some(bucket) = bucket {
            let subject = crate::watermark_subject(&self.id.partition, &self.id.name);
            match bucket.get_last_raw_message_by_subject(&subject).await {
                Ok(msg) => match std::str::from_utf8(&msg.payload)
                    .ok()
                    .and_then(|t| auditring::Checkpoint::from_json(t).ok())
                {
                    Some(watermark) => self.retain(&watermark),
                    None => self.error("an unreadable watermark in the bucket".into()),
                },
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => self.error(format!("cannot read the watermark: {e}")),
            }
        }
        let m = snapshot(&self.shared);
        let beat = serde_json::json!({
            "partition": self.id.partition,
            "gateway": self.id.name,
            "ts_unix_ns": now_nanos(),
            "last_local_seal": self.last_read_seal.as_ref().map(|(s, k)| format!("{s}:{k}")),
            "cursor": self.acked.as_ref().map(|p| format!("{}:{}", p.stream, p.seal)),
            "spool_bytes": m.spool_bytes,
            "lag_bytes": m.lag_bytes,
            "lag_seconds": m.lag_seconds,
            "retries": m.retries,
            "disk_alert": m.disk_alert,
        });
        let _ = client
            .publish(
                crate::heartbeat_subject(&self.id.partition, &self.id.name),
                Bytes::from(beat.to_string()),
            )
            .await;
    }

    /// Deletes rotated files whose every seal is at or below the verified
    /// watermark and behind the cursor; never the active file, never
    /// anything merely acknowledged.
    fn retain(&mut self, watermark: &auditring::Checkpoint) {
        let Ok(files) = self.spool.files() else {
            return;
        };
        let Some((current, _)) = self.spool.position() else {
            return;
        };
        let active = std::fs::metadata(&self.config.log).ok().map(|m| FileId {
            dev: std::os::unix::fs::MetadataExt::dev(&m),
            ino: std::os::unix::fs::MetadataExt::ino(&m),
        });
        for (path, id, _) in files {
            if id == current || Some(id) == active {
                break;
            }
            let Some(last) = last_seal(&path) else { break };
            // The watermark is this gateway's (partition and name), and it
            // counts only for a chain signed with the same key: another
            // log's under this identity (an earlier deployment, a replaced
            // key) never deletes this one's files.
            let same_chain = watermark.key_id == last.key_id;
            let covered = same_chain
                && (watermark.next_seq > last.seq_start.saturating_add(last.count)
                    || (watermark.stream == last.stream && watermark.seal >= last.index));
            if !covered {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(target: "auditring_nats", path = %path.display(), "deleted a spool file below the verified watermark");
                    self.shared.metrics.lock().deleted_files += 1;
                }
                Err(e) => {
                    self.error(format!("cannot delete {}: {e}", path.display()));
                    break;
                }
            }
        }
    }
}

/// The last seal of a (rotated, complete) file.
fn last_seal(path: &Path) -> Option<auditring::format::seal::Seal> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(8192);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    last_line_seal(&tail)
}

/// Free bytes of the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, for which all zero bytes is a valid
    // value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid,
    // writable statvfs for the call's duration.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}
