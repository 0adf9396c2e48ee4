//! Capture timestamps: a raw cycle-counter read on the hot path, converted
//! to Unix nanoseconds off the hot path.
//!
//! Reading the wall clock (`clock_gettime(CLOCK_REALTIME)`) costs about
//! 25 ns on these machines; reading the time-stamp counter costs about
//! 11 ns. Producers store the raw counter; the consumer converts it with an
//! anchor pair (counter, wall time) that it refreshes every second, so the
//! conversion follows wall-clock adjustments without a hot-path cost.
//! Where no invariant counter exists, `quanta` falls back to the monotonic
//! clock and everything below still holds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the consumer re-reads the wall clock.
const REANCHOR_EVERY: Duration = Duration::from_secs(1);

/// A cheap, cloneable source of raw capture stamps.
#[derive(Clone, Debug)]
pub(crate) struct CaptureClock {
    clock: quanta::Clock,
}

impl CaptureClock {
    pub(crate) fn new() -> Self {
        Self {
            clock: quanta::Clock::new(),
        }
    }

    /// A raw, monotonic stamp; meaningful only to [`WallAnchor`].
    #[inline(always)]
    pub(crate) fn stamp(&self) -> u64 {
        self.clock.raw()
    }

    /// Nanoseconds between two raw stamps (0 if `end` precedes `start`).
    #[inline]
    pub(crate) fn nanos_between(&self, start: u64, end: u64) -> u64 {
        if end <= start {
            0
        } else {
            self.clock.delta_as_nanos(start, end)
        }
    }
}

/// Converts raw stamps to Unix-epoch nanoseconds.
#[derive(Debug)]
pub(crate) struct WallAnchor {
    clock: CaptureClock,
    raw: u64,
    unix_ns: u64,
}

impl WallAnchor {
    pub(crate) fn new(clock: CaptureClock) -> Self {
        let mut anchor = Self {
            clock,
            raw: 0,
            unix_ns: 0,
        };
        anchor.reanchor();
        anchor
    }

    fn reanchor(&mut self) {
        self.raw = self.clock.stamp();
        self.unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The clock the anchor converts from.
    pub(crate) fn clock(&self) -> &CaptureClock {
        &self.clock
    }

    /// Re-reads the wall clock if the anchor is older than a second.
    pub(crate) fn refresh(&mut self) {
        let age = self.clock.nanos_between(self.raw, self.clock.stamp());
        if age >= REANCHOR_EVERY.as_nanos() as u64 {
            self.reanchor();
        }
    }

    /// Unix-epoch nanoseconds of a raw stamp.
    #[inline]
    pub(crate) fn unix_nanos(&self, raw: u64) -> u64 {
        if raw >= self.raw {
            self.unix_ns
                .saturating_add(self.clock.nanos_between(self.raw, raw))
        } else {
            self.unix_ns
                .saturating_sub(self.clock.nanos_between(raw, self.raw))
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn stamps_convert_to_current_wall_time() {
        let clock = CaptureClock::new();
        let anchor = WallAnchor::new(clock.clone());
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let stamp = clock.stamp();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let ns = anchor.unix_nanos(stamp);
        // Calibration error of the counter is far below a millisecond.
        assert!(
            ns + 1_000_000 >= before && ns <= after + 1_000_000,
            "{before} <= {ns} <= {after}"
        );
    }

    #[test]
    fn earlier_stamps_convert_to_earlier_times() {
        let clock = CaptureClock::new();
        let early = clock.stamp();
        std::thread::sleep(Duration::from_millis(2));
        let anchor = WallAnchor::new(clock.clone());
        let late = clock.stamp();
        let (a, b) = (anchor.unix_nanos(early), anchor.unix_nanos(late));
        assert!(a < b);
        assert!(b - a >= 1_500_000, "{} ns apart", b - a);
    }
}
