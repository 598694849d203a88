//! [`Recent`]: the newest committed records and small objects of a user, kept in memory for
//! replication shippers (a peer nearly caught up is served without reading the log). Part of
//! the user core ([`crate::user_core`]): the writer pushes to it after a durable commit, purge
//! empties its objects, the store's readers read it.

use crate::pack;
use crate::record::Record;
use crate::types::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Records kept per user.
const RECENT_MAX: usize = 1024;
/// Per user: the newest objects of about one replication batch.
const RECENT_OBJECTS_MAX: usize = 256;
const RECENT_OBJECT_BYTES_MAX: usize = 1 << 20;
/// A larger object is read from disk when shipped (its copy would cost more than the read).
const RECENT_OBJECT_MAX: usize = 64 << 10;

/// A bounded tail of the log in memory. Every record not held here has, for its origin, a
/// sequence number at most `base[origin]`.
///
/// It also holds the stored (compressed) form of the newest small objects: a replication
/// shipper sends a just-delivered message right after its commit, and without these it read
/// the object back from the log (index lookup, pread, frame check) on every delivery. Bounded
/// per user and, across all users, by [`crate::shared::RECENT_OBJECTS_TOTAL`]; a miss reads the disk.
pub(crate) struct Recent {
    base: VersionVector,
    records: std::collections::VecDeque<Record>,
    objects: std::collections::VecDeque<pack::Prepared>,
    object_bytes: usize,
    /// Bytes held by every user's `objects` (shared with all users of the store).
    total: Arc<std::sync::atomic::AtomicUsize>,
    /// The bound on `total` ([`crate::StoreConfig::recent_objects_bytes`]).
    total_max: usize,
}

impl Recent {
    /// An empty tail over a log whose records up to `base` are on disk only.
    pub(crate) fn new(
        base: VersionVector,
        total: Arc<std::sync::atomic::AtomicUsize>,
        total_max: usize,
    ) -> Recent {
        Recent {
            base,
            records: Default::default(),
            objects: Default::default(),
            object_bytes: 0,
            total,
            total_max,
        }
    }

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
    pub(crate) fn pop_object(&mut self) {
        if let Some(o) = self.objects.pop_front() {
            self.object_bytes -= o.compressed.len();
            self.total.fetch_sub(o.compressed.len(), Ordering::Relaxed);
        }
    }
    pub(crate) fn object(&self, id: &ObjectId) -> Option<pack::Prepared> {
        self.objects.iter().rev().find(|o| o.id == *id).cloned()
    }
    /// A purge dropped objects: none may be served from here any more.
    pub(crate) fn forget_objects(&mut self) {
        while !self.objects.is_empty() {
            self.pop_object();
        }
    }
    /// What `have` lacks, if all of it is held here.
    pub(crate) fn since(&self, have: &VersionVector, limit: usize) -> Option<Vec<Record>> {
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
