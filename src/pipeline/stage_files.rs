//! The stage-histogram files: a small thread (`auditring-stats`) that
//! writes every pipeline stage's histogram in HdrHistogram's
//! percentile-distribution format, periodically and once more at
//! shutdown, with the runtime's counters beside them.
//!
//! Never on the `record` path: the thread takes the published histograms'
//! lock once per interval, only to copy the five stage histograms (the
//! signer and writer record into histograms of their own and publish
//! into these every few milliseconds, so they never wait on it); it
//! formats and writes with the lock released. Each file is replaced whole (written beside, then
//! renamed), so a reader never sees half a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pipeline::runtime::RuntimeStats;
use crate::pipeline::shared::{Pipeline, lock};
use crate::stats::Stage;
use crate::stats::hgrm::{COUNTERS_FILE, Distribution, stage_file};

/// The running writer; [`finish`](StageFiles::finish) writes the last
/// state and joins it.
pub(crate) struct StageFiles {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StageFiles {
    /// Creates `dir` and starts the thread. `every` of zero writes only at
    /// shutdown.
    pub(crate) fn spawn(
        dir: PathBuf,
        every: Duration,
        pipeline: Arc<Pipeline>,
        counters: Box<dyn Fn() -> RuntimeStats + Send>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("auditring-stats".into())
            .spawn(move || {
                let mut failing = false;
                let mut next = Instant::now() + every;
                // Acquire: pairs with the Release store in `finish`, so the
                // last write sees every histogram update the signer and
                // writer made before they were joined.
                while !thread_stop.load(Ordering::Acquire) {
                    if every.is_zero() {
                        std::thread::park();
                        continue;
                    }
                    let now = Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    next = now + every;
                    write_all(&dir, &pipeline, &*counters, &mut failing);
                }
                write_all(&dir, &pipeline, &*counters, &mut failing);
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Writes the files a last time (after the signer and writer have
    /// finished) and joins the thread.
    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for StageFiles {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// One round: every stage file, then the counters. A failure is reported
/// through `tracing` when it starts and when it ends, not every round.
fn write_all(
    dir: &Path,
    pipeline: &Pipeline,
    counters: &dyn Fn() -> RuntimeStats,
    failing: &mut bool,
) {
    let copies: Vec<_> = {
        let hists = lock(&pipeline.stats);
        Stage::ALL
            .iter()
            .map(|&s| (s, hists.stage(s).histogram().clone()))
            .collect()
    };
    let mut result = Ok(());
    for (stage, h) in copies {
        // Nanosecond stages are written in microseconds with three
        // decimals: every file has one unit, and nothing is lost.
        let scale = if stage.unit() == "ns" { 1000.0 } else { 1.0 };
        let text = Distribution::of(&h, scale).to_text();
        result = result.and(replace(&stage_file(dir, stage), text.as_bytes()));
    }
    let json = serde_json::to_string_pretty(&counters()).unwrap_or_default() + "\n";
    result = result.and(replace(&dir.join(COUNTERS_FILE), json.as_bytes()));
    match result {
        Err(e) if !*failing => {
            *failing = true;
            tracing::warn!(target: "auditring", dir = %dir.display(), error = %e, "cannot write the stage histogram files");
        }
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!(target: "auditring", dir = %dir.display(), "stage histogram files written again");
        }
        _ => {}
    }
}

/// Writes `path` whole: a temporary file beside it, then a rename.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
