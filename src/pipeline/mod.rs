//! The pipeline behind the ring: the runtime that owns it, the signer
//! thread that numbers, encodes, hashes and seals batches, the hasher
//! thread, the writer thread that hands sealed batches to the sinks, and
//! flushing.

pub(crate) mod builder;
pub(crate) mod flush;
pub(crate) mod hasher;
pub(crate) mod report;
pub(crate) mod runtime;
pub(crate) mod shared;
pub(crate) mod signer;
pub(crate) mod stage_files;
pub(crate) mod writer;
