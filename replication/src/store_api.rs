//! What replication needs from a node's store, as a narrow trait: the real
//! [`storage::Store`] implements it (see [`crate::storage_adapter`]), and tests use the in-memory
//! log in [`crate::testing`]. Every method may block (disk, fsync): callers run them with
//! `spawn_blocking`.

use std::sync::Arc;
use storage::record::Record;
use storage::{HlcTime, MailboxId, NodeId, ObjectId, StoreError, VersionVector};

/// What applying a batch of remote records did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records newly applied (re-sent ones already present are not counted).
    pub applied: usize,
    /// Mailboxes where a remote message's UID was taken by a different message here: the
    /// merge policy ([`crate::policy`]) decides who resolves them.
    pub conflicts: Vec<MailboxId>,
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
    /// Records this node has that `have` lacks, in log order, at most `limit`.
    fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>, StoreError>;
    /// Applies remote records idempotently; durable on return.
    fn apply_remote(&self, records: &[Record]) -> Result<Applied, StoreError>;
    /// Writes the merge resolution for a mailbox's UID conflicts (an `Op::Renumber` record);
    /// durable on return.
    fn resolve_conflicts(&self, mailbox: MailboxId) -> Result<(), StoreError>;
    fn has_object(&self, id: &ObjectId) -> Result<bool, StoreError>;
    /// Stores a peer's object after checking its hash; durable on return.
    fn put_object(&self, raw: &[u8]) -> Result<ObjectId, StoreError>;
    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError>;
    /// Ticks after every durable change to this user.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;
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
