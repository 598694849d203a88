//! The hybrid logical clock: every ordering and every unique name in the store comes from it.
//!
//! A value is (wall-clock ms, logical counter, node id). `now()` never returns a value less than
//! or equal to one it returned before, whatever the wall clock does: when the wall clock steps
//! backwards, the clock keeps its last wall time and advances the logical counter, logs a warning
//! and counts the step. `observe()` merges a peer's time, but refuses to run ahead of the local
//! wall clock by more than the configured bound.

use crate::types::{HlcTime, NodeId};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    last: Mutex<(u64, u32)>,
    max_drift_ms: u64,
    backward_steps: AtomicU64,
}

/// A backwards step smaller than this is ordinary jitter between reads and is not reported.
const STEP_REPORT_MS: u64 = 1000;

impl Hlc {
    pub fn new(node: NodeId, wall: Arc<dyn WallClock>, max_drift_ms: u64) -> Hlc {
        Hlc {
            node,
            wall,
            last: Mutex::new((0, 0)),
            max_drift_ms,
            backward_steps: AtomicU64::new(0),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Raises the clock to at least `t` (used at start-up with the last time found on disk, so a
    /// restart with a clock set back still never repeats a value).
    pub fn raise_to(&self, t: HlcTime) {
        let mut last = self.last.lock();
        if (t.wall_ms, t.logical) > *last {
            *last = (t.wall_ms, t.logical);
        }
    }

    /// A new time, greater than every time this clock returned or observed.
    pub fn now(&self) -> HlcTime {
        let wall = self.wall.now_ms();
        let mut last = self.last.lock();
        if wall > last.0 {
            *last = (wall, 0);
        } else {
            if last.0 - wall >= STEP_REPORT_MS {
                self.backward_steps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    wall_ms = wall,
                    clock_ms = last.0,
                    behind_ms = last.0 - wall,
                    "wall clock is behind the hybrid logical clock (stepped backwards?); \
                     keeping the clock monotonic with its logical counter"
                );
            }
            bump(&mut last);
        }
        HlcTime {
            wall_ms: last.0,
            logical: last.1,
            node: self.node,
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
        if (t.wall_ms, t.logical) > *last {
            *last = (t.wall_ms, t.logical);
        }
        Ok(())
    }

    /// How many times the wall clock was seen stepping backwards (for metrics).
    pub fn backward_steps(&self) -> u64 {
        self.backward_steps.load(Ordering::Relaxed)
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
        assert_eq!(hlc.backward_steps(), 2);
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
}
