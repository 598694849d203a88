//! Runs blocking store calls off the async threads, so one session's slow disk never stalls
//! another session, and counts the calls in flight so background work (replication catch-up)
//! can tell how busy the clients are and yield to them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Client store calls in flight and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    /// Microseconds after [`base`] at which the last call ended (monotonic clock).
    last_end_us: AtomicU64,
}

impl Activity {
    const fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_end_us: AtomicU64::new(0),
        }
    }
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_micros(self.last_end_us.load(Ordering::Relaxed));
        base().elapsed().saturating_sub(last)
    }
}

/// The process's reference instant for [`Activity::last_end_us`].
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Client store calls (IMAP, POP3, LMTP), node-wide.
static CLIENTS: Activity = Activity::new();

/// How many client store calls are queued or running right now. One atomic load: cheap
/// enough to poll every millisecond.
pub fn in_flight() -> usize {
    CLIENTS.in_flight.load(Ordering::Relaxed)
}

/// How long no client store call has been in flight (zero while one is): background work
/// (replication catch-up) treats clients as busy until this passes a quiet period.
pub fn idle_for() -> Duration {
    CLIENTS.idle_for()
}

/// Counts one call from creation until dropped; travels inside the blocking closure, so it
/// ends when the call's work ends (also when it panics, or when the closure is dropped unrun
/// at shutdown), not when the waiting session goes away.
struct InFlight(&'static Activity);

impl InFlight {
    fn new(a: &'static Activity) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The end time first: a reader seeing zero in flight then sees this end too.
        let now = base().elapsed().as_micros() as u64;
        self.0.last_end_us.fetch_max(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// Runs `f` on tokio's blocking pool and returns its result. A panic inside `f` (a bug) becomes
/// an error rather than taking the session's task down with it.
pub async fn run<T, F>(f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run_counted(&CLIENTS, f).await
}

async fn run_counted<T, F>(activity: &'static Activity, f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let guard = InFlight::new(activity);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        f()
    })
    .await
    .map_err(|e| format!("internal error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Its own counter: other tests' sessions use the global one concurrently.
    static ACTIVITY: Activity = Activity::new();

    #[tokio::test]
    async fn counts_calls_while_they_run_and_after_a_panic_none() {
        let in_flight = || ACTIVITY.in_flight.load(Ordering::Relaxed);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let call = tokio::spawn(run_counted(&ACTIVITY, move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            7
        }));
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(in_flight(), 1);
        assert_eq!(
            ACTIVITY.idle_for(),
            Duration::ZERO,
            "busy while a call runs"
        );
        release_tx.send(()).unwrap();
        assert_eq!(call.await.unwrap(), Ok(7));
        assert_eq!(in_flight(), 0);
        // Idle since the call ended, and growing.
        std::thread::sleep(Duration::from_millis(20));
        assert!(ACTIVITY.idle_for() >= Duration::from_millis(20));

        let ended = ACTIVITY.last_end_us.load(Ordering::Relaxed);
        let r: Result<(), String> = run_counted(&ACTIVITY, || panic!("a bug")).await;
        assert!(r.unwrap_err().starts_with("internal error"));
        assert_eq!(in_flight(), 0, "a panicking call leaked its count");
        // Its end counts as activity.
        assert!(ACTIVITY.last_end_us.load(Ordering::Relaxed) >= ended + 20_000);
    }
}
