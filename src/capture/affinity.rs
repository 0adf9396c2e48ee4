//! Pinning threads to CPU cores.

use core::fmt;

/// Why a thread could not be pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinError {
    /// The core index is not one this process may run on.
    NoSuchCore {
        /// The requested core index.
        core: usize,
        /// The core indices available to this process.
        available: Vec<usize>,
    },
    /// The operating system refused to change the thread's affinity.
    Refused {
        /// The requested core index.
        core: usize,
    },
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinError::NoSuchCore { core, available } => write!(
                f,
                "core {core} is not available to this process (available: {available:?}): choose one of those"
            ),
            PinError::Refused { core } => write!(
                f,
                "the operating system refused to pin this thread to core {core}: check the process's CPU set (taskset, cgroups)"
            ),
        }
    }
}

impl std::error::Error for PinError {}

/// The core indices this process may run on, in ascending order.
///
/// # Examples
///
/// ```
/// let cores = auditring::capture::affinity::available_cores();
/// assert!(!cores.is_empty());
/// ```
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Pins the calling thread to one core, so a recording worker or the
/// signer keeps its caches and is not migrated mid-burst.
///
/// # Errors
///
/// [`PinError::NoSuchCore`] if `core` is not among
/// [`available_cores`]; [`PinError::Refused`] if the operating system
/// refuses.
///
/// # Examples
///
/// ```
/// let core = auditring::capture::affinity::available_cores()[0];
/// std::thread::spawn(move || {
///     auditring::capture::affinity::pin_current_thread(core).expect("pinned");
/// })
/// .join()
/// .unwrap();
/// assert!(auditring::capture::affinity::pin_current_thread(usize::MAX).is_err());
/// ```
pub fn pin_current_thread(core: usize) -> Result<(), PinError> {
    let available = available_cores();
    if !available.contains(&core) {
        return Err(PinError::NoSuchCore { core, available });
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(PinError::Refused { core })
    }
}
