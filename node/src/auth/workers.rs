//! Password hash workers (Dovecot's auth-worker processes, as threads): a fixed number of
//! threads at a lower CPU priority run the hash checks. A login storm then queues here and
//! takes only the CPU the sessions leave over: an IDLE session's NOOP is still answered at once,
//! because the async threads (normal priority) win every contention with a hash worker.

use parking_lot::Mutex;
use std::sync::mpsc;
use std::sync::Arc;

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the worker threads (0 = normal, 19 = lowest).
const WORKER_NICE: libc::c_int = 10;

pub struct HashWorkers {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl HashWorkers {
    pub fn new(count: usize) -> HashWorkers {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..count.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("auth-worker-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().recv();
                        match job {
                            // A panicking check (a bug) must not kill the worker.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => break, // the authenticator is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("auth: cannot start auth-worker-{i}: {e}");
            }
        }
        HashWorkers { tx: Mutex::new(tx) }
    }

    /// Runs `f` on a worker; waits (asynchronously) for a free one.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx
            .lock()
            .send(job)
            .map_err(|_| "auth workers are gone".to_string())?;
        result
            .await
            .map_err(|_| "auth worker failed (internal error)".to_string())
    }
}

/// Lowers the calling thread's CPU priority (Linux: nice applies per thread).
fn lower_priority() {
    // SAFETY: gettid and setpriority on the calling thread; no memory is passed.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WORKER_NICE)
    };
    if rc != 0 {
        tracing::debug!(
            "auth: cannot lower the hash workers' priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_on_niced_threads_and_survives_a_panic() {
        let w = HashWorkers::new(2);
        let (name, nice) = w
            .run(|| {
                // SAFETY: getpriority of the calling thread.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
                (std::thread::current().name().map(str::to_string), nice)
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("auth-worker-"));
        assert_eq!(nice, WORKER_NICE);
        assert!(w.run(|| -> u32 { panic!("boom") }).await.is_err());
        // Both workers still serve.
        let (a, b) = tokio::join!(w.run(|| 1), w.run(|| 2));
        assert_eq!((a, b), (Ok(1), Ok(2)));
    }

    #[tokio::test]
    async fn at_most_count_jobs_run_at_once() {
        let w = Arc::new(HashWorkers::new(1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let first = {
            let w = w.clone();
            tokio::spawn(async move { w.run(move || wait.recv().is_ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = {
            let w = w.clone();
            tokio::spawn(async move { w.run(|| true).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the only worker is busy");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(true));
    }
}
