//! The archive on disk: its layout (`<archive>/<partition>/<gateway>/`),
//! and the persister thread that makes each poll's archive bytes and
//! states durable before it acknowledges the poll's messages and publishes
//! the verified watermarks.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use async_nats::jetstream;
use auditring::Checkpoint;
use bytes::Bytes;
use parking_lot::Mutex;

use super::config::CollectorError;
use crate::GatewayId;

/// A gateway's archive file: an ordinary log.
pub(super) const ARCHIVE: &str = "audit.jsonl";
/// A gateway's saved collector state.
pub(super) const STATE: &str = "collector-state.json";
/// A gateway's last verified checkpoint, for `verify --expect`.
const CHECKPOINT: &str = "checkpoint.json";

/// A gateway's directory in the archive.
pub(super) fn gateway_dir(archive: &Path, id: &GatewayId) -> PathBuf {
    archive.join(&id.partition).join(&id.name)
}

/// The gateways with a saved state in the archive,
/// `<archive>/<partition>/<gateway>/collector-state.json`.
///
/// An archive laid out by gateway name alone (`<archive>/<gateway>/`) is
/// refused: which partition its gateways belong to is not recorded.
pub(super) fn archived_gateways(archive: &Path) -> Result<Vec<GatewayId>, CollectorError> {
    let mut out = Vec::new();
    for partition in std::fs::read_dir(archive)? {
        let partition = partition?;
        if !partition.file_type()?.is_dir() {
            continue;
        }
        if partition.path().join(STATE).exists() {
            return Err(CollectorError::Config(format!(
                "{} holds a gateway's archive directly: archives are <archive>/<partition>/<gateway>/ (move it under its partition's directory, {} unless its shipper named one)",
                partition.path().display(),
                crate::DEFAULT_PARTITION
            )));
        }
        let Some(p) = partition.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        for gateway in std::fs::read_dir(partition.path())? {
            let gateway = gateway?;
            if gateway.path().join(STATE).exists()
                && let Some(name) = gateway.file_name().to_str()
            {
                let id = GatewayId::new(&p, name);
                if id.check().is_ok() {
                    out.push(id);
                }
            }
        }
    }
    Ok(out)
}

/// One gateway's share of a persist job.
pub(super) struct GatewayJob {
    pub(super) archive: File,
    pub(super) offset: u64,
    pub(super) bytes: Vec<u8>,
    pub(super) state: String,
    pub(super) checkpoint: Option<String>,
    pub(super) dir: PathBuf,
}

impl GatewayJob {
    /// Archive bytes synced, then the state (which says how long the
    /// archive is) synced: only then may the messages be acknowledged.
    fn run(self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.archive.write_all_at(&self.bytes, self.offset)?;
        self.archive.sync_data()?;
        write_atomic(&self.dir.join(STATE), self.state.as_bytes())?;
        if let Some(c) = self.checkpoint {
            // Also in the (synced) state; this copy is for `verify --expect`.
            let path = self.dir.join(CHECKPOINT);
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            std::fs::write(&tmp, c)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    }
}

/// A poll's persist job: the gateways' writes, then the acks and the
/// watermarks. The persister thread runs one while `poll` verifies the
/// next messages.
#[derive(Default)]
pub(super) struct Job {
    pub(super) gateways: Vec<GatewayJob>,
    pub(super) messages: Vec<jetstream::Message>,
    pub(super) watermarks: Vec<(GatewayId, Checkpoint)>,
    /// Told when the job is done.
    done: Option<Sender<()>>,
}

impl Job {
    /// A job that acknowledges `messages` once the gateways' writes are
    /// durable.
    pub(super) fn new(messages: Vec<jetstream::Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

/// The persister thread and its queue of jobs.
pub(super) struct Persister {
    /// Persist jobs, run in order by the persister thread (a queue of one:
    /// the next poll verifies while the last one is made durable).
    jobs: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<Mutex<Option<io::Error>>>,
}

impl Persister {
    /// Starts the thread; it acknowledges on `handle` and publishes the
    /// watermarks (when `watermarks`) through `js`.
    pub(super) fn spawn(
        handle: tokio::runtime::Handle,
        js: jetstream::Context,
        watermarks: bool,
    ) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let failed = Arc::new(Mutex::new(None));
        let thread = {
            let failed = Arc::clone(&failed);
            std::thread::Builder::new()
                .name("auditring-collect-sync".into())
                .spawn(move || run(rx, handle, js, watermarks, failed))?
        };
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
            failed,
        })
    }

    /// The error that stopped the thread, if any (taken).
    pub(super) fn failure(&self) -> Option<io::Error> {
        self.failed.lock().take()
    }

    /// Queues a job (waits while the one before it is still queued).
    pub(super) fn send(&self, job: Job) -> Result<(), CollectorError> {
        let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// Waits until every job queued so far is done.
    pub(super) fn sync(&self) -> Result<(), CollectorError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let job = Job {
            done: Some(tx),
            ..Job::default()
        };
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent || rx.recv().is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    fn stopped(&self) -> CollectorError {
        let e = self.failed.lock().take();
        CollectorError::Io(e.unwrap_or_else(|| io::Error::other("the persister stopped")))
    }

    /// Finishes the jobs queued (their acks included) and ends the thread.
    pub(super) fn finish(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs persist jobs in order; the first error stops it.
fn run(
    jobs: Receiver<Job>,
    handle: tokio::runtime::Handle,
    js: jetstream::Context,
    watermarks: bool,
    failed: Arc<Mutex<Option<io::Error>>>,
) {
    for job in jobs {
        let result = std::thread::scope(|scope| {
            let runs: Vec<_> = job
                .gateways
                .into_iter()
                .map(|g| scope.spawn(move || g.run()))
                .collect();
            runs.into_iter().try_for_each(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a persist thread panicked")))
            })
        });
        if let Err(e) = result {
            // Nothing of this job is acknowledged: it comes again.
            *failed.lock() = Some(e);
            return;
        }
        handle.block_on(async {
            for m in &job.messages {
                if let Err(e) = m.ack().await {
                    tracing::warn!(target: "auditring_nats", error = %e, "an ack was not sent; the message comes again and is dropped as a duplicate");
                }
            }
            if watermarks {
                for (id, c) in job.watermarks {
                    let subject = crate::watermark_subject(&id.partition, &id.name);
                    if let Ok(ack) = js.publish(subject, Bytes::from(c.to_json())).await {
                        let _ = ack.await;
                    }
                }
            }
        });
        if let Some(done) = job.done {
            let _ = done.send(());
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}
