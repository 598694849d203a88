//! Catch-up store work on threads of lower priority. Reading a backlog to ship it (records,
//! objects) and applying a peer's catch-up frame here (hashing and compressing its objects,
//! the write) are CPU and disk work that clients should win every contention with: the
//! shipper and receiver mark such work (a task-local flag around the future), and
//! [`crate::util::blocking`] then runs its store calls on these threads instead of
//! tokio's blocking pool (which the clients' store calls use) — nice 10 for the CPU (as the
//! node's password-hash workers), I/O best-effort level 7 (effective under BFQ; mq-deadline
//! and `none` do not order within a class; never the idle class, which can starve). A nice-10
//! thread still gets CPU when clients leave some, and a share of it when they do not: the
//! work slows, it does not stop.

use std::future::Future;
use std::sync::OnceLock;
use storage::low_priority::{LowPriorityPool, PoolError, Priority};

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

fn pool() -> &'static LowPriorityPool {
    static POOL: OnceLock<LowPriorityPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let priority = Priority {
            nice: NICE,
            io_best_effort: Some(7),
        };
        LowPriorityPool::new("repl-catch-up", THREADS, priority, "replication: catch-up")
    })
}

/// Runs `f` on a low-priority thread; Err if the pool is gone or `f` panicked.
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    pool().run(f).await.map_err(|e| match e {
        PoolError::Gone => "replication catch-up threads are gone".to_string(),
        PoolError::Panicked => "replication catch-up job failed (panic)".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
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
