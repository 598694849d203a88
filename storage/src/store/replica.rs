//! What replication uses: the change log since a version vector (with scan cursors), a
//! peer's records and objects applied, the merge resolver's writes, ghosts.

use super::*;
use crate::index;
use crate::record::Record;
use crate::writer::{Reply, Req};
use crate::{log, pack, Result};
use std::collections::HashSet;

/// Every record before `at` is covered by `vv` (the peer had it, or the scan returned it), and
/// `at` is where the record `last` (the scan's last returned one) starts: a later scan whose
/// version vector covers `vv` starts there, after checking that `last` is still at `at` (a
/// purge rewrites segments, which moves every offset).
#[derive(Clone, Debug)]
pub(super) struct ScanCursor {
    vv: VersionVector,
    at: log::Pos,
    last: (NodeId, u64),
}

/// Cursors kept per user: a few peers and `node sync` at once.
pub(super) const SCAN_CURSORS: usize = 8;

/// Whether `have` holds every record `vv` counts.
fn covers(have: &VersionVector, vv: &VersionVector) -> bool {
    vv.iter()
        .all(|(o, s)| have.get(o).copied().unwrap_or(0) >= *s)
}

/// One `scan_records` pass: what it returns, and what it learns on the way.
struct Scan<'a> {
    have: &'a VersionVector,
    limit: usize,
    /// Whether the scan started at a cursor (then segments are not read from their start).
    from_cursor: bool,
    /// The record the cursor's position must still hold, until the first entry is seen.
    expect_first: Option<(NodeId, u64)>,
    /// The first entry was not the cursor's record: a purge moved the offsets.
    stale: bool,
    /// Records `have` lacks, in log order.
    out: Vec<Record>,
    /// Where the last record of `out` starts.
    last_at: Option<log::Pos>,
    /// The segment being read from its start, with the highest sequence per origin so far.
    current: Option<(u32, VersionVector)>,
    /// Segments read past their end, with their maxima.
    finished: Vec<(u32, VersionVector)>,
}

impl<'a> Scan<'a> {
    fn new(have: &'a VersionVector, limit: usize, cursor: Option<&ScanCursor>) -> Scan<'a> {
        Scan {
            have,
            limit,
            from_cursor: cursor.is_some(),
            expect_first: cursor.map(|c| c.last),
            stale: false,
            out: Vec::new(),
            last_at: None,
            current: None,
            finished: Vec::new(),
        }
    }

    /// One log entry at `(seg, off)`; false stops the scan.
    fn visit(&mut self, (seg, off): log::Pos, e: log::Entry) -> bool {
        if let Some(want) = self.expect_first.take() {
            if !matches!(&e, log::Entry::Record(r) if (r.origin, r.seq) == want) {
                self.stale = true;
                return false;
            }
        }
        // Per-segment maxima are only known for segments read from their start.
        if !self.from_cursor && self.current.as_ref().is_none_or(|(s, _)| *s != seg) {
            if let Some(done) = self.current.take() {
                self.finished.push(done);
            }
            self.current = Some((seg, VersionVector::new()));
        }
        let log::Entry::Record(r) = e else {
            return true;
        };
        if let Some((_, max)) = self.current.as_mut() {
            let m = max.entry(r.origin).or_insert(0);
            *m = (*m).max(r.seq);
        }
        if r.seq > self.have.get(&r.origin).copied().unwrap_or(0) {
            self.last_at = Some((seg, off));
            self.out.push(r);
        }
        self.out.len() < self.limit
    }
}

impl UserStore {
    /// Ticks after every durable change to this user (local or replicated): sessions (IDLE,
    /// untagged EXISTS/EXPUNGE/FETCH) and the replication shipper wait on it.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.core.watch_tx.subscribe()
    }

    pub fn version_vector(&self) -> Result<VersionVector> {
        Ok(self.core.view().meta()?.vv)
    }

    /// Records this node has that `have` lacks, in log order, at most `limit`.
    pub fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>> {
        if let Some(recs) = self.core.recent.lock().since(have, limit) {
            return Ok(recs);
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cursor = self
            .cursors
            .lock()
            .iter()
            .filter(|c| covers(have, &c.vv))
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
        let meta = self.core.view().meta()?;
        let known = self.segment_max.lock().clone();
        let mut scan = Scan::new(have, limit, cursor);
        // Only what is committed (the checkpoint), never a batch still being written; closed
        // segments whose every record `have` already has are skipped.
        log::read_entries_while(
            &self.core.dir.join("log"),
            &self.core.name,
            cursor.map_or((0, 0), |c| c.at),
            Some((meta.log_seg, meta.log_off)),
            // (Never the cursor's own segment: its first entry is checked.)
            |seg| {
                cursor.is_none_or(|c| c.at.0 != seg)
                    && known.get(&seg).is_some_and(|vv| covers(have, vv))
            },
            |_, at, e| Ok(scan.visit(at, e)),
        )?;
        if scan.stale || scan.expect_first.is_some() {
            return Ok(None);
        }
        // Closed segments read to their end: remember the highest sequence per origin in each.
        {
            let mut known = self.segment_max.lock();
            for (seg, max) in scan.finished {
                if seg < meta.log_seg {
                    known.insert(seg, max);
                }
            }
        }
        if let (Some(at), Some(r)) = (scan.last_at, scan.out.last()) {
            self.remember_cursor(have, &scan.out, at, (r.origin, r.seq));
        }
        Ok(Some(scan.out))
    }

    /// Keeps where a scan stopped, so the next batch for the same peer starts there.
    fn remember_cursor(
        &self,
        have: &VersionVector,
        out: &[Record],
        at: log::Pos,
        last: (NodeId, u64),
    ) {
        let mut vv = have.clone();
        for r in out {
            let m = vv.entry(r.origin).or_insert(0);
            *m = (*m).max(r.seq);
        }
        let mut cursors = self.cursors.lock();
        if cursors.len() >= SCAN_CURSORS {
            cursors.pop_front();
        }
        cursors.push_back(ScanCursor { vv, at, last });
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
            .core
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
        self.core.view().ghosts()
    }

    pub fn has_object(&self, object: &ObjectId) -> Result<bool> {
        Ok(self
            .core
            .view()
            .get_raw(&index::k_object(object))?
            .is_some())
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
}
