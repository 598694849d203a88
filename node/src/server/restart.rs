//! The node's way back from a failed index: sled cannot go on after its own write error (a
//! disk filled by someone else), and the index is only a view of the logs, so the node
//! restarts itself (the same pid, the same arguments) once the disk has room again; the start
//! replays the log, catches up with the peers, and serves. Without this a node whose disk was
//! full for a moment would stay out of service until someone restarted it.

use std::os::unix::process::CommandExt as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Free space the restart waits for beyond `[storage] min_free_space` (writes stop there
/// anyway): a restart into a disk that fills again at once would only fail again.
const HEADROOM_PERCENT: u64 = 25;

pub async fn once_the_disk_has_room(store: &storage::Store, shutdown: &CancellationToken) {
    let root = store.config().root.clone();
    let min = store.config().min_free_bytes.max(1);
    let needed = min.saturating_add(min / 100 * HEADROOM_PERCENT);
    let mut logged = false;
    loop {
        let free = storage::disk::available(&root);
        if free.is_some_and(|f| f >= needed) {
            break;
        }
        if !logged {
            tracing::warn!(
                free = free.unwrap_or(0),
                needed,
                "node: waiting for free space on {} before restarting",
                root.display()
            );
            logged = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tracing::warn!(
        "node: the disk has room again: restarting the node in place to reopen the index"
    );
    let exe = binary_path();
    // exec only returns on failure; listeners and files close on exec (std opens them
    // O_CLOEXEC), so the new image binds the same ports.
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!(
        "node: cannot restart in place ({}: {err}); restart the node by hand",
        exe.display()
    );
}

/// This binary's path. When it was replaced on disk since the start (an upgrade, a rebuild),
/// Linux names the old one "PATH (deleted)": the new binary at PATH is the one to start.
fn binary_path() -> std::path::PathBuf {
    match std::env::current_exe() {
        Ok(p) => {
            let s = p.to_string_lossy();
            match s.strip_suffix(" (deleted)") {
                Some(live) => live.into(),
                None => p,
            }
        }
        Err(_) => "/proc/self/exe".into(),
    }
}
