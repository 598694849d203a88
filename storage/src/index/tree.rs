//! The key-value tree under the index, behind the narrow [`IndexTree`] trait (sled in
//! production, [`EmptyTree`] as the base of a rebuild), and [`Overlaid`], which holds the last
//! few durable group commits in memory before one sled batch applies them.

use crate::error::{Result, StoreError};
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
/// crash loses the overlay and leaves sled at an older [`super::Meta`] checkpoint (always applied in
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

/// `base` (a scan of `prefix`, in key order) with the changes under `prefix` laid over it
/// (None deletes), in key order: what a scan sees through an overlay of not yet applied
/// changes. A merge of the two sorted sequences: a SELECT of a large mailbox scans every
/// message key, and rebuilding the scan as a map cost more than the scan itself.
pub(super) fn laid_over(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut over = changes
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .peekable();
    if over.peek().is_none() {
        return base;
    }
    let mut out = Vec::with_capacity(base.len());
    let mut base = base.into_iter().peekable();
    loop {
        let take_base = match (base.peek(), over.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((bk, _)), Some((ok, _))) => {
                if bk < *ok {
                    true
                } else {
                    if bk == *ok {
                        base.next(); // the overlay's value (or deletion) wins
                    }
                    false
                }
            }
        };
        if take_base {
            out.extend(base.next());
        } else if let Some((k, Some(v))) = over.next() {
            out.push((k.clone(), v.clone()));
        }
    }
    out
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

    proptest::proptest! {
        /// The merge gives what laying the changes over a map of the base gives.
        #[test]
        fn laid_over_is_the_map_overlay(
            base in proptest::collection::btree_map(0u8..40, 0u8..3, 0..30),
            changes in proptest::collection::btree_map(0u8..40, proptest::option::of(0u8..3), 0..30),
        ) {
            let key = |k: u8| vec![b'a' + k / 20, k];
            let base: Vec<_> = base.into_iter().map(|(k, v)| (key(k), vec![v])).collect();
            let changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
                changes.into_iter().map(|(k, v)| (key(k), v.map(|v| vec![v]))).collect();
            let in_a: Vec<_> = base.iter().filter(|(k, _)| k[0] == b'a').cloned().collect();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = in_a.iter().cloned().collect();
            for (k, v) in changes.iter().filter(|(k, _)| k[0] == b'a') {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
            let want: Vec<_> = model.into_iter().collect();
            proptest::prop_assert_eq!(laid_over(in_a, &changes, b"a"), want);
        }
    }
}
