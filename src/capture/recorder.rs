//! The producer handle used on a gateway's hot path.

use core::fmt;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::capture::clock::CaptureClock;
use crate::capture::intake::Intake;
use crate::capture::ring::LaneProducer;
use crate::capture::sync;
use crate::payload::{AuditPayload, Payload};

/// What [`Recorder::record`] does when its lane is full.
///
/// Whatever the policy, an accepted event is never overwritten, and
/// `accepted + dropped == attempted` holds exactly.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use auditring::FullPolicy;
///
/// // Wait at most 200 µs for the consumer, then drop and count.
/// let policy = FullPolicy::BlockFor(Duration::from_micros(200));
/// assert_ne!(policy, FullPolicy::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FullPolicy {
    /// Drop the event and count it; the count is signed into the next seal,
    /// so the loss is itself audited. Never waits. The default: the gateway's
    /// latency comes first.
    #[default]
    Drop,
    /// Wait until the consumer frees a slot: spin briefly, then yield, then
    /// sleep in short naps (at most 100 µs). Nothing is lost; the gateway
    /// slows to the consumer's pace.
    Block,
    /// Wait like [`Block`](FullPolicy::Block) for at most this long, then
    /// drop and count.
    BlockFor(Duration),
}

/// Why an event was not recorded.
///
/// # Examples
///
/// ```
/// use auditring::RecordError;
///
/// let e = RecordError::Full;
/// assert!(e.to_string().contains("lane_capacity"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The recorder's lane was full (and stayed full for the policy's wait):
    /// the event was dropped and counted as lost.
    Full,
    /// The capture ring was closed (shutdown): the event was not recorded
    /// and not counted. (If the close raced the call, the write closure may
    /// have run; its event is discarded.)
    Closed,
    /// A required sink cannot write, so the runtime refuses new events
    /// (fails closed) until it recovers. The event was not recorded; it is
    /// counted as refused. A gateway should treat the action as unaudited
    /// (typically: deny it).
    Unavailable,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Full => f.write_str(
                "audit lane full: event dropped and counted as loss; raise `lane_capacity`, \
                 speed up the consumer, or use `FullPolicy::Block`",
            ),
            RecordError::Closed => {
                f.write_str("audit capture is closed (shut down): event not recorded")
            }
            RecordError::Unavailable => f.write_str(
                "a required audit sink cannot write: events are refused until it recovers (see the sink's error in the logs)",
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// A producer handle: records audit events into its own lane of the capture
/// ring.
///
/// Recording copies the caller's fields into a preallocated slot, stamps
/// the capture time and publishes the slot: no heap allocation, no lock, no
/// system call (unless the lane is full under a blocking policy). One
/// recorder per thread is the intended use; a recorder is `Send`, so it can
/// be created on one thread and moved to a worker. Dropping it frees its
/// lane for another recorder.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Capture, Decision};
///
/// let (capture, mut consumer) = Capture::<AuditPayload>::builder().build()?;
/// let mut recorder = capture.recorder()?;
/// recorder.record(|e| {
///     e.set_session_id("s-1").set_action("tool.call").set_resource("search");
///     e.decision = Decision::Allow;
/// })?;
///
/// let mut seen = 0;
/// consumer.drain(64, |event| {
///     assert_eq!(event.payload().action(), "tool.call");
///     seen += 1;
/// });
/// assert_eq!(seen, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Recorder<T: Payload = AuditPayload> {
    lane: LaneProducer<T>,
    clock: CaptureClock,
    policy: FullPolicy,
    intake: Arc<Intake>,
    /// The event being filled. `record` fills this producer-private copy
    /// (hot in this core's cache) and then copies it into the ring's slot
    /// in one pass: measured, that is faster than filling the slot field by
    /// field, whose cache lines the consumer's core last read.
    staged: Box<T>,
}

impl<T: Payload> Recorder<T> {
    pub(crate) fn new(
        lane: LaneProducer<T>,
        clock: CaptureClock,
        policy: FullPolicy,
        intake: Arc<Intake>,
    ) -> Self {
        Self {
            lane,
            clock,
            policy,
            intake,
            staged: Box::default(),
        }
    }

    /// Records one event written by `fill`, following the
    /// configured [`FullPolicy`] if the lane is full.
    ///
    /// `fill` receives a cleared payload (the recorder's own, hot in this
    /// core's cache), which is then copied into the ring's slot and
    /// published: a half-written event is never visible. If `fill` panics,
    /// nothing is published, the attempt counts as dropped, and the
    /// recorder stays usable.
    ///
    /// # Errors
    ///
    /// [`RecordError::Full`] if the event was dropped under the policy
    /// (counted); [`RecordError::Closed`] after shutdown;
    /// [`RecordError::Unavailable`] while a required sink cannot write.
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture, Decision};
    /// # let (capture, _consumer) = Capture::<AuditPayload>::builder().build()?;
    /// # let mut recorder = capture.recorder()?;
    /// recorder.record(|e| {
    ///     e.set_agent_id("agent-7").set_action("db.query");
    ///     e.decision = Decision::Deny;
    ///     e.set_deny_reason("table not in scope");
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record(&mut self, fill: impl FnOnce(&mut T)) -> Result<(), RecordError> {
        if self.intake.is_refusing() {
            return Err(self.refuse());
        }
        let stamp = self.clock.stamp();
        if !self.lane.has_space() {
            self.wait_for_space(self.policy)?;
        }
        self.publish(stamp, fill)
    }

    /// Records one event written by `fill`, never waiting: a full
    /// lane drops the event (counted), whatever the configured policy.
    ///
    /// # Errors
    ///
    /// [`RecordError::Full`] if the lane was full (the event was dropped and
    /// counted); [`RecordError::Closed`] after shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture, RecordError};
    /// # let (capture, _consumer) = Capture::<AuditPayload>::builder().build()?;
    /// # let mut recorder = capture.recorder()?;
    /// match recorder.try_record(|e| { e.set_action("llm.inference"); }) {
    ///     Ok(()) | Err(RecordError::Full) => {} // a full lane is counted and signed as loss
    ///     Err(other) => return Err(other.into()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_record(&mut self, fill: impl FnOnce(&mut T)) -> Result<(), RecordError> {
        if self.intake.is_refusing() {
            return Err(self.refuse());
        }
        let stamp = self.clock.stamp();
        if !self.lane.has_space() {
            self.wait_for_space(FullPolicy::Drop)?;
        }
        self.publish(stamp, fill)
    }

    /// Records a copy of a prepared payload, following the configured
    /// [`FullPolicy`]. Copies with `clone_from`, which for [`AuditPayload`]
    /// touches only the bytes in use.
    ///
    /// # Errors
    ///
    /// As [`record`](Recorder::record).
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture};
    /// # let (capture, _consumer) = Capture::<AuditPayload>::builder().build()?;
    /// # let mut recorder = capture.recorder()?;
    /// let mut template = AuditPayload::default();
    /// template.set_bundle_version("policy-v12").set_sandbox_id("run-1");
    /// recorder.record_copy(&template)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record_copy(&mut self, payload: &T) -> Result<(), RecordError> {
        if self.intake.is_refusing() {
            return Err(self.refuse());
        }
        let stamp = self.clock.stamp();
        if !self.lane.has_space() {
            self.wait_for_space(self.policy)?;
        }
        self.publish_copy(stamp, payload)
    }

    /// Records a copy of a prepared payload, never waiting.
    ///
    /// # Errors
    ///
    /// As [`try_record`](Recorder::try_record).
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture};
    /// # let (capture, _consumer) = Capture::<AuditPayload>::builder().build()?;
    /// # let mut recorder = capture.recorder()?;
    /// recorder.try_record_copy(&AuditPayload::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_record_copy(&mut self, payload: &T) -> Result<(), RecordError> {
        if self.intake.is_refusing() {
            return Err(self.refuse());
        }
        let stamp = self.clock.stamp();
        if !self.lane.has_space() {
            self.wait_for_space(FullPolicy::Drop)?;
        }
        self.publish_copy(stamp, payload)
    }

    /// Events accepted by this recorder's lane since the capture started
    /// (lanes are reused, so this includes earlier recorders of the lane).
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture};
    /// # let (capture, _consumer) = Capture::<AuditPayload>::builder().build()?;
    /// let mut recorder = capture.recorder()?;
    /// recorder.record(|_| {})?;
    /// assert_eq!(recorder.lane_accepted(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lane_accepted(&self) -> u64 {
        self.lane.lane_published()
    }

    /// Events dropped by this recorder's lane since the capture started.
    ///
    /// # Examples
    ///
    /// ```
    /// # use auditring::{AuditPayload, Capture};
    /// # let (capture, _consumer) = Capture::<AuditPayload>::builder().lane_capacity(1).build()?;
    /// let mut recorder = capture.recorder()?;
    /// recorder.try_record(|_| {})?;
    /// assert!(recorder.try_record(|_| {}).is_err());
    /// assert_eq!(recorder.lane_dropped(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lane_dropped(&self) -> u64 {
        self.lane.lane_dropped()
    }

    /// The full policy [`record`](Recorder::record) follows.
    pub fn policy(&self) -> FullPolicy {
        self.policy
    }

    /// Fills the staged event with `fill`, then copies it into the slot
    /// and publishes it.
    #[inline(always)]
    fn publish(&mut self, stamp: u64, fill: impl FnOnce(&mut T)) -> Result<(), RecordError> {
        let staged = &mut *self.staged;
        staged.clear();
        // A panicking `fill` publishes nothing and counts as dropped, so
        // accepted + dropped == attempted holds.
        let count_if_unwinding = CountIfUnwinding(&self.lane);
        fill(staged);
        core::mem::forget(count_if_unwinding);
        self.lane
            .publish(stamp, |slot| slot.clone_from(staged))
            .map_err(|_| RecordError::Closed)
    }

    /// Copies `payload` into the slot and publishes it.
    #[inline(always)]
    fn publish_copy(&mut self, stamp: u64, payload: &T) -> Result<(), RecordError> {
        self.lane
            .publish(stamp, |slot| slot.clone_from(payload))
            .map_err(|_| RecordError::Closed)
    }

    #[cold]
    #[inline(never)]
    fn refuse(&self) -> RecordError {
        self.intake.count_refused();
        RecordError::Unavailable
    }

    /// The slow path: the lane is full. Waits as `policy` allows; on giving
    /// up, counts the drop.
    #[cold]
    #[inline(never)]
    fn wait_for_space(&mut self, policy: FullPolicy) -> Result<(), RecordError> {
        if self.lane.is_closed() {
            return Err(RecordError::Closed);
        }
        let deadline = match policy {
            FullPolicy::Drop => {
                self.lane.count_dropped();
                return Err(RecordError::Full);
            }
            FullPolicy::Block => None,
            FullPolicy::BlockFor(d) => Some(Instant::now() + d),
        };
        let mut backoff = Backoff::default();
        loop {
            backoff.snooze();
            if self.lane.is_closed() {
                return Err(RecordError::Closed);
            }
            if self.lane.has_space() {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.lane.count_dropped();
                return Err(RecordError::Full);
            }
        }
    }
}

impl<T: Payload> fmt::Debug for Recorder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("lane", &self.lane.lane_index())
            .field("policy", &self.policy)
            .field("lane_accepted", &self.lane_accepted())
            .field("lane_dropped", &self.lane_dropped())
            .finish()
    }
}

/// Counts one dropped event if dropped (during unwinding); forgotten on
/// success.
struct CountIfUnwinding<'a, T>(&'a LaneProducer<T>);

impl<T> Drop for CountIfUnwinding<'_, T> {
    fn drop(&mut self) {
        self.0.count_dropped();
    }
}

/// Spin, then yield, then nap with growing naps capped at 100 µs. The nap is
/// bounded so that no wake-up from the consumer is needed (the consumer
/// never makes a system call on behalf of producers).
#[derive(Default)]
struct Backoff {
    step: u32,
}

impl Backoff {
    const SPINS: u32 = 64;
    const YIELDS: u32 = Self::SPINS + 16;
    const MAX_NAP: Duration = Duration::from_micros(100);

    fn snooze(&mut self) {
        if self.step < Self::SPINS {
            sync::spin_hint();
        } else if self.step < Self::YIELDS {
            sync::yield_now();
        } else {
            let exp = (self.step - Self::YIELDS).min(7);
            sync::park_timeout(Duration::from_micros(1 << exp).min(Self::MAX_NAP));
        }
        self.step = self.step.saturating_add(1);
    }
}
