//! The capture ring: building it, handing out recorders, draining events
//! in capture order, and pinning threads to cores. The ring itself
//! (`ring`) holds all of the crate's `unsafe` code.

pub mod affinity;
pub(crate) mod clock;
pub(crate) mod intake;
pub(crate) mod recorder;
pub(crate) mod ring;
pub(crate) mod sync;

use core::fmt;
use std::mem::size_of;

use crate::capture::clock::{CaptureClock, WallAnchor};
use crate::capture::intake::Intake;
use crate::capture::recorder::{FullPolicy, Recorder};
use crate::capture::ring::{ClaimError, LaneProducer, RingConsumer, Shared};
use crate::capture::sync::Arc;
use crate::payload::{AuditPayload, Payload};

/// Largest accepted lane capacity (slots per producer).
pub const MAX_LANE_CAPACITY: usize = 1 << 24;
/// Largest accepted number of producer lanes.
pub const MAX_PRODUCERS: usize = 4096;
/// Default bound on the capture ring's memory (1 GiB); see
/// [`CaptureBuilder::max_ring_bytes`].
pub const DEFAULT_MAX_RING_BYTES: usize = 1 << 30;

/// An invalid capture configuration. Each variant says what to change.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Capture, ConfigError};
///
/// let err = Capture::<AuditPayload>::builder().lane_capacity(0).build().unwrap_err();
/// assert_eq!(err, ConfigError::ZeroLaneCapacity);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `lane_capacity` was 0.
    ZeroLaneCapacity,
    /// `lane_capacity` was above [`MAX_LANE_CAPACITY`].
    LaneCapacityTooLarge(usize),
    /// `max_producers` was 0.
    ZeroProducers,
    /// `max_producers` was above [`MAX_PRODUCERS`].
    TooManyProducers(usize),
    /// The ring's memory (`max_producers × lane_capacity` slots) would be
    /// above the `max_ring_bytes` limit. Nothing was allocated.
    RingTooLarge {
        /// Bytes the ring would take (`usize::MAX` if beyond counting).
        bytes: usize,
        /// The limit, `max_ring_bytes`.
        limit: usize,
        /// Lanes (`max_producers`).
        lanes: usize,
        /// Slots per lane (`lane_capacity`, rounded up to a power of two).
        lane_capacity: usize,
    },
    /// The system refused the ring's memory.
    OutOfMemory {
        /// Bytes the ring needed.
        bytes: usize,
    },
}

/// `bytes` for people: "1.5 GiB (1610612736 bytes)".
fn human_bytes(bytes: usize) -> String {
    if bytes == usize::MAX {
        return "more than the address space".to_owned();
    }
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroLaneCapacity => f.write_str(
                "lane_capacity is 0: set it to at least 1 (it is rounded up to a power of two)",
            ),
            ConfigError::LaneCapacityTooLarge(n) => write!(
                f,
                "lane_capacity {n} is above the maximum {MAX_LANE_CAPACITY}: lower it, or add producer lanes instead"
            ),
            ConfigError::ZeroProducers => {
                f.write_str("max_producers is 0: set it to the number of threads that record")
            }
            ConfigError::TooManyProducers(n) => write!(
                f,
                "max_producers {n} is above the maximum {MAX_PRODUCERS}: share recorders per worker thread, not per task"
            ),
            ConfigError::RingTooLarge {
                bytes,
                limit,
                lanes,
                lane_capacity,
            } => write!(
                f,
                "the capture ring of {lanes} lanes x {lane_capacity} slots would need {}, above the limit of {}: lower `lane_capacity` or `max_producers`, or raise `max_ring_bytes` if the machine has that memory to spare",
                human_bytes(*bytes),
                human_bytes(*limit)
            ),
            ConfigError::OutOfMemory { bytes } => write!(
                f,
                "the system refused the capture ring's {}: lower `lane_capacity` or `max_producers`",
                human_bytes(*bytes)
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why [`Capture::recorder`] could not hand out a recorder.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Capture, RecorderError};
///
/// let (capture, _consumer) = Capture::<AuditPayload>::builder().max_producers(1).build()?;
/// let _first = capture.recorder()?;
/// assert_eq!(capture.recorder().unwrap_err(), RecorderError::NoFreeLane { lanes: 1 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecorderError {
    /// Every producer lane is owned by a live recorder.
    NoFreeLane {
        /// The configured number of lanes.
        lanes: usize,
    },
    /// The capture ring was closed (shutdown).
    Closed,
}

impl fmt::Display for RecorderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecorderError::NoFreeLane { lanes } => write!(
                f,
                "all {lanes} producer lanes are in use: raise `max_producers`, or drop a recorder that is no longer used"
            ),
            RecorderError::Closed => {
                f.write_str("audit capture is closed (shut down): no new recorders")
            }
        }
    }
}

impl std::error::Error for RecorderError {}

/// Configures and builds a capture ring.
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`lane_capacity`](CaptureBuilder::lane_capacity) | 1024 | slots per producer lane, rounded up to a power of two |
/// | [`max_producers`](CaptureBuilder::max_producers) | 8 | lanes, i.e. recorders alive at once |
/// | [`full_policy`](CaptureBuilder::full_policy) | [`FullPolicy::Drop`] | what [`Recorder::record`] does on a full lane |
/// | [`max_ring_bytes`](CaptureBuilder::max_ring_bytes) | 1 GiB ([`DEFAULT_MAX_RING_BYTES`]) | refuse settings whose ring would take more memory |
///
/// All memory (`max_producers × lane_capacity` slots) is allocated and
/// written once in [`build`](CaptureBuilder::build), so no page faults land
/// on the hot path; [`memory_bytes`](CaptureBuilder::memory_bytes) tells
/// how much. Settings above `max_ring_bytes` are refused before anything
/// is allocated, and an allocation the system refuses is an error, not an
/// abort. (With memory overcommit, the usual Linux setting, the system may
/// grant more than it has and end the process when the ring's pages are
/// written: the limit is the protection that counts.)
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Capture, FullPolicy};
///
/// let (capture, consumer) = Capture::<AuditPayload>::builder()
///     .lane_capacity(4096)
///     .max_producers(4)
///     .full_policy(FullPolicy::Block)
///     .build()?;
/// assert_eq!(capture.lane_capacity(), 4096);
/// # drop(consumer);
/// # Ok::<(), auditring::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct CaptureBuilder<T: Payload = AuditPayload> {
    lane_capacity: usize,
    max_producers: usize,
    max_ring_bytes: usize,
    policy: FullPolicy,
    _payload: core::marker::PhantomData<fn() -> T>,
}

impl<T: Payload> Default for CaptureBuilder<T> {
    fn default() -> Self {
        Self {
            lane_capacity: 1024,
            max_producers: 8,
            max_ring_bytes: DEFAULT_MAX_RING_BYTES,
            policy: FullPolicy::Drop,
            _payload: core::marker::PhantomData,
        }
    }
}

impl<T: Payload> CaptureBuilder<T> {
    /// Slots per producer lane; rounded up to the next power of two.
    pub fn lane_capacity(mut self, slots: usize) -> Self {
        self.lane_capacity = slots;
        self
    }

    /// Number of lanes: how many recorders can be alive at once.
    pub fn max_producers(mut self, lanes: usize) -> Self {
        self.max_producers = lanes;
        self
    }

    /// What [`Recorder::record`] does when its lane is full.
    pub fn full_policy(mut self, policy: FullPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The most memory the ring may take (default 1 GiB,
    /// [`DEFAULT_MAX_RING_BYTES`]): [`build`](CaptureBuilder::build)
    /// refuses settings whose [`memory_bytes`](CaptureBuilder::memory_bytes)
    /// are above it, before allocating anything.
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::{AuditPayload, Capture, ConfigError};
    ///
    /// // 8 lanes of 2^24 slots: far more memory than a gateway should pin.
    /// let err = Capture::<AuditPayload>::builder()
    ///     .lane_capacity(1 << 24)
    ///     .max_producers(8)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::RingTooLarge { .. }));
    /// assert!(err.to_string().contains("raise `max_ring_bytes`"));
    ///
    /// let small = Capture::<AuditPayload>::builder().max_producers(1).lane_capacity(64);
    /// let needed = small.memory_bytes();
    /// assert!(small.clone().max_ring_bytes(needed - 1).build().is_err());
    /// assert!(small.max_ring_bytes(needed).build().is_ok());
    /// ```
    pub fn max_ring_bytes(mut self, bytes: usize) -> Self {
        self.max_ring_bytes = bytes;
        self
    }

    /// Bytes the ring will allocate for these settings: the slots (capture
    /// stamp and payload each) of every lane, and the staged event of
    /// each lane's recorder. `usize::MAX` if beyond counting.
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::{AuditPayload, Capture};
    /// let bytes = Capture::<AuditPayload>::builder().max_producers(2).memory_bytes();
    /// assert!(bytes > 2 * 1024 * std::mem::size_of::<AuditPayload>());
    /// ```
    pub fn memory_bytes(&self) -> usize {
        let capacity = self
            .lane_capacity
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        Shared::<T>::bytes_for(self.max_producers, capacity)
            .and_then(|ring| ring.checked_add(self.max_producers.checked_mul(size_of::<T>())?))
            .unwrap_or(usize::MAX)
    }

    /// Checks the settings without allocating.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.lane_capacity == 0 {
            return Err(ConfigError::ZeroLaneCapacity);
        }
        if self.lane_capacity > MAX_LANE_CAPACITY {
            return Err(ConfigError::LaneCapacityTooLarge(self.lane_capacity));
        }
        if self.max_producers == 0 {
            return Err(ConfigError::ZeroProducers);
        }
        if self.max_producers > MAX_PRODUCERS {
            return Err(ConfigError::TooManyProducers(self.max_producers));
        }
        let bytes = self.memory_bytes();
        if bytes > self.max_ring_bytes {
            return Err(ConfigError::RingTooLarge {
                bytes,
                limit: self.max_ring_bytes,
                lanes: self.max_producers,
                lane_capacity: self.lane_capacity.next_power_of_two(),
            });
        }
        Ok(())
    }

    /// Allocates and prefaults the ring.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the option to change: a setting out of
    /// range, a ring above [`max_ring_bytes`](CaptureBuilder::max_ring_bytes)
    /// (refused before allocating), or memory the system refused.
    pub fn build(self) -> Result<(Capture<T>, Consumer<T>), ConfigError> {
        self.validate()?;
        let capacity = self.lane_capacity.next_power_of_two();
        let (shared, ring) =
            Shared::try_new(self.max_producers, capacity, T::default).map_err(|_| {
                ConfigError::OutOfMemory {
                    bytes: self.memory_bytes(),
                }
            })?;
        let clock = CaptureClock::new();
        let capture = Capture {
            shared: Arc::clone(&shared),
            clock: clock.clone(),
            policy: self.policy,
            intake: std::sync::Arc::new(Intake::default()),
        };
        let consumer = Consumer {
            ring,
            anchor: WallAnchor::new(clock),
        };
        Ok((capture, consumer))
    }
}

/// The producer side of a capture ring: hands out [`Recorder`]s.
///
/// Cheap to clone; every clone refers to the same ring.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Capture};
///
/// let (capture, _consumer) = Capture::<AuditPayload>::builder().build()?;
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let mut recorder = capture.recorder().expect("a free lane");
///         std::thread::spawn(move || recorder.record(|e| { e.set_action("ping"); }))
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap()?;
/// }
/// assert_eq!(capture.stats().accepted, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Capture<T: Payload = AuditPayload> {
    shared: Arc<Shared<T>>,
    clock: CaptureClock,
    policy: FullPolicy,
    intake: std::sync::Arc<Intake>,
}

impl<T: Payload> Clone for Capture<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            clock: self.clock.clone(),
            policy: self.policy,
            intake: std::sync::Arc::clone(&self.intake),
        }
    }
}

impl<T: Payload> Capture<T> {
    /// A builder with the defaults listed on [`CaptureBuilder`].
    pub fn builder() -> CaptureBuilder<T> {
        CaptureBuilder::default()
    }

    /// A recorder that owns a free lane until it is dropped.
    ///
    /// # Errors
    ///
    /// [`RecorderError::NoFreeLane`] when `max_producers` recorders are
    /// alive; [`RecorderError::Closed`] after shutdown.
    pub fn recorder(&self) -> Result<Recorder<T>, RecorderError> {
        match LaneProducer::claim(&self.shared) {
            Ok(lane) => Ok(Recorder::new(
                lane,
                self.clock.clone(),
                self.policy,
                std::sync::Arc::clone(&self.intake),
            )),
            Err(ClaimError::NoFreeLane) => Err(RecorderError::NoFreeLane {
                lanes: self.shared.lane_count(),
            }),
            Err(ClaimError::Closed) => Err(RecorderError::Closed),
        }
    }

    /// Slots per lane (after rounding up to a power of two).
    pub fn lane_capacity(&self) -> usize {
        self.shared.capacity() as usize
    }

    /// Whether the consumer has closed the ring.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Counters over all lanes.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            refused: self.intake.refused(),
            ..stats_of(&self.shared)
        }
    }

    /// The intake gate recorders check before recording.
    pub(crate) fn intake(&self) -> &std::sync::Arc<Intake> {
        &self.intake
    }
}

impl<T: Payload> fmt::Debug for Capture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Counters of a capture ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureStats {
    /// Events published into the ring.
    pub accepted: u64,
    /// Events dropped because a lane was full (or a write closure panicked).
    pub dropped: u64,
    /// Events refused while a required sink could not write (the caller
    /// got [`RecordError::Unavailable`](crate::RecordError::Unavailable)).
    pub refused: u64,
    /// Recorders alive now.
    pub recorders: usize,
    /// Configured lanes.
    pub lanes: usize,
}

fn stats_of<T>(shared: &Shared<T>) -> CaptureStats {
    CaptureStats {
        accepted: shared.published(),
        dropped: shared.dropped(),
        refused: 0,
        recorders: shared.lanes_in_use(),
        lanes: shared.lane_count(),
    }
}

/// One captured event, borrowed from the ring during
/// [`Consumer::drain`].
#[derive(Debug)]
pub struct CapturedEvent<'a, T> {
    payload: &'a T,
    unix_nanos: u64,
    stamp: u64,
    lane: usize,
}

impl<'a, T> CapturedEvent<'a, T> {
    /// The payload as the producer wrote it.
    pub fn payload(&self) -> &'a T {
        self.payload
    }

    /// Capture time in nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> u64 {
        self.unix_nanos
    }

    /// The raw capture stamp (monotonic, in clock ticks).
    pub fn raw_stamp(&self) -> u64 {
        self.stamp
    }

    /// The lane (producer slot) the event came through.
    pub fn lane(&self) -> usize {
        self.lane
    }
}

/// The single consumer of a capture ring.
///
/// Dropping the consumer closes the ring, so producers blocked on a full
/// lane return [`RecordError::Closed`](crate::RecordError::Closed) instead
/// of waiting forever.
pub struct Consumer<T: Payload = AuditPayload> {
    ring: RingConsumer<T>,
    anchor: WallAnchor,
}

impl<T: Payload> Consumer<T> {
    /// Hands up to `max` captured events to `f` in capture order (merged
    /// across producers; each producer's own order is always kept), and
    /// frees their slots. Never blocks. Returns how many were handed out.
    ///
    /// If `f` panics, the events already handed to it are freed and the
    /// rest stay in the ring.
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture};
    /// # let (capture, mut consumer) = Capture::<AuditPayload>::builder().build()?;
    /// # let mut recorder = capture.recorder()?;
    /// recorder.record(|e| { e.set_action("a"); })?;
    /// recorder.record(|e| { e.set_action("b"); })?;
    /// let mut actions = Vec::new();
    /// consumer.drain(usize::MAX, |ev| actions.push(ev.payload().action().to_owned()));
    /// assert_eq!(actions, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(CapturedEvent<'_, T>)) -> usize {
        self.anchor.refresh();
        let anchor = &self.anchor;
        self.ring.drain(max, |p| {
            f(CapturedEvent {
                payload: p.value,
                unix_nanos: anchor.unix_nanos(p.stamp),
                stamp: p.stamp,
                lane: p.lane,
            })
        })
    }

    /// Stops accepting events: from now on recorders get
    /// [`RecordError::Closed`](crate::RecordError::Closed). Every event
    /// accepted before the close stays drainable. Returns how many are
    /// still to drain. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture, RecordError};
    /// # let (capture, mut consumer) = Capture::<AuditPayload>::builder().build()?;
    /// let mut recorder = capture.recorder()?;
    /// recorder.record(|_| {})?;
    /// assert_eq!(consumer.close(), 1);
    /// assert_eq!(recorder.record(|_| {}), Err(RecordError::Closed));
    /// assert_eq!(consumer.drain(usize::MAX, |_| {}), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self) -> u64 {
        self.ring.close()
    }

    /// Whether [`close`](Consumer::close) was called.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Whether no accepted event is waiting to be drained (as of now).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Counters over all lanes.
    pub fn stats(&self) -> CaptureStats {
        stats_of(self.ring.shared())
    }

    /// Copies every lane's published count, as of now, into `marks`.
    pub(crate) fn mark(&self, marks: &mut Vec<u64>) {
        self.ring.mark(marks);
    }

    /// Whether every event counted by [`mark`](Self::mark) was drained.
    pub(crate) fn drained_up_to(&self, marks: &[u64]) -> bool {
        self.ring.drained_up_to(marks)
    }

    /// The clock that stamps this ring's events.
    pub(crate) fn clock(&self) -> &crate::capture::clock::CaptureClock {
        self.anchor.clock()
    }

    /// Nanoseconds elapsed since a raw capture stamp.
    pub(crate) fn nanos_since(&self, raw_stamp: u64) -> u64 {
        let clock = self.anchor.clock();
        clock.nanos_between(raw_stamp, clock.stamp())
    }

    /// The current time in Unix-epoch nanoseconds, on the capture clock.
    pub(crate) fn unix_nanos_now(&self) -> u64 {
        self.anchor.unix_nanos(self.anchor.clock().stamp())
    }
}

impl<T: Payload> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}
