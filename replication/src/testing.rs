//! An in-memory [`ReplicaStore`]: a per-user change log with version vectors, objects, and a
//! minimal index (UID -> GUID per mailbox) that detects UID conflicts and applies renumbering.
//! Modseqs are given the way `storage::index::apply` gives them (each applied change takes the
//! mailbox's next modseq), so two nodes applying the same records in different orders diverge
//! in modseqs here too, and the resolver's `AlignModseqs` evens them the same way.
//! It lets replication be tested end to end without disk; it is a test double, not a store.

use crate::store_api::{digest_of, Applied, MailboxDigest, MessageKey, ReplicaStore, ReplicaUser};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use storage::hlc::{Hlc, ManualClock, WallClock};
use storage::pack::{Prepared, Verified};
use storage::record::{NewEntry, Op, Record};
use storage::{Flags, Guid, HlcTime, MailboxId, NodeId, ObjectId, StoreError, VersionVector};

pub struct MemStore {
    node: NodeId,
    hlc: Arc<Hlc>,
    wall: Arc<dyn WallClock>,
    users: Mutex<HashMap<String, Arc<MemUser>>>,
}

impl MemStore {
    pub fn new(node: NodeId) -> Arc<MemStore> {
        MemStore::with_clock(node, Arc::new(storage::hlc::SystemClock))
    }
    pub fn with_manual_clock(node: NodeId, ms: u64) -> (Arc<MemStore>, Arc<ManualClock>) {
        let c = ManualClock::new(ms);
        (MemStore::with_clock(node, c.clone()), c)
    }
    pub fn with_clock(node: NodeId, wall: Arc<dyn WallClock>) -> Arc<MemStore> {
        Arc::new(MemStore {
            node,
            hlc: Arc::new(Hlc::new(node, wall.clone(), 60_000)),
            wall,
            users: Mutex::new(HashMap::new()),
        })
    }
    pub fn mem_user(&self, name: &str) -> Arc<MemUser> {
        self.users
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(MemUser {
                    node: self.node,
                    hlc: self.hlc.clone(),
                    state: Mutex::new(MemState::default()),
                    tick: tokio::sync::watch::channel(0).0,
                })
            })
            .clone()
    }
}

impl ReplicaStore for MemStore {
    fn node_id(&self) -> NodeId {
        self.node
    }
    fn now(&self) -> HlcTime {
        self.hlc.now()
    }
    fn observe(&self, t: HlcTime) -> Result<(), String> {
        self.hlc.observe(t).map_err(|e| e.to_string())
    }
    fn wall_ms(&self) -> u64 {
        self.wall.now_ms()
    }
    fn user(&self, name: &str) -> Result<Arc<dyn ReplicaUser>, StoreError> {
        if name.is_empty() || name.contains('/') || name.contains("..") {
            return Err(StoreError::InvalidUser(name.into()));
        }
        Ok(self.mem_user(name))
    }
    fn list_users(&self) -> Result<Vec<String>, StoreError> {
        let mut v: Vec<_> = self.users.lock().keys().cloned().collect();
        v.sort();
        Ok(v)
    }
}

#[derive(Default)]
struct MemState {
    log: Vec<Record>,
    vv: VersionVector,
    objects: HashMap<ObjectId, Vec<u8>>,
    /// mailbox -> uid -> guid
    index: BTreeMap<MailboxId, BTreeMap<u32, Guid>>,
    /// mailbox -> highest UID ever seen (UIDs are never reused)
    uid_high: BTreeMap<MailboxId, u32>,
    /// remote entries whose UID was taken: mailbox -> guid -> uid wanted
    pending: BTreeMap<MailboxId, BTreeMap<Guid, u32>>,
    /// mailbox -> (HIGHESTMODSEQ, uid -> modseq of each live message)
    modseqs: BTreeMap<MailboxId, MailboxModseqs>,
}

/// A mailbox's HIGHESTMODSEQ and its live messages' modseqs by UID.
pub type MailboxModseqs = (u64, BTreeMap<u32, u64>);

/// Comparable state of one user: every record by (origin, seq), and the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemDump {
    pub records: BTreeMap<(NodeId, u64), Record>,
    pub index: BTreeMap<MailboxId, BTreeMap<u32, Guid>>,
    pub pending: usize,
    pub objects: BTreeSet<ObjectId>,
    pub modseqs: BTreeMap<MailboxId, MailboxModseqs>,
}

pub struct MemUser {
    node: NodeId,
    hlc: Arc<Hlc>,
    state: Mutex<MemState>,
    tick: tokio::sync::watch::Sender<u64>,
}

impl MemState {
    fn high(&self, mb: &MailboxId) -> u32 {
        self.uid_high.get(mb).copied().unwrap_or(0)
    }
    fn mailbox_modseqs(&mut self, mb: MailboxId) -> &mut MailboxModseqs {
        // A mailbox starts at HIGHESTMODSEQ 1, as the store's MailboxCreate makes it.
        self.modseqs.entry(mb).or_insert((1, BTreeMap::new()))
    }
    /// The mailbox's next modseq (storage's `bump`).
    fn bump(&mut self, mb: MailboxId) -> u64 {
        let m = self.mailbox_modseqs(mb);
        m.0 += 1;
        m.0
    }
    fn place(
        &mut self,
        mb: MailboxId,
        guid: Guid,
        uid: u32,
        modseq: u64,
        conflicts: &mut BTreeSet<MailboxId>,
    ) {
        let h = self.uid_high.entry(mb).or_insert(0);
        *h = (*h).max(uid);
        let idx = self.index.entry(mb).or_default();
        match idx.get(&uid) {
            Some(g) if *g == guid => {}
            Some(_) => {
                self.pending.entry(mb).or_default().insert(guid, uid);
                conflicts.insert(mb);
            }
            None => {
                idx.insert(uid, guid);
                self.mailbox_modseqs(mb).1.insert(uid, modseq);
            }
        }
    }
    /// Removes a message (live or pending); true if it was live.
    fn remove(&mut self, mb: &MailboxId, guid: &Guid) -> bool {
        let mut gone = Vec::new();
        if let Some(idx) = self.index.get_mut(mb) {
            idx.retain(|uid, g| {
                if g == guid {
                    gone.push(*uid);
                }
                g != guid
            });
        }
        if let Some(m) = self.modseqs.get_mut(mb) {
            for uid in &gone {
                m.1.remove(uid);
            }
        }
        if let Some(p) = self.pending.get_mut(mb) {
            p.remove(guid);
        }
        !gone.is_empty()
    }
    /// Expunges: one new modseq for the mailbox if anything live went (storage's `expunge`).
    fn expunge(&mut self, mb: &MailboxId, guids: &[Guid]) {
        let mut any = false;
        for g in guids {
            any |= self.remove(mb, g);
        }
        if any {
            self.bump(*mb);
        }
    }
    fn apply(&mut self, r: &Record, conflicts: &mut BTreeSet<MailboxId>) {
        match &r.op {
            Op::Append { mailbox, entry, .. } => {
                let ms = self.bump(*mailbox);
                self.place(*mailbox, entry.guid, entry.uid, ms, conflicts)
            }
            Op::Copy { to, entries, .. } => {
                let ms = self.bump(*to);
                for (_, e) in entries {
                    self.place(*to, e.guid, e.uid, ms, conflicts)
                }
            }
            Op::Move {
                from, to, entries, ..
            } => {
                let ms = self.bump(*to);
                for (_, e) in entries {
                    self.place(*to, e.guid, e.uid, ms, conflicts)
                }
                let sources: Vec<Guid> = entries.iter().map(|(g, _)| *g).collect();
                self.expunge(from, &sources);
            }
            Op::Expunge {
                mailbox, messages, ..
            } => self.expunge(mailbox, messages),
            Op::Renumber { mailbox, moves, .. } => {
                let ms = self.bump(*mailbox);
                for (g, _) in moves {
                    self.remove(mailbox, g);
                }
                for (g, uid) in moves {
                    self.place(*mailbox, *g, *uid, ms, conflicts);
                }
            }
            Op::UidValidity { mailbox, .. } => {
                self.bump(*mailbox);
            }
            Op::AlignModseqs {
                mailbox,
                modseq,
                messages,
            } => {
                let live: Vec<u32> = self
                    .index
                    .get(mailbox)
                    .map(|idx| {
                        idx.iter()
                            .filter(|(_, g)| messages.contains(g))
                            .map(|(uid, _)| *uid)
                            .collect()
                    })
                    .unwrap_or_default();
                let m = self.mailbox_modseqs(*mailbox);
                let ms = (*modseq).max(m.0 + 1);
                for uid in live {
                    m.1.insert(uid, ms);
                }
                m.0 = ms;
            }
            _ => {}
        }
        let e = self.vv.entry(r.origin).or_insert(0);
        *e = (*e).max(r.seq);
        self.log.push(r.clone());
    }
}

impl MemUser {
    fn write_local(&self, st: &mut MemState, op: Op) -> Record {
        let seq = st.vv.get(&self.node).copied().unwrap_or(0) + 1;
        let r = Record {
            origin: self.node,
            seq,
            time: self.hlc.now(),
            op,
        };
        st.apply(&r, &mut BTreeSet::new());
        r
    }

    fn bump(&self) {
        self.tick.send_modify(|t| *t += 1);
    }

    /// A local append: next free UID in the mailbox, a fresh GUID from the clock.
    pub fn append(&self, mailbox: MailboxId, raw: &[u8]) -> (u32, Guid) {
        let mut st = self.state.lock();
        let object = ObjectId::of(raw);
        st.objects.insert(object, raw.to_vec());
        let uid = st.high(&mailbox) + 1;
        let t = self.hlc.now();
        let mut g = [0u8; 16];
        g[..8].copy_from_slice(&t.wall_ms.to_be_bytes());
        g[8..12].copy_from_slice(&t.logical.to_be_bytes());
        g[12..].copy_from_slice(&t.node.to_be_bytes());
        let guid = Guid(g);
        let entry = NewEntry {
            guid,
            uid,
            object,
            size: raw.len() as u64,
            internal_date: 0,
            internal_date_tz_min: 0,
            flags: Flags::new(),
        };
        self.write_local(
            &mut st,
            Op::Append {
                mailbox,
                entry,
                modseq: 1,
                delivery_key: None,
            },
        );
        drop(st);
        self.bump();
        (uid, guid)
    }

    pub fn expunge(&self, mailbox: MailboxId, guids: Vec<Guid>) {
        let mut st = self.state.lock();
        self.write_local(
            &mut st,
            Op::Expunge {
                mailbox,
                messages: guids,
                modseq: 1,
            },
        );
        drop(st);
        self.bump();
    }

    pub fn subscribe(&self, name: &str) {
        let mut st = self.state.lock();
        self.write_local(&mut st, Op::Subscribe { name: name.into() });
        drop(st);
        self.bump();
    }

    pub fn dump(&self) -> MemDump {
        let st = self.state.lock();
        MemDump {
            records: st
                .log
                .iter()
                .map(|r| ((r.origin, r.seq), r.clone()))
                .collect(),
            index: st.index.clone(),
            pending: st.pending.values().map(|p| p.len()).sum(),
            objects: st.objects.keys().copied().collect(),
            modseqs: st.modseqs.clone(),
        }
    }
}

impl ReplicaUser for MemUser {
    fn version_vector(&self) -> Result<VersionVector, StoreError> {
        Ok(self.state.lock().vv.clone())
    }
    fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>, StoreError> {
        let st = self.state.lock();
        Ok(st
            .log
            .iter()
            .filter(|r| r.seq > have.get(&r.origin).copied().unwrap_or(0))
            .take(limit)
            .cloned()
            .collect())
    }
    fn apply_remote(&self, records: &[Record]) -> Result<Applied, StoreError> {
        self.apply_remote_with_objects(Vec::new(), records)
    }
    fn apply_remote_with_objects(
        &self,
        objects: Vec<Verified>,
        records: &[Record],
    ) -> Result<Applied, StoreError> {
        // Verified objects decompress (that is what verifying checked); this double keeps raw
        // bodies.
        let carried: BTreeMap<ObjectId, Vec<u8>> = objects
            .iter()
            .map(|v| Ok((v.id(), v.to_raw()?)))
            .collect::<Result<_, StoreError>>()?;
        let mut st = self.state.lock();
        // All or nothing, like the real store: check every record before storing anything.
        for r in records {
            for o in crate::store_api::objects_of(r) {
                let known = st.vv.get(&r.origin).copied().unwrap_or(0) >= r.seq;
                if !known && !st.objects.contains_key(&o) && !carried.contains_key(&o) {
                    return Err(StoreError::Other(format!("object {o:?} missing")));
                }
            }
        }
        for (id, raw) in carried {
            st.objects.entry(id).or_insert(raw);
        }
        let mut conflicts = BTreeSet::new();
        let mut applied = 0;
        for r in records {
            if r.seq <= st.vv.get(&r.origin).copied().unwrap_or(0) {
                continue;
            }
            let _ = self.hlc.observe(r.time);
            st.apply(r, &mut conflicts);
            applied += 1;
        }
        drop(st);
        if applied > 0 {
            self.bump();
        }
        Ok(Applied {
            applied,
            conflicts: conflicts.into_iter().collect(),
        })
    }
    fn conflicted_mailboxes(&self) -> Result<Vec<MailboxId>, StoreError> {
        let st = self.state.lock();
        Ok(st
            .pending
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(mb, _)| *mb)
            .collect())
    }
    fn resolve_conflicts(&self, mailbox: MailboxId) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        let Some(pending) = st.pending.get(&mailbox).cloned() else {
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        // Both sides of each conflict move: the pending message and the one holding its UID.
        let mut movers: BTreeSet<Guid> = pending.keys().copied().collect();
        for uid in pending.values() {
            if let Some(g) = st.index.get(&mailbox).and_then(|i| i.get(uid)) {
                movers.insert(*g);
            }
        }
        let mut next = st.high(&mailbox);
        let moves = movers
            .into_iter()
            .map(|g| {
                next += 1;
                (g, next)
            })
            .collect();
        self.write_local(
            &mut st,
            Op::Renumber {
                mailbox,
                moves,
                modseq: 1,
            },
        );
        drop(st);
        self.bump();
        Ok(())
    }
    fn align_modseqs(
        &self,
        mailbox: MailboxId,
        min_modseq: u64,
        guids: &[Guid],
    ) -> Result<Option<u64>, StoreError> {
        let mut st = self.state.lock();
        if !st.modseqs.contains_key(&mailbox) {
            return Ok(None);
        }
        self.write_local(
            &mut st,
            Op::AlignModseqs {
                mailbox,
                modseq: min_modseq,
                messages: guids.to_vec(),
            },
        );
        let high = st.modseqs.get(&mailbox).map(|m| m.0);
        drop(st);
        self.bump();
        Ok(high)
    }
    fn has_object(&self, id: &ObjectId) -> Result<bool, StoreError> {
        Ok(self.state.lock().objects.contains_key(id))
    }
    fn put_object(&self, raw: &[u8]) -> Result<ObjectId, StoreError> {
        let id = ObjectId::of(raw);
        self.state.lock().objects.insert(id, raw.to_vec());
        Ok(id)
    }
    fn put_verified(&self, object: Verified) -> Result<ObjectId, StoreError> {
        let raw = object.to_raw()?;
        self.state.lock().objects.insert(object.id(), raw);
        Ok(object.id())
    }
    fn read_object_stored(&self, id: &ObjectId) -> Result<Prepared, StoreError> {
        storage::pack::prepare(&self.read_object(id)?)
    }
    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        self.state
            .lock()
            .objects
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::Other(format!("no object {id:?}")))
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tick.subscribe()
    }
    fn mailbox_digests(&self) -> Result<Vec<MailboxDigest>, StoreError> {
        let st = self.state.lock();
        Ok(st
            .index
            .iter()
            .map(|(mb, msgs)| {
                let (high, ms) = st.modseqs.get(mb).cloned().unwrap_or_default();
                digest_of(*mb, &mb.to_hex(), 1, high, &keys(msgs, &ms))
            })
            .collect())
    }
    fn rebuild_index(&self) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        let log = std::mem::take(&mut st.log);
        st.index.clear();
        st.pending.clear();
        st.uid_high.clear();
        st.modseqs.clear();
        for r in &log {
            st.apply(r, &mut BTreeSet::new());
        }
        st.log = log;
        Ok(())
    }
    fn mailbox_listing(&self, mailbox: MailboxId) -> Result<Vec<MessageKey>, StoreError> {
        let st = self.state.lock();
        let ms = st
            .modseqs
            .get(&mailbox)
            .map(|m| m.1.clone())
            .unwrap_or_default();
        Ok(st
            .index
            .get(&mailbox)
            .map(|msgs| keys(msgs, &ms))
            .unwrap_or_default())
    }
}

fn keys(msgs: &BTreeMap<u32, Guid>, modseqs: &BTreeMap<u32, u64>) -> Vec<MessageKey> {
    msgs.iter()
        .map(|(uid, guid)| MessageKey {
            uid: *uid,
            guid: *guid,
            flags: Vec::new(),
            modseq: modseqs.get(uid).copied().unwrap_or(0),
        })
        .collect()
}

impl MemUser {
    /// Loses an object (tests of a store failing under the shipper).
    pub fn forget_object(&self, id: &ObjectId) {
        self.state.lock().objects.remove(id);
    }
    /// Corrupts the index behind the log's back (tests of `sync --full`): drops a message.
    pub fn lose_from_index(&self, mailbox: MailboxId, uid: u32) {
        let mut st = self.state.lock();
        if let Some(m) = st.index.get_mut(&mailbox) {
            m.remove(&uid);
        }
        if let Some(m) = st.modseqs.get_mut(&mailbox) {
            m.1.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_objects_apply_all_or_nothing() {
        let (a, b) = (MemStore::new(1), MemStore::new(2));
        let (ua, ub) = (a.mem_user("u"), b.mem_user("u"));
        let mb = Guid([7; 16]);
        ua.append(mb, b"one\r\n");
        ua.append(mb, b"two\r\n");
        let recs = ua.records_since(&VersionVector::new(), 100).unwrap();
        let verified = |raws: &[&[u8]]| -> Vec<Verified> {
            raws.iter()
                .map(|r| {
                    let p = storage::pack::prepare(r).unwrap();
                    storage::pack::verify(p.id, p.raw_len, p.compressed, 1 << 20).unwrap()
                })
                .collect()
        };
        // A record whose object did not come (another one did): nothing is stored or applied.
        assert!(ub
            .apply_remote_with_objects(verified(&[b"one\r\n", b"tw0\r\n"]), &recs)
            .is_err());
        assert!(ub.version_vector().unwrap().is_empty());
        assert!(!ub.has_object(&ObjectId::of(b"one\r\n")).unwrap());
        let good: [&[u8]; 2] = [b"one\r\n", b"two\r\n"];
        assert_eq!(
            ub.apply_remote_with_objects(verified(&good), &recs)
                .unwrap()
                .applied,
            2
        );
        assert_eq!(
            ub.apply_remote_with_objects(verified(&good), &recs)
                .unwrap()
                .applied,
            0
        );
        assert_eq!(
            ub.read_object(&ObjectId::of(b"two\r\n")).unwrap(),
            b"two\r\n"
        );
        assert_eq!(ua.dump().index, ub.dump().index);
    }
}
