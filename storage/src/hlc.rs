//! The hybrid logical clock: every ordering and every unique name in the store comes from it.
//!
//! A value is (wall-clock ms, logical counter, node id). `now()` never returns a value less than
//! or equal to one it returned before, whatever the wall clock does: when the wall clock steps
//! backwards, the clock keeps its last wall time and advances the logical counter. A step of the
//! wall clock (a move it made that the monotonic clock did not: a backwards step, or a jump
//! forwards) is logged once, with its size, and counted; a clock that stays behind for an hour
//! after one step is still one step, however many times it is read meanwhile. `observe()`
//! merges a peer's time, but refuses to run ahead of the local wall clock by more than the
//! configured bound.

use crate::types::{HlcTime, NodeId};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Source of wall-clock time in milliseconds since the epoch. Injectable so tests step it.
pub trait WallClock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The real wall clock.
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A wall clock that tests set by hand.
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(ms)))
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst)
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl WallClock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("peer clock {peer_ms} ms is more than {bound_ms} ms ahead of our wall clock {local_ms} ms")]
pub struct ClockDriftError {
    pub peer_ms: u64,
    pub local_ms: u64,
    pub bound_ms: u64,
}

pub struct Hlc {
    node: NodeId,
    wall: Arc<dyn WallClock>,
    last: Mutex<Last>,
    max_drift_ms: u64,
    backward_steps: AtomicU64,
    forward_jumps: AtomicU64,
}

/// The clock's last value, and the wall and monotonic readings of the previous `now()`: the
/// two clocks move together unless the wall clock is stepped.
struct Last {
    time: (u64, u32),
    wall_ms: u64,
    mono: Instant,
}

/// A step smaller than this is ordinary jitter between two reads (a thread preempted between
/// reading the wall clock and taking the lock, NTP slewing) and is not reported.
const STEP_REPORT_MS: i64 = 1000;

impl Hlc {
    pub fn new(node: NodeId, wall: Arc<dyn WallClock>, max_drift_ms: u64) -> Hlc {
        Hlc {
            node,
            wall,
            last: Mutex::new(Last {
                time: (0, 0),
                wall_ms: 0,
                mono: Instant::now(),
            }),
            max_drift_ms,
            backward_steps: AtomicU64::new(0),
            forward_jumps: AtomicU64::new(0),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Raises the clock to at least `t` (used at start-up with the last time found on disk, so a
    /// restart with a clock set back still never repeats a value).
    pub fn raise_to(&self, t: HlcTime) {
        let mut last = self.last.lock();
        if (t.wall_ms, t.logical) > last.time {
            last.time = (t.wall_ms, t.logical);
        }
    }

    /// A new time, greater than every time this clock returned or observed.
    pub fn now(&self) -> HlcTime {
        let wall = self.wall.now_ms();
        let mono = Instant::now();
        let mut last = self.last.lock();
        self.note_step(&mut last, wall, mono);
        if wall > last.time.0 {
            last.time = (wall, 0);
        } else {
            bump(&mut last.time);
        }
        HlcTime {
            wall_ms: last.time.0,
            logical: last.time.1,
            node: self.node,
        }
    }

    /// Compares the wall clock's move since the previous read with the monotonic clock's: a
    /// difference of a second or more is a step, logged and counted here once.
    fn note_step(&self, last: &mut Last, wall: u64, mono: Instant) {
        let (prev_wall, prev_mono) = (last.wall_ms, last.mono);
        last.wall_ms = wall;
        last.mono = mono;
        if prev_wall == 0 {
            return; // the first read: nothing to compare with
        }
        let elapsed = i64::try_from(mono.saturating_duration_since(prev_mono).as_millis())
            .unwrap_or(i64::MAX);
        let moved =
            i64::try_from(wall).unwrap_or(i64::MAX) - i64::try_from(prev_wall).unwrap_or(i64::MAX);
        let step = moved.saturating_sub(elapsed);
        if step <= -STEP_REPORT_MS {
            self.backward_steps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                step_ms = step,
                wall_ms = wall,
                clock_ms = last.time.0,
                "wall clock stepped backwards by {} ms; the hybrid logical clock stays monotonic \
                 (its logical counter advances until the wall clock catches up)",
                -step
            );
        } else if step >= STEP_REPORT_MS {
            self.forward_jumps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                step_ms = step,
                wall_ms = wall,
                "wall clock jumped forwards by {step} ms; new times follow it"
            );
        }
    }

    /// Merges a time seen from a peer; errors when the peer is too far ahead of our wall clock
    /// (the record is still valid, but the caller should log and may refuse the peer).
    pub fn observe(&self, t: HlcTime) -> Result<(), ClockDriftError> {
        let wall = self.wall.now_ms();
        if t.wall_ms > wall.saturating_add(self.max_drift_ms) {
            return Err(ClockDriftError {
                peer_ms: t.wall_ms,
                local_ms: wall,
                bound_ms: self.max_drift_ms,
            });
        }
        let mut last = self.last.lock();
        if (t.wall_ms, t.logical) > last.time {
            last.time = (t.wall_ms, t.logical);
        }
        Ok(())
    }

    /// How many times the wall clock stepped backwards (a counter, for metrics).
    pub fn backward_steps(&self) -> u64 {
        self.backward_steps.load(Ordering::Relaxed)
    }

    /// How many times the wall clock jumped forwards (a counter, for metrics).
    pub fn forward_jumps(&self) -> u64 {
        self.forward_jumps.load(Ordering::Relaxed)
    }

    /// The wall clock's current reading, for things that are dates, not orderings
    /// (an INTERNALDATE, a log line).
    pub fn wall_ms(&self) -> u64 {
        self.wall.now_ms()
    }
}

fn bump(last: &mut (u64, u32)) {
    if last.1 == u32::MAX {
        last.0 += 1;
        last.1 = 0;
    } else {
        last.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_across_backward_step() {
        let wall = ManualClock::new(10_000_000);
        let hlc = Hlc::new(7, wall.clone(), 60_000);
        let a = hlc.now();
        wall.set(10_000_000 - 3_600_000);
        let b = hlc.now();
        let c = hlc.now();
        assert!(a < b && b < c);
        // One step, however often the clock is read while it stays behind.
        assert_eq!(hlc.backward_steps(), 1);
        wall.set(20_000_000);
        let d = hlc.now();
        assert!(c < d);
        assert_eq!(d.wall_ms, 20_000_000);
    }

    #[test]
    fn observe_refuses_far_future() {
        let wall = ManualClock::new(1_000_000);
        let hlc = Hlc::new(1, wall.clone(), 1000);
        assert!(hlc
            .observe(HlcTime {
                wall_ms: 1_000_500,
                logical: 3,
                node: 2
            })
            .is_ok());
        assert!(
            hlc.now()
                > HlcTime {
                    wall_ms: 1_000_500,
                    logical: 3,
                    node: 2
                }
        );
        assert!(hlc
            .observe(HlcTime {
                wall_ms: 5_000_000,
                logical: 0,
                node: 2
            })
            .is_err());
    }

    /// Counts WARN events: what an operator's log would show.
    struct WarnCount(Arc<AtomicU64>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarnCount {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if *e.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn one_warning_and_one_count_per_step_however_long_the_clock_stays_behind() {
        use tracing_subscriber::layer::SubscriberExt;
        let warns = Arc::new(AtomicU64::new(0));
        let sub = tracing_subscriber::registry().with(WarnCount(warns.clone()));
        tracing::subscriber::with_default(sub, || {
            let wall = ManualClock::new(100_000_000);
            let hlc = Hlc::new(1, wall.clone(), 60_000);
            let mut prev = hlc.now();
            // An hour back, then a thousand reads (at 200 deliveries/s, five seconds' worth)
            // while the clock stays behind and creeps forward.
            wall.set(100_000_000 - 3_600_000);
            for _ in 0..1000 {
                wall.advance(5);
                let t = hlc.now();
                assert!(t > prev);
                prev = t;
            }
            assert_eq!(hlc.backward_steps(), 1);
            assert_eq!(warns.load(Ordering::Relaxed), 1);
            // A second step, a day back: one more of each.
            wall.set(100_000_000 - 3_600_000 - 86_400_000);
            for _ in 0..100 {
                assert!(hlc.now() > prev);
            }
            assert_eq!(hlc.backward_steps(), 2);
            assert_eq!(warns.load(Ordering::Relaxed), 2);
            // A jump forwards a day: counted apart, logged once.
            wall.set(100_000_000 + 86_400_000);
            hlc.now();
            hlc.now();
            assert_eq!(hlc.forward_jumps(), 1);
            assert_eq!(warns.load(Ordering::Relaxed), 3);
            assert_eq!(hlc.backward_steps(), 2);
        });
    }
}
