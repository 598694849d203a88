//! [`UserStore`]: one user's mail, opened once and shared by every session of the user.

use super::*;
use crate::error::StoreError;
use crate::framed;
use crate::index::{self, IndexTree, Txn};
use crate::writer::WriterState;
use crate::{log, pack, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One user's mail. Many sessions of the user share one `UserStore`; its writes go through one
/// group-commit writer; reads never wait for writers.
pub struct UserStore {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) shared: Arc<Shared>,
    pub(crate) tree: sled::Tree,
    /// `tree` with the index changes of the last few group commits not yet applied to it: what
    /// readers and the writer read (see [`index::Overlaid`]).
    pub(crate) ix: index::Overlaid,
    pub(crate) queue: Mutex<crate::writer::Queue>,
    pub(crate) cond: Condvar,
    pub(crate) writer: Mutex<WriterState>,
    pub(super) quota_limits: Mutex<QuotaLimits>,
    pub(crate) watch_tx: tokio::sync::watch::Sender<u64>,
    /// The newest committed records, so a replication peer that is nearly caught up is served
    /// from memory instead of a scan of the log.
    pub(crate) recent: Mutex<Recent>,
    /// Per closed log segment, the highest sequence of each origin in it: lets `records_since`
    /// skip segments a peer already has.
    pub(super) segment_max: Mutex<HashMap<u32, VersionVector>>,
    /// Where recent `records_since` scans stopped (see [`ScanCursor`]): a peer catching up is
    /// served batch after batch from one 64 MiB segment, and without these each batch re-read
    /// and re-checked the segment from its start.
    pub(super) cursors: Mutex<std::collections::VecDeque<super::replica::ScanCursor>>,
}

impl Drop for UserStore {
    /// Applies the index changes still pending, so a clean close leaves sled current (after a
    /// crash the log replay from sled's checkpoint does the same).
    fn drop(&mut self) {
        if let Err(e) = self.ix.flush() {
            tracing::warn!(user = %self.name, error = %e, "index flush at close failed; the next open replays the log");
        }
    }
}

impl UserStore {
    pub(super) fn open(shared: Arc<Shared>, db: &sled::Db, name: &str) -> Result<UserStore> {
        let dir = user_dir(&shared.config.root, name);
        for d in [dir.join("log"), dir.join("packs")] {
            if !d.exists() {
                std::fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
                // Make the new directories themselves durable.
                for p in [
                    Some(d.as_path()),
                    d.parent(),
                    d.parent().and_then(Path::parent),
                ]
                .into_iter()
                .flatten()
                {
                    framed::sync_dir(p)?;
                }
            }
        }
        let tree = db
            .open_tree(format!("user:{name}"))
            .map_err(|e| StoreError::Index(e.to_string()))?;
        let writer = crate::recovery::recover(&shared, &dir, name, &tree)?;
        let ix = index::Overlaid::new(tree.clone());
        let seq = writer.meta.vv.values().sum::<u64>();
        let recent = Mutex::new(Recent::new(
            writer.meta.vv.clone(),
            shared.recent_objects.clone(),
            shared.config.recent_objects_bytes,
        ));
        Ok(UserStore {
            name: name.to_string(),
            dir,
            quota_limits: Mutex::new(shared.config.default_quota),
            shared,
            tree,
            queue: Mutex::new(Default::default()),
            cond: Condvar::new(),
            writer: Mutex::new(writer),
            watch_tx: tokio::sync::watch::Sender::new(seq),
            recent,
            segment_max: Mutex::new(HashMap::new()),
            cursors: Mutex::new(Default::default()),
            ix,
        })
    }

    // ---- mailboxes ----

    // ---- messages: reads ----

    // ---- messages: writes (each returns once durable) ----

    // ---- quota ----

    // ---- notification ----

    // ---- log, for replication and admin ----

    // ---- maintenance ----

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn view(&self) -> Txn<'_> {
        Txn::new(&self.name, &self.ix as &dyn IndexTree)
    }

    pub(crate) fn segment_path(&self, no: u32) -> PathBuf {
        self.dir.join("log").join(format!("{no:08}.{}", log::EXT))
    }

    pub(crate) fn pack_path(&self, no: u32) -> PathBuf {
        self.dir
            .join("packs")
            .join(format!("{no:08}.{}", pack::EXT))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
