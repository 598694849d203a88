//! Password hash workers (Dovecot's auth-worker processes, as threads): a fixed number of
//! threads at a lower CPU priority run the hash checks. A login storm then queues here and
//! takes only the CPU the sessions leave over: an IDLE session's NOOP is still answered at once,
//! because the async threads (normal priority) win every contention with a hash worker.

use storage::low_priority::{LowPriorityPool, PoolError, Priority};

/// Niceness of the worker threads (0 = normal, 19 = lowest).
const WORKER_NICE: libc::c_int = 10;

pub struct HashWorkers {
    pool: LowPriorityPool,
}

impl HashWorkers {
    pub fn new(count: usize) -> HashWorkers {
        let priority = Priority {
            nice: WORKER_NICE,
            io_best_effort: None,
        };
        HashWorkers {
            pool: LowPriorityPool::new("auth-worker", count, priority, "auth: hash workers"),
        }
    }

    /// Runs `f` on a worker; waits (asynchronously) for a free one.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        self.pool.run(f).await.map_err(|e| match e {
            PoolError::Gone => "auth workers are gone".to_string(),
            // A panicking check (a bug) does not kill the worker.
            PoolError::Panicked => "auth worker failed (internal error)".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[allow(unsafe_code)]
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
        // The pool's own tests (storage::low_priority) cover the rest: a panic is this error.
        assert_eq!(
            w.run(|| -> u32 { panic!("boom") }).await,
            Err("auth worker failed (internal error)".to_string())
        );
        assert_eq!(w.run(|| 1).await, Ok(1));
    }
}
