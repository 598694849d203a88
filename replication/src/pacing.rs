//! Replication yields to client traffic but never starves. Catch-up work (a peer behind by more
//! than one batch: after a restart, a cut link, a new node) competes with the node's clients
//! for CPU (TLS, bincode, blake3, zstd), the blocking pool and the disk. Before such a batch,
//! while clients are busy (a store call in flight, or one ended less than `quiet` ago), the
//! shipper (and the receiver before applying a big frame) waits until they are quiet, but
//! never longer than `max_wait`, and ships a smaller batch if they are still busy: a backlog
//! drains at a guaranteed floor rate (one small batch per `max_wait` plus its own time) under
//! any client load, and flat out when clients are idle.
//! Live traffic (the peer within one batch) is never held back: `replicated` durability and
//! lag wait on it.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type InFlightFn = Arc<dyn Fn() -> usize + Send + Sync>;
type IdleForFn = Arc<dyn Fn() -> Duration + Send + Sync>;

/// How busy the node's clients are: their store calls in flight, and how long none has been
/// (the node passes `protocols::blocking::{in_flight, idle_for}`; replication does not depend
/// on `protocols`).
#[derive(Clone)]
pub struct ClientLoad {
    in_flight: InFlightFn,
    idle_for: IdleForFn,
}

impl ClientLoad {
    pub fn new(
        in_flight: impl Fn() -> usize + Send + Sync + 'static,
        idle_for: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> ClientLoad {
        ClientLoad {
            in_flight: Arc::new(in_flight),
            idle_for: Arc::new(idle_for),
        }
    }
    /// No clients on this node (tests, `node sync`): replication never waits.
    pub fn none() -> ClientLoad {
        ClientLoad::new(|| 0, || Duration::MAX)
    }
    pub fn in_flight(&self) -> usize {
        (self.in_flight)()
    }
    /// Busy: a call in flight, or one ended less than `quiet` ago (clients between two
    /// commands are still working).
    pub fn busy(&self, quiet: Duration) -> bool {
        self.in_flight() > 0 || (self.idle_for)() < quiet
    }
}

impl Default for ClientLoad {
    fn default() -> Self {
        ClientLoad::none()
    }
}

impl std::fmt::Debug for ClientLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientLoad {{ in_flight: {}, idle_for: {:?} }}",
            self.in_flight(),
            (self.idle_for)()
        )
    }
}

/// `[cluster] replication_yield*`.
#[derive(Clone, Debug)]
pub struct PacingConfig {
    /// Catch-up batches yield to busy clients. Off: they ship flat out (for comparison; live
    /// traffic is never held back either way).
    pub enabled: bool,
    /// Longest one catch-up batch waits for busy clients: with `busy_batch_records`, the
    /// floor of the drain rate.
    pub max_wait: Duration,
    /// How often the client load is read again while waiting (two atomic loads).
    pub poll: Duration,
    /// Clients count as busy until none of their calls has been in flight for this long.
    pub quiet: Duration,
    /// Catch-up store work (reading the backlog; applying a peer's big frame) runs on threads
    /// of lower CPU and I/O priority (see `background`), when `enabled`. Off by default: in
    /// `jepsen bench-backlog` it did not measurably help the clients (docs/performance.md),
    /// and a nice-10 thread leading a group commit would hold up clients' writes behind it.
    pub low_priority: bool,
    /// Records in a catch-up batch shipped while clients are busy (a shorter burst between
    /// two chances for the clients); idle clients get the full `batch_records`.
    pub busy_batch_records: usize,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            enabled: true,
            max_wait: Duration::from_millis(25),
            poll: Duration::from_millis(1),
            quiet: Duration::from_millis(10),
            low_priority: false,
            busy_batch_records: 100,
        }
    }
}

/// Node-wide pacing counters (atomics, read by status).
#[derive(Default)]
pub(crate) struct PacingCounters {
    catch_up_batches: AtomicU64,
    delayed: AtomicU64,
    shrunk: AtomicU64,
    waited_us: AtomicU64,
    applies_delayed: AtomicU64,
    apply_waited_us: AtomicU64,
}

/// How much replication was held back for clients since start, for
/// `node replication status` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingStatus {
    /// Whether catch-up yields to clients on this node.
    pub enabled: bool,
    /// Catch-up batches shipped (the peer was more than one batch behind).
    pub catch_up_batches: u64,
    /// Catch-up batches that waited for busy clients before being shipped.
    pub catch_up_batches_delayed: u64,
    /// Catch-up batches cut to `busy_batch_records` because clients were busy.
    pub catch_up_batches_shrunk: u64,
    /// Seconds catch-up shipping spent waiting for clients.
    pub yield_seconds: f64,
    /// Full batches from peers whose apply waited for busy clients here.
    pub applies_delayed: u64,
    /// Seconds those applies waited.
    pub apply_yield_seconds: f64,
}

impl PacingCounters {
    pub(crate) fn status(&self, enabled: bool) -> PacingStatus {
        let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        PacingStatus {
            enabled,
            catch_up_batches: self.catch_up_batches.load(Ordering::Relaxed),
            catch_up_batches_delayed: self.delayed.load(Ordering::Relaxed),
            catch_up_batches_shrunk: self.shrunk.load(Ordering::Relaxed),
            yield_seconds: secs(&self.waited_us),
            applies_delayed: self.applies_delayed.load(Ordering::Relaxed),
            apply_yield_seconds: secs(&self.apply_waited_us),
        }
    }
}

/// Decides, per batch, whether and how long replication waits for the clients, and how big the
/// batch is.
pub(crate) struct Pacer {
    pub cfg: PacingConfig,
    pub load: ClientLoad,
    pub counters: PacingCounters,
}

/// What the shipper does with one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Most records to ship in it.
    pub records: usize,
    /// How long it waited for the clients.
    pub waited: Duration,
}

impl Pacer {
    pub(crate) fn new(cfg: PacingConfig, load: ClientLoad) -> Pacer {
        Pacer {
            cfg,
            load,
            counters: PacingCounters::default(),
        }
    }

    /// Waits while clients are busy, up to `max_wait`, polling their load on the monotonic
    /// clock (tokio time). Returns the time waited and whether they were still busy at the end.
    async fn wait_for_clients(&self) -> (Duration, bool) {
        let start = tokio::time::Instant::now();
        let deadline = start + self.cfg.max_wait;
        loop {
            if !self.load.busy(self.cfg.quiet) {
                return (start.elapsed(), false);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return (now - start, true);
            }
            tokio::time::sleep_until((now + self.cfg.poll).min(deadline)).await;
        }
    }

    /// Before loading a batch for a peer. `catch_up`: the user's previous batch to this peer
    /// was cut (the peer is more than one batch behind); otherwise this is the live stream and
    /// ships at once, full size.
    pub(crate) async fn before_batch(&self, catch_up: bool, batch_records: usize) -> Plan {
        let full = Plan {
            records: batch_records,
            waited: Duration::ZERO,
        };
        if !catch_up {
            return full;
        }
        self.counters
            .catch_up_batches
            .fetch_add(1, Ordering::Relaxed);
        if !self.cfg.enabled {
            return full;
        }
        let (waited, still_busy) = self.wait_for_clients().await;
        if !waited.is_zero() {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
            self.counters
                .waited_us
                .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        }
        let mut records = batch_records;
        if still_busy && self.cfg.busy_batch_records < batch_records {
            records = self.cfg.busy_batch_records.max(1);
            self.counters.shrunk.fetch_add(1, Ordering::Relaxed);
        }
        Plan { records, waited }
    }

    /// Whether catch-up store work runs on the low-priority threads.
    pub(crate) fn low_priority(&self, catch_up: bool) -> bool {
        catch_up && self.cfg.enabled && self.cfg.low_priority
    }

    /// A peer's frame of `records` records is catch-up (see [`Pacer::before_apply`]).
    pub(crate) fn is_catch_up_frame(&self, records: usize) -> bool {
        records >= self.cfg.busy_batch_records.max(1)
    }

    /// Before applying a peer's frame of `records` records. A frame of at least
    /// `busy_batch_records` is catch-up (the live stream sends what accumulated during one
    /// round trip: a few records; a shipper catching up sends full or busy-sized batches) and
    /// waits for busy clients here, bounded like the shipper's wait; smaller frames are
    /// applied at once. Returns the time waited.
    pub(crate) async fn before_apply(&self, records: usize) -> Duration {
        if !self.cfg.enabled || !self.is_catch_up_frame(records) {
            return Duration::ZERO;
        }
        let (waited, _) = self.wait_for_clients().await;
        if !waited.is_zero() {
            self.counters
                .applies_delayed
                .fetch_add(1, Ordering::Relaxed);
            self.counters
                .apply_waited_us
                .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        }
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    /// A pacer whose clients have `load` calls in flight and were last active `idle_ms` ago.
    fn pacer_idle(load: &Arc<AtomicUsize>, idle_ms: &Arc<AtomicU64>, enabled: bool) -> Pacer {
        let (l, i) = (load.clone(), idle_ms.clone());
        Pacer::new(
            PacingConfig {
                enabled,
                max_wait: Duration::from_millis(25),
                poll: Duration::from_millis(1),
                quiet: Duration::from_millis(10),
                low_priority: true,
                busy_batch_records: 100,
            },
            ClientLoad::new(
                move || l.load(Ordering::SeqCst),
                move || Duration::from_millis(i.load(Ordering::SeqCst)),
            ),
        )
    }

    /// Clients last active long ago unless calls are in flight.
    fn pacer(load: &Arc<AtomicUsize>, enabled: bool) -> Pacer {
        pacer_idle(load, &Arc::new(AtomicU64::new(1000)), enabled)
    }

    #[tokio::test(start_paused = true)]
    async fn clients_between_commands_count_as_busy_until_quiet() {
        // Nothing in flight, but a call ended 3 ms ago: busy until 10 ms of quiet. The
        // fake's idle time does not advance by itself; a task plays the clients going
        // quiet after 4 ms.
        let load = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(AtomicU64::new(3));
        let p = pacer_idle(&load, &idle, true);
        let i = idle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(4)).await;
            i.store(10, Ordering::SeqCst);
        });
        let plan = p.before_batch(true, 500).await;
        assert_eq!(plan.records, 500);
        assert!(
            plan.waited >= Duration::from_millis(4) && plan.waited <= Duration::from_millis(5),
            "{:?}",
            plan.waited
        );
        // Quiet for long enough: no wait at all.
        assert_eq!(p.before_batch(true, 500).await.waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn live_batches_never_wait_even_when_clients_are_busy() {
        let load = Arc::new(AtomicUsize::new(50));
        let p = pacer(&load, true);
        let t0 = tokio::time::Instant::now();
        let plan = p.before_batch(false, 500).await;
        assert_eq!(plan.records, 500);
        assert_eq!(plan.waited, Duration::ZERO);
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(p.counters.status(true).catch_up_batches, 0);
        // Small frames are applied at once too.
        assert_eq!(p.before_apply(99).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn catch_up_with_idle_clients_runs_flat_out() {
        let load = Arc::new(AtomicUsize::new(0));
        let p = pacer(&load, true);
        let t0 = tokio::time::Instant::now();
        for _ in 0..10 {
            let plan = p.before_batch(true, 500).await;
            assert_eq!((plan.records, plan.waited), (500, Duration::ZERO));
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        let s = p.counters.status(true);
        assert_eq!((s.catch_up_batches, s.catch_up_batches_delayed), (10, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn catch_up_waits_until_clients_are_idle() {
        let load = Arc::new(AtomicUsize::new(3));
        let p = pacer(&load, true);
        let l = load.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            l.store(0, Ordering::SeqCst);
        });
        let plan = p.before_batch(true, 500).await;
        // Clients went idle within the bound: full batch, after about 10 ms (one poll late
        // at most).
        assert_eq!(plan.records, 500);
        assert!(
            plan.waited >= Duration::from_millis(10) && plan.waited <= Duration::from_millis(11),
            "{:?}",
            plan.waited
        );
        let s = p.counters.status(true);
        assert_eq!(
            (s.catch_up_batches_delayed, s.catch_up_batches_shrunk),
            (1, 0)
        );
        assert!((s.yield_seconds - plan.waited.as_secs_f64()).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_clients_never_starve_the_backlog() {
        // Clients busy all the time: every catch-up batch still goes after max_wait, smaller.
        let load = Arc::new(AtomicUsize::new(8));
        let p = pacer(&load, true);
        let t0 = tokio::time::Instant::now();
        let mut shipped = 0;
        for _ in 0..40 {
            let plan = p.before_batch(true, 500).await;
            assert_eq!(plan.waited, Duration::from_millis(25));
            assert_eq!(plan.records, 100);
            shipped += plan.records;
        }
        // The floor: 100 records per 25 ms of waiting (plus the batches' own time).
        assert_eq!(t0.elapsed(), Duration::from_millis(1000));
        assert_eq!(shipped, 4000);
        let s = p.counters.status(true);
        assert_eq!(
            (
                s.catch_up_batches,
                s.catch_up_batches_delayed,
                s.catch_up_batches_shrunk
            ),
            (40, 40, 40)
        );
        assert!((s.yield_seconds - 1.0).abs() < 1e-6);
        // A full frame from a peer waits at most max_wait too.
        assert_eq!(p.before_apply(100).await, Duration::from_millis(25));
        assert_eq!(p.counters.status(true).applies_delayed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_pacing_ships_catch_up_flat_out_but_counts_it() {
        let load = Arc::new(AtomicUsize::new(8));
        let p = pacer(&load, false);
        let t0 = tokio::time::Instant::now();
        let plan = p.before_batch(true, 500).await;
        assert_eq!((plan.records, plan.waited), (500, Duration::ZERO));
        assert_eq!(p.before_apply(100).await, Duration::ZERO);
        assert_eq!(t0.elapsed(), Duration::ZERO);
        let s = p.counters.status(false);
        assert_eq!((s.catch_up_batches, s.catch_up_batches_delayed), (1, 0));
    }
}
