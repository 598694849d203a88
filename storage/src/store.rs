//! The public face of the store: [`Store`] (one per node) hands out [`UserStore`]s (one per user).
//!
//! Every method is synchronous and may block on disk I/O and fsync: async callers run them with
//! `tokio::task::spawn_blocking`. Write methods return only once the change is durable.
//!
//! Writes go through a per-user group commit ([`crate::writer`]): concurrent writers of one user
//! share one log fsync; different users share no lock and no fsync.

use crate::error::StoreError;
use crate::framed::{self, HEADER_LEN};
use crate::hlc::{Hlc, SystemClock, WallClock};
use crate::index::{self, IndexTree, ObjLoc, Txn};
use crate::mime::MessageFacts;
use crate::record::Record;
use crate::types::*;
use crate::writer::{Reply, Req, WriterState};
use crate::{log, names, pack, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::index::UidConflict;

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
    quota_limits: Mutex<QuotaLimits>,
    pub(crate) watch_tx: tokio::sync::watch::Sender<u64>,
    /// The newest committed records, so a replication peer that is nearly caught up is served
    /// from memory instead of a scan of the log.
    pub(crate) recent: Mutex<Recent>,
    /// Per closed log segment, the highest sequence of each origin in it: lets `records_since`
    /// skip segments a peer already has.
    segment_max: Mutex<HashMap<u32, VersionVector>>,
    /// Where recent `records_since` scans stopped (see [`ScanCursor`]): a peer catching up is
    /// served batch after batch from one 64 MiB segment, and without these each batch re-read
    /// and re-checked the segment from its start.
    cursors: Mutex<std::collections::VecDeque<ScanCursor>>,
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

/// Every record before `at` is covered by `vv` (the peer had it, or the scan returned it), and
/// `at` is where the record `last` (the scan's last returned one) starts: a later scan whose
/// version vector covers `vv` starts there, after checking that `last` is still at `at` (a
/// purge rewrites segments, which moves every offset).
#[derive(Clone, Debug)]
struct ScanCursor {
    vv: VersionVector,
    at: log::Pos,
    last: (NodeId, u64),
}

/// Cursors kept per user: a few peers and `node sync` at once.
const SCAN_CURSORS: usize = 8;

/// A bounded tail of the log in memory. Every record not held here has, for its origin, a
/// sequence number at most `base[origin]`.
///
/// It also holds the stored (compressed) form of the newest small objects: a replication
/// shipper sends a just-delivered message right after its commit, and without these it read
/// the object back from the log (index lookup, pread, frame check) on every delivery. Bounded
/// per user and, across all users, by [`RECENT_OBJECTS_TOTAL`]; a miss reads the disk.
pub(crate) struct Recent {
    base: VersionVector,
    records: std::collections::VecDeque<Record>,
    objects: std::collections::VecDeque<pack::Prepared>,
    object_bytes: usize,
    /// Bytes held by every user's `objects` (shared with all users of the store).
    total: Arc<std::sync::atomic::AtomicUsize>,
    /// The bound on `total` ([`StoreConfig::recent_objects_bytes`]).
    total_max: usize,
}

const RECENT_MAX: usize = 1024;
/// Per user: the newest objects of about one replication batch.
const RECENT_OBJECTS_MAX: usize = 256;
const RECENT_OBJECT_BYTES_MAX: usize = 1 << 20;
/// A larger object is read from disk when shipped (its copy would cost more than the read).
const RECENT_OBJECT_MAX: usize = 64 << 10;
/// Default bound for all users together ([`StoreConfig::recent_objects_bytes`]): an idle user's
/// few objects stay until it is closed, so a busy node's many users are bounded here rather
/// than by each user's cap. A shipper sends an object milliseconds after its commit, so a few
/// MiB serve the live stream.
pub const RECENT_OBJECTS_TOTAL: usize = 16 << 20;

impl Recent {
    pub(crate) fn push(&mut self, recs: &[Record]) {
        for r in recs {
            self.records.push_back(r.clone());
        }
        while self.records.len() > RECENT_MAX {
            if let Some(r) = self.records.pop_front() {
                let e = self.base.entry(r.origin).or_insert(0);
                *e = (*e).max(r.seq);
            }
        }
    }
    /// Keeps the stored form of a just-committed object (only once it is durable).
    pub(crate) fn push_object(&mut self, o: &pack::Prepared) {
        let len = o.compressed.len();
        if len > RECENT_OBJECT_MAX || self.total.load(Ordering::Relaxed) + len > self.total_max {
            return;
        }
        self.objects.push_back(o.clone());
        self.object_bytes += len;
        self.total.fetch_add(len, Ordering::Relaxed);
        while self.objects.len() > RECENT_OBJECTS_MAX || self.object_bytes > RECENT_OBJECT_BYTES_MAX
        {
            self.pop_object();
        }
    }
    fn pop_object(&mut self) {
        if let Some(o) = self.objects.pop_front() {
            self.object_bytes -= o.compressed.len();
            self.total.fetch_sub(o.compressed.len(), Ordering::Relaxed);
        }
    }
    fn object(&self, id: &ObjectId) -> Option<pack::Prepared> {
        self.objects.iter().rev().find(|o| o.id == *id).cloned()
    }
    /// A purge dropped objects: none may be served from here any more.
    pub(crate) fn forget_objects(&mut self) {
        while !self.objects.is_empty() {
            self.pop_object();
        }
    }
    /// What `have` lacks, if all of it is held here.
    fn since(&self, have: &VersionVector, limit: usize) -> Option<Vec<Record>> {
        let covered = self
            .base
            .iter()
            .all(|(o, s)| have.get(o).copied().unwrap_or(0) >= *s);
        covered.then(|| {
            self.records
                .iter()
                .filter(|r| r.seq > have.get(&r.origin).copied().unwrap_or(0))
                .take(limit)
                .cloned()
                .collect()
        })
    }
}

impl Drop for Recent {
    fn drop(&mut self) {
        self.forget_objects();
    }
}

/// A raw message to store, with what the client said about it.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    /// Raw RFC 5322 message; stored as given (callers convert bare LF to CRLF before).
    pub raw: &'a [u8],
    pub flags: Flags,
    /// Seconds since the epoch and UTC offset in minutes; None = now.
    pub internal_date: Option<(i64, i32)>,
    /// For LMTP exactly-once: a key (hash of message-id, sender, recipient, body) that makes a
    /// retried delivery within the dedupe window return the first outcome instead of storing again.
    pub delivery_key: Option<[u8; 32]>,
}

/// The result of [`UserStore::apply_remote`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Records applied (not skipped as already present).
    pub applied: usize,
    /// Remote entries whose UID was taken here by another message; they are durable and pending
    /// until [`UserStore::resolve_conflicts`].
    pub conflicts: Vec<UidConflict>,
}

/// Parse MIME facts at delivery, on the writer's own thread before the group commit (so writers
/// parse in parallel), and cache them beside the message. If the parser fails, `facts()` parses
/// on first use instead.
pub const PARSE_FACTS_AT_DELIVERY: bool = true;

impl UserStore {
    fn open(shared: Arc<Shared>, db: &sled::Db, name: &str) -> Result<UserStore> {
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
        let recent = Mutex::new(Recent {
            base: writer.meta.vv.clone(),
            records: Default::default(),
            objects: Default::default(),
            object_bytes: 0,
            total: shared.recent_objects.clone(),
            total_max: shared.config.recent_objects_bytes,
        });
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

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn view(&self) -> Txn<'_> {
        Txn::new(&self.name, &self.ix as &dyn IndexTree)
    }

    fn mailbox_rec(&self, name: &str) -> Result<index::MailboxRec> {
        let canon = names::canonical(name);
        self.view()
            .mailbox_by_name(&canon)?
            .ok_or(StoreError::NoSuchMailbox(name.to_string()))
    }

    // ---- mailboxes ----
    /// All mailboxes, sorted by name.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxInfo>> {
        let v = self.view();
        let mut out = Vec::new();
        for mb in v.mailboxes()? {
            let sub = v.get_raw(&index::k_sub(&mb.name))?.is_some();
            out.push(mb.info(sub));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    /// Looks a mailbox up by name ("inbox" in any case is INBOX).
    pub fn mailbox(&self, name: &str) -> Result<MailboxInfo> {
        let mb = self.mailbox_rec(name)?;
        let sub = self.view().get_raw(&index::k_sub(&mb.name))?.is_some();
        Ok(mb.info(sub))
    }
    pub fn create_mailbox(
        &self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxInfo> {
        match self.submit(Req::Create {
            name: name.to_string(),
            special_use,
        })? {
            Reply::Mailbox(m) => Ok(m),
            _ => Err(unexpected()),
        }
    }
    /// Deletes a mailbox and expunges its messages. INBOX cannot be deleted.
    pub fn delete_mailbox(&self, name: &str) -> Result<()> {
        self.submit(Req::Delete {
            name: name.to_string(),
        })
        .map(|_| ())
    }
    /// Renames a mailbox and its children. Renaming INBOX moves its messages to the new
    /// mailbox and leaves INBOX empty (RFC 9051 6.3.6).
    pub fn rename_mailbox(&self, from: &str, to: &str) -> Result<()> {
        self.submit(Req::Rename {
            from: from.to_string(),
            to: to.to_string(),
        })
        .map(|_| ())
    }
    /// Subscriptions are by name and may name a mailbox that does not exist.
    pub fn subscribe(&self, name: &str) -> Result<()> {
        self.submit(Req::Subscribe {
            name: name.to_string(),
            on: true,
        })
        .map(|_| ())
    }
    pub fn unsubscribe(&self, name: &str) -> Result<()> {
        self.submit(Req::Subscribe {
            name: name.to_string(),
            on: false,
        })
        .map(|_| ())
    }
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(self
            .view()
            .scan_raw(b"s")?
            .into_iter()
            .filter_map(|(k, _)| String::from_utf8(k[1..].to_vec()).ok())
            .collect())
    }

    // ---- messages: reads ----
    /// Every message of a mailbox in UID order (the SELECT snapshot).
    pub fn messages(&self, mailbox: &str) -> Result<Vec<MessageMeta>> {
        let mb = self.mailbox_rec(mailbox)?;
        Ok(self
            .view()
            .messages(&mb.id)?
            .into_iter()
            .map(|m| m.meta)
            .collect())
    }
    /// Messages changed (added or flags) and UIDs expunged after `modseq`.
    pub fn changes_since(&self, mailbox: &str, modseq: u64) -> Result<MailboxChanges> {
        let mb = self.mailbox_rec(mailbox)?;
        let v = self.view();
        // Range scans over the modseq-ordered keys: the cost follows the changes, not the size
        // of the mailbox. Keys are [tag][mailbox 16][modseq 8][uid 4].
        let since = |prefix: Vec<u8>| -> Result<Vec<u32>> {
            let start = [&prefix[..], &modseq.saturating_add(1).to_be_bytes()].concat();
            let mut end = prefix.clone();
            end.extend_from_slice(&[0xff; 12]);
            self.ix
                .range_keys(&start, &end)?
                .into_iter()
                .map(|k| {
                    k.get(25..29)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_be_bytes)
                        .ok_or_else(|| {
                            StoreError::Index(format!("user {}: bad modseq key", self.name))
                        })
                })
                .collect()
        };
        let mut changed = Vec::new();
        for uid in since(index::k_changed_prefix(&mb.id))? {
            if let Some(m) = v.msg(&mb.id, uid)? {
                if m.meta.modseq > modseq {
                    changed.push(m.meta);
                }
            }
        }
        changed.sort_by_key(|m| m.uid);
        let mut expunged = since(index::k_expunged_prefix(&mb.id))?;
        expunged.sort_unstable();
        expunged.dedup();
        Ok(MailboxChanges {
            changed,
            expunged,
            highestmodseq: mb.highestmodseq,
            uidnext: mb.uidnext,
        })
    }
    /// The raw message (decompressed object), byte for byte as stored.
    pub fn read_message(&self, object: &ObjectId) -> Result<Vec<u8>> {
        let lookup = || -> Result<ObjLoc> {
            self.view()
                .get(&index::k_object(object))?
                .ok_or_else(|| StoreError::Other(format!("object {} not found", object.to_hex())))
        };
        let loc = lookup()?;
        match self.read_at(&loc, object) {
            // A purge may have moved the object between our lookup and our read: look again.
            Err(e) => match lookup() {
                Ok(now) if now != loc => self.read_at(&now, object),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    fn read_at(&self, loc: &ObjLoc, object: &ObjectId) -> Result<Vec<u8>> {
        if loc.in_log {
            let path = self.segment_path(loc.pack);
            pack::read_object(&path, &log::KIND, 1, &self.name, loc.offset, object)
        } else {
            let path = self.pack_path(loc.pack);
            pack::read_object(&path, &pack::KIND, 0, &self.name, loc.offset, object)
        }
    }
    /// The object as stored (id, raw length, zstd body), not decompressed: what is shipped to a
    /// peer, which verifies it ([`pack::verify`]) and stores the body as it came.
    pub fn read_object_stored(&self, object: &ObjectId) -> Result<pack::Prepared> {
        if let Some(o) = self.recent.lock().object(object) {
            return Ok(o);
        }
        let lookup = || -> Result<ObjLoc> {
            self.view()
                .get(&index::k_object(object))?
                .ok_or_else(|| StoreError::Other(format!("object {} not found", object.to_hex())))
        };
        let loc = lookup()?;
        match self.read_stored_at(&loc, object) {
            // A purge may have moved the object between our lookup and our read: look again.
            Err(e) => match lookup() {
                Ok(now) if now != loc => self.read_stored_at(&now, object),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    fn read_stored_at(&self, loc: &ObjLoc, object: &ObjectId) -> Result<pack::Prepared> {
        if loc.in_log {
            let path = self.segment_path(loc.pack);
            pack::read_stored(&path, &log::KIND, 1, &self.name, loc.offset, object)
        } else {
            let path = self.pack_path(loc.pack);
            pack::read_stored(&path, &pack::KIND, 0, &self.name, loc.offset, object)
        }
    }
    /// Envelope, body structure and part offsets, parsed once and cached.
    pub fn facts(&self, object: &ObjectId) -> Result<Arc<MessageFacts>> {
        let key = index::k_facts(object);
        if let Some(f) = self.view().get::<MessageFacts>(&key)? {
            return Ok(Arc::new(f));
        }
        let raw = self.read_message(object)?;
        let facts = std::panic::catch_unwind(|| crate::mime::parse_facts(&raw))
            .map_err(|_| StoreError::Other("MIME parser failed on this message".into()))?;
        // A cache keyed by an immutable object: written outside the log, never on the fsync path.
        self.tree
            .insert(key, index::encode(&facts))
            .map_err(|e| StoreError::Index(e.to_string()))?;
        Ok(Arc::new(facts))
    }

    // ---- messages: writes (each returns once durable) ----
    pub fn append(&self, mailbox: &str, msg: NewMessage<'_>) -> Result<AppendOutcome> {
        let limit = self.shared.config.max_message_size;
        if msg.raw.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                size: msg.raw.len() as u64,
                limit,
            });
        }
        // Hash, compress (and parse) here, in parallel with other writers, not in the leader.
        let object = pack::prepare(msg.raw)?;
        let facts = if PARSE_FACTS_AT_DELIVERY {
            std::panic::catch_unwind(|| crate::mime::parse_facts(msg.raw))
                .ok()
                .map(Box::new)
        } else {
            None
        };
        let date = msg
            .internal_date
            .unwrap_or(((self.shared.hlc.wall_ms() / 1000) as i64, 0));
        match self.submit(Req::Append(crate::writer::AppendReq {
            mailbox: mailbox.to_string(),
            object,
            facts,
            flags: msg.flags,
            internal_date: date,
            delivery_key: msg.delivery_key,
        }))? {
            Reply::Append(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }
    pub fn copy(&self, from: &str, uids: &[u32], to: &str) -> Result<CopyOutcome> {
        self.copy_or_move(from, uids, to, false)
    }
    /// COPY then EXPUNGE of the source, as one change.
    pub fn move_messages(&self, from: &str, uids: &[u32], to: &str) -> Result<CopyOutcome> {
        self.copy_or_move(from, uids, to, true)
    }
    fn copy_or_move(&self, from: &str, uids: &[u32], to: &str, mv: bool) -> Result<CopyOutcome> {
        match self.submit(Req::Copy {
            from: from.to_string(),
            uids: uids.to_vec(),
            to: to.to_string(),
            mv,
        })? {
            Reply::Copy(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }
    pub fn store_flags(
        &self,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreOutcome> {
        match self.submit(Req::Flags {
            mailbox: mailbox.to_string(),
            uids: uids.to_vec(),
            mode,
            flags: flags.clone(),
            unchanged_since,
        })? {
            Reply::Store(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }
    /// Expunges the given UIDs (those that exist); returns the UIDs expunged, ascending.
    pub fn expunge(&self, mailbox: &str, uids: &[u32]) -> Result<Vec<u32>> {
        match self.submit(Req::Expunge {
            mailbox: mailbox.to_string(),
            uids: uids.to_vec(),
        })? {
            Reply::Expunged(u) => Ok(u),
            _ => Err(unexpected()),
        }
    }

    // ---- quota ----
    pub fn quota(&self) -> Result<QuotaUsage> {
        let (bytes, messages) = usage(&self.view())?;
        Ok(QuotaUsage {
            bytes,
            messages,
            limits: *self.quota_limits.lock(),
        })
    }
    /// Sets this user's limits (from the userdb's quota_rule); kept in memory, not logged.
    pub fn set_quota_limits(&self, limits: QuotaLimits) {
        *self.quota_limits.lock() = limits;
    }
    pub(crate) fn quota_limits(&self) -> QuotaLimits {
        *self.quota_limits.lock()
    }

    // ---- notification ----
    /// Ticks after every durable change to this user (local or replicated): sessions (IDLE,
    /// untagged EXISTS/EXPUNGE/FETCH) and the replication shipper wait on it.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch_tx.subscribe()
    }

    // ---- log, for replication and admin ----
    pub fn version_vector(&self) -> Result<VersionVector> {
        Ok(self.view().meta()?.vv)
    }
    /// Records this node has that `have` lacks, in log order, at most `limit`.
    pub fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>> {
        if let Some(recs) = self.recent.lock().since(have, limit) {
            return Ok(recs);
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let covers = |vv: &VersionVector| {
            vv.iter()
                .all(|(o, s)| have.get(o).copied().unwrap_or(0) >= *s)
        };
        let cursor = self
            .cursors
            .lock()
            .iter()
            .filter(|c| covers(&c.vv))
            .max_by_key(|c| c.at)
            .cloned();
        let out = match cursor {
            Some(c) => match self.scan_records(have, limit, Some(&c)) {
                Ok(Some(out)) => out,
                // The cursor is stale (a purge moved the offsets): forget them all, start over.
                Ok(None) | Err(_) => {
                    self.cursors.lock().clear();
                    self.scan_records(have, limit, None)?.unwrap_or_default()
                }
            },
            None => self.scan_records(have, limit, None)?.unwrap_or_default(),
        };
        Ok(out)
    }

    /// The scan behind [`UserStore::records_since`], from `cursor` if given (None if the record
    /// the cursor names is no longer where it was), else from the first segment `have` lacks.
    fn scan_records(
        &self,
        have: &VersionVector,
        limit: usize,
        cursor: Option<&ScanCursor>,
    ) -> Result<Option<Vec<Record>>> {
        let meta = self.view().meta()?;
        let mut out = Vec::new();
        let covers = |vv: &VersionVector| {
            vv.iter()
                .all(|(o, s)| have.get(o).copied().unwrap_or(0) >= *s)
        };
        let known = self.segment_max.lock().clone();
        let mut current: Option<(u32, VersionVector)> = None;
        let mut finished = Vec::new();
        let mut expect_first = cursor.map(|c| c.last);
        let mut stale = false;
        let mut last_at = None;
        // Only what is committed (the checkpoint), never a batch still being written; closed
        // segments whose every record `have` already has are skipped.
        log::read_entries_while(
            &self.dir.join("log"),
            &self.name,
            cursor.map_or((0, 0), |c| c.at),
            Some((meta.log_seg, meta.log_off)),
            // (Never the cursor's own segment: its first entry is checked.)
            |seg| cursor.is_none_or(|c| c.at.0 != seg) && known.get(&seg).is_some_and(covers),
            |_, (seg, off), e| {
                if let Some(want) = expect_first.take() {
                    if !matches!(&e, log::Entry::Record(r) if (r.origin, r.seq) == want) {
                        stale = true;
                        return Ok(false);
                    }
                }
                // Per-segment maxima are only known for segments read from their start.
                if cursor.is_none() && current.as_ref().is_none_or(|(s, _)| *s != seg) {
                    if let Some(done) = current.take() {
                        finished.push(done);
                    }
                    current = Some((seg, VersionVector::new()));
                }
                let log::Entry::Record(r) = e else {
                    return Ok(true);
                };
                if let Some((_, max)) = current.as_mut() {
                    let m = max.entry(r.origin).or_insert(0);
                    *m = (*m).max(r.seq);
                }
                if r.seq > have.get(&r.origin).copied().unwrap_or(0) {
                    last_at = Some((seg, off));
                    out.push(r);
                }
                Ok(out.len() < limit)
            },
        )?;
        if stale || expect_first.is_some() {
            return Ok(None);
        }
        // Closed segments read to their end: remember the highest sequence per origin in each.
        {
            let mut known = self.segment_max.lock();
            for (seg, max) in finished {
                if seg < meta.log_seg {
                    known.insert(seg, max);
                }
            }
        }
        if let (Some(at), Some(r)) = (last_at, out.last()) {
            let mut vv = have.clone();
            for r in &out {
                let m = vv.entry(r.origin).or_insert(0);
                *m = (*m).max(r.seq);
            }
            let mut cursors = self.cursors.lock();
            if cursors.len() >= SCAN_CURSORS {
                cursors.pop_front();
            }
            cursors.push_back(ScanCursor {
                vv,
                at,
                last: (r.origin, r.seq),
            });
        }
        Ok(Some(out))
    }
    /// Applies records from a peer, idempotently (a record at or below the version vector's entry
    /// for its origin changes nothing). Objects they need must already be present
    /// (`has_object` / `put_object`); one that is not is refused unless the same call removes
    /// its message (for objects the peer purged, see `apply_remote_purged`). The records are
    /// appended to the local log verbatim.
    pub fn apply_remote(&self, records: &[Record]) -> Result<ApplyOutcome> {
        self.apply_remote_with_objects(&[], records)
    }
    /// `apply_remote` for records together with the objects that arrived with them: each object
    /// is hashed here (its id is its hash, so a corrupted body is simply not the object a record
    /// names, and the batch is refused with nothing applied). Small objects travel in the log
    /// beside the records, large ones go to a pack (synced before the log), so a batch of small
    /// messages costs ONE fdatasync instead of one for the objects and one for the records.
    /// Durable on return: the group commit's log fdatasync (`writer::write_durably`) covers the
    /// objects and the records before this returns. Idempotent like `apply_remote`.
    pub fn apply_remote_with_objects(
        &self,
        objects: &[&[u8]],
        records: &[Record],
    ) -> Result<ApplyOutcome> {
        // Hashed and compressed on the caller's thread, as `put_object` does: the group-commit
        // leader only writes.
        let objects = objects
            .iter()
            .map(|raw| pack::prepare(raw))
            .collect::<Result<Vec<_>>>()?;
        match self.submit(Req::Remote {
            objects,
            records: records.to_vec(),
            purged: HashSet::new(),
        })? {
            Reply::Applied(a) => Ok(a),
            _ => Err(unexpected()),
        }
    }
    /// `apply_remote_with_objects` for objects that came in their stored form and passed
    /// [`pack::verify`] (on the caller's thread): their compressed bodies are written as they
    /// are, so neither side compresses or the sender decompresses. Durable on return, as
    /// `apply_remote_with_objects`; all or nothing likewise.
    pub fn apply_remote_verified(
        &self,
        objects: Vec<pack::Verified>,
        records: &[Record],
    ) -> Result<ApplyOutcome> {
        self.apply_remote_purged(objects, records, &HashSet::new())
    }
    /// `apply_remote_verified` for records whose sender no longer has some of the objects they
    /// need (`purged`: it expunged and purged their messages): an insertion of such an object
    /// that arrives without it becomes a ghost, never visible, until the record that removes it
    /// arrives, in this call or a later one (see `index::Ghost`). An insertion of any other
    /// missing object is refused unless this call removes its message; a bodiless insertion
    /// naming a message visible here is refused. All or nothing; durable on return, as
    /// `apply_remote_with_objects`.
    pub fn apply_remote_purged(
        &self,
        objects: Vec<pack::Verified>,
        records: &[Record],
        purged: &HashSet<ObjectId>,
    ) -> Result<ApplyOutcome> {
        match self.submit(Req::Remote {
            objects: objects
                .into_iter()
                .map(pack::Verified::into_prepared)
                .collect(),
            records: records.to_vec(),
            purged: purged.clone(),
        })? {
            Reply::Applied(a) => Ok(a),
            _ => Err(unexpected()),
        }
    }
    /// Gives every message of `mailbox` involved in a UID conflict (pending remote entries and
    /// the local messages holding their UIDs) a new UID above UIDNEXT, as one durable
    /// `Op::Renumber` record. None when nothing is pending.
    pub fn resolve_conflicts(&self, mailbox: &str) -> Result<Option<Record>> {
        match self.submit(Req::Resolve {
            mailbox: mailbox.to_string(),
        })? {
            Reply::Resolved(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }
    /// Gives the listed messages of `mailbox` (those still live in it) and its HIGHESTMODSEQ one
    /// common modseq, `max(min_modseq, HIGHESTMODSEQ + 1)`, as durable `Op::AlignModseqs`
    /// record(s): the merge resolver's way to make modseqs converge after both nodes were
    /// written. Returns the mailbox's HIGHESTMODSEQ afterwards, None if the mailbox is gone.
    /// Durable on return (the group commit's log fdatasync, as every write).
    pub fn align_modseqs(
        &self,
        mailbox: &MailboxId,
        min_modseq: u64,
        guids: &[Guid],
    ) -> Result<Option<u64>> {
        match self.submit(Req::Align {
            mailbox: *mailbox,
            modseq: min_modseq,
            messages: guids.to_vec(),
        })? {
            Reply::Aligned(m) => Ok(m),
            _ => Err(unexpected()),
        }
    }
    /// Pending UID conflicts of a mailbox.
    pub fn pending_conflicts(&self, mailbox: &str) -> Result<Vec<index::PendingEntry>> {
        let mb = self.mailbox_rec(mailbox)?;
        Ok(self
            .view()
            .scan::<index::PendingEntry>(&index::k_pending_prefix(&mb.id))?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }
    /// Messages a peer's records inserted without their objects (purged there), still waiting
    /// for the records that remove them: never visible to clients (see `index::Ghost`). One that
    /// waits long after the peers have nothing more to send is a peer's error an operator sees.
    pub fn ghosts(&self) -> Result<Vec<index::GhostInfo>> {
        self.view().ghosts()
    }
    pub fn has_object(&self, object: &ObjectId) -> Result<bool> {
        Ok(self.view().get_raw(&index::k_object(object))?.is_some())
    }
    /// Stores an object received from a peer; verifies its hash. Durable on return.
    pub fn put_object(&self, raw: &[u8]) -> Result<ObjectId> {
        let object = pack::prepare(raw)?;
        match self.submit(Req::PutObject { object })? {
            Reply::Object(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }
    /// Stores a peer's object that came in its stored form and passed [`pack::verify`].
    /// Durable on return.
    pub fn put_verified(&self, object: pack::Verified) -> Result<ObjectId> {
        match self.submit(Req::PutObject {
            object: object.into_prepared(),
        })? {
            Reply::Object(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    // ---- maintenance ----
    /// Rebuilds the index from the change log (`node force-resync -u USER`).
    pub fn rebuild_index(&self) -> Result<()> {
        let mut ws = self.writer.lock();
        // Pending index changes first: the rebuild replaces what sled holds.
        self.ix.flush()?;
        let meta = crate::recovery::rebuild(&self.dir, &self.name, &self.tree)?;
        ws.meta = meta;
        drop(ws);
        self.watch_tx.send_modify(|v| *v += 1);
        Ok(())
    }
    /// Reclaims pack space of objects no message refers to (`node purge -u USER`); crash-safe.
    pub fn purge(&self) -> Result<PurgeReport> {
        let mut ws = self.writer.lock();
        // Purge reads and rewrites sled directly: it must see every committed change.
        self.ix.flush()?;
        crate::purge::purge(self, &mut ws)
    }

    /// The whole index of this user, sorted, without what is not derived from the log: object
    /// locations (derived from the packs, which after an interrupted purge may still hold dead
    /// copies) and parsed facts (a cache). What "rebuilt == live" compares.
    pub fn dump_index(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(IndexTree::scan_prefix(&self.ix, b"")?
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b"f") && !k.starts_with(b"o"))
            .collect())
    }

    /// Reads every log entry and every pack object, checking checksums and object hashes: the
    /// first corruption is returned with its file and offset. Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        let mut n = 0u64;
        let log_dir = self.dir.join("log");
        log::read_entries(&log_dir, &self.name, (0, 0), None, |_, (seg, off), e| {
            if let log::Entry::Object { id, .. } = e {
                pack::read_object(&self.segment_path(seg), &log::KIND, 1, &self.name, off, &id)?;
            }
            n += 1;
            Ok(())
        })?;
        for (_, path) in framed::list_numbered(&self.dir.join("packs"), pack::EXT)? {
            framed::scan(&path, &pack::KIND, &self.name, HEADER_LEN, |off, p| {
                let (id, _, _) = pack::parse_payload(&p).ok_or_else(|| StoreError::Corrupt {
                    user: self.name.clone(),
                    path: path.clone(),
                    offset: off,
                    what: "short object frame".into(),
                })?;
                pack::read_object(&path, &pack::KIND, 0, &self.name, off, &id)?;
                n += 1;
                Ok(())
            })?;
        }
        Ok(n)
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

/// Bytes and messages in all mailboxes.
pub(crate) fn usage(v: &Txn) -> Result<(u64, u64)> {
    Ok(v.mailboxes()?
        .iter()
        .fold((0, 0), |(b, m), mb| (b + mb.size, m + mb.exists as u64)))
}

fn unexpected() -> StoreError {
    StoreError::Other("internal: unexpected writer reply".into())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub objects_removed: u64,
    pub bytes_reclaimed: u64,
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<Store>();
    f::<UserStore>();
}
