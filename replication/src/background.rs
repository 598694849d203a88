//! Catch-up store work on threads of lower priority. Reading a backlog to ship it (records,
//! objects) and applying a peer's catch-up frame here (hashing and compressing its objects,
//! the write) are CPU and disk work that clients should win every contention with: the
//! shipper and receiver mark such work (a task-local flag around the future), and
//! [`crate::replicator::blocking`] then runs its store calls on these threads instead of
//! tokio's blocking pool (which the clients' store calls use) — nice 10 for the CPU (as the
//! node's password-hash workers), I/O best-effort level 7 (effective under BFQ; mq-deadline
//! and `none` do not order within a class; never the idle class, which can starve). A nice-10
//! thread still gets CPU when clients leave some, and a share of it when they do not: the
//! work slows, it does not stop.

use std::future::Future;
use std::sync::mpsc;
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

/// Threads of the pool: catch-up of two users (or peers) proceeds in parallel.
const THREADS: usize = 2;
/// Niceness of the pool's threads (0 = normal, 19 = lowest).
const NICE: libc::c_int = 10;

tokio::task_local! {
    static CATCH_UP: bool;
}

/// Runs `f` with its store calls (through `replicator::blocking`) on the low-priority threads
/// when `low` is true.
pub(crate) async fn catch_up<F: Future>(low: bool, f: F) -> F::Output {
    if low {
        CATCH_UP.scope(true, f).await
    } else {
        f.await
    }
}

/// Whether the current task is doing catch-up work.
pub(crate) fn in_catch_up() -> bool {
    CATCH_UP.try_with(|v| *v).unwrap_or(false)
}

struct Pool {
    tx: parking_lot::Mutex<mpsc::Sender<Job>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(parking_lot::Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("repl-catch-up-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().recv();
                        match job {
                            // A panicking job is reported to its caller (its result sender
                            // is dropped); the thread carries on.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("replication: cannot start catch-up thread {i}: {e}");
            }
        }
        Pool {
            tx: parking_lot::Mutex::new(tx),
        }
    })
}

/// Runs `f` on a low-priority thread; Err if the pool is gone or `f` panicked.
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    pool()
        .tx
        .lock()
        .send(job)
        .map_err(|_| "replication catch-up threads are gone".to_string())?;
    result
        .await
        .map_err(|_| "replication catch-up job failed (panic)".to_string())
}

/// Lowers the calling thread's CPU and I/O priority (Linux: both apply per thread).
fn lower_priority() {
    // SAFETY: gettid, setpriority and ioprio_set on the calling thread; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE) != 0 {
            tracing::debug!(
                "replication: cannot lower the catch-up threads' CPU priority: {}",
                std::io::Error::last_os_error()
            );
        }
        // IOPRIO_WHO_PROCESS = 1; IOPRIO_CLASS_BE = 2 in the top bits (shift 13), level 7.
        let ioprio: libc::c_long = (2 << 13) | 7;
        if libc::syscall(
            libc::SYS_ioprio_set,
            1 as libc::c_long,
            tid as libc::c_long,
            ioprio,
        ) != 0
        {
            tracing::debug!(
                "replication: cannot lower the catch-up threads' I/O priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> libc::c_int {
        // SAFETY: getpriority on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn catch_up_work_runs_on_lower_priority_threads_and_only_when_marked() {
        assert!(!in_catch_up());
        let (marked, nice) = catch_up(true, async {
            let marked = in_catch_up();
            (marked, run(nice_of_this_thread).await.unwrap())
        })
        .await;
        assert!(marked);
        // At least NICE: a test run already niced further stays there.
        assert!(nice >= NICE, "{nice}");
        assert!(!catch_up(false, async { in_catch_up() }).await);
        // A panic is an error for its caller, and the pool keeps working.
        assert!(run(|| panic!("a bug")).await.is_err());
        assert_eq!(run(|| 5).await, Ok(5));
    }
}
