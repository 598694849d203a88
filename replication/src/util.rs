//! Small helpers every part of replication uses: store calls off the async threads, and
//! version-vector dominance.

use crate::error::{ReplError, Result};
use storage::VersionVector;

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, storage::StoreError> + Send + 'static,
) -> Result<T> {
    // Catch-up work yields the CPU and disk to clients (see `background`).
    if crate::background::in_catch_up() {
        return crate::background::run(f)
            .await
            .map_err(ReplError::Other)?
            .map_err(ReplError::Store);
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ReplError::Other(format!("store task failed: {e}")))?
        .map_err(ReplError::Store)
}

/// Dominates: `a` has everything `b` has.
pub fn covers(a: &VersionVector, b: &VersionVector) -> bool {
    b.iter()
        .all(|(o, s)| *s == 0 || a.get(o).is_some_and(|x| x >= s))
}
