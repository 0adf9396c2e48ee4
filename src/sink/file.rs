//! An append-only JSON-lines file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Batch, Sink};

/// Appends every batch to a JSON-lines file with one `write` per batch.
///
/// New files are created with mode 0600 (the log may hold personal data).
///
/// # Examples
///
/// ```
/// use auditring::sink::FileSink;
///
/// let dir = std::env::temp_dir().join(format!("auditring-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let sink = FileSink::open(dir.join("audit.jsonl"))?;
/// assert!(sink.path().ends_with("audit.jsonl"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Opens `path` for appending, creating it (mode 0600) if needed.
    ///
    /// # Errors
    ///
    /// The I/O error, with the path and what to check in its message.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_owned();
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open audit log {} for appending: {e} (check that the directory exists and is writable)",
                    path.display()
                ),
            )
        })?;
        Ok(Self { path, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Sink for FileSink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        self.file.write_all(batch.bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn name(&self) -> &str {
        "file"
    }
}
