//! What replication needs from a node's store, as a narrow trait: the real
//! [`storage::Store`] implements it (see [`crate::storage_adapter`]), and tests use the in-memory
//! log in [`crate::testing`]. Every method may block (disk, fsync): callers run them with
//! `spawn_blocking`.

use std::sync::Arc;
use storage::pack::{Prepared, Verified};
use storage::record::Record;
use storage::{Guid, HlcTime, MailboxId, NodeId, ObjectId, StoreError, VersionVector};

/// What applying a batch of remote records did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records newly applied (re-sent ones already present are not counted).
    pub applied: usize,
    /// Mailboxes where a remote message's UID was taken by a different message here: the
    /// merge policy ([`crate::policy`]) decides who resolves them.
    pub conflicts: Vec<MailboxId>,
}

/// One message as `--full` and the modseq alignment compare it: what every node must agree on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct MessageKey {
    pub uid: u32,
    pub guid: storage::Guid,
    /// Flags in IMAP spelling, sorted.
    pub flags: Vec<String>,
    pub modseq: u64,
}

/// A mailbox's identity and hashes over its messages in UID order: `hash` over (UID, GUID,
/// flags), `modseq_hash` over (UID, modseq). Two hashes, so a difference only in modseqs (which
/// the resolver aligns, see [`crate::align`]) is told from real divergence without a listing.
/// `expunged_hash` covers the tombstones (expunged UIDs: UID, GUID, expunge modseq), whose
/// modseqs QRESYNC's `VANISHED (EARLIER)` answers from and the resolver aligns likewise; kept
/// apart from `hash`, as tombstone sets may differ for good (see [`crate::align`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailboxDigest {
    pub mailbox: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub highestmodseq: u64,
    pub messages: u32,
    pub hash: [u8; 32],
    pub modseq_hash: [u8; 32],
    pub expunged: u32,
    pub expunged_hash: [u8; 32],
}

impl MailboxDigest {
    /// Same messages (UID, GUID, flags) and mailbox identity; modseqs aside.
    pub fn same_content(&self, other: &MailboxDigest) -> bool {
        self.mailbox == other.mailbox
            && self.name == other.name
            && self.uidvalidity == other.uidvalidity
            && self.messages == other.messages
            && self.hash == other.hash
    }
}

/// The digest of a listing (shared by every store implementation so both sides agree), for a
/// store that keeps no tombstones.
pub fn digest_of(
    mailbox: MailboxId,
    name: &str,
    uidvalidity: u32,
    highestmodseq: u64,
    msgs: &[MessageKey],
) -> MailboxDigest {
    digest_with_expunged(mailbox, name, uidvalidity, highestmodseq, msgs, &[])
}

/// The digest of a listing and of the mailbox's tombstones (as [`ReplicaUser::expunged_listing`]
/// lists them).
pub fn digest_with_expunged(
    mailbox: MailboxId,
    name: &str,
    uidvalidity: u32,
    highestmodseq: u64,
    msgs: &[MessageKey],
    expunged: &[MessageKey],
) -> MailboxDigest {
    let mut hx = blake3::Hasher::new();
    for t in expunged {
        hx.update(&t.uid.to_le_bytes());
        hx.update(&t.guid.0);
        hx.update(&t.modseq.to_le_bytes());
    }
    let mut h = blake3::Hasher::new();
    let mut hm = blake3::Hasher::new();
    for m in msgs {
        h.update(&m.uid.to_le_bytes());
        h.update(&m.guid.0);
        for f in &m.flags {
            h.update(&(f.len() as u32).to_le_bytes());
            h.update(f.as_bytes());
        }
        h.update(b"\n");
        hm.update(&m.uid.to_le_bytes());
        hm.update(&m.modseq.to_le_bytes());
    }
    MailboxDigest {
        mailbox,
        name: name.to_string(),
        uidvalidity,
        highestmodseq,
        messages: msgs.len() as u32,
        hash: *h.finalize().as_bytes(),
        modseq_hash: *hm.finalize().as_bytes(),
        expunged: expunged.len() as u32,
        expunged_hash: *hx.finalize().as_bytes(),
    }
}

pub trait ReplicaStore: Send + Sync + 'static {
    fn node_id(&self) -> NodeId;
    /// A fresh time from the node's hybrid logical clock.
    fn now(&self) -> HlcTime;
    /// Merges a peer's time into the clock; Err (with the reason) if the peer is too far ahead.
    fn observe(&self, t: HlcTime) -> Result<(), String>;
    /// Wall-clock milliseconds, for "seconds behind" in status only (never for ordering).
    fn wall_ms(&self) -> u64;
    fn user(&self, name: &str) -> Result<Arc<dyn ReplicaUser>, StoreError>;
    fn list_users(&self) -> Result<Vec<String>, StoreError>;
}

pub trait ReplicaUser: Send + Sync + 'static {
    fn version_vector(&self) -> Result<VersionVector, StoreError>;
    /// A peer holds this node's own records up to `seq`: the store may show them to readers
    /// (`replicated` durability hides them until then).
    fn confirm_own(&self, _seq: u64) {}
    /// Whether some of this node's own records are still hidden from readers, waiting for a
    /// peer to hold them.
    fn has_unconfirmed(&self) -> bool {
        false
    }
    /// Records this node has that `have` lacks, in log order, at most `limit`.
    fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>, StoreError>;
    /// Applies remote records idempotently; durable on return.
    fn apply_remote(&self, records: &[Record]) -> Result<Applied, StoreError>;
    /// `apply_remote` together with the objects that arrived with the records, in their stored
    /// form and verified ([`crate::validate::check_object`]): stored as they came. Objects and
    /// records are durable on return, together; nothing is applied if one record's object is
    /// neither here nor among them.
    fn apply_remote_with_objects(
        &self,
        objects: Vec<Verified>,
        records: &[Record],
    ) -> Result<Applied, StoreError>;
    /// `apply_remote_with_objects` for records whose sender no longer has the objects in
    /// `purged` (it expunged and purged their messages): a message inserted without one of them
    /// is kept as a ghost, never visible, until the record removing it arrives, in this call or
    /// a later one (see `purged`). Stores that never lose objects keep the default (strict).
    fn apply_remote_purged(
        &self,
        objects: Vec<Verified>,
        records: &[Record],
        purged: &std::collections::HashSet<ObjectId>,
    ) -> Result<Applied, StoreError> {
        let _ = purged;
        self.apply_remote_with_objects(objects, records)
    }
    /// Messages kept as ghosts (see `apply_remote_purged`) still waiting for their removal.
    fn ghost_count(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Writes the merge resolution for a mailbox's UID conflicts (an `Op::Renumber` record);
    /// durable on return.
    fn resolve_conflicts(&self, mailbox: MailboxId) -> Result<(), StoreError>;
    /// Mailboxes with UID conflicts waiting for the resolver (pending entries).
    fn conflicted_mailboxes(&self) -> Result<Vec<MailboxId>, StoreError>;
    /// Writes the merge resolution for a mailbox's modseqs (`Op::AlignModseqs`): the listed
    /// messages and HIGHESTMODSEQ take `max(min_modseq, HIGHESTMODSEQ + 1)`. Returns the
    /// mailbox's HIGHESTMODSEQ afterwards, None if the mailbox is gone. Durable on return.
    fn align_modseqs(
        &self,
        mailbox: MailboxId,
        min_modseq: u64,
        guids: &[Guid],
    ) -> Result<Option<u64>, StoreError>;
    /// A mailbox's tombstones (expunged UIDs) in UID order as keys (UID, the GUID the UID held,
    /// no flags, the expunge modseq); None if the mailbox is gone. Stores without tombstones
    /// keep the default (none).
    fn expunged_listing(&self, mailbox: MailboxId) -> Result<Option<Vec<MessageKey>>, StoreError> {
        let _ = mailbox;
        Ok(Some(Vec::new()))
    }
    /// Writes the merge resolution for a mailbox's expunge modseqs (`Op::AlignExpunged`): the
    /// tombstones of `uids` and HIGHESTMODSEQ take `max(min_modseq, HIGHESTMODSEQ + 1)`.
    /// Returns HIGHESTMODSEQ afterwards, None if the mailbox is gone. Durable on return.
    fn align_expunged(
        &self,
        mailbox: MailboxId,
        min_modseq: u64,
        uids: &[u32],
    ) -> Result<Option<u64>, StoreError> {
        let _ = (mailbox, min_modseq, uids);
        Err(StoreError::Other(
            "this store keeps no tombstones to align".into(),
        ))
    }
    fn has_object(&self, id: &ObjectId) -> Result<bool, StoreError>;
    /// Stores a peer's object after checking its hash; durable on return.
    fn put_object(&self, raw: &[u8]) -> Result<ObjectId, StoreError>;
    /// Stores a peer's verified object (stored form) on its own; durable on return.
    fn put_verified(&self, object: Verified) -> Result<ObjectId, StoreError>;
    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError>;
    /// The object as stored (zstd body, raw length), not decompressed: what is shipped.
    fn read_object_stored(&self, id: &ObjectId) -> Result<Prepared, StoreError>;
    /// Ticks after every durable change to this user.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Every mailbox with the digest of its messages (for `sync --full`).
    fn mailbox_digests(&self) -> Result<Vec<MailboxDigest>, StoreError>;
    /// A mailbox's messages in UID order (for `sync --full`, only where digests differ).
    fn mailbox_listing(&self, mailbox: MailboxId) -> Result<Vec<MessageKey>, StoreError>;
    /// Rebuilds this user's index from the change log (what `--full` does when it finds this
    /// node diverged: the log is the truth, the index a view of it).
    fn rebuild_index(&self) -> Result<(), StoreError>;
}

/// Objects a record needs on the receiving side.
pub fn objects_of(r: &Record) -> Vec<ObjectId> {
    use storage::record::Op;
    match &r.op {
        Op::Append { entry, .. } => vec![entry.object],
        Op::Copy { entries, .. } | Op::Move { entries, .. } => {
            entries.iter().map(|(_, e)| e.object).collect()
        }
        _ => Vec::new(),
    }
}

/// Bytes of message data a record brings (for "bytes behind").
pub fn bytes_of(r: &Record) -> u64 {
    use storage::record::Op;
    match &r.op {
        Op::Append { entry, .. } => entry.size,
        Op::Copy { entries, .. } | Op::Move { entries, .. } => {
            entries.iter().map(|(_, e)| e.size).sum()
        }
        _ => 0,
    }
}
