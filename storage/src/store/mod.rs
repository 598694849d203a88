//! The public face of the store: [`Store`] (one per node) hands out [`UserStore`]s (one per user).
//!
//! Every method is synchronous and may block on disk I/O and fsync: async callers run them with
//! `tokio::task::spawn_blocking`. Write methods return only once the change is durable.
//!
//! Writes go through a per-user group commit (`crate::writer`): concurrent writers of one user
//! share one log fsync; different users share no lock and no fsync.
//!
//! The top of the store's layers; below it, and never importing it:
//!
//! | module | holds |
//! |---|---|
//! | `shared` | what all users of a node share: settings, clock, counters |
//! | `user_core` | one user's state shared by the layers below, and the writer's files |
//! | `writer` | the group commit: plans requests, writes them durably, applies them |
//! | `purge`, `recovery` | reclaiming space; opening a user after a crash |
//!
//! This module's files are the facade's parts: `user.rs` (the struct, opening), `mailboxes.rs`,
//! `messages.rs`, `headers.rs` (the header cache), `replica.rs` (what replication uses), `attributes.rs` (METADATA and ACL entries), `align_expunged.rs` (tombstones for the
//! merge resolver), `maintenance.rs` (rebuild, purge, dump, verify).

use crate::error::StoreError;
use crate::framed;
use crate::hlc::{Hlc, SystemClock, WallClock};
use crate::shared::Shared;
use crate::types::*;
use crate::writer::Req;
use crate::{names, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

mod align_expunged;
mod attributes;
mod headers;
mod import;
mod mailboxes;
mod maintenance;
mod messages;
mod replica;
mod user;
mod visibility;

pub use crate::index::UidConflict;
pub use crate::purge::PurgeReport;
pub use crate::shared::{Counters, StoreConfig, RECENT_OBJECTS_TOTAL};
pub use crate::writer::ApplyOutcome;
pub use align_expunged::Tombstone;
pub use headers::MAX_CACHED_HEADER;
pub use import::ImportMessage;
pub use messages::{NewMessage, PARSE_FACTS_AT_DELIVERY};
pub use user::UserStore;

/// A user's store once opened; the slot's lock serialises the user's first open.
type UserSlot = Arc<Mutex<Option<Arc<UserStore>>>>;

/// One node's store for many users. Cheap to share (`Arc`).
pub struct Store {
    shared: Arc<Shared>,
    db: sled::Db,
    users: Mutex<HashMap<String, UserSlot>>,
    index_recovery: Option<String>,
}

fn open_sled(path: &Path) -> std::result::Result<sled::Db, String> {
    // sled may panic on some corrupt files instead of returning an error: contain it.
    let p = path.to_path_buf();
    // A modest page cache: the index is small beside the mail, and one process serves many users.
    let open = move || sled::Config::new().path(p).cache_capacity(128 << 20).open();
    match std::panic::catch_unwind(open) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("sled panicked while opening the index".into()),
    }
}

impl Store {
    /// Opens (creating if needed) the store at `config.root`.
    pub fn open(config: StoreConfig) -> Result<Arc<Store>> {
        Store::open_with_clock(config, Arc::new(SystemClock))
    }
    /// Same, with an injected wall clock (tests step it).
    pub fn open_with_clock(config: StoreConfig, clock: Arc<dyn WallClock>) -> Result<Arc<Store>> {
        let users_dir = config.root.join("users");
        std::fs::create_dir_all(&users_dir).map_err(|e| StoreError::io(&users_dir, e))?;
        let index_dir = config.root.join("index");
        let mut index_recovery = None;
        let db = match open_sled(&index_dir) {
            Ok(db) => db,
            Err(what) => {
                // The index is a view of the logs: set the broken one aside and rebuild every
                // user from their log as they are opened. Nothing is lost.
                let aside = config
                    .root
                    .join(format!("index.corrupt-{}", clock.now_ms()));
                let msg = format!(
                    "index {} is unreadable ({what}); moved to {} and rebuilding from the logs",
                    index_dir.display(),
                    aside.display()
                );
                tracing::error!("{msg}");
                std::fs::rename(&index_dir, &aside).map_err(|e| StoreError::io(&index_dir, e))?;
                index_recovery = Some(msg);
                open_sled(&index_dir).map_err(StoreError::Index)?
            }
        };
        let hlc = Hlc::new(config.node_id, clock, config.max_clock_drift_ms);
        Ok(Arc::new(Store {
            shared: Arc::new(Shared::new(config, hlc)),
            db,
            users: Mutex::new(HashMap::new()),
            index_recovery,
        }))
    }
    pub fn node_id(&self) -> NodeId {
        self.shared.config.node_id
    }
    pub fn clock(&self) -> &crate::hlc::Hlc {
        &self.shared.hlc
    }
    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }
    /// fsync/fdatasync calls made by stores in this process.
    pub fn fsyncs(&self) -> u64 {
        framed::FSYNCS.load(Ordering::Relaxed)
    }
    /// Why this node's index can no longer be written (see `Shared::index_failed`): the node
    /// must be restarted; `/health` reports it, so keepalived moves the service address away.
    pub fn index_failure(&self) -> Option<String> {
        self.shared.index_failed.lock().clone()
    }
    /// Set when the index was unreadable at open and is being rebuilt from the logs.
    pub fn index_recovery(&self) -> Option<&str> {
        self.index_recovery.as_deref()
    }
    /// Flushes the index to disk (shutdown; never needed for durability).
    pub fn flush_index(&self) -> Result<()> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| StoreError::Index(e.to_string()))
    }

    /// Opens a user's store, creating it with the default mailboxes (INBOX, Drafts, Sent,
    /// Trash, Junk, Archive) on first use. Recovers the user's log and index after a crash.
    pub fn user(&self, name: &str) -> Result<Arc<UserStore>> {
        names::validate_user(name)?;
        // One slot per user: concurrent first opens of one user wait for one initialisation;
        // other users are not held up.
        let slot = self
            .users
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock();
        if let Some(u) = slot.as_ref() {
            return Ok(u.clone());
        }
        let u = Arc::new(UserStore::open(self.shared.clone(), &self.db, name)?);
        u.submit(Req::InitDefaults)?;
        *slot = Some(u.clone());
        Ok(u)
    }
    /// Users that exist on disk.
    pub fn list_users(&self) -> Result<Vec<String>> {
        let root = self.shared.config.root.join("users");
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&root).map_err(|e| StoreError::io(&root, e))? {
            let prefix = prefix.map_err(|e| StoreError::io(&root, e))?;
            if !prefix.path().is_dir() {
                continue;
            }
            let rd =
                std::fs::read_dir(prefix.path()).map_err(|e| StoreError::io(prefix.path(), e))?;
            for u in rd {
                let u = u.map_err(|e| StoreError::io(prefix.path(), e))?;
                if let Some(n) = u.file_name().to_str() {
                    if names::validate_user(n).is_ok() {
                        out.push(n.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

pub fn user_dir(root: &Path, name: &str) -> PathBuf {
    let h = blake3::hash(name.as_bytes());
    root.join("users")
        .join(format!("{:02x}", h.as_bytes()[0]))
        .join(name)
}

pub(crate) fn unexpected() -> StoreError {
    StoreError::Other("internal: unexpected writer reply".into())
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<Store>();
    f::<UserStore>();
}
