//! Reads a catching-up user's backlog a full batch at a time while it is shipped in smaller
//! batches. `records_since` for a peer far behind reads the log from the start of the first
//! segment the peer lacks, so its cost barely depends on how many records it returns: shipping
//! 100-record batches while clients are busy (see `pacing`) would read the same stretch of log
//! five times over. This wrapper keeps the last read and serves the following smaller batches
//! from it.
//!
//! Why serving from the kept read is exact: it was the first `n` records, in log order, that a
//! version vector `old` lacked, i.e. every such record in a prefix of the log. A later `have`
//! that dominates `old` lacks a subset of those; within that prefix they are exactly the kept
//! records `have` lacks, in order; records appended since lie after the prefix. So as long as
//! the filtered kept records number at least `limit`, their first `limit` are what the store
//! would answer. Otherwise (or if `have` does not dominate `old`: a peer that lost data) the
//! store is read again.

use crate::store_api::{Applied, MailboxDigest, MessageKey, ReplicaUser};
use parking_lot::Mutex;
use std::sync::Arc;
use storage::pack::{Prepared, Verified};
use storage::record::Record;
use storage::{Guid, MailboxId, ObjectId, StoreError, VersionVector};

pub(crate) struct ReadAhead {
    inner: Arc<dyn ReplicaUser>,
    /// Records per store read.
    read: usize,
    kept: Mutex<Option<Kept>>,
}

struct Kept {
    have: VersionVector,
    records: Vec<Record>,
}

fn dominates(a: &VersionVector, b: &VersionVector) -> bool {
    b.iter().all(|(o, s)| a.get(o).copied().unwrap_or(0) >= *s)
}

impl ReadAhead {
    pub(crate) fn new(inner: Arc<dyn ReplicaUser>, read: usize) -> ReadAhead {
        ReadAhead {
            inner,
            read: read.max(1),
            kept: Mutex::new(None),
        }
    }
}

impl ReplicaUser for ReadAhead {
    fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>, StoreError> {
        let mut kept = self.kept.lock();
        if let Some(k) = kept.as_ref().filter(|k| dominates(have, &k.have)) {
            let lacking: Vec<&Record> = k
                .records
                .iter()
                .filter(|r| r.seq > have.get(&r.origin).copied().unwrap_or(0))
                .collect();
            if lacking.len() >= limit {
                return Ok(lacking.into_iter().take(limit).cloned().collect());
            }
        }
        let records = self.inner.records_since(have, limit.max(self.read))?;
        let out = records.iter().take(limit).cloned().collect();
        *kept = Some(Kept {
            have: have.clone(),
            records,
        });
        Ok(out)
    }

    fn version_vector(&self) -> Result<VersionVector, StoreError> {
        self.inner.version_vector()
    }
    fn apply_remote(&self, records: &[Record]) -> Result<Applied, StoreError> {
        self.inner.apply_remote(records)
    }
    fn apply_remote_with_objects(
        &self,
        objects: Vec<Verified>,
        records: &[Record],
    ) -> Result<Applied, StoreError> {
        self.inner.apply_remote_with_objects(objects, records)
    }
    fn resolve_conflicts(&self, mailbox: MailboxId) -> Result<(), StoreError> {
        self.inner.resolve_conflicts(mailbox)
    }
    fn align_modseqs(
        &self,
        mailbox: MailboxId,
        min_modseq: u64,
        guids: &[Guid],
    ) -> Result<Option<u64>, StoreError> {
        self.inner.align_modseqs(mailbox, min_modseq, guids)
    }
    fn has_object(&self, id: &ObjectId) -> Result<bool, StoreError> {
        self.inner.has_object(id)
    }
    fn put_object(&self, raw: &[u8]) -> Result<ObjectId, StoreError> {
        self.inner.put_object(raw)
    }
    fn put_verified(&self, object: Verified) -> Result<ObjectId, StoreError> {
        self.inner.put_verified(object)
    }
    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        self.inner.read_object(id)
    }
    fn read_object_stored(&self, id: &ObjectId) -> Result<Prepared, StoreError> {
        self.inner.read_object_stored(id)
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch()
    }
    fn mailbox_digests(&self) -> Result<Vec<MailboxDigest>, StoreError> {
        self.inner.mailbox_digests()
    }
    fn mailbox_listing(&self, mailbox: MailboxId) -> Result<Vec<MessageKey>, StoreError> {
        self.inner.mailbox_listing(mailbox)
    }
    fn rebuild_index(&self) -> Result<(), StoreError> {
        self.inner.rebuild_index()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use storage::record::Op;
    use storage::HlcTime;

    /// A user whose log is `log` (records of origins 1 and 2 interleaved); counts store reads.
    struct Log {
        log: Mutex<Vec<Record>>,
        reads: AtomicUsize,
    }

    fn rec(origin: u32, seq: u64) -> Record {
        Record {
            origin,
            seq,
            time: HlcTime {
                wall_ms: seq,
                logical: 0,
                node: origin,
            },
            op: Op::MailboxCreate {
                mailbox: Guid([origin as u8; 16]),
                name: format!("m{origin}-{seq}"),
                uidvalidity: 1,
                special_use: None,
            },
        }
    }

    impl Log {
        fn since(&self, have: &VersionVector, limit: usize) -> Vec<Record> {
            self.log
                .lock()
                .iter()
                .filter(|r| r.seq > have.get(&r.origin).copied().unwrap_or(0))
                .take(limit)
                .cloned()
                .collect()
        }
    }

    fn vv(pairs: &[(u32, u64)]) -> VersionVector {
        pairs.iter().copied().collect()
    }

    fn acked(have: &mut VersionVector, sent: &[Record]) {
        for r in sent {
            let e = have.entry(r.origin).or_insert(0);
            *e = (*e).max(r.seq);
        }
    }

    #[test]
    fn small_batches_are_served_from_one_read_and_equal_the_store_answer() {
        let log = Arc::new(Log {
            log: Mutex::new(
                (1..=30)
                    .flat_map(|s| [rec(1, s), rec(2, s)])
                    .collect::<Vec<_>>(),
            ),
            reads: AtomicUsize::new(0),
        });
        let ra = ReadAhead::new(log.clone(), 20);
        let mut have = vv(&[(2, 5)]);
        let mut batches = 0;
        loop {
            let want = log.since(&have, 5);
            let got = ra.records_since(&have, 5).unwrap();
            assert_eq!(
                got.iter().map(|r| (r.origin, r.seq)).collect::<Vec<_>>(),
                want.iter().map(|r| (r.origin, r.seq)).collect::<Vec<_>>()
            );
            if got.is_empty() {
                break;
            }
            acked(&mut have, &got);
            batches += 1;
            // Appended meanwhile: lands after the kept prefix.
            if batches == 3 {
                log.log.lock().push(rec(1, 31));
            }
        }
        // 56 records in batches of 5: 12 batches from reads of 20, 20, 16 and 1, and a last
        // read that finds nothing more (one read per batch without the wrapper: 13).
        assert_eq!(batches, 12);
        assert_eq!(log.reads.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_peer_that_went_back_is_read_again() {
        let log = Arc::new(Log {
            log: Mutex::new((1..=10).map(|s| rec(1, s)).collect()),
            reads: AtomicUsize::new(0),
        });
        let ra = ReadAhead::new(log.clone(), 10);
        let first = ra.records_since(&vv(&[(1, 4)]), 2).unwrap();
        assert_eq!(first[0].seq, 5);
        // The peer lost records: its vector is behind the kept read's.
        let again = ra.records_since(&vv(&[(1, 1)]), 2).unwrap();
        assert_eq!(again.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 2);
    }

    impl ReplicaUser for Log {
        fn records_since(
            &self,
            have: &VersionVector,
            limit: usize,
        ) -> Result<Vec<Record>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.since(have, limit))
        }
        fn version_vector(&self) -> Result<VersionVector, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn apply_remote(&self, _: &[Record]) -> Result<Applied, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn apply_remote_with_objects(
            &self,
            _: Vec<Verified>,
            _: &[Record],
        ) -> Result<Applied, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn resolve_conflicts(&self, _: MailboxId) -> Result<(), StoreError> {
            unimplemented!("not used by these tests")
        }
        fn align_modseqs(
            &self,
            _: MailboxId,
            _: u64,
            _: &[Guid],
        ) -> Result<Option<u64>, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn has_object(&self, _: &ObjectId) -> Result<bool, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn put_object(&self, _: &[u8]) -> Result<ObjectId, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn put_verified(&self, _: Verified) -> Result<ObjectId, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn read_object(&self, _: &ObjectId) -> Result<Vec<u8>, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn read_object_stored(&self, _: &ObjectId) -> Result<Prepared, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
            unimplemented!("not used by these tests")
        }
        fn mailbox_digests(&self) -> Result<Vec<MailboxDigest>, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn mailbox_listing(&self, _: MailboxId) -> Result<Vec<MessageKey>, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn rebuild_index(&self) -> Result<(), StoreError> {
            unimplemented!("not used by these tests")
        }
    }
}
