//! The capture core: a bounded, preallocated, lock-free multi-producer /
//! single-consumer ring built from single-producer lanes.
//!
//! All `unsafe` code of the crate lives in this module.
//!
//! # Design
//!
//! Every producer owns one *lane*: a single-producer / single-consumer ring
//! of preallocated slots. A producer never writes a cache line that another
//! producer writes: it writes its lane's producer line (`tail`, `intent`,
//! `dropped`, which the consumer reads) and its free slots, and reads the
//! ring's read-mostly `closed` flag. The consumer merges the lanes
//! by capture stamp when it drains, so a drained batch is in capture order.
//! A shared multi-producer cursor would instead move one contended cache line
//! between cores on every event.
//!
//! # Protocol
//!
//! Per lane, `head` and `tail` count events as `u64` (they never wrap in
//! practice: 2^64 events). Slot `i % capacity` holds event `i`.
//!
//! * Slots `[head, tail)` are *published*: only the consumer reads them.
//! * Slots `[tail, head + capacity)` are *free*: only the lane's producer
//!   writes them.
//!
//! The producer writes the next free slot, then publishes it with
//! `tail.store(_, Release)`. The consumer loads `tail` with `Acquire`, reads
//! the published slots, then frees them with `head.store(_, Release)`; the
//! producer loads `head` with `Acquire` before it reuses a freed slot.
//!
//! # Closing without a barrier on the hot path
//!
//! "Accepted" must be exact across a concurrent close: an event the producer
//! reports as recorded must be drained, and no other. A read-modify-write on
//! `tail` would give that, but a locked instruction stalls the producer
//! until it owns the line the consumer keeps reading (measured: it doubles
//! `record` latency across cores). Instead the two sides run an asymmetric
//! Dekker protocol on `intent` and the ring's `closed` flag:
//!
//! * producer: if `closed`, refuse; write the slot; `intent = tail + 1`;
//!   *light fence*; if `closed`: `intent = tail`, refuse; else
//!   `tail = tail + 1`. (The slot is written before the announce, so a close
//!   never waits on the caller's write closure; the first check means a
//!   producer retrying after a refusal never announces again.)
//! * consumer (close): `closed = true`; *heavy fence*; for each lane, wait
//!   until `intent <= tail` (the in-flight publish completed or backed
//!   off); the lane's `tail` is then final.
//!
//! Either the producer sees `closed` (and refuses), or the consumer sees its
//! `intent` (and waits for the publish). On Linux the light fence is a
//! compiler fence and the heavy fence is `membarrier(2)`
//! (`MEMBARRIER_CMD_PRIVATE_EXPEDITED`): it runs a full barrier on every CPU
//! currently running a thread of the process (a descheduled thread gets one
//! from its context switch), so a producer whose `closed` load came before
//! that barrier has its `intent` store visible once `membarrier` returns.
//! The producer then pays no fence at all. This argument holds in the
//! Linux kernel memory model, not in Rust's (which cannot express
//! asymmetric fences; every access stays atomic, so there is no undefined
//! behaviour). Where `membarrier` is unavailable, and under loom and Miri,
//! both sides use a sequentially consistent fence: the loom models check
//! that symmetric variant.

use crate::capture::sync::{Arc, AtomicBool, AtomicU64, CachePadded, Ordering, UnsafeCell, fence};

/// Fences of the close protocol (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fences {
    /// Compiler fence on the producer, `membarrier(2)` on close.
    Asymmetric,
    /// `fence(SeqCst)` on both sides.
    Symmetric,
}

impl Fences {
    /// Registers for expedited `membarrier(2)` where available.
    fn detect() -> Self {
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        {
            if membarrier::register() {
                return Fences::Asymmetric;
            }
        }
        Fences::Symmetric
    }

    /// Orders the producer's `intent` store before its `closed` load.
    #[inline(always)]
    fn light(self) {
        match self {
            Fences::Asymmetric => core::sync::atomic::compiler_fence(Ordering::SeqCst),
            Fences::Symmetric => fence(Ordering::SeqCst),
        }
    }

    /// Orders the consumer's `closed` store before its `intent` loads, on
    /// every thread.
    fn heavy(self) {
        fence(Ordering::SeqCst);
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        {
            if self == Fences::Asymmetric && !membarrier::barrier() {
                // Registration succeeded, so this cannot fail short of a
                // kernel bug. Producers do not fence in this mode, so going
                // on could lose an accepted event; and this may run in a
                // `Drop` during unwinding, where a panic would abort anyway.
                eprintln!(
                    "auditring: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration; aborting rather than risk losing accepted audit events"
                );
                std::process::abort();
            }
        }
    }
}

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod membarrier {
    //! The `membarrier(2)` system call.

    const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn call(cmd: libc::c_int) -> bool {
        // SAFETY: membarrier takes three integer arguments and touches no
        // memory of ours; an unsupported command fails with an errno.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            ) == 0
        }
    }

    /// Registers the process for expedited private barriers (idempotent).
    pub(super) fn register() -> bool {
        call(CMD_REGISTER_PRIVATE_EXPEDITED)
    }

    /// A full memory barrier on every running thread of the process.
    pub(super) fn barrier() -> bool {
        call(CMD_PRIVATE_EXPEDITED)
    }
}

/// One preallocated event: the capture stamp and the payload.
struct Slot<T> {
    stamp: UnsafeCell<u64>,
    value: UnsafeCell<T>,
}

/// The counters a lane's producer writes: one cache line, which the
/// consumer only reads.
#[derive(Debug, Default)]
struct ProducerLine {
    /// Number of events published into this lane. Stored by the producer
    /// with `Release` after the slot is written; loaded by the consumer with
    /// `Acquire`, which makes the slot's contents visible.
    tail: AtomicU64,
    /// `tail + 1` while a publish is under way, `tail` otherwise (see the
    /// close protocol in the module docs). Written only by the producer.
    intent: AtomicU64,
    /// Events the lane's producers discarded because the lane was full, or
    /// because their write closure panicked. Written only by the producer.
    dropped: AtomicU64,
}

/// A single-producer / single-consumer ring inside the shared ring.
struct Lane<T> {
    producer: CachePadded<ProducerLine>,
    /// Number of events the consumer has finished reading. Written only by
    /// the consumer with `Release` after its last read of the freed slots;
    /// the producer loads it with `Acquire` before overwriting them.
    head: CachePadded<AtomicU64>,
    /// Whether a producer currently owns this lane. Claimed with `Acquire`
    /// and released with `Release`, so a lane's next owner sees every
    /// effect of the previous one (its `tail` and `dropped` values).
    claimed: AtomicBool,
    slots: Box<[Slot<T>]>,
}

/// The memory shared by the producers and the consumer.
pub(crate) struct Shared<T> {
    lanes: Box<[Lane<T>]>,
    /// `capacity - 1`: capacity is a power of two.
    mask: u64,
    /// Set once by the consumer's close; read by producers on every
    /// publish (a read-mostly line). Ordered by the close protocol's fences.
    closed: CachePadded<AtomicBool>,
    fences: Fences,
}

// SAFETY: access to each slot's cells is partitioned by the head/tail
// protocol described in the module docs: a free slot is touched only by the
// one producer that owns its lane (`claimed`), a published slot only by the
// one consumer (`Shared::new` makes exactly one). Each handoff is a
// Release/Acquire pair on `tail` or `head`, so a value of `T` moves from one
// thread to another, which is what `T: Send` allows; no two threads ever
// hold references to the same slot at once, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// Bytes [`try_new`](Self::try_new) allocates for `lanes` lanes of
    /// `capacity` slots; `None` if that does not fit in a `usize`.
    pub(crate) fn bytes_for(lanes: usize, capacity: usize) -> Option<usize> {
        capacity
            .checked_mul(core::mem::size_of::<Slot<T>>())?
            .checked_add(core::mem::size_of::<Lane<T>>())?
            .checked_mul(lanes)
    }

    /// Allocates `lanes` lanes of `capacity` slots each, every slot
    /// initialised with `init`, which writes (and so prefaults) every page.
    /// An allocation the system refuses is an error, not an abort.
    ///
    /// `capacity` must be a power of two and `lanes` at least one; the
    /// public builder validates both. Returns the ring and its one consumer:
    /// no other consumer can be made, which the slot protocol relies on.
    pub(crate) fn try_new(
        lanes: usize,
        capacity: usize,
        mut init: impl FnMut() -> T,
    ) -> Result<(Arc<Self>, RingConsumer<T>), std::collections::TryReserveError> {
        assert!(
            capacity.is_power_of_two(),
            "lane capacity must be a power of two"
        );
        assert!(lanes > 0, "at least one lane is needed");
        let mut all = Vec::new();
        all.try_reserve_exact(lanes)?;
        for _ in 0..lanes {
            let mut slots = Vec::new();
            slots.try_reserve_exact(capacity)?;
            slots.extend((0..capacity).map(|_| Slot {
                stamp: UnsafeCell::new(0),
                value: UnsafeCell::new(init()),
            }));
            all.push(Lane {
                producer: CachePadded::new(ProducerLine::default()),
                head: CachePadded::new(AtomicU64::new(0)),
                claimed: AtomicBool::new(false),
                slots: slots.into_boxed_slice(),
            });
        }
        let shared = Arc::new(Self {
            lanes: all.into_boxed_slice(),
            mask: capacity as u64 - 1,
            closed: CachePadded::new(AtomicBool::new(false)),
            fences: Fences::detect(),
        });
        let consumer = RingConsumer::new(Arc::clone(&shared));
        Ok((shared, consumer))
    }

    /// [`try_new`](Self::try_new) for tests and models, whose rings are
    /// small.
    #[cfg(test)]
    pub(crate) fn new(
        lanes: usize,
        capacity: usize,
        init: impl FnMut() -> T,
    ) -> (Arc<Self>, RingConsumer<T>) {
        Self::try_new(lanes, capacity, init).expect("a test ring fits in memory")
    }

    /// Slots per lane.
    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Number of lanes (the maximum number of live producers).
    pub(crate) fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// Events published so far, summed over all lanes.
    pub(crate) fn published(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| l.producer.tail.load(Ordering::Acquire))
            .sum()
    }

    /// Events dropped so far, summed over all lanes.
    pub(crate) fn dropped(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| l.producer.dropped.load(Ordering::Acquire))
            .sum()
    }

    /// Number of lanes currently owned by a producer.
    pub(crate) fn lanes_in_use(&self) -> usize {
        self.lanes
            .iter()
            .filter(|l| l.claimed.load(Ordering::Relaxed))
            .count()
    }

    /// Whether the consumer has closed the ring.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Why a producer could not claim a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// Every lane is owned by a live producer.
    NoFreeLane,
    /// The ring is closed.
    Closed,
}

/// The ring was closed before the event could be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Exclusive producer access to one lane.
pub(crate) struct LaneProducer<T> {
    shared: Arc<Shared<T>>,
    lane: usize,
    /// Local copy of the lane's published count.
    tail: u64,
    /// Last `head` value read from the lane; `head` only grows, so this is
    /// a lower bound that is refreshed only when the lane looks full.
    cached_head: u64,
}

impl<T> LaneProducer<T> {
    /// Claims a free lane.
    pub(crate) fn claim(shared: &Arc<Shared<T>>) -> Result<Self, ClaimError> {
        for (index, lane) in shared.lanes.iter().enumerate() {
            // Acquire: pairs with the previous owner's Release in `drop`, so
            // its counters are visible to us.
            if lane
                .claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if shared.is_closed() {
                lane.claimed.store(false, Ordering::Release);
                return Err(ClaimError::Closed);
            }
            let tail = lane.producer.tail.load(Ordering::Acquire);
            return Ok(Self {
                shared: Arc::clone(shared),
                lane: index,
                tail,
                // Acquire: the consumer's reads of slots below `head` are
                // finished before we may overwrite them.
                cached_head: lane.head.load(Ordering::Acquire),
            });
        }
        if shared.is_closed() {
            Err(ClaimError::Closed)
        } else {
            Err(ClaimError::NoFreeLane)
        }
    }

    #[inline(always)]
    fn lane(&self) -> &Lane<T> {
        debug_assert!(self.lane < self.shared.lanes.len());
        &self.shared.lanes[self.lane]
    }

    /// The index of the owned lane.
    pub(crate) fn lane_index(&self) -> usize {
        self.lane
    }

    /// Whether the next slot is free. Reads the consumer's `head` only when
    /// the cached copy says the lane is full.
    #[inline(always)]
    pub(crate) fn has_space(&mut self) -> bool {
        let capacity = self.shared.mask + 1;
        if self.tail - self.cached_head < capacity {
            return true;
        }
        // Acquire: pairs with the consumer's Release store of `head`; the
        // consumer's reads of the slots we are about to reuse happen-before
        // our writes to them.
        self.cached_head = self.lane().head.load(Ordering::Acquire);
        self.tail - self.cached_head < capacity
    }

    /// Whether the consumer has closed the ring.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Writes the next slot with `write` and publishes it.
    ///
    /// The caller must have seen [`has_space`](Self::has_space) return
    /// `true` since the last publish. If `write` panics, nothing is
    /// published and the lane stays usable: the next publish rewrites the
    /// same slot. `write` receives the slot's previous value and must leave
    /// it as the new event.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the ring was closed before the publish; the event was
    /// not accepted.
    #[inline(always)]
    pub(crate) fn publish(&mut self, stamp: u64, write: impl FnOnce(&mut T)) -> Result<(), Closed> {
        let shared = &*self.shared;
        let lane = &shared.lanes[self.lane];
        let line = &lane.producer;
        assert!(
            self.tail - self.cached_head < shared.mask + 1,
            "publish without space"
        );
        // After a close, refuse at once: a producer that keeps retrying
        // never announces again, so `close` waits for at most one announce
        // per producer.
        if shared.closed.load(Ordering::Relaxed) {
            return Err(Closed);
        }
        let slot = &lane.slots[(self.tail & shared.mask) as usize];
        // A panicking `write` leaves the slot unpublished (and nothing is
        // announced yet): the attempt is counted as dropped, so accepted +
        // dropped == attempted holds.
        let count_if_unwinding = CountOnDrop(&line.dropped);
        // SAFETY: event `self.tail` is in `[tail, head + capacity)` (checked
        // just above against a `head` read with Acquire), so its slot is
        // free: the consumer does not read it until we publish it, and we
        // are the lane's only producer (`claimed`), so this is the only
        // reference to the slot's value.
        slot.value.with_mut(|value| write(unsafe { &mut *value }));
        core::mem::forget(count_if_unwinding);
        // SAFETY: as above, the free slot's stamp is ours alone.
        slot.stamp.with_mut(|s| unsafe { *s = stamp });
        // The close protocol (module docs): announce the publish, then look
        // for a close. Announcing only after the (user-supplied) write keeps
        // `close` from waiting on user code. Relaxed: the fence orders the
        // two; the consumer loads `intent` only after its heavy fence.
        line.intent.store(self.tail + 1, Ordering::Relaxed);
        shared.fences.light();
        if shared.closed.load(Ordering::Relaxed) {
            // Release: the consumer waiting on `intent` sees the back-off.
            line.intent.store(self.tail, Ordering::Release);
            return Err(Closed);
        }
        self.tail += 1;
        // Release: the slot writes above happen-before the consumer's
        // Acquire load that observes the new tail.
        line.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Counts one event this producer could not accept.
    #[inline]
    pub(crate) fn count_dropped(&self) {
        self.lane().producer.dropped.fetch_add(1, Ordering::Release);
    }

    /// Events this lane has accepted over its whole life.
    pub(crate) fn lane_published(&self) -> u64 {
        self.tail
    }

    /// Events this lane has dropped over its whole life.
    pub(crate) fn lane_dropped(&self) -> u64 {
        self.lane().producer.dropped.load(Ordering::Relaxed)
    }
}

impl<T> Drop for LaneProducer<T> {
    fn drop(&mut self) {
        // Release: our publishes and drop counts are visible to the lane's
        // next owner, which claims it with Acquire.
        self.lane().claimed.store(false, Ordering::Release);
    }
}

/// Adds one to a drop counter when dropped; forgotten on success.
struct CountOnDrop<'a>(&'a AtomicU64);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// One published event, borrowed from its slot during a drain.
pub(crate) struct Published<'a, T> {
    /// The lane it was published in.
    pub(crate) lane: usize,
    /// The capture stamp the producer wrote.
    pub(crate) stamp: u64,
    /// The payload.
    pub(crate) value: &'a T,
}

/// The single consumer of a ring.
pub(crate) struct RingConsumer<T> {
    shared: Arc<Shared<T>>,
    /// Consumed count per lane (local copy of each lane's `head`).
    heads: Box<[u64]>,
    /// Published count per lane, as of the last refresh (frozen at close).
    tails: Box<[u64]>,
    /// Lanes with `heads[i] < tails[i]` at the last refresh.
    active: Vec<usize>,
    closed: bool,
}

impl<T> RingConsumer<T> {
    /// The consumer of `shared`; only [`Shared::new`] makes one, so there is
    /// exactly one per ring.
    fn new(shared: Arc<Shared<T>>) -> Self {
        let n = shared.lanes.len();
        Self {
            shared,
            heads: vec![0; n].into_boxed_slice(),
            tails: vec![0; n].into_boxed_slice(),
            active: Vec::with_capacity(n),
            closed: false,
        }
    }

    /// The ring this consumer drains.
    pub(crate) fn shared(&self) -> &Arc<Shared<T>> {
        &self.shared
    }

    /// Closes every lane. Returns the number of events accepted before the
    /// close that are not drained yet; they remain drainable.
    ///
    /// Waits for publishes already under way to complete (a few
    /// instructions each, unless their thread is descheduled).
    pub(crate) fn close(&mut self) -> u64 {
        if !self.closed {
            let shared = &*self.shared;
            shared.closed.store(true, Ordering::Relaxed);
            shared.fences.heavy();
            for (tail, lane) in self.tails.iter_mut().zip(shared.lanes.iter()) {
                let line = &lane.producer;
                let mut spins = 0u32;
                // Acquire: pairs with the producer's Release stores of
                // `tail` (the slot is written) and of `intent` (backed off).
                while line.intent.load(Ordering::Acquire) > line.tail.load(Ordering::Acquire) {
                    spins += 1;
                    if spins < 64 {
                        crate::capture::sync::spin_hint();
                    } else {
                        crate::capture::sync::yield_now();
                    }
                }
                *tail = line.tail.load(Ordering::Acquire);
            }
            self.closed = true;
        }
        self.pending()
    }

    /// Whether [`close`](Self::close) has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Events seen published at the last refresh and not yet drained.
    pub(crate) fn pending(&self) -> u64 {
        self.tails
            .iter()
            .zip(self.heads.iter())
            .map(|(t, h)| t - h)
            .sum()
    }

    /// Whether every accepted event has been drained, as of now.
    pub(crate) fn is_empty(&self) -> bool {
        self.shared.lanes.iter().enumerate().all(|(i, lane)| {
            let tail = if self.closed {
                self.tails[i]
            } else {
                lane.producer.tail.load(Ordering::Acquire)
            };
            self.heads[i] == tail
        })
    }

    /// Copies every lane's published count, as of now, into `marks`.
    pub(crate) fn mark(&self, marks: &mut Vec<u64>) {
        marks.clear();
        for (i, lane) in self.shared.lanes.iter().enumerate() {
            marks.push(if self.closed {
                self.tails[i]
            } else {
                // Acquire: pairs with the producer's Release store, as in
                // `refresh`.
                lane.producer.tail.load(Ordering::Acquire)
            });
        }
    }

    /// Whether every event counted in `marks` (see [`mark`](Self::mark))
    /// has been drained.
    pub(crate) fn drained_up_to(&self, marks: &[u64]) -> bool {
        debug_assert_eq!(marks.len(), self.heads.len());
        self.heads
            .iter()
            .zip(marks)
            .all(|(head, mark)| head >= mark)
    }

    fn refresh(&mut self) {
        self.active.clear();
        for (i, lane) in self.shared.lanes.iter().enumerate() {
            if !self.closed {
                // Acquire: pairs with the producer's Release store; the slots
                // below the loaded tail are fully written.
                self.tails[i] = lane.producer.tail.load(Ordering::Acquire);
            }
            if self.heads[i] < self.tails[i] {
                self.active.push(i);
            }
        }
    }

    /// The stamp of event `index` of `lane`, which must be published and
    /// not yet freed.
    #[inline]
    fn stamp_at(&self, lane: usize, index: u64) -> u64 {
        debug_assert!(self.heads[lane] <= index && index < self.tails[lane]);
        let slot = &self.shared.lanes[lane].slots[(index & self.shared.mask) as usize];
        // SAFETY: `index` is in `[head, tail)` with `tail` loaded with
        // Acquire (before or during the close), so the slot is
        // published: the producer finished writing it and will not touch it
        // again until we advance `head` past it.
        slot.stamp.with(|s| unsafe { *s })
    }

    /// Hands up to `max` published events to `f`, merged across lanes in
    /// stamp order (ties in lane order), and frees their slots. Returns the
    /// number of events handed out.
    ///
    /// If `f` panics, the events already handed out (including the one
    /// being handled) are freed and the rest stay pending.
    pub(crate) fn drain(&mut self, max: usize, mut f: impl FnMut(Published<'_, T>)) -> usize {
        self.refresh();
        // A second handle to the slots, so a borrowed slot does not borrow
        // the consumer's bookkeeping.
        let shared = Arc::clone(&self.shared);
        let mut commit = Commit {
            consumer: self,
            count: 0,
        };
        while commit.count < max {
            let c = &*commit.consumer;
            let mut best: Option<(usize, u64)> = None;
            for &lane in &c.active {
                let head = c.heads[lane];
                if head < c.tails[lane] {
                    let stamp = c.stamp_at(lane, head);
                    if best.is_none_or(|(_, s)| stamp < s) {
                        best = Some((lane, stamp));
                    }
                }
            }
            let Some((lane, stamp)) = best else { break };
            let index = c.heads[lane];
            let slot = &shared.lanes[lane].slots[(index & shared.mask) as usize];
            // Count the event as consumed before handing it out, so that a
            // panic in `f` does not hand it out twice.
            commit.consumer.heads[lane] = index + 1;
            commit.count += 1;
            slot.value.with(|value| {
                // SAFETY: event `index` is published (see `stamp_at`) and
                // its slot is not freed until `Commit` stores the new `head`
                // after `f` returns, so no producer writes it while `f`
                // borrows it.
                let value = unsafe { &*value };
                f(Published { lane, stamp, value })
            });
        }
        commit.count
    }
}

impl<T> Drop for RingConsumer<T> {
    fn drop(&mut self) {
        // Producers blocked on a full lane must not wait for a consumer that
        // is gone.
        self.close();
    }
}

/// Frees drained slots when a drain ends, normally or by a panic in the
/// caller's closure.
struct Commit<'a, T> {
    consumer: &'a mut RingConsumer<T>,
    count: usize,
}

impl<T> Drop for Commit<'_, T> {
    fn drop(&mut self) {
        let c = &*self.consumer;
        for &lane in &c.active {
            // Release: our reads of the freed slots happen-before the
            // producer's Acquire load of `head` that lets it reuse them.
            c.shared.lanes[lane]
                .head
                .store(c.heads[lane], Ordering::Release);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_models;
