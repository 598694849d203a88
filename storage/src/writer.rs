//! Group commit, per user. A writer enqueues its request; if no leader is running it becomes the
//! leader, takes the whole queue, plans every request against the index (assigning UIDs,
//! modseqs, GUIDs, records), writes the batch's new objects to the pack and its records to the
//! log, makes both durable (one fdatasync each for the whole batch), applies the batch to the
//! index in one atomic sled batch, and wakes every writer of the batch. Writers that arrive
//! meanwhile form the next batch. No lock is shared between users.

use crate::error::{Result, StoreError};
use crate::framed::{self, FramedWriter, HEADER_LEN};
use crate::index::{self, apply, Effects, Meta, Txn};
use crate::mime::MessageFacts;
use crate::pack::Prepared;
use crate::record::{NewEntry, Op, Record};
use crate::store::{ApplyOutcome, UserStore};
use crate::types::*;
use crate::{log, names, pack};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;

pub(crate) enum Req {
    InitDefaults,
    Append {
        mailbox: String,
        object: Prepared,
        facts: Option<Box<MessageFacts>>,
        flags: Flags,
        internal_date: (i64, i32),
        delivery_key: Option<[u8; 32]>,
    },
    Copy {
        from: String,
        uids: Vec<u32>,
        to: String,
        mv: bool,
    },
    Flags {
        mailbox: String,
        uids: Vec<u32>,
        mode: FlagMode,
        flags: Flags,
        unchanged_since: Option<u64>,
    },
    Expunge {
        mailbox: String,
        uids: Vec<u32>,
    },
    Create {
        name: String,
        special_use: Option<SpecialUse>,
    },
    Delete {
        name: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        name: String,
        on: bool,
    },
    /// Records from a peer, with the objects that arrived with them (stored first, in the same
    /// batch, so records and objects share one durable write).
    Remote {
        objects: Vec<Prepared>,
        records: Vec<Record>,
        /// Objects the peer says it no longer has (purged): insertions of them that arrive
        /// without them may stay ghosts (`index::Ghost`). Any other missing object must have its
        /// message removed within the request.
        purged: HashSet<ObjectId>,
    },
    PutObject {
        object: Prepared,
    },
    Resolve {
        mailbox: String,
    },
    /// Writes `Op::AlignModseqs` (see `UserStore::align_modseqs`).
    Align {
        mailbox: MailboxId,
        modseq: u64,
        messages: Vec<Guid>,
    },
    /// Writes `Op::AlignExpunged` (see `UserStore::align_expunged`).
    AlignExpunged {
        mailbox: MailboxId,
        modseq: u64,
        uids: Vec<u32>,
    },
}

pub(crate) enum Reply {
    Unit,
    Append(AppendOutcome),
    Copy(CopyOutcome),
    Store(StoreOutcome),
    Expunged(Vec<u32>),
    Mailbox(MailboxInfo),
    Applied(ApplyOutcome),
    Object(ObjectId),
    Resolved(Option<Record>),
    Aligned(Option<u64>),
}

#[derive(Default)]
pub(crate) struct Queue {
    next: u64,
    pending: Vec<(u64, Req)>,
    done: HashMap<u64, Result<Reply>>,
    leader: bool,
}

/// What only the leader touches: the open log segment and pack, and the checkpoint.
pub(crate) struct WriterState {
    pub log: FramedWriter,
    pub pack: FramedWriter,
    pub meta: Meta,
    /// Set after a failed write or fsync: the on-disk state is unknown until the user is
    /// reopened (recovery reads what is really there), so nothing more is acknowledged.
    pub poisoned: Option<String>,
}

/// What one batch will write.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    /// The records' log payloads, encoded once when planned (and size-checked there).
    encoded: Vec<Vec<u8>>,
    objects: Vec<Prepared>,
    new_objects: HashSet<ObjectId>,
}

/// Objects up to this size (compressed) travel in the log with their records: one fdatasync
/// per batch instead of two. Larger ones go straight to a pack, where the extra sync is small
/// beside the write itself.
pub const INLINE_MAX: usize = 1 << 20;

pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Sent", Some(SpecialUse::Sent)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// Default mailboxes have the same GUID on every node, so two nodes that each created a user's
/// INBOX agree it is one mailbox when they replicate.
pub fn default_mailbox_guid(user: &str, name: &str) -> Guid {
    let h = blake3::hash(format!("default-mailbox\0{user}\0{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    Guid(b)
}

impl UserStore {
    pub(crate) fn submit(&self, req: Req) -> Result<Reply> {
        let mut q = self.queue.lock();
        let id = q.next;
        q.next += 1;
        q.pending.push((id, req));
        loop {
            if let Some(r) = q.done.remove(&id) {
                return r;
            }
            if !q.leader && !q.pending.is_empty() {
                q.leader = true;
                let batch = std::mem::take(&mut q.pending);
                drop(q);
                let ids: Vec<u64> = batch.iter().map(|(i, _)| *i).collect();
                let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut ws = self.writer.lock();
                    self.run_batch(&mut ws, batch)
                }))
                .unwrap_or_else(|_| {
                    self.writer.lock().poisoned = Some("writer panicked".into());
                    ids.iter()
                        .map(|i| {
                            (
                                *i,
                                Err(StoreError::Other("internal error in the writer".into())),
                            )
                        })
                        .collect()
                });
                q = self.queue.lock();
                q.leader = false;
                q.done.extend(results);
                self.cond.notify_all();
                continue;
            }
            self.cond.wait(&mut q);
        }
    }

    fn run_batch(&self, ws: &mut WriterState, reqs: Vec<(u64, Req)>) -> Vec<(u64, Result<Reply>)> {
        if let Some(p) = &ws.poisoned {
            let msg = format!(
                "user {} store is failed ({p}); reopen to recover",
                self.name
            );
            return reqs
                .into_iter()
                .map(|(i, _)| (i, Err(StoreError::Other(msg.clone()))))
                .collect();
        }
        let mut tx = Txn::new(&self.name, &self.ix);
        let mut meta = ws.meta.clone();
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(reqs.len());
        for (id, req) in reqs {
            let sp = tx.savepoint();
            let meta_sp = meta.clone();
            let (nrec, nobj) = (batch.records.len(), batch.objects.len());
            let r = self.plan(&mut tx, &mut meta, &mut batch, req);
            if r.is_err() {
                tx.rollback(sp);
                meta = meta_sp;
                batch.records.truncate(nrec);
                batch.encoded.truncate(nrec);
                for o in batch.objects.drain(nobj..) {
                    batch.new_objects.remove(&o.id);
                }
            }
            out.push((id, r));
        }
        if batch.records.is_empty() && batch.objects.is_empty() {
            if !tx.is_empty() {
                if let Err(e) = self.tree_apply(tx) {
                    return fail_all(out, e);
                }
            }
            return out;
        }
        if let Err(e) = self.write_durably(ws, &mut tx, &mut meta, &batch) {
            tracing::error!(user = %self.name, error = %e, "store write failed; user store stops accepting writes");
            ws.poisoned = Some(e.to_string());
            return fail_all(out, e);
        }
        // The batch is durable: from here on it is acknowledged. The index is a view and may lag.
        tx.put(index::META.to_vec(), &meta);
        let committed = self.tree_apply(tx);
        ws.meta = meta;
        {
            let mut recent = self.recent.lock();
            recent.push(&batch.records);
            for o in &batch.objects {
                recent.push_object(o);
            }
        }
        let c = &self.shared.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.records
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        if let Err(e) = committed {
            // The log has it; the index will catch up from the log at the next open.
            tracing::error!(user = %self.name, error = %e, "index update failed after a durable write");
            ws.poisoned = Some(e.to_string());
        }
        self.watch_tx.send_modify(|v| *v += 1);
        out
    }

    /// Hands a commit's index changes to the overlay (sled gets them with the next flush).
    fn tree_apply(&self, tx: Txn) -> Result<()> {
        self.ix.commit(tx.into_changes())
    }

    /// Writes the batch: large objects to the pack (one write, one sync), then small objects and
    /// all records to the log in one write made durable by one fdatasync.
    fn write_durably(
        &self,
        ws: &mut WriterState,
        tx: &mut Txn,
        meta: &mut Meta,
        b: &Batch,
    ) -> Result<()> {
        let (inline, big): (Vec<&Prepared>, Vec<&Prepared>) = b
            .objects
            .iter()
            .partition(|o| o.compressed.len() <= INLINE_MAX);
        if !big.is_empty() {
            let mut buf = Vec::with_capacity(big.iter().map(|o| pack::encoded_len(o, 0)).sum());
            let rel = encode_objects(big, &[], &mut buf);
            next_file_if_full(&mut ws.pack, buf.len(), &self.dir, &PACKS)?;
            let base = ws.pack.append(&buf)?;
            // Large objects first: a durable record never names an object that is not durable.
            ws.pack.sync()?;
            put_object_locations(tx, rel, ws.pack.no, base, false);
            meta.pack_no = ws.pack.no;
            meta.pack_off = ws.pack.end();
        }
        // Sized up front: one allocation for the whole group commit's write.
        let size = inline
            .iter()
            .map(|o| pack::encoded_len(o, 1))
            .sum::<usize>()
            + b.encoded
                .iter()
                .map(|p| framed::FRAME_OVERHEAD as usize + p.len())
                .sum::<usize>();
        let mut buf = Vec::with_capacity(size);
        let rel = encode_objects(inline, &[log::TAG_OBJECT], &mut buf);
        for payload in &b.encoded {
            framed::encode_frame(payload, &mut buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        next_file_if_full(&mut ws.log, buf.len(), &self.dir, &SEGMENTS)?;
        let base = ws.log.append(&buf)?;
        // DURABILITY POINT: after this fdatasync every record of the batch and every object it
        // carries (large ones were synced above) is on disk; only now are the writers answered.
        ws.log.sync()?;
        put_object_locations(tx, rel, ws.log.no, base, true);
        meta.log_seg = ws.log.no;
        meta.log_off = ws.log.end();
        Ok(())
    }

    /// Stamps a local change, applies it to the staged index, queues it for the log.
    fn emit(&self, tx: &mut Txn, meta: &mut Meta, b: &mut Batch, op: Op) -> Result<Record> {
        let node = self.shared.config.node_id;
        let rec = Record {
            origin: node,
            seq: meta.vv.get(&node).copied().unwrap_or(0) + 1,
            time: self.shared.hlc.now(),
            op,
        };
        let payload = encoded(&rec)?;
        let mut fx = Effects {
            arriving: Some(&b.new_objects),
            ..Effects::default()
        };
        apply(tx, meta, &rec, &mut fx)?;
        b.records.push(rec.clone());
        b.encoded.push(payload);
        Ok(rec)
    }

    fn mailbox_for(&self, tx: &Txn, name: &str) -> Result<index::MailboxRec> {
        tx.mailbox_by_name(&names::canonical(name))?
            .ok_or_else(|| StoreError::NoSuchMailbox(name.to_string()))
    }

    fn mailbox_of(&self, tx: &Txn, id: &MailboxId) -> Result<index::MailboxRec> {
        tx.mailbox(id)?
            .ok_or_else(|| StoreError::Other("mailbox vanished during a change".into()))
    }

    fn object_present(tx: &Txn, b: &Batch, id: &ObjectId) -> Result<bool> {
        Ok(b.new_objects.contains(id) || tx.get_raw(&index::k_object(id))?.is_some())
    }

    fn add_object(tx: &Txn, b: &mut Batch, o: Prepared) -> Result<()> {
        if !Self::object_present(tx, b, &o.id)? {
            b.new_objects.insert(o.id);
            b.objects.push(o);
        }
        Ok(())
    }

    fn check_quota(&self, tx: &Txn, add_bytes: u64, add_msgs: u64) -> Result<()> {
        let limits = self.quota_limits();
        if limits.max_bytes.is_none() && limits.max_messages.is_none() {
            return Ok(());
        }
        let (bytes, msgs) = crate::store::usage(tx)?;
        if let Some(max) = limits.max_bytes {
            if bytes + add_bytes > max {
                return Err(StoreError::OverQuota(format!(
                    "storage: {} + {add_bytes} bytes exceeds the limit of {max}",
                    bytes
                )));
            }
        }
        if let Some(max) = limits.max_messages {
            if msgs + add_msgs > max {
                return Err(StoreError::OverQuota(format!(
                    "messages: {msgs} + {add_msgs} exceeds the limit of {max}"
                )));
            }
        }
        Ok(())
    }

    fn new_uidvalidity(&self, meta: &Meta) -> u32 {
        let now = (self.shared.hlc.now().wall_ms / 1000).min(u32::MAX as u64) as u32;
        now.max(meta.max_uidvalidity.saturating_add(1))
    }

    /// Emits the creation of `mailbox` as `name`, with a new UIDVALIDITY.
    fn emit_create(
        &self,
        tx: &mut Txn,
        meta: &mut Meta,
        b: &mut Batch,
        mailbox: MailboxId,
        name: String,
        special_use: Option<SpecialUse>,
    ) -> Result<Record> {
        let uidvalidity = self.new_uidvalidity(meta);
        let op = Op::MailboxCreate {
            mailbox,
            name,
            uidvalidity,
            special_use,
        };
        self.emit(tx, meta, b, op)
    }

    fn plan(&self, tx: &mut Txn, meta: &mut Meta, b: &mut Batch, req: Req) -> Result<Reply> {
        match req {
            Req::InitDefaults => {
                if tx.mailbox_by_name("INBOX")?.is_some() {
                    return Ok(Reply::Unit);
                }
                for (name, su) in DEFAULT_MAILBOXES {
                    let mailbox = default_mailbox_guid(&self.name, name);
                    if tx.mailbox(&mailbox)?.is_some() || tx.mailbox_by_name(name)?.is_some() {
                        continue;
                    }
                    self.emit_create(tx, meta, b, mailbox, name.to_string(), su)?;
                    self.emit(
                        tx,
                        meta,
                        b,
                        Op::Subscribe {
                            name: name.to_string(),
                        },
                    )?;
                }
                Ok(Reply::Unit)
            }
            Req::Append {
                mailbox,
                object,
                facts,
                flags,
                internal_date,
                delivery_key,
            } => {
                let mb = self.mailbox_for(tx, &mailbox)?;
                if let Some(key) = &delivery_key {
                    if let Some(d) = tx.get::<index::Delivery>(&index::k_delivery(key))? {
                        let window = self.shared.config.delivery_dedupe_window_secs * 1000;
                        if self.shared.hlc.wall_ms().saturating_sub(d.wall_ms) < window {
                            return Ok(Reply::Append(AppendOutcome {
                                duplicate: true,
                                ..d.outcome
                            }));
                        }
                    }
                }
                self.check_quota(tx, object.raw_len, 1)?;
                if mb.uidnext == u32::MAX {
                    return Err(StoreError::Other(format!(
                        "mailbox {} has no UIDs left",
                        mb.name
                    )));
                }
                let guid = self.shared.new_guid();
                let entry = NewEntry {
                    guid,
                    uid: mb.uidnext,
                    object: object.id,
                    size: object.raw_len,
                    internal_date: internal_date.0,
                    internal_date_tz_min: internal_date.1,
                    flags,
                };
                let modseq = mb.highestmodseq + 1;
                if let Some(f) = facts {
                    tx.put(index::k_facts(&object.id), &*f);
                }
                Self::add_object(tx, b, object)?;
                self.emit(
                    tx,
                    meta,
                    b,
                    Op::Append {
                        mailbox: mb.id,
                        entry: entry.clone(),
                        modseq,
                        delivery_key,
                    },
                )?;
                self.shared.counters.appends.fetch_add(1, Ordering::Relaxed);
                Ok(Reply::Append(AppendOutcome {
                    mailbox: mb.id,
                    uidvalidity: mb.uidvalidity,
                    uid: entry.uid,
                    guid,
                    modseq,
                    duplicate: false,
                }))
            }
            Req::Copy { from, uids, to, mv } => {
                let src = self.mailbox_for(tx, &from)?;
                let dst = self.mailbox_for(tx, &to)?;
                let wanted: BTreeSet<u32> = uids.into_iter().collect();
                let mut msgs = Vec::new();
                for uid in wanted {
                    if let Some(m) = tx.msg(&src.id, uid)? {
                        msgs.push(m.meta);
                    }
                }
                if msgs.is_empty() {
                    return Ok(Reply::Copy(CopyOutcome {
                        dst_uidvalidity: dst.uidvalidity,
                        pairs: Vec::new(),
                    }));
                }
                if !mv || src.id != dst.id {
                    let bytes = msgs.iter().map(|m| m.size).sum();
                    if !mv {
                        self.check_quota(tx, bytes, msgs.len() as u64)?;
                    }
                }
                if (dst.uidnext as u64) + msgs.len() as u64 >= u32::MAX as u64 {
                    return Err(StoreError::Other(format!(
                        "mailbox {} has no UIDs left",
                        dst.name
                    )));
                }
                let mut pairs = Vec::new();
                let mut entries = Vec::new();
                for (i, m) in msgs.iter().enumerate() {
                    let uid = dst.uidnext + i as u32;
                    pairs.push((m.uid, uid));
                    entries.push((
                        m.guid,
                        NewEntry {
                            guid: self.shared.new_guid(),
                            uid,
                            object: m.object,
                            size: m.size,
                            internal_date: m.internal_date,
                            internal_date_tz_min: m.internal_date_tz_min,
                            flags: m.flags.clone(),
                        },
                    ));
                }
                for chunk in entries.chunks(CHUNK) {
                    let (src, dst) = (self.mailbox_of(tx, &src.id)?, self.mailbox_of(tx, &dst.id)?);
                    let op = if mv {
                        Op::Move {
                            from: src.id,
                            to: dst.id,
                            entries: chunk.to_vec(),
                            modseq: dst.highestmodseq + 1,
                            from_modseq: src.highestmodseq + 1,
                        }
                    } else {
                        Op::Copy {
                            from: src.id,
                            to: dst.id,
                            entries: chunk.to_vec(),
                            modseq: dst.highestmodseq + 1,
                        }
                    };
                    self.emit(tx, meta, b, op)?;
                }
                Ok(Reply::Copy(CopyOutcome {
                    dst_uidvalidity: dst.uidvalidity,
                    pairs,
                }))
            }
            Req::Flags {
                mailbox,
                uids,
                mode,
                flags,
                unchanged_since,
            } => {
                let mb = self.mailbox_for(tx, &mailbox)?;
                let wanted: BTreeSet<u32> = uids.into_iter().collect();
                let mut targets = Vec::new();
                let mut modified = Vec::new();
                for uid in wanted {
                    let Some(m) = tx.msg(&mb.id, uid)? else {
                        continue;
                    };
                    if unchanged_since.is_some_and(|u| m.meta.modseq > u) {
                        modified.push(uid);
                        continue;
                    }
                    targets.push(m.meta);
                }
                let (add, remove): (Flags, Flags) = match mode {
                    FlagMode::Add => (flags.clone(), Flags::new()),
                    FlagMode::Remove => (Flags::new(), flags.clone()),
                    FlagMode::Replace => {
                        let mut rm = Flags::new();
                        for m in &targets {
                            rm.extend(m.flags.difference(&flags).cloned());
                        }
                        (flags.clone(), rm)
                    }
                };
                let changes = targets.iter().any(|m| {
                    add.iter().any(|f| !m.flags.contains(f))
                        || remove.iter().any(|f| m.flags.contains(f))
                });
                if changes {
                    let guids: Vec<Guid> = targets.iter().map(|m| m.guid).collect();
                    for chunk in guids.chunks(CHUNK) {
                        let modseq = self.mailbox_of(tx, &mb.id)?.highestmodseq + 1;
                        let op = Op::Flags {
                            mailbox: mb.id,
                            messages: chunk.to_vec(),
                            add: add.clone(),
                            remove: remove.clone(),
                            modseq,
                        };
                        self.emit(tx, meta, b, op)?;
                    }
                }
                let mut updated = Vec::new();
                for m in &targets {
                    if let Some(now) = tx.msg(&mb.id, m.uid)? {
                        updated.push((m.uid, now.meta.flags, now.meta.modseq));
                    }
                }
                Ok(Reply::Store(StoreOutcome { updated, modified }))
            }
            Req::Expunge { mailbox, uids } => {
                let mb = self.mailbox_for(tx, &mailbox)?;
                let wanted: BTreeSet<u32> = uids.into_iter().collect();
                let mut gone = Vec::new();
                let mut guids = Vec::new();
                for uid in wanted {
                    if let Some(m) = tx.msg(&mb.id, uid)? {
                        gone.push(uid);
                        guids.push(m.meta.guid);
                    }
                }
                for chunk in guids.chunks(CHUNK) {
                    let modseq = self.mailbox_of(tx, &mb.id)?.highestmodseq + 1;
                    let op = Op::Expunge {
                        mailbox: mb.id,
                        messages: chunk.to_vec(),
                        modseq,
                    };
                    self.emit(tx, meta, b, op)?;
                }
                Ok(Reply::Expunged(gone))
            }
            Req::Create { name, special_use } => {
                let name = names::validate_mailbox(&name)?;
                if tx.mailbox_by_name(&name)?.is_some() {
                    return Err(StoreError::MailboxExists(name));
                }
                let mailbox = self.shared.new_guid();
                self.emit_create(tx, meta, b, mailbox, name.clone(), special_use)?;
                let mb = tx
                    .mailbox(&mailbox)?
                    .ok_or_else(|| StoreError::Other("created mailbox vanished".into()))?;
                let sub = tx.get_raw(&index::k_sub(&mb.name))?.is_some();
                Ok(Reply::Mailbox(mb.info(sub)))
            }
            Req::Delete { name } => {
                let canon = names::canonical(&name);
                if names::is_inbox(&canon) {
                    return Err(StoreError::MailboxProtected(canon));
                }
                let mb = self.mailbox_for(tx, &canon)?;
                let children = tx.scan_raw(&index::k_name(&format!("{}/", mb.name)))?;
                if !children.is_empty() {
                    return Err(StoreError::HasChildren(mb.name));
                }
                self.emit(tx, meta, b, Op::MailboxDelete { mailbox: mb.id })?;
                Ok(Reply::Unit)
            }
            Req::Rename { from, to } => {
                let src = self.mailbox_for(tx, &from)?;
                let to = names::validate_mailbox(&to)?;
                if tx.mailbox_by_name(&to)?.is_some() {
                    return Err(StoreError::MailboxExists(to));
                }
                if to.starts_with(&format!("{}/", src.name)) {
                    return Err(StoreError::InvalidMailboxName {
                        name: to,
                        reason: "cannot rename a mailbox into itself",
                    });
                }
                if names::is_inbox(&src.name) {
                    // RFC 9051 6.3.6: a new mailbox gets INBOX's messages; INBOX stays, empty.
                    let mailbox = self.shared.new_guid();
                    self.emit_create(tx, meta, b, mailbox, to.clone(), None)?;
                    let msgs = tx.messages(&src.id)?;
                    if !msgs.is_empty() {
                        let entries: Vec<(Guid, NewEntry)> = msgs
                            .iter()
                            .enumerate()
                            .map(|(i, m)| {
                                let m = &m.meta;
                                (
                                    m.guid,
                                    NewEntry {
                                        guid: self.shared.new_guid(),
                                        uid: 1 + i as u32,
                                        object: m.object,
                                        size: m.size,
                                        internal_date: m.internal_date,
                                        internal_date_tz_min: m.internal_date_tz_min,
                                        flags: m.flags.clone(),
                                    },
                                )
                            })
                            .collect();
                        for chunk in entries.chunks(CHUNK) {
                            let from = self.mailbox_of(tx, &src.id)?;
                            let to = self.mailbox_of(tx, &mailbox)?;
                            let op = Op::Move {
                                from: from.id,
                                to: to.id,
                                entries: chunk.to_vec(),
                                modseq: to.highestmodseq + 1,
                                from_modseq: from.highestmodseq + 1,
                            };
                            self.emit(tx, meta, b, op)?;
                        }
                    }
                    return Ok(Reply::Unit);
                }
                let prefix = format!("{}/", src.name);
                let children = tx.scan::<MailboxId>(&index::k_name(&prefix))?;
                self.emit(
                    tx,
                    meta,
                    b,
                    Op::MailboxRename {
                        mailbox: src.id,
                        new_name: to.clone(),
                    },
                )?;
                for (k, id) in children {
                    let old = String::from_utf8_lossy(&k[1..]).into_owned();
                    let new_name = format!("{to}/{}", &old[prefix.len()..]);
                    self.emit(
                        tx,
                        meta,
                        b,
                        Op::MailboxRename {
                            mailbox: id,
                            new_name,
                        },
                    )?;
                }
                Ok(Reply::Unit)
            }
            Req::Subscribe { name, on } => {
                let name = names::validate_mailbox(&name)?;
                let present = tx.get_raw(&index::k_sub(&name))?.is_some();
                if present != on {
                    let op = if on {
                        Op::Subscribe { name }
                    } else {
                        Op::Unsubscribe { name }
                    };
                    self.emit(tx, meta, b, op)?;
                }
                Ok(Reply::Unit)
            }
            Req::PutObject { object } => {
                let id = object.id;
                Self::add_object(tx, b, object)?;
                Ok(Reply::Object(id))
            }
            Req::Remote {
                objects,
                records,
                purged,
            } => {
                // Objects first so the records below find them; on any refusal the whole
                // request (objects included) is rolled back by `run_batch`.
                for o in objects {
                    Self::add_object(tx, b, o)?;
                }
                let mut fx = Effects {
                    arriving: Some(&b.new_objects),
                    ..Effects::default()
                };
                let mut applied = 0;
                // Messages that arrive without their object: the peer purged it after the
                // message was expunged there (or holds it as a ghost itself). Their insertions
                // become ghosts (`index::Ghost`): UID taken, never visible, until the record
                // that removes them arrives. A message is never visible without its body.
                let mut bodiless: Vec<(NodeId, u64, MailboxId, Guid, ObjectId)> = Vec::new();
                for rec in records {
                    let have = meta.vv.get(&rec.origin).copied().unwrap_or(0);
                    if rec.seq <= have {
                        continue;
                    }
                    if rec.seq != have + 1 {
                        return Err(StoreError::Other(format!(
                            "replication gap: record {} of origin {} after {have}",
                            rec.seq, rec.origin
                        )));
                    }
                    crate::merge::validate_peer_record(&rec)
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                    if let Err(e) = self.shared.hlc.observe(rec.time) {
                        tracing::warn!(user = %self.name, error = %e, "remote record from a clock far ahead");
                    }
                    for (mailbox, guid, obj) in insertions(&rec.op) {
                        if !Self::object_present(tx, b, &obj)? {
                            bodiless.push((rec.origin, rec.seq, mailbox, guid, obj));
                        }
                    }
                    let payload = encoded(&rec)?;
                    apply(tx, meta, &rec, &mut fx)?;
                    b.records.push(rec);
                    b.encoded.push(payload);
                    applied += 1;
                }
                check_bodiless(tx, &b.new_objects, &bodiless, &purged)?;
                check_uid_room(tx, &fx.conflicts)?;
                if !fx.ghosts.is_empty() {
                    tracing::info!(user = %self.name, messages = fx.ghosts.len(),
                        "messages received without their objects (purged at the sender) stay \
                         invisible until the records that remove them arrive");
                }
                Ok(Reply::Applied(ApplyOutcome {
                    applied,
                    conflicts: fx.conflicts,
                }))
            }
            Req::Resolve { mailbox } => {
                let mb = self.mailbox_for(tx, &mailbox)?;
                let pending = tx.scan::<index::PendingEntry>(&index::k_pending_prefix(&mb.id))?;
                let contested = tx.scan::<Guid>(&index::k_contested_prefix(&mb.id))?;
                let mut involved: Vec<Guid> = Vec::new();
                for (_, p) in &pending {
                    if let Some(local) = tx.msg(&mb.id, p.entry.uid)? {
                        if !involved.contains(&local.meta.guid) {
                            involved.push(local.meta.guid);
                        }
                    }
                    involved.push(p.entry.guid);
                }
                // A holder whose claimant is already gone (a purged message travels with its
                // removal) still leaves the UID: the claimant's node named it by that UID.
                for (_, holder) in &contested {
                    if tx.get_raw(&index::k_guid(holder))?.is_some() && !involved.contains(holder) {
                        involved.push(*holder);
                    }
                }
                if involved.is_empty() {
                    return Ok(Reply::Resolved(None));
                }
                let moves = crate::merge::uids::renumber(mb.uidnext, &involved).map_err(|e| {
                    StoreError::Other(format!(
                        "mailbox {}: cannot resolve UID conflicts: {e}",
                        mb.name
                    ))
                })?;
                let rec = self.emit(
                    tx,
                    meta,
                    b,
                    Op::Renumber {
                        mailbox: mb.id,
                        moves,
                        modseq: mb.highestmodseq + 1,
                    },
                )?;
                Ok(Reply::Resolved(Some(rec)))
            }
            Req::Align {
                mailbox,
                modseq,
                messages,
            } => {
                if tx.mailbox(&mailbox)?.is_none() {
                    return Ok(Reply::Aligned(None));
                }
                // Large lists become several records, like any change (each lands one above
                // the previous, the same on every node).
                let mut chunks: Vec<Vec<Guid>> =
                    messages.chunks(CHUNK).map(<[Guid]>::to_vec).collect();
                if chunks.is_empty() {
                    chunks.push(Vec::new()); // HIGHESTMODSEQ alone differs
                }
                for messages in chunks {
                    self.emit(
                        tx,
                        meta,
                        b,
                        Op::AlignModseqs {
                            mailbox,
                            modseq,
                            messages,
                        },
                    )?;
                }
                Ok(Reply::Aligned(
                    tx.mailbox(&mailbox)?.map(|mb| mb.highestmodseq),
                ))
            }
            Req::AlignExpunged {
                mailbox,
                modseq,
                uids,
            } => {
                if tx.mailbox(&mailbox)?.is_none() {
                    return Ok(Reply::Aligned(None));
                }
                let mut chunks: Vec<Vec<u32>> = uids.chunks(CHUNK).map(<[u32]>::to_vec).collect();
                if chunks.is_empty() {
                    chunks.push(Vec::new());
                }
                for uids in chunks {
                    self.emit(
                        tx,
                        meta,
                        b,
                        Op::AlignExpunged {
                            mailbox,
                            modseq,
                            uids,
                        },
                    )?;
                }
                Ok(Reply::Aligned(
                    tx.mailbox(&mailbox)?.map(|mb| mb.highestmodseq),
                ))
            }
        }
    }
}

/// A peer's insertion without its object is accepted only as a ghost (see `index::Ghost`), and
/// only if the peer declared the object purged (`purged`); otherwise (a corrupted body is not
/// the object its record names, a forgotten one) the request must remove the message itself.
/// If the request left the message visible here (the record names a message that is live
/// here), the peer's claim is false and the request is refused.
fn check_bodiless(
    tx: &Txn,
    arriving: &HashSet<ObjectId>,
    bodiless: &[(NodeId, u64, MailboxId, Guid, ObjectId)],
    purged: &HashSet<ObjectId>,
) -> Result<()> {
    for (origin, seq, mailbox, guid, obj) in bodiless {
        if !purged.contains(obj)
            && (tx.get_raw(&index::k_guid(guid))?.is_some()
                || tx.get_raw(&index::k_pending(mailbox, guid))?.is_some())
        {
            return Err(StoreError::Other(format!(
                "record {origin}/{seq} needs object {} which is not here (put_object first), \
                 and the batch does not remove its message",
                obj.to_hex()
            )));
        }
        let Some((mb, uid)) = tx.get::<(MailboxId, u32)>(&index::k_guid(guid))? else {
            continue; // removed (or its mailbox gone) within the request
        };
        let Some(m) = tx.msg(&mb, uid)? else {
            continue; // a ghost, or pending (a renumbering makes it a ghost)
        };
        let here = arriving.contains(&m.meta.object)
            || tx.get_raw(&index::k_object(&m.meta.object))?.is_some();
        if m.meta.object != *obj || !here {
            return Err(StoreError::Other(format!(
                "record {origin}/{seq} brings message {guid} without its object {}, but that \
                 message is visible here",
                obj.to_hex()
            )));
        }
    }
    Ok(())
}

/// Every mailbox where a peer's records parked messages (UID conflicts) must have UIDs left to
/// renumber them all ([`crate::merge::uids`]); otherwise the peer's frame is refused here, before
/// anything of it is durable, rather than leaving the resolver a renumbering past `u32::MAX`.
fn check_uid_room(tx: &Txn, conflicts: &[index::UidConflict]) -> Result<()> {
    let mailboxes: BTreeSet<MailboxId> = conflicts.iter().map(|c| c.mailbox).collect();
    for id in mailboxes {
        let Some(mb) = tx.mailbox(&id)? else {
            continue;
        };
        // The resolver renumbers every parked message and every live holder of a contested UID.
        let parked = tx.scan_raw(&index::k_pending_prefix(&id))?.len();
        let contested = tx.scan_raw(&index::k_contested_prefix(&id))?.len();
        let needed = parked + contested;
        if !crate::merge::uids::has_room(mb.uidnext, needed) {
            let e = crate::merge::uids::NoUidsLeft {
                uidnext: mb.uidnext,
                needed,
            };
            return Err(StoreError::Other(format!(
                "refused records from a peer: mailbox {} could not renumber its UID conflicts: {e}",
                mb.name
            )));
        }
    }
    Ok(())
}

/// Messages per Copy/Move/Flags/Expunge record: keeps every record far below the log's frame
/// limit whatever a client selects (a larger change becomes several records).
const CHUNK: usize = 2_000;

/// A record's log payload; refused (before anything is written) if it would not fit a frame.
fn encoded(rec: &Record) -> Result<Vec<u8>> {
    let payload = log::encode_record(rec);
    if payload.len() > log::MAX_RECORD {
        return Err(StoreError::Other(format!(
            "change too large for one log record ({} bytes, {} at most)",
            payload.len(),
            log::MAX_RECORD
        )));
    }
    Ok(payload)
}

/// The messages a record brings into mailboxes: (mailbox, GUID, object).
fn insertions(op: &Op) -> Vec<(MailboxId, Guid, ObjectId)> {
    match op {
        Op::Append { mailbox, entry, .. } => vec![(*mailbox, entry.guid, entry.object)],
        Op::Copy { to, entries, .. } | Op::Move { to, entries, .. } => entries
            .iter()
            .map(|(_, e)| (*to, e.guid, e.object))
            .collect(),
        _ => Vec::new(),
    }
}

fn fail_all(out: Vec<(u64, Result<Reply>)>, e: StoreError) -> Vec<(u64, Result<Reply>)> {
    let msg = e.to_string();
    out.into_iter()
        .map(|(i, r)| match r {
            Ok(_) => (i, Err(StoreError::Other(format!("write failed: {msg}")))),
            Err(e) => (i, Err(e)),
        })
        .collect()
}

/// A series of numbered files the writer appends to: packs, or log segments.
struct Files {
    /// Directory below the user's.
    subdir: &'static str,
    /// Size past which the next write starts a new file.
    max: u64,
    ext: &'static str,
    kind: framed::Kind,
}

const PACKS: Files = Files {
    subdir: "packs",
    max: pack::PACK_MAX,
    ext: pack::EXT,
    kind: pack::KIND,
};

const SEGMENTS: Files = Files {
    subdir: "log",
    max: log::SEGMENT_MAX,
    ext: log::EXT,
    kind: log::KIND,
};

/// Moves `w` on to the next of `files` when `len` more bytes would take it past their maximum;
/// a file holds at least one write, however large.
fn next_file_if_full(
    w: &mut FramedWriter,
    len: usize,
    user_dir: &std::path::Path,
    files: &Files,
) -> Result<()> {
    if w.end() > HEADER_LEN && w.end() + len as u64 > files.max {
        let dir = user_dir.join(files.subdir);
        *w = FramedWriter::create(&dir, w.no + 1, files.ext, files.kind)?;
    }
    Ok(())
}

/// Encodes `objects` one after another into `buf`, each frame's payload after `prefix`; returns
/// each object with its frame's offset in `buf`.
fn encode_objects<'a>(
    objects: Vec<&'a Prepared>,
    prefix: &[u8],
    buf: &mut Vec<u8>,
) -> Vec<(&'a Prepared, u64)> {
    let mut at = Vec::with_capacity(objects.len());
    for o in objects {
        at.push((o, buf.len() as u64));
        pack::encode(o, prefix, buf);
    }
    at
}

/// Indexes where the objects just written went: file `file_no` (a pack, or a log segment when
/// `in_log`), each at `base` plus its offset in the write.
fn put_object_locations(
    tx: &mut Txn,
    written: Vec<(&Prepared, u64)>,
    file_no: u32,
    base: u64,
    in_log: bool,
) {
    for (o, off) in written {
        tx.put(
            index::k_object(&o.id),
            &index::ObjLoc {
                pack: file_no,
                offset: base + off,
                raw_len: o.raw_len,
                in_log,
            },
        );
    }
}
