//! A small runtime of its own for a network driver (SQL, LDAP): its pool's connections live
//! there whatever thread asks, whether a session's blocking lookup or a CLI command with no
//! runtime at all, and a lookup waits on it from the blocking pool.

use std::future::Future;
use std::time::Duration;

pub struct IoRuntime {
    rt: Option<tokio::runtime::Runtime>,
}

impl IoRuntime {
    pub fn new(name: &str) -> Result<IoRuntime, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the {name} runtime: {e}"))?;
        Ok(IoRuntime { rt: Some(rt) })
    }

    pub fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.rt.as_ref().map(|r| r.handle())
    }

    /// Runs `f` on this runtime and waits for it, at most `timeout`. Blocking: call from the
    /// blocking pool or a thread without a runtime, never from an async task.
    pub fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let handle = self.handle().ok_or("driver runtime is gone")?;
        let task = handle.spawn(async move {
            tokio::time::timeout(timeout, f)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
        });
        futures::executor::block_on(task).map_err(|e| format!("driver task failed: {e}"))?
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; this one is not waited for.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
