//! The index: a view of the change log in sled, one tree per user, behind the narrow
//! [`IndexTree`] trait. [`apply`] is the only code that turns records into index state, so the
//! live index and one rebuilt from the log are the same by construction (tests compare dumps).
//!
//! Writes are staged in a [`Txn`] overlay and land in one atomic sled batch per group commit,
//! after the log is durable. sled is never flushed on the write path: after a crash it may lag
//! the log, and the [`Meta`] checkpoint written in the same batch says where to catch up from.

use crate::error::{Result, StoreError};
use crate::record::{NewEntry, Op, Record};
use crate::types::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the store needs of a key-value tree.
pub trait IndexTree: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies every change atomically.
    fn apply(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()>;
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Index(e.to_string())
}

impl IndexTree for sled::Tree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(sled::Tree::get(self, key)
            .map_err(sled_err)?
            .map(|v| v.to_vec()))
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        sled::Tree::scan_prefix(self, prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err))
            .collect()
    }
    fn apply(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        let mut b = sled::Batch::default();
        for (k, v) in changes {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.apply_batch(b).map_err(sled_err)
    }
}

/// Group commits whose index changes are held in memory before one sled batch applies them all.
/// Every sled `apply_batch` costs a fixed amount beside the per-key work: sled rolls its I/O
/// buffer, writes and `sync_file_range`s its own log, and takes its process-wide write lock
/// (with one batch per commit, about a third of the CPU samples of the replication benchmark;
/// docs/performance.md, "Per-commit cost", has the profile and the before/after figures).
pub const INDEX_FLUSH_COMMITS: u32 = 8;
/// A commit that leaves more staged keys than this is applied at once (a bulk sync, a rebuild
/// of many records): the overlay stays small.
pub const INDEX_FLUSH_KEYS: usize = 4096;

/// The index as readers and the writer see it: the sled tree overlaid with the changes of the
/// last few durable group commits that are not yet in sled (at most [`INDEX_FLUSH_COMMITS`]).
///
/// Durability does not depend on it: a commit reaches this only after its log fdatasync. A
/// crash loses the overlay and leaves sled at an older [`Meta`] checkpoint (always applied in
/// the same atomic sled batch as the changes it covers), from which recovery replays the log,
/// as it does for any index that lags. Reads hold the overlay's read lock across the sled read,
/// so a key being moved from the overlay into sled is seen in one or the other, never neither.
pub struct Overlaid {
    tree: sled::Tree,
    pending: parking_lot::RwLock<Pending>,
}

#[derive(Default)]
struct Pending {
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    commits: u32,
}

impl Overlaid {
    pub fn new(tree: sled::Tree) -> Overlaid {
        Overlaid {
            tree,
            pending: Default::default(),
        }
    }

    /// Takes a durable group commit's index changes; applies everything pending to sled once
    /// [`INDEX_FLUSH_COMMITS`] commits or [`INDEX_FLUSH_KEYS`] keys are waiting. Callers hold
    /// the user's writer lock (only the group-commit leader, purge and rebuild change the index).
    pub fn commit(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        let due = {
            let mut p = self.pending.write();
            p.changes.extend(changes);
            p.commits += 1;
            p.commits >= INDEX_FLUSH_COMMITS || p.changes.len() > INDEX_FLUSH_KEYS
        };
        if due {
            self.flush()?;
        }
        Ok(())
    }

    /// Applies everything pending to sled in one atomic batch, then drops it from the overlay.
    /// Callers hold the user's writer lock, so nothing is added meanwhile. On an error the
    /// overlay keeps the changes (readers still see them) and the caller stops the writer.
    pub fn flush(&self) -> Result<()> {
        let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let p = self.pending.read();
            if p.changes.is_empty() {
                return Ok(());
            }
            p.changes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        IndexTree::apply(&self.tree, changes)?;
        let mut p = self.pending.write();
        p.changes.clear();
        p.commits = 0;
        Ok(())
    }

    /// Keys in `start..=end`, sorted, as the overlaid index has them.
    pub fn range_keys(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>> {
        let p = self.pending.read();
        let mut keys: std::collections::BTreeSet<Vec<u8>> = self
            .tree
            .range(start..=end)
            .map(|r| r.map(|(k, _)| k.to_vec()).map_err(sled_err))
            .collect::<Result<_>>()?;
        for (k, v) in p.changes.range(start.to_vec()..=end.to_vec()) {
            match v {
                Some(_) => keys.insert(k.clone()),
                None => keys.remove(k),
            };
        }
        Ok(keys.into_iter().collect())
    }

    #[cfg(test)]
    fn pending_len(&self) -> usize {
        self.pending.read().changes.len()
    }
}

impl IndexTree for Overlaid {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let p = self.pending.read();
        match p.changes.get(key) {
            Some(v) => Ok(v.clone()),
            None => IndexTree::get(&self.tree, key),
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = self.pending.read();
        let base = IndexTree::scan_prefix(&self.tree, prefix)?;
        Ok(laid_over(base, &p.changes, prefix))
    }
    /// Applied to sled at once, with whatever is pending.
    fn apply(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        self.pending.write().changes.extend(changes);
        self.flush()
    }
}

/// `base` (a scan of `prefix`) with the changes under `prefix` laid over it (None deletes), in
/// key order: what a scan sees through an overlay of not yet applied changes.
fn laid_over(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut m: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
    for (k, v) in changes.range(prefix.to_vec()..) {
        if !k.starts_with(prefix) {
            break;
        }
        match v {
            Some(v) => {
                m.insert(k.clone(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    m.into_iter().collect()
}

/// An empty tree: the base of a rebuild.
pub struct EmptyTree;

impl IndexTree for EmptyTree {
    fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn scan_prefix(&self, _: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(Vec::new())
    }
    fn apply(&self, _: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        Ok(())
    }
}

// ---- keys ----
pub const META: &[u8] = b"\x00meta";
/// The index's own format: an index written by another version is rebuilt from the log.
pub const VERSION_KEY: &[u8] = b"\x00version";
pub const INDEX_VERSION: u32 = 4;
/// Mailboxes by the name they want: `W`+name+0+GUID (names have no control characters).
pub fn k_wanted_prefix(name: &str) -> Vec<u8> {
    [&b"W"[..], name.as_bytes(), &[0]].concat()
}
pub fn k_wanted(name: &str, mb: &MailboxId) -> Vec<u8> {
    [&k_wanted_prefix(name)[..], &mb.0].concat()
}
/// Mailboxes deleted here (by GUID): a delete is final, a late create of that GUID is ignored.
pub fn k_deleted(mb: &MailboxId) -> Vec<u8> {
    [&b"D"[..], &mb.0].concat()
}
pub fn k_mailbox(id: &MailboxId) -> Vec<u8> {
    [&b"M"[..], &id.0].concat()
}
pub fn k_name(name: &str) -> Vec<u8> {
    [&b"N"[..], name.as_bytes()].concat()
}
pub fn k_msg_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"m"[..], &mb.0].concat()
}
pub fn k_msg(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"m"[..], &mb.0, &uid.to_be_bytes()].concat()
}
pub fn k_guid(g: &Guid) -> Vec<u8> {
    [&b"g"[..], &g.0].concat()
}
pub fn k_tomb_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"t"[..], &mb.0].concat()
}
pub fn k_tomb(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"t"[..], &mb.0, &uid.to_be_bytes()].concat()
}
/// Live messages by modseq (`c`) and expunges by modseq (`x`): `changes_since` is a range scan.
pub fn k_changed_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"c"[..], &mb.0].concat()
}
pub fn k_changed(mb: &MailboxId, modseq: u64, uid: u32) -> Vec<u8> {
    [&b"c"[..], &mb.0, &modseq.to_be_bytes(), &uid.to_be_bytes()].concat()
}
pub fn k_expunged_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"x"[..], &mb.0].concat()
}
pub fn k_expunged(mb: &MailboxId, modseq: u64, uid: u32) -> Vec<u8> {
    [&b"x"[..], &mb.0, &modseq.to_be_bytes(), &uid.to_be_bytes()].concat()
}
pub fn k_delivery(key: &[u8; 32]) -> Vec<u8> {
    [&b"d"[..], &key[..]].concat()
}
pub fn k_object(o: &ObjectId) -> Vec<u8> {
    [&b"o"[..], &o.0].concat()
}
pub fn k_facts(o: &ObjectId) -> Vec<u8> {
    [&b"f"[..], &o.0].concat()
}
pub fn k_sub(name: &str) -> Vec<u8> {
    [&b"s"[..], name.as_bytes()].concat()
}
pub fn k_pending_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"p"[..], &mb.0].concat()
}
pub fn k_pending(mb: &MailboxId, g: &Guid) -> Vec<u8> {
    [&b"p"[..], &mb.0, &g.0].concat()
}
/// UIDs a remote message claimed while a live message here held them (value: that message's
/// GUID): the resolver renumbers the holder even when the claimant is gone before it resolves
/// (a purged message travels with its removal, so it is never pending long enough).
pub fn k_contested_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"u"[..], &mb.0].concat()
}
pub fn k_contested(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"u"[..], &mb.0, &uid.to_be_bytes()].concat()
}
/// Ghosts (see [`Ghost`]) by mailbox and UID: `h`+GUID+UID.
pub fn k_ghost_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"h"[..], &mb.0].concat()
}
pub fn k_ghost(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"h"[..], &mb.0, &uid.to_be_bytes()].concat()
}
/// Ghosts by the object they lack (value: their (mailbox, UID) list), so an insertion that
/// brings the object here again finds them with one lookup.
pub fn k_ghost_object(o: &ObjectId) -> Vec<u8> {
    [&b"H"[..], &o.0].concat()
}

// ---- values ----
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxRec {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub special_use: Option<SpecialUse>,
    pub exists: u32,
    pub unseen: u32,
    pub size: u64,
    pub created: HlcTime,
    /// When the mailbox took its current name (create or rename): name clashes between nodes
    /// are settled by it, the same way on every node.
    pub named: HlcTime,
    /// The name its create or last rename asked for; `name` differs (a suffix) only while an
    /// earlier-named mailbox wants the same name.
    pub wanted: String,
    /// Whether a rename (not a create) gave `wanted`: any rename beats every create.
    pub renamed: bool,
}

impl MailboxRec {
    pub fn info(&self, subscribed: bool) -> MailboxInfo {
        MailboxInfo {
            id: self.id,
            name: self.name.clone(),
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highestmodseq: self.highestmodseq,
            subscribed,
            special_use: self.special_use,
            exists: self.exists,
            unseen: self.unseen,
            size: self.size,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgRec {
    pub meta: MessageMeta,
    /// HLC time of each flag's last set or clear: flags merge last-writer-wins per flag.
    pub flag_times: BTreeMap<Flag, HlcTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tomb {
    pub guid: Guid,
    pub modseq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub wall_ms: u64,
    pub outcome: AppendOutcome,
}

/// Where an object lives: pack (or, when `in_log`, log segment) number and frame offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjLoc {
    pub pack: u32,
    pub offset: u64,
    pub raw_len: u64,
    pub in_log: bool,
}

/// A remote entry whose UID was taken here by another message: kept until a Renumber.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    pub entry: NewEntry,
    pub time: HlcTime,
    /// Flag changes reach a pending entry too (last writer wins, as for live messages).
    pub flag_times: BTreeMap<Flag, HlcTime>,
}

/// A message that a peer's record inserted without its object: the peer had purged it (its
/// message was expunged there, and the record removing it is still on its way). It holds its
/// UID (UIDNEXT moved past it) and takes every change a live message takes (flags, modseqs,
/// renumbering), so its removal leaves the same tombstone and modseqs as on the peer; but no
/// client ever sees it (not in the message keys, not in EXISTS/UNSEEN/size). An insertion that
/// brings its object here again makes it an ordinary message, as a rebuild (which finds the
/// object in its pack) would have. See `replication/src/purged.rs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ghost {
    pub msg: MsgRec,
    /// HLC time of the record that inserted it (how long it has waited for its removal).
    pub since: HlcTime,
}

/// A ghost, as the store lists it for operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GhostInfo {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub guid: Guid,
    pub object: ObjectId,
    pub since: HlcTime,
}

/// The per-user checkpoint and what is derived from the whole log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    /// Log applied up to here (segment number, offset just past the last applied frame).
    pub log_seg: u32,
    pub log_off: u64,
    /// Pack objects indexed up to here.
    pub pack_no: u32,
    pub pack_off: u64,
    pub vv: VersionVector,
    pub last_time: HlcTime,
    pub max_uidvalidity: u32,
}

/// A remote Append/Copy/Move whose UID is taken in that mailbox by a different message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidConflict {
    pub mailbox: MailboxId,
    pub uid: u32,
    /// The message that holds (or held) the UID here.
    pub local: Guid,
    /// The incoming message, now pending.
    pub remote: Guid,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding plain in-memory structs cannot fail (no maps with non-serializable keys).
    bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(user: &str, key: &[u8], bytes: &[u8]) -> Result<T> {
    let cfg = bincode::config::standard().with_limit::<{ 64 << 20 }>();
    match bincode::serde::decode_from_slice::<T, _>(bytes, cfg) {
        Ok((v, n)) if n == bytes.len() => Ok(v),
        Ok(_) => Err(StoreError::Index(format!(
            "user {user}: trailing bytes in index value of key {}",
            hex(key)
        ))),
        Err(e) => Err(StoreError::Index(format!(
            "user {user}: undecodable index value of key {}: {e}",
            hex(key)
        ))),
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A staged value: Some(bytes) to write, None to delete.
type Staged = Option<Vec<u8>>;

/// Staged changes over a base tree: reads see the staged writes; savepoints roll back one
/// failed request of a batch without touching the others.
pub struct Txn<'a> {
    pub user: &'a str,
    base: &'a dyn IndexTree,
    over: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    journal: Vec<(Vec<u8>, Option<Staged>)>,
}

impl<'a> Txn<'a> {
    pub fn new(user: &'a str, base: &'a dyn IndexTree) -> Txn<'a> {
        Txn {
            user,
            base,
            over: BTreeMap::new(),
            journal: Vec::new(),
        }
    }
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.over.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.get_raw(key)? {
            Some(b) => Ok(Some(decode(self.user, key, &b)?)),
            None => Ok(None),
        }
    }
    fn set(&mut self, key: Vec<u8>, v: Option<Vec<u8>>) {
        let prev = self.over.insert(key.clone(), v);
        self.journal.push((key, prev));
    }
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, v: &T) {
        self.set(key, Some(encode(v)));
    }
    pub fn put_raw(&mut self, key: Vec<u8>, v: Vec<u8>) {
        self.set(key, Some(v));
    }
    pub fn del(&mut self, key: Vec<u8>) {
        self.set(key, None);
    }
    pub fn savepoint(&self) -> usize {
        self.journal.len()
    }
    pub fn rollback(&mut self, sp: usize) {
        while self.journal.len() > sp {
            let Some((k, prev)) = self.journal.pop() else {
                break;
            };
            match prev {
                Some(p) => {
                    self.over.insert(k, p);
                }
                None => {
                    self.over.remove(&k);
                }
            }
        }
    }
    pub fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(laid_over(
            self.base.scan_prefix(prefix)?,
            &self.over,
            prefix,
        ))
    }
    pub fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        self.scan_raw(prefix)?
            .into_iter()
            .map(|(k, v)| {
                let t = decode(self.user, &k, &v)?;
                Ok((k, t))
            })
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.over.is_empty()
    }
    pub fn into_changes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.over.into_iter().collect()
    }

    // ---- typed helpers ----
    pub fn mailbox(&self, id: &MailboxId) -> Result<Option<MailboxRec>> {
        self.get(&k_mailbox(id))
    }
    pub fn mailbox_by_name(&self, name: &str) -> Result<Option<MailboxRec>> {
        match self.get::<MailboxId>(&k_name(name))? {
            Some(id) => self.mailbox(&id),
            None => Ok(None),
        }
    }
    pub fn put_mailbox(&mut self, mb: &MailboxRec) {
        self.put(k_mailbox(&mb.id), mb);
    }
    pub fn mailboxes(&self) -> Result<Vec<MailboxRec>> {
        Ok(self
            .scan::<MailboxRec>(b"M")?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
    pub fn msg(&self, mb: &MailboxId, uid: u32) -> Result<Option<MsgRec>> {
        self.get(&k_msg(mb, uid))
    }
    pub fn messages(&self, mb: &MailboxId) -> Result<Vec<MsgRec>> {
        Ok(self
            .scan::<MsgRec>(&k_msg_prefix(mb))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
    pub fn meta(&self) -> Result<Meta> {
        Ok(self.get(META)?.unwrap_or_default())
    }
    /// Every ghost of the user (see [`Ghost`]), by mailbox and UID.
    pub fn ghosts(&self) -> Result<Vec<GhostInfo>> {
        Ok(self
            .scan::<Ghost>(b"h")?
            .into_iter()
            .filter_map(|(k, g)| {
                let mb = <[u8; 16]>::try_from(k.get(1..17)?).ok()?;
                Some(GhostInfo {
                    mailbox: Guid(mb),
                    uid: g.msg.meta.uid,
                    guid: g.msg.meta.guid,
                    object: g.msg.meta.object,
                    since: g.since,
                })
            })
            .collect())
    }
}

/// What applying records did beyond the index itself.
#[derive(Debug, Default)]
pub struct Effects<'a> {
    pub conflicts: Vec<UidConflict>,
    /// Objects the same group commit writes: not in the index until it is durable, but here
    /// for the records it applies (so their insertions are not ghosts).
    pub arriving: Option<&'a std::collections::HashSet<ObjectId>>,
    /// Insertions applied as ghosts: their object is not on this node (see [`Ghost`]).
    pub ghosts: Vec<(MailboxId, Guid, ObjectId)>,
}

fn bump(mb: &mut MailboxRec) -> u64 {
    mb.highestmodseq += 1;
    mb.highestmodseq
}

fn suffixed(name: &str, id: &Guid) -> String {
    format!("{name}-{}", &id.to_hex()[..8])
}

/// Gives the name `wanted` to the mailbox that took it earliest (by HLC time, then GUID) among
/// those that want it, and `<name>-<8 hex of its GUID>` to the others. A function of the live
/// mailboxes only, so every node ends with the same names whatever order records came in, and a
/// suffix goes away when the clash does.
fn settle_name(tx: &mut Txn, wanted: &str) -> Result<()> {
    let prefix = k_wanted_prefix(wanted);
    let mut boxes = Vec::new();
    for (k, _) in tx.scan_raw(&prefix)? {
        let Some(id) = k
            .get(prefix.len()..)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
        else {
            continue;
        };
        if let Some(mb) = tx.mailbox(&Guid(id))? {
            boxes.push(mb);
        }
    }
    boxes.sort_by_key(|m| (m.named, m.id));
    let mut renamed = Vec::new();
    for (i, mb) in boxes.into_iter().enumerate() {
        let name = if i == 0 {
            wanted.to_string()
        } else {
            suffixed(wanted, &mb.id)
        };
        if mb.name != name {
            if i > 0 {
                tracing::warn!(user = tx.user, mailbox = %wanted, renamed_to = %name,
                    "mailbox name clash between nodes: the one named later gets a suffix");
            }
            renamed.push((mb, name));
        }
    }
    // Release every old name first, then take the new ones (two mailboxes may swap).
    for (mb, _) in &renamed {
        if !mb.name.is_empty() && tx.get::<MailboxId>(&k_name(&mb.name))? == Some(mb.id) {
            tx.del(k_name(&mb.name));
        }
    }
    for (mut mb, name) in renamed {
        tx.put(k_name(&name), &mb.id);
        mb.name = name;
        tx.put_mailbox(&mb);
    }
    Ok(())
}

/// A create or rename of an existing mailbox asks for `name` at `time`. The rename with the
/// greatest HLC time wins (last writer wins per GUID); while there is none, the earliest create
/// (a default mailbox is created with one GUID on every node, each node at its own time, and a
/// node that joins late must not undo renames made before it came). A request that loses
/// changes nothing, so the name a mailbox wants, and `named`, which orders clashes, are
/// functions of the set of its create/rename records, not of the order they arrived in.
fn claim_name(
    tx: &mut Txn,
    mut mb: MailboxRec,
    name: &str,
    time: HlcTime,
    rename: bool,
) -> Result<()> {
    let wins = match (rename, mb.renamed) {
        (true, false) => true,
        (false, true) => false,
        (true, true) => time > mb.named,
        (false, false) => time < mb.named,
    };
    if !wins {
        return Ok(());
    }
    mb.named = time;
    mb.renamed = rename;
    let old = std::mem::replace(&mut mb.wanted, name.to_string());
    tx.put_mailbox(&mb);
    if old != name {
        tx.del(k_wanted(&old, &mb.id));
        tx.put_raw(k_wanted(name, &mb.id), Vec::new());
        settle_name(tx, &old)?;
    }
    // Even for the same name: a later `named` can change who keeps it.
    settle_name(tx, name)
}

/// Applies one record to the index. Deterministic in (index state, record): replaying the log
/// in order rebuilds the same index. Never fails on content (a record about a mailbox or message
/// that no longer exists changes nothing); fails only on an undecodable index value.
pub fn apply(tx: &mut Txn, meta: &mut Meta, rec: &Record, fx: &mut Effects) -> Result<()> {
    let e = meta.vv.entry(rec.origin).or_insert(0);
    *e = (*e).max(rec.seq);
    meta.last_time = meta.last_time.max(rec.time);
    match &rec.op {
        Op::MailboxCreate {
            mailbox,
            name,
            uidvalidity,
            special_use,
        } => {
            meta.max_uidvalidity = meta.max_uidvalidity.max(*uidvalidity);
            if tx.get_raw(&k_deleted(mailbox))?.is_some() {
                return Ok(()); // deleted here: the delete is final
            }
            if let Some(mut mb) = tx.mailbox(mailbox)? {
                // The same mailbox made on two nodes (default mailboxes have one GUID
                // everywhere): while it has never held a message, the earlier creation's
                // UIDVALIDITY wins, so the nodes agree whatever order they see the records in.
                if mb.uidnext == 1 && rec.time < mb.created {
                    mb.uidvalidity = *uidvalidity;
                    mb.created = rec.time;
                    tx.put_mailbox(&mb);
                }
                return claim_name(tx, mb, name, rec.time, false);
            }
            let mb = MailboxRec {
                id: *mailbox,
                name: String::new(),
                uidvalidity: *uidvalidity,
                uidnext: 1,
                highestmodseq: 1,
                special_use: *special_use,
                exists: 0,
                unseen: 0,
                size: 0,
                created: rec.time,
                named: rec.time,
                wanted: name.clone(),
                renamed: false,
            };
            tx.put_mailbox(&mb);
            tx.put_raw(k_wanted(name, mailbox), Vec::new());
            settle_name(tx, name)?;
        }
        Op::MailboxRename { mailbox, new_name } => {
            let Some(mb) = tx.mailbox(mailbox)? else {
                return Ok(());
            };
            claim_name(tx, mb, new_name, rec.time, true)?;
        }
        Op::MailboxDelete { mailbox } => {
            let Some(mb) = tx.mailbox(mailbox)? else {
                return Ok(());
            };
            for m in tx.messages(mailbox)? {
                tx.del(k_guid(&m.meta.guid));
                del_msg(tx, mailbox, &m);
            }
            drop_ghosts(tx, mailbox)?;
            for prefix in [k_tomb_prefix(mailbox), k_expunged_prefix(mailbox)] {
                for (k, _) in tx.scan_raw(&prefix)? {
                    tx.del(k);
                }
            }
            for prefix in [k_pending_prefix(mailbox), k_contested_prefix(mailbox)] {
                for (k, _) in tx.scan_raw(&prefix)? {
                    tx.del(k);
                }
            }
            if tx.get::<MailboxId>(&k_name(&mb.name))? == Some(*mailbox) {
                tx.del(k_name(&mb.name));
            }
            tx.del(k_mailbox(mailbox));
            tx.del(k_wanted(&mb.wanted, mailbox));
            tx.put_raw(k_deleted(mailbox), Vec::new());
            settle_name(tx, &mb.wanted)?;
        }
        Op::UidValidity {
            mailbox,
            uidvalidity,
        } => {
            meta.max_uidvalidity = meta.max_uidvalidity.max(*uidvalidity);
            if let Some(mut mb) = tx.mailbox(mailbox)? {
                mb.uidvalidity = *uidvalidity;
                bump(&mut mb);
                tx.put_mailbox(&mb);
            }
        }
        Op::Subscribe { name } => tx.put(k_sub(name), &()),
        Op::Unsubscribe { name } => tx.del(k_sub(name)),
        Op::Append {
            mailbox,
            entry,
            delivery_key,
            ..
        } => {
            let Some(mut mb) = tx.mailbox(mailbox)? else {
                return Ok(());
            };
            let modseq = bump(&mut mb);
            if insert_entry(tx, &mut mb, entry, rec.time, modseq, fx)? {
                if let Some(key) = delivery_key {
                    let d = Delivery {
                        wall_ms: rec.time.wall_ms,
                        outcome: AppendOutcome {
                            mailbox: *mailbox,
                            uidvalidity: mb.uidvalidity,
                            uid: entry.uid,
                            guid: entry.guid,
                            modseq,
                            duplicate: false,
                        },
                    };
                    tx.put(k_delivery(key), &d);
                }
            }
            tx.put_mailbox(&mb);
        }
        Op::Copy { to, entries, .. } => {
            if let Some(mut mb) = tx.mailbox(to)? {
                let modseq = bump(&mut mb);
                for (_, entry) in entries {
                    insert_entry(tx, &mut mb, entry, rec.time, modseq, fx)?;
                }
                tx.put_mailbox(&mb);
            }
        }
        Op::Move {
            from, to, entries, ..
        } => {
            if let Some(mut mb) = tx.mailbox(to)? {
                let modseq = bump(&mut mb);
                for (_, entry) in entries {
                    insert_entry(tx, &mut mb, entry, rec.time, modseq, fx)?;
                }
                tx.put_mailbox(&mb);
            }
            let sources: Vec<Guid> = entries.iter().map(|(g, _)| *g).collect();
            expunge(tx, from, &sources)?;
        }
        Op::Flags {
            mailbox,
            messages,
            add,
            remove,
            ..
        } => {
            let Some(mut mb) = tx.mailbox(mailbox)? else {
                return Ok(());
            };
            let mut modseq = None;
            for g in messages {
                let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
                    // Not live here: pending as a UID conflict (the change waits with it for
                    // the renumbering), or expunged (an expunge beats a flag change).
                    if let Some(mut p) = tx.get::<PendingEntry>(&k_pending(mailbox, g))? {
                        for (f, set) in add
                            .iter()
                            .map(|f| (f, true))
                            .chain(remove.iter().map(|f| (f, false)))
                        {
                            if p.flag_times.get(f).is_none_or(|t| rec.time > *t) {
                                p.flag_times.insert(f.clone(), rec.time);
                                if set {
                                    p.entry.flags.insert(f.clone());
                                } else {
                                    p.entry.flags.remove(f);
                                }
                            }
                        }
                        tx.put(k_pending(mailbox, g), &p);
                    }
                    continue;
                };
                if mbid != *mailbox {
                    continue;
                }
                let Some(mut m) = tx.msg(mailbox, uid)? else {
                    // A ghost takes the change as a live message would (same modseq), unseen.
                    if let Some(mut g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
                        if merge_flags(&mut g.msg, add, remove, rec.time) {
                            g.msg.meta.modseq = *modseq.get_or_insert_with(|| bump(&mut mb));
                        }
                        tx.put(k_ghost(mailbox, uid), &g);
                    }
                    continue;
                };
                let was_seen = m.meta.flags.contains(&Flag::Seen);
                let old_modseq = m.meta.modseq;
                let mut changed = false;
                for f in add {
                    if m.flag_times.get(f).is_none_or(|t| rec.time > *t) {
                        m.flag_times.insert(f.clone(), rec.time);
                        changed |= m.meta.flags.insert(f.clone());
                    }
                }
                for f in remove {
                    if m.flag_times.get(f).is_none_or(|t| rec.time > *t) {
                        m.flag_times.insert(f.clone(), rec.time);
                        changed |= m.meta.flags.remove(f);
                    }
                }
                if changed {
                    let ms = *modseq.get_or_insert_with(|| bump(&mut mb));
                    m.meta.modseq = ms;
                    let seen = m.meta.flags.contains(&Flag::Seen);
                    if was_seen && !seen {
                        mb.unseen += 1;
                    } else if !was_seen && seen {
                        mb.unseen = mb.unseen.saturating_sub(1);
                    }
                }
                // Flag times are kept even without a visible change, so later merges agree.
                put_msg(tx, mailbox, &m, Some(old_modseq));
            }
            if modseq.is_some() {
                tx.put_mailbox(&mb);
            }
        }
        Op::Expunge {
            mailbox, messages, ..
        } => expunge(tx, mailbox, messages)?,
        Op::Renumber { mailbox, moves, .. } => {
            let Some(mut mb) = tx.mailbox(mailbox)? else {
                return Ok(());
            };
            let modseq = bump(&mut mb);
            for (g, new_uid) in moves {
                // Every target UID is taken for good, here too, even for a message not here.
                mb.uidnext = mb.uidnext.max(new_uid.saturating_add(1));
                let entry = if let Some(p) = tx.get::<PendingEntry>(&k_pending(mailbox, g))? {
                    tx.del(k_pending(mailbox, g));
                    Some((p.entry, Some(p.flag_times)))
                } else if let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? {
                    match (mbid == *mailbox, tx.msg(mailbox, uid)?) {
                        (true, Some(m)) => {
                            remove_live(tx, &mut mb, &m, modseq);
                            let entry = NewEntry {
                                guid: m.meta.guid,
                                uid,
                                object: m.meta.object,
                                size: m.meta.size,
                                internal_date: m.meta.internal_date,
                                internal_date_tz_min: m.meta.internal_date_tz_min,
                                flags: m.meta.flags.clone(),
                            };
                            Some((entry, Some(m.flag_times)))
                        }
                        (true, None) => match tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
                            Some(g) => {
                                remove_ghost(tx, &mut mb, &g.msg, modseq)?;
                                Some((entry_of(&g.msg.meta), Some(g.msg.flag_times)))
                            }
                            None => None,
                        },
                        _ => None,
                    }
                } else {
                    None
                };
                if let Some((mut entry, times)) = entry {
                    entry.uid = *new_uid;
                    if insert_entry(tx, &mut mb, &entry, rec.time, modseq, fx)? {
                        if let Some(times) = times {
                            if let Some(mut m) = tx.msg(mailbox, *new_uid)? {
                                m.flag_times = times;
                                let ms = m.meta.modseq;
                                put_msg(tx, mailbox, &m, Some(ms));
                            } else if let Some(mut g) =
                                tx.get::<Ghost>(&k_ghost(mailbox, *new_uid))?
                            {
                                g.msg.flag_times = times;
                                tx.put(k_ghost(mailbox, *new_uid), &g);
                            }
                        }
                    }
                }
            }
            tx.put_mailbox(&mb);
        }
        Op::AlignModseqs {
            mailbox,
            modseq,
            messages,
        } => {
            let Some(mut mb) = tx.mailbox(mailbox)? else {
                return Ok(());
            };
            // Never below what this node has shown its clients (invariant 3): a node that moved
            // on since the resolver looked lands higher, and the next alignment check evens it.
            let ms = (*modseq).max(mb.highestmodseq.saturating_add(1));
            for g in messages {
                let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
                    continue; // expunged (or pending) here: nothing to align
                };
                if mbid != *mailbox {
                    continue;
                }
                let Some(mut m) = tx.msg(mailbox, uid)? else {
                    if let Some(mut g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
                        g.msg.meta.modseq = ms;
                        tx.put(k_ghost(mailbox, uid), &g);
                    }
                    continue;
                };
                let old = m.meta.modseq;
                m.meta.modseq = ms;
                put_msg(tx, mailbox, &m, Some(old));
            }
            mb.highestmodseq = ms;
            tx.put_mailbox(&mb);
        }
        Op::AlignExpunged {
            mailbox,
            modseq,
            uids,
        } => align_expunged(tx, mailbox, *modseq, uids)?,
    }
    Ok(())
}

/// A mailbox's expunged UIDs (tombstones) with the GUID each held and its expunge modseq, in
/// UID order: what QRESYNC's `VANISHED (EARLIER)` answers from.
pub fn tombstones(tx: &Txn, mailbox: &MailboxId) -> Result<Vec<(u32, Tomb)>> {
    let prefix = k_tomb_prefix(mailbox);
    tx.scan::<Tomb>(&prefix)?
        .into_iter()
        .map(|(k, t)| {
            let uid = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| {
                    StoreError::Index(format!("user {}: bad tombstone key {}", tx.user, hex(&k)))
                })?;
            Ok((uid, t))
        })
        .collect()
}

/// `Op::AlignExpunged`: the listed UIDs' tombstones (those held here) and HIGHESTMODSEQ take
/// `max(modseq, HIGHESTMODSEQ + 1)`, never lower than anything this node has shown (invariant
/// 3); a node that moved on since the resolver looked lands higher and the next check evens it.
fn align_expunged(tx: &mut Txn, mailbox: &MailboxId, modseq: u64, uids: &[u32]) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let ms = modseq.max(mb.highestmodseq.saturating_add(1));
    for uid in uids {
        let Some(mut t) = tx.get::<Tomb>(&k_tomb(mailbox, *uid))? else {
            continue; // never expunged here (or pruned): nothing to raise
        };
        tx.del(k_expunged(mailbox, t.modseq, *uid));
        t.modseq = ms;
        tx.put(k_tomb(mailbox, *uid), &t);
        tx.put_raw(k_expunged(mailbox, ms, *uid), Vec::new());
    }
    mb.highestmodseq = ms;
    tx.put_mailbox(&mb);
    Ok(())
}

/// Writes a message and keeps its modseq key in step (`prev`: its modseq before this change).
fn put_msg(tx: &mut Txn, mb: &MailboxId, m: &MsgRec, prev: Option<u64>) {
    if let Some(p) = prev.filter(|p| *p != m.meta.modseq) {
        tx.del(k_changed(mb, p, m.meta.uid));
    }
    tx.put_raw(k_changed(mb, m.meta.modseq, m.meta.uid), Vec::new());
    tx.put(k_msg(mb, m.meta.uid), m);
}

fn del_msg(tx: &mut Txn, mb: &MailboxId, m: &MsgRec) {
    tx.del(k_changed(mb, m.meta.modseq, m.meta.uid));
    tx.del(k_msg(mb, m.meta.uid));
}

fn remove_live(tx: &mut Txn, mb: &mut MailboxRec, m: &MsgRec, modseq: u64) {
    del_msg(tx, &mb.id, m);
    put_tomb(tx, mb, m, modseq);
    mb.exists = mb.exists.saturating_sub(1);
    mb.size = mb.size.saturating_sub(m.meta.size);
    if !m.meta.flags.contains(&Flag::Seen) {
        mb.unseen = mb.unseen.saturating_sub(1);
    }
}

/// The expunged entry a removed message leaves (live or ghost alike): its UID's tombstone and
/// its expunge modseq.
fn put_tomb(tx: &mut Txn, mb: &MailboxRec, m: &MsgRec, modseq: u64) {
    tx.del(k_guid(&m.meta.guid));
    tx.del(k_contested(&mb.id, m.meta.uid));
    // An older tombstone of this UID (a renumbered message) gives way to the newer one.
    if let Ok(Some(old)) = tx.get::<Tomb>(&k_tomb(&mb.id, m.meta.uid)) {
        tx.del(k_expunged(&mb.id, old.modseq, m.meta.uid));
    }
    tx.put(
        k_tomb(&mb.id, m.meta.uid),
        &Tomb {
            guid: m.meta.guid,
            modseq,
        },
    );
    tx.put_raw(k_expunged(&mb.id, modseq, m.meta.uid), Vec::new());
}

fn expunge(tx: &mut Txn, mailbox: &MailboxId, guids: &[Guid]) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let mut modseq = None;
    for g in guids {
        if tx.get_raw(&k_pending(mailbox, g))?.is_some() {
            tx.del(k_pending(mailbox, g));
        }
        let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
            continue;
        };
        if mbid != *mailbox {
            continue;
        }
        if let Some(m) = tx.msg(mailbox, uid)? {
            let ms = *modseq.get_or_insert_with(|| bump(&mut mb));
            remove_live(tx, &mut mb, &m, ms);
        } else if let Some(g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
            // The removal a ghost waited for: the same expunged entry and modseq as the peer's.
            let ms = *modseq.get_or_insert_with(|| bump(&mut mb));
            remove_ghost(tx, &mut mb, &g.msg, ms)?;
        }
    }
    if modseq.is_some() {
        tx.put_mailbox(&mb);
    }
    Ok(())
}

/// Inserts a message at its UID, or parks it as pending when the UID belongs to another message.
/// Returns whether it was inserted.
fn insert_entry(
    tx: &mut Txn,
    mb: &mut MailboxRec,
    entry: &NewEntry,
    time: HlcTime,
    modseq: u64,
    fx: &mut Effects,
) -> Result<bool> {
    if tx.get_raw(&k_guid(&entry.guid))?.is_some() {
        return Ok(false); // already here (a replayed record)
    }
    // A ghost holds its UID like a live message: on the peer it came from, clients saw it.
    let live = match tx.msg(&mb.id, entry.uid)? {
        Some(m) => Some(m.meta.guid),
        None => tx
            .get::<Ghost>(&k_ghost(&mb.id, entry.uid))?
            .map(|g| g.msg.meta.guid),
    };
    let holder = match live {
        Some(g) => Some(g),
        None => tx.get::<Tomb>(&k_tomb(&mb.id, entry.uid))?.map(|t| t.guid),
    };
    if let Some(local) = holder.filter(|g| *g != entry.guid) {
        if live.is_some() {
            tx.put(k_contested(&mb.id, entry.uid), &local);
        }
        tracing::warn!(user = tx.user, mailbox = %mb.name, uid = entry.uid, %local,
            remote = %entry.guid, "UID conflict: incoming message kept pending until renumbered");
        tx.put(
            k_pending(&mb.id, &entry.guid),
            &PendingEntry {
                entry: entry.clone(),
                time,
                flag_times: entry.flags.iter().map(|f| (f.clone(), time)).collect(),
            },
        );
        fx.conflicts.push(UidConflict {
            mailbox: mb.id,
            uid: entry.uid,
            local,
            remote: entry.guid,
        });
        return Ok(false);
    }
    let meta = MessageMeta {
        uid: entry.uid,
        guid: entry.guid,
        object: entry.object,
        flags: entry.flags.clone(),
        modseq,
        internal_date: entry.internal_date,
        internal_date_tz_min: entry.internal_date_tz_min,
        size: entry.size,
    };
    let flag_times = entry.flags.iter().map(|f| (f.clone(), time)).collect();
    let msg = MsgRec { meta, flag_times };
    mb.uidnext = mb.uidnext.max(entry.uid.saturating_add(1));
    tx.put(k_guid(&entry.guid), &(mb.id, entry.uid));
    if !object_here(tx, fx, &entry.object)? {
        insert_ghost(tx, mb, msg, time)?;
        fx.ghosts.push((mb.id, entry.guid, entry.object));
        return Ok(true);
    }
    show(tx, mb, &msg);
    wake_ghosts(tx, mb, &entry.object)?;
    Ok(true)
}

/// Makes a message visible: its keys and the mailbox's counts.
fn show(tx: &mut Txn, mb: &mut MailboxRec, m: &MsgRec) {
    if !m.meta.flags.contains(&Flag::Seen) {
        mb.unseen += 1;
    }
    mb.exists += 1;
    mb.size += m.meta.size;
    put_msg(tx, &mb.id, m, None);
}

fn entry_of(m: &MessageMeta) -> NewEntry {
    NewEntry {
        guid: m.guid,
        uid: m.uid,
        object: m.object,
        size: m.size,
        internal_date: m.internal_date,
        internal_date_tz_min: m.internal_date_tz_min,
        flags: m.flags.clone(),
    }
}

/// Merges a flag change into a message by last writer wins per flag; true if its flags changed.
fn merge_flags(m: &mut MsgRec, add: &Flags, remove: &Flags, time: HlcTime) -> bool {
    let mut changed = false;
    for f in add {
        if m.flag_times.get(f).is_none_or(|t| time > *t) {
            m.flag_times.insert(f.clone(), time);
            changed |= m.meta.flags.insert(f.clone());
        }
    }
    for f in remove {
        if m.flag_times.get(f).is_none_or(|t| time > *t) {
            m.flag_times.insert(f.clone(), time);
            changed |= m.meta.flags.remove(f);
        }
    }
    changed
}

// ---- ghosts (see [`Ghost`]) ----

/// Whether a message's object is on this node: in the index, or written by the same commit.
fn object_here(tx: &Txn, fx: &Effects, o: &ObjectId) -> Result<bool> {
    if fx.arriving.is_some_and(|a| a.contains(o)) {
        return Ok(true);
    }
    Ok(tx.get_raw(&k_object(o))?.is_some())
}

fn insert_ghost(tx: &mut Txn, mb: &MailboxRec, msg: MsgRec, since: HlcTime) -> Result<()> {
    let (uid, object) = (msg.meta.uid, msg.meta.object);
    tx.put(k_ghost(&mb.id, uid), &Ghost { msg, since });
    let mut waiting: Vec<(MailboxId, u32)> = tx.get(&k_ghost_object(&object))?.unwrap_or_default();
    if !waiting.contains(&(mb.id, uid)) {
        waiting.push((mb.id, uid));
    }
    tx.put(k_ghost_object(&object), &waiting);
    Ok(())
}

/// Forgets a ghost's keys (not its UID: UIDNEXT stays past it).
fn unlink_ghost(tx: &mut Txn, mb: &MailboxId, m: &MsgRec) -> Result<()> {
    tx.del(k_ghost(mb, m.meta.uid));
    let key = k_ghost_object(&m.meta.object);
    let mut waiting: Vec<(MailboxId, u32)> = tx.get(&key)?.unwrap_or_default();
    waiting.retain(|w| *w != (*mb, m.meta.uid));
    if waiting.is_empty() {
        tx.del(key);
    } else {
        tx.put(key, &waiting);
    }
    Ok(())
}

/// The removal a ghost waited for (expunge, move away, renumbering): it leaves the expunged
/// entry a live message would.
fn remove_ghost(tx: &mut Txn, mb: &mut MailboxRec, m: &MsgRec, modseq: u64) -> Result<()> {
    unlink_ghost(tx, &mb.id, m)?;
    put_tomb(tx, mb, m, modseq);
    Ok(())
}

/// A deleted mailbox takes its ghosts with it.
fn drop_ghosts(tx: &mut Txn, mailbox: &MailboxId) -> Result<()> {
    for (_, g) in tx.scan::<Ghost>(&k_ghost_prefix(mailbox))? {
        tx.del(k_guid(&g.msg.meta.guid));
        unlink_ghost(tx, mailbox, &g.msg)?;
    }
    Ok(())
}

/// An insertion brought `object` here (the same content delivered again): the ghosts that
/// lacked it become ordinary messages, with the UIDs, flags and modseqs they kept, which is
/// what a rebuild from the log makes of them (it finds the object in its pack when it replays
/// their insertion). `mb` is the mailbox being changed (not yet written back).
fn wake_ghosts(tx: &mut Txn, mb: &mut MailboxRec, object: &ObjectId) -> Result<()> {
    let Some(waiting) = tx.get::<Vec<(MailboxId, u32)>>(&k_ghost_object(object))? else {
        return Ok(());
    };
    tx.del(k_ghost_object(object));
    for (mbid, uid) in waiting {
        let Some(g) = tx.get::<Ghost>(&k_ghost(&mbid, uid))? else {
            continue;
        };
        tx.del(k_ghost(&mbid, uid));
        tracing::info!(user = tx.user, mailbox = %mbid, uid, guid = %g.msg.meta.guid,
            "message received without its object is visible now: the object came with another message");
        if mbid == mb.id {
            show(tx, mb, &g.msg);
        } else if let Some(mut other) = tx.mailbox(&mbid)? {
            show(tx, &mut other, &g.msg);
            tx.put_mailbox(&other);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn overlay_is_read_through_and_reaches_sled_every_n_commits() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("u").unwrap();
        tree.insert("a1", "old").unwrap();
        tree.insert("a2", "gone").unwrap();
        let ix = Overlaid::new(tree.clone());
        ix.commit(vec![
            kv("a1", Some("new")),
            kv("a2", None),
            kv("a3", Some("x")),
        ])
        .unwrap();
        // Readers see the commit at once; sled does not have it yet.
        assert_eq!(ix.get(b"a1").unwrap(), Some(b"new".to_vec()));
        assert_eq!(ix.get(b"a2").unwrap(), None);
        assert_eq!(tree.get("a2").unwrap().as_deref(), Some(&b"gone"[..]));
        let keys: Vec<Vec<u8>> = ix
            .scan_prefix(b"a")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a1".to_vec(), b"a3".to_vec()]);
        assert_eq!(ix.range_keys(b"a2", b"a9").unwrap(), vec![b"a3".to_vec()]);
        for i in 1..INDEX_FLUSH_COMMITS {
            assert_eq!(ix.pending_len(), 3, "commit {i}: still pending");
            ix.commit(Vec::new()).unwrap();
        }
        // The Nth commit applied everything in one sled batch.
        assert_eq!(ix.pending_len(), 0);
        assert_eq!(tree.get("a1").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(tree.get("a2").unwrap(), None);
        assert_eq!(tree.get("a3").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(ix.range_keys(b"a0", b"a9").unwrap().len(), 2);
    }

    #[test]
    fn a_large_commit_is_applied_at_once_and_flush_empties_the_overlay() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("u").unwrap();
        let ix = Overlaid::new(tree.clone());
        let big: Vec<_> = (0..=INDEX_FLUSH_KEYS)
            .map(|i| (format!("k{i:05}").into_bytes(), Some(vec![1])))
            .collect();
        ix.commit(big).unwrap();
        assert_eq!(ix.pending_len(), 0);
        assert_eq!(tree.len(), INDEX_FLUSH_KEYS + 1);
        ix.commit(vec![kv("z", Some("1"))]).unwrap();
        assert_eq!(ix.pending_len(), 1);
        ix.flush().unwrap();
        assert_eq!(ix.pending_len(), 0);
        assert_eq!(tree.get("z").unwrap().as_deref(), Some(&b"1"[..]));
    }
}
