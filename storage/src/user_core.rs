//! [`UserCore`]: what one user's writer, purge, recovery and public facade share, and
//! [`WriterState`]: the files the writer appends to, with their checkpoint.
//!
//! The layer under the facade ([`crate::store::UserStore`]): the writer ([`crate::writer`]), purge
//! ([`crate::purge`]) and recovery ([`crate::recovery`]) work on these types and never import the
//! facade; the facade owns a `UserCore` and a [`crate::writer::Writer`] and delegates to them.

use crate::error::Result;
use crate::framed::FramedWriter;
use crate::index::{self, IndexTree, Meta, Txn};
use crate::recent::Recent;
use crate::shared::Shared;
use crate::types::*;
use crate::{log, pack};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;

/// One user's state as every layer sees it: who and where the user is, the node's shared
/// settings and clock, the index (sled, and the overlay readers and the writer read), the
/// in-memory tail of the log, the change notifier and the quota.
pub(crate) struct UserCore {
    pub name: String,
    pub dir: PathBuf,
    pub shared: Arc<Shared>,
    /// The user's sled tree: what recovery, rebuild and purge read and write directly.
    pub tree: sled::Tree,
    /// `tree` with the index changes of the last few group commits not yet applied to it: what
    /// readers and the writer read (see [`index::Overlaid`]).
    pub ix: index::Overlaid,
    /// The newest committed records (and small objects), so a replication peer that is nearly
    /// caught up is served from memory instead of a scan of the log.
    pub recent: Mutex<Recent>,
    /// Ticks after every durable change (see `UserStore::watch`).
    pub watch_tx: tokio::sync::watch::Sender<u64>,
    /// This node's committed writes no peer is known to hold yet (`replicated` durability).
    pub unconfirmed: crate::unconfirmed::Unconfirmed,
    quota_limits: Mutex<QuotaLimits>,
}

/// What only the writer's leader (or purge and rebuild, holding the same lock) touches: the open
/// log segment and pack, and the checkpoint. Made by recovery when the user is opened.
pub(crate) struct WriterState {
    pub log: FramedWriter,
    pub pack: FramedWriter,
    pub meta: Meta,
    /// Set after a failed write or fsync: the on-disk state is unknown until recovery has read
    /// what is really there, so nothing more is acknowledged until then (the writer retries
    /// recovery at a later request: `writer::recover`).
    pub poisoned: Option<String>,
    /// When the writer may try recovery again after a failed attempt (monotonic clock).
    pub retry_at: Option<std::time::Instant>,
}

impl UserCore {
    /// The core of a user just recovered: `ws` is what recovery opened.
    pub fn new(
        shared: Arc<Shared>,
        name: &str,
        dir: PathBuf,
        tree: sled::Tree,
        ws: &WriterState,
    ) -> UserCore {
        let seq = ws.meta.vv.values().sum::<u64>();
        let recent = Mutex::new(Recent::new(
            ws.meta.vv.clone(),
            shared.recent_objects.clone(),
            shared.config.recent_objects_bytes,
        ));
        UserCore {
            name: name.to_string(),
            dir,
            quota_limits: Mutex::new(shared.config.default_quota),
            shared,
            ix: index::Overlaid::new(tree.clone()),
            tree,
            recent,
            watch_tx: tokio::sync::watch::Sender::new(seq),
            unconfirmed: Default::default(),
        }
    }

    /// A read view of the index (committed changes, the overlay's included).
    pub fn view(&self) -> Txn<'_> {
        Txn::new(&self.name, &self.ix as &dyn IndexTree)
    }

    /// Wakes every watcher: a durable change was made.
    pub fn notify_changed(&self) {
        self.watch_tx.send_modify(|v| *v += 1);
    }

    pub fn segment_path(&self, no: u32) -> PathBuf {
        self.dir.join("log").join(format!("{no:08}.{}", log::EXT))
    }

    pub fn pack_path(&self, no: u32) -> PathBuf {
        self.dir
            .join("packs")
            .join(format!("{no:08}.{}", pack::EXT))
    }

    pub fn quota_limits(&self) -> QuotaLimits {
        *self.quota_limits.lock()
    }

    /// Sets this user's limits (from the userdb's quota_rule); kept in memory, not logged.
    pub fn set_quota_limits(&self, limits: QuotaLimits) {
        *self.quota_limits.lock() = limits;
    }
}

impl Drop for UserCore {
    /// Applies the index changes still pending, so a clean close leaves sled current (after a
    /// crash the log replay from sled's checkpoint does the same).
    fn drop(&mut self) {
        if let Err(e) = self.ix.flush() {
            tracing::warn!(user = %self.name, error = %e, "index flush at close failed; the next open replays the log");
        }
    }
}

/// Bytes and messages in all mailboxes.
pub(crate) fn usage(v: &Txn) -> Result<(u64, u64)> {
    Ok(v.mailboxes()?
        .iter()
        .fold((0, 0), |(b, m), mb| (b + mb.size, m + mb.exists as u64)))
}
