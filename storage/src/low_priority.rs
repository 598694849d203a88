//! A few threads of lower CPU (and optionally I/O) priority for blocking work that clients
//! should win every contention with: the node's password-hash workers, replication's catch-up
//! store work. A niced thread still gets CPU when clients leave some, and a share of it when
//! they do not: the work slows, it does not stop. Linux applies nice and I/O priority per
//! thread, so only these threads are lowered.

use parking_lot::Mutex;
use std::sync::mpsc;
use std::sync::Arc;

type Job = Box<dyn FnOnce() + Send>;

/// How far a pool's threads are lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// Niceness (0 = normal, 19 = lowest).
    pub nice: libc::c_int,
    /// I/O best-effort level (0 = highest, 7 = lowest), or None to leave the I/O priority
    /// alone. Never the idle class, which can starve. Effective under BFQ; mq-deadline and
    /// `none` do not order within a class.
    pub io_best_effort: Option<u8>,
}

/// Why a job did not return its value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the pool's threads are gone")]
    Gone,
    /// The job panicked (a bug); the thread carries on.
    #[error("the job panicked")]
    Panicked,
}

pub struct LowPriorityPool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl LowPriorityPool {
    /// Starts `threads` (at least one) threads named `{name}-{i}` at `priority`. `what` names
    /// the pool in log lines (e.g. "auth: hash workers").
    pub fn new(name: &str, threads: usize, priority: Priority, what: &'static str) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    lower_priority(priority, what);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().recv();
                        match job {
                            // A panicking job is reported to its caller (its result sender
                            // is dropped); the thread carries on.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            // The pool is dropped.
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("{what}: cannot start thread {name}-{i}: {e}");
            }
        }
        LowPriorityPool { tx: Mutex::new(tx) }
    }

    /// Runs `f` on one of the threads; waits (asynchronously) for a free one.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx.lock().send(job).map_err(|_| PoolError::Gone)?;
        result.await.map_err(|_| PoolError::Panicked)
    }
}

/// Lowers the calling thread's CPU and, if asked, I/O priority.
#[allow(unsafe_code)]
fn lower_priority(p: Priority, what: &str) {
    // SAFETY: gettid, setpriority and ioprio_set on the calling thread; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, p.nice) != 0 {
            tracing::debug!(
                "{what}: cannot lower the threads' CPU priority: {}",
                std::io::Error::last_os_error()
            );
        }
        if let Some(level) = p.io_best_effort {
            // IOPRIO_WHO_PROCESS = 1; IOPRIO_CLASS_BE = 2 in the top bits (shift 13).
            let ioprio: libc::c_long = (2 << 13) | libc::c_long::from(level.min(7));
            if libc::syscall(
                libc::SYS_ioprio_set,
                1 as libc::c_long,
                tid as libc::c_long,
                ioprio,
            ) != 0
            {
                tracing::debug!(
                    "{what}: cannot lower the threads' I/O priority: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LOW: Priority = Priority {
        nice: 10,
        io_best_effort: Some(7),
    };

    #[allow(unsafe_code)]
    fn nice_of_this_thread() -> libc::c_int {
        // SAFETY: getpriority on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[allow(unsafe_code)]
    fn io_priority_of_this_thread() -> libc::c_long {
        // SAFETY: ioprio_get (IOPRIO_WHO_PROCESS) of the calling thread.
        unsafe {
            libc::syscall(
                libc::SYS_ioprio_get,
                1 as libc::c_long,
                libc::gettid() as libc::c_long,
            )
        }
    }

    #[tokio::test]
    async fn runs_jobs_on_named_lowered_threads_and_survives_a_panic() {
        let pool = LowPriorityPool::new("test-low", 2, LOW, "test");
        let (name, nice, io) = pool
            .run(|| {
                let name = std::thread::current().name().map(str::to_string);
                (name, nice_of_this_thread(), io_priority_of_this_thread())
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("test-low-"));
        // At least LOW.nice: a test run already niced further stays there.
        assert!(nice >= LOW.nice, "{nice}");
        // Best effort, level 7 (where the kernel lets a thread set it).
        assert!(io == (2 << 13) | 7 || io < 0, "{io}");
        assert_eq!(
            pool.run(|| -> u32 { panic!("a bug") }).await,
            Err(PoolError::Panicked)
        );
        // Both threads still serve.
        let (a, b) = tokio::join!(pool.run(|| 1), pool.run(|| 2));
        assert_eq!((a, b), (Ok(1), Ok(2)));
    }

    #[tokio::test]
    async fn at_most_threads_jobs_run_at_once() {
        let pool = Arc::new(LowPriorityPool::new("test-one", 1, LOW, "test"));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || wait.recv().is_ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| true).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the only thread is busy");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(true));
    }
}
