//! Runs blocking store calls off the async threads, so one session's slow disk never stalls
//! another session, and counts the calls in flight so background work (replication catch-up)
//! can tell how busy the clients are and yield to them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Client store calls queued or running on the blocking pool, node-wide.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// How many client store calls (IMAP, POP3, LMTP) are queued or running right now. One atomic
/// load: cheap enough to poll every millisecond.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Counts one call from creation until dropped; travels inside the blocking closure, so it
/// ends when the call's work ends (also when it panics, or when the closure is dropped unrun
/// at shutdown), not when the waiting session goes away.
struct InFlight(&'static AtomicUsize);

impl InFlight {
    fn new(counter: &'static AtomicUsize) -> InFlight {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `f` on tokio's blocking pool and returns its result. A panic inside `f` (a bug) becomes
/// an error rather than taking the session's task down with it.
pub async fn run<T, F>(f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run_counted(&IN_FLIGHT, f).await
}

async fn run_counted<T, F>(counter: &'static AtomicUsize, f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let guard = InFlight::new(counter);
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
    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    #[tokio::test]
    async fn counts_calls_while_they_run_and_after_a_panic_none() {
        let in_flight = || COUNTER.load(Ordering::Relaxed);
        let before = in_flight();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let call = tokio::spawn(run_counted(&COUNTER, move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            7
        }));
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(in_flight(), before + 1);
        release_tx.send(()).unwrap();
        assert_eq!(call.await.unwrap(), Ok(7));
        assert_eq!(in_flight(), before);

        let r: Result<(), String> = run_counted(&COUNTER, || panic!("a bug")).await;
        assert!(r.unwrap_err().starts_with("internal error"));
        assert_eq!(in_flight(), before, "a panicking call leaked its count");
    }
}
