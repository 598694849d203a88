//! Runs blocking store calls off the async threads, so one session's slow disk never stalls
//! another session.

/// Runs `f` on tokio's blocking pool and returns its result. A panic inside `f` (a bug) becomes
/// an error rather than taking the session's task down with it.
pub async fn run<T, F>(f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal error: {e}"))
}
