//! Recovery in place after a failed write or fsync (a full disk, an I/O error): the writer
//! stops acknowledging anything, and at a later request (at most once a second) reads what is
//! really on disk, as an open after a crash does, then goes on. Until that succeeds every
//! write is refused with the reason; reads go on meanwhile.

use crate::recent::Recent;
use crate::user_core::{UserCore, WriterState};
use std::time::{Duration, Instant};

/// How long after a failed recovery the next is tried.
const RETRY: Duration = Duration::from_secs(1);

impl UserCore {
    /// Tries to recover `ws` (poisoned); whether it is usable again.
    pub(super) fn recover(&self, ws: &mut WriterState) -> bool {
        let now = Instant::now();
        if ws.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        ws.retry_at = Some(now + RETRY);
        let was = ws.poisoned.clone().unwrap_or_default();
        // The overlay holds only durable commits: into sled first, so recovery replays the log
        // from a checkpoint that covers them. Then recovery reads the files as they are: a
        // failed batch's partial frames are cut at the tail (never acknowledged), complete
        // ones are applied like any record found in the log after a crash.
        let fresh = self.ix.flush().and_then(|()| {
            crate::recovery::recover(&self.shared, &self.dir, &self.name, &self.tree)
        });
        match fresh {
            Ok(fresh) => {
                *ws = fresh;
                // The in-memory tail may lack records recovery found in the log: start anew
                // from what is on disk (a shipper then reads the log).
                *self.recent.lock() = Recent::new(
                    ws.meta.vv.clone(),
                    self.shared.recent_objects.clone(),
                    self.shared.config.recent_objects_bytes,
                );
                self.notify_changed();
                tracing::warn!(user = %self.name, was = %was,
                    "store recovered after a failed write; writes are accepted again");
                true
            }
            Err(e) => {
                self.shared.index_write_failed(&e);
                tracing::warn!(user = %self.name, was = %was, error = %e,
                    "store still failed; writes stay refused (recovery is tried again at a later write)");
                false
            }
        }
    }
}
