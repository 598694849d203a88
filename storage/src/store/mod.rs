//! The public face of the store: [`Store`] (one per node) hands out [`UserStore`]s (one per user).
//!
//! Every method is synchronous and may block on disk I/O and fsync: async callers run them with
//! `tokio::task::spawn_blocking`. Write methods return only once the change is durable.
//!
//! Writes go through a per-user group commit ([`crate::writer`]): concurrent writers of one user
//! share one log fsync; different users share no lock and no fsync.

use crate::error::StoreError;
use crate::framed;
use crate::hlc::{Hlc, SystemClock, WallClock};
use crate::types::*;
use crate::writer::Req;
use crate::{names, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

mod mailboxes;
mod maintenance;
mod messages;
mod recent;
mod replica;
mod user;

pub use crate::index::UidConflict;
pub use maintenance::PurgeReport;
pub(crate) use messages::usage;
pub use messages::{NewMessage, PARSE_FACTS_AT_DELIVERY};
pub(crate) use recent::Recent;
pub use recent::RECENT_OBJECTS_TOTAL;
pub use replica::ApplyOutcome;
pub use user::UserStore;

/// Settings of the store (`[storage]` in the configuration).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Root directory; each user lives under `<root>/users/<hashed-prefix>/<user>/`.
    pub root: PathBuf,
    /// This node's id: stamped on every record it originates and into every GUID it makes.
    pub node_id: NodeId,
    /// Largest message accepted, bytes.
    pub max_message_size: u64,
    /// How far the clock may run ahead of the wall clock because of a peer (ms).
    pub max_clock_drift_ms: u64,
    /// Default quota for users that have no quota rule of their own.
    pub default_quota: QuotaLimits,
    /// Window in which a retried delivery with the same key is recognised (seconds).
    pub delivery_dedupe_window_secs: u64,
    /// Bytes of just-committed objects kept in memory, all users together, for replication
    /// shippers to send without reading them back (see [`Recent`]); 0 on a node without peers.
    pub recent_objects_bytes: usize,
}

impl StoreConfig {
    /// Defaults for a store at `root` (node 1, 50 MiB messages, 1 h dedupe window).
    pub fn new(root: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            root: root.into(),
            node_id: 1,
            max_message_size: 50 << 20,
            max_clock_drift_ms: 60_000,
            default_quota: QuotaLimits::default(),
            delivery_dedupe_window_secs: 3600,
            recent_objects_bytes: RECENT_OBJECTS_TOTAL,
        }
    }
}

/// Counters for metrics (plain atomics).
#[derive(Debug, Default)]
pub struct Counters {
    pub appends: AtomicU64,
    pub commits: AtomicU64,
    pub records: AtomicU64,
}

/// What every user of one node shares: settings, the clock, counters.
pub(crate) struct Shared {
    pub config: StoreConfig,
    pub hlc: Hlc,
    pub counters: Counters,
    guid_counter: AtomicU16,
    /// Bytes of objects held by all users' [`Recent`] tails.
    pub(crate) recent_objects: Arc<std::sync::atomic::AtomicUsize>,
}

impl Shared {
    /// A new GUID: the HLC time (never repeats on this node, even when the wall clock steps
    /// back) in 112 bits, the node id's low 16 bits... and 16 counter bits as a guard against a
    /// node id restored from a backup. Layout: wall ms (48) | logical (32) | node (32) | counter (16).
    pub fn new_guid(&self) -> Guid {
        let t = self.hlc.now();
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&t.wall_ms.to_be_bytes()[2..]);
        b[6..10].copy_from_slice(&t.logical.to_be_bytes());
        b[10..14].copy_from_slice(&t.node.to_be_bytes());
        let c = self.guid_counter.fetch_add(1, Ordering::Relaxed);
        b[14..].copy_from_slice(&c.to_be_bytes());
        Guid(b)
    }
}

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
            shared: Arc::new(Shared {
                config,
                hlc,
                counters: Counters::default(),
                guid_counter: AtomicU16::new(rand::random()),
                recent_objects: Default::default(),
            }),
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
