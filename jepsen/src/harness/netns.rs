//! Threads inside the lab's network namespaces: setns moves only the calling thread, so a
//! client thread's sockets live in the client (or a node's) namespace while the rest of the
//! harness stays where it started.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::thread::JoinHandle;

pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    let path = PathBuf::from("/run/netns").join(ns);
    let h = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            enter(&path)?;
            Ok(f())
        })
        .context("cannot start a thread")?;
    Ok(h)
}

#[allow(unsafe_code)]
fn enter(path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET changes only this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!(
            "setns {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Runs `f` in namespace `ns` and waits for it.
pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    match spawn_in(ns, "netns-call", f)?.join() {
        Ok(r) => r,
        Err(_) => bail!("a thread in {ns} panicked"),
    }
}
