//! The log format: event and seal lines, the JSON they are written in
//! (and the [`encode`] traits a payload writes itself with), the
//! Merkle tree over a batch, the signing keys, checkpoints, redaction, the
//! one line reader and the files of a log on disk. `docs/FORMAT.md`
//! specifies what these modules write and read.

pub(crate) mod checkpoint;
pub mod encode;
pub mod event;
pub(crate) mod json;
pub mod keys;
pub mod line;
pub(crate) mod logfile;
pub mod merkle;
pub(crate) mod redact;
pub mod seal;
